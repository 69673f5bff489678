"""What real captures need that renders don't (issue 24): per-image appearance codes learn
each photo's exposure, and pose refinement undoes a known error in a camera's pose."""
import math

import pytest
import torch

from taichi_nerf.cli import main as cli_main
from taichi_nerf.rendering.backgrounds import over_background
from taichi_nerf.runs import checkpoint
from taichi_nerf.runs.datasets import load_dataset
from taichi_nerf.stages import cameras
from taichi_nerf.training.pose_refinement import PoseRefinement, axis_angle_matrices
from taichi_nerf.training.trainer import Trainer

from .conftest import ARCH, refused, rel_err, tiny_config


def rotation_angle_deg(matrix: torch.Tensor) -> float:
    cos = ((torch.diagonal(matrix).sum() - 1) / 2).clamp(-1, 1)
    return math.degrees(float(torch.acos(cos)))


def test_axis_angle_matrices_are_rotations_of_the_given_angle():
    vectors = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, math.pi / 2], [0.01, -0.02, 0.03]])
    mats = axis_angle_matrices(vectors)
    assert torch.allclose(mats[0], torch.eye(3))
    assert torch.allclose(mats[1] @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    for m, v in zip(mats, vectors):
        assert torch.allclose(m @ m.T, torch.eye(3), atol=1e-6)
        assert abs(rotation_angle_deg(m.double()) - math.degrees(float(v.norm()))) < 1e-2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_axis_angle_matrices_match_the_matrix_exponential_and_its_gradient(dtype):
    """Rodrigues' formula against torch's matrix exponential in float64, value and gradient, at the
    sizes a correction passes through: zero (where it starts), either side of the series' threshold,
    the corrections' own 1e-3 rad (where 1 - cos t cancels in float32) and large turns."""
    generator = torch.Generator().manual_seed(4)
    axes = torch.nn.functional.normalize(torch.randn(8, 3, generator=generator, dtype=torch.float64), dim=1)
    sizes = torch.tensor([0.0, 1e-6, 0.99e-4, 1.01e-4, 1e-3, 3e-2, 1.0, 3.0], dtype=torch.float64)
    vectors = (axes * sizes[:, None]).requires_grad_(True)
    weights = torch.randn(8, 3, 3, generator=generator, dtype=torch.float64)
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    reference = torch.linalg.matrix_exp(torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3))
    (reference_grad,) = torch.autograd.grad((reference * weights).sum(), vectors)
    ours_in = vectors.detach().to(dtype).requires_grad_(True)
    ours = axis_angle_matrices(ours_in)
    (grad,) = torch.autograd.grad((ours * weights.to(dtype)).sum(), ours_in)
    tolerance = 1e-12 if dtype == torch.float64 else 3e-6
    assert torch.allclose(ours.double(), reference.detach(), atol=tolerance, rtol=0)
    assert torch.allclose(grad.double(), reference_grad, atol=tolerance * 10, rtol=0), (grad.double() - reference_grad)
    assert torch.isfinite(grad).all()
    # The second-order term b K^2 at the corrections' size, where 1 - cos t cancels in float32: the
    # symmetric part of R - I off the diagonal is b v_i v_j alone (a K is antisymmetric).
    off = ~torch.eye(3, dtype=torch.bool)
    for k in (2, 3, 4):  # 0.99e-4, 1.01e-4 (either side of the series' threshold) and 1e-3 rad
        ours_sym, ref_sym = ((m + m.T) / 2 for m in (ours[k].double().detach(), reference[k].detach()))
        # 2% of the largest: the naive float32 formula is 4.6% off at 1e-3 rad and 100% at 1.01e-4
        scale = float(ref_sym[off].abs().max())
        assert torch.allclose(ours_sym[off], ref_sym[off], rtol=0, atol=0.02 * scale), (k, ours_sym, ref_sym)


