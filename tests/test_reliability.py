"""Reliability (issue 14): a run is never lost or mixed with another, sizes the machine cannot
hold are refused before the work, and every refusal is one line, exit status 2, with the run
folder untouched. The kill test drives real `taichi-nerf train` processes and SIGKILLs them."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taichi_nerf
from taichi_nerf import cli
from taichi_nerf.config import TrainConfig
from taichi_nerf.runs import checkpoint
from taichi_nerf.training.trainer import Trainer, TrainingDiverged

from .conftest import ARCH, TINY, checkout_env, refused, snapshot, tiny_config, wait_for


def metrics_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


# --- kill safety ---------------------------------------------------------------------------
# A driver that, given a file in TAICHI_NERF_TEST_HOLD, stops its first checkpoint write after the
# bytes are written and before the rename: it creates that file and waits for the test's word on its
# stdin, so the test SIGKILLs it with the temporary file in place however late it looks. (A fixed
# 0.4 s linger raced with the test's poller: descheduled longer, it found the rename done.) If the
# test goes away, stdin closes and the write finishes.
HELD_SAVE = """
import os, sys, torch
from pathlib import Path
hold = os.environ.get("TAICHI_NERF_TEST_HOLD")
_save = torch.save
def held_save(obj, fh, *a, **k):
    global hold
    _save(obj, fh, *a, **k)
    if hold:
        fh.flush()
        Path(hold).touch()
        hold = None
        sys.stdin.readline()
