"""What the viewers' shared actions do, as functions of the front end's app (the GGUI window,
gui/app.py, and the browser viewer, viewer/session.py, hold the same attributes: ``trainer``,
``schedule``, ``message``, ``camera``, ``keyframes``, ``view``, ``video_job``, ``out_dir``...):
pause, save a checkpoint, keyframes and the video of the orbit or of the path through them
(rendered a band per frame, so the viewer stays responsive)."""
from pathlib import Path

from ..files import first_unused
from ..outputs.video import VideoRecorder
from ..rendering.video_route import DEFAULT_FPS, DEFAULT_SIZE, video_files
from ..training.trainer import TrainingDiverged
from .keyframes import MIN_KEYFRAMES


def toggle_pause(app) -> None:
    if app.trainer is None:
        app.message = "viewing a checkpoint: start with --train to train"
    elif getattr(app, "ended_hint", None):  # train --viewer web after its end: validated, its video written
        app.message = f"the run has ended (validated and saved); to train on: {app.ended_hint}"
    else:
        app.message = "paused" if app.schedule.toggle_pause() else "training"


def save_checkpoint(app) -> Path | None:
    """The trainer's checkpoint; the app's on_checkpoint hook does the bookkeeping."""
    if app.trainer is None:
        app.message = "viewing a checkpoint: nothing new to save"
        return None
    return app.trainer.save_checkpoint()


def attempt(app, save, what: str) -> None:
    """Run a save action, reporting the outcome in the panel instead of raising."""
    try:
        path = save(app)
        if path is not None:
            app.message = f"saved {what}: {path}"
    except (OSError, TrainingDiverged) as exc:
        app.message = f"{what} failed: {exc}"


def video_size(app) -> tuple[int, int]:
    """Width (the option, else the training image width, at most DEFAULT_SIZE) and the scene's height for it."""
    source_width = app.train_split.width if app.train_split is not None else (app.scene.ndc_width or 100)
    width = app.options.video_width or min(DEFAULT_SIZE, max(32, source_width))
    return width, max(8, round(width / app.scene.aspect))


def path_size(app) -> tuple[int, int]:
    """A keyframe path's frame: :func:`video_size`'s width, and the height of the view its keyframes were framed in
    (a browser's canvas may be wider than the scene's pictures: a square video cut its sides off)."""
    width, height = video_size(app)
    aspect = app.keyframes.aspect or getattr(app.camera, "aspect", None)
    return (width, max(8, round(width / aspect))) if aspect else (width, height)


def add_keyframe(app) -> None:
    """The current view joins the path; the path is saved at once (camera_path.json)."""
    app.keyframes.add(app.camera, *path_size(app))
    path = save_keyframes(app)
    count = len(app.keyframes)
    then = "the video follows the path" if count >= MIN_KEYFRAMES else "add another for a path"
    app.message = f"keyframe {count} added ({then})" + (f": {path}" if path else "")
    if count == 1 and app.keyframes.kept is not None:
        app.message += f"; the earlier path is kept as {app.keyframes.kept.name}"


def remove_keyframe(app) -> None:
    if not app.keyframes.remove_last():
        app.message = "no keyframes to remove"
        return
    save_keyframes(app)
    app.message = f"removed the last keyframe, {len(app.keyframes)} left"


def save_keyframes(app) -> Path | None:
    try:
        path = app.keyframes.save(app.out_dir, app.options.video_frames, *path_size(app), fps=DEFAULT_FPS)
    except OSError as exc:
        app.message = f"camera path not saved: {exc}"
        return None
    if path is not None:
        app.last_saved["camera_path"] = str(path)
    return path


# Seconds of rendering a frame gives a video being recorded, at least: the window then redraws
# 3-4 times a second, and the recording is not held to a frame budget made for training.
VIDEO_FRAME_S = 0.25


def dropped_video_note(app) -> str | None:
    """What closing mid-recording loses, for the goodbye line (None: no video was recording)."""
    job = app.video_job
    if job is None:
        return None
    return f"the video being recorded ({job.frame} of {job.frames} frames done) was dropped; record it again"


def start_video(app) -> None:
    """The path through the keyframes when there are any, else the orbit."""
    if app.video_job is not None:  # pressed again: the user wants it to stop
        job, app.video_job = app.video_job, None
        app.message = f"video cancelled at frame {job.frame + 1} of {job.frames}"
        if app.trainer is not None and not app.schedule.paused:  # (not when viewing a checkpoint or paused)
            app.message += "; training goes on"
        app.view.progressive.restart()
        return
    if len(app.keyframes) == 1:
        app.message = "one keyframe is no path: add another (or remove it for the orbit)"
        return
    if len(app.keyframes) >= MIN_KEYFRAMES:
        path = save_keyframes(app)
        if path is None:
            return
        route = app.keyframes.load_path(path)  # exactly what `render --path` will read
        out = unused_video(app, "path")
        app.video_job = VideoRecorder(app.renderer, out, route.frames, route.width, background=app.background,
                                      fps=route.fps or DEFAULT_FPS,
                                      cameras=(route.poses, route.intrinsics, route.width, route.height))
        what = f"the path through {len(app.keyframes)} keyframes"
    else:
        out = unused_video(app, "orbit")
        app.video_job = VideoRecorder(app.renderer, out, app.options.video_frames, video_size(app)[0],
                                      background=app.background,
                                      fps=DEFAULT_FPS)
        what = "the orbit"
    app.message = f"recording {app.video_job.frames} frames of {what}"
    if app.trainer is not None and not app.schedule.paused:
        app.message += " (training waits)"


def unused_video(app, kind: str) -> Path:
    """``videos/KIND_stepN.mp4``, or ``..._1.mp4`` and on where an earlier session's video of that step is."""
    def name(n: int) -> Path:
        return app.out_dir / "videos" / (f"{kind}_step{app.step:06d}" + (f"_{n}" if n else "") + ".mp4")
    return first_unused(name, taken=lambda out: any(file.exists() for file in video_files(out)))


def advance_video(app, budget_s: float | None) -> None:
    """The next rows of the video within the frame's render budget; writes the files at the end."""
    job, view = app.video_job, app.view
    if budget_s is not None:  # training waits while recording: the video takes more than a view's share
        budget_s = max(budget_s, VIDEO_FRAME_S)
    job.advance(None if budget_s is None else view.cost.first_band_rows(budget_s, job.width, job.height, job.row))
    if not job.done:
        app.message = f"recording video: frame {job.frame + 1} of {job.frames}"
        return
    app.video_job = None
    try:
        paths = job.write()
        app.counts["videos"] += 1
        app.last_saved["video"] = str(paths[0])
        # its whole path first, as a checkpoint's: a browser's user is on another machine and fetches it from there
        others = ", ".join(p.name for p in paths[1:])
        app.message = f"saved video: {paths[0]}" + (f" (and {others})" if others else "")
    except Exception as exc:  # a missing codec must not take the session down
        app.message = f"video failed: {type(exc).__name__}: {exc}"
    view.progressive.restart()
