"""Semi-amortized inference (Model::refine_posterior): the gradient it follows
against central finite differences (float64), its ELBO against the training
pass's terms, and what refining buys and keeps: a tighter bound where the
encoder's q is poor, row- and thread-invariant results, and VAEImputer's
handling of the setting."""

import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.base import clone

from pyvae import VAE, VAEImputer
from test_gradients import D, N, S, Z, make_batch, make_model, random_params

CASES = [  # (likelihood, activation, posterior, kl)
    ("gaussian", "tanh", "gaussian", "analytic"),
    ("gaussian", "relu", "gaussian", "analytic"),
    ("bernoulli", "tanh", "gaussian", "analytic"),
    ("continuous_bernoulli", "tanh", "gaussian", "analytic"),
    ("gaussian_isotropic", "tanh", "gaussian", "analytic"),
    ("gaussian_heteroscedastic", "tanh", "gaussian", "analytic"),
    ("gaussian", "tanh", "logistic", "mc"),
    ("gaussian", "tanh", "laplace", "mc"),
]


def with_params(fitted, **params):
    """A copy of a fitted estimator with other hyperparameters and the same learned state."""
    copy = clone(fitted).set_params(**params)
    copy.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_") or k.startswith("_")})
    copy.__dict__.pop("_engine_cache", None)
    return copy


def random_head(seed=3):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(size=(N, Z)), rng.normal(scale=0.5, size=(N, Z)) - 0.5])


@pytest.mark.parametrize("missing", [False, True])
@pytest.mark.parametrize("likelihood,activation,posterior,kl", CASES)
def test_head_gradient_matches_finite_differences(likelihood, activation, posterior, kl, missing):
    model = make_model(likelihood, kl, activation, posterior=posterior, missing=missing, variance_floor=0.1)
    params = random_params(model)
    x, _, noise = make_batch(likelihood, posterior, missing=missing)
    head = random_head()
    elbo, _ = model.head_elbo_gradient(params, x, head, noise)
    assert np.all(np.isfinite(elbo))
    d_head, numeric = head_gradient_and_differences(model, params, x, noise, head)
    np.testing.assert_allclose(d_head, numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())


def head_gradient_and_differences(model, params, x, noise, head, h=1e-6):
    """(d_head, its central finite differences): d_head is the gradient of -ELBO_i, row by row."""
    _, d_head = model.head_elbo_gradient(params, x, head, noise)
    numeric = np.empty_like(head)
    for index in np.ndindex(head.shape):
        up, down = head.copy(), head.copy()
        up[index] += h
        down[index] -= h
        numeric[index] = -(model.head_elbo_gradient(params, x, up, noise)[0][index[0]]
                           - model.head_elbo_gradient(params, x, down, noise)[0][index[0]]) / (2 * h)
    return d_head, numeric


@pytest.mark.parametrize("missing", [False, True])
def test_head_gradient_with_per_column_kinds(missing):
    from test_iwae import make_batch as mixed_batch
    from test_iwae import make_model as make_mixed_model
    from test_mixed import COLUMNS

    model = make_mixed_model("mixed", objective="elbo", missing=missing, columns=COLUMNS,
                             n_features=sum(w for _, w in COLUMNS))
    x, _, noise = mixed_batch("mixed", missing=missing)
    d_head, numeric = head_gradient_and_differences(model, random_params(model), x, noise, random_head())
    np.testing.assert_allclose(d_head, numeric, rtol=1e-6, atol=1e-6 * np.abs(numeric).max())


