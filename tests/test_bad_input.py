"""Bad input raises a clear, specific error before any state changes."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from pyvae import VAE

rng = np.random.default_rng(0)
X = rng.normal(size=(120, 6))
X01 = rng.uniform(size=(120, 6))


@pytest.fixture
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAE(n_components=2, hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X)


def outputs(model):
    return (model.transform(X), model.score_samples(X), model.inverse_transform(np.ones((2, 2))),
            model.sample(3, random_state=0))


def assert_unchanged(model, before_state, before_outputs):
    assert pickle.dumps(model.__getstate__()) == before_state
    for a, b in zip(outputs(model), before_outputs):
        assert np.array_equal(a, b)


BAD_X = [
    ("nan", np.where(np.arange(720).reshape(120, 6) == 7, np.nan, X), ValueError, "NaN"),
    ("inf", np.where(np.arange(720).reshape(120, 6) == 7, np.inf, X), ValueError, "infinity"),
    ("1-d", X[:, 0], ValueError, "2D array"),
    ("3-d", X.reshape(120, 3, 2), ValueError, "dim"),
    ("no rows", X[:0], ValueError, "0 sample"),
    ("no columns", X[:, :0], ValueError, "0 feature"),
    ("strings", np.full((4, 6), "a"), ValueError, "could not convert|string"),
    ("object", np.array([[object()] * 6] * 4), (TypeError, ValueError), "float|object|argument"),
    ("complex", X + 1j, ValueError, "[Cc]omplex"),
]


@pytest.mark.parametrize("name,bad,error,message", BAD_X, ids=[c[0] for c in BAD_X])
@pytest.mark.parametrize("method", ["fit", "partial_fit", "transform", "score_samples", "score"])
def test_bad_X_is_rejected_and_state_kept(fitted, name, bad, error, message, method):
    state, before = pickle.dumps(fitted.__getstate__()), outputs(fitted)
    with pytest.raises(error, match=message):
        getattr(fitted, method)(bad)
    assert_unchanged(fitted, state, before)


@pytest.mark.parametrize("method", ["transform", "score_samples", "score", "partial_fit"])
def test_wrong_number_of_features(fitted, method):
    state, before = pickle.dumps(fitted.__getstate__()), outputs(fitted)
    with pytest.raises(ValueError, match="features"):
        getattr(fitted, method)(X[:, :5])
    assert_unchanged(fitted, state, before)


def test_wrong_latent_width_in_inverse_transform(fitted):
    with pytest.raises(ValueError, match="n_components=2"):
        fitted.inverse_transform(np.ones((3, 4)))


def test_sparse_input_is_rejected_clearly(fitted):
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="[Ss]parse"):
        VAE().fit(sparse.csr_matrix(X))
    with pytest.raises(TypeError, match="[Ss]parse"):
        fitted.transform(sparse.csr_matrix(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1 on purpose
def test_bernoulli_needs_data_in_unit_interval(fitted):
    with pytest.raises(ValueError, match=r"bernoulli.*\[0, 1\]"):
        VAE(likelihood="bernoulli").fit(X)
    model = VAE(likelihood="bernoulli", hidden_layer_sizes=(4,), max_iter=1).fit(X01)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.transform(X01 + 1)



@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pass_value_check_matches_numpy(layout, dtype):
    # _validate_X's single pass (_core.value_scan) against NumPy's reductions, on
    # sizes that leave a ragged tail and that span several of its chunks.
    from pyvae._threads import _core
    for n in (1, 7, 1000, 1 << 19):
        x = np.random.default_rng(n).uniform(-2, 3, size=(n, 3)).astype(dtype)
        x.ravel()[::97] = np.nan
        x.ravel()[n // 2] = -np.inf
        x = {"C": x, "F": np.asfortranarray(x), "strided": x[:, ::2]}[layout]
        for threads in (1, 2):
            n_nan, n_inf, low, high = _core.value_scan(x.ravel(order="K"), threads)
            assert (n_nan, n_inf) == (np.isnan(x).sum(), np.isinf(x).sum())
            assert (low, high) == (np.nanmin(x), np.nanmax(x))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=1 on purpose
@pytest.mark.parametrize("method", ["fit", "transform"])
def test_bernoulli_range_checked_whatever_the_layout(method):
    model = VAE(likelihood="bernoulli", hidden_layer_sizes=(4,), max_iter=1).fit(X01)
    bad = X01.copy()
    bad[100, 5] = 1.5
    for view in (np.asfortranarray(bad), bad[:, ::-1], bad[1::3]):  # row 100 in each
        with pytest.raises(ValueError, match=r"got values in \[.*, 1\.5\]"):
            getattr(VAE(likelihood="bernoulli", max_iter=1) if method == "fit" else model, method)(view)


BAD_PARAMS = [
    ("n_components", 0), ("n_components", -1), ("n_components", 1.5), ("n_components", "2"),
    ("hidden_layer_sizes", (0,)), ("hidden_layer_sizes", (4, -2)), ("hidden_layer_sizes", "wide"),
    ("hidden_layer_sizes", (2.5,)),
    ("activation", "sigmoid"), ("activation", None),
    ("likelihood", "poisson"), ("kl", "exact"), ("posterior", "cauchy"), ("objective", "foo"), ("objective", None),
    ("gradient_estimator", "pathwise"), ("missing", "impute"),
    ("n_mc_samples", 0), ("n_mc_samples", 2.0),
    ("beta", -1.0), ("beta", "one"), ("beta", np.nan),
    ("batch_size", 0), ("batch_size", None),
    ("learning_rate", 0.0), ("learning_rate", -1e-3), ("learning_rate", np.inf),
    ("max_iter", 0), ("max_iter", 10.5),
    ("alpha", -0.1), ("tol", -1.0),
    ("validation_fraction", 0.0), ("validation_fraction", 1.0),
    ("n_iter_no_change", 0),
    ("early_stopping", "yes"), ("warm_start", 1),
    ("verbose", -1), ("n_threads", 0), ("random_state", "seed"),
]


@pytest.mark.parametrize("name,value", BAD_PARAMS)
def test_invalid_hyperparameter_is_named(fitted, name, value):
    before = outputs(fitted)
    fitted.set_params(**{name: value})
    state = pickle.dumps(fitted.__getstate__())
    with pytest.raises(ValueError, match=name if name != "random_state" else "seed|RandomState"):
        fitted.fit(X)
    assert_unchanged(fitted, state, before)


def test_non_gaussian_posterior_needs_monte_carlo_kl():
    with pytest.raises(ValueError, match="'kl'.*'mc'"):
        VAE(posterior="logistic", kl="analytic").fit(X)


def test_importance_weighted_objective_needs_the_reparameterization():
    with pytest.raises(ValueError, match="objective='iwae'.*gradient_estimator='score_function'"):
        VAE(objective="iwae", gradient_estimator="score_function", kl="mc").fit(X)
    with pytest.raises(ValueError, match="objective='iwae'.*CPU.*device='cpu'"):
        VAE(objective="iwae", device="cuda").fit(X)


@pytest.mark.parametrize("method,args", [
    ("transform", (X,)), ("score_samples", (X,)), ("score", (X,)), ("inverse_transform", (np.ones((2, 2)),)),
    ("sample", (2,)), ("sample_posterior", (X,)), ("save", ("model.npz",)),
])
def test_not_fitted(method, args):
    with pytest.raises(NotFittedError):
        getattr(VAE(), method)(*args)


def test_invalid_method_arguments(fitted):
    with pytest.raises(ValueError, match="n_samples"):
        fitted.sample(0)
    with pytest.raises(ValueError, match="n_importance"):
        fitted.score_samples(X, n_importance=0)
    with pytest.raises(ValueError, match="n_samples"):
        fitted.sample_posterior(X, n_samples=-1)


def test_early_stopping_without_training_rows():
    with pytest.raises(ValueError, match="validation_fraction"):
        VAE(early_stopping=True, validation_fraction=0.5).fit(X[:1])
