"""Trainer behaviour: outputs, reproducibility, resume, interruption, divergence."""
import json
import math
import re
import signal
import subprocess
import sys

import pytest
import torch

from taichi_nerf.api import evaluate
from taichi_nerf.config import TrainConfig
from taichi_nerf.rendering.renderer import RayOutput
from taichi_nerf.runs.checkpoint import load, read_state
from taichi_nerf.training.losses import training_loss
from taichi_nerf.training.trainer import Trainer, TrainingDiverged

from .conftest import (
    ARCH,
    checkout_env,
    fake_clock,
    refused,
    run_cli,
    sampled_images,
    stop_if_running,
    tiny_config,
    wait_for,
)


def params(trainer):
    return torch.cat([p.detach().flatten().cpu() for p in trainer.field.parameters()])


@pytest.mark.parametrize("sampler", ["grid", "stratified", "hierarchical"])
def test_run_writes_everything_and_learns(tiny_scene, tmp_path, sampler):
    from taichi_nerf.training.diagnostics import start_lines

    cfg = tiny_config(tiny_scene, tmp_path / sampler, sampler=sampler, steps=60, fine_samples=16, samples_per_ray=16)
    trainer = Trainer(cfg)
    said = {"grid": "x 16 samples", "stratified": "x 16 samples", "hierarchical": "x 16 samples + 16 placed by their"}
    assert said[sampler] in start_lines(trainer, resume=False)[-1]
    result = trainer.run()
    rows = [json.loads(line) for line in (tmp_path / sampler / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val_psnr"] for r in rows if "val_psnr" in r]
    assert vals[-1] > vals[0] + 2.0, vals  # it learns something in 60 tiny steps
    # the built-in objects on transparency: the final validation also scores their pixels alone
    final = rows[-1]
    assert final["final"] and 5.0 < final["val_object_psnr"] == result.val_object_psnr
    assert final["val_object_psnr"] != final["val_psnr"]
    assert result.checkpoint.is_file() and (tmp_path / sampler / "curves.png").is_file()
    assert sorted(p.name for p in (tmp_path / sampler / "previews").iterdir())[:1] == ["step_000020.png"]
    assert any("loss" in r and "rays_per_s" in r for r in rows)
    renderer, loaded_cfg, state = load(result.checkpoint, cfg.arch)
    assert loaded_cfg.sampler == sampler and state["step"] == 60
    # eval scores the checkpoint's val views as the final validation did (validation.view_scores, one path)
    scored = evaluate(result.checkpoint, "val", arch=cfg.arch, progress=False)
    assert scored["psnr"] == pytest.approx(final["val_psnr"], abs=1e-4)
    assert scored["object_psnr"] == pytest.approx(final["val_object_psnr"], abs=1e-4)
    if sampler == "grid":
        assert renderer.grid.updates > 0 and 0.0 < renderer.grid.occupancy < 0.5
        # empty space is being skipped: far fewer samples than marching an all-occupied grid
        from taichi_nerf.stages.cameras import image_rays
        from taichi_nerf.stages.occupancy import OccupancyGrid

        val = Trainer(cfg).val
        o, d = image_rays(val.poses.to(renderer.device), val.intrinsics.to(renderer.device), 0, val.width, 0,
                          val.width * val.height)
        full = OccupancyGrid(renderer.grid.aabb, cfg.grid_resolution, cfg.march_steps_for(renderer.scene),
                             device=renderer.device)
        near, far = renderer.scene.near, renderer.scene.far
        assert renderer.grid.march(o, d, near, far).num_samples < 0.5 * full.march(o, d, near, far).num_samples


@pytest.mark.parametrize("pixel_sampling", ["uniform", "error"])
def test_same_seed_same_result_and_resume_continues_exactly(tiny_scene, tmp_path, pixel_sampling):
    """The error map (pixel_sampling error) is part of what a resume continues: its errors and the
    sampling table it draws from until the next rebuild."""
    def config(out):
        return tiny_config(tiny_scene, tmp_path / out, steps=30, checkpoint_every=0, eval_every=1000,
                           pixel_sampling=pixel_sampling)

    a = Trainer(config("a"))
    a.run()
    b = Trainer(config("b"))
    b.run()
    assert torch.equal(params(a), params(b))
    # 12 steps, stop; resume to 30: same weights as the uninterrupted run (grid updates included)
    c = Trainer(config("c"))
    for _ in range(12):
        c.step()
    c.save_checkpoint()
    d = Trainer(config("c"), resume=True)
    assert d.step_count == 12
    d.run()
    assert torch.allclose(params(a), params(d), atol=1e-6)
    assert (a.ray_batches.error_map is None) == (pixel_sampling == "uniform")


def test_a_resume_on_other_training_images_starts_the_error_map_afresh(tiny_scene, tmp_path, capsys):
    """--every on a resume changes the training images (allowed): the saved error map has other
    tiles, so it starts afresh, and says so, instead of the checkpoint being called damaged."""
    cfg = tiny_config(tiny_scene, tmp_path / "r", steps=4, checkpoint_every=0, eval_every=1000,
                      pixel_sampling="error")
    Trainer(cfg).run()
    capsys.readouterr()
    resumed = Trainer(cfg.replace(steps=6, every=2), resume=True)
    assert "note: the error map (--pixel-sampling error) starts afresh: the training images changed" in \
        capsys.readouterr().out
    assert not resumed.ray_batches.error_map.visited.any() and resumed.run().step == 6


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_scene, tmp_path):
    cfg = tiny_config(tiny_scene, tmp_path, steps=40, checkpoint_every=10)
    trainer = Trainer(cfg)
    for _ in range(10):
        trainer.step()
    good = trainer.save_checkpoint()
    before = good.read_bytes()
    with torch.no_grad():
        trainer.field.trunk[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        trainer.run()
    assert good.read_bytes() == before


def test_checkpoint_write_is_atomic(tiny_scene, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(tiny_scene, tmp_path))
    path = trainer.save_checkpoint()
    before = path.read_bytes()

    def crash(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        trainer.save_checkpoint()
    assert path.read_bytes() == before


def test_config_validation_and_file(tmp_path):
    with pytest.raises(ValueError, match="sampler"):
        TrainConfig(sampler="magic").validate()
    (tmp_path / "c.json").write_text('{"steps": 7, "nonsense": 1}')
    with pytest.raises(ValueError, match="unknown configuration keys: nonsense"):
        TrainConfig.from_file(tmp_path / "c.json")
    (tmp_path / "d.json").write_text('{"steps": 7, "lr": 0.001}')
    assert TrainConfig.from_file(tmp_path / "d.json").steps == 7


def wait_until_training(proc, out):
    """Until the run in ``out`` has logged 3 rows of metrics (it is training); fails if it ends first or
    never gets there."""
    metrics = out / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) > 2, "3 rows of metrics", proc)


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_continues(tiny_scene, tmp_path, capsys):
    from taichi_nerf.cli import main

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "taichi_nerf", "train", "--data", str(tiny_scene), "--out", str(out), "--steps",
           "100000",
           "--width", "32", "--depth", "2", "--batch-rays", "128", "--samples", "16", "--checkpoint-every", "100000",
           "--eval-every", "100000", "--preview-every", "0", "--no-progress", "--video-frames", "0", "--arch", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=checkout_env())
    try:
        wait_until_training(proc, out)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:  # a run of 100000 steps left behind (a stop that never came) would load the rest of the suite
        stop_if_running(proc)
    assert proc.returncode == 130, stderr
    assert "checkpoint saved" in stdout and "Traceback" not in stderr
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] > 0
    # the resume in this process: one interpreter start less
    code = main(["train", "--resume", str(out), "--steps", str(state["step"] + 5), "--no-progress", "--video-frames",
                 "0", "--arch", "cpu"])
    resumed = capsys.readouterr()
    assert code == 0, resumed.err
    assert f"resuming at step {state['step']}" in resumed.out
    assert torch.load(out / "checkpoint.pt", weights_only=False)["step"] == state["step"] + 5
    assert f"trained 5 steps (step {state['step']} to {state['step'] + 5}) in " in resumed.out  # not the total



