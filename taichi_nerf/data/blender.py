"""The Blender synthetic layout: ``transforms_{train,val,test}.json`` + RGBA PNGs.

Besides the standard keys (``camera_angle_x``, ``frames[].file_path``,
``frames[].transform_matrix``) we read optional ``fl_x, fl_y, cx, cy, w, h`` and
``k1, k2, p1, p2``, and our own extensions ``near``, ``far``, ``aabb`` ([[min],[max]]) and
per-frame ``depth_file_path`` (a .npy of ray distances) that the built-in scene writes.
"""
from __future__ import annotations

import difflib
import json
import math
from pathlib import Path

import numpy as np
import torch

from ..files import write_png
from ..rotations import ROTATION_TOLERANCE, rotation_deviation
from ..stages.cameras import focal_from_fov
from .dataset import DataError, Dataset, Split
from .images import DATASET_SUFFIXES, NOT_SAME_SHAPE, image_size, read_many, same_shape

SPLITS = ("train", "val", "test")
DEFAULT_NEAR, DEFAULT_FAR = 2.0, 6.0  # the Blender scenes' cameras sit at radius ~4
DEFAULT_AABB = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
MAX_COORDINATE = 1e7  # beyond this, float32 rays lose all precision


def is_blender(path: Path) -> bool:
    return path.is_dir() and any((path / f"transforms_{s}.json").is_file() for s in SPLITS)


def read_json(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark, as Windows editors write, is no error
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); JSON files must be UTF-8") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object at the top level")
    return meta


def parse_pose(value, where: str) -> np.ndarray:
    try:
        pose = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: transform_matrix is not a numeric matrix") from None
    if pose.shape == (3, 4):
        pose = np.vstack([pose, [0.0, 0.0, 0.0, 1.0]])
    if pose.shape != (4, 4):
        raise DataError(f"{where}: transform_matrix must be 4x4, got shape {tuple(pose.shape)}")
    if not np.isfinite(pose).all():
        raise DataError(f"{where}: transform_matrix contains NaN or infinity")
    if np.abs(pose).max() > MAX_COORDINATE:
        raise DataError(f"{where}: transform_matrix has values beyond {MAX_COORDINATE:g}; rescale the scene")
    with np.errstate(all="ignore"):
        det = np.linalg.det(pose[:3, :3])
    if not np.isfinite(det) or abs(det) < 1e-6:
        raise DataError(f"{where}: transform_matrix has a degenerate (singular) rotation")
    # An even scale leaves every ray's direction as it was (rays are normalised); an uneven one or a shear
    # bends them, and the run trained on distorted cameras without a word.
    evenly = pose[:3, :3] / np.cbrt(abs(det))
    deviation = rotation_deviation(evenly)
    if deviation > ROTATION_TOLERANCE:
        lengths = ", ".join(f"{v:.3g}" for v in np.linalg.norm(pose[:3, :3], axis=0))
        raise DataError(f"{where}: transform_matrix's 3x3 part is not a rotation (scaled unevenly or sheared: column "
                        f"lengths {lengths}, |R^T R - I| up to {deviation:.3g} after an even scale, tolerance "
                        f"{ROTATION_TOLERANCE:g}); export the cameras unscaled (a camera object scaled along one "
                        "axis in Blender gives this)")
    return pose


def number(meta: dict, key: str, where: str, default=None):
    value = meta.get(key)
    if value is None:  # absent or null: the default
        value = default
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: '{key}' must be a finite number, got {value!r:.40}")
    try:
        value = float(value)
    except OverflowError:
        raise DataError(f"{where}: '{key}' is too large") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return value


# Camera models whose distortion is the ray kernel's k1, k2, p1, p2 (or none).
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")


def check_camera_model(meta: dict, where: str) -> list[str]:
    """Refuse camera models the ray kernel cannot represent; warn about ignored terms."""
    model = meta.get("camera_model")
    if model is not None and (not isinstance(model, str) or model.upper() not in PINHOLE_MODELS):
        raise DataError(f"{where}: camera_model {model!r} is not supported (supported: {', '.join(PINHOLE_MODELS)}); "
                        "undistort the images to a pinhole camera first (e.g. colmap image_undistorter)")
    ignored = [k for k in ("k3", "k4") if number(meta, k, where, 0.0)]
    if not ignored:
        return []
    return [f"{where}: distortion terms {', '.join(ignored)} are ignored (the ray model has k1 k2 p1 p2)"]


