"""The CUDA engine (pyvae._cuda_core) against the CPU engine.

Every test but the first few needs a usable NVIDIA GPU and is skipped cleanly
without one. Each `_cuda` kernel is compared with its CPU twin of the same name
(`_cuda_core.kernels.KernelBench`); both run the same PYVAE_HD formulas, so
what differs is the device's libm and the order of sums. Tolerances, all float32:
- elementwise kernels (activations, noise, reparameterization, KL terms,
  posterior gradient, Adam): rtol 1e-5, atol 1e-6; the device's expf/logf/tanhf
  are within 2 ulp of glibc's and nvcc fuses multiply-adds, so bits may differ;
- the noise: the same integers as the CPU, float values within 1 ulp;
- sums in a different order (cuBLAS products, row sums of the likelihood,
  column sums): rtol 1e-4, atol 1e-5 relative to the operands' scale;
- whole gradients: rtol 1e-3, atol 1e-5, as the float32-vs-float64 CPU test.
"""

import itertools
import pickle

import numpy as np
import pytest

from pyvae import VAE, _core, show_config
from pyvae._cuda import cuda_available

AVAILABLE, REASON = cuda_available()
gpu = pytest.mark.skipif(not AVAILABLE, reason=f"no usable CUDA device: {REASON}")

D, Z, N, S = 5, 2, 3, 2
ELEMENTWISE = dict(rtol=1e-5, atol=1e-6)
SUMS = dict(rtol=1e-4, atol=1e-5)
ADAM = _core.AdamSettings(learning_rate=1e-3)


def small_data(n=40, d=D, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


# ---------------------------------------------------------------- everywhere


def test_cuda_unavailable_raises_before_any_state_change():
    if AVAILABLE:
        pytest.skip("a usable GPU is present")
    vae = VAE(device="cuda", hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    before = dict(vae.__dict__)
    with pytest.raises(RuntimeError, match="device='cuda' is not available") as info:
        vae.fit(small_data())
    message = str(info.value)
    assert any(what in message for what in ("PYVAE_CUDA", "driver", "device found", "library")), message
    assert vae.__dict__ == before


def test_device_is_validated():
    with pytest.raises(ValueError, match="'device' parameter"):
        VAE(device="gpu").fit(small_data())


def test_cuda_available_gives_a_reason():
    ok, reason = cuda_available()
    assert isinstance(ok, bool) and isinstance(reason, str)
    if not ok:  # the reason names what is missing, in words a user can act on
        assert len(reason) > 20 and any(word in reason for word in ("CUDA", "GPU", "driver", "device", "built")), reason


def test_show_config_reports_cuda(capsys):
    config = show_config()
    assert "cuda" in config and "cuda_devices" in config
    assert "cuda" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_gpu_device_setting_falls_back_to_cpu_for_inference_without_gpu():
    """A model trained anywhere runs on a machine without a GPU: inference
    with device='cuda' uses the CPU there."""
    if AVAILABLE:
        pytest.skip("a usable GPU is present")
    X = small_data()
    vae = VAE(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X)
    expected = vae.transform(X)
    clone = pickle.loads(pickle.dumps(vae))
    clone.set_params(device="cuda")
    np.testing.assert_array_equal(clone.transform(X), expected)


# ---------------------------------------------------------------- with a GPU

CONFIGS = [
    dict(likelihood=lik, kl=kl, activation=act, posterior=post, gradient_estimator=est, missing=miss)
    for lik, kl, act, post, est, miss in [
        ("bernoulli", "analytic", "relu", "gaussian", "reparameterization", False),
        ("gaussian", "mc", "tanh", "gaussian", "reparameterization", True),
        ("gaussian_isotropic", "analytic", "tanh", "gaussian", "score_function", False),
        ("gaussian", "mc", "relu", "logistic", "reparameterization", False),
        ("bernoulli", "mc", "tanh", "laplace", "score_function", True),
    ]
]
IDS = ["-".join(str(v) for v in c.values()) for c in CONFIGS]


def engines(config, hidden=(4, 3), n_mc_samples=S, beta=0.7, n_features=D, n_components=Z):
    from pyvae import _cuda_core

    kwargs = dict(n_features=n_features, n_components=n_components, hidden_layer_sizes=list(hidden),
                  n_mc_samples=n_mc_samples, beta=beta, **config)
    return _core.Model32(n_threads=1, **kwargs), _cuda_core.ModelCuda(**kwargs), _cuda_core.kernels.KernelBench(**kwargs)


def batch(config, seed=0, n=N, d=D, s=S, z=Z):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, d)) if config["likelihood"] == "bernoulli" else rng.normal(size=(n, d))
    if config["missing"]:
        x[0, 1] = x[-1, 3 % d] = np.nan
    x_enc = np.nan_to_num(x, nan=0.0)
    noise = rng.uniform(0.02, 0.98, size=(s, n, z)) if config["posterior"] != "gaussian" else rng.normal(size=(s, n, z))
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return f32(x), f32(x_enc), f32(noise)


