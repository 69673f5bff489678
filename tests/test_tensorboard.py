"""`train --logger tensorboard`: the event file holds metrics.jsonl's scalars and the images,
read back with TensorBoard's own event reader."""
import json
import threading

import pytest

pytest.importorskip("tensorboard", reason="needs the tensorboard extra: pip install -e '.[tensorboard]'")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from taichi_nerf.rendering.renderer import Renderer  # noqa: E402
from taichi_nerf.runs.tensorboard_log import FINAL_VIEWS  # noqa: E402
from taichi_nerf.training.trainer import Trainer  # noqa: E402

from .conftest import tiny_config  # noqa: E402


def test_tensorboard_events_hold_the_metrics_and_images(tiny_scene, tmp_path):
    """... and the run closes its writer: a sweep of runs in one notebook kept each one's thread and file."""
    cfg = tiny_config(tiny_scene, tmp_path / "run", logger="tensorboard", steps=40, log_every=10, preview_every=20)
    threads = set(threading.enumerate())
    Trainer(cfg).run()
    assert [t.name for t in set(threading.enumerate()) - threads if t.is_alive()] == []
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    for key in ("loss", "train_psnr", "lr", "val_psnr"):
        expected = [(r["step"], r[key]) for r in rows if key in r]
        got = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in got] == [s for s, _ in expected], key
        assert all(abs(v - w) <= 1e-5 * max(1.0, abs(w)) for (_, v), (_, w) in zip(got, expected)), key
    times = [e.step for e in events.Scalars("time_s")]
    assert times == [r["step"] for r in rows if "loss" in r]  # once a step: a validation row's came twice
    assert [e.step for e in events.Images("preview")] == [20, 40]  # the end's at 40 is the schedule's: once
    final = events.Images("final/val_0")
    assert len(final) == 1 and final[0].step == 40 and final[0].width == 2 * 32 and final[0].height == 32


def test_final_images_are_the_final_validations_renders(tiny_scene, tmp_path, monkeypatch):
    """The logger shows the pictures the final validation rendered; it renders nothing again.
    (The default logger writes no events.)"""
    renders = []
    original = Renderer.render_image
    monkeypatch.setattr(Renderer, "render_image", lambda self, *a, **k: renders.append(1) or original(self, *a, **k))
    counts = {}
    for logger in ("jsonl", "tensorboard"):
        renders.clear()
        trainer = Trainer(tiny_config(tiny_scene, tmp_path / logger, logger=logger, steps=2, eval_every=0,
                                      preview_every=0, checkpoint_every=0))
        trainer.run()
        counts[logger] = len(renders)
    assert counts["tensorboard"] == counts["jsonl"] >= trainer.val.count
    assert not (tmp_path / "jsonl" / "tensorboard").exists()
    events = EventAccumulator(str(tmp_path / "tensorboard" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    finals = sorted(t for t in events.Tags()["images"] if t.startswith("final/"))
    assert finals == [f"final/val_{i}" for i in range(min(FINAL_VIEWS, trainer.val.count))]



def scalar_points(folder, key):
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, round(e.value, 4)) for e in events.Scalars(key)]


def row_points(folder, key):
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], round(r[key], 4)) for r in rows if key in r]


def test_a_resume_after_a_kill_shows_each_step_once(tiny_scene, tmp_path):
    """A run killed after its checkpoint logged steps that the resume logs again: metrics.jsonl drops
    them, and TensorBoard hides the old events past the checkpoint, so no step is shown twice."""
    out = tmp_path / "run"
    cfg = tiny_config(tiny_scene, out, logger="tensorboard", steps=12, log_every=3, eval_every=6,
                      checkpoint_every=6, preview_every=0)
    killed = Trainer(cfg)
    killed.begin()
    while killed.step_count < 9:  # checkpoint at 6, a row at 9: then a kill (no finish)
        killed.advance()
    for callback in killed.callbacks:
        getattr(callback, "close", lambda: None)()
    Trainer(cfg, resume=True).run()
    for key in ("loss", "val_psnr", "time_s"):
        points = scalar_points(out, key)
        assert [s for s, _ in points] == sorted({s for s, _ in points}), key  # each step once
    assert scalar_points(out, "loss") == row_points(out, "loss")
    assert scalar_points(out, "val_psnr") == row_points(out, "val_psnr")
    # a resume of the finished run redoes its final validation: that step's rows stay, once each
    Trainer(cfg, resume=True).run()
    assert scalar_points(out, "loss") == row_points(out, "loss") and scalar_points(out, "loss")[-1][0] == 12
    assert scalar_points(out, "val_psnr") == row_points(out, "val_psnr")
