"""What fit and partial_fit do besides the epochs stays cheap: active_units_
comes from the posterior means the last epoch computed, not from encoding every
row again."""

import numpy as np

from pyvae import VAE


def factor_data(n_rows=1000, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(8, 2))
    return rng.normal(size=(n_rows, 2)) @ W.T + 0.3 * rng.normal(size=(n_rows, 8))


class _NoEncode:
    """The engine, except that encoding fails."""

    def __init__(self, engine):
        object.__setattr__(self, "_engine", engine)

    def __getattr__(self, name):
        if name == "encode":
            raise AssertionError("fit encoded the training rows again")
        return getattr(self._engine, name)

    def __setattr__(self, name, value):
        setattr(self._engine, name, value)


def test_partial_fit_does_not_encode_the_rows_again():
    X = factor_data()
    est = VAE(n_components=4, hidden_layer_sizes=(16,), random_state=0, n_threads=1).partial_fit(X)
    device, engine = est.__dict__["_engine_cache"]
    est.__dict__["_engine_cache"] = (device, _NoEncode(engine))
    est.partial_fit(X)
    assert est.n_iter_ == 2
    # The count comes from the epoch's own sums, and equals the definition's on the rows.
    mu, _ = engine.encode(est.params_, X.astype(np.float32))
    assert est.active_units_ == int(np.sum(mu.astype(np.float64).var(axis=0) > 1e-2))


def test_active_units_match_the_posterior_means_when_the_epoch_leaves_the_model_as_it_was():
    # With a vanishing step, the last epoch's posterior means are those of the
    # fitted model: the count must be the one transform gives.
    X = factor_data(seed=1)
    est = VAE(n_components=6, hidden_layer_sizes=(32,), learning_rate=3e-3, random_state=0, n_threads=1,
              learning_rate_schedule="constant")
    for _ in range(40):
        est.partial_fit(X)
    before = est.params_.copy()
    est.set_params(learning_rate=1e-30)
    est.partial_fit(X)
    assert np.array_equal(est.params_, before)
    variance = np.var(est.transform(X), axis=0)
    assert 1 <= est.active_units_ < 6
    assert est.active_units_ == int(np.sum(variance > 1e-2))
