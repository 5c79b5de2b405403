"""pyvae's modules import each other without a cycle (each module, function-level imports included)."""

import ast
import os

import pyvae

PACKAGE = os.path.dirname(pyvae.__file__)


def imports_of(path, module):
    """The pyvae modules that ``module`` (its source at ``path``) imports, anywhere in the file."""
    found = set()
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "pyvae")
        elif isinstance(node, ast.ImportFrom):
            base = package if node.level else ""
            for _ in range(max(0, node.level - 1)):
                base = base.rpartition(".")[0]
            target = ".".join(p for p in (base, node.module or "") if p)
            if target.split(".")[0] != "pyvae":
                continue
            for alias in node.names:  # `from . import _core` names a module, `from ._vae import VAE` does not
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return found - {module}


# Python modules and compiled extensions (_core, _cuda_core: leaves, they import nothing of pyvae).
MODULES = {"pyvae"} | {
    f"pyvae.{name.split('.')[0]}" for name in os.listdir(PACKAGE)
    if (name.endswith(".py") and name != "__init__.py") or name.endswith(".so")
}


def test_no_import_cycle():
    graph = {}
    for module in MODULES:
        name = "__init__.py" if module == "pyvae" else module.split(".", 1)[1] + ".py"
        path = os.path.join(PACKAGE, name)
        graph[module] = {m for m in imports_of(path, module) if m in MODULES} if os.path.exists(path) else set()
    # An edge to "pyvae" (`from . import __version__`) runs __init__, which
    # imports most modules: from any of those, it closes a cycle.
    state, cycle = {}, []

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycle.extend(path[path.index(dep):] + [dep])
                return True
            if dep not in state and visit(dep, path + [dep]):
                return True
        state[module] = "done"
        return False

    for module in sorted(MODULES):
        if module not in state and visit(module, [module]):
            break
    assert not cycle, " -> ".join(cycle)
