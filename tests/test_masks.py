"""Masks in every layout (data/masks.py), what training does with them, and every bad-mask case
refused in one line naming the first bad file (issue 25). Small hand-made datasets: fast."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from taichi_nerf.cli import main
from taichi_nerf.data.dataset import DataError
from taichi_nerf.data.loaders import read_dataset

from .conftest import refused

SIZE, VIEWS = 24, 6


def _poses(count=VIEWS, radius=3.0):
    from taichi_nerf.stages.cameras import look_at

    return [look_at((radius * math.cos(a), radius * math.sin(a), 1.0), (0.0, 0.0, 0.0)).numpy()
            for a in np.linspace(0, 2 * math.pi, count, endpoint=False)]


def _photo(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _mask(size=SIZE, k=0, disc=0.3) -> np.ndarray:
    """White disc (the object) on black."""
    y, x = np.mgrid[:size, :size] + 0.5
    return ((np.hypot(x - size / 2, y - size / 2) < size * (disc + 0.02 * k)) * 255).astype(np.uint8)


def write_transforms(root, masks="folder", count=VIEWS, mask_size=SIZE, mask_ext=".png", focal=SIZE, disc=0.3):
    """A transforms.json dataset; masks: "folder" (masks/ beside images/), "frames" (mask_path), None."""
    (root / "images").mkdir(parents=True)
    frames = []
    for k, pose in enumerate(_poses(count)):
        Image.fromarray(_photo(k)).save(root / "images" / f"IMG_{k}.JPG", quality=95)
        frame = {"file_path": f"images/IMG_{k}.JPG", "transform_matrix": pose.tolist()}
        if masks is not None:
            folder = "masks" if masks == "folder" else "my_masks"
            (root / folder).mkdir(exist_ok=True)
            Image.fromarray(_mask(mask_size, k, disc)).save(root / folder / f"IMG_{k}{mask_ext}")
            if masks == "frames":
                frame["mask_path"] = f"{folder}/IMG_{k}{mask_ext}"
        frames.append(frame)
    meta = {"w": SIZE, "h": SIZE, "fl_x": focal, "fl_y": focal, "cx": SIZE / 2, "cy": SIZE / 2, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def write_llff(root, count=8):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = []
    for k, pose in enumerate(_poses(count)):
        Image.fromarray(_photo(k)).save(root / "images" / f"DSC_{k:04d}.JPG", quality=95)
        Image.fromarray(_mask(4 * SIZE, k)).save(root / "masks" / f"DSC_{k:04d}.jpg", quality=90)  # 4x, JPEG
        llff = np.stack([-pose[:3, 1], pose[:3, 0], pose[:3, 2], pose[:3, 3], [SIZE, SIZE, SIZE]], axis=1)
        rows.append(np.concatenate([llff.reshape(-1), [1.5, 5.0]]))
    np.save(root / "poses_bounds.npy", np.array(rows))
    return root


def write_colmap_text(root, count=VIEWS):
    """images/ + sparse/0 as COLMAP text files (OpenCV world-to-camera), masks/ beside images/
    in COLMAP's own naming (IMG_0.JPG.png)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(f"1 PINHOLE {SIZE} {SIZE} {SIZE} {SIZE} {SIZE / 2} {SIZE / 2}\n")
    lines, rng = [], np.random.default_rng(0)
    points = rng.uniform(-0.5, 0.5, (20, 3))
    (model / "points3D.txt").write_text("".join(f"{i + 1} {p[0]} {p[1]} {p[2]} 128 128 128 0.5\n"
                                                for i, p in enumerate(points)))
    for k, pose in enumerate(_poses(count)):
        Image.fromarray(_photo(k)).save(root / "images" / f"IMG_{k}.JPG", quality=95)
        Image.fromarray(_mask(SIZE, k)).save(root / "masks" / f"IMG_{k}.JPG.png")
        c2w = pose.copy()
        c2w[:3, 1:3] *= -1  # OpenGL -> OpenCV
        w2c = np.linalg.inv(c2w)
        q = _quaternion(w2c[:3, :3])
        lines.append(f"{k + 1} {q[0]} {q[1]} {q[2]} {q[3]} {w2c[0, 3]} {w2c[1, 3]} {w2c[2, 3]} 1 IMG_{k}.JPG\n\n")
    (model / "images.txt").write_text("".join(lines))
    return root


