"""The stuck-run warnings (said once, with the likely cause and the fix) and the progress bar's numbers."""
import torch

from taichi_nerf.outputs.metrics import psnr
from taichi_nerf.training.diagnostics import STUCK_AFTER_STEPS, StuckWatch, flat_colour_psnr

from .conftest import tiny_config


def test_flat_colour_psnr_is_the_psnr_of_the_mean_colour():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(8, 6, 3, generator=g), torch.rand(5, 6, 3, generator=g)]
    mean = torch.cat([i.reshape(-1, 3) for i in images]).mean(0)
    want = psnr(torch.cat([mean.expand(48, 3), mean.expand(30, 3)]), torch.cat([i.reshape(-1, 3) for i in images]))
    assert abs(flat_colour_psnr(images) - want) < 1e-6


def test_a_run_at_the_flat_colour_level_is_reported_once_with_the_fix():
    watch = StuckWatch(flat_psnr=10.5)
    assert watch.check(100, 10.6, None, 0, "white") == []  # too early to judge
    first = watch.check(STUCK_AFTER_STEPS, 11.0, None, 0, "white")
    assert len(first) == 1 and "flat-colour" in first[0] and "--background" in first[0] and "white" in first[0]
    assert watch.check(STUCK_AFTER_STEPS * 2, 11.0, None, 0, "white") == []  # said once
    assert StuckWatch(flat_psnr=10.5).check(STUCK_AFTER_STEPS, 20.0, None, 0, "white") == []  # learning: quiet
    assert "--background black or random (" in first[0]  # not the one already in use
    # a learning-rate warm-up is waited out: a forward-facing run's 500 steps of it are no sign of being stuck
    assert StuckWatch(flat_psnr=10.5).check(STUCK_AFTER_STEPS + 100, 11.0, None, 0, "random per ray", 500) == []
    late = StuckWatch(flat_psnr=10.5).check(STUCK_AFTER_STEPS + 500, 11.0, None, 0, "random per ray", 500)
    assert len(late) == 1 and "--background black or white (" in late[0]
    # masks make the transparency: the background cannot be what is wrong, so it is not blamed
    masked = StuckWatch(flat_psnr=10.5).check(STUCK_AFTER_STEPS, 11.0, None, 0, "black", masked=True)
    assert len(masked) == 1 and "--background" not in masked[0] and "data info" in masked[0], masked


def test_a_full_occupancy_grid_is_reported_once():
    watch = StuckWatch(flat_psnr=10.0)
    assert watch.check(1000, 20.0, 0.95, 5, "white") == []  # too few updates
    said = watch.check(1000, 20.0, 0.95, 40, "white")
    assert len(said) == 1 and "95% occupied" in said[0] and "--background" in said[0]
    assert watch.check(2000, 20.0, 0.97, 80, "white") == []
    assert StuckWatch(flat_psnr=10.0).check(1000, 20.0, 0.3, 40, "white") == []


def test_the_stuck_warnings_give_a_python_caller_its_keywords():
    """tn.train's caller meets these warnings too, and has no --background, --near/--far/--aabb or --unbounded."""
    flat = StuckWatch(flat_psnr=10.5).check(STUCK_AFTER_STEPS, 10.6, None, 0, "white")[0]
    assert "try --background black or random (from Python: background=)" in flat
    assert flat.endswith("(--near/--far/--aabb (from Python: near=/far=/aabb=))")
    masked = StuckWatch(flat_psnr=10.5).check(STUCK_AFTER_STEPS, 10.6, None, 0, "black", masked=True)[0]
    assert "(--near/--far/--aabb (from Python: near=/far=/aabb=))" in masked
    fog = StuckWatch(flat_psnr=10.0).check(2000, 20.0, 0.97, 80, "white")[0]
    assert "--background random (from Python: background=)" in fog
    assert "--unbounded (from Python: unbounded=True) for captures" in fog


