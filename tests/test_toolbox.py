"""The tutorial's toolbox: both gradient estimators, both reparameterization
designs, importance-weighted bounds, beta, missing data and active units.
Linear-Gaussian references live in test_linear_gaussian.py; the MNIST loader's
tests in test_datasets.py."""

import warnings

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.datasets import load_digits

from pyvae import VAE, _core, gradient_variance
from reference import forward

# Every fit runs single-threaded: the machine is shared, and results are
# bit-identical whatever the thread count anyway.
# The settings before issue 12 (fixed step size, 128-row batches, no held-out rows):
# these tests compare estimators and posteriors on short fits of that kind.
FAST = dict(n_threads=1, random_state=0, learning_rate=1e-3, batch_size=128, early_stopping=False, learning_rate_schedule="constant", n_iter_no_change=10)


@pytest.fixture(scope="module")
def digits():
    X = load_digits().data / 16.0
    return X[:1500], X[1500:]


@pytest.fixture(scope="module")
def correlated():
    """Gaussian data with two latent factors in eight features."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(8, 2))
    return rng.normal(size=(2000, 2)) @ W.T + 0.3 * rng.normal(size=(2000, 8))


def fit_quietly(vae, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the short fits are deliberate
        return vae.fit(X)


# --------------------------------------------------------------------------
# Regression: float32 uniform noise must stay inside (0, 1)
# --------------------------------------------------------------------------

_M = (1 << 64) - 1
_C0, _C1, _C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix64(z):  # csrc/model/rng.h
    z = (z + _C0) & _M
    z = ((z ^ (z >> 30)) * _C1) & _M
    z = ((z ^ (z >> 27)) * _C2) & _M
    return z ^ (z >> 31)


def _unmix64(y):  # the inverse bijection: undo each xor-shift and multiply
    def unshift(y, s):
        x = y
        for _ in range(64 // s + 1):
            x = y ^ (x >> s)
        return x

    z = (unshift(y, 31) * pow(_C2, -1, 1 << 64)) & _M
    z = (unshift(z, 27) * pow(_C1, -1, 1 << 64)) & _M
    return (unshift(z, 30) - _C0) & _M


@pytest.mark.parametrize("posterior", ["logistic", "laplace"])
def test_float32_uniform_noise_never_reaches_one(posterior):
    """A seed whose first training draw has all 64 random bits set: the double
    uniform is 1 - 2^-54, which rounds to 1.0f; the inverse CDF of 1 is +inf and
    training used to stop as 'diverged'."""
    assert all(_unmix64(_mix64(k)) == k for k in (0, 1, _M, 0x1234567890ABCDEF))
    key = _unmix64(_M) ^ _mix64(0)  # standard_uniform(key, 0) = uniform_open(2^64 - 1)
    step_key = _unmix64(key) ^ _mix64(0)  # key = combine_keys(step_key, row 0)
    seed = _unmix64(step_key) ^ _mix64(0)  # step_key = combine_keys(seed, step 0)
    engine = _core.Model32(n_features=3, n_components=2, hidden_layer_sizes=[4], activation="tanh",
                           likelihood="gaussian", kl="mc", posterior=posterior,
                           gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False,
                           n_threads=1)
    params = engine.init_params(1)
    m, v = np.zeros_like(params), np.zeros_like(params)
    X = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    out = engine.train_epoch(params, m, v, 0, 0.0, X, np.arange(8), 8, seed,
                             _core.AdamSettings(learning_rate=1e-3))
    assert out["finite"] and np.isfinite(params).all()


# --------------------------------------------------------------------------
# Gradient estimators
# --------------------------------------------------------------------------

def _encoder_slice(g):
    last = [name for name, _, _ in g.layout if name.startswith("encoder.")][-1]
    return slice(0, g.tensors[last].stop)


@pytest.mark.parametrize("posterior,kl,beta", [("gaussian", "analytic", 1.0), ("gaussian", "mc", 0.7),
                                               ("logistic", "mc", 1.0), ("laplace", "mc", 1.0)])
def test_both_estimators_are_unbiased_for_the_same_gradient(posterior, kl, beta):
    """Per-parameter z-test of mean(reparameterization) - mean(score function)
    over the encoder's parameters, Bonferroni-corrected at a family-wise 1e-3
    (the score-function draws are heavy-tailed, so the level is conservative).
    The same test must reject a 20 % bias, or it would prove nothing.

    Seeds: the inverse-CDF posteriors map u near 0 or 1 to e ~ log u, and the
    score-function term grows like e^3 in the log-variance parameters, so one
    draw in ~10^4 can shift a 10^4-draw mean by several standard errors (with
    seed 2 it does, for logistic and Laplace alike: max |z| = 5.0). Over 6
    other seed pairs (logistic) max |z| stayed below 3.3, and at 10^5 draws
    it is below 3 for both, so there is no bias: the seeds are fixed."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    vae = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(6,), kl=kl, posterior=posterior, beta=beta,
                          max_iter=20, **FAST), X)
    n = 10000
    a = gradient_variance(vae, X[:16], estimator="reparameterization", n_draws=n, random_state=3)
    b = gradient_variance(vae, X[:16], estimator="score_function", n_draws=n, random_state=4)
    enc = _encoder_slice(a)
    se = np.sqrt((a.var[enc] + b.var[enc]) / n)
    critical = norm.isf(1e-3 / 2 / se.size)
    z = (a.mean[enc] - b.mean[enc]) / se
    assert np.abs(z).max() < critical, (np.abs(z).max(), critical)
    z_biased = (a.mean[enc] - 0.8 * b.mean[enc]) / se
    assert np.abs(z_biased).max() > critical


