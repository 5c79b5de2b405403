"""VAEImputer (issue 16): importance-weighted imputation, checked against a NumPy
reference of the self-normalized weights, and the estimator's promises."""

import warnings

import numpy as np
import pytest
from reference import LOG2PI, mlp, unpack
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from pyvae import VAEImputer, _core
from pyvae._validation import draw_seed

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Small and quick: the checks fit dozens of times.
QUICK = dict(hidden_layer_sizes=(16,), max_iter=5, n_importance=10, n_threads=1)


def quick_imputer(**kw):
    params = dict(QUICK, random_state=0)
    params.update(kw)
    return VAEImputer(**params)


@parametrize_with_checks([VAEImputer(), quick_imputer(), quick_imputer(add_indicator=True, n_components=2)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def low_rank(n=400, d=8, rank=2, noise=0.05, rate=0.2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + noise * rng.normal(size=(n, d))
    X = X * rng.uniform(0.5, 20, size=d) + rng.normal(scale=10, size=d)  # columns in their own units
    X_missing = X.copy()
    X_missing[rng.random(X.shape) < rate] = np.nan
    return X, X_missing


@pytest.fixture(scope="module")
def fitted():
    X, X_missing = low_rank()
    imputer = VAEImputer(hidden_layer_sizes=(32,), max_iter=300, random_state=0, n_threads=1)
    return X, X_missing, imputer.fit(X_missing)


# ---------------------------------------------------------------- the core against a NumPy reference


def tiny_model(likelihood="gaussian"):
    return _core.Model64(n_features=4, n_components=2, hidden_layer_sizes=[5], activation="tanh",
                         likelihood=likelihood, kl="analytic", posterior="gaussian",
                         gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=True,
                         n_threads=1)


def tiny_batch(likelihood):
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(6, 4)) if likelihood == "bernoulli" else rng.normal(size=(6, 4))
    X[0, 1] = X[1, [0, 3]] = X[2, 2] = X[4, 0] = np.nan
    X[5, :] = np.nan  # nothing observed: prior predictive
    return X


def reference_weighted_draws(model, params, X, K, seed, likelihood):
    """Normalized importance weights (K, N) and decoder means (K, N, D), in float64
    from the formulas: only the posterior draws z come from the core (their noise
    is keyed to each row's bytes), and the standardized noise is recovered from them."""
    t = unpack(model, params)
    head = mlp(t, "encoder.", np.nan_to_num(X, nan=0.0), "tanh")
    mu, logvar = head[:, :2], np.clip(head[:, 2:], -30, 30)
    z = model.sample_posterior(params, X, K, seed)  # (K, N, Z)
    eps = (z - mu) / np.exp(0.5 * logvar)
    log_q = (-0.5 * eps**2 - 0.5 * LOG2PI - 0.5 * logvar).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * LOG2PI).sum(-1)
    out = mlp(t, "decoder.", z, "tanh")  # (K, N, D)
    observed = ~np.isnan(X)
    x = np.where(observed, X, 0.0)
    if likelihood == "bernoulli":
        log_lik, mean = x * out - np.logaddexp(0, out), 1 / (1 + np.exp(-out))
    else:
        lv = t["decoder.noise_logvar"]
        log_lik, mean = -0.5 * (LOG2PI + lv + (x - out) ** 2 * np.exp(-lv)), out
    log_w = np.where(observed, log_lik, 0.0).sum(-1) + log_prior - log_q
    w = np.exp(log_w - log_w.max(axis=0))
    return w / w.sum(axis=0), mean


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_core_impute_matches_numpy_self_normalized_weights(likelihood):
    model = tiny_model(likelihood)
    params = model.init_params(7)
    if likelihood == "gaussian":
        params[-4:] = [-0.5, 0.2, -1.0, 0.4]  # noise log-variances, not all zero
    X = tiny_batch(likelihood)
    K, seed = 50, 1234
    w, mean = reference_weighted_draws(model, params, X, K, seed, likelihood)
    expected = np.where(np.isnan(X), (w[..., None] * mean).sum(0), X)
    got = model.impute(params, X, K, seed)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert np.array_equal(got[~np.isnan(X)], X[~np.isnan(X)])
    # A row's result depends on the row and the seed only, not on its neighbours.
    np.testing.assert_array_equal(model.impute(params, X[::-1].copy(), K, seed), got[::-1])
    assert not np.allclose(model.impute(params, X, K, seed + 1), got)


def test_core_resampling_picks_draws_in_proportion_to_their_weights():
    model = tiny_model()
    params = model.init_params(7)
    params[-4:] = -30.0  # near-zero observation noise: each imputation is its draw's decoder mean
    X = tiny_batch("gaussian")[[1]]
    K, M, seed = 8, 4000, 99
    w, mean = reference_weighted_draws(model, params, X, K, seed, "gaussian")
    draws = model.sample_imputations(params, X, K, M, seed)  # (N, M, D)
    assert draws.shape == (1, M, 4)
    missing = np.isnan(X[0])
    # Which of the K draws each imputation came from: its missing entries equal that draw's mean.
    distance = np.abs(draws[0][:, None, missing] - mean[None, :, 0, missing]).max(-1)  # (M, K)
    picked = distance.argmin(1)
    assert distance.min(1).max() < 1e-5
    counts = np.bincount(picked, minlength=K)
    expected = M * w[:, 0]
    # Multinomial counts: within 5 standard deviations of their expectation.
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected * (1 - w[:, 0])) + 1), (counts, expected)
    assert np.array_equal(draws[0][:, ~missing], np.repeat(X[:, ~missing], M, axis=0))


