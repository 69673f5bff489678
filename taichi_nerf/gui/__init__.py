"""Interactive training window (Taichi GGUI): ``taichi-nerf gui``.

Plain-Python logic (``camera``, ``controls``) is kept apart from the Taichi drawing
(``display``), the layout and panel (``panel``), what buttons and keys do (``actions``) and
the frame loop (``app``), so the logic is testable without a window. The progressive view,
its schedule and the keyframes are shared with the browser viewer: ``taichi_nerf.viewing``.
``launch`` checks that a window can open (taichi_nerf/cli/gui.py runs it).
"""
from .app import GuiApp, GuiOptions
from .camera import OrbitCamera
from .controls import Controls, FrameInput
from .launch import GuiUnavailable

__all__ = ["GuiApp", "GuiOptions", "GuiUnavailable", "OrbitCamera", "Controls", "FrameInput"]
