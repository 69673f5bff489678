"""Occupancy grid, packed marching with early termination, and hierarchical resampling."""
import collections

import pytest
import torch

from taichi_nerf.rendering.renderer import Renderer
from taichi_nerf.rendering.scene import Scene, orbit_cameras
from taichi_nerf.runs import checkpoint
from taichi_nerf.stages import reference
from taichi_nerf.stages.cameras import image_rays
from taichi_nerf.stages.compositing import composite
from taichi_nerf.stages.encoding import HarmonicSpec
from taichi_nerf.stages.field import RadianceField
from taichi_nerf.stages.occupancy import OccupancyGrid, terminate
from taichi_nerf.stages.packing import Samples, compact
from taichi_nerf.stages.sampling import importance, ray_bounds, stratified

from .conftest import ARCH, rel_err, tiny_config, torch_seeded


@pytest.fixture(scope="module")
def tiny_trained_renderer(tiny_scene, tmp_path_factory):
    from taichi_nerf.training.trainer import Trainer

    tr = Trainer(tiny_config(tiny_scene, tmp_path_factory.mktemp("es"), steps=60, eval_every=0, preview_every=0))
    result = tr.run()
    return tr.renderer, tr.val, result.checkpoint

BOX = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])


def sphere_density(radius=0.6, value=50.0):
    return lambda p: (p.norm(dim=1) < radius).float() * value


def rays_towards_origin(n, device, seed=0, spread=0.9):
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(n, 3, generator=g)
    eye = eye / eye.norm(dim=1, keepdim=True) * 4.0
    target = (torch.rand(n, 3, generator=g) * 2 - 1) * spread
    d = target - eye
    return eye.to(device), (d / d.norm(dim=1, keepdim=True)).to(device)


def cells_of(grid, pts):
    res = grid.resolution
    cell = ((pts - grid.aabb[:3]) / (grid.aabb[3:] - grid.aabb[:3]) * res).floor().long().clamp(0, res - 1)
    return (cell[:, 0] * res + cell[:, 1]) * res + cell[:, 2]


def test_untrained_grid_marches_every_step_inside_the_box(device):
    grid = OccupancyGrid(BOX, resolution=16, steps_across=64, device=device)
    o, d = rays_towards_origin(200, device)
    s = grid.march(o, d, 2.0, 6.0)
    t0, t1 = ray_bounds(o, d, grid.aabb, 2.0, 6.0)
    expected = torch.ceil((t1 - t0 - 0.5 * grid.step) / grid.step).clamp_min(0).int()
    assert (s.counts.cpu() - expected.cpu()).abs().max() <= 1  # float rounding at the exit
    first = s.t[s.offsets.long()[s.counts > 0]]
    assert torch.allclose(first, (t0 + 0.5 * grid.step)[s.counts > 0], atol=1e-5)
    assert torch.allclose(s.delta, torch.full_like(s.delta, grid.step))
    assert torch.equal(s.ray_index.long(), torch.repeat_interleave(torch.arange(200, device=device), s.counts.long()))


def test_rendering_marches_finer_than_training(device):
    """A grid built with render_steps_across takes that many steps when a renderer draws
    without gradients (validation, previews, videos), with room for every one of them: a ray
    across the whole box is not cut off at the training march's sample count."""
    grid = OccupancyGrid(BOX, resolution=16, steps_across=32, render_steps_across=64, device=device)
    assert grid.render_step_scale == 0.5
    o = torch.tensor([[-3.0, -3.0, -3.0]], device=device)
    d = torch.nn.functional.normalize(torch.ones(1, 3, device=device), dim=1)  # along the diagonal: all of it
    coarse, fine = grid.march(o, d, 0.1, 10.0), grid.march(o, d, 0.1, 10.0, step_scale=grid.render_step_scale)
    assert abs(int(coarse.counts[0]) - 32) <= 1 and abs(int(fine.counts[0]) - 64) <= 1
    assert fine.max_per_ray >= int(fine.counts[0]) > grid.max_samples
    assert torch.allclose(fine.delta, torch.full_like(fine.delta, grid.step / 2))
    assert float(fine.t.max()) > float(coarse.t.max()) - grid.step  # out to the box's far corner

    scene = Scene(aabb=BOX.tolist(), near=0.1, far=10.0)
    enc = HarmonicSpec(2)
    renderer = Renderer(RadianceField(enc.dim, 0, 16, 1), enc, None, scene, 8, device, grid)
    grid.updates = 1  # the renderer marches the grid once it has been updated
    with torch.no_grad():
        drawn = renderer.render_rays(o, d, torch.ones(1, 3, device=device)).samples
    trained = renderer.render_rays(o, d, torch.ones(1, 3, device=device)).samples
    assert int(drawn.counts[0]) == int(fine.counts[0]) and int(trained.counts[0]) == int(coarse.counts[0])


