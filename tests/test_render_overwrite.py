"""`render --split` into a folder holding an earlier render (issue 23): refused without
--overwrite; with it, only the earlier render's metrics.json and PNGs go, after every check."""
import json

import pytest

from taichi_nerf import cli

from .conftest import ARCH, snapshot


def _render(run, out, *extra) -> int:
    return cli.main(["render", "--ckpt", str(run), "--split", "test", "--out", str(out), "--no-progress",
                     "--arch", ARCH, *map(str, extra)])


def test_earlier_render_is_refused_then_replaced_by_overwrite(trained_builtin, tmp_path, capsys):
    _, run = trained_builtin
    out = tmp_path / "renders"
    assert _render(run, out, "--depth") == 0
    (out / "NOTES.md").write_text("my notes\n")
    (out / "cover.png").write_bytes(b"not a render")  # a PNG render did not name
    before = snapshot(out)
    assert sum(name.endswith(".png") for name in before) == 3 * 2 + 1
    capsys.readouterr()
    for extra in ([], ["--limit", "1"]):
        assert _render(run, out, *extra) == cli.EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0], err
        assert "(metrics.json and 6 PNGs)" in err[0]
        assert snapshot(out) == before
    # a check that refuses after the folder's: still nothing removed
    assert cli.main(["render", "--ckpt", str(run), "--split", "bogus", "--out", str(out), "--overwrite",
                     "--no-progress", "--arch", ARCH]) == cli.EXIT_USAGE
    assert snapshot(out) == before
    assert _render(run, out, "--limit", "1", "--overwrite") == 0
    after = snapshot(out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 1
    listed = {name for row in metrics["images"] for name in row["files"].values()}
    assert {n for n in after if n.endswith(".png")} == listed | {"cover.png"}  # no PNG of the earlier render left
    assert after["NOTES.md"] == before["NOTES.md"] and after["cover.png"] == before["cover.png"]


def test_the_api_says_the_refusal_in_its_own_words(run, tmp_path, capsys):
    """evaluate(images_dir=...) told a Python caller to "add --overwrite ... or choose another --out"."""
    from taichi_nerf.api import evaluate
    from taichi_nerf.outputs.render_folder import RenderFolderError

    out = tmp_path / "r"
    out.mkdir()
    (out / "000_r_0.png").write_bytes(b"png of an earlier render")
    with pytest.raises(RenderFolderError, match="add overwrite=True to replace it, or choose another images_dir$"):
        evaluate(run, "test", arch=ARCH, progress=False, images_dir=out, limit=1)
    with pytest.raises(RenderFolderError, match="is a file; .* choose another images_dir$"):
        evaluate(run, "test", arch=ARCH, progress=False, images_dir=out / "000_r_0.png", limit=1)
    assert _render(run, out) != 0
    err = capsys.readouterr().err
    assert "add --overwrite to replace it, or choose another --out" in err
    # what is there, as it is: one PNG, no metrics.json (it said "1 files: metrics.json and its PNGs")
    assert "(1 PNG named as render names its views, e.g. 000_r_0.png; no metrics.json)" in err
    assert sorted(p.name for p in out.iterdir()) == ["000_r_0.png"]


def test_an_interrupted_render_counts_and_the_api_follows_the_rule(trained_builtin, tmp_path):
    from taichi_nerf.api import evaluate
    from taichi_nerf.outputs.render_folder import RenderFolderError

    _, run = trained_builtin
    out = tmp_path / "r"
    out.mkdir()
    (out / "000_r_0.png").write_bytes(b"png of a render killed before its metrics.json")
    with pytest.raises(RenderFolderError, match="earlier render"):
        evaluate(run, "test", arch=ARCH, progress=False, images_dir=out, limit=1)
    assert (out / "000_r_0.png").exists()
    evaluate(run, "test", arch=ARCH, progress=False, images_dir=out, limit=1, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["metrics.json", *json.loads((out / "metrics.json").read_text())["images"][0]["files"].values()])
