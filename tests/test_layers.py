"""The house's layers, read from the code: arrows only downward, no circles.

    core <- runtime <- curate, train <- explain <- export <- serve, page <- the CLI wiring

A module may import its own stage and the stages below it; curate and train are siblings and
never import each other (a command that needs both lives in shotlab/commands, the CLI layer).
Every import counts, the lazy ones inside functions too: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import shotlab

LAYERS = {"core": 0, "runtime": 1, "curate": 2, "train": 2, "explain": 3, "export": 4,
          "serve": 5, "page": 5, "cli": 6}
CLI_LAYER = {"cli", "commands", "__main__"}  # shotlab/cli.py, shotlab/commands/, python -m shotlab
PACKAGE_ROOT = Path(shotlab.__file__).parent


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every shotlab import in `path`, relative ones resolved."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from shotlab.export import parity` imports the submodule when there is one.
            found += [(node.lineno, f"{base}.{alias.name}") if is_module(root, f"{base}.{alias.name}")
                      else (node.lineno, base) for alias in node.names]
    return [(line, target) for line, target in found if target.split(".")[0] == root.name]


def is_module(root: Path, dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:])
    return (root / relative).with_suffix(".py").is_file() or (root / relative).is_dir()


def stage(dotted: str) -> str | None:
    parts = dotted.split(".")
    if len(parts) == 1:
        return None  # the package root (__version__) is no stage
    return "cli" if parts[1] in CLI_LAYER else parts[1]


def graph(root: Path) -> dict[str, dict[str, tuple[Path, int]]]:
    """{module: {imported module: (file, line)}} for every module under `root`."""
    edges = {}
    for path in sorted(root.rglob("*.py")):
        edges[module_name(root, path)] = {target: (path, line)
                                          for line, target in imports_of(root, path)}
    return edges


def upward_arrows(root: Path) -> list[str]:
    problems = []
    for source, targets in graph(root).items():
        here = stage(source)
        for target, (path, line) in targets.items():
            there = stage(target)
            if here is None or there is None or here == there:
                continue
            if here not in LAYERS or there not in LAYERS:
                problems.append(f"{path}:{line}: {source} -> {target}: a stage with no layer; "
                                f"add it to LAYERS and docs/architecture.md")
            elif LAYERS[there] >= LAYERS[here]:
                problems.append(f"{path}:{line}: {source} imports {target}, which is not below "
                                f"it ({here} is layer {LAYERS[here]}, {there} is {LAYERS[there]})")
    return problems


def circles(root: Path) -> list[str]:
    """Import cycles between modules, each named once by its members (Tarjan's SCC)."""
    modules = graph(root)
    edges = {m: [t for t in targets if t in modules] for m, targets in modules.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(" <-> ".join(sorted(component)))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_points_up():
    assert upward_arrows(PACKAGE_ROOT) == []


def test_no_import_circle():
    assert circles(PACKAGE_ROOT) == []


def plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "shotlab" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "shotlab"


@pytest.mark.parametrize("text", ["from shotlab.export.formats import FORMATS\n",
                                  "def late():\n    from shotlab.export import formats\n",
                                  "from ..export import formats\n"])
def test_a_planted_upward_import_is_named_by_file_and_line(tmp_path, text):
    root = plant(tmp_path, {"__init__.py": "", "core/__init__.py": "", "core/store.py": text,
                            "export/__init__.py": "", "export/formats.py": "FORMATS = {}\n"})
    (problem,) = upward_arrows(root)
    assert "core/store.py:" in problem and "shotlab.export.formats" in problem


def test_siblings_may_not_import_each_other(tmp_path):
    root = plant(tmp_path, {"__init__.py": "", "curate/__init__.py": "",
                            "curate/check.py": "import shotlab.train.embeddings\n",
                            "train/__init__.py": "", "train/embeddings.py": ""})
    assert len(upward_arrows(root)) == 1


def test_a_planted_circle_is_found(tmp_path):
    root = plant(tmp_path, {"__init__.py": "", "export/__init__.py": "",
                            "export/a.py": "from shotlab.export import b\n",
                            "export/b.py": "def f():\n    from shotlab.export.a import x\n"})
    assert circles(root) == ["shotlab.export.a <-> shotlab.export.b"]
    assert upward_arrows(root) == []  # within one stage: not an upward arrow, still a circle
