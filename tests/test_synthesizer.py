"""VAESynthesizer: synthetic rows of a mixed-type table with its columns, dtypes,
labels, ranges, precision and missing values; bad input; persistence; privacy."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import pyvae
from pyvae import MemorizationWarning, VAESynthesizer

pd = pytest.importorskip("pandas", reason="the synthesizer's DataFrame tests need pandas (pip install '.[test]')")

# Short fits keep the file fast: they stop at max_iter, which the VAE says.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
N = 800
FAST = dict(hidden_layer_sizes=(64,), max_iter=80)


def mixed_frame(n=N, seed=0):
    """Columns of every kind, driven by one latent factor so that they depend on each other."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=n)
    city = np.where(g + rng.normal(size=n) > 0.5, "Oslo", np.where(rng.random(n) < 0.5, "Bergen", "Molde"))
    df = pd.DataFrame({
        "price": np.exp(3 + 0.8 * g + 0.3 * rng.normal(size=n)).round(2),        # skewed, 2 decimals
        "rooms": rng.poisson(np.exp(2.5 + 0.4 * g)),                              # counts
        "floor": rng.integers(-1, 4, n),                                          # few integers: categorical
        "city": city,                                                             # strings
        "grade": pd.Categorical(rng.choice(["A", "B", "C"], n), categories=["A", "B", "C", "D"], ordered=True),
        "garden": g + rng.normal(size=n) > 0,                                     # bool
        "area": (50 + 10 * g + 3 * rng.normal(size=n)).round(1),
        "built": pd.to_datetime("2000-01-01") + pd.to_timedelta(rng.integers(0, 5000, n), unit="D"),
    })
    df.loc[rng.random(n) < 0.2, "area"] = np.nan                                  # missing at 20%
    df.loc[rng.random(n) < 0.1, "city"] = None                                    # missing at 10%
    return df


@pytest.fixture(scope="module")
def frame():
    return mixed_frame()


@pytest.fixture(scope="module")
def fitted(frame):
    return VAESynthesizer(random_state=0, **FAST).fit(frame)


@pytest.fixture(scope="module")
def rows(fitted):
    return fitted.sample(4000, random_state=1)


def test_detects_each_columns_kind(fitted):
    assert fitted.column_kinds_ == {"price": "continuous", "rooms": "count", "floor": "categorical",
                                    "city": "categorical", "grade": "categorical", "garden": "binary",
                                    "area": "continuous", "built": "datetime"}
    assert list(fitted.feature_names_in_) == list(fitted.column_kinds_) and fitted.n_features_in_ == 8


def test_sample_has_the_frames_columns_dtypes_and_labels(frame, rows):
    assert list(rows.columns) == list(frame.columns) and len(rows) == 4000
    assert rows.dtypes.to_dict() == frame.dtypes.to_dict()
    assert rows["grade"].dtype == frame["grade"].dtype  # categories A-D (D never seen) and the order
    assert set(rows["city"].dropna()) <= {"Oslo", "Bergen", "Molde"}
    assert set(rows["floor"]) == set(frame["floor"]) and set(rows["garden"]) == {False, True}


def test_values_stay_in_range_and_precision(frame, rows):
    for name in ("price", "rooms", "area", "built"):
        assert rows[name].min() >= frame[name].min() and rows[name].max() <= frame[name].max(), name
    cents = rows["price"].to_numpy() * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)
    tenths = rows["area"].dropna().to_numpy() * 10
    assert np.allclose(tenths, np.round(tenths), atol=1e-6)
    assert (rows["built"] == rows["built"].dt.normalize()).all()  # dates, as fitted: no time of day


def test_missing_values_come_back_at_each_columns_rate(frame, rows):
    for name in frame.columns:
        p, q = frame[name].isna().mean(), rows[name].isna().mean()
        # Binomial spread of both estimates, with room for the model's error.
        assert abs(p - q) < 4 * np.sqrt(p * (1 - p) / len(frame)) + 0.02, (name, p, q)


