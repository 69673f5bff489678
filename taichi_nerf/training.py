"""Training stage: Monte Carlo ray batches across all training images, Adam, validation,
previews, metrics and atomic, resumable checkpoints."""
from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from . import backend, cameras, checkpoint
from .backgrounds import background_colour, over_background
from .config import TrainConfig
from .data.loaders import load_dataset
from .metrics import colorize, mse_to_psnr, psnr
from .rendering import RayOutput, Renderer
from .scene import Scene


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class TrainResult:
    out_dir: Path
    checkpoint: Path
    step: int
    val_psnr: float | None
    interrupted: bool
    seconds: float


class Trainer:
    """Owns the field, optimiser and data for one run; :meth:`step` is one optimisation
    step (the GUI interleaves it with drawing), :meth:`run` the whole schedule."""

    def __init__(self, cfg: TrainConfig, dataset=None, resume: bool = False):
        self.cfg = cfg.validate()
        self.out_dir = Path(cfg.out)
        self.backend = backend.init(cfg.arch, cfg.max_samples_per_ray)
        dev = self.backend.device
        self.dataset = dataset if dataset is not None else load_dataset(cfg.data, **cfg.dataset_options())
        self.train = self.dataset.split("train").to(dev)
        val_name = "val" if "val" in self.dataset.splits else ("test" if "test" in self.dataset.splits else "train")
        self.val = self.dataset.split(val_name)
        self.scene = Scene.from_dataset(self.dataset)
        torch.manual_seed(cfg.seed)
        self.renderer = Renderer.from_config(cfg, self.scene, dev)
        self.field = self.renderer.field
        self.optimizer = torch.optim.Adam(self.field.parameters(), lr=cfg.lr, eps=1e-10)
        self.generator = torch.Generator(device=dev).manual_seed(cfg.seed)
        self.background = background_colour(cfg.background, dev)
        self.step_count = 0
        self.last_val_psnr: float | None = None
        self.last_loss = float("nan")
        self.rays_per_s = 0.0
        self.elapsed = 0.0  # training wall time, carried across resumes
        self.history: list[dict] = []
        self._pixels = self.train.width * self.train.height
        if resume:
            self._restore(checkpoint.find_checkpoint(self.out_dir))

    # --- one step ----------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        frac = min(step / max(self.cfg.steps, 1), 1.0)
        return self.cfg.lr * (self.cfg.lr_final / self.cfg.lr) ** frac

    def sample_batch(self):
        n, dev, g = self.cfg.batch_rays, self.backend.device, self.generator
        image_index = torch.randint(0, self.train.count, (n,), generator=g, device=dev, dtype=torch.int32)
        pixel_index = torch.randint(0, self._pixels, (n,), generator=g, device=dev, dtype=torch.int32)
        if self.cfg.background == "random":
            # A random background per ray stops the field from painting the background into
            # the volume: only true opacity explains every background at once.
            background = torch.rand(n, 3, generator=g, device=dev)
        else:
            background = self.background
        origins, dirs = cameras.batch_rays(self.train.poses, self.train.intrinsics, image_index, pixel_index, self.train.width)
        target, alpha = cameras.gather_pixels(self.train.rgba, image_index, pixel_index, background)
        return origins, dirs, background, target, alpha

    def loss_terms(self, out: RayOutput, target: torch.Tensor, alpha: torch.Tensor):
        if self.cfg.loss == "huber":
            color = F.huber_loss(out.rgb, target, delta=self.cfg.huber_delta)
        else:
            color = F.mse_loss(out.rgb, target)
        loss = color
        if self.cfg.silhouette_weight > 0:
            loss = loss + self.cfg.silhouette_weight * F.huber_loss(out.opacity, alpha, delta=self.cfg.huber_delta)
        return loss, F.mse_loss(out.rgb.detach(), target)

    def step(self) -> dict:
        t0 = time.perf_counter()
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        origins, dirs, background, target, alpha = self.sample_batch()
        out = self.renderer.render_rays(origins, dirs, background, self.cfg.samples_per_ray, self.generator, jitter=True)
        loss, mse = self.loss_terms(out, target, alpha)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        check = self.backend.arch == "cpu" or (self.step_count + 1) % self.cfg.log_every == 0
        if check:  # on CUDA, reading the loss is a device sync: only when logging
            self.last_loss = float(loss.detach())
            if not math.isfinite(self.last_loss):
                raise TrainingDiverged(
                    f"loss became {self.last_loss} at step {self.step_count + 1}; try a lower --lr. "
                    f"The last good checkpoint is untouched.")
        self.optimizer.step()
        self.step_count += 1
        self.maybe_update_grid()
        dt = time.perf_counter() - t0
        self.elapsed += dt
        self.rays_per_s = 0.9 * self.rays_per_s + 0.1 * (self.cfg.batch_rays / dt) if self.rays_per_s else self.cfg.batch_rays / dt
        self.last_samples_per_ray = out.samples.num_samples / max(1, out.samples.num_rays)
        return {"step": self.step_count, "loss": self.last_loss, "samples_per_ray": self.last_samples_per_ray, "train_psnr": mse_to_psnr(float(mse)) if check else None,
                "lr": lr, "rays_per_s": self.rays_per_s}

    def maybe_update_grid(self) -> None:
        grid, cfg = self.renderer.grid, self.cfg
        if grid is None or self.step_count < cfg.grid_warmup:
            return
        if (self.step_count - cfg.grid_warmup) % cfg.grid_update_every == 0:
            grid.update(self.renderer.density, self.generator)

    # --- evaluation and outputs --------------------------------------------------------
    def render_view(self, split, index: int, background=None) -> dict:
        bg = self.background if background is None else background
        return self.renderer.render_image(split.poses, split.intrinsics, index, split.width, split.height, bg)

    def target_rgb(self, split, index: int, background=None) -> torch.Tensor:
        bg = (self.background if background is None else background).cpu()
        return over_background(split.rgba[index].cpu(), bg)

    def validate(self, views: int | None = None) -> float:
        self.field.eval()
        count = self.val.count if views is None else min(views, self.val.count)
        bg = background_colour(self.cfg.background)
        scores = [psnr(self.render_view(self.val, i, bg)["rgb"].cpu(), self.target_rgb(self.val, i, bg)) for i in range(count)]
        self.field.train()
        self.last_val_psnr = float(np.mean(scores))
        return self.last_val_psnr

    def write_preview(self, index: int = 0) -> Path:
        """prediction | ground truth | depth, for validation view ``index``."""
        from .data.images import write_png

        self.field.eval()
        out = self.render_view(self.val, index)
        self.field.train()
        pred = out["rgb"].cpu().numpy()
        gt = self.target_rgb(self.val, index).numpy()
        depth = colorize(out["depth"].cpu().numpy(), mask=out["opacity"].cpu().numpy() > 0.05,
                         lo=self.scene.near, hi=self.scene.far).astype(np.float32) / 255.0
        path = self.out_dir / "previews" / f"step_{self.step_count:06d}.png"
        write_png(path, np.concatenate([pred, gt, depth], axis=1))
        return path

    def log(self, record: dict) -> None:
        record = {k: v for k, v in record.items() if v is not None}
        record["time_s"] = round(self.elapsed, 3)
        self.history.append(record)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    # --- checkpoints -------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "format": "taichi-nerf", "version": checkpoint.FORMAT_VERSION,
            "config": self.cfg.to_dict(), "scene": checkpoint.scene_dict(self.scene),
            "model": self.field.state_dict(), "optimizer": self.optimizer.state_dict(),
            "grid": None if self.renderer.grid is None else self.renderer.grid.state_dict(),
            "step": self.step_count, "elapsed": self.elapsed, "val_psnr": self.last_val_psnr,
            "rng": {"generator": self.generator.get_state(), "torch": torch.get_rng_state()},
        }

    def save_checkpoint(self) -> Path:
        if not all(torch.isfinite(p).all() for p in self.field.parameters()):
            raise TrainingDiverged("model weights are not finite; refusing to overwrite the last good checkpoint")
        return checkpoint.save_atomic(self.state(), self.out_dir / "checkpoint.pt")

    def _restore(self, path: Path) -> None:
        state = checkpoint.read_state(path)
        saved = checkpoint.config_of(state, path)
        for key in checkpoint.ARCHITECTURE_KEYS:
            if getattr(saved, key) != getattr(self.cfg, key):
                raise ValueError(f"{path}: checkpoint has {key}={getattr(saved, key)}, config asks for {getattr(self.cfg, key)}")
        try:
            self.field.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise checkpoint.CheckpointError(f"{path}: does not match this model ({exc})") from None
        if self.renderer.grid is not None and state.get("grid") is not None:
            self.renderer.grid.load_state_dict(state["grid"])
        self.step_count = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.last_val_psnr = state.get("val_psnr")
        try:
            self.generator.set_state(state["rng"]["generator"])
        except RuntimeError:  # saved on another device type: same schedule, new random stream
            print(f"warning: {path}: random state is from another device; continuing with a fresh seed")
            self.generator.manual_seed(self.cfg.seed + self.step_count)
        torch.set_rng_state(state["rng"]["torch"])
        self._truncate_metrics(self.step_count)

    def _truncate_metrics(self, step: int) -> None:
        """Drop rows logged after the checkpoint (a hard kill leaves them): resuming re-logs them."""
        path = self.out_dir / "metrics.jsonl"
        if path.is_file():
            keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
            path.write_text("".join(line + "\n" for line in keep))

    # --- the whole schedule ------------------------------------------------------------
    def run(self) -> TrainResult:
        from tqdm.auto import tqdm

        cfg = self.cfg
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        start_wall = time.perf_counter()
        stop = _StopRequest()
        bar = tqdm(total=cfg.steps, initial=self.step_count, disable=not cfg.progress, unit="step", dynamic_ncols=True)
        with stop:
            try:
                if self.step_count == 0 and cfg.eval_every > 0:
                    self.log({"step": 0, "val_psnr": self.validate(cfg.eval_views)})
                # Signals only raise a flag; the loop stops between steps, so a checkpoint
                # never holds a half-applied optimiser step or grid update.
                while self.step_count < cfg.steps and not stop.requested:
                    info = self.step()
                    s = self.step_count
                    if s % cfg.log_every == 0 or s == cfg.steps:
                        self.log({"step": s, "loss": info["loss"], "train_psnr": info["train_psnr"],
                                  "lr": info["lr"], "rays_per_s": round(info["rays_per_s"], 1),
                                  "samples_per_ray": round(info["samples_per_ray"], 2)})
                        bar.set_postfix(loss=f"{info['loss']:.4f}", psnr=f"{info['train_psnr'] or 0:.2f}",
                                        val=f"{self.last_val_psnr or 0:.2f}", rays_s=f"{info['rays_per_s']:.0f}",
                                        spr=f"{info['samples_per_ray']:.1f}")
                    if cfg.eval_every > 0 and s % cfg.eval_every == 0 and s < cfg.steps:
                        self.log({"step": s, "val_psnr": self.validate(cfg.eval_views)})
                    if cfg.preview_every > 0 and s % cfg.preview_every == 0:
                        self.write_preview()
                    if cfg.checkpoint_every > 0 and s % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    bar.update(1)
                    if cfg.time_limit_s and time.perf_counter() - start_wall > cfg.time_limit_s:
                        break
            except KeyboardInterrupt:  # a second Ctrl-C, or one during a validation render
                stop.requested = True
            finally:
                bar.close()
            # Save before the (slow) final validation, so nothing after this can lose work.
            path = self.save_checkpoint()
            if not stop.requested:
                try:
                    self.log({"step": self.step_count, "val_psnr": self.validate(None if self.val.count <= 16 else 16),
                              "final": True})
                    self.write_preview()
                    path = self.save_checkpoint()  # now with the final validation PSNR
                except KeyboardInterrupt:
                    stop.requested = True
        write_curves(self.out_dir)
        return TrainResult(self.out_dir, path, self.step_count, self.last_val_psnr, stop.requested,
                           time.perf_counter() - start_wall)


