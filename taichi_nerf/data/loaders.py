"""Find the right loader for a dataset path (the built-in scene, when no path is given, is
resolved one layer up, in taichi_nerf/runs/datasets.py)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from ..config_checks import number_at_least
from ..wording import FROM_PYTHON, counted, flag_or_keyword
from .blender import SPLITS, is_blender, load_blender
from .colmap_files import model_folders
from .colmap_model import is_colmap, load_colmap
from .dataset import DataError, Dataset
from .images import PHOTO_SUFFIXES
from .llff import is_llff, load_llff
from .mask_hull import hull_bounds
from .masks import attach_masks
from .npz import is_npz, load_npz
from .transforms import is_transforms, load_transforms

# name -> (detector, loader). Detectors look at what is in the folder or file; the first
# that matches wins, so the more specific layouts come first.
FORMATS = {
    "blender": (is_blender, load_blender),
    "instant-ngp": (is_transforms, load_transforms),
    "llff": (is_llff, load_llff),
    "colmap": (is_colmap, load_colmap),
    "npz": (is_npz, load_npz),
}
# What a dataset folder of any layout holds: a writer of another layout into it must not leave them beside its own.
DATASET_MARKERS = ("transforms.json", "transforms_train.json", "poses_bounds.npy", "images", "sparse", "colmap",
                   "masks")
ALIASES = {"nerfstudio": "instant-ngp", "ngp": "instant-ngp", "transforms": "instant-ngp", "tiny-nerf": "npz"}

# Loader options (keyword arguments of read_dataset); each loader uses those that apply.
LOAD_OPTIONS = ("every", "limit", "ndc", "val_every", "val_fraction")
# Mesh formats other than OBJ, the one `data from-mesh` reads: named, with advice to convert (`export mesh` writes PLY).
OTHER_MESH_FORMATS = {".ply": "PLY", ".stl": "STL", ".glb": "glTF", ".gltf": "glTF", ".fbx": "FBX", ".dae": "COLLADA",
                      ".3ds": "3DS", ".blend": "Blender", ".usd": "USD", ".usda": "USD", ".usdc": "USD",
                      ".usdz": "USD", ".off": "OFF", ".abc": "Alembic", ".x3d": "X3D", ".wrl": "VRML"}
# Files ``data from-photos`` takes frames from (imageio's ffmpeg reads these; GIFs go through Pillow).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".mts", ".wmv", ".gif")


def detected_layout(path: Path) -> str | None:
    """The first format whose detector takes ``path`` (None: none does)."""
    return next((name for name, (detect, _) in FORMATS.items() if detect(path)), None)


def detect_format(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    layout = detected_layout(path)
    if layout is not None:
        return layout
    _refuse_part_or_video(path)  # first: a from-photos dataset's colmap/ is a model without images/ beside it
    models = model_folders(path)
    if models:  # a model that find_model passed over: no images/ (a Gaussian-splatting folder's input/)
        raise DataError(f"{path}: a COLMAP model in {models[0]}, but no images/ folder beside it to hold the photos "
                        "it was made from")
    photos = [p for folder in (path, path / "images") if folder.is_dir() for p in folder.iterdir()
              if p.suffix.lower() in PHOTO_SUFFIXES]
    if photos:  # the first thing a user tries: their photos, before any poses exist
        raise DataError(f"{path}: photos without camera poses ({counted(len(photos), 'image')}, no transforms.json, "
                        f"poses_bounds.npy or COLMAP model); recover the poses first: taichi-nerf data from-photos "
                        f"{path} --out DATASET")
    raise DataError(f"{path}: unknown dataset layout (supported: {', '.join(FORMATS)}; see docs/DATASETS.md)")


def _refuse_part_or_video(path: Path) -> None:
    """The paths users give before the dataset folder itself: a folder inside one (its images/,
    a Blender split), a Blender split's own file, a video. Each would otherwise be called photos
    without poses (a long COLMAP run for poses already there) or an unknown layout."""
    parent = path.absolute().parent
    if path.is_file() and path.name.startswith("transforms_") and is_blender(parent):
        raise DataError(f"{path}: one split of a Blender dataset; give the folder, which holds every split: "
                        f"{shlex.quote(str(path.parent))}")
    if path.is_dir():
        layout = detected_layout(parent)
        if layout is not None:
            raise DataError(f"{path}: the camera poses are in its parent folder ({layout} layout); give that "
                            f"folder: {shlex.quote(str(path.parent))}")
    meshes = _meshes(path)
    if meshes:  # the PyTorch3D tutorial's cow (cow.obj, cow.mtl, cow_texture.png)
        model = shlex.quote(str(meshes[0])) if len(meshes) == 1 else "MODEL.obj"
        raise DataError(f"{path}: a mesh, not a dataset (no camera poses); render it into one first: "
                        f"taichi-nerf data from-mesh {model} --out DATASET")
    if path.is_file() and path.suffix.lower() in OTHER_MESH_FORMATS:  # it was "unknown dataset layout"
        raise DataError(f"{path}: a mesh, not a dataset (no camera poses); data from-mesh renders one into a dataset "
                        f"from Wavefront OBJ: convert it to .obj (Blender, MeshLab), then taichi-nerf data from-mesh "
                        f"MODEL.obj --out DATASET")
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        raise DataError(f"{path}: a video, not a dataset (no camera poses); make one from its frames first: "
                        f"taichi-nerf data from-photos {shlex.quote(str(path))} --out DATASET")


def _meshes(path: Path) -> list[Path]:
    """The OBJ file ``path``, or those in the folder ``path`` when its only images are their
    textures (named in an .mtl beside them): a mesh's folder, not photos of the scene."""
    if path.is_file():
        return [path] if path.suffix.lower() == ".obj" else []
    if not path.is_dir():
        return []
    files = sorted(p for p in path.iterdir() if p.is_file())
    textures = {Path(line.split()[-1]).name for mtl in files if mtl.suffix.lower() == ".mtl"
                for line in mtl.read_text(errors="replace").splitlines() if line.strip().startswith("map_")}
    if any(p.suffix.lower() in PHOTO_SUFFIXES and p.name not in textures for p in files):
        return []
    return [p for p in files if p.suffix.lower() == ".obj"]


