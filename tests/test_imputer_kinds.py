"""VAEImputer with columns of different kinds (column_kinds): each column is
modeled by its own likelihood and filled with values of its kind."""

import numpy as np
import pytest
from scipy import special
from sklearn.impute import SimpleImputer

from pyvae import VAEImputer

KINDS = ["continuous", "continuous", "binary", "count", "categorical"]
CATEGORIES = np.array([10.0, 20.0, 30.0])


def mixed_table(n=800, seed=0):
    """Columns driven by two latent factors: two continuous, a binary, a count,
    and a categorical column coded 10/20/30."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    continuous = 50 + 10 * (z @ np.array([[1.0, 0.5], [-0.5, 1.0]]) + 0.3 * rng.normal(size=(n, 2)))
    binary = (rng.random(n) < special.expit(3 * z[:, 0])).astype(float)
    counts = rng.poisson(np.exp(1.0 + 0.7 * z[:, 1])).astype(float)
    category = CATEGORIES[np.argmax(3 * z @ np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
                                    + rng.gumbel(size=(n, 3)), axis=1)]
    return np.column_stack([continuous, binary, counts, category])


def hide(X, rate=0.2, seed=1):
    X_missing = X.copy()
    X_missing[np.random.default_rng(seed).random(X.shape) < rate] = np.nan
    return X_missing


@pytest.fixture(scope="module")
def fitted():
    X = mixed_table()
    X_missing = hide(X)
    imputer = VAEImputer(column_kinds=KINDS, max_iter=300, random_state=0).fit(X_missing)
    return X, X_missing, imputer


def test_fills_values_of_each_columns_kind(fitted):
    X, X_missing, imputer = fitted
    filled = imputer.transform(X_missing)
    observed = ~np.isnan(X_missing)
    assert np.array_equal(filled[observed], X_missing[observed])  # bit for bit
    assert not np.isnan(filled).any()
    assert set(np.unique(filled[:, 2])) <= {0.0, 1.0}
    assert np.all(filled[:, 3] == np.round(filled[:, 3])) and filled[:, 3].min() >= 0
    assert set(np.unique(filled[:, 4])) <= set(CATEGORIES)
    assert [c.tolist() for c in imputer.categories_] == [CATEGORIES.tolist()]


def test_beats_the_most_frequent_value_on_discrete_columns(fitted):
    X, X_missing, imputer = fitted
    filled = imputer.transform(X_missing)
    baseline = SimpleImputer(strategy="most_frequent").fit_transform(X_missing)
    for j in (2, 4):  # the binary and the categorical column: error rates
        hole = np.isnan(X_missing[:, j])
        ours = np.mean(filled[hole, j] != X[hole, j])
        theirs = np.mean(baseline[hole, j] != X[hole, j])
        assert ours < theirs - 0.1, f"column {j}: error rate {ours:.2f} vs most frequent {theirs:.2f}"
    hole = np.isnan(X_missing[:, 3])  # counts: RMSE
    ours = np.sqrt(np.mean((filled[hole, 3] - X[hole, 3]) ** 2))
    mean = SimpleImputer().fit_transform(X_missing)
    theirs = np.sqrt(np.mean((mean[hole, 3] - X[hole, 3]) ** 2))
    assert ours < theirs


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_counts_in_the_hundreds_are_imputed_better_than_by_the_mean():
    # (With the counts entering the encoder as they were, training went astray:
    # the filled counts were off by more than twice the mean's error.)
    rng = np.random.default_rng(0)
    g = rng.normal(size=400)
    X = np.column_stack([g, g + 0.3 * rng.normal(size=400), rng.poisson(800 * np.exp(0.5 * g))]).astype(float)
    X_missing = hide(X)
    filled = VAEImputer(column_kinds=["continuous", "continuous", "count"], max_iter=300,
                        random_state=0).fit_transform(X_missing)
    hole = np.isnan(X_missing[:, 2])
    ours = np.mean(np.abs(filled[hole, 2] - X[hole, 2]))
    theirs = np.mean(np.abs(np.nanmean(X_missing[:, 2]) - X[hole, 2]))
    assert ours < 0.75 * theirs, f"mean absolute error {ours:.0f} vs the mean's {theirs:.0f}"


def test_draws_of_each_columns_kind(fitted):
    _, X_missing, imputer = fitted
    draws = imputer.sample_imputations(X_missing[:200], n_imputations=20, random_state=0)
    assert set(np.unique(draws[:, :, 2])) == {0.0, 1.0}
    counts = draws[:, :, 3]
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    assert set(np.unique(draws[:, :, 4])) == set(CATEGORIES)
    hole = np.isnan(X_missing[:200, 4])
    assert np.mean(draws[hole, :, 4].std(axis=1) > 0) > 0.3  # the draws vary where uncertain


def test_unseen_category_is_an_error_and_changes_nothing(fitted):
    _, X_missing, imputer = fitted
    params = imputer.vae_.params_.copy()
    X_new = X_missing[:5].copy()
    X_new[2, 4] = 40.0
    with pytest.raises(ValueError, match=r"Column 4 \(categorical\) holds the category 40.0, not seen in fit"):
        imputer.transform(X_new)
    assert np.array_equal(imputer.vae_.params_, params)
    imputer.transform(X_missing[:5])  # still usable


@pytest.mark.parametrize("column_kinds,change,message", [
    (KINDS, lambda X: X.__setitem__((0, 2), 2.0), r"column 2 \(binary\) needs 0 or 1"),
    (KINDS, lambda X: X.__setitem__((0, 3), 1.5), r"column 3 \(count\) needs counts"),
    (KINDS, lambda X: X.__setitem__((0, 3), -1.0), r"column 3 \(count\) needs counts"),
    (KINDS[:4], lambda X: None, "column_kinds has 4 entries; X has 5 features"),
    (KINDS[:4] + ["ordinal"], lambda X: None, "'column_kinds' parameter"),
    ("continuous", lambda X: None, "'column_kinds' parameter"),
])
def test_bad_kinds_or_values_are_errors(column_kinds, change, message):
    X = hide(mixed_table(100))
    change(X)
    imputer = VAEImputer(column_kinds=column_kinds, max_iter=2)
    with pytest.raises(ValueError, match=message):
        imputer.fit(X)
    assert not hasattr(imputer, "vae_")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_single_category_and_an_empty_column():
    X = hide(mixed_table(100))
    X[:, 4] = np.where(np.isnan(X[:, 4]), np.nan, 7.0)  # one category only
    X = np.column_stack([X, np.full(100, np.nan)])
    imputer = VAEImputer(column_kinds=KINDS + ["count"], max_iter=3, random_state=0, keep_empty_features=True)
    with pytest.warns(UserWarning, match=r"Features \[5\] have no observed value"):
        imputer.fit(X)
    filled = imputer.transform(X)
    assert np.all(filled[:, 4] == 7.0) and np.all(filled[:, 5] == 0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_all_continuous_kinds_match_the_default():
    X = hide(mixed_table(150))[:, :2]
    default = VAEImputer(max_iter=5, random_state=0).fit(X)
    explicit = VAEImputer(column_kinds=["continuous"] * 2, max_iter=5, random_state=0).fit(X)
    assert np.array_equal(default.transform(X), explicit.transform(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_identical_for_1_and_2_threads():
    X = hide(mixed_table(300))
    runs = []
    for n_threads in (1, 2):
        imputer = VAEImputer(column_kinds=KINDS, max_iter=5, random_state=0, n_threads=n_threads).fit(X)
        runs.append((imputer.transform(X), imputer.sample_imputations(X, n_imputations=3, random_state=1)))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
