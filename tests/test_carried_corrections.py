"""A refined run's pose corrections carried to the cameras it did not train on
(rendering/carried_corrections.py): a training camera draws with its own correction, another
camera with its neighbours', in their own frames; renders, checkpoints and eval use them."""
import json
import math

import numpy as np
import pytest
import torch

from taichi_nerf.api import evaluate
from taichi_nerf.rendering.carried_corrections import CarriedCorrections, corrected_pose
from taichi_nerf.runs import checkpoint
from taichi_nerf.training.pose_refinement import PoseRefinement, axis_angle_matrices
from taichi_nerf.training.trainer import Trainer

from .conftest import ARCH, tiny_config


def ring(azimuths_deg, radius: float = 4.0, height: float = 1.0) -> torch.Tensor:
    """(N, 4, 4) OpenGL camera-to-world poses on a ring, each looking at the origin, in float64
    (stages.cameras.look_at rounds to float32, whose frames are orthonormal to 1e-8, not these tests' 1e-9)."""
    poses = []
    for a in np.radians(azimuths_deg):
        centre = np.array([radius * math.cos(a), radius * math.sin(a), height])
        back = centre / np.linalg.norm(centre)  # the camera looks down -z
        right = np.cross([0.0, 0.0, 1.0], back)
        right /= np.linalg.norm(right)
        pose = np.eye(4)
        pose[:3, :3] = np.stack([right, np.cross(back, right), back], axis=1)
        pose[:3, 3] = centre
        poses.append(pose)
    return torch.tensor(np.array(poses), dtype=torch.float64)


def in_world(poses: torch.Tensor, turn_local, move_local) -> torch.Tensor:
    """(N, 6) world-space corrections that turn and move each camera by the same amounts in its own frame."""
    rot = poses[:, :3, :3]
    return torch.cat([rot @ torch.as_tensor(turn_local, dtype=rot.dtype), rot @ torch.as_tensor(move_local,
                                                                                              dtype=rot.dtype)], 1)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> bool:
    return float((a.double() - b.double()).abs().max()) < tol


TURN, MOVE = [0.004, -0.003, 0.02], [0.01, 0.02, -0.03]  # radians (a 1.1 deg roll) and world units


