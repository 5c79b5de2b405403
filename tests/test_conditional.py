"""The VAE with arbitrary conditioning (csrc/model/conditional.h): its loss against a NumPy
reference, its hand-derived gradient against central finite differences in float64, and its
training and imputation's determinism."""

import numpy as np
import pytest

from pyvae import _core

D, Z = 4, 2


# Bin edges per feature for the piecewise-linear encoding: three bins, one, the value itself, two.
EDGES = [[-1.0, -0.2, 0.3, 1.5], [-0.5, 0.5], [], [0.0, 0.7, 2.0]]


def make(dtype=np.float64, hidden=(5,), activation="tanh", n_threads=1, hide_rate=0.3, bin_edges=()):
    cls = _core.ConditionalModel64 if dtype == np.float64 else _core.ConditionalModel32
    return cls(n_features=D, n_components=Z, hidden_layer_sizes=list(hidden), activation=activation,
               hide_rate=hide_rate, variance_floor=1e-6, bin_edges=[list(e) for e in bin_edges],
               n_threads=n_threads)


def rows(n=7, seed=0, missing=0.25):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    X[rng.random(X.shape) < missing] = np.nan
    known = (~np.isnan(X) & (rng.random(X.shape) < 0.5)).astype(np.float64)
    eps = rng.normal(size=(n, Z))
    return X, known, eps


def encode(X, mask, bin_edges):
    """e(x) * mask spread over each feature's units, as the header defines it (the value itself without edges)."""
    blocks = []
    for j in range(D):
        x = np.where(mask[:, j] > 0, X[:, j], 0.0)[:, None]
        edges = np.asarray(bin_edges[j] if len(bin_edges) else [], dtype=float)
        if len(edges) >= 2:
            units = np.clip((x - edges[:-1]) / np.diff(edges), 0.0, 1.0)
        else:
            units = x
        blocks.append(units * (mask[:, j:j + 1] > 0))
    return np.hstack(blocks)


def reference_loss(params, X, known, eps, hidden, activation, bin_edges=()):
    """Per-row loss written out from the layout the header documents (prior, proposal, decoder, log-variances)."""
    act = np.tanh if activation == "tanh" else (lambda a: np.maximum(a, 0))
    offset = 0
    width = sum(max(1, len(e) - 1) for e in bin_edges) if len(bin_edges) else D

    def stack(n_in, n_out):
        nonlocal offset
        widths, layers = [n_in, *hidden, n_out], []
        for a, b in zip(widths, widths[1:]):
            W = params[offset:offset + a * b].reshape(a, b)
            bias = params[offset + a * b:offset + a * b + b]
            offset += a * b + b
            layers.append((W, bias))
        return layers

    def run(layers, h):
        for depth, (W, b) in enumerate(layers):
            h = h @ W + b
            if depth + 1 < len(layers):
                h = act(h)
        return h
    prior, proposal, decoder = stack(width + D, 2 * Z), stack(width + 2 * D, 2 * Z), stack(Z + width + D, D)
    logvar = params[offset:offset + D]
    assert offset + D == len(params)
    observed = ~np.isnan(X)
    x0 = np.where(observed, X, 0.0)
    head_p = run(prior, np.hstack([encode(X, known, bin_edges), known]))
    head_q = run(proposal, np.hstack([encode(X, observed, bin_edges), observed.astype(float), known]))
    mu_p, lv_p = head_p[:, :Z], np.clip(head_p[:, Z:], -30, 30)
    mu_q, lv_q = head_q[:, :Z], np.clip(head_q[:, Z:], -30, 30)
    z = mu_q + np.exp(lv_q / 2) * eps
    mean = run(decoder, np.hstack([z, encode(X, known, bin_edges), known]))
    var = 1e-6 + np.exp(logvar)
    nll = 0.5 * (np.log(2 * np.pi) + np.log(var) + (x0 - mean) ** 2 / var)
    reconstruct = observed & (known == 0)
    kl = 0.5 * (lv_p - lv_q + (np.exp(lv_q) + (mu_q - mu_p) ** 2) / np.exp(lv_p) - 1)
    return np.where(reconstruct, nll, 0.0).sum(1) + kl.sum(1)


ARCHITECTURES = [((5,), "tanh", ()), ((5, 3), "tanh", ()), ((6,), "relu", ()), ((5, 3), "tanh", EDGES),
                 ((6,), "relu", EDGES)]


@pytest.mark.parametrize("hidden, activation, bin_edges", ARCHITECTURES)
def test_loss_matches_reference(hidden, activation, bin_edges):
    model = make(hidden=hidden, activation=activation, bin_edges=bin_edges)
    params = model.init_params(3)
    X, known, eps = rows(n=40)  # enough rows that every bin of EDGES holds values, below and above
    loss, _, row_loss = model.loss_and_grad(params, X, known, eps)
    want = reference_loss(params, X, known, eps, hidden, activation, bin_edges)
    np.testing.assert_allclose(row_loss, want, rtol=1e-12, atol=1e-12)
    assert loss == pytest.approx(want.mean(), rel=1e-12)