def test_decoder_gradient_does_not_depend_on_the_estimator():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    vae = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(5,), max_iter=3, **FAST), X)
    a = gradient_variance(vae, X[:10], estimator="reparameterization", n_draws=20, random_state=3)
    b = gradient_variance(vae, X[:10], estimator="score_function", n_draws=20, random_state=3)
    dec = slice(_encoder_slice(a).stop, None)
    np.testing.assert_allclose(a.mean[dec], b.mean[dec], rtol=1e-12)
    np.testing.assert_allclose(a.var[dec], b.var[dec], rtol=1e-10)
    assert not np.allclose(a.var[_encoder_slice(a)], b.var[_encoder_slice(a)])


def test_reparameterization_has_lower_variance_on_digits(digits):
    """The tutorial's argument, measured: at a fitted digits model the pathwise
    estimator's per-parameter variance of the encoder gradient is far below the
    score-function estimator's (with its running-mean baseline)."""
    X, _ = digits
    vae = fit_quietly(VAE(n_components=8, hidden_layer_sizes=(64,), likelihood="bernoulli", max_iter=30, **FAST), X)
    a = gradient_variance(vae, X[:64], estimator="reparameterization", n_draws=100, random_state=0)
    b = gradient_variance(vae, X[:64], estimator="score_function", n_draws=100, random_state=0)
    enc = _encoder_slice(a)
    assert np.median(a.var[enc]) * 2 < np.median(b.var[enc])
    assert a.var[enc].mean() * 2 < b.var[enc].mean()


def test_score_function_estimator_trains(digits):
    """Noisier, but it climbs: the score-function fit ends well above its
    starting point, and below the reparameterization fit of the same length."""
    X, X_test = digits
    common = dict(n_components=8, hidden_layer_sizes=(64,), likelihood="bernoulli", max_iter=30, **FAST)
    start = fit_quietly(VAE(gradient_estimator="score_function", **dict(common, max_iter=1)), X).score(X_test)
    sf = fit_quietly(VAE(gradient_estimator="score_function", **common), X)
    rep = fit_quietly(VAE(**common), X)
    assert start + 3 < sf.score(X_test) < rep.score(X_test), (start, sf.score(X_test), rep.score(X_test))
    assert np.isfinite(sf._baseline) and sf._baseline < 0  # the running mean of the learning signal


