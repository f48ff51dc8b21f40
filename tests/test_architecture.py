"""Layering and size rules of the ``alphaforge`` source tree, checked on its syntax trees.

- No import cycle between modules (imports inside functions count; ``if TYPE_CHECKING:`` ones
  do not, they never run).
- No import of an ``alphaforge`` module inside a function or method: dependencies between our
  own modules are declared at the top, where the cycle check and readers see them.
- Source files of at most 800 lines, functions of at most 100 lines.
- No block of 6 or more identical code lines (docstrings, imports and comments aside) in two
  places: shared logic lives in one function.

Each failure lists every offending file and line, relative to the repository root.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "alphaforge"
SRC = ROOT / "src" / PACKAGE
MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 100

Function = ast.FunctionDef | ast.AsyncFunctionDef
FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


@dataclass(frozen=True)
class Module:
    """One parsed source file: dotted name, path and syntax tree."""

    name: str
    path: Path
    is_package: bool
    source: str
    tree: ast.Module

    @property
    def where(self) -> str:
        """The file's path relative to the repository root."""
        return self.path.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class ImportSite:
    """One ``import`` statement of a module and the ``alphaforge`` modules it loads."""

    module: Module
    node: ast.Import | ast.ImportFrom
    targets: tuple[str, ...]
    in_function: bool
    type_checking: bool

    def __str__(self) -> str:
        """``path:line: statement``, for failure messages."""
        return f"{self.module.where}:{self.node.lineno}: {ast.unparse(self.node)}"


def _dotted_name(path: Path) -> str:
    """``src/alphaforge/data/io.py`` -> ``alphaforge.data.io``; a package is its ``__init__``."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def _modules() -> dict[str, Module]:
    """Every module of the source tree, by dotted name."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = _dotted_name(path)
        tree = ast.parse(source, filename=str(path))
        out[name] = Module(name, path, path.name == "__init__.py", source, tree)
    return out


def _is_type_checking(test: ast.expr) -> bool:
    """True for ``TYPE_CHECKING`` and ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _import_nodes(
    node: ast.AST, in_function: bool = False, type_checking: bool = False
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import at or below ``node``: (import, inside a function?, under TYPE_CHECKING?)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, in_function, type_checking
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _import_nodes(stmt, in_function, True)
        for stmt in node.orelse:
            yield from _import_nodes(stmt, in_function, type_checking)
    else:
        inside = in_function or isinstance(node, FUNCTION_NODES)
        for child in ast.iter_child_nodes(node):
            yield from _import_nodes(child, inside, type_checking)


def _known(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules, if any."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in _modules():
            return candidate
        parts.pop()
    return None


def _from_base(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    package = module.name.split(".")
    if not module.is_package:
        package.pop()
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _targets(module: Module, node: ast.Import | ast.ImportFrom) -> tuple[str, ...]:
    """The ``alphaforge`` modules an import loads: a submodule when the imported name is one."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _from_base(module, node)
        names = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in _modules() else base
            for alias in node.names
        ]
    found = (_known(n) for n in names if n.split(".")[0] == PACKAGE)
    return tuple(dict.fromkeys(t for t in found if t is not None))


@functools.cache
def _import_sites() -> tuple[ImportSite, ...]:
    """Every import of an ``alphaforge`` module anywhere in the source tree."""
    sites = []
    for module in _modules().values():
        for node, in_function, type_checking in _import_nodes(module.tree):
            targets = _targets(module, node)
            if targets:
                sites.append(ImportSite(module, node, targets, in_function, type_checking))
    return tuple(sites)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:  # node is the root of a component: pop it
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[ImportSite]]]:
    """Module -> modules it imports at run time, and the import statements behind each edge."""
    graph: dict[str, set[str]] = {name: set() for name in _modules()}
    edges: dict[tuple[str, str], list[ImportSite]] = {}
    for site in _import_sites():
        if site.type_checking:
            continue
        for target in site.targets:
            if target != site.module.name:
                graph[site.module.name].add(target)
                edges.setdefault((site.module.name, target), []).append(site)
    return graph, edges


def test_checker_sees_cycles_nested_imports_and_type_checking() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import schema\n"
        "if TYPE_CHECKING:\n"
        "    from alphaforge.run import RunResult\n"
        "def load():\n"
        "    from ..features import max_lookback\n"
    )
    path = SRC / "data" / "io.py"
    module = Module("alphaforge.data.io", path, False, source, ast.parse(source))
    found = [
        (_targets(module, node), in_function, type_checking)
        for node, in_function, type_checking in _import_nodes(module.tree)
    ]
    assert found == [
        ((), False, False),
        (("alphaforge.data.schema",), False, False),
        (("alphaforge.run",), False, True),
        (("alphaforge.features",), True, False),
    ]