class _StopRequest:
    """SIGINT/SIGTERM handlers that ask the training loop to stop at the next step boundary;
    a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is None:
                continue
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def write_curves(out_dir: Path) -> Path | None:
    """Loss and PSNR curves from metrics.jsonl as a small PNG (no plotting library needed)."""
    from PIL import Image, ImageDraw

    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    series = {
        "train PSNR": [(r["step"], r["train_psnr"]) for r in rows if "train_psnr" in r],
        "val PSNR": [(r["step"], r["val_psnr"]) for r in rows if "val_psnr" in r],
    }
    w, h, pad = 640, 320, 40
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    points = [p for s in series.values() for p in s]
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys)) + 1

    def to_px(x, y):
        return pad + (x - x0) / (x1 - x0) * (w - 2 * pad), h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)

    draw.rectangle([pad, pad, w - pad, h - pad], outline="black")
    for db in range(int(y0), int(y1) + 1, max(1, (int(y1) - int(y0)) // 6)):
        _, py = to_px(x0, db)
        draw.line([pad, py, w - pad, py], fill=(225, 225, 225))
        draw.text((4, py - 6), f"{db} dB", fill="black")
    draw.text((w - pad - 60, h - pad + 8), f"step {x1}", fill="black")
    for (name, pts), colour in zip(series.items(), [(70, 110, 220), (220, 60, 60)]):
        if len(pts) >= 2:
            draw.line([to_px(x, y) for x, y in pts], fill=colour, width=2)
        draw.text((pad + 8, pad + 6 + 14 * list(series).index(name)), name, fill=colour)
    out = Path(out_dir) / "curves.png"
    img.save(out)
    return out
