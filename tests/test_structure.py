"""The package's shape: imports flow one way, and library code never depends on the CLI layer.

Every ``import`` of a package module counts, function-level ones too: an import hidden in a
function still makes a cycle, only a later-failing one.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imagenet_think"

CLI_LAYER = ("imagenet_think.cli",)
"""The console script's package: argparse wiring and the one error convention."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_cli_layer(module: str) -> bool:
    """The CLI package and each package's ``__main__`` (``python -m``) module."""
    return module.startswith(CLI_LAYER) or module.endswith(".__main__")


def imports_of(source: str, package: str, modules: set[str]) -> set[str]:
    """The ``modules`` that ``source`` (a module of ``package``) imports, anywhere in it
    (``from X import y`` counts as ``X.y`` when that is a module, else ``X``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph = {}
    for path in paths:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = imports_of(path.read_text(encoding="utf-8"), package, modules) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component with
    more than one module.

    >>> cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b', 'a']]
    """
    found, seen, stack = [], set(), []

    def visit(node: str) -> None:
        seen.add(node)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target in stack:
                cycle = stack[stack.index(target):] + [target]
                if sorted(cycle[:-1]) not in [sorted(c[:-1]) for c in found]:
                    found.append(cycle)
            elif target not in seen:
                visit(target)
        stack.pop()

    for node in sorted(graph):
        if node not in seen:
            visit(node)
    return found


def test_the_graph_sees_function_level_and_relative_imports():
    # what the other tests rely on: an import inside a function is an edge of the graph
    modules = {"imagenet_think.a", "imagenet_think.b", "imagenet_think.c", "imagenet_think.c.d"}
    source = "import os\ndef f():\n    from imagenet_think.b import g\n    from .c import d\n    return g, d\n"
    assert imports_of(source, "imagenet_think", modules) == {"imagenet_think.b", "imagenet_think.c.d"}


def test_no_import_cycles_among_package_modules():
    # Package __init__ modules re-export their children, which import the package back: an
    # edge into a package's own __init__ from inside it is how Python packages work, not a cycle.
    graph = {
        module: {t for t in targets if not module.startswith(f"{t}.")}
        for module, targets in import_graph().items()
    }
    assert cycles(graph) == []


def test_library_modules_never_import_the_cli_layer():
    offenders = {
        module: sorted(filter(is_cli_layer, targets))
        for module, targets in import_graph().items()
        if not is_cli_layer(module) and any(map(is_cli_layer, targets))
    }
    assert offenders == {}