def test_gradient_variance_api(correlated):
    X = correlated[:200].copy()
    X[0, 1] = np.nan
    vae = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(4,), missing="mask", max_iter=2, **FAST), X)
    g = gradient_variance(vae, X[:20], estimator="score_function", n_draws=5, dtype=np.float32, random_state=0)
    assert g.mean.shape == g.var.shape == vae.params_.shape and g.n_draws == 5
    assert np.isfinite(g.mean).all() and (g.var >= 0).all() and np.isfinite(g.loss)
    assert sorted(g.tensors) == sorted(name for name, _, _ in vae._engine().layout())
    # Same seed, same numbers.
    g2 = gradient_variance(vae, X[:20], estimator="score_function", n_draws=5, dtype=np.float32, random_state=0)
    np.testing.assert_array_equal(g.mean, g2.mean)
    with pytest.raises(ValueError, match="estimator"):
        gradient_variance(vae, X, estimator="pathwise")
    with pytest.raises(ValueError, match="n_draws"):
        gradient_variance(vae, X, n_draws=1)
    with pytest.raises(ValueError, match="dtype"):
        gradient_variance(vae, X, dtype=np.int32)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        gradient_variance(VAE(), X)


# --------------------------------------------------------------------------
# Both reparameterization designs
# --------------------------------------------------------------------------

@pytest.mark.parametrize("posterior", ["logistic", "laplace"])
def test_inverse_cdf_posteriors_train_as_well_as_the_gaussian(digits, posterior):
    X, X_test = digits
    common = dict(n_components=8, hidden_layer_sizes=(64,), likelihood="bernoulli", kl="mc", max_iter=40, **FAST)
    gauss = fit_quietly(VAE(posterior="gaussian", **common), X)
    other = fit_quietly(VAE(posterior=posterior, **common), X)
    ref, got = gauss.score(X_test), other.score(X_test)
    assert got > -30 and abs(got - ref) < 0.05 * abs(ref), (got, ref)
    # Its importance-weighted bound is above its ELBO, as for the Gaussian.
    assert other.score(X_test, n_importance=20) > got


@pytest.mark.parametrize("posterior", ["gaussian", "logistic", "laplace"])
def test_transform_std_and_posterior_samples_agree(correlated, posterior):
    """transform(return_std=True) reports the mean and standard deviation of
    q(z|x); the draws of sample_posterior must have those moments."""
    X = correlated[:5]
    vae = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(8,), kl="mc", posterior=posterior, max_iter=5,
                          **FAST), correlated[:300])
    mu, std = vae.transform(X, return_std=True)
    z = vae.sample_posterior(X, n_samples=40000, random_state=0, rows_first=True)  # (N, S, Z)
    assert z.shape == (5, 40000, 2)
    np.testing.assert_allclose(z.mean(1), mu, atol=5 * std.max() / np.sqrt(40000))
    np.testing.assert_allclose(z.std(1), std, rtol=0.03)


# --------------------------------------------------------------------------
# Importance-weighted bounds and extreme inputs
# --------------------------------------------------------------------------

def test_importance_weighted_bound_is_non_decreasing_in_K(digits):
    X, X_test = digits
    vae = fit_quietly(VAE(n_components=8, hidden_layer_sizes=(64,), likelihood="bernoulli", max_iter=30, **FAST), X)
    Ks = [1, 2, 5, 20, 100]
    scores = np.array([vae.score_samples(X_test, n_importance=K) for K in Ks])
    means = scores.mean(1)
    noise = scores.std(1) / np.sqrt(X_test.shape[0])  # standard error of each mean
    assert np.all(np.diff(means) > -2 * noise[1:]), means
    assert means[-1] > means[0] + 0.2  # and it does tighten on a nonlinear model
    assert np.isfinite(scores).all()
    # The bound is per row: the same row scores the same in any batch.
    # (up to float32 rounding, which depends on the batch's shape in the matrix products)
    np.testing.assert_allclose(vae.score_samples(X_test[3:4], n_importance=20), scores[3, 3:4], rtol=1e-6)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_isotropic"])
