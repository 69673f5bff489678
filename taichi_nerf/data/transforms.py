"""Instant-NGP / nerfstudio layout: one ``transforms.json`` for all frames.

Keys read: global or per-frame ``fl_x, fl_y, cx, cy, w, h`` or ``camera_angle_x/y``;
distortion ``k1 k2 p1 p2`` (``camera_model`` OPENCV / PINHOLE; fisheye is refused);
``aabb_scale``, ``scale``, ``offset``; nerfstudio's ``applied_transform`` and
``train_filenames`` / ``val_filenames`` / ``test_filenames``; our ``aabb`` ([[min], [max]]),
``near``, ``far`` and ``colmap`` (registration figures) that ``data from-photos`` writes.

Conventions chosen (docs/DATASETS.md explains them):

* ``transform_matrix`` is camera-to-world in the OpenGL/NeRF convention and is used as
  written: we never apply Instant-NGP's ``scale``/``offset``, so the loaded cameras keep the
  file's units (a scene scaled to ``scale`` would only move the box, not the cameras).
* ``scale``/``offset``/``aabb_scale`` only say where Instant-NGP's box is: it marches the cube
  [0.5 - aabb_scale/2, 0.5 + aabb_scale/2]^3 of its own space, where a file point p lands at
  p * scale + offset (axes cycled, which maps a cube to a cube). In the file's frame that is
  the cube centred at (0.5 - offset) / scale with half-size aabb_scale / (2 * scale).
  Without ``aabb_scale`` the box comes from the cameras (data/bounds.py).
* nerfstudio's ``applied_transform`` is already baked into every ``transform_matrix`` (it
  records how the original COLMAP frame was turned), so it is checked and reported, not
  applied a second time.
* Frames whose image file is missing are skipped with one warning; without a split in the
  file every ``val_every``-th frame (of the frames sorted by file name) is held out as val.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import DEFAULT_VAL_EVERY
from ..wording import few_names
from .blender import build_split, check_camera_model, number, parse_frames, read_json, select_frames
from .dataset import DataError, Dataset
from .images import image_size, same_shape

NGP_DEFAULT_SCALE = 0.33
NGP_DEFAULT_OFFSET = (0.5, 0.5, 0.5)


def transforms_file(path: Path) -> Path | None:
    if path.is_file() and path.suffix.lower() == ".json" and not path.name.startswith("transforms_"):
        return path
    if path.is_dir() and (path / "transforms.json").is_file():
        return path / "transforms.json"
    return None


def is_transforms(path: Path) -> bool:
    return transforms_file(path) is not None


def ngp_box(meta: dict, where: str) -> tuple[np.ndarray | None, str] | None:
    """The file-frame cube Instant-NGP marches, when the file states ``aabb_scale`` 1: (box,
    note). With ``aabb_scale`` over 1 the content reaches beyond Instant-NGP's unit cube, whose
    detail Instant-NGP's coarser cascades thin out with distance; as our one box that cube would
    spread every sample thin (ngp-360-env with ``aabb_scale`` 16: 21.8 dB against 24.1 at 120 s,
    docs/BENCHMARKS.md), so the box is chosen automatically: (None, note). None without the key."""
    if meta.get("aabb_scale") is None:
        return None
    aabb_scale = number(meta, "aabb_scale", where)
    scale = number(meta, "scale", where, NGP_DEFAULT_SCALE)
    if aabb_scale <= 0 or scale <= 0:
        raise DataError(f"{where}: 'aabb_scale' and 'scale' must be positive")
    offset = meta.get("offset")
    offset = list(NGP_DEFAULT_OFFSET) if offset is None else offset
    try:
        offset = np.asarray(offset, dtype=np.float64).reshape(3)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: 'offset' must be three numbers") from None
    if not np.isfinite(offset).all():
        raise DataError(f"{where}: 'offset' must be finite")
    center = (0.5 - offset) / scale
    half = 0.5 * aabb_scale / scale
    if aabb_scale > 1:
        return None, (f"aabb_scale {aabb_scale:g}: content beyond Instant-NGP's unit cube, so the box is "
                      f"chosen from the cameras, not the file's cube of half-size {half:.3g}")
    box = np.concatenate([center - half, center + half])
    return box, (f"box from aabb_scale {aabb_scale:g}, scale {scale:g}, offset {offset.tolist()} "
                 "(Instant-NGP's cube in the file's frame)")


def _check_applied_transform(meta: dict, where: str) -> str | None:
    if meta.get("applied_transform") is None:
        return None
    try:
        m = np.asarray(meta["applied_transform"], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: 'applied_transform' is not a numeric matrix") from None
    if m.shape not in ((3, 4), (4, 4)) or not np.isfinite(m).all():
        raise DataError(f"{where}: 'applied_transform' must be a finite 3x4 or 4x4 matrix")
    return "nerfstudio applied_transform is already part of every pose; not applied again"


def _split_indices(paths: list[Path], root: Path, meta: dict, val_every: int, where: str) -> tuple[dict, str]:
    """Frame indices per split: the file's own lists when it has them, else every k-th to val.
    A listed file is the frame of that path (relative to ``root``, as nerfstudio writes them), else
    the one frame of that file name (``frame_00001.png``): images in two folders may share a name."""
    listed = {s: meta.get(f"{s}_filenames") for s in ("train", "val", "test")}
    if listed["train"] is not None:
        by_path, by_name = {p: i for i, p in enumerate(paths)}, {}
        for i, p in enumerate(paths):
            by_name.setdefault(p.name, []).append(i)

        def frame(file: str) -> int | None:
            found = by_path.get((root / file.replace("\\", "/")).resolve())
            same_name = by_name.get(Path(file).name, [])
            if found is None and len(same_name) > 1:  # which camera's? said, not guessed or dropped
                raise DataError(f"{where}: a *_filenames entry, {file}, names {len(same_name)} frames' images "
                                f"({paths[same_name[0]]}, {paths[same_name[1]]}): give its path, as the frames do")
            return found if found is not None else same_name[0] if same_name else None

        out = {}
        for split, files in listed.items():
            if files is None:
                continue
            if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
                raise DataError(f"{where}: '{split}_filenames' must be a list of file names")
            idx = [i for i in map(frame, files) if i is not None]
            if idx:
                out[split] = idx
        if "train" not in out:
            raise DataError(f"{where}: none of the 'train_filenames' has a usable frame")
        return out, "splits from the file's *_filenames lists"
    n = len(paths)
    if val_every and val_every > 1 and n >= 2:
        val = list(range(0, n, val_every))
        train = [i for i in range(n) if i % val_every]
        return {"train": train,
                "val": val}, f"no split in the file: every {val_every}th frame (by file name) held out as val"
    return {"train": list(range(n))}, "no split in the file and too few frames to hold any out: no val split"


def _camera_model_warnings(metas: list[dict], where: str) -> list[str]:
    """Check each distinct camera model once; one warning for ignored distortion terms."""
    warnings = []
    seen = []
    for m in metas:
        if m.get("is_fisheye") is True:  # Instant-NGP's flag, without a camera_model
            check_camera_model({"camera_model": "OPENCV_FISHEYE"}, where)
        if "camera_model" in m and m["camera_model"] not in seen:
            seen.append(m["camera_model"])
            check_camera_model({"camera_model": m["camera_model"]}, where)
    ignored = sorted({k for m in metas for k in ("k3", "k4") if number(m, k, where, 0.0)})
    if ignored:
        warnings.append(f"{where}: distortion terms {', '.join(ignored)} are ignored (the ray model has k1 k2 p1 p2)")
    return warnings


def load_transforms(path, downscale: int = 1, every: int = 1, limit: int | None = None,
                    val_every: int = DEFAULT_VAL_EVERY, **_options) -> Dataset:
    """``every``/``limit`` thin each split; ``val_every``: hold out every k-th frame as val
    when the file has no split of its own (0: no val split)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    file = transforms_file(path)
    if file is None:
        raise DataError(f"{path}: no transforms.json here")
    return load_transforms_meta(read_json(file), file.parent, file, downscale, every, limit, val_every)


