"""The documentation runs: docstring examples (doctests) and the README's example and API table."""

import doctest
import importlib
import os
import re
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

import pyvae

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
MODULES = ["pyvae", "pyvae._vae", "pyvae._progress", "pyvae.plot", "pyvae.diagnostics"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    if name == "pyvae.plot":
        pytest.importorskip("matplotlib")
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the examples train for a few epochs only
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see stdout)"


def test_every_public_method_has_an_example():
    missing = [name for name, member in vars(pyvae.VAE).items()
               if not name.startswith("_") and callable(member) and ">>>" not in (member.__doc__ or "")]
    assert missing == []


def readme():
    if not os.path.exists(README):
        pytest.skip("README.md is not next to the tests (installed package)")
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_readme_keeps_the_two_commands():
    text = readme()
    assert "pip install . && pyvae demo" in text
    assert 'pip install ".[test]" && pytest' in text


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_readme_example_runs(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)  # the example writes samples.png
    blocks = re.findall(r"```python\n(.*?)```", readme(), flags=re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) < 0  # the printed ELBO
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_readme_api_table_lists_every_public_method_and_function():
    text = readme()
    names = [name for name, member in vars(pyvae.VAE).items() if not name.startswith("_") and callable(member)]
    names += ["fit_transform"] + list(pyvae.__all__)
    try:
        from pyvae import plot
    except ImportError:  # pragma: no cover
        pass
    else:
        names += plot.__all__
    listed = set(re.findall(r"`(?:VAE\.|pyvae\.|plot\.)?([a-z_]+)\(", text))
    assert sorted(set(names) - listed - {"VAE"}) == []


def test_readme_picture_exists():
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme()):
        assert os.path.exists(os.path.join(os.path.dirname(README), path)), path
