"""Memory guards: estimate what a run or a render will hold before starting it, and refuse
with one line (the flag, the estimate, the largest value that fits) instead of dying with a
traceback, or taking the machine down, minutes in.

The estimates are upper-bound fits of measured peaks (CPU, torch 2.x): a training sample
holds its encodings and every layer's activations for the backward pass."""
from __future__ import annotations

import math
import os
from pathlib import Path

# Use at most this share of what is free: the estimates are approximate, and the process,
# the dataset and the OS need the rest.
USABLE_FRACTION = 0.8
RENDER_CHUNK = 4096  # rays per rendering chunk (Renderer.render_pixels' default)
GRID_CHUNK = 65536  # cells per density query of an occupancy grid update


def usable_cores() -> int:
    """The CPU cores this process may run on: a container's or ``taskset``'s share, not the
    host's count (``os.cpu_count``), which would let more ranks or threads start than there are
    cores for them."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class ResourceError(ValueError):
    """A size the machine cannot hold; the message names the flag and what fits."""


def free_bytes(device: str) -> tuple[int | None, str]:
    """Memory free for this process on ``device`` ("cpu" or "cuda...") and a word for where;
    None when it cannot be told (then nothing is refused)."""
    if str(device).startswith("cuda"):
        try:
            import torch

            return int(torch.cuda.mem_get_info(device)[0]), "on the GPU"  # cuda:0, the run's; "cuda": the current
        except Exception:  # no CUDA context here: do not guess
            return None, "on the GPU"
    return _host_free(), "in RAM"


def _host_free() -> int | None:
    """MemAvailable from /proc/meminfo (else sysconf's free pages), capped by a cgroup limit."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    try:  # a container's limit (cgroup v2) is what the kernel enforces
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            free = min(free, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return free


def gb(n: float) -> str:
    if n >= 1e11:
        return f"{n / 1e9:,.0f} GB"
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def _sample_bytes(cfg, training: bool) -> float:
    """Bytes one sample of one ray holds: its encodings and the MLP's activations (kept for
    the backward pass when training; measured ~3.2 kB at width 64, depth 4)."""
    encodings = (3 + 6 * cfg.pos_frequencies) + (3 + 6 * cfg.dir_frequencies)
    layers = cfg.depth + 2  # trunk, feature layer, colour branch
    if training:
        return 1000 + 8 * encodings + 6 * cfg.width * layers
    return 200 + 4 * encodings + 3 * cfg.width


def _train_samples(cfg) -> int:
    """Samples per ray a training step differentiates (the grid's warm-up is stratified)."""
    return cfg.samples_per_ray + (cfg.fine_samples if cfg.sampler in ("hierarchical", "proposal") else 0)


# Floats in one MLP layer's activations per training chunk (4M: 16 MB): a batch bigger than
# that goes through the MLP a chunk of rays at a time (Trainer.accumulate_gradients). Measured
# on CPU-2: the Keras MLP's forward and backward over 1.6M samples took 15.0 s in one piece,
# 5.5 s in chunks of 64k samples; PyTorch3D's (width 256, 576k samples) 17.0 s against 8.5 s
# in chunks of 16k. It also caps a step's memory at one chunk's activations.
CHUNK_ACTIVATIONS = 1 << 22
# On CUDA the chunks are for memory only: each one pays a whole step's kernel launches and syncs
# (the H200, 2026-12-04: ~9 ms per chunk whatever its size, so 16384 rays in 8 chunks of 2048 took
# 73 ms a step against 8 ms for 512 rays). 64M floats (256 MB) per layer keeps a step's activations
# to a few GB and the usual batches in one piece.
CHUNK_ACTIVATIONS_CUDA = 1 << 26
RAY_BYTES = 128  # a batch's per-ray buffers: origin, direction, target, alpha, background, outputs


def train_chunk_rays(cfg, device="cpu") -> int:
    """Rays per chunk of a training batch: about CHUNK_ACTIVATIONS floats per MLP layer on the
    CPU (its caches), CHUNK_ACTIVATIONS_CUDA on a GPU (its memory)."""
    widest = max(cfg.width, cfg.color_width or 0)
    budget = CHUNK_ACTIVATIONS_CUDA if str(device).startswith("cuda") else CHUNK_ACTIVATIONS
    return max(1, budget // (widest * _train_samples(cfg)))


def _model_bytes(cfg) -> float:
    """Weights, their gradients and Adam's two moments."""
    encodings = (3 + 6 * cfg.pos_frequencies) + (3 + 6 * cfg.dir_frequencies)
    weights = cfg.width * (encodings + cfg.width * (cfg.depth + 2)) + cfg.width
    return 16.0 * weights


def check_training(cfg, device: str, pixels_per_image: int | None = None) -> None:
    """Refuse a configuration whose step, render chunk, occupancy grid or built-in scene
    cannot fit in what ``device`` has free. ``pixels_per_image``: the training images' size,
    for ``batch_rays 0`` (every pixel of ``batch_images`` images)."""
    free, where = free_bytes(device)
    if free is None:
        return
    usable = free * USABLE_FRACTION

    def refuse(flag: str, value, need: float, largest: int, what: str) -> None:
        fits = f"the largest that fits is {largest}" if largest >= 1 else "nothing fits: free some memory"
        raise ResourceError(f"{flag} {value} needs about {gb(need)} ({what}), more than the {gb(usable)} usable "
                            f"{where}; {fits}")

    model = _model_bytes(cfg)
    if model > usable:
        per_width = model / cfg.width**2
        refuse("--width", cfg.width, model, int(math.sqrt(usable / per_width)), "weights, gradients and Adam state")
    room = usable - model
    per_sample = _sample_bytes(cfg, training=True)
    samples = _train_samples(cfg)
    if cfg.batch_rays > 0:
        rays, flag, value = cfg.batch_rays, "--batch-rays", cfg.batch_rays
    elif pixels_per_image is not None:
        rays, flag, value = cfg.batch_images * pixels_per_image, "--batch-images", cfg.batch_images
    else:
        rays = 0
    chunk = min(rays, train_chunk_rays(cfg, device)) * samples * per_sample  # the MLP sees a chunk at a time
    step = rays * RAY_BYTES + chunk
    if step > room:
        what = f"{rays} rays x {samples} samples per ray"
        if chunk > room:  # not even one chunk's samples fit: the samples are what to lower
            extra = samples - cfg.samples_per_ray
            refuse("--samples-per-ray", cfg.samples_per_ray, step, int(room / per_sample) - extra, what)
        refuse(flag, value, step, int((room - chunk) / (rays * RAY_BYTES / value)), what)
    # Rendering (validation, previews, videos) goes in chunks of RENDER_CHUNK rays.
    render = RENDER_CHUNK * cfg.eval_samples * _sample_bytes(cfg, training=False)
    if render > room:
        flag = "--render-samples-per-ray" if cfg.render_samples_per_ray else "--samples-per-ray"
        largest = int(room / (RENDER_CHUNK * _sample_bytes(cfg, training=False)))
        refuse(flag, cfg.eval_samples, render, largest, f"rendering {RENDER_CHUNK} rays at a time")
    if cfg.sampler in ("grid", None):  # None: by scene kind, perhaps the grid
        grid = 32.0 * cfg.grid_resolution**3 + GRID_CHUNK * _sample_bytes(cfg, training=False)
        if grid > room:
            refuse("--grid-resolution", cfg.grid_resolution, grid, int((room / 32.0) ** (1 / 3)), "the occupancy grid")
    if cfg.data is None:  # the built-in scene is rendered and held in memory: views x size^2 RGBA
        scene = 1.3 * cfg.scene_views * cfg.scene_size**2 * (4 + 16)
        if scene > usable:
            refuse("--scene-size", cfg.scene_size, scene, int(math.sqrt(usable / (1.3 * cfg.scene_views * 20))),
                   f"{cfg.scene_views} views of the built-in scene")


def check_orbit(width: int, height: int, frames: int, device: str) -> None:
    """Refuse an orbit video that cannot be held: every frame is kept (RGB and depth) until
    the video is written, and each frame is rendered in full on ``device``."""
    pixels_limit = 2**31 - 1  # pixel indices are 32-bit
    host, where = free_bytes("cpu")
    per_pixel_host = 15.0 * frames + 40.0  # uint8 RGB + depth frames and their stacked copies; float buffers
    need = per_pixel_host * width * height
    aspect = width / max(height, 1)
    if host is not None and need > host * USABLE_FRACTION:
        largest = int(math.sqrt(host * USABLE_FRACTION * aspect / per_pixel_host))
        raise ResourceError(f"--size {width} needs about {gb(need)} for {frames} frames of {width} x {height}, "
                            f"more than the {gb(host * USABLE_FRACTION)} usable {where}; the largest that fits is "
                            f"{largest} (or use fewer --frames)")
    if width * height > pixels_limit:
        raise ResourceError(f"--size {width} gives {width} x {height} frames, more pixels than one frame can index; "
                            f"the largest is {int(math.sqrt(pixels_limit * aspect))}")
    free, where = free_bytes(device)
    if free is not None and str(device).startswith("cuda") and 20.0 * width * height > free * USABLE_FRACTION:
        largest = int(math.sqrt(free * USABLE_FRACTION * aspect / 20.0))
        raise ResourceError(f"--size {width} needs about {gb(20.0 * width * height)} per frame {where}, more than the "
                            f"{gb(free * USABLE_FRACTION)} usable; the largest that fits is {largest}")


KEPT_VIEW_BYTES = 16.0  # per pixel of a rendered view kept until its split is written: uint8 RGBA, depth, their copies


def check_dataset_render(size: int, views: int, device: str, *, per_pixel: float, at_once: int = 1,
                         what: str = "") -> None:
    """Refuse (one line) a ``data synthetic`` / ``data from-mesh`` ``--size`` whose views cannot be
    held: ``at_once`` views rendered together on ``device``, ``per_pixel`` bytes per output pixel
    of each (the supersampled buffers; measured peaks), and the ``views`` of the largest split
    kept in RAM until it is written. ``what`` names the flag that also scales the render."""
    from .wording import counted

    render_device = str(device) if str(device).startswith("cuda") else "cpu"
    parts = {"cpu": KEPT_VIEW_BYTES * views}
    parts[render_device] = parts.get(render_device, 0.0) + per_pixel * at_once
    for dev, per_square in parts.items():
        free, where = free_bytes(dev)
        need = per_square * size * size
        if free is not None and need > free * USABLE_FRACTION:
            largest = int(math.sqrt(free * USABLE_FRACTION / per_square))
            # the views kept are what --views 100000 asks too much of: say how many fit at this size
            fewer = int((free * USABLE_FRACTION / (size * size) - (per_square - KEPT_VIEW_BYTES * views))
                        / KEPT_VIEW_BYTES) if dev == "cpu" else 0
            fits = f"the largest that fits is {largest}"
            if 1 <= fewer < views:
                fits = f"at most {fewer:,} views at this size fit" + (f", or {fits}" if largest >= 8 else "")
            raise ResourceError(f"--size {size} needs about {gb(need)} to render {counted(views, 'view')}{what} (the "
                                f"largest split), more than the {gb(free * USABLE_FRACTION)} usable {where}; {fits}")