def test_marginals_and_a_dependence_are_learned(frame, rows):
    from scipy.stats import ks_2samp

    assert ks_2samp(frame["price"], rows["price"]).statistic < 0.08
    assert ks_2samp(frame["rooms"], rows["rooms"]).statistic < 0.08
    shares = frame["city"].value_counts(normalize=True)
    assert np.abs(rows["city"].value_counts(normalize=True).reindex(shares.index) - shares).sum() < 0.1
    real = np.corrcoef(np.log(frame["price"]), frame["rooms"])[0, 1]
    synthetic = np.corrcoef(np.log(rows["price"]), rows["rooms"])[0, 1]
    assert real > 0.4 and abs(synthetic - real) < 0.15, (real, synthetic)


def test_column_kinds_override_the_detection(frame):
    synthesizer = VAESynthesizer(column_kinds={"floor": "continuous", "rooms": "categorical"}, random_state=0,
                                 **FAST).fit(frame)
    assert synthesizer.column_kinds_["floor"] == "continuous" and synthesizer.column_kinds_["rooms"] == "categorical"
    sampled = synthesizer.sample(500, random_state=0)
    assert set(sampled["rooms"]) <= set(frame["rooms"]) and sampled["floor"].dtype == frame["floor"].dtype


@pytest.mark.parametrize("kinds, error", [
    ({"city": "continuous"}, "cannot be 'continuous'"),
    ({"price": "count"}, "not integers >= 0"),
    ({"city": "binary"}, "declared binary"),
    ({"nope": "categorical"}, "does not have"),
    ({"city": "text"}, "column_kinds"),
    (["categorical"], "column_kinds"),
])
def test_bad_column_kinds_are_refused(frame, kinds, error):
    with pytest.raises(ValueError, match=error):
        VAESynthesizer(column_kinds=kinds, **FAST).fit(frame)


def test_array_in_array_out():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300).round(3), rng.integers(0, 3, 300), rng.gamma(2.0, size=300)])
    synthesizer = VAESynthesizer(random_state=0, **FAST).fit(X)
    assert synthesizer.column_kinds_ == {0: "continuous", 1: "categorical", 2: "continuous"}
    assert not hasattr(synthesizer, "feature_names_in_")
    sampled = synthesizer.sample(200, random_state=0)
    assert isinstance(sampled, np.ndarray) and sampled.shape == (200, 3) and sampled.dtype == X.dtype
    assert set(sampled[:, 1]) <= {0.0, 1.0, 2.0}
    assert np.allclose(sampled[:, 0] * 1000, np.round(sampled[:, 0] * 1000))


@pytest.mark.parametrize("column, error, match", [
    (np.arange(50) * (1 + 1j), TypeError, "complex"),
    (np.array(["a", 1, 2.5] * 16 + ["b", 3], dtype=object), TypeError, "mixed types"),
    (np.array([{}] * 50, dtype=object), TypeError, "dict"),
    (pd.Series(pd.to_timedelta(np.arange(50), unit="D")), TypeError, "timedelta"),
    (np.r_[np.arange(49.0), np.inf], ValueError, "infinity"),
])
def test_columns_it_cannot_model_are_refused(column, error, match):
    df = pd.DataFrame({"x": np.arange(50.0), "bad": column})
    synthesizer = VAESynthesizer(**FAST)
    with pytest.raises(error, match=match):
        synthesizer.fit(df)
    assert not hasattr(synthesizer, "vae_")


def test_mixed_types_declared_categorical_come_back_as_they_were():
    mixed = np.array(["a", 1, 2.5, True] * 25, dtype=object)
    df = pd.DataFrame({"x": np.random.default_rng(0).normal(size=100), "mixed": mixed})
    sampled = VAESynthesizer(column_kinds={"mixed": "categorical"}, random_state=0, **FAST).fit(df).sample(
        200, random_state=0)
    assert {(type(v), v) for v in sampled["mixed"]} <= {(str, "a"), (int, 1), (float, 2.5), (bool, True)}


def test_all_missing_and_single_valued_columns_are_reproduced():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=200), "y": rng.normal(size=200), "empty": np.nan,
                       "nothing": pd.Series([None] * 200, dtype=object),
                       "one": pd.Categorical(["only"] * 200, categories=["only", "other"]),
                       "one_or_missing": np.where(rng.random(200) < 0.3, np.nan, 7.0)})
    synthesizer = VAESynthesizer(random_state=0, **FAST).fit(df)
    assert synthesizer.column_kinds_["empty"] == synthesizer.column_kinds_["one"] == "constant"
    sampled = synthesizer.sample(1000, random_state=0)
    assert sampled.dtypes.to_dict() == df.dtypes.to_dict()
    assert sampled["empty"].isna().all() and sampled["nothing"].isna().all() and (sampled["one"] == "only").all()
    assert set(sampled["one_or_missing"].dropna()) == {7.0}
    assert abs(sampled["one_or_missing"].isna().mean() - df["one_or_missing"].isna().mean()) < 0.08