def test_marching_skips_empty_space(device):
    grid = OccupancyGrid(BOX, resolution=32, steps_across=128, device=device)
    grid.update(sphere_density(0.6, 50.0), torch.Generator(device=device).manual_seed(0))
    assert 0.01 < grid.occupancy < 0.1
    o, d = rays_towards_origin(500, device, spread=1.2)
    s = grid.march(o, d, 2.0, 6.0)
    pts = o[s.ray_index.long()] + s.t[:, None] * d[s.ray_index.long()]
    # every sample lies in an occupied cell, i.e. on or near the sphere
    assert grid.occupied[cells_of(grid, pts)].all()
    assert (pts.norm(dim=1) < 0.6 + 2 * 3.0 / 32).all()
    # rays that miss the sphere cost nothing; rays through it get the whole chord
    closest = torch.linalg.cross(o, d).norm(dim=1)
    assert (s.counts[closest > 0.8] == 0).all()
    chord = 2 * torch.sqrt((0.6**2 - closest**2).clamp_min(0))
    hit = closest < 0.3
    assert (s.counts[hit] >= (0.9 * chord[hit] / grid.step).floor()).all()


@pytest.mark.parametrize("threshold", [1e-4, 1e-2])
def test_terminate_keeps_the_visible_prefix_of_each_ray(device, threshold):
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([0, 1, 50, 200, 7], dtype=torch.int32)
    offsets = (torch.cumsum(counts, 0) - counts).int()
    m = int(counts.sum())
    sigma = (torch.rand(m, generator=g) * 30).to(device)
    delta = torch.full((m,), 0.02)
    samples = Samples(torch.arange(m).float().to(device), delta.to(device),
                      torch.repeat_interleave(torch.arange(5, dtype=torch.int32), counts).to(device),
                      offsets.to(device), counts.to(device), 200)
    index, kept = terminate(samples, sigma, threshold)
    expect_idx, expect_counts = [], []
    for r in range(5):
        o, c = int(offsets[r]), int(counts[r])
        tau = torch.cumsum(sigma.cpu().double()[o:o + c] * 0.02, 0) - sigma.cpu().double()[o:o + c] * 0.02
        visible = torch.exp(-tau) > threshold
        expect_idx += (o + torch.nonzero(visible)[:, 0]).tolist()
        expect_counts.append(int(visible.sum()))
    assert index.cpu().tolist() == expect_idx and kept.cpu().tolist() == expect_counts
    assert 0 < sum(expect_counts) < m
    packed = compact(samples, index, kept)
    assert torch.equal(packed.offsets.cpu(), (torch.cumsum(kept, 0) - kept).int().cpu())
    assert torch.equal(packed.ray_index.cpu(), torch.repeat_interleave(torch.arange(5), kept.cpu().long()).int())