def test_scores_stay_finite_for_extreme_inputs(correlated, likelihood):
    X = correlated[:300]
    vae = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(8,), likelihood=likelihood, max_iter=10, **FAST), X)
    for scale in (1e-30, 1e-6, 1e6, 1e12, -1e15):
        for K in (1, 10):
            s = vae.score_samples(X[:20] * scale, n_importance=K)
            assert np.isfinite(s).all(), (scale, K, s)
        mu, std = vae.transform(X[:20] * scale, return_std=True)
        assert np.isfinite(mu).all() and np.isfinite(std).all()
    # Beyond float32's range the bound underflows to -inf, never NaN.
    for K in (1, 10):
        s = vae.score_samples(np.full((3, X.shape[1]), 1e30), n_importance=K)
        assert not np.isnan(s).any()
    const = np.zeros((5, X.shape[1]))
    assert np.isfinite(vae.score_samples(const, n_importance=10)).all()


@pytest.mark.parametrize("kind", ["scale 1e6", "offset 1e6", "scale 1e-6", "constant columns"])
def test_training_on_extreme_data_stays_finite(correlated, kind):
    X = correlated[:300]
    X = {"scale 1e6": X * 1e6, "offset 1e6": X + 1e6, "scale 1e-6": X * 1e-6,
         "constant columns": np.c_[X, np.full(300, 3.0), np.zeros(300)]}[kind]
    vae = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(8,), max_iter=30, **FAST), X)
    assert np.isfinite(vae.params_).all()
    assert np.isfinite(vae.score_samples(X)).all() and np.isfinite(vae.score_samples(X, n_importance=10)).all()


def test_logvar_clamp_has_zero_gradient_and_matches_finite_differences():
    """Inputs far out push the encoder's log-variance past the +-30 clamp: the
    loss stays finite, the clamped entries pass no gradient, and the gradient
    still agrees with central differences."""
    engine = _core.Model64(n_features=3, n_components=2, hidden_layer_sizes=[], activation="tanh",
                           likelihood="gaussian", kl="analytic", posterior="gaussian",
                           gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False,
                           n_threads=1)
    t = {name: (offset, shape) for name, offset, shape in engine.layout()}
    params = engine.init_params(0)
    w_offset = t["encoder.0.weight"][0]
    W = params[w_offset:w_offset + 12].reshape(3, 4)  # a view: columns 2, 3 give the log-variances
    W[:, 2:] = -1.0
    noise = np.random.default_rng(0).normal(size=(1, 2, 2))
    x = np.array([[100.0, 80.0, 60.0], [0.3, -0.2, 0.1]])  # row 0: raw log-variance -240, clamped to -30
    out = engine.loss_and_grad(params, x, x, noise)
    assert np.isfinite(out["loss"]) and np.isfinite(out["grad"]).all()
    h = 1e-6
    numeric = np.empty_like(params)
    for k in range(params.size):
        p = params.copy()
        p[k] += h
        up = engine.loss_and_grad(p, x, x, noise)["loss"]
        p[k] -= 2 * h
        numeric[k] = (up - engine.loss_and_grad(p, x, x, noise)["loss"]) / (2 * h)
    np.testing.assert_allclose(out["grad"], numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max())
    # The positive side: a row whose log-variances clamp at +30 gives them no gradient.
    out = engine.loss_and_grad(params, -x[:1], -x[:1], noise[:, :1])
    assert np.isfinite(out["loss"]) and np.isfinite(out["grad"]).all()
    grad_W = out["grad"][w_offset:w_offset + 12].reshape(3, 4)
    b_offset = t["encoder.0.bias"][0]
    assert (grad_W[:, 2:] == 0).all() and (out["grad"][b_offset + 2:b_offset + 4] == 0).all()
    assert (grad_W[:, :2] != 0).all()


# --------------------------------------------------------------------------
# beta, missing data, active units
# --------------------------------------------------------------------------