torch.save = held_save
from taichi_nerf.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start(*args, hold: Path | None = None) -> subprocess.Popen:
    """A train process; with ``hold``, it creates that file once its first checkpoint's bytes are
    written and waits there (before the rename) for the test."""
    env = checkout_env(**({"TAICHI_NERF_TEST_HOLD": str(hold)} if hold else {}))  # this checkout, whatever is installed
    return subprocess.Popen([sys.executable, "-c", HELD_SAVE, "train", *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 300.0) -> None:
    wait_for(ready, what, proc, timeout=timeout, poll=0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


def _checkpoint_step(out: Path) -> int:
    return int(checkpoint.read_state(out / "checkpoint.pt")["step"])  # always loads, whatever the kill hit


def _temps(out: Path) -> list[Path]:
    return list(out.glob(".checkpoint.pt.tmp*"))


@pytest.mark.slow
def test_sigkill_at_any_point_then_resume_loses_and_duplicates_nothing(tiny_scene, tmp_path, capsys):
    out = tmp_path / "run"
    forever = ["--data", tiny_scene, "--out", out, "--steps", "100000", "--checkpoint-every", "10", "--video-frames",
               "0",
               *TINY]
    # 1. during startup: the folder is opened (config.json) but nothing trained yet (held at its first
    # checkpoint's rename at the latest, however late the kill comes)
    _kill_when(_start(*forever, hold=tmp_path / "held-1"), lambda: (out / "config.json").exists(), "startup")
    assert not (out / "checkpoint.pt").exists()
    before = snapshot(out)
    refused(capsys, ["train", *forever], "unfinished run with no checkpoint", "--overwrite")
    refused(capsys, ["train", "--resume", out], "stopped before its first checkpoint",
            f"start it again with taichi-nerf train --config {out / 'config.json'} --out {out} --overwrite (its own")
    assert snapshot(out) == before
    # 2. mid-step, a checkpoint and later metric rows written
    proc = _start(*forever, "--overwrite")

    def past_a_checkpoint():
        if not (out / "checkpoint.pt").exists() or not (out / "metrics.jsonl").exists():
            return False
        steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()[:-1]]
        return bool(steps) and steps[-1] > 10
    _kill_when(proc, past_a_checkpoint, "a step after the first checkpoint")
    first = _checkpoint_step(out)
    assert first >= 10
    # 3. right after a checkpoint write began: the temporary file is there, the rename not yet done
    held = tmp_path / "held-3"
    proc = _start("--resume", out, hold=held)
    mine = out / f".checkpoint.pt.tmp{proc.pid}"  # not a leftover of the kill before
    _kill_when(proc, held.exists, "a checkpoint write")
    assert mine.exists(), "the kill should leave the partial file behind"
    second = _checkpoint_step(out)
    assert second >= first
    # 4. resume to the end: the leftover goes, the steps continue, every metrics row once
    end = second + 10
    code = cli.main(["train", "--resume", str(out), "--steps", str(end), "--video-frames", "0", "--no-progress",
                     "--arch", ARCH])  # in this process: one interpreter start less
    stdout = capsys.readouterr().out
    assert code == 0
    assert f"resuming at step {second}" in stdout and "partial file a killed run left behind" in stdout
    assert not _temps(out)
    assert _checkpoint_step(out) == end
    rows = metrics_rows(out)
    assert [r["step"] for r in rows if "loss" in r] == list(range(5, end + 1, 5))
    assert [r["step"] for r in rows if r.get("final")] == [end]


# --- 1. run folders -------------------------------------------------------------------------
def test_fresh_train_refuses_a_folder_holding_a_run(run, tiny_scene, capsys):
    before = snapshot(run)
    refused(capsys, ["train", "--data", tiny_scene, "--out", run, "--steps", "3", *TINY],
            str(run), "already holds a run with a checkpoint", f"--resume {run} (in place of --out)", "--overwrite")
    assert snapshot(run) == before
    refused(capsys, ["train", "--resume", run, "--overwrite"], "give one")
    assert snapshot(run) == before


def test_overwrite_replaces_the_old_run_and_keeps_other_files(run, tiny_scene, capsys):
    (run / "notes.txt").write_text("mine")
    code = cli.main(["train", "--data", str(tiny_scene), "--out", str(run), "--steps", "3", "--video-frames", "0",
                     "--overwrite", *TINY])
    out = capsys.readouterr().out
    assert code == 0 and f"run folder: {run}" in out
    assert [r["step"] for r in metrics_rows(run)] == [3, 3]  # the 3-step run's rows only, none of the 10-step run's
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 3
    assert (run / "notes.txt").read_text() == "mine"


def test_api_train_follows_the_same_rule(run, tiny_scene):
    import taichi_nerf as tn

    before = snapshot(run)
    with pytest.raises(checkpoint.CheckpointError, match="already holds a run") as refusal:
        tn.train(tiny_config(tiny_scene, run, steps=2))
    assert "add resume=True to continue it, overwrite=True to replace it" in str(refusal.value)  # Python's words
    assert "--" not in str(refusal.value)
    with pytest.raises(TypeError, match="not TrainConfig fields: video_frames .*render_orbit"):
        tn.train(tiny_config(tiny_scene, run, steps=2), video_frames=0)
    assert snapshot(run) == before


@pytest.mark.parametrize("written", [["metrics.jsonl", "config.json"], ["metrics.jsonl"]])
def test_a_resume_before_the_first_checkpoint_says_how_to_start_again_in_the_callers_words(tmp_path, capsys, written):
    """train(resume=True) on a run killed before its first checkpoint said "start it again with
    taichi-nerf train --config ... --out ... --overwrite", flags a Python caller never typed."""
    import taichi_nerf as tn

    out = tmp_path / "run"
    out.mkdir()
    for name in written:
        (out / name).write_text("{}\n")
    with pytest.raises(checkpoint.CheckpointError, match="stopped before its first checkpoint") as refusal:
        tn.train(resume=True, out=str(out))
    again = (f"train(TrainConfig.from_file({str(out / 'config.json')!r}), out={str(out)!r}, overwrite=True) (its "
             f"own settings)") if "config.json" in written else f"train(out={str(out)!r}, overwrite=True, ...)"
    assert str(refusal.value).endswith(f"start it again with {again}") and "--" not in str(refusal.value)
    line = refused(capsys, ["train", "--resume", out], "stopped before its first checkpoint")
    assert line.endswith(f"--out {out} --overwrite (its own settings)" if "config.json" in written
                         else f"start it again with --out {out} --overwrite"), line


def test_api_train_says_a_ctrl_c_and_trains_again_in_the_same_process(tiny_scene, tmp_path, monkeypatch, capsys):
    """A notebook's Ctrl-C (a kernel interrupt) returned from tn.train without a word, and a sweep's loop
    started its next run: now it says where the run stopped and how to continue, as the CLI does."""
    import taichi_nerf as tn

    advance = Trainer.advance

    def interrupted_at_3(trainer):
        if trainer.step_count == 3:
            raise KeyboardInterrupt  # as a second Ctrl-C (the first only asks for a stop)
        advance(trainer)

    monkeypatch.setattr(Trainer, "advance", interrupted_at_3)
    cfg = tiny_config(tiny_scene, tmp_path / "r", steps=10, eval_every=0, preview_every=0, checkpoint_every=0)
    result = tn.train(cfg)
    assert result.interrupted and result.step == 3
    said = capsys.readouterr().out
    assert (f"interrupted at step 3; checkpoint saved to {result.checkpoint}; "
            f"train(resume=True, out='{tmp_path / 'r'}') continues it") in said
    monkeypatch.setattr(Trainer, "advance", advance)
    again = tn.train(resume=True, out=str(tmp_path / "r"))
    assert not again.interrupted and again.step == 10 and "interrupted" not in capsys.readouterr().out


def test_a_loaded_dataset_handed_back_says_to_give_its_path(run, tiny_scene):
    """evaluate(ckpt, data=tn.load_dataset(...)) died in pathlib ("expected str, bytes or os.PathLike
    object, not Dataset"), as render_path's and export_points' data did."""
    import taichi_nerf as tn

    dataset = tn.load_dataset(tiny_scene)
    said = f"data is a dataset's path, not a loaded Dataset: give its path, {str(tiny_scene)!r}"
    with pytest.raises(TypeError, match=f"^{said}$"):
        tn.evaluate(run, data=dataset, arch=ARCH, progress=False)
    with pytest.raises(TypeError, match=f"^{said}$"):
        tn.load_dataset(dataset)


@pytest.mark.parametrize("config", [{"steps": 2}, "config.json"])
@pytest.mark.parametrize("resume", [False, True])
def test_api_train_says_what_config_takes(run, config, resume):
    """train({"steps": 2}) or train("config.json") failed inside with "'dict' object has no attribute
    'replace'" (resume=True: no attribute 'out')."""
    import taichi_nerf as tn

    before = snapshot(run)
    with pytest.raises(TypeError, match=f"config must be a TrainConfig, got {type(config).__name__}: .*from_file"):
        tn.train(config, resume=resume, out=str(run))
    assert snapshot(run) == before


@pytest.mark.parametrize("where", ["open_run", "Trainer"])
def test_custom_loop_says_what_config_takes(run, where):
    """docs/API.md's custom loop given a dict (open_run({"steps": 2}), Trainer({...})) failed inside with
    "'dict' object has no attribute 'validate'"; it now says how to make a TrainConfig, as train does."""
    from taichi_nerf.runs.run_folder import open_run
    from taichi_nerf.training.trainer import Trainer

    before = snapshot(run)
    make = {"open_run": lambda c: open_run(c).__enter__(), "Trainer": Trainer}[where]
    with pytest.raises(TypeError, match="cfg must be a TrainConfig, got dict: .*from_dict"):
        make({"steps": 2, "out": str(run)})
    assert snapshot(run) == before


def test_config_from_dict_and_from_file_say_which_takes_what(run):
    """TrainConfig.from_dict given a file's path listed its letters as unknown keys ("., /, 0, 6, a, c..."), and
    from_file given a dict failed in pathlib ("expected str, bytes or os.PathLike object, not dict")."""
    from taichi_nerf.config import TrainConfig

    with pytest.raises(TypeError, match=r"from_dict takes a dict of fields, got str: .*TrainConfig\.from_file\(path\)"):
        TrainConfig.from_dict(str(run / "config.json"))
    with pytest.raises(TypeError, match=r"from_file takes a JSON file's path, got dict: .*TrainConfig\.from_dict"):
        TrainConfig.from_file({"steps": 2})
    assert TrainConfig.from_file(run / "config.json").steps == 10  # (the run's own file still reads)


def test_gui_refuses_a_folder_holding_a_run(run, tiny_scene, capsys, monkeypatch):
    import importlib

    gui_launch = importlib.import_module("taichi_nerf.gui.launch")  # the module, not the function gui exports
    monkeypatch.setattr(gui_launch, "check_environment", lambda headless: None)  # no window needed to refuse
    before = snapshot(run)
    refused(capsys, ["gui", "--headless", "--frames", "1", "--data", tiny_scene, "--out", run],
            "already holds a run", "--train (in place of --out) to continue it")  # with --out, refused
    assert snapshot(run) == before
    spaced = run.rename(run.parent / "my run")  # the hint is a command to paste: its path quoted, as train's
    refused(capsys, ["gui", "--headless", "--frames", "1", "--data", tiny_scene, "--out", spaced],
            f"add --ckpt '{spaced}' --train (in place of --out) to continue it")
    backup = shutil.copy(spaced / "checkpoint.pt", spaced / "backup.pt")  # train --resume's rule and words
    refused(capsys, ["gui", "--headless", "--frames", "1", "--ckpt", backup, "--train"],
            "backup.pt: a resume continues a run folder from its checkpoint.pt", "copy it as checkpoint.pt")


# --- 2. resource guards ---------------------------------------------------------------------
@pytest.mark.parametrize("flag,value", [("--batch-rays", 10**12), ("--width", 10**7), ("--grid-resolution", 10**5),
                                        ("--scene-size", 10**7)])
def test_sizes_the_machine_cannot_hold_are_refused_up_front(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    line = refused(capsys, ["train", "--out", out, flag, value, "--arch", "cpu"], f"{flag} {value} needs about",
                   "the largest that fits is")
    largest = int(line.rsplit("the largest that fits is ", 1)[1].split()[0])
    assert 0 < largest < value
    assert not out.exists()


def test_too_many_samples_for_an_ordinary_batch_names_the_samples(tmp_path, capsys, monkeypatch):
    from taichi_nerf import resources

    monkeypatch.setattr(resources, "_host_free", lambda: 2 * 10**9)  # a small machine
    refused(capsys, ["train", "--out", tmp_path / "r", "--samples", "8000", "--arch", "cpu"],
            "--samples-per-ray 8000 needs about", "the largest that fits is")


def test_whole_image_batches_are_sized_by_their_chunks(monkeypatch):
    """The MLP sees a training batch a chunk at a time, so the Keras recipe's 50k rays x 32
    samples (9 GB in one piece) fit a 2 GB machine; only the batch's own per-ray buffers grow
    with it, and a batch too big even for those is refused with the largest that fits."""
    from taichi_nerf import resources

    monkeypatch.setattr(resources, "_host_free", lambda: 2 * 10**9)
    keras = TrainConfig().with_preset("keras")
    resources.check_training(keras, "cpu", 100 * 100)
    with pytest.raises(resources.ResourceError, match="--batch-images 2000000 needs about") as refusal:
        resources.check_training(keras.replace(batch_images=2_000_000), "cpu", 100 * 100)
    largest = int(str(refusal.value).rsplit("the largest that fits is ", 1)[1].split()[0])
    assert 5 < largest < 2_000_000


def test_the_memory_checks_measure_the_gpu_the_run_uses(monkeypatch):
    """The run's tensors are on cuda:0 (backend.init: Taichi's GPU); the checks asked torch for the
    free memory of its current GPU, another one after a torch.cuda.set_device, and so allowed or refused
    sizes by a GPU the run does not use. Runs on the CPU: torch is told of two GPUs, on the second."""
    from taichi_nerf import resources

    free = {0: 8 * 10**9, 1: 10**6}  # the run's GPU has room; the current one is nearly full

    def mem_get_info(device=None):
        index = 1 if device is None or torch.device(device).index is None else torch.device(device).index
        return free[index], 16 * 10**9

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert resources.free_bytes("cuda:0") == (free[0], "on the GPU")
    resources.check_orbit(400, 400, 2, "cuda:0")  # fits GPU 0 (refused by GPU 1's megabyte)

def test_render_size_beyond_memory_is_refused(run, tmp_path, capsys):
    before = snapshot(run)
    refused(capsys, ["render", "--ckpt", run, "--size", 10**6, "--frames", 2, "--out", tmp_path / "o.mp4",
                     "--no-progress",
                     "--arch", ARCH],
            "--size 1000000 needs about", "the largest that fits is")
    assert snapshot(run) == before and not (tmp_path / "o.mp4").exists()


# --- 3. metrics.jsonl and JSON reads --------------------------------------------------------
def test_resume_drops_a_torn_last_metrics_line(run, capsys):
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 11, "loss": 0.0')  # a kill mid-write
    code = cli.main(["train", "--resume", str(run), "--steps", "12", "--video-frames", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "dropped a torn last line" in out and "metrics.jsonl" in out
    steps = [r["step"] for r in metrics_rows(run) if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 12


def test_a_run_stopped_before_its_first_step_resumes_with_its_start_scored_once(tiny_scene, tmp_path):
    """A Ctrl-C during the first (slow) step saves at step 0; its resume validated the start again
    and metrics.jsonl held two step-0 rows."""
    cfg = tiny_config(tiny_scene, tmp_path / "run", steps=2, eval_every=2, preview_every=0, checkpoint_every=0,
                      width=16, batch_rays=64, samples_per_ray=8, sampler="stratified")
    assert Trainer(cfg).run(drive=lambda more: True).interrupted  # stopped before a step: saved at step 0
    assert checkpoint.read_state(tmp_path / "run" / "checkpoint.pt")["step"] == 0
    Trainer(cfg, resume=True).run()
    assert [row["step"] for row in metrics_rows(tmp_path / "run") if "val_psnr" in row] == [0, 2]


def test_a_damaged_metrics_row_mid_file_names_the_file_and_line(run, capsys):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[0] = lines[0][:-3]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    before = snapshot(run)
    refused(capsys, ["train", "--resume", run, "--steps", "12"], "metrics.jsonl: line 1 is not a metrics row")
    assert snapshot(run) == before


@pytest.mark.parametrize("text,needle", [('{"lr": 0.1,', "malformed JSON at line 1 column 12"),
                                         ('[1, 2]', "must be a JSON object"),
                                         ('{"lr": 0.1, "wings": 2}', "unknown configuration keys"),
                                         ('{"time_limit": 20, "fine_sample": 8}', "unknown configuration keys: "
                                          "fine_sample (did you mean fine_samples?), time_limit (did you mean "
                                          "time_limit_s?)"),
                                         ('{"steps": "100"}', "steps must be a whole number, got '100'"),
                                         (b"\xff\xfe\x00garbage", "not a text file")])
def test_config_file_errors_name_the_file(tmp_path, capsys, text, needle):
    path = tmp_path / "c.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused(capsys, ["train", "--config", path, "--out", tmp_path / "r"], f"{path}: ", needle)
    assert not (tmp_path / "r").exists()


# --- 4. absolute paths ----------------------------------------------------------------------
def test_paths_are_stored_absolute_and_a_moved_dataset_names_the_flag(tiny_scene, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    shutil.copytree(tiny_scene, work / "data")
    monkeypatch.chdir(work)
    code = cli.main(["train", "--data", "data", "--out", "runs/a", "--steps", "2", "--video-frames", "0", *TINY])
    capsys.readouterr()
    assert code == 0
    saved = json.loads((work / "runs/a/config.json").read_text())
    data = str((work / "data").resolve())
    assert saved["data"] == data and Path(saved["out"]) == (work / "runs/a").resolve()
    assert torch.load(work / "runs/a/checkpoint.pt", weights_only=True)["config"]["data"] == data
    monkeypatch.chdir(tmp_path)  # elsewhere: the stored paths still work
    assert cli.main(["eval", "--ckpt", str(work / "runs/a"), "--limit", "1", "--no-progress", "--arch", ARCH]) == 0
    capsys.readouterr()
    (work / "data").rename(work / "moved")
    before = snapshot(work / "runs/a")
    for argv in (["eval", "--ckpt", work / "runs/a", "--no-progress"], ["train", "--resume", work / "runs/a"]):
        refused(capsys, argv, data, "not there any more", "--data")
    with pytest.raises(ValueError, match=r"not there any more; give its new place with --data PATH \(from Python: "
                                         r"data=PATH\)"):  # the API's keyword too
        taichi_nerf.evaluate(work / "runs/a", limit=1, progress=False, arch=ARCH)
    assert snapshot(work / "runs/a") == before
    assert cli.main(["eval", "--ckpt", str(work / "runs/a"), "--data", str(work / "moved"), "--limit", "1",
                     "--no-progress", "--arch", ARCH]) == 0


# --- 5. nonsense refused --------------------------------------------------------------------
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_eval_limit_below_one_is_refused(run, capsys, limit):
    refused(capsys, ["eval", "--ckpt", run, "--limit", limit], f"--limit must be at least 1, got {limit}")


def test_eval_json_is_strict(run, capsys, monkeypatch, tmp_path):
    from taichi_nerf.training import validation

    monkeypatch.setattr(validation, "psnr", lambda *images_and_pixels: math.inf)  # a perfect match
    assert cli.main(["eval", "--ckpt", str(run), "--limit", "1", "--no-progress", "--arch", ARCH]) == 0

    def no_constants(name):
        raise AssertionError(f"{name} in JSON output")
    result = json.loads(capsys.readouterr().out, parse_constant=no_constants)
    assert result["psnr"] is None and result["images"][0]["psnr"] is None and result["count"] == 1
    assert result["object_psnr"] is None and result["images"][0]["object_psnr"] is None
    # render --split says so in words, not with a stack trace
    assert cli.main(["render", "--ckpt", str(run), "--split", "test", "--limit", "1", "--out", str(tmp_path / "r"),
                     "--no-progress", "--arch", ARCH]) == 0
    assert "(PSNR inf dB, SSIM" in capsys.readouterr().out
    from taichi_nerf.files import json_safe

    assert json_safe({"a": [1.0, float("nan"), -math.inf], "b": "x"}) == {"a": [1.0, None, None], "b": "x"}


@pytest.mark.parametrize("flag,value,needle", [
    ("--lr", "inf", "bad configuration: --lr must be a finite number"), ("--lr", "nan", "--lr must be a finite number"),
    ("--near", "nan", "--near must be a finite number"), ("--huber-delta", "-1", "--huber-delta must be positive"),
    ("--seed", "-1", "--seed must be"), ("--pos-frequencies", "1000", "--pos-frequencies must be at most"),
    ("--samples", "100000", "--samples/--samples-per-ray must be at most"),
    ("--eval-every", "-3", "--eval-every must not be negative"),
    ("--time-limit", "inf", "--time-limit/--time-limit-s must be a finite number"),
    ("--video-frames", "-1", "--video-frames"),
    ("--limit", "-1", "--limit must not be negative"),
])
def test_nonsense_numbers_are_refused_before_anything_happens(tmp_path, capsys, flag, value, needle):
    out = tmp_path / "run"
    refused(capsys, ["train", "--out", out, flag, value], needle)
    assert not out.exists()


def test_config_file_types_are_checked(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": "5", "lr_final": None, "progress": 1}))
    refused(capsys, ["train", "--config", path, "--out", tmp_path / "r"], "steps must be a whole number",
            "lr_final must be a number", "progress must be true or false")


def test_a_value_out_of_range_names_where_it_came_from(tmp_path, capsys):
    """With --config, a value out of range was named by its field alone ("bad configuration: steps
    must be at least 1"): neither the file it was in nor the flag it was typed as; and a preset's
    value that a flag made invalid was named as a flag never typed (--preset keras --sampler grid:
    "--intervals gaps needs the stratified sampler")."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": -5, "lr": 0.01}))
    line = refused(capsys, ["train", "--config", path, "--batch-rays", "-3", "--out", tmp_path / "r", "--dry-run"],
                   f"{path}: steps must be at least 1", "--batch-rays must be at least 1")
    assert "; batch_rays" not in line
    line = refused(capsys, ["train", "--preset", "keras", "--sampler", "grid", "--out", tmp_path / "r", "--dry-run"],
                   "--intervals gaps needs the stratified sampler", "(from --preset keras)")
    path.write_text(json.dumps({"preset": "keras"}))
    refused(capsys, ["train", "--config", path, "--sampler", "grid", "--out", tmp_path / "r", "--dry-run"],
            "intervals gaps needs the stratified sampler", f"(from the preset keras in {path})")
    assert not (tmp_path / "r").exists()


def test_numpy_numbers_are_numbers_and_a_list_field_says_list():
    """A notebook's np.int64(500) and np.array(aabb) are what they look like; a number where a
    list belongs is named as such (it once leaked a placeholder: "got <object object at ...>")."""
    from taichi_nerf.config import TrainConfig

    cfg = TrainConfig(steps=np.int64(50), lr=np.float64(0.01), batch_rays=np.int32(256),
                      aabb=np.array([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])).validate()
    assert (cfg.steps, cfg.batch_rays, cfg.lr) == (50, 256, 0.01) and type(cfg.steps) is int
    assert cfg.aabb == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0] and json.loads(json.dumps(cfg.to_dict()))["steps"] == 50
    with pytest.raises(ValueError, match=r"aabb must be a list, got 3\.0$"):
        TrainConfig(aabb=3.0).validate()


def test_torch_numbers_are_numbers_as_numpy_ones_are():
    """A sweep over torch.logspace hands train a 0-d tensor (lr=tensor(0.001, dtype=float64)), a
    field's box may be a tensor: both were refused ("lr must be a number, got tensor(...)")."""
    cfg = TrainConfig(lr=torch.logspace(-3, -2, 3, dtype=torch.float64)[0], steps=torch.tensor(50),
                      aabb=torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])).validate()
    assert (cfg.lr, cfg.steps, type(cfg.steps)) == (0.001, 50, int) and cfg.aabb == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]
    assert json.loads(json.dumps(cfg.to_dict()))["lr"] == 0.001


def test_divergence_mentions_only_a_checkpoint_that_exists(tiny_scene, tmp_path):
    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "fresh", steps=5, eval_every=0))
    with torch.no_grad():
        trainer.field.trunk[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged) as info:
        trainer.run()
    assert "No checkpoint was written" in str(info.value) and "last good checkpoint" not in str(info.value)


def test_downscale_too_large_names_the_image_size(tiny_scene, tmp_path, capsys):
    line = refused(capsys, ["data", "info", tiny_scene, "--downscale", "1000"],
                   "downscale 1000 is too large for 32 x 32 images")
    assert "cannot read image" not in line and line.count("r_000.png") == 1, line  # it said both, and the path twice
    npz = tmp_path / "tiny.npz"
    np.savez(npz, images=np.zeros((3, 10, 12, 3), np.float32), poses=np.tile(np.eye(4), (3, 1, 1)), focal=10.0)
    refused(capsys, ["data", "info", npz, "--downscale", "20"], "downscale 20 is too large for 12 x 10 images")


def test_a_downscale_that_leaves_a_few_pixels_is_warned(tiny_scene, capsys):
    """`--downscale 800` (meant as a size) read 4000x3000 photos as 5x3 and trained on them without a word."""
    from taichi_nerf.data.loaders import read_dataset

    assert cli.main(["data", "info", str(tiny_scene), "--downscale", "4"]) == 0
    out = capsys.readouterr().out
    assert "a downscale of 4 leaves 8x8 training images, too few pixels" in out, out
    assert "give a smaller --downscale (from Python: downscale=)" in out, out
    assert not any("a downscale of" in w for w in read_dataset(tiny_scene, downscale=2).warnings)  # 16x16: fine


# --- 6. leftovers and hints -----------------------------------------------------------------
def test_stale_partial_files_are_removed_on_the_next_start(run, capsys):
    dead_pid = (1 << 22) - 1  # Linux's largest pid: no process of ours (a dead writer's)
    for name in (f".checkpoint.pt.tmp{dead_pid}", f".metrics.jsonl.tmp{dead_pid}", f".config.json.tmp{dead_pid}"):
        (run / name).write_bytes(b"partial")
    live = run / f".checkpoint.pt.tmp{os.getppid()}"  # a live process's write in progress stays
    live.write_bytes(b"writing")
    assert cli.main(["train", "--resume", str(run), "--steps", "11", "--video-frames", "0", "--no-progress"]) == 0
    assert "partial file a killed run left behind" in capsys.readouterr().out
    assert sorted(p.name for p in run.glob(".*")) == [live.name]


def test_the_builtin_scene_cache_keeps_no_half_render(tmp_path, monkeypatch):
    """A Ctrl-C or a kill while the built-in scene rendered left its finished splits in the cache
    (`builtin-v1-...px.tmpPID`) for good: a Ctrl-C's are removed at once, a killed render's on the next use."""
    from taichi_nerf.scenes import builtin, synthetic

    monkeypatch.setenv("TAICHI_NERF_CACHE", str(tmp_path))
    name = f"builtin-v{builtin.BUILTIN_VERSION}-6views-24px"
    dead = tmp_path / f"{name}.tmp{(1 << 22) - 1}"  # Linux's largest pid: no process of ours (a killed render's)
    live = tmp_path / f"{name}.tmp{os.getppid()}"  # a live process's render in progress stays
    for folder in (dead, live):
        (folder / "train").mkdir(parents=True)

    def interrupted(out, **kwargs):  # Ctrl-C once the train split is written
        (Path(out) / "train").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "write_synthetic_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        builtin.builtin_scene(views=6, size=24, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]


def test_the_suite_keeps_the_builtin_scene_out_of_the_users_cache(tmp_path_factory):
    """A test that trains on the built-in scene (tiny_config(None, ...)), and gpu_check --small in
    its subprocess, rendered it into ~/.cache/taichi-nerf: what they trained on was whatever was
    there. The suite's own cache (conftest.builtin_scene_cache) is in its temporary folder."""
    from taichi_nerf.scenes.builtin import builtin_path

    session = tmp_path_factory.getbasetemp()
    assert builtin_path(6, 24).is_relative_to(session), builtin_path(6, 24)
    assert Path(checkout_env()["TAICHI_NERF_CACHE"]).is_relative_to(session)  # the suite's subprocesses too


def test_unreadable_checkpoints_never_suggest_unsafe_loading(tmp_path, capsys):
    import pickle

    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    rng = np.random.default_rng(0)
    state = {"format": "taichi-nerf", "model": Exploit(), "config": {}}
    zipped = tmp_path / "zipped.pt"
    torch.save(state, zipped)  # torch's own format around the exploit: only weights_only stops it
    files = {"random": (rng.bytes(4000), "not a checkpoint file"),
             "pickle-like": (b"\x80\x02" + rng.bytes(4000), "not a checkpoint file"),
             "exploit": (pickle.dumps(state), "not a checkpoint file"),
             "zipped exploit": (zipped.read_bytes(), "not a readable taichi-nerf checkpoint (not plain tensor data")}
    for name, (data, message) in files.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "checkpoint.pt").write_bytes(data)
        line = refused(capsys, ["render", "--ckpt", tmp_path / name, "--out", tmp_path / "o.gif"], message)
        assert "weights_only" not in line and "Re-running" not in line
    assert not marker.exists()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\x80\x02" + rng.bytes(4000))
    line = refused(capsys, ["data", "info", bad], "not a readable .npz file")
    assert "allow_pickle" not in line


@pytest.mark.parametrize("data,why", [(b"", "empty"), (b"garbage", "damaged")])
def test_a_runs_damaged_checkpoint_is_said_so_not_called_the_wrong_file(run, capsys, data, why):
    """An empty or overwritten RUN/checkpoint.pt was refused with "(a run's checkpoint.pt is the one
    to give)": the very file given. The hint stays for other files (a config.json given as --ckpt)."""
    (run / "checkpoint.pt").write_bytes(data)
    refused(capsys, ["train", "--resume", run], f"{run / 'checkpoint.pt'}: not a checkpoint file ({why})")
    refused(capsys, ["eval", "--ckpt", run / "config.json"], "not a checkpoint file (a run's checkpoint.pt is the one")


def test_resume_with_mis_sized_tensors_or_no_optimizer_is_one_line(run, capsys):
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    original = (run / "checkpoint.pt").read_bytes()
    state["model"]["trunk.0.weight"] = torch.zeros(3, 3)
    torch.save(state, run / "checkpoint.pt")
    before = snapshot(run)
    refused(capsys, ["train", "--resume", run, "--steps", "12"], "checkpoint.pt: does not fit this model",
            "trunk.0.weight is [3, 3] in the checkpoint but [16,")
    assert snapshot(run) == before
    state = torch.load(io_bytes(original), weights_only=True)
    del state["optimizer"]
    torch.save(state, run / "checkpoint.pt")
    before = snapshot(run)
    refused(capsys, ["train", "--resume", run, "--steps", "12"], "checkpoint.pt: cannot resume", "no optimizer state")
    assert snapshot(run) == before


def test_a_checkpoint_written_on_a_gpu_renders_and_resumes_where_there_is_none(tiny_scene, tmp_path, capsys,
                                                                               monkeypatch):
    """A run trained on a GPU server and copied to a laptop: its checkpoint's tensors are stored as
    CUDA's (a torch.load without map_location refuses them where torch has no GPU), its random state
    is the CUDA generator's (16 bytes: a CPU generator refuses them) and its config says arch "cuda".
    It evaluates and resumes there, every part of it (the grid, the pose corrections, the error map,
    fused Adam's state): the resume keeps the schedule, with a fresh random stream, said."""
    out = tmp_path / "run"
    Trainer(tiny_config(tiny_scene, out, steps=10, checkpoint_every=5, eval_every=0, preview_every=0, grid_warmup=4,
                        grid_update_every=2, refine_poses=True, pixel_sampling="error")).run()
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["grid"] and state["pose_refinement"] and state["error_map"] and state["optimizer"]["state"]
    state["config"]["arch"] = "cuda"
    state["rng"]["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's: Philox seed, offset
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")  # as a GPU's tensors are
        torch.save(state, out / "checkpoint.pt")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="on a CUDA device"):
            torch.load(out / "checkpoint.pt", weights_only=True)
    assert math.isfinite(taichi_nerf.evaluate(out, arch=ARCH, limit=1, progress=False)["psnr"])
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out), "--steps", "14", "--arch", ARCH]) == 0
    if ARCH == "cpu":
        assert "random state is from another device; continuing with a fresh seed" in capsys.readouterr().out
    assert checkpoint.read_state(out)["step"] == 14

