"""What a finished run hands back: ``tn.train``'s return, ``Trainer.run``'s and ``finish``'s."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainResult:
    """How a run ended: its folder and checkpoint, the step it reached, the final validation's
    PSNR, whether a stop request (Ctrl-C, SIGTERM) ended it early, and its wall time. A stopped
    run has no final validation: its ``val_psnr`` is the last periodic one's, of earlier weights."""

    out_dir: Path
    checkpoint: Path  # give this (or out_dir) to evaluate, render_orbit, export_mesh
    step: int
    val_psnr: float | None  # None: no validation views
    interrupted: bool
    seconds: float
    val_object_psnr: float | None = None  # the object's pixels alone, where the val photos have transparency
    training_seconds: float | None = None  # ``seconds`` before the final save and validation
