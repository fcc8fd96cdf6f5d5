"""Imports go one way: edges -> run-time | features -> model -> backends, leaf modules from anywhere.

An AST check over src/conveyor (no import is executed) that fails on:
(a) an import from a lower layer to a higher one, lazy ones inside functions and
    type-only ones included;
(b) an import cycle between modules (type-only imports excluded: they never run);
(c) a module reaching another module's private name: ``from x import _y``,
    ``module._y``, or ``obj._y`` on anything but ``self``/``cls``.
docs/architecture.md describes the layers in words.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "conveyor"

#: Layers by module prefix (the longest matching prefix wins); ``name=`` matches that module only.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "leaf",
        (
            "conveyor.errors",
            "conveyor.states",
            "conveyor.ids",
            "conveyor.durations",
            "conveyor.tracing",
            "conveyor.version",
        ),
    ),
    (
        "edges",
        (
            "conveyor=",  # the package itself (exactly): the composition root that plugs built-ins in
            "conveyor.__main__",
            "conveyor.cli",  # the package: one module a command group
            "conveyor.cli_backend",
            "conveyor.cli_errors",
            "conveyor.cli_logging",
            "conveyor.render",
            "conveyor.demo",
            "conveyor.loader",
            "conveyor.server",
            "conveyor.testing",
            "conveyor.contrib",
        ),
    ),
    ("run-time", ("conveyor.worker",)),
    ("features", ("conveyor.webhooks",)),
    (
        "model",
        (
            "conveyor.app",
            "conveyor.actions",
            "conveyor.arguments",
            "conveyor.builder",
            "conveyor.task",
            "conveyor.job",
            "conveyor.backoff",
            "conveyor.retry",
            "conveyor.context",
            "conveyor.config",
            "conveyor.schedules",
            "conveyor.alerts",
        ),
    ),
    ("backends", ("conveyor.backends",)),
]

#: What each layer may import. The run-time and the features are peers that never
#: import each other: the worker reaches a feature only through the App's seams.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "edges": frozenset({"edges", "run-time", "features", "model", "backends", "leaf"}),
    "run-time": frozenset({"run-time", "model", "backends", "leaf"}),
    "features": frozenset({"features", "model", "backends", "leaf"}),
    "model": frozenset({"model", "backends", "leaf"}),
    "backends": frozenset({"backends", "leaf"}),
    "leaf": frozenset({"leaf"}),
}

#: Private-looking names that are public APIs of Python or a library.
LIBRARY_PRIVATE_NAMES = frozenset(
    {
        "_replace",  # NamedTuple: a copy with fields changed
        "_asdict",  # NamedTuple: the fields as a dict
        "_fields",  # NamedTuple: the field names
        "_exit",  # os._exit: leave a forked child without running the parent's clean-up
        "_getframe",  # sys._getframe
    }
)


@dataclass(frozen=True)
class Import:
    """One import statement's target inside the package."""

    source: str
    target: str
    line: int
    type_only: bool


def module_files() -> Iterator[tuple[str, Path]]:
    """Every module of the package as (dotted name, path)."""
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


