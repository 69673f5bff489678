"""Unbounded scenes: contraction, marching through the contracted shell, the encoder's
contracted positions, and the automatic choice of scene kind and background."""
import dataclasses
import json
import math

import pytest
import torch

from taichi_nerf.stages import reference
from taichi_nerf.stages.space import FAR_SCALE, contract_points, contracted_box

BOX = torch.tensor([-1.0, -2.0, -0.5, 3.0, 2.0, 1.5])  # off-centre, non-cubic: centre (1, 0, 0.5), half (2, 2, 1)


def test_contraction_matches_the_float64_reference_and_keeps_the_box(device):
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.randn(2000, 3, generator=g) * 3, torch.randn(200, 3, generator=g) * 1e4])
    got = contract_points(pts.to(device), BOX.to(device)).cpu().double()
    want = reference.contract(pts, BOX)
    assert (got - want).abs().max() < 1e-4 * want.abs().max()
    centre, half = 0.5 * (BOX[:3] + BOX[3:]), 0.5 * (BOX[3:] - BOX[:3])
    q = ((pts - centre) / half).abs().amax(1)
    inside = q <= 1
    assert inside.sum() > 100 and torch.allclose(got[inside].float(), pts[inside], atol=1e-5)  # identity inside
    outer = contracted_box(BOX).double()
    assert bool((got >= outer[:3] - 1e-4).all() and (got <= outer[3:] + 1e-4).all())  # all within twice the box
    far = ((got - centre.double()) / half.double()).abs().amax(1)[q > 1e3]
    assert far.min() > 1.99  # infinity lands on the cube's surface


def test_contraction_is_continuous_and_monotone_along_a_ray():
    o = torch.tensor([[1.0, 0.0, 0.5]])
    d = torch.nn.functional.normalize(torch.tensor([[0.3, 0.8, 0.2]]), dim=1)
    t = torch.linspace(0, 500, 20001)[:, None]
    c = reference.contract(o + t * d, BOX)
    dist = (c - c[0]).norm(dim=1)
    steps = dist[1:] - dist[:-1]
    assert bool((steps >= -1e-12).all()) and float(steps.max()) < 0.05


def unbounded_grid(device, steps=64):
    from taichi_nerf.stages.occupancy import OccupancyGrid

    return OccupancyGrid(BOX, resolution=32, steps_across=steps, device=device, unbounded=True)


def test_unbounded_marching_reaches_far_with_steps_even_in_contracted_space(device):
    grid = unbounded_grid(device)
    assert torch.allclose(grid.aabb.cpu(), contracted_box(BOX))
    centre, half = 0.5 * (BOX[:3] + BOX[3:]), 0.5 * (BOX[3:] - BOX[:3])
    far = float(FAR_SCALE * half.norm())
    o = torch.tensor([[1.0, 0.0, 0.5], [-6.0, 0.5, 0.7]], device=device)  # inside, and outside looking in
    d = torch.nn.functional.normalize(torch.tensor([[0.3, 0.8, 0.2], [1.0, 0.05, 0.0]], device=device), dim=1)
    s = grid.march(o, d, 0.01, far)
    assert s.counts.tolist() == [int(c) for c in s.counts]
    assert bool((s.counts > 10).all()) and int(s.counts.max()) <= grid.max_samples
    for r in range(2):
        a, n = int(s.offsets[r]), int(s.counts[r])
        t = s.t[a:a + n].cpu()
        assert bool((t[1:] > t[:-1]).all())
        pts = o[r].cpu() + t[:, None] * d[r].cpu()
        c = reference.contract(pts, BOX)
        gaps = (c[1:] - c[:-1]).norm(dim=1)
        # Even steps in contracted space: no gap far above the inner step, whatever the distance.
        assert float(gaps.max()) < 3.0 * grid.step
        last = ((c[-1] - centre.double()) / half.double()).abs().max()
        assert float(last) > 1.95  # the shell is marched out to near infinity (the cube's surface)


