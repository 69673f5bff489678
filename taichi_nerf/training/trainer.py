"""The Trainer: Monte Carlo ray batches across all training images, Adam, and the
schedule around each step (metrics, validation, previews, atomic resumable checkpoints) with
hooks for whoever drives it (``Trainer.run``'s progress bar, the GUI's curves)."""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch

from .. import backend, resources
from ..config import TrainConfig, given_config
from ..files import append_line, json_safe, write_png, write_text_atomic
from ..outputs.metrics import mse_to_psnr
from ..profiling import stage
from ..rendering.backgrounds import over_background, resolve_background
from ..rendering.renderer import Renderer
from ..rendering.scene import Scene
from ..runs import checkpoint, distributed, scene_match
from ..runs.datasets import load_dataset
from ..runs.run_folder import remove_stale_temps, truncate_metrics
from ..stages import cameras
from . import lr_schedule, masking, whole_run
from .diagnostics import StuckWatch, kept_checkpoint
from .losses import training_loss
from .pose_refinement import refinement_for
from .ray_batches import RayBatches
from .result import TrainResult
from .validation import periodic_stride, preview_image, validation_scores

CHECK_SHARE = 0.05  # under --time-limit: validations and previews skip while past this share of the time


class TrainingDiverged(RuntimeError):
    pass