def _opaque_view(device, seed: int, density_bias: float, samples: int, size: int):
    """A random field made opaque by its density bias, its stratified renderer, and the rays
    of one orbit camera: (field, renderer, poses, intrinsics, width, height, origins,
    directions, white background)."""
    pos, direction = HarmonicSpec(4), HarmonicSpec(2)
    scene = Scene(near=2.0, far=6.0, aabb=BOX.tolist(), orbit_radius=4.0)
    with torch_seeded(seed):  # the field's first weights
        field = RadianceField(pos.dim, direction.dim, 32, 2, density_bias=density_bias).to(device)
        renderer = Renderer(field, pos, direction, scene, samples, device)
    poses, intr, w, h = orbit_cameras(scene, 1, size)
    o, d = image_rays(poses.to(device), intr.to(device), 0, w, 0, w * h)
    return field, renderer, poses, intr, w, h, o, d, torch.ones(1, 3, device=device)


def test_early_termination_is_explicit_and_matches_the_full_render(device):
    """An opaque field: rays stop well before the box's far side, and the image is the same."""
    field, renderer, poses, intr, w, h, o, d, bg = _opaque_view(device, 0, 8.0, 64, 24)
    with torch.no_grad():  # no gradients alone does not switch termination on: it is explicit
        full = renderer.render_rays(o, d, bg)
        fast = renderer.render_rays(o, d, bg, early_termination=True)
    assert full.samples.num_samples == w * h * 64
    assert fast.samples.num_samples < 0.7 * full.samples.num_samples
    assert (fast.rgb - full.rgb).abs().max() < 1e-3 and (fast.opacity - full.opacity).abs().max() < 1e-3
    # whole images are the no-gradient path: they terminate early, unless early_stop is 0
    image = renderer.render_image(poses, intr, 0, w, h, bg)  # another path (chunks): equal within rounding
    assert torch.allclose(image["rgb"].reshape(-1, 3), fast.rgb, rtol=0, atol=1e-6)
    never = Renderer(field, renderer.pos, renderer.direction, renderer.scene, 64, device, early_stop=0.0)
    image = never.render_image(poses, intr, 0, w, h, bg)
    assert torch.allclose(image["rgb"].reshape(-1, 3), full.rgb, rtol=0, atol=1e-6)


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_training_skips_hidden_samples_with_the_same_loss_and_gradients(device, noise):
    """Training's hidden-sample drop (TrainConfig.skip_hidden): an opaque field's rays keep a
    fraction of their samples for the full pass, yet the pixels, the loss and every parameter's
    gradient are those of the pass over all samples (under the same density noise)."""
    field, renderer, _, _, w, h, o, d, bg = _opaque_view(device, 2, 6.0, 128, 16)
    renderer.density_noise = noise
    target = torch.rand(w * h, 3, device=device, generator=torch.Generator(device=device).manual_seed(0))
    runs = {}
    for skip in (False, True):
        renderer.skip_hidden = skip
        field.zero_grad(set_to_none=True)
        out = renderer.render_rays(o, d, bg, generator=torch.Generator(device=device).manual_seed(3), jitter=True)
        loss = ((out.rgb - target) ** 2).mean()
        loss.backward()
        runs[skip] = (out, loss.item(), {n: p.grad.clone() for n, p in field.named_parameters()})
    (full, full_loss, full_grads), (kept, kept_loss, kept_grads) = runs[False], runs[True]
    assert full.samples.num_samples == w * h * 128
    assert kept.samples.num_samples < 0.6 * full.samples.num_samples
    assert (kept.rgb - full.rgb).abs().max() < 1e-3
    assert abs(kept_loss - full_loss) < 1e-4 * full_loss
    # Against the whole gradient's size: on this saturated random field the density head's
    # own gradient nearly cancels, and the hidden samples' share (each below early_stop) is
    # a visible fraction of that small remainder.
    whole = torch.cat([g.reshape(-1) for g in full_grads.values()]).norm()
    for name, g in full_grads.items():
        assert (kept_grads[name] - g).norm() <= 1e-3 * whole, name


