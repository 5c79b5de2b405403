"""The MNIST loader: IDX files, where it looks, a checked atomic download, and its errors.

No test here touches the network: downloads come from file:// "mirrors" in
temporary folders. The real MNIST tests read the folder named by
PYVAE_MNIST_DIR (CI points it at the project's shared copy of the originals).
"""

import gzip
import hashlib
import os
import pathlib

import numpy as np
import pytest

import pyvae
import pyvae.datasets as datasets
from pyvae.datasets import read_idx

REAL_MNIST = os.environ.get("PYVAE_MNIST_DIR")
needs_real_mnist = pytest.mark.skipif(
    not REAL_MNIST, reason="set PYVAE_MNIST_DIR to a folder with the MNIST IDX files (.ci/run does)")
DOWNLOAD_NAMES = {key: f.names[0] + ".gz" for key, f in datasets._MNIST_FILES.items()}


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real data folder, no PYVAE_MNIST_DIR, and mirrors that cannot be reached."""
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "scikit_learn_data"))
    monkeypatch.delenv("PYVAE_MNIST_DIR", raising=False)
    monkeypatch.setattr(datasets, "_MNIST_MIRRORS", ((tmp_path / "unreachable").as_uri() + "/",))


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f8"): 0x0E}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def small_mnist(folder, n_train=6, n_test=2):
    """Four small IDX files in MNIST's layout (both naming variants, plain and gzip)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, size=(n_train, 28, 28)).astype(np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n_train, dtype=np.uint8))
    write_idx(folder / "t10k-images.idx3-ubyte", np.full((n_test, 28, 28), 255, dtype=np.uint8))
    write_idx(folder / "t10k-labels.idx1-ubyte", np.arange(3, 3 + n_test, dtype=np.uint8))
    return folder


def test_read_idx_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    for name, array in [("a.idx3-ubyte", rng.integers(0, 256, size=(3, 4, 5)).astype(np.uint8)),
                        ("b.idx1.gz", rng.integers(-9, 9, size=7).astype(">i4")),
                        ("c.idx2", rng.normal(size=(2, 3)).astype(">f8"))]:
        write_idx(tmp_path / name, array)
        got = read_idx(tmp_path / name)
        np.testing.assert_array_equal(got, array)
        assert got.dtype.isnative
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("subfolder", ["mnist", ""])
def test_loads_from_data_home(tmp_path, subfolder):
    small_mnist(tmp_path / "home" / subfolder)
    data = pyvae.load_mnist(data_home=tmp_path / "home")
    assert data.X_train.shape == (6, 784) and data.X_test.shape == (2, 784)
    assert data.X_train.dtype == np.float32 and data.X_train.max() <= 1 and (data.X_test == 1).all()
    assert list(data.y_test) == [3, 4] and data.image_shape == (28, 28)
    assert data.source == str(tmp_path / "home" / subfolder).rstrip(os.sep)


def test_default_data_home_is_scikit_learns(tmp_path):
    small_mnist(tmp_path / "scikit_learn_data" / "mnist")  # SCIKIT_LEARN_DATA points here (fixture)
    assert pyvae.load_mnist().source == str(tmp_path / "scikit_learn_data" / "mnist")


def test_data_home_comes_before_pyvae_mnist_dir(tmp_path, monkeypatch):
    small_mnist(tmp_path / "env", n_train=5)
    monkeypatch.setenv("PYVAE_MNIST_DIR", str(tmp_path / "env"))
    assert pyvae.load_mnist(data_home=tmp_path / "empty").X_train.shape == (5, 784)
    small_mnist(tmp_path / "home" / "mnist", n_train=7)
    assert pyvae.load_mnist(data_home=tmp_path / "home").X_train.shape == (7, 784)


