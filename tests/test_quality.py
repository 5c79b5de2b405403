"""Default model quality: data in its own units, the variance floor, normalized
densities, the continuous Bernoulli, and training that converges by itself."""

import warnings

import numpy as np
import pytest
from scipy.integrate import trapezoid
from sklearn.datasets import load_wine
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from pyvae import VAE

# These checks fit for a fixed, small number of epochs on purpose: stopping
# before convergence is expected, not a failure (pyproject's filterwarnings
# turns pyvae's warnings into errors elsewhere).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = dict(n_components=2, hidden_layer_sizes=(16,), random_state=0)


def tabular(seed=0, n=300):
    """Correlated features on very different scales and offsets, as raw tabular data comes."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 2))
    X = np.tanh(Z @ rng.normal(size=(2, 5))) + 0.3 * rng.normal(size=(n, 5))
    return X * np.array([1e3, 1.0, 1e-3, 50.0, 0.2]) + np.array([1e4, -3.0, 0.0, 200.0, 1.0])


# --------------------------------------------------------------------------
# Data in its own units
# --------------------------------------------------------------------------

def test_scaling_the_data_by_a_power_of_two_gives_the_same_model():
    """Standardization inside the model is exact: X and 4 X reach bit-identical
    parameters, and every output follows the change of units (scores shift by
    the log-determinant D log 4)."""
    X = tabular()
    a = VAE(max_iter=30, **SMALL).fit(X)
    b = VAE(max_iter=30, **SMALL).fit(4 * X)
    np.testing.assert_array_equal(a.params_, b.params_)
    np.testing.assert_array_equal(a.transform(X), b.transform(4 * X))
    np.testing.assert_allclose(4 * a.inverse_transform(a.transform(X)), b.inverse_transform(b.transform(4 * X)),
                               rtol=1e-12)
    np.testing.assert_allclose(4 * a.sample(5, random_state=1), b.sample(5, random_state=1), rtol=1e-12)
    np.testing.assert_allclose(a.score_samples(X) - X.shape[1] * np.log(4), b.score_samples(4 * X), rtol=1e-12)


def test_outputs_are_in_the_users_units():
    X = tabular()
    vae = VAE(max_iter=100, **SMALL).fit(X)
    reconstruction = vae.inverse_transform(vae.transform(X))
    draws = vae.sample(2000, random_state=0)
    # Column means and spreads of reconstructions and samples match the data's, scale by scale.
    np.testing.assert_allclose(reconstruction.mean(0), X.mean(0), atol=0.1 * X.std(0).max(), rtol=0.05)
    np.testing.assert_allclose(draws.std(0) / X.std(0), 1.0, atol=0.3)


def test_raw_and_standardized_copies_give_equivalent_models():
    """Held-out log-likelihoods of a model of raw wine and of standardized wine
    differ by the scaler's log-determinant, up to training noise."""
    X = load_wine().data
    X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)
    scaler = StandardScaler().fit(X_train)
    raw = VAE(n_components=3, random_state=0).fit(X_train)
    scaled = VAE(n_components=3, random_state=0).fit(scaler.transform(X_train))
    log_det = -np.log(scaler.scale_).sum()
    raw_score = raw.score(X_test, n_importance=100)
    scaled_score = scaled.score(scaler.transform(X_test), n_importance=100) + log_det
    assert abs(raw_score - scaled_score) < 0.5, (raw_score, scaled_score)
    # Before internal standardization raw wine scored about -7e7 nats per row.
    assert raw_score > -25


def test_standardize_false_sees_the_data_as_it_is():
    X = tabular()
    vae = VAE(max_iter=3, standardize=False, **SMALL).fit(X / 1000)
    assert vae.mean_ is None and vae.scale_ is None
    with pytest.raises(ValueError, match="standardize=True needs a Gaussian likelihood"):
        VAE(likelihood="bernoulli", standardize=True).fit(np.random.default_rng(0).random((20, 3)))


def test_missing_entries_leave_the_jacobian_of_their_features_out():
    X = tabular()
    vae = VAE(max_iter=20, missing="mask", standardize=True, **SMALL).fit(X)
    X_missing = X[:10].copy()
    X_missing[:, 0] = np.nan
    # The masked feature's scale does not enter the density of the observed ones.
    shift = vae._log_jacobian(X_missing) - vae._log_jacobian(X[:10])
    np.testing.assert_allclose(shift, np.log(vae.scale_[0]))


# --------------------------------------------------------------------------
# The variance floor
# --------------------------------------------------------------------------

def constant_column_data():
    X = tabular()
    X[:, 2] = 0.0  # StandardScaler leaves exact zeros in a constant column
    return X


@pytest.mark.slow
def test_variance_floor_stops_the_score_growing_on_a_constant_column():
    X = constant_column_data()
    # standardize=True: the other columns' power transforms would keep their density rising.
    kw = dict(learning_rate_schedule="constant", tol=0.0, n_iter_no_change=10_000, early_stopping=False,
              standardize=True, **SMALL)

    def score_after(epochs, floor):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return VAE(max_iter=epochs, variance_floor=floor, **kw).fit(X).score(X)

    # The constant column adds at most -0.5 log(2 pi floor) nats: the score levels off.
    floored = [score_after(epochs, 1e-6) for epochs in (300, 600)]
    assert abs(floored[1] - floored[0]) < 0.1, floored