def test_checkpoints_of_another_format_version_or_scene_are_one_line(run, capsys):
    """A newer format is refused (upgrade), a foreign version number too, and an unknown scene
    key gets the one line unknown configuration keys get, not Scene's TypeError."""
    original = (run / "checkpoint.pt").read_bytes()
    for change, message in (({"version": 2}, "written by a newer taichi-nerf (checkpoint format 2"),
                            ({"version": 0}, "unknown checkpoint format version 0"),
                            ({"version": "1"}, "unknown checkpoint format version '1'"),
                            ({"scene": "new_thing"}, "unknown scene keys: new_thing"),
                            ({"config": "future_knob"}, f"configuration keys this taichi-nerf "
                             f"({taichi_nerf.__version__}) does not know: future_knob; written by a newer version? "
                             "upgrade taichi-nerf")):
        state = torch.load(io_bytes(original), weights_only=True)
        if "scene" in change or "config" in change:  # a field of a newer version's
            state["scene" if "scene" in change else "config"][change.get("scene", change.get("config"))] = 1.0
        else:
            state.update(change)
        torch.save(state, run / "checkpoint.pt")
        for argv in (["eval", "--ckpt", run, "--limit", "1"], ["train", "--resume", run, "--steps", "12"]):
            refused(capsys, argv, message)
    state = torch.load(io_bytes(original), weights_only=True)
    del state["version"]  # written before the field existed: still read
    torch.save(state, run / "checkpoint.pt")
    assert cli.main(["eval", "--ckpt", str(run), "--limit", "1", "--no-progress"]) == 0
    capsys.readouterr()


