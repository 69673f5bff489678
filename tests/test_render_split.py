"""`render --split`: every view of a split as PNG, with the metrics `eval` reports."""
import json
import shutil

import numpy as np
import torch
from PIL import Image

from taichi_nerf import cli
from taichi_nerf.data.loaders import read_dataset
from taichi_nerf.outputs.metrics import psnr
from taichi_nerf.rendering.backgrounds import over_background

from .conftest import ARCH


def test_render_split_writes_every_view_and_its_metrics(trained_builtin, tmp_path, capsys):
    scene, run = trained_builtin
    out = tmp_path / "renders" / "test"
    assert cli.main(["render", "--ckpt", str(run), "--split", "test", "--out", str(out), "--depth", "--compare",
                     "--no-progress", "--arch", ARCH]) == 0
    said = capsys.readouterr().out
    result = json.loads((out / "metrics.json").read_text())
    assert "3 test views" in said and f"{result['object_psnr']:.2f} dB on the object's pixels alone" in said
    test = read_dataset(scene).split("test")
    assert result["count"] == len(result["images"]) == test.count == 3
    for i, row in enumerate(result["images"]):
        pred = np.array(Image.open(out / row["files"]["rgb"]))
        assert pred.shape == (test.height, test.width, 3)
        # the PNG is the prediction the PSNR was measured on (to 8-bit rounding)
        truth = over_background(test.rgba[i], (1.0, 1.0, 1.0))
        assert abs(psnr(torch.from_numpy(pred).float() / 255, truth) - row["psnr"]) < 0.2
        side = np.asarray(Image.open(out / row["files"]["compare"]))
        assert side.shape == (test.height, 2 * test.width, 3)
        assert np.abs(side[:, test.width:].astype(float) / 255 - truth.numpy()).max() < 1.5 / 255
        depth = np.asarray(Image.open(out / row["files"]["depth"]))
        assert depth.shape == (test.height, test.width, 3) and depth.std() > 5
    assert 12 < result["psnr"] < 60


def test_eval_and_render_split_share_one_code_path(trained_builtin, tmp_path, capsys):
    from taichi_nerf.api import evaluate

    _, run = trained_builtin
    assert cli.main(["render", "--ckpt", str(run), "--split", "val", "--out", str(tmp_path / "v"), "--no-progress",
                     "--arch", ARCH]) == 0
    written = json.loads((tmp_path / "v" / "metrics.json").read_text())
    direct = evaluate(run, "val", arch=ARCH, progress=False)
    assert written["psnr"] == direct["psnr"] and written["ssim"] == direct["ssim"]
    assert [r["name"] for r in written["images"]] == [r["name"] for r in direct["images"]]
    written_files = sorted(r["files"]["rgb"] for r in written["images"])
    assert sorted(p.name for p in (tmp_path / "v").glob("*.png")) == written_files


def test_unknown_split_is_one_line_listing_the_splits(trained_builtin, tmp_path, capsys):
    _, run = trained_builtin
    code = cli.main(["render", "--ckpt", str(run), "--split", "bogus", "--out", str(tmp_path / "x"), "--no-progress",
                     "--arch", ARCH])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_USAGE and len(err) == 1
    assert "bogus" in err[0] and all(name in err[0] for name in ("train", "val", "test"))


def test_objects_are_scored_alone_only_where_the_photos_have_transparency(trained_builtin, tmp_path):
    """``eval`` adds the objects' own PSNR on a set with transparency; on the same views
    flattened onto white (the background it renders on), nothing says where the objects are,
    so it has none, and the whole images score the same."""
    import shutil

    from taichi_nerf.api import evaluate

    scene, run = trained_builtin
    with_alpha = evaluate(run, "test", arch=ARCH, progress=False)
    assert all(np.isfinite(r["object_psnr"]) for r in with_alpha["images"]) and "object_psnr" in with_alpha
    flat = tmp_path / "flat"
    shutil.copytree(scene, flat)
    for png in (flat / "test").glob("*.png"):
        rgba = Image.open(png).convert("RGBA")
        Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB").save(png)
    opaque = evaluate(run, "test", data=str(flat), arch=ARCH, progress=False)
    assert "object_psnr" not in opaque and not any("object_psnr" in r for r in opaque["images"])
    assert abs(opaque["psnr"] - with_alpha["psnr"]) < 0.1


