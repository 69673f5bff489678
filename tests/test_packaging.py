"""The package as a user installs it (``pip install .``, the wheel), not as this checkout runs it:
every third-party module it imports is a dependency or an extra, an extra's module is imported
only where it is used (so the rest works without it), the version ``--version`` prints is the
metadata's, and no module reads files beside the package (docs/, scripts/, tests/), which a
wheel does not carry. Read from the source (ast), nothing imported: fast."""
import ast
import re
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "taichi_nerf"
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "skimage": "scikit-image"}
# modules that need an extra although their top level is a dependency's
NEEDS_EXTRA = {"torch.utils.tensorboard": "tensorboard"}
# the one module that may look beside the package: the test sets' shared data (tests, scripts;
# $TAICHI_NERF_SHARED overrides it), never reached by the CLI
READS_BESIDE_PACKAGE = {"scenes/testsets.py"}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")


def declared() -> tuple[set[str], dict[str, set[str]]]:
    """(the dependencies' names, extra -> its distributions' names), the test extra left out."""
    project = pyproject()["project"]
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()
              if extra != "test"}
    return {_name(r) for r in project["dependencies"]}, extras


def _imports(node: ast.AST, top_level: bool):
    """(dotted module, at import time?) for every absolute import under ``node``; a function's
    body runs only when called, an ``if TYPE_CHECKING:`` block never."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _imports(child, False)
        elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from _imports(ast.Module(body=child.orelse, type_ignores=[]), top_level)
        elif isinstance(child, ast.Import):
            yield from ((alias.name, top_level) for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.level == 0:
            yield child.module, top_level
        else:
            yield from _imports(child, top_level)


def third_party_imports() -> list[tuple[str, str, bool]]:
    """(module file relative to the package, dotted module, imported at import time?)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, top in _imports(ast.parse(path.read_text(), str(path)), True):
            if module.split(".")[0] not in sys.stdlib_module_names | {"taichi_nerf"}:
                found.append((path.relative_to(PACKAGE).as_posix(), module, top))
    return found


def extra_of(module: str, extras: dict[str, set[str]]) -> str | None:
    for prefix, extra in NEEDS_EXTRA.items():
        if module == prefix or module.startswith(prefix + "."):
            return extra
    top = module.split(".")[0]
    dist = DISTRIBUTION.get(top, top).lower()
    return next((extra for extra, dists in extras.items() if dist in dists), None)


def test_the_scan_sees_lazy_and_guarded_imports():
    tree = ast.parse("import a\ntry:\n    import b\nexcept ImportError:\n    pass\n"
                     "def f():\n    from c import d\nif TYPE_CHECKING:\n    import e\n")
    assert list(_imports(tree, True)) == [("a", True), ("b", True), ("c", False)]


def test_every_third_party_import_is_a_dependency_or_an_extra():
    dependencies, extras = declared()
    undeclared = sorted({(file, module) for file, module, _ in third_party_imports()
                         if DISTRIBUTION.get(module.split(".")[0], module.split(".")[0]).lower() not in dependencies
                         and extra_of(module, extras) is None})
    assert not undeclared, f"imported but neither in [project] dependencies nor an extra: {undeclared}"


def test_an_extras_module_is_imported_only_where_it_is_used():
    # at a module's top level it would break every command that imports that module, with a
    # traceback instead of the "pip install 'taichi-nerf[EXTRA]'" line
    _, extras = declared()
    eager = [(file, module) for file, module, top in third_party_imports() if top and extra_of(module, extras)]
    assert not eager, f"extras' modules imported at import time: {eager}"


def test_the_version_is_the_metadatas():
    init = ast.parse((PACKAGE / "__init__.py").read_text())
    version = next(node.value.value for node in init.body if isinstance(node, ast.Assign)
                   and any(getattr(t, "id", None) == "__version__" for t in node.targets))
    assert version == pyproject()["project"]["version"]


def test_no_module_reads_files_beside_the_package():
    # Path(__file__).parents[N] climbs out of site-packages' taichi_nerf/ once installed
    climbing = sorted(path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
                      if re.search(r"__file__\)?(\.resolve\(\))?\.parents?\b", path.read_text()))
    assert set(climbing) <= READS_BESIDE_PACKAGE, f"modules that look outside the package: {climbing}"


def test_every_package_folder_is_found_by_the_build():
    # [tool.setuptools.packages.find] include: a folder it misses is left out of the wheel
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    missed = sorted(f for f in folders if not any(re.fullmatch(pat.replace(".", r"\.").replace("*", ".*"), f)
                                                  for pat in include))
    assert not missed, f"packages the wheel would leave out: {missed}"


def test_readme_names_the_pythons_the_package_admits():
    # taichi 1.7 has no wheel past CPython 3.12: pip must refuse 3.13 by our metadata, and README say so first
    from packaging.specifiers import SpecifierSet

    admitted = SpecifierSet(pyproject()["project"]["requires-python"])
    first, last = map(int, re.search(r"need Python 3\.(\d+)-3\.(\d+)", (ROOT / "README.md").read_text()).groups())
    assert [minor for minor in range(8, 16) if f"3.{minor}" in admitted] == list(range(first, last + 1))
    assert "3.13" not in admitted