@pytest.mark.parametrize("hidden, activation, bin_edges", ARCHITECTURES)
def test_gradient_matches_finite_differences(hidden, activation, bin_edges):
    model = make(hidden=hidden, activation=activation, bin_edges=bin_edges)
    rng = np.random.default_rng(1)
    params = model.init_params(5)
    params[-D:] = rng.normal(scale=0.3, size=D)  # log-variances away from 0
    X, known, eps = rows(seed=2)
    _, grad, _ = model.loss_and_grad(params, X, known, eps)
    h = 1e-6
    numeric = np.empty_like(params)
    for k in range(len(params)):
        step = np.zeros_like(params)
        step[k] = h
        numeric[k] = (model.loss_and_grad(params + step, X, known, eps)[0] -
                      model.loss_and_grad(params - step, X, known, eps)[0]) / (2 * h)
    # every tensor receives a gradient: the prior's through the KL, the proposal's through z and the KL
    assert np.count_nonzero(grad) > 0.8 * len(grad)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8 * np.abs(numeric).max())


def test_encoded_width_and_bad_edges():
    assert make().encoded_width == D
    assert make(bin_edges=EDGES).encoded_width == 3 + 1 + 1 + 2
    with pytest.raises(ValueError, match="one list per feature"):
        make(bin_edges=EDGES[:3])
    for bad in ([0.0, 0.0], [1.0, 0.5], [0.0, np.inf], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="finite and increasing"):
            make(bin_edges=[bad, [], [], []])


def test_known_must_be_observed():
    model = make()
    params = model.init_params(0)
    X, known, eps = rows()
    bad = known.copy()
    bad[np.isnan(X)] = 1.0
    with pytest.raises(ValueError, match="only where X is observed"):
        model.loss_and_grad(params, X, bad, eps)
    with pytest.raises(ValueError, match="0 or 1"):
        model.loss_and_grad(params, X, known * 0.5, eps)


def correlated(n=300, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 1))
    X = latent @ np.ones((1, D)) + 0.1 * rng.normal(size=(n, D))
    return X


def train(model, X, epochs, seed=0, n_threads=1):
    params = model.init_params(seed)
    m, v = np.zeros_like(params), np.zeros_like(params)
    step, losses = 0, []
    adam = _core.AdamSettings(learning_rate=3e-3)
    for _ in range(epochs):
        loss, step = model.train_epoch(params, m, v, step, X, np.arange(len(X), dtype=np.int64), 32, seed, adam)
        losses.append(loss)
    return params, losses


def test_training_learns_and_imputes_from_the_known_entries():
    X = correlated()
    model = make(dtype=np.float32, hidden=(32,))
    params, losses = train(model, X.astype(np.float32), 60)
    assert losses[-1] < losses[0] - 1.0
    X_missing = X.copy()
    X_missing[:, 0] = np.nan  # the first column follows from the others
    filled = model.impute(params, X_missing.astype(np.float32), 20, 0)
    np.testing.assert_array_equal(filled[:, 1:], X_missing[:, 1:].astype(np.float32))
    rmse = np.sqrt(np.mean((filled[:, 0] - X[:, 0]) ** 2))
    assert rmse < 0.3 * X[:, 0].std()


def test_training_and_imputation_are_the_same_bits_with_one_or_two_threads():
    X = correlated(n=200).astype(np.float32)
    X[::7, 2] = np.nan
    out = []
    for threads in (1, 2):
        model = make(dtype=np.float32, hidden=(16,), n_threads=threads)
        params, _ = train(model, X, 5)
        out.append((params, model.impute(params, X, 10, 3)))
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_a_row_imputes_the_same_alone_or_in_a_batch():
    X = correlated(n=50).astype(np.float32)
    X[::3, 1] = np.nan
    model = make(dtype=np.float32, hidden=(16,))
    params, _ = train(model, X, 3)
    whole = model.impute(params, X, 10, 7)
    for i in (0, 3, 49):
        np.testing.assert_array_equal(model.impute(params, X[i:i + 1], 10, 7)[0], whole[i])


# ---- ConditionalVAEImputer ------------------------------------------------------------

from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from pyvae import ConditionalVAEImputer  # noqa: E402


def quick(**kw):
    return ConditionalVAEImputer(**{**dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0), **kw})