def _quaternion(r: np.ndarray) -> np.ndarray:
    w = math.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    return np.array([w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)])


def _alpha_matches_masks(ds, size=SIZE):
    for split in ds.splits.values():
        assert split.mask is not None and split.mask.shape == (split.count, split.height, split.width)
        assert torch.equal(split.rgba[..., 3], split.mask)  # opaque photos: alpha is the mask
        inside = split.mask[:, size // 2, size // 2]
        corner = split.mask[:, 0, 0]
        assert bool((inside == 255).all()) and bool((corner == 0).all())


# --- every layout ----------------------------------------------------------------------------
def test_masks_folder_beside_images_in_transforms(tmp_path):
    ds = read_dataset(write_transforms(tmp_path / "ds"))
    assert ds.mask_mode == "transparent"
    _alpha_matches_masks(ds)
    assert any(n.startswith("masks: 6 from masks/")
               and "--mask-mode ignore or off (from Python: mask_mode=) changes this" in n for n in ds.notes)
    assert ds.background.name == "white"  # masked-out pixels are transparent: the background rules apply
    assert repr(ds).endswith("; bounded, masks transparent, background white>"), repr(ds)
    assert all(repr(s) == f"<Split {s.count} x {s.width}x{s.height}, mask>" for s in ds.splits.values())
    assert ds.background.reason.startswith("the masks make transparency")  # not "the images have": they are JPEGs


def test_mask_path_per_frame(tmp_path):
    ds = read_dataset(write_transforms(tmp_path / "ds", masks="frames", mask_ext=".jpg"))
    _alpha_matches_masks(ds)
    assert any("the frames' mask_path" in n for n in ds.notes)



def test_blender_splits_reusing_image_names_each_get_their_own_masks(tmp_path):
    # train/r_000.png and val/r_000.png: one name, two photos and two masks.
    root = tmp_path / "blender"
    poses = _poses(6)
    for s, split in enumerate(("train", "val")):
        frames = []
        for k in range(3):
            for folder in (split, f"masks/{split}"):
                (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_photo(k)).save(root / split / f"r_{k:03d}.png")
            Image.fromarray(_mask(SIZE, 3 * s + k)).save(root / "masks" / split / f"r_{k:03d}.png")
            frames.append({"file_path": f"./{split}/r_{k:03d}", "transform_matrix": poses[3 * s + k].tolist(),
                           "mask_path": f"masks/{split}/r_{k:03d}.png"})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    ds = read_dataset(root)
    for s, split in enumerate(("train", "val")):
        for k in range(3):
            assert np.array_equal(ds.splits[split].mask[k].numpy(), _mask(SIZE, 3 * s + k)), (split, k)
    meta = json.loads((root / "transforms_train.json").read_text())
    meta["frames"][1]["file_path"] = "./val/r_000"  # a second r_000 in one file, with another mask
    (root / "transforms_train.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"transforms_train.json frame 1: its image .*r_000.png has the name of "
                                        r"another frame's image, with another mask"):
        read_dataset(root)

def test_llff_masks_of_another_size_and_extension(tmp_path):
    ds = read_dataset(write_llff(tmp_path / "ds"))  # .JPG images, 4x larger .jpg masks
    assert ds.format == "llff"
    _alpha_matches_masks(ds)


@pytest.mark.parametrize("masks_name", ["masks", "masks_4"])
def test_llff_masks_beside_a_pre_shrunk_images_folder_alone(tmp_path, masks_name):
    """A capture shipped with only images_4/ (no images/): its masks/ or masks_4/ still count."""
    root = write_llff(tmp_path / "ds")
    (root / "images").rename(root / "images_4")
    (root / "masks").rename(root / masks_name)
    ds = read_dataset(root, downscale=4)
    assert any(f"from {masks_name}/" in n for n in ds.notes), ds.notes
    _alpha_matches_masks(ds)


def test_colmap_layout_with_colmap_mask_names(tmp_path):
    ds = read_dataset(write_colmap_text(tmp_path / "ds"))
    assert ds.format == "colmap"
    _alpha_matches_masks(ds)


def test_ignore_mode_keeps_pixels_and_draws_rays_only_where_masks_keep(tmp_path, monkeypatch):
    from taichi_nerf.training.trainer import Trainer

    from .conftest import sampled_images, tiny_config

    root = write_transforms(tmp_path / "ds")
    plain = read_dataset(root, mask_mode="off")
    assert plain.mask_mode == "" and plain.splits["train"].mask is None
    ds = read_dataset(root, mask_mode="ignore")
    assert any("(ignore: masked-out pixels are left out of the loss; --mask-mode transparent or off (from Python: "
               "mask_mode=) changes this)" in n for n in ds.notes), ds.notes
    train = ds.splits["train"]
    assert torch.equal(train.rgba, plain.splits["train"].rgba)  # pixels untouched
    trainer = Trainer(tiny_config(root, tmp_path / "run", mask_mode="ignore", batch_rays=2048), dataset=ds)
    images, pixels = (t.long() for t in sampled_images(trainer, monkeypatch))
    kept = train.mask.reshape(train.count, -1)[images, pixels]
    assert bool((kept >= 128).all())
    assert len(set(images.tolist())) == train.count  # from every image


def test_ignore_mode_warns_when_the_masks_cut_out_an_object_not_distractors(tmp_path):
    root = write_transforms(tmp_path / "ds")  # a kept disc in the middle: an object, as on a turntable
    hint = "--mask-mode transparent (from Python: mask_mode='transparent') learns it alone"  # either front end
    assert any(hint in w and "keep only 0% of the images' borders" in w
               for w in read_dataset(root, mask_mode="ignore").warnings)
    assert not any(hint in w for w in read_dataset(root).warnings)  # the default mode is the one it suggests
    for path in (root / "masks").iterdir():  # a masked-out disc: a distractor in a scene, what ignore is for
        Image.fromarray(255 - np.asarray(Image.open(path))).save(path)
    assert not any(hint in w for w in read_dataset(root, mask_mode="ignore").warnings)


def test_an_object_its_masks_cut_out_draws_half_its_rays_by_the_error_map(tmp_path, capsys):
    """ethiopianHead (a turntable cut out by its masks/) scored +0.25 dB with a less blurred face
    when half of each batch came from the error map, on two seeds on each of two CPUs; the clean
    renders, which have no mask files, were level or lower. So mask files cutting an object out
    (--mask-mode transparent) make it the default, and nothing else does: not ``ignore``'s
    distractor masks, not the same photos without masks; a given --pixel-sampling wins."""
    from types import SimpleNamespace

    from taichi_nerf.cli.train import report_start
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.rendering.scene import Scene
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    root = write_transforms(tmp_path / "ds")
    cut_out = read_dataset(root)
    assert Scene.from_dataset(cut_out).cut_out
    trainer = Trainer(tiny_config(root, tmp_path / "run"), dataset=cut_out)
    assert trainer.cfg.pixel_sampling == "error" and trainer.ray_batches.error_map is not None
    report_start(trainer, resume=False)
    assert "rays: half of each step's where the field's recent error is largest (the error map; the default for " \
        "an object its masks cut out: --pixel-sampling uniform turns it off)" in capsys.readouterr().out
    for mode in ("ignore", "off"):
        scene = Scene.from_dataset(read_dataset(root, mask_mode=mode))
        assert not scene.cut_out and TrainConfig().with_kind_defaults_for(scene).pixel_sampling == "uniform"
    given = TrainConfig(pixel_sampling="uniform").with_kind_defaults_for(Scene.from_dataset(cut_out))
    assert given.pixel_sampling == "uniform"
    forward_facing = SimpleNamespace(ndc=True, unbounded=False, cut_out=True)  # objects alone
    assert TrainConfig().with_kind_defaults_for(forward_facing).pixel_sampling == "uniform"


def test_an_object_its_masks_cut_out_refines_its_poses(tmp_path, capsys):
    """A real turntable capture's poses are off (ethiopianHead: by a quarter of a degree), and its
    val cameras share their neighbours' errors: refined, with the corrections carried to the val
    cameras, it scored +0.4 dB with a less blurred face. So mask files cutting an object out make
    --refine-poses the default and the start says so; without cut-out masks (ignore's, none) the scene
    kind decides, and an object in a box or a forward-facing scene keeps its poses; a given
    --no-refine-poses wins."""
    from types import SimpleNamespace

    from taichi_nerf.cli.train import report_start
    from taichi_nerf.config import TrainConfig
    from taichi_nerf.rendering.scene import Scene
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config

    root = write_transforms(tmp_path / "ds")
    cut_out = read_dataset(root)
    trainer = Trainer(tiny_config(root, tmp_path / "run"), dataset=cut_out)
    assert trainer.pose_refinement is not None and trainer.renderer.carried is not None
    report_start(trainer, resume=False)
    assert "validation and new views carry the corrections of the training cameras near them (the default for an " \
        "object its masks cut out: --no-refine-poses turns it off)" in " ".join(capsys.readouterr().out.split())
    assert TrainConfig().refine_poses_for(Scene.from_dataset(cut_out))
    assert not TrainConfig(refine_poses=False).refine_poses_for(Scene.from_dataset(cut_out))
    for mode in ("ignore", "off"):  # not cut out: the scene kind decides (scenery all around refines too)
        scene = Scene.from_dataset(read_dataset(root, mask_mode=mode))
        assert not scene.cut_out and scene.unbounded and TrainConfig().refine_poses_for(scene)
    assert not TrainConfig().refine_poses_for(SimpleNamespace(ndc=True, unbounded=False, cut_out=True))
    assert not TrainConfig().refine_poses_for(SimpleNamespace(ndc=False, unbounded=False, cut_out=False))
    given = Trainer(tiny_config(root, tmp_path / "given", refine_poses=False), dataset=cut_out)
    assert given.pose_refinement is None and given.renderer.carried is None


def test_data_info_and_train_say_masks_are_used(tmp_path, capsys):
    root = write_transforms(tmp_path / "ds")
    assert main(["data", "info", str(root)]) == 0
    assert "masks: 6 from masks/ (transparent" in capsys.readouterr().out
    assert main(["data", "info", str(root), "--mask-mode", "off"]) == 0
    assert "masks:" not in capsys.readouterr().out


def test_visual_hull_shrinks_the_box_and_keeps_the_object(tmp_path):
    from taichi_nerf.data.mask_hull import carved_points

    # a wide lens (90 degrees), as the cameras stand close to the box: each sees all of it
    root = write_transforms(tmp_path / "ds", count=12, focal=SIZE / 2, disc=0.12)
    off = read_dataset(root, mask_mode="off")
    ds = read_dataset(root)
    before, after = off.aabb, ds.aabb
    assert bool((after[:3] >= before[:3]).all() and (after[3:] <= before[3:]).all())
    assert float(torch.prod(after[3:] - after[:3])) < 0.5 * float(torch.prod(before[3:] - before[:3]))
    # the disc masks cut a cylinder-like hull around the origin: the origin stays, a point off to the side goes
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.2], [1.5, 1.5, 0.0]], dtype=torch.float64)
    assert carved_points(ds.splits["train"], points).tolist() == [False, False, True]