def test_unbounded_encoding_contracts_positions(device):
    from taichi_nerf.stages.encoding import HarmonicSpec, encode_points, encode_samples

    pos = HarmonicSpec(3, True)
    o = torch.tensor([[1.0, 0.0, 0.5], [-6.0, 0.5, 0.7]], device=device)
    d = torch.nn.functional.normalize(torch.tensor([[0.3, 0.8, 0.2], [1.0, 0.05, 0.0]], device=device), dim=1)
    t = torch.tensor([0.5, 7.0, 300.0, 2.0, 40.0], device=device)
    ray = torch.tensor([0, 0, 0, 1, 1], dtype=torch.int32, device=device)
    got = encode_samples(o, d, t, ray, pos, None, contract_box=BOX.to(device))
    pts = (o[ray.long()] + t[:, None] * d[ray.long()]).cpu()
    want = encode_points(reference.contract(pts, BOX).float().to(device), pos)
    assert torch.allclose(got, want, atol=1e-4)
    plain = encode_samples(o, d, t, ray, pos, None)
    assert not torch.allclose(plain[1:3], got[1:3], atol=1e-2)  # outside the box contraction changes the code


@pytest.fixture(scope="module")
def testsets(tmp_path_factory, taichi_backend):
    from taichi_nerf.scenes.testsets import write_testset

    root = tmp_path_factory.mktemp("kinds")
    return {name: write_testset(name, root / name, size=48, views=12) for name in ("ngp-360-env", "npz-black",
                                                                                   "llff-backdrop")}


def test_scene_kind_and_background_are_chosen_from_the_data(testsets):
    from taichi_nerf.data.loaders import read_dataset
    from taichi_nerf.rendering.backgrounds import resolve_background

    env = read_dataset(testsets["ngp-360-env"])
    assert env.unbounded and env.background.name == "scene" and env.far > 50 * (env.aabb[3] - env.aabb[0]) / 2
    assert any("--no-unbounded" in w for w in env.warnings)
    # the bounds' first choice is noted before the scene kind is known: the unbounded note says it replaced them
    # (data info read "near 0.591 / far 15.4 as stated in the file", then "near 0.00703 / far 142")
    bounded = read_dataset(testsets["ngp-360-env"], unbounded=False)
    said = next(n for n in env.notes if n.startswith("unbounded scene:"))
    assert said.endswith(f"near {env.near:.3g} / far {env.far:.3g} in place of {bounded.near:.3g} / {bounded.far:.3g}")
    chosen = resolve_background("auto", env.background)
    assert chosen.random and chosen.warning and "--background" in chosen.warning

    black = read_dataset(testsets["npz-black"])
    assert not black.unbounded and black.background.name == "black"
    assert resolve_background("auto", black.background).colour == (0.0, 0.0, 0.0)

    llff = read_dataset(testsets["llff-backdrop"])
    assert llff.ndc and not llff.unbounded  # NDC already reaches to infinity
    assert not read_dataset(testsets["ngp-360-env"], unbounded=False).unbounded
    assert resolve_background("white", env.background).colour == (1.0, 1.0, 1.0)


def test_unbounded_forced_onto_ndc_is_refused_in_one_line(testsets):
    from taichi_nerf.data.dataset import DataError
    from taichi_nerf.data.loaders import read_dataset

    with pytest.raises(DataError, match="--no-ndc"):
        read_dataset(testsets["llff-backdrop"], unbounded=True)