def test_pose_corrections_on_the_device_turn_rays_in_full_float32(device):
    """On the test device (CUDA under TAICHI_NERF_TEST_ARCH=cuda), where backend.init allows TF32 matrix products
    for the MLP: a correction's rotation of the rays, and its gradient, in plain float32. Through a batched
    matrix product they could be TF32 (10 bits of mantissa: a ray turned by 5e-4 rad with no correction at
    all, half a correction's size, 1e-3 rad). Against float64: rays of a camera without a correction come
    back exactly, the others to float32's precision; the rotations themselves up to 3 rad as on the CPU."""
    generator = torch.Generator().manual_seed(7)
    cameras_ = 4
    rotation = torch.randn(cameras_, 3, generator=generator, dtype=torch.float64) * 1e-3
    rotation[0] = 0.0  # a camera not corrected (yet)
    refine = PoseRefinement(torch.eye(4).repeat(cameras_, 1, 1), device)
    with torch.no_grad():
        refine.corrections[:, :3] = rotation.float().to(device)
    dirs = torch.nn.functional.normalize(torch.randn(256, 3, generator=generator, dtype=torch.float64), dim=1)
    image = torch.randint(0, cameras_, (256,), generator=generator)
    weights = torch.randn(256, 3, generator=generator, dtype=torch.float64)
    _, turned = refine(torch.zeros(256, 3, device=device), dirs.float().to(device), image.int().to(device))
    (turned.double().cpu() * weights).sum().backward()
    vectors = rotation.clone().requires_grad_(True)
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    matrices = torch.linalg.matrix_exp(torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3))
    reference = (matrices[image] @ dirs.float().double()[:, :, None])[:, :, 0]
    (reference_grad,) = torch.autograd.grad((reference * weights).sum(), vectors)
    uncorrected = image == 0
    assert torch.equal(turned.detach()[uncorrected.to(device)].cpu(), dirs.float()[uncorrected])
    assert float((turned.detach().double().cpu() - reference.detach()).abs().max()) < 1e-6
    grad = refine.corrections.grad[:, :3].double().cpu()
    assert rel_err(grad, reference_grad) < 1e-5, (grad, reference_grad)
    sizes = torch.tensor([1e-3, 3e-2, 1.0, 3.0], dtype=torch.float64)
    axes = torch.nn.functional.normalize(torch.randn(4, 3, generator=generator, dtype=torch.float64), dim=1)
    big = axes * sizes[:, None]
    x, y, z = big.unbind(-1)
    zero = torch.zeros_like(x)
    exact = torch.linalg.matrix_exp(torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3))
    assert torch.allclose(axis_angle_matrices(big.float().to(device)).double().cpu(), exact, atol=3e-6, rtol=0)


def test_a_run_that_refines_its_poses_says_how_to_score_it(tiny_scene, tmp_path, capsys):
    """The val cameras are scored with the training cameras' corrections carried to them: the end
    of a run with --refine-poses says so and gives the evals that score them as written and
    aligned; one without it says nothing of the kind."""
    from .conftest import TINY

    for refine in (["--refine-poses"], []):
        out = tmp_path / f"run{len(refine)}"
        assert cli_main(["train", "--data", str(tiny_scene), "--out", str(out), "--steps", "3", "--video-frames", "0",
                         *refine, *TINY]) == 0
        said = " ".join(capsys.readouterr().out.split())
        assert ("with the corrections of the training cameras near it carried to it" in said) == bool(refine), said
        assert (f"taichi-nerf eval --ckpt {out} --as-given" in said) == bool(refine), said
        assert (f"taichi-nerf eval --ckpt {out} --align-cameras 100" in said) == bool(refine), said