@pytest.mark.parametrize("first_segment", [1, 8])
def test_rendering_evaluates_densities_front_to_back_until_rays_are_opaque(device, monkeypatch, first_segment):
    """Segments of doubling length give the same picture as evaluating every sample first,
    with far fewer density evaluations on an opaque field (and none at all past the point
    where every ray is opaque)."""
    field, renderer, _, _, w, h, o, d, bg = _opaque_view(device, 1, 12.0, 160, 20)
    evaluated = []
    features = field.features
    monkeypatch.setattr(field, "features", lambda x: evaluated.append(x.shape[0]) or features(x))
    with torch.no_grad():
        monkeypatch.setattr("taichi_nerf.rendering.renderer.FIRST_SEGMENT", 10**6)  # one segment: every sample first
        every = renderer.render_rays(o, d, bg, early_termination=True)
        all_at_once = sum(evaluated)
        evaluated.clear()
        monkeypatch.setattr("taichi_nerf.rendering.renderer.FIRST_SEGMENT", first_segment)
        segmented = renderer.render_rays(o, d, bg, early_termination=True)
    assert all_at_once == w * h * 160 and len(evaluated) > 2
    assert sum(evaluated) < 0.6 * all_at_once
    assert torch.equal(segmented.samples.counts, every.samples.counts)
    assert (segmented.rgb - every.rgb).abs().max() < 1e-5 and (segmented.depth - every.depth).abs().max() < 1e-4


