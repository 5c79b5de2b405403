"""Nothing lost: pickle/joblib round trips and the safe .npz format."""

import io
import json
import os
import pickle
import warnings
import zipfile

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits

import pyvae
from pyvae import VAE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
X = load_digits().data / 16.0


@pytest.fixture(scope="module")
def fitted():
    return VAE(n_components=3, hidden_layer_sizes=(32,), likelihood="bernoulli", kl="mc", n_mc_samples=2,
               max_iter=3, random_state=0).fit(X)


def assert_same_model(a, b):
    assert np.array_equal(a.transform(X), b.transform(X))
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert np.array_equal(a.score_samples(X[:50], n_importance=5), b.score_samples(X[:50], n_importance=5))
    assert np.array_equal(a.sample(10, random_state=0), b.sample(10, random_state=0))
    assert np.array_equal(a.inverse_transform(np.ones((2, 3))), b.inverse_transform(np.ones((2, 3))))


def test_pickle_round_trip_and_keep_training(fitted):
    clone = pickle.loads(pickle.dumps(fitted))
    assert_same_model(fitted, clone)
    original = pickle.loads(pickle.dumps(fitted))
    clone.partial_fit(X)
    original.partial_fit(X)  # same optimizer state -> same next epoch
    assert np.array_equal(clone.params_, original.params_)


def test_joblib_round_trip(fitted, tmp_path):
    joblib.dump(fitted, tmp_path / "model.joblib")
    assert_same_model(fitted, joblib.load(tmp_path / "model.joblib"))


def test_save_load_round_trip_keeps_everything(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    loaded = pyvae.load(path)
    assert_same_model(fitted, loaded)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.loss_curve_ == fitted.loss_curve_ and loaded.n_iter_ == fitted.n_iter_ and loaded.t_ == fitted.t_
    copy = pickle.loads(pickle.dumps(fitted))
    loaded.partial_fit(X)
    copy.partial_fit(X)
    assert np.array_equal(loaded.params_, copy.params_)


def test_saved_file_loads_without_pickle(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert json.loads(str(data["header"]))["format_version"] == 3


def test_feature_names_survive_save(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X[:, :5], columns=list("abcde"))
    model = VAE(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(frame)
    model.save(tmp_path / "m.npz")
    assert list(pyvae.load(tmp_path / "m.npz").feature_names_in_) == list("abcde")


def test_truncated_file_raises_clear_error(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable pyvae model"):
        pyvae.load(path)


def test_corrupted_file_raises_clear_error(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="pyvae model"):
        pyvae.load(path)


def rewrite_header(path, change):
    with np.load(path, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    header = json.loads(str(contents["header"]))
    change(header, contents)
    contents["header"] = np.array(json.dumps(header))
    np.savez(path, **contents)


def test_wrong_version_raises_clear_error(fitted, tmp_path):
    path = tmp_path / "model.npz"
    fitted.save(path)
    rewrite_header(path, lambda h, c: h.update(format_version=99))
    with pytest.raises(ValueError, match="format version 99"):
        pyvae.load(path)


def test_not_a_model_and_mismatched_buffers(fitted, tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a pyvae model"):
        pyvae.load(path)
    fitted.save(path)
    rewrite_header(path, lambda h, c: c.update(params=c["params"][:-1]))
    with pytest.raises(ValueError, match="corrupted"):
        pyvae.load(path)


def test_interrupted_save_keeps_existing_file(fitted, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    fitted.save(path)
    good = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C hit in the middle of writing

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary file left behind


def test_version_1_file_loads_as_the_model_it_was(tmp_path):
    """Files written before internal standardization and the variance floor
    (format 1: neither in the header) load as a model with neither."""
    old = VAE(hidden_layer_sizes=(4,), max_iter=2, standardize=False, variance_floor=0.0, random_state=0).fit(X)
    path = tmp_path / "v1.npz"
    old.save(path)

    def as_version_1(header, contents):
        header["format_version"] = 1
        for key in ("variance_floor", "standardize"):
            del header["hyperparameters"][key]
        del header["fit_config"]["variance_floor"]

    rewrite_header(path, as_version_1)
    loaded = pyvae.load(path)
    assert loaded.variance_floor == 0.0 and loaded.standardize is False and loaded.mean_ is None
    np.testing.assert_array_equal(loaded.score_samples(X), old.score_samples(X))


def test_count_columns_survive_save(tmp_path):
    rng = np.random.default_rng(0)
    counts = np.column_stack([rng.normal(size=200), rng.poisson(900.0, 200)])
    model = VAE(hidden_layer_sizes=(4,), likelihood=["gaussian", "poisson"], max_iter=2, random_state=0).fit(counts)
    model.save(tmp_path / "m.npz")
    loaded = pyvae.load(tmp_path / "m.npz")
    assert loaded._fit_config == model._fit_config  # the encoder's standardization of the counts included
    np.testing.assert_array_equal(loaded.transform(counts), model.transform(counts))
    np.testing.assert_array_equal(loaded.score_samples(counts), model.score_samples(counts))


def test_standardization_survives_save(tmp_path):
    model = VAE(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X * 100 + 7)
    model.save(tmp_path / "m.npz")
    loaded = pyvae.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.scale_, model.scale_)
    np.testing.assert_array_equal(loaded.sample(5, random_state=0), model.sample(5, random_state=0))


def test_imputer_round_trips_through_the_safe_format(tmp_path):
    import pandas as pd

    from pyvae import VAEImputer

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 2, 300), rng.poisson(4.0, 300),
                         rng.integers(1, 4, 300), rng.normal(size=300) * 10 + 3]).astype(float)
    X[rng.random(X.shape) < 0.15] = np.nan
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d", "e"])
    kinds = ["continuous", "binary", "count", "categorical", "continuous"]
    imputer = VAEImputer(column_kinds=kinds, add_indicator=True, hidden_layer_sizes=(16,), max_iter=20,
                         random_state=0).fit(frame)
    path = tmp_path / "imputer.npz"
    imputer.save(path)
    restored = pyvae.load(path)
    assert type(restored) is VAEImputer
    assert restored.get_params() == imputer.get_params()
    np.testing.assert_array_equal(restored.transform(frame), imputer.transform(frame))
    np.testing.assert_array_equal(restored.sample_imputations(frame, 3, random_state=1),
                                  imputer.sample_imputations(frame, 3, random_state=1))
    assert list(restored.get_feature_names_out()) == list(imputer.get_feature_names_out())


def test_unfitted_imputer_cannot_be_saved(tmp_path):
    from sklearn.exceptions import NotFittedError

    from pyvae import VAEImputer

    with pytest.raises(NotFittedError):
        VAEImputer().save(tmp_path / "x.npz")


@pytest.mark.parametrize("writer", ["pickle", "joblib", "joblib_compressed"])
def test_load_names_a_pickle_or_joblib_file_as_such(tmp_path, writer):
    import pickle

    import joblib

    model = pyvae.VAE(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(
        np.random.default_rng(0).normal(size=(50, 3)))
    path = tmp_path / "model.bin"
    if writer == "pickle":
        with open(path, "wb") as f:
            pickle.dump(model, f)
    else:
        joblib.dump(model, path, compress=3 if writer == "joblib_compressed" else 0)
    with pytest.raises(ValueError, match="looks like a pickle or joblib file") as info:
        pyvae.load(path)
    assert "allow_pickle" not in str(info.value)
