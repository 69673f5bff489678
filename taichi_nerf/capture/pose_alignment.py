"""How far recovered cameras are from the true ones (COLMAP tests and benchmark): the best
similarity between the two sets of centres, then per-camera rotation and centre errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..rotations import angle_between_deg


def umeyama(src: np.ndarray, dst: np.ndarray):
    """Similarity (s, R, t) minimising |s R src + t - dst|^2, no reflection (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1
    rot = u @ d @ vt
    scale = np.trace(np.diag(sig) @ d) / a.var(0).sum()
    return scale, rot, mu_d - scale * rot @ mu_s


def pose_errors(dataset: Path, truth: np.ndarray, index_of) -> tuple[float, np.ndarray, np.ndarray]:
    """Cameras of ``dataset``'s transforms.json (OpenGL camera-to-world) against ``truth``
    (N, 4, 4), matched by ``index_of(file name)``: (fraction of the true cameras registered,
    rotation errors in degrees, centre errors as a fraction of the true cameras' median
    distance from their mean), after the best similarity on the centres."""
    meta = json.loads((Path(dataset) / "transforms.json").read_text())
    idx = [index_of(Path(f["file_path"]).name) for f in meta["frames"]]
    got = np.array([f["transform_matrix"] for f in meta["frames"]])
    want = truth[idx]
    s, rot, t = umeyama(got[:, :3, 3], want[:, :3, 3])
    centre_err = np.linalg.norm(s * got[:, :3, 3] @ rot.T + t - want[:, :3, 3], axis=1)
    radius = np.median(np.linalg.norm(want[:, :3, 3] - want[:, :3, 3].mean(0), axis=1))
    angle = angle_between_deg(np.einsum("ij,njk->nik", rot, got[:, :3, :3]), want[:, :3, :3])
    return len(idx) / len(truth), angle, centre_err / radius
