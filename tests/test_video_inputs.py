"""A phone video through ``data from-photos``, found by a new-user probe: the mapping bar through
COLMAP's later attempts, the one line for a video file that cannot give frames (an audio-only
file, an empty one, a copy cut short before its index), a phone's .m4v or .3gp, and a still start.
Nothing here runs COLMAP."""
import io

from PIL import Image
from tqdm import tqdm


def test_the_mapping_bar_moves_through_every_attempt():
    """The bar stood at 0/40 for the whole of attempts 2 and 3 (half a minute on a 40-frame
    video): tqdm drew only once the count passed the 40 it drew at the end of attempt 1."""
    from taichi_nerf.capture.photos import _new_attempt

    out = io.StringIO()
    bar = tqdm(total=10, file=out, mininterval=0, miniters=1, ascii=True)  # a photo at a time, as COLMAP goes
    bar.update(10)
    _new_attempt(bar, 1)
    bar.update(3)
    drawn = out.getvalue().split("\r")
    assert "attempt 2/3" in drawn[-1] and " 3/10 " in drawn[-1], drawn[-3:]


def _video(path, frames=6, size=(48, 32), **params):
    import imageio.v2 as iio
    import numpy as np

    rng = np.random.default_rng(0)
    with iio.get_writer(path, fps=10, macro_block_size=16, ffmpeg_params=["-threads", "1"], **params) as writer:
        for _ in range(frames):
            writer.append_data((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))
    return path


def test_a_phones_m4v_or_3gp_is_read(tmp_path):
    """iPhone exports (.m4v), older Android phones (.3gp) and camcorders (.mts) were refused with
    "`FFMPEG` can not handle the given uri": imageio's plugin goes by extension, ffmpeg reads them."""
    from taichi_nerf.capture.video_frames import extract_frames

    made = _video(tmp_path / "made.mp4")
    for suffix in (".m4v", ".3gp", ".MTS"):
        video = tmp_path / f"clip{suffix}"
        video.write_bytes(made.read_bytes())
        assert len(extract_frames(video, tmp_path / suffix[1:], count=6, progress=False)) == 6


def test_a_file_with_no_frames_to_give_says_why(tmp_path, capsys):
    import subprocess

    import imageio_ffmpeg

    from .conftest import refused

    def refusal(video, *needles):
        return refused(capsys, ["data", "from-photos", str(video), "--out", str(tmp_path / "ds"), "--no-progress"],
                       *needles)

    (tmp_path / "empty.mp4").write_bytes(b"")  # a copy that never started
    refusal(tmp_path / "empty.mp4", "the file is empty, 0 bytes")
    sound = tmp_path / "voice memo.m4a"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=duration=0.5", "-c:a", "aac", str(sound)], check=True, capture_output=True)
    refusal(sound, "no video stream, only sound")
    whole = _video(tmp_path / "whole.mp4", frames=20)  # the index (moov) at the end, as a phone writes it
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    line = refusal(cut, "'moov atom', is missing", "cut short")
    assert "Invalid data" not in line, line
    assert not (tmp_path / "ds").exists()


def test_a_still_start_is_passed_over_and_the_frames_come_from_the_walk(tmp_path):
    """60 still frames before a walk gave 16 copies of one picture among 40 frames; COLMAP's matches
    between them stood still, and the capture was refused as a tripod's (82% of matches still)."""
    import imageio.v2 as iio
    import numpy as np
    import pytest

    from taichi_nerf.capture.video_frames import extract_frames
    from taichi_nerf.data.dataset import DataError

    rng = np.random.default_rng(3)
    world = (rng.random((64, 400, 3)) * 255).astype(np.uint8)
    walk = [world[:, 8 * k:8 * k + 64] for k in range(30)]  # the camera sweeps 8 px a frame
    video = tmp_path / "walk.mp4"
    with iio.get_writer(video, fps=10, quality=9, macro_block_size=16, ffmpeg_params=["-threads", "1"]) as writer:
        for frame in [walk[0]] * 30 + walk:  # 3 s held still (31 frames alike), then the walk
            writer.append_data(frame)
    said = []
    names = extract_frames(video, tmp_path / "frames", count=10, progress=False, warnings=said)
    kept = [np.asarray(Image.open(tmp_path / "frames" / n), dtype=np.float32) for n in names]
    assert len(names) == 10
    assert min(np.abs(a - b).mean() for a, b in zip(kept, kept[1:])) > 10  # no two alike
    assert len(said) == 1 and "30 of its 60 frames repeat the one before" in said[0], said
    still = tmp_path / "tripod.mp4"
    with iio.get_writer(still, fps=10, quality=9, macro_block_size=16, ffmpeg_params=["-threads", "1"]) as writer:
        for _ in range(20):
            writer.append_data(walk[0])
    with pytest.raises(DataError, match="the other 19 repeat them: the camera stood still"):
        extract_frames(still, tmp_path / "tripod", count=10, progress=False)