@pytest.mark.parametrize("X, match", [
    (pd.DataFrame({"a": [1.0], "b": ["x"]}), "at least 2"),
    (pd.DataFrame({"a": [], "b": []}), "empty"),
    (np.zeros(5), "2-D"),
    (pd.DataFrame({"a": ["x"] * 10, "b": [1.0] * 10}), "nothing to learn"),
])
def test_tables_without_anything_to_learn_are_refused(X, match):
    with pytest.raises(ValueError, match=match):
        VAESynthesizer(**FAST).fit(X)


def test_a_rejected_fit_leaves_the_fitted_synthesizer_as_it_was(frame, fitted):
    synthesizer = pickle.loads(pickle.dumps(fitted))
    before = synthesizer.sample(50, random_state=0)
    with pytest.raises(TypeError):
        synthesizer.fit(frame.assign(price=frame["price"] * 1j))
    assert synthesizer.column_kinds_ == fitted.column_kinds_
    pd.testing.assert_frame_equal(synthesizer.sample(50, random_state=0), before)


def test_unfitted_is_not_fitted():
    with pytest.raises(NotFittedError):
        VAESynthesizer().sample(5)
    with pytest.raises(NotFittedError):
        VAESynthesizer().privacy_report(np.zeros((5, 2)))


def test_same_random_state_same_rows(frame, fitted):
    again = VAESynthesizer(random_state=0, **FAST).fit(frame)
    pd.testing.assert_frame_equal(again.sample(300, random_state=3), fitted.sample(300, random_state=3))
    assert not fitted.sample(300, random_state=4).equals(fitted.sample(300, random_state=3))


def test_get_params_clone_and_pickle(fitted):
    params = fitted.get_params()
    assert params["random_state"] == 0 and params["hidden_layer_sizes"] == (64,)
    copy = clone(fitted)
    assert copy.get_params() == params and not hasattr(copy, "vae_")
    restored = pickle.loads(pickle.dumps(fitted))
    pd.testing.assert_frame_equal(restored.sample(200, random_state=5), fitted.sample(200, random_state=5))


def test_save_and_load_give_the_same_rows(fitted, tmp_path):
    path = tmp_path / "synthesizer.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as data:  # arrays and text only
        assert "pyvae.VAESynthesizer" in str(data["header"])
    loaded = pyvae.load(path)
    assert isinstance(loaded, VAESynthesizer) and loaded.get_params() == fitted.get_params()
    assert loaded.column_kinds_ == fitted.column_kinds_ and loaded.privacy_ == fitted.privacy_
    pd.testing.assert_frame_equal(loaded.sample(500, random_state=7), fitted.sample(500, random_state=7))


def test_a_file_of_another_version_is_refused(fitted, tmp_path):
    import json

    path = tmp_path / "synthesizer.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as data:
        contents = {key: data[key] for key in data.files}
    header = json.loads(str(contents["header"]))
    for version in (1, 99):  # 1: before the training rows' fingerprints
        header["format_version"] = version
        np.savez(path, **dict(contents, header=np.array(json.dumps(header))))
        with pytest.raises(ValueError, match=f"synthesizer format version {version}"):
            pyvae.load(path)
    del header["state"]["specs"]
    header["format_version"] = 2
    np.savez(path, **dict(contents, header=np.array(json.dumps(header))))
    with pytest.raises(ValueError, match="corrupted"):
        pyvae.load(path)
    header = json.loads(str(contents["header"]))
    np.savez(path, **dict(contents, training_rows=np.zeros(3)))  # fingerprints are uint64
    with pytest.raises(ValueError, match="corrupted.*training_rows"):
        pyvae.load(path)