@parametrize_with_checks([quick(), quick(n_components=2, activation="relu"), quick(n_bins=4)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def holes(n=300, seed=0, rate=0.15):
    X = correlated(n=n, seed=seed) * np.array([1.0, 10.0, 0.1, 3.0]) + np.array([0.0, 5.0, -2.0, 100.0])
    X_missing = X.copy()
    X_missing[np.random.default_rng(seed + 1).random(X.shape) < rate] = np.nan
    return X, X_missing


def test_fills_from_the_other_columns_in_their_own_units():
    X, X_missing = holes()
    imputer = ConditionalVAEImputer(hidden_layer_sizes=(32,), max_iter=80, random_state=0)
    filled = imputer.fit_transform(X_missing)
    hole = np.isnan(X_missing)
    np.testing.assert_array_equal(filled[~hole], X_missing[~hole])
    error = (filled - X)[hole] / np.broadcast_to(X.std(0), X.shape)[hole]
    mean_fill = (np.nanmean(X_missing, 0) - X)[hole] / np.broadcast_to(X.std(0), X.shape)[hole]
    assert np.sqrt(np.mean(error ** 2)) < 0.4 * np.sqrt(np.mean(mean_fill ** 2))
    assert len(imputer.loss_curve_) == imputer.n_iter_ == 80


def test_binned_encoding_learns_a_step_the_values_alone_blur():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, 300)
    step = np.where(x0 > 0.1, 3.0, 0.0) + 0.05 * rng.normal(size=300)
    X = np.column_stack([x0, step, rng.normal(size=300), rng.integers(0, 2, 300)])
    X_missing = X.copy()
    X_missing[rng.random(300) < 0.3, 1] = np.nan
    hole = np.isnan(X_missing)
    rmse = {}
    for bins in (0, 8):
        imputer = ConditionalVAEImputer(hidden_layer_sizes=(32,), max_iter=80, n_bins=bins, random_state=0)
        rmse[bins] = np.sqrt(np.mean((imputer.fit_transform(X_missing) - X)[hole] ** 2))
    assert rmse[8] < 0.7 * rmse[0]
    assert len(imputer.bin_edges_[0]) == 9 and imputer.bin_edges_[0][0] == pytest.approx(X[:, 0].min(), rel=1e-6)
    np.testing.assert_allclose(imputer.bin_edges_[3], [0.0, 1.0], atol=1e-6)  # a binary column: one bin


def test_same_random_state_same_result_and_float32_kept():
    _, X_missing = holes(n=120)
    a = quick(random_state=3).fit_transform(X_missing)
    b = quick(random_state=3).fit_transform(X_missing)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, quick(random_state=4).fit_transform(X_missing))
    assert quick().fit(X_missing).transform(X_missing.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("params, message", [
    (dict(hide_rate=1.0), "hide_rate"), (dict(hide_rate=0), "hide_rate"), (dict(n_draws=0), "n_draws"),
    (dict(max_iter=0), "max_iter"), (dict(hidden_layer_sizes=(0,)), "hidden_layer_sizes"),
    (dict(activation="sigmoid"), "activation"), (dict(batch_size=0), "batch_size"),
    (dict(learning_rate=-1.0), "learning_rate"), (dict(n_components=0), "n_components"),
])
def test_bad_hyperparameters_raise_before_any_state_changes(params, message):
    _, X_missing = holes(n=60)
    imputer = quick().fit(X_missing)
    before = imputer.transform(X_missing)
    imputer.set_params(**params)
    with pytest.raises(ValueError, match=message):
        imputer.fit(X_missing)
    imputer.set_params(**{k: quick().get_params()[k] for k in params})
    np.testing.assert_array_equal(imputer.transform(X_missing), before)


def test_bad_input():
    _, X_missing = holes(n=60)
    with pytest.raises(NotFittedError):
        quick().transform(X_missing)
    bad = X_missing.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        quick().fit(bad)
    empty = X_missing.copy()
    empty[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"Features \[2\] have no observed value"):
        quick().fit(empty)
    imputer = quick().fit(X_missing)
    with pytest.raises(ValueError, match="features"):
        imputer.transform(X_missing[:, :3])


def test_diverging_training_stops_with_a_clear_error():
    _, X_missing = holes(n=60)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        quick(learning_rate=1e30, max_iter=3).fit(X_missing)


def test_in_a_pipeline_and_pickled():
    import pickle
    X, X_missing = holes(n=120)
    pipe = make_pipeline(quick(), LinearRegression()).fit(X_missing[:, :3], X[:, 3])
    assert np.isfinite(pipe.predict(X_missing[:, :3])).all()
    imputer = quick().fit(X_missing)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(imputer)).transform(X_missing),
                                  imputer.transform(X_missing))


def test_transform_uses_the_network_fit_built():
    _, X_missing = holes(n=60)
    imputer = quick().fit(X_missing)
    before = imputer.transform(X_missing)
    imputer.set_params(hidden_layer_sizes=(8, 8), activation="relu", hide_rate=0.5)
    np.testing.assert_array_equal(imputer.transform(X_missing), before)
