"""`export mesh` warns when the mesh is (nearly) the scene box or the field is untrained (issue 23)."""
import pytest
import torch

from taichi_nerf import cli

from .conftest import ARCH, tiny_config


def _export(run, out, capsys, resolution=32) -> str:
    assert cli.main(["export", "mesh", "--ckpt", str(run), "--resolution", str(resolution), "--out", str(out),
                     "--no-progress", "--arch", ARCH]) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def one_step_run(tiny_scene, tmp_path_factory):
    from taichi_nerf.training.trainer import Trainer

    run = tmp_path_factory.mktemp("untrained") / "run"
    Trainer(tiny_config(tiny_scene, run, steps=1, eval_every=1, preview_every=1, checkpoint_every=1,
                        grid_warmup=1)).run()
    return run


def test_an_untrained_field_warns_that_its_mesh_is_the_box(one_step_run, tmp_path, capsys):
    text = _export(one_step_run, tmp_path / "m.ply", capsys)
    warnings = [line for line in text.splitlines() if line.startswith("warning:")]
    assert any("the mesh is (nearly) the box" in w and "raise --threshold" in w for w in warnings), text
    assert any("nearly uniform" in w and "untrained" in w for w in warnings), text
    assert any("renders an opaque surface" in w and "train longer" in w for w in warnings), text
    assert (tmp_path / "m.ply").is_file()  # a warning, not a refusal
    import taichi_nerf as tn

    _, mesh = tn.export_mesh(one_step_run, tmp_path / "api.ply", resolution=32, arch=ARCH, progress=False)
    assert any(w.endswith("raise --threshold (from Python: threshold=)") for w in mesh.warnings), mesh.warnings


def test_a_step_0_checkpoint_says_it_is_untrained(one_step_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(one_step_run, run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["step"] = 0  # a checkpoint saved before the first step
    torch.save(state, run / "checkpoint.pt")
    assert "warning: the checkpoint is at step 0" in _export(run, tmp_path / "m.obj", capsys)


def test_a_trained_field_exports_without_warnings(trained_builtin, tmp_path, capsys):
    _, run = trained_builtin
    text = _export(run, tmp_path / "m.ply", capsys, resolution=48)
    assert "warning" not in text and "wrote" in text


def test_a_threshold_near_the_peak_warns_of_a_handful_of_triangles(trained_builtin, tmp_path, capsys):
    import re

    _, run = trained_builtin
    argv = ["export", "mesh", "--ckpt", str(run), "--resolution", "48", "--no-progress", "--arch", ARCH]
    assert cli.main([*argv, "--threshold", "1e9", "--out", str(tmp_path / "none.ply")]) == cli.EXIT_USAGE
    peak = float(re.search(r"the density peaks at ([0-9.e+-]+)", capsys.readouterr().err).group(1))
    assert cli.main([*argv, "--threshold", f"{0.97 * peak:.6g}", "--out", str(tmp_path / "specks.ply")]) == 0
    text = capsys.readouterr().out
    assert re.search(r"warning: only \d+ triangles: the threshold .* is near the density's peak", text), text
    assert "try --threshold" in text and (tmp_path / "specks.ply").is_file()
    # a Python caller was told the flag alone: now the keyword too, in the refusal and in the warning
    import taichi_nerf as tn
    from taichi_nerf.outputs.export import ExportError

    with pytest.raises(ExportError, match=r"^the threshold 1e\+09 gives an empty mesh: .*; try --threshold (\S+) "
                                          r"\(from Python: threshold=\1\)$"):
        tn.export_mesh(run, tmp_path / "none.ply", resolution=48, threshold=1e9, arch=ARCH, progress=False)
    _, mesh = tn.export_mesh(run, tmp_path / "api.ply", resolution=48, threshold=0.97 * peak, arch=ARCH,
                             progress=False)
    assert any(re.search(r"; try --threshold (\S+) \(from Python: threshold=\1\)$", w) for w in mesh.warnings)


def test_a_field_trained_in_ndc_names_the_retraining_both_ways():
    from types import SimpleNamespace

    from taichi_nerf.outputs.export import ExportError, check_exportable

    with pytest.raises(ExportError, match=r"retrain with --no-ndc \(from Python: ndc=False\)\)$"):
        check_exportable(SimpleNamespace(scene=SimpleNamespace(ndc=True)), "mesh")