def test_checkpoints_written_before_the_module_refactor_still_load(tiny_trained_renderer, tmp_path):
    """The old format: the field's density layer named ``density``, the grid a plain dict
    with density/occupied/updates/resolution/step."""
    renderer, split, path = tiny_trained_renderer
    state = torch.load(path, map_location="cpu", weights_only=True)
    grid = renderer.grid
    assert grid.updates > 0 and set(state["grid"]) == {"aabb", "inner", "density", "occupied", "seen",
                                                     "_extra_state"}
    old = dict(state)
    old["model"] = {k.replace("density_head.", "density."): v for k, v in state["model"].items()}
    assert "density.weight" in old["model"] and "density.bias" in old["model"]
    old["grid"] = {"density": grid.density.cpu(), "occupied": grid.occupied.cpu(), "updates": grid.updates,
                   "resolution": grid.resolution, "step": grid.step}
    torch.save(old, tmp_path / "old.pt")
    loaded, _, _ = checkpoint.load(tmp_path / "old.pt", ARCH)
    assert loaded.grid.updates == grid.updates
    assert torch.equal(loaded.grid.density, grid.density) and torch.equal(loaded.grid.occupied, grid.occupied)
    assert torch.equal(loaded.grid.aabb, grid.aabb)
    for a, b in zip(loaded.field.state_dict().values(), renderer.field.state_dict().values()):
        assert torch.equal(a, b)
    bg = torch.ones(1, 3)
    before = renderer.render_image(split.poses, split.intrinsics, 0, split.width, split.height, bg)
    after = loaded.render_image(split.poses, split.intrinsics, 0, split.width, split.height, bg)
    assert torch.equal(before["rgb"], after["rgb"])
    other = OccupancyGrid(grid.aabb, resolution=grid.resolution // 2, device=grid.device)
    with pytest.raises(ValueError, match="resolution"):
        other.load_state_dict(old["grid"])


def test_grid_forgets_density_with_decay_and_keeps_max(device):
    grid = OccupancyGrid(BOX, resolution=8, steps_across=32, decay=0.5, device=device)
    grid.update(lambda p: torch.full((p.shape[0],), 10.0, device=p.device))
    grid.update(lambda p: torch.zeros(p.shape[0], device=p.device))
    assert torch.allclose(grid.density, torch.full_like(grid.density, 5.0))
    grid.update(lambda p: torch.full((p.shape[0],), 7.0, device=p.device))
    assert torch.allclose(grid.density, torch.full_like(grid.density, 7.0))


def test_later_grid_updates_measure_occupied_cells_and_a_random_share_of_the_rest(device):
    grid = OccupancyGrid(BOX, resolution=16, steps_across=64, full_updates=2, explore_fraction=0.125, device=device)
    g = torch.Generator(device=device).manual_seed(0)
    measured = []

    def sphere(p):
        measured.append(p.shape[0])
        return sphere_density(0.6, 50.0)(p)

    grid.update(sphere, g)
    grid.update(sphere, g)
    assert measured == [16**3, 16**3]  # the first updates see every cell
    occupied = grid.occupied.bool().clone()
    before = grid.density.clone()
    grid.update(lambda p: torch.zeros(p.shape[0], device=p.device), g)
    changed = grid.density != before
    # every occupied cell was re-measured (its density decayed); of the empty ones, about an eighth
    assert bool(changed[occupied].all())
    expected = int(occupied.sum()) + 0.125 * int((~occupied).sum())
    assert abs(grid.last_update_cells - expected) < 0.25 * expected


def test_content_that_appears_in_empty_space_is_found_by_exploring(device):
    grid = OccupancyGrid(BOX, resolution=16, steps_across=64, full_updates=1, device=device)
    g = torch.Generator(device=device).manual_seed(1)
    corner = lambda p: ((p - 1.2).norm(dim=1) < 0.3).float() * 50.0  # noqa: E731
    grid.update(corner, g)
    centre = grid.occupied.view(16, 16, 16)[6:10, 6:10, 6:10]
    assert not bool(centre.any())
    both = lambda p: corner(p) + sphere_density(0.6, 50.0)(p)  # noqa: E731
    for _ in range(80):  # each update explores ~1/8 of the empty cells: 80 miss one in ~10^5
        grid.update(both, g)
    assert bool(grid.occupied.view(16, 16, 16)[6:10, 6:10, 6:10].all())


def test_cells_no_ray_crosses_are_never_measured_or_marched(device):
    grid = OccupancyGrid(BOX, resolution=16, steps_across=64, device=device)
    # parallel rays along +x through the slab |z| <= 0.3: z cells 6..9 of 16, 5..10 dilated
    y, z = torch.meshgrid(torch.arange(-1.45, 1.46, 0.05), torch.arange(-0.3, 0.301, 0.05), indexing="ij")
    origins = torch.stack([torch.full_like(y, -4.0), y, z], dim=-1).reshape(-1, 3).float().to(device)
    dirs = torch.tensor([[1.0, 0.0, 0.0]], device=device).expand_as(origins).contiguous()
    share = grid.restrict_to_seen([(origins[:100], dirs[:100]), (origins[100:], dirs[100:])], 0.0, 10.0)
    expected = torch.zeros(16, 16, 16, dtype=torch.bool)
    expected[:, :, 5:11] = True
    assert torch.equal(grid.seen.view(16, 16, 16).bool().cpu(), expected) and share == pytest.approx(6 / 16)
    assert torch.equal(grid.occupied, grid.seen)  # the untrained grid marches only what was seen
    measured = []

    def everywhere(p):  # dense in every cell, seen or not
        measured.append(p)
        return torch.full((p.shape[0],), 50.0, device=p.device)

    grid.update(everywhere)
    pts = torch.cat(measured)
    assert pts.shape[0] == int(grid.seen.sum()) and bool(grid.seen[cells_of(grid, pts)].all())
    assert torch.equal(grid.occupied, grid.seen)
    o, d = rays_towards_origin(300, device)
    s = grid.march(o, d, 2.0, 6.0)
    marched = o[s.ray_index.long()] + s.t[:, None] * d[s.ray_index.long()]
    assert s.num_samples > 1000 and bool(grid.seen[cells_of(grid, marched)].all())
    # rays that cross nothing change nothing
    away = torch.tensor([[0.0, 0.0, 1.0]], device=device).expand_as(origins).contiguous()
    assert grid.restrict_to_seen([(origins, away)], 0.0, 10.0) == pytest.approx(6 / 16)
    # an allowed set (the masks' hull) narrows the seen cells, unless it would leave none
    grid.restrict_to(torch.zeros_like(grid.seen))
    assert torch.equal(grid.seen.view(16, 16, 16).bool().cpu(), expected)
    allowed = torch.zeros(16, 16, 16, dtype=torch.uint8)
    allowed[:8] = 1
    grid.restrict_to(allowed.reshape(-1))
    assert torch.equal(grid.seen.view(16, 16, 16).bool().cpu(), expected & allowed.bool())
    assert not bool((grid.occupied.bool() & ~grid.seen.bool()).any())


def test_grid_state_round_trip(device):
    grid = OccupancyGrid(BOX, resolution=16, device=device)
    grid.update(sphere_density())
    assert {name for name, _ in grid.named_buffers()} == {"aabb", "inner", "density", "occupied", "seen"}
    other = OccupancyGrid(BOX, resolution=16, device=device)
    other.load_state_dict(grid.state_dict())
    assert other.updates == grid.updates == 1
    o, d = rays_towards_origin(50, device)
    a, b = grid.march(o, d, 2, 6), other.march(o, d, 2, 6)
    assert torch.equal(a.t, b.t) and torch.equal(a.counts, b.counts) and a.num_samples < 0.5 * 50 * grid.max_samples
    moved = OccupancyGrid(BOX, resolution=16, device=device).to("cpu")
    moved.load_state_dict(grid.state_dict())
    assert moved.device == torch.device("cpu") and torch.equal(moved.occupied.cpu(), grid.occupied.cpu())


@pytest.mark.parametrize("steps_across", [64, 256])
def test_compositing_gradients_on_marched_rays(device, steps_across):
    """Variable-length packed rays straight from the marcher, 0 to 200+ samples each."""
    grid = OccupancyGrid(BOX, resolution=32, steps_across=steps_across, device=device)
    grid.update(sphere_density(1.2, 1.0))
    o, d = rays_towards_origin(64, device, spread=1.4)
    s = grid.march(o, d, 2.0, 6.0)
    assert (s.counts == 0).any() and int(s.counts.max()) >= steps_across // 4
    g = torch.Generator().manual_seed(1)
    sigma = (torch.rand(s.num_samples, generator=g) * 5).to(device).requires_grad_()
    rgb = torch.rand(s.num_samples, 3, generator=g).to(device).requires_grad_()
    bg = torch.ones(1, 3, device=device)
    out = composite(sigma, rgb, s, bg)
    (out[0].sum() + out[2].sum()).backward()
    s64, c64 = sigma.detach().double().cpu().requires_grad_(), rgb.detach().double().cpu().requires_grad_()
    ref = reference.composite_packed(s64, c64, s.t.double().cpu(), s.delta.double().cpu(), s.offsets.cpu(),
                                     s.counts.cpu(), bg.double().cpu())
    (ref[0].sum() + ref[2].sum()).backward()
    assert rel_err(out[0], ref[0]) < 2e-5 and rel_err(out[2], ref[2]) < 2e-5
    assert rel_err(sigma.grad, s64.grad) < 2e-5 and rel_err(rgb.grad, c64.grad) < 2e-5


def _without(values: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """``values`` less one occurrence of each of ``removed`` (a multiset difference), in order."""
    left = collections.Counter(removed.tolist())
    kept = []
    for v in values.tolist():
        if left[v]:
            left[v] -= 1
        else:
            kept.append(v)
    assert not +left, "a removed value is missing"
    return torch.tensor(kept, dtype=values.dtype)


@pytest.mark.parametrize("coarse,fine", [(8, 16), (64, 64), (64, 128), (128, 256)])
def test_importance_matches_inverse_cdf_reference(device, coarse, fine):
    n = 40
    g = torch.Generator().manual_seed(coarse + fine)
    t_near = (torch.rand(n, generator=g) + 2).to(device)
    t_far = t_near + 2.5
    c = stratified(t_near, t_far, coarse, torch.Generator(device=device).manual_seed(0))
    w = (torch.rand(n * coarse, generator=g) ** 6).to(device)
    gen = torch.Generator(device=device).manual_seed(3)
    s = importance(t_near, t_far, c, w, fine, gen)
    gen = torch.Generator(device=device).manual_seed(3)
    u = ((torch.arange(fine, device=device).float() + torch.rand(n, fine, device=device,
                                                                 generator=gen)) / fine).reshape(-1)
    t = s.t.view(n, -1).cpu().double()
    assert t.shape == (n, coarse + fine) and (t[:, 1:] >= t[:, :-1]).all()
    # the coarse samples pass through unchanged; the rest are the drawn ones, in u's order
    drawn = torch.stack([_without(row, ct) for row, ct in zip(t, c.t.view(n, -1).cpu().double())])
    assert drawn.shape == (n, fine)
    # Compared through the float64 CDF (the forward map): a bin of almost no weight (weights**6 +
    # 1e-5) turns a float32 rounding of the CDF into a large move of t, more so with FMA (CUDA).
    assert (reference.importance_cdf_at(t_near.cpu(), t_far.cpu(), w.cpu(), drawn) - u.view(n, -1).cpu().double()
            ).abs().max() < 1e-5
    ref_t, _ = reference.importance(t_near.cpu(), t_far.cpu(), c.t.cpu(), w.cpu(), u.cpu(), fine)
    ref_drawn = torch.stack([_without(row, ct) for row, ct in zip(ref_t, c.t.view(n, -1).cpu().double())])
    # in bins of above-average weight t itself is well conditioned: compare it there
    pdf, _ = reference.importance_pdf_cdf(w.cpu(), n)
    step = 2.5 / coarse
    bins = ((ref_drawn - t_near.cpu().double()[:, None]) / step).long().clamp(0, coarse - 1)
    weighty = torch.gather(pdf, 1, bins) > 1.0 / coarse
    assert weighty.sum() > n and (drawn - ref_drawn)[weighty].abs().max() < 5e-3 * step
    # each sample's interval runs between the midpoints to its neighbours, from near to far
    mids = 0.5 * (t[:, 1:] + t[:, :-1])
    edges = torch.cat([t_near.cpu().double()[:, None], mids, t_far.cpu().double()[:, None]], 1)
    assert (s.delta.view(n, -1).cpu().double() - (edges[:, 1:] - edges[:, :-1]).clamp_min(0)).abs().max() < 2e-6


def test_importance_concentrates_samples_where_weight_is(device):
    n, coarse, fine = 4, 32, 64
    t_near, t_far = torch.full((n,), 2.0, device=device), torch.full((n,), 6.0, device=device)
    c = stratified(t_near, t_far, coarse, jitter=False)
    w = torch.zeros(n, coarse, device=device)
    w[:, 20] = 1.0
    s = importance(t_near, t_far, c, w.reshape(-1), fine, jitter=False)
    bin_lo, bin_hi = 2.0 + 20 * 4 / 32, 2.0 + 21 * 4 / 32
    inside = ((s.t >= bin_lo) & (s.t <= bin_hi)).view(n, -1).sum(1)
    assert (inside >= 0.9 * fine).all()


def test_march_is_the_same_on_one_thread_and_on_many(device, monkeypatch):
    """backend.serial_loop marches a training batch on one thread (on the CPU): same samples."""
    from taichi_nerf import backend

    grid = OccupancyGrid(BOX, resolution=32, steps_across=128, device=device)
    grid.update(sphere_density(1.2, 1.0))
    o, d = rays_towards_origin(300, device, spread=1.4)
    runs = []
    for items in (0, 10**9):
        monkeypatch.setattr(backend, "SERIAL_LOOP_ITEMS", items)
        gen = torch.Generator(device=device).manual_seed(5)
        runs.append(grid.march(o, d, 2.0, 6.0, generator=gen, jitter=True))
    a, b = runs
    assert a.num_samples > 300 and torch.equal(a.counts, b.counts) and torch.equal(a.offsets, b.offsets)
    assert torch.equal(a.t, b.t) and torch.equal(a.delta, b.delta) and torch.equal(a.ray_index, b.ray_index)
