"""Frames for structure from motion out of a video: ``count`` frames spread evenly over it, the
sharpest of each stretch (variance of the Laplacian: motion blur and defocus flatten it).

One pass through the video with imageio-ffmpeg (a GIF with Pillow), holding one candidate frame
per stretch, so a long 4K video costs time, not memory. The stretch length comes from the container's frame
rate and duration; when those are missing, frames are counted first (a second decode).

Frames that repeat the last one counted (a still start or end, a pause, a video that doubles
frames) are passed over and the stretches spread over the rest: 60 still frames before a walk
gave 16 copies of one picture among 40 frames, and COLMAP's matches between them, standing still,
had the capture refused as a tripod's. The stretches are sized as the frames come, so repeats
after the walk (a still end, a pause) leave it fewer frames than asked: then a second decode
picks them again over the frames that moved, now all known.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.dataset import DataError
from ..data.images import PHOTO_SUFFIXES
from ..files import first_bytes, lfs_pointer

SHARPNESS_SIDE = 480  # sharpness is measured on a copy at most this wide (fast, and noise-robust)
JPEG_QUALITY = 95
VIDEO_FRAMES = 100  # the frames kept of a video when none are asked for (from-photos' --frames)
MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")  # what an MP4/MOV starts with
# A frame whose grey copy differs from the last counted one by less than this on average (0-255) repeats it: an
# encoded still scene differs by ~0.01, a hand-held walk's neighbouring frames by 10-20.
STILL_GREY = 0.5


def _grey(rgb: np.ndarray) -> np.ndarray:
    step = max(1, rgb.shape[1] // SHARPNESS_SIDE)
    return rgb[::step, ::step, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def sharpness(rgb: np.ndarray, grey: np.ndarray | None = None) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image (bigger: sharper)."""
    g = _grey(rgb) if grey is None else grey
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def _decoder(video: Path) -> str:
    """Who reads ``video``: imageio's ffmpeg plugin refuses GIFs, which Pillow reads."""
    return "Pillow" if video.suffix.lower() == ".gif" else "ffmpeg"


def _open(video: Path):
    import logging

    import imageio.v2 as iio
    from imageio.v3 import imopen

    # A phone video's rotation makes imageio-ffmpeg log that the frames it reads (upright) are not
    # the stored size, twice, between our progress bars: expected, not the user's concern.
    logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)
    gif = _decoder(video) == "Pillow"
    try:
        if gif:
            reader = iio.get_reader(str(video), format="GIF")
        else:  # imageio picks its ffmpeg plugin by extension, and refused a phone's .m4v or .3gp (a camcorder's
            # .mts) that ffmpeg reads: it is told a name it takes, ffmpeg goes by the file's content
            reader = imopen(str(video), "r?", plugin="FFMPEG", extension=".mp4", legacy_mode=True).legacy_get_reader()
        meta = {} if gif else reader.get_meta_data()  # a GIF's "duration" is one frame's, in ms
    except Exception as exc:  # imageio and ffmpeg raise many kinds of errors for non-videos
        raise DataError(f"{video}: not a {'GIF' if gif else 'video'} {_decoder(video)} can read "
                        f"({_why_unreadable(video, exc)})") from None
    return reader, meta


def _why_unreadable(video: Path, exc: Exception) -> str:
    """The reason in the user's words where ffmpeg's last line misleads: it said 'Invalid data found
    when processing input' for an empty file and a copy cut short, and 'Error opening output files:
    Invalid argument' for a sound recording."""
    text = str(exc)
    if video.stat().st_size == 0:
        return "the file is empty, 0 bytes: copy it from the phone again"
    stub = lfs_pointer(video)
    if stub:
        return stub
    if "moov atom not found" in text:  # an MP4/MOV's index, which phones write at the end of the recording
        if first_bytes(video)[4:8] not in MP4_BOXES:
            return "it is not an MP4/MOV file: it does not start as one"
        return ("its index, the 'moov atom', is missing: a copy cut short or a recording that did not finish; "
                "copy it from the phone again")
    if "Stream #" in text and "Video:" not in text:
        return "it holds no video stream, only " + ("sound" if "Audio:" in text else "other data")
    return _last_line(exc)


def _last_line(exc: Exception) -> str:
    """The last line of a decoder's error, where ffmpeg says what went wrong, cut short."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:120]


def _frame_count(reader, meta) -> int:
    fps, duration = meta.get("fps"), meta.get("duration")
    if fps and duration and math.isfinite(fps * duration) and fps * duration >= 1:
        return max(1, round(fps * duration))
    try:
        return int(reader.count_frames() if hasattr(reader, "count_frames") else reader.get_length())
    except Exception:  # noqa: BLE001  (ffmpeg could not count: decode and see)
        return 0


def _refuse_an_image(video: Path) -> None:
    if video.suffix.lower() in PHOTO_SUFFIXES:
        raise DataError(f"{video}: is an image, not a video; give the folder that holds the photos")


def check_video(video: Path) -> None:
    """Refuse (one line) a file that is an image, or that no decoder opens, before anything is written."""
    _refuse_an_image(video)
    reader, _ = _open(video)
    reader.close()


class _Stretches:
    """The sharpest frame of each stretch, written as ``frame_NNNNN.jpg`` once the next stretch begins."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.names, self.best, self.score, self.slot = out_dir, [], None, -1.0, 0

    def offer(self, slot: int, frame: np.ndarray, grey: np.ndarray) -> None:
        if slot != self.slot:
            self.flush()
            self.score, self.slot = -1.0, slot
        score = sharpness(frame, grey)
        if score > self.score:
            self.best, self.score = frame, score

    def flush(self) -> None:
        if self.best is not None:
            name = f"frame_{len(self.names) + 1:05d}.jpg"
            Image.fromarray(np.ascontiguousarray(self.best[..., :3])).save(self.out_dir / name, quality=JPEG_QUALITY)
            self.names.append(name)
            self.best = None


