"""The layer rule: entry points -> serving -> explain -> recommender, never back, and no import
cycle between modules. Read from the source (every import statement, inside functions too), so a
lazy import that points up a layer fails here as surely as a top-level one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("recommender", "explain", "serving", "trustrec")  # bottom to top


def modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, module: str, *, top_level_only: bool = False) -> set[str]:
    """Project modules imported by the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in LAYERS}


def layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_imports_only_point_down():
    upward = [
        f"{module} imports {target}"
        for module, path in modules().items()
        for target in imports(path, module)
        if layer(target) > layer(module)
    ]
    assert upward == [], "\n".join(upward)


def test_no_import_cycle_between_modules():
    """Imports inside functions count too: a lazy import is still a dependency. A package's
    __init__ importing its own modules is how a package exports names, not a dependency."""
    known = modules()
    graph = {m: {t for t in imports(p, m) if t in known and t != m
                 and not (p.name == "__init__.py" and t.startswith(m + "."))}
             for m, p in known.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "\n".join(cycles)


@pytest.mark.parametrize("lower", ["recommender", "explain"])
def test_lower_layers_never_name_serving_or_the_entry_points(lower):
    for path in (ROOT / lower).rglob("*.py"):
        text = path.read_text()
        assert "import serving" not in text and "from serving" not in text, path
        assert "from trustrec" not in text and "import trustrec" not in text, path


def test_views_hold_no_sql():
    """serving/api/ calls the records layer (serving/records/); SQL and tables live there."""
    for path in (ROOT / "serving" / "api").glob("*.py"):
        text = path.read_text()
        for needle in ("sqlalchemy", "_table", "sa.", "SELECT ", "INSERT ", "UPDATE ", "DELETE "):
            assert needle not in text, f"{path.name} holds {needle!r}"
