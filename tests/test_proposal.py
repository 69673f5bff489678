"""The proposal sampler (stages/proposal.py): where it puts the field's samples, and its interlevel and
distortion losses against float64 references, forward and gradients."""
import json

import pytest
import torch

from taichi_nerf.stages import reference
from taichi_nerf.stages.compositing import METHODS, composite
from taichi_nerf.stages.packing import Samples, fixed_layout, offsets_of
from taichi_nerf.stages.proposal import (
    ProposalHistogram,
    ProposalSampler,
    distortion_loss,
    interlevel_loss,
    spacing_torch,
)

from .conftest import rel_err, torch_seeded

AABB = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])


def rays(n, seed, inside):
    g = torch.Generator().manual_seed(seed)
    centre = torch.zeros(3) if inside else torch.tensor([0.0, 0.0, -3.0])
    origins = centre + 0.3 * torch.randn(n, 3, generator=g)
    dirs = torch.nn.functional.normalize(torch.tensor([0.0, 0.0, 1.0]) + 0.2 * torch.randn(n, 3, generator=g), dim=1)
    return origins.contiguous(), dirs.contiguous()


@pytest.mark.parametrize("unbounded", [False, True])
@pytest.mark.parametrize("bins,count", [(16, 8), (64, 32), (128, 160)])
def test_the_field_intervals_tile_each_ray_in_order(unbounded, bins, count):
    sampler = ProposalSampler(AABB, bins, count, unbounded)
    origins, dirs = rays(200, bins, inside=unbounded)
    near, far = (0.05, 1000.0) if unbounded else (0.5, 6.0)  # boxed: every entry is on the box, not at near
    samples, histogram = sampler.sample(origins, dirs, near, far, torch.Generator().manual_seed(1), jitter=True,
                                        contract_box=AABB if unbounded else None)
    assert samples.num_samples == 200 * count and samples.max_per_ray == count
    t, delta = samples.t.reshape(200, count).double(), samples.delta.reshape(200, count).double()
    start, end = t - delta / 2, t + delta / 2
    assert (delta >= 0).all()
    # each interval begins where the one before it ended: they tile the ray without gaps or overlaps
    torch.testing.assert_close(start[:, 1:], end[:, :-1], rtol=1e-4, atol=1e-4)
    if unbounded:
        torch.testing.assert_close(start[:, 0], torch.full((200,), near, dtype=torch.float64), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(end[:, -1], torch.full((200,), far, dtype=torch.float64), rtol=1e-3, atol=0)
    else:  # the part of [near, far] inside the box
        hit = delta.sum(1) > 0
        assert hit.sum() > 150
        assert (start[hit, 0] >= near - 1e-4).all() and (end[hit, -1] <= far + 1e-4).all()
        points = origins[hit].double() + dirs[hit].double() * start[hit, :1]
        assert (points.abs().max(1).values > 1 - 1e-3).all()  # the entry is on the box's surface
    assert histogram is not None and histogram.cumulative.shape == (200, bins + 1)
    with torch.no_grad():
        assert sampler.sample(origins, dirs, near, far, contract_box=AABB if unbounded else None)[1] is None


def test_rendering_places_render_count_samples_and_training_count():
    """Without gradients (rendering) a ray gets ``render_count`` samples, still tiling it; with
    them (training) ``count``."""
    sampler = ProposalSampler(AABB, 32, 12, True, render_count=30)
    origins, dirs = rays(50, 4, inside=True)
    with torch.no_grad():
        rendered, histogram = sampler.sample(origins, dirs, 0.05, 1000.0, contract_box=AABB)
    assert histogram is None and rendered.num_samples == 50 * 30 and rendered.max_per_ray == 30
    t, delta = rendered.t.reshape(50, 30).double(), rendered.delta.reshape(50, 30).double()
    torch.testing.assert_close((t - delta / 2)[:, 1:], (t + delta / 2)[:, :-1], rtol=1e-4, atol=1e-4)
    trained, histogram = sampler.sample(origins, dirs, 0.05, 1000.0, contract_box=AABB)
    assert histogram is not None and trained.num_samples == 50 * 12
    assert ProposalSampler(AABB, 32, 12, True).render_count == 12


@pytest.mark.parametrize("unbounded", [False, True])
@torch_seeded(0)  # the network's first weights and its jitter come from the global generator
def test_samples_gather_where_the_proposal_network_sees_a_surface(unbounded):
    """A network taught a wall at a fixed depth puts most of the field's samples around it."""
    bins, count = 64, 32
    sampler = ProposalSampler(AABB, bins, count, unbounded)
    origins, dirs = rays(256, 3, inside=False)
    near, far = (0.05, 1000.0) if unbounded else (2.0, 6.0)
    contract = AABB if unbounded else None
    wall = 0.0  # world z of an opaque wall: rays start near z = -3 and look along +z
    optimiser = torch.optim.Adam(sampler.parameters(), lr=1e-2)
    for _ in range(150):
        samples, histogram = sampler.sample(origins, dirs, near, far, jitter=True, contract_box=contract)
        z = (origins[samples.ray_index.long(), 2] + samples.t * dirs[samples.ray_index.long(), 2]).detach()
        # the field's weights of the wall: all on the interval that holds it
        half = samples.delta / 2 * dirs[samples.ray_index.long(), 2]
        weights = ((z - half <= wall) & (z + half > wall)).float()
        loss = interlevel_loss(histogram, samples, weights)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        samples, _ = sampler.sample(origins, dirs, near, far, contract_box=contract)
    z = origins[samples.ray_index.long(), 2] + samples.t * dirs[samples.ray_index.long(), 2]
    close = ((z - wall).abs() < 0.3).float().mean()
    assert close > 0.25, float(close)  # an even spread over [near, far] puts < 10% there


@pytest.mark.parametrize("unbounded", [False, True])
@pytest.mark.parametrize("rays_,bins,per_ray", [(3, 8, 4), (40, 64, 32), (17, 128, 200), (9, 256, 130)])
def test_interlevel_loss_matches_a_float64_reference(unbounded, rays_, bins, per_ray):
    g = torch.Generator().manual_seed(bins + per_ray)
    raw = torch.rand(rays_, bins, generator=g, dtype=torch.float64) ** 4
    weights_p = (raw / raw.sum(1, keepdim=True) * 0.9).requires_grad_()
    s_lo, s_hi, scale, edges_s, samples = random_intervals(rays_, bins, per_ray, unbounded, g)
    ray_index = samples.ray_index
    w = torch.rand(rays_ * per_ray, generator=g, dtype=torch.float64) * 0.1

    ours = interlevel_loss(ProposalHistogram(torch.nn.functional.pad(torch.cumsum(weights_p.float(), 1), (1, 0)),
                                             s_lo.float(), s_hi.float(), scale.float(), unbounded),
                           samples, w.float())
    ours.backward()
    ours_grad = weights_p.grad.clone()
    weights_p.grad = None
    ref = reference.interlevel_loss(weights_p, s_lo, s_hi, edges_s[:, :-1].reshape(-1), edges_s[:, 1:].reshape(-1),
                                    ray_index.long(), w)
    ref.backward()
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours_grad, weights_p.grad, rtol=1e-3, atol=1e-6)
    assert ref > 0 and weights_p.grad.abs().sum() > 0  # the case is not trivially zero