def params_for(model, seed=1):
    params = model.init_params(seed) * 1.5
    rng = np.random.default_rng(seed)
    for name, offset, shape in model.layout():
        if name.endswith("noise_logvar"):
            params[offset:offset + shape[0]] = rng.normal(scale=0.3, size=shape)
    return params.astype(np.float32)


def close(a, b, tol, scale=None):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(b).max(initial=0.0), 1.0) if scale is None else scale
    np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale)


@gpu
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("hidden", [True, False])
def test_dense_forward_and_backward_match_cpu(activation, hidden):
    """One contract for both: dense_backward takes the pre-activation gradient
    and, with inp_act (`hidden` here), applies the derivative of the
    activation whose output inp is."""
    config = dict(CONFIGS[0], activation=activation)
    _, _, k = engines(config)
    rng = np.random.default_rng(0)
    n, i, o = 257, 33, 65  # odd sizes on purpose
    inp, W, b = (rng.normal(size=s).astype(np.float32) for s in [(n, i), (i, o), (o,)])
    out = k.dense_forward(inp, W, b, hidden)
    close(k.dense_forward_cuda(inp, W, b, hidden), out, SUMS)
    if hidden:  # the input of a layer above a hidden one is that layer's activated output
        inp = np.maximum(inp, 0) if activation == "relu" else np.tanh(inp)
    d_pre = rng.normal(size=(n, o)).astype(np.float32)
    dW, db = rng.normal(size=(i, o)).astype(np.float32), rng.normal(size=o).astype(np.float32)
    cpu = k.dense_backward(d_pre, inp, W, dW, db, hidden)
    for a, b_ in zip(cpu, k.dense_backward_cuda(d_pre, inp, W, dW, db, hidden)):
        close(b_, a, SUMS)
    # the derivative is applied (or not) on both: d_inp vanishes where relu's output is 0
    if hidden and activation == "relu":
        assert (cpu[0][inp == 0] == 0).all() and (cpu[0][inp > 0] != 0).mean() > 0.9


@gpu
@pytest.mark.parametrize("uniform", [False, True])
def test_fill_noise_matches_cpu(uniform):
    _, _, k = engines(CONFIGS[0], n_components=7)
    keys = np.random.default_rng(0).integers(0, 2**63, size=301, dtype=np.uint64)
    cpu, dev = k.fill_noise(keys, 3, uniform), k.fill_noise_cuda(keys, 3, uniform)
    np.testing.assert_array_max_ulp(dev, cpu, maxulp=1)


@gpu
def test_row_keys_match_cpu():
    _, _, k = engines(CONFIGS[1])
    X = small_data(50).astype(np.float32)
    X[3, 2] = np.nan
    np.testing.assert_array_equal(k.row_keys_cuda(X, 12345), k.row_keys(X, 12345))