def test_an_unbounded_scene_trains_renders_and_saves(testsets, tmp_path, device, capsys):
    from taichi_nerf.cli.train import report_start
    from taichi_nerf.kind_defaults import (
        APPEARANCE_DEFAULTS,
        LR_DEFAULTS,
        LR_WARMUP_DEFAULTS,
        MARCH_STEPS_DEFAULTS,
        MIXED_PRECISION_DEFAULTS,
        PROPOSAL_COUNTS,
        PROPOSAL_RENDER_FACTOR,
        SAMPLER_DEFAULTS,
        SKIP_HIDDEN_DEFAULTS,
    )
    from taichi_nerf.runs import checkpoint
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    cfg = tiny_config(testsets["ngp-360-env"], tmp_path / "run", steps=30, grid_warmup=10, grid_update_every=5,
                      lr=None, lr_warmup=None, sampler=None)
    trainer = Trainer(cfg)
    # the learning rate and warm-up for scenery, written into the run's config
    assert (trainer.cfg.lr, trainer.cfg.lr_warmup) == (LR_DEFAULTS["unbounded"], LR_WARMUP_DEFAULTS["unbounded"])
    assert trainer.scene.unbounded and trainer.background_choice.random
    # the proposal network places the samples (the grid carves little of the scenery), 24 of them
    # where fine_samples is left at its default; samples_per_ray (its bins) was given
    assert SAMPLER_DEFAULTS["unbounded"] == trainer.cfg.sampler == "proposal" and SAMPLER_DEFAULTS["box"] == "grid"
    assert trainer.renderer.grid is None and trainer.renderer.proposal.unbounded
    assert (trainer.renderer.proposal.bins, trainer.renderer.proposal.count) == (24, PROPOSAL_COUNTS["unbounded"][1])
    # rendering (no backward pass) places more samples, for smoother depth; given, it is kept
    assert trainer.renderer.proposal.render_count == PROPOSAL_RENDER_FACTOR * PROPOSAL_COUNTS["unbounded"][1] > 24
    assert trainer.cfg.render_samples_per_ray == trainer.renderer.proposal.render_count
    given = dataclasses.replace(cfg, render_samples_per_ray=40).with_kind_defaults_for(trainer.scene)
    assert given.render_samples_per_ray == 40
    # appearance codes by default for scenery all around (docs/BENCHMARKS.md), and the run says so
    assert trainer.field.appearance_dim == APPEARANCE_DEFAULTS["unbounded"] > 0
    assert trainer.field.appearance.num_embeddings == trainer.train.count
    # fewer marching steps by default: the grid carves little of the scenery (docs/BENCHMARKS.md)
    defaults = dataclasses.replace(cfg, march_steps=None)
    assert defaults.march_steps_for(trainer.scene) == MARCH_STEPS_DEFAULTS["unbounded"] < MARCH_STEPS_DEFAULTS["ndc"]
    # ...and marching it drops the samples behind opaque scenery (81% of them on a trained field);
    # few of the proposal's samples are hidden, so it has no such pass
    assert SKIP_HIDDEN_DEFAULTS["unbounded"] and not SKIP_HIDDEN_DEFAULTS["box"] and not trainer.renderer.skip_hidden
    grid_run = Trainer(dataclasses.replace(cfg, sampler="grid", out=str(tmp_path / "grid")))
    assert grid_run.renderer.skip_hidden and grid_run.renderer.grid.unbounded and grid_run.renderer.proposal is None
    # float32 whatever the CPU: bf16's extra steps did not pay on scenery (docs/BENCHMARKS.md)
    left = dataclasses.replace(cfg, mixed_precision=None)  # tiny_config pins float32
    assert left.mixed_precision_for(trainer.scene) is False and not MIXED_PRECISION_DEFAULTS["unbounded"]
    assert dataclasses.replace(cfg, mixed_precision=True).mixed_precision_for(trainer.scene) is True
    report_start(trainer, resume=False)
    started = capsys.readouterr().out
    assert "appearance: a code of 8 numbers per training photo" in started
    assert f"24 samples placed by a proposal network (24 bins; {PROPOSAL_RENDER_FACTOR * 24} when rendering)" in started
    first = trainer.step()
    assert first["samples_per_ray"] == PROPOSAL_COUNTS["unbounded"][1]
    result = trainer.run()
    assert result.step == 30 and math.isfinite(result.val_psnr)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["lr"], saved["lr_warmup"]) == (LR_DEFAULTS["unbounded"], LR_WARMUP_DEFAULTS["unbounded"])
    assert (saved["sampler"], saved["fine_samples"], saved["skip_hidden"]) == ("proposal", 24, False)
    renderer, _, _ = checkpoint.load(result.checkpoint, cfg.arch)
    assert renderer.scene.unbounded and renderer.grid is None and renderer.scene.background == [1.0, 1.0, 1.0]
    assert renderer.field.appearance.num_embeddings == trainer.train.count
    for ours, theirs in zip(renderer.proposal.state_dict().values(), trainer.renderer.proposal.state_dict().values()):
        assert torch.equal(ours, theirs)
    assert renderer.proposal.render_count == trainer.renderer.proposal.render_count