def test_save_and_load_an_array_synthesizer(tmp_path):
    X = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    synthesizer = VAESynthesizer(column_kinds={2: "continuous"}, random_state=0, **FAST).fit(X)
    synthesizer.save(tmp_path / "s.npz")
    loaded = pyvae.load(tmp_path / "s.npz")
    assert loaded.get_params()["column_kinds"] == {2: "continuous"}
    sampled = loaded.sample(100, random_state=0)
    assert sampled.dtype == np.float32 and np.array_equal(sampled, synthesizer.sample(100, random_state=0))


def test_distances_to_the_closest_training_row(frame, fitted):
    train = frame.iloc[:600]
    report = fitted.privacy_report(train, train.iloc[:50], n_samples=100, random_state=0)
    assert report["reference"] == "holdout" and report["reference_copies"] == 1.0
    assert np.array_equal(report["reference_dcr"], np.zeros(50)) and report["synthetic_dcr"].shape == (100,)
    # A row moved by one standard deviation in one column, and nothing else, is 1 from where it was
    # (closer rows aside: the moved rows are checked against their own row only).
    moved = train.iloc[:1].copy()
    moved["area"] += frame["area"].std(ddof=0)
    report = fitted.privacy_report(train.iloc[:1], moved, n_samples=10, random_state=0)
    assert report["reference_dcr"] == pytest.approx([1.0], abs=1e-9)
    city = train.iloc[:1].copy()
    city["city"] = "Molde" if city["city"].iloc[0] != "Molde" else "Oslo"
    assert fitted.privacy_report(train.iloc[:1], city, n_samples=10)["reference_dcr"] == pytest.approx([1.0])


def test_a_generalizing_synthesizer_is_as_far_from_its_rows_as_unseen_rows(frame):
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemorizationWarning)
        synthesizer = VAESynthesizer(random_state=0, **FAST).fit(frame.iloc[:600])
        report = synthesizer.privacy_report(frame.iloc[:600], frame.iloc[600:], random_state=0)
    assert report["synthetic_copies"] == 0.0
    assert 0.5 < report["synthetic_median"] / report["reference_median"] < 2.0
    assert synthesizer.privacy_["reference"] == "leave-one-out"


def test_rows_that_copy_training_rows_are_warned_about(frame, fitted):
    train, holdout = frame.iloc[:600], frame.iloc[600:]
    with pytest.warns(MemorizationWarning, match="100% are identical"):
        report = fitted.privacy_report(train, holdout, X_synthetic=train.iloc[:200])
    assert report["synthetic_copies"] == 1.0 and report["reference_copies"] == 0.0
    # Not identical, but far closer than real unseen rows: a hundredth of a standard deviation away.
    near = train.iloc[200:400].copy()
    near["price"] += 0.01 * frame["price"].std()
    with pytest.warns(MemorizationWarning, match="0% are identical"):
        report = fitted.privacy_report(train, holdout, X_synthetic=near)
    assert report["synthetic_median"] < 0.1 * report["reference_median"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemorizationWarning)
        fitted.privacy_report(train, holdout, X_synthetic=holdout)  # real unseen rows: no warning


def memorizing_table():
    """A tiny table whose every value is unique to its row: a large model trained long (MEMORIZING)
    learns which values go together, which is the rows themselves (a left-out row is never a copy
    of another)."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({c: rng.permutation([f"{c}{i}" for i in range(30)]) for c in "abc"})


MEMORIZING = dict(n_components=8, batch_size=30, max_iter=500, n_iter_no_change=500, early_stopping=False,
                  random_state=0)


def benchmark_copies(train, rows):
    """Which rows equal a training row as benchmarks/synthesize.py counts them: their text forms agree."""
    keys = set(pd.util.hash_pandas_object(train.astype(str), index=False))
    return np.array([k in keys for k in pd.util.hash_pandas_object(rows.astype(str), index=False)])


def test_a_memorizing_fit_is_warned_about():
    with pytest.warns(MemorizationWarning, match="copy training rows"):
        synthesizer = VAESynthesizer(**MEMORIZING).fit(memorizing_table())
    assert synthesizer.privacy_["synthetic_copies"] > 0.3 and synthesizer.privacy_["reference_copies"] == 0.0


@pytest.fixture(scope="module")
def memorizing():
    """The memorizing fit with and without reject_training_copies (the fit is the same)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemorizationWarning)  # fit's check: the model copies
        return {reject: VAESynthesizer(reject_training_copies=reject, **MEMORIZING).fit(memorizing_table())
                for reject in (False, True)}