def assert_twins_match(k, calls, tol):
    """Each CPU kernel of `calls`, (name, args) pairs, against its `_cuda` twin on the same inputs."""
    as_tuple = lambda r: r if isinstance(r, tuple) else (r,)  # noqa: E731
    for name, args in calls:
        for cpu, dev in zip(as_tuple(getattr(k, name)(*args)), as_tuple(getattr(k, name + "_cuda")(*args))):
            assert dev.shape == cpu.shape, name
            close(dev, cpu, tol)


@gpu
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_posterior_kernels_match_cpu(config):
    _, _, k = engines(config)
    rng = np.random.default_rng(2)
    n, s, z = 37, 3, Z
    _, _, noise = batch(config, n=n, s=s)
    head = rng.normal(scale=0.7, size=(n, 2 * z)).astype(np.float32)
    eps, zz = k.reparameterize_forward(head, noise)
    dz = rng.normal(size=(s, n, z)).astype(np.float32)
    recon, kl = rng.normal(size=s * n) * 10, rng.normal(size=s * n)
    assert_twins_match(k, [("reparameterize_forward", (head, noise)), ("reparameterize_backward", (dz, head, eps)),
                           ("kl_analytic_forward", (head,)), ("kl_analytic_backward", (head,)),
                           ("kl_mc_forward", (head, eps, zz)), ("kl_mc_backward", (zz, dz)),
                           ("score_function_backward", (head, eps, recon, kl, 1.5))], ELEMENTWISE)


@gpu
def test_logvar_clamp_kernels_match_cpu():
    _, _, k = engines(CONFIGS[0])
    head = np.random.default_rng(3).normal(scale=20, size=(41, 2 * Z)).astype(np.float32)
    head[0, Z:] = [1e3, np.nan]
    head[1, Z:] = [-30, 30]  # on the bound: the clamp holds there too
    clamped = k.logvar_clamp_forward(head)
    assert (np.abs(clamped[:, Z:][~np.isnan(clamped[:, Z:])]) <= 30).all() and np.isnan(clamped[0, Z + 1])
    np.testing.assert_array_equal(k.logvar_clamp_forward_cuda(head), clamped)
    d_head = np.ones_like(head)
    passed = k.logvar_clamp_backward(d_head, clamped)
    assert (passed[:, :Z] == 1).all() and (passed[1, Z:] == 0).all() and 0 < (passed[:, Z:] == 0).mean() < 1
    np.testing.assert_array_equal(k.logvar_clamp_backward_cuda(d_head, clamped), passed)


@gpu
@pytest.mark.parametrize("config", CONFIGS + [dict(CONFIGS[0], likelihood="continuous_bernoulli")],
                         ids=IDS + ["continuous_bernoulli"])
def test_likelihood_kernels_match_cpu(config):
    _, _, k = engines(config)
    rng = np.random.default_rng(2)
    n, s, d = 37, 3, D
    x, _, _ = batch(dict(config, likelihood="bernoulli") if "bernoulli" in config["likelihood"] else config, n=n, s=s)
    model = _core.Model32(n_features=d, n_components=Z, hidden_layer_sizes=[4, 3], n_mc_samples=s, beta=0.7,
                          n_threads=1, **config)
    params = params_for(model)
    out = rng.normal(size=(s * n, d)).astype(np.float32)
    assert_twins_match(k, [("likelihood_forward", (params, out, x)), ("likelihood_backward", (params, out, x, 0.1)),
                           ("likelihood_forward_backward", (params, out, x, 0.1))], SUMS)


