"""scikit-learn conformance and the workflows a scikit-learn user relies on."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from pyvae import VAE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# The default configuration is the one for general real-valued data
# (likelihood="gaussian"), which is what the checks feed. No check is expected to fail.
@parametrize_with_checks([VAE(), VAE(likelihood="gaussian_isotropic", kl="mc", n_mc_samples=2)])
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
    assert np.isfinite(pipe.score(X))  # Pipeline.score -> VAE.score on scaled data


def test_clone_gives_unfitted_copy_with_same_params(digits):
    model = small_vae().fit(StandardScaler().fit_transform(digits[0]))
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "params_")


def test_grid_search_uses_score(digits):
    X = StandardScaler().fit_transform(digits[0])
    search = GridSearchCV(small_vae(max_iter=5), {"n_components": [1, 4]}, cv=2).fit(X)
    assert search.best_params_["n_components"] in (1, 4)
    assert np.isfinite(search.best_score_)


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
        np.testing.assert_allclose(model.score_samples(X[order], n_importance=K), scores[order], rtol=1e-6)
        np.testing.assert_allclose(model.score_samples(X[10:20], n_importance=K), scores[10:20], rtol=1e-6)
    Z = model.transform(X)
    np.testing.assert_allclose(model.transform(X[order]), Z[order], rtol=1e-5, atol=1e-6)
