"""COLMAP ingestion (issue 11): ``data from-photos`` on rendered photos and a video, the COLMAP
model reader against pycolmap, ``--format colmap``, and every bad input's one-line refusal.

The capture: the built-in scene inside its textured dome (scenes/environment.py), walked around
by the ngp-360-env test set's hand-held cameras, written as plain JPEGs without poses. COLMAP's
cameras are aligned to the true ones by a similarity (Umeyama on the centres) before comparing.

Deterministic by construction (issue 23): COLMAP's seeds are fixed (capture/colmap_stages.py RANDOM_SEED),
its thread count is pinned to 1 (with 2, COLMAP's mapping varies from run to run: the cow's
median error came out 0.600, 0.625 and 0.644 degrees from identical photos), and so is
the video encoder's (``-threads 1``: x264's output depends on its thread count, which defaults
to the machine's cores; that is how a fresh clone on another machine once failed). The bounds
come from the measured spread (docs/RELIABILITY.md, "A deterministic COLMAP suite").
"""
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taichi_nerf.capture.pose_alignment import pose_errors, umeyama
from taichi_nerf.cli import main
from taichi_nerf.data.dataset import DataError

from .conftest import checkout_env, digest, refused, snapshot, stop_if_running, wait_for

VIEWS, WIDTH, HEIGHT = 40, 256, 192
FOV_X_DEG = 60.0

pycolmap = pytest.importorskip("pycolmap")
pytestmark = pytest.mark.colmap
ENCODER = {"macro_block_size": 16, "ffmpeg_params": ["-threads", "1"]}  # x264's bytes depend on its threads


def _spread(capture_name: str, angle, centre) -> None:
    """One line per reconstruction (shown with -s; past capsys too): the figures the bounds were set from."""
    sys.__stdout__.write(f"\n{capture_name}: median angle {np.median(angle):.3f} deg, "
                         f"median centre {100 * np.median(centre):.2f}%\n")


# --- the capture and its reconstructions (rendered and solved once per module) ---------------
@pytest.fixture(scope="module")
def capture(tmp_path_factory, taichi_backend):
    """(folder of JPEGs, true OpenGL camera-to-world poses (N, 4, 4))."""
    from taichi_nerf.scenes.synthetic import render_scene
    from taichi_nerf.scenes.testsets import ngp_poses

    folder = tmp_path_factory.mktemp("capture") / "photos"
    folder.mkdir()
    poses = ngp_poses(VIEWS, seed=3)
    focal = 0.5 * WIDTH / math.tan(math.radians(FOV_X_DEG) / 2)
    for start in range(0, VIEWS, 8):
        rgba, _ = render_scene(poses[start:start + 8], WIDTH, HEIGHT, focal, focal, WIDTH / 2, HEIGHT / 2, 2,
                               environment="dome")
        for k, image in enumerate(rgba.numpy()):
            Image.fromarray(image[..., :3]).save(folder / f"IMG_{start + k:04d}.jpg", quality=92)
    return folder, poses.double().numpy()


@pytest.fixture(scope="module")
def photos_dataset(capture, tmp_path_factory):
    from taichi_nerf.capture.photos import from_photos

    out = tmp_path_factory.mktemp("from_photos") / "dataset"
    report = from_photos(capture[0], out, progress=False, threads=1)
    return out, report


def test_photos_recover_the_true_cameras(capture, photos_dataset, capsys):
    out, report = photos_dataset
    registered, angle, centre = pose_errors(out, capture[1], lambda name: int(name[4:8]))
    assert registered >= 0.9, report.table()
    _spread("photos", angle, centre)
    # measured 0.20-0.27 degrees and 0.6-1.1% over seeds 0-2 (2 threads)
    assert np.median(angle) < 2.0 and np.median(centre) < 0.02, (np.median(angle), np.median(centre))
    assert report.matching == "exhaustive" and report.cameras == 1 and report.points3D > 500
    assert 0 < report.mean_reprojection_error < 1.5
    meta = json.loads((out / "transforms.json").read_text())
    assert {"fl_x", "fl_y", "cx", "cy", "w", "h", "aabb", "near", "far"} <= set(meta)
    assert meta["colmap"]["registered"] == len(report.registered) and meta["colmap"]["total"] == VIEWS
    assert (out / "colmap" / "sparse" / "0" / "images.bin").is_file() and len(list((out / "images").iterdir())) == VIEWS
    assert not list(out.parent.glob(".*partial*"))
    # oriented: the true up (+z) is the dataset's up, the box is the stored one
    s, rot, _ = umeyama(np.array([f["transform_matrix"] for f in meta["frames"]])[:, :3, 3],
                        capture[1][[int(Path(f["file_path"]).name[4:8]) for f in meta["frames"]], :3, 3])
    assert rot[2] @ np.array([0.0, 0.0, 1.0]) > math.cos(math.radians(5))
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"COLMAP registered {len(report.registered)} of {VIEWS} images" in text
    assert "images COLMAP left out:" in text and "box as stated in the file" in text
    table = report.table()
    assert "registered" in table and "reprojection" in table and "failed" in table