@pytest.mark.slow
def test_a_dropped_ssh_session_saves_the_run(tiny_scene, tmp_path):
    """SIGHUP (the terminal of a remote session went away) ended a run at once, losing the steps
    since its last checkpoint; now it stops and saves as Ctrl-C does. (Started with SIGHUP at its
    default: a suite run under nohup passes it on ignored.)"""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "taichi_nerf", "train", "--data", str(tiny_scene), "--out", str(out), "--steps",
           "100000", "--width", "16", "--depth", "2", "--batch-rays", "64", "--samples", "8", "--checkpoint-every",
           "100000", "--eval-every", "0", "--preview-every", "0", "--no-progress", "--video-frames", "0", "--arch",
           "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=checkout_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        wait_until_training(proc, out)
        proc.send_signal(signal.SIGHUP)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        stop_if_running(proc)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "checkpoint saved" in stdout and torch.load(out / "checkpoint.pt", weights_only=False)["step"] > 0

def test_a_resume_keeps_to_no_video_where_the_run_ended_without_one(run, capsys):
    """A run from before checkpoints kept train's --video-frames, that reached its end without a
    video, was started with --video-frames 0: its resume makes none unless asked (it used to render
    the default video, minutes on a slow machine)."""
    from taichi_nerf.cli import main
    from taichi_nerf.cli.train import ended_without_video

    assert ended_without_video(run)
    assert main(["train", "--resume", str(run), "--steps", "12", "--no-progress", "--arch", ARCH]) == 0
    out = capsys.readouterr().out
    assert "note: no video at the end, as the run was started (--video-frames N renders one)" in out
    assert "trained 2 steps (step 10 to 12) in " in out
    assert not list(run.glob("orbit*"))
    (run / "orbit.mp4").write_bytes(b"")  # a run that made its video makes it again
    assert not ended_without_video(run)


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "/nonexistent/place"], "no such file or folder"),
    (["render", "--ckpt", "/nonexistent.pt"], "no checkpoint found"),
    (["eval", "--ckpt", "/nonexistent.pt"], "no checkpoint found"),
    (["train", "--steps", "0", "--data", "."], "bad configuration"),
])
def test_cli_errors_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    """In this process (an interpreter start less each); test_corrupt_checkpoint_is_a_clear_error's
    refusal goes through `python -m taichi_nerf` and its exit status."""
    monkeypatch.chdir(tmp_path)
    refused(capsys, args, message)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    res = run_cli("render", "--ckpt", str(bad), "--out", str(tmp_path / "o.mp4"))
    assert res.returncode == 2 and "checkpoint.pt: not a checkpoint file" in res.stderr


def test_huber_colour_and_silhouette_loss_terms(tiny_scene, tmp_path):
    trainer = Trainer(tiny_config(tiny_scene, tmp_path, loss="huber", huber_delta=0.1, silhouette_weight=0.5))
    out = RayOutput(rgb=torch.zeros(4, 3), opacity=torch.zeros(4), depth=None, weights=None, samples=None)
    target, alpha = torch.ones(4, 3), torch.ones(4)
    loss, mse = training_loss(trainer.cfg, out, target, alpha)
    huber_at_1 = 0.1 * (1.0 - 0.5 * 0.1)  # linear branch of the Huber loss
    assert abs(float(loss) - (huber_at_1 + 0.5 * huber_at_1)) < 1e-6 and abs(float(mse) - 1.0) < 1e-6
    trainer.cfg.silhouette_weight = 0.0
    assert abs(float(training_loss(trainer.cfg, out, target, alpha)[0]) - huber_at_1) < 1e-6


def test_resume_argument_errors_are_one_line(run, tmp_path, capsys):
    refused(capsys, ["train", "--resume", run, "--out", tmp_path / "elsewhere"], "drop --out")  # in this process
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({"hello": 1}, foreign / "checkpoint.pt")
    refused(capsys, ["train", "--resume", foreign], "not a taichi-nerf checkpoint")


def test_api_resume_uses_the_saved_configuration(tiny_scene, tmp_path):
    import taichi_nerf as tn

    first = tn.train(tiny_config(tiny_scene, tmp_path / "r", steps=6, eval_every=0, preview_every=0, width=16))
    assert first.step == 6
    again = tn.train(resume=True, out=str(tmp_path / "r"), steps=9)
    assert again.step == 9
    assert torch.load(again.checkpoint, weights_only=True)["config"]["width"] == 16


def test_api_resume_says_what_it_does_not_use_from_a_config(tiny_scene, tmp_path, capsys):
    """train(config, resume=True) takes only ``out`` from the config: the same config again says
    nothing; one that asks for more steps is told to give them as a keyword."""
    import taichi_nerf as tn

    cfg = tiny_config(tiny_scene, tmp_path / "r", steps=4, eval_every=0, preview_every=0)
    tn.train(cfg)
    capsys.readouterr()
    assert tn.train(cfg, resume=True).step == 4
    assert "not used from config" not in capsys.readouterr().out
    assert tn.train(cfg.replace(steps=6), resume=True).step == 4
    said = capsys.readouterr().out
    assert ("note: resume=True continues with the run's own configuration; not used from config: steps=6 "
            "(the run's: 4) (give a change as a keyword: train(resume=True, out=..., steps=...))") in said
    assert tn.train(cfg.replace(steps=6), resume=True, steps=6).step == 6
    assert "not used from config" not in capsys.readouterr().out
    assert tn.train(tn.TrainConfig(out=cfg.out, steps=6), resume=True).step == 6  # the defaults it leaves: not named
    assert "not used from config" not in capsys.readouterr().out


def test_eval_every_zero_validates_only_at_the_end(tiny_scene, tmp_path):
    result = Trainer(tiny_config(tiny_scene, tmp_path, steps=10, eval_every=0, preview_every=0)).run()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_psnr" in r] == [10] and result.val_psnr is not None


