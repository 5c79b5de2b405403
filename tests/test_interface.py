"""pyvae's modules meet VAE at one interface: only pyvae/_vae.py imports VAE's
private names or reaches the C++ engine (ConditionalVAEImputer's own engine,
the conditional model, aside), no module outgrows 800 lines, and VAEImputer
hands its VAE every hyperparameter they share."""

import ast
import os

import numpy as np
import pytest

import pyvae
from pyvae import VAE, VAEImputer
from pyvae._imputer import _FORWARDED

PACKAGE = os.path.dirname(pyvae.__file__)
MODULES = sorted(name for name in os.listdir(PACKAGE) if name.endswith(".py"))
MAX_LINES = 800
# What reaches an engine (_core.Model32 or Model64, _cuda_core.ModelCuda): making
# one, or VAE's handle on its own. Only VAE may, and the CUDA loader that makes
# VAE's ModelCuda; the conditional model's engine belongs to its imputer alone.
ENGINE_NAMES = {"_engine", "_engine_cache", "Model32", "Model64", "ModelCuda", "load_engine", "ConditionalModel32",
                "ConditionalModel64"}
ENGINE_NAMES_ALLOWED = {"_vae.py": ENGINE_NAMES, "_cuda.py": {"ModelCuda", "load_engine"},
                        "_conditional.py": {"_engine", "ConditionalModel32"}}


def interface_breaches(source, filename):
    """Where the module ``filename`` of pyvae/ (its text ``source``) goes past VAE's
    interface: "line N: what", for each private import from _vae, import of the
    _vae module itself (whose private names would follow), and engine name."""
    if filename == "_vae.py":
        return []
    allowed = ENGINE_NAMES_ALLOWED.get(filename, set())
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if module in ("._vae", "pyvae._vae") and alias.name.startswith("_"):
                    found.append(f"line {node.lineno}: imports {alias.name} from _vae")
                if module in (".", "pyvae") and alias.name == "_vae":
                    found.append(f"line {node.lineno}: imports the module _vae")
                if alias.name in ENGINE_NAMES - allowed:
                    found.append(f"line {node.lineno}: imports {alias.name}")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name == "pyvae._vae"]
        elif isinstance(node, ast.Attribute) and node.attr in ENGINE_NAMES - allowed:
            found.append(f"line {node.lineno}: uses .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in ENGINE_NAMES - allowed:
            found.append(f"line {node.lineno}: uses {node.id}")
    return found


def test_the_check_finds_each_kind_of_breach():
    breaches = {
        "from ._vae import VAE, _draw_seed": "imports _draw_seed from _vae",
        "from pyvae._vae import _INT": "imports _INT from _vae",
        "from . import _vae": "imports the module _vae",
        "import pyvae._vae": "imports pyvae._vae",
        "filled = vae._engine().impute(vae.params_, X, 10, 0)": "uses ._engine",
        "engine = _core.Model64(**config)": "uses .Model64",
        "from ._cuda import load_engine": "imports load_engine",
    }
    for source, expected in breaches.items():
        assert interface_breaches(source, "_imputer.py") == [f"line 1: {expected}"], source
    assert interface_breaches("from ._vae import VAE\nvae._impute(X, 10, 0, None)", "_imputer.py") == []
    assert interface_breaches("engine = _core.Model32(**config)", "_vae.py") == []
    assert interface_breaches("return _import_core()[0].ModelCuda(**config)", "_cuda.py") == []


@pytest.mark.parametrize("filename", MODULES)
def test_only_vae_reaches_past_its_interface(filename):
    with open(os.path.join(PACKAGE, filename), encoding="utf-8") as f:
        assert interface_breaches(f.read(), filename) == []


@pytest.mark.parametrize("filename", MODULES)
def test_no_module_is_over_800_lines(filename):
    with open(os.path.join(PACKAGE, filename), encoding="utf-8") as f:
        n_lines = len(f.read().splitlines())
    assert n_lines <= MAX_LINES, f"pyvae/{filename} has {n_lines} lines"


def test_imputer_forwards_every_hyperparameter_it_shares_with_vae():
    shared = set(VAEImputer().get_params()) & set(VAE().get_params())
    # The imputer derives these two itself: n_components from the data, random_state a seed of its own.
    assert shared - set(_FORWARDED) == {"n_components", "random_state"}
    assert set(_FORWARDED) <= shared


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_forwarded_hyperparameters_reach_the_vae(capsys):
    values = dict(hidden_layer_sizes=(7,), activation="relu", objective="iwae", n_mc_samples=2,
                  variance_floor=1e-5, batch_size=16, learning_rate=2e-3, learning_rate_schedule="cosine", max_iter=2,
                  alpha=1e-4, tol=1e-3,
                  early_stopping=True, validation_fraction=0.2, n_iter_no_change=5, verbose=2, n_threads=1)
    assert set(values) == set(_FORWARDED)
    defaults = VAEImputer().get_params()
    assert all(values[name] != defaults[name] for name in values)  # so each one must have travelled
    X = np.random.default_rng(0).normal(size=(80, 4))
    X[::5, 1] = np.nan
    vae = VAEImputer(random_state=0, **values).fit(X).vae_
    assert {name: vae.get_params()[name] for name in values} == values
