"""scripts/benchmark.py's subcommands run from any working folder, with this repository's
code on the path whether or not it is the installed copy, and print tables of numbers."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
SUBCOMMANDS = ("step", "compositing", "quality", "matrix", "profile", "startup", "colmap")


def run_script(folder: Path, *args: str) -> subprocess.CompletedProcess:
    # No PYTHONPATH: the script itself must find the repository (scripts/ and taichi_nerf).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=600)


def test_help_lists_every_subcommand_and_old_flags_get_a_pointer(tmp_path):
    shown = run_script(tmp_path, "--help")
    assert shown.returncode == 0, shown.stderr
    listed = shown.stdout.split("positional arguments:", 1)[1]
    for name in SUBCOMMANDS:
        assert f"    {name} " in listed or f"    {name}\n" in listed, name
    old = run_script(tmp_path, "--compositing-only", "--repeats", "1")
    assert old.returncode == 2
    assert "python scripts/benchmark.py compositing" in old.stderr
    assert "Traceback" not in old.stderr


@pytest.mark.slow
def test_compositing_subcommand_prints_a_table_of_numbers(tmp_path):
    arch = os.environ.get("TAICHI_NERF_TEST_ARCH", "cpu")
    done = run_script(tmp_path, "compositing", "--rays", "64", "--repeats", "1", "--arch", arch,
                      "--json", "out.json")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["64", "128", "256"]
    for row in rows:
        cells = [cell.strip().removesuffix("x") for cell in row.strip("|").split("|")]
        assert len(cells) == 9
        assert all(math.isfinite(float(cell)) and float(cell) > 0 for cell in cells), row
    results = json.loads((tmp_path / "out.json").read_text())
    assert [r["samples"] for r in results["compositing"]] == [64, 128, 256]
    assert all(r["rays"] == 64 and r["fast_fwd_bwd_ms"] > 0 for r in results["compositing"])


@pytest.mark.slow
def test_profile_subcommand_profiles_a_proposal_run_on_given_data(tmp_path):
    """`profile --data` on unbounded data times the proposal sampler's stages (no grid warm-up)."""
    from taichi_nerf.scenes.testsets import write_testset

    data = write_testset("ngp-360-env", tmp_path / "env", size=32, views=8)
    done = run_script(tmp_path, "profile", "--data", str(data), "--grid-steps", "3", "--arch", "cpu",
                      "--json", "out.json")
    assert done.returncode == 0, done.stderr
    phases = json.loads((tmp_path / "out.json").read_text())["profile"]
    assert list(phases) == ["proposal"]
    stages = {row["stage"]: row["ms_per_step"] for row in phases["proposal"]["stages"]}
    assert stages["marching"] > 0 and stages["MLP forward"] > 0 and stages["compositing backward"] > 0
    assert phases["proposal"]["samples_per_ray"] == 24
    assert "proposal:" in done.stdout


