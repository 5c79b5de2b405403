"""Same seed, same bits: across runs and across thread counts.

The shapes are large enough that the parallel paths engage (blocked products,
the Adam update over the whole buffer, the Bernoulli pass over rows); a batch
size that does not divide the rows adds a short last batch.
"""

import warnings

import numpy as np
import pytest

from pyvae import VAE, _core


def fit_params(X, n_threads, **kwargs):
    kwargs = dict(dict(batch_size=256), **kwargs)
    est = VAE(hidden_layer_sizes=(400,), n_components=20, max_iter=2, random_state=3, n_threads=n_threads,
              **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=2 does not converge
        est.fit(X)
    return est


def binary_data(n_rows=512, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n_rows, 784)) < 0.15).astype(np.float32)


@pytest.mark.parametrize("kwargs", [
    dict(likelihood="bernoulli"),
    dict(likelihood="bernoulli", batch_size=200),
    dict(likelihood="gaussian", activation="tanh"),
])
def test_params_identical_for_1_and_2_threads(kwargs):
    X = binary_data()
    one = fit_params(X, 1, **kwargs)
    two = fit_params(X, 2, **kwargs)
    again = fit_params(X, 2, **kwargs)
    assert np.isfinite(one.params_).all()
    assert np.array_equal(one.params_, two.params_)
    assert np.array_equal(two.params_, again.params_)
    assert np.array_equal(one.transform(X), two.transform(X))


def test_params_identical_with_missing_entries_and_3_threads():
    X = binary_data(seed=1)
    X[::7, ::5] = np.nan
    one = fit_params(X, 1, likelihood="bernoulli", missing="mask")
    three = fit_params(X, 3, likelihood="bernoulli", missing="mask")
    assert np.array_equal(one.params_, three.params_)


def test_float32_bernoulli_pass_matches_float64():
    # The float build computes exp and log1p with its own vectorizable
    # polynomials; the float64 build uses the C library and is the oracle.
    rng = np.random.default_rng(0)
    D, N = 784, 64
    kw = dict(n_features=D, n_components=4, hidden_layer_sizes=[16], activation="relu", likelihood="bernoulli",
              kl="analytic", posterior="gaussian", gradient_estimator="reparameterization", n_mc_samples=1,
              beta=1.0, missing=False, n_threads=1)
    m32, m64 = _core.Model32(**kw), _core.Model64(**kw)
    params = m64.init_params(5)
    for name, offset, shape in m64.layout():  # logits far into both tails, where a naive formula fails
        if name.startswith("decoder.1"):
            params[offset:offset + int(np.prod(shape))] *= 60
    x = (rng.random((N, D)) < 0.3).astype(np.float64)
    noise = rng.standard_normal((1, N, 4))
    r64 = m64.loss_and_grad(params, x, x, noise)
    r32 = m32.loss_and_grad(params.astype(np.float32), x.astype(np.float32), x.astype(np.float32),
                            noise.astype(np.float32))
    assert np.abs(r64["recon"]).max() > 1e3
    np.testing.assert_allclose(r32["recon"], r64["recon"], rtol=2e-5)
    np.testing.assert_allclose(r32["grad"], r64["grad"], rtol=2e-3, atol=1e-4 * np.abs(r64["grad"]).max())


def test_params_identical_across_threads_at_batch_20_with_tanh():
    # Small products (the IWAE paper's shapes): only some of them are split,
    # and helpers often arrive after the caller has taken every block.
    X = binary_data(n_rows=200, seed=2)
    kwargs = dict(likelihood="bernoulli", activation="tanh", batch_size=20)
    est = [VAE(hidden_layer_sizes=(200, 200), n_components=50, max_iter=1, random_state=5, n_threads=t, **kwargs)
           for t in (1, 2, 4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = [e.fit(X).params_ for e in est]
    assert np.array_equal(params[0], params[1])
    assert np.array_equal(params[0], params[2])


def test_fits_from_two_python_threads_at_once_match_one_at_a_time():
    # The core's thread team serves one caller at a time; a second concurrent
    # caller runs its work alone, with the same results.
    from concurrent.futures import ThreadPoolExecutor

    X = binary_data(n_rows=384, seed=4)

    def fit(seed):  # partial_fit: one epoch, no ConvergenceWarning (catch_warnings is not thread-safe)
        est = VAE(hidden_layer_sizes=(400,), n_components=20, batch_size=128, random_state=seed, n_threads=2,
                  likelihood="bernoulli")
        return est.partial_fit(X).partial_fit(X).params_
    alone = [fit(seed) for seed in (0, 1)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, (0, 1)))
    assert np.array_equal(alone[0], together[0])
    assert np.array_equal(alone[1], together[1])



def _fit_in_child(queue):
    X = binary_data(n_rows=256, seed=6)
    est = fit_params(X, 2, likelihood="bernoulli", batch_size=128)
    queue.put(est.params_)


def test_training_in_a_forked_child_after_the_parent_trained():
    # The parent's helper threads do not exist in a forked child: the child
    # must start its own team instead of waiting for them.
    import multiprocessing

    X = binary_data(n_rows=256, seed=6)
    parent = fit_params(X, 2, likelihood="bernoulli", batch_size=128).params_
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_fit_in_child, args=(queue,))
    child.start()
    params = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert np.array_equal(params, parent)