def test_no_import_cycles() -> None:
    graph, edges = _import_graph()
    report = []
    for component in _cycles(graph):
        members = set(component)
        lines = [
            f"    {site}"
            for (src, dst), sites in sorted(edges.items())
            if src in members and dst in members
            for site in sites
        ]
        report.append(f"  cycle between {', '.join(component)}:\n" + "\n".join(lines))
    header = "import cycles (with the imports between their members):\n"
    assert not report, header + "\n".join(report)


def test_no_in_function_imports_of_alphaforge() -> None:
    bad = [f"  {site}" for site in _import_sites() if site.in_function]
    assert not bad, (
        f"{len(bad)} imports of alphaforge modules inside functions (move them to the top of "
        "the module):\n" + "\n".join(bad)
    )


def test_source_files_at_most_800_lines() -> None:
    bad = [
        f"  {m.where}: {n} lines"
        for m in _modules().values()
        if (n := len(m.source.splitlines())) > MAX_FILE_LINES
    ]
    assert not bad, f"source files over {MAX_FILE_LINES} lines:\n" + "\n".join(bad)


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, Function]]:
    """Every function and method below ``node``, with its qualified name."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            qualname = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield qualname, child
            yield from _functions(child, f"{qualname}.")
        else:
            yield from _functions(child, prefix)


def test_functions_at_most_100_lines() -> None:
    bad = [
        f"  {m.where}:{fn.lineno}: {name} ({length} lines)"
        for m in _modules().values()
        for name, fn in _functions(m.tree)
        if (length := fn.end_lineno - fn.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert not bad, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(bad)


# --------------------------------------------------------------------------- repeated code
MIN_REPEAT_LINES = 6  # a block of this many identical code lines in two places is a copy
_THIN = frozenset("()[]{}:,.")


def _docstring_lines(tree: ast.Module) -> set[int]:
    """Line numbers of module, class and function docstrings (prose may repeat, code not)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def _code_lines(module: Module) -> list[tuple[str, int]]:
    """``(line with white space folded, line number)`` of the lines that carry code: no blank,
    comment, import, decorator or punctuation-only line, and no docstring."""
    docs = _docstring_lines(module.tree)
    out = []
    for number, raw in enumerate(module.source.splitlines(), 1):
        line = " ".join(raw.split())
        if number in docs or not line or line.startswith(("#", "import ", "from ", "@")):
            continue
        if set(line) <= _THIN | {" "}:
            continue
        out.append((line, number))
    return out


def _repeated_blocks(modules: dict[str, Module]) -> list[str]:
    """Every pair of places sharing ``MIN_REPEAT_LINES`` or more identical code lines."""
    code = {name: _code_lines(m) for name, m in modules.items()}
    places: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    for name, lines in code.items():
        for i in range(len(lines) - MIN_REPEAT_LINES + 1):
            block = tuple(text for text, _ in lines[i : i + MIN_REPEAT_LINES])
            places.setdefault(block, []).append((name, i))
    starts: dict[tuple[str, str, int], list[int]] = {}  # (file a, file b, offset) -> windows
    for found in places.values():
        for k, (a, i) in enumerate(found):
            for b, j in found[k + 1 :]:
                if a != b or j - i >= MIN_REPEAT_LINES:  # not a run overlapping itself
                    starts.setdefault((a, b, j - i), []).append(i)
    pairs = []
    for (a, b, offset), windows in sorted(starts.items()):
        windows.sort()
        for n, i in enumerate(windows):
            if n == 0 or i > windows[n - 1] + 1:  # consecutive windows are one block
                pairs.append(
                    f"  {modules[a].where}:{code[a][i][1]} ~ "
                    f"{modules[b].where}:{code[b][i + offset][1]}"
                )
    return pairs


def test_checker_finds_repeated_blocks() -> None:
    body = "\n".join(f"    total += values[{k}] * weights[{k}]" for k in range(6))
    source = f'"""Docs."""\n\n\ndef f(values, weights):\n    total = 0\n{body}\n    return total\n'
    fake = {
        name: Module(name, ROOT / f"{name}.py", False, source, ast.parse(source))
        for name in ("a", "b")
    }
    assert len(_repeated_blocks(fake)) == 1
    other = {"a": fake["a"]}
    assert _repeated_blocks(other) == []


def test_no_repeated_code_blocks() -> None:
    pairs = _repeated_blocks(_modules())
    assert not pairs, (
        f"{len(pairs)} blocks of {MIN_REPEAT_LINES}+ identical code lines in two places "
        "(factor them into one function):\n" + "\n".join(pairs)
    )
