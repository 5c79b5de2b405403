"""pyvae: variational autoencoders with a hand-derived C++ core and a scikit-learn API."""

from . import _threads  # first: loads the C++ core with its OpenMP settings (see _threads.py)
from ._persistence import load
from ._vae import VAE
from ._imputer import VAEImputer
from .datasets import load_mnist
from .diagnostics import gradient_variance

__all__ = ["VAE", "VAEImputer", "gradient_variance", "load", "load_mnist", "show_config"]
__version__ = "0.1.0"


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
    from . import _core
    from ._cuda import cuda_config

    config = dict(_core.build_config)
    config.update(cuda_config())
    config["version"] = __version__
    for key, value in config.items():
        print(f"{key}: {value}")
    return config