def test_eval_scores_val_where_the_data_has_no_test_split(trained_builtin, tmp_path, capsys):
    """LLFF captures hold out val alone: a plain ``eval`` scores the test views where there are
    some, else the val views (it used to load the data and then fail: "no 'test' split")."""
    import json
    import shutil

    from taichi_nerf.api import evaluate
    from taichi_nerf.cli import main

    scene, run = trained_builtin
    own = evaluate(run, arch=ARCH, progress=False, limit=1)
    assert own["split"] == "test" and own["data"] == str(scene.resolve())
    no_test = tmp_path / "no_test"
    shutil.copytree(scene, no_test)
    (no_test / "transforms_test.json").unlink()
    argv = ["eval", "--ckpt", str(run), "--data", str(no_test), "--limit", "2", "--no-progress", "--arch", ARCH]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "val" and result["count"] == 2
    assert result["data"] == str(no_test.resolve())  # which dataset these scores are of
    assert result["images"][0]["name"] == evaluate(run, "val", arch=ARCH, progress=False, limit=1)["images"][0]["name"]


def test_eval_and_render_refuse_data_of_another_scene(trained_builtin, tmp_path, capsys):
    """--data is the run's own dataset, perhaps moved: a forward-facing capture in its place puts
    the scene elsewhere (NDC), and scoring or drawing the object's field there means nothing."""
    import shutil

    import numpy as np

    from .conftest import refused
    from .test_data_formats import forward_facing_poses, llff_rows

    scene, run = trained_builtin
    other = tmp_path / "llff"
    photos = sorted((scene / "train").glob("*.png"))[:9]
    (other / "images").mkdir(parents=True)
    for k, photo in enumerate(photos):
        shutil.copy(photo, other / "images" / f"IMG_{k:04d}.png")
    np.save(other / "poses_bounds.npy", llff_rows(forward_facing_poses(len(photos)), 40, 40, 40.0, [(2.0, 6.0)] * 9))
    for argv in (["eval", "--ckpt", run, "--data", other, "--limit", "1"],
                 ["render", "--ckpt", run, "--data", other, "--path", "train", "--out", tmp_path / "p.gif"]):
        refused(capsys, [*argv, "--no-progress", "--arch", ARCH], f"{other}: not the scene",
                "an object in a box, now forward-facing (NDC)", "where its field means nothing; give the run's own")
    assert not (tmp_path / "p.gif").exists()


def test_render_split_into_the_datasets_folders_is_refused_and_leaves_them(trained_builtin, tmp_path, capsys):
    """`render --split val --out DATA/val` wrote its PNGs among the photos (an image-folder layout's next load
    counts them as photos): refused in one line, as train refuses such an --out; the folder is left as it was."""
    from .conftest import snapshot

    scene, run = trained_builtin
    before = snapshot(scene)
    for out, said in ((scene / "val", "holds the dataset's images"), (scene, "is the dataset's folder")):
        code = cli.main(["render", "--ckpt", str(run), "--split", "val", "--out", str(out), "--no-progress",
                         "--arch", ARCH])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == cli.EXIT_USAGE and len(err) == 1 and said in err[0], err
        assert "choose another folder" in err[0]
    assert snapshot(scene) == before
    # a new folder of its own inside the dataset's mixes with nothing (removed: the scene is shared)
    try:
        assert cli.main(["render", "--ckpt", str(run), "--split", "val", "--out", str(scene / "renders"),
                         "--no-progress", "--arch", ARCH]) == 0
    finally:
        shutil.rmtree(scene / "renders", ignore_errors=True)
