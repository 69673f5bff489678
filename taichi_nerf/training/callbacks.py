"""The hooks a run calls (nerfstudio-style training callbacks): what :class:`Trainer.callbacks
<taichi_nerf.training.trainer.Trainer>` holds and when each method is called."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .trainer import Trainer


class TrainingCallback:
    """Hooks into a run (nerfstudio-style training callbacks). Put any object with some of
    these methods in ``Trainer.callbacks``: a missing method is skipped, so deriving from
    this class is optional. Exceptions propagate to whoever drives the trainer."""

    def on_step(self, trainer: Trainer, info: dict) -> None:
        """After each :meth:`Trainer.advance`, its scheduled work done; ``info`` is what
        :meth:`Trainer.step` returned (``train_psnr`` is None where the loss was not read)."""

    def on_log(self, trainer: Trainer, record: dict) -> None:
        """A row was appended to metrics.jsonl (training metrics or a validation)."""

    def on_validate(self, trainer: Trainer, psnr: float) -> None:
        """:meth:`Trainer.validate` measured this mean PSNR."""

    def on_val_view(self, trainer: Trainer, index: int, prediction, truth) -> None:
        """A whole val view was rendered and scored (the final validation, ``eval``-like
        checks): its (H, W, 3) prediction and truth on the CPU, in [0, 1]."""

    def on_preview(self, trainer: Trainer, path: Path) -> None:
        """A preview image was written."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """A checkpoint was written."""

    def on_end(self, trainer: Trainer) -> None:
        """:meth:`Trainer.run` ended (its steps, final validation and checkpoint done, or stopped):
        close what the run's hooks hold open. The window and the browser's sessions end with their process."""
