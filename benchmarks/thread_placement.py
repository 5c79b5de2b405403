"""Two threads against one as the host moves the vCPUs: what the step probes save.

On a virtual machine the host may place two vCPUs near each other or far apart
and move them within seconds to minutes; far apart, every hand-over of data
between threads costs several times more, and a small training step runs
slower on two threads than on one. pyvae's training loop times its steps both
ways in short probes and runs the faster (csrc/cpu/step_threads.h);
``PYVAE_STEP_THREADS=team`` turns the probes off.

Each round: the CPUs' round trip (benchmarks/core_round_trip.c: a cache line
from the first CPU to the second and back), then three processes pinned to the
same two CPUs, in a rotated order, each training 784-200-200-50 tanh
(Bernoulli, batch 20, the IWAE paper's shape; MNIST) for a warm-up call and a
timed window of ~1 s: one thread, two threads with the probes (the default),
two threads always on the team. The OpenBLAS variables are removed from the
children's environment. Rounds are grouped by the round trip measured before
them.

    python benchmarks/thread_placement.py --rounds 30 --out benchmarks/THREAD_PLACEMENT.md
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# compare.py's trainer (the same model, seeds and Adam as its batch-20 rows), round-trip probe and
# list of OpenBLAS variables, for both harnesses.
from compare import DROP_ENV, MODELS, ROOT, PyvaeTrainer, build_round_trip  # noqa: E402

MODES = {"1 thread": (1, None), "2 threads (probes)": (2, None), "2 threads (always team)": (2, "team")}
BATCH, ROWS_PER_CALL = 20, 2040


def worker(threads, seconds):
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from pyvae.datasets import load_mnist

    X = np.ascontiguousarray(load_mnist(download_if_missing=False).X_train[:20000], dtype=np.float32)
    trainer = PyvaeTrainer(MODELS["iwae"], BATCH, threads, X)
    trainer.run(ROWS_PER_CALL)  # warm-up: buffers, the team's helper, the first probe
    first_step, first_team = trainer.step, trainer.team_steps
    t, calls = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        trainer.run(ROWS_PER_CALL)
        calls += 1
    rate = calls * ROWS_PER_CALL / (time.perf_counter() - t)
    share = (trainer.team_steps - first_team) / (trainer.step - first_step)
    print("RESULT " + json.dumps({"rate": rate, "team_share": share}))


def run_mode(mode, cpus, seconds):
    threads, step_threads = MODES[mode]
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    shared_mnist = ROOT.parent / "shared" / "data" / "mnist"  # the workplace's copy, beside the checkout
    if "PYVAE_MNIST_DIR" not in env and shared_mnist.is_dir():
        env["PYVAE_MNIST_DIR"] = str(shared_mnist)
    if step_threads:
        env["PYVAE_STEP_THREADS"] = step_threads
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(threads), "--seconds", str(seconds)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                       preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{mode}: {(p.stderr.strip().splitlines() or ['no output'])[-1]}")


def bucket(ns):
    for top, name in ((100, "< 100 ns"), (250, "100-250 ns"), (450, "250-450 ns")):
        if ns < top:
            return name
    return ">= 450 ns"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed window of each process")
    ap.add_argument("--out", help="write the markdown report here (default: print it)")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.seconds)
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        raise SystemExit("two CPUs are needed")
    exe = build_round_trip([])
    if exe is None:
        raise SystemExit("a C compiler is needed to build benchmarks/core_round_trip.c")
    exe = Path(exe)
    started = time.time()
    rounds = []
    try:
        for r in range(args.rounds):
            trip = float(subprocess.run([str(exe), str(cpus[0]), str(cpus[1])], capture_output=True, text=True,
                                        check=True).stdout)
            modes = list(MODES)
            modes = modes[r % 3:] + modes[:r % 3]
            result = {"round_trip_ns": trip, **{mode: run_mode(mode, set(cpus), args.seconds) for mode in modes}}
            rounds.append(result)
            print(f"round {r + 1}/{args.rounds}: {trip:.0f} ns " +
                  " ".join(f"{mode}: {result[mode]['rate']:,.0f}" for mode in MODES), flush=True)
    finally:
        exe.unlink()
    minutes = (time.time() - started) / 60

    names = list(MODES)
    lines = ["# Two threads against one as the host moves the vCPUs", "",
             f"`python benchmarks/thread_placement.py --rounds {args.rounds}"
             + (f" --out {args.out}" if args.out else "") + f"` ({minutes:.0f} minutes), "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
             f"CPUs {cpus}. The protocol is the script's docstring: 784-200-200-50 tanh, batch 20, samples/s of "
             "one ~1 s window per process, each in its own process pinned to the same two CPUs.", "",
             "## By the CPUs' round trip before the round (medians)", "",
             "| round trip | rounds | " + " | ".join(names) + " | probes / 1 thread | always team / 1 thread "
             "| probes / always team | steps on the team with probes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("< 100 ns", "100-250 ns", "250-450 ns", ">= 450 ns"):
        group = [r for r in rounds if bucket(r["round_trip_ns"]) == name]
        if not group:
            lines.append(f"| {name} | 0 | – | – | – | – | – | – | – |")
            continue
        med = {n: statistics.median(r[n]["rate"] for r in group) for n in names}
        share = statistics.median(r["2 threads (probes)"]["team_share"] for r in group)
        lines.append(f"| {name} | {len(group)} | " + " | ".join(f"{med[n]:,.0f}" for n in names)
                     + f" | {med[names[1]] / med[names[0]]:.2f}x | {med[names[2]] / med[names[0]]:.2f}x "
                       f"| {med[names[1]] / med[names[2]]:.2f}x | {share:.0%} |")
    ratio = {n: [r[n]["rate"] / r[names[0]]["rate"] for r in rounds] for n in names[1:]}
    lines += ["", "Over every round, the per-round ratio to one thread's speed (the three processes of a round run "
              "within seconds of each other, but the placement can change between them):", "",
              "| | median | lowest | highest |", "|---|---|---|---|"]
    for n in names[1:]:
        lines.append(f"| {n} / 1 thread | {statistics.median(ratio[n]):.2f}x | {min(ratio[n]):.2f}x "
                     f"| {max(ratio[n]):.2f}x |")
    lines += ["", "## Every round", "", "| round | round trip (ns) | " + " | ".join(names)
              + " | steps on the team with probes |", "|---|---|---|---|---|---|"]
    for k, r in enumerate(rounds, 1):
        lines.append(f"| {k} | {r['round_trip_ns']:.0f} | " + " | ".join(f"{r[n]['rate']:,.0f}" for n in names)
                     + f" | {r['2 threads (probes)']['team_share']:.0%} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
