"""Training: the ``Trainer`` (``trainer``) and what a step needs around it: ray batches,
losses, the learning-rate schedule, pose refinement, masks, validation against held-out
photos, and what a run reports about itself (diagnostics, plots)."""
