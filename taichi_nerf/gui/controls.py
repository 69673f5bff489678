"""Input mapping of the GUI: abstract per-frame input -> camera motions and named actions.

Nothing here touches a window, so the whole mapping is unit-testable. The app polls the
window once per frame into a :class:`FrameInput`; :meth:`Controls.update` moves the camera
and returns the actions (strings) that the app carries out.

Taichi 1.7's GGUI reports letters, arrows, space, Escape, Tab, Return, BackSpace, the
modifiers and the three mouse buttons, but no scroll wheel, digits or punctuation; so zoom
is a middle-drag, Z/X or the arrow keys (+/- are mapped too, for windows that report them).
"""
import math
from dataclasses import dataclass, field

from .camera import OrbitCamera

ORBIT_RADIANS_PER_VIEW = math.pi  # a drag across the whole view turns the scene half around
ZOOM_PER_VIEW = 4.0  # a middle-drag across the whole view height zooms by this factor
ZOOM_STEP = 1.15  # one zoom key press
FLY_TAP = 0.05  # one tap of W/A/S/D/Q/E moves this many orbit radii...
FLY_SPEED = 0.6  # ...and holding it this many radii per second
MAX_FLY_DT = 0.1  # a slow frame does not turn a held key into a jump

KEY_ACTIONS = {
    " ": "toggle_pause", "Escape": "quit",
    "n": "next_camera", "Right": "next_camera", "p": "prev_camera", "Left": "prev_camera",
    "r": "reset_view", "m": "cycle_mode", "c": "save_checkpoint", "i": "screenshot",
    "v": "record_video", "h": "toggle_panel", "k": "add_keyframe", "BackSpace": "remove_keyframe",
    "z": "zoom_in", "Up": "zoom_in", "+": "zoom_in", "=": "zoom_in",
    "x": "zoom_out", "Down": "zoom_out", "-": "zoom_out",
}
# key -> (forward, right, up) direction of the fly motion
FLY_KEYS = {"w": (1, 0, 0), "s": (-1, 0, 0), "d": (0, 1, 0), "a": (0, -1, 0), "e": (0, 0, 1), "q": (0, 0, -1)}
DRAG_MODES = {"LMB": "orbit", "RMB": "pan", "MMB": "zoom"}

HELP_LINES = ("left-drag: orbit", "right-drag or Shift+left-drag: pan", "middle-drag, Z/X or Up/Down: zoom",
              "W/A/S/D/Q/E: move", "N/P or Right/Left: training views", "R: reset view   M: render mode",
              "Space: pause  C: checkpoint  I: screenshot", "K: add keyframe   BackSpace: remove last",
              "V: video along the keyframes (none: orbit)",
              "V while recording: cancel the video", "H: hide panel   Esc: save and quit")


@dataclass
class FrameInput:
    """What the window reported since the last frame. Cursor in window fractions with
    (0, 0) at the bottom-left (GGUI's convention)."""
    cursor: tuple[float, float] = (0.5, 0.5)
    buttons: frozenset = frozenset()  # mouse buttons held now: "LMB", "RMB", "MMB"
    pressed: tuple = ()  # keys and buttons that went down since the last frame, in order
    held: frozenset = frozenset()  # keys held now (fly keys, modifiers)
    dt: float = 0.0  # seconds since the last frame


@dataclass
class Rect:
    """Axis-aligned rectangle in window fractions (x0, y0 bottom-left)."""
    x0: float
    y0: float
    x1: float
    y1: float

    def contains(self, p) -> bool:
        return self.x0 <= p[0] <= self.x1 and self.y0 <= p[1] <= self.y1

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass
class Controls:
    """Turns input into camera motion and actions. ``view`` is where the scene is drawn
    (drags start only there, so dragging a slider on the panel never turns the camera)."""
    view: Rect = field(default_factory=lambda: Rect(0.0, 0.0, 1.0, 1.0))
    panel: Rect | None = None  # the panel where it lies over the view (a narrow window): its presses are its own
    drag_mode: str | None = None
    drag_button: str | None = None
    last_cursor: tuple[float, float] | None = None
    moved: bool = False  # the camera moved during the last update
    _held_before: frozenset = frozenset()
    _buttons_before: frozenset = frozenset()

    def update(self, inp: FrameInput, camera: OrbitCamera) -> list[str]:
        version = camera.version
        actions: list[str] = []
        for key in inp.pressed:
            action = KEY_ACTIONS.get(key) or KEY_ACTIONS.get(key.lower() if len(key) == 1 else key)
            if action == "zoom_in":
                camera.zoom(1.0 / ZOOM_STEP)
            elif action == "zoom_out":
                camera.zoom(ZOOM_STEP)
            elif action is not None:
                actions.append(action)
        self._drag(inp, camera)
        self._fly(inp, camera)
        self.moved = camera.version != version
        return actions

    @property
    def dragging(self) -> bool:
        return self.drag_mode is not None

    def _drag(self, inp: FrameInput, camera: OrbitCamera) -> None:
        if self.drag_button is not None and self.drag_button not in inp.buttons:
            self.drag_mode = self.drag_button = self.last_cursor = None
        if self.drag_button is None:
            for button in ("LMB", "RMB", "MMB"):
                # Only a press that starts inside the view drags: a press on the panel that
                # wanders into the view must not turn the camera.
                fresh = button in inp.pressed or button not in self._buttons_before
                on_panel = self.panel is not None and self.panel.contains(inp.cursor)
                if button in inp.buttons and fresh and self.view.contains(inp.cursor) and not on_panel:
                    self.drag_button = button
                    self.drag_mode = DRAG_MODES[button]
                    if button == "LMB" and "Shift" in inp.held:
                        self.drag_mode = "pan"
                    elif button == "LMB" and "Control" in inp.held:
                        self.drag_mode = "zoom"
                    self.last_cursor = inp.cursor
                    break
            self._buttons_before = frozenset(inp.buttons)
            return
        self._buttons_before = frozenset(inp.buttons)
        dx = (inp.cursor[0] - self.last_cursor[0]) / max(self.view.width, 1e-6)
        dy = (inp.cursor[1] - self.last_cursor[1]) / max(self.view.height, 1e-6)
        self.last_cursor = inp.cursor
        if dx == 0.0 and dy == 0.0:
            return
        if self.drag_mode == "orbit":
            # Grab-the-scene convention: drag right, the scene turns right (camera goes left).
            camera.orbit(-dx * ORBIT_RADIANS_PER_VIEW, -dy * ORBIT_RADIANS_PER_VIEW * 0.5)
        elif self.drag_mode == "pan":
            camera.pan(dx, dy)
        elif self.drag_mode == "zoom":
            camera.zoom(ZOOM_PER_VIEW ** (-dy))  # drag up: closer

    def _fly(self, inp: FrameInput, camera: OrbitCamera) -> None:
        motion = [0.0, 0.0, 0.0]
        for key in inp.pressed:  # taps (a press and release between two frames)
            for k, v in enumerate(FLY_KEYS.get(key.lower() if len(key) == 1 else key, (0, 0, 0))):
                motion[k] += FLY_TAP * v
        dt = min(max(inp.dt, 0.0), MAX_FLY_DT)
        for key in inp.held & self._held_before:  # keys held across frames: continuous motion
            for k, v in enumerate(FLY_KEYS.get(key, (0, 0, 0))):
                motion[k] += FLY_SPEED * dt * v
        self._held_before = frozenset(inp.held)
        if any(motion):
            camera.move(*motion)
