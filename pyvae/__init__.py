"""pyvae: variational autoencoders with a hand-derived C++ core and a scikit-learn API."""

import os as _os


def _core_import_error(exc):
    """An ImportError saying why the compiled core did not load and what to do about it."""
    from importlib.machinery import EXTENSION_SUFFIXES

    package_dir = _os.path.dirname(_os.path.abspath(__file__))
    source_root = _os.path.dirname(package_dir)
    if any(_os.path.exists(_os.path.join(package_dir, "_core" + suffix)) for suffix in EXTENSION_SUFFIXES):
        error = ImportError(f"pyvae's compiled core in {package_dir} failed to load: {exc}")
        error.__cause__ = exc  # the loader's reason (a missing library, say) stays visible
        return error
    others = sorted(name for name in _os.listdir(package_dir) if name.startswith("_core."))
    in_source_tree = _os.path.exists(_os.path.join(source_root, "pyproject.toml")) and _os.path.isdir(
        _os.path.join(source_root, "csrc"))
    if in_source_tree:
        found = f" (only {', '.join(others)}, built for another Python)" if others else ""
        error = ImportError(
            f"pyvae was imported from its source tree ({package_dir}), which has no compiled core "
            f"for this Python{found}. This happens when Python runs in the root of a pyvae clone: the "
            "folder pyvae/ there hides the installed package. Run Python from another directory (for "
            "example `cd ..`) to use the installed pyvae, or build the core into the source tree with "
            "`bash scripts/dev-build.sh` (see the README's Development section)."
        )
    else:
        error = ImportError(
            f"pyvae's compiled core (_core) for this Python is missing from {package_dir}"
            + (f" (only {', '.join(others)})" if others else "")
            + ": reinstall pyvae with this Python (`python -m pip install .` in a clone of the repository)."
        )
    # Python's own message for a missing core speaks of a circular import, which misleads.
    error.__suppress_context__ = True
    return error


try:
    from ._threads import _core  # first: loads the C++ core (see _threads.py)
except ImportError as _exc:
    raise _core_import_error(_exc)
from . import _persistence  # noqa: E402 (after the core)
from ._vae import VAE
from ._conditional import ConditionalVAEImputer
from ._imputer import VAEImputer
from ._synthesizer import MemorizationWarning, VAESynthesizer
from .datasets import load_mnist
from .diagnostics import gradient_variance

__all__ = ["VAE", "VAEImputer", "ConditionalVAEImputer", "VAESynthesizer", "MemorizationWarning", "gradient_variance",
           "load", "load_mnist", "show_config"]
# Written once, in pyproject.toml; the build hands it to the core.
__version__ = _core.__version__


def load(path):
    """Load a model written by :meth:`pyvae.VAE.save`, :meth:`pyvae.VAEImputer.save` or
    :meth:`pyvae.VAESynthesizer.save`.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    model : VAE, VAEImputer or VAESynthesizer
        The fitted estimator the file holds (the file says which), a VAE with
        its optimizer state: it can keep training.

    Raises
    ------
    ValueError
        If the file is truncated, corrupted, not a pyvae model (a pickle or
        joblib file is named as such: read it with pickle or joblib), or of a
        format version this pyvae cannot read.

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
    return _persistence.load(path, {_persistence.FORMAT_NAME: VAE, _persistence.IMPUTER_FORMAT_NAME: VAEImputer,
                                    _persistence.SYNTHESIZER_FORMAT_NAME: VAESynthesizer})


def show_config():
    """Print and return the build configuration of the C++ core.

    Returns
    -------
    config : dict
        OpenMP on/off, the BLAS the core links and, as loaded now, its version
        (``blas_version``), the kernel it chose for this CPU (``blas_kernel``)
        and ``n_threads``, the thread count ``n_threads=None`` uses; the
        instruction set the core's elementwise kernels run
        (``elementwise_isa``: the best this CPU has, ``cpu_isa``, unless the
        environment variable ``PYVAE_ISA`` names a lower one: ``avx2`` or
        ``baseline``, read when pyvae is imported); the dtypes; whether the CUDA engine was built (``cuda``) and the devices
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
    from ._cuda import cuda_config
    from ._threads import resolve_threads

    config = dict(_core.build_config)
    config.update(_blas_runtime(config.get("blas", "")))
    config["n_threads"] = resolve_threads(None)
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