def test_core_rejects_a_model_without_missing_mask():
    model = _core.Model64(n_features=4, n_components=2, hidden_layer_sizes=[5], activation="tanh",
                          likelihood="gaussian", kl="analytic", posterior="gaussian",
                          gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False,
                          n_threads=1)
    params = model.init_params(0)
    with pytest.raises(ValueError, match="missing"):
        model.impute(params, np.zeros((2, 4)), 10, 0)
    with pytest.raises(ValueError, match="size"):
        tiny_model().impute(params[:-1], np.zeros((2, 4)), 10, 0)


# ---------------------------------------------------------------- the estimator


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_observed_entries_come_back_bit_for_bit(fitted, dtype):
    _, X_missing, imputer = fitted
    X_missing = X_missing.astype(dtype)
    X_filled = imputer.transform(X_missing)
    assert X_filled.dtype == dtype
    observed = ~np.isnan(X_missing)
    assert np.array_equal(X_filled[observed].view(np.uint8), X_missing[observed].view(np.uint8))
    assert np.isfinite(X_filled).all()


def test_better_than_mean_imputation_on_low_rank_data(fitted):
    X, X_missing, imputer = fitted
    hidden = np.isnan(X_missing)
    scale = X.std(axis=0)

    def rmse(X_filled):
        return np.sqrt(np.mean((((X_filled - X) / scale)[hidden]) ** 2))

    vae = rmse(imputer.transform(X_missing))
    mean = rmse(SimpleImputer().fit_transform(X_missing))
    assert vae < 0.5 * mean, (vae, mean)  # rank 2 in 8 columns: most of each row is predictable


def test_same_random_state_same_imputations():
    X, X_missing = low_rank(n=150)
    a = quick_imputer(max_iter=20).fit(X_missing)
    b = quick_imputer(max_iter=20).fit(X_missing)
    assert np.array_equal(a.transform(X_missing), b.transform(X_missing))
    assert np.array_equal(a.sample_imputations(X_missing, 3, random_state=5),
                          b.sample_imputations(X_missing, 3, random_state=5))
    c = quick_imputer(max_iter=20, random_state=1).fit(X_missing)
    assert not np.array_equal(a.transform(X_missing), c.transform(X_missing))
    # Each row's draws depend on that row only: any subset or order gives the same values
    # (up to float32 rounding in matrix products of another size).
    rows = np.array([7, 3, 120, 3])
    np.testing.assert_allclose(a.transform(X_missing[rows]), a.transform(X_missing)[rows], rtol=1e-5)