def test_the_grid_never_measures_or_marches_a_cell_outside_the_visual_hull(tmp_path):
    """Transparent masks: the grid's seen cells are the hull's (and some training ray's), its
    updates measure only those, and a trained grid marches nothing outside them."""
    from taichi_nerf.data.mask_hull import hull_cells
    from taichi_nerf.training.trainer import Trainer

    from .conftest import tiny_config
    from .test_occupancy import cells_of

    root = write_transforms(tmp_path / "ds", count=12, focal=SIZE / 2, disc=0.12)
    trainer = Trainer(tiny_config(root, tmp_path / "run", steps=30, grid_warmup=5, grid_update_every=4))
    grid = trainer.renderer.grid
    hull = hull_cells(trainer.train, grid.aabb.cpu(), grid.resolution).bool()
    seen = grid.seen.bool().cpu()
    assert bool(seen.any()) and not bool((seen & ~hull).any()) and float(hull.float().mean()) < 0.9
    measured = []
    density = trainer.renderer.density
    trainer.renderer.density = lambda pts: (measured.append(cells_of(grid, pts)), density(pts))[1]
    for _ in range(30):
        trainer.step()
    assert grid.updates > 3 and bool(seen[torch.cat(measured).cpu()].all())
    assert not bool((grid.occupied.bool().cpu() & ~hull).any())


