"""Where things go in the window (view, images, curve inset, panel) and the panel itself:
buttons, statistics, sliders, help (the training curves it draws: viewing/curves.py)."""
import math
import textwrap
from dataclasses import dataclass

from ..viewing.curves import CURVE_COLOURS
from ..viewing.view import MODES
from .controls import HELP_LINES, Rect

MODE_LABELS = {"rgb": "RGB", "depth": "Depth", "opacity": "Opacity", "compare": "Compare with truth"}
WHITE, GREY, YELLOW = (0.92, 0.92, 0.92), (0.6, 0.6, 0.6), (0.95, 0.85, 0.4)
# Characters a line of the 330 px panel shows whole (7 px each) beside the scrollbar that a window
# shorter than the panel's lines adds: 44 without it, 43 with it (a 44th was cut off).
PANEL_CHARS = 42
MIN_VIEW_WIDTH = 160  # the view beside the panel; a narrower window lays the panel over the view


@dataclass
class Layout:
    """Rectangles in screen pixels, (x0, y0, w, h) with y up (GGUI's canvas convention)."""
    width: int
    height: int
    panel_width: int
    aspect: float  # of the rendered images
    # None: shown where it fits beside the view; a narrower window opens on the view alone (H shows the panel)
    show_panel: bool | None = None
    opened: tuple[int, int] | None = None  # the window's size when GGUI made it (None: width x height)

    def __post_init__(self):
        self.opened = self.opened or (self.width, self.height)
        if self.show_panel is None:
            self.show_panel = self.panel_fits()

    def resize(self, width: int, height: int, window: bool = True) -> None:
        """A window resized across the width the panel needs beside the view shows or hides the
        panel, as a window opened at the new size would (H decides between two such crossings)."""
        fitted = self.panel_fits()
        self.width, self.height = int(width), int(height)
        if window and self.panel_fits() != fitted:
            self.show_panel = self.panel_fits()

    def panel_fits(self) -> bool:
        """Whether the panel fits beside the view; else, when shown, it lies over the view."""
        return self.width >= self.panel_width + MIN_VIEW_WIDTH

    def panel_x(self) -> int:
        """The panel's left edge: on the right, or at the left edge of a window narrower than the
        panel (its buttons' labels start there: its right part is the one to lose)."""
        return max(0, self.width - self.panel_width)

    def input_rects(self) -> tuple[Rect, Rect | None]:
        """Where a mouse press may start a camera drag (the view), and the panel where it lies over
        the view (a window too narrow for it beside the view), whose presses are the panel's; in
        window fractions, as Controls takes them."""
        vx, vy, vw, vh = self.view_rect()
        view = Rect(vx / self.width, vy / self.height, (vx + vw) / self.width, (vy + vh) / self.height)
        if not self.show_panel or self.panel_fits():
            return view, None
        x0, x1 = self.panel_x(), min(self.width, self.panel_x() + self.panel_width)
        return view, Rect(x0 / self.width, 0.0, x1 / self.width, 1.0)

    def view_rect(self) -> tuple[int, int, int, int]:
        panel = self.panel_width if self.show_panel and self.panel_fits() else 0
        return 0, 0, self.width - panel, self.height

    def image_rects(self, mode: str) -> list[tuple[int, int, int, int]]:
        """Where the render (and in compare mode the ground truth beside it) goes, letterboxed."""
        vx, vy, vw, vh = self.view_rect()
        margin, gap = 8, 8
        panes = 2 if mode == "compare" else 1
        w = min((vw - 2 * margin - gap * (panes - 1)) / panes, (vh - 2 * margin) * self.aspect)
        w, h = max(1, int(w)), max(1, int(w / self.aspect))
        total = panes * w + gap * (panes - 1)
        x0, y0 = vx + (vw - total) // 2, vy + (vh - h) // 2
        return [(x0 + k * (w + gap), y0, w, h) for k in range(panes)]

    def plot_rect(self) -> tuple[int, int, int, int]:
        """The loss/PSNR inset, bottom-left of the view."""
        vx, vy, vw, vh = self.view_rect()
        return vx + 10, vy + 10, min(260, vw // 3), min(90, vh // 5)

    def panel_placement(self) -> tuple[float, float, float, float]:
        """The panel's sub-window (x, y, w, h) as GGUI takes them: fractions of the window's size
        when it opened, which taichi 1.7's GGUI reads once. Fractions of a resized window's size
        would put the panel where they fall in the old one (a wider window: left of its place)."""
        opened_w, opened_h = self.opened
        return self.panel_x() / opened_w, 0.0, self.panel_width / opened_w, self.height / opened_h

    def describe(self, mode: str) -> dict:
        """Regions as [x, y, w, h] in window pixels from the top-left (screen convention, for
        scripts that click or crop)."""
        def top_down(rect):
            x, y, w, h = rect
            return [int(x), int(self.height - y - h), int(w), int(h)]

        panel = [self.panel_x(), 0, min(self.panel_width, self.width), self.height]
        return {"window": [self.width, self.height], "view": top_down(self.view_rect()),
                "images": [top_down(r) for r in self.image_rects(mode)],
                "panel": panel if self.show_panel else None,
                "plot": top_down(self.plot_rect())}


def draw_panel(app) -> None:
    """The panel, right of the view. Buttons queue actions for the next frame; sliders change
    settings at once."""
    gui = app.window.get_gui()
    # GGUI places a sub-window only when it first sees its name: a resized window names it anew
    # (the part after ## is not shown), so the panel moves to the new right edge.
    with gui.sub_window(f"taichi-nerf##{app.layout_generation}", *app.layout.panel_placement()):
        for label, action in panel_buttons(app):
            if gui.button(label):
                app.queued.append(action)
        for line, colour in stats_lines(app):
            gui.text(line, color=colour)
        # (a slider's label beyond 12 characters is cut off where the panel has its scrollbar)
        if app.trainer is not None:
            if app.schedule.steps_per_frame is None:  # the frame budget decides the steps
                app.budget.train_share = gui.slider_float("train share", app.budget.train_share, 0.1, 0.9)
            else:
                app.schedule.steps_per_frame = gui.slider_int("steps/frame", app.schedule.steps_per_frame, 1, 32)
            app.trainer.lr_scale = gui.slider_float("lr scale", app.trainer.lr_scale, 0.05, 3.0)
            app.schedule.yield_while_moving = not gui.checkbox("train while moving",
                                                               not app.schedule.yield_while_moving)
        view, camera = app.view, app.camera
        scale = gui.slider_float("render scale", app.render_scale, 0.05, 1.0)
        samples = view.render_samples
        if view.samples_decided() is None:  # else the grid's marcher or the proposal network decides them
            samples = gui.slider_int("samples/ray", view.render_samples, 8, view.max_samples)
        distance = gui.slider_float("distance", camera.radius, camera.min_radius, camera.max_radius)
        if abs(scale - app.render_scale) > 1e-4:
            app.render_scale = scale
            app.relayout()
        if samples != view.render_samples:
            view.render_samples = samples
            view.progressive.restart()
        if abs(distance - camera.radius) > 1e-4 * camera.radius:  # sliders round to float32
            camera.set_radius(distance)
        for line in textwrap.wrap(app.message, PANEL_CHARS, break_on_hyphens=False)[:3]:
            gui.text(line, color=YELLOW)
        for line in HELP_LINES:
            gui.text(line, color=GREY)


def panel_buttons(app) -> list[tuple[str, str]]:
    """(label, action) in a fixed order: the window test finds the buttons by it."""
    pause = "Resume training (space)##pause" if app.schedule.paused else "Pause training (space)##pause"
    if not app.schedule.can_train:  # viewing a checkpoint: there is nothing to resume
        pause = "No training (open with --train)##pause"
    video = "Record path video (V)##video" if len(app.keyframes) >= 2 else "Record orbit video (V)##video"
    buttons = [(pause, "toggle_pause"), ("Save checkpoint (C)", "save_checkpoint"),
               ("Save screenshot (I)", "screenshot"), (video, "record_video"), ("Add keyframe (K)", "add_keyframe")]
    buttons += [(f"{MODE_LABELS[m]}{' <' if app.mode == m else ''}##{m}", f"mode_{m}") for m in MODES]
    return buttons + [("Previous training view (P)", "prev_camera"), ("Next training view (N)", "next_camera"),
                      ("Reset view (R)", "reset_view")]


def stats_lines(app) -> list[tuple[str, tuple]]:
    lines, curves = [], app.curves
    if app.trainer is not None:
        t = app.trainer
        waiting = app.schedule.yield_while_moving and (app.controls.dragging or app.settling is not None)
        state = "paused" if app.schedule.paused else ("waits for the view" if waiting else "training")
        lines.append((f"step {t.step_count} / {app.cfg.step_limit(timed=False)} ({state})", WHITE))
        lines.append((f"loss {t.last_loss:.5f}" if math.isfinite(t.last_loss) else "loss -", CURVE_COLOURS["loss"]))
        psnr = f"{curves.smoothed_psnr:.2f} dB" if curves.smoothed_psnr is not None else "-"
        val = f" (val {curves.val_psnr:.2f})" if curves.val_psnr else ""
        lines.append((f"train PSNR {psnr}{val}", CURVE_COLOURS["psnr"]))
        lines.append((f"rays/s {t.rays_per_s:,.0f}   lr {t.lr_at(t.step_count):.2e}", WHITE))
    else:
        val = f", val PSNR {curves.val_psnr:.2f} dB" if curves.val_psnr else ""
        lines.append((f"checkpoint at step {app.step_at_open}{val}", WHITE))
    p = app.view.progressive
    trained = app.trainer.last_samples_per_ray if app.trainer is not None else None
    spr = app.view.samples_decided() or f"{app.view.render_samples}"
    lines.append((f"samples/ray {spr}" + (f", train {trained:.1f}" if trained else ""), WHITE))
    now = "{}x{}".format(*p.size(p.shown)) if p.shown >= 0 else "-"
    state = ", coarse" if p.target < p.top else ("" if p.complete else ", refining")  # fits the panel's width
    lines.append((f"view {now} of {p.full_width}x{p.full_height}{state}", WHITE))
    lines.append((f"render {app.render_ms.value or 0:.0f} ms   fps {app.fps.value or 0:.1f}", WHITE))
    keys = len(app.keyframes)
    lines.append((f"keyframes {keys}" + (" (V renders the path)" if keys >= 2 else " (K adds the view)"), WHITE))
    truth = f", truth: view {app.ground_truth()[0] + 1}" if app.mode == "compare" else ""
    lines.append((f"mode {app.mode}{truth}", WHITE))
    return lines
