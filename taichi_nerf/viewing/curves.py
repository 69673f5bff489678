"""The loss and PSNR curves both viewers show, fed by the trainer's hooks."""
import math
from pathlib import Path

from ..files import finite_number, metric_rows
from ..training.callbacks import TrainingCallback

CURVE_COLOURS = {"psnr": (0.35, 0.9, 0.45), "loss": (1.0, 0.6, 0.2)}
PSNR_SMOOTHING = 0.9


class TrainingCurves(TrainingCallback):
    """Per-step log-loss and smoothed train PSNR for the inset, and the latest validation PSNR."""

    def __init__(self, val_psnr: float | None = None):
        self.steps: list[int] = []
        self.loss: list[float] = []  # log10: the curve shows log-loss
        self.psnr: list[float] = []
        self.smoothed_psnr: float | None = None
        self.val_psnr = val_psnr

    def on_step(self, trainer, info: dict) -> None:
        if finite_number(info["train_psnr"]) and finite_number(info["loss"]):
            self.add(info["step"], info["loss"], info["train_psnr"])

    def on_validate(self, trainer, psnr: float) -> None:
        self.val_psnr = psnr

    def add(self, step: int, loss: float, psnr: float) -> None:
        previous = psnr if self.smoothed_psnr is None else self.smoothed_psnr
        self.smoothed_psnr = PSNR_SMOOTHING * previous + (1 - PSNR_SMOOTHING) * psnr
        self.steps.append(step)
        self.loss.append(math.log10(max(loss, 1e-12)))
        self.psnr.append(self.smoothed_psnr)

    def seed(self, metrics: Path, up_to_step: int) -> None:
        """A resumed run starts its curves from the metrics it already logged."""
        if up_to_step == 0 or not metrics.is_file():
            return
        for row in metric_rows(metrics):
            if finite_number(row.get("train_psnr")) and finite_number(row.get("loss")) and row["step"] <= up_to_step:
                self.add(row["step"], row["loss"], row["train_psnr"])

    def series(self) -> list:
        return [(self.psnr, CURVE_COLOURS["psnr"]), (self.loss, CURVE_COLOURS["loss"])]
