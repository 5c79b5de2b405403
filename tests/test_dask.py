"""Out-of-core training and parallel inference with Dask.

Runs on Dask's local (threaded) scheduler and on a distributed.LocalCluster of
two worker processes on the loopback interface; skipped without Dask.
"""

import warnings

import numpy as np
import pytest

from pyvae import VAE

WITHOUT_DASK = "needs pyvae's [dask] extra: pip install \".[dask]\""
da = pytest.importorskip("dask.array", reason=WITHOUT_DASK)
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers", reason=WITHOUT_DASK)

KW = dict(hidden_layer_sizes=(8,), batch_size=32, random_state=0, n_threads=1)


@pytest.fixture(scope="module")
def data():
    X = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    return X, da.from_array(X, chunks=(70, 5))


@pytest.fixture(scope="module")
def fitted(data):
    X, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three epochs do not converge, and need not
        return VAE(max_iter=3, **KW).fit(X)


def check_inference(vae, X, Xd, scheduler=None):
    """Dask in, Dask out, equal to the NumPy path; computed with `scheduler`."""
    import dask

    Z = vae.transform(X)
    Zd = vae.transform(Xd)
    assert isinstance(Zd, da.Array) and Zd.dtype == np.float32 and Zd.chunks[0] == Xd.chunks[0]
    mu, sd = vae.transform(Xd.astype(np.float64), return_std=True)
    scores = vae.score_samples(Xd)
    assert isinstance(scores, da.Array) and scores.dtype == np.float64 and scores.ndim == 1
    back = vae.inverse_transform(da.from_array(Z, chunks=(50, 1)))  # column chunks are merged
    assert isinstance(back, da.Array) and back.shape == X.shape
    with dask.config.set(scheduler=scheduler) if scheduler else dask.config.set({}):
        Zd, mu, sd, scores, back = dask.compute(Zd, mu, sd, scores, back)
    # Every row is computed on its own, to the bit, so the block layout changes nothing.
    np.testing.assert_array_equal(Zd, Z)
    ref_mu, ref_sd = vae.transform(X.astype(np.float64), return_std=True)
    np.testing.assert_array_equal(mu, ref_mu)
    np.testing.assert_array_equal(sd, ref_sd)
    np.testing.assert_array_equal(scores, vae.score_samples(X))
    np.testing.assert_array_equal(back, vae.inverse_transform(Z))


def test_inference_on_dask_arrays_matches_numpy(data, fitted):
    X, Xd = data
    check_inference(fitted, X, Xd, scheduler="threads")


def test_dask_inputs_are_checked_eagerly(data, fitted):
    _, Xd = data
    with pytest.raises(ValueError, match="columns"):
        fitted.transform(Xd[:, :4])
    with pytest.raises(ValueError, match="columns"):
        fitted.inverse_transform(Xd)


def test_incremental_trains_block_by_block_like_partial_fit(data):
    X, Xd = data
    inc = dask_ml_wrappers.Incremental(VAE(**KW), shuffle_blocks=False).fit(Xd)
    ref = VAE(**KW)
    for start in range(0, len(X), 70):  # the same blocks, in order, in memory
        ref.partial_fit(X[start : start + 70])
    np.testing.assert_array_equal(inc.estimator_.params_, ref.params_)
    assert inc.estimator_.n_iter_ == len(Xd.chunks[0])
    Zd = inc.transform(Xd)  # ParallelPostFit's own blockwise transform
    assert isinstance(Zd, da.Array)
    np.testing.assert_array_equal(Zd.compute(), ref.transform(X))


@pytest.mark.slow  # starting two worker processes takes seconds
def test_local_cluster_of_two_worker_processes(data):
    distributed = pytest.importorskip("distributed", reason=WITHOUT_DASK)
    X, Xd = data
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        inc = dask_ml_wrappers.Incremental(VAE(**KW), shuffle_blocks=False).fit(Xd)
        ref = VAE(**KW)
        for start in range(0, len(X), 70):
            ref.partial_fit(X[start : start + 70])
        np.testing.assert_array_equal(inc.estimator_.params_, ref.params_)
        check_inference(inc.estimator_, X, Xd)  # computed by the cluster's workers