def intrinsics_from_meta(meta: dict, width: int, height: int, where: str,
                         file_size: tuple[int, int] | None = None) -> list[float]:
    """fx, fy, cx, cy, k1, k2, p1, p2 from explicit focal lengths or camera angles.

    Focal lengths refer to the file's ``w``/``h``, or without them to the image files' own size
    ``file_size`` (before ``--downscale``); they are scaled to the loaded width x height.
    Images of another shape than ``w``/``h`` (rotated or cropped after the poses were made)
    are refused: every camera would be stretched.
    """
    file_w, file_h = file_size or (width, height)
    src_w = number(meta, "w", where) or file_w
    src_h = number(meta, "h", where) or file_h
    if src_w <= 0 or src_h <= 0:
        raise DataError(f"{where}: 'w' and 'h' must be positive")
    if not same_shape(width, height, src_w, src_h):
        raise DataError(f"{where}: the image files are {file_w}x{file_h}, but the file states w x h = "
                        f"{src_w:g}x{src_h:g}, {NOT_SAME_SHAPE}")
    sx, sy = width / src_w, height / src_h
    fx = number(meta, "fl_x", where)
    fy = number(meta, "fl_y", where)
    angle_x = number(meta, "camera_angle_x", where)
    angle_y = number(meta, "camera_angle_y", where)
    for name, angle in (("camera_angle_x", angle_x), ("camera_angle_y", angle_y)):
        if angle is not None and not 0.0 < angle < math.pi:
            raise DataError(f"{where}: '{name}' must be an angle in radians between 0 and pi, got {angle}")
    if fx is None and angle_x is not None:
        fx = focal_from_fov(src_w, angle_x)
    if fy is None and angle_y is not None:
        fy = focal_from_fov(src_h, angle_y)
    if fx is None and fy is None:
        raise DataError(f"{where}: no focal length (need 'camera_angle_x' or 'fl_x'){misspelt_focal(meta)}")
    fx = fx if fx is not None else fy
    fy = fy if fy is not None else fx
    if fx <= 0 or fy <= 0:
        raise DataError(f"{where}: focal length must be positive")
    cx = number(meta, "cx", where, 0.5 * src_w)
    cy = number(meta, "cy", where, 0.5 * src_h)
    dist = [number(meta, k, where, 0.0) for k in ("k1", "k2", "p1", "p2")]
    return [fx * sx, fy * sy, cx * sx, cy * sy, *dist]


FOCAL_KEYS = ("camera_angle_x", "camera_angle_y", "fl_x", "fl_y")


def misspelt_focal(meta: dict) -> str:
    """"; the file has 'camera_angel_x': did you mean 'camera_angle_x'?" for a key of ``meta`` that
    is a focal-length key misspelt, else ""."""
    for key in meta:
        guess = difflib.get_close_matches(str(key).lower(), FOCAL_KEYS, n=1, cutoff=0.75)
        if guess and key not in FOCAL_KEYS:
            return f"; the file has {key!r}: did you mean {guess[0]!r}?"
    return ""


IMAGE_SUFFIXES = tuple(s for suffix in DATASET_SUFFIXES for s in (suffix, suffix.upper()))  # appended as found


def resolve_image(root: Path, file_path: str, where: str, listings: dict | None = None) -> Path:
    """The image file a frame names. ``listings``: folder listings kept between the frames of
    one file, so that looking for renamed images costs one listing per folder."""
    if not isinstance(file_path, str) or not file_path or "\0" in file_path:
        raise DataError(f"{where}: 'file_path' must be a non-empty string")
    try:
        path = (root / file_path.replace("\\", "/")).resolve()  # a path written on Windows
        if path.suffix.lower() in DATASET_SUFFIXES and not path.is_file():
            return _same_image_elsewhere(path, {} if listings is None else listings) or path
        if path.suffix.lower() not in DATASET_SUFFIXES:
            # Blender files name images without extension ("./train/r_0"); a dotted stem is no suffix.
            for ext in IMAGE_SUFFIXES:
                candidate = path.with_name(path.name + ext)
                if candidate.is_file():
                    return candidate
            return path if path.is_file() else path.with_name(path.name + ".png")
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: resolve()'s symlink loop (Python < 3.13)
        raise DataError(f"{where}: bad 'file_path' {file_path!r:.60} ({exc})") from None
    return path


