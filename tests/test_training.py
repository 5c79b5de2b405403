"""Training controls: partial_fit, warm_start, early stopping, divergence,
Ctrl-C, concurrent inference."""

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning

from pyvae import VAE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
X = load_digits().data / 16.0


def vae(**kw):
    params = dict(n_components=4, hidden_layer_sizes=(32,), likelihood="bernoulli", max_iter=5, random_state=0,
                  batch_size=128, early_stopping=False, learning_rate=1e-3, learning_rate_schedule="constant")
    params.update(kw)
    return VAE(**params)


def test_partial_fit_runs_one_epoch_per_call():
    model = vae()
    model.partial_fit(X[:500])
    assert model.n_iter_ == 1 and len(model.loss_curve_) == 1 and model.t_ == 4
    first = model.score(X[500:])
    for _ in range(5):
        model.partial_fit(X[:500])
    assert model.n_iter_ == 6 and model.t_ == 24
    assert model.score(X[500:]) > first


def test_partial_fit_continues_exactly_like_fit():
    """Epochs are the same whether they come from one fit or several partial_fits."""
    once = vae(max_iter=3, tol=0.0, n_iter_no_change=100).fit(X[:500])
    stepwise = vae()
    for _ in range(3):
        stepwise.partial_fit(X[:500])
    assert np.array_equal(once.params_, stepwise.params_)


def test_warm_start_continues_from_previous_fit():
    cold = vae(max_iter=3).fit(X[:500])
    warm = vae(max_iter=3, warm_start=True).fit(X[:500])
    params_after_first = warm.params_.copy()
    warm.fit(X[:500])
    assert warm.n_iter_ == 6 and not np.array_equal(warm.params_, params_after_first)
    cold.fit(X[:500])  # without warm_start, fit starts over
    assert cold.n_iter_ == 3 and np.array_equal(cold.params_, params_after_first)


def test_early_stopping_tracks_validation_and_keeps_best():
    model = vae(max_iter=200, early_stopping=True, n_iter_no_change=3, tol=0.0, validation_fraction=0.2).fit(X)
    assert model.n_iter_ < 200
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert np.isfinite(model.best_loss_) and model.best_loss_ == min(model.loss_curve_)


def test_convergence_on_training_loss_stops_early():
    model = vae(max_iter=500, tol=10.0, n_iter_no_change=2, learning_rate_schedule="constant").fit(X[:300])
    assert model.n_iter_ <= 8  # after the first epochs the smoothed loss no longer improves by 10 nats


# With a learning rate of 1e3 the learned noise variance of a Gaussian likelihood
# collapses until 1/variance overflows: the loss becomes infinite. (A Bernoulli model
# stays finite there, since its loss has no such term and q's log-variance is clamped.)
@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_isotropic"])
def test_divergence_raises_and_keeps_previous_model(likelihood):
    data = (X - X.mean(0)) * 10
    model = vae(likelihood=likelihood, max_iter=2).fit(data)
    before = model.transform(data)
    with pytest.raises(FloatingPointError, match="learning_rate"):
        model.set_params(learning_rate=1e3, max_iter=50).fit(data)
    assert np.array_equal(model.transform(data), before)
    with pytest.raises(FloatingPointError, match="diverged"):
        vae(likelihood=likelihood, learning_rate=1e3, max_iter=50).fit(data)


WINE = load_wine().data


# With learning_rate=10 every number stays finite, but Adam throws the parameters
# so far that the ELBO ends near -1e11: the fit used to return that model silently.
def test_finite_divergence_raises_naming_learning_rate_and_keeps_previous_model():
    model = VAE(max_iter=3, random_state=0).fit(WINE)
    before = model.transform(WINE)
    with pytest.raises(FloatingPointError, match=r"learning_rate=10\b.*worse than it did untrained") as info:
        model.set_params(learning_rate=10.0, max_iter=1000).fit(WINE)
    assert "smaller learning_rate" in str(info.value)
    assert model.learning_rate == 10.0 and model.n_iter_ == 3
    assert np.array_equal(model.transform(WINE), before)
    with pytest.raises(FloatingPointError, match="learning_rate=10"):
        VAE(learning_rate=10.0, random_state=0).fit(WINE)


