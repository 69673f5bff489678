"""Which rank this process is, read from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE,
LOCAL_WORLD_SIZE): what a command may do there (one-process commands are refused under torchrun;
the API's writers run on rank 0 alone), the GPU of the rank, and the timeouts set by variables.
Nothing here starts a process group (runs/distributed.py does)."""
from __future__ import annotations

import os

import torch


def environment() -> tuple[int, int, int, int]:
    """(rank, local_rank, world_size, local_world_size) from torchrun's variables; (0, 0, 1, 1) without them."""
    def number(name: str, default: int) -> int:
        text = os.environ.get(name, "")
        if not text:
            return default
        if not text.isdigit():
            raise ValueError(f"{name}={text!r} is not a whole number (set by torchrun)")
        return int(text)

    size = number("WORLD_SIZE", 1)
    rank, local_rank = number("RANK", 0), number("LOCAL_RANK", 0)
    local_size = number("LOCAL_WORLD_SIZE", size)
    if size < 1 or rank >= size or local_rank >= max(local_size, 1):
        raise ValueError(f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={size} do not fit together (RANK is "
                         "below WORLD_SIZE, LOCAL_RANK below LOCAL_WORLD_SIZE); left in the shell from another "
                         "job? unset RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE, or start with torchrun, which sets "
                         "them all")
    return rank, local_rank, size, local_size


def world_size() -> int:
    return environment()[2]


def rank_said() -> str:
    """``"rank R of N: "`` under torchrun, else "": an error line names its rank (a dataset missing on one machine)."""
    try:
        rank, _, size, _ = environment()
    except ValueError:  # torchrun's variables themselves are wrong: that error says so
        return ""
    return f"rank {rank} of {size}: " if size > 1 else ""


def refuse_several(what: str) -> None:
    """One-process features (every command but train, the web viewer): refused in one line under torchrun."""
    if world_size() > 1:
        raise ValueError(f"{what} runs in one process; start it without torchrun or --devices "
                         f"(WORLD_SIZE is {world_size()}; only train runs on several)")


def rank_zero_only(what: str) -> None:
    """The Python API's one-process work (evaluate, render, export, make_synthetic) in a torchrun
    script: on rank 0 it runs; on another rank it is refused in one line, as every rank would
    write the same files (the CLI refuses such commands on every rank: refuse_several)."""
    rank, _, size, _ = environment()
    if size > 1 and rank != 0:
        raise ValueError(f"{what} under torchrun runs on rank 0 alone (each rank would write the same files); call "
                         f"it where int(os.environ['RANK']) == 0 (this is rank {rank} of {size})")


def gpu_for_local_rank(visible: str | None, local_rank: int) -> str:
    """The CUDA_VISIBLE_DEVICES entry of this rank: the ``local_rank``-th of those already
    visible (indices or UUIDs), or the index itself when none are set; none (``""``) when every
    GPU is hidden (``CUDA_VISIBLE_DEVICES= torchrun ...``, the usual way to train on the CPU)."""
    if visible is None:
        return str(local_rank)
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if not entries:
        return ""
    if local_rank >= len(entries):
        raise ValueError(f"LOCAL_RANK {local_rank} has no GPU: CUDA_VISIBLE_DEVICES={visible!r} lists {len(entries)}; "
                         f"start at most {len(entries)} processes per machine")
    return entries[local_rank]


_pinned = False


def pin_local_device() -> None:
    """Narrow CUDA_VISIBLE_DEVICES to this rank's GPU (Taichi's CUDA backend always opens device 0:
    runs/distributed.py's docstring); a no-op in one process and on later calls. Must run before
    anything initialises CUDA."""
    global _pinned
    _, local_rank, size, _ = environment()
    if size == 1 or _pinned:
        return
    if torch.cuda.is_initialized():
        raise ValueError("CUDA was initialised before taichi-nerf could choose the GPU of LOCAL_RANK; "
                         "set CUDA_VISIBLE_DEVICES per process, or create the Trainer before using CUDA")
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_for_local_rank(os.environ.get("CUDA_VISIBLE_DEVICES"), local_rank)
    _pinned = True


def timeout_seconds(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}={text!r} must be a whole number of seconds, at least 1")
    return int(text)