def test_video_frames_recover_the_cameras(capture, tmp_path, monkeypatch):
    import imageio.v2 as iio

    from taichi_nerf.capture import degenerate
    from taichi_nerf.capture.photos import from_photos

    # as for a capture with too few close photo pairs to judge: that figure is NaN
    judged = degenerate.turning_centre_share
    monkeypatch.setattr(degenerate, "turning_centre_share", lambda *a: (math.nan, judged(*a)[1]))

    video = tmp_path / "walk.mp4"
    names = sorted(capture[0].iterdir())
    with iio.get_writer(video, fps=10, quality=9, **ENCODER) as writer:
        for p in names:
            writer.append_data(np.asarray(Image.open(p)))
    report = from_photos(video, tmp_path / "dataset", frames=VIEWS, progress=False, threads=1)
    assert report.matching == "sequential" and report.total == VIEWS
    assert report.video_jump[0] < 10, report.video_jump  # a right model: 1.5 (refused above 30)
    # strict JSON: the figure not judged was written as NaN, which jq and JavaScript viewers refuse
    text = (tmp_path / "dataset" / "transforms.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"transforms.json holds {c}"))
    registered, angle, centre = pose_errors(tmp_path / "dataset", capture[1], lambda name: int(name[6:11]) - 1)
    assert registered >= 0.9, report.table()
    _spread("video", angle, centre)
    # measured 0.65-1.24 degrees and 2.1-3.1% over 3 seeds x 1-2 COLMAP threads x 3 encoder thread counts on an
    # AMD EPYC, and 1.84 degrees, 5.4% (every run) on an AMX Xeon: the CPU changes the numbers. Wrong models are
    # far off (the cow's: 4.7 degrees and 34%, 22 degrees and 86%).
    assert np.median(angle) < 3.0 and np.median(centre) < 0.08, (np.median(angle), np.median(centre))


def test_cow_photos_recover_the_true_cameras(taichi_backend, tmp_path):
    """The issue's second capture: the cow mesh standing in the textured dome (rendered by the
    mesh renderer, composited over the surroundings by depth), 40 JPEGs without poses. (With
    30, 12 degrees apart, COLMAP's result varied from run to run: 0.5 to 178 degrees.)"""
    from taichi_nerf.capture.photos import from_photos
    from taichi_nerf.scenes.testsets import ngp_poses, render_cow_in

    photos = tmp_path / "cow"
    photos.mkdir()
    poses = ngp_poses(VIEWS, seed=3)
    focal = 0.5 * WIDTH / math.tan(math.radians(FOV_X_DEG) / 2)
    for k, image in enumerate(render_cow_in(poses, WIDTH, HEIGHT, focal)):
        Image.fromarray(image).save(photos / f"COW_{k:04d}.jpg", quality=92)
    # pinhole, as the photos were rendered: with simple_radial, 1 seed in 3 traded the focal length (184 px, true
    # 222) against distortion (k1 -0.09) and every camera came out ~20 degrees off
    report = from_photos(photos, tmp_path / "dataset", camera_model="pinhole", progress=False, threads=1)
    registered, angle, centre = pose_errors(tmp_path / "dataset", poses.double().numpy(), lambda name: int(name[4:8]))
    assert registered >= 0.9, report.table()
    _spread("cow", angle, centre)
    # one thread, seeds 0-5, one mapping each: 4 right models (0.08-0.67 degrees, 0.24-1.60%) and 2 wrong ones
    # (seed 0: 4.69 degrees, 33.6%; seed 3: 21.9 degrees, 86%), all 40/40 registered. from_photos maps quick
    # captures with 3 seeds and keeps the best fit (capture/colmap_stages.py MAPPING_ATTEMPTS): 0.648 degrees, 1.56%,
    # the same in every run (with 2 threads and one mapping, CI once drew seed 0's wrong model).
    assert np.median(angle) < 2.0 and np.median(centre) < 0.04, (np.median(angle), np.median(centre))



def test_the_suite_maps_with_every_seed_however_slow_the_machine():
    """The cow test above needs the best of 3 seeds (seed 0's model is 4.69 degrees off); from_photos tries
    another seed only while the mappings so far took under RETRY_WITHIN_S of wall time, so on a machine slow
    enough that test failed. tests/conftest.py (colmap_maps_every_seed) lifts the limit for the suite."""
    from taichi_nerf.capture import colmap_stages

    assert colmap_stages.RETRY_WITHIN_S == math.inf

def test_sharpest_frame_of_each_stretch_is_kept(tmp_path):
    import imageio.v2 as iio

    from taichi_nerf.capture.video_frames import extract_frames, sharpness

    rng = np.random.default_rng(0)
    sharp = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(sharp).resize((8, 8)).resize((64, 64), Image.BILINEAR))
    assert sharpness(sharp) > 5 * sharpness(blurred)
    # stretches of 3; the middle one is sharp. Every frame differs (a GIF merges equal neighbours).
    frames = [sharp if k % 3 == 1 else np.roll(blurred, k, axis=1) for k in range(12)]
    video = tmp_path / "v.mp4"
    with iio.get_writer(video, fps=10, quality=10, **ENCODER) as writer:
        for frame in frames:
            writer.append_data(frame)
    gif = tmp_path / "v.gif"  # what `render` writes beside its mp4: imageio's ffmpeg plugin refused it
    iio.mimsave(gif, frames, duration=100, loop=0)
    for source in (video, gif):
        out = tmp_path / f"frames_{source.suffix[1:]}"
        names = extract_frames(source, out, count=4, progress=False)
        assert len(names) == 4
        kept = [sharpness(np.asarray(Image.open(out / n))) for n in names]
        assert min(kept) > 2 * sharpness(blurred), source