def test_finite_divergence_is_caught_by_the_first_partial_fit_and_a_warm_start():
    with pytest.raises(FloatingPointError, match="learning_rate=10"):
        VAE(learning_rate=10.0, random_state=0).partial_fit(WINE)
    model = VAE(max_iter=3, random_state=0).fit(WINE)
    with pytest.raises(FloatingPointError, match="learning_rate=10"):
        model.set_params(learning_rate=10.0, warm_start=True, max_iter=1000).fit(WINE)
    assert model.n_iter_ == 3


@pytest.mark.parametrize("dataset", [load_wine, load_iris, load_diabetes, load_breast_cancer])
def test_healthy_fits_are_not_taken_for_divergence(dataset):
    # The learning rates a user may pick, beta = 0 (whose ELBO may fall as
    # training succeeds) and a fit that learns next to nothing.
    X_data = dataset().data
    for params in [dict(learning_rate=1e-3), dict(), dict(learning_rate=3e-2), dict(beta=0.0, n_components=8),
                   dict(max_iter=1), dict(learning_rate=1e-7, max_iter=2)]:
        VAE(random_state=0, **params).fit(X_data)


def test_divergence_advice_fits_the_model():
    # Standardized inside the model: standardizing is no advice.
    with pytest.raises(FloatingPointError) as info:
        VAE(learning_rate=10.0, random_state=0).fit(WINE)
    assert "variance_floor" in str(info.value) and "standardized" not in str(info.value)
    # Raw units the model does not standardize: it is.
    with pytest.raises(FloatingPointError, match="standardized features"):
        VAE(standardize=False, learning_rate=100.0, random_state=0).fit(WINE)
    # Data already standardized outside the model: it is not.
    scaled = (WINE - WINE.mean(0)) / WINE.std(0)
    with pytest.raises(FloatingPointError) as info:
        VAE(standardize=False, learning_rate=100.0, random_state=0).fit(scaled)
    assert "standardized" not in str(info.value)
    # No Gaussian column: no variance to floor, nothing to standardize.
    with pytest.raises(FloatingPointError) as info:
        vae(learning_rate=10.0, max_iter=100).fit(X)
    assert "smaller learning_rate" in str(info.value)
    assert "variance_floor" not in str(info.value) and "standardized" not in str(info.value)


def test_ctrl_c_stops_fit_and_leaves_a_usable_model():
    big = np.tile(X, (20, 1))  # ~36k rows: an epoch takes a while
    model = vae(max_iter=300, hidden_layer_sizes=(256,), tol=0.0, n_iter_no_change=300)
    main = threading.main_thread().ident

    def interrupt():
        time.sleep(0.5)
        signal.pthread_kill(main, signal.SIGINT)

    # A shell that starts a job in the background ignores SIGINT; install Python's
    # handler so the test sees what an interactive user's Ctrl-C does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=interrupt).start()
        with pytest.raises(KeyboardInterrupt):
            model.fit(big)
    finally:
        signal.signal(signal.SIGINT, previous)
    # Work done before the interrupt is kept, consistently: parameters, optimizer
    # state and counters describe the same point of training.
    assert model.n_iter_ < 300
    assert model.t_ >= model.n_iter_ * int(np.ceil(len(big) / 128))
    assert np.isfinite(model.transform(X)).all() and np.isfinite(model.score(X))
    model.partial_fit(X)  # and it can keep training


def test_concurrent_transform_matches_serial():
    model = vae(hidden_layer_sizes=(128,)).fit(X)
    expected_Z, expected_s = model.transform(X), model.score_samples(X, n_importance=4)
    results = [None] * 6

    def work(k):
        results[k] = (model.transform(X), model.score_samples(X, n_importance=4))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for Z, s in results:
        assert np.array_equal(Z, expected_Z) and np.array_equal(s, expected_s)


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="under AddressSanitizer freed memory stays resident in its quarantine")
def test_repeated_fit_and_transform_do_not_grow_memory():
    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    model = vae(hidden_layer_sizes=(64,), max_iter=2)
    for _ in range(5):  # warm up allocator pools
        model.fit(X).transform(X)
    start = rss_kb()
    for _ in range(40):
        model.fit(X)
        model.transform(X)
        model.score_samples(X, n_importance=3)
    assert rss_kb() - start < 8 * 1024, f"RSS grew by {rss_kb() - start} kB"


