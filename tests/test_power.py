"""The Yeo-Johnson power transform of the VAE's Gaussian columns (standardize="auto"):
the map against SciPy's, its inverse and log-derivative, the exponent's maximum
likelihood, and the VAE's densities through it."""

import warnings

import numpy as np
import pytest
from scipy import stats

from pyvae import VAE, _power

LAMBDAS = [-2.5, -0.7, 0.0, 0.4, 1.0, 1.6, 2.0, 3.5]


def skewed(n=600, seed=0):
    """Two log-normal columns, one a noisy multiple of the other, and a Gaussian one."""
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0.0, 1.0, n)
    return np.column_stack([a, a * rng.lognormal(0.0, 0.05, n), rng.normal(size=n)])


def test_transform_is_scipys_and_keeps_nan():
    z = np.linspace(-3.0, 4.0, 71)
    Z = np.tile(z[:, None], (1, len(LAMBDAS)))
    Z[5, 2] = np.nan
    Y = _power.yeo_johnson(Z, LAMBDAS)
    for j, lam in enumerate(LAMBDAS):
        want = stats.yeojohnson(np.delete(z, 5) if j == 2 else z, lmbda=lam)
        np.testing.assert_allclose(np.delete(Y[:, j], 5) if j == 2 else Y[:, j], want, rtol=1e-12, atol=1e-14)
    assert np.isnan(Y[5, 2]) and np.isfinite(np.delete(Y, 5, axis=0)).all()
    np.testing.assert_array_equal(Y[:, LAMBDAS.index(1.0)], z)  # lambda 1: the identity, bit for bit


def test_inverse_undoes_the_transform_and_stays_finite_beyond_its_range():
    z = np.linspace(-3.0, 4.0, 71)
    Z = np.tile(z[:, None], (1, len(LAMBDAS)))
    np.testing.assert_allclose(_power.yeo_johnson_inverse(_power.yeo_johnson(Z, LAMBDAS), LAMBDAS), Z,
                               rtol=1e-10, atol=1e-12)
    # lambda -2.5 maps [0, inf) onto [0, 0.4) and lambda 3.5 maps (-inf, 0] onto (-2/3, 0]: a Gaussian
    # draw beyond either bound has no preimage and becomes the largest finite value on its side.
    beyond = _power.yeo_johnson_inverse(np.array([[0.5, -1.0]]), [-2.5, 3.5])
    assert np.isfinite(beyond).all() and beyond[0, 0] > 1e300 and beyond[0, 1] < -1e300


def test_log_derivative_matches_central_differences():
    z = np.array([-2.0, -0.3, 0.2, 1.5, 3.0])
    Z = np.tile(z[:, None], (1, len(LAMBDAS)))
    h = 1e-6
    numeric = np.log((_power.yeo_johnson(Z + h, LAMBDAS) - _power.yeo_johnson(Z - h, LAMBDAS)) / (2 * h))
    np.testing.assert_allclose(_power.yeo_johnson_log_derivative(Z, LAMBDAS), numeric, rtol=1e-7, atol=1e-8)
    assert _power.yeo_johnson_log_derivative(np.array([[np.nan]]), [0.5])[0, 0] == 0.0


def test_exponent_is_the_maximum_likelihood_one_and_atoms_are_left_alone():
    rng = np.random.default_rng(1)
    skew = rng.lognormal(0.0, 0.8, 1500)
    skew = (skew - skew.mean()) / skew.std()
    atom = np.where(rng.random(1500) < 0.3, 0.0, rng.normal(size=1500))  # 30% of the rows at one value
    few = rng.integers(0, 8, 1500).astype(float)  # 8 distinct values
    lambdas = _power.fit_lambdas(np.column_stack([skew, atom, few]), np.ones(3, bool))
    assert lambdas[0] == pytest.approx(stats.yeojohnson_normmax(skew), abs=2e-3)
    assert lambdas[0] < 0.5
    assert lambdas[1] == 1.0 and lambdas[2] == 1.0
    # A column not eligible (not Gaussian) keeps lambda 1 whatever its shape.
    assert _power.fit_lambdas(skew[:, None], np.zeros(1, bool))[0] == 1.0


def fit(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAE(n_components=1, hidden_layer_sizes=(16,), max_iter=60, random_state=0, n_threads=1, **kw).fit(X)


def test_log_jacobian_is_that_of_the_map_to_model_units():
    X = skewed(200)
    vae = fit(X)
    assert vae.lambdas_ is not None and vae.lambdas_[0] < 0.7
    X_test = X[:7].copy()
    X_test[2, 1] = np.nan
    h = 1e-6 * vae.scale_
    numeric = np.zeros(len(X_test))
    for j in range(X.shape[1]):
        up, down = X_test.copy(), X_test.copy()
        up[:, j] += h[j]
        down[:, j] -= h[j]
        slope = (vae._model_units(up, np.float64)[:, j] - vae._model_units(down, np.float64)[:, j]) / (2 * h[j])
        numeric += np.nan_to_num(np.log(slope), nan=0.0)  # a missing entry has no density, no Jacobian
    vae._fit_config["missing"] = True  # take the per-entry path, as a model fitted with missing="mask" does
    np.testing.assert_allclose(vae._log_jacobian(X_test), numeric, rtol=1e-6)


def test_outputs_are_in_the_data_units_and_copies_in_other_units_score_alike():
    X = skewed(300)
    vae = fit(X)
    # inverse_transform: the decoder's mean mapped back, which the forward map sends to the model's units.
    Z = vae.transform(X[:20])
    assert np.isfinite(vae.inverse_transform(Z)).all()
    assert np.isfinite(vae.sample(50, random_state=0)).all()
    a, b = np.array([10.0, 0.5, 3.0]), np.array([5.0, -2.0, 1.0])
    scaled = fit(X * a + b)
    np.testing.assert_allclose(scaled.lambdas_, vae.lambdas_, atol=1e-4)
    gap = (vae.score_samples(X[:50], n_importance=10) - scaled.score_samples(X[:50] * a + b, n_importance=10))
    np.testing.assert_allclose(gap, np.log(a).sum(), atol=2e-3)


def test_power_transform_helps_on_log_normal_columns_and_standardize_true_turns_it_off():
    X = skewed(800)
    train, test = X[:600], X[600:]
    plain = fit(train, standardize=True)
    assert plain.lambdas_ is None
    power = fit(train)
    # The pair of log-normal columns, nearly proportional: linear after the log-like transform.
    assert power.score(test) > plain.score(test) + 1.0, (power.score(test), plain.score(test))


def test_save_and_load_keep_the_transform(tmp_path):
    X = skewed(200)
    vae = fit(X)
    vae.save(tmp_path / "model.pyvae")
    from pyvae import load

    loaded = load(tmp_path / "model.pyvae")
    for name in ("lambdas_", "power_mean_", "power_scale_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(vae, name))
    Z = vae.transform(X[:5])
    np.testing.assert_array_equal(loaded.inverse_transform(Z), vae.inverse_transform(Z))
