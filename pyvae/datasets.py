"""Data sets for examples and benchmarks: real MNIST from its original IDX files.

:func:`load_mnist` works as scikit-learn's fetchers do: it looks for the files
in a data folder, then downloads them (checked by SHA-256, written atomically)
when they are not there.
"""

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.request
import warnings
from collections import namedtuple

import numpy as np
from sklearn.utils import Bunch

logger = logging.getLogger(__name__)

_MnistFile = namedtuple("_MnistFile", "names sha256_gzip sha256_idx")

# The four files of the original distribution (LeCun, Cortes & Burges). A copy is
# accepted when its gzip bytes match ``sha256_gzip`` (the copies this project
# keeps for machines without a network) or, since the same bytes can be gzipped
# in many ways, when its uncompressed IDX bytes match ``sha256_idx``.
# ``names``: the name files are downloaded to, then the variant with a dot
# before "idx" that some copies use.
_MNIST_FILES = {
    "train_images": _MnistFile(
        ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        "7fd0b0e8386ed24c2808cc6f5fc3c78ca0e0863b1845d7d493835f4d7f09a2f9",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train_labels": _MnistFile(
        ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
        "1f9e51cfb481c117bfc031dfb5851fd735d58cac2e15ff1b6ff0e5a9d68ce20e",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "test_images": _MnistFile(
        ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
        "288f2c762f5b5dbd716066ff84621a9bf70b01c97773e0832b12878a86353233",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "test_labels": _MnistFile(
        ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
        "8798f0b1bd374f00f3f5b9f5f5200104df6614f0a571c16822498a6a076880c4",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}
# Mirrors of the original gzip files (LeCun's own site now refuses most downloads).
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_DOWNLOAD_TIMEOUT_S = 30
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
    for name in _MNIST_FILES[key].names:
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    return None


def _find_all(directory):
    """Paths of the four files in directory, or None unless all are there."""
    paths = {key: _find_file(directory, key) for key in _MNIST_FILES}
    return paths if all(paths.values()) else None


def _default_folder(data_home):
    from sklearn.datasets import get_data_home

    return os.path.join(get_data_home(data_home), "mnist")


def _check_sha256(path, expected):
    """Raise OSError unless the gzip file at path holds the expected MNIST file."""
    with open(path, "rb") as f:
        compressed = f.read()
    if hashlib.sha256(compressed).hexdigest() == expected.sha256_gzip:
        return
    try:
        idx = gzip.decompress(compressed)
    except (OSError, EOFError) as exc:
        raise OSError(f"not a gzip file ({exc})") from None
    got = hashlib.sha256(idx).hexdigest()
    if got != expected.sha256_idx:
        raise OSError(f"SHA-256 mismatch: expected {expected.sha256_idx} (uncompressed), got {got}")


def _download(key, folder, mirrors):
    """Fetch one file into folder from the first mirror that serves a verified copy; return its path.

    The file is written under a temporary name and renamed only once its
    checksum matches, so an interrupted or corrupt download never leaves a file
    that a later call would read."""
    expected = _MNIST_FILES[key]
    name = expected.names[0] + ".gz"
    target = os.path.join(folder, name)
    failures = []
    for mirror in mirrors:
        url = mirror + name
        fd, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            _check_sha256(partial, expected)
            os.replace(partial, target)
            logger.info("downloaded %s to %s", url, target)
            return target
        except OSError as exc:  # URLError, timeouts and checksum failures are all OSErrors
            failures.append(f"{url}: {exc}")
        finally:
            if os.path.exists(partial):
                os.remove(partial)
    raise OSError("; ".join(failures))


def _mnist_bunch(paths, directory):
    images = {k: read_idx(paths[k]) for k in ("train_images", "test_images")}
    return Bunch(
        X_train=images["train_images"].reshape(len(images["train_images"]), -1).astype(np.float32) / 255,
        X_test=images["test_images"].reshape(len(images["test_images"]), -1).astype(np.float32) / 255,
        y_train=read_idx(paths["train_labels"]).astype(np.int64),
        y_test=read_idx(paths["test_labels"]).astype(np.int64),
        image_shape=images["train_images"].shape[1:],
        source=os.path.abspath(directory),
    )


def _digits_bunch():
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return Bunch(X_train=X[:-300], X_test=X[-300:], y_train=y[:-300], y_test=y[-300:], image_shape=(8, 8),
                 source="sklearn digits")


def load_mnist(*, data_home=None, download_if_missing=True, fallback=False):
    """Load MNIST: 60,000 training and 10,000 test images of 28 x 28 grey levels.

    Looks for the four original IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``; plain or ``.gz``; a dot instead of the
    hyphen before ``idx`` also works) in ``data_home/mnist``, in
    ``data_home`` itself, then in the folder named by the environment
    variable ``PYVAE_MNIST_DIR``. When none has them, downloads them into
    ``data_home/mnist``: each file's SHA-256 is checked before it is
    renamed into place, so a failed download leaves nothing behind.

    Parameters
    ----------
    data_home : str or path-like, default=None
        pyvae's data folder; None is scikit-learn's
        (:func:`sklearn.datasets.get_data_home`: ``$SCIKIT_LEARN_DATA``, or
        ``~/scikit_learn_data``).
    download_if_missing : bool, default=True
        Whether to download the files when they are not found.
    fallback : bool, default=False
        When MNIST can be neither found nor downloaded, return scikit-learn's
        8 x 8 digits instead (1,797 images, split 1,497 / 300), with a
        warning. False raises FileNotFoundError, which says where to put the
        files.

    Returns
    -------
    data : Bunch
        ``X_train`` (n_train, n_pixels) and ``X_test`` (n_test, n_pixels):
        float32 grey levels in [0, 1]; ``y_train``, ``y_test``: int64 labels;
        ``image_shape``; ``source``: the folder read, or ``"sklearn digits"``.

    Raises
    ------
    FileNotFoundError
        When the files are not found and cannot be downloaded (no network, or
        ``download_if_missing=False``), unless ``fallback`` is True.

    Examples
    --------
    >>> import pyvae
    >>> data = pyvae.load_mnist(fallback=True)  # doctest: +SKIP
    >>> data.X_train.shape, data.image_shape  # doctest: +SKIP
    ((60000, 784), (28, 28))
    """
    folder = _default_folder(data_home)
    searched = [folder, os.path.dirname(folder)]
    if os.environ.get("PYVAE_MNIST_DIR"):
        searched.append(os.path.abspath(os.path.expanduser(os.environ["PYVAE_MNIST_DIR"])))
    for directory in searched:
        paths = _find_all(directory)
        if paths is not None:
            return _mnist_bunch(paths, directory)

    reason = "download_if_missing=False"
    if download_if_missing:
        try:
            os.makedirs(folder, exist_ok=True)
            paths = {key: _find_file(folder, key) or _download(key, folder, _MNIST_MIRRORS) for key in _MNIST_FILES}
            return _mnist_bunch(paths, folder)
        except OSError as exc:
            reason = f"the download failed: {exc}"
    names = ", ".join(f.names[0] + ".gz" for f in _MNIST_FILES.values())
    message = (
        f"MNIST's files were not found in {', '.join(searched)}, and {reason}. Put the four original files "
        f"({names}; plain or gzip) in {folder}, or set the environment variable PYVAE_MNIST_DIR to a folder "
        "that holds them."
    )
    if not fallback:
        raise FileNotFoundError(message + " (load_mnist(fallback=True) gives scikit-learn's 8x8 digits instead.)")
    warnings.warn(message + " Falling back to scikit-learn's 8x8 digits (fallback=True).", UserWarning,
                  stacklevel=2)
    return _digits_bunch()
