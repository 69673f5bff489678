"""A write that fails mid-run (a full disk): one line naming the file asked for, the earlier
file whole, and for a run, the way to continue it. A file size limit and /dev/full (every write
to it fails with ENOSPC) stand in for a full disk."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from taichi_nerf import cli
from taichi_nerf.files import append_line
from taichi_nerf.runs import checkpoint
from taichi_nerf.training.trainer import Trainer

from .conftest import TINY, checkout_env

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")


def full_disk_for(path: Path) -> Path:
    """The next atomic write of ``path`` by this process goes to /dev/full (its temporary file is a link there)."""
    temp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temp.symlink_to("/dev/full")
    return temp


# The disk fills part-way through the checkpoint: the process may write 200 kB per file, no more.
PART_WAY = """
import resource, signal, sys, torch
from pathlib import Path
from taichi_nerf.runs import checkpoint
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of ending the process
path = Path(sys.argv[1])
checkpoint.save_atomic({"step": 5}, path)
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
try:
    checkpoint.save_atomic({"step": 10, "weights": torch.zeros(100_000)}, path)
except OSError as exc:
    print(exc.errno, exc.filename)
"""


def test_a_checkpoint_save_that_fails_part_way_names_the_file_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    done = subprocess.run([sys.executable, "-c", PART_WAY, str(path)], capture_output=True, text=True,
                          env=checkout_env(), timeout=120)
    # was: RuntimeError "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598" from torch
    assert done.returncode == 0 and done.stdout.split() == [str(errno.EFBIG), str(path)], done.stderr[-2000:]
    assert torch.load(path, weights_only=True)["step"] == 5 and os.listdir(tmp_path) == ["checkpoint.pt"]


def test_a_run_whose_disk_fills_says_so_in_one_line_and_how_to_continue(tiny_scene, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "--data", tiny_scene, "--out", out, "--steps", "4", "--checkpoint-every", "2",
            "--video-frames", "0", *TINY]
    saves = []
    save = Trainer.save_checkpoint

    def fill_after_the_first(trainer):  # the disk fills between the first checkpoint and the second
        if saves:
            full_disk_for(out / "checkpoint.pt")
        saves.append(trainer.step_count)
        return save(trainer)

    monkeypatch.setattr(Trainer, "save_checkpoint", fill_after_the_first)
    assert cli.main([str(a) for a in args]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith(f"taichi-nerf: error: {out / 'checkpoint.pt'}: No space left on device; "), err
    assert f"taichi-nerf train --resume {out} continues from it" in err[0], err
    assert checkpoint.read_state(out / "checkpoint.pt")["step"] == 2  # the first save, whole


def test_a_metrics_row_on_a_full_disk_names_the_file(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.symlink_to("/dev/full")
    with pytest.raises(OSError) as raised:  # was: "taichi-nerf: error: : No space left on device"
        append_line(log, '{"step": 1}')
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(log)


@pytest.mark.parametrize("name", ["orbit.mp4", "orbit.gif"])
def test_a_video_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, name):
    """ffmpeg that could not write (a full disk) left an empty orbit.mp4 in place of the earlier one:
    imageio-ffmpeg never looks at its exit status. A gif's failed write named no file."""
    from taichi_nerf.outputs.video import write_video

    frames = np.full((2, 16, 16, 3), 128, np.uint8)
    path = write_video(tmp_path / name, frames)
    before = path.read_bytes()
    temp = tmp_path / f".orbit.partial{os.getpid()}{path.suffix}"
    temp.symlink_to("/dev/full")
    with pytest.raises(OSError) as raised:
        write_video(path, frames)
    assert raised.value.filename == str(path), raised.value
    assert path.read_bytes() == before and not path.is_symlink() and not temp.is_symlink()


