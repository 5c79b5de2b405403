"""Issue 2's promises: training raises the held-out ELBO, reproducibly, and
every output has the documented shape, dtype and range."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from pyvae import VAE


@pytest.fixture(scope="module")
def digits():
    X = load_digits().data / 16.0
    return X[:1400], X[1400:]


def fit_quietly(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


def bernoulli_vae(**kw):
    params = dict(n_components=8, hidden_layer_sizes=(64,), likelihood="bernoulli", max_iter=30, random_state=0,
                  batch_size=128, early_stopping=False, learning_rate=1e-3, learning_rate_schedule="constant")
    params.update(kw)
    return VAE(**params)


def test_training_raises_held_out_elbo(digits):
    X_train, X_test = digits
    untrained = fit_quietly(bernoulli_vae(max_iter=1, learning_rate=1e-12), X_train).score(X_test)
    trained = fit_quietly(bernoulli_vae(), X_train).score(X_test)
    assert trained > untrained + 10, (untrained, trained)  # about -44 -> -26 nats per digit
    assert trained > -30


@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_same_random_state_same_result(digits, kl):
    X_train, X_test = digits
    a = fit_quietly(bernoulli_vae(kl=kl, max_iter=3, n_mc_samples=2), X_train)
    b = fit_quietly(bernoulli_vae(kl=kl, max_iter=3, n_mc_samples=2), X_train)
    assert np.array_equal(a.params_, b.params_)
    assert np.array_equal(a.score_samples(X_test), b.score_samples(X_test))
    assert np.array_equal(a.sample(5, random_state=1), b.sample(5, random_state=1))
    c = fit_quietly(bernoulli_vae(kl=kl, max_iter=3, n_mc_samples=2, random_state=1), X_train)
    assert not np.array_equal(a.params_, c.params_)


def test_loss_curve_decreases(digits):
    model = fit_quietly(bernoulli_vae(), digits[0])
    assert len(model.loss_curve_) == model.n_iter_ == 30
    assert model.loss_curve_[-1] < model.loss_curve_[0] - 10
    assert model.t_ == 30 * int(np.ceil(1400 / 128))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian_isotropic"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_shapes_dtypes_and_ranges(digits, likelihood, dtype):
    X = digits[0][:300].astype(dtype)
    model = fit_quietly(VAE(n_components=3, hidden_layer_sizes=(16,), likelihood=likelihood, max_iter=3,
                            random_state=0), X)
    Z = model.transform(X)
    assert Z.shape == (300, 3) and Z.dtype == dtype
    mean, std = model.transform(X, return_std=True)
    assert np.array_equal(mean, Z) and std.shape == Z.shape and (std > 0).all()
    X_hat = model.inverse_transform(Z)
    assert X_hat.shape == X.shape and X_hat.dtype == dtype
    S = model.sample(7, random_state=0)
    assert S.shape == (7, 64) and S.dtype == np.float64
    scores = model.score_samples(X)
    assert scores.shape == (300,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    assert model.score(X) == pytest.approx(scores.mean())
    posterior = model.sample_posterior(X[:10], n_samples=4, random_state=0, rows_first=True)
    assert posterior.shape == (10, 4, 3)
    if likelihood == "bernoulli":
        assert ((X_hat >= 0) & (X_hat <= 1)).all()
        assert set(np.unique(S)) <= {0.0, 1.0}
        assert (scores <= 0).all()  # a lower bound on the log of a probability


def test_fit_transform_equals_fit_then_transform(digits):
    X = digits[0][:200]
    a = bernoulli_vae(max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        Z = a.fit_transform(X)
    assert np.array_equal(Z, a.transform(X))


def test_verbose_reports_each_epoch_and_quiet_is_silent(digits, capsys):
    fit_quietly(bernoulli_vae(max_iter=3, verbose=2), digits[0][:200])
    out = capsys.readouterr()
    assert (out.out + out.err).count("ELBO") >= 3 and "KL" in out.out + out.err
    fit_quietly(bernoulli_vae(max_iter=3, verbose=0), digits[0][:200])
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