def load_transforms_meta(meta: dict, root: Path, file: Path, downscale: int = 1, every: int = 1,
                         limit: int | None = None, val_every: int = DEFAULT_VAL_EVERY,
                         format: str = "instant-ngp") -> Dataset:
    """``meta``: a transforms.json's content, its frames relative to ``root`` (``file`` names it
    in messages); the COLMAP loader (colmap_model.load_colmap) builds one in memory."""
    from .bounds import apply_bounds, estimate_bounds

    where = str(file)
    image_paths, poses, metas, _, missing = parse_frames(root, meta, file, skip_missing=True)
    warnings = _camera_model_warnings([meta, *metas], where)
    if missing:
        warnings.append(f"{file}: skipped {len(missing)} frame(s) whose image file is missing (the first: "
                        f"{missing[0]})")
    # Sorted by file name: the held-out frames do not depend on the order frames were written.
    order = sorted(range(len(image_paths)), key=lambda i: str(image_paths[i]))
    image_paths, poses, metas = [image_paths[i] for i in order], poses[order], [metas[i] for i in order]
    split_idx, split_note = _split_indices(image_paths, root, meta, val_every, where)
    image_paths, prescaled, folder_note = _downscaled_folder(root, image_paths, metas, downscale)
    splits = {}
    for name, idx in split_idx.items():
        idx = [idx[k] for k in select_frames(len(idx), every, limit)]
        if idx:
            splits[name] = build_split(file, [image_paths[i] for i in idx], poses[idx], [metas[i] for i in idx],
                                       None, 1 if prescaled else downscale)
    if "train" not in splits:
        raise DataError(f"{file}: zero usable frames for training after --every/--limit")
    ds = Dataset(splits=splits, near=0.0, far=1.0, aabb=torch.tensor([-1.0, -1, -1, 1, 1, 1]),
                 format=format, source=str(file), warnings=warnings)
    ds.notes.append(split_note)
    if folder_note:
        ds.notes.append(folder_note)
    if prescaled:
        ds.notes.append(f"images read from images_{downscale}/ (already downscaled)")
    stated = stated_box(meta, where) or ngp_box(meta, where)
    train = splits["train"]
    bounds = estimate_bounds(train.poses.double().numpy(), train.intrinsics.double().numpy(), train.width,
                             train.height, box=None if stated is None else stated[0])
    if stated is not None:
        bounds.notes.append(stated[1])
    apply_bounds(ds, bounds)
    if meta.get("near") is not None and meta.get("far") is not None:  # from-photos: depths of the sparse points
        ds.near, ds.far = number(meta, "near", where), number(meta, "far", where)
        ds.notes = [n for n in ds.notes if not n.startswith("near")]
        ds.notes.append(f"near {ds.near:.3g} / far {ds.far:.3g} as stated in the file")
    note = _check_applied_transform(meta, where) if format == "instant-ngp" else None
    if note:
        ds.notes.append(note)
    ds.notes.extend(registration_notes(meta))
    return ds


