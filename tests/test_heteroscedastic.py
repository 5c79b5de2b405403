"""likelihood="gaussian_heteroscedastic": a decoder that gives each row its own
variance per feature (csrc/model/likelihood.h). Its gradient is checked in
test_gradients.py and test_iwae.py; here: what the fitted estimator gives back
(the mean, draws with the row's variance, scores, a saved copy), the imputer's
kind, and bad input."""

import numpy as np
import pytest
from sklearn.datasets import load_wine

import pyvae
from pyvae import VAE, VAEImputer, _core
from reference import mlp, unpack

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

WINE = load_wine().data


@pytest.fixture(scope="module")
def fitted():
    # standardize=True: inverse_transform is then the decoder's mean in the data's units (with the power
    # transform of "auto" it is the median there).
    return VAE(likelihood="gaussian_heteroscedastic", hidden_layer_sizes=(16,), n_components=2, max_iter=5,
               standardize=True, random_state=0, n_threads=1).fit(WINE)


def decoder_output(model, Z):
    """The decoder's output [m | lv] (n, 2D) for Z, in the standardized units the model works in."""
    return mlp(unpack(model._engine(), np.asarray(model.params_, np.float64)), "decoder.", Z, model.activation)


def test_layout_has_no_shared_noise_and_a_two_part_head(fitted):
    names = {name: shape for name, _, shape in fitted._engine().layout()}
    assert not any(name.endswith("noise_logvar") for name in names)
    last = max(name for name in names if name.startswith("decoder.") and name.endswith(".weight"))
    assert names[last] == (16, 2 * WINE.shape[1])
    # standardize="auto" standardizes it, as it does the other Gaussian likelihoods.
    assert fitted.mean_ is not None and np.allclose(fitted.scale_, WINE.std(axis=0))


def test_inverse_transform_is_the_mean_half(fitted):
    Z = fitted.transform(WINE[:20])
    out = decoder_output(fitted, Z)
    D = WINE.shape[1]
    expected = out[:, :D] * fitted.scale_ + fitted.mean_
    assert np.all(np.abs(fitted.inverse_transform(Z) - expected) <= 1e-4 * (np.abs(expected) + fitted.scale_))


def test_draws_have_each_rows_own_variance():
    # Two latent points, each repeated: the draws' mean and variance per feature are
    # the decoder's mean and variance_floor + exp(clamped lv) at that point.
    D, floor, n = 3, 0.1, 20000
    model = _core.Model64(n_features=D, n_components=2, hidden_layer_sizes=[5], activation="tanh",
                          likelihood="gaussian_heteroscedastic", kl="analytic", posterior="gaussian",
                          gradient_estimator="reparameterization", n_mc_samples=1, beta=1.0, missing=False,
                          variance_floor=floor, n_threads=1)
    params = model.init_params(3) * 2.0
    points = np.array([[1.5, -0.5], [-1.0, 2.0]])
    out = mlp(unpack(model, params), "decoder.", points, "tanh")
    mean, var = out[:, :D], floor + np.exp(np.clip(out[:, D:], -30, 30))
    assert np.abs(var[0] - var[1]).max() > 0.1  # the two points' noise differs
    for p in range(2):
        draws = model.sample_observations(params, np.repeat(points[p:p + 1], n, axis=0), 7)
        assert np.all(np.abs(draws.mean(axis=0) - mean[p]) < 4 * np.sqrt(var[p] / n)), (draws.mean(axis=0), mean[p])
        np.testing.assert_allclose(draws.var(axis=0), var[p], rtol=4 * np.sqrt(2 / n))


def test_sample_score_and_save_load_round_trip(fitted, tmp_path):
    draws = fitted.sample(50, random_state=0)
    assert draws.shape == (50, WINE.shape[1]) and np.isfinite(draws).all()
    assert np.array_equal(draws, fitted.sample(50, random_state=0))
    scores = fitted.score_samples(WINE[:30], n_importance=20)
    assert scores.shape == (30,) and np.isfinite(scores).all()
    path = tmp_path / "hetero.npz"
    fitted.save(path)
    loaded = pyvae.load(path)
    assert loaded.likelihood == "gaussian_heteroscedastic"
    assert np.array_equal(loaded.score_samples(WINE[:30], n_importance=20), scores)
    assert np.array_equal(loaded.sample(50, random_state=0), draws)
    assert np.array_equal(loaded.inverse_transform(loaded.transform(WINE[:5])),
                          fitted.inverse_transform(fitted.transform(WINE[:5])))