def test_a_videos_set_whose_gif_meets_a_full_disk_keeps_the_whole_earlier_set(tmp_path):
    """A render whose gif met a full disk left its new mp4s beside the earlier render's gif: each file whole,
    the set mixed. Now every file waits for the others, and the earlier set stays as it was."""
    from types import SimpleNamespace

    from taichi_nerf.outputs.video import VideoRecorder

    def recorder(shade):
        frames = [np.full((16, 16, 3), shade, np.uint8)] * 2
        return SimpleNamespace(rgb_frames=frames, depth_frames=frames, out=tmp_path / "orbit.mp4", fps=10)

    names = ["orbit.mp4", "orbit_depth.mp4", "orbit.gif"]
    assert [p.name for p in VideoRecorder.write(recorder(40))] == names
    before = {name: (tmp_path / name).read_bytes() for name in names}
    (tmp_path / f".orbit.partial{os.getpid()}.gif").symlink_to("/dev/full")  # the gif, the set's last, cannot be
    with pytest.raises(OSError) as raised:
        VideoRecorder.write(recorder(200))
    assert raised.value.filename == str(tmp_path / "orbit.gif"), raised.value
    assert {name: (tmp_path / name).read_bytes() for name in names} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no partial file stays


def test_a_video_that_cannot_be_written_after_training_says_the_run_is_saved(tiny_scene, tmp_path, capsys,
                                                                              monkeypatch):
    from taichi_nerf.outputs import default_video

    def full_disk(renderer, out, *args, **kwargs):
        raise OSError(errno.ENOSPC, "ffmpeg could not write the video (no space left on device)", str(out))

    monkeypatch.setattr(default_video, "write_default_video", full_disk)
    out = tmp_path / "run"
    assert cli.main([str(a) for a in ["train", "--data", tiny_scene, "--out", out, "--steps", "1",
                                      "--video-frames", "2", *TINY]]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no space left on device); the trained run is saved" in err[0], err
    assert f"only the video is missing: taichi-nerf render --ckpt {out} --out {out}/" in err[0], err
    assert err[0].endswith(" --frames 2"), err  # the run's own count, not render's default


def test_a_write_whose_hidden_file_cannot_be_made_names_the_file_asked_for(tmp_path):
    """A folder gone read-only: the error named `.checkpoint.pt.tmp21686`, a file the user never asked for."""
    path = tmp_path / "checkpoint.pt"
    path.with_name(f".{path.name}.tmp{os.getpid()}").symlink_to(tmp_path / "gone" / "file")  # cannot be opened
    with pytest.raises(OSError) as raised:
        checkpoint.save_atomic({"step": 1}, path)
    assert raised.value.filename == str(path) and not path.exists()


@pytest.mark.parametrize("fails, says", [
    ("first save", "no checkpoint was written: the 2 steps trained are lost"),
    ("second save", "every step is trained and in the checkpoint (step 2); only the run's end is missing "
                    "(the final validation's save, curves.png): once this is fixed, taichi-nerf train --resume {out} "
                    "validates it again, with no more training"),
    ("curves", "every step is trained and in the checkpoint (step 2); only the run's end is missing"),
], ids=["first-save", "second-save", "curves"])
def test_a_full_disk_at_the_runs_end_says_what_is_lost(tiny_scene, tmp_path, capsys, monkeypatch, fails, says):
    """With --checkpoint-every 0 a full disk at the end said "the run's last checkpoint is whole: --resume continues
    from it", whether no checkpoint had been written (every step lost) or the checkpoint held every step (the
    failed write was the second save, after the final validation, or curves.png: the resume only validates)."""
    out = tmp_path / "run"
    saves = []
    save = Trainer.save_checkpoint

    def fill_the_disk(trainer):
        if fails == "first save" or (fails == "second save" and saves):
            full_disk_for(out / "checkpoint.pt")
        saves.append(trainer.step_count)
        path = save(trainer)
        if fails == "curves" and len(saves) == 2:
            full_disk_for(out / "curves.png")
        return path

    monkeypatch.setattr(Trainer, "save_checkpoint", fill_the_disk)
    assert cli.main([str(a) for a in ["train", "--data", tiny_scene, "--out", out, "--steps", "2",
                                      "--checkpoint-every", "0", "--video-frames", "0", *TINY]]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "No space left on device; " + says.format(out=out) in err[0], err
    assert "continues from it" not in err[0], err