def test_scenery_all_around_refines_its_poses_by_default_and_forward_facing_scenes_do_not(testsets, tmp_path,
                                                                                              capsys):
    """Pose refinement is the default for unbounded scenes (kind_defaults.REFINE_POSES_DEFAULTS), whose
    val cameras then carry the training cameras' corrections, and the start line says how to turn it
    off; a forward-facing scene keeps its poses as given."""
    from taichi_nerf.cli.train import report_start
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    env = Trainer(tiny_config(testsets["ngp-360-env"], tmp_path / "env", steps=2))
    assert env.pose_refinement is not None and env.renderer.carried is not None
    report_start(env, resume=False)
    said = " ".join(capsys.readouterr().out.split())
    assert "carry the corrections of the training cameras near them (the default for this scene kind: " \
        "--no-refine-poses turns it off)" in said, said
    assert Trainer(tiny_config(testsets["ngp-360-env"], tmp_path / "off", steps=2,
                               refine_poses=False)).pose_refinement is None
    forward = Trainer(tiny_config(testsets["llff-backdrop"], tmp_path / "ndc", steps=2))
    assert forward.pose_refinement is None and forward.renderer.carried is None


def test_a_run_from_before_the_codes_default_resumes_without_codes(testsets, tmp_path):
    """An unbounded run saved before appearance codes and pose refinement became the defaults there
    (its config has neither) resumes as it was trained: without codes or corrections."""
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    out = tmp_path / "run"
    Trainer(tiny_config(testsets["ngp-360-env"], out, steps=6, appearance_dim=0, refine_poses=False, eval_every=0,
                        preview_every=0, checkpoint_every=0)).run()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["config"]["appearance_dim"], state["config"]["refine_poses"]  # as an older version wrote it
    torch.save(state, out / "checkpoint.pt")
    resumed = Trainer(tiny_config(testsets["ngp-360-env"], out, steps=8, eval_every=0, preview_every=0,
                                  checkpoint_every=0), resume=True)
    assert resumed.field.appearance is None and resumed.pose_refinement is None and resumed.step_count == 6
    assert resumed.run().step == 8


@pytest.mark.parametrize("name", ["llff-backdrop", "ngp-360-env"])
def test_the_grid_keeps_only_the_cells_that_training_rays_cross(testsets, tmp_path, name):
    import copy

    from taichi_nerf.stages import cameras
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    trainer = Trainer(tiny_config(testsets[name], tmp_path / "run", steps=1, march_steps=None))
    grid, scene = trainer.renderer.grid, trainer.scene
    # the NDC box reaches past the frusta; scenery all around leaves the contracted corners unseen
    assert 0.3 < float(grid.seen.float().mean()) < 0.95 and torch.equal(grid.occupied, grid.seen)
    free = copy.deepcopy(grid)
    free.seen.fill_(1)
    free.occupied.fill_(1)
    # any training pixel's ray, not only those that marked the cells, marches as if nothing were kept out
    origins, dirs = trainer.sample_batch()[:2]
    if scene.ndc:
        origins, dirs = cameras.ndc_rays(origins, dirs, scene)
    kept, everything = grid.march(origins, dirs, scene.near, scene.far), free.march(origins, dirs, scene.near,
                                                                                     scene.far)
    assert everything.num_samples > 10 * origins.shape[0]
    assert torch.equal(kept.counts, everything.counts) and torch.equal(kept.t, everything.t)
