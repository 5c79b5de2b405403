"""pyvae as it is against pyvae at an earlier commit, beside JAX and PyTorch, in one run of compare.py's harness.

A ratio measured against a peer in one run cannot be compared with one
measured in another: the peers' own speed moves between runs and machines (JAX
on 784-400-20 at batch 128, one thread: 21.7k to 24.0k samples/s over
benchmarks/RESULTS.md's committed runs on the same kind of CPU, while pyvae's
stayed at 30-31k). To tell whether a ratio held since a commit, both pyvae
builds run here side by side: the earlier one from a git worktree of that
commit (built by its own scripts/dev-build.sh under build/), each measurement
through its own checkout's compare.py worker (whose trainer matches its core),
in compare.py's harness: each measurement its own process pinned to the first
1 or 2 CPUs, OpenBLAS variables removed from its environment, interleaved
rounds (rotated, as compare.py's), the best window of each kept. Rows: the
MNIST training rows (784-400-20 ReLU at batch 128 and 1024, 784-200-200-50
tanh at batch 20) and the encoder's throughput, with 1 and 2 threads; and
pyvae's own ratios (two threads over one, partial_fit over the core's epoch,
two threads over one beside a CPU-bound process).

The default commit, d245f9c, is main as issue 27 describes it (its ratios:
pyvae / JAX 1.59x and 1.62x at batch 128, encode 2.34x JAX, ...), the last
commit before that issue's work began (b706715, the vectorized tanh).

    python benchmarks/against_commit.py --out benchmarks/AGAINST_D245F9C.md   # about 10 minutes
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# (kind, model, batch): the rows; each with 1 and 2 threads.
ROWS = (("train", "mnist", 128), ("train", "mnist", 1024), ("train", "iwae", 20), ("encode", "mnist", 128))
PEERS = {"train": ("jax", "torch"), "encode": ("jax",)}
CLOSE = 0.03  # |now / then - 1| within this: "holds" (the spread of one build's best windows between rounds)


def baseline_checkout(commit):
    """A worktree of `commit` under build/, its core built by its own dev-build script; returns its root."""
    tree = ROOT / "build" / f"baseline-{commit}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                       capture_output=True)
    if not list((tree / "pyvae").glob("_core*.so")):
        subprocess.run(["bash", "scripts/dev-build.sh"], cwd=tree, check=True, capture_output=True)
    return tree


def items(builds, data, args):
    """(key, spec, beside a busy process) of every measurement of a round."""
    base = dict(data=data, seconds=args.seconds, windows=args.windows)
    out = []
    for kind, model, batch in ROWS:
        for threads in (1, 2):
            for who in [*builds, *(PEERS[kind] if model == "mnist" else ())]:
                spec = dict(base, kind=kind, model=model, batch=batch, threads=threads,
                            **builds.get(who, dict(framework=who)))
                out.append((f"{kind}|{model}|{batch}|{threads}|{who}", spec, False))
    for batch in (128, 1024):
        for who, build in builds.items():
            out.append((f"overhead|mnist|{batch}|2|{who}", dict(base, kind="overhead", model="mnist", batch=batch,
                                                               threads=2, **build), False))
            for threads in (1, 2):
                out.append((f"busy|mnist|{batch}|{threads}|{who}", dict(base, kind="train", model="mnist", batch=batch,
                                                                       threads=threads, **build), True))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="d245f9c")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "AGAINST_D245F9C.md"))
    args = ap.parse_args()
    started = time.time()
    tree = baseline_checkout(args.baseline)
    data, data_note = compare.cache_mnist([])
    driver = compare.Driver(SimpleNamespace(python=sys.executable, quiet_cpus=0.3, quiet_wait=30.0, near_ns=150.0,
                                            near_wait=0.0))
    builds = {"then": dict(framework="pyvae", root=str(tree), script=str(tree / "benchmarks" / "compare.py")),
              "now": dict(framework="pyvae")}
    todo = items(builds, data, args)
    results = {}  # key -> one result per round
    try:
        for rnd in range(args.rounds):
            shift = rnd * len(todo) // args.rounds
            order = todo[shift:] + todo[:shift]  # rotated: no measurement always runs first
            for busy in (False, True):
                if busy:
                    driver.wait_quiet()
                    driver.start_busy()
                try:
                    for key, spec, beside_busy in order:
                        if beside_busy != busy:
                            continue
                        out = driver.run(dict(spec), quiet=not busy)
                        if "rates" not in out and "seconds" not in out:
                            raise SystemExit(f"{key}: {out}")
                        results.setdefault(key, []).append(out)
                finally:
                    driver.stop_busy()
    finally:
        os.unlink(data)
    write_markdown(args, results, data_note, time.time() - started)


def write_markdown(args, results, data_note, seconds):
    import numpy as np
    rates = {key: [max(r["rates"]) for r in runs] for key, runs in results.items() if "rates" in runs[0]}
    best = {key: max(values) for key, values in rates.items()}
    head = [f"# pyvae now against pyvae at {args.baseline}, in one harness run", "",
            f"- command: `python benchmarks/against_commit.py --baseline {args.baseline} --rounds {args.rounds}` "
            f"({seconds / 60:.0f} minutes); the protocol is its docstring",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- now: {subprocess.run(['git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}"
            " (the working tree as built by scripts/dev-build.sh)",
            f"- CPU: {compare.cpu_description()}",
            f"- data: {data_note}; best of {args.rounds} rounds x {args.windows} windows of ~{args.seconds} s", "",
            "Samples/s. \"vs JAX then / now\": the row's ratio to the peer for each build; \"now / then\" is "
            f"pyvae's speed now over then (the rounds' spread in brackets); holds when within {CLOSE:.0%} of 1.", "",
            "| row | threads | pyvae then | pyvae now | JAX | PyTorch | vs JAX then / now | vs PyTorch then / now | "
            "now / then | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    verdict = lambda r: "improves" if r > 1 + CLOSE else "holds" if r >= 1 - CLOSE else "falls"  # noqa: E731
    lines = []
    for kind, model, batch in ROWS:
        for threads in (1, 2):
            key = f"{kind}|{model}|{batch}|{threads}"
            then, now = best[f"{key}|then"], best[f"{key}|now"]
            per_round = np.array(rates[f"{key}|now"]) / np.array(rates[f"{key}|then"])
            peer = {who: best.get(f"{key}|{who}") for who in ("jax", "torch")}
            cells = [f"{v:,.0f}" if v else "" for v in (then, now, peer["jax"], peer["torch"])]
            vs = [f"{then / p:.2f}x / {now / p:.2f}x" if p else "" for p in (peer["jax"], peer["torch"])]
            label = f"{compare.MODELS[model]['label']}, {'training' if kind == 'train' else 'encode'}, batch {batch}"
            lines.append(f"| {label} | {threads} | " + " | ".join(cells + vs) +
                         f" | {now / then:.3f} ({per_round.min():.3f}-{per_round.max():.3f}) | {verdict(now / then)} |")
    ratios = ["", "pyvae's own ratios, per build (2/1: two threads' speed over one; partial_fit / epoch: one "
              "`partial_fit` over the core's epoch on 20,000 rows, two threads, lower is better; beside a busy process: "
              "one CPU-bound process on the same two CPUs). \"now / then\" is the ratio now over then.", "",
              "| ratio | then | now | now / then |", "|---|---|---|---|"]

    def ratio_row(label, then, now):
        ratios.append(f"| {label} | {then:.3f} | {now:.3f} | {now / then:.3f} |")
    for kind, model, batch in ROWS:
        key = f"{kind}|{model}|{batch}"
        ratio_row(f"{compare.MODELS[model]['label']}, {kind}, batch {batch}: 2/1",
                  *(best[f"{key}|2|{who}"] / best[f"{key}|1|{who}"] for who in ("then", "now")))
    for batch in (128, 1024):
        seconds_of = {who: {name: min(r["seconds"][name] for r in results[f"overhead|mnist|{batch}|2|{who}"])
                            for name in ("epoch", "partial_fit")} for who in ("then", "now")}
        ratio_row(f"partial_fit / epoch, batch {batch}",
                  *(s["partial_fit"] / s["epoch"] for s in (seconds_of["then"], seconds_of["now"])))
        ratio_row(f"beside a busy process, batch {batch}: 2/1",
                  *(best[f"busy|mnist|{batch}|2|{who}"] / best[f"busy|mnist|{batch}|1|{who}"] for who in ("then", "now")))
    open(args.out, "w").write("\n".join(head + lines + ratios) + "\n")


if __name__ == "__main__":
    main()