# --- bad masks: one line naming the first bad file ---------------------------------------------
def test_missing_mask_file(tmp_path, capsys):
    root = write_transforms(tmp_path / "ds")
    (root / "masks" / "IMG_3.png").unlink()
    err = refused(capsys, ["data", "info", str(root)], "IMG_3.JPG: no mask for this image")
    assert err.endswith("add it, or --mask-mode off (from Python: mask_mode='off') trains without the masks"), err
    assert main(["data", "info", str(root), "--mask-mode", "off"]) == 0  # the way out the line gives
    assert "masks:" not in capsys.readouterr().out


def test_more_masks_than_images(tmp_path, capsys):
    root = write_transforms(tmp_path / "ds")
    Image.fromarray(_mask()).save(root / "masks" / "IMG_99.png")
    err = refused(capsys, ["data", "info", str(root)], "IMG_99.png: mask without an image (7 masks for 6 images")
    assert err.endswith("remove it, or --mask-mode off (from Python: mask_mode='off') trains without the masks"), err


def test_two_masks_for_one_image(tmp_path, capsys):
    """A second export beside the first (IMG_2.jpg by IMG_2.png) is not silently passed over: which
    one is meant cannot be told."""
    root = write_transforms(tmp_path / "ds")
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(root / "masks" / "IMG_2.jpg")
    refused(capsys, ["data", "info", str(root)], "IMG_2.png: a second mask for one image, beside IMG_2.jpg")


