"""The hand-derived backward pass against central finite differences (float64),
and the forward pass against an independent NumPy reference."""

import itertools

import numpy as np
import pytest

from pyvae import _core
from reference import forward

D, Z, N, S = 5, 2, 3, 2


def make_model(likelihood="bernoulli", kl="analytic", activation="tanh", posterior="gaussian",
               estimator="reparameterization", hidden=(4, 3), missing=False, beta=1.0, dtype=np.float64,
               n_mc_samples=S, variance_floor=0.0):
    cls = _core.Model64 if dtype == np.float64 else _core.Model32
    return cls(n_features=D, n_components=Z, hidden_layer_sizes=list(hidden), activation=activation,
               likelihood=likelihood, kl=kl, posterior=posterior, gradient_estimator=estimator,
               n_mc_samples=n_mc_samples, beta=beta, missing=missing,
               variance_floor=variance_floor, n_threads=1)


def make_batch(likelihood, posterior="gaussian", seed=0, missing=False):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(N, D)) if "bernoulli" in likelihood else rng.normal(size=(N, D))
    if missing:
        x[0, 1] = x[2, 3] = np.nan
    x_enc = np.nan_to_num(x, nan=0.0)
    noise = rng.uniform(0.02, 0.98, size=(S, N, Z)) if posterior != "gaussian" else rng.normal(size=(S, N, Z))
    return x, x_enc, noise


def random_params(model, seed=1):
    params = model.init_params(seed) * 1.5
    rng = np.random.default_rng(seed)
    for name, offset, shape in model.layout():
        if name.endswith("noise_logvar"):
            params[offset:offset + shape[0]] = rng.normal(scale=0.3, size=shape)
    return params


def finite_difference_check(model, params, x, x_enc, noise, h=1e-6):
    grad = model.loss_and_grad(params, x, x_enc, noise)["grad"]
    numeric = np.empty_like(grad)
    for k in range(params.size):
        p = params.copy()
        p[k] += h
        up = model.loss_and_grad(p, x, x_enc, noise)["loss"]
        p[k] -= 2 * h
        down = model.loss_and_grad(p, x, x_enc, noise)["loss"]
        numeric[k] = (up - down) / (2 * h)
    errors = {}
    for name, offset, shape in model.layout():
        sl = slice(offset, offset + int(np.prod(shape)))
        scale = max(np.abs(grad[sl]).max(), np.abs(numeric[sl]).max(), 1e-12)
        errors[name] = np.abs(grad[sl] - numeric[sl]).max() / scale
    return errors


LIKELIHOODS = ["bernoulli", "continuous_bernoulli", "gaussian", "gaussian_isotropic", "gaussian_heteroscedastic"]
CASES = list(itertools.product(LIKELIHOODS, ["analytic", "mc"], ["relu", "tanh"]))


@pytest.mark.parametrize("likelihood,kl,activation", CASES)
def test_gradient_matches_finite_differences(likelihood, kl, activation):
    model = make_model(likelihood, kl, activation)
    x, x_enc, noise = make_batch(likelihood)
    errors = finite_difference_check(model, random_params(model), x, x_enc, noise)
    assert len(errors) == len(model.layout())
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: relative error {errors[worst]:.2e}"


def sparse_batch(likelihood, seed=0):
    """A batch mostly of zeros: the encoder's first layer then runs from the
    nonzeros (csrc/cpu/sparse_input.h) instead of the dense product."""
    x, x_enc, noise = make_batch(likelihood, seed=seed)
    keep = np.zeros((N, D), bool)
    keep[0, 1] = keep[2, [0, 3]] = True  # 3 of 15 entries; row 1 all zeros
    x = np.where(keep, x, 0.0)
    assert _core._kernels.sparse_input_used(x.astype(np.float32))
    return x, x.copy(), noise


@pytest.mark.parametrize("likelihood,activation", [("bernoulli", "relu"), ("bernoulli", "tanh"), ("gaussian", "tanh")])
@pytest.mark.parametrize("hidden", [(4, 3), ()], ids=["hidden", "linear"])
def test_gradient_with_sparse_input(likelihood, activation, hidden):
    model = make_model(likelihood, "analytic", activation, hidden=hidden)
    x, x_enc, noise = sparse_batch(likelihood)
    errors = finite_difference_check(model, random_params(model), x, x_enc, noise)
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{worst}: relative error {errors[worst]:.2e}"


