"""The package reads top-down: a module imports only from its own layer or the layers below
(docs/architecture.md, section 2), at module level and inside functions alike."""
import ast
import pathlib

import engine

ROOT = pathlib.Path(engine.__file__).parent

# lowest first; a module may import from its own layer and any earlier one
LAYERS = [
    {"errors", "_memory", "_files", "_jit", "_cli", "_native", "_progress"},
    {"graph"},
    {"model"},
    {"backends"},
    {"runtime"},
    {"algorithms"},
    {"compiler"},
    {"learn"},
    {"analysis"},
    {"run", "train", "evaluate", "compare", "__init__"},
]


def _layer(part: str) -> int:
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"engine.{part} belongs to no layer: add it to LAYERS and docs/architecture.md")


def _imports(path: pathlib.Path):
    """The engine subpackages or modules imported by ``path`` (relative or absolute)."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    yield target[0]
                    continue
                # "from .. import x" at the package: x is a submodule, or a name of engine/__init__.py
                for alias in node.names:
                    sub = ROOT / alias.name
                    yield alias.name if sub.is_dir() or any(ROOT.glob(alias.name + ".*")) else "__init__"
            elif node.module and node.module.split(".")[0] == "engine" and "." in node.module:
                yield node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "engine" and len(parts) > 1:
                    yield parts[1]


def test_no_upward_imports():
    modules = sorted(ROOT.rglob("*.py"))
    assert len(modules) > 30
    for path in modules:
        rel = path.relative_to(ROOT)
        own = _layer(rel.parts[0] if len(rel.parts) > 1 else rel.stem)
        for target in _imports(path):
            assert _layer(target) <= own, f"{rel} imports engine.{target}, a higher layer"


def test_the_layer_check_sees_imports():
    """The checker finds relative, absolute and function-level imports (a check that sees
    nothing would pass)."""
    found = set(_imports(ROOT / "runtime" / "executor.py"))
    assert {"backends", "model", "graph", "errors"} <= found
