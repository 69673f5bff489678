"""Wavefront OBJ + MTL reader for turning meshes into datasets (see scenes/mesh.py).

Reads ``v`` (with optional per-vertex ``r g b`` after ``x y z``), ``vt``, ``vn``, ``f`` in
every index form (``v``, ``v/vt``, ``v//vn``, ``v/vt/vn``, negative = relative), polygons
(fan-triangulated), ``mtllib``, ``usemtl``; from MTL files ``newmtl``, ``Kd`` and
``map_Kd`` (texture options before the file name are skipped). Everything else (groups,
smoothing, other maps) is ignored. The result is flat arrays, one row per vertex or face.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.dataset import DataError
from ..data.images import read_rgba
from ..data.loaders import OTHER_MESH_FORMATS

DEFAULT_COLOR = (0.7, 0.7, 0.7)  # untextured, uncoloured meshes are shaded in this grey


@dataclass
class Material:
    name: str
    kd: tuple[float, float, float] = DEFAULT_COLOR
    texture: np.ndarray | None = None  # (H, W, 3) float32 in [0, 1], display (sRGB) values


@dataclass
class Mesh:
    positions: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int32 vertex indices
    uvs: np.ndarray  # (T, 2) float64
    face_uvs: np.ndarray  # (F, 3) int32 into uvs, -1 where the face has none
    normals: np.ndarray  # (Nn, 3) float64
    face_normals: np.ndarray  # (F, 3) int32 into normals, -1 where the face has none
    face_materials: np.ndarray  # (F,) int32 into materials
    materials: list[Material]
    vertex_colors: np.ndarray | None = None  # (V, 3) float64 in [0, 1]
    warnings: list[str] = field(default_factory=list)
    source: str = ""  # the file it was read from, for messages


def _floats(tokens: list[str], count: int, where: str) -> list[float]:
    try:
        values = [float(t) for t in tokens[:count]]
    except ValueError:
        raise DataError(f"{where}: expected {count} numbers, got {' '.join(tokens[:count])!r}") from None
    if len(values) < count or not all(np.isfinite(values)):
        raise DataError(f"{where}: expected {count} finite numbers")
    return values


def read_mtl(path: Path, warnings: list[str]) -> dict[str, Material]:
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()  # -sig: a BOM is no keyword
    except OSError as exc:
        warnings.append(f"{path}: cannot read material library ({exc.strerror}); using flat colours")
        return {}
    materials: dict[str, Material] = {}
    current: Material | None = None
    for key, args, where in _records(lines, path):
        if key == "newmtl" and args:
            current = materials[args[0]] = Material(args[0])
        elif current is None:
            continue
        elif key == "Kd":
            current.kd = tuple(min(max(v, 0.0), 1.0) for v in _floats(args, 3, where))
        elif key == "map_Kd" and args:
            texture_path = path.parent / args[-1]
            try:
                current.texture = read_rgba(texture_path)[..., :3].astype(np.float32) / 255.0
            except DataError as exc:
                warnings.append(f"{exc}; material {current.name} uses its flat colour")
    return materials


def _records(lines: list[str], path: Path):
    """(keyword, arguments, "file:line") for each non-empty line, comments stripped."""
    for number, line in enumerate(lines, 1):
        tokens = line.split("#", 1)[0].split()
        if tokens:
            yield tokens[0], tokens[1:], f"{path}:{number}"


def read_obj(path) -> Mesh:
    path = Path(path)
    if path.is_dir():  # the mesh's folder (the tutorial's cow_mesh/): name its .obj
        found = sorted(str(p) for p in path.glob("*.obj"))
        raise DataError(f"{path}: a folder, not an .obj file; " + (f"give the mesh file: {found[0]}" if len(found) == 1
                        else f"give one of its {len(found)} .obj files" if found else "it holds no .obj file"))
    other = OTHER_MESH_FORMATS.get(path.suffix.lower())
    if other and path.is_file():  # read as OBJ: "no faces (an OBJ mesh needs 'f' lines)", or a bad number
        raise DataError(f"{path}: meshes are read as Wavefront OBJ, and this is {other}: export or convert it to .obj "
                        f"(Blender, MeshLab), then give the .obj")
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()  # -sig: a BOM is no keyword
    except FileNotFoundError:
        raise DataError(f"{path}: mesh file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    positions, colors, uvs, normals = [], [], [], []
    corners: list[tuple[int, int, int]] = []  # (v, vt, vn) per triangle corner, absolute, -1 = none
    face_material_names: list[str | None] = []
    libraries: list[Path] = []
    material: str | None = None
    for key, args, where in _records(lines, path):
        if key == "v":
            values = _floats(args, 6 if len(args) >= 6 else 3, where)
            positions.append(values[:3])
            colors.append(values[3:6] if len(values) == 6 else None)
        elif key == "vt":
            uvs.append(_floats(args, 2, where))
        elif key == "vn":
            normals.append(_floats(args, 3, where))
        elif key == "f":
            if len(args) < 3:
                raise DataError(f"{where}: a face needs at least 3 vertices")
            refs = [_face_ref(a, len(positions), len(uvs), len(normals), where) for a in args]
            for k in range(1, len(refs) - 1):  # fan triangulation of polygons
                corners += [refs[0], refs[k], refs[k + 1]]
                face_material_names.append(material)
        elif key == "usemtl":
            material = args[0] if args else None
        elif key == "mtllib":
            libraries += [path.parent / a for a in args]
    if not corners:
        raise DataError(f"{path}: no faces (an OBJ mesh needs 'f' lines)")
    warnings: list[str] = []
    library: dict[str, Material] = {}
    for lib in libraries:
        library.update(read_mtl(lib, warnings))
    names = sorted({n for n in face_material_names if n is not None})
    missing = [n for n in names if n not in library]
    if missing:
        warnings.append(f"{path}: material(s) {', '.join(missing)} not defined; flat colour used")
    materials = [Material("(default)")] + [library.get(n, Material(n)) for n in names]
    index = {n: i + 1 for i, n in enumerate(names)}
    refs = np.asarray(corners, dtype=np.int64).reshape(-1, 3, 3)
    vertex_colors = None
    if any(c is not None for c in colors):
        rgb = np.array([c if c is not None else [1.0, 1.0, 1.0] for c in colors], dtype=np.float64)
        vertex_colors = rgb / 255.0 if rgb.max() > 1.0 else rgb  # some writers use 0..255
    return Mesh(
        positions=np.asarray(positions, dtype=np.float64),
        faces=refs[:, :, 0].astype(np.int32),
        uvs=np.asarray(uvs, dtype=np.float64).reshape(-1, 2),
        face_uvs=refs[:, :, 1].astype(np.int32),
        normals=np.asarray(normals, dtype=np.float64).reshape(-1, 3),
        face_normals=refs[:, :, 2].astype(np.int32),
        face_materials=np.array([index.get(n, 0) if n is not None else 0 for n in face_material_names], dtype=np.int32),
        materials=materials,
        vertex_colors=None if vertex_colors is None else np.clip(vertex_colors, 0.0, 1.0),
        warnings=warnings,
        source=str(path),
    )


def _face_ref(token: str, nv: int, nt: int, nn: int, where: str) -> tuple[int, int, int]:
    """'v', 'v/vt', 'v//vn' or 'v/vt/vn' (1-based, negative = from the end) -> 0-based, -1 = none."""
    parts = token.split("/")
    if len(parts) > 3:
        raise DataError(f"{where}: bad face vertex {token!r}")
    out = []
    for k, count in enumerate((nv, nt, nn)):
        text = parts[k] if k < len(parts) else ""
        if text == "":
            if k == 0:
                raise DataError(f"{where}: face vertex {token!r} has no position index")
            out.append(-1)
            continue
        try:
            i = int(text)
        except ValueError:
            raise DataError(f"{where}: bad face vertex {token!r}") from None
        i = i - 1 if i > 0 else count + i
        if not 0 <= i < count:
            raise DataError(f"{where}: face index {text} is out of range (have {count})")
        out.append(i)
    return out[0], out[1], out[2]
