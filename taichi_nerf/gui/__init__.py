"""Interactive training window (Taichi GGUI): ``taichi-nerf gui``.

Plain-Python logic (``camera``, ``controls``, ``schedule``) is kept apart from the Taichi
drawing (``display``) and the window loop (``app``), so the logic is testable without a window.
"""
from .app import GuiApp, GuiOptions, GuiUnavailable, SteerableTrainer
from .camera import OrbitCamera
from .controls import Controls, FrameInput
from .launch import launch
from .schedule import ProgressiveResolution, TrainingSchedule

__all__ = ["GuiApp", "GuiOptions", "GuiUnavailable", "SteerableTrainer", "OrbitCamera", "Controls", "FrameInput",
           "ProgressiveResolution", "TrainingSchedule", "launch"]
