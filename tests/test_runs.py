"""run_folder.open_run (issue 23): every entry point runs every refusing check before the run folder
changes, so a refused command leaves the previous run byte for byte; and one process at a time
trains in a run folder (an flock the OS drops when the process dies)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import taichi_nerf as tn
from taichi_nerf import cli
from taichi_nerf.runs import run_folder

from .conftest import ARCH, TINY, checkout_env, refused, snapshot, tiny_config, wait_for


def test_train_overwrite_with_a_missing_dataset_keeps_the_run(run, tmp_path, capsys):
    before = snapshot(run)
    refused(capsys, ["train", "--data", tmp_path / "no_such_folder", "--out", run, "--overwrite", *TINY],
            "no_such_folder")
    assert snapshot(run) == before


def test_train_overwrite_with_an_empty_frames_list_keeps_the_run(run, tmp_path, capsys):
    data = tmp_path / "empty"
    data.mkdir()
    (data / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": []}))
    before = snapshot(run)
    refused(capsys, ["train", "--data", data, "--out", run, "--overwrite", *TINY], str(data))
    assert snapshot(run) == before


def test_resume_on_data_that_moves_the_scene_is_refused_and_keeps_the_run(run, capsys):
    """Data options that put the scene elsewhere on a resume (another box; another kind of scene;
    fewer LLFF photos, which recentre and rescale the world) would train the field in coordinates
    it never learnt and save it over a good checkpoint (a probe's 18.6 dB run resumed at 7.1 dB):
    refused in one line naming what moved and the option. A change that leaves the scene where
    it was (--downscale) resumes in the checkpoint's own scene."""
    from taichi_nerf.runs.checkpoint import CheckpointError, read_state
    from taichi_nerf.training.trainer import Trainer

    before = snapshot(run)
    refused(capsys, ["train", "--resume", run, "--steps", "12", "--aabb", "-4", "-4", "-4", "4", "4", "4"],
            "cannot resume on this data", "box [-1.50, -1.50, -1.50, 1.50, 1.50, 1.50], now [-4.00,",
            "--aabb not set before, -4 -4 -4 4 4 4 now", "config.json")
    refused(capsys, ["train", "--resume", run, "--steps", "12", "--unbounded"],
            "an object in a box, now unbounded scenery", "--unbounded not set before, on now")
    assert snapshot(run) == before
    saved = run_folder.resume_config(run)
    with pytest.raises(CheckpointError, match="cannot resume on this data"):
        Trainer(saved.replace(aabb=[-4.0, -4.0, -4.0, 4.0, 4.0, 4.0]), resume=True)
    resumed = Trainer(saved.replace(downscale=2, steps=12), resume=True)
    assert resumed.train.width == read_state(run / "checkpoint.pt")["scene"]["ndc_width"] // 2
    assert resumed.scene.aabb == read_state(run / "checkpoint.pt")["scene"]["aabb"]
    assert resumed.run().step == 12


def test_a_refused_resume_never_says_its_flags_were_kept(run, capsys):
    """`train --resume RUN --aabb ...` printed 'note: changed for the rest of the run (and kept in its
    config.json): aabb ...', then refused the moved scene: the note now waits for the checks."""
    code = cli.main(["train", "--resume", str(run), "--steps", "12", "--aabb", "-4", "-4", "-4", "4", "4", "4"])
    out, err = capsys.readouterr()
    assert code == 2 and "cannot resume on this data" in err and "note: changed" not in out, out


def test_a_dry_run_of_a_resume_on_the_builtin_scene_checks_that_the_scene_stays(tmp_path, monkeypatch, capsys):
    """`train --resume RUN --aabb ... --dry-run` said the configuration was fine for a run on the
    built-in scene, whose dataset the dry run skipped, while the real start refused it."""
    from taichi_nerf.training.trainer import Trainer

    monkeypatch.setenv("TAICHI_NERF_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    Trainer(tiny_config(None, out, steps=2, eval_every=0, scene_views=6, scene_size=24)).run(drive=lambda more: True)
    before = snapshot(out)
    refused(capsys, ["train", "--resume", out, "--aabb", "-1", "-1", "-1", "1", "1", "1", "--dry-run"],
            "cannot resume on this data", "--aabb not set before")
    assert cli.main(["train", "--resume", str(out), "--dry-run"]) == 0  # the run's own scene: fine
    assert snapshot(out) == before


def test_a_limit_set_on_a_resume_stays_until_limit_0_undoes_it(run, capsys):
    """A resume keeps the run's saved options, --limit too; --limit 0 (every frame) is how to drop it."""
    for steps, flags, views in ((11, ["--limit", "5"], 5), (12, [], 5), (13, ["--limit", "0"], 20)):
        assert cli.main(["train", "--resume", str(run), "--steps", str(steps), "--video-frames", "0", *flags]) == 0
        assert f"(train: {views} x 32x32;" in capsys.readouterr().out, (steps, flags)


def test_api_overwrite_refuses_a_size_before_touching_the_run(run, tiny_scene):
    from taichi_nerf.resources import ResourceError

    before = snapshot(run)
    with pytest.raises(ResourceError, match="--batch-rays"):
        tn.train(out=str(run), overwrite=True, batch_rays=10**9, data=str(tiny_scene), arch=ARCH, progress=False)
    assert snapshot(run) == before


def test_gui_overwrite_refuses_a_size_before_touching_the_run(run, tiny_scene, capsys, monkeypatch):
    import importlib

    monkeypatch.setattr(importlib.import_module("taichi_nerf.gui.launch"), "check_environment", lambda headless: None)
    before = snapshot(run)
    refused(capsys, ["gui", "--headless", "--frames", "1", "--data", tiny_scene, "--out", run, "--overwrite",
                     "--batch-rays", str(10**9), "--arch", ARCH], "--batch-rays")
    assert snapshot(run) == before


def test_train_overwrite_without_tensorboard_keeps_the_run(run, tiny_scene, capsys, monkeypatch):
    from taichi_nerf.runs import tensorboard_log

    monkeypatch.setattr(tensorboard_log, "missing_tensorboard", lambda: "--logger tensorboard needs TensorBoard")
    before = snapshot(run)
    argv = ["train", "--data", tiny_scene, "--out", run, "--overwrite", "--logger", "tensorboard", *TINY]
    refused(capsys, argv, "needs TensorBoard")
    refused(capsys, argv + ["--dry-run"], "needs TensorBoard")  # the dry run makes the same checks
    assert snapshot(run) == before


def test_a_dry_run_checks_the_dataset(tmp_path, capsys):
    refused(capsys, ["train", "--dry-run", "--data", tmp_path / "missing", "--out", tmp_path / "r", *TINY], "missing")
    assert not (tmp_path / "r").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(run, tiny_scene, tmp_path, capsys,
                                                                            monkeypatch):
    """A file in the way of --out, or a folder that refuses writes (read-only, no permission), is
    refused in one line before training or rendering starts (a dry run says so too); they used to
    pass the dry run, or render every frame and then fail with ffmpeg's errors and a traceback."""
    import tempfile

    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    refused(capsys, ["train", "--dry-run", "--data", tiny_scene, "--out", blocker / "r", *TINY],
            "afile: is a file, so", "cannot be a folder")
    refused(capsys, ["render", "--ckpt", run, "--frames", "2", "--size", "16", "--out", blocker / "v.mp4",
                     "--no-progress", "--arch", ARCH], "afile: is a file")
    refused(capsys, ["render", "--ckpt", run, "--split", "val", "--out", blocker / "views", "--no-progress",
                     "--arch", ARCH], "afile: is a file")
    # eval, export and data synthetic too: they used to do all their work and then fail to write it
    monkeypatch.setattr("taichi_nerf.runs.checkpoint.load", lambda *a, **k: pytest.fail("loaded before refusing"))
    for argv in (["eval", "--ckpt", run, "--out", blocker / "e.json"],
                 ["export", "mesh", "--ckpt", run, "--out", blocker / "m.ply"],
                 ["export", "points", "--ckpt", run, "--out", blocker / "p.ply"],
                 ["data", "synthetic", "--out", blocker / "syn", "--views", "2", "--size", "8"]):
        line = refused(capsys, [*argv, "--no-progress"] + (["--arch", ARCH] if argv[0] != "data" else []),
                       "afile: is a file, so")
        if argv[0] != "data":  # the file asked for, named (it said "afile: is a file, so afile cannot be a folder")
            assert f"so {argv[-1]} cannot be written" in line, line
    monkeypatch.undo()
    assert blocker.read_text() == "mine"
    (tmp_path / "gone").symlink_to(tmp_path / "unmounted")  # passed the dry run; the run: "gone: File exists"
    refused(capsys, ["train", "--dry-run", "--data", tiny_scene, "--out", tmp_path / "gone", *TINY],
            "gone: is a link to", "unmounted, which does not exist")

    def read_only(*args, **kwargs):  # what a read-only folder answers (root would not be refused by a chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    refused(capsys, ["train", "--dry-run", "--data", tiny_scene, "--out", tmp_path / "ro", *TINY],
            f"{tmp_path}: cannot write there (Permission denied)")
    refused(capsys, ["render", "--ckpt", run, "--frames", "2", "--size", "16", "--out", tmp_path / "ro.mp4",
                     "--no-progress", "--arch", ARCH], "cannot write there")
    assert not list(tmp_path.glob("ro*"))


def test_an_output_file_that_is_an_existing_folder_is_refused_before_any_work(run, tmp_path, capsys, monkeypatch):
    """`render --out v.mp4`, `export mesh --out m.ply` where that name (or the depth video or gif
    beside it) is a folder: refused in one line naming it before the checkpoint is loaded; they
    used to render every frame (or build the whole mesh) and then fail with "Is a directory",
    naming a hidden partial file."""
    monkeypatch.setattr("taichi_nerf.runs.checkpoint.load", lambda *a, **k: pytest.fail("loaded before refusing"))
    for taken, argv in (("v.mp4", ["render", "--frames", "2", "--size", "16", "--out", tmp_path / "v.mp4"]),
                        ("w.gif", ["render", "--frames", "2", "--size", "16", "--out", tmp_path / "w.mp4"]),
                        ("x_depth.gif", ["render", "--frames", "2", "--size", "16", "--out", tmp_path / "x.gif"]),
                        ("m.ply", ["export", "mesh", "--out", tmp_path / "m.ply"]),
                        ("p.obj", ["export", "points", "--out", tmp_path / "p.obj"])):
        (tmp_path / taken).mkdir()
        refused(capsys, [*argv, "--ckpt", run, "--no-progress", "--arch", ARCH],
                f"{tmp_path / taken}: is a folder", "--out")
        assert not [p for p in tmp_path.iterdir() if p.is_file()]
    monkeypatch.undo()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        tn.render_orbit(run, tmp_path / "v.mp4", frames=2, size=16, progress=False)


def test_a_write_that_fails_at_its_rename_names_the_file_not_its_temporary(run, tmp_path, capsys, monkeypatch):
    """`eval --out DIR` whose DIR/eval.json is a folder is refused before the checkpoint loads; a
    rename that fails late (render --split into a folder whose metrics.json is a folder) names
    the file the user asked for, not the hidden `.metrics.json.tmpPID` it was written as."""
    (tmp_path / "e" / "eval.json").mkdir(parents=True)
    monkeypatch.setattr("taichi_nerf.runs.checkpoint.load", lambda *a, **k: pytest.fail("loaded before refusing"))
    refused(capsys, ["eval", "--ckpt", run, "--out", tmp_path / "e", "--no-progress", "--arch", ARCH],
            f"{tmp_path / 'e' / 'eval.json'}: is a folder")
    monkeypatch.undo()
    (tmp_path / "r" / "metrics.json").mkdir(parents=True)
    line = refused(capsys, ["render", "--ckpt", run, "--split", "val", "--limit", "1", "--out", tmp_path / "r",
                            "--no-progress", "--arch", ARCH], f"{tmp_path / 'r' / 'metrics.json'}: ")
    assert ".tmp" not in line


def test_overwrite_removes_only_what_runs_write(run, tiny_scene, capsys):
    (run / "NOTES.md").write_text("mine")
    (run / "previews" / "my_drawing.png").write_bytes(b"not ours")
    (run / "videos").mkdir()
    (run / "videos" / "holiday.mp4").write_bytes(b"not ours either")
    assert cli.main(["train", "--data", str(tiny_scene), "--out", str(run), "--overwrite", "--steps", "2",
                     "--video-frames", "0", *TINY]) == 0
    assert (run / "NOTES.md").read_text() == "mine"
    assert (run / "previews" / "my_drawing.png").read_bytes() == b"not ours"
    assert (run / "videos" / "holiday.mp4").read_bytes() == b"not ours either"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 2  # the old run's rows (to step 10) went


def test_the_lock_refuses_a_second_holder_and_is_gone_after_release(tmp_path):
    first = run_folder.RunLock(tmp_path).acquire()
    assert run_folder.lock_holder(tmp_path) == os.getpid()
    with pytest.raises(run_folder.RunLocked, match=f"process {os.getpid()}"):
        run_folder.RunLock(tmp_path).acquire()
    first.release()
    assert run_folder.lock_holder(tmp_path) is None and not (tmp_path / run_folder.LOCK_NAME).exists()
    run_folder.RunLock(tmp_path).acquire().release()


def test_a_lock_file_that_cannot_be_removed_is_released_without_an_error(tmp_path, monkeypatch):
    """A run folder gone read-only mid-run: the checkpoint's error was replaced, as the run unwound, by
    ".taichi-nerf.lock: Operation not permitted" from the lock's release."""
    lock = run_folder.RunLock(tmp_path).acquire()

    def refused(self, missing_ok=False):
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(type(lock.path), "unlink", refused)
    lock.release()
    assert not lock.held and run_folder.lock_holder(tmp_path) is None
    monkeypatch.undo()
    run_folder.RunLock(tmp_path).acquire().release()


def _train_process(run, tiny_scene, *extra):
    argv = [sys.executable, "-m", "taichi_nerf", "train", "--data", str(tiny_scene), "--out", str(run),
            "--video-frames", "0", *TINY, *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=checkout_env())


def _wait_for_lock(folder, proc, timeout=120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = run_folder.lock_holder(folder)
        if holder is not None:
            return holder
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    raise AssertionError("the first trainer never took the lock")


@pytest.mark.slow
def test_two_trainers_on_one_folder_and_no_stale_lock_after_a_kill(tmp_path, tiny_scene, capsys):
    """The first trainer is a process of its own; the others run in this one (an interpreter start
    less each): the lock is the first process's either way."""
    run = tmp_path / "run"
    first = _train_process(run, tiny_scene, "--steps", "100000")
    try:
        assert _wait_for_lock(run, first) == first.pid
        # its config.json too (written after the lock is taken): what the refusals must leave
        wait_for(lambda: (run / "config.json").is_file(), "the first trainer's config.json", first)
        refused(capsys, ["train", "--resume", run, "--no-progress"], f"process {first.pid}")
        # the same refusal for a fresh run told to overwrite it: nothing of the live run is touched
        refused(capsys, ["train", "--data", tiny_scene, "--out", run, "--overwrite", "--video-frames", "0", *TINY],
                f"process {first.pid}")
        # and a fresh run without --overwrite hears of the live run, not "unfinished run; add --overwrite"
        refused(capsys, ["train", "--data", tiny_scene, "--out", run, "--video-frames", "0", *TINY],
                f"process {first.pid}")
        assert (run / "config.json").is_file()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert run_folder.lock_holder(run) is None  # the OS dropped the lock with the process
    code = cli.main([str(a) for a in ["train", "--data", tiny_scene, "--out", run, "--video-frames", "0", *TINY,
                                      "--steps", "3", "--overwrite"]])
    assert code == 0, capsys.readouterr().err
    assert not (run / run_folder.LOCK_NAME).exists()


def test_a_resume_with_the_runs_own_preset_keeps_what_the_run_set_over_it(run):
    """`--preset keras --steps 1000 --lr 5e-4`, resumed with `--preset keras` again, came back with the
    preset's 320 steps and lr 1e-3, and no note said so; the CLI and the API now keep the run's values."""
    import torch

    from taichi_nerf.cli import build_parser
    from taichi_nerf.cli.common import run_config
    from taichi_nerf.config import TrainConfig

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    own = TrainConfig(**state["config"]).replace(preset="keras", steps=1000, lr=5e-4)
    torch.save({**state, "config": own.to_dict()}, run / "checkpoint.pt")
    api = run_folder.resume_config(run, preset="keras")
    args = build_parser().parse_args(["train", "--resume", str(run), "--preset", "keras"])
    for cfg in (api, run_config(args, resume_from=args.resume)):
        assert (cfg.preset, cfg.steps, cfg.lr) == ("keras", 1000, 5e-4)
    with pytest.raises(ValueError, match="preset 'pytorch3d' sets a model of its own"):
        run_folder.resume_config(run, preset="pytorch3d")


def test_a_viewer_of_a_checkpoint_whose_dataset_moved_goes_on_without_its_cameras(tmp_path, capsys):
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.runs.datasets import training_views

    cfg = TrainConfig(data=str(tmp_path / "moved_away"))
    assert training_views(cfg, tmp_path / "checkpoint.pt", "view", "no training cameras shown") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training views unavailable" in err[0] and "moved_away" in err[0], err
    assert "--data" not in err[0]  # view and gui --ckpt take no --data: a hint they cannot follow


def test_a_dry_run_resume_says_what_a_real_start_would_change_and_changes_nothing(run, capsys):
    """`--resume RUN --steps 12 --dry-run` said "changed ... (and kept in its config.json)" of a
    config.json it leaves as it was."""
    from taichi_nerf import cli

    before = (run / "config.json").read_text()
    assert cli.main(["train", "--resume", str(run), "--steps", "12", "--dry-run", "--arch", ARCH]) == 0
    out = capsys.readouterr().out
    assert "note: a real start would change, for the rest of the run (and keep in its config.json): --steps 10 -> 12" \
        in out, out
    # as flags say them: it said "mixed_precision False -> True" and "near None -> 2.0"
    assert cli.main(["train", "--resume", str(run), "--mixed-precision", "--near", "2", "--dry-run",
                     "--arch", ARCH]) == 0
    out = capsys.readouterr().out
    assert "--near not set -> 2," in out and "--mixed-precision off -> on" in out, out
    assert (run / "config.json").read_text() == before


def test_a_resume_says_what_its_flags_change_and_refuses_another_preset(run, capsys):
    """`--resume DIR --samples 64` was taken silently and kept for every later resume; `--preset
    keras` was refused as "checkpoint has depth=4, config asks for 8", which the user never asked."""
    from taichi_nerf import cli

    assert cli.main(["train", "--resume", str(run), "--steps", "12", "--seed", "5", "--no-progress", "--video-frames",
                     "0", "--arch", ARCH]) == 0
    out = capsys.readouterr().out
    assert "note: changed for the rest of the run (and kept in its config.json): --steps 10 -> 12, --seed 0 -> 5" in out
    refused(capsys, ["train", "--resume", run, "--preset", "keras"], "--preset keras sets a model of its own",
            "drop --preset")
    # refused before a note said the new width was "kept in its config.json"
    assert cli.main(["train", "--resume", str(run), "--width", "32", "--sampler", "grid"]) == 2
    out, err = capsys.readouterr()
    assert "note:" not in out and err.count("\n") == 1, (out, err)
    assert "a resumed run keeps the model it trained: --width 32 (it trained 16), --sampler grid (it trained " \
           "stratified); drop it" in err, err
    with pytest.raises(ValueError, match="the run trained width=16, and a resume keeps its model; got width=32"):
        tn.train(resume=True, out=str(run), width=32)


def test_a_resume_with_fewer_steps_or_less_time_than_the_run_made_is_refused_and_keeps_the_run(run, capsys):
    """`--resume RUN --steps 4` on a run at step 10 (meaning 4 more) trained nothing and wrote steps 4
    into config.json and the checkpoint, a total the run had gone past; now refused, the total explained."""
    before = snapshot(run)
    refused(capsys, ["train", "--resume", run, "--steps", "4", "--video-frames", "0"],
            "--steps must be at least 10 on this resume", "14 trains 4 more", "got 4")
    assert snapshot(run) == before
    assert cli.main(["train", "--resume", str(run), "--steps", "4", "--dry-run", "--arch", ARCH]) == 2
    assert "note:" not in capsys.readouterr().out  # it said "changed ... steps 10 -> 4", then refused it
    with pytest.raises(ValueError, match="steps must be at least 10 on this resume"):
        tn.train(resume=True, out=str(run), steps=4)
    assert snapshot(run) == before
    from taichi_nerf.runs.checkpoint import read_state

    used = float(read_state(run / "checkpoint.pt")["clock_s"])  # --time-limit alike: the run's total
    half = f"{used / 2:.2f}"
    refused(capsys, ["train", "--resume", run, "--time-limit", half, "--video-frames", "0"],
            f"--time-limit-s must be more than the {used:.1f} s the run has trained on this resume",
            f" s trains {float(half):g} s more), got {float(half):g}")
    assert snapshot(run) == before


def test_a_resume_from_a_checkpoint_file_of_another_name_is_refused(run, capsys):
    """`--resume RUN/backup.pt` took its config from backup.pt and went on from RUN/checkpoint.pt (another
    step, other weights); a file alone elsewhere was refused naming a checkpoint.pt it was never given."""
    import shutil

    backup = shutil.copy(run / "checkpoint.pt", run / "backup.pt")
    before = snapshot(run)
    refused(capsys, ["train", "--resume", backup, "--steps", "12"],
            "backup.pt: a resume continues a run folder from its checkpoint.pt", "copy it as checkpoint.pt")
    assert snapshot(run) == before
    with pytest.raises(run_folder.checkpoint.CheckpointError, match="continues a run folder from its checkpoint.pt"):
        tn.train(resume=True, out=str(backup), steps=12)


def test_the_continue_hint_of_a_run_trained_past_its_steps_is_a_total_a_resume_takes(run, capsys):
    """The window trains on past its planned steps (space): its hint said --steps 2 x the planned
    ones, fewer than the run had made, which the resume then refused."""
    from types import SimpleNamespace

    import torch

    from taichi_nerf.runs.checkpoint import read_state
    from taichi_nerf.training.diagnostics import continue_command

    state = read_state(run / "checkpoint.pt")  # as a window planned 4 steps and trained on to 10 leaves it
    state["config"]["steps"] = 4
    torch.save(state, run / "checkpoint.pt")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "steps": 4}))
    trainer = SimpleNamespace(cfg=tn.TrainConfig(steps=4), step_count=state["step"])
    hint = continue_command(trainer, f"taichi-nerf train --resume {run}")
    assert hint.endswith(f"--steps {state['step'] + 4} (a new total: the run made {state['step']} steps)"), hint
    assert cli.main([*hint.split(" (")[0].split()[1:], "--dry-run", "--arch", ARCH]) == 0, capsys.readouterr().err