def test_sample_redraws_the_rows_that_copy_a_training_row(memorizing):
    table = memorizing_table()
    drawn = memorizing[False].sample(300, random_state=0)
    copies = benchmark_copies(table, drawn)
    assert copies.mean() > 0.3
    rows = memorizing[True].sample(300, random_state=0)  # no warning: every copy redrawn
    assert not benchmark_copies(table, rows).any()
    # The same stream: the first draw is the model's, and only its copies are replaced.
    pd.testing.assert_frame_equal(rows[~copies], drawn[~copies])
    assert (rows[copies].to_numpy() != drawn[copies].to_numpy()).any(axis=1).all()
    pd.testing.assert_frame_equal(memorizing[True].sample(300, random_state=0), rows)
    assert not memorizing[True].sample(300, random_state=1).equals(rows)
    # The draws the redraws replace come from the same RandomState as the first draw's.
    state = np.random.RandomState(0)
    pd.testing.assert_frame_equal(memorizing[True].sample(300, random_state=state), rows)
    assert not memorizing[True].sample(300, random_state=state).equals(rows)


def few_valued_frame(n, seed):
    """Mixed columns of few values each, missing values in two: real rows repeat each other now and
    then, and a model's draws repeat the training rows."""
    rng = np.random.default_rng(seed)
    g = rng.normal(size=n)
    df = pd.DataFrame({
        "city": np.where(g > 0.3, "Oslo", rng.choice(["Bergen", "Molde", "Bodo"], n)),
        "grade": pd.Categorical(rng.choice(["A", "B", "C"], n), categories=["A", "B", "C"]),
        "garden": g + rng.normal(size=n) > 0,
        "rooms": rng.poisson(np.exp(1.5 + 0.3 * g)),
        "area": (50 + 3 * g + 2 * rng.normal(size=n)).round(0),
    })
    df.loc[rng.random(n) < 0.2, "area"] = np.nan
    df.loc[rng.random(n) < 0.15, "city"] = None
    return df


def test_rejecting_copies_keeps_dtypes_labels_and_missing_rates():
    train = few_valued_frame(300, 0)
    fits = {reject: VAESynthesizer(reject_training_copies=reject, random_state=0, **FAST).fit(train)
            for reject in (False, True)}
    drawn, rows = (fits[reject].sample(3000, random_state=0) for reject in (False, True))
    assert benchmark_copies(train, drawn).sum() > 100  # the test has copies to remove
    assert not benchmark_copies(train, rows).any()
    assert rows.dtypes.equals(train.dtypes) and list(rows["grade"].cat.categories) == ["A", "B", "C"]
    assert set(rows["city"].dropna()) <= {"Oslo", "Bergen", "Molde", "Bodo"}
    for column in ("area", "city"):
        assert rows[column].isna().mean() == pytest.approx(train[column].isna().mean(), abs=0.05)
        assert rows[column].isna().mean() == pytest.approx(drawn[column].isna().mean(), abs=0.03)
    assert rows["area"].dropna().between(train["area"].min(), train["area"].max()).all()


def test_copies_are_judged_as_the_benchmark_judges_them(frame, fitted):
    # Training rows (dtypes, missing values and all), unseen rows, and training rows with one value
    # changed: privacy_report counts as copies exactly the rows the benchmark's text forms match.
    train, holdout = frame.iloc[:600], frame.iloc[600:700]
    changed = train.iloc[100:200].copy()
    changed["rooms"] += 1
    rows = pd.concat([train.iloc[:100], holdout, changed], ignore_index=True)
    with pytest.warns(MemorizationWarning):
        report = fitted.privacy_report(train, holdout, X_synthetic=rows)
    assert report["synthetic_copies"] == benchmark_copies(train, rows).mean() == pytest.approx(1 / 3)
    assert report["reference_copies"] == benchmark_copies(train, holdout).mean()