def test_the_trainer_runs_the_watch_after_validation(tiny_scene, tmp_path, monkeypatch):
    from taichi_nerf.training import diagnostics
    from taichi_nerf.training.trainer import Trainer

    monkeypatch.setattr(diagnostics, "STUCK_AFTER_STEPS", 0)
    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "run", steps=2))
    heard = []
    trainer.stuck_watch.say = heard.append
    trainer.stuck_watch.flat_psnr = 99.0  # pretend the flat colour were unbeatable: the run looks stuck
    trainer.step()
    trainer.validate(1)
    trainer.validate(1)
    assert len(heard) == 1 and heard[0].startswith("warning: validation PSNR")
    assert trainer.stuck_watch.messages == [heard[0][len("warning: "):]]


def test_the_progress_bar_shows_the_last_validation_with_its_step():
    """The bar showed the step-0 validation's PSNR as "val" for a whole run whose next validation
    never came (a short time limit): each PSNR now carries its step, and a resumed run starts
    with the checkpoint's."""
    from types import SimpleNamespace

    from taichi_nerf.config import TrainConfig
    from taichi_nerf.training.diagnostics import ProgressBar

    cfg = TrainConfig(time_limit_s=0, steps=100, progress=False)
    resumed = SimpleNamespace(cfg=cfg, step_count=40, last_val_psnr=21.234, time_used=0.0)
    bar = ProgressBar(resumed)
    assert bar.numbers == {"val": "21.23@40"}
    bar.on_log(resumed, {"step": 50, "loss": 0.01, "train_psnr": 22.0, "rays_per_s": 1000.0, "samples_per_ray": 5.0})
    assert bar.numbers["val"] == "21.23@40" and bar.numbers["psnr"] == "22.00"  # a training row leaves it
    bar.on_log(resumed, {"step": 60, "val_psnr": 23.456})
    assert bar.numbers["val"] == "23.46@60"
    bar.close()
    fresh = ProgressBar(SimpleNamespace(cfg=cfg, step_count=0, last_val_psnr=None, time_used=0.0))
    assert "val" not in fresh.numbers  # nothing measured yet: nothing shown
    fresh.close()


def test_the_curves_have_round_step_ticks():
    """curves.png's step axis had one label, "step N" at its end; now round ticks."""
    from taichi_nerf.training.plots import nice_ticks

    assert nice_ticks(0, 18564) == [0, 5000, 10000, 15000]
    assert nice_ticks(1000, 1230) == [1000, 1050, 1100, 1150, 1200]
    assert nice_ticks(0, 30) == [0, 5, 10, 15, 20, 25, 30]
    for lo, hi in ((0, 7), (3, 999), (0, 123456)):
        ticks = nice_ticks(lo, hi)
        assert 2 <= len(ticks) <= 7 and lo <= ticks[0] and ticks[-1] <= hi


def test_the_continue_hint_of_a_finished_run_asks_for_more_steps():
    """gui --train on a run that made its steps stops at once: the hint gives a new total, since the
    same command again would only validate again."""
    from types import SimpleNamespace

    from taichi_nerf.config import TrainConfig
    from taichi_nerf.training.diagnostics import continue_command

    command = "taichi-nerf gui --ckpt runs/gui --train"
    mid_run = SimpleNamespace(cfg=TrainConfig(steps=40), step_count=12)
    finished = SimpleNamespace(cfg=TrainConfig(steps=40), step_count=40)
    assert continue_command(mid_run, command) == command
    assert continue_command(finished, command) == f"{command} --steps 80 (a new total: the run made 40 steps)"
    # train's command keeps the run's time limit: once that is spent, more steps train nothing (without --steps
    # the time ended a run past the window's 20000), so it asks for more time; the window keeps no limit
    timed = SimpleNamespace(cfg=TrainConfig(time_limit_s=240.0), step_count=25000, time_used=1.0, clock_s=240.3)
    train = "train --resume runs/t"
    more_time = f"{train} --time-limit 480 (a new total: the run trained 240 s)"
    assert continue_command(timed, train, timed=True) == more_time
    assert continue_command(timed, command) == f"{command} --steps 45000 (a new total: the run made 25000 steps)"
    timed.time_used = 0.5  # stopped (Ctrl-C) with time left: the same command trains on
    assert continue_command(timed, train, timed=True) == train