class Trainer:
    """Owns the field, optimiser and data for one run. :meth:`step` is one optimisation
    step; :meth:`advance` is a step plus its scheduled work (log, validate, preview,
    checkpoint), which :meth:`run` loops over and the GUI interleaves with drawing.
    ``callbacks`` (see training/callbacks.py) watch it; ``lr_scale`` scales the
    learning-rate schedule (the GUI's slider)."""

    def __init__(self, cfg: TrainConfig, dataset=None, resume: bool = False):
        # absolute paths (the saved config works anywhere); a resume keeps its defaults' choices
        cfg = given_config(cfg, "cfg")  # (a dict failed inside: no attribute 'validate')
        self.cfg = cfg = checkpoint.with_saved_choices(cfg.validate().with_absolute_paths(), resume)
        self.out_dir = Path(self.cfg.out)
        self.ranks = distributed.join(cfg.arch)  # distributed: torchrun's ranks, or one process (before CUDA starts)
        self.backend = backend.init(cfg.arch, cfg.max_samples_per_ray)
        dev = self.backend.device
        resources.check_training(self.cfg, str(dev))  # before minutes of loading, not after
        self.dataset = dataset if dataset is not None else load_dataset(self.cfg.data, **cfg.dataset_options())
        if self.cfg.batch_rays == 0:  # every pixel of batch_images images: the images' size decides
            train_split = self.dataset.split("train")
            resources.check_training(self.cfg, str(dev), train_split.width * train_split.height)
        self.train = self.dataset.split("train").to(dev)
        splits = self.dataset.splits
        self.val_name = "val" if "val" in splits else ("test" if "test" in splits else "train")
        self.val = self.dataset.split(self.val_name)
        self.scene = Scene.from_dataset(self.dataset)
        if resume:  # the field's coordinates are the checkpoint's (refused if the data moved the scene)
            resume_path = checkpoint.find_checkpoint(self.out_dir)
            resume_state = checkpoint.read_state(resume_path)
            self.scene = scene_match.resumed_scene(resume_state, resume_path, self.scene, cfg)
        self.cfg = cfg = cfg.with_kind_defaults_for(self.scene)  # written out: a resume keeps them
        # auto: from the images (transparency, a uniform surround, or scenery); saved in the
        # scene so renders of the checkpoint use the same colour.
        self.background_choice = resolve_background(cfg.background, self.dataset.background)
        self.scene.background = list(self.background_choice.colour)
        torch.manual_seed(cfg.seed)
        self.renderer = Renderer.from_config(cfg, self.scene, dev, train_images=self.train.count)
        backend.require_samples(self.renderer.max_samples_per_ray)  # unbounded scenes march further
        self.renderer.restrict_grid_to_seen(self.train)  # no cell that no training ray crosses
        self.field = self.renderer.field
        # Corrections of the training cameras' poses at their own rate, carried by the renderer to other cameras.
        self.pose_refinement = refinement_for(cfg, self.scene, self.train, self.renderer, dev)
        proposal = [] if self.renderer.proposal is None else list(self.renderer.proposal.parameters())
        self.optimizer = lr_schedule.make_optimizer(cfg, [*self.field.parameters(), *proposal],
                                                    None if self.pose_refinement is None
                                                    else self.pose_refinement.parameters())
        self.generator = torch.Generator(device=dev).manual_seed(cfg.seed)
        self.background = torch.tensor([self.background_choice.colour], dtype=torch.float32, device=dev)
        self.step_count = 0
        self.resumed_from = 0  # the checkpoint's step a resumed run started from
        self.last_val_psnr: float | None = None
        self.last_val_object_psnr: float | None = None  # whole-image validations of photos with transparency
        self.last_loss, self.rays_per_s = float("nan"), 0.0
        self.elapsed = 0.0  # training wall time, carried across resumes
        self.history, self.last_samples_per_ray = [], None  # the metrics rows; the last step's samples per ray
        self.unlogged: dict | None = None  # the last step's numbers (step()'s answer), until they are logged
        self.unread: tuple | None = None  # on CUDA, between log steps: the last step's (loss, mse) and answer, unread
        self.time_used = 0.0  # share of --time-limit spent, agreed by every rank (run() sets it)
        self.clock_s = 0.0  # wall time of the training loops, across resumes: what --time-limit counts
        self.clock_carried_s = 0.0  # the part of it before this process (from the checkpoint)
        self.run_started: float | None = None  # run()'s start on the wall clock
        self.clock = time.perf_counter  # what --time-limit and CHECK_SHARE measure (a test's own: exact)
        self.check_s = 0.0  # seconds of it spent in periodic validations and previews (CHECK_SHARE)
        self.progress_floor = 0.0  # schedule_progress saved by the checkpoint this run resumed
        self.lr_scale = 1.0  # multiplies the schedule; a live setting, not saved in checkpoints
        self.preview_step: int | None = None  # the step of this process's last preview
        self.end_video_frames: int | None = None  # train's video at the end, saved so a resume keeps it (cli/train)
        self.resumed_world_size: int | None = None  # the ranks the resumed checkpoint trained on
        self.stuck_watch = StuckWatch()  # warns (once) when a run learns nothing; callbacks: TrainingCallback-likes
        self.callbacks: list = [self.stuck_watch]
        # Masks (data/masks.py, training/masking.py): a share of the rays from the pixels they keep (all of them
        # in ignore mode), and the occupancy grid inside their visual hull (transparent mode).
        kept_pixels, kept_share, hull = masking.training_hooks(cfg, self.dataset, self.train, self.renderer.grid)
        if hull is not None:  # masks: no cell outside their visual hull is measured or marched
            self.renderer.grid.restrict_to(hull)
        self.ray_batches = RayBatches(cfg, self.train, kept_pixels, kept_share, dev)
        if resume:
            self._restore(resume_path, resume_state)
        if self.cfg.logger == "tensorboard" and self.ranks.writes:  # optional extra: events in OUT/tensorboard/
            from ..runs.tensorboard_log import logger_for

            self.callbacks.append(logger_for(self, resume))
        self.ranks.share_start(self)  # distributed: rank 0's weights, grid, optimiser; seed + rank

    def trained_modules(self) -> list[torch.nn.Module]:
        """What the optimiser trains: the field, and the proposal network and pose corrections where on."""
        proposal = self.renderer.proposal
        return [self.field] + [m for m in (proposal, self.pose_refinement) if m is not None]

    # --- one step ----------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        return lr_schedule.learning_rate(self.cfg, self.schedule_progress(step), step, self.time_used) * self.lr_scale

    def schedule_progress(self, step: int) -> float:  # a resume's: from its saved progress, over the time left
        used_before = self.clock_carried_s / self.cfg.time_limit_s if self.cfg.time_limit_s else 0.0
        return lr_schedule.progress(step, self.step_limit(), self.time_used, self.progress_floor, used_before)

    def step_limit(self) -> float:  # run()'s: under train's time limit; the window's (no run()): keeps none
        return self.cfg.step_limit(self.run_started is not None)

    def row_due(self, step: int | None = None) -> bool:  # step (None: the one just made) logs a metrics row
        step = self.step_count if step is None else step  # (every log_every steps, and the last planned one)
        return step % self.cfg.log_every == 0 or step == self.step_limit()

    def sample_batch(self):
        """One step's rays: (origins, dirs, background, target, alpha, image_index, pixel_index)."""
        image_index, pixel_index = self.ray_batches.draw(self.step_count, self.generator)
        n, dev, g = image_index.shape[0], self.backend.device, self.generator
        if self.background_choice.random:
            # A random background per ray stops the field from painting the background into
            # the volume: only true opacity explains every background at once.
            background = torch.rand(n, 3, generator=g, device=dev)
        else:
            background = self.background
        origins, dirs, target, alpha = cameras.training_rays(self.train.poses, self.train.intrinsics, self.train.rgba,
                                                             image_index, pixel_index, background)
        return origins, dirs, background, target, alpha, image_index, pixel_index

    def step(self) -> dict:
        t0 = time.perf_counter()
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_factor", 1.0)
        with stage("ray generation"):
            origins, dirs, background, target, alpha, image_index, pixel_index = self.sample_batch()
        self.optimizer.zero_grad(set_to_none=True)
        loss, mse, samples = self.accumulate_gradients(origins, dirs, background, target, alpha, image_index,
                                                       pixel_index)
        # distributed: the mean over ranks
        loss, mse = self.ranks.average_gradients([p for m in self.trained_modules() for p in m.parameters()], loss, mse)
        check = self.backend.arch == "cpu" or self.row_due(self.step_count + 1)
        if check:  # on CUDA, reading the loss is a device sync: only for a step that logs a row
            self.last_loss = float(loss)
            if not math.isfinite(self.last_loss):
                raise TrainingDiverged(f"loss became {self.last_loss} at step {self.step_count + 1}; try a lower "
                                       f"--lr. {kept_checkpoint(self.out_dir)}")
        with stage("optimiser"):
            self.optimizer.step()
        self.step_count += 1
        self.last_samples_per_ray = samples / max(1, origins.shape[0])
        info = {"step": self.step_count, "loss": self.last_loss, "samples_per_ray": self.last_samples_per_ray,
                "train_psnr": mse_to_psnr(float(mse)) if check else None, "lr": lr, "rays_per_s": self.rays_per_s}
        self.unlogged = None if info["train_psnr"] is None else info  # before the grid's broadcast: _rescue logs it
        # (a copy: the distributed loss is a view of every gradient; stacked on the device, read by read_last_step)
        self.unread = None if check else (torch.stack([loss.detach(), mse.detach()]), info)
        with stage("grid update"):
            self.maybe_update_grid()
        dt = time.perf_counter() - t0
        self.elapsed += dt
        rays = origins.shape[0] * self.ranks.size  # batch_rays (each rank's), or every pixel of batch_images images
        info["rays_per_s"] = self.rays_per_s = 0.9 * self.rays_per_s + 0.1 * rays / dt if self.rays_per_s else rays / dt
        return info

    def accumulate_gradients(self, origins, dirs, background, target, alpha, image_index=None, pixel_index=None,
                             chunk_rays: int | None = None, jitter: bool = True):
        """Render the batch, and add the gradient of its loss into the parameters' ``.grad``.
        A batch whose activations outgrow the caches (the tutorials' whole images: 1.6M
        samples a step in Keras's) goes in chunks of rays, each weighted by its share of the
        batch, so the gradient is the whole batch's. With ``pixel_index``, the rays' errors go back
        to the error map (training/ray_batches.py). Returns (loss, mse, samples), detached."""
        n = origins.shape[0]
        chunk_rays = chunk_rays or resources.train_chunk_rays(self.cfg, self.backend.device)
        per_ray_background = background.shape[0] == n  # else one colour for all (a single ray slices the same)
        loss_sum = mse_sum = torch.zeros((), device=origins.device)
        samples = 0
        for lo in range(0, n, chunk_rays):
            part = slice(lo, min(lo + chunk_rays, n))
            o, d = origins[part], dirs[part]
            if self.pose_refinement is not None and image_index is not None:
                o, d = self.pose_refinement(o, d, image_index[part])
            bg = background[part] if per_ray_background else background
            out = self.renderer.render_rays(o, d, bg, self.cfg.samples_per_ray, self.generator, jitter=jitter,
                                            image_index=None if image_index is None else image_index[part])
            share = (part.stop - part.start) / n  # the losses are means over rays
            with stage("loss"):
                loss, mse = training_loss(self.cfg, out, target[part], alpha[part])
                if pixel_index is not None:
                    self.ray_batches.record(image_index[part], pixel_index[part], out.rgb, target[part])
            with stage("backward"):
                (loss * share).backward()  # share 1 (one piece) is exact
            loss_sum = loss_sum + share * loss.detach()
            mse_sum = mse_sum + share * mse
            samples += out.samples.num_samples
        return loss_sum, mse_sum, samples

    def maybe_update_grid(self) -> None:
        grid, cfg = self.renderer.grid, self.cfg
        if grid is None or self.step_count < cfg.grid_warmup:
            return
        if (self.step_count - cfg.grid_warmup) % cfg.grid_update_every == 0:
            if self.ranks.writes:  # distributed: rank 0 updates, every rank takes its grid
                grid.update(self.renderer.density, self.generator)
            self.ranks.share_grid(grid)

    # --- the schedule around a step: the one `run` and the GUI both drive ---------------
    def begin(self) -> None:
        """Open the run folder: config.json describes the run that writes beside it. Partial
        checkpoint files a killed run left behind go first."""
        if not self.ranks.writes:  # distributed: rank 0 alone writes the run folder (and below)
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temps(self.out_dir):
            print(f"note: removed {stale}, a partial file a killed run left behind")
        write_text_atomic(self.out_dir / "config.json", json.dumps(self.cfg.to_dict(), indent=2))

    def advance(self) -> dict:
        """One step, then its scheduled work (:meth:`after_step`)."""
        info = self.step()
        self.after_step(info)
        return info

    def after_step(self, info: dict) -> None:
        """Log every ``log_every`` steps (and at ``steps``), validate every ``eval_every``,
        write a preview every ``preview_every``, checkpoint every ``checkpoint_every``; then
        the ``on_step`` hooks. (The grid update belongs to the step itself: a checkpoint
        holds it, so a resumed run repeats nothing.)"""
        cfg, s = self.cfg, self.step_count
        self.unlogged = None if info["train_psnr"] is None else info  # (CUDA reads the loss on log steps alone)
        if self.row_due():
            self.log_training_row()
        if cfg.eval_every > 0 and s % cfg.eval_every == 0 and s < self.step_limit() and self.check_allowed():
            self.periodic_validation()
        if cfg.preview_every > 0 and s % cfg.preview_every == 0 and self.check_allowed():
            with self.timed_check():
                self.write_preview()
        if cfg.checkpoint_every > 0 and s % cfg.checkpoint_every == 0:
            self.save_checkpoint()
        self.notify("on_step", info)

    def check_allowed(self) -> bool:
        """Whether a scheduled validation or preview runs: always, except under a time limit once it
        is spent (the final stage does both) or while they took over CHECK_SHARE of the run's time."""
        started = self.run_started
        if not self.cfg.time_limit_s or started is None:
            return True
        return not self.clock_limit(started) and self.check_s <= CHECK_SHARE * (self.clock() - started)

    @contextlib.contextmanager
    def timed_check(self):
        """Charge the block's time to check_s, the share check_allowed limits."""
        started = self.clock()
        try:
            yield
        finally:
            self.check_s += self.clock() - started

    def periodic_validation(self) -> None:
        """A strided validation of the first eval_views val views, logged as a curve point."""
        with self.timed_check():
            stride = periodic_stride(self.val.width, self.val.height)
            self.log({"step": self.step_count, "val_psnr": self.validate(self.cfg.eval_views, stride=stride)})

    def notify(self, hook: str, *args) -> None:
        """Call ``hook(self, *args)`` on every callback that has it."""
        for callback in list(self.callbacks):
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    # --- evaluation and outputs --------------------------------------------------------
    def render_view(self, split, index: int, background=None) -> dict:
        bg = self.background if background is None else background
        return self.renderer.render_image(split.poses, split.intrinsics, index, split.width, split.height, bg)

    def target_rgb(self, split, index: int, background=None) -> torch.Tensor:
        bg = (self.background if background is None else background).cpu()
        return over_background(split.rgba[index].cpu(), bg)

    def validate(self, views: int | None = None, stride: int = 1, progress: bool = False) -> float:
        """Mean PSNR of the first ``views`` val views (None: all); ``stride`` > 1 scores every
        stride-th row and column only (training's periodic checks: validation.periodic_stride);
        ``progress``: a bar over the views (the final validation, with ``cfg.progress``)."""
        if not self.ranks.writes:
            return self.last_val_psnr
        self.field.eval()
        count = self.val.count if views is None else min(views, self.val.count)
        self.last_val_psnr, self.last_val_object_psnr = validation_scores(
            self.renderer, self.val, self.background, count, stride, progress,
            on_view=lambda i, pred, truth: self.notify("on_val_view", i, pred, truth))
        self.field.train()
        self.notify("on_validate", self.last_val_psnr)
        return self.last_val_psnr

    def read_last_step(self) -> None:
        """Make ``unlogged`` the last step's numbers where step() left them unread (CUDA reads the loss on
        log steps alone): a run that a time limit or a stop ends between log lines logs its last step too."""
        if self.unlogged is None and self.unread is not None and self.unread[1]["step"] == self.step_count:
            numbers, info = self.unread
            loss, mse = numbers.tolist()
            info.update(loss=loss, train_psnr=mse_to_psnr(mse))
            self.last_loss, self.unlogged = loss, info
        self.unread = None

    def log_training_row(self) -> None:  # of the last step's numbers (``unlogged``: step()'s answer)
        info, self.unlogged = self.unlogged, None
        self.log({"step": self.step_count, "loss": info["loss"], "train_psnr": info["train_psnr"], "lr": info["lr"],
                  "rays_per_s": round(info["rays_per_s"], 1), "samples_per_ray": round(info["samples_per_ray"], 2),
                  "ranks": self.ranks.size if self.ranks.size > 1 else None,  # (None: not written)
                  **(self.pose_refinement.summary() if self.pose_refinement is not None else {})})

    def write_preview(self, index: int = 0) -> Path:
        """prediction | ground truth | depth (| opacity | alpha with a silhouette loss), for val view ``index``."""
        if not self.ranks.writes:
            return self.out_dir / "previews"
        self.field.eval()
        image = preview_image(self.renderer, self.val, index, self.background, self.scene,
                              silhouette=self.cfg.silhouette_weight > 0)
        self.field.train()
        path = self.out_dir / "previews" / f"step_{self.step_count:06d}.png"
        write_png(path, image)
        self.preview_step = self.step_count
        self.notify("on_preview", path)
        return path

    def log(self, record: dict) -> None:
        if not self.ranks.writes:
            return
        record = {k: v for k, v in record.items() if v is not None}
        record["time_s"] = round(self.elapsed, 3)
        self.history.append(record)
        append_line(self.out_dir / "metrics.jsonl", json.dumps(json_safe(record)))  # a perfect PSNR (inf) as null
        self.notify("on_log", record)

    # --- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        if not self.ranks.writes:
            return self.out_dir / "checkpoint.pt"
        if not all(torch.isfinite(p).all() for p in self.field.parameters()):
            raise TrainingDiverged(f"model weights are not finite at step {self.step_count}; try a lower --lr. "
                                   f"{kept_checkpoint(self.out_dir)}")
        path = checkpoint.save_atomic(checkpoint.trainer_state(self), self.out_dir / "checkpoint.pt")
        self.notify("on_checkpoint", path)
        return path

    def save_before_error(self, error: BaseException) -> None:
        """An error out of a step or a hook (a user's callback, a bug) ends the run: first the steps since the last
        checkpoint are saved, as of the last step, and said (they were lost). Not after a divergence (its weights are
        not worth keeping; it says what it kept) or a lost peer (the ranks' rescue saved it), nor before step 1."""
        if isinstance(error, (TrainingDiverged, distributed.PeerLost)) or self.step_count <= self.resumed_from:
            return
        try:
            path = self.save_checkpoint()
        except Exception:  # noqa: BLE001 (weights not finite, a full disk: the error below is the one to see)
            return
        if self.ranks.writes:
            from tqdm.auto import tqdm  # (tqdm.write: on a line of its own, not after the progress bar)

            tqdm.write(f"taichi-nerf: an error stopped the run at step {self.step_count}; the steps so far are saved "
                       f"in {path}", file=sys.stderr)

    def _restore(self, path: Path, state: dict) -> None:
        checkpoint.restore_trainer(self, path, state)  # (resumed_from too)
        if self.ranks.writes:  # distributed: rank 0 alone writes the run folder
            truncate_metrics(self.out_dir / "metrics.jsonl", self.step_count, redo_final=self.nothing_to_train(),
                             redo_start=self.step_count == 0 and self.cfg.eval_every > 0)  # score_start's again

    def nothing_to_train(self) -> bool:
        """A resumed run that already made its steps or used its time limit: it only validates again."""
        return self.cfg.nothing_left(self.step_count, self.clock_carried_s)

    # --- the whole run ------------------------------------------------------------------
    def run(self, drive=None) -> TrainResult:
        """:meth:`advance` until ``steps`` (or the time limit, or Ctrl-C/SIGTERM), then :meth:`finish`;
        ``drive(more)``, if given, makes the steps instead (the browser viewer's loop): whole_run.run."""
        return whole_run.run(self, drive)

    def start_clock(self) -> float:
        """Start this process's clock (the time limit, the checks' share: :meth:`check_allowed`)."""
        self.run_started, self.check_s = self.clock(), 0.0
        return self.run_started

    def score_start(self) -> None:
        """The curve's start: a new run is validated at step 0, as at its other points."""
        if self.step_count == 0 and self.cfg.eval_every > 0:
            self.periodic_validation()

    def clock_limit(self, started: float) -> bool:
        """The run's clock (the checkpoint's seconds + this process's since ``started``), and under a
        time limit, the run's total, ``time_used`` (every rank agrees on the largest); True once spent."""
        self.clock_s = self.clock_carried_s + (self.clock() - started)
        if not self.cfg.time_limit_s:
            return False
        self.time_used = min(self.ranks.agree_max(self.clock_s / self.cfg.time_limit_s), 1.0)
        return self.time_used >= 1.0

    def finish(self, started: float, training_s: float, stopped: bool) -> TrainResult:
        """The end of a run after its steps (save, validate, preview, save again, curves): whole_run.finish."""
        return whole_run.finish(self, started, training_s, stopped)