def test_training_without_data_uses_the_cached_builtin_scene(tmp_path, monkeypatch):
    monkeypatch.setenv("TAICHI_NERF_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(None, tmp_path / "run", steps=3, eval_every=0, preview_every=0, scene_views=6, scene_size=24)
    first = Trainer(cfg)
    assert first.train.count == 6 and first.train.width == 24
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and (cached[0] / "transforms_train.json").is_file()
    stamp = (cached[0] / "transforms_train.json").stat().st_mtime_ns
    Trainer(cfg).run()  # second use loads the cache instead of rendering again
    assert (cached[0] / "transforms_train.json").stat().st_mtime_ns == stamp


def test_dataset_flags_reach_the_config_in_train_and_gui():
    """The dataset flags are copied into TrainConfig by both commands (tests/test_cli.py covers every flag)."""
    from taichi_nerf.cli import build_parser, config_overrides

    for command in ("train", "gui"):
        args = build_parser().parse_args([command, "--format", "npz", "--near", "1.5", "--every", "2", "--no-ndc"])
        cfg = TrainConfig().replace(**config_overrides(args))
        assert (cfg.data_format, cfg.near, cfg.every, cfg.ndc) == ("npz", 1.5, 2, False)


class HookRecorder:
    """Every hook, as (name, step, value) in call order."""

    def __init__(self):
        self.calls = []

    def on_step(self, trainer, info):
        self.calls.append(("step", trainer.step_count, info["step"]))

    def on_log(self, trainer, record):
        self.calls.append(("log", record["step"], "val_psnr" if "val_psnr" in record else "loss"))

    def on_validate(self, trainer, psnr):
        self.calls.append(("validate", trainer.step_count, psnr))

    def on_preview(self, trainer, path):
        self.calls.append(("preview", trainer.step_count, path.name))

    def on_checkpoint(self, trainer, path):
        self.calls.append(("checkpoint", trainer.step_count, path.name))

    def steps(self, name, value=None):
        return [s for n, s, v in self.calls if n == name and (value is None or v == value)]


def test_an_error_in_a_callback_saves_the_steps_before_it_is_raised(tiny_scene, tmp_path, capsys):
    """A user's hook that raises (or a bug) ended run() with every step since the last checkpoint lost; with
    checkpoint_every=0 the run kept only config.json and metrics.jsonl. A divergence keeps what it kept."""
    import pytest

    from taichi_nerf.runs import checkpoint
    from taichi_nerf.training.trainer import TrainingDiverged

    class FailsAt7:
        def __init__(self, error):
            self.error = error

        def on_step(self, trainer, info):
            if trainer.step_count == 7:
                raise self.error

    for name, error in (("bug", ValueError("a hook's bug")), ("diverged", TrainingDiverged("loss is not finite"))):
        trainer = Trainer(tiny_config(tiny_scene, tmp_path / name, sampler="stratified", steps=20, eval_every=0,
                                      preview_every=0, checkpoint_every=0))
        trainer.callbacks.append(FailsAt7(error))
        with pytest.raises(type(error)):
            trainer.run()
        saved = tmp_path / name / "checkpoint.pt"
        if name == "bug":
            assert int(checkpoint.read_state(saved)["step"]) == 7
            said = capsys.readouterr().err
            assert f"an error stopped the run at step 7; the steps so far are saved in {saved}" in said
        else:
            assert not saved.exists()


def test_advance_runs_the_schedule_and_calls_the_hooks(tiny_scene, tmp_path):
    cfg = tiny_config(tiny_scene, tmp_path / "a", sampler="stratified", steps=12, log_every=5, eval_every=4,
                      preview_every=6, checkpoint_every=10)
    trainer = Trainer(cfg)
    hooks = HookRecorder()
    trainer.callbacks += [object(), hooks]  # an object without hooks is skipped
    for _ in range(12):
        trainer.advance()
    assert hooks.steps("step") == list(range(1, 13))
    assert hooks.steps("log", "loss") == [5, 10, 12]  # every log_every, and the last planned step
    assert hooks.steps("validate") == hooks.steps("log", "val_psnr") == [4, 8]
    assert hooks.steps("preview") == [6, 12] and hooks.steps("checkpoint") == [10]
    validate_at_4 = [call[:2] for call in hooks.calls].index(("validate", 4))
    assert hooks.calls[validate_at_4 + 1] == ("log", 4, "val_psnr")  # hooks fire as the work happens
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 5, 8, 10, 12] == [r["step"] for r in trainer.history]
    assert 0 < trainer.last_samples_per_ray <= cfg.samples_per_ray

    # run() drives the same schedule, plus its own start and end; its progress bar is a
    # callback that is gone afterwards
    ran = Trainer(cfg.replace(out=str(tmp_path / "b")))
    run_hooks = HookRecorder()
    ran.callbacks.append(run_hooks)
    ran.run()
    assert ran.callbacks == [ran.stuck_watch, run_hooks]  # the bar came and went; the stuck watch stays
    assert run_hooks.steps("step") == hooks.steps("step") and run_hooks.steps("log", "loss") == [5, 10, 12]
    assert run_hooks.steps("validate") == [0, 4, 8, 12]  # step 0, the schedule, the final validation
    assert run_hooks.steps("checkpoint") == [10, 12, 12]  # the schedule; saved before and after the final validation
    assert run_hooks.steps("preview") == [6, 12]  # the schedule's at 12 is the end's (the same weights): once
    assert torch.equal(params(trainer), params(ran))


def test_a_time_limited_run_ends_its_decay_when_the_time_runs_out(tiny_scene, tmp_path, capsys):
    """--time-limit stops far before --steps: the learning rate must still have decayed to lr_final,
    and the checkpoint keeps that progress, so a resumed run does not jump back to a high rate.
    The progress bar counts the time limit's seconds, not the steps that are never reached: it
    ends full, with the step and the training numbers beside it, and a bar over the final
    validation follows; the first and last lines say that the limit, not the steps, ends the run.
    Each step costs 0.1 s of the test's own clock."""
    from taichi_nerf.cli.train import report_end, report_start

    cfg = tiny_config(tiny_scene, tmp_path, steps=100000, checkpoint_every=0, eval_every=0).replace(
        time_limit_s=1.5, progress=True)
    trainer = Trainer(cfg)
    fake_clock(trainer, {"step": 0.1})
    report_start(trainer, resume=False)
    report_end(trainer, trainer.run(), video_frames=0)
    assert trainer.step_count < cfg.steps and trainer.time_used == 1.0
    printed = capsys.readouterr()
    assert "training 100000 steps (or until the 1.5 s time limit) of" in printed.out
    assert f"trained {trainer.step_count} steps in " in printed.out
    took = re.search(r" in ([\d.]+) s \(([\d.]+) s with the final validation\)", printed.out)
    assert took and float(took.group(1)) <= float(took.group(2)), printed.out  # training apart from the validation
    assert "(stopped by the 1.5 s time limit, then validated); validation PSNR" in printed.out
    frames = [f.strip() for f in printed.err.replace("\r", "\n").splitlines() if "time limit" in f]
    assert frames[-1].startswith("100%") and re.search(r" (\d+)/\1 s of the time limit", frames[-1]), frames[-1]
    assert f"step={trainer.step_count}" in frames[-1] and "loss=" in frames[-1] and "/100000" not in frames[-1]
    # then a bar over the final validation's views, which come after the limit
    assert re.search(r"final validation: 100%.* 2/2 ", printed.err), printed.err[-400:]
    assert trainer.lr_at(trainer.step_count) == pytest.approx(cfg.lr_final)
    assert read_state(tmp_path / "checkpoint.pt")["schedule_progress"] == 1.0
    resumed = Trainer(cfg.replace(time_limit_s=0.0), resume=True)
    assert resumed.lr_at(resumed.step_count) == pytest.approx(cfg.lr_final)



def test_the_window_logs_its_planned_last_step_of_a_time_limited_run(tiny_scene, tmp_path, monkeypatch):
    """The window (or the browser) keeps no time limit: a run without --steps trains there to the default count
    and pauses. For a time-limited run its last planned step went unlogged (its row missing where log_every does not
    divide the count) and was validated as a periodic check, which the default count's end is not. The default
    count is 12 here."""
    from taichi_nerf import config

    monkeypatch.setattr(config, "DEFAULT_STEPS", 12)
    trainer = Trainer(tiny_config(tiny_scene, tmp_path, sampler="stratified", steps=None, time_limit_s=600.0,
                                  log_every=5, eval_every=4, preview_every=0, checkpoint_every=0))
    hooks = HookRecorder()
    trainer.callbacks.append(hooks)
    for _ in range(12):  # as the window's frames make them: advance() without run()
        trainer.advance()
    assert hooks.steps("log", "loss") == [5, 10, 12]
    assert hooks.steps("validate") == [4, 8]