@gpu
def test_adam_update_matches_cpu():
    cpu_model, _, k = engines(CONFIGS[1])
    rng = np.random.default_rng(3)
    params = params_for(cpu_model)
    m, v = np.zeros_like(params), np.zeros_like(params)
    adam = _core.AdamSettings(learning_rate=1e-2, alpha=0.1)
    for step in range(1, 4):
        grad = rng.normal(size=params.shape).astype(np.float32)
        p_cpu, m_cpu, v_cpu = k.adam_update(params, grad, m, v, step, adam)
        p_dev, m_dev, v_dev = k.adam_update_cuda(params, grad, m, v, step, adam)
        for cpu, dev in [(p_cpu, p_dev), (m_cpu, m_dev), (v_cpu, v_dev)]:
            close(dev, cpu, ELEMENTWISE)
        params, m, v = p_cpu, m_cpu, v_cpu


@gpu
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_loss_and_grad_matches_cpu(config):
    cpu, dev, _ = engines(config)
    x, x_enc, noise = batch(config)
    params = params_for(cpu)
    a = cpu.loss_and_grad(params, x, x_enc, noise, 0.3)
    b = dev.loss_and_grad(params, x, x_enc, noise, 0.3)
    assert set(a) == set(b)
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
    np.testing.assert_allclose(b["grad"], a["grad"], rtol=1e-3, atol=1e-5)
    for key in ("recon", "kl_draws", "kl_analytic"):
        if key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b["mean_signal"], a["mean_signal"], rtol=1e-5)


@gpu
@pytest.mark.parametrize("config", CONFIGS[:3], ids=IDS[:3])
def test_gradient_on_device_matches_finite_differences(config):
    """Directional derivatives of the device's float32 loss, by central
    differences along random unit directions, against the device's gradient."""
    if config["gradient_estimator"] == "score_function":
        pytest.skip("the score-function gradient is an estimator, not the loss's derivative")
    cpu, dev, _ = engines(config)
    x, x_enc, noise = batch(config)
    params = params_for(cpu).astype(np.float64)
    grad = dev.loss_and_grad(params.astype(np.float32), x, x_enc, noise)["grad"].astype(np.float64)
    rng = np.random.default_rng(4)
    h = 1e-2
    for _ in range(5):
        u = rng.normal(size=params.shape)
        u /= np.linalg.norm(u)
        up = dev.loss_and_grad((params + h * u).astype(np.float32), x, x_enc, noise)["loss"]
        down = dev.loss_and_grad((params - h * u).astype(np.float32), x, x_enc, noise)["loss"]
        numeric = (up - down) / (2 * h)
        assert abs(numeric - grad @ u) < 2e-2 * max(1.0, np.linalg.norm(grad)), (numeric, grad @ u)


@gpu
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_train_epoch_follows_the_cpu(config):
    """One epoch from the same state: the same shuffle and noise, so the same
    trajectory up to float32 rounding."""
    cpu, dev, _ = engines(config, hidden=(8,))
    X = small_data(203, seed=5)
    if config["likelihood"] == "bernoulli":
        X = 1 / (1 + np.exp(-X))
    if config["missing"]:
        X[::7, 1] = np.nan
    X = X.astype(np.float32)
    rows = np.arange(len(X), dtype=np.int64)
    results = []
    for engine in (cpu, dev):
        params = engine.init_params(7)
        m, v = np.zeros_like(params), np.zeros_like(params)
        out = engine.train_epoch(params, m, v, 0, 0.0, X, rows, 32, 99, _core.AdamSettings(learning_rate=1e-3, alpha=0.01))
        results.append((out, params))
    (a, pa), (b, pb) = results
    assert set(a) == set(b) and a["step"] == b["step"] and a["n_rows"] == b["n_rows"] and b["finite"]
    np.testing.assert_allclose(b["elbo"], a["elbo"], rtol=1e-3)
    # Adam moves every parameter by about the learning rate whatever its gradient's
    # size, so a gradient that is ~0 up to rounding may step either way: a few
    # parameters may differ by up to 2 * lr per step; nearly all must agree.
    assert np.mean(~np.isclose(pb, pa, rtol=1e-3, atol=1e-5)) < 0.01
    assert np.abs(pb - pa).max() <= 2 * 1e-3 * a["step"] + 1e-5