def stated_box(meta: dict, where: str) -> tuple[np.ndarray, str] | None:
    """Our own ``aabb`` key ([[min], [max]]; from-photos writes the sparse points' extent)."""
    if meta.get("aabb") is None:
        return None
    from .blender import parse_aabb

    return parse_aabb(meta["aabb"], where).double().numpy(), "box as stated in the file (aabb)"


def registration_notes(meta: dict) -> list[str]:
    """``data info`` lines for a dataset from-photos made: its COLMAP figures and the images left out."""
    fig = meta.get("colmap")
    if not isinstance(fig, dict):
        return []
    try:
        how = f"; {fig['matching']} matching" if fig.get("matching") else ""
        notes = [f"COLMAP registered {fig['registered']} of {fig['total']} images; mean reprojection error "
                 f"{float(fig['mean_reprojection_error']):.3f} px; {fig['points3D']} 3D points; "
                 f"{fig.get('cameras', '?')} x {fig.get('camera_model', '?')} camera{how}"]
    except (KeyError, TypeError, ValueError):
        return ["the file's 'colmap' figures are incomplete"]
    left = list(fig.get("unregistered") or [])
    notes.append(f"images COLMAP left out: {few_names([str(n) for n in left])}" if left else
                 "images COLMAP left out: none")
    if fig.get("skipped"):
        notes.append(f"files skipped before COLMAP: {', '.join(map(str, fig['skipped']))}")
    return notes


def _downscaled_folder(root: Path, image_paths, metas, downscale: int) -> tuple[list[Path], bool, str | None]:
    """Use a pre-shrunk ``images_K`` folder (nerfstudio's layout) for ``--downscale K`` when it
    holds every file and every frame states its full size (so focal lengths can be rescaled),
    and its images have that size's shape: a tool that shrank them may also have rotated them
    (ffmpeg applies EXIF orientation), and then images/ is decoded instead. (paths, whether
    they are the pre-shrunk ones, a note when images_K was passed over.)"""
    if downscale <= 1:
        return image_paths, False, None
    base = root.resolve()
    swapped = []
    for p, m in zip(image_paths, metas):
        try:
            rel = p.relative_to(base)
        except ValueError:  # an image outside the folder (images/ a symlink to elsewhere): no images_K here
            return image_paths, False, None
        if not (len(rel.parts) > 1 and rel.parts[0] == "images" and "w" in m and "h" in m):
            return image_paths, False, None
        candidate = root / f"images_{downscale}" / Path(*rel.parts[1:])
        if not candidate.is_file():
            return image_paths, False, None
        swapped.append(candidate)
    w, h = image_size(swapped[0])
    stated_w, stated_h = number(metas[0], "w", str(root)), number(metas[0], "h", str(root))
    if stated_w and stated_h and not same_shape(w, h, stated_w, stated_h):
        return image_paths, False, (f"images_{downscale}/ passed over: its images are {w}x{h}, not the shape of "
                                    f"the stated {stated_w:g}x{stated_h:g} (rotated?); images/ decoded instead")
    return swapped, True, None