def io_bytes(data: bytes):
    import io

    return io.BytesIO(data)


# --- the property: any number either runs or is refused in one line ------------------------
NUMERIC_FLAGS = {name: kind for name, kind in (
    ("steps", int), ("batch_rays", int), ("batch_images", int), ("samples_per_ray", int), ("width", int),
    ("depth", int), ("pos_frequencies", int), ("grid_resolution", int), ("march_steps", int),
    ("render_march_steps", int), ("seed", int), ("eval_every", int),
    ("downscale", int), ("scene_size", int), ("lr", float), ("lr_final", float), ("lr_step_at", float),
    ("near", float), ("far", float), ("density_bias", float), ("frequency_base", float), ("huber_delta", float),
    ("time_limit_s", float), ("silhouette_weight", float))}
NUMBERS = {int: st.one_of(st.integers(-10, 10), st.integers(-2**70, 2**70)),
           float: st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10))}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(sorted(NUMERIC_FLAGS)), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.tuples(*[st.tuples(st.just(n), NUMBERS[NUMERIC_FLAGS[n]]) for n in names])))
def test_any_numeric_train_flag_is_accepted_or_refused_in_one_line(tmp_path, capsys, flags):
    argv = ["train", "--dry-run", "--out", str(tmp_path / "never"), "--arch", "cpu"]
    for name, value in flags:  # --flag=value: argparse takes "-inf" after a space for an option
        argv.append(f"--{name.replace('_', '-')}={value!r}")
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code == 0:
        assert "would go to" in captured.out and captured.err == ""
    else:
        assert code == 2
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("taichi-nerf: error: ")
    assert not (tmp_path / "never").exists()


