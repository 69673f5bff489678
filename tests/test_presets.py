"""Presets (taichi_nerf/presets.py): each builds its tutorial's network, trains through the
project's kernels, yields to explicit options, and keeps today's defaults untouched."""
import dataclasses
import json
import math
import typing
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from taichi_nerf import config
from taichi_nerf.cli import build_parser, run_config
from taichi_nerf.config import TrainConfig
from taichi_nerf.presets import PRESETS
from taichi_nerf.rendering.renderer import RayOutput, Renderer
from taichi_nerf.rendering.scene import Scene
from taichi_nerf.runs import checkpoint
from taichi_nerf.stages.encoding import encode_samples
from taichi_nerf.training.losses import training_loss
from taichi_nerf.training.trainer import Trainer

from .conftest import ARCH, sampled_images, tiny_config, torch_seeded

SCENE = Scene(near=2.0, far=6.0, aabb=[-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])


def preset_renderer(name, device, **changes):
    # float32 whatever the CPU: these tests compare the tutorials' arithmetic (bf16 is the default on CPUs with it)
    changes.setdefault("mixed_precision", False)
    with torch_seeded(0):  # the first weights: the same whatever ran before
        return Renderer.from_config(TrainConfig().replace(preset=name, **changes), SCENE, device)


def linears(module):
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def test_preset_names_are_the_config_choices():
    assert typing.get_args(config.PresetName) == tuple(PRESETS)
    for preset in PRESETS.values():  # every value names a real field, and the result validates
        cfg = TrainConfig().with_preset(preset.name).validate()
        assert all(getattr(cfg, k) == v for k, v in preset.values.items())


def test_keras_network(device):
    r = preset_renderer("keras", device)
    f = r.field
    assert r.pos.dim == 3 + 2 * 16 * 3 == 99 and r.direction is None and f.dir_dim == 0
    fan_ins = [layer.in_features for layer in f.trunk]
    assert fan_ins == [99, 64, 64, 64, 64, 64 + 99, 64, 64] and {layer.out_features for layer in f.trunk} == {64}
    # Dense(4) read off the trunk = a 1-unit density head and a 3-unit colour head; nothing else
    assert len(linears(f)) == 10 and f.feature is None and f.color_hidden is None
    assert (f.density_head.in_features, f.color.in_features, f.color.out_features) == (64, 64, 3)
    for layer in linears(f):  # Keras Dense init: Glorot-uniform weights, zero biases
        bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
        assert float(layer.bias.detach().abs().max()) == 0.0 and float(layer.weight.detach().abs().max()) <= bound
        assert float(layer.weight.detach().std()) > 0.5 * bound / math.sqrt(3)
    # the Keras forward pass, written out from the example, on the same weights
    x = torch.randn(50, 99, device=device, generator=torch.Generator(device=device).manual_seed(0))
    h = x
    for i, layer in enumerate(f.trunk):
        h = F.relu(layer(h))
        if i % 4 == 0 and i > 0:
            h = torch.cat([h, x], -1)
    with torch.no_grad():
        f.density_head.bias.fill_(-0.05)  # some raw densities negative: relu, not softplus
        sigma, rgb = f(x)
        raw = f.density_head(h)[:, 0]
        # close, not bitwise: BLAS may round a product differently with the operands' memory alignment
        assert (raw < 0).any() and torch.allclose(sigma, F.relu(raw), rtol=1e-5, atol=1e-6)
        assert torch.allclose(rgb, torch.sigmoid(f.color(h)))


def tutorial_embedding(x, n=60, omega0=0.1):
    """PyTorch3D tutorial's HarmonicEmbedding.forward."""
    frequencies = omega0 * (2.0 ** torch.arange(n, device=x.device))
    embed = (x[..., None] * frequencies).view(*x.shape[:-1], -1)
    return torch.cat((embed.sin(), embed.cos()), dim=-1)