def lone_npz(path: Path) -> Path | None:
    """A folder of no known layout that holds exactly one .npz (the Keras example's download
    unpacked into its own folder): that file."""
    if not path.is_dir() or any(detect(path) for detect, _ in FORMATS.values()):
        return None
    found = sorted(path.glob("*.npz"))
    return found[0] if len(found) == 1 else None


# What this project's Blender-layout writers put under "scene" in their transforms_*.json:
# a folder holding one of them may be written again; any other dataset there stays untouched.
OUR_SCENES = ("taichi-nerf built-in", "mesh ")
RUN_FILES = ("checkpoint.pt", "metrics.jsonl")  # a training run's folder, not a dataset's


def refuse_foreign_dataset(out) -> list[Path]:
    """One line for a writer's ``--out`` that is a file, a training run, or holds a dataset this
    project did not write (another layout beside which a transforms_train.json would hide it, or a
    Blender-layout split of the user's, which would be overwritten). An earlier render of ours there
    is rewritten: its files (each split's transforms_*.json and the images and depth maps it lists)
    are returned, for the writer to remove (``remove_files``) once nothing else can refuse, so no
    split or view of it stays beside the new one (a val split of another mesh, say)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: is a file; the dataset goes in a folder")
    run = [name for name in RUN_FILES if (out / name).exists()]
    if run:
        raise DataError(f"{out}: holds a training run ({', '.join(run)}); choose another folder for the dataset")
    found = [name for name in DATASET_MARKERS if name != "transforms_train.json" and (out / name).exists()]
    if found:
        raise DataError(f"{out}: holds another dataset ({', '.join(found)}); choose another folder")
    earlier = []
    for split in SPLITS:
        listing = out / f"transforms_{split}.json"
        if not listing.exists():
            continue
        try:
            meta = json.loads(listing.read_text())
        except (OSError, ValueError):
            meta = None
        scene = meta.get("scene") if isinstance(meta, dict) else None
        if not (isinstance(scene, str) and scene.startswith(OUR_SCENES)):
            raise DataError(f"{listing}: a dataset this tool did not write would be overwritten; choose another folder")
        earlier += [listing, *_render_files(out, meta.get("frames"))]
    return earlier


def _render_files(out: Path, frames) -> list[Path]:
    """The images (``file_path``, .png where it has no extension, as our writers leave it) and depth
    maps an earlier render of ours lists, where they are files inside ``out``."""
    root = out.resolve()
    files = []
    for frame in frames if isinstance(frames, list) else []:
        for key in ("file_path", "depth_file_path"):
            name = frame.get(key) if isinstance(frame, dict) else None
            if not isinstance(name, str) or not name:
                continue
            path = out / name
            path = path if path.suffix else path.with_name(path.name + ".png")
            if path.is_file() and path.resolve().is_relative_to(root):
                files.append(path)
    return files


def remove_files(out, files) -> None:
    """Delete ``files`` (the earlier render in ``out`` that ``refuse_foreign_dataset`` found), and
    the folders inside ``out`` that held them once they are empty."""
    out = Path(out)
    for path in files:
        Path(path).unlink(missing_ok=True)
    for folder in {Path(path).parent for path in files} - {out}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def read_dataset(path, format: str | None = None, downscale: int = 1, *, near: float | None = None,
                 far: float | None = None, aabb=None, unbounded: bool | None = None, mask_mode: str = "transparent",
                 **options) -> Dataset:
    """Read a dataset in any supported layout (the files only; runs/datasets.py's ``load_dataset``
    adds the built-in scene for no path). ``options``: loader options (LOAD_OPTIONS; None: not given).
    ``near``/``far``/``aabb`` override what the loader chose; ``unbounded`` (None: decided
    from the cameras and the images' surround) contracts space beyond the box; ``mask_mode``:
    how masks found beside the images are used (data/masks.py)."""
    unknown = set(options) - set(LOAD_OPTIONS)
    if unknown:
        raise TypeError(f"read_dataset got unknown options {sorted(unknown)}")
    loader_options = {k: v for k, v in options.items() if v is not None}
    path = dataset_path(path)
    if format is not None:
        format = ALIASES.get(format, format)
    if format in (None, "npz"):
        path = lone_npz(path) or path
    if format is None:
        format = detect_format(path)
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r} (supported: {', '.join(FORMATS)})")
    downscale = whole_option("downscale", downscale)
    if loader_options.get("ndc") and format != "llff":  # only the LLFF loader samples in NDC
        raise DataError(f"{path}: {flag_or_keyword('--ndc', 'ndc=True')} applies to LLFF captures (poses_bounds.npy) "
                        f"only, and this is a {format} dataset; leave it out")
    for key in ("every", "limit"):
        if key in loader_options:
            loader_options[key] = whole_option(key, loader_options[key])
    try:
        dataset = FORMATS[format][1](path, downscale=downscale, **loader_options)
    except DataError as exc:  # a --format copied from a recipe for other data: say what the data is
        layout = detected_layout(path) if path.exists() else None
        if layout in (None, format):
            raise
        raise DataError(f"{exc}; {path} is a {layout} dataset (detected): leave out "
                        f"{flag_or_keyword('--format', 'format=')}") from None
    attach_masks(dataset, path, format, mask_mode, downscale)
    if dataset.mask_mode == "transparent" and aabb is None:
        hull_bounds(dataset)
    choose_scene_kind(dataset, unbounded)
    apply_overrides(dataset, near=near, far=far, aabb=aabb)
    check_dataset(dataset, downscale)
    return dataset


def dataset_path(path) -> Path:
    """``path`` as a Path; anything but text or a path is a TypeError naming what was given
    (an int died in pathlib, several frames down, saying nothing of datasets)."""
    import os

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"a dataset is given as the path of its folder or file, got {type(path).__name__}")
    return Path(path)


def whole_option(name: str, value) -> int:
    """A count option (``downscale=2``) as an int: numpy's integers and 2.0 count (the API takes
    them wherever Python's are), a string, 2.5 or 0 is a DataError naming the keyword (a
    configuration's, and so the CLI's flags, are checked before: TrainConfig.validate)."""
    try:
        return number_at_least(name, value, 1)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def choose_scene_kind(dataset: Dataset, unbounded: bool | None = None) -> None:
    """What the images' surround is (data/surround.py) and whether the scene is unbounded:
    an inward-facing capture whose background is scenery (or whose cameras look outward)
    gets contracted space beyond its box. Forward-facing captures have NDC instead."""
    from .bounds import make_unbounded, unbounded_reason
    from .surround import choose_background

    dataset.background = choose_background(dataset)
    if unbounded is None:
        reason = unbounded_reason(forward_facing=dataset.ndc or dataset.forward_facing,
                                  cameras_look_outward=dataset.cameras_look_outward, background=dataset.background)
        unbounded = reason is not None
        if unbounded:
            off = flag_or_keyword("--no-unbounded", "unbounded=False")
            dataset.warnings.append(f"{reason}, so the scene is treated as unbounded "
                                    f"(space beyond the box is contracted); {off} turns this off")
    elif unbounded and dataset.ndc:
        raise DataError(f"{dataset.source}: {flag_or_keyword('--unbounded', 'unbounded=True')} does not combine "
                        "with NDC sampling, which already reaches to infinity; add "
                        f"{flag_or_keyword('--no-ndc', 'ndc=False')} to contract space instead")
    if unbounded:
        make_unbounded(dataset)


# Fewer training images than this get a warning: from-photos' least (capture/degenerate.MIN_REGISTERED,
# 8 photos) less the one the loaders hold out for validation (every 8th).
FEW_TRAINING_VIEWS = 7
SMALL_SIDE = 16  # pixels: a --downscale that leaves a shorter side than this was most likely meant as a size


def check_dataset(dataset: Dataset, downscale: int = 1) -> None:
    """Last line of defence: whatever a file held, what leaves the loader is usable (and read at ``downscale``)."""
    import math

    import torch

    where = dataset.source
    for name, split in dataset.splits.items():
        intr, poses = split.intrinsics, split.poses
        if not (bool(torch.isfinite(intr).all()) and bool(torch.isfinite(poses).all())):
            raise DataError(f"{where}: {name} cameras have non-finite values (absurd sizes or focal lengths?)")
        if not bool((intr[:, :2] > 0).all()):
            raise DataError(f"{where}: {name} cameras need positive focal lengths")
    box = dataset.aabb
    if not (math.isfinite(dataset.near) and math.isfinite(dataset.far) and 0 <= dataset.near < dataset.far):
        raise DataError(f"{where}: could not choose near/far (got {dataset.near}, {dataset.far}); set "
                        f"{flag_or_keyword('--near/--far', 'near=/far=')}")
    if box.shape != (6,) or not bool(torch.isfinite(box).all()) or not bool((box[3:] > box[:3]).all()):
        raise DataError(f"{where}: could not choose a scene box (got {box.tolist()}); set "
                        f"{flag_or_keyword('--aabb', 'aabb=')}")
    for name in ("center", "up"):
        if not bool(torch.isfinite(getattr(dataset, name)).all()):
            raise DataError(f"{where}: could not choose the scene {name} from the cameras")
    rotations = torch.cat([split.poses[:, :3, :3] for split in dataset.splits.values()]).double()
    mirrored = int((torch.linalg.det(rotations) < 0).sum())
    if mirrored:  # a converter that flips one camera axis alone: each photo is seen mirrored (it trained silently)
        count = len(rotations)
        which = f"{mirrored} of the {count} camera rotations" if mirrored < count else \
            f"all {count} camera rotations" if count > 1 else "the camera rotation"
        dataset.warnings.append(f"{which} {'is a mirror' if mirrored == 1 else 'are mirrors'} "
                                "(determinant -1): from OpenCV/COLMAP poses, flip both camera y and z, not one; a "
                                "mirrored camera sees its photo mirrored, which no other view agrees with (a whole "
                                "world mirrored on purpose trains as it is)")
    train = dataset.splits.get("train")
    if train is not None and train.count < FEW_TRAINING_VIEWS:  # from-photos --keep-degenerate, --limit
        dataset.warnings.append(f"only {train.count} training image{'s' if train.count != 1 else ''}: a radiance "
                                "field learns a scene from many views (dozens), so new views will be guesses")
    if train is not None and downscale > 1 and min(train.width, train.height) < SMALL_SIDE:  # `--downscale 800`
        dataset.warnings.append(  # (meant as a size) trained on 5x3 images without a word
            f"a downscale of {downscale} leaves {train.width}x{train.height} training images, too few pixels to learn "
            f"a scene from: it divides each side (2 halves them); give a smaller "
            f"{flag_or_keyword('--downscale', 'downscale=')}")


def apply_overrides(dataset: Dataset, near: float | None = None, far: float | None = None, aabb=None) -> None:
    """Replace the chosen near/far/box by the given ones (a flag, a preset or a config file wins over
    every automatic choice; the note says "as given", not who gave them)."""
    import math

    import torch

    for name, value in (("near", near), ("far", far)):
        if value is not None:
            try:
                setattr(dataset, name, float(value))
            except (TypeError, ValueError):  # "could not convert string to float: 'x'" named neither
                raise DataError(f"{name} must be a number, got {value!r}") from None
    if near is not None or far is not None:
        if not (math.isfinite(dataset.near) and math.isfinite(dataset.far) and 0 <= dataset.near < dataset.far):
            # one of them given, the other the data's: say which, as the user typed only one
            said = "" if near is not None and far is not None else (
                f" (near as given, far the data's: give --far too, or a smaller --near; {FROM_PYTHON} far=, near=)"
                if near is not None else
                f" (far as given, near the data's: give --near too, or a larger --far; {FROM_PYTHON} near=, far=)")
            raise DataError(f"need 0 <= near < far, got near {dataset.near:g}, far {dataset.far:g}{said}")
        dataset.notes.append(f"near/far as given (flag, preset or config): {dataset.near:g} / {dataset.far:g}")
    if aabb is not None:
        try:
            box = torch.tensor([float(v) for v in aabb], dtype=torch.float32)
        except (TypeError, ValueError):
            raise DataError("aabb needs six numbers: xmin ymin zmin xmax ymax zmax") from None
        if box.shape != (6,) or not bool(torch.isfinite(box).all()) or not bool((box[3:] > box[:3]).all()):
            raise DataError("aabb needs six finite numbers xmin ymin zmin xmax ymax zmax with max > min")
        dataset.aabb = box
        dataset.notes.append(f"box as given (flag or config): {box.tolist()}")