def test_a_dry_run_that_passes_really_runs(tiny_scene, tmp_path, capsys):
    argv = ["train", "--data", str(tiny_scene), "--out", str(tmp_path / "r"), "--steps", "1", "--video-frames", "0",
            "--lr", "1e-9", "--near", "0.5", *TINY]
    assert cli.main(argv + ["--dry-run"]) == 0 and not (tmp_path / "r").exists()
    assert cli.main(argv) == 0
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["step"] == 1


def test_a_folder_of_runs_names_the_runs_in_it(run, tmp_path, capsys):
    """`--ckpt runs` (the folder that holds the runs) said only "runs/checkpoint.pt: no checkpoint found"."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(run, runs / "first")
    line = refused(capsys, ["eval", "--ckpt", runs], "a folder of runs, not a run; give one of them:")
    assert line.endswith(str(runs / "first"))


@pytest.mark.parametrize("call", ["evaluate", "render_orbit", "export_points"])
def test_the_api_says_what_a_checkpoint_is_given_as(run, tmp_path, call):
    """tn.evaluate(result) (the TrainResult, not its .checkpoint) or ckpt=None raised Path()'s "expected str,
    bytes or os.PathLike object, not TrainResult" from inside the checkpoint loader."""
    import taichi_nerf as tn
    from taichi_nerf.training.result import TrainResult

    result = TrainResult(run, run / "checkpoint.pt", 10, None, False, 1.0)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    out = {"render_orbit": [outputs / "o.mp4"], "export_points": [outputs / "p.ply"]}.get(call, [])
    with pytest.raises(TypeError, match=r"checkpoint.pt, got TrainResult \(give its .checkpoint\)"):
        getattr(tn, call)(result, *out, progress=False)
    with pytest.raises(TypeError, match=r"checkpoint.pt, got NoneType$"):
        getattr(tn, call)(None, *out, progress=False)
    assert list(outputs.iterdir()) == []