def test_pytorch3d_network_and_embedding(device):
    r = preset_renderer("pytorch3d", device)
    f = r.field
    assert r.pos.dim == r.direction.dim == 2 * 60 * 3 == 360
    assert [(m.in_features, m.out_features) for m in f.trunk] == [(360, 256), (256, 256)]  # no re-injection
    assert (f.density_head.in_features, f.density_head.out_features) == (256, 1)
    assert float(f.density_head.bias.detach()) == -1.5
    assert float(f.density_head.weight.detach().std()) > 0.02  # torch's init
    assert f.feature is None
    assert (f.color_hidden.in_features, f.color_hidden.out_features, f.color.in_features) == (256 + 360, 256, 256)
    assert len(linears(f)) == 5
    # the embedding equals the tutorial's up to a column permutation (low frequencies: the
    # high ones are float32 noise in both)
    o = torch.zeros(1, 3, device=device)
    d = torch.tensor([[0.3, -0.2, 0.5]], device=device)
    t = torch.tensor([1.0], device=device)
    ours = encode_samples(o, d, t, torch.zeros(1, dtype=torch.int32, device=device), r.pos, None)[0]
    theirs = tutorial_embedding(d[0])
    k = torch.arange(12, device=device)
    for c in range(3):
        # ours: frequency k at columns 6k + c (sin) and 6k + 3 + c (cos); theirs: c*60 + k, 180 + c*60 + k
        assert torch.allclose(ours[6 * k + c], theirs[c * 60 + k], atol=1e-5)
        assert torch.allclose(ours[6 * k + 3 + c], theirs[180 + c * 60 + k], atol=1e-5)
    # the tutorial's forward pass on the same weights
    g = torch.Generator(device=device).manual_seed(1)
    emb, demb = torch.randn(40, 360, device=device, generator=g), torch.randn(40, 360, device=device, generator=g)
    sp = nn.Softplus(beta=10.0)
    with torch.no_grad():
        feats = sp(f.trunk[1](sp(f.trunk[0](emb))))
        opacity = 1 - torch.exp(-sp(f.density_head(feats)))[:, 0]
        colour = torch.sigmoid(f.color(sp(f.color_hidden(torch.cat([feats, demb], -1)))))
        sigma, rgb = f(torch.cat([emb, demb], -1))
    nominal = (SCENE.far - SCENE.near) / 128
    assert torch.allclose(1 - torch.exp(-sigma * nominal), opacity, atol=1e-6) and torch.allclose(rgb, colour)


def test_opacity_mapping_through_the_kernels(device):
    """Stratified samples span all of [near, far] in bins of delta_nominal, so the
    compositing kernel's alpha_i = 1 - exp(-sigma_i delta_i) is the tutorial's
    1 - exp(-softplus10(raw)), and its weights are the emission-absorption raymarcher's."""
    r = preset_renderer("pytorch3d", device, samples_per_ray=16)
    n = 5
    origins = torch.tensor([[0.0, -4.0, 0.0]], device=device).repeat(n, 1)
    g = torch.Generator(device=device).manual_seed(2)  # whether a ray clips the box: not the tests' before
    dirs = F.normalize(torch.tensor([[0.0, 1.0, 0.0]], device=device)
                       + 0.2 * torch.randn(n, 3, device=device, generator=g), dim=-1)
    with torch.no_grad():
        r.field.density_head.bias.fill_(0.3)  # clearly opaque in places
        out = r.render_rays(origins.contiguous(), dirs.contiguous(), torch.zeros(1, 3, device=device))
    s = out.samples
    assert s.num_samples == n * 16  # the box did not clip: every ray spans [near, far]
    assert torch.allclose(s.delta, torch.full_like(s.delta, (SCENE.far - SCENE.near) / 16))
    with torch.no_grad():
        enc = encode_samples(origins, dirs, s.t, s.ray_index, r.pos, r.direction)
        raw = r.field.density_head(r.field.features(enc[:, :360]))[:, 0]
    opacity = (1 - torch.exp(-F.softplus(raw, beta=10.0))).view(n, 16)
    transmittance = torch.cumprod(torch.cat([torch.ones(n, 1, device=device), 1 - opacity[:, :-1]], 1), 1)
    assert opacity.max() > 0.2
    assert torch.allclose(out.weights.view(n, 16), opacity * transmittance, atol=1e-5)


