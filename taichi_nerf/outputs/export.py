"""What a trained field becomes outside the renderer: a coloured triangle mesh (marching
cubes on the field's density) and a coloured point cloud (the rendered surface).

Mesh: the density is queried on a lattice of ``resolution``^3 points spanning the scene box,
a slab of planes at a time and only where the occupancy grid (dilated by one cell) knows
the field is not empty; everything else is 0. scikit-image's ``measure.marching_cubes``
(Lewiner) extracts the isosurface over the whole lattice: given the occupancy as its ``mask``,
it left the surface open wherever the mask cut it (1074 open edges at --threshold 0.1 on a 64^3
lattice), for a saving of tens of milliseconds. The zeros close it there instead, as the
lattice's outer planes, zeroed, close it at the box.
Vertex colours are the field's colour at the vertex seen along its normal (looking in).

Points: every pixel of a set of views at least 0.95 opaque becomes the point at its median
depth (where the ray reaches half its opacity: on the surface, where the expected depth of a
soft edge lies between the surface and what is behind it), with the rendered colour
(un-composited from the background).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config_checks import number_at_least, positive_number
from ..files import write_atomic
from ..rendering.renderer import Renderer
from ..resources import USABLE_FRACTION, free_bytes, gb
from ..stages.encoding import encode_samples
from ..wording import flag_or_keyword
from . import mesh_checks
from .mesh_checks import try_threshold
from .surface import sampled_surface_points, surface_points

MIN_RESOLUTION = 16
MAX_RESOLUTION = 2048
BYTES_PER_LATTICE_POINT = 4 + 1  # float32 density + bool mask of the queried points (mesh_checks)
FIELD_CHUNK = 65536  # points per field call: bounds the MLP's activations
SLAB_POINTS = 1 << 20  # lattice points generated per slab of planes
AUTO_VIEWS, AUTO_WIDTH = 8, 48  # orbit views rendered to find the surface density (auto threshold)
SURFACE_OPACITY = 0.9  # pixels at least this opaque have a surface at their median depth
AUTO_FRACTION = 0.5  # auto threshold = this x the median density at the rendered surface
WRITTEN_BY = "written by taichi-nerf"  # in every PLY and OBJ header: the files an export may replace
PILOT_PIXELS = 1024  # export points --max-points: pixels drawn first, to size the draw that follows


class ExportError(ValueError):
    """A one-line, user-fixable problem with an export (caught by the CLI)."""


class NothingOpaque(ExportError):
    """No pixel of the views is opaque enough to be a surface point: what to do is to train longer."""

    def __init__(self, views: str, min_opacity: float, trained: str = ""):
        self.views, self.min_opacity = views, min_opacity
        super().__init__(f"no pixel of the {views} is {min_opacity:g} opaque: nothing to export (a field barely "
                         f"trained, or translucent, renders nothing that opaque); {trained or 'train it longer first'}")


@dataclass
class MeshResult:
    vertices: np.ndarray  # (V, 3) float32, world units
    faces: np.ndarray  # (F, 3) int32, counter-clockwise seen from outside
    colors: np.ndarray  # (V, 3) uint8
    threshold: float
    threshold_note: str  # how the threshold was chosen (printed by the CLI)
    resolution: int
    evaluated_fraction: float  # share of lattice points whose density was queried
    warnings: list[str] = field(default_factory=list)  # signs the mesh is the box, not the scene (mesh_checks.py)


def check_exportable(renderer: Renderer, what: str) -> None:
    """Meshes are marched on a lattice over the box: in NDC that box reaches to infinity."""
    if renderer.scene.ndc:
        raise ExportError(f"{what} export needs a world-space field; this forward-facing scene was trained in NDC "
                          "(a point-cloud export works on it; for a mesh, retrain with "
                          f"{flag_or_keyword('--no-ndc', 'ndc=False')})")


def check_resolution(resolution: int, name: str = "resolution") -> int:
    """``resolution`` as an int, or a one-line error for one that is not a whole number, or a
    lattice too coarse or too big for this machine's memory. ``name``: how the caller spells it
    (export_mesh's keyword; the CLI's --resolution)."""
    try:
        resolution = number_at_least(name, resolution, MIN_RESOLUTION)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    need = resolution**3 * BYTES_PER_LATTICE_POINT
    free, where = free_bytes("cpu")  # the lattice is built on the host whatever the device
    usable = None if free is None else free * USABLE_FRACTION
    if resolution > MAX_RESOLUTION or (usable is not None and need > usable):
        largest = MAX_RESOLUTION if usable is None else min(MAX_RESOLUTION,
                                                               int((usable / BYTES_PER_LATTICE_POINT) ** (1 / 3)))
        have = f"more than the {gb(usable)} usable {where}" if usable is not None and need > usable \
            else f"above the limit of {MAX_RESOLUTION}"
        raise ExportError(f"{name} {resolution} needs about {gb(need)} for the density grid ({have}); the "
                          f"largest that fits is {largest}")
    return resolution


def check_threshold(threshold, name: str = "threshold") -> str | float:
    """"auto", or the surface's density as a float; anything else is a one-line error (before
    the density lattice is built, not after) naming ``name`` (the CLI's: --threshold)."""
    if isinstance(threshold, str) and threshold == "auto":
        return threshold
    try:
        return positive_number(name, threshold)
    except ValueError:
        raise ExportError(f"{name} must be 'auto' or a positive density, got {threshold!r}") from None


def _box(renderer: Renderer) -> tuple[np.ndarray, np.ndarray]:
    aabb = np.asarray(renderer.scene.aabb, dtype=np.float64)
    return aabb[:3], aabb[3:]


def _occupied_cells(renderer: Renderer) -> torch.Tensor | None:
    """(G, G, G) bool: the occupancy grid grown by one cell (a surface may pass through a
    cell's border), or None when no trained grid exists (query everything)."""
    grid = renderer.grid
    if grid is None or grid.updates == 0:
        return None
    g = grid.resolution
    occ = grid.occupied.view(1, 1, g, g, g).float()
    return torch.nn.functional.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0


@torch.no_grad()
def density_lattice(renderer: Renderer, resolution: int, progress: bool = True):
    """(density (R, R, R) float32 with density[i, j, k] at lo + (i, j, k) * spacing, mask
    (R, R, R) bool of the points that were queried, lo (3,), spacing (3,))."""
    from tqdm.auto import tqdm

    lo, hi = _box(renderer)
    r = resolution
    spacing = (hi - lo) / (r - 1)
    dev = renderer.device
    occupied = _occupied_cells(renderer)
    density = np.zeros((r, r, r), dtype=np.float32)
    mask = np.zeros((r, r, r), dtype=bool)
    axes = [torch.tensor(lo[k] + spacing[k] * np.arange(r), dtype=torch.float32, device=dev) for k in range(3)]
    planes = max(1, SLAB_POINTS // (r * r))
    for i0 in tqdm(range(0, r, planes), disable=not progress, desc="density grid", unit="slab"):
        i1 = min(r, i0 + planes)
        x, y, z = torch.meshgrid(axes[0][i0:i1], axes[1], axes[2], indexing="ij")
        pts = torch.stack([x, y, z], dim=-1).reshape(-1, 3)
        keep = torch.ones(pts.shape[0], dtype=torch.bool, device=dev)
        if occupied is not None:
            keep = occupied.reshape(-1)[_cell_index(pts, renderer.grid.aabb, renderer.grid.resolution)]
        idx = keep.nonzero()[:, 0]
        values = torch.zeros(pts.shape[0], device=dev)
        for s in range(0, idx.shape[0], FIELD_CHUNK):
            chunk = idx[s:s + FIELD_CHUNK]
            values[chunk] = renderer.density(pts[chunk].contiguous()).float()
            gc.collect(1)  # Taichi launches leave reference cycles that hold their tensors: free them now
        density[i0:i1] = values.view(i1 - i0, r, r).cpu().numpy()
        mask[i0:i1] = keep.view(i1 - i0, r, r).cpu().numpy()
    # Zero the outer planes: the surface closes where the box cuts the content.
    for a in range(3):
        sl = [slice(None)] * 3
        for end in (0, -1):
            sl[a] = end
            density[tuple(sl)] = 0.0
    return density, mask, lo, spacing


def _cell_index(points: torch.Tensor, aabb: torch.Tensor, res: int) -> torch.Tensor:
    """Flat occupancy-grid cell of field-space points (the marching kernel's _cell_of)."""
    lo, hi = aabb[:3].to(points.device), aabb[3:].to(points.device)
    ijk = ((points - lo) / (hi - lo) * res).floor().long().clamp(0, res - 1)
    return (ijk[:, 0] * res + ijk[:, 1]) * res + ijk[:, 2]


@torch.no_grad()
def surface_density(renderer: Renderer, background: torch.Tensor, progress: bool = False) -> np.ndarray:
    """Field density at the median depth of opaque pixels of a few orbit views, where that lies
    in the box: the lattice covers the box alone, and an unbounded scene's scenery beyond it
    (most of what its orbit views see) has no place in the mesh. ``progress``: a bar over the
    views (10-20 s on a loaded 2-core CPU, as long as a small lattice)."""
    from tqdm.auto import tqdm

    from ..rendering.scene import orbit_cameras

    poses, intr, w, h = orbit_cameras(renderer.scene, AUTO_VIEWS, AUTO_WIDTH)
    lo, hi = (torch.as_tensor(v, dtype=torch.float32) for v in _box(renderer))
    slack = 1e-4 * float((hi - lo).max())  # a surface on the box's face is in it
    lo, hi = lo - slack, hi + slack
    values = []
    for cam in tqdm(range(poses.shape[0]), disable=not progress, desc="auto threshold", unit="view"):
        pts, _ = surface_points(renderer, poses, intr, cam, w, h, background, SURFACE_OPACITY)
        pts = pts[((pts >= lo.to(pts.device)) & (pts <= hi.to(pts.device))).all(dim=1)]  # on pts' device: no copies
        if pts.shape[0]:
            values.append(renderer.density(pts.to(renderer.device).contiguous()).cpu())
    return torch.cat(values).numpy() if values else np.zeros(0, dtype=np.float32)


NO_SURFACE = "no orbit pixel renders an opaque surface inside the box"


def auto_threshold(renderer: Renderer, background: torch.Tensor, density: np.ndarray,
                   progress: bool = False) -> tuple[float, str]:
    """A level between empty space and the inside: AUTO_FRACTION x the median density where
    the rendered surface is (so the mesh sits where the images show the surface)."""
    at_surface = surface_density(renderer, background, progress)
    if at_surface.size >= 16:
        median = float(np.median(at_surface))
        level = AUTO_FRACTION * median
        return level, (f"threshold {level:.4g} (auto: {AUTO_FRACTION:g} x the median density {median:.4g} at the "
                       f"rendered surface of {at_surface.size} orbit pixels; a threshold given overrides it)")
    inside = density[density > 0]
    level = float(np.percentile(inside, 90)) * AUTO_FRACTION if inside.size else 1.0
    return level, f"threshold {level:.4g} (auto: {NO_SURFACE}; from the density histogram)"


def _histogram_hint(density: np.ndarray, threshold: float) -> str:
    inside = density[density > 0]
    if not inside.size:
        return "the field has no density in the box (is it trained?)"
    peak, p90 = float(inside.max()), float(np.percentile(inside, 90))
    above = float((inside > threshold).mean())
    if threshold >= peak:
        said = f"nothing in the box is that dense: the density peaks at {peak:.4g}"
    else:  # a level almost everything exceeds has no surface inside the queried cells
        said = f"{above:.0%} of the queried points are denser than that (the density peaks at {peak:.4g})"
    suggestion = 0.5 * p90 if above < 0.5 else p90
    return f"{said}, and 90% of the queried points are below {p90:.4g}; try {try_threshold(suggestion)}"


@torch.no_grad()
def extract_mesh(renderer: Renderer, background: torch.Tensor, resolution: int = 256, threshold="auto",
                 progress: bool = True) -> MeshResult:
    """Marching cubes on the field's density; ``threshold``: a density or "auto"."""
    from skimage import measure

    check_exportable(renderer, "mesh")
    resolution, threshold = check_resolution(resolution), check_threshold(threshold)
    density, mask, lo, spacing = density_lattice(renderer, resolution, progress)
    if threshold == "auto":
        level, note = auto_threshold(renderer, background, density, progress)
    else:
        level = threshold
        note = f"threshold {level:.4g} (as given)"
    given = "the threshold" if threshold != "auto" else "the auto threshold"  # the user's own, or ours
    if not (density.max() > level):
        raise ExportError(f"{given} {level:.4g} gives an empty mesh: {_histogram_hint(density, level)}")
    verts, faces, _, _ = measure.marching_cubes(density, level, spacing=tuple(spacing),  # no mask: module doc
                                                gradient_direction="ascent", allow_degenerate=False)
    if not len(faces):
        raise ExportError(f"{given} {level:.4g} gives an empty mesh: {_histogram_hint(density, level)}")
    verts = (verts + lo).astype(np.float32)
    faces = faces.astype(np.int32)
    normals = vertex_normals(verts, faces)
    colors = field_colors(renderer, verts, -normals)
    warnings = mesh_checks.mesh_warnings(verts, density, mask, lo, spacing)
    warnings += mesh_checks.few_triangles_warning(len(faces), density, level)
    if NO_SURFACE in note:  # nothing the cameras would see as solid: the mesh is a level of fog
        warnings.append("no view of the field renders an opaque surface (barely trained, or translucent): the mesh "
                        "is a level set of fog and may show little of the scene; train longer first")
    return MeshResult(verts, faces, colors, level, note, resolution, float(mask.mean()), warnings)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted normals of the faces around each vertex."""
    tri = verts[faces].astype(np.float64)
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros((len(verts), 3))
    for k in range(3):
        np.add.at(n, faces[:, k], face_n)
    return (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)).astype(np.float32)


@torch.no_grad()
def field_colors(renderer: Renderer, points: np.ndarray, view_dirs: np.ndarray) -> np.ndarray:
    """(P, 3) uint8 colour the field gives world ``points`` seen along unit ``view_dirs``."""
    dev = renderer.device
    out = np.zeros((len(points), 3), dtype=np.uint8)
    for s in range(0, len(points), FIELD_CHUNK):
        p = torch.as_tensor(points[s:s + FIELD_CHUNK], dtype=torch.float32, device=dev).contiguous()
        d = torch.as_tensor(view_dirs[s:s + FIELD_CHUNK], dtype=torch.float32, device=dev).contiguous()
        n = p.shape[0]
        # Each point is a ray of one sample at t = 0: its origin is the point itself.
        enc = encode_samples(p, d, torch.zeros(n, device=dev), torch.arange(n, dtype=torch.int32, device=dev),
                             renderer.pos, renderer.direction, view_dirs=d, contract_box=renderer.contract_box)
        _, rgb = renderer.evaluate_field(enc)
        out[s:s + n] = (rgb.clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        gc.collect(1)
    return out


# --- point clouds ---------------------------------------------------------------------------
@torch.no_grad()
def extract_points(renderer: Renderer, background: torch.Tensor, poses: torch.Tensor, intrinsics: torch.Tensor,
                   width: int, height: int, max_points: int | None = None, min_opacity: float = 0.95,
                   seed: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(P, 3) float32 surface points and (P, 3) uint8 colours seen by the given cameras. With
    ``max_points``, a random share of the pixels is rendered, sized by the opaque share of a first
    draw, rather than every pixel (a few thousand points of 100 views rendered them all, for minutes)."""
    from tqdm.auto import tqdm

    rng, total = np.random.default_rng(seed), poses.shape[0] * width * height
    if max_points is not None:
        pilot = rng.choice(total, min(total, PILOT_PIXELS), replace=False)
        found = sampled_surface_points(renderer, poses, intrinsics, width, height, background, min_opacity, pilot)
        wanted = int(2 * max_points * len(pilot) / max(len(found[0]), 1)) + PILOT_PIXELS  # twice the expected need
        if wanted < total // 2:  # else every pixel, below
            pixels = rng.choice(total, wanted, replace=False)
            pixels.sort()  # camera by camera
            found = sampled_surface_points(renderer, poses, intrinsics, width, height, background, min_opacity,
                                            pixels)
            if len(found[0]) >= max_points:
                return _picked(*found, max_points, rng)
    pts, cols = [], []
    for cam in tqdm(range(poses.shape[0]), disable=not progress, desc="surface points", unit="view"):
        p, c = surface_points(renderer, poses, intrinsics, cam, width, height, background, min_opacity, True)
        pts.append(p.cpu())
        cols.append(c.cpu())
    return _picked(torch.cat(pts), torch.cat(cols), max_points, rng, f"{poses.shape[0]} views", min_opacity)


def _picked(points, colors, max_points, rng, views: str = "", min_opacity: float = 0.0):
    """At most ``max_points`` of them, picked at random, as float32 points and uint8 colours."""
    points = points.cpu().numpy().astype(np.float32)
    colors = (colors.cpu().numpy() * 255 + 0.5).astype(np.uint8)
    if not len(points):
        raise NothingOpaque(views, min_opacity)
    if max_points is not None and len(points) > max_points:
        pick = rng.choice(len(points), max_points, replace=False)
        pick.sort()
        points, colors = points[pick], colors[pick]
    return points, colors


# --- writers ----------------------------------------------------------------------------------
def write_ply(path, vertices: np.ndarray, colors: np.ndarray, faces: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY: float xyz + uchar rgb per vertex, uchar-counted int faces; written
    whole or not at all (a Ctrl-C mid-write leaves the earlier file)."""
    n_faces = 0 if faces is None else len(faces)
    header = ["ply", "format binary_little_endian 1.0", f"comment {WRITTEN_BY}",
              f"element vertex {len(vertices)}", "property float x", "property float y", "property float z",
              "property uchar red", "property uchar green", "property uchar blue"]
    if n_faces:
        header += [f"element face {n_faces}", "property list uchar int vertex_indices"]
    header.append("end_header")
    vert = np.empty(len(vertices), dtype=[("p", "<f4", 3), ("c", "u1", 3)])
    vert["p"], vert["c"] = vertices, colors

    def write(fh):
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert.tobytes())
        if n_faces:
            face = np.empty(n_faces, dtype=[("n", "u1"), ("v", "<i4", 3)])
            face["n"], face["v"] = 3, faces
            fh.write(face.tobytes())
    return write_atomic(path, write, binary=True)


def read_ply(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices, colors, faces) of a PLY written by :func:`write_ply` (tests, round trips)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    counts = {line.split()[1]: int(line.split()[2]) for line in header if line.startswith("element")}
    nv, nf = counts.get("vertex", 0), counts.get("face", 0)
    vert = np.frombuffer(data, dtype=[("p", "<f4", 3), ("c", "u1", 3)], count=nv, offset=end)
    face = np.frombuffer(data, dtype=[("n", "u1"), ("v", "<i4", 3)], count=nf, offset=end + vert.nbytes)
    return vert["p"].copy(), vert["c"].copy(), face["v"].copy()


def write_obj(path, vertices: np.ndarray, colors: np.ndarray, faces: np.ndarray | None = None) -> Path:
    """Wavefront OBJ with per-vertex colours (``v x y z r g b``, the common extension that
    MeshLab, Blender and scenes/obj.py read); written whole or not at all, as :func:`write_ply`."""
    rows = np.hstack([vertices.astype(np.float64), colors.astype(np.float64) / 255.0])

    def write(fh):
        fh.write(f"# {WRITTEN_BY}\n")
        np.savetxt(fh, rows, fmt="v %.6f %.6f %.6f %.4f %.4f %.4f")
        if faces is not None and len(faces):
            np.savetxt(fh, faces + 1, fmt="f %d %d %d")
    return write_atomic(path, write)


def check_geometry_file(out, name: str = "out") -> None:
    """A mesh or a point cloud is written as PLY or OBJ, as ``out``'s name ends; said before any
    work, naming ``name`` (the CLI's: --out)."""
    if Path(out).suffix.lower() not in (".ply", ".obj"):
        raise ExportError(f"{name} must end in .ply or .obj, got {out}")
    if not ours_or_empty(Path(out)):  # `--out cow.obj` in the mesh's folder wrote over the user's own model
        raise ExportError(f"{out}: a file taichi-nerf did not write (your own model, another tool's export), which "
                          f"the export would replace; give another {name}")


def ours_or_empty(path: Path) -> bool:
    """Whether ``path`` is absent, empty or an earlier export (its header says :data:`WRITTEN_BY`)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:  # absent, a folder, unreadable: nothing of the user's to lose (the write says why it fails)
        return True
    return not head or WRITTEN_BY.encode() in head


def write_geometry(path, vertices, colors, faces=None) -> Path:
    check_geometry_file(path)
    writer = write_ply if Path(path).suffix.lower() == ".ply" else write_obj
    return writer(path, vertices, colors, faces)