@pytest.mark.parametrize("command", ["eval", "render", "export mesh"])
def test_a_run_before_its_first_checkpoint_says_so(run, capsys, command):
    """A run folder killed before its first checkpoint said only "RUN/checkpoint.pt: no checkpoint found"."""
    (run / "checkpoint.pt").unlink()
    refused(capsys, [*command.split(), "--ckpt", run], "no checkpoint found; the run there has no checkpoint yet")


def test_a_folder_whose_checkpoint_has_another_name_names_it(run, tmp_path, capsys):
    """A folder holding a checkpoint saved as best.pt (renamed, downloaded, copied aside) said only
    "FOLDER/checkpoint.pt: no checkpoint found", with no word of the file that is there."""
    folder = tmp_path / "downloaded"
    folder.mkdir()
    shutil.copy(run / "checkpoint.pt", folder / "best.pt")
    refused(capsys, ["eval", "--ckpt", folder], f"{folder} holds best.pt: give that file's path (e.g. "
            f"{folder / 'best.pt'})")
    assert cli.main(["eval", "--ckpt", str(folder / "best.pt"), "--limit", "1", "--no-progress", "--arch", ARCH]) == 0


@pytest.mark.parametrize("command", ["eval", "render", "export mesh"])
def test_a_dataset_given_as_the_run_says_so(tiny_scene, capsys, command):
    """`--ckpt DATASET` (a dataset folder where the trained run belongs) said only
    "DATASET/checkpoint.pt: no checkpoint found"."""
    line = refused(capsys, [*command.split(), "--ckpt", tiny_scene], "a dataset (")
    assert "not a run; train on it first (taichi-nerf train --data" in line and str(tiny_scene) in line, line


