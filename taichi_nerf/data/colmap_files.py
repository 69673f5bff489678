"""COLMAP sparse models (``cameras``, ``images``, ``points3D``; ``.bin`` or ``.txt``) read into a
:class:`Model`: where a project keeps them (:func:`find_model`) and the reading itself.

The reader follows COLMAP's documented formats (https://colmap.github.io/format.html), needs only
numpy, and is checked against pycolmap on models pycolmap writes (tests/test_colmap.py); binary
models are read by pycolmap when it is installed (:func:`read_model`). Newer COLMAP also writes
``rigs`` and ``frames``; every image still carries its own pose in ``images``: not needed here.
What a model becomes (an oriented, scaled dataset) is data/colmap_model.py's.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import DataError

# model id -> (name, number of parameters); https://colmap.github.io/cameras.html
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12), 11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
    12: ("SIMPLE_DIVISION", 4), 13: ("DIVISION", 5), 14: ("SIMPLE_FISHEYE", 3), 15: ("FISHEYE", 4),
}
MODEL_PARAMS = {name: count for name, count in CAMERA_MODELS.values()}
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
