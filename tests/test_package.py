"""The package's shape: its imports form no cycle, training stands without the analysis, and
the public API keeps one convention (DESIGN.md)."""

import ast
import importlib
import inspect
import pathlib
import subprocess
import sys

import pytest

import deepest

PACKAGE = pathlib.Path(deepest.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports_at_import_time(name: str, path: pathlib.Path) -> set[str]:
    """The deepest modules `name` imports when it is imported: module-level statements only
    (an import inside a function runs later, when called, and cannot close a cycle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from . import x` imports the module x when there is one, else a name of the package.
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}
    return {module for module in found if module in MODULES and module != name}


def test_no_import_cycle_inside_the_package():
    graph = {name: _imports_at_import_time(name, path) for name, path in MODULES.items()}
    visiting, done = [], set()

    def visit(module):
        if module in visiting:
            cycle = visiting[visiting.index(module) :] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        visiting.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_walker_sees_a_known_edge():
    """A guard on the test above: it must see real imports, or it could pass on an empty graph."""
    assert "deepest.network" in _imports_at_import_time("deepest.layers", MODULES["deepest.layers"])
    assert "deepest.layers" in _imports_at_import_time("deepest.analysis.spectra", MODULES["deepest.analysis.spectra"])


def test_training_does_not_import_the_analysis():
    code = "import deepest.train, sys; print(sorted(m for m in sys.modules if m.startswith('deepest.analysis')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"deepest.train imported {loaded}"


def test_matplotlib_backend_is_chosen_by_the_command_line_only():
    """A notebook that calls the library keeps its inline backend."""
    choosing = [name for name, path in MODULES.items() if "matplotlib.use(" in path.read_text()]
    assert choosing == ["deepest.cli"]


def _public_functions():
    """(public name, signature) of every function the public modules offer, re-exports of
    private modules included (`deepest.train.fit` lives in `deepest.train._fit`)."""
    seen = set()
    for name in MODULES:
        if any(part.startswith("_") for part in name.split(".")):
            continue
        module = importlib.import_module(name)
        for attribute in dir(module):
            function = getattr(module, attribute)
            if attribute.startswith("_") or not inspect.isfunction(function) or function in seen:
                continue
            if not function.__module__.startswith("deepest"):
                continue
            seen.add(function)
            yield f"{name}.{attribute}", inspect.signature(function)


def test_loss_fn_is_the_last_required_argument():
    """(net, xs, targets, loss_fn): the loss comes last among the required arguments."""
    misplaced = []
    for name, signature in _public_functions():
        required = [p.name for p in signature.parameters.values() if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if "loss_fn" in required and required[-1] != "loss_fn":
            misplaced.append(f"{name}({', '.join(required)})")
    assert not misplaced, misplaced


def test_randomness_always_comes_from_a_key_argument():
    """No public function draws from a key it was not given: no defaulted `key` or `seed`,
    and no PRNGKey made from a constant inside the library (only `deepest.experiment.run`
    turns a config's seed into a key)."""
    # Exact where it may be: exact=True draws nothing, and without it a missing key is a ValueError.
    optional = {"deepest.regularisers.jacobian_frobenius"}
    defaulted = [
        f"{name}({argument}=...)"
        for name, signature in _public_functions()
        for argument in ("key", "seed")
        if argument in signature.parameters and signature.parameters[argument].default is not inspect.Parameter.empty and name not in optional
    ]
    assert not defaulted, f"these default their randomness: {defaulted}"
    constant_keys = [name for name, path in MODULES.items() if "PRNGKey(0)" in path.read_text() or "key(0)" in path.read_text()]
    assert not constant_keys, constant_keys


def test_the_api_checks_see_the_public_functions():
    """A guard on the two tests above: they must see re-exported functions, or they pass on nothing."""
    names = {name.rpartition(".")[2] for name, _ in _public_functions()}
    assert {"fit", "layer_chain", "stability_report", "gradient_norms"} <= names


def test_public_api_of_the_layer_map():
    for function in ("layer_times", "layer_step", "layer_chain", "trajectories", "solver_step", "solver_step_with_error"):
        assert inspect.getdoc(getattr(deepest.layers, function)), function
