"""pyvae: variational autoencoders with a hand-derived C++ core and a scikit-learn API."""

from . import _threads  # first: loads the C++ core with its OpenMP settings (see _threads.py)
from ._persistence import load
from ._vae import VAE
from .datasets import load_mnist
from .diagnostics import gradient_variance

__all__ = ["VAE", "gradient_variance", "load", "load_mnist", "show_config"]
__version__ = "0.1.0"


def show_config():
    """Print and return the build configuration of the C++ core.

    Returns
    -------
    config : dict
        OpenMP on/off, the BLAS the core links and, as loaded now, its version
        (``blas_version``), the kernel it chose for this CPU (``blas_kernel``)
        and ``n_threads``, the thread count ``n_threads=None`` uses; the
        dtypes; whether the CUDA engine was built (``cuda``) and the devices
        it found, or why none can be used (``cuda_devices``).

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
    from ._vae import _resolve_threads

    config = dict(_core.build_config)
    config.update(_blas_runtime(config.get("blas", "")))
    config["n_threads"] = _resolve_threads(None)
    config.update(cuda_config())
    config["version"] = __version__
    for key, value in config.items():
        print(f"{key}: {value}")
    return config


def _blas_runtime(blas):
    """The loaded BLAS as threadpoolctl sees it: version and the kernel chosen for this CPU."""
    if not blas.startswith("scipy-openblas32"):
        return {}
    from threadpoolctl import threadpool_info

    # The library pyvae links lives in the scipy_openblas32 package (NumPy and
    # SciPy bring other OpenBLAS copies, possibly with other versions).
    for lib in threadpool_info():
        if "scipy_openblas32" in lib.get("filepath", ""):
            return {"blas_version": lib.get("version"), "blas_kernel": lib.get("architecture"),
                    "blas_library": lib.get("filepath")}
    return {"blas_version": None, "blas_kernel": None, "blas_library": None}
