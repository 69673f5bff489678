"""What the named actions do (panel buttons and keys: controls.KEY_ACTIONS), each a function
of the app: snap to a training view, render mode, panel, screenshot here; pause, checkpoint,
keyframes and videos are the viewers' shared actions (viewing/actions.py)."""
from pathlib import Path

from ..files import first_unused, write_png
from ..viewing.actions import add_keyframe, attempt, remove_keyframe, save_checkpoint, start_video, toggle_pause
from ..viewing.view import MODES


def perform(app, action: str) -> None:
    """Carry out a named action; names nothing here handles (zoom keys: the camera's) are ignored."""
    if action.startswith("mode_"):
        set_mode(app, action[len("mode_"):])
    elif action in HANDLERS:
        HANDLERS[action](app)


def quit_app(app) -> None:
    app.quit_requested = True


def toggle_panel(app) -> None:
    """H: hide the panel, or show it again in its place on the right (GGUI lets a drag move it
    over the view, and places a sub-window only when it first sees its name: a new one)."""
    app.layout.show_panel = not app.layout.show_panel
    if app.layout.show_panel:
        app.layout_generation += 1
    app.relayout()


def set_mode(app, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown render mode {mode!r}")
    if mode == "compare" and app.train_split is None:
        app.message = "compare needs the training views, which are not available"
        return
    app.mode = mode
    app.relayout()


def cycle_mode(app) -> None:
    """M: the next render mode, past compare where there are no training views to compare with."""
    modes = [m for m in MODES if m != "compare" or app.train_split is not None]
    set_mode(app, modes[(modes.index(app.mode) + 1) % len(modes)])


def snap(app, direction: int) -> None:
    """To the next/previous training camera; the first press lands on the closest one."""
    split = app.train_split
    if split is None:
        app.message = "no training views to snap to"
        return
    if app.camera.snapped_index is None:
        index = app.camera.nearest(split.poses.cpu())
    else:
        index = (app.camera.snapped_index + direction) % split.count
    app.camera.snap_to(split.poses[index].cpu(), split.intrinsics[index].cpu(), split.width, split.height, index)
    app.message = f"training view {index + 1} of {split.count}"


def save_screenshot(app) -> Path:
    path = first_unused(lambda n: app.out_dir / "screenshots" / f"gui_step{app.step:06d}_{n:03d}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    if app.options.headless or app.window is None:
        write_png(path, app.display.to_numpy())
    else:  # GGUI saves the frame being drawn: done at the end of this frame, panel included
        app.pending_window_shot = path
    app.counts["screenshots"] += 1
    app.last_saved["screenshot"] = str(path)
    return path


HANDLERS = {
    "toggle_pause": toggle_pause, "quit": quit_app, "toggle_panel": toggle_panel, "cycle_mode": cycle_mode,
    "next_camera": lambda app: snap(app, +1), "prev_camera": lambda app: snap(app, -1),
    "reset_view": lambda app: app.camera.reset(),
    "save_checkpoint": lambda app: attempt(app, save_checkpoint, "checkpoint"),
    "screenshot": lambda app: attempt(app, save_screenshot, "screenshot"),
    "record_video": start_video, "add_keyframe": add_keyframe, "remove_keyframe": remove_keyframe,
}
