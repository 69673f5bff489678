"""Data-parallel training on torch.distributed: ``torchrun --nproc-per-node N -m taichi_nerf train``
(or ``taichi-nerf train --devices N``, which starts the same local processes through torchrun).

Each process (rank) reads RANK, LOCAL_RANK and WORLD_SIZE from torchrun's environment. Ranks
start from rank 0's weights, grid and optimiser state, sample their own rays (generator seed
``seed + rank``), and average their gradients by one all-reduce of every ``.grad`` before each
optimiser step; the compositing kernels' autograd.Function ends in the MLP's ``.grad``, so it is
covered. Rank 0 alone updates the occupancy grid (then broadcasts it), and alone writes metrics,
previews, checkpoints and videos and validates. The other ranks catch up with it at the
per-step stop vote, so Ctrl-C, SIGTERM or the time limit stop every rank after the same step.

GPUs: Taichi's CUDA backend always opens device 0 (taichi/rhi/cuda/cuda_context.cpp; ti.init has no
device option), while torch would take ``cuda:LOCAL_RANK``. So each rank narrows CUDA_VISIBLE_DEVICES
to its LOCAL_RANK's GPU before anything starts CUDA: torch's ``cuda`` and Taichi name the same GPU.

Two process groups: a gloo "control" group (the start, the stop vote, agreements) whose timeout
must cover rank 0's validations and checkpoints, and a "data" group (NCCL on CUDA, gloo on the
CPU) for gradients and the grid, with a shorter timeout: the most a step may take.
"""
from __future__ import annotations

import atexit
import dataclasses
import datetime
import functools
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import torch

from .. import resources
from .rank_env import environment, pin_local_device, timeout_seconds

STEP_TIMEOUT_ENV = "TAICHI_NERF_COLLECTIVE_TIMEOUT_S"  # a step's collectives: gradients, grid
WAIT_TIMEOUT_ENV = "TAICHI_NERF_RANK0_WAIT_S"  # ranks waiting for rank 0's validation/checkpoint
STEP_TIMEOUT_S, WAIT_TIMEOUT_S = 300, 1800
WAITING_SAID_AFTER_S = 20.0  # the ranks' start, once it takes this long: what they wait for is said


class PeerLost(RuntimeError):
    """Another rank died or stopped answering: this rank leaves (non-zero) instead of waiting.
    ``reported``: already said on stderr (where it was found), so the CLI does not repeat it."""

    reported = False


