"""COLMAP sparse models (``cameras``, ``images``, ``points3D``; ``.bin`` or ``.txt``) and what
the rest of the package makes of them: an oriented, scaled ``transforms.json``-style description.

The reader follows COLMAP's documented formats (https://colmap.github.io/format.html), needs only
numpy, and is checked against pycolmap on models pycolmap writes (tests/test_colmap.py); binary
models are read by pycolmap when it is installed (:func:`read_model`). Newer COLMAP also writes
``rigs`` and ``frames``; every image still carries its own pose in ``images``: not needed here.

Conventions: COLMAP stores world-to-camera (quaternion w x y z, translation) for an OpenCV camera
(x right, y down, looking down +z) with pixel centres at +0.5, as this package does. Poses become
OpenGL camera-to-world (flip y and z). :func:`orient` then turns the world so the mean camera up
is +z, centres it on the median of the sparse points the cameras surround, and scales it so the
points' robust extent (2nd-98th percentile) is a box of half-size 1; near/far come from the
depths at which each camera saw its points.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..rotations import OPENCV_TO_OPENGL, quaternion_to_matrix, rotation_onto_z
from .dataset import DataError
from .images import DATASET_SUFFIXES

# model id -> (name, number of parameters); https://colmap.github.io/cameras.html
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12), 11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
    12: ("SIMPLE_DIVISION", 4), 13: ("DIVISION", 5), 14: ("SIMPLE_FISHEYE", 3), 15: ("FISHEYE", 4),
}
MODEL_PARAMS = {name: count for name, count in CAMERA_MODELS.values()}
# models the ray kernel represents: name -> how their parameters map to fx fy cx cy k1 k2 p1 p2
_TO_OPENCV = {
    "SIMPLE_PINHOLE": lambda p: (p[0], p[0], p[1], p[2], 0, 0, 0, 0),
    "PINHOLE": lambda p: (p[0], p[1], p[2], p[3], 0, 0, 0, 0),
    "SIMPLE_RADIAL": lambda p: (p[0], p[0], p[1], p[2], p[3], 0, 0, 0),
    "RADIAL": lambda p: (p[0], p[0], p[1], p[2], p[3], p[4], 0, 0),
    "OPENCV": lambda p: tuple(p[:8]),
    "FULL_OPENCV": lambda p: tuple(p[:8]),  # k3..k6 dropped with a warning
}
BOX_PERCENTILES = (2.0, 98.0)  # the points' robust extent
BOX_PAD = 0.05  # of the extent, on every side
PARTS = ("cameras", "images", "points3D")


@dataclass
class Camera:
    id: int
    model: str
    width: int
    height: int
    params: np.ndarray


@dataclass
class Model:
    cameras: dict  # camera id -> Camera
    image_ids: np.ndarray  # (N,) int
    names: list  # N image names, relative to the images folder
    camera_ids: np.ndarray  # (N,) int
    qvecs: np.ndarray  # (N, 4) world-to-camera rotation, w x y z
    tvecs: np.ndarray  # (N, 3) world-to-camera translation
    observed: list  # N int64 arrays: the point3D ids each image sees (-1 dropped)
    point_ids: np.ndarray  # (P,) int
    xyz: np.ndarray  # (P, 3)
    rgb: np.ndarray  # (P, 3) uint8
    errors: np.ndarray  # (P,) mean reprojection error, pixels
    track_lengths: np.ndarray  # (P,) int


# --- reading ---------------------------------------------------------------------------------
def model_files(folder: Path) -> str | None:
    """".bin" or ".txt" when ``folder`` holds a whole model in that form, else None."""
    for ext in (".bin", ".txt"):
        if all((folder / f"{part}{ext}").is_file() for part in PARTS):
            return ext
    return None


def model_folders(path: Path) -> list[Path]:
    """Folders of ``path`` holding a whole model: ``sparse/0``, ``sparse``, ``colmap/sparse/0``, ``path``."""
    if not path.is_dir():
        return []
    return [m for m in (path / "sparse/0", path / "sparse", path / "colmap/sparse/0", path) if model_files(m)]


def find_model(path: Path) -> tuple[Path, Path] | None:
    """(model folder, images folder) for a COLMAP project folder, or None: the first of
    :func:`model_folders` with an ``images/`` beside ``sparse`` (or the project folder)."""
    for model in model_folders(Path(path)):
        for images in (Path(path) / "images", model.parent.parent / "images", model.parent / "images"):
            if images.is_dir():
                return model, images
    return None


class _Bytes:
    def __init__(self, path: Path):
        self.path, self.data, self.at = path, path.read_bytes(), 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise DataError(f"{self.path}: file ends early (truncated COLMAP model?)")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def array(self, dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        if self.at + dtype.itemsize * count > len(self.data):
            raise DataError(f"{self.path}: file ends early (truncated COLMAP model?)")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += dtype.itemsize * count
        return out

    def name(self) -> str:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise DataError(f"{self.path}: unterminated image name")
        text = self.data[self.at:end].decode("utf-8", errors="replace")
        self.at = end + 1
        return text


def _camera(cid: int, model_id_or_name, width: int, height: int, params, where) -> Camera:
    if isinstance(model_id_or_name, str):
        name = model_id_or_name
        if name not in MODEL_PARAMS:
            raise DataError(f"{where}: unknown camera model {name!r}")
    else:
        if model_id_or_name not in CAMERA_MODELS:
            raise DataError(f"{where}: unknown camera model id {model_id_or_name}")
        name = CAMERA_MODELS[model_id_or_name][0]
    params = np.asarray(params, dtype=np.float64)
    if len(params) != MODEL_PARAMS[name]:
        raise DataError(f"{where}: camera {cid} ({name}) has {len(params)} parameters, expected {MODEL_PARAMS[name]}")
    if not np.isfinite(params).all():
        raise DataError(f"{where}: camera {cid} ({name}) has parameters that are not finite numbers: {params.tolist()}")
    return Camera(int(cid), name, int(width), int(height), params)


def _read_binary(folder: Path):
    f = _Bytes(folder / "cameras.bin")
    cameras = {}
    for _ in range(f.take("<Q")[0]):
        cid, model_id, w, h = f.take("<iiQQ")
        count = CAMERA_MODELS.get(model_id, ("", 0))[1]
        cameras[cid] = _camera(cid, model_id, w, h, f.array("<f8", count), f.path)
    f = _Bytes(folder / "images.bin")
    images = []
    point2d = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])
    for _ in range(f.take("<Q")[0]):
        iid, qw, qx, qy, qz, tx, ty, tz, cid = f.take("<idddddddi")
        name = f.name()
        pts = f.array(point2d, f.take("<Q")[0])["id"]
        images.append((iid, name, cid, (qw, qx, qy, qz), (tx, ty, tz), pts[pts >= 0].astype(np.int64)))
    f = _Bytes(folder / "points3D.bin")
    points = []
    for _ in range(f.take("<Q")[0]):
        pid, x, y, z, r, g, b, err, length = f.take("<QdddBBBdQ")
        f.array("<i4", 2 * length)  # the track: (image id, point2D index) pairs
        points.append((pid, x, y, z, r, g, b, err, length))
    return cameras, images, points


def _data_lines(path: Path):
    """(line number, text) of every line but comments; blank lines kept (an image may see no points)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    return [(n + 1, line.strip()) for n, line in enumerate(text.splitlines()) if not line.lstrip().startswith("#")]


