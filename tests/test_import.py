"""Importing pyvae from a source tree without its compiled core says what happened and what to do."""

import os
import shutil
import subprocess
import sys

import pytest

import pyvae

PACKAGE_DIR = os.path.dirname(os.path.abspath(pyvae.__file__))


def source_tree_without_core(root, with_project_files=True):
    """A copy of the package's Python files under root/pyvae, as in a fresh clone (no _core*.so)."""
    shutil.copytree(PACKAGE_DIR, root / "pyvae", ignore=shutil.ignore_patterns("_core*", "_cuda_core*", "__pycache__"))
    if with_project_files:
        (root / "pyproject.toml").write_text("[project]\nname = \"pyvae\"\n")
        (root / "csrc").mkdir()
    return root


def import_in(cwd):
    """`python -c "import pyvae"` started in cwd, with nothing else on the path that holds pyvae."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", "import pyvae"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_import_from_the_root_of_a_clone_explains_and_suggests(tmp_path):
    result = import_in(source_tree_without_core(tmp_path))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: pyvae was imported from its source tree")
    assert "Run Python from another directory" in last and "scripts/dev-build.sh" in last
    assert "circular import" not in result.stderr


def test_core_built_for_another_python_is_named(tmp_path):
    root = source_tree_without_core(tmp_path)
    (root / "pyvae" / "_core.cpython-99-x86_64-linux-gnu.so").write_bytes(b"")
    last = import_in(root).stderr.strip().splitlines()[-1]
    assert "_core.cpython-99-x86_64-linux-gnu.so, built for another Python" in last


def test_unbuilt_copy_outside_a_clone_says_to_reinstall(tmp_path):
    last = import_in(source_tree_without_core(tmp_path, with_project_files=False)).stderr.strip().splitlines()[-1]
    assert "compiled core (_core) for this Python is missing" in last and "pip install ." in last


@pytest.mark.skipif(sys.platform == "win32", reason="an empty file stands for a broken shared library")
def test_a_core_that_fails_to_load_keeps_the_loaders_reason(tmp_path):
    from importlib.machinery import EXTENSION_SUFFIXES

    root = source_tree_without_core(tmp_path)
    (root / "pyvae" / ("_core" + EXTENSION_SUFFIXES[0])).write_bytes(b"not a shared library")
    result = import_in(root)
    assert "compiled core in" in result.stderr and "failed to load" in result.stderr
    assert "direct cause" in result.stderr  # the loader's own error is shown above ours


def test_the_test_extra_holds_what_the_default_run_needs_and_mpi_dask_have_their_own():
    import os

    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml without a package")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert not any(name in " ".join(extras["test"]) for name in ("mpi", "dask")), extras["test"]
    assert "pyvae[test,mpi,dask]" in extras["test-all"]
    for test_file, extra in (("test_mpi.py", "mpi"), ("test_dask.py", "dask")):
        with open(os.path.join(root, "tests", test_file), encoding="utf-8") as f:
            assert f"pip install \\\".[{extra}]\\\"" in f.read(), test_file  # the skip names the extra
