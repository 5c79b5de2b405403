"""Error messages that point to the fix: NaN without missing="mask", strings in X."""

import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import pyvae
from pyvae import VAE

X = np.random.default_rng(0).normal(size=(60, 4))


def with_nan(X, row, column):
    X = X.copy()
    X[row, column] = np.nan
    return X


def fitted(**params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAE(hidden_layer_sizes=(4,), max_iter=2, random_state=0, **params).fit(X)


def test_nan_in_fit_points_to_missing_mask():
    with pytest.raises(ValueError) as info:
        VAE(max_iter=1).fit(with_nan(X, 7, 2))
    message = str(info.value)
    assert "VAE(missing='mask')" in message and "SimpleImputer" in message
    assert "1 NaN entry, the first in column 2, row 7" in message
    assert "HistGradientBoosting" not in message


def test_nan_after_fit_says_how_the_model_was_fitted():
    model = fitted()
    with pytest.raises(ValueError, match=r"fitted with missing='error'.*refit with VAE\(missing='mask'\)"):
        model.transform(with_nan(X, 0, 0))


def test_nan_in_a_dataframe_names_the_column():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(with_nan(with_nan(X, 3, 1), 5, 1), columns=["alcohol", "ash", "hue", "proline"])
    with pytest.raises(ValueError, match=re.escape("2 NaN entries, the first in column 'ash', row 3")):
        VAE(max_iter=1).fit(frame)


def test_nan_is_accepted_with_missing_mask():
    model = fitted(missing="mask")
    assert np.isfinite(model.transform(with_nan(X, 0, 0))).all()


def test_string_in_an_array_names_column_row_and_value():
    bad = X.astype(object)
    bad[4, 3] = "n/a"
    with pytest.raises(ValueError, match=re.escape("string in column 3, row 4: 'n/a' is not a number")):
        VAE(max_iter=1).fit(bad)


def test_string_in_a_dataframe_names_the_column_and_value():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"alcohol": [13.2, 12.1, 14.0], "color": ["red", "red", "white"]})
    with pytest.raises(ValueError, match=re.escape("column 'color', row 0: 'red' is not a number")) as info:
        VAE(max_iter=1).fit(frame)
    assert "OneHotEncoder" in str(info.value)


def test_numeric_strings_still_convert():
    # A string column that holds numbers converts as before; only non-numbers are named.
    model = fitted()
    assert model.transform(X[:3].astype(str)).shape == (3, 2)


def test_warnings_point_at_the_callers_line():
    import warnings as w

    from sklearn.exceptions import ConvergenceWarning

    X = np.random.default_rng(0).normal(size=(60, 3))
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        vae = pyvae.VAE(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X)
        vae.sample_posterior(X)
    found = {c.category: c for c in caught}
    for category in (ConvergenceWarning, FutureWarning):
        assert found[category].filename == __file__, (category, found[category].filename)


def test_a_column_kind_given_as_the_likelihood_names_the_per_column_form():
    X = np.random.default_rng(0).poisson(3.0, size=(30, 2)).astype(float)
    with pytest.raises(ValueError, match=r"a list with one entry per column block.*likelihood=\['gaussian', 'poisson'"):
        pyvae.VAE(likelihood="poisson").fit(X)
