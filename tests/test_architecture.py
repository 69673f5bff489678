"""The house rules of issue 22, checked over the package's source: no module over 450 lines,
no import cycle (module-level or inside functions), no private name imported across modules,
and lower layers never import upper ones."""
import ast
import importlib
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "taichi_nerf"
MAX_LINES = 450

# The layers, each importable only from itself or a layer above it (in this order, top first):
# the entry points, the front ends, training, what a trained field makes, runs, rendering, the
# scenes and data, and the pipeline's stages. The base modules at the package's top level
# (backend, config, files, ...) sit below them all and import none of them.
LAYERS = ["cli", "api", "gui", "viewer", "viewing", "training", "outputs", "runs", "rendering", "scenes", "capture",
          "data", "stages"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in its source (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import x` names a module
                if f"{target}.{alias.name}" in known:
                    found.add(f"{target}.{alias.name}")
            if target in known and not name.startswith(target + "."):  # not the importer's own package
                found.add(target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the list of its modules, or None. A package's __init__ is
    left out as a target: importing ``pkg.mod`` runs ``pkg/__init__`` first, which is how
    packages work, not a cycle of the code."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None:
            found = visit(start)
            if found:
                return found
    return None


def test_the_graph_sees_relative_lazy_and_package_imports():
    graph = import_graph()
    assert "taichi_nerf.runs.checkpoint" in graph["taichi_nerf.training.trainer"]  # `from ..runs import checkpoint`
    assert "taichi_nerf.scenes.synthetic" in graph["taichi_nerf.scenes.builtin"]  # lazy, inside a function
    assert "taichi_nerf.cli.train" in graph["taichi_nerf.cli"]  # `from . import train`


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    assert find_cycle(import_graph()) is None


def test_every_folder_of_the_package_is_a_regular_package():
    # A folder without __init__.py imports as a namespace package: it works in place, but the
    # house rules above and tools that walk packages treat it as a different thing.
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    assert sorted(str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").exists()) == []


def test_no_module_over_450_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_private_name_imported_across_modules():
    offenders = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                offenders += [f"{name}: {a.name}" for a in node.names if a.name.startswith("_")
                              and not a.name.startswith("__")]
    assert offenders == []


def _layer(module: str) -> int | None:
    rest = module.split(".")[1] if "." in module else ""
    return LAYERS.index(rest) if rest in LAYERS else None


def test_lower_layers_never_import_upper_ones():
    offenders = []
    for name, targets in import_graph().items():
        if name in ("taichi_nerf", "taichi_nerf.__main__"):  # the front doors: the API, `python -m`
            continue
        mine = _layer(name)
        for target in targets:
            theirs = _layer(target)
            if theirs is not None and (mine is None or theirs < mine):
                offenders.append(f"{name} -> {target}")
    assert offenders == []


IMPORT_TEXT = re.compile(r"from (taichi_nerf(?:\.\w+)*) import ([\w, ]+)")


def _importable(dotted: str):
    try:
        return importlib.import_module(dotted)
    except ImportError:
        return None


def test_every_import_of_the_package_written_anywhere_resolves():
    # Imports inside strings (a child process's code, a benchmark's `python -c`) and in the
    # docs are not checked by importing the file; a module move must not leave them behind.
    root = PACKAGE.parent
    texts = [p for folder in ("taichi_nerf", "tests", "scripts", "docs") for p in (root / folder).rglob("*")
             if p.suffix in (".py", ".md")] + [root / "README.md", root / "CONTRIBUTING.md"]
    broken = []
    for path in texts:
        for match in IMPORT_TEXT.finditer(path.read_text()):
            source = match.group(1)
            module = _importable(source)
            for name in (n.strip().split(" as ")[0] for n in match.group(2).split(",") if n.strip()):
                if module is None or not (hasattr(module, name) or _importable(f"{source}.{name}")):
                    broken.append(f"{path.relative_to(root)}: {match.group(0)}")
    assert broken == []


def test_importing_a_stage_loads_nothing_above_it():
    """The package's front door (``taichi_nerf/__init__``) offers the API lazily: importing one
    stage runs that ``__init__`` first, and an eager ``from .api import ...`` there would load
    the trainer and every layer under it, a cycle the import graph above cannot see."""
    import subprocess
    import sys

    probe = ("import sys, taichi_nerf.stages.compositing, taichi_nerf.data.loaders\n"
             "print(' '.join(m for m in sys.modules if m.startswith('taichi_nerf.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent).stdout.split()
    above = [m for m in loaded if _layer(m) is not None and LAYERS.index(m.split(".")[1]) < LAYERS.index("data")]
    assert "taichi_nerf.stages.compositing" in loaded and above == []



def documented_modules(markdown: str) -> dict[str, tuple[set[str], set[str]]]:
    """docs/ARCHITECTURE.md's table as {folder ("" for the top level): (the names its rows give a
    module by, the ``x.py`` files they name)}. A layer's row (`` `gui/` ``) names a module in its
    text, as `` `app.py` `` or `` `sdf` ``; a top-level row (`` `api.py` ``, the base modules) in
    its module cell."""
    named: dict[str, tuple[set[str], set[str]]] = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or len(cells) < 3:
            continue
        folder = re.fullmatch(r"`(\w+)/`", cells[1])
        text = " ".join(cells[2:]) if folder else cells[1]
        names, files = named.setdefault(folder.group(1) if folder else "", (set(), set()))
        names.update(re.findall(r"`(\w+)(?:\.py)?`", text))
        files.update(re.findall(r"`(\w+)\.py`", text))
    return named


def test_the_architecture_page_names_every_module_and_no_other():
    """Every module has its place in docs/ARCHITECTURE.md's table, in its layer's row, and the
    table names no ``x.py`` that layer does not have (wording.py and data/dataset.py were missing)."""
    named = documented_modules((PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text())
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert sorted((folders | {""}) - set(named)) == []
    missing, gone = [], []
    for folder, (names, files) in named.items():
        where = PACKAGE / folder
        stems = {p.stem for p in where.glob("*.py") if p.name != "__init__.py"}
        missing += [str((where / stem).relative_to(PACKAGE.parent)) + ".py" for stem in sorted(stems - names)]
        gone += [str((where / name).relative_to(PACKAGE.parent)) + ".py" for name in sorted(files - stems)]
    assert (missing, gone) == ([], [])
