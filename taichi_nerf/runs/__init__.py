"""Runs: the one way to start or resume a run (``run_folder.open_run``), the checkpoint
format, a run's dataset, its TensorBoard log and torchrun's ranks (``distributed``)."""