def test_a_run_folder_removed_while_it_trains_is_made_again_with_its_lock_and_said(tiny_scene, tmp_path, capsys,
                                                                                   monkeypatch):
    """`rm -rf RUN` mid-run: the next metrics row made the folder again without a word, and without the run's lock
    (a second run could start there and mix its files in). It is now made again with the lock, and said once."""
    import shutil

    from taichi_nerf.runs import checkpoint
    from taichi_nerf.runs.run_folder import lock_holder
    from taichi_nerf.training.trainer import Trainer

    out = tmp_path / "run"
    after_step, holders = Trainer.after_step, []

    def remove_the_folder_at_step_3(trainer, info):
        if trainer.step_count == 3:
            shutil.rmtree(out)
        after_step(trainer, info)
        holders.append(lock_holder(out))
    monkeypatch.setattr(Trainer, "after_step", remove_the_folder_at_step_3)
    assert cli.main([str(a) for a in ["train", "--data", tiny_scene, "--out", out, "--steps", "10",
                                      "--video-frames", "0", *TINY]]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"warning: {out} was removed while this run trained in it"), err
    assert set(holders[4:]) == {os.getpid()}, holders  # locked again from its first write after (step 5's row)
    assert checkpoint.read_state(out / "checkpoint.pt")["step"] == 10
    assert not (out / run_folder.LOCK_NAME).exists()