@pytest.mark.parametrize("missing", [False, True])
def test_head_elbo_is_the_training_passes_elbo_at_the_encoders_head(missing):
    # The training pass computes each draw's log p(x|z) and the closed-form KL from
    # the encoder's head; the refinement's ELBO at that head, with the same noise,
    # must be their mean minus the KL.
    model = make_model("gaussian", "analytic", "tanh", missing=missing, variance_floor=0.1)
    params = random_params(model)
    x, x_enc, noise = make_batch("gaussian", missing=missing)
    terms = model.loss_and_grad(params, x, x_enc, noise)
    mu, logvar = model.encode(params, x_enc)
    elbo, _ = model.head_elbo_gradient(params, x, np.column_stack([mu, logvar]), noise)
    np.testing.assert_allclose(elbo, terms["recon"].mean(axis=0) - terms["kl_analytic"], rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def wine_vae():
    from sklearn.datasets import load_wine

    X = load_wine().data
    vae = VAE(n_components=3, hidden_layer_sizes=(32,), learning_rate_schedule="linear", max_iter=60, random_state=0,
              n_threads=1).fit(X[:140])
    return X, vae


def test_refining_tightens_the_bound_where_the_encoder_is_poor(wine_vae):
    # Rows far outside the training data (the held-out rows stretched 4x about the
    # mean): the encoder's q for them is an extrapolation, and the importance-weighted
    # bound of a refined q is far higher. Both are lower bounds of the same log p(x).
    X, vae = wine_vae
    far = X.mean(axis=0) + 4.0 * (X[140:] - X.mean(axis=0))
    plain = vae.score_samples(far, n_importance=100)
    refined = vae.score_samples(far, n_importance=100, refine_steps=100)
    assert refined.mean() > plain.mean() + 10.0
    assert np.mean(refined > plain) > 0.9
    # On rows like the training data the encoder is close already: the bound moves
    # little either way (the IWAE bound's noise with K = 100 is well under a nat).
    near_plain = vae.score_samples(X[140:], n_importance=100)
    near_refined = vae.score_samples(X[140:], n_importance=100, refine_steps=100)
    assert near_refined.mean() > near_plain.mean() - 0.2


def test_refined_elbo_is_higher_than_the_encoders(wine_vae):
    X, vae = wine_vae
    far = X.mean(axis=0) + 3.0 * (X[140:] - X.mean(axis=0))
    assert vae.score(far, refine_steps=50) > vae.score(far) + 5.0


def test_refined_scores_do_not_depend_on_the_other_rows_or_the_threads(wine_vae):
    X, vae = wine_vae
    rows = X[130:160]
    together = vae.score_samples(rows, n_importance=20, refine_steps=30)
    alone = np.array([vae.score_samples(rows[i:i + 1], n_importance=20, refine_steps=30)[0] for i in range(len(rows))])
    assert np.array_equal(together, alone)
    two = with_params(vae, n_threads=2)
    assert np.array_equal(two.score_samples(rows, n_importance=20, refine_steps=30), together)


def test_refine_steps_is_checked(wine_vae):
    X, vae = wine_vae
    for bad in (-1, 1.5, "10"):
        with pytest.raises(ValueError, match="refine_steps"):
            vae.score_samples(X[:5], refine_steps=bad)


def low_rank_missing(seed=0, n=240):
    rng = np.random.default_rng(seed)
    X = np.tanh(rng.normal(size=(n, 2)) @ rng.normal(size=(2, 6))) + 0.05 * rng.normal(size=(n, 6))
    X_missing = X.copy()
    X_missing[rng.random(X.shape) < 0.2] = np.nan
    return X, X_missing


def test_imputer_refines_by_default_and_zero_steps_is_the_encoders_q():
    X, X_missing = low_rank_missing()
    settings = dict(hidden_layer_sizes=(16,), max_iter=30, n_importance=20, random_state=0, n_threads=1)
    refined = VAEImputer(**settings).fit(X_missing)
    assert refined.refine_steps == 50
    plain = with_params(refined, refine_steps=0)
    a, b = refined.transform(X_missing), plain.transform(X_missing)
    observed = ~np.isnan(X_missing)
    assert np.array_equal(a[observed], b[observed])
    assert not np.array_equal(a[~observed], b[~observed])
    # The same steps, the same imputations; and the draws refine too.
    assert np.array_equal(refined.transform(X_missing), a)
    assert not np.array_equal(refined.sample_imputations(X_missing[:10], 2, random_state=0),
                              plain.sample_imputations(X_missing[:10], 2, random_state=0))


def test_imputer_rejects_a_bad_refine_steps_before_changing_state():
    X, X_missing = low_rank_missing()
    with pytest.raises(ValueError, match="refine_steps"):
        VAEImputer(refine_steps=-1, max_iter=2).fit(X_missing)
    fitted = VAEImputer(hidden_layer_sizes=(8,), max_iter=3, n_importance=5, random_state=0).fit(X_missing)
    before = fitted.transform(X_missing)
    with pytest.raises(ValueError, match="refine_steps"):
        fitted.set_params(refine_steps=-2).transform(X_missing)
    assert np.array_equal(fitted.set_params(refine_steps=50).transform(X_missing), before)


def test_imputer_files_from_before_refinement_impute_as_they_did(tmp_path):
    import pyvae

    X, X_missing = low_rank_missing()
    fitted = VAEImputer(hidden_layer_sizes=(8,), max_iter=3, n_importance=5, random_state=0).fit(X_missing)
    path = tmp_path / "imputer.npz"
    fitted.save(path)
    # The same file as an older pyvae wrote it: no refine_steps among its hyperparameters.
    old = tmp_path / "old.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "header.npy":
                header_array = np.load(io.BytesIO(data), allow_pickle=False)
                header = json.loads(str(header_array))
                del header["hyperparameters"]["refine_steps"]
                buffer = io.BytesIO()
                np.save(buffer, np.array(json.dumps(header)), allow_pickle=False)
                data = buffer.getvalue()
            dst.writestr(item, data)
    loaded = pyvae.load(old)
    assert loaded.refine_steps == 0
    assert pyvae.load(path).refine_steps == 50
    assert np.array_equal(loaded.transform(X_missing), with_params(fitted, refine_steps=0).transform(X_missing))


def test_shapes_are_checked():
    model = make_model("gaussian", "analytic", "tanh")
    params = random_params(model)
    x, _, noise = make_batch("gaussian")
    with pytest.raises(ValueError, match="wrong size"):
        model.head_elbo_gradient(params, x, np.zeros((N, Z)), noise)
    assert D == x.shape[1] and S == noise.shape[0]


@pytest.mark.parametrize("bad", [dict(refine_steps=-1), dict(refine_steps=5, refine_rate=0.0),
                                 dict(refine_steps=5, refine_rate=float("nan")), dict(refine_steps=5, refine_draws=0)])
def test_engine_refuses_bad_refinement_settings(bad):
    model = make_model("gaussian", "analytic", "tanh", missing=True)
    params = random_params(model)
    x, _, _ = make_batch("gaussian", missing=True)
    for call in (lambda: model.score(params, x, 10, True, 0, **bad), lambda: model.impute(params, x, 10, 0, **bad),
                 lambda: model.sample_imputations(params, x, 10, 2, 0, **bad)):
        with pytest.raises(ValueError, match="refine_steps must be >= 0"):
            call()
