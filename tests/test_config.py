"""show_config / `pyvae info`: the BLAS pyvae links, its version and kernel, and the thread count."""

import ctypes

import pytest

import pyvae
from pyvae import _core


@pytest.mark.skipif(not _core.build_config["blas"].startswith("scipy-openblas32"), reason="built without OpenBLAS")
def test_show_config_names_the_loaded_blas_and_its_kernel(capsys):
    config = pyvae.show_config()
    # The kernel threadpoolctl reports is the one OpenBLAS itself names.
    lib = ctypes.CDLL(config["blas_library"])
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    lib.scipy_openblas_get_config.restype = ctypes.c_char_p
    assert config["blas_kernel"].lower() == lib.scipy_openblas_get_corename().decode().lower()
    assert config["blas_version"] in lib.scipy_openblas_get_config().decode()
    assert "scipy_openblas32" in config["blas_library"]
    printed = capsys.readouterr().out
    assert f"blas_kernel: {config['blas_kernel']}" in printed


def test_show_config_reports_the_default_thread_count():
    config = pyvae.show_config()
    assert isinstance(config["n_threads"], int) and config["n_threads"] >= 1
    assert config["n_threads"] == pyvae._vae._resolve_threads(None)


def test_show_config_names_the_elementwise_kernels_in_use():
    isa = pyvae.show_config()["elementwise_isa"]
    assert isinstance(isa, str) and isa