@gpu
def test_device_runs_repeat_bit_for_bit_with_and_without_graphs():
    config = CONFIGS[1]
    X = small_data(500, seed=6).astype(np.float32)
    rows = np.arange(len(X), dtype=np.int64)
    runs = []
    for graphs in (True, True, False):
        _, dev, _ = engines(config, hidden=(16,))
        dev.use_graphs = graphs
        params = dev.init_params(3)
        m, v = np.zeros_like(params), np.zeros_like(params)
        step = 0
        for _ in range(3):
            step = dev.train_epoch(params, m, v, step, 0.0, X, rows, 64, 5, ADAM)["step"]
        runs.append(params)
        assert dev.graph_in_use == graphs
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


@gpu
def test_data_changed_in_place_is_uploaded_again():
    config = CONFIGS[1]
    cpu, dev, _ = engines(config, hidden=(8,))
    X = small_data(100, seed=8).astype(np.float32)
    rows = np.arange(len(X), dtype=np.int64)
    p = dev.init_params(1)
    dev.train_epoch(p.copy(), np.zeros_like(p), np.zeros_like(p), 0, 0.0, X, rows, 50, 1, ADAM)
    X[:] = X[::-1] * 2  # same array, new contents
    results = []
    for engine in (cpu, dev):
        q = p.copy()
        results.append(engine.train_epoch(q, np.zeros_like(q), np.zeros_like(q), 0, 0.0, X, rows, 50, 1, ADAM)["elbo"])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-4)


@gpu
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_inference_matches_cpu(config):
    cpu, dev, _ = engines(config, hidden=(8,))
    X = small_data(300, seed=9)
    if config["likelihood"] == "bernoulli":
        X = 1 / (1 + np.exp(-X))
    if config["missing"]:
        X[::5, 2] = np.nan
    X = X.astype(np.float32)
    params = params_for(cpu)
    for a, b in zip(cpu.encode(params, X), dev.encode(params, X)):
        close(b, a, SUMS)
    z = cpu.sample_prior(300, 11)
    np.testing.assert_array_max_ulp(dev.sample_prior(300, 11), z, maxulp=1)
    close(dev.decode(params, z), cpu.decode(params, z), SUMS)
    close(dev.sample_posterior(params, X, 3, 13), cpu.sample_posterior(params, X, 3, 13), SUMS)
    for K, importance in [(1, False), (7, True)]:
        close(dev.score(params, X, K, importance, 17), cpu.score(params, X, K, importance, 17), SUMS)
    a, b = cpu.sample_observations(params, z, 19), dev.sample_observations(params, z, 19)
    if config["likelihood"] == "bernoulli":
        assert np.mean(a != b) < 0.01  # draws that sit on the rounding edge may flip
    else:
        close(b, a, SUMS)


@gpu
def test_gpu_fit_reaches_the_cpu_fit_held_out_elbo():
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    X_train, X_test = X[:1500], X[1500:]
    kwargs = dict(n_components=8, hidden_layer_sizes=(64,), likelihood="bernoulli", max_iter=30, tol=0.0,
                  random_state=0)
    cpu = VAE(**kwargs).fit(X_train)
    dev = VAE(device="cuda", **kwargs).fit(X_train)
    np.testing.assert_allclose(dev.loss_curve_[0], cpu.loss_curve_[0], rtol=1e-3)
    a, b = cpu.score(X_test), dev.score(X_test)
    assert abs(a - b) < 0.02 * abs(a), (a, b)
    # The parameters are host arrays: the GPU-trained model runs on the CPU.
    clone = pickle.loads(pickle.dumps(dev)).set_params(device="cpu")
    np.testing.assert_allclose(clone.transform(X_test), dev.transform(X_test), rtol=1e-4, atol=1e-5)