def random_intervals(rays_, bins, per_ray, unbounded, g):
    """Random ray ranges in s and random field intervals tiling part of each: (s_lo, s_hi,
    scale, the interval edges in s (R, per_ray + 1), float64; the float32 Samples)."""
    s_lo = torch.rand(rays_, generator=g, dtype=torch.float64) * 0.2
    s_hi = s_lo + 0.3 + 0.5 * torch.rand(rays_, generator=g, dtype=torch.float64)
    scale = 0.5 + torch.rand(rays_, generator=g, dtype=torch.float64)
    # random field intervals inside each ray's range, their ends kept off the bin edges
    edges_s = torch.sort(torch.rand(rays_, per_ray + 1, generator=g, dtype=torch.float64), 1).values
    edges_s = s_lo[:, None] + (s_hi - s_lo)[:, None] * (0.02 + 0.96 * edges_s)
    frac = (edges_s - s_lo[:, None]) / (s_hi - s_lo)[:, None] * bins
    edges_s = torch.where((frac - frac.round()).abs() < 1e-2, edges_s + 0.03 * (s_hi - s_lo)[:, None] / bins, edges_s)
    edges_s = torch.sort(edges_s, 1).values
    if unbounded:  # back to distances: t = scale * (2s if s < 1/2 else 1 / (2 - 2s))
        edges_t = scale[:, None] * torch.where(edges_s < 0.5, 2 * edges_s, 0.5 / (1 - edges_s))
    else:
        edges_t = edges_s
    t, delta = 0.5 * (edges_t[:, 1:] + edges_t[:, :-1]), edges_t[:, 1:] - edges_t[:, :-1]
    offsets, counts, ray_index = fixed_layout(rays_, per_ray, "cpu")
    samples = Samples(t.reshape(-1).float(), delta.reshape(-1).float(), ray_index, offsets, counts, per_ray)
    return s_lo, s_hi, scale, edges_s, samples


