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
    from taichi_nerf.capture.colmap_stages import _new_attempt

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
    (tmp_path / "note.mp4").write_text("hello")  # not a video at all: not "a copy cut short"
    assert "cut short" not in refusal(tmp_path / "note.mp4", "it is not an MP4/MOV file")
    (tmp_path / "stub.mp4").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 9\n")
    refusal(tmp_path / "stub.mp4", "it is a Git LFS pointer, not the file itself")
    assert not (tmp_path / "ds").exists()


def test_a_still_start_is_not_taken_for_a_copy_cut_short(tmp_path, capsys):
    """A phone video's still start (the frames passed over as repeats) was counted as damage: too few
    frames, or too few registered, told the user to find 'a complete copy of the video (this one is cut
    short or damaged)' of a whole file, instead of to film longer."""
    import imageio.v2 as iio
    import numpy as np
    import pytest

    from .conftest import refused

    pytest.importorskip("pycolmap")  # from-photos asks for it first
    rng = np.random.default_rng(1)
    walk = [(rng.random((32, 48, 3)) * 255).astype(np.uint8) for _ in range(5)]
    clip = tmp_path / "clip.mp4"
    with iio.get_writer(clip, fps=10, macro_block_size=16, ffmpeg_params=["-threads", "1"]) as writer:
        for frame in [walk[0]] * 10 + walk:
            writer.append_data(frame)
    line = refused(capsys, ["data", "from-photos", clip, "--out", tmp_path / "ds", "--no-progress"],
                   "5 frames, too few to train", "the video gave all its 5 frames: film longer")
    assert "cut short" not in line, line
    whole = tmp_path / "whole.mp4"  # a copy truly cut short still asks for a complete one
    with iio.get_writer(whole, fps=10, macro_block_size=16, output_params=["-movflags", "+faststart"],
                        ffmpeg_params=["-threads", "1"]) as writer:
        for _ in range(12):
            writer.append_data((rng.random((32, 48, 3)) * 255).astype(np.uint8))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    refused(capsys, ["data", "from-photos", cut, "--out", tmp_path / "ds", "--no-progress"],
            "too few to train", "a complete copy of the video (this one is cut short or damaged)")


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


def test_a_still_end_or_pause_is_passed_over_and_the_frames_still_spread_over_the_walk(tmp_path):
    """The stretches were sized as the frames came, so repeats after the walk (the phone put down
    before the recording stopped, a pause) cut the frames kept: 10 asked, 5 given for a still end."""
    import imageio.v2 as iio
    import numpy as np

    from taichi_nerf.capture.video_frames import extract_frames

    rng = np.random.default_rng(3)
    world = (rng.random((64, 400, 3)) * 255).astype(np.uint8)
    walk = [world[:, 8 * k:8 * k + 64] for k in range(30)]
    for name, frames in (("end", walk + [walk[-1]] * 30), ("pause", walk[:15] + [walk[14]] * 30 + walk[15:])):
        video = tmp_path / f"{name}.mp4"
        with iio.get_writer(video, fps=10, quality=9, macro_block_size=16, ffmpeg_params=["-threads", "1"]) as w:
            for frame in frames:
                w.append_data(frame)
        said = []
        names = extract_frames(video, tmp_path / name, count=10, progress=False, warnings=said)
        kept = [np.asarray(Image.open(tmp_path / name / n), dtype=np.float32) for n in names]
        assert len(names) == 10 and sorted(p.name for p in (tmp_path / name).iterdir()) == names, (name, names)
        assert min(np.abs(a - b).mean() for a, b in zip(kept, kept[1:])) > 10, name  # no two alike
        assert len(said) == 1 and "30 of its 60 frames repeat" in said[0] and "the 10 frames kept" in said[0], said


def _model(centres, names=None):
    import numpy as np

    from taichi_nerf.data.colmap_files import Model

    n = len(centres)
    # listed out of order on purpose: the video's order is the names' order
    names = names or [f"frame_{k + 1:05d}.jpg" for k in range(n)]
    order = list(range(n))[::2] + list(range(n))[1::2]
    return Model(cameras={}, image_ids=np.arange(n), names=[names[k] for k in order], camera_ids=np.ones(n, int),
                 qvecs=np.tile([1.0, 0, 0, 0], (n, 1)), tvecs=-np.asarray(centres, float)[order],
                 observed=[np.zeros(0, np.int64)] * n, point_ids=np.zeros(0, np.int64), xyz=np.zeros((0, 3)),
                 rgb=np.zeros((0, 3), np.uint8), errors=np.zeros(0), track_lengths=np.zeros(0, np.int64))


