"""The folder ``render --split`` writes into (``api.evaluate(images_dir=...)``).

A folder holding an earlier render is refused unless ``overwrite``; with it, only the earlier
render's own files are removed before the new views are written: its ``metrics.json``, the
files that lists, and PNGs named as render names them (``NNN_name.png``, ``_depth``,
``_compare``: from_checkpoint.view_stem), which also covers a render interrupted before it wrote
``metrics.json``. Anything else in the folder stays. Without this, old PNGs stayed beside a
new ``metrics.json`` that listed fewer views.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..files import check_writable
from ..runs.run_folder import dataset_folder_clash

METRICS = "metrics.json"
VIEW_PNG = re.compile(r"^\d{3,}_[A-Za-z0-9_.-]+\.png$")


class RenderFolderError(ValueError):
    """A one-line refusal naming the folder (caught by the CLI)."""


def earlier_render(folder) -> list[Path]:
    """The files an earlier ``render --split`` wrote in ``folder`` (none when it is new)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    own = {p for p in folder.iterdir() if p.is_file() and VIEW_PNG.match(p.name)}
    metrics = folder / METRICS
    if metrics.is_file():
        own.add(metrics)
        own.update(folder / name for name in _listed_files(metrics))
    return sorted(p for p in own if p.is_file() and not p.is_symlink())


def _listed_files(metrics: Path) -> list[str]:
    """Plain file names (no folders: nothing outside ``folder``) in a metrics.json's images[].files."""
    try:
        rows = json.loads(metrics.read_text()).get("images", [])
        names = [name for row in rows for name in row.get("files", {}).values()]
    except (OSError, ValueError, AttributeError, TypeError):
        return []  # not one render wrote; the file itself still counts as the earlier output
    return [n for n in names if isinstance(n, str) and n.endswith(".png") and Path(n).name == n]


def check_render_folder(folder, overwrite: bool, flags: tuple[str, str] = ("--overwrite", "--out")) -> None:
    """Refuse (one line) a file, or a folder holding an earlier render without ``overwrite``.
    ``flags``: how the caller spells overwrite and the folder (the API: ``overwrite=True``, ``images_dir``)."""
    folder = Path(folder)
    overwrite_flag, out_flag = flags
    if folder.exists() and not folder.is_dir():
        raise RenderFolderError(f"{folder}: is a file; the views go in a folder: choose another {out_flag}")
    check_writable(folder)
    found = earlier_render(folder)
    if found and not overwrite:
        raise RenderFolderError(f"{folder}: holds an earlier render ({_found_words(found)}); "
                                f"add {overwrite_flag} to replace it, or choose another {out_flag}")


def refuse_dataset_folder(folder, data) -> None:
    """Refuse (one line) a folder the rendered views would mix with the dataset at ``data`` in: its own folder, or
    one of its images (`render --split val --out DATA/images` put PNGs among the photos, which the next load of an
    image-folder layout counts as photos). An earlier render's own files there do not count."""
    if data is None:  # the built-in scene, in the cache
        return
    clash = dataset_folder_clash(data, folder, {p.name for p in earlier_render(folder)})
    if clash:
        raise RenderFolderError(f"{folder}: {clash}; the rendered views would mix with its files: choose another "
                                "folder for them")


def _found_words(found: list[Path]) -> str:
    """What of an earlier render is there: a PNG alone is named, as the user may not know it
    looks like one of render's (it said "1 files: metrics.json and its PNGs" of a folder without one)."""
    pngs = [p for p in found if p.name != METRICS]
    many = f"{len(pngs)} PNG{'' if len(pngs) == 1 else 's'}"
    if len(pngs) < len(found):
        return f"{METRICS} and {many}"
    return f"{many} named as render names its views, e.g. {pngs[0].name}; no {METRICS}"


def clear_earlier_render(folder) -> list[Path]:
    """Delete the earlier render's files (call after every check that can refuse); returns them."""
    found = earlier_render(folder)
    for path in found:
        path.unlink()
    return found