def test_pytorch3d_loss_and_gradients_are_the_tutorials(device):
    """Through the project's kernels (rays, stratified samples, encoding, compositing and its
    Taichi autodiff), the preset's loss and every weight's gradient equal the tutorial's model,
    raymarcher and huber() written out in torch on the same samples."""
    r = preset_renderer("pytorch3d", device, samples_per_ray=16)
    f, n, s_per_ray = r.field, 6, 16
    g = torch.Generator(device=device).manual_seed(3)
    origins = torch.tensor([[0.0, -4.0, 0.0]], device=device).repeat(n, 1)
    dirs = F.normalize(torch.tensor([[0.0, 1.0, 0.0]], device=device)
                       + 0.2 * torch.randn(n, 3, device=device, generator=g), dim=-1)
    target, alpha = torch.rand(n, 3, device=device, generator=g), (torch.arange(n, device=device) % 2).float()
    with torch.no_grad():
        f.density_head.bias.fill_(0.2)
    cfg = TrainConfig().replace(preset="pytorch3d")
    out = r.render_rays(origins, dirs, torch.zeros(1, 3, device=device))  # the tutorial has no background: black
    ours = training_loss(cfg, out, target, alpha)[0]
    f.zero_grad()
    ours.backward()
    ours_grads = [p.grad.clone() for p in f.parameters()]

    s = out.samples
    enc = encode_samples(origins, dirs, s.t, s.ray_index, r.pos, r.direction)
    sp = nn.Softplus(beta=10.0)
    features = sp(f.trunk[1](sp(f.trunk[0](enc[:, :360]))))
    opacity = (1 - torch.exp(-sp(f.density_head(features))))[:, 0].view(n, s_per_ray)
    colour = torch.sigmoid(f.color(sp(f.color_hidden(torch.cat([features, enc[:, 360:]], -1))))).view(n, s_per_ray, 3)
    # EmissionAbsorptionRaymarcher: weights = opacity * cumprod(1 + eps - opacity), exclusive
    transmittance = torch.cumprod(torch.cat([torch.ones(n, 1, device=device), 1 + 1e-10 - opacity[:, :-1]], 1), 1)
    weights = opacity * transmittance
    images, silhouettes = (weights[..., None] * colour).sum(1), weights.sum(1)

    def huber(x, y, scaling=0.1):
        return ((1 + (x - y) ** 2 / scaling**2).clamp(1e-4).sqrt() - 1) * scaling

    theirs = huber(images, target).abs().mean() + huber(silhouettes, alpha).abs().mean()
    f.zero_grad()
    theirs.backward()
    assert float(ours.detach()) == pytest.approx(float(theirs.detach()), rel=1e-5)
    for mine, p in zip(ours_grads, f.parameters()):
        assert float((mine - p.grad).abs().max()) <= 1e-4 * float(p.grad.abs().max())


@pytest.mark.parametrize("name, changes", [("keras", {}), ("pytorch3d", {"batch_rays": 60})])
def test_one_training_step(tiny_scene, tmp_path, name, changes):
    cfg = TrainConfig(data=str(tiny_scene), out=str(tmp_path), progress=False, arch=ARCH).replace(preset=name,
                                                                                                  **changes)
    trainer = Trainer(cfg)
    images = trainer.train.count
    origins = trainer.sample_batch()[0]
    before = [p.detach().clone() for p in trainer.field.parameters()]
    info = trainer.step()
    assert math.isfinite(info["loss"]) and info["lr"] == 1e-3
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.field.parameters()))
    assert images > cfg.batch_images
    assert trainer.renderer.gaps == (name == "keras")  # Keras's intervals: to the next sample, 1e10 last
    if name == "keras":  # every pixel of 5 images
        assert origins.shape[0] == 5 * 32 * 32 and info["rays_per_s"] > 0
    else:
        assert origins.shape[0] == 60


def test_batches_come_from_k_images(tiny_scene, tmp_path, monkeypatch):
    keras = Trainer(TrainConfig(data=str(tiny_scene), out=str(tmp_path / "k"), progress=False, arch=ARCH)
                    .replace(preset="keras"))
    images, pixels = sampled_images(keras, monkeypatch)
    chosen = images.unique()
    assert len(chosen) == 5
    for i in chosen:  # each of them whole: every pixel once
        assert torch.equal(pixels[images == i].sort().values, torch.arange(32 * 32, dtype=pixels.dtype))
    p3d = Trainer(TrainConfig(data=str(tiny_scene), out=str(tmp_path / "p"), progress=False, arch=ARCH)
                  .replace(preset="pytorch3d", batch_rays=60))
    images, _ = sampled_images(p3d, monkeypatch)
    counts = images.unique(return_counts=True)[1]
    assert len(counts) == 6 and set(counts.tolist()) == {10}  # 6 cameras x an equal share