@pytest.mark.parametrize("n_features, step", [(13, 1e-2), (150, 1e-2), (300, 5e-3), (600, 2.5e-3)])
def test_auto_learning_rate_is_1e2_up_to_150_inputs_then_shrinks_as_their_inverse(n_features, step):
    # The rule's value, seen through what it trains: "auto" and the explicit
    # step it stands for give the same parameters bit for bit, and a step
    # twice as large does not.
    X = np.random.default_rng(0).standard_normal((64, n_features)).astype(np.float32)
    settings = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, early_stopping=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        auto = VAE(**settings).fit(X)
        explicit = VAE(learning_rate=step, **settings).fit(X)
        doubled = VAE(learning_rate=2 * step, **settings).fit(X)
    assert auto.learning_rate == "auto"
    np.testing.assert_array_equal(auto.params_, explicit.params_)
    assert not np.array_equal(auto.params_, doubled.params_)


def test_auto_learning_rate_schedule_decays_from_the_resolved_step():
    # The adaptive schedule's floor (1/100 of the first step) is taken from the
    # resolved step: with "auto" a plateau divides 5e-3, not the string.
    X = np.random.default_rng(1).standard_normal((80, 300)).astype(np.float32)
    settings = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=40, n_iter_no_change=2, tol=10.0,
                    early_stopping=False, random_state=0)
    auto = VAE(**settings).fit(X)
    explicit = VAE(learning_rate=5e-3, **settings).fit(X)
    assert auto.n_iter_ == explicit.n_iter_ < 40
    np.testing.assert_array_equal(auto.params_, explicit.params_)


@pytest.mark.parametrize("schedule, fractions", [("linear", (1.0, 2 / 3, 1 / 3)), ("cosine", (1.0, 0.75, 0.25))])
def test_decaying_schedules_take_each_epochs_step_size_from_the_budget(schedule, fractions):
    # Epoch e of max_iter=E runs at learning_rate x f(e / E): the same epochs as
    # partial_fits at those step sizes, to the bit; no plateau ends training early.
    step = 3e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a completed budget is not a missed convergence
        scheduled = vae(learning_rate=step, learning_rate_schedule=schedule, max_iter=3, tol=10.0,
                        n_iter_no_change=1).fit(X[:500])
    stepwise = vae()
    for fraction in fractions:
        stepwise.set_params(learning_rate=step * fraction).partial_fit(X[:500])
    assert scheduled.n_iter_ == 3
    np.testing.assert_array_equal(scheduled.params_, stepwise.params_)
    constant = vae(learning_rate=step, max_iter=3, tol=0.0).fit(X[:500])
    assert not np.array_equal(scheduled.params_, constant.params_)


def test_learning_rate_other_strings_are_refused():
    with pytest.raises(ValueError, match="'learning_rate' parameter must be 'auto' or a real number > 0; got 'fast'"):
        VAE(learning_rate="fast").fit(np.zeros((10, 3)))


def test_progress_is_judged_on_the_objective_trained_not_the_elbo():
    # With beta < 1 the ELBO may fall while recon - beta KL rises: such epochs are
    # progress (the stop rule once watched the ELBO and called them stalls).
    from pyvae._training import TrainingState
    state = TrainingState.fresh(np.zeros(3, np.float32))
    stalls = []
    for epoch in range(12):
        recon, kl = -100.0 + 5 * epoch, 10.0 + 8 * epoch  # the ELBO, recon - kl, falls by 3 an epoch
        stalls.append(state.record_epoch(dict(step=epoch, baseline=0.0, n_rows=1, elbo=recon - kl, recon=recon, kl=kl),
                                         None, tol=1e-3, beta=0.0))
    assert stalls == [0] * 12
    assert state.loss_curve == [110.0 + 3 * e for e in range(12)]  # loss_curve_ stays the negative ELBO
    elbo_watcher = TrainingState.fresh(np.zeros(3, np.float32))
    watched = [elbo_watcher.record_epoch(dict(step=e, baseline=0.0, n_rows=1, elbo=-110.0 - 3 * e, recon=-100.0 + 5 * e,
                                              kl=10.0 + 8 * e), None, tol=1e-3, beta=1.0) for e in range(12)]
    assert watched[-1] == 11  # the same epochs judged on the ELBO: every one after the first a stall
