"""Data-parallel training (taichi_nerf.runs.distributed) with real processes and gloo on the CPU."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import CHECKOUT as ROOT
from .conftest import checkout_env, rel_err, stop_if_running, tiny_config, wait_for

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def process_env(**extra) -> dict:
    """One thread per process, this checkout first on the path, no rank variables but ``extra``. A
    process that aborts prints every thread's Python stack (faulthandler), so its failure says where."""
    env = checkout_env(OMP_NUM_THREADS="1", TI_CPU_MAX_NUM_THREADS="1", PYTHONFAULTHANDLER="1", **extra)
    return {k: v for k, v in env.items() if k not in RANK_VARIABLES or k in extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A rank's state at its very end (tests/distributed_worker.py, left_at_exit): its process groups closed and
# gloo's threads joined. A gloo thread still dropping a finished broadcast of Python objects there takes
# the GIL of a finalising interpreter, which aborts the process after all its work ("terminate called
# without an active exception"): 1 run of this file's two-rank test in ~50 on 2 busy cores.
CLOSED = {"groups": False, "gloo_threads": 0}


def exit_state(path: Path) -> dict:
    return json.loads(path.read_text())


def write_config(cfg, path: Path) -> str:
    path.write_text(json.dumps(cfg.to_dict()))
    return str(path)


@pytest.mark.slow
def test_two_ranks_train_like_one_process_on_both_batches(tiny_scene, tmp_path):
    """2 ranks x 256 rays for 12 steps (3 grid updates, validations, previews and checkpoints on
    rank 0 in between) end where one process trained on the same 512 rays a step ends; the
    ranks' weights, pose corrections (refined, as unbounded scenes and cut-out objects are by
    default) and grids are identical, and rank 1 wrote nothing."""
    cfg = tiny_config(tiny_scene, tmp_path / "run", steps=12, eval_every=6, preview_every=6, checkpoint_every=6,
                      log_every=3, grid_warmup=4, grid_update_every=4, seed=7, refine_poses=True, pose_lr=1e-3)
    worker = [sys.executable, "-m", "tests.distributed_worker"]
    config = write_config(cfg.replace(out=str(tmp_path / "reference")), tmp_path / "reference.json")
    reference = subprocess.Popen([*worker, "reference", config, str(tmp_path / "reference.pt"), "2"], cwd=ROOT,
                                 env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors = run_ranks(cfg, tmp_path, worker)
    for rank, err in errors.items():  # (its dump written: it died at the exit, after all its work)
        assert err is None, f"rank {rank} (dump written: {(tmp_path / f'rank{rank}.pt').exists()}): {err[-3000:]}"
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-3000:]

    rank0, rank1, single = (torch.load(tmp_path / f"{name}.pt") for name in ("rank0", "rank1", "reference"))
    assert rank0["step"] == rank1["step"] == single["step"] == 12
    assert rank0["updates"] == rank1["updates"] == single["updates"] == 3
    for name, value in rank0["params"].items():
        assert torch.equal(value, rank1["params"][name]), name  # the same averaged step on every rank
        assert rel_err(value, single["params"][name]) < 1e-5, name
    assert torch.equal(rank0["density"], rank1["density"]) and torch.equal(rank0["occupied"], rank1["occupied"])
    assert rel_err(rank0["density"], single["density"]) < 1e-5
    assert (rank0["occupied"] != single["occupied"]).float().mean() < 0.001
    # Training moved the weights: the comparison is not between two untouched initialisations.
    assert max(rel_err(v, single["initial"][k]) for k, v in rank0["params"].items() if k.startswith("field.")) > 1e-3
    corrections = rank0["params"]["poses.corrections"]
    assert float(corrections.abs().max()) > 1e-4  # ...nor the cameras' (which start at zero)

    assert not (tmp_path / "rank1_out").exists()
    assert [exit_state(tmp_path / f"rank{rank}.exit") for rank in (0, 1)] == [CLOSED] * 2
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    training_rows = [r["step"] for r in rows if "loss" in r]
    assert training_rows == [3, 6, 9, 12]  # written once, by rank 0
    assert [r["step"] for r in rows if "val_psnr" in r] == [0, 6, 12]  # the last one the final validation
    assert sorted(p.name for p in (run / "previews").iterdir()) == ["step_000006.png", "step_000012.png"]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["world_size"] == 2


def two_ranks(argv_of, clean) -> list[tuple[int, str, str]]:
    """Ranks 0 and 1 (``argv_of(rank)``) on a free port, to the end: each one's (exit status,
    stdout, stderr). The port was free when chosen and closed again before rank 0 bound it: another
    process may have taken it in between. That is the test's race, not the package's (torchrun binds
    its own), so a taken port is tried again, up to 3 times, after ``clean()``."""
    for _ in range(3):
        results = _run_two(argv_of, str(free_port()))
        if not any("the port is in use" in err for _, _, err in results):
            break
        clean()
    return results


def script_on_two_ranks(mode: str, config: str, tmp_path: Path, runs: Path) -> list[tuple[int, str, str]]:
    """``tests.distributed_worker MODE CONFIG seen{rank}.json`` on ranks 0 and 1 (a user's torchrun script, its
    runs under ``runs``), both ending well; each one's (exit status, stdout, stderr)."""
    outputs = two_ranks(lambda rank: [sys.executable, "-m", "tests.distributed_worker", mode, config,
                                      str(tmp_path / f"seen{rank}.json")],
                        lambda: shutil.rmtree(runs, ignore_errors=True))
    for code, _, err in outputs:
        assert code == 0, err[-3000:]
    return outputs


def _run_two(argv_of, port: str) -> list[tuple[int, str, str]]:
    procs = [subprocess.Popen(argv_of(rank), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=process_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                                              LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
             for rank in (0, 1)]
    results = {}
    try:
        for rank, proc in enumerate(procs):
            out, err = proc.communicate(timeout=300)
            results[rank] = (proc.returncode, out, err)
            if proc.returncode != 0:
                break  # the other rank would wait for this one: stop it below and say why this one failed
    finally:
        for rank, proc in enumerate(procs):
            if proc.poll() is None:
                proc.kill()
            if rank not in results:  # killed, or ended on its own after the other failed
                out, err = proc.communicate()
                results[rank] = (proc.returncode, out, err)
    return [results[rank] for rank in (0, 1)]


def run_ranks(cfg, tmp_path: Path, worker: list[str]) -> dict[int, str | None]:
    """Rank 0 and rank 1 of ``cfg`` through ``Trainer.run``, to the end: each rank's stderr if it
    failed, else None. Rank 1 gets its own folder: it must stay unwritten."""
    def argv_of(rank: int) -> list[str]:
        config = write_config(cfg.replace(out=str(tmp_path / ("run" if rank == 0 else "rank1_out"))),
                              tmp_path / f"rank{rank}.json")
        return [*worker, "rank", config, str(tmp_path / f"rank{rank}.pt")]

    results = two_ranks(argv_of, lambda: shutil.rmtree(tmp_path / "run", ignore_errors=True))
    return {rank: None if code == 0 else err for rank, (code, _, err) in enumerate(results)}


@pytest.mark.slow
def test_a_torchrun_script_of_the_api_finds_rank_0s_checkpoint_on_every_rank(tiny_scene, tmp_path):
    """taichi_nerf.train returns on every rank once rank 0 has saved and validated, with rank 0's
    result; a rank other than 0 gets its standard output back, and evaluate there is refused in
    one line (it would write what rank 0 writes) while rank 0 evaluates."""
    cfg = tiny_config(tiny_scene, tmp_path / "run", steps=8, eval_every=4, checkpoint_every=100, seed=3)
    config = write_config(cfg, tmp_path / "config.json")
    outputs = script_on_two_ranks("api", config, tmp_path, tmp_path / "run")
    # The script never closed its process groups: they are closed, and gloo's threads joined, before the
    # interpreter ends.
    assert [exit_state(tmp_path / f"seen{rank}.exit") for rank in (0, 1)] == [CLOSED] * 2
    rank0, rank1 = (json.loads((tmp_path / f"seen{rank}.json").read_text()) for rank in (0, 1))
    assert rank1["checkpoint_there"] and rank1["step"] == rank0["step"] == 8 and not rank1["interrupted"]
    assert rank1["val_psnr"] == rank0["val_psnr"] is not None  # rank 0's final validation, shared
    assert "after train" in outputs[1][1]  # rank 1's own prints are seen again
    assert rank0["evaluated"] > 0 and "runs on rank 0 alone" in rank1["refused"]


@pytest.mark.slow
def test_a_torchrun_script_s_loop_of_runs_waits_for_every_rank_at_each_run(tiny_scene, tmp_path):
    """docs/API.md's sweep, `for lr in ...: tn.train(...)`, under torchrun: a later call let rank 0 lock the
    folder while rank 1 still checked it (refused: "a run is already training there", naming rank 0), and a peer
    lost then made rank 0 save the finished run's trainer again, into a folder its next run had replaced. Rank 1
    checks late and rank 0 releases late here (distributed_worker.sweep), so a call that does not wait fails."""
    cfg = tiny_config(tiny_scene, tmp_path / "runs", steps=4, eval_every=0, preview_every=0, checkpoint_every=100,
                      seed=3)
    config = write_config(cfg, tmp_path / "config.json")
    script_on_two_ranks("sweep", config, tmp_path, tmp_path / "runs")
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"seen{rank}.json").read_text())
        assert [(s["out"], s["step"], s["forgotten"]) for s in seen] == [("a", 4, True), ("a", 4, True),
                                                                         ("b", 4, True)], seen
        assert exit_state(tmp_path / f"seen{rank}.exit") == CLOSED
    replaced = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
    assert replaced["lr"] == pytest.approx(2 * cfg.lr)  # the second run's, whole
    rows = [json.loads(line) for line in (tmp_path / "runs" / "a" / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if "loss" in row]
    assert steps == sorted(set(steps)) and steps[-1] == 4, steps  # one run's rows, not two runs' mixed


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a rank whose launcher died is reaped by whoever adopts it)."""
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def rank_of(pid: int) -> int | None:
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(item[5:]) for item in env if item.startswith(b"RANK=")]
    return ranks[0] if ranks else None


@pytest.mark.slow
def test_a_killed_rank_stops_the_other_and_the_run_resumes_in_one_process(tiny_scene, tmp_path, capsys):
    """kill -9 of rank 1 mid-run (train --devices 2, through torchrun), long before a periodic
    checkpoint: rank 0 saves the last whole step and leaves within 60 s, non-zero, with one line
    that says what happened, what it saved and how to resume; --resume then continues from there
    in one process, and that run with 2 ranks again."""
    out = tmp_path / "run"
    train = [sys.executable, "-m", "taichi_nerf", "train", "--data", str(tiny_scene), "--out", str(out),
             "--width", "32", "--depth", "2", "--batch-rays", "128", "--samples-per-ray", "24", "--grid-resolution",
             "32",
             "--eval-every", "0", "--preview-every", "0", "--log-every", "5", "--no-progress", "--arch", "cpu",
             "--video-frames", "0"]
    scratch = tmp_path / "tmp"  # the launcher's TMPDIR: torchrun's log folders must not pile up there
    scratch.mkdir()
    launcher = subprocess.Popen([*train, "--devices", "2", "--steps", "5000", "--checkpoint-every", "5000"], cwd=ROOT,
                                env={**process_env(), "TMPDIR": str(scratch)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    try:
        wait_for(lambda: metrics.is_file() and metrics.read_text().count('"loss"') >= 2, "step 10", launcher,
                 timeout=240)
        victims = [pid for pid in children_of(launcher.pid) if rank_of(pid) == 1]
        assert len(victims) == 1, children_of(launcher.pid)
        os.kill(victims[0], signal.SIGKILL)
        _, err = launcher.communicate(timeout=60)  # the survivor stops (a hang would raise TimeoutExpired here)
    finally:
        stop_if_running(launcher)
    assert launcher.returncode not in (0, None), err[-3000:]
    assert "taichi-nerf: training stopped: rank 0 of 2 lost the other ranks" in err, err[-3000:]
    assert err.count("taichi-nerf: training stopped:") == 1, err[-3000:]  # said once, where it was found
    assert "rank 1 was killed by SIGKILL" in err
    assert "failed (exitcode" not in err and "closing signal" not in err, err[-3000:]  # torchrun's own lines
    assert "Traceback" not in err, err[-3000:]

    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert f"rank 0 saved step {saved['step']}: continue with: taichi-nerf train --resume {out}" in err, err[-3000:]
    assert saved["world_size"] == 2 and saved["step"] >= 10
    from taichi_nerf.cli import main

    # the resume in one process is this one: one interpreter start less
    code = main(["train", "--resume", str(out), "--steps", str(saved["step"] + 5), "--video-frames", "0"])
    said = capsys.readouterr()
    assert code == 0, said.err[-3000:]
    assert f"resuming at step {saved['step']}" in said.out
    resumed = torch.load(out / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == saved["step"] + 5 and resumed["world_size"] == 1
    # ... and that one-process checkpoint continues with 2 ranks again.
    res = subprocess.run([*train[:3], "train", "--resume", str(out), "--steps", str(saved["step"] + 10), "--devices",
                          "2",
                          "--video-frames", "0"], cwd=ROOT, env={**process_env(), "TMPDIR": str(scratch)},
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    left = [p.name for p in scratch.iterdir() if "torchrun" in p.name or "torchelastic" in p.name]
    assert not left, left  # the failed run's and the finished run's log folders are gone
    resumed = torch.load(out / "checkpoint.pt", weights_only=True)
    assert resumed["step"] == saved["step"] + 10 and resumed["world_size"] == 2
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    # nothing logged twice, nothing lost: every 5th step, and each resumed run's last
    assert steps == sorted({*range(5, saved["step"] + 11, 5), saved["step"] + 5, saved["step"] + 10}), steps


@pytest.mark.slow
def test_ctrl_c_on_the_launcher_stops_every_rank_and_rank_0_saves_once(tiny_scene, tmp_path):
    out = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "taichi_nerf", "train", "--devices", "2", "--data", str(tiny_scene), "--out", str(out),
         "--width", "32", "--depth", "2", "--batch-rays", "128", "--samples-per-ray", "24", "--grid-resolution", "32",
         "--steps", "5000", "--eval-every", "0", "--preview-every", "0", "--checkpoint-every", "0", "--log-every", "5",
         "--no-progress", "--arch", "cpu", "--video-frames", "0"],
        cwd=ROOT, env=process_env(TMPDIR=str(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        metrics = out / "metrics.jsonl"
        wait_for(lambda: metrics.is_file() and '"loss"' in metrics.read_text(), "a training row of metrics", launcher,
                 timeout=240)
        launcher.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal does (the ranks run in their own session)
        stdout, err = launcher.communicate(timeout=60)
    finally:
        stop_if_running(launcher)
    assert launcher.returncode == 130, err[-3000:]
    # rank 0 reports and saves; rank 1 is quiet
    assert stdout.count("interrupted at step") == 1, stdout[-2000:] + "\n--- stderr:\n" + err[-3000:]
    step = int(stdout.split("interrupted at step ")[1].split(";")[0])
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["step"] == step >= 5 and saved["world_size"] == 2
    assert "Traceback" not in err, err[-3000:]
    assert "death signal" not in err and "closing signal" not in err, err[-3000:]  # torchrun's: "interrupted" says it
    assert not list(tmp_path.glob("taichi_nerf_torchrun_*"))  # torchrun's log folder goes with an interrupt too


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_the_ranks_stop_and_save_when_the_launcher_is_killed(tiny_scene, tmp_path, capsys):
    """kill -9 of `train --devices 2` itself left both ranks training on their own, holding the
    run's lock (--resume was refused); each rank now gets SIGTERM, which stops and saves."""
    out = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "taichi_nerf", "train", "--devices", "2", "--data", str(tiny_scene), "--out", str(out),
         "--width", "32", "--depth", "2", "--batch-rays", "128", "--samples-per-ray", "24", "--grid-resolution", "32",
         "--steps", "100000", "--eval-every", "0", "--preview-every", "0", "--checkpoint-every", "0",
         "--log-every", "5", "--no-progress", "--arch", "cpu", "--video-frames", "0"],
        # TMPDIR: nothing outlives kill -9 to remove torchrun's log folder, so it goes where pytest cleans up
        cwd=ROOT, env=process_env(TMPDIR=str(tmp_path)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ranks = []
    try:
        metrics = out / "metrics.jsonl"
        wait_for(lambda: metrics.is_file() and '"loss"' in metrics.read_text(), "a training row of metrics", launcher,
                 timeout=240)
        ranks = [pid for pid in children_of(launcher.pid) if rank_of(pid) is not None]
        assert len(ranks) == 2, children_of(launcher.pid)
        launcher.kill()
        launcher.wait(timeout=30)
        wait_for(lambda: not any(map(running, ranks)), "the ranks to stop", None, timeout=90)
        # nothing outlived kill -9 to remove torchrun's log folder: the next launch does (named by its launcher)
        from taichi_nerf.runs.launcher import LOGS_PREFIX, remove_orphaned_logs
        left = sorted(tmp_path.glob(f"{LOGS_PREFIX}*"))
        assert len(left) == 1 and remove_orphaned_logs(tmp_path) == left and not left[0].exists()
    finally:
        for pid in ranks:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["world_size"] == 2 and saved["step"] >= 5  # rank 0 saved where they stopped
    from taichi_nerf.cli import main

    code = main(["train", "--resume", str(out), "--steps", str(saved["step"] + 2), "--video-frames", "0",
                 "--no-progress"])  # in this process: one interpreter start less
    said = capsys.readouterr()
    assert code == 0 and f"resuming at step {saved['step']}" in said.out, said.err[-3000:]


def test_each_rank_takes_the_gpu_of_its_local_rank():
    from taichi_nerf.runs.rank_env import gpu_for_local_rank

    assert gpu_for_local_rank(None, 3) == "3"
    assert gpu_for_local_rank("4,5", 1) == "5"
    assert gpu_for_local_rank("GPU-a, GPU-b", 0) == "GPU-a"
    # CUDA_VISIBLE_DEVICES= torchrun ... --arch cpu: refused, 'LOCAL_RANK 1 has no GPU ... start at most 0 processes'
    assert gpu_for_local_rank("", 1) == "" and gpu_for_local_rank(" ", 0) == ""
    with pytest.raises(ValueError, match="LOCAL_RANK 2 has no GPU"):
        gpu_for_local_rank("0,1", 2)


def test_torchrun_log_folders_of_launchers_that_are_gone_are_removed(tmp_path):
    """kill -9 of `train --devices N` left its torchrun log folder in /tmp for good; the next launch
    removes those of launchers no longer running, and leaves a running one's and anything else alone."""
    from taichi_nerf.runs.launcher import LOGS_PREFIX, remove_orphaned_logs
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    orphan, live = tmp_path / f"{LOGS_PREFIX}{gone.pid}_x1", tmp_path / f"{LOGS_PREFIX}{os.getpid()}_x2"
    unnamed, other = tmp_path / f"{LOGS_PREFIX}abc12345", tmp_path / f"not_ours_{gone.pid}_x3"
    for folder in (orphan, live, unnamed, other):
        (folder / "attempt_0").mkdir(parents=True)
    assert remove_orphaned_logs(tmp_path) == [orphan]
    assert not orphan.exists() and live.is_dir() and unnamed.is_dir() and other.is_dir()


def test_devices_flag_is_not_passed_on_to_the_ranks():
    from taichi_nerf.runs.launcher import without_devices_flag

    assert without_devices_flag(["train", "--devices", "2", "--steps", "5"]) == ["train", "--steps", "5"]
    assert without_devices_flag(["train", "--devices=4", "--resume", "x"]) == ["train", "--resume", "x"]


def test_devices_under_torchrun_is_said_to_be_unused(monkeypatch, capsys, tmp_path, tiny_scene):
    """torchrun --nproc-per-node 2 ... train --devices 5 ran 2 ranks without a word."""
    from taichi_nerf import cli

    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    assert cli.main(["train", "--data", str(tiny_scene), "--devices", "5", "--dry-run", "--out",
                     str(tmp_path / "r")]) == 0
    assert "--devices 5 is not used: torchrun started this run's 2 ranks" in capsys.readouterr().err


def test_one_process_features_are_refused_under_torchrun(monkeypatch, capsys, tmp_path):
    from taichi_nerf import cli

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for argv in (["gui", "--headless", "--frames", "1"], ["render", "--ckpt", "x"], ["data", "info", "x"]):
        assert cli.main(argv) == 2
        assert f"taichi-nerf {argv[0]} runs in one process" in capsys.readouterr().err
    monkeypatch.setattr("taichi_nerf.resources.usable_cores", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert cli.main(["train", "--devices", "3", "--dry-run", "--arch", "cpu", "--out", str(tmp_path / "r")]) == 2
    assert "this machine has 2 CPU cores; give at most 2" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "x")
    assert cli.main(["train", "--dry-run"]) == 2
    assert "RANK='x' is not a whole number" in capsys.readouterr().err
    monkeypatch.delenv("WORLD_SIZE")  # a RANK left in the shell by another job: said as such, with the way out
    monkeypatch.setenv("RANK", "3")
    assert cli.main(["train", "--dry-run"]) == 2
    assert "WORLD_SIZE=1 do not fit together (RANK is below WORLD_SIZE, LOCAL_RANK below LOCAL_WORLD_SIZE); left " \
           "in the shell from another job? unset RANK" in capsys.readouterr().err
    assert cli.main(["train", "--devices", "0"]) == 2


def test_devices_refuses_a_folder_holding_a_run_before_starting_any_rank(tmp_path, capsys):
    from taichi_nerf import cli

    (tmp_path / "config.json").write_text("{}")
    assert cli.main(["train", "--devices", "2", "--out", str(tmp_path), "--arch", "cpu", "--no-progress"]) == 2
    assert "already holds an unfinished run" in capsys.readouterr().err


def test_a_taken_port_is_said_in_one_line(tiny_scene, tmp_path):
    """torchrun's rank 0 on a MASTER_PORT another process holds: the port named, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = process_env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
        done = subprocess.run([sys.executable, "-m", "taichi_nerf", "train", "--data", str(tiny_scene), "--out",
                               str(tmp_path / "run"), "--steps", "2", "--arch", "cpu", "--no-progress"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode not in (0, None)
    assert f"could not open the ranks' meeting point 127.0.0.1:{port}: the port is in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize("codes, status, said", [
    ({0: 130, 1: 130}, 130, "interrupted"),  # kill -INT/-TERM of one rank: every rank stopped, rank 0 saved
    ({0: 130, 1: -signal.SIGTERM}, 130, "interrupted"),  # torchrun ended a rank still unwinding
    ({0: 1, 1: -signal.SIGKILL}, 1, "the run stopped: rank 0 exited with status 1; rank 1 was killed by SIGKILL"),
    # rank 1 killed; rank 0 saved and said so, then torchrun's SIGTERM ended it: not "rank 0 was killed by SIGTERM"
    ({0: -signal.SIGTERM, 1: -signal.SIGKILL}, 1,
     "the run stopped: rank 1 was killed by SIGKILL; torchrun then stopped rank 0 (SIGTERM)"),
    ({0: -signal.SIGTERM, 1: -signal.SIGTERM}, 1, "the run stopped: rank 0 was killed by SIGTERM; rank 1 was killed"),
    ({0: 2, 1: 2}, 2, "the run stopped"),
])
def test_devices_reports_an_interrupt_of_one_rank_as_an_interrupt(monkeypatch, capsys, codes, status, said):
    """kill -INT of one rank under --devices stopped and saved the run, then said 'the run stopped:
    rank 0 exited with status 130; rank 1 exited with status 130' with status 1, not 130."""
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    from taichi_nerf.runs import launcher

    def failed(args):
        raise ChildFailedError("taichi_nerf", {r: ProcessFailure(local_rank=r, pid=1000 + r, exitcode=c,
                                                                 error_file="/nonexistent") for r, c in codes.items()})

    monkeypatch.setattr(torchrun, "run", failed)
    assert launcher.launch_local(2, ["train", "--devices", "2"]) == status
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


@pytest.mark.parametrize("rank_env, argv, said", [
    ({}, [], True),
    ({}, ["--devices", "2"], False),  # the launcher: each of its ranks says it
    ({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, [], True),
    ({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}, [], False),
])
def test_a_resumes_changes_are_said_once_under_devices(run, monkeypatch, capsys, rank_env, argv, said):
    """`train --devices 2 --resume RUN --steps N` printed 'note: changed for the rest of the run'
    three times: by the launcher and by each rank."""
    from taichi_nerf import cli
    from taichi_nerf.cli.common import run_config, say_resume_note

    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in rank_env.items():
        monkeypatch.setenv(name, value)
    args = cli.build_parser().parse_args(["train", "--resume", str(run), "--steps", "12", *argv])
    assert run_config(args, resume_from=str(run)).steps == 12
    say_resume_note(args)
    assert ("note: changed for the rest of the run" in capsys.readouterr().out) == said


def test_devices_refuses_a_bad_timeout_before_starting_any_rank(monkeypatch):
    """TAICHI_NERF_COLLECTIVE_TIMEOUT_S=abc train --devices 2: each rank said it, then torchrun's
    error line and the launcher's summary; the launcher checks it first, in one line."""
    from taichi_nerf.runs import distributed, launcher

    monkeypatch.setenv(distributed.STEP_TIMEOUT_ENV, "abc")
    with pytest.raises(ValueError, match="TAICHI_NERF_COLLECTIVE_TIMEOUT_S='abc' must be a whole number"):
        launcher.check_local_devices(1, cuda=False)
    monkeypatch.setenv(distributed.STEP_TIMEOUT_ENV, "5")
    monkeypatch.setenv(distributed.WAIT_TIMEOUT_ENV, "0")
    with pytest.raises(ValueError, match="TAICHI_NERF_RANK0_WAIT_S='0'"):
        launcher.check_local_devices(1, cuda=False)
    monkeypatch.delenv(distributed.WAIT_TIMEOUT_ENV)
    launcher.check_local_devices(1, cuda=False)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_a_dry_run_under_torchrun_is_said_by_rank_0_alone(monkeypatch, capsys, tmp_path, tiny_scene, rank):
    """torchrun --nproc-per-node 2 -m taichi_nerf train --dry-run said 'configuration ... are fine' once per rank."""
    from taichi_nerf import cli

    for name, value in (("RANK", rank), ("LOCAL_RANK", rank), ("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    assert cli.main(["train", "--data", str(tiny_scene), "--dry-run", "--out", str(tmp_path / "r")]) == 0
    said = capsys.readouterr().out
    assert ("run folder and memory are fine" in said) == (rank == "0")
    assert (" of 512 rays on each of 2 ranks x " in said) == (rank == "0"), said  # as the real start says it


def test_the_api_s_one_process_work_on_another_rank_is_refused_under_its_own_name(monkeypatch, run):
    """tn.render_orbit on rank 1 was refused as "render_path under torchrun ...", a function the script never called."""
    import taichi_nerf as tn

    for name, value in (("RANK", "1"), ("LOCAL_RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    for call, name in ((tn.render_orbit, "render_orbit"), (tn.evaluate, "evaluate")):
        with pytest.raises(ValueError, match=f"^{name} under torchrun runs on rank 0 alone"):
            call(run)


@pytest.mark.parametrize("rank, shown", [("0", True), ("1", False)])
def test_the_built_in_scenes_first_render_shows_one_bar_under_torchrun(monkeypatch, rank, shown):
    """torchrun --nproc-per-node 2 ... train on a fresh cache: each rank rendered the built-in
    scene with its own 'rendering built-in scene' bar, two bars interleaved on one line."""
    from taichi_nerf.runs import datasets

    asked = []

    def render(views, size, progress):
        asked.append(progress)
        raise KeyboardInterrupt  # what load_dataset does next does not matter here

    monkeypatch.setattr(datasets, "builtin_scene", render)
    monkeypatch.setenv("RANK", rank), monkeypatch.setenv("LOCAL_RANK", rank), monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(KeyboardInterrupt):
        datasets.load_dataset(None)
    assert asked == [shown]


def test_a_rank_lost_in_the_grids_broadcast_leaves_that_steps_row_and_checkpoint(tiny_scene, tmp_path, monkeypatch):
    """A peer lost while the occupancy grid is shared, after the step's grid update: rank 0 saves that
    step, whole, with the metrics row that was due there. The killed-rank test above once saw steps
    [.., 25, 35, ..]: the row of step 30, the first grid update, was missing; it depends on when the
    kill lands. Here one process stands in for rank 0, and the broadcast fails at step 10 every time."""
    from functools import partial

    from taichi_nerf.runs.distributed import PeerLost, Ranks, rescue_step
    from taichi_nerf.training.trainer import Trainer

    trainer = Trainer(tiny_config(tiny_scene, tmp_path, grid_warmup=10, eval_every=0, preview_every=0,
                                  checkpoint_every=0))
    peer = Ranks(rank=0, size=2, run_folder=trainer.out_dir, rescue=partial(rescue_step, trainer))

    def reset():
        raise RuntimeError("Connection reset by peer")

    monkeypatch.setattr(trainer.ranks, "share_grid", lambda grid: peer._call(reset))
    trainer.begin()
    with pytest.raises(PeerLost, match=f"rank 0 saved step 10: continue with: taichi-nerf train --resume {tmp_path}"):
        while trainer.step_count < 40:
            trainer.advance()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [5, 10], rows
    assert rows[-1]["lr"] == pytest.approx(trainer.lr_at(9)) != pytest.approx(trainer.lr_at(8))  # step 10's numbers
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 10


def test_a_lost_rank_is_said_on_a_line_of_its_own_not_after_the_progress_bar(capsys):
    """kill -9 of rank 1 under plain torchrun: rank 0's 'training stopped: ... lost the other
    ranks' came right after its progress bar, on the bar's line ('... step=96]taichi-nerf: ...')."""
    from tqdm.auto import tqdm

    from taichi_nerf.runs.distributed import PeerLost, Ranks

    def reset():
        raise RuntimeError("Connection reset by peer")

    bar = tqdm(total=10, file=sys.stderr, desc="training")
    bar.update(3)
    with pytest.raises(PeerLost):
        Ranks(rank=0, size=2)._call(reset)
    bar.close()
    lines = capsys.readouterr().err.replace("\r", "\n").split("\n")
    said = [line for line in lines if "training stopped" in line]
    assert said and said[0].startswith("taichi-nerf: training stopped: rank 0 of 2 lost the other ranks"), lines


@pytest.mark.parametrize("saved, said", [(2, True), (1, False)])
def test_a_resume_on_another_number_of_ranks_says_what_a_step_now_takes(run, saved, said):
    """torchrun --nproc-per-node 2 ... then train --resume in one process: a step took 2 x 512
    rays and now takes 512, without a word (the checkpoint's world_size was written, never read)."""
    from taichi_nerf.runs.run_folder import resume_config
    from taichi_nerf.training.diagnostics import start_lines
    from taichi_nerf.training.trainer import Trainer

    state = torch.load(run / "checkpoint.pt", weights_only=False)
    state["world_size"] = saved
    torch.save(state, run / "checkpoint.pt")
    trainer = Trainer(resume_config(run).replace(steps=20), resume=True)
    note = "note: the run trained on 2 ranks and goes on with 1 process: a step now takes 1 x 64 rays where it took 2 x"
    lines = start_lines(trainer, True)
    assert any(line.startswith(note) for line in lines) == said, lines


def test_an_error_under_torchrun_names_the_rank_that_said_it(monkeypatch, capsys, tmp_path):
    """A dataset path that only rank 0's machine has: rank 1 said 'taichi-nerf: error: PATH: no
    such file or folder', torchrun's summary after it, and nothing told which rank (or machine) lacked it."""
    from taichi_nerf import cli

    for name, value in (("RANK", "1"), ("LOCAL_RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    assert cli.main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r"), "--arch", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"taichi-nerf: error: rank 1 of 2: {tmp_path / 'nowhere'}") and err.count("\n") == 1, err


def test_a_script_under_torchrun_takes_its_gpu_before_cuda_is_asked(monkeypatch, tmp_path):
    """``taichi_nerf.train(...)`` in a torchrun script asked torch whether CUDA is there (open_run's arch and
    memory checks; the built-in scene's render started Taichi) before join narrowed CUDA_VISIBLE_DEVICES to
    LOCAL_RANK's GPU. The CUDA driver reads that variable once, at its first call: every rank then ran on GPU 0
    (NCCL refuses duplicate GPUs), or, once torch had measured its free memory, join refused to start. The
    GPU is pinned before the first question."""
    import taichi_nerf as tn

    for name, value in (("RANK", "1"), ("LOCAL_RANK", "1"), ("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # (pinning narrows it: put back after the test)
    monkeypatch.setattr("taichi_nerf.runs.rank_env._pinned", False)
    asked_with = []

    class Asked(Exception):
        pass

    def is_available():  # the first question to the CUDA driver: the test ends there
        asked_with.append(os.environ.get("CUDA_VISIBLE_DEVICES"))
        raise Asked

    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    with pytest.raises(Asked):
        tn.train(out=str(tmp_path / "run"), arch="auto", steps=1)
    assert asked_with == ["1"]


def test_more_ranks_than_cores_under_torchrun_is_warned_of(monkeypatch, capsys):
    """torchrun --nproc-per-node 3 on 2 cores trained on, thrashing, without a word (train --devices 3 refuses it)."""
    import torch.distributed as dist

    from taichi_nerf.runs import distributed

    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "3"), ("LOCAL_WORLD_SIZE", "3"),
                        ("TI_CPU_MAX_NUM_THREADS", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # (join narrows it: put back after the test)
    monkeypatch.setattr("taichi_nerf.runs.rank_env._pinned", False)
    monkeypatch.setattr("taichi_nerf.resources.usable_cores", lambda: 2)

    def no_peers(*args, **kwargs):
        raise RuntimeError("the test ends here")

    monkeypatch.setattr(dist, "init_process_group", no_peers)
    with pytest.raises(distributed.PeerLost):
        distributed.join("cpu")
    assert "warning: 3 ranks on this machine's 2 CPU cores" in capsys.readouterr().err


@pytest.mark.parametrize("slow", [True, False], ids=["slow", "quick"])
def test_a_slow_start_of_the_ranks_says_what_they_wait_for(monkeypatch, capsys, slow):
    """Rank 0 started by hand without the others waited silently for TAICHI_NERF_RANK0_WAIT_S (30 min by default)
    before a line said anything; now a start that takes long says what it waits for, and a quick one nothing.
    How long the start takes is the test's choice, not the machine's (a 0.4 s start against a 0.1 s timer, and
    a 0.2 s sleep to catch a timer left running, each depended on the threads being scheduled in time): the
    slow start lasts until the timer has spoken, the quick one ends long before its timer would."""
    import threading

    import torch.distributed as dist

    from taichi_nerf.runs import distributed

    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2"),
                        ("TI_CPU_MAX_NUM_THREADS", "1"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29555")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # (join narrows it: put back after the test)
    monkeypatch.setattr("taichi_nerf.runs.rank_env._pinned", False)
    monkeypatch.setattr(distributed, "WAITING_SAID_AFTER_S", 0.1 if slow else 600.0)
    timers = []

    class Recorded(threading.Timer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            timers.append(self)
    monkeypatch.setattr(threading, "Timer", Recorded)

    def peers(*args, **kwargs):
        if slow:  # waits until the timer has run (finished is set after its function; 300 s: a hang guard)
            assert timers and timers[-1].finished.wait(300), "the timer never ran"
        raise RuntimeError("the test ends here")

    monkeypatch.setattr(dist, "init_process_group", peers)
    with pytest.raises(distributed.PeerLost):
        distributed.join("cpu")
    assert len(timers) == 1
    timers[0].join(30)  # cancelled (quick) or done (slow): no timer is left to speak after join
    assert not timers[0].is_alive()
    err = capsys.readouterr().err
    assert ("taichi-nerf: rank 0 of 2 is waiting for the other ranks at 127.0.0.1:29555 (for up to 1800 s: "
            "TAICHI_NERF_RANK0_WAIT_S)" in err) == slow, err


def test_the_metrics_rows_of_several_ranks_record_how_many(tiny_scene, tmp_path):
    """A run of 2 ranks wrote nothing in metrics.jsonl, config.json or TensorBoard that said so
    (its rays_per_s counted both); one process's rows stay as they were."""
    from taichi_nerf.runs.distributed import Ranks
    from taichi_nerf.training.trainer import Trainer

    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "run", log_every=1, eval_every=0, preview_every=0,
                                  checkpoint_every=0))
    info = {"loss": 0.1, "train_psnr": 10.0, "lr": 1e-3, "rays_per_s": 1.0, "samples_per_ray": 8.0}
    trainer.step_count = 1
    trainer.after_step(info)
    trainer.ranks, trainer.step_count = Ranks(rank=0, size=2), 2  # rank 0 of two (no collective in a log step)
    trainer.after_step(info)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "ranks" not in rows[0] and rows[1]["ranks"] == 2, rows


def test_ranks_that_loaded_different_data_are_refused_in_one_line(tiny_scene, tmp_path, monkeypatch):
    """A machine whose dataset at the run's path differed (6 views of 24 px against 12 of 32) aborted in gloo
    ("Received data size doesn't match expected size"), said by rank 0 as "one died or stopped answering", or
    trained on the mix. The ranks compare what they loaded at the start, as they compare their checkpoints."""
    import torch.distributed as dist

    from taichi_nerf.runs.distributed import Ranks
    from taichi_nerf.training.trainer import Trainer

    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "run"))

    def gathered(seen, mine, group=None):  # rank 1's: the same step and grid, other images
        seen[:] = [mine, (*mine[:2], (6, 24, 24))]
    monkeypatch.setattr(dist, "all_gather_object", gathered)
    with pytest.raises(ValueError, match=r"the ranks loaded different training data \(images, width, height per "
                                         r"rank: \[\(\d+, 32, 32\), \(6, 24, 24\)\]\)"):
        Ranks(rank=0, size=2).share_start(trainer)


def test_the_start_line_of_several_ranks_says_each_takes_its_batch(tiny_scene, tmp_path):
    """--batch-images under torchrun: 'training N steps of every pixel of 1 images x 24 samples',
    though each of the 2 ranks took that many (only --batch-rays alone said 'on each of 2 ranks')."""
    from taichi_nerf.runs.distributed import Ranks
    from taichi_nerf.training.diagnostics import start_lines
    from taichi_nerf.training.trainer import Trainer

    trainer = Trainer(tiny_config(tiny_scene, tmp_path / "run", batch_rays=0, batch_images=1))
    trainer.ranks = Ranks(rank=0, size=2)
    backend = next(line for line in start_lines(trainer, False) if line.startswith("backend:"))
    assert "of every pixel of 1 images on each of 2 ranks x" in backend, backend


def test_the_cores_counted_are_this_process_s_share_not_the_host_s(monkeypatch):
    """--devices and the ranks' thread and oversubscription checks counted os.cpu_count(), the
    host's cores: in a container (or under taskset) given 2 of 64, 8 ranks were let start."""
    from taichi_nerf import resources

    monkeypatch.setattr("os.cpu_count", lambda: 64)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert resources.usable_cores() == 2


def test_a_rank_whose_rank_0_never_comes_says_so_in_one_line(tiny_scene, tmp_path):
    """Rank 1 started by hand without its rank 0 met torch's store client, which printed a C++ stack dump (two
    screens) on each try and waited 86 s for a 30 s limit; it now waits for rank 0's port itself, the limit
    it was given, and says what answered nowhere in one line."""
    port = str(free_port())  # nothing listens there
    env = process_env(RANK="1", LOCAL_RANK="0", WORLD_SIZE="2", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=port, TAICHI_NERF_RANK0_WAIT_S="2")
    res = subprocess.run([sys.executable, "-m", "taichi_nerf", "train", "--data", str(tiny_scene), "--out",
                          str(tmp_path / "run"), "--steps", "2", "--arch", "cpu"], env=env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 1, res.stderr
    assert res.stderr.splitlines()[-1] == (
        f"taichi-nerf: training stopped: rank 1 of 2 could not reach the others: nothing answered at 127.0.0.1:{port} "
        "within 2 s (is rank 0 started, at that address? TAICHI_NERF_RANK0_WAIT_S waits longer)"), res.stderr
    assert "frame #" not in res.stderr and "c10d" not in res.stderr, res.stderr


def test_a_rank_waits_for_rank_0_to_open_its_port(monkeypatch):
    """rank0_answers: a port that starts listening late is waited for; under torchrun's agent store (its agent
    met the others first) and without the rank variables nothing is waited for."""
    import threading
    import time

    from taichi_nerf.runs.distributed import rank0_answers

    port = free_port()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    assert not rank0_answers(0.3)
    listener = socket.socket()

    def open_late():
        time.sleep(0.5)
        listener.bind(("127.0.0.1", port))
        listener.listen()

    opener = threading.Thread(target=open_late)
    opener.start()
    try:
        assert rank0_answers(30.0)
    finally:
        opener.join()
        listener.close()
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    assert rank0_answers(0.0)
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE")
    monkeypatch.delenv("MASTER_PORT")
    assert rank0_answers(0.0)
