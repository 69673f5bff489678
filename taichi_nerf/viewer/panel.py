"""The browser's control panel (viser's GUI) and the training cameras drawn as frustums.

Every callback here runs on one of viser's threads and only writes to the :class:`Inbox`;
the main thread reads it, acts, and updates what the panel shows through :meth:`Panel.show`.
"""
import math

import numpy as np

from ..viewing.curves import CURVE_COLOURS
from .camera import vertical_fov, viser_pose
from .inbox import Inbox

MODE_LABELS = {"RGB": "rgb", "Depth": "depth", "Opacity": "opacity"}
MAX_FRUSTUMS = 300  # beyond this many training cameras, every k-th is drawn
CURVE_POINTS = 400  # the curves are thinned to this many points
CAP_RANGE = (64, 2048)  # the resolution cap slider's range, widened to take any --viewer-resolution (16 px and up)


def _hex(colour) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in colour)


class Panel:
    """The controls (pause, training share, render mode, resolution cap, checkpoint,
    keyframes, video), the statistics, the curves, and the training cameras."""

    def __init__(self, server, inbox: Inbox, *, training: bool, resolution_cap: int, train_share: float):
        gui = server.gui
        self.server = server
        self.training = training
        with gui.add_folder("Training"):
            self.stats = gui.add_markdown("starting")
            self.message = gui.add_markdown("")
            if training:
                self.pause = gui.add_button("Pause training", hint="pause or resume training")
                self.pause.on_click(lambda _: inbox.press("toggle_pause"))
                share = gui.add_slider("Training share", 0.1, 0.9, 0.05, float(train_share),
                                       hint="the part of each frame's time that trains (the rest renders)")
                share.on_update(lambda event: inbox.press("train_share", float(event.target.value)))
                save = gui.add_button("Save checkpoint")
                save.on_click(lambda _: inbox.press("save_checkpoint"))
        with gui.add_folder("View"):
            mode = gui.add_dropdown("Render mode", tuple(MODE_LABELS), initial_value="RGB")
            mode.on_update(lambda event: inbox.press("mode", MODE_LABELS[event.target.value]))
            low, high = min(CAP_RANGE[0], int(resolution_cap)), max(CAP_RANGE[1], int(resolution_cap))
            self.resolution_cap = gui.add_slider("Resolution cap (px)", low, high, 32, int(resolution_cap),
                                                 hint="the longer side of the rendered picture, at most")
            self.resolution_cap.on_update(lambda event: inbox.press("resolution_cap", int(event.target.value)))
            show = gui.add_checkbox("Training cameras", True, hint="click one to look through it")
            show.on_update(lambda event: inbox.press("show_cameras", bool(event.target.value)))
        with gui.add_folder("Camera path"):
            add = gui.add_button("Add keyframe", hint="the current view joins the path (camera_path.json)")
            add.on_click(lambda _: inbox.press("add_keyframe"))
            remove = gui.add_button("Remove last keyframe")
            remove.on_click(lambda _: inbox.press("remove_keyframe"))
            video = gui.add_button("Render video", hint="the path through the keyframes, else the orbit")
            video.on_click(lambda _: inbox.press("record_video"))
        self.curves = None
        if training:
            self.curves = gui.add_uplot(
                (np.zeros(1), np.zeros(1), np.zeros(1)),
                ({"label": "step"}, {"label": "log10 loss", "stroke": _hex(CURVE_COLOURS["loss"]), "scale": "loss"},
                 {"label": "train PSNR", "stroke": _hex(CURVE_COLOURS["psnr"]), "scale": "psnr"}),
                axes=({}, {"scale": "loss"}, {"scale": "psnr", "side": 1}), title="loss and PSNR", aspect=1.6,
                # uPlot reads x as UNIX seconds unless told: step 300 was labelled "12:05am 1/1/70"
                scales={"x": {"time": False}})
        self.frustums = []
        self._shown_curve_points = 0
        self._paused_label = None

    def show(self, stats: str, message: str, paused: bool | None) -> None:
        """The statistics and the status line (unchanged text is not sent again)."""
        if self.stats.content != stats:
            self.stats.content = stats
        if self.message.content != message:
            self.message.content = message
        if self.training and paused is not None and paused != self._paused_label:
            self.pause.label = "Resume training" if paused else "Pause training"
            self._paused_label = paused

    def show_curves(self, curves) -> None:
        """The loss and PSNR curves, thinned to CURVE_POINTS, when they have grown."""
        count = len(curves.steps)
        if self.curves is None or count < 2 or count == self._shown_curve_points:
            return
        keep = np.unique(np.linspace(0, count - 1, min(count, CURVE_POINTS)).round().astype(np.int64))
        self.curves.data = tuple(np.asarray(values, dtype=np.float64)[keep]
                                 for values in (curves.steps, curves.loss, curves.psnr))
        self._shown_curve_points = count

    def add_training_cameras(self, split, inbox: Inbox, scale: float) -> None:
        """The training cameras as frustums; a click asks to look through that camera."""
        if split is None:
            return
        poses, intrinsics = split.poses.cpu().double().numpy(), split.intrinsics.cpu().double().numpy()
        every = max(1, math.ceil(split.count / MAX_FRUSTUMS))
        for index in range(0, split.count, every):
            wxyz, position = viser_pose(poses[index])
            frustum = self.server.scene.add_camera_frustum(
                f"/training_cameras/{index:05d}", fov=vertical_fov(intrinsics[index], split.height),
                aspect=split.width / split.height, scale=scale, thickness=1.5, thickness_units="screen",
                color=(60, 120, 220),
                wxyz=wxyz, position=position)
            frustum.on_click(lambda _event, index=index: inbox.press("look_through", index))
            self.frustums.append(frustum)

    def show_training_cameras(self, visible: bool) -> None:
        for frustum in self.frustums:
            frustum.visible = visible
