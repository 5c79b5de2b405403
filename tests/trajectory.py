"""The recorded trajectory: what the CPU engine computes for fixed seeds, kept
bit for bit so that a refactor or an optimization cannot change it unseen
(as llm.c's test_gpt2.c keeps its expected losses).

For each configuration below, on fixed data: the ELBO, reconstruction and KL
terms of the first 10 Adam steps (each a one-batch ``train_epoch``), then one
whole epoch with a short last batch, then SHA-256 digests of everything the
engine returns after it: parameters and Adam moments, the loss gradient on a
fixed batch and noise, the scores (ELBO and importance-weighted), encodings,
decodings and draws. Floats are stored as exact hex strings (``float.hex``).

``tests/test_trajectory.py`` compares a fresh run with
``tests/data/trajectory.json``; ``scripts/record-trajectory.py`` writes that
file (only on a commit whose numbers are known to be right).

The bits depend on the instruction set the core's elementwise kernels run
(csrc/cpu/dispatch.h) and on the kernel OpenBLAS picked for the products. Each
recording in the file is one such path, pinned for its run (PYVAE_ISA and
OPENBLAS_CORETYPE in a subprocess of its own), so that every x86-64 CPU with
AVX2 reproduces the AVX2 paths, and a CPU with AVX-512 the AVX-512 one too.
"""

import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits

from pyvae import _core

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "trajectory.json")
FORMAT = 2

# The recorded paths: the core's instruction set and OpenBLAS's kernel, each
# pinned for the run. The "avx2" paths run on every x86-64 CPU with AVX2 (an
# AVX2-only EPYC computes them natively: its OpenBLAS kernel, "Zen", is
# Haswell's, bit for bit); "avx512" needs AVX-512 (OpenBLAS's SkylakeX kernels
# are what it picks on the AVX-512 EPYCs and Xeons seen).
PATHS = {
    "baseline-Haswell": dict(isa="baseline", blas_kernel="Haswell"),
    "avx2-Haswell": dict(isa="avx2", blas_kernel="Haswell"),
    "avx512-SkylakeX": dict(isa="avx512", blas_kernel="SkylakeX"),
}
ISA_ORDER = ("baseline", "avx2", "avx512")  # each runs where the next does
_ISA_OF_NAME = {"x86-64-v2": "baseline", "x86-64-v3": "avx2", "x86-64-v4": "avx512"}
N_STEPS = 10
SEED = 20261125

# Defaults of every case; each case below changes a few.
BASE = dict(n_components=3, hidden_layer_sizes=[24, 12], activation="relu", likelihood="gaussian",
            kl="analytic", posterior="gaussian", gradient_estimator="reparameterization", n_mc_samples=1,
            beta=1.0, missing=False, data="centered", batch_size=32, alpha=0.0, learning_rate=3e-3)

CASES = {
    "gaussian": dict(),
    "gaussian_tanh": dict(activation="tanh"),
    "gaussian_isotropic": dict(likelihood="gaussian_isotropic", hidden_layer_sizes=[16]),
    "gaussian_mc_kl_2_samples": dict(kl="mc", n_mc_samples=2, beta=0.5),
    "gaussian_missing_mask": dict(missing=True, data="centered_missing", activation="tanh"),
    "gaussian_linear_weight_decay": dict(hidden_layer_sizes=[], alpha=1e-2),
    "bernoulli": dict(likelihood="bernoulli", data="unit"),
    "bernoulli_mc_kl_2_samples_tanh": dict(likelihood="bernoulli", data="unit", kl="mc", n_mc_samples=2,
                                          activation="tanh"),
    "bernoulli_missing_mask": dict(likelihood="bernoulli", data="unit_missing", missing=True),
    "continuous_bernoulli": dict(likelihood="continuous_bernoulli", data="unit"),
    "logistic_posterior_mc_kl": dict(posterior="logistic", kl="mc", n_mc_samples=2),
    "laplace_posterior_score_function": dict(posterior="laplace", kl="mc", gradient_estimator="score_function",
                                             likelihood="bernoulli", data="unit"),
    "gaussian_score_function": dict(gradient_estimator="score_function"),
    # The shapes of MNIST: blocked and transposed products, the vectorized Bernoulli pass.
    "bernoulli_784_400_20": dict(likelihood="bernoulli", data="binary_784", hidden_layer_sizes=[400],
                                 n_components=20, batch_size=128),
}

MODEL_KEYS = ("n_components", "hidden_layer_sizes", "activation", "likelihood", "kl", "posterior",
              "gradient_estimator", "n_mc_samples", "beta", "missing")


def case_config(name):
    return dict(BASE, **CASES[name])


def dataset(kind):
    """float32 (n, d) data made by exact arithmetic (no random generator whose
    stream a library release could change)."""
    if kind == "binary_784":
        i, j = np.meshgrid(np.arange(300, dtype=np.int64), np.arange(784, dtype=np.int64), indexing="ij")
        return ((((i * 2654435761 + j * 40503) >> 7) % 7) == 0).astype(np.float32)
    X = load_digits().data[:250].astype(np.float32) / 16  # k / 16: exact
    if kind.startswith("centered"):
        X = X * 2 - 1  # exact
    if kind.endswith("_missing"):
        i, j = np.nonzero((np.add.outer(np.arange(X.shape[0]) * 7, np.arange(X.shape[1]) * 3) % 11) == 0)
        X[i, j] = np.nan
    return np.ascontiguousarray(X)