def _read_text(folder: Path):
    cameras = {}
    for n, line in _data_lines(folder / "cameras.txt"):
        if line:
            f = line.split()
            where = f"{folder / 'cameras.txt'} line {n}"
            try:
                cid, model, width, height, params = int(f[0]), f[1], int(f[2]), int(f[3]), [float(v) for v in f[4:]]
            except (IndexError, ValueError):
                raise DataError(f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]") from None
            cameras[cid] = _camera(cid, model, width, height, params, where)  # its own errors name the line too
    lines = _data_lines(folder / "images.txt")
    while lines and not lines[-1][1]:
        lines.pop()
    images = []
    for k in range(0, len(lines), 2):
        n, head = lines[k]
        f = head.split(maxsplit=9)
        try:
            pts = np.array(lines[k + 1][1].split(), dtype=np.float64).reshape(-1, 3)[:, 2] if k + 1 < len(lines) \
                else np.zeros(0)
            images.append((int(f[0]), f[9], int(f[8]), tuple(float(v) for v in f[1:5]),
                           tuple(float(v) for v in f[5:8]), pts[pts >= 0].astype(np.int64)))
        except (IndexError, ValueError):
            raise DataError(f"{folder / 'images.txt'} line {n}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME "
                            "then a line of POINTS2D") from None
    points = []
    for n, line in _data_lines(folder / "points3D.txt"):
        if line:
            f = line.split()
            try:
                points.append((int(f[0]), *(float(v) for v in f[1:4]), *(int(v) for v in f[4:7]), float(f[7]),
                               (len(f) - 8) // 2))
            except (IndexError, ValueError):
                raise DataError(f"{folder / 'points3D.txt'} line {n}: "
                                "expected POINT3D_ID X Y Z R G B ERROR TRACK[]") from None
    return cameras, images, points


def _assemble(cameras, images, points, where) -> Model:
    images = sorted(images, key=lambda im: im[1])
    for im in images:
        if im[2] not in cameras:
            raise DataError(f"{where}: image {im[1]} uses camera {im[2]}, which is not in the model")
        if not np.isfinite([*im[3], *im[4]]).all() or not np.abs(im[3]).sum() > 0:  # else NaN poses further on
            raise DataError(f"{where}: image {im[1]}: its pose QW QX QY QZ TX TY TZ must be finite numbers, the "
                            f"quaternion not all zero; got {[*im[3], *im[4]]}")
    pts = np.array([p[:9] for p in points], dtype=np.float64).reshape(-1, 9)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]  # by point id, whoever read them
    return Model(cameras=cameras, image_ids=np.array([im[0] for im in images], dtype=np.int64),
                 names=[im[1] for im in images], camera_ids=np.array([im[2] for im in images], dtype=np.int64),
                 qvecs=np.array([im[3] for im in images], dtype=np.float64).reshape(-1, 4),
                 tvecs=np.array([im[4] for im in images], dtype=np.float64).reshape(-1, 3),
                 observed=[im[5] for im in images], point_ids=pts[:, 0].astype(np.int64), xyz=pts[:, 1:4],
                 rgb=pts[:, 4:7].astype(np.uint8), errors=pts[:, 7], track_lengths=pts[:, 8].astype(np.int64))


def read_model(folder, prefer_pycolmap: bool = True) -> Model:
    """The model in ``folder`` (binary or text). With pycolmap installed and ``prefer_pycolmap``,
    pycolmap reads a binary one; this module's reader does the rest (pycolmap, like COLMAP, cuts
    a text model's image name at its first space)."""
    folder = Path(folder)
    ext = model_files(folder)
    if ext is None:
        raise DataError(f"{folder}: no COLMAP model here (need cameras, images and points3D, .bin or .txt)")
    if prefer_pycolmap and ext == ".bin":
        try:
            import pycolmap  # noqa: F401
        except ImportError:
            pass
        else:
            return _read_pycolmap(folder)
    cameras, images, points = _read_binary(folder) if ext == ".bin" else _read_text(folder)
    return _assemble(cameras, images, points, folder)


def from_reconstruction(rec, where="pycolmap reconstruction") -> Model:
    """A pycolmap ``Reconstruction``'s registered images, cameras and points as a Model."""
    cameras = {int(cid): _camera(int(cid), c.model.name, c.width, c.height, np.array(c.params), where)
               for cid, c in rec.cameras.items()}
    images = []
    for iid in rec.reg_image_ids():
        im = rec.images[iid]
        pose = im.cam_from_world() if callable(im.cam_from_world) else im.cam_from_world
        x, y, z, w = np.asarray(pose.rotation.quat, dtype=np.float64)  # Eigen order: x y z w
        ids = np.array([p.point3D_id for p in im.points2D if p.has_point3D()], dtype=np.int64)
        images.append((int(iid), im.name, int(im.camera_id), (w, x, y, z), tuple(np.asarray(pose.translation)), ids))
    points = [(int(pid), *p.xyz, *(int(v) for v in p.color), p.error, p.track.length())
              for pid, p in rec.points3D.items()]
    return _assemble(cameras, images, points, where)


def _read_pycolmap(folder: Path) -> Model:
    import pycolmap

    try:
        rec = pycolmap.Reconstruction(str(folder))
    except Exception as exc:  # pycolmap raises its own error types
        raise DataError(f"{folder}: pycolmap cannot read this model ({str(exc).strip().splitlines()[-1]})") from None
    return from_reconstruction(rec, folder)


# --- geometry --------------------------------------------------------------------------------
def camera_to_world(model: Model) -> np.ndarray:
    """(N, 4, 4) OpenGL camera-to-world poses in the model's frame."""
    rot = quaternion_to_matrix(model.qvecs)  # world -> camera
    c2w = np.tile(np.eye(4), (len(model.names), 1, 1))
    c2w[:, :3, :3] = np.transpose(rot, (0, 2, 1))
    c2w[:, :3, 3] = -np.einsum("nji,nj->ni", rot, model.tvecs)
    c2w[:, :3, :3] = c2w[:, :3, :3] @ OPENCV_TO_OPENGL
    return c2w


MIN_POINTS = 8  # sparse points a model needs for its box and near/far to come from them (none: a model of known poses)


def orient(c2w: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(4x4 similarity T: new = T @ old, box (6,) in the new frame, notes). Up: the mean camera
    up becomes +z. Centre: the median of the points within the median camera distance of the
    points' median (the content the cameras surround or face, not the far background). Scale:
    that content's 2nd-98th percentile box gets half-size 1."""
    up = c2w[:, :3, 1].mean(axis=0)
    if np.linalg.norm(up) < 1e-6:
        up = np.array([0.0, 0.0, 1.0])
    rot = rotation_onto_z(up / np.linalg.norm(up))
    centres = c2w[:, :3, 3]
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    framed = "sparse points (those the cameras surround)"
    if len(pts) < MIN_POINTS:  # too few points to trust: frame the cameras instead
        framed = f"camera centres (the model has {len(pts)} sparse points)"
        pts = centres
    middle = np.median(pts, axis=0)
    reach = float(np.median(np.linalg.norm(centres - middle, axis=1)))
    content = pts[np.linalg.norm(pts - middle, axis=1) <= max(reach, 1e-9)]
    if len(content) < max(8, 0.05 * len(pts)):
        content = pts
    centre = np.median(content, axis=0)
    local = (content - centre) @ rot.T
    lo, hi = np.percentile(local, BOX_PERCENTILES[0], axis=0), np.percentile(local, BOX_PERCENTILES[1], axis=0)
    pad = BOX_PAD * float((hi - lo).max())
    lo, hi = lo - pad, hi + pad
    half = float(np.abs(np.concatenate([lo, hi])).max())
    scale = 1.0 / half if half > 1e-12 else 1.0
    transform = np.eye(4)
    transform[:3, :3] = scale * rot
    transform[:3, 3] = -scale * rot @ centre
    notes = [f"oriented: mean camera up -> +z, centred on the median of {len(content)} of {len(pts)} {framed}, "
             f"scaled x{scale:.4g} so their {BOX_PERCENTILES[0]:g}-"
             f"{BOX_PERCENTILES[1]:g}th percentile box has half-size 1"]
    return transform, np.concatenate([lo, hi]) * scale, notes


def apply_similarity(transform: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Camera-to-world poses moved by similarity ``transform`` (rotation columns kept unit)."""
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    out = transform[None] @ c2w
    out[:, :3, :3] /= scale
    return out


def near_far(model: Model, c2w: np.ndarray, xyz: np.ndarray) -> tuple[float, float]:
    """Near/far from the depths at which each camera saw its own points (``xyz`` in the same
    frame as ``c2w``): 0.5th percentile x 0.8 and 99.5th x 1.2 over all observations."""
    index = {int(pid): k for k, pid in enumerate(model.point_ids)}
    depths = []
    for n, ids in enumerate(model.observed):
        rows = [index[int(i)] for i in ids if int(i) in index]
        if rows:
            depths.append((xyz[rows] - c2w[n, :3, 3]) @ -c2w[n, :3, 2])
    depths = np.concatenate(depths) if depths else np.zeros(0)
    depths = depths[depths > 0]
    if len(depths) < 8:
        return 0.01, 10.0
    return 0.8 * float(np.percentile(depths, 0.5)), 1.2 * float(np.percentile(depths, 99.5))


# --- to transforms.json ----------------------------------------------------------------------
MAX_ASPECT_DIFFERENCE = 0.05  # fx / fy (or fy / fx) beyond 1 + this is warned about: cameras have square pixels


def camera_keys(camera: Camera, where) -> tuple[dict, list[str]]:
    """The transforms.json intrinsics of one COLMAP camera; refuses models the rays cannot follow."""
    if camera.model not in _TO_OPENCV:
        raise DataError(f"{where}: camera {camera.id} is {camera.model}; supported: {', '.join(_TO_OPENCV)} "
                        "(undistort fisheye images first, e.g. colmap image_undistorter)")
    fx, fy, cx, cy, k1, k2, p1, p2 = (float(v) for v in _TO_OPENCV[camera.model](camera.params))
    keys = {"camera_model": "OPENCV" if any((k1, k2, p1, p2)) else "PINHOLE", "fl_x": fx, "fl_y": fy, "cx": cx,
            "cy": cy, "w": camera.width, "h": camera.height}
    if keys["camera_model"] == "OPENCV":
        keys.update(k1=k1, k2=k2, p1=p1, p2=p2)
    warnings = []
    ratio = max(fx, fy) / min(fx, fy) if min(fx, fy) > 0 else math.inf
    if ratio > 1.0 + MAX_ASPECT_DIFFERENCE:  # from photos: a model with one focal length is the way out
        warnings.append(f"{where}: camera {camera.id}: fx {fx:.4g} and fy {fy:.4g} differ {ratio:.3g}-fold, where "
                        f"square pixels have fx = fy: {camera.model}'s two focal lengths most likely settled on wrong "
                        "ones (from-photos: use the default --camera-model simple_radial)")
    if camera.model == "FULL_OPENCV" and np.any(camera.params[8:]):
        warnings.append(f"{where}: camera {camera.id}: FULL_OPENCV terms k3..k6 are ignored")
    return keys, warnings


def transforms_meta(model: Model, image_prefix: str = "images/", where="COLMAP model") -> tuple[dict, list[str]]:
    """The oriented model as a transforms.json dict (``frames`` in file-name order; one shared
    camera at the top level, else per frame), with ``aabb``, ``near``, ``far`` and the
    ``applied_transform`` (3x4 similarity from the COLMAP frame to this one); and warnings."""
    if not model.names:
        raise DataError(f"{where}: the model has no registered images")
    c2w = camera_to_world(model)
    transform, box, notes = orient(c2w, model.xyz)
    poses = apply_similarity(transform, c2w)
    xyz = model.xyz @ transform[:3, :3].T + transform[:3, 3]
    near, far = near_far(model, poses, xyz)
    warnings, cams = [], {}
    for cid in sorted(set(model.camera_ids.tolist())):
        cams[cid], w = camera_keys(model.cameras[cid], where)
        warnings += w
    shared = len(cams) == 1
    meta = dict(next(iter(cams.values()))) if shared else {}
    frames = []
    for n, name in enumerate(model.names):
        frame = {"file_path": image_prefix + name, "transform_matrix": poses[n].tolist(),
                 "colmap_im_id": int(model.image_ids[n])}
        if not shared:
            frame.update(cams[int(model.camera_ids[n])])
        frames.append(frame)
    meta.update(frames=frames, applied_transform=transform[:3].tolist(), orientation_note=notes[0])
    if len(model.xyz) >= MIN_POINTS:  # else the box would be the cameras' own: bounds from the cameras, as for
        meta.update(aabb=[box[:3].tolist(), box[3:].tolist()], near=near, far=far)  # a transforms.json without
    return meta, warnings


def registration(model: Model) -> dict:
    """Figures for reports: registered images, 3D points, mean reprojection error (pixels)."""
    error = float(model.errors.mean()) if len(model.errors) else math.nan
    return {"registered": len(model.names), "points3D": int(len(model.point_ids)), "mean_reprojection_error": error}


# --- the loader (--format colmap) ------------------------------------------------------------
def is_colmap(path: Path) -> bool:
    return find_model(Path(path)) is not None


def load_colmap(path, downscale: int = 1, every: int = 1, limit: int | None = None, val_every: int | None = None,
                **_options):
    """A COLMAP project (``sparse/0`` + ``images/``): read, oriented and bounded as
    ``data from-photos`` does, then loaded like a transforms.json."""
    from ..config import DEFAULT_VAL_EVERY
    from .transforms import load_transforms_meta

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    found = find_model(path)
    if found is None:
        raise DataError(f"{path}: no COLMAP model here (need sparse/0/cameras, images, points3D (.bin or .txt) "
                        "and an images/ folder)")
    folder, images = found
    model = read_model(folder)
    meta, warnings = transforms_meta(model, "", str(folder))
    on_disk = sorted(p.name for p in images.iterdir() if p.suffix.lower() in DATASET_SUFFIXES and p.name[0] != ".")
    left_out = [n for n in on_disk if n not in set(model.names)]
    meta["colmap"] = {**registration(model), "total": len(model.names) + len(left_out), "unregistered": left_out,
                      "cameras": len(model.cameras),
                      "camera_model": "/".join(sorted({c.model for c in model.cameras.values()}))}
    ds = load_transforms_meta(meta, images, folder, downscale, every, limit,
                              DEFAULT_VAL_EVERY if val_every is None else val_every, format="colmap")
    ds.warnings.extend(warnings)
    ds.notes.insert(0, meta["orientation_note"])
    return ds
