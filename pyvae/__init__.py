"""pyvae: variational autoencoders with a hand-derived C++ core and a scikit-learn API."""

from ._vae import VAE
from .datasets import load_mnist
from .diagnostics import gradient_variance

__all__ = ["VAE", "gradient_variance", "load_mnist", "show_config"]
__version__ = "0.1.0"


def show_config():
    """Print and return the build configuration of the C++ core.

    Returns
    -------
    config : dict
        OpenMP on/off and its thread count, the BLAS, the dtypes.
    """
    from . import _core

    config = dict(_core.build_config)
    config["version"] = __version__
    for key, value in config.items():
        print(f"{key}: {value}")
    return config