def test_learning_rate_schedules():
    from taichi_nerf.training import lr_schedule

    def lr(cfg, step):
        return lr_schedule.learning_rate(cfg, lr_schedule.progress(step, cfg.step_limit()))

    p3d = TrainConfig().replace(preset="pytorch3d")
    assert p3d.steps == 3000
    assert lr(p3d, 0) == lr(p3d, 2249) == 1e-3 and lr(p3d, 2250) == lr(p3d, 2999) == pytest.approx(1e-4)
    keras = TrainConfig().replace(preset="keras")
    assert lr(keras, 0) == lr(keras, 319) == 1e-3
    default = TrainConfig(lr=5e-3)  # the exponential decay
    assert lr(default, 0) == 5e-3 and lr(default, default.step_limit()) == pytest.approx(5e-4)
    assert lr(default, default.step_limit() // 2) == pytest.approx(5e-3 * 0.1 ** 0.5)


def test_a_warm_up_ramps_the_rate_then_leaves_the_schedule_alone():
    """--lr-warmup N: the rate rises linearly over the first N steps to the schedule's, and
    equals the schedule's from step N on; without it the first step has the full rate."""
    from taichi_nerf.training.lr_schedule import learning_rate, progress

    cfg = TrainConfig(lr=1e-2, lr_warmup=100)
    n = cfg.step_limit()  # 20000: no --steps, no time limit
    rates = [learning_rate(cfg, progress(k, n), k) for k in range(0, 300)]
    plain = [learning_rate(cfg.replace(lr_warmup=0), progress(k, n), k) for k in range(0, 300)]
    assert rates[0] == pytest.approx(plain[0] / 100) and rates[49] == pytest.approx(plain[49] / 2)
    assert all(a < b for a, b in zip(rates[:100], rates[1:100]))  # rising through the warm-up
    assert rates[100:] == plain[100:] and plain[0] == 1e-2
    # Under a time limit the warm-up also ends by WARMUP_TIME_SHARE of the time, whichever comes first.
    from taichi_nerf.training.lr_schedule import WARMUP_TIME_SHARE

    assert learning_rate(cfg, progress(9, n), 9, time_used=WARMUP_TIME_SHARE) == plain[9]
    assert learning_rate(cfg, progress(9, n), 9, time_used=WARMUP_TIME_SHARE / 2) == pytest.approx(plain[9] / 2)
    assert learning_rate(cfg, progress(79, n), 79, time_used=0.01) == pytest.approx(rates[79])  # steps further


def test_the_rates_by_scene_kind_are_written_into_the_run_config():
    """--lr and --lr-warmup default by scene kind (kind_defaults.LR_DEFAULTS, LR_WARMUP_DEFAULTS); a
    run writes the chosen values into its config, so a resume keeps them; given values win."""

    from taichi_nerf.kind_defaults import LR_DEFAULTS, LR_WARMUP_DEFAULTS, PIXEL_SAMPLING_DEFAULTS

    kinds = {"box": SimpleNamespace(ndc=False, unbounded=False), "ndc": SimpleNamespace(ndc=True, unbounded=False),
             "unbounded": SimpleNamespace(ndc=False, unbounded=True)}
    for kind, scene in kinds.items():
        chosen = TrainConfig().with_kind_defaults_for(scene)
        assert (chosen.lr, chosen.lr_warmup) == (LR_DEFAULTS[kind], LR_WARMUP_DEFAULTS[kind])
        assert TrainConfig.from_dict(chosen.to_dict()).with_kind_defaults_for(scene) == chosen
        assert chosen.pixel_sampling == PIXEL_SAMPLING_DEFAULTS[kind]
        given = TrainConfig(lr=2e-3, lr_warmup=7, pixel_sampling="error").with_kind_defaults_for(scene)
        assert (given.lr, given.lr_warmup, given.pixel_sampling) == (2e-3, 7, "error")
    # scenery that fills the frame learns faster at the higher rate, after a warm-up (docs/BENCHMARKS.md)
    assert LR_DEFAULTS["ndc"] == LR_DEFAULTS["unbounded"] > LR_DEFAULTS["box"] and LR_WARMUP_DEFAULTS["ndc"] > 0
    for preset in ("keras", "pytorch3d"):  # the tutorials' own rates, with no warm-up
        assert TrainConfig().replace(preset=preset).with_kind_defaults_for(kinds["ndc"]).lr_warmup == 0


def test_a_time_limit_ends_the_decay_when_the_time_runs_out():
    """Under --time-limit the decay ends when the time does, not at --steps that are never reached.
    It starts at DECAY_FROM of the time (decaying over all of it cost the built-in scene 1 dB at
    60 s); a resumed run continues from the progress it saved, over its new limit."""
    from taichi_nerf.training.lr_schedule import DECAY_FROM, learning_rate, progress

    default = TrainConfig(lr=5e-3)
    n = default.step_limit()  # 20000: no --steps, no time limit
    assert progress(100, n, time_used=DECAY_FROM) == 100 / n  # the steps rule until then
    halfway = DECAY_FROM + 0.5 * (1.0 - DECAY_FROM)
    assert progress(100, n, time_used=halfway) == pytest.approx(0.5)
    assert progress(15000, n, time_used=halfway) == 0.75  # the steps are further
    assert learning_rate(default, progress(2000, n, time_used=1.0)) == pytest.approx(5e-4)
    assert progress(0, n, time_used=0.0, floor=0.6) == 0.6
    assert progress(0, n, time_used=halfway, floor=0.6) == pytest.approx(0.8)
    p3d = TrainConfig().replace(preset="pytorch3d")
    drop = DECAY_FROM + 0.75 * (1.0 - DECAY_FROM)
    assert learning_rate(p3d, progress(10, p3d.steps, time_used=drop - 0.01)) == 1e-3
    assert learning_rate(p3d, progress(10, p3d.steps, time_used=drop + 0.01)) == pytest.approx(1e-4)


def test_pseudo_huber_is_the_tutorials():
    cfg = TrainConfig().replace(preset="pytorch3d")
    rgb, target = torch.tensor([[0.0, 0.5, 1.0]]), torch.tensor([[0.3, 0.5, 0.0]])
    opacity, alpha = torch.tensor([0.2]), torch.tensor([1.0])
    out = RayOutput(rgb, opacity, torch.zeros(1), torch.zeros(1), None)
    loss, mse = training_loss(cfg, out, target, alpha)

    def huber(x, y, scaling=0.1):  # the tutorial's helper
        return ((1 + (x - y) ** 2 / scaling**2).clamp(1e-4).sqrt() - 1) * scaling

    expected = huber(rgb, target).abs().mean() + huber(opacity, alpha).abs().mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    assert float(mse) == pytest.approx(float(((rgb - target) ** 2).mean()))


def test_a_preset_over_a_config_file_says_what_it_replaced(tmp_path, capsys):
    """`--config c.json --preset keras`: the preset goes over the file (documented), and the file's
    steps were lost without a word. The run now says which of the file's values the preset replaced;
    a flag typed beside them is the user's own and is not listed."""
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"steps": 30, "lr": 0.02, "eval_every": 7}))
    args = build_parser().parse_args(["train", "--config", str(file), "--preset", "keras", "--lr", "0.5"])
    cfg = run_config(args)
    assert (cfg.steps, cfg.lr, cfg.eval_every) == (PRESETS["keras"].values["steps"], 0.5, 7)
    out = capsys.readouterr().out
    assert f"note: --preset keras replaced what {file} set: steps 30 -> {cfg.steps}" in out, out
    assert "lr" not in out and "eval_every" not in out  # typed beside it; not the preset's
    run_config(build_parser().parse_args(["train", "--config", str(file)]))
    assert capsys.readouterr().out == ""  # no preset, nothing replaced