def test_without_steps_the_time_limit_alone_ends_the_run(tiny_scene, tmp_path, monkeypatch, capsys):
    """On a fast host ethiopianHead's `--time-limit 240` made the default 20000 steps in 169 s and
    stopped with 71 s left, 0.4 dB short of what its 240 s gave. Without --steps a time-limited
    run now trains until the time runs out, its rate decaying by the time; without a limit, and
    in the window (which keeps none), the default count ends it. The default is 6 here; each
    step costs 0.1 s of the test's own clock."""
    from taichi_nerf import config
    from taichi_nerf.cli.train import report_start

    monkeypatch.setattr(config, "DEFAULT_STEPS", 6)
    cfg = tiny_config(tiny_scene, tmp_path / "timed", checkpoint_every=0, eval_every=0, preview_every=0, steps=None,
                      time_limit_s=1.5)
    trainer = Trainer(cfg)
    assert trainer.schedule_progress(3) == 0.5  # not run(): the window's steps, the default count
    fake_clock(trainer, {"step": 0.1})
    report_start(trainer, resume=False)
    assert trainer.run().step in (14, 15) and trainer.time_used == 1.0  # 1.5 s of 0.1 s steps, not 6
    assert trainer.lr_at(trainer.step_count) == pytest.approx(cfg.lr_final)
    said = capsys.readouterr().out
    assert "; training steps of 256 rays x " in said and " until the 1.5 s time limit" in said, said
    untimed = Trainer(cfg.replace(time_limit_s=0.0, out=str(tmp_path / "untimed")))
    fake_clock(untimed, {"step": 0.1})
    assert untimed.run().step == 6 and untimed.lr_at(6) == pytest.approx(cfg.lr_final)
    given = Trainer(cfg.replace(steps=4, out=str(tmp_path / "given")))
    fake_clock(given, {"step": 0.1})
    assert given.run().step == 4  # a --steps given still ends it first


def test_a_time_limit_is_the_runs_total_across_resumes(tiny_scene, tmp_path, capsys):
    """A run interrupted after 0.8 s of a 2 s limit, resumed as its "continue with" line says,
    trained another whole 2 s with its learning rate decay stretched; now it trains the 1.2 s
    left and ends annealed. Resumed again, it has nothing to train and says so; a larger
    --time-limit trains the difference. Each step costs 0.1 s of the test's own clock."""
    from taichi_nerf.training.diagnostics import start_lines

    cfg = tiny_config(tiny_scene, tmp_path, steps=100000, checkpoint_every=0, eval_every=0,
                      preview_every=0).replace(time_limit_s=2.0)

    def timed(trainer, stop_at=None):
        def interrupt(_name):
            if trainer.step_count + 1 == stop_at:
                raise KeyboardInterrupt  # Ctrl-C, as the second one raises it
        fake_clock(trainer, {"step": 0.1}, before=interrupt)
        return trainer

    first = timed(Trainer(cfg), stop_at=9).run()
    assert first.interrupted and first.step == 8
    resumed = timed(Trainer(cfg, resume=True))
    assert "note: 1 s of the 2 s time limit were used before: it trains the rest" in "\n".join(
        start_lines(resumed, True))  # 0.9 s: the interrupted step's time counts too
    result = resumed.run()
    assert not result.interrupted and 19 <= result.step <= 21, result.step  # 2 s of 0.1 s steps in all
    assert resumed.lr_at(resumed.step_count) == pytest.approx(cfg.lr_final)  # annealed by the total
    capsys.readouterr()
    again = timed(Trainer(cfg, resume=True))
    assert any("the run already used its 2 s time limit" in line for line in start_lines(again, True))
    assert "ended annealed" not in capsys.readouterr().out  # nothing to train: no rate to speak of
    assert again.run().step == result.step  # nothing to train: it validates again
    extended = timed(Trainer(cfg.replace(time_limit_s=3.0), resume=True))
    assert "the run had ended annealed, so what it trains now is at its final learning rate" in capsys.readouterr().out
    assert extended.lr_at(extended.step_count) == pytest.approx(cfg.lr_final)
    more = extended.run()
    assert 9 <= more.step - result.step <= 11  # the second it added

def test_a_resumed_time_limited_run_goes_on_at_the_learning_rate_it_stopped_at(tiny_scene, tmp_path):
    """A run stopped at 80% of its limit, inside the time-driven decay, resumed with the same limit: its rate
    carries on from the saved one (the time before the resume was counted twice, a jump of a third of the way
    to lr_final), and the decay still ends when the time does. Each step costs 0.1 s of the test's own clock."""
    from taichi_nerf.training.lr_schedule import learning_rate

    cfg = tiny_config(tiny_scene, tmp_path, steps=100000, checkpoint_every=0, eval_every=0,
                      preview_every=0).replace(time_limit_s=2.0, lr_warmup=0)
    first = Trainer(cfg)
    fake_clock(first, {"step": 0.1}, before=lambda _: first.step_count + 1 == 16 and throw(KeyboardInterrupt()))
    assert first.run().interrupted and first.step_count == 15
    saved = read_state(tmp_path / "checkpoint.pt")["schedule_progress"]
    assert saved == pytest.approx(0.5)  # 1.6 s of 2 s (the interrupted step's time counts): half the decay
    resumed = Trainer(cfg, resume=True)
    fake_clock(resumed, {"step": 0.1})
    resumed.clock_limit(resumed.start_clock())  # what run() does before its first step
    assert resumed.lr_at(resumed.step_count) == pytest.approx(learning_rate(cfg, saved), rel=1e-9)
    resumed.run()
    assert resumed.lr_at(resumed.step_count) == pytest.approx(cfg.lr_final)


def throw(exc: BaseException):
    raise exc


def test_on_cuda_the_last_planned_step_reads_its_loss_for_its_row(tiny_scene, tmp_path):
    """On CUDA the loss is read (a device sync) only by a step that logs a row, and the last planned step logs
    one where log_every does not divide --steps: it found no numbers (a TypeError at the end of `train --steps
    1050`). The CPU's trainer reads here as CUDA's does."""
    import dataclasses

    trainer = Trainer(tiny_config(tiny_scene, tmp_path, steps=7, log_every=5, eval_every=0, preview_every=0,
                                  checkpoint_every=0))
    trainer.backend = dataclasses.replace(trainer.backend, arch="cuda")
    trainer.run()
    rows = [row for row in trainer.history if "loss" in row]
    assert [row["step"] for row in rows] == [5, 7] and all(math.isfinite(row["loss"]) for row in rows), rows


def test_the_step_that_spends_the_time_limit_is_validated_once(tiny_scene, tmp_path):
    """The final stage validates and previews the last step: a scheduled check at the step that
    spends the limit is skipped, not run twice (the log once showed two validations there)."""
    cfg = tiny_config(tiny_scene, tmp_path, steps=100000, eval_every=1, preview_every=1,
                      checkpoint_every=0).replace(time_limit_s=1.0)
    trainer = Trainer(cfg)
    fake_clock(trainer, {"step": 0.1})  # checks cost nothing on this clock: only the spent limit can skip them
    previews, preview = [], trainer.write_preview
    trainer.write_preview = lambda *a, **k: previews.append(trainer.step_count) or preview(*a, **k)
    result = trainer.run()
    validated = [r["step"] for r in trainer.history if "val_psnr" in r]
    assert 9 <= result.step <= 11 and validated == [*range(result.step), result.step], validated
    assert [r.get("final", False) for r in trainer.history if "val_psnr" in r][-2:] == [False, True]
    assert previews == list(range(1, result.step + 1)), previews  # the last one by the final stage alone