def test_all_black_mask(tmp_path, capsys):
    root = write_transforms(tmp_path / "ds")
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(root / "masks" / "IMG_2.png")
    refused(capsys, ["data", "info", str(root)], "IMG_2.png: mask is all black")


@pytest.mark.parametrize("mode, value, brightest", [("L", 1, 1), ("RGB", (255, 0, 0), 76)])
def test_a_mask_of_0_and_1_or_in_colour_is_not_called_all_black(tmp_path, capsys, mode, value, brightest):
    """A numpy label mask saved as 0/1, or a red one, looks black but is not: the line says what it holds."""
    root = write_transforms(tmp_path / "ds")
    keep = _mask() > 0
    mask = Image.new(mode, (SIZE, SIZE))
    mask.paste(value, mask=Image.fromarray(keep))
    mask.save(root / "masks" / "IMG_2.png")
    line = refused(capsys, ["data", "info", str(root)], f"IMG_2.png: mask keeps no pixel: its brightest value is "
                                                        f"{brightest} of 255", "white (255) marks what to keep")
    assert "all black" not in line


def test_mask_of_another_shape(tmp_path, capsys):
    root = write_transforms(tmp_path / "ds")
    Image.fromarray(np.full((SIZE, 2 * SIZE), 255, np.uint8)).save(root / "masks" / "IMG_1.png")
    line = refused(capsys, ["data", "info", str(root)], "IMG_1.png: mask is 48x24, its image is 24x24")
    assert "aspect ratio" in line and "cannot read" not in line and line.count("IMG_1.png") == 1  # read: said once


def test_unreadable_mask(tmp_path, capsys):
    root = write_transforms(tmp_path / "ds")
    (root / "masks" / "IMG_4.png").write_bytes(b"not a png")
    refused(capsys, ["data", "info", str(root)], "IMG_4.png: cannot read mask")


def test_mask_path_on_some_frames_only(tmp_path, capsys):
    root = write_transforms(tmp_path / "ds", masks="frames")
    meta = json.loads((root / "transforms.json").read_text())
    del meta["frames"][2]["mask_path"]
    (root / "transforms.json").write_text(json.dumps(meta))
    refused(capsys, ["data", "info", str(root)], "frame 2 (IMG_2.JPG): frame has no 'mask_path'")


