"""Interactive training window (Taichi GGUI): ``taichi-nerf gui``.

Plain-Python logic (``camera``, ``controls``, ``schedule``) is kept apart from the Taichi
drawing (``display``), the progressive view (``view``), the layout and panel (``panel``),
what buttons and keys do (``actions``) and the frame loop (``app``), so the logic is
testable without a window. ``launch`` checks that a window can open (taichi_nerf/cli/gui.py runs it).
"""
from ..viewing.schedule import ProgressiveResolution, TrainingSchedule
from .app import GuiApp, GuiOptions
from .camera import OrbitCamera
from .controls import Controls, FrameInput
from .launch import GuiUnavailable

__all__ = ["GuiApp", "GuiOptions", "GuiUnavailable", "OrbitCamera", "Controls", "FrameInput",
           "ProgressiveResolution", "TrainingSchedule"]