def test_a_missing_value_and_a_zero_are_one_value_whatever_their_bits():
    X = np.random.default_rng(0).normal(size=(200, 3)).round(2)
    X[::3, 0], X[1::3, 1] = np.nan, 0.0
    synthesizer = VAESynthesizer(random_state=0, **FAST).fit(X)
    signs_flipped = X[:60].copy()
    signs_flipped[np.isnan(signs_flipped)] = np.copysign(np.nan, -1.0)  # another NaN bit pattern
    signs_flipped[signs_flipped == 0.0] = -0.0
    assert np.signbit(signs_flipped[::3, 0]).all() and np.signbit(signs_flipped[1::3, 1]).all()
    with pytest.warns(MemorizationWarning, match="100% are identical"):
        report = synthesizer.privacy_report(X, X[100:] + 1.0, X_synthetic=signs_flipped)
    assert report["synthetic_copies"] == 1.0 and report["reference_copies"] == 0.0


def test_a_table_of_few_distinct_rows_keeps_its_copies_and_says_so():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"smoker": rng.random(400) < 0.3, "sex": rng.choice(["F", "M"], 400)})
    synthesizer = VAESynthesizer(random_state=0, **FAST).fit(table)  # real rows repeat each other: no warning
    with pytest.warns(MemorizationWarning, match="50 of the 50 synthetic rows equal a training row even after 20"):
        rows = synthesizer.sample(50, random_state=0)
    assert len(rows) == 50 and rows.dtypes.equals(table.dtypes)
    assert benchmark_copies(table, rows).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemorizationWarning)
        drawn = synthesizer.set_params(reject_training_copies=False).sample(50, random_state=0)
    assert benchmark_copies(table, drawn).all()


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_bad_reject_training_copies_is_refused_before_anything_changes(fitted, value):
    with pytest.raises(ValueError, match="'reject_training_copies' parameter must be a bool"):
        VAESynthesizer(reject_training_copies=value).fit(mixed_frame(50))
    synthesizer = pickle.loads(pickle.dumps(fitted))
    before = synthesizer.sample(50, random_state=0)
    synthesizer.set_params(reject_training_copies=value)
    state = np.random.RandomState(3)
    with pytest.raises(ValueError, match="'reject_training_copies'"):
        synthesizer.sample(50, random_state=state)
    assert state.randint(2**31) == np.random.RandomState(3).randint(2**31)  # nothing drawn
    with pytest.raises(ValueError, match="'reject_training_copies'"):
        synthesizer.fit(mixed_frame(50))
    assert np.array_equal(synthesizer._training_rows, fitted._training_rows)
    pd.testing.assert_frame_equal(synthesizer.set_params(reject_training_copies=True).sample(50, random_state=0),
                                  before)


def test_clone_pickle_save_and_load_keep_the_option_and_the_fingerprints(memorizing, tmp_path):
    synthesizer = memorizing[True]
    rows = synthesizer.sample(300, random_state=0)
    assert clone(memorizing[False]).get_params()["reject_training_copies"] is False
    assert clone(synthesizer).get_params()["reject_training_copies"] is True
    # The fingerprints decide which rows are redrawn: the same rows need the same fingerprints.
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(synthesizer)).sample(300, random_state=0), rows)
    for reject, fit in memorizing.items():
        fit.save(tmp_path / f"{reject}.npz")
        loaded = pyvae.load(tmp_path / f"{reject}.npz")
        assert loaded.get_params()["reject_training_copies"] is reject
        assert np.array_equal(loaded._training_rows, fit._training_rows)
    pd.testing.assert_frame_equal(pyvae.load(tmp_path / "True.npz").sample(300, random_state=0), rows)
    assert synthesizer._training_rows.dtype == np.uint64 and synthesizer._training_rows.size == 30


def test_docstring_examples_run():
    import doctest

    import pyvae._synthesizer

    result = doctest.testmod(pyvae._synthesizer, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_readme_example_runs(tmp_path, monkeypatch):
    import os
    import re

    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md is not next to the tests (installed package)")
    with open(readme, encoding="utf-8") as f:
        blocks = [b for b in re.findall(r"```python\n(.*?)```", f.read(), flags=re.S) if "VAESynthesizer" in b]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", MemorizationWarning)
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    rows, df = namespace["rows"], namespace["df"]
    # The frame's own dtypes (pandas 3 reads strings as "str", pandas 2 as "object").
    assert len(rows) == 1000 and rows.dtypes.to_dict() == df.dtypes.to_dict()
    assert [str(t) for t in rows.dtypes[["size", "rooms", "garden"]]] == ["float64", "int64", "bool"]
    pd.testing.assert_frame_equal(pyvae.load(tmp_path / "synthesizer.npz").sample(1000, random_state=0), rows)