def test_a_run_folder_another_run_took_is_left_to_it(tmp_path):
    """A run folder removed and a second run started there: the first process's writes and its lock's release
    (which deleted the second run's lock file, so a third could start) leave the second run alone."""
    import shutil

    from taichi_nerf.files import RunFolderLost, write_text_atomic
    from taichi_nerf.runs.run_folder import RunLock

    folder = tmp_path / "run"
    first = RunLock(folder).acquire()
    write_text_atomic(folder / "config.json", "{}")
    shutil.rmtree(folder)
    folder.mkdir()  # another run starts there (its lock file: another process's)
    (folder / ".taichi-nerf.lock").write_text("12345\n")
    with pytest.raises(RunFolderLost) as raised:
        write_text_atomic(folder / "config.json", "{}")
    assert raised.value.filename == str(folder)
    first.release()
    assert (folder / ".taichi-nerf.lock").read_text() == "12345\n"
    assert sorted(p.name for p in folder.iterdir()) == [".taichi-nerf.lock"]


def test_a_resume_says_where_config_json_was_edited_by_hand(run, capsys):
    """A resume takes its settings from the checkpoint and writes config.json again: an edit there ("steps": 50)
    was undone without a word, and the run ended at its old total. Now a note names each edit and the flag."""
    from taichi_nerf import cli

    resume = ["train", "--resume", str(run), "--dry-run", "--arch", ARCH]
    assert cli.main(resume) == 0
    assert "config.json" not in capsys.readouterr().out  # as the run wrote it: nothing to say
    values = json.loads((run / "config.json").read_text())
    values.update(steps=50, lr=0.02, width=values["width"] * 2)
    (run / "config.json").write_text(json.dumps(values))
    assert cli.main(resume) == 0
    note = [line for line in capsys.readouterr().out.splitlines() if "config.json says" in line]
    assert len(note) == 1 and "steps 50 (the checkpoint's: 10)" in note[0], note
    assert note[0].split("give a change as a flag: ")[1].startswith(f"taichi-nerf train --resume {run} --steps 50 "
                                                                     f"--lr 0.02;"), note
    assert "width is the model's, which a resume keeps" in note[0], note
    (run / "config.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(values).encode())  # saved by a Windows editor
    assert cli.main(resume) == 0
    assert "steps 50 (the checkpoint's: 10)" in capsys.readouterr().out  # it said "does not read (... BOM ...)"
    (run / "config.json").write_text("{")
    assert cli.main(resume) == 0
    assert "config.json does not read" in capsys.readouterr().out


def test_the_api_resumes_a_run_that_trained_on_cuda_where_there_is_none(run, monkeypatch):
    """A run started with arch "cuda" on a GPU server, continued by ``train(resume=True, out=...)`` on a laptop,
    was refused ("--arch cuda was asked for, but torch sees no CUDA GPU"): the API kept the saved backend, where
    ``train --resume`` picks one afresh. Both pick afresh now, unless told (``arch=`` as a keyword)."""
    import torch

    from taichi_nerf.config import TrainConfig

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    on_gpu = TrainConfig(**state["config"]).replace(arch="cuda")
    torch.save({**state, "config": on_gpu.to_dict()}, run / "checkpoint.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a laptop, whatever runs the test
    result = tn.train(resume=True, out=str(run), steps=state["step"] + 2)
    assert result.step == state["step"] + 2
    assert json.loads((run / "config.json").read_text())["arch"] == "auto"