def test_a_video_cut_short_keeps_its_frames_and_says_so(tmp_path):
    """A phone video whose copy stopped half way (its header, written first, still states the
    whole length) decoded 32 of 65 frames without a word: the frames kept now come with a warning."""
    import imageio.v2 as iio

    from taichi_nerf.capture.video_frames import extract_frames

    rng = np.random.default_rng(1)
    video = tmp_path / "v.mp4"
    with iio.get_writer(video, fps=10, quality=8, output_params=["-movflags", "+faststart"], **ENCODER) as writer:
        for _ in range(40):
            writer.append_data((rng.random((64, 64, 3)) * 255).astype(np.uint8))
    whole = []
    assert len(extract_frames(video, tmp_path / "whole", count=100, progress=False, warnings=whole)) == 40
    assert whole == []
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    said = []
    names = extract_frames(cut, tmp_path / "cut", count=100, progress=False, warnings=said)
    assert 3 <= len(names) < 30
    assert len(said) == 1 and f"only its first {len(names)} of 40 frames" in said[0] and "cut short" in said[0]


def test_a_rotated_phone_video_gives_upright_frames_without_ffmpegs_size_message(tmp_path, caplog):
    """imageio-ffmpeg logged 'The frame size for reading (64, 48) is different from the source frame
    size (48, 64)' twice, between the progress bars, for a video with rotation metadata."""
    import imageio.v2 as iio
    import imageio_ffmpeg

    from taichi_nerf.capture.video_frames import extract_frames

    rng = np.random.default_rng(2)
    stored = tmp_path / "stored.mp4"
    iio.mimsave(stored, [(rng.random((64, 48, 3)) * 255).astype(np.uint8) for _ in range(12)], fps=6, **ENCODER)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90", "-i",
                    str(stored), "-c", "copy", str(rotated)], check=True, capture_output=True)
    names = extract_frames(rotated, tmp_path / "frames", count=6, progress=False)
    assert Image.open(tmp_path / "frames" / names[0]).size == (64, 48)  # turned upright: 64 wide, 48 high
    assert "different from the source frame size" not in caplog.text