@gpu
@pytest.mark.parametrize("likelihood,kl,estimator", list(
    itertools.product(["gaussian", "bernoulli"], ["analytic", "mc"], ["reparameterization", "score_function"])))
def test_vae_fits_on_device(likelihood, kl, estimator):
    X = small_data(300, seed=10)
    if likelihood == "bernoulli":
        X = 1 / (1 + np.exp(-X))
    vae = VAE(device="cuda", hidden_layer_sizes=(16,), likelihood=likelihood, kl=kl, gradient_estimator=estimator,
              max_iter=5, early_stopping=True, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.fit(X)
    assert np.isfinite(vae.score(X)) and len(vae.loss_curve_) >= 1


# ---------------------------------------------------------------- defects found by reading (issue 15)


def test_cuda_with_comm_is_refused_before_any_state_change():
    """The CUDA engine runs whole epochs on the device: it has no per-step
    Allreduce, so fit(comm=...) with device='cuda' is refused, clearly, on
    every machine (with or without a GPU), before anything changes."""
    MPI = pytest.importorskip("mpi4py.MPI")
    vae = VAE(device="cuda", hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    before = dict(vae.__dict__)
    with pytest.raises(ValueError, match="comm=.*CPU engine only"):
        vae.fit(small_data(), comm=MPI.COMM_SELF)
    assert vae.__dict__ == before


def test_engines_refuse_options_they_do_not_take():
    """One binding template serves both engines; an option only one engine has
    is refused by name by the other (the CPU engine has no device)."""
    kwargs = dict(n_features=D, n_components=Z, hidden_layer_sizes=[4], activation="relu", likelihood="gaussian",
                  kl="analytic", posterior="gaussian", gradient_estimator="reparameterization", n_mc_samples=1,
                  beta=1.0, missing=False)
    with pytest.raises(TypeError, match="CPU engine takes no option 'device'"):
        _core.Model32(device=0, **kwargs)
    try:
        from pyvae import _cuda_core
    except ImportError:
        return  # built without the CUDA engine
    with pytest.raises(TypeError, match="CUDA engine takes no option 'colour'"):
        _cuda_core.ModelCuda(colour="red", **kwargs)


@gpu
def test_device_engine_refuses_data_parallel_epochs():
    _, dev, _ = engines(CONFIGS[1], hidden=(8,))
    X = small_data(64).astype(np.float32)
    params = dev.init_params(0)
    m, v = np.zeros_like(params), np.zeros_like(params)
    with pytest.raises(ValueError, match="data-parallel"):
        dev.train_epoch(params, m, v, 0, 0.0, X, np.arange(64), 16, 1, ADAM,
                        allreduce=lambda buffer: None, first_row=0)


@gpu
def test_device_engine_refuses_to_train_on_the_iwae_bound_but_scores_such_a_model():
    from pyvae import _cuda_core

    kwargs = dict(CONFIGS[1], objective="iwae", n_features=D, n_components=Z, hidden_layer_sizes=[8],
                  n_mc_samples=3, beta=1.0)
    cpu, dev = _core.Model32(n_threads=1, **kwargs), _cuda_core.ModelCuda(**kwargs)
    X = small_data(64).astype(np.float32)
    params = cpu.init_params(0)
    m, v = np.zeros_like(params), np.zeros_like(params)
    with pytest.raises(ValueError, match="ELBO only.*objective='iwae'"):
        dev.train_epoch(params, m, v, 0, 0.0, X, np.arange(64), 16, 1, ADAM)
    with pytest.raises(ValueError, match="ELBO only"):
        dev.loss_and_grad(params, X[:N], X[:N], np.zeros((3, N, Z), np.float32))
    close(dev.score(params, X, 5, True, 7), cpu.score(params, X, 5, True, 7), SUMS)


@gpu
def test_row_keys_cover_chunks_of_many_rows():
    """Every row of a chunk gets its key (the kernel's grid once assumed 256
    threads per block but launched 128, leaving rows without one)."""
    _, _, k = engines(CONFIGS[0])
    X = small_data(1000, seed=14).astype(np.float32)
    np.testing.assert_array_equal(k.row_keys_cuda(X, 7), k.row_keys(X, 7))


@gpu
def test_scores_of_many_rows_match_cpu():
    """score, score_samples and sample_posterior over a chunk of more than 128 rows."""
    cpu, dev, _ = engines(CONFIGS[1], hidden=(8,))
    X = small_data(700, seed=15).astype(np.float32)
    X[::9, 1] = np.nan
    params = params_for(cpu)
    close(dev.score(params, X, 1, False, 3), cpu.score(params, X, 1, False, 3), SUMS)
    close(dev.score(params, X, 5, True, 3), cpu.score(params, X, 5, True, 3), SUMS)
    close(dev.sample_posterior(params, X, 2, 4), cpu.sample_posterior(params, X, 2, 4), SUMS)


@gpu
def test_logvar_clamp_on_device_matches_cpu():
    """The encoder's log-variance clamp (its launch is checked): values past
    the bound are clamped as on the CPU, and a NaN stays NaN on both."""
    cpu, dev, _ = engines(CONFIGS[0], hidden=())
    params = params_for(cpu)
    layout = {name: (offset, shape) for name, offset, shape in cpu.layout()}
    offset, _ = layout["encoder.0.bias"]
    params[offset + Z:offset + 2 * Z] = [1e3, np.nan]  # the head's logvar half: (Z,) = (2,)
    X = small_data(300, seed=16).astype(np.float32)
    X = 1 / (1 + np.exp(-X))
    (mu_cpu, lv_cpu), (mu_dev, lv_dev) = cpu.encode(params, X), dev.encode(params, X)
    assert (lv_cpu[:, 0] <= 30).all() and np.isnan(lv_cpu[:, 1]).all()
    np.testing.assert_array_equal(np.isnan(lv_dev), np.isnan(lv_cpu))
    close(lv_dev[:, 0], lv_cpu[:, 0], SUMS)
    close(mu_dev, mu_cpu, SUMS)


@gpu
def test_constructor_that_fails_part_way_releases_its_handles():
    """A model too large for the device fails after its stream and cuBLAS
    handle exist; both must be released all the same."""
    from pyvae import _cuda_core

    before = _cuda_core.live_handles()
    kwargs = dict(CONFIGS[0], n_features=1 << 20, n_components=2, hidden_layer_sizes=[1 << 20],
                  n_mc_samples=1, beta=1.0)
    for _ in range(3):
        with pytest.raises(RuntimeError, match="CUDA error"):
            _cuda_core.ModelCuda(**kwargs)
        assert _cuda_core.live_handles() == before
    model = _cuda_core.ModelCuda(**dict(kwargs, n_features=D, hidden_layer_sizes=[4]))
    assert _cuda_core.live_handles() == before + 2
    del model
    assert _cuda_core.live_handles() == before


@gpu
def test_ctrl_c_during_a_device_epoch_raises_keyboard_interrupt():
    """An interrupted epoch raises KeyboardInterrupt (not pybind11's complaint
    about an error_already_set with no error), and the parameters written back
    are those of the steps that ran."""
    import signal
    import threading
    import time

    _, dev, _ = engines(CONFIGS[1], hidden=(8,))
    X = small_data(200_000, seed=17).astype(np.float32)  # batch_size=1: a long epoch
    rows = np.arange(len(X), dtype=np.int64)
    params = dev.init_params(1)
    start = params.copy()
    m, v = np.zeros_like(params), np.zeros_like(params)
    dev.bind_data(X)
    main = threading.main_thread().ident

    def interrupt():
        time.sleep(0.5)
        signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            dev.train_epoch(params, m, v, 0, 0.0, X, rows, 1, 5, ADAM)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert np.isfinite(params).all() and not np.array_equal(params, start)
