"""One process of tests/test_distributed.py (not a test itself).

``python -m tests.distributed_worker rank CONFIG.json DUMP.pt``: one rank of a torchrun-style
run (RANK/WORLD_SIZE/MASTER_* in the environment) through ``Trainer.run``.
``python -m tests.distributed_worker reference CONFIG.json DUMP.pt WORLD``: one process
trained on the rays of all WORLD ranks at once: each step, rank r's batch drawn (and its
samples jittered) from a generator seeded ``seed + r``, one optimiser step on the mean loss of
all of them, the grid updated with rank 0's generator. Both dump the weights, the grid and
the step to DUMP.pt.
``python -m tests.distributed_worker api CONFIG.json RESULT.json``: a user's torchrun script:
``taichi_nerf.train`` then ``taichi_nerf.evaluate`` on every rank; what each rank saw goes to
RESULT.json (and "after train" to its standard output).
``python -m tests.distributed_worker sweep CONFIG.json RESULT.json``: a script's loop of runs (:func:`sweep`).
"""
import json
import sys
from pathlib import Path

import torch


def weights(trainer) -> dict:
    """The field's weights and, in a run that refines its poses, the cameras' corrections."""
    modules = {"field": trainer.field, "poses": trainer.pose_refinement}
    return {f"{prefix}.{k}": v.detach().cpu().clone() for prefix, module in modules.items() if module is not None
            for k, v in module.state_dict().items()}


def dump(trainer, path, **extra) -> None:
    grid = trainer.renderer.grid
    torch.save({"params": weights(trainer), **extra,
                "density": grid.density.cpu().clone(), "occupied": grid.occupied.cpu().clone(),
                "updates": grid.updates, "step": trainer.step_count}, path)


def reference(trainer, world: int) -> None:
    cfg, device = trainer.cfg, trainer.backend.device
    generators = [torch.Generator(device=device).manual_seed(cfg.seed + r) for r in range(world)]
    while trainer.step_count < cfg.steps:
        for group in trainer.optimizer.param_groups:  # (the pose corrections' group at its own share)
            group["lr"] = trainer.lr_at(trainer.step_count) * group.get("lr_factor", 1.0)
        trainer.optimizer.zero_grad(set_to_none=True)
        for generator in generators:  # world x batch_rays rays; each part's loss is a mean over its rays
            trainer.generator = generator
            trainer.accumulate_gradients(*trainer.sample_batch())
        for param in (p for module in trainer.trained_modules() for p in module.parameters()):
            param.grad /= world  # the mean over all the rays
        trainer.optimizer.step()
        trainer.step_count += 1
        trainer.generator = generators[0]
        trainer.maybe_update_grid()


def gloo_threads() -> int:
    """This process's threads of gloo (its groups' workers, "pt_gloo_runloop", and their transport loop)."""
    names = []
    for comm in Path("/proc/self/task").glob("*/comm"):
        try:
            names.append(comm.read_text())
        except OSError:  # a thread that ended meanwhile
            pass
    return sum("gloo" in name for name in names)


def left_at_exit(dump_path: str) -> None:
    """What is left once every other exit handler ran (this one is registered first, so it runs last):
    whether the process groups are still open, and gloo's threads (one of them finishing a
    collective in a finalising interpreter aborts the process), to DUMP.exit."""
    import torch.distributed as dist

    left = {"groups": dist.is_initialized(), "gloo_threads": gloo_threads()}
    Path(dump_path).with_suffix(".exit").write_text(json.dumps(left))


def sweep(config_path: str, result_path: str) -> None:
    """Three ``taichi_nerf.train`` calls of one torchrun script: a folder, that folder replaced (overwrite=True,
    twice the rate), another folder. Rank 1 makes its checks of a folder 0.3 s late and rank 0 releases a run's
    lock 1 s late: a run that did not wait for every rank found rank 0's own lock ("a run is already training
    there"). What each call left on this rank goes to RESULT.json."""
    import os
    import time

    import taichi_nerf
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.runs import run_folder
    from taichi_nerf.runs.distributed import current

    cfg = TrainConfig.from_dict(json.loads(Path(config_path).read_text()))
    if os.environ["RANK"] == "1":
        check = run_folder.refuse_if_locked
        run_folder.refuse_if_locked = lambda out: (time.sleep(0.3), check(out))[1]
    else:
        release = run_folder.RunLock.release
        run_folder.RunLock.release = lambda lock: (time.sleep(1.0), release(lock))[1]
    seen, base = [], Path(cfg.out)
    for folder, lr, overwrite in (("a", cfg.lr, False), ("a", 2 * cfg.lr, True), ("b", cfg.lr, False)):
        result = taichi_nerf.train(cfg.replace(out=str(base / folder), lr=lr), overwrite=overwrite)
        ranks = current()
        seen.append({"step": result.step, "out": Path(result.out_dir).name,
                     "forgotten": ranks.rescue is None and ranks.run_folder is None})
    Path(result_path).write_text(json.dumps(seen))


def main(mode: str, config_path: str, dump_path: str, world: str = "1") -> None:
    import atexit

    from taichi_nerf.config import TrainConfig
    from taichi_nerf.training.trainer import Trainer

    torch.set_num_threads(1)  # every process alike, so the float32 sums round alike
    atexit.register(left_at_exit, dump_path)
    if mode == "sweep":
        sweep(config_path, dump_path)
        return
    if mode == "api":
        import taichi_nerf

        result = taichi_nerf.train(TrainConfig.from_dict(json.loads(Path(config_path).read_text())))
        seen = {"checkpoint_there": Path(result.checkpoint).is_file(), "step": result.step,
                "val_psnr": result.val_psnr, "interrupted": result.interrupted}
        print("after train", flush=True)
        try:
            seen["evaluated"] = taichi_nerf.evaluate(result.checkpoint, limit=1, progress=False)["psnr"]
        except ValueError as exc:
            seen["refused"] = str(exc)
        Path(dump_path).write_text(json.dumps(seen))
        return
    trainer = Trainer(TrainConfig.from_dict(json.loads(Path(config_path).read_text())))
    if mode == "rank":
        trainer.run()
        dump(trainer, dump_path)
    else:
        initial = weights(trainer)
        reference(trainer, int(world))
        dump(trainer, dump_path, initial=initial)


if __name__ == "__main__":
    main(*sys.argv[1:])