def test_a_preset_sets_every_value_its_recipe_names(tmp_path, capsys):
    """`--config c.json --preset pytorch3d` kept the file's image_order epochs and intervals gaps
    (the preset's doc said image_order=random, and its opacity mapping needs the bins), and the
    file's or the scene kind's density noise and appearance codes, which neither tutorial has:
    the presets now set them, and say they replaced them."""
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"image_order": "epochs", "intervals": "gaps", "pixel_sampling": "error",
                                "density_noise": 1.0, "appearance_dim": 8}))
    for name in ("pytorch3d", "keras"):
        cfg = run_config(build_parser().parse_args(["train", "--config", str(file), "--preset", name]))
        assert (cfg.density_noise, cfg.appearance_dim) == (0.0, 0), name
        assert "density_noise 1.0 -> 0.0" in capsys.readouterr().out
    cfg = run_config(build_parser().parse_args(["train", "--config", str(file), "--preset", "pytorch3d"]))
    assert (cfg.image_order, cfg.intervals, cfg.pixel_sampling) == ("random", "bins", "uniform")
    for key in ("image_order", "intervals", "pixel_sampling", "density_noise", "appearance_dim"):
        assert f"{key}=" in PRESETS["pytorch3d"].describe(), key


def test_a_dry_run_shows_the_presets_recipe(tiny_scene, tmp_path, capsys):
    """`--dry-run` checked a preset's run but did not show which values the preset and the flags
    decide; a real run prints the recipe first, and now the dry run does too."""
    from taichi_nerf import cli

    assert cli.main(["train", "--preset", "keras", "--steps", "5", "--data", str(tiny_scene), "--out",
                     str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert PRESETS["keras"].describe(TrainConfig().replace(preset="keras", steps=5)).split(";")[0] in out, out
    assert "overridden: steps=5" in out and not (tmp_path / "r").exists()


def test_options_override_the_preset(tmp_path):
    parser = build_parser()
    cfg = run_config(parser.parse_args(["train", "--preset", "pytorch3d", "--steps", "7", "--lr", "0.01", "--width",
                                        "32"]))
    assert (cfg.preset, cfg.steps, cfg.lr, cfg.width, cfg.depth, cfg.samples_per_ray) == ("pytorch3d", 7, 0.01, 32, 2,
                                                                                          128)
    line = PRESETS["pytorch3d"].describe(cfg)
    assert "samples_per_ray=128" in line and "overridden: width=32, lr=0.01, steps=7" in line
    # a --config file is the base the preset goes over; inside a file, the file's keys win
    file = tmp_path / "c.json"
    file.write_text(json.dumps({"lr": 0.02, "eval_every": 7}))
    cfg = run_config(parser.parse_args(["train", "--config", str(file), "--preset", "keras"]))
    assert (cfg.lr, cfg.eval_every, cfg.depth) == (1e-3, 7, 8)
    file.write_text(json.dumps({"preset": "keras", "lr": 0.02}))
    cfg = run_config(parser.parse_args(["train", "--config", str(file), "--samples", "16"]))
    assert (cfg.preset, cfg.lr, cfg.depth, cfg.samples_per_ray) == ("keras", 0.02, 8, 16)
    # the API: tn.train(preset=..., **overrides) builds its config the same way
    assert TrainConfig().replace(preset="keras", steps=5).steps == 5
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.from_dict({"preset": "tensorflow"})


def test_defaults_keep_todays_network(device):
    with torch_seeded(0):  # the first weights, whose spread is checked
        r = Renderer.from_config(TrainConfig(), SCENE, device)
    f = r.field
    assert (r.pos.include_input, r.pos.base, r.direction.include_input, r.direction.base) == (True, 1.0, True, 1.0)
    shapes = {k: tuple(v.shape) for k, v in f.state_dict().items() if k != "density_scale"}
    assert shapes == {
        "trunk.0.weight": (64, 51), "trunk.0.bias": (64,), "trunk.1.weight": (64, 64), "trunk.1.bias": (64,),
        "trunk.2.weight": (64, 64 + 51), "trunk.2.bias": (64,), "trunk.3.weight": (64, 64), "trunk.3.bias": (64,),
        "density_head.weight": (1, 64), "density_head.bias": (1,), "feature.weight": (64, 64), "feature.bias": (64,),
        "color_hidden.weight": (32, 64 + 27), "color_hidden.bias": (32,), "color.weight": (3, 32), "color.bias": (3,)}
    assert float(f.density_head.weight.detach().std()) < 0.02 and float(f.density_head.bias.detach()) == -4.0
    h = torch.randn(10, 64, device=r.aabb.device, generator=torch.Generator(device=r.aabb.device).manual_seed(0))
    assert torch.allclose(f.density_from(h), F.softplus(f.density_head(h)[:, 0]), rtol=1e-6, atol=1e-7)
    assert r.aabb.abs().max() == 1.5  # samples stay clipped to the scene box


def test_bad_preset_values_are_one_line_errors():
    with pytest.raises(ValueError, match="batch_rays must be at least 1"):
        TrainConfig(batch_rays=0).validate()
    with pytest.raises(ValueError, match="skip_layer"):
        TrainConfig(skip_layer=4).validate()
    with pytest.raises(ValueError, match="lr_step_at"):
        TrainConfig(lr_step_at=1.5).validate()
    for edge in (0.0, 1.0):  # "must be between 0 and 1" for 1: the ends are not allowed, and it did not say so
        with pytest.raises(ValueError, match=rf"lr_step_at must be above 0 and below 1 .*, got {edge:g}"):
            TrainConfig(lr_step_at=edge).validate()
    with pytest.raises(ValueError, match="intervals gaps needs the stratified sampler"):
        TrainConfig(intervals="gaps").validate()  # the default sampler is the grid's
    with pytest.raises(ValueError, match="image_order"):
        TrainConfig(image_order="sorted").validate()
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--preset", "tensorflow"])
    assert exc.value.code == 2


def test_old_checkpoints_load_and_resume(tiny_scene, tmp_path):
    """Checkpoints written before the preset fields: their configs lack the new keys and their
    weights the density scale; they load with today's defaults and resume."""
    cfg = tiny_config(tiny_scene, tmp_path, steps=4, checkpoint_every=0, eval_every=1000)
    trainer = Trainer(cfg)
    trainer.step()
    path = trainer.save_checkpoint()
    state = torch.load(path, weights_only=True)
    new = {"preset", "view_dependent", "frequency_base", "include_input", "skip_layer", "activation",
           "density_activation", "feature_layer", "color_width", "init", "clip_to_box", "batch_images",
           "lr_schedule", "lr_step_at", "intervals", "image_order", "adam_eps"}
    assert new <= set(state["config"]) and "density_scale" in state["model"]
    state["config"] = {k: v for k, v in state["config"].items() if k not in new}
    del state["model"]["density_scale"]
    torch.save(state, path)
    renderer, loaded, _ = checkpoint.load(path, ARCH)
    assert all(getattr(loaded, f.name) == f.default for f in dataclasses.fields(TrainConfig) if f.name in new)
    assert torch.equal(renderer.field.trunk[0].weight.cpu(), trainer.field.trunk[0].weight.detach().cpu())
    resumed = Trainer(cfg, resume=True)
    assert resumed.step_count == 1
    resumed.step()
    # a resume must not change what the weights mean
    with pytest.raises(ValueError, match="activation"):
        Trainer(dataclasses.replace(cfg, activation="softplus10"), resume=True)


def test_the_gpu_tutorials_preset_warns_on_a_cpu(tiny_scene, tmp_path, capsys):
    """`--preset pytorch3d --time-limit 20` on a CPU spent 16 s on its step-0 validation and
    trained 1 step, without a word: it is the tutorial's GPU run. A run that shrinks a step (its
    rays, samples or width) is not, and was told "its 320 steps 15-75 min" all the same."""
    from taichi_nerf import cli
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.presets import PRESETS

    assert "tutorial's GPU run" in PRESETS["pytorch3d"].cpu_warning_for(TrainConfig().replace(preset="pytorch3d"))
    argv = ["train", "--data", str(tiny_scene), "--out", str(tmp_path / "run"), "--preset", "pytorch3d", "--steps",
            "1", "--batch-rays", "32", "--samples", "4", "--width", "16", "--color-width", "16", "--pos-frequencies",
            "2", "--dir-frequencies", "2", "--eval-every", "0", "--preview-every", "0", "--video-frames", "0",
            "--no-progress", "--arch", "cpu"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "warning: this preset" not in out  # shrunk: the tutorial's figures are not this run's
    assert cli.main(argv[:5] + ["--overwrite", "--preset", "keras", "--steps", "1", *argv[17:]]) == 0
    out = capsys.readouterr().out  # the Keras example's whole-image steps, of 32 x 32 images here
    assert "GPU run" not in out and "warning: this preset's steps are whole images" in out