def test_sample_imputations_vary_and_center_on_the_conditional_mean(fitted):
    _, X_missing, imputer = fitted
    X = X_missing[:60]
    draws = imputer.sample_imputations(X, n_imputations=400, random_state=0)
    assert draws.shape == (60, 400, 8)
    hidden = np.isnan(X)
    observed = np.broadcast_to(~hidden[:, None, :], draws.shape)
    assert np.array_equal(draws[observed], np.broadcast_to(X[:, None, :], draws.shape)[observed])
    spread = draws.std(axis=1)[hidden]
    assert (spread > 0).all()
    # The mean of many resampled draws estimates the same conditional mean as transform.
    scale = imputer.scale_[None, :]
    gap = np.abs(draws.mean(axis=1) - imputer.transform(X)) / scale
    assert np.median(gap[hidden]) < 0.15, np.median(gap[hidden])
    assert not np.array_equal(draws, imputer.sample_imputations(X, n_imputations=400, random_state=1))


def test_pipeline_with_classifier():
    X, y = load_digits(return_X_y=True)
    X, y = X[:500], y[:500]
    X = X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.2] = np.nan
    pipe = make_pipeline(quick_imputer(max_iter=30, add_indicator=True), LogisticRegression(max_iter=300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # digits has columns that are always 0 ... or missing
        pipe.fit(X[:400], y[:400])
        assert pipe.score(X[400:], y[400:]) > 0.6  # ten classes: chance is 0.1
    assert clone(pipe).get_params()["vaeimputer__n_importance"] == 10


def test_feature_names_with_indicator():
    import pandas as pd

    _, X_missing = low_rank(n=80, d=4)
    X_missing[:, 3] = 1.0  # never missing: no indicator column
    frame = pd.DataFrame(X_missing, columns=["a", "b", "c", "d"])
    imputer = quick_imputer(add_indicator=True).fit(frame)
    names = imputer.get_feature_names_out().tolist()
    assert names == ["a", "b", "c", "d", "missingindicator_a", "missingindicator_b", "missingindicator_c"]
    assert imputer.transform(frame).shape == (80, 7)


# ---------------------------------------------------------------- bad input


def test_feature_entirely_missing_in_fit_is_dropped_or_kept():
    _, X_missing = low_rank(n=100, d=5)
    X_missing[:, 2] = np.nan
    with pytest.warns(UserWarning, match=r"Features \[2\] have no observed value"):
        dropped = quick_imputer().fit(X_missing)
    out = dropped.transform(X_missing)
    assert out.shape == (100, 4) and np.isfinite(out).all()
    assert dropped.get_feature_names_out().tolist() == ["x0", "x1", "x3", "x4"]
    with pytest.warns(UserWarning, match="kept and filled with 0"):
        kept = quick_imputer(keep_empty_features=True).fit(X_missing)
    out = kept.transform(X_missing)
    assert out.shape == (100, 5) and (out[:, 2] == 0).all()
    np.testing.assert_array_equal(out[:, [0, 1, 3, 4]], dropped.transform(X_missing))
    with pytest.raises(ValueError, match="entirely missing"):
        quick_imputer().fit(np.full((10, 3), np.nan))


def test_row_entirely_missing_gets_the_prior_predictive_mean(fitted):
    _, X_missing, imputer = fitted
    blank = np.full((3, 8), np.nan)
    out = imputer.transform(blank)
    # Same bytes, same draws: the rows agree up to rounding (OpenBLAS may round a
    # row of a product differently by its position in the matrix).
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, np.broadcast_to(out[0], out.shape), rtol=1e-6, atol=0)
    # E[x] = E_p(z)[E[x | z]], here by plain Monte Carlo over the prior.
    vae = imputer.vae_
    z = np.random.default_rng(0).normal(size=(20000, vae.n_components))
    prior_mean = vae.inverse_transform(z).mean(0) * imputer.scale_ + imputer.mean_
    assert np.max(np.abs(out[0] - prior_mean) / imputer.scale_) < 0.2


def snapshot(imputer):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in imputer.__dict__.items()}, \
        imputer.vae_.params_.copy()