def test_trains_on_the_result(photos_dataset, tmp_path):
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    cfg = tiny_config(photos_dataset[0], tmp_path / "run", steps=6, eval_every=6, preview_every=6,
                      checkpoint_every=6, grid_warmup=4, downscale=4)
    result = Trainer(cfg).run()
    assert result.step == 6 and math.isfinite(result.val_psnr)


# --- the model reader --------------------------------------------------------------------------
def _same_model(a, b):
    flip = np.sign(a.qvecs[:, :1]) * np.sign(b.qvecs[:, :1])  # q and -q are one rotation
    assert a.names == b.names and (a.camera_ids == b.camera_ids).all()
    assert np.allclose(a.qvecs, b.qvecs * flip, atol=1e-9) and np.allclose(a.tvecs, b.tvecs, atol=1e-9)
    assert (a.point_ids == b.point_ids).all() and np.allclose(a.xyz, b.xyz, atol=1e-9)
    assert (a.rgb == b.rgb).all() and np.allclose(a.errors, b.errors) and (a.track_lengths == b.track_lengths).all()
    assert all((x == y).all() for x, y in zip(a.observed, b.observed))
    for cid, cam in a.cameras.items():
        other = b.cameras[cid]
        assert (cam.model, cam.width, cam.height) == (other.model, other.width, other.height)
        assert np.allclose(cam.params, other.params)


@pytest.mark.parametrize("form", ["binary", "text"])
def test_reader_matches_pycolmap(photos_dataset, tmp_path, form):
    from taichi_nerf.data.colmap_files import from_reconstruction, read_model

    rec = pycolmap.Reconstruction(str(photos_dataset[0] / "colmap" / "sparse" / "0"))
    getattr(rec, f"write_{form}")(str(tmp_path))
    ours = read_model(tmp_path, prefer_pycolmap=False)
    _same_model(ours, read_model(tmp_path))
    _same_model(ours, from_reconstruction(rec))
    assert len(ours.names) == rec.num_reg_images() and len(ours.point_ids) == rec.num_points3D()


def test_format_colmap_loads_a_model_pycolmap_wrote(photos_dataset, tmp_path, monkeypatch):
    from taichi_nerf.data import colmap_model
    from taichi_nerf.data.loaders import detect_format, read_dataset

    out = photos_dataset[0]
    project = tmp_path / "project"
    (project / "sparse" / "0").mkdir(parents=True)
    pycolmap.Reconstruction(str(out / "colmap" / "sparse" / "0")).write_text(str(project / "sparse" / "0"))
    (project / "images").symlink_to(out / "images")
    assert detect_format(project) == "colmap"
    via_json = read_dataset(out, unbounded=False)
    # without pycolmap: the module's own reader
    monkeypatch.setitem(sys.modules, "pycolmap", None)
    ds = read_dataset(project, format="colmap", unbounded=False)
    assert ds.format == "colmap" and ds.split("train").count == via_json.split("train").count
    assert np.allclose(ds.split("train").poses, via_json.split("train").poses, atol=1e-5)
    assert np.allclose(ds.aabb, via_json.aabb, atol=1e-5) and abs(ds.near - via_json.near) < 1e-5
    assert any(n.startswith("COLMAP registered") for n in ds.notes)
    with pytest.raises(DataError, match="no COLMAP model"):
        colmap_model.load_colmap(tmp_path)