@pytest.mark.parametrize("reads_loss", ["every step", "on log steps"])
def test_a_run_a_time_limit_ends_between_log_lines_logs_its_last_step(tiny_scene, tmp_path, reads_loss):
    """--time-limit (--preset keras on a CPU: a few whole-image steps) ended the run before its
    first log line: metrics.jsonl and curves.png had no training PSNR at all. The last step's
    row is now logged at the end, once, before the final validation's. On CUDA a step reads its
    loss (a device sync) on log steps alone: there the last step's row was still missing; it is
    read at the end now. (That rule is the backend's arch: "on log steps" runs it on the CPU.)"""
    import dataclasses

    from taichi_nerf.runs.run_folder import read_metrics

    cfg = tiny_config(tiny_scene, tmp_path, steps=100000, log_every=100, eval_every=0, preview_every=0,
                      checkpoint_every=0).replace(time_limit_s=0.35)
    trainer = Trainer(cfg)
    if reads_loss == "on log steps":
        trainer.backend = dataclasses.replace(trainer.backend, arch="cuda")  # the rule alone: kernels stay put
    fake_clock(trainer, {"step": 0.1})
    result = trainer.run()
    assert 3 <= result.step <= 4, result.step
    rows = [row for row, _ in read_metrics(tmp_path / "metrics.jsonl")[0]]
    trained = [row for row in rows if "train_psnr" in row]
    assert [row["step"] for row in trained] == [result.step] and trained[0]["loss"] > 0, rows
    assert "train_psnr" in rows[-2] and rows[-1].get("final")  # the step's numbers, then its validation


def test_a_silhouette_run_previews_its_opacity_beside_the_alpha(tiny_scene, tmp_path):
    """The PyTorch3D tutorial shows the rendered silhouette beside the target's: a run with a
    silhouette loss (--preset pytorch3d) previews prediction | truth | depth | opacity | alpha;
    other runs keep the three panels."""
    import numpy as np
    from PIL import Image

    trainer = Trainer(tiny_config(tiny_scene, tmp_path, silhouette_weight=1.0))
    panels = np.asarray(Image.open(trainer.write_preview()), dtype=np.float32) / 255.0
    size = trainer.val.width
    assert panels.shape == (size, 5 * size, 3)
    alpha = trainer.val.rgba[0][..., 3].cpu().numpy() / 255.0  # (uint8)
    assert 0.05 < alpha.mean() < 0.95  # the object on transparency: the panel has something to show
    assert np.abs(panels[:, 4 * size:, 0] - alpha).max() < 1.5 / 255
    opacity = trainer.renderer.render_image(trainer.val.poses, trainer.val.intrinsics, 0, size, trainer.val.height,
                                            trainer.background)["opacity"].reshape(size, size).cpu().numpy()
    assert np.abs(panels[:, 3 * size:4 * size, 1] - opacity).max() < 1.5 / 255
    plain = Trainer(tiny_config(tiny_scene, tmp_path / "plain"))
    assert np.asarray(Image.open(plain.write_preview())).shape == (size, 3 * size, 3)


def test_an_epochs_run_says_how_many_epochs_its_steps_are(tiny_scene, tmp_path):
    """--preset keras counts steps (320: the Keras example's 20 epochs of its 84 images), but a
    Keras user reads epochs, and on other data 320 steps are another number of them: the start
    lines now say what an epoch is and how many the steps make."""
    from taichi_nerf.training.diagnostics import start_lines

    trainer = Trainer(tiny_config(tiny_scene, tmp_path, batch_images=3, batch_rays=0, image_order="epochs", steps=40))
    assert trainer.ray_batches.count == 20
    note = ("note: an epoch is 6 steps (20 training images in batches of 3, the last part-batch dropped): "
            "40 steps are 6.67 epochs")
    assert note in start_lines(trainer, False)
    one = Trainer(tiny_config(tiny_scene, tmp_path / "one", batch_images=3, batch_rays=0, image_order="epochs",
                              steps=6))
    assert any(line.endswith("dropped): 6 steps are 1 epoch") for line in start_lines(one, False))  # not "1 epochs"
    random = Trainer(tiny_config(tiny_scene, tmp_path / "r", batch_images=3, batch_rays=0))
    assert not any("epoch" in line for line in start_lines(random, False))
    # --image-order epochs without --batch-images did nothing and said nothing
    rays = Trainer(tiny_config(tiny_scene, tmp_path / "rays", image_order="epochs"))
    assert "warning: --image-order epochs ignored: it orders --batch-images batches, and without them each step's " \
        "rays come from every training image" in start_lines(rays, False)


def test_periodic_validation_scores_a_quarter_of_the_pixels(tiny_scene, tmp_path):
    """stride 2 renders every 2nd row and column (the training's periodic checks) and agrees with
    the whole images; the final validation keeps whole images."""
    from taichi_nerf.stages.cameras import strided_pixels

    pixels = strided_pixels(6, 4, 2)
    assert pixels.tolist() == [7, 9, 11, 19, 21, 23]  # rows 1 and 3, columns 1, 3 and 5
    trainer = Trainer(tiny_config(tiny_scene, tmp_path, steps=60, eval_every=0, checkpoint_every=0))
    for _ in range(60):
        trainer.step()
    full, strided = trainer.validate(2), trainer.validate(2, stride=2)
    assert full > 12.0 and abs(full - strided) < 1.0, (full, strided)
    assert strided != full  # other pixels, so not the same number


