"""The package's import graph, read from the source with ``ast``: no circles, layers that
import only downwards, and no module that rebinds another module's globals.

An import inside a function counts too: a lazy import is fine (CuPy, ml_dtypes, a costly
submodule), but one that reaches back up to a module importing this one is a circle tied
by hand, and ``autograd.Tensor = Tensor``-style assignments are hidden circles. Layers talk
upwards only through registrations with a name (``autograd.register_tensor_class``,
``amp.register_found_inf_sync``, ``_worker.register_rank_source``).
"""

from __future__ import annotations

import ast
import functools
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("core", "distributed", "launch")


def _module_name(path: pathlib.Path) -> str:
    parts = ["ember", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module_level: bool):
    """Import statements, skipping ``if TYPE_CHECKING:`` blocks; with ``module_level``,
    only those that run when the module is imported (not inside a def)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _imports(ast.Module(body=node.orelse, type_ignores=[]), module_level)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not (module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)):
            yield from _imports(node, module_level)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The ember modules an import statement loads: each named module and its packages."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        names = [f"{base}.{alias.name}" for alias in node.names] + [base]
    found = set()
    for name in names:
        parts = name.split(".")
        for i in range(2, len(parts) + 1):  # importing a.b.c imports a.b first
            prefix = ".".join(parts[:i])
            if prefix in MODULES:
                found.add(prefix)
    # a submodule importing its own package (or a parent) adds no edge: it is mid-import
    return {t for t in found if t != module and not module.startswith(t + ".")}


@functools.cache
def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@functools.cache
def _graph(module_level: bool) -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        tree = _tree(path)
        graph[module] = set().union(*[_targets(module, n) for n in _imports(tree, module_level)])
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_walker_sees_circles_and_lazy_imports(tmp_path):
    tree = ast.parse(
        "import os\n"
        "if TYPE_CHECKING:\n    from . import tensor\n"
        "def f():\n    from .ops import elementwise\n"
        "class C:\n    from . import dtypes\n"
    )
    module_level = [ast.unparse(n) for n in _imports(tree, module_level=True)]
    assert module_level == ["import os", "from . import dtypes"]
    assert len(list(_imports(tree, module_level=False))) == 3
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert _targets("ember.core.tensor", ast.parse("from . import autograd").body[0]) == {
        "ember.core.autograd"
    }


def test_no_import_circles_at_module_level():
    cycle = _cycle(_graph(module_level=True))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_import_circles_through_imports_inside_functions_either():
    cycle = _cycle(_graph(module_level=False))
    assert cycle is None, "import circle (counting imports inside functions): " + " -> ".join(cycle)


def test_core_never_imports_distributed_or_launch():
    # launch (standard library only) < core < distributed: a layer imports only downwards
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in _graph(module_level=False).items()
        if module.startswith("ember.core")
        for target in targets
        if target.startswith(("ember.distributed", "ember.launch"))
    )
    assert wrong == []


def test_launch_needs_only_the_standard_library():
    # ember-launch runs before NumPy may even be importable, at import and in its functions;
    # the root package's version (read from metadata, not from the surface) is the one
    # ember name outside ember.launch it may take
    stdlib = sys.stdlib_module_names
    wrong = []
    for module, path in MODULES.items():
        if not module.startswith("ember.launch"):
            continue
        for node in _imports(_tree(path), module_level=False):
            if isinstance(node, ast.ImportFrom) and node.level:
                if not _targets(module, node) <= {m for m in MODULES if "launch" in m}:
                    wrong.append(f"{module}: {ast.unparse(node)}")
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            wrong += [
                f"{module}: {ast.unparse(node)}" for n in names if n.split(".")[0] not in stdlib
            ]
    assert wrong == []


def _foreign_global_writes(module: str, tree: ast.AST) -> list[str]:
    """``alias.name = ...`` (or ``+=``/``del``) where ``alias`` is an imported ember module."""
    aliases = {}
    for node in _imports(tree, module_level=False):
        for alias in node.names:
            bound = alias.asname or alias.name.split(".")[0]
            for target in _targets(module, node) if isinstance(node, ast.ImportFrom) else ():
                if target.endswith("." + alias.name):
                    aliases[bound] = target
            if isinstance(node, ast.Import) and alias.name.startswith("ember.") and alias.asname:
                aliases[bound] = alias.name
    writes = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            for t in target.elts if isinstance(target, ast.Tuple | ast.List) else [target]:
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id in aliases
                ):
                    writes.append(f"{module}:{t.lineno}: {aliases[t.value.id]}.{t.attr}")
    return writes


def test_no_module_rebinds_another_modules_globals():
    writes = []
    for module, path in MODULES.items():
        writes += _foreign_global_writes(module, _tree(path))
    assert writes == []


def test_the_global_write_check_sees_an_overwritten_module_global():
    tree = ast.parse(
        "from ..core import amp, autograd\nimport ember.core.tensor as t\n"
        "amp.sync_found_inf = None\nx, autograd.Tensor = 1, t.Tensor\n"
        "amp.hooks()[0] = t.x = 1\n"
    )
    assert _foreign_global_writes("ember.distributed.process_group", tree) == [
        "ember.distributed.process_group:3: ember.core.amp.sync_found_inf",
        "ember.distributed.process_group:4: ember.core.autograd.Tensor",
        "ember.distributed.process_group:5: ember.core.tensor.x",
    ]