@pytest.mark.parametrize("unbounded", [False, True])
@pytest.mark.parametrize("rays_,per_ray", [(3, 4), (40, 32), (17, 200), (9, 130)])
def test_distortion_loss_matches_a_float64_double_sum(unbounded, rays_, per_ray):
    g = torch.Generator().manual_seed(7 * per_ray + rays_)
    s_lo, s_hi, scale, edges_s, samples = random_intervals(rays_, 64, per_ray, unbounded, g)
    w = (torch.rand(rays_, per_ray, generator=g, dtype=torch.float64) ** 3 / per_ray * 3).requires_grad_()
    w32 = w.detach().float().reshape(-1).requires_grad_()
    histogram = ProposalHistogram(torch.zeros(rays_, 65), s_lo.float(), s_hi.float(), scale.float(), unbounded)
    ours = distortion_loss(histogram, samples, w32)
    ours.backward()
    ref = reference.distortion_loss(s_lo, s_hi, edges_s, w)
    ref.backward()
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(w32.grad.double(), w.grad.reshape(-1), rtol=1e-3, atol=1e-6)
    assert ref > 0



@pytest.mark.parametrize("unbounded", [False, True])
@pytest.mark.parametrize("rays_,per_ray", [(4, 6), (30, 40), (7, 256)])
def test_distortion_loss_on_rays_of_different_counts(unbounded, rays_, per_ray):
    """The layout training gives it when hidden samples are dropped (skip_hidden): each ray keeps
    a subset of its intervals, some rays none; the loss equals the double sum ray by ray."""
    g = torch.Generator().manual_seed(3 * per_ray + rays_)
    s_lo, s_hi, scale, edges_s, full = random_intervals(rays_, 64, per_ray, unbounded, g)
    keep = torch.rand(rays_, per_ray, generator=g) < torch.rand(rays_, 1, generator=g)
    keep[0] = False  # a ray whose every sample was hidden
    keep[-1] = True
    counts = keep.sum(1).int()
    index = torch.nonzero(keep.reshape(-1)).squeeze(1)
    samples = Samples(full.t[index], full.delta[index], full.ray_index[index], offsets_of(counts), counts, per_ray)
    w = (torch.rand(rays_, per_ray, generator=g, dtype=torch.float64) ** 3 / per_ray * 3)
    w32 = w.reshape(-1)[index].float().requires_grad_()
    histogram = ProposalHistogram(torch.zeros(rays_, 65), s_lo.float(), s_hi.float(), scale.float(), unbounded)
    ours = distortion_loss(histogram, samples, w32)
    ours.backward()
    w64 = w.reshape(-1)[index].clone().requires_grad_()
    # the definition over the intervals each ray kept: a dropped interval weighs 0 in the double sum
    kept = torch.zeros(rays_ * per_ray, dtype=torch.float64).index_put((index,), w64).view(rays_, per_ray)
    ref = reference.distortion_loss(s_lo, s_hi, edges_s, kept)
    ref.backward()
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(w32.grad.double(), w64.grad, rtol=1e-3, atol=1e-6)
    assert ref > 0 and counts.unique().numel() > 2

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rays_,per_ray", [(6, 16), (5, 128), (3, 200)])
def test_distortion_gradients_reach_the_densities_through_compositing(method, rays_, per_ray):
    """The loss's gradient flows through the compositing weights to sigma, as float64 torch's does."""
    g = torch.Generator().manual_seed(per_ray)
    s_lo, s_hi, scale, edges_s, samples = random_intervals(rays_, 64, per_ray, False, g)
    sigma = torch.rand(rays_ * per_ray, generator=g) ** 3 * 200.0 / per_ray
    rgb, bg = torch.rand(rays_ * per_ray, 3, generator=g), torch.rand(1, 3, generator=g)
    histogram = ProposalHistogram(torch.zeros(rays_, 65), s_lo.float(), s_hi.float(), scale.float(), False)
    s32 = sigma.clone().requires_grad_()
    weights = composite(s32, rgb, samples, bg, method=method)[3]
    distortion_loss(histogram, samples, weights).backward()
    s64 = sigma.double().requires_grad_()
    w64 = reference.composite_packed(s64, rgb.double(), samples.t.double(), samples.delta.double(), samples.offsets,
                                     samples.counts, bg.double())[3]
    reference.distortion_loss(s_lo, s_hi, edges_s, w64.view(rays_, per_ray)).backward()
    assert rel_err(s32.grad, s64.grad) < 1e-4
    assert s64.grad.abs().max() > 0