def test_variance_floor_bounds_each_features_density():
    X = constant_column_data()
    floor = 1e-2
    vae = VAE(max_iter=50, variance_floor=floor, **SMALL).fit(X)
    learned = np.exp(vae.params_[[o for name, o, _ in vae._engine().layout() if name.endswith("noise_logvar")][0]:])
    # No feature can score more than a Gaussian of the floor's variance at its mode.
    best_possible = -0.5 * np.log(2 * np.pi * (floor + learned)).sum() + vae._log_jacobian(X[:1])[0]
    assert vae.score_samples(X, n_importance=50).max() < best_possible


# --------------------------------------------------------------------------
# Densities integrate to one
# --------------------------------------------------------------------------

@pytest.mark.slow
def test_gaussian_density_integrates_to_one():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2.0, 0.5, 300), rng.normal(1.5, 1.0, 300)])[:, None] * 3 + 10
    vae = VAE(n_components=1, hidden_layer_sizes=(16,), random_state=0).fit(x)
    grid = np.linspace(x.min() - 15, x.max() + 15, 1500)[:, None]
    density = np.exp(vae.score_samples(grid, n_importance=300))
    assert abs(trapezoid(density, grid[:, 0]) - 1) < 0.05


@pytest.mark.slow
def test_continuous_bernoulli_density_integrates_to_one():
    rng = np.random.default_rng(0)
    x = rng.beta(2.0, 5.0, size=(600, 1))
    vae = VAE(n_components=1, hidden_layer_sizes=(16,), likelihood="continuous_bernoulli", random_state=0).fit(x)
    grid = np.linspace(0, 1, 1001)[:, None]
    density = np.exp(vae.score_samples(grid, n_importance=300))
    assert abs(trapezoid(density, grid[:, 0]) - 1) < 0.05


# --------------------------------------------------------------------------
# The continuous Bernoulli
# --------------------------------------------------------------------------

def test_continuous_bernoulli_means_and_samples_agree():
    rng = np.random.default_rng(0)
    X = rng.beta(2.0, 2.0, size=(300, 6)) ** np.arange(1, 7)
    vae = VAE(likelihood="continuous_bernoulli", max_iter=20, **SMALL).fit(X)
    assert vae.mean_ is None  # data in [0, 1] is modelled as it is
    z = vae.transform(X[:1])
    mean = vae.inverse_transform(z)[0]
    draws = vae._engine().sample_observations(vae.params_, np.repeat(z, 20000, axis=0).astype(np.float32), 7)
    assert ((draws >= 0) & (draws <= 1)).all()
    standard_error = draws.std(0) / np.sqrt(len(draws))
    assert (np.abs(draws.mean(0) - mean) < 5 * standard_error).all()
    with pytest.raises(ValueError, match="needs X in \\[0, 1\\]"):
        VAE(likelihood="continuous_bernoulli").fit(X + 1)


def test_continuous_bernoulli_mean_is_its_expectation():
    """The closed form E[x] = sigmoid(a) / tanh(a / 2) - 1 / a against numerical
    integration of x p(x | a), across the series bound at |a| = 0.25."""
    from pyvae import _core

    vae = VAE(n_components=1, hidden_layer_sizes=(), likelihood="continuous_bernoulli", max_iter=1, random_state=0)
    vae.fit(np.full((4, 1), 0.5))
    layout = {name: o for name, o, _ in vae._engine().layout()}
    grid = np.linspace(0, 1, 20001)
    for logit in (-30.0, -3.0, -0.3, -0.2, 0.0, 1e-3, 0.2, 0.26, 5.0):
        params = vae.params_.copy()
        params[layout["decoder.0.weight"]] = 0.0
        params[layout["decoder.0.bias"]] = logit
        engine = _core.Model64(**vae._fit_config)
        mean = engine.decode(params.astype(np.float64), np.zeros((1, 1)))[0, 0]
        lam = 1 / (1 + np.exp(-logit))
        unnormalized = lam**grid * (1 - lam) ** (1 - grid)
        expected = trapezoid(grid * unnormalized, grid) / trapezoid(unnormalized, grid)
        assert abs(mean - expected) < 1e-6, (logit, mean, expected)


# --------------------------------------------------------------------------
# Training that converges
# --------------------------------------------------------------------------

def test_default_fit_on_small_data_converges_without_warning():
    X = load_wine().data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae = VAE(n_components=3, random_state=0).fit(X)
    assert vae.n_iter_ < vae.max_iter
    assert vae.t_ > 1000  # a few hundred rows still get enough optimizer steps
    assert len(vae.validation_scores_) == vae.n_iter_  # small data: validation-based stopping


@pytest.mark.slow
def test_default_fit_matches_factor_analysis_on_wine():
    X_train, X_test = train_test_split(load_wine().data, test_size=0.25, random_state=0)
    fa = FactorAnalysis(5).fit(X_train).score(X_test)
    vae = VAE(n_components=5, random_state=0).fit(X_train)
    assert vae.score(X_test, n_importance=200) > fa - 0.5


def test_partial_fit_never_holds_out_rows():
    X = tabular()
    vae = VAE(**SMALL).partial_fit(X)
    assert vae.validation_scores_ == [] and vae.n_iter_ == 1