def test_beta_trades_kl_for_reconstruction(digits):
    X, _ = digits
    common = dict(n_components=8, hidden_layer_sizes=(64,), likelihood="bernoulli", max_iter=20, **FAST)
    kls = []
    for beta in (0.2, 1.0, 5.0):
        vae = fit_quietly(VAE(beta=beta, **common), X)
        mu, std = vae.transform(X, return_std=True)
        kls.append(np.mean(0.5 * np.sum(mu**2 + std**2 - 1 - np.log(std**2), axis=1)))
        # loss_curve_ reports the true ELBO (beta = 1), like score
        assert abs(-vae.loss_curve_[-1] - vae.score(X)) < 1.0
    assert kls[0] > kls[1] > kls[2], kls


def test_masked_likelihood_matches_reference():
    """With NaN entries the per-draw log-likelihood sums the observed entries
    only (the NumPy reference skips them independently)."""
    rng = np.random.default_rng(0)
    engine = _core.Model64(n_features=5, n_components=2, hidden_layer_sizes=[4], activation="relu",
                           likelihood="gaussian", kl="mc", posterior="gaussian",
                           gradient_estimator="reparameterization", n_mc_samples=2, beta=1.0, missing=True,
                           n_threads=1)
    params = engine.init_params(3)
    x = rng.normal(size=(4, 5))
    x[0, 1] = x[2, 3] = x[3, 0] = np.nan
    x_enc = np.nan_to_num(x)
    noise = rng.normal(size=(2, 4, 2))
    got = engine.loss_and_grad(params, x, x_enc, noise)
    loss, recon, kl_draws, _ = forward(engine, params, x, x_enc, noise, activation="relu", likelihood="gaussian",
                                       kl="mc")
    np.testing.assert_allclose(got["recon"], recon, rtol=1e-12)
    np.testing.assert_allclose(got["loss"], loss, rtol=1e-12)
    # Filling the gap with any value changes only what the encoder sees, not a term of the sum.
    x_filled = np.where(np.isnan(x), 0.0, x)
    full = engine.loss_and_grad(params, x_filled, x_enc, noise)["recon"]
    assert (full[:, 1] == got["recon"][:, 1]).all() and (full[:, 0] != got["recon"][:, 0]).all()


def test_missing_values_fit_score_and_impute(correlated):
    rng = np.random.default_rng(1)
    X = correlated
    mask = rng.uniform(size=X.shape) < 0.2
    X_nan = np.where(mask, np.nan, X)
    with pytest.raises(ValueError, match="NaN"):
        VAE(max_iter=1, **FAST).fit(X_nan)
    vae = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(32,), missing="mask", max_iter=60,
                          **dict(FAST, learning_rate=3e-3)), X_nan)
    assert np.isfinite(vae.score_samples(X_nan)).all()
    assert np.isfinite(vae.score_samples(X_nan, n_importance=10)).all()
    # A row with fewer observed entries has fewer terms: its bound is higher.
    row = X[:1].copy()
    fewer = row.copy()
    fewer[0, :4] = np.nan
    assert vae.score_samples(fewer, n_importance=50)[0] > vae.score_samples(row, n_importance=50)[0]
    imputed = vae.inverse_transform(vae.transform(X_nan))
    err_vae = np.mean((imputed[mask] - X[mask]) ** 2)
    err_mean = np.mean((np.broadcast_to(np.nanmean(X_nan, axis=0), X.shape)[mask] - X[mask]) ** 2)
    assert err_vae < 0.5 * err_mean, (err_vae, err_mean)


def test_active_units(correlated):
    X = correlated  # two informative factors
    oversized = fit_quietly(VAE(n_components=10, hidden_layer_sizes=(32,), max_iter=50, **dict(FAST, learning_rate=3e-3)), X)
    assert oversized.active_units_ <= 3
    small = fit_quietly(VAE(n_components=2, hidden_layer_sizes=(32,), max_iter=50, **dict(FAST, learning_rate=3e-3)), X)
    assert small.active_units_ == 2
    collapsed = fit_quietly(VAE(n_components=4, hidden_layer_sizes=(32,), beta=50.0, max_iter=50,
                                **dict(FAST, learning_rate=3e-3)), X)
    assert collapsed.active_units_ == 0
    # The definition: variance of the posterior mean above 1e-2.
    assert oversized.active_units_ == int((np.var(oversized.transform(X), axis=0) > 1e-2).sum())