def test_distortion_loss_prefers_one_thin_surface_to_a_haze():
    """The same weight in one interval scores below the same weight spread along the ray."""
    g = torch.Generator().manual_seed(0)
    s_lo, s_hi, scale, _, samples = random_intervals(1, 64, 32, False, g)
    histogram = ProposalHistogram(torch.zeros(1, 65), s_lo.float(), s_hi.float(), scale.float(), False)
    thin = torch.zeros(32)
    thin[10] = 0.9
    haze = torch.full((32,), 0.9 / 32)
    assert distortion_loss(histogram, samples, thin) < 0.5 * distortion_loss(histogram, samples, haze)


def test_spacing_is_linear_inside_the_box_and_in_disparity_beyond():
    t = torch.tensor([0.0, 0.5, 1.0, 2.0, 4.0, 1e6])
    s = spacing_torch(t, torch.ones(6), True)
    torch.testing.assert_close(s, torch.tensor([0.0, 0.25, 0.5, 0.75, 0.875, 1.0]), rtol=0, atol=1e-6)
    assert torch.equal(spacing_torch(t, torch.ones(6), False), t)


@pytest.mark.slow
def test_training_with_the_proposal_sampler_resumes_and_renders(tiny_scene, tmp_path):
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.runs import checkpoint
    from taichi_nerf.training.trainer import Trainer

    cfg = TrainConfig(data=str(tiny_scene), out=str(tmp_path / "run"), sampler="proposal", samples_per_ray=32,
                      fine_samples=16, width=32, depth=2, batch_rays=128, steps=20, eval_every=0, preview_every=0,
                      checkpoint_every=10, log_every=5, progress=False, arch="cpu")
    trainer = Trainer(cfg)
    assert trainer.renderer.grid is None and trainer.renderer.proposal is not None
    trained = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert all(id(p) in trained for p in trainer.renderer.proposal.parameters())
    result = trainer.run()
    assert result.step == 20 and result.val_psnr is not None
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["samples_per_ray"] <= 16 for r in rows if "samples_per_ray" in r)
    resumed = Trainer(cfg.replace(steps=25), resume=True)
    for a, b in zip(resumed.renderer.proposal.parameters(), trainer.renderer.proposal.parameters()):
        assert torch.equal(a, b)
    renderer, _, _ = checkpoint.load(tmp_path / "run", arch="cpu")
    image = renderer.render_image(trainer.val.poses, trainer.val.intrinsics, 0, trainer.val.width, trainer.val.height,
                                  trainer.background)["rgb"]
    assert torch.isfinite(image).all() and image.std() > 0.01



def test_proposal_training_drops_hidden_samples_when_asked(tiny_scene, tmp_path):
    """--sampler proposal --skip-hidden: rays turn opaque at once (a high density bias), drop
    different numbers of samples, and the distortion loss takes the ragged layout."""
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    cfg = tiny_config(tiny_scene, tmp_path / "run", sampler="proposal", skip_hidden=True, samples_per_ray=16,
                      fine_samples=16, density_bias=8.0, steps=3)
    trainer = Trainer(cfg)
    assert trainer.renderer.skip_hidden and trainer.cfg.distortion_weight > 0
    for _ in range(3):
        stats = trainer.step()
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in stats.values() if isinstance(v, (int, float)))

@pytest.mark.slow
def test_a_proposal_run_from_before_the_width_option_loads_and_resumes_at_its_width(tiny_scene, tmp_path):
    """Proposal checkpoints written before ``proposal_width`` existed hold a 64-wide network: it
    is read from the tensors, for rendering and for resuming."""
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.runs import checkpoint
    from taichi_nerf.runs.run_folder import resume_config
    from taichi_nerf.training.trainer import Trainer

    out = tmp_path / "run"
    cfg = TrainConfig(data=str(tiny_scene), out=str(out), sampler="proposal", samples_per_ray=16, fine_samples=8,
                      proposal_width=64, width=32, depth=2, batch_rays=64, steps=4, eval_every=0, preview_every=0,
                      checkpoint_every=0, progress=False, arch="cpu")
    Trainer(cfg).run()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    del state["config"]["proposal_width"]  # as the version before the option wrote it
    torch.save(state, out / "checkpoint.pt")
    assert TrainConfig().proposal_width == 32
    renderer, _, _ = checkpoint.load(out, arch="cpu")
    assert renderer.proposal.hidden.out_features == 64
    resumed = Trainer(resume_config(out, steps=6), resume=True)
    assert resumed.renderer.proposal.hidden.out_features == 64 and resumed.run().step == 6