def test_mask_path_to_a_missing_file(tmp_path):
    root = write_transforms(tmp_path / "ds", masks="frames")
    (root / "my_masks" / "IMG_0.png").unlink()
    with pytest.raises(DataError, match="IMG_0.png: mask file not found") as refused_here:
        read_dataset(root)
    # the way out in a Python caller's words too (it named only the flag): mask_mode='off'
    assert "masks; --mask-mode off (from Python: mask_mode='off') trains without the masks)" in str(refused_here.value)


def test_bad_mask_mode(tmp_path, capsys):
    """Only a Python caller reaches the loader's check (the flag has choices): it named --mask-mode."""
    with pytest.raises(DataError, match="^mask_mode must be one of transparent, ignore, off, got 'sometimes'$"):
        read_dataset(write_transforms(tmp_path / "ds"), mask_mode="sometimes")
    with pytest.raises(SystemExit):
        main(["data", "info", str(tmp_path / "ds"), "--mask-mode", "sometimes"])
    assert "argument --mask-mode: invalid choice: 'sometimes'" in capsys.readouterr().err


# --- degenerate reconstructions ----------------------------------------------------------------
def _model(centres, points):
    from taichi_nerf.data.colmap_files import Model

    n = len(centres)
    return Model(cameras={}, image_ids=np.arange(n), names=[f"{k}.jpg" for k in range(n)], camera_ids=np.ones(n, int),
                 qvecs=np.tile([1.0, 0, 0, 0], (n, 1)), tvecs=-np.asarray(centres, float),
                 observed=[np.arange(len(points)) for _ in range(n)], point_ids=np.arange(len(points)),
                 xyz=np.asarray(points, float), rgb=np.zeros((len(points), 3), np.uint8),
                 errors=np.zeros(len(points)), track_lengths=np.full(len(points), n))


def test_baseline_ratio_tells_a_tripod_from_an_orbit():
    from taichi_nerf.capture.degenerate import MIN_BASELINE_RATIO, baseline_ratio, degenerate_message

    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (200, 3)) + [0, 0, 10]  # the scene, 10 in front
    tripod = rng.normal(0, 0.01, (20, 3))  # the camera turns about its centre
    orbit = np.stack([[10 * math.cos(a), 10 * math.sin(a), 0] for a in np.linspace(0, 6, 20)])
    assert baseline_ratio(_model(tripod, points)) < 0.01 < MIN_BASELINE_RATIO
    assert baseline_ratio(_model(orbit, points + [0, 0, -10])) > 0.5
    text = degenerate_message("photos", 0.004, masked=False)
    assert "0.004" in text and "--masks" in text and "--keep-degenerate" in text and "\n" not in text


def test_mask_mode_choices_are_the_loaders():
    import typing

    from taichi_nerf.config import MaskMode, TrainConfig
    from taichi_nerf.data.masks import MASK_MODES

    assert typing.get_args(MaskMode) == MASK_MODES and TrainConfig().mask_mode == "transparent"
    assert TrainConfig().dataset_options()["mask_mode"] == "transparent"


def test_blender_splits_of_other_shapes_check_each_mask_against_its_own_splits_image(tmp_path):
    """train/r_000.png landscape and val/r_000.png portrait (splits may differ in size): train's mask
    was compared with val's image of its name, and a matching dataset refused as of another shape."""
    root = tmp_path / "blender"
    poses = _poses(6)
    for s, (split, shape) in enumerate((("train", (SIZE, 2 * SIZE)), ("val", (2 * SIZE, SIZE)))):
        frames = []
        for k in range(3):
            for folder in (split, f"masks/{split}"):
                (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.resize(_photo(k), (*shape, 3))).save(root / split / f"r_{k:03d}.png")
            Image.fromarray(np.full(shape, 255, np.uint8)).save(root / "masks" / split / f"r_{k:03d}.png")
            frames.append({"file_path": f"./{split}/r_{k:03d}", "transform_matrix": poses[3 * s + k].tolist(),
                           "mask_path": f"masks/{split}/r_{k:03d}.png"})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    ds = read_dataset(root)
    assert {name: tuple(split.mask.shape) for name, split in ds.splits.items()} == {
        "train": (3, SIZE, 2 * SIZE), "val": (3, 2 * SIZE, SIZE)}
