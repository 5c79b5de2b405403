"""Matrix-product libraries side by side at the shapes of one training step.

The products of one step of the 784-400-20 model (forward, weight gradients,
input gradients: what compare.py's GEMM-only bound times) run in each library,
each library in its own process pinned to the same CPUs, interleaved rounds:

- OpenBLAS: the scipy-openblas32 that pyvae links (cblas_sgemm via ctypes)
- MKL: PyTorch's CPU matmul (torch.mm on transposed views)
- XLA: JAX's jit of the same products
- BLIS: the `blis` package's gemm (its own kernels chosen for the CPU at run time)

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/gemm_backends.py --output benchmarks/GEMM.md

Needs torch, jax and blis installed (benchmark peers only). Reported: GFLOP/s of
the step's products per library (best window), and each over OpenBLAS.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import DROP_ENV, MODELS, openblas32, step_products, timed_windows  # noqa: E402

BACKENDS = ("openblas", "mkl", "xla", "blis")
NAMES = {"openblas": "OpenBLAS (pyvae's)", "mkl": "MKL (PyTorch)", "xla": "XLA (JAX)", "blis": "BLIS"}


def operands(products, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    out = []
    for ta, tb, M, N, K in products:
        A = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        B = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        out.append((ta, tb, M, N, K, A, B))
    return out


def step_function(backend, ops, threads):
    """A function running every product once in `backend`."""
    import numpy as np
    if backend == "openblas":
        lib = openblas32()
        lib.scipy_openblas_set_num_threads(threads)
        bufs = [(ta, tb, M, N, K, A, B, np.empty((M, N), np.float32)) for ta, tb, M, N, K, A, B in ops]

        def step():
            for ta, tb, M, N, K, A, B, C in bufs:
                lib.scipy_cblas_sgemm(101, 112 if ta else 111, 112 if tb else 111, M, N, K, 1.0, A.ctypes.data,
                                      A.shape[1], B.ctypes.data, B.shape[1], 0.0, C.ctypes.data, N)
        return step
    if backend == "mkl":
        import torch
        torch.set_num_threads(threads)
        tens = [(torch.from_numpy(A), torch.from_numpy(B), ta, tb) for ta, tb, _, _, _, A, B in ops]
        outs = [torch.empty((M, N)) for _, _, M, N, _, _, _ in ops]

        def step():
            with torch.no_grad():
                for (A, B, ta, tb), C in zip(tens, outs):
                    torch.mm(A.t() if ta else A, B.t() if tb else B, out=C)
        return step
    if backend == "xla":
        import jax
        import jax.numpy as jnp
        arrays = [(jnp.asarray(A), jnp.asarray(B)) for _, _, _, _, _, A, B in ops]
        flags = [(ta, tb) for ta, tb, *_ in ops]

        @jax.jit
        def all_products(pairs):
            return [(A.T if ta else A) @ (B.T if tb else B) for (A, B), (ta, tb) in zip(pairs, flags)]

        def step():
            jax.block_until_ready(all_products(arrays))
        return step
    if backend == "blis":
        from blis.py import gemm
        bufs = [(ta, tb, A, B, np.empty((M, N), np.float32)) for ta, tb, M, N, K, A, B in ops]

        def step():
            for ta, tb, A, B, C in bufs:
                gemm(A, B, trans1=ta, trans2=tb, out=C)
        return step
    raise ValueError(backend)


def work(spec):
    ops = operands(step_products(MODELS["mnist"], spec["batch"]))
    step = step_function(spec["backend"], ops, spec["threads"])
    flops = sum(2.0 * M * N * K for _, _, M, N, K, _, _ in ops)
    rates = timed_windows(step, 1, spec["seconds"], spec["windows"])
    return {"gflops": [r * flops / 1e9 for r in rates]}


def run_worker(spec, cpus):
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    threads = str(spec["threads"])
    env.update(OMP_NUM_THREADS=threads, BLIS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    p = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                       text=True, timeout=600, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (p.stderr.strip().splitlines() or ["no output"])[-1]}


def library_versions():
    out = {}
    for name in ("torch", "jax", "blis", "scipy_openblas32"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except ImportError:
            out[name] = "not installed"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="128,1024")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--output", default=None)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(work(json.loads(args.worker))))
        return
    cpus = sorted(os.sched_getaffinity(0))
    backends = args.backends.split(",")
    best = {}
    started = time.time()
    for _ in range(args.rounds):
        for threads in map(int, args.threads.split(",")):
            for batch in map(int, args.batches.split(",")):
                for backend in backends:
                    spec = dict(backend=backend, threads=threads, batch=batch, seconds=args.seconds,
                                windows=args.windows)
                    result = run_worker(spec, set(cpus[:threads]))
                    key = (threads, batch, backend)
                    if "error" in result:
                        best.setdefault(key, result["error"])
                        print(key, result["error"], flush=True)
                        continue
                    value = max(result["gflops"])
                    previous = best.get(key)
                    best[key] = max(value, previous) if isinstance(previous, float) else value
                    print(key, f"{value:.1f} GFLOP/s", flush=True)
    lines = [
        "# Matrix-product libraries at the shapes of one training step (784-400-20)",
        "",
        f"`python benchmarks/gemm_backends.py --rounds {args.rounds}` ({(time.time() - started) / 60:.0f} minutes), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, CPUs {cpus}; each library in "
        "its own process pinned to the first 1 or 2 CPUs, OpenBLAS variables removed, best window of "
        f"{args.rounds} interleaved rounds. Versions: {library_versions()}.",
        "",
        "GFLOP/s of the step's products (forward, weight and input gradients), and each library over OpenBLAS:",
        "",
        "| threads | batch | " + " | ".join(NAMES[b] for b in backends) + " | "
        + " | ".join(f"{NAMES[b]} / OpenBLAS" for b in backends if b != "openblas") + " |",
        "|---|---|" + "---|" * (2 * len(backends) - 1),
    ]
    for threads in map(int, args.threads.split(",")):
        for batch in map(int, args.batches.split(",")):
            values = [best.get((threads, batch, b)) for b in backends]
            base = best.get((threads, batch, "openblas"))
            cells = [f"{v:.1f}" if isinstance(v, float) else f"error: {v}" for v in values]
            ratios = [f"{v / base:.2f}x" if isinstance(v, float) and isinstance(base, float) else "–"
                      for b, v in zip(backends, values) if b != "openblas"]
            lines.append(f"| {threads} | {batch} | " + " | ".join(cells + ratios) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        Path(args.output).write_text(report)


if __name__ == "__main__":
    main()
