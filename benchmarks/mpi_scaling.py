"""Data-parallel scaling: 1 vs 2 MPI ranks (1 thread each), and a cost model.

    python benchmarks/mpi_scaling.py [--rows 8192] [--batch 128] [--epochs 3]

The driver launches `mpiexec -n R python mpi_scaling.py --worker` for R = 1, 2
with one thread per rank (OMP_NUM_THREADS=1, n_threads=1). Strong scaling: the
same rows are split over the ranks; each rank keeps `--batch` rows per step,
so the effective batch is batch x R. It prints samples/s, the scaling
efficiency (samples/s with R ranks / (R x samples/s with 1)), the time spent in
the per-step Allreduce, and the cost model of docs/distributed.md evaluated
with the step time per sample measured here.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A MNIST-sized VAE: 784 features, one hidden layer of 256, 16 latent dimensions.
MODEL = dict(n_components=16, hidden_layer_sizes=(256,), likelihood="gaussian", n_threads=1, random_state=0)
N_FEATURES = 784


def worker(args):
    import numpy as np
    from mpi4py import MPI

    import pyvae._mpi as dist
    from pyvae import VAE

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    X = np.random.default_rng(0).normal(size=(args.rows, N_FEATURES)).astype(np.float32)
    lo, hi = rank * args.rows // size, (rank + 1) * args.rows // size
    X_local = X[lo:hi]

    # Time inside the per-step Allreduce (waiting for the slowest rank included).
    spent = {"s": 0.0, "calls": 0}
    allreduce = dist._MPI._allreduce

    def timed(self, buffer):
        t0 = time.perf_counter()
        allreduce(self, buffer)
        spent["s"] += time.perf_counter() - t0
        spent["calls"] += 1

    dist._MPI._allreduce = timed

    vae = VAE(batch_size=args.batch, **MODEL).partial_fit(X_local, comm=comm)  # warm-up epoch
    spent["s"], spent["calls"] = 0.0, 0
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        vae.partial_fit(X_local, comm=comm)
    comm.Barrier()
    elapsed = time.perf_counter() - t0

    # The Allreduce alone, ranks already in step: the network (here: shared memory) cost.
    n_params = vae.params_.size
    buf = np.ones(n_params + 6, dtype=np.float32)
    comm.Barrier()
    t1 = time.perf_counter()
    for _ in range(50):
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    bare = (time.perf_counter() - t1) / 50

    if rank == 0:
        print(json.dumps(dict(
            ranks=size, rows=args.rows, batch=args.batch, epochs=args.epochs, seconds=elapsed,
            steps=spent["calls"], allreduce_s=spent["s"], bare_allreduce_s=bare, n_params=int(n_params),
        )))


def run(ranks, args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [shutil.which("mpiexec"), "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
           "--rows", str(args.rows), "--batch", str(args.batch), "--epochs", str(args.epochs)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def batch_for_overhead(n_params, ranks, bandwidth_bytes, latency_s, t_sample, share=0.10):
    """Per-rank batch above which the Allreduce costs less than `share` of a step.

    Allreduce of n = 4 (n_params + 6) bytes over R ranks (Rabenseifner:
    reduce-scatter + allgather): 2 (R-1)/R n / bandwidth + 2 log2(R) latency.
    A step is b t_sample of compute plus the Allreduce; comm / step < share
    <=> b > comm (1 - share) / (share t_sample).
    """
    n = 4 * (n_params + 6)
    comm = 2 * (ranks - 1) / ranks * n / bandwidth_bytes + 2 * math.log2(ranks) * latency_s
    return comm, math.ceil(comm * (1 - share) / (share * t_sample))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=128, help="rows per rank per step")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if shutil.which("mpiexec") is None:
        sys.exit("mpiexec not found: pip install \".[mpi]\" (from the repository root)")

    results = [run(r, args) for r in (1, 2)]
    base = None
    load = os.getloadavg()[0]
    print(f"VAE 784-256-16 (gaussian), {args.rows} rows, batch {args.batch} per rank, {args.epochs} epochs, "
          f"1 thread per rank; {os.cpu_count()} cores, load average {load:.1f} after the runs")
    if load > os.cpu_count() - 2:
        print("warning: the machine is busy; ranks compete for cores, so the 2-rank numbers measure "
              "time-slicing as much as scaling")
    print(f"{'ranks':>5} {'eff. batch':>10} {'steps/ep':>8} {'samples/s':>10} {'efficiency':>10} "
          f"{'allreduce/step':>14} {'(bare)':>9} {'in allreduce':>12}")
    for r in results:
        rate = r["rows"] * r["epochs"] / r["seconds"]
        base = base or rate
        per_step = r["allreduce_s"] / max(r["steps"], 1)
        print(f"{r['ranks']:>5} {args.batch * r['ranks']:>10} {r['steps'] // r['epochs']:>8} {rate:>10.0f} "
              f"{rate / (r['ranks'] * base):>10.2f} {per_step * 1e3:>12.3f}ms {r['bare_allreduce_s'] * 1e3:>7.3f}ms "
              f"{r['allreduce_s'] / r['seconds']:>11.1%}")

    one = results[0]
    n_params = one["n_params"]
    # Compute per sample with one thread: the 1-rank run's time outside the (trivial) allreduce.
    t_sample = (one["seconds"] - one["allreduce_s"]) / (one["rows"] * one["epochs"])
    print(f"\nCost model (docs/distributed.md): n_params = {n_params}, {4 * (n_params + 6) / 1e6:.2f} MB per "
          f"Allreduce, step compute = b x {t_sample * 1e6:.1f} us/sample (measured, 1 thread)")
    print(f"{'network':>22} {'ranks':>6} {'allreduce':>10} {'b for <10%':>11}")
    for name, bw, lat in (("10 Gb/s, 20 us", 10e9 / 8, 20e-6), ("100 Gb/s, 2 us", 100e9 / 8, 2e-6)):
        for ranks in (2, 16, 256):
            comm, b = batch_for_overhead(n_params, ranks, bw, lat, t_sample)
            print(f"{name:>22} {ranks:>6} {comm * 1e3:>8.2f}ms {b:>11}")


if __name__ == "__main__":
    main()