def _reason(exc: BaseException) -> str:
    """A collective's error in a few words, without gloo's source location and advice."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return text.split(". ")[0][:200]


def _join_failure(rank: int, size: int, exc: BaseException) -> str:
    """Why the process group did not start, in one line; a taken port said as such (gloo's own
    words name neither the port's owner nor the way out)."""
    if "EADDRINUSE" in str(exc):
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        return (f"rank {rank} of {size} could not open the ranks' meeting point {where}: the port is in use "
                f"(another run on it?); give torchrun another --master-port, or --standalone")
    return f"rank {rank} of {size} could not reach the others ({_reason(exc)})"


@dataclasses.dataclass
class Ranks:
    """This process's place in the run. The one-process instance (``size`` 1) answers every
    call with what one process would do, touching nothing: the single-process path is unchanged."""
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = "none"  # "gloo" or "nccl" once joined
    control: object = None  # gloo group: the start, stop votes, agreements
    data: object = None  # gradients and the grid
    run_folder: object = None  # for the resume hint when a peer is lost
    rescue: object = None  # rank 0: rescue_step, the run's last whole step saved when a peer is lost (share_start)
    own_stdout: object = None  # a rank other than 0: its standard output while a run silences it

    @property
    def writes(self) -> bool:
        """Rank 0 writes the run folder, validates and keeps the progress bar."""
        return self.rank == 0

    # --- collectives, each turning a dead or silent peer into PeerLost ------------------
    def _call(self, collective, *args, **kwargs):
        try:
            return collective(*args, **kwargs)
        except RuntimeError as exc:  # gloo/NCCL errors: connection reset, timeout, aborted communicator
            rescued = self._rescue()
            saved = self.run_folder is not None and (Path(self.run_folder) / "checkpoint.pt").is_file()
            resume = f"taichi-nerf train --resume {shlex.quote(str(self.run_folder))}"
            hint = f"; rank 0 saved step {rescued}: continue with: {resume}" if rescued is not None \
                else f"; continue from the last checkpoint with: {resume}" if saved \
                else "; no checkpoint was saved yet" if self.run_folder is not None else ""
            lost = PeerLost(f"rank {self.rank} of {self.size} lost the other ranks ({_reason(exc)}): "
                            f"one died or stopped answering{hint}")
            # Said here, while the run's signal handlers still stand: torchrun SIGTERMs the
            # surviving ranks as soon as one dies, and once the run has unwound that signal
            # ends this rank before main() can say why (a test saw it, 1 run in many).
            from tqdm.auto import tqdm  # (tqdm.write: on a line of its own, not after rank 0's progress bar)

            tqdm.write(f"taichi-nerf: training stopped: {lost}", file=sys.stderr)
            sys.stderr.flush()
            lost.reported = True
            raise lost from None

    def _rescue(self) -> int | None:
        """Rank 0 saves the run as of its last whole step and returns that step (None if it did
        not). Whole, because a step's collectives sit where its state is one step's: the gradient
        average before the optimiser step, the grid's broadcast after the step's grid update, the
        votes between steps. Without it a lost peer cost the steps since the last checkpoint."""
        rescue, self.rescue = self.rescue, None  # once: a failure inside the save is not saved again
        if rescue is None:
            return None
        try:
            return rescue()
        except Exception:  # weights not finite, a full disk: the last checkpoint stands
            return None

    def agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any (a vote on the control group)."""
        if self.size == 1:
            return bool(flag)
        import torch.distributed as dist

        vote = torch.tensor([1 if flag else 0], dtype=torch.int32)
        self._call(dist.all_reduce, vote, op=dist.ReduceOp.MAX, group=self.control)
        return bool(vote.item())

    def agree_max(self, value: float) -> float:
        """The largest ``value`` over the ranks, on every rank (rank clocks differ; the schedule must not)."""
        if self.size == 1:
            return float(value)
        import torch.distributed as dist

        vote = torch.tensor([value], dtype=torch.float64)
        self._call(dist.all_reduce, vote, op=dist.ReduceOp.MAX, group=self.control)
        return float(vote.item())

    def agree_to_stop(self, stop) -> bool:
        """Whether to stop now: ``stop.requested`` (Ctrl-C, SIGTERM) on any rank, then set on every
        rank, so all leave after the same step and rank 0's checkpoint is everyone's. The vote's
        outcome decides, not the flag afterwards: a signal handled during the vote (after this
        rank's ballot went) waits for the next one, or this rank would leave alone."""
        if self.size == 1:
            return stop.requested
        if self.agree(stop.requested):
            stop.stop_with_peers()
            return True
        return False

    def wait_for_all(self) -> None:
        """Return once every rank got here (a no-op in one process)."""
        if self.size > 1:
            import torch.distributed as dist

            self._call(dist.barrier, group=self.control)

    def on_writer(self, fn, *args, **kwargs):
        """``fn`` on rank 0 alone (claiming the run folder) once every rank has made its own checks of the
        folder (else one still checking saw rank 0's claim: "a run is already training there"); its refusal
        stops every rank: rank 0 raises it, the others leave quietly with status 2."""
        if self.size == 1:
            return fn(*args, **kwargs)
        import torch.distributed as dist

        self.wait_for_all()
        outcome, result = [None], None
        if self.writes:
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:  # re-raised below, after the others know
                outcome[0] = str(exc)
                error = exc
        self._call(dist.broadcast_object_list, outcome, src=0, group=self.control)
        if outcome[0] is not None:
            if self.writes:
                raise error
            raise SystemExit(2)
        return result

    def average_gradients(self, parameters, *scalars: torch.Tensor) -> tuple:
        """Every parameter's ``.grad`` becomes the mean over ranks (one all-reduce of one flat
        buffer), and so do ``scalars`` (the loss and MSE, for logging); returns the scalars."""
        if self.size == 1:
            return scalars
        import torch.distributed as dist

        params = list(parameters)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [s.detach().reshape(1).to(grads[0].dtype) for s in scalars])
        self._call(dist.all_reduce, flat, op=dist.ReduceOp.SUM, group=self.data)
        flat /= self.size
        offset = 0
        for p, g in zip(params, grads):
            averaged = flat[offset:offset + g.numel()].view_as(g)
            offset += g.numel()
            if p.grad is None:
                p.grad = averaged.clone()
            else:
                p.grad.copy_(averaged)
        return tuple(flat[offset:offset + len(scalars)].unbind())

    def share_grid(self, grid) -> None:
        """After rank 0's grid update: every rank takes its densities and occupancy bits."""
        if self.size == 1:
            return
        import torch.distributed as dist

        for buffer in (grid.density, grid.occupied):
            self._call(dist.broadcast, buffer, src=0, group=self.data)
        if not self.writes:
            grid.updates += 1  # rendering marches the grid once it has been updated

    def share_start(self, trainer) -> None:
        """At the end of the Trainer's construction (after a resume): every rank at rank 0's
        step, weights, grid and optimiser state; followers sample with ``seed + rank`` and stay
        quiet (no progress bar)."""
        if self.size == 1:
            return
        import torch.distributed as dist

        self.run_folder = trainer.out_dir
        grid = trainer.renderer.grid
        seen = [None] * self.size
        data = (trainer.train.count, trainer.train.width, trainer.train.height)
        mine = (trainer.step_count, None if grid is None else grid.updates, data)
        self._call(dist.all_gather_object, seen, mine, group=self.control)
        if any(other[2] != seen[0][2] for other in seen):  # else gloo aborts (mismatched tensors) or trains on a mix
            raise ValueError(f"the ranks loaded different training data (images, width, height per rank: "
                             f"{[other[2] for other in seen]}); every machine must see the same dataset at one path")
        seen = [other[:2] for other in seen]
        if any(other != seen[0] for other in seen):
            raise ValueError(f"the ranks resumed from different checkpoints (step, grid updates per rank: {seen}); "
                             f"every machine must see the same run folder")
        modules = trainer.trained_modules()
        tensors = [value for m in modules for value in m.state_dict().values() if torch.is_tensor(value)]
        if grid is not None:
            tensors += [grid.density, grid.occupied]
        for param in (p for m in modules for p in m.parameters()):
            state = trainer.optimizer.state.get(param, {})
            tensors += [state[key] for key in sorted(state) if torch.is_tensor(state[key])]
        for tensor in tensors:  # (NCCL takes CUDA tensors only: a CPU one, such as an optimiser's step, goes by gloo)
            self._call(dist.broadcast, tensor, src=0, group=self.control if tensor.device.type == "cpu" else self.data)
        if not self.writes:
            trainer.generator.manual_seed(stream_seed(trainer.cfg.seed, self.rank, trainer.step_count))
            trainer.cfg = dataclasses.replace(trainer.cfg, progress=False)
            return
        self.rescue = functools.partial(rescue_step, trainer)

    def share_result(self, result):
        """Rank 0's result of a run, on every rank, once rank 0 has finished it (its last save and
        validation): a script's next line on any rank finds the checkpoint written."""
        if self.size == 1:
            return result
        import torch.distributed as dist

        shared = [result]
        self._call(dist.broadcast_object_list, shared, src=0, group=self.control)
        return shared[0]

    def run_ended(self) -> None:
        """A run of a script is over: a rank other than 0 gets its standard output back (silenced while a run
        reports on rank 0's), and a peer lost later (in the script's next run) saves nothing of this one (rank 0
        saved this run's trainer again, into a folder the next run had just replaced)."""
        self.rescue = self.run_folder = None
        if self.own_stdout is not None and sys.stdout is not self.own_stdout:
            sys.stdout.close()
            sys.stdout = self.own_stdout

    def close(self) -> None:
        """Ends the process groups and joins gloo's threads while the interpreter stands: one that finishes a
        collective of tensors Python made takes the GIL, which aborts a finalising process (CONTRIBUTING.md).
        destroy_process_group leaves them running while a group object lives: dropping ours joins them."""
        global _current
        if self.size > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()
            self.control = self.data = None
        _current = SINGLE


def rescue_step(trainer) -> int | None:
    """Rank 0's save when a peer was lost (Ranks.rescue): the step, whole, with its metrics row where one was due
    (lost in the occupancy grid's broadcast, after step() kept its numbers: ``unlogged``); None before step 1."""
    if trainer.step_count == 0:
        return None
    if trainer.unlogged is not None and trainer.row_due():
        trainer.log_training_row()
    trainer.save_checkpoint()
    return trainer.step_count


def stream_seed(seed: int, rank: int, step: int) -> int:
    """The ray-sampling seed of ``rank``: ``seed + rank`` from the start. A resumed run restores
    rank 0's saved stream; the others (there may be more or fewer than before) start a fresh
    stream of their rank and the step, so no two ranks ever draw the same rays."""
    if step == 0:
        return (seed + rank) % 2**64
    return (seed + rank + step * 0x9E3779B97F4A7C15) % 2**64


SINGLE = Ranks()
_current = SINGLE


def current() -> Ranks:
    return _current


def join(arch: str = "auto") -> Ranks:
    """This process's Ranks: the one-process instance without torchrun's variables, else the
    process groups, started once (later calls return them). Every rank must resolve ``arch`` the
    same way (all CUDA or all CPU): NCCL needs a GPU on each."""
    global _current
    rank, local_rank, size, local_size = environment()
    if size == 1 or _current.size > 1:
        return _current
    import torch.distributed as dist
    import torch.distributed.nn.functional  # noqa: F401 (its defaults keep group.WORLD: None if imported before it)

    from ..backend import resolve_arch

    pin_local_device()
    stop_with_launcher()
    cores = resources.usable_cores()
    if "TI_CPU_MAX_NUM_THREADS" not in os.environ:  # Taichi's CPU threads: this process's share of the cores
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, cores // local_size))
        os.environ["TI_CPU_MAX_NUM_THREADS"] = threads
    resolved = resolve_arch(arch)
    if resolved != "cuda" and local_rank == 0 and local_size > cores:  # (train --devices refuses it)
        print(f"warning: {local_size} ranks on this machine's {cores} CPU cores: each is a whole training process, "
              f"more than the cores only thrash; start at most {cores} (torchrun --nproc-per-node)", file=sys.stderr)
    wait = datetime.timedelta(seconds=timeout_seconds(WAIT_TIMEOUT_ENV, WAIT_TIMEOUT_S))
    step = datetime.timedelta(seconds=timeout_seconds(STEP_TIMEOUT_ENV, STEP_TIMEOUT_S))
    ranks = Ranks(rank=rank, size=size, local_rank=local_rank, backend="nccl" if resolved == "cuda" else "gloo")
    # a rank that never starts kept the others silent for the whole wait (30 min): say what they wait for
    said = threading.Timer(WAITING_SAID_AFTER_S, lambda: print(
        f"taichi-nerf: rank {rank} of {size} is waiting for the other ranks at {os.environ.get('MASTER_ADDR', '?')}:"
        f"{os.environ.get('MASTER_PORT', '?')} (for up to {wait.total_seconds():.0f} s: {WAIT_TIMEOUT_ENV})",
        file=sys.stderr, flush=True))
    said.daemon = True
    said.start()
    try:
        if rank != 0 and not rank0_answers(wait.total_seconds()):
            raise PeerLost(f"rank {rank} of {size} could not reach the others: nothing answered at "
                           f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} within "
                           f"{wait.total_seconds():.0f} s (is rank 0 started, at that address? {WAIT_TIMEOUT_ENV} "
                           f"waits longer)")
        dist.init_process_group("gloo", timeout=wait)
    except PeerLost:
        raise
    except (RuntimeError, ValueError) as exc:
        raise PeerLost(_join_failure(rank, size, exc)) from None
    finally:
        said.cancel()
    ranks.control = dist.group.WORLD
    archs = [None] * size
    ranks._call(dist.all_gather_object, archs, resolved, group=ranks.control)
    if len(set(archs)) > 1:
        chosen = ", ".join(f"rank {r}: {a}" for r, a in enumerate(archs))
        raise ValueError(f"the ranks chose different backends ({chosen}); give every rank a GPU, or --arch cpu")
    ranks.data = dist.new_group(backend=ranks.backend, timeout=step)
    if ranks.writes:
        sys.stdout.flush()
    else:
        ranks.own_stdout = sys.stdout  # back after the run (run_ended): a script's own prints
        sys.stdout = open(os.devnull, "w")  # rank 0 reports; the others' errors still reach stderr
    _current = ranks
    atexit.register(ranks.close)  # a script's groups outlive train(): closed before the interpreter ends
    return ranks