def test_a_training_camera_keeps_its_own_correction():
    given = ring(range(0, 360, 30))
    corrections = torch.randn(len(given), 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.01
    carried = CarriedCorrections(given, corrections)
    for i in range(len(given)):
        assert close(carried.pose(given[i]), corrected_pose(given[i], corrections[i]))
    assert close(CarriedCorrections(given, torch.zeros(len(given), 6)).pose(ring([45.0])[0]), ring([45.0])[0])


def test_cameras_that_share_a_place_keep_their_own_corrections_and_the_spacing():
    """A tripod's turns (one centre, several orientations) and a repeated frame (two cameras a hair
    apart): each training camera still gets its own correction, and the kernel's width is the ring's
    spacing, not the hair's."""
    from taichi_nerf.rendering.carried_corrections import KERNEL_WIDTH

    ring_poses = ring(range(0, 360, 30))
    tripod = ring_poses[:1].repeat(3, 1, 1)
    for k, turn in enumerate((0.0, 0.3, -0.3)):  # turned about the vertical, in place
        tripod[k, :3, :3] = axis_angle_matrices(torch.tensor([[0.0, 0.0, turn]], dtype=torch.float64))[0] \
            @ tripod[k, :3, :3]
    repeated = ring_poses[1:2].clone()
    repeated[0, :3, 3] += 1e-9
    given = torch.cat([tripod, ring_poses[1:], repeated])
    corrections = torch.randn(len(given), 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.01
    carried = CarriedCorrections(given, corrections)
    for i in range(len(given)):
        assert close(carried.pose(given[i]), corrected_pose(given[i], corrections[i]), 1e-7), i
    spacing = float((ring_poses[0, :3, 3] - ring_poses[1, :3, 3]).norm())
    assert carried.width == pytest.approx(KERNEL_WIDTH * spacing)


def test_an_error_that_every_camera_shares_in_its_own_frame_reaches_a_new_camera_whole():
    """A roll and a move that every training camera has in its own frame (a real capture's
    shared error) is carried to a camera between them, and to one far from all, exactly."""
    given = ring(range(0, 360, 30))
    carried = CarriedCorrections(given, in_world(given, TURN, MOVE))
    for new in (ring([45.0])[0], ring([100.0], radius=9.0, height=-3.0)[0]):
        want = corrected_pose(new, in_world(new[None], TURN, MOVE)[0])
        assert close(carried.pose(new), want, 1e-7)
        assert not close(carried.pose(new), new, 1e-4)  # and it is a real correction


def test_a_new_camera_takes_most_from_its_nearest_training_cameras():
    """Only camera 0 corrected: a camera midway between 0 and 1 gets a share of its correction,
    less than its own; one beside camera 6, across the ring, next to none."""
    given = ring(range(0, 360, 30))
    corrections = torch.zeros(len(given), 6, dtype=torch.float64)
    corrections[0] = in_world(given[:1], TURN, MOVE)[0]
    carried = CarriedCorrections(given, corrections)

    def moved(pose):
        return float((carried.pose(pose)[:3, 3] - pose[:3, 3]).norm())

    full = float(corrections[0, 3:].norm())
    assert 0.2 * full < moved(ring([15.0])[0]) < 0.6 * full  # midway: about half (the two nearest weigh alike)
    assert moved(ring([5.0])[0]) > moved(ring([15.0])[0])
    assert moved(ring([175.0])[0]) < 0.02 * full  # 0.9%: a Gaussian of 1.5 spacings reaches far on 12 cameras


def test_a_path_through_a_training_camera_has_no_jump():
    """A video passing through a training camera goes from its neighbours' corrections to the
    camera's own and back smoothly: no frame's correction jumps."""
    given = ring(range(0, 360, 30))
    corrections = torch.randn(len(given), 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.01
    carried = CarriedCorrections(given, corrections)
    path = ring(np.linspace(-10.0, 10.0, 401))  # 0.05 deg a frame, through camera 0 at frame 200
    centres = torch.stack([carried.pose(p)[:3, 3] - p[:3, 3] for p in path])
    assert close(centres[200], corrections[0, 3:], 1e-9)
    steps = (centres[1:] - centres[:-1]).norm(dim=1)
    assert float(steps.max()) < 0.05 * float((centres[200] - centres[0]).norm())


def test_a_refined_run_draws_its_val_cameras_with_the_corrections_carried(tiny_scene, tmp_path, capsys):
    """A run with --refine-poses whose corrections are set by hand: its val view, rendered by the
    trainer, by its checkpoint and by eval, is the view from the val camera carrying them; eval
    --as-given scores the camera as written. A checkpoint saved before runs kept their training
    cameras loads and renders as given, and resumes."""
    from taichi_nerf.cli import main as cli_main

    out = tmp_path / "run"
    trainer = Trainer(tiny_config(tiny_scene, out, steps=30, refine_poses=True, eval_every=0, preview_every=0,
                                  checkpoint_every=0))
    trainer.run()
    given = trainer.train.poses.double().cpu()
    with torch.no_grad():
        trainer.pose_refinement.corrections.copy_(in_world(given, [0.0, 0.0, math.radians(8.0)], [0.0, 0.0, 0.0]))
    val, bg = trainer.val, trainer.background
    rolled = val.poses.clone()
    rolled[0] = corrected_pose(val.poses[0], in_world(val.poses[:1].double(), [0.0, 0.0, math.radians(8.0)],
                                                      [0.0, 0.0, 0.0])[0])
    want = trainer.renderer.render_image(rolled, val.intrinsics, 0, val.width, val.height, bg, carry=False)["rgb"]
    as_given = trainer.renderer.render_image(val.poses, val.intrinsics, 0, val.width, val.height, bg,
                                             carry=False)["rgb"]
    assert float((want - as_given).abs().max()) > 0.05  # the roll shows
    assert close(trainer.render_view(val, 0)["rgb"], want, 1e-5)
    trainer.save_checkpoint()

    renderer, _, state = checkpoint.load(out, arch=ARCH)
    assert torch.equal(state["pose_refinement"]["given"], given.float())
    assert close(renderer.render_image(val.poses, val.intrinsics, 0, val.width, val.height, bg)["rgb"], want, 1e-5)
    carried, written = evaluate(out, "val", limit=1, progress=False), evaluate(out, "val", limit=1, progress=False,
                                                                              as_given=True)
    assert carried["cameras"].startswith("with the training cameras' corrections") and written["cameras"] == "as given"
    truth = trainer.target_rgb(val, 0)
    for result, image in ((carried, want), (written, as_given)):
        assert result["psnr"] == pytest.approx(-10 * math.log10(float(((image.cpu().clamp(0, 1) - truth) ** 2)
                                                                       .mean())), abs=1e-3)
    assert cli_main(["eval", "--ckpt", str(out), "--split", "val", "--limit", "1", "--as-given", "--no-progress",
                     "--arch", ARCH]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] == pytest.approx(written["psnr"])

    # a checkpoint from before: no training cameras beside the corrections
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    del state["pose_refinement"]["given"]
    torch.save(state, out / "checkpoint.pt")
    renderer, _, _ = checkpoint.load(out, arch=ARCH)
    assert renderer.carried is None
    assert close(renderer.render_image(val.poses, val.intrinsics, 0, val.width, val.height, bg)["rgb"], as_given, 1e-5)
    resumed = Trainer(tiny_config(tiny_scene, out, steps=31, refine_poses=True, eval_every=0, preview_every=0,
                                  checkpoint_every=0), resume=True)
    assert torch.equal(resumed.pose_refinement.corrections.detach().cpu(),
                       trainer.pose_refinement.corrections.detach().cpu())
    assert torch.equal(resumed.pose_refinement.given, given.float())
    assert close(resumed.render_view(val, 0)["rgb"], want, 1e-5)


def test_axis_angle_of_the_carried_turn_matches_the_training_rays():
    """The carried pose turns a camera as PoseRefinement turns its rays (Rodrigues' formula,
    pose_refinement.axis_angle_matrices)."""
    given = ring([0.0, 40.0])
    corrections = torch.tensor([[0.01, -0.02, 0.015, 0.0, 0.0, 0.0]] * 2, dtype=torch.float64)
    carried = CarriedCorrections(given, corrections).pose(given[0])
    assert close(carried[:3, :3], axis_angle_matrices(corrections[:1, :3])[0] @ given[0, :3, :3], 1e-9)


def test_a_corrected_pose_has_the_rays_that_pose_refinement_gives_its_camera():
    """corrected_pose (float64 numpy: renders, alignment, scripts/capture_truth.py) and PoseRefinement's
    rays (float32 torch, trained) are one correction: a camera's rays through both agree."""
    pose = ring([70.0])[0]
    correction = torch.tensor([0.02, -0.01, 0.03, 0.05, -0.02, 0.04], dtype=torch.float64)
    refinement = PoseRefinement(pose[None].float(), "cpu")
    dirs = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    world_dirs = dirs @ pose[:3, :3].float().T
    origins = pose[:3, 3].float().expand(64, 3)
    with torch.no_grad():
        refinement.corrections.copy_(correction[None])
        moved, turned = refinement(origins, world_dirs, torch.zeros(64, dtype=torch.int32))
    want = corrected_pose(pose, correction)
    assert close(moved, want[:3, 3].expand(64, 3), 1e-6)
    assert close(turned, dirs.double() @ want[:3, :3].T, 1e-6)
    assert not close(turned, world_dirs, 1e-3)  # (the correction turned them)
