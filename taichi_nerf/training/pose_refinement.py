"""Camera pose refinement (nerfacto's camera optimiser, BARF's idea): a small learned rigid
correction of each training camera, for poses that are not exact (COLMAP's never are).

Each camera has six numbers: a rotation (axis times angle, radians) about its own centre and
a translation (world units). A training ray of camera i becomes

    origin' = origin + translation_i,   direction' = R(rotation_i) direction,

in torch, so its gradient flows back from the encoding's adjoint kernel (stages/encoding.py) and,
for forward-facing scenes, through the NDC transform (cameras.ndc_rays). The corrections start
at zero. Every other camera (val, test, a video's, the window's) is rendered with the corrections
of the training cameras near it carried to it (rendering/carried_corrections.py): a real capture's
pose errors are shared by neighbouring photos.
"""
from __future__ import annotations

import torch
from torch import nn

from ..rendering.carried_corrections import CarriedCorrections, corrected_pose
from ..stages.cameras import training_rays

# Below this angle (radians) Rodrigues' coefficients are their Taylor series: their next terms, t^4/120
# and t^4/720, are under float64's resolution of 1 there (and their quotients would divide by zero at 0).
SMALL_ANGLE = 1e-4


def axis_angle_matrices(rotations: torch.Tensor) -> torch.Tensor:
    """(C, 3) axis-angle vectors -> (C, 3, 3) rotation matrices, by Rodrigues' formula
    R = I + a K + b K^2 with K the skew matrix of the vector (not of its unit axis), a = sin(t)/t,
    b = (1 - cos t)/t^2 = sin(t/2)^2 / (t^2/2), written so as not to cancel in float32 at the
    corrections' size (1e-3 rad): exact, and differentiable at zero, where a correction starts
    (below SMALL_ANGLE their Taylor series). torch.linalg.matrix_exp gives the same, and its
    backward is a 6x6 exponential per camera."""
    x, y, z = rotations.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)
    theta2 = (rotations * rotations).sum(-1)
    small = theta2 < SMALL_ANGLE ** 2
    theta = torch.where(small, torch.ones_like(theta2), theta2).sqrt()  # no 0/0 in either branch's gradient
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    half = torch.sin(0.5 * theta) / theta
    b = torch.where(small, 0.5 - theta2 / 24.0, 2.0 * half * half)
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return eye + a[:, None, None] * skew + b[:, None, None] * _times(skew, skew)


def _times(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``m @ v`` for (..., 3, 3) ``m`` and (..., 3, k) ``v`` as products and sums, not a matrix product: on CUDA
    backend.init lets float32 matrix products run in TF32 (10 bits of mantissa, for the MLP), which would turn
    every ray by up to 5e-4 rad, half a pose correction's size (1e-3 rad)."""
    return (m[..., :, :, None] * v[..., None, :, :]).sum(-2)


class PoseRefinement(nn.Module):
    """Corrections of the training cameras ``given`` (C, 4, 4), which the checkpoint keeps beside
    them: a render of the checkpoint carries them to its cameras without the data."""

    def __init__(self, given: torch.Tensor, device=None):
        super().__init__()
        self.corrections = nn.Parameter(torch.zeros(len(given), 6, device=device))  # rotation | translation
        self.register_buffer("given", given.detach().float().cpu().clone())

    def carried(self) -> CarriedCorrections:
        """The corrections, live, for a renderer's other cameras (``Renderer.carried``)."""
        return CarriedCorrections(self.given, self.corrections)

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        # A resume trains and carries from the cameras of its data, as its rays come from them; the saved
        # ones (none before they were kept) are for renders of the checkpoint alone.
        return super().load_state_dict({**state, "given": self.given}, strict, assign)

    def forward(self, origins: torch.Tensor, dirs: torch.Tensor,
                image_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays (N, 3) of the training cameras ``image_index`` (N,), corrected."""
        index = image_index.long()
        rotations = axis_angle_matrices(self.corrections[:, :3])[index]  # one exponential per camera, not per ray
        turned = _times(rotations, dirs.unsqueeze(-1)).squeeze(-1)
        return origins + self.corrections[index, 3:], turned

    @torch.no_grad()
    def summary(self) -> dict:
        """How far the corrections moved the cameras: RMS rotation (degrees) and translation."""
        rot = self.corrections[:, :3].norm(dim=1)
        shift = self.corrections[:, 3:].norm(dim=1)
        return {"rotation_deg_rms": float(torch.rad2deg(rot.pow(2).mean().sqrt())),
                "translation_rms": float(shift.pow(2).mean().sqrt())}


def refinement_for(cfg, scene, train, renderer, device) -> PoseRefinement | None:
    """The corrections of a run's training cameras ``train`` (a split) where it refines them, with
    ``renderer`` drawing every other camera from them; None where it does not."""
    if not cfg.refine_poses_for(scene):
        return None
    refinement = PoseRefinement(train.poses, device)
    renderer.carried = refinement.carried()
    return refinement


def align_camera(renderer, split, camera: int, background: torch.Tensor, steps: int, rays: int = 1024,
                 lr: float = 2e-3) -> tuple[torch.Tensor, dict]:
    """BARF's test-time alignment: camera ``camera`` of ``split`` moved to fit its own photo
    with the field frozen, ``steps`` Adam steps on ``rays`` random pixels each. A val camera
    from COLMAP is as inexact as the training ones; scoring a field from it charges the field
    with the pose error. It starts where the renderer would draw the camera (with a refined run's
    corrections carried to it). Returns (the final pose (4, 4), to render with ``carry=False``,
    and how far the alignment moved it: summary())."""
    device = renderer.device
    start = split.poses[camera] if renderer.carried is None else renderer.carried.pose(split.poses[camera])
    refine = PoseRefinement(start[None], device)
    optimizer = torch.optim.Adam(refine.parameters(), lr=lr)
    generator = torch.Generator(device=device).manual_seed(camera)  # the same view aligns the same way
    # this camera alone goes to the device: its rays and pixels are image 0 of these
    one = slice(camera, camera + 1)
    poses, intrinsics = start[None].to(device), split.intrinsics[one].to(device)
    rgba = split.rgba[one].to(device).contiguous()
    first = torch.zeros(rays, dtype=torch.int32, device=device)
    background = background.reshape(1, 3).to(device)
    frozen = [p for p in renderer.field.parameters() if p.requires_grad]
    for p in frozen:  # gradients for the camera only
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            pixels = torch.randint(0, split.width * split.height, (rays,), generator=generator, device=device,
                                   dtype=torch.int32)
            origins, dirs, target, _ = training_rays(poses, intrinsics, rgba, first, pixels, background)
            origins, dirs = refine(origins, dirs, first)
            loss = torch.nn.functional.mse_loss(renderer.render_rays(origins, dirs, background).rgb, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return corrected_pose(start, refine.corrections.detach()[0].cpu()), refine.summary()