def test_periodic_stride_leaves_about_4096_pixels_a_view():
    from taichi_nerf.training.validation import periodic_stride

    assert periodic_stride(100, 100) == 2  # never whole images: at least every 2nd row and column
    assert periodic_stride(250, 250) == periodic_stride(240, 180) == 3
    assert periodic_stride(504, 378) == 6 and periodic_stride(800, 800) == 12
    for width, height in ((250, 250), (504, 378), (800, 800), (1920, 1080)):
        k = periodic_stride(width, height)
        assert (width // k) * (height // k) >= 4096 > (width // (k + 1)) * (height // (k + 1))


def test_a_time_limited_run_keeps_its_checks_to_a_share_of_the_time(tiny_scene, tmp_path):
    """Under --time-limit, a validation and a preview scheduled after every step would take most
    of the time: they are skipped while they have taken over CHECK_SHARE of the run's time so far.
    Checkpoints are never skipped; without a time limit every scheduled check runs. The run's
    clock is the test's own, which a step, a validation and a preview advance by set amounts, so
    that what is checked is the rule and not the machine's speed (a loaded machine once made 6
    steps in the 3 s limit, too few for a second validation)."""
    from taichi_nerf.training.trainer import CHECK_SHARE

    checkpoints = []

    class Checkpoints:
        def on_checkpoint(self, trainer, path):
            checkpoints.append(trainer.step_count)

    cfg = tiny_config(tiny_scene, tmp_path / "limited", steps=100000, eval_every=1, preview_every=1,
                      checkpoint_every=5).replace(time_limit_s=2.0)
    trainer = Trainer(cfg)
    trainer.callbacks.append(Checkpoints())
    costs = {"step": 0.05, "validate": 0.01, "write_preview": 0.005}  # ~40 steps in the limit
    fake_clock(trainer, costs)
    result = trainer.run()
    periodic = [r["step"] for r in trainer.history if "val_psnr" in r and not r.get("final")]
    previews = len(list((tmp_path / "limited" / "previews").glob("step_*.png")))
    one_check = costs["validate"] + costs["write_preview"]
    assert 2.0 <= result.seconds <= 2.0 + costs["step"] + 2 * one_check  # + the last step's checks, the final ones
    assert periodic[0] == 0 and 3 <= len(periodic) < trainer.step_count / 2, (periodic, trainer.step_count)
    # the checks take their share, no more (the last that ran may overshoot it by one check), and no less
    limited_s = 2.0 + costs["step"]  # the time the last step's checks were judged against, at most
    assert CHECK_SHARE * 2.0 - one_check <= trainer.check_s <= CHECK_SHARE * limited_s + one_check, trainer.check_s
    assert 1 <= previews < len(periodic)  # a validation scheduled at the same step takes the share first
    assert set(range(5, trainer.step_count + 1, 5)) <= set(checkpoints)  # every one that was scheduled

    unlimited = Trainer(tiny_config(tiny_scene, tmp_path / "unlimited", steps=6, eval_every=1, preview_every=1))
    unlimited.run()
    assert [r["step"] for r in unlimited.history if "val_psnr" in r and not r.get("final")] == [0, 1, 2, 3, 4, 5]
    assert len(list((tmp_path / "unlimited" / "previews").glob("step_*.png"))) == 6


def test_lr_scale_scales_the_schedule_the_optimiser_uses(tiny_scene, tmp_path):
    trainer = Trainer(tiny_config(tiny_scene, tmp_path, sampler="stratified"))
    assert trainer.lr_scale == 1.0 and trainer.last_samples_per_ray is None
    base = [trainer.lr_at(s) for s in (0, 20, 40)]
    trainer.lr_scale = 0.5
    assert [trainer.lr_at(s) for s in (0, 20, 40)] == pytest.approx([0.5 * b for b in base])
    info = trainer.step()
    assert info["lr"] == pytest.approx(0.5 * base[0])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * base[0])


def test_adam_beta2_reaches_the_optimiser_and_the_presets_keep_their_tutorials(tiny_scene, tmp_path):
    from taichi_nerf.config import TrainConfig

    assert Trainer(tiny_config(tiny_scene, tmp_path / "a")).optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "b", adam_beta2=0.9))
    assert trainer.optimizer.param_groups[0]["betas"] == (0.9, 0.9)
    assert TrainConfig().with_preset("keras").adam_beta2 == TrainConfig().with_preset("pytorch3d").adam_beta2 == 0.999
    with pytest.raises(ValueError, match="adam_beta2"):
        TrainConfig(adam_beta2=1.0).validate()


def test_adam_eps_reaches_the_optimiser_and_the_presets_use_their_frameworks(tiny_scene, tmp_path):
    from taichi_nerf.config import TrainConfig

    assert Trainer(tiny_config(tiny_scene, tmp_path / "a")).optimizer.param_groups[0]["eps"] == 1e-10
    assert Trainer(tiny_config(tiny_scene, tmp_path / "b", adam_eps=1e-6)).optimizer.param_groups[0]["eps"] == 1e-6
    assert TrainConfig().with_preset("keras").adam_eps == 1e-7  # keras.optimizers.Adam's
    assert TrainConfig().with_preset("pytorch3d").adam_eps == 1e-8  # torch.optim.Adam's
    for bad in (0.0, -1e-8, 2.0):
        with pytest.raises(ValueError, match="adam_eps"):
            TrainConfig(adam_eps=bad).validate()


def test_epoch_order_shows_every_image_once_a_pass(tiny_scene, tmp_path, monkeypatch):
    """image_order=epochs (Keras's): within a pass no image repeats and all but the dropped
    remainder appear; each pass is reshuffled; the order is a function of seed and step, so
    a resumed run (a new Trainer) continues it; another seed shuffles differently."""
    k = 3
    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "a", batch_images=k, batch_rays=0, image_order="epochs"))
    count = trainer.train.count
    per_pass = count // k
    def slices(t, passes):  # each pass's images, slice after slice
        return [torch.cat([t.ray_batches.images_at(e * per_pass + s, k, t.generator) for s in range(per_pass)])
                for e in passes]

    passes = slices(trainer, range(3))
    for images in passes:
        assert images.unique().numel() == per_pass * k and 0 <= int(images.min()) and int(images.max()) < count
    assert not torch.equal(passes[0], passes[1]) and not torch.equal(passes[1], passes[2])
    resumed = Trainer(tiny_config(tiny_scene, tmp_path / "b", batch_images=k, batch_rays=0, image_order="epochs"))
    assert torch.equal(resumed.ray_batches.images_at(per_pass + 2, k, resumed.generator), passes[1][2 * k:3 * k])
    other = Trainer(tiny_config(tiny_scene, tmp_path / "c", batch_images=k, batch_rays=0, image_order="epochs", seed=1))
    assert not torch.equal(slices(other, [0])[0], passes[0])
    # a step trains on every pixel of its slice
    trainer.step_count = per_pass + 1
    images, pixels = sampled_images(trainer, monkeypatch)
    assert torch.equal(images.unique(), passes[1][k:2 * k].sort().values.to(images.dtype))
    assert images.shape[0] == pixels.shape[0] == k * trainer.ray_batches.pixels
    # random (the default, PyTorch3D's): distinct images in a step, repeats within a pass
    random_order = Trainer(tiny_config(tiny_scene, tmp_path / "d", batch_images=k, batch_rays=0))
    draws = [random_order.ray_batches.images_at(0, k, random_order.generator) for _ in range(per_pass)]
    assert all(d.unique().numel() == k for d in draws)
    assert torch.cat(draws).unique().numel() < per_pass * k


@pytest.mark.slow
def test_mixed_precision_renders_like_float32_and_trains(tiny_scene, tmp_path, monkeypatch):
    """bf16 autocast (the MLP's products; the kernels stay float32) on this arch: a run
    learns about as well as in float32, and its field renders within bf16's rounding of
    the float32 render. (bf16 is forced on: without a fast path it is emulated, slowly.)"""
    from taichi_nerf import backend
    from taichi_nerf.training.trainer import Trainer

    monkeypatch.setattr(backend, "native_bf16", lambda device: True)
    runs = {}
    for bf16 in (False, True):
        tr = Trainer(tiny_config(tiny_scene, tmp_path / str(bf16), mixed_precision=bf16, steps=100, eval_every=0,
                                 preview_every=0, checkpoint_every=0))
        runs[bf16] = (tr, tr.run().val_psnr)
    assert runs[True][1] > runs[False][1] - 1.0, runs
    tr = runs[True][0]
    ren, val = tr.renderer, tr.val
    half = ren.render_image(val.poses, val.intrinsics, 0, val.width, val.height, tr.background)
    ren.bf16 = False
    full = ren.render_image(val.poses, val.intrinsics, 0, val.width, val.height, tr.background)
    assert half["rgb"].dtype == torch.float32
    assert float((half["rgb"] - full["rgb"]).abs().mean()) < 0.02


@pytest.mark.parametrize("fast", [False, True])
def test_mixed_precision_is_used_only_where_bf16_is_fast(tiny_scene, tmp_path, monkeypatch, capsys, fast):
    """Emulated bf16 ran a step ~20x slower than float32 on an AVX2-only CPU: there
    --mixed-precision is ignored, with a warning, and the MLP runs in float32."""
    from taichi_nerf import backend
    from taichi_nerf.cli.train import report_start
    from taichi_nerf.training.trainer import Trainer

    monkeypatch.setattr(backend, "native_bf16", lambda device: fast)
    tr = Trainer(tiny_config(tiny_scene, tmp_path, mixed_precision=True, steps=1))
    assert tr.renderer.bf16 is fast
    report_start(tr, resume=False)
    assert ("--mixed-precision ignored" in capsys.readouterr().out) is not fast