def test_eval_into_head_and_into_a_folder(run, tmp_path):
    """`eval | head` ended in "taichi-nerf: error: : Broken pipe"; `--out DIR/` wrote a file named DIR."""
    proc = subprocess.Popen([sys.executable, "-m", "taichi_nerf", "eval", "--ckpt", str(run), "--no-progress",
                             "--arch", ARCH, "--out", str(tmp_path / "scores") + os.sep], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=checkout_env())
    proc.stdout.close()  # a reader that has gone (head after its lines) before the JSON comes
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "error" not in stderr and "Traceback" not in stderr, stderr
    saved = json.loads((tmp_path / "scores" / "eval.json").read_text())
    assert saved["checkpoint"] == str((run / "checkpoint.pt").resolve()) and saved["psnr"] > 0


@pytest.mark.parametrize("name", ["checkpoint.pt", "config.json", "metrics.jsonl"])
def test_eval_out_never_replaces_a_runs_own_file(run, capsys, name):
    """`eval --ckpt RUN --out RUN/checkpoint.pt` wrote the scores over the trained checkpoint."""
    before = snapshot(run)
    line = refused(capsys, ["eval", "--ckpt", run, "--out", run / name], "a run's own file")
    assert str(run / name) in line and "give another --out" in line, line
    if name == "checkpoint.pt":  # the file given as --ckpt too
        refused(capsys, ["eval", "--ckpt", run / name, "--out", run / name], "a run's own file")
    assert snapshot(run) == before


