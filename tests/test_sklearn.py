"""scikit-learn conformance and the workflows a scikit-learn user relies on."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pyvae import VAE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# The default configuration is the one for general real-valued data
# (likelihood="gaussian"), which is what the checks feed. No check is expected to fail.
@parametrize_with_checks(
    [VAE(), VAE(likelihood="gaussian", max_iter=3), VAE(likelihood="gaussian_isotropic", kl="mc", n_mc_samples=2)]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data[:600], data.target[:600]


def small_vae(**kw):
    params = dict(n_components=4, hidden_layer_sizes=(32,), max_iter=10, random_state=0)
    params.update(kw)
    return VAE(**params)


def test_pipeline_with_scaler_and_classifier(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), small_vae(max_iter=30), LogisticRegression(max_iter=500))
    pipe.fit(X[:400], y[:400])
    assert pipe.score(X[400:], y[400:]) > 0.5  # ten classes: chance is 0.1


def test_bernoulli_pipeline_after_minmax_scaling(digits):
    X, _ = digits
    pipe = Pipeline([("scale", MinMaxScaler()), ("vae", small_vae(likelihood="bernoulli"))]).fit(X)
    assert pipe.transform(X).shape == (600, 4)
    assert pipe.score(X) == pipe[-1].score(pipe[0].transform(X))  # Pipeline.score is VAE.score on scaled data


def test_clone_gives_unfitted_copy_with_same_params(digits):
    model = small_vae().fit(StandardScaler().fit_transform(digits[0]))
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "params_")


def test_grid_search_uses_score(digits):
    # GridSearchCV ranks the candidates by VAE.score on each held-out fold: the
    # same fits, scored by hand, give its table and its choice.
    X = StandardScaler().fit_transform(digits[0])
    grid = [1, 4]
    search = GridSearchCV(small_vae(max_iter=5), {"n_components": grid}, cv=KFold(2)).fit(X)
    by_hand = [np.mean([small_vae(max_iter=5, n_components=k).fit(X[train]).score(X[test])
                        for train, test in KFold(2).split(X)]) for k in grid]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], by_hand, rtol=1e-12)
    assert search.best_params_["n_components"] == grid[int(np.argmax(by_hand))]
    assert search.best_score_ == max(search.cv_results_["mean_test_score"])


def test_pandas_dataframe_keeps_feature_names(digits):
    pd = pytest.importorskip("pandas")
    X = StandardScaler().fit_transform(digits[0][:, :10])
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(10)])
    model = small_vae().fit(frame)
    assert list(model.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        assert np.array_equal(model.transform(frame), model.transform(X))  # fitted with names, given none
    assert list(model.get_feature_names_out()) == [f"vae{i}" for i in range(4)]
    with pytest.warns(UserWarning, match="feature names"):
        model.fit(X).transform(frame)  # fitted without names, given names


def test_memory_layouts_give_identical_results(digits, tmp_path):
    X = np.ascontiguousarray(StandardScaler().fit_transform(digits[0]))
    model = small_vae().fit(X)
    reference = model.transform(X)
    fortran = np.asfortranarray(X)
    strided = np.repeat(X, 2, axis=1)[:, ::2]
    path = tmp_path / "X.npy"
    np.save(path, X)
    memmap = np.load(path, mmap_mode="r")
    assert not memmap.flags.writeable
    for variant in (fortran, strided, memmap):
        assert np.array_equal(model.transform(variant), reference)
        assert np.array_equal(model.score_samples(variant), model.score_samples(X))
    assert np.array_equal(small_vae().fit(memmap).params_, model.params_)
    assert np.array_equal(small_vae().fit(fortran).params_, model.params_)


def test_float32_and_float64_inputs(digits):
    X = StandardScaler().fit_transform(digits[0])
    model = small_vae().fit(X)
    Z64, Z32 = model.transform(X), model.transform(X.astype(np.float32))
    assert Z64.dtype == np.float64 and Z32.dtype == np.float32
    # The core computes in float32: both inputs give the same numbers.
    assert np.array_equal(Z64.astype(np.float32), Z32)


def test_scores_do_not_depend_on_row_order_or_subset(digits):
    X = StandardScaler().fit_transform(digits[0])
    model = small_vae(kl="mc", n_mc_samples=3).fit(X)
    order = np.random.default_rng(0).permutation(len(X))
    for K in (1, 8):
        scores = model.score_samples(X, n_importance=K)
        np.testing.assert_array_equal(model.score_samples(X[order], n_importance=K), scores[order])
        np.testing.assert_array_equal(model.score_samples(X[10:20], n_importance=K), scores[10:20])
    np.testing.assert_array_equal(model.transform(X[order]), model.transform(X)[order])


def _mnist_like(n_rows, rng):
    """Binary 28 x 28 images whose nonzero fraction runs from 5% to 45%, so that
    a chunk may hold rows the first layer takes by their nonzeros, dense rows, or both."""
    density = np.linspace(0.05, 0.45, n_rows)[rng.permutation(n_rows)]
    return (rng.random((n_rows, 784)) < density[:, None]).astype(np.float32)


@pytest.mark.parametrize(
    "data, params",
    [
        ("wine", dict(likelihood="gaussian")),
        ("wine", dict(likelihood="gaussian_isotropic", kl="mc", n_mc_samples=2, hidden_layer_sizes=(32, 16))),
        ("wine", dict(likelihood="gaussian_heteroscedastic")),
        ("mnist_like", dict(likelihood="bernoulli", hidden_layer_sizes=(400,), n_components=20)),
    ],
)
def test_each_row_gets_the_same_bits_alone_in_any_chunk_or_in_the_whole_set(data, params):
    # Whatever kernel OpenBLAS picks (its AVX-512 kernels round a row by the shape
    # of the product, its Haswell kernels by the row's place in it), a row's
    # outputs depend on the row alone: inference's products are the core's
    # row-wise kernel (dense.h, rowwise_product_tiles).
    rng = np.random.default_rng(0)
    if data == "wine":
        from sklearn.datasets import load_wine

        X = np.tile(load_wine().data, (3, 1))[:500] * rng.uniform(0.9, 1.1, (500, 13))
    else:
        X = _mnist_like(500, rng)
    model = VAE(max_iter=2, random_state=0, **params).fit(X[:200])
    Z = model.transform(X)
    whole = {
        "score_samples": model.score_samples(X),
        "score_samples_iwae": model.score_samples(X, n_importance=5),
        "transform": Z,
        "transform_std": model.transform(X, return_std=True)[1],
        "inverse_transform": model.inverse_transform(Z),
        "sample_posterior": model.sample_posterior(X, n_samples=2, random_state=1, rows_first=True),
    }
    for size in (1, 7, 64):
        parts = {key: [] for key in whole}
        for lo in range(0, len(X), size):
            x, z = X[lo : lo + size], Z[lo : lo + size]
            parts["score_samples"].append(model.score_samples(x))
            parts["score_samples_iwae"].append(model.score_samples(x, n_importance=5))
            parts["transform"].append(model.transform(x))
            parts["transform_std"].append(model.transform(x, return_std=True)[1])
            parts["inverse_transform"].append(model.inverse_transform(z))
            parts["sample_posterior"].append(model.sample_posterior(x, n_samples=2, random_state=1, rows_first=True))
        for key, got in parts.items():
            np.testing.assert_array_equal(np.concatenate(got), whole[key], err_msg=f"{key}, chunks of {size}")