# --- bad input: one line, exit 2, nothing in --out ----------------------------------------------
def _noise_photos(folder: Path, count: int, size=(96, 96), seed=0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(folder / f"p{k}.png")


def _refused(args, capsys, *needles) -> str:
    """``data from-photos ARGS`` refused: conftest's :func:`refused`."""
    return refused(capsys, ["data", "from-photos", *args, "--no-progress"], *needles)


def test_a_text_model_keeps_image_names_with_spaces(tmp_path):
    """pycolmap (like COLMAP) cut a text model's "my photo 001.png" at its first space, so the
    dataset's images were "my" and none of them loaded; text models are read by our reader."""
    from taichi_nerf.data.colmap_files import read_model

    (tmp_path / "cameras.txt").write_text("# a camera\n1 PINHOLE 64 48 50 50 32 24\n")
    (tmp_path / "images.txt").write_text("".join(f"{i} 1 0 0 0 {i} 0 0 1 my photo 00{i}.png\n\n" for i in (1, 2)))
    (tmp_path / "points3D.txt").write_text("# no points\n")
    assert read_model(tmp_path).names == ["my photo 001.png", "my photo 002.png"]


def test_bad_inputs_are_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    _refused([tmp_path / "empty", "--out", out], capsys, "empty folder")
    _noise_photos(tmp_path / "two", 2)
    (tmp_path / "two" / "notes.txt").write_text("not a photo")
    (tmp_path / "two" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    _refused([tmp_path / "two", "--out", out], capsys, "at least 3", "found 2", "notes.txt (not an image file)",
             "broken.jpg (unreadable")
    _noise_photos(tmp_path / "mixed", 3)
    _noise_photos(tmp_path / "mixed_big", 1, size=(128, 96))
    (tmp_path / "mixed_big" / "p0.png").rename(tmp_path / "mixed" / "big.png")
    _refused([tmp_path / "mixed", "--out", out], capsys, "different sizes", "3 x 96x96", "1 x 128x96",
             "not 96x96: big.png")  # the odd one out is named
    (tmp_path / "clip.mp4").write_text("this is not a video")
    _refused([tmp_path / "clip.mp4", "--out", out], capsys, "not a video")
    _refused([tmp_path / "missing", "--out", out], capsys, "no such folder or video")
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_photos_that_do_not_overlap(tmp_path, capsys):
    _noise_photos(tmp_path / "noise", 4)
    (tmp_path / "noise" / "notes.txt").write_text("not a photo")  # what was passed over is said on failure too
    _refused([tmp_path / "noise", "--out", tmp_path / "out"], capsys, "registered no images", "overlap",
             "(skipped: notes.txt (not an image file))")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial*"))


def test_a_failed_mapping_prints_our_line_alone(tmp_path, capfd):
    """COLMAP's own log lines (written to fd 2, past capsys) stay out, and the mapping bar counts
    one attempt's photos, not every attempt's (it read 90/90 on 30 photos)."""
    _noise_photos(tmp_path / "noise", 4)
    assert main(["data", "from-photos", str(tmp_path / "noise"), "--out", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert "registered no images" in err
    assert "sfm.cc" not in err and "Failed to create" not in err
    mapping = [part for part in err.replace("\r", "\n").splitlines() if part.startswith("mapping")]
    assert mapping and all("/4 " in part for part in mapping), mapping


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_stops_it_like_ctrl_c(capture, tmp_path, signum):
    """SIGTERM (`timeout`, a scheduler) and SIGHUP (a dropped SSH session) print our one line and
    take the partial folder (a copy of the photos) with them; SIGTERM used to print glog's C++
    stack dump and leave it. The signal goes once COLMAP has started (the partial folder's colmap/)."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "taichi_nerf", "data", "from-photos", str(capture[0]), "--out",
                             str(out), "--no-progress", "--threads", "1"], env=checkout_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a suite started under nohup hands its children SIGHUP ignored, which then stays so
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        wait_for((tmp_path / f".out.partial-{proc.pid}" / "colmap").exists, "from-photos to start COLMAP", proc,
                 timeout=120, poll=0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        stop_if_running(proc)
    assert proc.returncode == 130 and stderr.strip() == f"taichi-nerf: interrupted; nothing written to {out}", \
        (proc.returncode, stderr)
    assert not out.exists() and not list(tmp_path.glob(".out.*")), list(tmp_path.iterdir())


def test_partial_folders_of_ended_processes_are_removed(tmp_path, capsys):
    """A from-photos killed outright (SIGKILL) leaves .NAME.partial-PID; the next one into the same
    parent removes it once its process is gone, and never a running one's. Its lock (beside it) says
    which: a held lock is a live run even where the PID means nothing here (another host on a shared
    disk, another PID namespace); a free one is a dead run whatever the PID. Folders without a lock
    (from before locks) go by their PID."""
    import fcntl

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead = tmp_path / f".old_run.partial-{ended.pid}"
    alive = tmp_path / f".other.partial-{os.getppid()}"  # our parent runs as long as we do
    elsewhere = tmp_path / f".far.partial-{ended.pid}"  # a live run on another host: its lock is held
    freed = tmp_path / f".gone.partial-{os.getppid()}"  # a dead run whose PID a live process has now
    for folder in (dead, alive, elsewhere, freed):
        (folder / "images").mkdir(parents=True)
        (folder / "images" / "p0.png").write_bytes(b"a copied photo")
    for folder in (elsewhere, freed):
        (tmp_path / (folder.name + ".lock")).touch()
    held = os.open(tmp_path / (elsewhere.name + ".lock"), os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        _noise_photos(tmp_path / "noise", 4)
        _refused([tmp_path / "noise", "--out", tmp_path / "out"], capsys, "registered no images")
    finally:
        os.close(held)
    assert not dead.exists() and not freed.exists() and alive.is_dir() and elsewhere.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, elsewhere.name, elsewhere.name + ".lock",
                                                                 "noise"])


def test_unreadable_files_are_skipped_and_listed(tmp_path):
    from taichi_nerf.capture.photo_inputs import gather_images

    _noise_photos(tmp_path, 3)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    photos, skipped = gather_images(tmp_path)
    assert [p.name for p in photos] == ["p0.png", "p1.png", "p2.png"]
    assert [n for n, _ in skipped] == ["cut.jpg", "notes.txt"]


def test_existing_dataset_needs_overwrite(photos_dataset, tmp_path, capsys):
    import shutil

    from taichi_nerf.capture.photo_inputs import check_out

    out = tmp_path / "ds"
    shutil.copytree(photos_dataset[0], out)
    before = (out / "transforms.json").read_text()
    _refused([tmp_path / "anything", "--out", out], capsys, "no such folder")  # source checked first
    _noise_photos(tmp_path / "few", 3)
    _refused([tmp_path / "few", "--out", out], capsys, "already holds a dataset", "--overwrite")
    assert (out / "transforms.json").read_text() == before
    check_out(out, overwrite=True)  # allowed with --overwrite
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("x")
    with pytest.raises(DataError, match="holds no dataset"):
        check_out(tmp_path / "other", overwrite=True)
    (tmp_path / "other" / "masks").mkdir()  # the user's own masks are no dataset to replace
    with pytest.raises(DataError, match="holds no dataset"):
        check_out(tmp_path / "other", overwrite=True)
    for other_layout in ("poses_bounds.npy", "sparse", "transforms_train.json"):  # it would stay beside the new one
        (out / other_layout).mkdir()
        for overwrite in (False, True):  # said before "add --overwrite", which would not help
            with pytest.raises(DataError, match=f"did not write \\({other_layout}\\)"):
                check_out(out, overwrite=overwrite)
        (out / other_layout).rmdir()


def test_without_pycolmap_the_command_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycolmap", None)
    _noise_photos(tmp_path / "p", 3)
    _refused([tmp_path / "p", "--out", tmp_path / "out"], capsys, 'pip install "taichi-nerf[colmap]"')
    code = ("import sys, taichi_nerf.cli, taichi_nerf.data.loaders, taichi_nerf.capture.photos; "
            "taichi_nerf.cli.build_parser(); assert 'pycolmap' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=checkout_env(), cwd=tmp_path)


# --- --overwrite replaces only the dataset (issue 23) ------------------------------------------
def _earlier_dataset(photos_dataset, out: Path) -> dict:
    import shutil

    shutil.copytree(photos_dataset[0], out)
    (out / "NOTES.md").write_text("where and when I took these photos\n")
    (out / "scripts").mkdir()
    (out / "scripts" / "shoot.sh").write_text("#!/bin/sh\n")
    return snapshot(out)


def test_overwrite_replaces_the_dataset_and_keeps_other_files(capture, photos_dataset, tmp_path, monkeypatch):
    """COLMAP itself is replaced by the model it made for the fixture: this test is about files."""
    from taichi_nerf.capture import photos

    out = tmp_path / "ds"
    before = _earlier_dataset(photos_dataset, out)
    (out / "images" / "IMG_9999.jpg").write_bytes(b"an image of the earlier dataset only")
    (out / "masks").mkdir()
    (out / "masks" / "IMG_0000.png").write_bytes(b"a mask of the earlier dataset only")
    model = pycolmap.Reconstruction(str(photos_dataset[0] / "colmap" / "sparse" / "0"))
    monkeypatch.setattr(photos, "run_colmap", lambda *args, **kwargs: (model, 1, 780))
    photos.from_photos(capture[0], out, overwrite=True, progress=False)
    after = snapshot(out)
    for name in ("NOTES.md", "scripts/shoot.sh"):
        assert after[name] == before[name]
    assert "images/IMG_9999.jpg" not in after  # the earlier dataset's files went, the new one's are all there
    assert not any(n.startswith("masks/") for n in after)  # read as this dataset's, they masked its photos
    photos = sorted(f"images/{p.name}" for p in capture[0].iterdir())
    assert sorted(n for n in after if n.startswith("images/")) == photos
    assert json.loads((out / "transforms.json").read_text())["colmap"]["total"] == VIEWS
    assert not list(tmp_path.glob(".ds.*"))


def test_masks_are_written_into_an_existing_empty_out(capture, photos_dataset, tmp_path, monkeypatch):
    """--masks into an --out that exists (empty): the masks came along only into a new folder,
    and training then learnt the room the masks cut away."""
    from taichi_nerf.capture import photos

    masks = tmp_path / "masks"
    masks.mkdir()
    for p in capture[0].iterdir():
        Image.fromarray(np.full((HEIGHT, WIDTH), 255, np.uint8)).save(masks / f"{p.stem}.png")
    out = tmp_path / "ds"
    out.mkdir()
    model = pycolmap.Reconstruction(str(photos_dataset[0] / "colmap" / "sparse" / "0"))
    monkeypatch.setattr(photos, "run_colmap", lambda *args, **kwargs: (model, 1, 780))
    photos.from_photos(capture[0], out, masks=masks, progress=False, keep_degenerate=True)
    assert len(list((out / "masks").iterdir())) == VIEWS


def test_a_refused_overwrite_leaves_every_file(capture, photos_dataset, tmp_path, capsys, monkeypatch):
    import imageio.v2 as iio

    out = tmp_path / "ds"
    before = _earlier_dataset(photos_dataset, out)
    _noise_photos(tmp_path / "two", 2)
    _noise_photos(tmp_path / "noise", 4)
    video = tmp_path / "v.mp4"
    with iio.get_writer(video, fps=10, **ENCODER) as writer:
        for p in sorted(capture[0].iterdir())[:4]:
            writer.append_data(np.asarray(Image.open(p)))
    refusals = [([tmp_path / "missing"], "no such folder"), ([tmp_path / "two"], "at least 3"),
                ([video, "--frames", "2"], "--frames must be at least 3"),
                ([tmp_path / "noise"], "registered no images")]
    for args, needle in refusals:
        _refused([*args, "--out", out, "--overwrite"], capsys, needle)
        assert snapshot(out) == before, args
    monkeypatch.setitem(sys.modules, "pycolmap", None)
    _refused([capture[0], "--out", out, "--overwrite"], capsys, "pip install")
    assert snapshot(out) == before
    monkeypatch.undo()
    (out / "transforms_train.json").write_text("{}")  # another dataset's file: it would outlive the swap
    _refused([capture[0], "--out", out, "--overwrite"], capsys, "did not write (transforms_train.json)")
    assert snapshot(out) == {**before, "transforms_train.json": digest(b"{}")}
    assert not list(tmp_path.glob(".ds.*"))


def test_a_model_of_a_few_photos_is_refused_not_written(capture, photos_dataset, tmp_path, capsys, monkeypatch):
    """A video whose frames lay too far apart once registered 2 of 30: from-photos wrote that
    dataset with exit 0 and suggested training on it. COLMAP's model, cut down to 3 photos."""
    from taichi_nerf.capture import photos
    from taichi_nerf.capture.degenerate import MIN_REGISTERED
    from taichi_nerf.cli import main

    model = pycolmap.Reconstruction(str(photos_dataset[0] / "colmap" / "sparse" / "0"))
    for frame_id in sorted(model.frames)[3:]:
        model.deregister_frame(frame_id)
    assert model.num_reg_images() == 3 < MIN_REGISTERED
    monkeypatch.setattr(photos, "run_colmap", lambda *args, **kwargs: (model, 1, 780))
    out = tmp_path / "ds"
    assert main(["data", "from-photos", str(capture[0]), "--out", str(out), "--no-progress"]) == 2
    printed = capsys.readouterr()
    assert f"registered    3 / {VIEWS} images" in printed.out  # the figures behind the refusal
    assert f"COLMAP registered only 3 of {VIEWS} photos, too few" in printed.err and "--keep-degenerate" in printed.err
    assert not out.exists() and not list(tmp_path.glob(".ds.*"))


def test_the_advice_for_more_registered_views_fits_the_source():
    from taichi_nerf.capture.degenerate import more_views_hint

    assert more_views_hint(40).startswith("take more photos")
    assert more_views_hint(30, frames=30) == "keep more frames (--frames N; 30 now), so that neighbours overlap more"
    assert more_views_hint(40, frames=100).startswith("the video gave all its 40 frames")  # more --frames cannot help
    assert more_views_hint(40, frames=100, cut_short=True).startswith("a complete copy of the video")


def test_names_with_spaces_other_formats_copies_and_broken_photos_with_masks(capture, tmp_path, capsys):
    """The probe's photos, 12 of the capture: names with spaces (COLMAP's pair list is split at
    spaces, and it registered nothing), a WebP and a TIFF (the dataset's masks were not found, or
    COLMAP could not read them), a copy of a photo and an unreadable one, each with its mask (the
    broken photo's mask was called "a mask without an image"). The dataset loads with its masks."""
    photos, masks, out = tmp_path / "my photos", tmp_path / "masks", tmp_path / "out"
    photos.mkdir()
    masks.mkdir()
    for k, path in enumerate(sorted(capture[0].iterdir())[:12]):
        name = f"IMG {k:04d}" + {3: ".webp", 5: ".tif"}.get(k, ".jpg")
        Image.open(path).save(photos / name, **({"lossless": True} if k == 3 else {}))
    (photos / "IMG 0001 copy.jpg").write_bytes((photos / "IMG 0001.jpg").read_bytes())
    (photos / "IMG 0099.jpg").write_bytes(b"\xff\xd8\xff broken")
    for p in photos.iterdir():
        Image.fromarray(np.full((HEIGHT, WIDTH), 255, np.uint8)).save(masks / f"{p.stem}.png")
    assert main(["data", "from-photos", str(photos), "--masks", str(masks), "--out", str(out), "--threads", "1",
                 "--no-progress", "--keep-degenerate"]) == 0
    table = capsys.readouterr().out
    assert "registered    12 / 12 images" in table, table
    assert "IMG 0001 copy.jpg (a copy of IMG 0001.jpg)" in table and "IMG 0099.jpg (unreadable" in table
    assert "converted     IMG 0003.webp, IMG 0005.tif to PNG" in table
    assert sorted(p.name for p in (out / "images").iterdir())[3:6] == ["IMG 0003.png", "IMG 0004.jpg", "IMG 0005.png"]
    assert len(list((out / "masks").iterdir())) == 12
    assert main(["data", "info", str(out)]) == 0
    assert "masks: 12 from masks/" in capsys.readouterr().out


def test_a_turning_share_as_small_as_ethiopianheads_at_250_px_is_refused(capture, photos_dataset, tmp_path,
                                                                         monkeypatch):
    """ethiopianHead without masks at 250 px once mapped to a model whose close pairs' centres shared nothing in
    18% of 205 pairs (35% and 75% in other runs; 53-74% at 400-500 px), under the 20% limit, and was written;
    honest captures score 0-3%. Refused above 10% now. COLMAP is the fixture's model, its turning centre 18%."""
    from taichi_nerf.capture import degenerate, photos
    from taichi_nerf.capture.photos import DegenerateReconstruction, from_photos

    model = pycolmap.Reconstruction(str(photos_dataset[0] / "colmap" / "sparse" / "0"))
    monkeypatch.setattr(photos, "run_colmap", lambda *args, **kwargs: (model, 1, 780))
    monkeypatch.setattr(degenerate, "turning_centre_share", lambda *a: (0.18, 205))
    with pytest.raises(DegenerateReconstruction, match=r"18% of 205 photo pairs .*\(at most 10% allowed\)"):
        from_photos(capture[0], tmp_path / "dataset", progress=False, threads=1)
    assert not (tmp_path / "dataset").exists()