MODULES = dict(module_files())


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            exact = prefix.endswith("=")
            name = prefix.rstrip("=")
            matches = module == name or (not exact and module.startswith(name + "."))
            if matches and (best is None or len(name) > best[0]):
                best = (len(name), layer)
    return None if best is None else best[1]


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def resolve(source: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = source.split(".") if is_package(source) else source.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def known(module: str) -> str | None:
    """The package module an import names (a name inside a module counts as the module)."""
    while module:
        if module in MODULES:
            return module
        module = module.rpartition(".")[0]
    return None


class ImportCollector(ast.NodeVisitor):
    """Every import of a package module, noting the ones under ``if TYPE_CHECKING``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.imports: list[Import] = []
        self.private_names: list[tuple[int, str]] = []
        self.module_aliases: set[str] = set()
        self._type_only = 0

    def visit_If(self, node: ast.If) -> None:
        if is_type_checking(node.test):
            self._type_only += 1
            for child in node.body:
                self.visit(child)
            self._type_only -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _add(self, target: str | None, line: int) -> None:
        if target is not None and target != self.source:
            self.imports.append(Import(self.source, target, line, self._type_only > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.startswith(PACKAGE + ".") or alias.name == PACKAGE:
                self._add(known(alias.name), node.lineno)
                self.module_aliases.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = resolve(self.source, node)
        if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
            return
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in MODULES:
                self._add(submodule, node.lineno)
                self.module_aliases.add(alias.asname or alias.name)
                continue
            self._add(known(base), node.lineno)
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                self.private_names.append((node.lineno, f"from {base} import {alias.name}"))


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reaches(tree: ast.AST, module_aliases: set[str]) -> Iterator[tuple[int, str]]:
    """``module._y`` and ``obj._y`` where obj is not self/cls (nor super())."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and is_private(node.attr)):
            continue
        if node.attr in LIBRARY_PRIVATE_NAMES:
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        what = "module" if isinstance(owner, ast.Name) and owner.id in module_aliases else "object"
        yield node.lineno, f"{ast.unparse(owner)}.{node.attr} ({what})"


@dataclass
class Scan:
    imports: list[Import]
    private: list[str]


def scan() -> Scan:
    imports: list[Import] = []
    private: list[str] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        collector = ImportCollector(module)
        collector.visit(tree)
        imports += collector.imports
        where = path.relative_to(SRC)
        for line, text in collector.private_names + list(private_reaches(tree, collector.module_aliases)):
            private.append(f"{where}:{line}: {text}")
    return Scan(imports, private)


SCAN = scan()


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"add these modules to LAYERS (and docs/architecture.md): {unplaced}"


def test_imports_go_one_way() -> None:
    wrong = []
    for imp in SCAN.imports:
        source, target = layer_of(imp.source), layer_of(imp.target)
        if source is None or target is None:
            continue  # reported by test_every_module_has_a_layer
        if target not in MAY_IMPORT[source]:
            kind = " (type-only)" if imp.type_only else ""
            wrong.append(f"{imp.source}:{imp.line} ({source}) imports {imp.target} ({target}){kind}")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def run_time_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for imp in SCAN.imports:
        if not imp.type_only:
            graph.setdefault(imp.source, set()).add(imp.target)
    return graph


def test_no_import_cycles() -> None:
    cycle = find_cycle(run_time_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_reaches_another_modules_private_names() -> None:
    assert not SCAN.private, "private names reached from outside their module:\n" + "\n".join(SCAN.private)


# -- the checker catches what it is meant to -----------------------------------------------------------
def collect(source: str, module: str = "conveyor.app") -> ImportCollector:
    collector = ImportCollector(module)
    collector.visit(ast.parse(source))
    return collector


def test_the_checker_sees_lazy_and_type_only_imports() -> None:
    found = collect(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .worker import Worker\n"
        "def f():\n    from .webhooks import sign\n"
    ).imports
    assert [(i.target, i.type_only) for i in found] == [
        ("conveyor.worker", True),
        ("conveyor.webhooks", False),
    ]
    for imp in found:
        assert layer_of(imp.target) not in MAY_IMPORT[layer_of(imp.source) or ""]


@pytest.mark.parametrize(
    ("source", "reach"),
    [
        ("from .task import _exception_classes", "from conveyor.task import _exception_classes"),
        ("from . import app\napp._thing", "app._thing (module)"),
        ("def f(app):\n    return app._backend", "app._backend (object)"),
        ("def f(self):\n    return self.app._backend", "self.app._backend (object)"),
    ],
)
def test_the_checker_sees_private_reaches(source: str, reach: str) -> None:
    collector = collect(source, "conveyor.render")  # a top-level module: `.task` is conveyor.task
    tree = ast.parse(source)
    found = [
        text for _, text in collector.private_names + list(private_reaches(tree, collector.module_aliases))
    ]
    assert found == [reach]


def test_the_checker_allows_self_cls_and_library_names() -> None:
    source = "def f(self, row):\n    self._x = cls._y\n    return row._replace(a=1), super()._z\n"
    assert list(private_reaches(ast.parse(source), set())) == []


def test_a_new_module_needs_a_layer() -> None:
    assert layer_of("conveyor") == "edges" and layer_of("conveyor.server.routes") == "edges"
    assert layer_of("conveyor.backends.memory") == "backends"
    assert layer_of("conveyor.scheduler") is None


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