def test_no_files_and_no_network_says_where_to_put_them(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        pyvae.load_mnist(data_home=tmp_path / "home")
    message = str(info.value)
    folder = str(tmp_path / "home" / "mnist")
    assert f"in {folder}, or set the environment variable PYVAE_MNIST_DIR" in message
    assert "the download failed" in message and "train-images-idx3-ubyte.gz" in message
    assert "fallback=True" in message
    assert os.listdir(folder) == []  # no partial file left behind


def test_download_if_missing_false_does_not_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_if_missing=False"):
        pyvae.load_mnist(data_home=tmp_path / "home", download_if_missing=False)


def test_digits_only_when_asked(tmp_path):
    with pytest.warns(UserWarning, match="Falling back to scikit-learn's 8x8 digits"):
        data = pyvae.load_mnist(data_home=tmp_path / "home", fallback=True)
    assert data.source == "sklearn digits" and data.X_train.shape == (1497, 64) and data.X_test.max() <= 1


def fake_mirror(folder, monkeypatch, corrupt=()):
    """A file:// mirror serving small files, with the loader told their checksums."""
    source = small_mnist(folder / "made")
    expected = {}
    for key, name in DOWNLOAD_NAMES.items():
        raw = read_idx_bytes(pathlib.Path(datasets._find_file(source, key)))
        gz = gzip.compress(raw if key not in corrupt else raw[:-1] + b"\x01", mtime=0)
        (folder / name).write_bytes(gz)
        f = datasets._MNIST_FILES[key]
        expected[key] = f._replace(sha256_gzip="0" * 64, sha256_idx=hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(datasets, "_MNIST_FILES", expected)
    return folder.as_uri() + "/"


def read_idx_bytes(path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read()


def test_download_checks_sha256_and_writes_atomically(tmp_path, monkeypatch):
    good = fake_mirror(tmp_path / "good", monkeypatch)
    bad = fake_mirror(tmp_path / "bad", monkeypatch, corrupt=("train_images",))
    # The corrupt mirror's other files are fine, but its train images fail the check:
    # they are never renamed into place, and the next mirror serves them.
    monkeypatch.setattr(datasets, "_MNIST_MIRRORS", (bad, good))
    home = tmp_path / "home"
    data = pyvae.load_mnist(data_home=home)
    assert data.X_train.shape == (6, 784) and data.source == str(home / "mnist")
    assert sorted(os.listdir(home / "mnist")) == sorted(DOWNLOAD_NAMES.values())
    assert (home / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() == (
        tmp_path / "good" / "train-images-idx3-ubyte.gz").read_bytes()


def test_a_corrupt_download_is_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    bad = fake_mirror(tmp_path / "bad", monkeypatch, corrupt=("test_labels",))
    monkeypatch.setattr(datasets, "_MNIST_MIRRORS", (bad,))
    with pytest.raises(FileNotFoundError, match="SHA-256 mismatch"):
        pyvae.load_mnist(data_home=tmp_path / "home")
    assert "t10k-labels-idx1-ubyte.gz" not in os.listdir(tmp_path / "home" / "mnist")
    assert not [name for name in os.listdir(tmp_path / "home" / "mnist") if name.endswith(".part")]


@needs_real_mnist
def test_real_mnist_from_pyvae_mnist_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PYVAE_MNIST_DIR", REAL_MNIST)
    data = pyvae.load_mnist(download_if_missing=False)
    assert data.source == os.path.abspath(REAL_MNIST)
    assert data.X_train.shape == (60000, 784) and data.X_test.shape == (10000, 784)
    assert np.bincount(data.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(data.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_real_mnist
def test_embedded_checksums_match_the_real_files(tmp_path, monkeypatch):
    # The shared copies are recompressed originals: their gzip bytes match sha256_gzip,
    # and a download that gzips the same IDX bytes differently matches sha256_idx.
    folder = pathlib.Path(REAL_MNIST)
    for key, expected in datasets._MNIST_FILES.items():
        path = folder / (expected.names[1] + ".gz")
        if not path.exists():
            path = folder / (expected.names[0] + ".gz")
        datasets._check_sha256(path, expected)
        recompressed = tmp_path / path.name
        recompressed.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=0))
        datasets._check_sha256(recompressed, expected)
    # An unrelated gzip file fails.
    (tmp_path / "other.gz").write_bytes(gzip.compress(b"not MNIST"))
    with pytest.raises(OSError, match="SHA-256 mismatch"):
        datasets._check_sha256(tmp_path / "other.gz", datasets._MNIST_FILES["test_labels"])


@needs_real_mnist
def test_download_of_the_real_files_from_a_local_mirror(tmp_path, monkeypatch):
    # The real files, named as the mirrors name them, checked against the embedded sums.
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for key, expected in datasets._MNIST_FILES.items():
        source = pathlib.Path(REAL_MNIST) / (expected.names[1] + ".gz")
        if not source.exists():
            source = pathlib.Path(REAL_MNIST) / (expected.names[0] + ".gz")
        (mirror / DOWNLOAD_NAMES[key]).write_bytes(source.read_bytes())
    monkeypatch.setattr(datasets, "_MNIST_MIRRORS", (mirror.as_uri() + "/",))
    data = pyvae.load_mnist(data_home=tmp_path / "home")
    assert data.X_test.shape == (10000, 784) and data.source == str(tmp_path / "home" / "mnist")
