"""The optimiser and its learning-rate schedule: where a run is in its budget, and the rate there.

Progress is the share of ``--steps`` done or, under ``--time-limit``, the share of the time used
when that is further: a time-limited run never reaches the default 20000 steps, and a decay
spread over them would leave it at nearly the full rate when the time runs out (measured on
ethiopianHead at --downscale 16: 24.8 dB at the limit with the step-based decay; see
docs/BENCHMARKS.md). A resumed run continues from the progress it saved, spread over its new
time limit.
"""
from __future__ import annotations

import math

import torch

from ..config import TrainConfig

DECAY_FROM = 0.6  # under a time limit, the time-driven decay starts at this share of the time
# Under a time limit the warm-up also ends by this share of the time: a slow or loaded machine
# makes few steps, and a 60 s forward-facing run of 339 steps never left its 500-step warm-up.
# At 240 s on the 2-core CPU the steps still end it first (500 steps of an unbounded scene, the
# slowest kind, take ~18 s there), so the measured defaults are unchanged.
WARMUP_TIME_SHARE = 0.1


def progress(step: int, steps: int, time_used: float = 0.0, floor: float = 0.0, used_before: float = 0.0) -> float:
    """In [0, 1]. ``time_used``: the share of the time limit spent (0 without one); ``floor``:
    the progress saved by the checkpoint this run resumed from, when ``used_before`` of the (maybe
    new) limit was spent: the time's progress goes on from there, reaching 1 as the time runs out."""
    by_steps = step / max(steps, 1)
    by_time, before = (max(0.0, (t - DECAY_FROM) / (1.0 - DECAY_FROM)) for t in (time_used, used_before))
    by_time = max(0.0, by_time - before) / (1.0 - before) if before < 1.0 else 1.0
    return min(max(by_steps, floor + (1.0 - floor) * by_time), 1.0)


def learning_rate(cfg: TrainConfig, at: float, step: int | None = None, time_used: float = 0.0) -> float:
    """The rate at progress ``at`` for ``cfg.lr_schedule``; during the first ``cfg.lr_warmup``
    steps (``step`` given), a linear share of it, or under a time limit (``time_used``: the
    share spent) the time's share of WARMUP_TIME_SHARE where that is further."""
    rate = _scheduled_rate(cfg, at)
    if step is not None and step < cfg.lr_warmup:
        rate *= min(1.0, max((step + 1) / cfg.lr_warmup, time_used / WARMUP_TIME_SHARE))
    return rate


def _scheduled_rate(cfg: TrainConfig, at: float) -> float:
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "step":  # PyTorch3D's tutorial: lr * 0.1 from iteration round(n_iter * 0.75) on
        steps = cfg.step_limit()  # none under a time limit: the time's progress then drops it
        drop = min(round(steps * cfg.lr_step_at) / max(steps, 1), 1.0) if math.isfinite(steps) else cfg.lr_step_at
        return cfg.lr_final if at >= drop else cfg.lr
    return cfg.lr * (cfg.lr_final / cfg.lr) ** at


def make_optimizer(cfg: TrainConfig, field_params, pose_params=None) -> torch.optim.Adam:
    """Adam over the field, and the pose corrections (if any) in a group of their own whose
    rate is ``lr_factor`` times the schedule's. fused: one kernel for all parameters (a few
    percent of a small step on the CPU). ``adam_beta2`` 0.99 by default (Instant-NGP's; torch's
    is 0.999): the second moment follows the gradient scale as the occupancy grid reshapes the
    batches; on the built-in scene 25 dB came 5-10 s sooner (two seeds), the same PSNR from ~75 s."""
    groups = [{"params": list(field_params)}]
    if pose_params is not None:
        groups.append({"params": list(pose_params), "lr_factor": cfg.pose_lr / cfg.lr})
    return torch.optim.Adam(groups, lr=cfg.lr, eps=cfg.adam_eps, betas=(0.9, cfg.adam_beta2), fused=True)
