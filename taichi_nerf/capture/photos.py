"""From a folder of photos or a video to a dataset the loaders read (``data from-photos``).

Stages, each with its own progress bar and time estimate: (video: frames, capture/video_frames.py),
then COLMAP's (capture/colmap_stages.py): SIFT features, matching (every pair for a small set,
neighbours in capture order for a video or a large set), incremental mapping.
The largest reconstruction is oriented and scaled (data/colmap_model.py) and written as an
Instant-NGP/nerfstudio ``transforms.json`` beside ``images/`` (hard links, else copies), with
the scene box, near/far and the registration figures (key ``colmap``) that ``data info``
shows, and the model itself in ``colmap/sparse/0`` (in COLMAP's own frame).

Everything is built in a hidden folder beside ``--out`` and renamed into place at the end, so
a failure, Ctrl-C, SIGTERM or a hang-up never leaves a half-written dataset (capture/partial.py).
pycolmap is optional (extra ``colmap``) and imported only when the pipeline runs.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data.dataset import DataError
from ..files import write_json
from ..wording import SHOWN, few_names
from .colmap_stages import MIN_INLIERS, image_pairs, require_pycolmap, run_colmap
from .degenerate import (
    MAX_STATIC_SHARE,
    MAX_TURNING_SHARE,
    MAX_VIDEO_JUMP,
    MIN_BASELINE_RATIO,
    MIN_JUMP_SHARE,
    MIN_REGISTERED,
    DegenerateReconstruction,
)
from .photo_inputs import (
    OUTPUTS,
    check_out,
    dataset_name,
    few_skipped,
    gather_images,
    place_photo,
    refuse_inputs_in_out,
    turned_photos,
    written_rows,
)
from .video_frames import VIDEO_FRAMES

CAMERA_MODELS = {"pinhole": "PINHOLE", "simple_radial": "SIMPLE_RADIAL", "radial": "RADIAL", "opencv": "OPENCV"}
MATCHING = ("auto", "exhaustive", "sequential")
EXHAUSTIVE_MAX_IMAGES = 200  # auto matching: every pair up to this many photos, neighbours beyond


@dataclass
class PhotoReport:
    out: Path
    total: int
    registered: list[str]
    unregistered: list[str]
    skipped: list[tuple[str, str]]  # (file, why) not given to COLMAP
    points3D: int
    mean_reprojection_error: float
    models: int  # reconstructions COLMAP made (the largest is kept)
    matching: str
    pairs: int
    camera_model: str
    cameras: int
    seconds: dict = field(default_factory=dict)  # stage -> wall seconds
    warnings: list[str] = field(default_factory=list)
    baseline_ratio: float = float("nan")  # camera spread / scene depth (capture/degenerate.py)
    masks: int = 0  # masks given to COLMAP and written beside the images
    static_share: float = float("nan")  # share of matched features that stand still (capture/degenerate.py)
    turning_share: float = float("nan")  # share of close photo pairs whose centres changed (capture/degenerate.py)
    turning_pairs: int = 0  # the close photo pairs that share was judged on
    converted: list[str] = field(default_factory=list)  # photos written as PNG (photo_inputs.dataset_name)
    turned: list[str] = field(default_factory=list)  # photos written turned by their EXIF orientation
    cut_short: bool = False  # a video that stopped decoding before its stated end (capture/video_frames.py)
    video_jump: tuple = (float("nan"), "", float("nan"))  # a video's largest step / median step, where, / spread

    def as_json(self) -> dict:
        return {"registered": len(self.registered), "total": self.total, "unregistered": self.unregistered,
                "skipped": [f"{n} ({why})" for n, why in self.skipped], "points3D": self.points3D,
                "mean_reprojection_error": self.mean_reprojection_error, "models": self.models,
                "matching": self.matching, "pairs": self.pairs, "camera_model": self.camera_model,
                "cameras": self.cameras, "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
                "baseline_ratio": round(self.baseline_ratio, 4), "static_share": round(self.static_share, 4),
                "turning_share": round(self.turning_share, 4), "turning_pairs": self.turning_pairs,
                "masks": self.masks,
                **({"video_jump": round(self.video_jump[0], 2), "video_jump_share": round(self.video_jump[2], 3)}
                   if self.video_jump[1] else {})}

    def table(self) -> str:
        rows = [(f"{stage}", f"{s:.1f} s") for stage, s in self.seconds.items()]
        rows += [("registered", f"{len(self.registered)} / {self.total} images"),
                 ("reprojection", f"{self.mean_reprojection_error:.3f} px (mean)"),
                 ("3D points", str(self.points3D)),
                 ("pairs", f"{self.pairs} ({self.matching} matching)"),
                 ("cameras", f"{self.cameras} x {self.camera_model}"),
                 ("baseline", f"{self.baseline_ratio:.3f} x scene depth (camera spread; degenerate below "
                              f"{MIN_BASELINE_RATIO})"),
                 ("static", f"{self.static_share:.1%} of the matched features stand still (degenerate above "
                            f"{MAX_STATIC_SHARE:.0%})"),
                 ("turning", (f"{self.turning_share:.0%} of {self.turning_pairs} photo pairs from nearly the same "
                              f"place share nothing in the middle (degenerate above {MAX_TURNING_SHARE:.0%})"
                              if self.turning_share == self.turning_share else
                              f"not judged ({self.turning_pairs} photo pairs from nearly the same place)"))]
        if self.video_jump[1]:
            rows.append(("jumps", f"{self.video_jump[0]:.1f} x the median camera step between neighbouring frames, "
                                  f"{self.video_jump[2]:.0%} of the cameras' spread (largest: {self.video_jump[1]}; "
                                  f"degenerate above {MAX_VIDEO_JUMP:.0f} x and {MIN_JUMP_SHARE:.0%})"))
        if self.masks:
            rows.append(("masks", f"{self.masks} (features only where they are white)"))
        if self.models > 1 and self.unregistered:  # a split that lost no photo is no news
            rows.append(("models", f"{self.models} (COLMAP split the capture; kept the largest)"))
        listed = few_names(self.unregistered) + (" (all in transforms.json)" if len(self.unregistered) > SHOWN else "")
        rows.append(("failed", listed if self.unregistered else "none"))
        if self.skipped:
            rows.append(("skipped", few_skipped(self.skipped)))
        rows += written_rows(self.converted, self.turned)
        return "\n".join(f"{k:<13} {v}" for k, v in rows)



# --- the whole pipeline ----------------------------------------------------------------------
def from_photos(source, out, *, matching: str = "auto", camera_model: str = "simple_radial",
                per_image_cameras: bool = False, frames: int = VIDEO_FRAMES, overwrite: bool = False,
                keep_database: bool = False, progress: bool = True, threads: int = -1, masks=None,
                keep_degenerate: bool = False) -> PhotoReport:
    """Recover camera poses for the photos in folder ``source`` (or frames of video ``source``)
    and write a dataset to ``out``; returns the report (``table()`` prints it). ``masks``: a
    folder of masks for the photos (capture/photo_masks.py). A degenerate reconstruction
    (capture/degenerate.py) is refused unless ``keep_degenerate``."""
    from ..data import colmap_files, colmap_model
    from . import partial, photo_masks
    from .degenerate import (
        baseline_ratio,
        degenerate_message,
        jump_message,
        more_views_hint,
        refuse_few_registered,
        static_match_share,
        static_message,
        turning_centre_share,
        turning_message,
        video_jump,
        video_jumped,
    )

    source, out = Path(source), Path(out)
    if matching not in MATCHING:
        raise DataError(f"--matching must be one of {', '.join(MATCHING)}, got {matching!r}")
    if camera_model not in CAMERA_MODELS:
        raise DataError(f"--camera-model must be one of {', '.join(CAMERA_MODELS)}, got {camera_model!r}")
    if not source.exists():
        raise DataError(f"{source}: no such folder or video")
    if not source.is_dir() and frames < 3:
        raise DataError(f"--frames must be at least 3, got {frames}")
    if not source.is_dir() and frames < MIN_REGISTERED and not keep_degenerate:  # before minutes of decoding
        raise DataError(f"{source}: --frames {frames} keeps too few frames to train a radiance field (need at least "
                        f"{MIN_REGISTERED}): keep more (--frames N), or --keep-degenerate maps them anyway")
    if threads == 0 or threads < -1:
        raise DataError(f"--threads must be a positive number, or -1 for all the CPU's, got {threads}")
    refuse_inputs_in_out(out, source, None if masks is None else Path(masks))
    check_out(out, overwrite)
    require_pycolmap()
    photos, skipped = gather_images(source) if source.is_dir() else ([], [])  # refuses before anything is written
    if masks is not None:
        if not source.is_dir():
            raise DataError(f"{source}: --masks needs a folder of photos, not a video (its frames are picked as it "
                            "is read, so no mask can bear their names): extract the frames into a folder, mask them "
                            "and give that folder, or leave out --masks")
        matched = photo_masks.check(photos, Path(masks), skipped)
    # how the refusals below say to mask: photos with transparency are their own masks, unread by COLMAP
    masking = {"masked": masks is not None, "cut_out": masks is None and photo_masks.transparent(photos)}
    if not source.is_dir():
        from .video_frames import check_video

        check_video(source)  # before any folder is made for it
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.remove_leftovers(out.parent)
    with partial.claimed(out) as tmp, partial.Interrupts():
        (tmp / "images").mkdir(parents=True)
        try:
            seconds, video_warnings, cut_short = {}, [], False
            if source.is_dir():
                names = [place_photo(p, tmp / "images") for p in photos]
                if masks is not None:
                    seconds["masks"] = photo_masks.place(photos, names, matched, tmp)
                auto = "exhaustive" if len(names) <= EXHAUSTIVE_MAX_IMAGES else "sequential"
            else:
                from .video_frames import CutShortWarning, extract_frames

                start = time.perf_counter()
                names = extract_frames(source, tmp / "images", frames, progress, video_warnings)
                seconds["frames"] = time.perf_counter() - start
                # a still start's warning is no damage: only a cut-short copy's asks for a complete one
                cut_short = any(isinstance(w, CutShortWarning) for w in video_warnings)
                if len(names) < MIN_REGISTERED and not keep_degenerate:  # no use mapping: refused after it
                    hint = more_views_hint(len(names), frames, cut_short)
                    raise DataError(f"{source}: {len(names)} frames, too few to train a radiance field (need at "
                                    f"least {MIN_REGISTERED}); {hint}; --keep-degenerate maps them anyway")
                auto = "sequential"
            matching = auto if matching == "auto" else matching
            work = tmp / "colmap"
            work.mkdir()
            figures_so_far = {}

            def refuse_static(database):
                from PIL import Image

                with Image.open(tmp / "images" / names[0]) as im:
                    figures_so_far["static"] = static_match_share(database, im.size)
                if figures_so_far["static"] > MAX_STATIC_SHARE and not keep_degenerate:
                    rows = [(k, f"{v:.1f} s") for k, v in seconds.items()] + [
                        ("static", f"{figures_so_far['static']:.0%} of the matched features stand still")]
                    raise DegenerateReconstruction(static_message(source, figures_so_far["static"], **masking),
                                                   "\n".join(f"{k:<13} {v}" for k, v in rows))

            rec, models, verified = run_colmap(tmp / "images", work, names, matching, CAMERA_MODELS[camera_model],
                                               per_image_cameras, progress, threads, seconds,
                                               tmp / photo_masks.COLMAP_FOLDER if masks is not None else None,
                                               after_matching=refuse_static)
            shutil.rmtree(tmp / photo_masks.COLMAP_FOLDER, ignore_errors=True)
            if rec is None:
                why = (f"no two photos share {MIN_INLIERS} matching features" if verified == 0 else
                       f"only {verified} photo pair(s) matched, too few to start a model" if verified < len(names) else
                       f"{verified} photo pairs matched, but none could start a model: either the cameras barely moved "
                       "relative to what they matched (a turntable's still room: give the object's masks with --masks "
                       "DIR; a tripod pan cannot train a radiance field), or neighbouring photos are too far apart "
                       "(take more, closer together)")
                passed_over = f" (skipped: {few_skipped(skipped)})" if skipped else ""
                raise DataError(f"{source}: COLMAP registered no images: {why}; photos must overlap (each scene point "
                                f"seen in 3+ photos, 60-80% overlap between neighbours) and have texture{passed_over}")
            model = colmap_files.from_reconstruction(rec)
            meta, warnings = colmap_model.transforms_meta(model, "images/", str(source))
            warnings = video_warnings + warnings
            figures = colmap_model.registration(model)
            registered = set(model.names)
            cameras = len(set(model.camera_ids.tolist()))
            turning_share, turning_pairs = turning_centre_share(model, work / "database.db")
            report = PhotoReport(out=out, total=len(names), registered=model.names,
                                 unregistered=[n for n in names if n not in registered], skipped=skipped,
                                 points3D=figures["points3D"],
                                 mean_reprojection_error=figures["mean_reprojection_error"],
                                 models=models, matching=matching, pairs=len(image_pairs(names, matching)),
                                 camera_model=CAMERA_MODELS[camera_model], cameras=cameras, seconds=seconds,
                                 warnings=warnings, baseline_ratio=baseline_ratio(model),
                                 masks=len(names) if masks is not None else 0,
                                 static_share=figures_so_far.get("static", math.nan),
                                 turning_share=turning_share, turning_pairs=turning_pairs,
                                 converted=[p.name for p in photos if dataset_name(p) != p.name],
                                 turned=turned_photos(photos),
                                 cut_short=cut_short,
                                 video_jump=(math.nan, "", math.nan) if source.is_dir() else video_jump(model, names))
            if not keep_degenerate:
                refuse_few_registered(source, report, None if source.is_dir() else frames)
            if not report.baseline_ratio >= MIN_BASELINE_RATIO and not keep_degenerate:
                raise DegenerateReconstruction(degenerate_message(source, report.baseline_ratio, **masking),
                                               report.table())
            # before the turning centre's: a video's broken model is no turntable
            if video_jumped(report.video_jump) and not keep_degenerate:
                raise DegenerateReconstruction(jump_message(source, *report.video_jump), report.table())
            if report.turning_share > MAX_TURNING_SHARE and not keep_degenerate:
                raise DegenerateReconstruction(turning_message(source, turning_share, turning_pairs, **masking),
                                               report.table())
            meta["colmap"] = {"source": str(source.resolve()), **report.as_json()}
            (work / "sparse" / "0").mkdir(parents=True, exist_ok=True)
            for stale in (work / "sparse").iterdir():
                if stale.name != "0":
                    shutil.rmtree(stale)
            rec.write_binary(str(work / "sparse" / "0"))
            (work / "pairs.txt").unlink(missing_ok=True)
            if not keep_database:
                (work / "database.db").unlink(missing_ok=True)
            write_json(tmp / "transforms.json", meta, indent=1)  # strict: a figure not judged (NaN) is null
            partial.move_into_place(tmp, out, OUTPUTS)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return report