def test_eval_out_replaces_only_an_earlier_evals_scores(run, tiny_scene, tmp_path, capsys):
    """`eval --out DATA/transforms_train.json` wrote the scores over the dataset's cameras; any file but an
    earlier eval's JSON (or an empty one) is refused before the evaluation, and an earlier eval's is replaced."""
    data = tmp_path / "data"
    shutil.copytree(tiny_scene, data)
    before = snapshot(data)
    line = refused(capsys, ["eval", "--ckpt", run, "--limit", "1", "--out", data / "transforms_train.json"],
                   "holds something other than an earlier eval's scores", "give another --out")
    assert str(data / "transforms_train.json") in line and snapshot(data) == before
    scores = tmp_path / "scores.json"
    for _ in range(2):  # written, then replaced
        assert cli.main(["eval", "--ckpt", str(run), "--limit", "1", "--out", str(scores), "--no-progress",
                         "--arch", ARCH]) == 0
        assert json.loads(scores.read_text())["split"] == "test"
    capsys.readouterr()


def test_data_info_on_a_run_folder_names_its_dataset(run, capsys):
    """It said "unknown dataset layout" for the folder a run writes."""
    data = json.loads((run / "config.json").read_text())["data"]
    refused(capsys, ["data", "info", run], "a run folder, not a dataset; it trained on", f"data info {data}")


def test_the_api_given_a_run_folder_for_data_names_its_dataset(run, tmp_path):
    """tn.load_dataset(RUN) and train(data=RUN) called it photos without camera poses (its curves.png),
    to be posed with COLMAP."""
    import taichi_nerf as tn
    from taichi_nerf.data.dataset import DataError

    data = json.loads((run / "config.json").read_text())["data"]
    with pytest.raises(DataError, match=f"a run folder, not a dataset; it trained on {data}$"):
        tn.load_dataset(run)
    with pytest.raises(DataError, match="a run folder, not a dataset"):
        tn.train(data=str(run), out=str(tmp_path / "new"), steps=2)
    assert not (tmp_path / "new").exists()


def test_a_dataset_beside_another_tools_checkpoint_still_loads(tiny_scene, tmp_path, capsys):
    """Only a run folder of ours is refused as data: a checkpoint.pt of another tool kept in a dataset
    folder made the dataset unloadable ("not a taichi-nerf checkpoint")."""
    import taichi_nerf as tn

    data = Path(shutil.copytree(tiny_scene, tmp_path / "data"))
    torch.save({"state_dict": {}}, data / "checkpoint.pt")
    assert tn.load_dataset(data).split("train").count > 0
    assert cli.main(["data", "info", str(data)]) == 0, capsys.readouterr().err


def test_a_truncated_checkpoint_is_said_to_be_truncated(tmp_path):
    """A checkpoint cut short (a full disk, a copy stopped half way) is refused as truncated at
    any length, never with torch's zip reader's bare "[Errno 22] Invalid argument"."""
    whole = tmp_path / "whole.pt"
    torch.save({"format": "taichi-nerf", "model": {"w": torch.zeros(20000)}, "config": {}}, whole)
    data = whole.read_bytes()
    for size in (100, 1000, 5000, 50000, len(data) // 2, len(data) - 10):
        cut = tmp_path / f"cut{size}.pt"
        cut.write_bytes(data[:size])
        with pytest.raises(checkpoint.CheckpointError) as refusal:
            checkpoint.read_state(cut)
        assert "truncated or not a checkpoint file" in str(refusal.value), (size, str(refusal.value))
        assert "Errno" not in str(refusal.value)
