"""scripts/gpu_check.sh, shrunk with --small so it runs on the CPU: every part runs and the
JSON and the Markdown table hold real numbers."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_small_writes_json_and_markdown_with_real_numbers(tmp_path):
    scratch = tmp_path / "tmp"  # its runs' folders: removed when it is done
    scratch.mkdir()
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(scratch)}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--small", "--arch", "cpu", "--out",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not any(p.name.startswith("gpu_check_") for p in scratch.iterdir())
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    tests = result["tests"]
    assert tests["exit_code"] == 0 and tests["tests"] >= 5 and tests["failures"] == tests["errors"] == 0
    assert result["large_batch"] == 1024
    for part in (result["builtin"], result["builtin_large_batch"], result["object"]):
        assert part["steps"] >= 1 and part["rays_per_s"] > 0 and part["samples_per_ray"] > 0
        assert len(part["curve"]) >= 2 and all(math.isfinite(v) and v > 5.0 for _, v, _ in part["curve"])
        assert "seconds_to_25db" in part and "seconds_to_30db" in part  # None: not reached in the small budget
    assert [row["samples"] for row in result["compositing"]] == [64, 128, 256]
    assert all(row["fast_fwd_ms"] > 0 and row["torch_fwd_bwd_ms"] > 0 for row in result["compositing"])
    assert result["step"] and all(p["ms_per_step"] > 0 and p["rays_per_s"] > 0 for p in result["step"].values())
    assert list(result["profiles"]) == ["256", "1024"]
    for p in result["profiles"].values():
        assert p["ms_per_step_median"] > 0 and p["stages"] and all(row["ms_per_step"] >= 0 for row in p["stages"])
    table = (tmp_path / "gpu_check.md").read_text()
    assert re.search(r"\| kernel \+ zero-copy tests \| .* \| \d+ passed, 0 failed", table)
    assert "**Skipped**: on the CPU backend, not a GPU: the CUDA parts are skipped" in table
    assert len(re.findall(r"\d+\.\d\d dB after \d+ steps", table)) == 3
    assert "| built-in run, 1024 rays/step |" in table
    assert len(re.findall(r"\| compositing, \d+ rays x \d+ samples \|", table)) == 3
    assert re.search(r"\| training step, .* \| \d+\.\d ms, \d+ rays/s", table)
    assert len(re.findall(r"\| step profile, \d+ rays/step \| .* \| \d+\.\d ms: \w", table)) == 2


def test_kernel_tests_keep_the_callers_python_path(monkeypatch, tmp_path):
    """On a device machine the carried packages live only on PYTHONPATH: the kernel tests'
    subprocess must see them, after this tree."""
    from scripts import gpu_check

    seen = {}

    def fake_run(cmd, env, **kw):
        seen.update(env)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setenv("PYTHONPATH", "/tmp/site")
    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    gpu_check.run_tests(gpu_check.SMALL, "cuda", tmp_path)
    assert seen["PYTHONPATH"].split(os.pathsep) == [str(ROOT), "/tmp/site"]
    assert seen["TAICHI_NERF_TEST_ARCH"] == "cuda" and seen["HOME"] == os.environ["HOME"]


def test_a_relative_out_is_the_callers_folder(tmp_path):
    """gpu_check.sh changed to the repository root before starting gpu_check.py, so `--out results`
    (and the default gpu_check/) from any other folder landed in the repository."""
    fake_python = tmp_path / "python"  # stands in for the interpreter: says where it was started
    fake_python.write_text('#!/bin/sh\npwd > "$CWD_FILE"\n')
    fake_python.chmod(0o755)
    caller = tmp_path / "caller"
    caller.mkdir()
    env = {**os.environ, "PYTHON": str(fake_python), "CWD_FILE": str(tmp_path / "cwd")}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--out", "results"], cwd=caller, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cwd").read_text().strip() == str(caller)


def test_a_check_that_cannot_run_says_why_in_one_line_and_makes_no_folder(monkeypatch, tmp_path, capsys):
    """No such device: the --out folder was made all the same, and left empty; an --out that is a file
    was a FileExistsError traceback."""
    from scripts import gpu_check
    from taichi_nerf import backend

    def no_gpu(arch):
        raise backend.BackendUnavailable("--arch cuda was asked for, but torch sees no CUDA GPU")

    monkeypatch.setattr(gpu_check, "run_tests", lambda *a: pytest.fail("the check ran"))
    real_resolve = backend.resolve_arch
    monkeypatch.setattr(backend, "resolve_arch", no_gpu)
    assert gpu_check.main(["--arch", "cuda", "--out", str(tmp_path / "results")]) == 2
    assert not (tmp_path / "results").exists()
    assert capsys.readouterr().err == "gpu_check: --arch cuda was asked for, but torch sees no CUDA GPU\n"
    monkeypatch.setattr(backend, "resolve_arch", real_resolve)
    (tmp_path / "a-file").write_text("")
    assert gpu_check.main(["--small", "--arch", "cpu", "--out", str(tmp_path / "a-file")]) == 2
    assert capsys.readouterr().err.startswith(f"gpu_check: {tmp_path / 'a-file'}: is a file")


def test_a_check_on_the_cpu_says_the_cuda_parts_were_skipped(capsys):
    """--small --arch cpu (or --arch auto without a GPU) titled its table "GPU check" and said nothing
    of the CUDA parts it never ran; its start said nothing either, even for the full plan on a CPU."""
    from scripts.gpu_check import cpu_note, markdown

    run = {"image": "32x32", "train_images": 16, "budget_s": 3.0, "final_psnr": 9.7, "steps": 3,
           "seconds_to_25db": None, "seconds_to_30db": None, "rays_per_s": 390, "samples_per_ray": 32.0}
    result = {"machine": "cpu: a CPU", "small": True, "date": "today", "total_s": 84.0, "arch": "cpu",
              "tests": {"files": ["tests/test_backend.py"], "tests": 12, "seconds": 6.0, "exit_code": 0},
              "builtin": run, "builtin_large_batch": run, "object": run, "large_batch": 1024,
              "object_name": "built-in objects", "compositing": [], "step": {}, "profiles": {}}
    lines = markdown(result).splitlines()
    assert lines[4] == "**Skipped**: on the CPU backend, not a GPU: the CUDA parts are skipped (the kernel and " \
        "zero-copy tests on a CUDA device, CUDA timings)."
    assert "Skipped" not in markdown({**result, "arch": "cuda"})
    assert "takes far longer than its 8 minutes (--small shrinks it)" in cpu_note("cpu", small=False)