def test_sparse_input_float32_matches_float64():
    x, x_enc, noise = sparse_batch("bernoulli")
    m64, m32 = make_model(activation="relu"), make_model(activation="relu", dtype=np.float32)
    params = random_params(m64)
    r64 = m64.loss_and_grad(params, x, x_enc, noise)
    r32 = m32.loss_and_grad(params.astype(np.float32), *(a.astype(np.float32) for a in (x, x_enc, noise)))
    np.testing.assert_allclose(r32["loss"], r64["loss"], rtol=1e-5)
    np.testing.assert_allclose(r32["grad"], r64["grad"], rtol=1e-4, atol=1e-5 * np.abs(r64["grad"]).max())


@pytest.mark.parametrize("posterior", ["logistic", "laplace"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_gradient_for_inverse_cdf_posteriors(posterior, likelihood):
    model = make_model(likelihood, "mc", "tanh", posterior=posterior)
    x, x_enc, noise = make_batch(likelihood, posterior)
    errors = finite_difference_check(model, random_params(model), x, x_enc, noise)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("hidden", [(), (6,)])
@pytest.mark.parametrize("kl", ["analytic", "mc"])
@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_heteroscedastic"])
def test_gradient_with_beta_missing_entries_and_other_depths(hidden, kl, likelihood):
    # (heteroscedastic: a missing entry drops both of its outputs, the mean and the log-variance)
    model = make_model(likelihood, kl, "relu", hidden=hidden, missing=True, beta=0.3)
    x, x_enc, noise = make_batch(likelihood, missing=True)
    errors = finite_difference_check(model, random_params(model), x, x_enc, noise)
    assert max(errors.values()) < 1e-6, errors


def test_heteroscedastic_clamped_logvar_passes_no_gradient():
    # Feature 0's log-variance output pushed past +30 (feature 1's past -30) for every
    # row: the clamp holds there, so its bias gets no gradient, and the loss is flat
    # along it (the finite differences agree); the other outputs' gradients stand.
    model = make_model("gaussian_heteroscedastic", "analytic", "tanh", variance_floor=0.5)
    x, x_enc, noise = make_batch("gaussian_heteroscedastic")
    params = random_params(model)
    name, offset, shape = model.layout()[-1]
    assert name.endswith(".bias") and shape == (2 * D,)
    params[offset + D] += 60.0
    params[offset + D + 1] -= 60.0
    grad = model.loss_and_grad(params, x, x_enc, noise)["grad"]
    assert grad[offset + D] == 0 and grad[offset + D + 1] == 0 and np.all(grad[offset + D + 2:offset + 2 * D] != 0)
    errors = finite_difference_check(model, params, x, x_enc, noise)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("likelihood,kl,activation", CASES)
@pytest.mark.parametrize("posterior", ["gaussian", "logistic"])
def test_forward_matches_numpy_reference(likelihood, kl, activation, posterior):
    if posterior != "gaussian" and kl == "analytic":
        pytest.skip("the analytic KL exists for the Gaussian posterior only")
    model = make_model(likelihood, kl, activation, posterior=posterior, beta=0.7)
    x, x_enc, noise = make_batch(likelihood, posterior)
    params = random_params(model)
    got = model.loss_and_grad(params, x, x_enc, noise)
    loss, recon, kl_draws, kl_analytic = forward(model, params, x, x_enc, noise, activation=activation,
                                                 likelihood=likelihood, kl=kl, posterior=posterior, beta=0.7)
    np.testing.assert_allclose(got["loss"], loss, rtol=1e-10)
    np.testing.assert_allclose(got["recon"], recon, rtol=1e-10)
    np.testing.assert_allclose(got["kl_draws"], kl_draws, rtol=1e-10, atol=1e-12)
    if kl == "analytic":
        np.testing.assert_allclose(got["kl_analytic"], kl_analytic, rtol=1e-10)


def test_float32_core_matches_float64_core():
    m64, m32 = make_model("gaussian", "mc", "relu"), make_model("gaussian", "mc", "relu", dtype=np.float32)
    x, x_enc, noise = make_batch("gaussian")
    params = random_params(m64)
    a = m64.loss_and_grad(params, x, x_enc, noise)
    b = m32.loss_and_grad(params.astype(np.float32), x.astype(np.float32), x_enc.astype(np.float32),
                          noise.astype(np.float32))
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
    np.testing.assert_allclose(b["grad"], a["grad"], rtol=1e-3, atol=1e-5)


def test_adam_update_matches_numpy_reference():
    model = make_model("gaussian", "analytic", "relu")
    params = random_params(model)
    rng = np.random.default_rng(3)
    m, v = np.zeros_like(params), np.zeros_like(params)
    ref_p, ref_m, ref_v = params.copy(), m.copy(), v.copy()
    decay = np.zeros_like(params)
    for name, offset, shape in model.layout():
        if name.endswith(".weight"):
            decay[offset:offset + int(np.prod(shape))] = 1.0
    lr, b1, b2, eps, alpha = 1e-2, 0.8, 0.99, 1e-6, 0.1  # each unlike AdamSettings' default, so each must arrive
    adam = _core.AdamSettings(learning_rate=lr, beta1=b1, beta2=b2, epsilon=eps, alpha=alpha)
    for step in range(1, 4):
        grad = rng.normal(size=params.shape)
        model.adam_update(params, grad, m, v, step, adam)
        g = grad + alpha * decay * ref_p
        ref_m = b1 * ref_m + (1 - b1) * g
        ref_v = b2 * ref_v + (1 - b2) * g * g
        denom = np.sqrt(ref_v) / np.sqrt(1 - b2**step) + eps
        ref_p = ref_p - lr / (1 - b1**step) * ref_m / denom
    np.testing.assert_allclose(params, ref_p, rtol=1e-12, atol=1e-14)


def test_monte_carlo_kl_agrees_with_closed_form():
    """The mean of log q(z|x) - log p(z) over many draws is the analytic KL,
    within 4 standard errors."""
    model = make_model("gaussian", "analytic", "tanh", n_mc_samples=1)
    params = random_params(model, seed=5)
    rng = np.random.default_rng(7)
    n_draws = 20000
    x = np.repeat(rng.normal(size=(1, D)), n_draws, axis=0)
    out = model.loss_and_grad(params, x, x, rng.normal(size=(1, n_draws, Z)))
    draws, exact = out["kl_draws"].ravel(), out["kl_analytic"][0]
    assert np.allclose(out["kl_analytic"], exact)
    standard_error = draws.std(ddof=1) / np.sqrt(n_draws)
    assert abs(draws.mean() - exact) < 4 * standard_error, (draws.mean(), exact, standard_error)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_isotropic", "gaussian_heteroscedastic"])
def test_gradient_with_variance_floor(likelihood):
    # A floor comparable to the learned variances, so both parts of var = floor + exp(lv) matter.
    model = make_model(likelihood, "analytic", "tanh", variance_floor=0.7)
    x, x_enc, noise = make_batch(likelihood)
    errors = finite_difference_check(model, random_params(model), x, x_enc, noise)
    assert max(errors.values()) < 1e-6, errors


def test_continuous_bernoulli_gradient_near_half():
    # Logits near 0 (lambda near 1/2), where the normalizer switches to its series.
    model = make_model("continuous_bernoulli", "analytic", "tanh")
    x, x_enc, noise = make_batch("continuous_bernoulli")
    params = random_params(model) * 0.2
    errors = finite_difference_check(model, params, x, x_enc, noise)
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_isotropic", "gaussian_heteroscedastic"])
def test_forward_with_variance_floor_matches_numpy_reference(likelihood):
    model = make_model(likelihood, "mc", "relu", variance_floor=0.25)
    x, x_enc, noise = make_batch(likelihood)
    params = random_params(model)
    got = model.loss_and_grad(params, x, x_enc, noise)
    loss, recon, _, _ = forward(model, params, x, x_enc, noise, activation="relu", likelihood=likelihood, kl="mc",
                                variance_floor=0.25)
    np.testing.assert_allclose(got["recon"], recon, rtol=1e-10)
    np.testing.assert_allclose(got["loss"], loss, rtol=1e-10)
