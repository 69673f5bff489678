"""Warnings for a mesh that shows the box rather than the scene (``export mesh``).

An untrained field has about the same density everywhere, so any threshold below it makes
marching cubes close the surface where the lattice's outer planes were zeroed: the mesh is the
scene box's six faces. Measured on the built-in scene at 32^3 (tiny model): after 1 step the
density varies by 1.5% (std / mean) and 64% of the vertices lie on the box; after 40 steps by
52% and 8%; after 400 steps by 114% and 0%.
"""
from __future__ import annotations

import numpy as np

from ..wording import flag_or_keyword

UNIFORM_VARIATION = 0.1  # std / mean of the density in the box below this: nearly uniform (untrained)
BOX_SHARE = 0.5  # more than this share of the vertices on the box's faces: the mesh is (nearly) the box
FEW_TRIANGLES = 100  # a scene's surface at any resolution export accepts (16 and up) has more


def density_variation(density: np.ndarray, mask: np.ndarray) -> float:
    """std / mean of the queried density inside the box (the zeroed outer planes left out);
    NaN when nothing inside was queried or the density is zero there."""
    inner = density[1:-1, 1:-1, 1:-1][mask[1:-1, 1:-1, 1:-1]].astype(np.float64)
    if inner.size == 0 or not inner.mean() > 0:
        return float("nan")
    return float(inner.std() / inner.mean())


def box_share(vertices: np.ndarray, lo: np.ndarray, spacing: np.ndarray, resolution: int) -> float:
    """Share of ``vertices`` within one lattice spacing of one of the box's six faces."""
    if not len(vertices):
        return 0.0
    hi = lo + spacing * (resolution - 1)
    near = (np.abs(vertices - lo) < spacing).any(axis=1) | (np.abs(vertices - hi) < spacing).any(axis=1)
    return float(near.mean())


def mesh_warnings(vertices: np.ndarray, density: np.ndarray, mask: np.ndarray, lo: np.ndarray,
                  spacing: np.ndarray) -> list[str]:
    """One line per sign that the mesh is the box rather than the scene."""
    warnings = []
    share = box_share(vertices, lo, spacing, density.shape[0])
    if share > BOX_SHARE:
        warnings.append(f"{100 * share:.0f}% of the mesh's vertices lie on the scene box's faces: the mesh is (nearly) "
                        "the box, not the scene; train longer, or raise "
                        + flag_or_keyword("--threshold", "threshold="))
    variation = density_variation(density, mask)
    if variation < UNIFORM_VARIATION:
        warnings.append(f"the density is nearly uniform in the box (it varies by {100 * variation:.1f}%): the field "
                        "looks untrained")
    return warnings


def few_triangles_warning(triangles: int, density: np.ndarray, level: float) -> list[str]:
    """A handful of triangles: the threshold cuts off all but the densest specks (a level near
    the density's peak), which marching cubes closes into a few tiny blobs."""
    if triangles >= FEW_TRIANGLES:
        return []
    inside = density[density > 0]
    p90 = float(np.percentile(inside, 90)) if inside.size else 0.0
    return [f"only {triangles} triangles: the threshold {level:.4g} is near the density's peak "
            f"({float(density.max()):.4g}); try {try_threshold(0.5 * p90)}"]


def step_warning(step) -> list[str]:
    """A checkpoint saved before the first training step holds the random initial field."""
    if step == 0:
        return ["the checkpoint is at step 0: the field is untrained and its mesh shows nothing of the scene"]
    return []


def try_threshold(level: float) -> str:
    """A threshold to try, as a command (``--threshold 0.3``) and a Python caller (``threshold=0.3``) give it."""
    return flag_or_keyword(f"--threshold {level:.3g}", f"threshold={level:.3g}")