def test_pose_refinement_undoes_a_known_camera_error(trained_builtin, device):
    """A trained field, one training camera turned by 3 degrees and moved by 3% of its
    distance: optimising that camera's correction alone against its photo brings it back."""
    scene_dir, run = trained_builtin
    renderer, _, _ = checkpoint.load(run, arch=ARCH)
    for p in renderer.field.parameters():
        p.requires_grad_(False)
    train = load_dataset(str(scene_dir)).split("train")
    cam = 0
    pose = train.poses[cam].clone()
    axis = torch.tensor([0.3, -0.8, 0.5])
    error = axis / axis.norm() * math.radians(3.0)
    shift = torch.tensor([0.3, -0.9, 0.6])
    shift = shift / shift.norm() * 0.03 * float(pose[:3, 3].norm())  # the object is at the origin
    wrong = pose.clone()
    wrong[:3, :3] = axis_angle_matrices(error[None])[0] @ pose[:3, :3]
    wrong[:3, 3] = pose[:3, 3] + shift
    w, h = train.width, train.height
    intrinsics = train.intrinsics[cam:cam + 1].to(device).contiguous()
    o, d = cameras.image_rays(wrong[None].to(device).contiguous(), intrinsics, 0, w, 0, w * h)
    background = torch.ones(1, 3, device=device)
    target = over_background(train.rgba[cam], background.cpu()).reshape(-1, 3).to(device)
    image_index = torch.zeros(w * h, dtype=torch.int32, device=device)

    refine = PoseRefinement(wrong[None], device)
    opt = torch.optim.Adam(refine.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        ro, rd = refine(o, d, image_index)
        out = renderer.render_rays(ro, rd, background)
        torch.nn.functional.mse_loss(out.rgb, target).backward()
        opt.step()
    # What a pose error costs is where the rays meet the object, not the rotation alone (a
    # small turn and a sideways shift of the camera look alike): compare the rays' points at
    # the object's distance with the true camera's.
    true_o, true_d = cameras.image_rays(pose[None].to(device).contiguous(), intrinsics, 0, w, 0, w * h)
    reach = float(pose[:3, 3].norm())  # the object is at the origin

    def miss(rays_o, rays_d):
        return float((rays_o + reach * rays_d - true_o - reach * true_d).norm(dim=1).mean())

    with torch.no_grad():
        fixed_o, fixed_d = refine(o, d, image_index)
    before, after = miss(o, d), miss(fixed_o, fixed_d)
    assert after < 0.3 * before, (before, after)


def test_render_with_a_chosen_appearance_code(tiny_scene, tmp_path, capsys, trained):
    from taichi_nerf.api import evaluate

    run = tmp_path / "run"
    Trainer(tiny_config(tiny_scene, run, steps=10, appearance_dim=4, eval_every=0, preview_every=0,
                        checkpoint_every=0, width=16, batch_rays=64, samples_per_ray=8, sampler="stratified")).run()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["model"]["appearance.weight"][1] += 6.0  # image 1 looks unlike the others
    torch.save(state, run / "checkpoint.pt")
    field = checkpoint.load(run)[0].field
    encoded = torch.randn(256, field.pos_dim + field.dir_dim, generator=torch.Generator().manual_seed(0))
    colours = {}
    for choice in (None, 0, 1):
        field = checkpoint.load(run, appearance_image=choice)[0].field
        colours[choice] = field(encoded.to(next(field.parameters()).device))[1].detach().cpu()
    def gap(a, b):
        return float((colours[a] - colours[b]).abs().mean())

    assert gap(1, 0) > 0.05
    assert gap(None, 0) < 0.5 * gap(None, 1)  # the mean code: the look of the many, not of image 1
    assert evaluate(run, "val", progress=False, appearance_image=1)["count"] == 2
    assert cli_main(["render", "--ckpt", str(run), "--split", "val", "--appearance-image", "1", "--out",
                     str(tmp_path / "views"), "--no-progress"]) == 0
    count = len(state["model"]["appearance.weight"])
    refused(capsys, ["render", "--ckpt", run, "--split", "val", "--appearance-image", count, "--out",
                     tmp_path / "x"], f"0 to {count - 1}, got {count}")
    refused(capsys, ["render", "--ckpt", trained, "--appearance-image", 0, "--out", tmp_path / "v.gif"],
            "without appearance codes")


@pytest.mark.parametrize("choice", [2.5, True, "3", -1])
def test_an_appearance_image_that_is_no_index_is_refused_before_loading(tmp_path, choice):
    # 2.5 rendered image 2's look and True image 1's, silently; "3" was a TypeError from a comparison
    from taichi_nerf.api import evaluate, render_path

    with pytest.raises(ValueError, match=rf"^appearance_image must be a whole number of at least 0, got {choice!r}$"):
        checkpoint.load(tmp_path / "no-run", appearance_image=choice)  # refused before the missing run is noticed
    with pytest.raises(ValueError, match="^appearance_image must be"):
        evaluate(tmp_path / "no-run", appearance_image=choice, progress=False)
    with pytest.raises(ValueError, match="^appearance_image must be"):
        render_path(tmp_path / "no-run", tmp_path / "v.gif", appearance_image=choice, progress=False)


@pytest.mark.parametrize("split", [[], ["--split", "val"]])
def test_render_names_its_flag_for_a_negative_appearance_image(tmp_path, capsys, split):
    argv = ["render", "--ckpt", tmp_path / "no-run", *split, "--appearance-image", -1, "--out", tmp_path / "x"]
    refused(capsys, argv, "--appearance-image must not be negative, got -1")


def test_a_checkpoint_keeps_the_choices_its_defaults_made(run):
    """A run saved before a scene kind's default changed (appearance_dim and refine_poses not
    set) reads back as what it was trained with, so it still loads and resumes."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["config"]["appearance_dim"] is None and state.get("pose_refinement") is None
    cfg = checkpoint.config_of(state, run)
    assert cfg.appearance_dim == 0 and cfg.refine_poses is False
    state["model"]["appearance.weight"] = torch.zeros(5, 3)
    state["pose_refinement"] = {"corrections": torch.zeros(5, 6)}
    cfg = checkpoint.config_of(state, run)
    assert cfg.appearance_dim == 3 and cfg.refine_poses is True


def test_a_run_writes_its_marching_steps_and_older_runs_keep_theirs(tiny_scene, tmp_path):
    """The marching steps the scene kind chose are written into the run's config, so a render or
    a resume marches as the training did after the default changes; a run saved before they were
    written out (march_steps null) marched an object's box in 192 steps, and reads back so."""
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.config_checks import MAX_SAMPLES
    from taichi_nerf.kind_defaults import MARCH_STEPS_BEFORE_WRITTEN, MARCH_STEPS_DEFAULTS, RENDER_MARCH_FACTOR

    out = tmp_path / "run"
    Trainer(tiny_config(tiny_scene, out, steps=2, march_steps=None, eval_every=0, preview_every=0,
                        checkpoint_every=0)).run()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"]["march_steps"] == MARCH_STEPS_DEFAULTS["box"] != MARCH_STEPS_BEFORE_WRITTEN["box"] == 192
    assert state["config"]["render_march_steps"] == RENDER_MARCH_FACTOR["box"] * MARCH_STEPS_DEFAULTS["box"]
    grid = checkpoint.load(out)[0].grid
    assert grid.max_samples == MARCH_STEPS_DEFAULTS["box"] + 1
    assert grid.render_step_scale == 1 / RENDER_MARCH_FACTOR["box"]
    state["config"]["march_steps"] = state["config"]["render_march_steps"] = None  # as the version before wrote it
    torch.save(state, out / "checkpoint.pt")
    saved = checkpoint.config_of(state, out)
    assert (saved.march_steps, saved.render_march_steps) == (192, 192)
    grid = checkpoint.load(out)[0].grid
    assert grid.max_samples == 193 and grid.render_step_scale == 1.0
    resumed = Trainer(tiny_config(tiny_scene, out, steps=3, march_steps=None, eval_every=0, preview_every=0,
                                  checkpoint_every=0), resume=True)
    assert resumed.cfg.march_steps == 192 and resumed.renderer.grid.max_samples == 193
    assert resumed.cfg.render_march_steps == 192 and resumed.renderer.grid.render_step_scale == 1.0
    assert resumed.run().step == 3
    # twice a very fine training march stays within what a saved config is checked against
    fine = TrainConfig(march_steps=MAX_SAMPLES - 10).with_kind_defaults_for(resumed.scene).validate()
    assert fine.render_march_steps == MAX_SAMPLES


@pytest.mark.slow
def test_appearance_codes_learn_each_photos_exposure(tiny_scene, tmp_path):
    """Every other training photo a stop darker: the codes of the dark photos part from the
    bright ones', rendering with a photo's own code reproduces its brightness, and the mean
    code sits between the two."""
    cfg = tiny_config(tiny_scene, tmp_path / "run", appearance_dim=4, steps=600, eval_every=0, preview_every=0,
                      checkpoint_every=0, batch_rays=1024, width=64, depth=3, lr=1e-2, lr_final=2e-3)
    trainer = Trainer(cfg)
    rgba = trainer.train.rgba
    dark = torch.arange(trainer.train.count) % 2 == 1
    rgba[dark, ..., :3] = (rgba[dark, ..., :3].float() * 0.5).round().to(torch.uint8)  # one stop down
    trainer.run()
    codes = trainer.field.appearance.weight.detach().cpu()
    centre_dark, centre_bright = codes[dark].mean(0), codes[~dark].mean(0)
    spread = max(float((codes[dark] - centre_dark).norm(dim=1).max()),
                 float((codes[~dark] - centre_bright).norm(dim=1).max()))
    assert float((centre_dark - centre_bright).norm()) > spread

    # One dark photo rendered from its own camera with each look: its own code makes it darker
    # than a bright photo's code does (its photo is half as bright; 600 steps get most of the
    # way), and the mean code lands in between.
    trainer.field.eval()
    dark_view, bright_photo = 1, 0
    opaque = rgba[dark_view, ..., 3].cpu() > 127

    def brightness(code_of):
        trainer.field.appearance_image = code_of
        return float(trainer.render_view(trainer.train, dark_view)["rgb"].cpu()[opaque].mean())

    own, bright, mean_code = brightness(dark_view), brightness(bright_photo), brightness(None)
    trainer.field.appearance_image = None
    assert 0.4 < own / bright < 0.85  # without codes all three are the same picture (ratio 1); measured 0.71
    assert own + 0.2 * (bright - own) < mean_code < bright - 0.2 * (bright - own)


def test_eval_aligns_a_val_camera_to_its_photo(trained_builtin, tmp_path, capsys):
    """``eval --align-cameras``: a val camera turned by 3 degrees scores badly as written; aligned
    to its photo with the field frozen it scores near the true camera, and says how far it moved.
    The scores from the cameras as written stay what they were."""
    import json
    import shutil

    from taichi_nerf.api import ALIGN_WARN_DEG, evaluate

    scene_dir, run = trained_builtin
    honest = evaluate(run, "val", limit=1, progress=False, align_steps=60)
    wrong = tmp_path / "scene"
    shutil.copytree(scene_dir, wrong)
    meta = json.loads((wrong / "transforms_val.json").read_text())
    pose = torch.tensor(meta["frames"][0]["transform_matrix"], dtype=torch.float64)
    axis = torch.tensor([0.3, -0.8, 0.5], dtype=torch.float64)
    pose[:3, :3] = axis_angle_matrices(axis[None] / axis.norm() * math.radians(3.0))[0] @ pose[:3, :3]
    meta["frames"][0]["transform_matrix"] = pose.tolist()
    (wrong / "transforms_val.json").write_text(json.dumps(meta))
    code = cli_main(["eval", "--ckpt", str(run), "--split", "val", "--data", str(wrong), "--limit", "1",
                     "--align-cameras", "60", "--no-progress", "--arch", ARCH])
    assert code == 0
    said = capsys.readouterr()
    result = json.loads(said.out)
    image = result["images"][0]
    assert said.err.startswith("warning: the alignment turned the val cameras ") and "deg on average" in said.err
    assert "warnings" in result and "warnings" not in honest  # an exact camera turns too little to mention
    assert image["psnr"] < honest["psnr"] - 3.0  # the turn costs the camera as written
    assert image["aligned_psnr"] > image["psnr"] + 3.0 and image["aligned_psnr"] > honest["psnr"] - 1.5, image
    assert ALIGN_WARN_DEG < image["alignment"]["rotation_deg_rms"] < 4.5, image["alignment"]  # turned back ~3 deg
    assert honest["aligned_psnr"] > honest["psnr"] - 0.5  # an exact camera stays put
    # the object's pixels alone, as eval scores photos with transparency, from the aligned camera too
    assert image["aligned_object_psnr"] > image["object_psnr"] + 2.0, image
    assert result["aligned_object_psnr"] == pytest.approx(image["aligned_object_psnr"])
    refused(capsys, ["eval", "--ckpt", run, "--align-cameras", -1],
            "--align-cameras must not be negative, got -1")