@pytest.mark.parametrize("instructions", [False, True])
def test_bf16_is_the_default_only_on_a_cpu_with_bf16_instructions(tiny_scene, tmp_path, monkeypatch, capsys,
                                                                  instructions):
    from taichi_nerf import backend
    from taichi_nerf.cli.train import report_start
    from taichi_nerf.training.trainer import Trainer

    monkeypatch.setattr(backend, "native_bf16", lambda device: True)  # oneDNN's path (plain AVX-512 has it too)
    monkeypatch.setattr(backend, "cpu_bf16_instructions", lambda: instructions)
    assert backend.use_bf16(None, "cpu") is instructions
    assert backend.use_bf16(True, "cpu") and not backend.use_bf16(False, "cpu")
    assert not backend.use_bf16(None, "cuda")  # not measured on a GPU yet: float32 (TF32) there
    tr = Trainer(tiny_config(tiny_scene, tmp_path, mixed_precision=None, steps=1))
    assert tr.cfg.mixed_precision_for(tr.scene) is None  # an object: left to the CPU
    assert tr.renderer.bf16 is instructions
    report_start(tr, resume=False)
    assert ("precision: the MLP runs in bf16" in capsys.readouterr().out) is instructions


def test_bf16_rows_are_few_sizes_and_little_padding():
    from taichi_nerf.rendering.renderer import bf16_rows

    sizes = [bf16_rows(m) for m in range(1, 70000)]
    assert all(s >= m for m, s in zip(range(1, 70000), sizes))
    assert all(s <= 1.125 * m for m, s in zip(range(512, 70000), sizes[511:]))
    assert len({s for s in sizes if 8192 <= s < 16384}) == 8 and bf16_rows(8192) == 8192


def test_bf16_pads_the_mlp_rows_on_the_cpu_and_cuts_them_back(tiny_scene, tmp_path, monkeypatch):
    """oneDNN builds its bf16 kernels for each new row count: the MLP sees padded counts, and
    what comes back (values and gradients) is the unpadded rows' own."""
    from taichi_nerf import backend
    from taichi_nerf.rendering.renderer import bf16_rows
    from taichi_nerf.training.trainer import Trainer

    monkeypatch.setattr(backend, "native_bf16", lambda device: True)
    tr = Trainer(tiny_config(tiny_scene, tmp_path, mixed_precision=True, steps=1))
    ren = tr.renderer
    assert ren.bf16
    rows = []
    ren.field.trunk[0].register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    g = torch.Generator().manual_seed(0)
    m = 1000
    encoded = torch.rand(m, ren.field.pos_dim + ren.field.dir_dim, generator=g).to(ren.device).requires_grad_(True)
    sigma, rgb = ren.evaluate_field(encoded)
    assert rows == [bf16_rows(m)] and sigma.shape == (m,) and rgb.shape == (m, 3)
    (sigma.sum() + rgb.sum()).backward()
    padded_grad = encoded.grad.clone()
    encoded.grad = None
    with torch.autocast(ren.device.type, dtype=torch.bfloat16):  # the same field, rows not padded
        s_ref, c_ref = ren.field(encoded)
    (s_ref.float().sum() + c_ref.float().sum()).backward()
    assert torch.allclose(sigma, s_ref.float(), rtol=2e-2, atol=2e-2)
    assert torch.allclose(rgb, c_ref.float(), atol=1e-2)
    assert torch.allclose(padded_grad, encoded.grad, rtol=5e-2, atol=5e-2 * float(encoded.grad.abs().max()))
    ren.bf16 = False  # float32: nothing padded
    rows.clear()
    ren.evaluate_field(encoded)
    assert rows == [m]


@pytest.mark.parametrize("sampler", ["stratified", "hierarchical"])
def test_chunked_batch_has_the_whole_batch_gradient(tiny_scene, tmp_path, sampler):
    """A big batch goes through the MLP in chunks of rays (caches, memory); the gradient and
    the loss are the one-piece batch's, for a loss with a silhouette term and a background per ray."""
    trainer = Trainer(tiny_config(tiny_scene, tmp_path, sampler=sampler, fine_samples=8, loss="pseudo-huber",
                                  silhouette_weight=1.0, background="random", batch_rays=301))
    batch = trainer.sample_batch()
    assert batch[2].shape == (301, 3)  # a background per ray, sliced with its rays
    results = {}
    for chunk in (301, 37):
        trainer.optimizer.zero_grad(set_to_none=True)
        loss, mse, samples = trainer.accumulate_gradients(*batch, chunk_rays=chunk, jitter=False)
        results[chunk] = (float(loss), float(mse), samples,
                          torch.cat([p.grad.flatten() for p in trainer.field.parameters()]).double())
    (loss1, mse1, n1, g1), (loss9, mse9, n9, g9) = results[301], results[37]
    assert n1 == n9 and loss9 == pytest.approx(loss1, rel=1e-5) and mse9 == pytest.approx(mse1, rel=1e-5)
    assert float(g1.abs().max()) > 0 and float((g9 - g1).abs().max() / g1.abs().max()) < 1e-4


def test_chunks_split_only_batches_that_outgrow_the_caches():
    from taichi_nerf.resources import CHUNK_ACTIVATIONS, train_chunk_rays

    default = TrainConfig()
    assert train_chunk_rays(default) >= default.batch_rays  # the default's 512 rays stay one piece
    keras = TrainConfig().with_preset("keras")  # 5 images of 100x100, 32 samples, width 64
    assert train_chunk_rays(keras) * keras.samples_per_ray * keras.width == CHUNK_ACTIVATIONS
    pytorch3d = TrainConfig().with_preset("pytorch3d")  # 4500 rays x 128 samples, width 256: 36 chunks
    assert math.ceil(pytorch3d.batch_rays / train_chunk_rays(pytorch3d)) == 36
    # On CUDA a chunk costs a whole step's launches (H200: ~9 ms each): batches stay whole
    # far beyond the default, and the chunks only bound the memory
    assert train_chunk_rays(default, "cuda") >= 32 * default.batch_rays
    assert train_chunk_rays(default, torch.device("cuda")) == train_chunk_rays(default, "cuda")
    assert train_chunk_rays(default, torch.device("cpu")) == train_chunk_rays(default)
    assert math.ceil(pytorch3d.batch_rays / train_chunk_rays(pytorch3d, "cuda")) == 3


def test_a_perfect_fit_keeps_metrics_strict_and_draws_its_curves(tiny_scene, tmp_path, monkeypatch):
    """A loss of 0 (images a field can match exactly) makes the PSNR infinite: metrics.jsonl says
    null, not Infinity (not JSON), and curves.png is drawn from the finite points, not a crash."""
    from taichi_nerf.training import trainer as trainer_module

    calls = iter(range(10 ** 6))
    monkeypatch.setattr(trainer_module, "mse_to_psnr", lambda mse: math.inf if next(calls) % 2 else 20.0)
    result = Trainer(tiny_config(tiny_scene, tmp_path, steps=20, eval_every=0, preview_every=0,
                                 checkpoint_every=0)).run()

    def no_constants(name):
        raise AssertionError(f"{name} in metrics.jsonl")
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line, parse_constant=no_constants) for line in lines]
    logged = [row for row in rows if "loss" in row]
    assert {row.get("train_psnr") for row in logged} == {None, 20.0}
    assert result.checkpoint.is_file() and (tmp_path / "curves.png").is_file()