def _same_image_elsewhere(path: Path, listings: dict) -> Path | None:
    """The file in ``path``'s folder whose name differs only in case ("IMG_1.JPG" for
    "IMG_1.jpg": a capture copied between case-insensitive and case-sensitive disks), else the
    one image with the same stem ("IMG_1.png" for "IMG_1.jpg": images converted after the file
    was written)."""
    if path.parent not in listings:
        by_stem = {}
        if path.parent.is_dir():
            for p in path.parent.iterdir():
                by_stem.setdefault(p.stem.lower(), []).append(p)
        listings[path.parent] = by_stem
    files = [p for p in listings[path.parent].get(path.stem.lower(), []) if p.is_file()]
    same_name = [p for p in files if p.name.lower() == path.name.lower()]
    images = [p for p in files if p.suffix.lower() in DATASET_SUFFIXES]
    return same_name[0] if same_name else images[0] if len(images) == 1 else None


def select_frames(count: int, every: int = 1, limit: int | None = None) -> list[int]:
    """Indices of the frames kept: every ``every``-th, at most ``limit`` of them."""
    keep = list(range(0, count, max(1, every)))
    return keep if limit is None else keep[: max(0, limit)]


def parse_frames(root: Path, meta: dict, path: Path, *, skip_missing: bool = False):
    """Validate ``meta['frames']``: (image paths, (N,4,4) poses, per-frame metas, depth
    paths or None, the image paths skipped because their file is missing)."""
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{path}: 'frames' must be a non-empty list")
    image_paths, poses, frame_metas, depth_paths, missing = [], [], [], [], []
    listings = {}  # folders listed while looking for renamed images
    for i, frame in enumerate(frames):
        where = f"{path} frame {i}"
        if not isinstance(frame, dict):
            raise DataError(f"{where}: frame must be a JSON object")
        if "transform_matrix" not in frame:
            raise DataError(f"{where}: frame has no 'transform_matrix' (pose)")
        pose = parse_pose(frame["transform_matrix"], where)
        image = resolve_image(root, frame.get("file_path"), where, listings)
        if skip_missing and not image.is_file():
            missing.append(image)
            continue
        poses.append(pose)
        image_paths.append(image)
        own = {k: v for k, v in frame.items() if v is not None}
        merged = {**meta, **own}  # frame keys win, key by key (nerfstudio's rule)
        for angle, focal in (("camera_angle_x", "fl_x"), ("camera_angle_y", "fl_y")):
            if angle in own and focal not in own:  # a frame's own angle over a global focal length
                merged.pop(focal, None)
        frame_metas.append(merged)
        depth = frame.get("depth_file_path")
        depth_paths.append(root / depth if isinstance(depth, str) and depth else None)
    if not image_paths:
        raise DataError(f"{path}: zero usable frames (all {len(missing)} image files are missing, the first: "
                        f"{missing[0]})")
    if any(d is None for d in depth_paths):
        depth_paths = None
    return image_paths, np.stack(poses), frame_metas, depth_paths, missing


def build_split(path: Path, image_paths, poses: np.ndarray, frame_metas, depth_paths, downscale: int = 1) -> Split:
    """Decode the images (in parallel, into one array) and attach poses and intrinsics."""
    rgba = read_many(image_paths, downscale)
    n, h, w, _ = rgba.shape
    size = image_size(image_paths[0])  # the split shares one decoded size (read_many checked)
    intr = [intrinsics_from_meta(m, w, h, f"{path} frame {i}", size) for i, m in enumerate(frame_metas)]
    depth = None
    if depth_paths and downscale == 1:
        depth = np.empty((n, h, w), dtype=np.float32)
        for i, p in enumerate(depth_paths):
            try:
                d = np.load(p)
            except (OSError, ValueError, EOFError) as exc:
                raise DataError(f"{p}: cannot read depth file ({exc})") from None
            if d.shape != (h, w):
                raise DataError(f"{p}: depth is {d.shape}, image is {(h, w)}")
            depth[i] = d
        depth = torch.from_numpy(depth)
    return Split(
        rgba=torch.from_numpy(rgba),
        poses=torch.tensor(poses, dtype=torch.float32),
        intrinsics=torch.tensor(intr, dtype=torch.float32),
        names=[p.stem for p in image_paths],
        depth=depth,
    )


def load_split(root: Path, split: str, downscale: int = 1, every: int = 1, limit: int | None = None,
               warnings: list[str] | None = None) -> tuple[Split, dict]:
    """``warnings``: where to say that depth maps were passed over."""
    path = root / f"transforms_{split}.json"
    meta = read_json(path)
    image_paths, poses, metas, depth_paths, _ = parse_frames(root, meta, path)
    other = next((p for p in depth_paths or [] if p.suffix.lower() != ".npy"), None)
    if other is not None:  # another tool's depth maps (16-bit PNG in millimetres, EXR): optional, so not read
        depth_paths = None
        if warnings is not None:
            warnings.append(f"{path}: depth_file_path names {other.name}, not a .npy of ray distances (the only "
                            "depth maps read); the split loads without its depth maps")
    absent = next((p for p in depth_paths or [] if not p.is_file()), None)
    if absent is not None:  # deleted or not copied: the maps are optional (nothing trains on them)
        depth_paths = None
        if warnings is not None:
            warnings.append(f"{absent}: depth map not found (of {len(image_paths)} frames' depth_file_path); the "
                            "split loads without its depth maps")
    keep = select_frames(len(image_paths), every, limit)
    if not keep:
        raise DataError(f"{path}: zero usable frames after --every/--limit")
    split_data = build_split(path, [image_paths[i] for i in keep], poses[keep], [metas[i] for i in keep],
                             None if depth_paths is None else [depth_paths[i] for i in keep], downscale)
    return split_data, meta


