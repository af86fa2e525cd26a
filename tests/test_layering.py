"""The package graph: who may import whom, and no import circle between modules.

Layers, bottom to top (docs/ARCHITECTURE.md):

    edge        the box: numpy, OpenCV, its inference backend
    fetaldata   the dataset reader, splits, phantom, metrics, scoring (torch-free)
    calibration INT8, comparison, deployability, TensorRT builds
    export      training, evaluation, ONNX export, demo, experiments (torch)

A module may import its own layer and the layers below, never above. Every import counts,
including the ones inside functions (the lazy ones are how the layers would leak).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("edge", "fetaldata", "calibration", "export")


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(path: Path, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every project import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] in LAYERS:
                out.append((name, node.lineno, id(node) in top_level))
    return out


def test_no_layer_imports_a_layer_above_it():
    bad = []
    for module, path in _modules().items():
        rank = LAYERS.index(module.split(".")[0])
        for name, line, _ in _imports(path, module, path.name == "__init__.py"):
            if LAYERS.index(name.split(".")[0]) > rank:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_circle_between_modules():
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for name, _, _ in _imports(path, module, path.name == "__init__.py"):
            # the longest known module the name refers to ("a.b.func" -> "a.b")
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                graph[module].add(target)

    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # a package importing its own submodules in __init__ is not a circle of design
    real = [c for c in cycles if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(c, c[1:]))]
    assert not real, "import circles:\n" + "\n".join(" -> ".join(c) for c in real)


def test_edge_is_exactly_the_box():
    """Nothing in edge/ is dataset, phantom or scoring code (those live in fetaldata/)."""
    assert not (REPO / "edge" / "data").exists()
    assert not (REPO / "edge" / "phantom").exists()
    assert not (REPO / "edge" / "metrics.py").exists()
    assert not (REPO / "edge" / "live" / "scoring.py").exists()
