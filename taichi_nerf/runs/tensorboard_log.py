"""``train --logger tensorboard``: the run's metrics and images as TensorBoard events.

A training callback (training/callbacks.TrainingCallback's methods, duck-typed: it lives in runs/, below
training/, because ``open_run`` checks that its optional extra is installed before a run
starts): every row ``metrics.jsonl`` gets becomes scalars under the same names (``loss``,
``train_psnr``, ``lr``, ``rays_per_s``, ``val_psnr``, ...) at that row's step; every preview
image (prediction | truth | depth) is an image ``preview``; the final validation adds
``final/val_N`` (prediction | truth) for up to FINAL_VIEWS views, the pictures it rendered to
score them (``on_val_view``), not renders of their own. Events go to
``OUT/tensorboard/``: ``tensorboard --logdir OUT``.
A resumed run (``resumed_at``, the checkpoint's step) starts a new event file that tells TensorBoard to
drop the old files' events after that step, as ``truncate_metrics`` drops metrics.jsonl's rows, so
what a killed run logged after its checkpoint is not shown twice. Where the final validation at that
step is redone (``redo_final``), that step's events go too, and its kept rows (``rows``) are written again.
Needs the optional extra ``taichi-nerf[tensorboard]``; metrics.jsonl and curves.png are
written either way.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import metric_rows

FINAL_VIEWS = 4
NOT_SCALARS = ("step", "final")


def missing_tensorboard() -> str | None:
    """Why ``--logger tensorboard`` cannot work here, or None."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return "--logger tensorboard needs TensorBoard: pip install 'taichi-nerf[tensorboard]'"
    return None


def logger_for(trainer, resume: bool) -> TensorBoardLogger:
    """A trainer's logger, writing to OUT/tensorboard/; a resumed one (built after the checkpoint is
    restored and metrics.jsonl truncated to it) hides what the old event files hold after the checkpoint."""
    if missing_tensorboard():
        raise ValueError(missing_tensorboard())
    folder = trainer.out_dir / "tensorboard"
    if not resume:
        return TensorBoardLogger(folder)
    metrics = trainer.out_dir / "metrics.jsonl"
    rows = metric_rows(metrics) if metrics.is_file() else []
    return TensorBoardLogger(folder, trainer.step_count, trainer.nothing_to_train(), rows)


class TensorBoardLogger:
    """Writes a trainer's log rows and images to TensorBoard event files."""

    def __init__(self, log_dir: Path, resumed_at: int | None = None, redo_final: bool = False,
                 rows: list[dict] = ()):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        purge = None if resumed_at is None else resumed_at + (0 if redo_final else 1)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge)
        self.val_views: list[np.ndarray] = []  # the last whole validation's first views: prediction | truth
        for row in rows:  # the purged step's rows that metrics.jsonl keeps
            if purge is not None and row.get("step") == purge:
                self.write_scalars(row)
        self.writer.flush()

    def on_val_view(self, trainer, index: int, prediction, truth) -> None:
        if index == 0:
            self.val_views = []
        if index < FINAL_VIEWS:
            self.val_views.append(np.concatenate([prediction.numpy(), truth.numpy()], axis=1))

    def write_scalars(self, record: dict, step: int | None = None) -> None:
        step = int(record.get("step", step))
        for key, value in record.items():
            if key == "time_s" and "loss" not in record:  # a validation row's: its step's training row has one
                continue
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), step)

    def on_log(self, trainer, record: dict) -> None:
        self.write_scalars(record, trainer.step_count)
        step = int(record.get("step", trainer.step_count))
        if record.get("final"):
            for i, image in enumerate(self.val_views):
                self.writer.add_image(f"final/val_{i}", image, step, dataformats="HWC")
        self.writer.flush()  # readable while training runs, and complete if it is killed

    def on_preview(self, trainer, path: Path) -> None:
        from PIL import Image

        image = np.asarray(Image.open(path).convert("RGB"))
        self.writer.add_image("preview", image, trainer.step_count, dataformats="HWC")
        self.writer.flush()

    def on_end(self, trainer) -> None:  # a sweep of runs in one notebook kept every run's writer thread and file open
        self.writer.close()
