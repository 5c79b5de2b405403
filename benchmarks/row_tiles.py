"""What row-invariant inference costs: the same inference with the core before
the change (OpenBLAS products over chunks of rows, batch-level choice of the
sparse first layer) and with this checkout's (the core's row-wise product,
dense.h's rowwise_product_tiles, and the first layer chosen per row), each in
its own process pinned to the same cores, in interleaved rounds. Writes
benchmarks/ROW_TILES.md.

    python benchmarks/row_tiles.py                   # builds the baseline revision under build/row-tiles-base
    python benchmarks/row_tiles.py --rounds 1 --quick

The baseline is the commit before the change (--baseline-rev); it is checked out
into a temporary git worktree and built with scripts/dev-build.sh. Both cores
train the same models bit for bit (training did not change), so the timed
models are the same. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from
the children's environment: OpenBLAS picks its own kernel, as on a user's machine.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REV = "9992cde"  # the parent of "Inference gives each row the same bits alone..."

# (name, what is timed): 10,000 rows of MNIST through a 784-400-20 Bernoulli VAE,
# 10,680 rows of wine (13 columns) through the default Gaussian VAE, and single rows.
CASES = ["mnist transform", "mnist score_samples", "mnist inverse_transform", "wine score_samples",
         "wine transform 1 row", "mnist transform 1 row"]


def worker(threads, repeats):
    import warnings

    import numpy as np
    from sklearn.datasets import load_wine
    from threadpoolctl import threadpool_info

    import pyvae

    warnings.simplefilter("ignore")
    data = pyvae.load_mnist(data_home=str(ROOT.parent / "shared" / "data" / "mnist"), download_if_missing=False)
    mnist = (data.X_train[:10000] > 0.5).astype(np.float32)
    wine = np.tile(load_wine().data, (60, 1))
    mb = pyvae.VAE(20, hidden_layer_sizes=(400,), likelihood="bernoulli", max_iter=1, random_state=0,
                   n_threads=threads).fit(mnist)
    mw = pyvae.VAE(2, max_iter=3, random_state=0, n_threads=threads).fit(wine)
    Z = mb.transform(mnist)
    calls = {
        "mnist transform": lambda: mb.transform(mnist),
        "mnist score_samples": lambda: mb.score_samples(mnist),
        "mnist inverse_transform": lambda: mb.inverse_transform(Z),
        "wine score_samples": lambda: mw.score_samples(wine),
        "wine transform 1 row": lambda: mw.transform(wine[:1]),
        "mnist transform 1 row": lambda: mb.transform(mnist[:1]),
    }
    out = {}
    for name, call in calls.items():
        n = repeats * (20 if "1 row" in name else 1)
        call()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        out[name] = min(times)
    blas = [lib.get("architecture") for lib in threadpool_info() if "scipy_openblas32" in lib.get("filepath", "")]
    out["_env"] = {"isa": pyvae._core.build_config["elementwise_isa"], "blas_kernel": blas[0] if blas else None}
    print(json.dumps(out))


def build_baseline(rev):
    tree = Path(tempfile.mkdtemp(prefix="pyvae-row-tiles-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev], check=True,
                   capture_output=True)
    subprocess.run(["bash", "scripts/dev-build.sh"], cwd=tree, check=True, capture_output=True,
                   env=dict(os.environ, BUILD_DIR="build/row-tiles-base"))
    return tree


def run(tree, threads, repeats):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["PYTHONPATH"] = str(tree)
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0))[:threads])
    cmd = ["taskset", "-c", cpus, sys.executable, __file__, "--worker", str(threads), "--repeats", str(repeats)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-rev", default=BASELINE_REV)
    ap.add_argument("--quick", action="store_true", help="prints only")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.repeats)
    start = time.time()
    load_before = os.getloadavg()[0]
    base = build_baseline(args.baseline_rev)
    try:
        best = {}
        env = None
        for r in range(args.rounds):
            for threads in (1, 2):
                order = [("before", base), ("row-wise", ROOT)]
                for label, tree in order if r % 2 == 0 else order[::-1]:
                    got = run(tree, threads, args.repeats)
                    env = got.pop("_env")
                    for name, t in got.items():
                        key = (name, threads, label)
                        best[key] = min(best.get(key, float("inf")), t)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    lines = [
        "# What row-invariant inference costs",
        "",
        f"- command: `python benchmarks/row_tiles.py --rounds {args.rounds}` ({(time.time() - start) / 60:.0f} minutes)",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu_name()}; {os.cpu_count()} CPUs; each measurement in its own process pinned to the first 1 or 2",
        f"- pyvae's kernels: {env['isa']}; OpenBLAS kernel (its own choice, OPENBLAS_* variables removed): {env['blas_kernel']}",
        f"- before: the core at {args.baseline_rev} (OpenBLAS products over chunks of up to 4,096 rows, the sparse",
        "  first layer chosen per chunk); row-wise: this checkout (the core's row-wise product, the first layer",
        "  chosen per row)",
        f"- best of {args.repeats} calls (20x that for single rows) per process, over {args.rounds} interleaved rounds",
        f"- load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (other work on the "
        "machine slows both columns alike: they interleave)",
        "",
        "| inference | threads | before, ms | row-wise, ms | row-wise / before |",
        "|---|---|---|---|---|",
    ]
    for name in CASES:
        for threads in (1, 2):
            a, b = best[(name, threads, "before")], best[(name, threads, "row-wise")]
            lines.append(f"| {name} | {threads} | {a * 1e3:.3f} | {b * 1e3:.3f} | {b / a:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        (ROOT / "benchmarks" / "ROW_TILES.md").write_text(text)


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        flags = fields.get("Flags", "")
        simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
        return f"{fields.get('Model name', platform.processor()).strip()} (family {fields.get('CPU family', '?').strip()} model {fields.get('Model', '?').strip()}, {simd})"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()


if __name__ == "__main__":
    main()
