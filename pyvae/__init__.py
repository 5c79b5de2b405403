"""pyvae: variational autoencoders with a hand-derived C++ core and a scikit-learn API."""

from ._threads import _core  # first: loads the C++ core with its OpenMP settings (see _threads.py)
from . import _persistence  # noqa: I001 (after the core)
from ._vae import VAE
from .datasets import load_mnist
from .diagnostics import gradient_variance

__all__ = ["VAE", "gradient_variance", "load", "load_mnist", "show_config"]
# Written once, in pyproject.toml; the build hands it to the core.
__version__ = _core.__version__


def load(path):
    """Load a model written by :meth:`pyvae.VAE.save`.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    model : VAE
        The fitted estimator, with its optimizer state: it can keep training.

    Raises
    ------
    ValueError
        If the file is truncated, corrupted, not a pyvae model, or of a format
        version this pyvae cannot read.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import pyvae
    >>> X = np.random.default_rng(0).normal(size=(100, 4))
    >>> vae = pyvae.VAE(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "vae.npz")
    >>> vae.save(path)
    >>> restored = pyvae.load(path)
    >>> bool((restored.params_ == vae.params_).all()), restored.n_iter_
    (True, 3)
    """
    return _persistence.load(path, VAE)


def show_config():
    """Print and return the build configuration of the C++ core.

    Returns
    -------
    config : dict
        OpenMP on/off and its thread count, the BLAS, the dtypes; whether the
        CUDA engine was built (``cuda``) and the devices it found, or why none
        can be used (``cuda_devices``).

    Examples
    --------
    >>> import pyvae
    >>> config = pyvae.show_config()  # doctest: +ELLIPSIS
    openmp: ...
    version: ...
    >>> config["version"] == pyvae.__version__
    True
    """
    from ._cuda import cuda_config

    config = dict(_core.build_config)
    config.update(cuda_config())
    config["version"] = __version__
    for key, value in config.items():
        print(f"{key}: {value}")
    return config
