"""The optional CUDA engine: whether it can be used here, and loading it.

The engine is a second extension module, ``pyvae._cuda_core``, built only with
``-DPYVAE_CUDA=ON`` and imported only when ``device="cuda"`` is asked for, so
pyvae imports and runs on the CPU wherever it is installed.
"""

import importlib

_BUILD_HINT = (
    "rebuild pyvae with the CUDA engine: PYVAE_CUDA=1 pip install \".[cuda]\" from its source "
    "(needs nvcc, the CUDA toolkit 13)"
)


def _import_core():
    """(module or None, reason it could not be imported)."""
    try:
        _cuda_core = importlib.import_module(f"{__package__}._cuda_core")
    except ModuleNotFoundError as e:
        if e.name == f"{__package__}._cuda_core":
            return None, f"pyvae was built without CUDA support (PYVAE_CUDA=OFF); {_BUILD_HINT}"
        return None, f"the CUDA engine could not be imported: {e}"
    except ImportError as e:  # a shared library is missing, e.g. libcublas.so.13
        return None, f"the CUDA engine could not load a library it needs ({e}); pip install nvidia-cublas"
    return _cuda_core, ""


def cuda_available():
    """Whether ``device="cuda"`` can be used here.

    Returns
    -------
    available : bool
        True when the CUDA engine was built, loads, and sees at least one device.
    reason : str
        What is missing when ``available`` is False (the build, a library,
        the NVIDIA driver, or a device); empty otherwise.
    """
    core, reason = _import_core()
    if core is None:
        return False, reason
    ok, reason, _ = core.cuda_status()
    return bool(ok), reason


def require_cuda(data_parallel=False):
    """Raise when ``device="cuda"`` cannot be used for this fit.

    Raises
    ------
    ValueError
        With ``data_parallel`` (``fit(..., comm=...)``): the CUDA engine runs
        whole epochs on the device, with no per-step Allreduce to join.
    RuntimeError
        When CUDA cannot be used here, naming what is missing.
    """
    if data_parallel:
        raise ValueError(
            "fit(..., comm=...) trains on the CPU engine only: the CUDA engine keeps every step on the "
            "device and has no per-step Allreduce. Use device='cpu' with comm, or device='cuda' without it."
        )
    ok, reason = cuda_available()
    if not ok:
        raise RuntimeError(f"device='cuda' is not available: {reason}. Use device='cpu'.")


def load_engine(**config):
    """A ``ModelCuda`` for the configuration (the keyword arguments of ``_core.Model32``).

    Raises
    ------
    RuntimeError
        When CUDA cannot be used here, naming what is missing.
    """
    require_cuda()
    return _import_core()[0].ModelCuda(**config)


def cuda_config():
    """What show_config reports: whether CUDA was built, and the devices or why there are none."""
    core, reason = _import_core()
    if core is None:
        return {"cuda": False, "cuda_devices": reason}
    ok, reason, _ = core.cuda_status()
    info = {"cuda": True, "cuda_build": dict(core.build_config)}
    info["cuda_devices"] = list(core.device_names()) if ok else f"none usable: {reason}"
    return info
