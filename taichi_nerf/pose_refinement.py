"""Camera pose refinement (nerfacto's camera optimiser, BARF's idea): a small learned rigid
correction of each training camera, for poses that are not exact (COLMAP's never are).

Each camera has six numbers: a rotation (axis times angle, radians) about its own centre and
a translation (world units). A training ray of camera i becomes

    origin' = origin + translation_i,   direction' = R(rotation_i) direction,

in torch, so its gradient flows back from the encoding's adjoint kernel (encoding.py) and,
for forward-facing scenes, through the NDC transform (cameras.ndc_rays). The corrections start
at zero. New views and validation use the cameras as given: a correction belongs to a photo.
"""
from __future__ import annotations

import torch
from torch import nn


def axis_angle_matrices(rotations: torch.Tensor) -> torch.Tensor:
    """(C, 3) axis-angle vectors -> (C, 3, 3) rotation matrices (the exponential of their
    skew matrices: exact, and differentiable at zero, where a correction starts)."""
    x, y, z = rotations.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)
    return torch.linalg.matrix_exp(skew)


class PoseRefinement(nn.Module):
    def __init__(self, cameras: int, device=None):
        super().__init__()
        self.corrections = nn.Parameter(torch.zeros(cameras, 6, device=device))  # rotation | translation

    def forward(self, origins: torch.Tensor, dirs: torch.Tensor,
                image_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays (N, 3) of the training cameras ``image_index`` (N,), corrected."""
        index = image_index.long()
        rotations = axis_angle_matrices(self.corrections[:, :3])[index]  # one exponential per camera, not per ray
        turned = (rotations @ dirs.unsqueeze(-1)).squeeze(-1)
        return origins + self.corrections[index, 3:], turned

    @torch.no_grad()
    def summary(self) -> dict:
        """How far the corrections moved the cameras: RMS rotation (degrees) and translation."""
        rot = self.corrections[:, :3].norm(dim=1)
        shift = self.corrections[:, 3:].norm(dim=1)
        return {"rotation_deg_rms": float(torch.rad2deg(rot.pow(2).mean().sqrt())),
                "translation_rms": float(shift.pow(2).mean().sqrt())}