def test_a_video_whose_cameras_jump_between_neighbouring_frames_is_refused():
    """A 40-frame walk registered every frame at 0.39 px, 36 of them within 5% of the truth, and
    the last 4 fifteen times the walk's radius away: written, and trained on, without a word."""
    import math

    import numpy as np

    from taichi_nerf.capture.degenerate import MAX_VIDEO_JUMP, jump_message, video_jump, video_jumped
    from taichi_nerf.capture.photos import PhotoReport

    angles = np.radians(np.cumsum(6.0 * (1 + 0.5 * np.sin(np.arange(40)))))  # an uneven walk
    walk = np.stack([3.6 * np.cos(angles), 3.6 * np.sin(angles), np.full(40, 0.7)], axis=1)
    ratio, where, share = video_jump(_model(walk))
    assert ratio < MAX_VIDEO_JUMP / 3 and not video_jumped((ratio, where, share)), ratio
    broken = walk.copy()
    broken[36:] += [50.0, -20.0, 0.0]
    jump = ratio, where, share = video_jump(_model(broken))
    assert ratio > MAX_VIDEO_JUMP and where == "frame_00036.jpg -> frame_00037.jpg" and video_jumped(jump)
    line = jump_message("walk.mp4", *jump)
    assert "between frame_00036.jpg and frame_00037.jpg" in line and "--keep-degenerate" in line, line
    collapsed = np.repeat(walk[:1], 40, axis=0)  # most cameras on one spot, a few flung away
    collapsed[30:] = walk[30:]
    assert video_jump(_model(collapsed))[0] == math.inf and video_jumped(video_jump(_model(collapsed)))
    report = PhotoReport(out=None, total=40, registered=[], unregistered=[], skipped=[], points3D=0,
                         mean_reprojection_error=0.5, models=1, matching="sequential", pairs=0,
                         camera_model="SIMPLE_RADIAL", cameras=1, video_jump=jump)
    assert "jumps" in report.table() and report.as_json()["video_jump"] == round(ratio, 2)
    assert report.as_json()["video_jump_share"] == round(share, 3)
    # frames left unregistered between two neighbours: the step is spread over the frames it spans
    names = [f"frame_{k + 1:05d}.jpg" for k in range(40)]
    gap = _model(np.delete(walk, range(10, 30), axis=0), [n for k, n in enumerate(names) if not 10 <= k < 30])
    assert video_jump(gap, names)[0] < MAX_VIDEO_JUMP / 3 < video_jump(gap)[0]


def test_a_hand_held_pause_before_the_walk_is_no_jump():
    """Standing still (a hand's shake, so no frame repeats exactly) for more than half the video
    before walking round made the median step tiny: the walk's first step was 42 x it, and an
    honest video was refused as a broken model."""
    import numpy as np

    from taichi_nerf.capture.degenerate import MAX_VIDEO_JUMP, video_jump, video_jumped

    angles = np.radians(np.arange(16) * 15.0)
    walk = np.stack([3.6 * np.cos(angles), 3.6 * np.sin(angles), np.full(16, 0.7)], axis=1)
    shake = walk[:1] + np.random.default_rng(0).normal(0.0, 0.005, (24, 3))
    jump = video_jump(_model(np.concatenate([shake, walk])))
    assert jump[0] > MAX_VIDEO_JUMP and jump[2] < 0.2, jump  # far over the median, a small part of the walk
    assert not video_jumped(jump)


def test_a_video_too_short_to_train_is_refused_before_colmap(tmp_path, capsys):
    """A 5-frame clip ran COLMAP for 20 s to say 'registered no images: ... photos must overlap';
    fewer frames than a field needs are refused as soon as they are read, saying why."""
    import pytest

    from .conftest import refused

    pytest.importorskip("pycolmap")  # from-photos asks for it first
    clip = _video(tmp_path / "clip.mp4", frames=5)
    argv = ["data", "from-photos", clip, "--out", tmp_path / "ds", "--no-progress"]
    refused(capsys, argv, "5 frames, too few to train", "need at least 8", "the video gave all its 5 frames")
    # asked for: refused before the video is decoded (minutes for a long 4K clip)
    refused(capsys, [*argv, "--frames", "5"], "--frames 5 keeps too few frames", "need at least 8")
    walk = _video(tmp_path / "walk.mp4", frames=30)
    refused(capsys, ["data", "from-photos", walk, "--out", tmp_path / "ds", "--frames", "5", "--no-progress"],
            "keep more (--frames N)")
    pair = _video(tmp_path / "pair.mp4", frames=2)  # a complete video: 'could be read' said it was damaged
    refused(capsys, ["data", "from-photos", pair, "--out", tmp_path / "ds", "--no-progress"],
            "holds only 2 frame(s)", "film longer")
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds*"))