def test_bad_input_raises_and_changes_nothing(fitted):
    _, X_missing, imputer = fitted
    state, params = snapshot(imputer)
    before = imputer.transform(X_missing[:20])
    with pytest.raises(ValueError, match="8 features"):
        imputer.transform(X_missing[:, :5])
    bad = X_missing[:20].copy()
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        imputer.transform(bad)
    refit = clone(imputer).set_params(max_iter=3)
    refit.fit(X_missing)
    refit_state, refit_params = snapshot(refit)
    for attempt in (bad, X_missing[:, :0], [[np.nan] * 8] * 0):
        with pytest.raises(ValueError):
            refit.fit(attempt)
    with pytest.raises(ValueError, match="n_importance"):
        refit.set_params(n_importance=0).fit(X_missing)
    refit.set_params(n_importance=imputer.n_importance)
    assert np.array_equal(refit.vae_.params_, refit_params)
    assert refit.__dict__.keys() == refit_state.keys()
    assert np.array_equal(imputer.vae_.params_, params) and imputer.__dict__.keys() == state.keys()
    assert np.array_equal(imputer.transform(X_missing[:20]), before)
    with pytest.raises(ValueError, match="n_imputations"):
        imputer.sample_imputations(X_missing[:3], n_imputations=0)


def test_docstring_examples_run():
    import doctest

    import pyvae._imputer

    result = doctest.testmod(pyvae._imputer, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0


def test_imputations_do_not_depend_on_the_thread_count(fitted):
    _, X_missing, imputer = fitted
    results = []
    for n_threads in (1, 2):
        imputer.set_params(n_threads=n_threads)
        results.append((imputer.transform(X_missing), imputer.sample_imputations(X_missing, 3, random_state=0)))
    imputer.set_params(n_threads=1)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])


def test_complete_rows_are_left_out_of_the_draws_without_changing_a_bit(fitted):
    """transform and sample_imputations send only the rows with a missing entry
    to the core: the result is, bit for bit, the core's on every row."""
    _, X_missing, imputer = fitted
    assert 0 < np.isnan(X_missing).any(axis=1).sum() < len(X_missing)  # both kinds of rows
    _, Xs = imputer._prepare(X_missing)
    vae = imputer.vae_
    every_row = vae._impute(Xs, imputer.n_importance, imputer._seed, 1, imputer.refine_steps)
    assert np.array_equal(imputer.transform(X_missing), imputer._finish(X_missing, every_row))
    draws = vae._sample_imputations(Xs, imputer.n_importance, 3, draw_seed(7), 1, imputer.refine_steps)
    want = np.stack([imputer._finish(X_missing, draws[:, m]) for m in range(3)], axis=1)
    assert np.array_equal(imputer.sample_imputations(X_missing, 3, random_state=7), want)


def test_default_schedule_trains_its_whole_budget_without_a_convergence_warning():
    # The default schedule ("linear") is a budget of max_iter epochs: no plateau
    # ends it early, and finishing it is not a failure to converge.
    _, X_missing = low_rank(n=120)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imputer = VAEImputer(max_iter=7, n_importance=10, random_state=0, n_threads=1, tol=10.0,
                             n_iter_no_change=1).fit(X_missing)
    assert imputer.learning_rate_schedule == "linear"
    assert imputer.vae_.n_iter_ == 7