def _spread_again(video: Path, out_dir: Path, first: list[str], moving: list[int], count: int,
                  progress: bool) -> _Stretches:
    """The frames picked again over ``moving`` (the indices of the frames that moved, from the
    first pass), in place of ``first``, that pass's files."""
    from tqdm.auto import tqdm

    for name in first:
        (out_dir / name).unlink(missing_ok=True)
    stretch = max(1.0, len(moving) / count)
    slots = {index: int(k / stretch) for k, index in enumerate(moving)}
    kept = _Stretches(out_dir)
    reader, _ = _open(video)
    try:
        with tqdm(total=moving[-1] + 1, desc="video frames", unit="frame", disable=not progress) as bar:
            bar.set_postfix_str("again, without the repeats")
            for index, frame in enumerate(reader):
                bar.update(1)
                if index in slots:
                    kept.offer(slots[index], frame, _grey(frame))
                if index >= moving[-1]:  # where the first pass ended (a damaged stream: before its error)
                    break
            kept.flush()
    except Exception as exc:  # noqa: BLE001  (it decoded these frames a moment ago)
        reason = _last_line(exc)
        raise DataError(f"{video}: {_decoder(video)} could not decode it again ({reason})") from None
    finally:
        reader.close()
    return kept


class CutShortWarning(str):
    """The warning of a video that stopped decoding before the end its container states: the one of
    ``extract_frames``'s warnings after which more frames need a complete copy, not a longer film."""


def extract_frames(video, out_dir, count: int = VIDEO_FRAMES, progress: bool = True,
                   warnings: list[str] | None = None) -> list[str]:
    """Write about ``count`` frames of ``video`` as ``frame_NNNNN.jpg`` into ``out_dir`` (all
    frames when the video has fewer); returns their file names. A video that stops decoding
    before the end its container states (a copy cut short, a damaged stream) keeps the frames
    read, with a line in ``warnings``; so do frames passed over as repeats of the one before."""
    from tqdm.auto import tqdm

    video, out_dir = Path(video), Path(out_dir)
    if count < 3:
        raise DataError(f"--frames must be at least 3, got {count}")
    _refuse_an_image(video)
    reader, meta = _open(video)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = _frame_count(reader, meta)
    kept, read, failure = _Stretches(out_dir), 0, ""
    moving, still, last = [], 0, None  # the indices of the frames that moved, frames passed over, the last's grey

    try:
        with tqdm(total=total or None, desc="video frames", unit="frame", disable=not progress) as bar:
            for index, frame in enumerate(reader):
                bar.update(1)
                read += 1
                grey = _grey(frame)
                if last is not None and grey.shape == last.shape and np.abs(grey - last).mean() < STILL_GREY:
                    still += 1
                    continue
                last = grey
                # the stretches cover the frames that move (the repeats so far left out): non-decreasing
                kept.offer(int(len(moving) / max(1.0, (total - still) / count)) if total else len(moving), frame, grey)
                moving.append(index)
            kept.flush()
    except DataError:
        raise
    except Exception as exc:  # a corrupt stream part way through
        reason = _last_line(exc)
        if not kept.names and kept.best is None:
            raise DataError(f"{video}: {_decoder(video)} could not decode it ({reason})") from None
        kept.flush()  # the stretch it stopped in
        failure = f": {reason}"
    finally:
        reader.close()
    if still and len(kept.names) < 0.9 * min(count, len(moving)):  # repeats after the walk shortened it
        kept = _spread_again(video, out_dir, kept.names, moving, count, progress)
    names = kept.names
    if len(names) < 3 and still:
        raise DataError(f"{video}: only {len(names)} frame(s) differ, the other {still} repeat them: the camera stood "
                        "still; walk around the object (or sweep across the scene) while filming")
    if len(names) < 3:
        held = f"only {len(names)} frame(s) could be read" if failure else f"holds only {len(names)} frame(s)"
        raise DataError(f"{video}: {held}; need at least 3 (a radiance field needs 8 or more: film longer)")
    if warnings is not None and still:
        warnings.append(f"{video.name}: {still} of its {read} frames repeat the one before (the camera stood still, "
                        f"or the video repeats frames) and were passed over; the {len(names)} frames kept come from "
                        "the rest")
    if warnings is not None and (failure or (total and read < total - max(2, 0.05 * total))):
        warnings.append(CutShortWarning(
            f"{video.name}: only its first {read} of {total or 'its'} frames could be decoded (the file is cut short "
            f"or damaged{failure}); the {len(names)} frames kept come from that part alone"))
    return names
