"""show_config / `pyvae info`: the BLAS pyvae links, its version and kernel, and the thread count."""

import ctypes
import os
import subprocess
import sys

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
    assert config["n_threads"] == pyvae._threads.resolve_threads(None)


def test_show_config_names_the_elementwise_kernels_in_use():
    isa = pyvae.show_config()["elementwise_isa"]
    assert isinstance(isa, str) and isa


ISAS = {"baseline": "x86-64-v2", "avx2": "x86-64-v3", "avx512": "x86-64-v4"}
needs_dispatch = pytest.mark.skipif(
    not _core.build_config["cpu_isa"].startswith("x86-64-v"), reason="this build has no instruction-set dispatch"
)


def import_with(isa):
    env = dict(os.environ, PYVAE_ISA=isa)
    code = "from pyvae import _core; print(_core.build_config['elementwise_isa'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=os.path.dirname(
        os.path.dirname(pyvae.__file__)), check=False)


@needs_dispatch
def test_pyvae_isa_forces_each_instruction_set_the_cpu_has():
    cpu = _core.build_config["cpu_isa"].split()[0]
    for isa, name in ISAS.items():
        done = import_with(isa)
        if name <= cpu:  # "x86-64-v2" < "x86-64-v3" < "x86-64-v4"
            assert done.returncode == 0, done.stderr
            assert done.stdout.split()[0] == name
        else:
            assert done.returncode != 0 and "which this CPU lacks" in done.stderr


@needs_dispatch
def test_pyvae_isa_refuses_an_unknown_name():
    done = import_with("sse9")
    assert done.returncode != 0
    assert "PYVAE_ISA=sse9 is not one of auto, avx512, avx2, baseline" in done.stderr