def digest(array):
    array = np.ascontiguousarray(array)
    return hashlib.sha256(str(array.dtype).encode() + str(array.shape).encode() + array.tobytes()).hexdigest()


def run(name, n_threads=2):
    """The case's numbers: {"steps": [{term: hex}], "digests": {output: sha256}}."""
    c = case_config(name)
    X = dataset(c["data"])
    n, d = X.shape
    model = _core.Model32(n_features=d, n_threads=n_threads, **{k: c[k] for k in MODEL_KEYS})
    params = model.init_params(SEED)
    m, v = np.zeros_like(params), np.zeros_like(params)
    B = c["batch_size"]
    adam = _core.AdamSettings(learning_rate=c["learning_rate"], alpha=c["alpha"])
    step, baseline = 0, 0.0
    steps = []
    for k in range(N_STEPS):
        rows = (np.arange(B, dtype=np.int64) + k * B) % n
        out = model.train_epoch(params, m, v, step, baseline, X, rows, B, SEED, adam)
        step, baseline = out["step"], out["baseline"]
        steps.append({key: float(out[key]).hex() for key in ("elbo", "recon", "kl", "baseline")})
    # A whole epoch: the shuffle, and a short last batch (n is not a multiple of B).
    out = model.train_epoch(params, m, v, step, baseline, X, np.arange(n, dtype=np.int64), B, SEED, adam)
    steps.append({key: float(out[key]).hex() for key in ("elbo", "recon", "kl", "baseline")})

    S, Z = c["n_mc_samples"], c["n_components"]
    x_obs = X[:B]
    x_enc = np.nan_to_num(x_obs, nan=0.0)
    # Fixed base noise (S, B, Z) from the core's counter-based generator.
    noise = model.sample_prior(S * B, SEED).reshape(S, B, Z)
    if c["posterior"] != "gaussian":
        noise = 1 / (1 + np.exp(-noise))  # in (0, 1)
    noise = np.ascontiguousarray(noise, dtype=np.float32)
    grad = model.loss_and_grad(params, x_obs, x_enc, noise, 0.25)
    mu, logvar = model.encode(params, X)
    z = model.sample_prior(64, SEED + 1)
    outputs = {
        "params": params, "adam_m": m, "adam_v": v,
        "loss": np.float64(grad["loss"]), "grad": grad["grad"], "recon_draws": grad["recon"],
        "kl_draws": grad["kl_draws"], "mean_signal": np.float64(grad["mean_signal"]),
        "score_elbo": model.score(params, X, 1, False, SEED), "score_iwae": model.score(params, X, 5, True, SEED),
        "encode_mu": mu, "encode_logvar": logvar, "decode": model.decode(params, z),
        "sample_prior": z, "sample_observations": model.sample_observations(params, z, SEED + 2),
        "sample_posterior": model.sample_posterior(params, X, 2, SEED + 3),
    }
    return {"steps": steps, "digests": {key: digest(value) for key, value in outputs.items()},
            "final_score_elbo": float(np.mean(outputs["score_elbo"])).hex()}


def isa_short(name):
    """"x86-64-v3 (AVX2, FMA)" -> "avx2" (None for a build without dispatch)."""
    return _ISA_OF_NAME.get(name.split(" ")[0])


def environment():
    """What the bits depend on besides the code: the instruction set the core's
    kernels run, the BLAS and the kernel it picked, and the build (optimization
    flags change how float sums are vectorized and rounded)."""
    config = _core.build_config
    return {"machine": platform.machine(), "blas": config["blas"], "blas_kernel": config["blas_kernel"],
            "isa": isa_short(config["elementwise_isa"]) or config["elementwise_isa"],
            "build": config["build_type"], "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "")}


def path_of(env):
    """The PATHS name an environment computes, or None."""
    for name, pins in PATHS.items():
        if env["isa"] == pins["isa"] and env["blas_kernel"].lower() == pins["blas_kernel"].lower():
            return name
    return None


def why_not_here(path):
    """Why this CPU cannot run a recorded path, or None when it can."""
    cpu = isa_short(_core.build_config["cpu_isa"])
    if cpu is None:
        return f"this build of the core has no instruction-set dispatch ({_core.build_config['elementwise_isa']})"
    need = {"Haswell": "avx2", "SkylakeX": "avx512"}[PATHS[path]["blas_kernel"]]
    need = max(need, PATHS[path]["isa"], key=ISA_ORDER.index)
    if ISA_ORDER.index(cpu) < ISA_ORDER.index(need):
        return f"path {path} needs {need}; this CPU has {_core.build_config['cpu_isa']}"
    return None


def run_all():
    return {"environment": environment(), "cases": {name: dict(config=case_config(name), **run(name)) for name in CASES}}


def run_pinned(path):
    """run_all() in a subprocess with the path's instruction set and BLAS kernel pinned."""
    pins = PATHS[path]
    env = dict(os.environ, PYVAE_ISA=pins["isa"], OPENBLAS_CORETYPE=pins["blas_kernel"])
    done = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the pinned run of {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


if __name__ == "__main__":
    json.dump(run_all(), sys.stdout)