def test_noise_that_follows_z_beats_one_variance_per_feature_held_out():
    # Two features on a circle around a latent angle, and a third whose noise grows
    # with the first: one variance per feature cannot follow it, the per-row one can.
    rng = np.random.default_rng(0)
    t = rng.uniform(-2, 2, 1200)
    X = np.column_stack([t, np.sin(t), 0.3 * t + np.exp(t) * 0.05 * rng.normal(size=t.size)])
    X[:, :2] += 0.02 * rng.normal(size=(t.size, 2))
    settings = dict(n_components=1, hidden_layer_sizes=(32,), max_iter=60, random_state=0, n_threads=1)
    scores = {lik: VAE(likelihood=lik, **settings).fit(X[:900]).score_samples(X[900:], n_importance=50).mean()
              for lik in ("gaussian", "gaussian_heteroscedastic")}
    assert scores["gaussian_heteroscedastic"] > scores["gaussian"] + 0.2, scores


def test_imputer_heteroscedastic_kind():
    rng = np.random.default_rng(1)
    X = WINE.copy()
    X[rng.random(X.shape) < 0.1] = np.nan
    kw = dict(max_iter=5, random_state=0, n_threads=1, hidden_layer_sizes=(16,))
    imputer = VAEImputer(column_kinds=["heteroscedastic"] * X.shape[1], **kw).fit(X)
    assert imputer.vae_.likelihood == "gaussian_heteroscedastic"
    filled = imputer.transform(X)
    assert np.isfinite(filled).all() and np.array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])
    # Filled in the data's units: within the range the columns span, give or take.
    low, high = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    span = high - low
    assert ((filled >= low - span) & (filled <= high + span)).all()
    draws = imputer.sample_imputations(X[:10], n_imputations=2, random_state=0)
    assert draws.shape == (10, 2, X.shape[1]) and np.isfinite(draws).all()
    holes = np.isnan(X[:10])
    assert not np.array_equal(draws[:, 0][holes], draws[:, 1][holes])  # drawn, not the mean twice


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(likelihood="gaussian_heteroscedastic", device="cuda"), "CPU engine only"),
        (dict(likelihood="gaussian_heteroskedastic"), "gaussian_heteroscedastic"),
    ],
)
def test_bad_settings_raise_before_fitting(kwargs, match):
    model = VAE(max_iter=1, **kwargs)
    with pytest.raises(ValueError, match=match):
        model.fit(WINE[:, :2])
    assert not hasattr(model, "params_")


def test_heteroscedastic_columns_beside_other_kinds():
    # Wine's first two columns heteroscedastic, a 0/1 column and a count beside them.
    rng = np.random.default_rng(2)
    X = np.column_stack([WINE[:, :2], WINE[:, 0] > 13, rng.poisson(3.0, len(WINE))]).astype(float)
    kinds = ["gaussian_heteroscedastic", "gaussian_heteroscedastic", "bernoulli", "poisson"]
    model = VAE(likelihood=kinds, hidden_layer_sizes=(16,), max_iter=5, random_state=0, n_threads=1).fit(X)
    assert np.allclose(model.scale_[:2], X[:, :2].std(axis=0)) and np.all(model.scale_[2:] == 1)
    draws = model.sample(200, random_state=0)
    assert set(np.unique(draws[:, 2])) <= {0.0, 1.0} and np.all(draws[:, 3] == np.round(draws[:, 3]))
    assert np.isfinite(model.score_samples(X[:20], n_importance=10)).all()
    # The imputer's kind, mixed with the others.
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.1] = np.nan
    imputer = VAEImputer(column_kinds=["heteroscedastic", "continuous", "binary", "count"], max_iter=5,
                         random_state=0, n_threads=1).fit(Xm)
    assert imputer.vae_.likelihood == ["gaussian_heteroscedastic", "gaussian", "bernoulli", "poisson"]
    filled = imputer.transform(Xm)
    assert np.isfinite(filled).all() and set(np.unique(filled[:, 2])) <= {0.0, 1.0}