def test_a_resume_keeps_the_runs_video_choice_however_it_stopped(tiny_scene, tmp_path, monkeypatch, capsys):
    """The checkpoint keeps train's --video-frames: a run started with 0 and killed before its end
    resumes without a video; a run stopped by Ctrl-C while its video rendered (a final row, no
    video) renders it on its resume; --video-frames given to a resume wins."""
    from taichi_nerf.cli import main
    from taichi_nerf.outputs import default_video

    videos = []

    def fake_video(renderer, out, frames, *args, **kwargs):
        videos.append(frames)
        return []

    monkeypatch.setattr(default_video, "write_default_video", fake_video)
    common = ["--width", "32", "--depth", "2", "--batch-rays", "64", "--no-progress", "--arch", ARCH]

    def train(out, *flags):
        return main(["train", "--data", str(tiny_scene), "--out", str(tmp_path / out), *flags, *common])

    def resume(out, *flags):
        return main(["train", "--resume", str(tmp_path / out), *flags, "--no-progress", "--arch", ARCH])

    assert train("none", "--steps", "4", "--video-frames", "0") == 0 and videos == []
    metrics = tmp_path / "none" / "metrics.jsonl"
    metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines() if '"final"' not in line))
    capsys.readouterr()
    assert resume("none", "--steps", "6") == 0 and videos == []  # killed before its end: no final row
    assert "note: no video at the end, as the run was started (--video-frames N renders one)" in capsys.readouterr().out
    assert resume("none", "--steps", "7", "--video-frames", "5") == 0 and videos == [5]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the default video renders

    monkeypatch.setattr(default_video, "write_default_video", interrupted)
    assert train("stopped", "--steps", "4") != 0
    monkeypatch.setattr(default_video, "write_default_video", fake_video)
    assert resume("stopped", "--steps", "6") == 0 and videos == [5, 60]
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)["end_video_frames"] == 60


def test_data_without_held_out_views_says_what_validation_scores(tmp_path, capsys):
    """One photo (an .npz of one image): nothing is held out, so validation scores the training
    view; the start and the end say so instead of calling it a validation PSNR."""
    import numpy as np

    from taichi_nerf import cli

    pose = np.eye(4)
    pose[2, 3] = 4.0  # 4 units back along +z, looking at the origin
    np.savez(tmp_path / "one.npz", images=np.random.default_rng(0).random((1, 16, 16, 3)), poses=pose[None],
             focal=20.0)
    assert cli.main(["train", "--data", str(tmp_path / "one.npz"), "--out", str(tmp_path / "run"), "--steps", "3",
                     "--width", "16", "--depth", "2", "--batch-rays", "64", "--samples", "8", "--video-frames", "0",
                     "--no-progress", "--arch", ARCH]) == 0
    out = capsys.readouterr().out
    assert "validation scores training views, which are not held out" in out
    assert "; PSNR on the training views (none held out) " in out and "validation PSNR" not in out
    assert cli.main(["data", "info", str(tmp_path / "one.npz")]) == 0
    assert "train:    1 image, 16x16;" in capsys.readouterr().out


def test_the_api_takes_paths_and_says_when_a_resume_has_nothing_to_train(tiny_scene, tmp_path, capsys):
    """A notebook passes pathlib.Paths (they were refused: "out must be text"); a resume of a run
    that made its steps says so, as train --resume does, instead of validating silently."""
    from pathlib import Path

    import taichi_nerf as tn

    cfg = tiny_config(tiny_scene, tmp_path / "unused", steps=3, eval_every=0, preview_every=0)
    assert tn.train(cfg, out=tmp_path / "r", data=Path(tiny_scene)).step == 3
    assert isinstance(tn.TrainConfig(out=tmp_path).out, str)
    capsys.readouterr()
    assert tn.train(resume=True, out=tmp_path / "r").step == 3
    assert ("note: the run already made its 3 steps: nothing to train, it validates again; to train on, give the new "
            "total: train(resume=True, out=..., steps=N)\n") in capsys.readouterr().out  # a time limit adds no steps


def test_a_time_limit_spent_before_the_first_step_says_so_and_renders_no_video(tiny_scene, tmp_path, capsys,
                                                                               monkeypatch):
    """On a loaded machine starting up and the step-0 validation can take a whole short limit: the
    run used to say "trained 0 steps" as a success and then spend minutes on a video of the
    untrained field. Ctrl-C during the end's video says what is saved and how to make the video."""
    from taichi_nerf.cli import train as train_cli

    cfg = tiny_config(tiny_scene, tmp_path, steps=100000, checkpoint_every=0, eval_every=100).replace(
        time_limit_s=1.0)
    trainer = Trainer(cfg)
    fake_clock(trainer, {"validate": 2.0, "step": 0.1})  # the first validation alone outlasts the limit
    assert train_cli.report_end(trainer, trainer.run(), video_frames=4) == 0
    printed = capsys.readouterr()
    assert trainer.step_count == 0 and "trained 0 steps" in printed.out
    assert "no training step fitted in the 1 s time limit" in printed.err and "--resume" in printed.err
    assert not [p.name for p in tmp_path.iterdir() if p.suffix in (".mp4", ".gif")]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("taichi_nerf.outputs.default_video.write_default_video", interrupted)
    trainer = Trainer(cfg.replace(time_limit_s=0.0, steps=3), resume=True)
    assert train_cli.report_end(trainer, trainer.run(), video_frames=4) == train_cli.EXIT_INTERRUPTED
    said = capsys.readouterr().out
    assert "interrupted while rendering the video; the trained run is saved" in said
    assert f"taichi-nerf render --ckpt {tmp_path} --out {tmp_path / 'orbit.mp4'}" in said, said

    def interrupted_once_whole(*args, **kwargs):  # a Ctrl-C held until the video's files were all written
        exc = KeyboardInterrupt()
        exc.after_whole_set = True
        raise exc
    monkeypatch.setattr("taichi_nerf.outputs.default_video.write_default_video", interrupted_once_whole)
    trainer = Trainer(cfg.replace(time_limit_s=0.0, steps=3), resume=True)
    assert train_cli.report_end(trainer, trainer.run(), video_frames=4) == train_cli.EXIT_INTERRUPTED
    said = capsys.readouterr().out
    assert f"interrupted as the video was written: it is whole ({tmp_path / 'orbit.mp4'})" in said, said
    assert "missing" not in said


def test_a_silhouette_weight_on_opaque_photos_is_warned_of(tiny_scene, tmp_path):
    """--silhouette-weight (the cow preset's) on photos without alpha or masks pulls every ray,
    background included, to be opaque; it trained so without a word."""
    from taichi_nerf.runs.datasets import load_dataset
    from taichi_nerf.training.diagnostics import start_lines

    def warned(dataset, weight):
        trainer = Trainer(tiny_config(tiny_scene, tmp_path / f"{weight}", silhouette_weight=weight), dataset=dataset)
        return [line for line in start_lines(trainer, resume=False) if "--silhouette-weight" in line]

    transparent = load_dataset(tiny_scene)
    assert warned(transparent, 1.0) == []
    opaque = load_dataset(tiny_scene)
    for split in opaque.splits.values():
        split.rgba[..., 3] = 255
    assert warned(opaque, 0.0) == []
    assert len(said := warned(opaque, 1.0)) == 1 and "every training pixel is opaque" in said[0]
