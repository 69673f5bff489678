"""Project rules that code review would otherwise have to remember (see CONTRIBUTING.md)."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "taichi_nerf"
TAICHI_DECORATORS = {"kernel", "func"}


def _defines_taichi_code(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Attribute) and dec.attr in TAICHI_DECORATORS \
                        and isinstance(dec.value, ast.Name) and dec.value.id == "ti":
                    return True
    return False


def _has_future_annotations(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "annotations" for alias in node.names) for node in tree.body)


def kernel_modules() -> dict[Path, ast.Module]:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.rglob("*.py"))}
    return {path: tree for path, tree in trees.items() if _defines_taichi_code(tree)}


def test_scan_finds_the_kernel_modules():
    found = {p.relative_to(PACKAGE).as_posix() for p in kernel_modules()}
    # guards the scan itself: if it found nothing, the rule below would pass vacuously
    assert {"stages/packing.py", "stages/sampling.py", "stages/compositing.py", "stages/encoding.py",
            "stages/cameras.py", "stages/occupancy.py", "scenes/synthetic.py", "scenes/sdf.py",
            "gui/display.py"} <= found


def test_kernel_modules_do_not_postpone_annotations():
    """Taichi reads ``ti.types.ndarray()`` / ``ti.template()`` annotations as objects; under
    ``from __future__ import annotations`` they are strings and kernels fail to compile."""
    offenders = [p.relative_to(PACKAGE).as_posix() for p, tree in kernel_modules().items()
                 if _has_future_annotations(tree)]
    assert offenders == []


def test_the_future_import_detector_detects_it():
    tree = ast.parse("from __future__ import annotations\nimport taichi as ti\n\n@ti.kernel\ndef k():\n    pass\n")
    assert _defines_taichi_code(tree) and _has_future_annotations(tree)
    assert not _has_future_annotations(ast.parse("from __future__ import division\n"))


def test_every_public_api_function_says_what_it_does():
    """help(tn.make_synthetic) said nothing: it had no docstring."""
    import inspect

    import taichi_nerf as tn
    from taichi_nerf.training.result import TrainResult

    undocumented = [name for name in tn.__all__ if inspect.isfunction(getattr(tn, name, None))
                    and not inspect.getdoc(getattr(tn, name))]
    assert undocumented == []
    # the package offers what the API module does: tn.builtin_scene was an AttributeError, though api.__all__ named it
    assert [name for name in tn.api.__all__ if name not in tn.__all__ or getattr(tn, name) is None] == []
    for cls in (tn.TrainConfig, TrainResult):  # tn.train's argument and its return: not a dataclass's bare signature
        assert cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("), cls


def test_every_progress_bar_is_tqdm_auto():
    """Training's bars were tqdm.auto's (widgets in Jupyter) while the scene, mesh and COLMAP bars
    were plain tqdm's: a notebook showed the two kinds mixed."""
    plain = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in sorted(PACKAGE.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(node, ast.ImportFrom) and node.module == "tqdm"
             or isinstance(node, ast.Import) and any(alias.name == "tqdm" for alias in node.names)]
    assert not plain, f"import tqdm.auto's bar instead: {plain}"