def test_the_nothing_to_train_note_asks_for_what_would_train():
    """A resume of a run with nothing left asked for "--steps N or --time-limit SECONDS" whatever ended it: without
    --steps a time limit alone ends a run, and once its time is spent more steps train nothing; a --steps given
    ends a run whatever its time limit. It asks for the totals that would train."""
    from types import SimpleNamespace

    from taichi_nerf.config import TrainConfig
    from taichi_nerf.training.diagnostics import nothing_to_train_note

    def how(step_count, carried=0.0, call="{}", **cfg):
        trainer = SimpleNamespace(cfg=TrainConfig(**cfg), step_count=step_count, clock_carried_s=carried)
        note = nothing_to_train_note(trainer, "--steps N", "--time-limit SECONDS", call)
        return note.split(": nothing to train, it validates again; to train on, give the new total: ")

    timed = how(31000, 240.2, time_limit_s=240.0)  # the time ended it, past the default 20000 steps
    assert timed == ["note: the run already used its 240 s time limit (240 s trained)", "--time-limit SECONDS"]
    assert how(20000)[1] == "--steps N or --time-limit SECONDS"  # the default count: a limit lets the time decide
    assert how(500, steps=500)[1] == "--steps N"  # a --steps given ends the run under any limit
    assert how(500, 60.0, steps=500, time_limit_s=60.0)[1] == "--steps N and --time-limit SECONDS"
    assert how(31000, 240.2, "train({})", time_limit_s=240.0)[1] == "train(--time-limit SECONDS)"


def test_a_time_limited_run_past_the_windows_steps_says_it_opens_paused(tiny_scene, tmp_path, monkeypatch):
    """Without --steps a time limit alone ends a run, and one stopped (Ctrl-C) with time left may be past the steps
    the window trains to: the window opens it paused there, and its start lines said nothing of it (they did only
    where train had nothing left to train). The window's count is 3 here."""
    import dataclasses

    from taichi_nerf import config
    from taichi_nerf.training.diagnostics import start_lines
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    cfg = tiny_config(tiny_scene, tmp_path, steps=5, eval_every=0, preview_every=0, checkpoint_every=0)
    Trainer(cfg).run()
    monkeypatch.setattr(config, "DEFAULT_STEPS", 3)
    resumed = Trainer(dataclasses.replace(cfg, steps=None, time_limit_s=600.0), resume=True)
    assert not resumed.nothing_to_train()  # train would train on: 600 s left
    said = "\n".join(start_lines(resumed, True, trains_on="space"))
    assert "note: the run already made its 3 steps: it opens paused there; space trains on" in said, said


def test_a_series_of_one_point_is_drawn(tmp_path):
    """An 8-step run logs one train PSNR row: curves.png showed that series only in its legend."""
    import json

    import numpy as np
    from PIL import Image

    from taichi_nerf.training.plots import SERIES_COLOURS, write_curves

    rows = [{"step": 8, "train_psnr": 15.0}, {"step": 0, "val_psnr": 9.0}, {"step": 8, "val_psnr": 14.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pixels = np.asarray(Image.open(write_curves(tmp_path)).convert("RGB"))
    right_of_legend = pixels[:, 200:]  # the legend's names are written at the frame's top left
    for colour in SERIES_COLOURS:
        assert (right_of_legend == colour).all(axis=-1).sum() >= 9, colour  # a mark where the point is


def test_the_start_lines_say_when_pixel_sampling_error_is_not_used(tiny_scene, tmp_path):
    """--pixel-sampling error with whole-image batches draws no error map: the start lines listed "error" among
    the choices and said nothing, while every step drew its rays uniformly."""
    from taichi_nerf.training.diagnostics import start_lines
    from taichi_nerf.training.trainer import Trainer

    whole = Trainer(tiny_config(tiny_scene, tmp_path / "whole", batch_rays=0, batch_images=1, pixel_sampling="error"))
    said = "\n".join(start_lines(whole, False))
    assert "note: --pixel-sampling error is not used with whole images a step (--batch-images)" in said, said
    assert "the error map" not in said
    mapped = Trainer(tiny_config(tiny_scene, tmp_path / "mapped", pixel_sampling="error"))
    said = "\n".join(start_lines(mapped, False))
    assert "rays: half of each step's where the field's recent error is largest" in said and "not used" not in said