def parse_aabb(value, where: str) -> torch.Tensor:
    try:
        box = np.asarray(value, dtype=np.float64).reshape(6)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: 'aabb' must be [[xmin, ymin, zmin], [xmax, ymax, zmax]]") from None
    if not np.isfinite(box).all() or not (box[3:] > box[:3]).all():
        raise DataError(f"{where}: 'aabb' must be finite and its max must exceed its min on every axis")
    return torch.tensor(box, dtype=torch.float32)


def load_blender(root, downscale: int = 1, every: int = 1, limit: int | None = None, **_options) -> Dataset:
    """``every``/``limit``: keep every k-th frame, at most ``limit`` per split. Alpha is kept
    as loaded: the trainer composites onto its background."""
    from .bounds import auto_bounds

    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not is_blender(root):
        raise DataError(f"{root}: no transforms_train.json / transforms_val.json / transforms_test.json here")
    splits, metas, warn = {}, {}, []
    for name in SPLITS:
        if (root / f"transforms_{name}.json").is_file():
            splits[name], metas[name] = load_split(root, name, downscale, every, limit, warn)
    if "train" not in splits:
        raise DataError(f"{root}: transforms_train.json is missing; it is needed to train")
    meta = metas["train"]
    where = str(root / "transforms_train.json")
    sizes = {(s.width, s.height) for s in splits.values()}
    # Different splits may legitimately differ; warn rather than refuse.
    warn += [f"splits have different image sizes: {sorted(sizes)}"] if len(sizes) > 1 else []
    for name, m in metas.items():
        warn += check_camera_model(m, str(root / f"transforms_{name}.json"))
    ds = Dataset(splits=splits, near=DEFAULT_NEAR, far=DEFAULT_FAR, aabb=torch.tensor(DEFAULT_AABB),
                 format="blender", source=str(root), warnings=warn)
    auto_bounds(ds)
    # The file's own bounds (the built-in scene and mesh renders write them) win.
    stated = [k for k in ("near", "far", "aabb") if meta.get(k) is not None]
    if "near" in stated:
        ds.near = number(meta, "near", where)
    if "far" in stated:
        ds.far = number(meta, "far", where)
    if "aabb" in stated:
        ds.aabb = parse_aabb(meta["aabb"], where)
    if not 0 <= ds.near < ds.far:
        raise DataError(f"{where}: need 0 <= near < far, got near={ds.near}, far={ds.far}")
    if stated:
        # Drop the automatic choices the file overrode, so `data info` shows what is used.
        replaced = (("box",) if "aabb" in stated else ()) + (("near",) if "near" in stated or "far" in stated else ())
        ds.notes = [n for n in ds.notes if not n.startswith(replaced)] if replaced else ds.notes
        ds.notes.append(f"{', '.join(stated)} as stated in transforms_train.json")
    return ds


def write_split(
    root,
    split: str,
    rgba: np.ndarray,
    poses: np.ndarray,
    camera_angle_x: float,
    depth: np.ndarray | None = None,
    extra: dict | None = None,
) -> Path:
    """Write one split: ``split/r_XXX.png`` (+ ``_depth.npy``) and ``transforms_<split>.json``."""
    root = Path(root)
    (root / split).mkdir(parents=True, exist_ok=True)
    frames = []
    for i in range(rgba.shape[0]):
        stem = f"{split}/r_{i:03d}"
        write_png(root / f"{stem}.png", rgba[i])
        frame = {"file_path": f"./{stem}", "transform_matrix": np.asarray(poses[i]).tolist()}
        if depth is not None:
            np.save(root / f"{stem}_depth.npy", depth[i].astype(np.float32))
            frame["depth_file_path"] = f"./{stem}_depth.npy"
        frames.append(frame)
    meta = {"camera_angle_x": float(camera_angle_x), **(extra or {}), "frames": frames}
    path = root / f"transforms_{split}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(path)
    return path