def rank0_answers(within_s: float) -> bool:
    """Whether rank 0's meeting point (MASTER_ADDR:MASTER_PORT, ranks started by hand) takes a connection within
    ``within_s``. Without it a rank whose rank 0 never came met torch's store client, which retries with a C++
    stack dump on each timeout and outlasts the wait (86 s for 30). Under torchrun's agent, which has met every
    machine before a rank starts, and without the variables, there is nothing to wait for."""
    host, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT", "")
    if not host or not port.isdigit() or os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true":
        return True
    end = time.monotonic() + within_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=max(0.1, min(5.0, end - time.monotonic()))):
                return True
        except OSError:  # refused (nothing listens yet), timed out, or a name that does not resolve yet
            if time.monotonic() >= end:
                return False
            time.sleep(0.25)


# --- taichi-nerf train --devices N ------------------------------------------------------
LAUNCHER_PID_ENV = "TAICHI_NERF_LAUNCHER_PID"  # set by launch_local for the ranks it starts


def stop_with_launcher() -> None:
    """A rank that ``train --devices`` started is sent SIGTERM (which stops and saves, as
    ``kill -TERM``) when the launcher dies, even by SIGKILL: torchrun's workers would otherwise
    train on by themselves, holding the run's lock. Linux only (prctl's parent-death signal)."""
    launcher = os.environ.get(LAUNCHER_PID_ENV, "")
    if not launcher.isdigit() or not sys.platform.startswith("linux") or os.getppid() != int(launcher):
        return  # not the launcher's own child (plain torchrun, or it is gone already)
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(launcher):  # it died just before the signal was set
        os.kill(os.getpid(), signal.SIGTERM)