BAD_INPUTS = {  # a script and a mistake a contributor can make with it: what its one line must name
    "benchmark.py profile": (["profile", "--data", "{tmp}/no-such-data", "--grid-steps", "1", "--arch", "cpu"],
                             "benchmark.py profile: error: {tmp}/no-such-data: no such file or folder"),
    "capture_truth.py": (["{tmp}", "{tmp}/run"], "capture_truth.py: error: {tmp}/capture_effects.json: no such file"),
    "mesh_picture.py": (["--ckpt", "{tmp}/no-run", "--arch", "cpu"],
                        "mesh_picture.py: error: {tmp}/no-run: no checkpoint"),
    "mesh_picture.py --out": (["--ckpt", "{tmp}/no-run", "--out", "{tmp}", "--arch", "cpu"],  # refused before the work
                              "mesh_picture.py: error: {tmp}: is a folder; --out names the file to write"),
    "mesh_picture.py --size": (["--ckpt", "{tmp}/no-run", "--size", "0"],  # was "cannot write empty image", at the end
                               "mesh_picture.py: error: argument --size: must be at least 16, got 0"),
    "preview_blur.py": (["{tmp}/step_000100.png"], "preview_blur.py: error: {tmp}/step_000100.png: No such file"),
    "make_testsets.py": (["--out", "{tmp}", "--only", "npz-black", "--size", "8", "--arch", "cpu"],
                         "make_testsets.py: error: test set npz-black: need size >= 16"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_a_script_given_a_wrong_path_or_size_says_so_in_one_line(tmp_path, name):
    args, said = BAD_INPUTS[name]
    script = SCRIPT.parent / name.split()[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TAICHI_NERF_DEBUG")}
    done = subprocess.run([sys.executable, str(script), *(a.format(tmp=tmp_path) for a in args)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert said.format(tmp=tmp_path) in done.stderr.splitlines()[-1]


BAD_NUMBERS = {  # a number no run can use: refused at parsing, naming the flag, before any work
    "compositing --repeats 0": "argument --repeats: must be at least 1, got 0",  # was "no median for empty data"
    "compositing --rays -5": "argument --rays: must be at least 0, got -5",  # was a traceback from torch
    "step --grid-steps 1": "argument --grid-steps: must be at least 2, got 1",  # was a ZeroDivisionError
    "quality --val-views 0": "argument --val-views: must be at least 1, got 0",  # was "mean requires ..." at the end
    "quality --eval-every -1": "argument --eval-every: must be more than 0, got -1",
    "matrix --budget 0": "argument --budget: must be more than 0, got 0",
    "matrix --sets npz-black,nosuch": "argument --sets: unknown test set nosuch (have: builtin, npz-black",
    "profile --downscale 0": "argument --downscale: must be at least 1, got 0",
    "colmap --counts abc": "argument --counts: must be photo counts of at least 2, comma-separated, got abc",
    "colmap --counts 0": "argument --counts: must be photo counts of at least 2",  # was a traceback
}


@pytest.mark.parametrize("command", BAD_NUMBERS)
def test_a_number_no_benchmark_can_use_is_refused_before_it_runs(monkeypatch, capsys, command):
    import importlib

    from scripts.bench import main

    for name in SUBCOMMANDS:
        module = importlib.import_module(f"scripts.bench.{name}")
        monkeypatch.setattr(module, "run", lambda args: pytest.fail(f"{command} ran"))
    with pytest.raises(SystemExit) as stopped:
        main(command.split())
    assert stopped.value.code == 2
    said = capsys.readouterr().err.splitlines()[-1]
    assert said.startswith(f"benchmark.py {command.split()[0]}: error: {BAD_NUMBERS[command]}"), said


def test_a_results_file_that_cannot_be_written_is_refused_before_the_benchmark(monkeypatch, capsys, tmp_path):
    """--json (and matrix's --sheet) were written at the end: a folder given, or a file in the path,
    lost a 30-minute quality run's results. A folder that does not exist yet is made."""
    import importlib

    from scripts.bench import main, matrix
    from scripts.bench.common import write_json

    run_matrix, ran = matrix.run, []
    for name in SUBCOMMANDS:
        monkeypatch.setattr(importlib.import_module(f"scripts.bench.{name}"), "run", lambda args: ran.append(args))
    (tmp_path / "a-file").write_text("")
    for argv, said in ((["quality", "--json", str(tmp_path)], f"{tmp_path}: is a folder; --json names the file"),
                       (["step", "--json", str(tmp_path / "a-file" / "r.json")], f"{tmp_path / 'a-file'}: is a file")):
        assert main(argv) == 2 and not ran, argv
        assert capsys.readouterr().err.startswith(f"benchmark.py {argv[0]}: error: {said}"), argv
    monkeypatch.setattr(matrix.backend, "init", lambda *a: pytest.fail("the matrix started"))
    with pytest.raises(IsADirectoryError, match="is a folder; --sheet names the file to write"):
        run_matrix(matrix.argparse.Namespace(sheet=str(tmp_path), arch="cpu"))
    assert main(["compositing", "--json", str(tmp_path / "new" / "r.json")]) == 0 and len(ran) == 1
    write_json(str(tmp_path / "new" / "r.json"), {"psnr": float("inf")})
    assert json.loads((tmp_path / "new" / "r.json").read_text()) == {"psnr": None}


def test_time_to_quality_shows_no_psnr_at_a_mark_past_the_runs_budget(capsys):
    """A 3 s quality run printed its final PSNR under "PSNR @ 60 s" and "@ 300 s" (and gpu_check --small
    wrote it as psnr_at_60s), as if it had trained that long. A run that made all its steps early keeps
    its final value at the later marks."""
    from scripts.bench.quality import print_quality, value_at

    short = {"curve": [(0.0, 10.0, 0), (3.1, 17.0, 5)], "budget_s": 3.0}
    finished = {"curve": [(0.0, 10.0, 0), (50.0, 20.5, 900)], "budget_s": 1200.0}  # all steps by 50 s
    print_quality({"ours": short, "keras": finished})
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "dB" not in line}
    assert rows["taichi-nerf defaults"][2:4] == ["-", "-"], rows
    assert rows["Keras recipe (pure torch)"][0:4] == ["50.0", "-", "20.5", "20.5"], rows
    assert value_at(short["curve"], 3.0, 3.0) == 10.0 and value_at(short["curve"], 60.0, 3.0) is None


def test_the_scripts_children_import_this_checkout_and_keep_the_callers_path(monkeypatch):
    """gui_fps.py and masks_bench.py started ``python -m taichi_nerf`` with the caller's environment
    (the installed copy, maybe another checkout's); distributed_bench.py dropped the caller's
    PYTHONPATH (where a device machine's Taichi lives)."""
    from scripts import checkout_env

    monkeypatch.setenv("PYTHONPATH", "/carried/site")
    env = checkout_env(OMP_NUM_THREADS="1")
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SCRIPT.parents[1]), "/carried/site"]
    assert env["OMP_NUM_THREADS"] == "1"
    for name in ("gui_fps.py", "masks_bench.py", "distributed_bench.py"):
        source = (SCRIPT.parent / name).read_text()
        assert source.count("env=checkout_env()") + source.count("in checkout_env().items()") == \
            source.count('"-m", "taichi_nerf"'), name


HELPED = sorted(p.name for p in SCRIPT.parent.glob("*.py") if "ArgumentParser(" in p.read_text())


@pytest.mark.parametrize("name", HELPED)
def test_a_scripts_help_is_its_whole_docstring(tmp_path, name):
    """What a script measures and writes is in its docstring; ``--help`` showed only its first
    line (mesh_picture.py's stopped mid-sentence) or nothing but flag names (masks_bench.py)."""
    import ast

    doc = ast.get_docstring(ast.parse((SCRIPT.parent / name).read_text()))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    shown = subprocess.run([sys.executable, str(SCRIPT.parent / name), "--help"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    words = " ".join(shown.stdout.split())
    assert " ".join(doc.split()[-12:]) in words, name


def test_preview_blur_finds_the_blur_a_preview_was_given(tmp_path):
    """scripts/preview_blur.py (issue 25's "soft" face as a number): a prediction that is the photo
    blurred by 2 px is found at 2 px, a sharp one at 0, on the object's pixels alone; one moved by a
    pixel (a val camera's pose error) is found moved, not blurred."""
    import numpy as np
    from PIL import Image, ImageFilter

    from scripts.preview_blur import equivalent_blur, panels

    rng = np.random.default_rng(0)
    photo = np.full((64, 64, 3), 255, np.uint8)
    photo[12:52, 12:52] = rng.integers(0, 200, (40, 40, 3))  # a textured object on white
    soft = np.asarray(Image.fromarray(photo).filter(ImageFilter.GaussianBlur(2)))
    moved = np.roll(photo, (-1, 1), axis=(0, 1))  # one px right and one up, on white either way
    for prediction, sigma, shift in ((soft, 2.0, (0, 0)), (photo, 0.0, (0, 0)), (moved, 0.0, (1, -1))):
        Image.fromarray(np.concatenate([prediction, photo, photo], axis=1)).save(tmp_path / "preview.png")
        found = equivalent_blur(*panels(tmp_path / "preview.png", 3))
        assert found["blur_px"] == sigma and found["shift_px"] == shift, found
        assert found["object_pixels"] >= 40 * 40, found
    assert found["unshifted_blur_px"] > 0 and found["psnr_at_blur"] > found["psnr"] + 20, found
    for most in (0.0, 0.3):  # not allowed to move (or not by a half-pixel step): the move counts as blur again
        held = equivalent_blur(moved, photo, max_shift=most)
        assert held["shift_px"] == (0.0, 0.0) and held["blur_px"] == found["unshifted_blur_px"] > 0, held
    with pytest.raises(ValueError, match="--max-shift must be 0 or more px, got -1"):
        equivalent_blur(moved, photo, max_shift=-1)
    with pytest.raises(ValueError, match="not 5 panels of equal width"):
        panels(tmp_path / "preview.png", 5)


def test_preview_blur_refuses_a_panel_count_it_cannot_split_and_names_the_preview_at_fault(tmp_path, capsys):
    """--panels 0 was a ZeroDivisionError, 1 (or -1) "the photo has almost no object pixels"; and with
    several previews that line did not say which one had none."""
    import numpy as np
    from PIL import Image

    from scripts.preview_blur import main

    white = tmp_path / "step_000100.png"
    Image.fromarray(np.full((8, 24, 3), 255, np.uint8)).save(white)
    for panels in ("0", "1", "-1"):
        with pytest.raises(SystemExit) as stopped:
            main([str(white), "--panels", panels])
        assert stopped.value.code == 2
        said = capsys.readouterr().err.splitlines()[-1]  # (argparse names the program after sys.argv[0])
        assert said.endswith(f": error: argument --panels: must be at least 2, got {panels}"), said
    with pytest.raises(ValueError, match=f"^{white}: the photo has almost no object pixels"):
        main([str(white)])


def test_running_the_baseline_module_points_to_the_benchmark_that_uses_it(tmp_path):
    """`python scripts/baselines.py --help` printed nothing and exited 0, as if it had run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(SCRIPT.parent / "baselines.py"), "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "`python scripts/benchmark.py quality` trains beside taichi-nerf; run that" in done.stderr
