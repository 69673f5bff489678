"""Meshes and point clouds exported from a trained built-in scene lie on its true surface.

The built-in scene is an SDF (scenes/synthetic.py ``scene_sdf``), so the distance of every
exported vertex or point to the real surface is known. Measured on a 2-core CPU with the
``trained_builtin`` fixture (40 px, 400 steps, validation PSNR ~19 dB): mesh vertices at
resolution 96 have mean |SDF| 0.038 (the lattice spacing is 0.032), surface points 0.069;
a mesh in the wrong frame or at a wrong level scores 0.2 and more. Objects are ~0.3-0.45
in radius, inside a 3-unit box.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("skimage", reason="mesh export needs scikit-image: pip install -e '.[export]'")

from taichi_nerf import cli
from taichi_nerf.outputs import export
from taichi_nerf.outputs.surface import surface_points
from taichi_nerf.scenes.sdf import BOX_CENTER, SPHERE_CENTER
from taichi_nerf.scenes.synthetic import scene_sdf

from .conftest import ARCH

MESH_MEAN_SDF = 0.06  # measured 0.038
MESH_P90_SDF = 0.15  # measured 0.087
POINTS_MEAN_SDF = 0.1  # measured 0.069


@pytest.fixture(scope="module")
def mesh(trained_builtin, tmp_path_factory):
    from taichi_nerf.api import export_mesh

    _, run = trained_builtin
    path, result = export_mesh(run, tmp_path_factory.mktemp("mesh") / "sub" / "mesh.ply", resolution=96,
                               arch=ARCH, progress=False)
    return path, result


def test_mesh_lies_on_the_true_surface(mesh):
    _, m = mesh
    sdf = scene_sdf(m.vertices).abs().numpy()
    assert len(m.faces) > 5000
    assert sdf.mean() < MESH_MEAN_SDF and np.percentile(sdf, 90) < MESH_P90_SDF, (sdf.mean(), np.percentile(sdf, 90))
    # every object is there: some vertex lies close to each object's surface near its centre
    for centre in (SPHERE_CENTER, BOX_CENTER):
        near = np.linalg.norm(m.vertices - np.array(centre), axis=1) < 0.6
        assert near.sum() > 200


def test_mesh_is_closed_and_faces_outward(mesh):
    _, m = mesh
    edges = np.sort(np.concatenate([m.faces[:, [0, 1]], m.faces[:, [1, 2]], m.faces[:, [2, 0]]]), axis=1)
    _, uses = np.unique(edges, axis=0, return_counts=True)
    assert (uses == 2).mean() > 0.999  # watertight: every edge between exactly two triangles
    # outward: moving a vertex along its normal goes away from the true surface's inside
    n = export.vertex_normals(m.vertices, m.faces)
    outside = scene_sdf(m.vertices + 0.05 * n).numpy() - scene_sdf(m.vertices - 0.05 * n).numpy()
    assert (outside > 0).mean() > 0.9


def test_a_mesh_below_the_occupancy_grids_level_is_closed_too(trained_builtin):
    """A threshold below the density the occupancy grid calls empty puts the surface where the
    grid left points unqueried: marching cubes, masked by the grid, left it open there (1074
    open edges at 0.1, 64^3; 5913 at 0.01)."""
    from taichi_nerf.runs import checkpoint

    _, run = trained_builtin
    renderer, _, _ = checkpoint.load(run, ARCH)
    for level in (0.01, 0.1):
        m = export.extract_mesh(renderer, torch.ones(3), resolution=32, threshold=level, progress=False)
        edges = np.sort(np.concatenate([m.faces[:, [0, 1]], m.faces[:, [1, 2]], m.faces[:, [2, 0]]]), axis=1)
        _, uses = np.unique(edges, axis=0, return_counts=True)
        assert (uses == 2).all(), (level, int((uses != 2).sum()))


def test_mesh_colours_come_from_the_field(mesh):
    _, m = mesh
    colors = m.colors.astype(float)
    box = np.linalg.norm(m.vertices - np.array(BOX_CENTER), axis=1) < 0.5
    sphere = np.linalg.norm(m.vertices - np.array(SPHERE_CENTER), axis=1) < 0.5
    # blue tiles on the box; red and white checkers on the sphere
    assert colors[box, 2].mean() > colors[box, 0].mean() + 20
    assert colors[sphere, 0].mean() > colors[sphere, 2].mean() + 20


def test_ply_and_obj_round_trip(mesh, tmp_path):
    from taichi_nerf.scenes.obj import read_obj

    path, m = mesh
    assert path.is_file()  # its folder was created
    v, c, f = export.read_ply(path)
    assert np.array_equal(v, m.vertices) and np.array_equal(c, m.colors) and np.array_equal(f, m.faces)
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    obj = read_obj(export.write_obj(tmp_path / "m.obj", m.vertices, m.colors, m.faces))
    assert np.allclose(obj.positions, m.vertices, atol=1e-5) and np.array_equal(obj.faces, m.faces)
    assert np.allclose(obj.vertex_colors, m.colors / 255.0, atol=1e-3)


def test_export_mesh_cli_says_the_threshold_and_errors_in_one_line(trained_builtin, tmp_path, capsys):
    _, run = trained_builtin
    out = tmp_path / "m.obj"
    assert cli.main(["export", "mesh", "--ckpt", str(run), "--resolution", "32", "--out", str(out), "--no-progress",
                     "--arch", ARCH]) == 0
    stdout = capsys.readouterr().out
    assert "threshold" in stdout and "auto" in stdout and out.is_file() and "replacing" not in stdout
    assert cli.main(["export", "mesh", "--ckpt", str(run), "--resolution", "16", "--threshold", "1", "--out", str(out),
                     "--no-progress", "--arch", ARCH]) == 0
    assert f"wrote {out} (replacing the earlier one): " in capsys.readouterr().out  # said, as render says it
    for argv, message in ((["--threshold", "1e6"], "nothing in the box is that dense"),
                          (["--threshold", "1e6"], "try --threshold"), (["--resolution", "8"], "at least 16"),
                          (["--resolution", "100000"], "GB for the density grid"), (["--threshold", "-1"], "positive"),
                          (["--out", str(tmp_path / "m.stl")], ".ply or .obj")):
        code = cli.main(["export", "mesh", "--ckpt", str(run), "--resolution", "32", "--no-progress", "--arch", ARCH,
                         *argv])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == cli.EXIT_USAGE and len(err) == 1 and message in err[0], (argv, err)


def test_export_mesh_shows_progress_over_the_auto_thresholds_views(trained_builtin, tmp_path, capsys):
    """The 8 views the auto threshold renders took 10-20 s on a loaded CPU without a bar: the
    density grid's bar ended, then nothing moved."""
    _, run = trained_builtin
    assert cli.main(["export", "mesh", "--ckpt", str(run), "--resolution", "32", "--out", str(tmp_path / "m.ply"),
                     "--arch", ARCH]) == 0
    err = capsys.readouterr().err
    views = f"{export.AUTO_VIEWS}/{export.AUTO_VIEWS}"
    assert "density grid" in err and "auto threshold: 100%|" in err and views in err, err[-2000:]


def test_points_lie_on_the_true_surface(trained_builtin, tmp_path, capsys):
    _, run = trained_builtin
    out = tmp_path / "new" / "points.ply"
    assert cli.main(["export", "points", "--ckpt", str(run), "--views", "train", "--max-points", "3000",
                     "--out", str(out), "--no-progress", "--arch", ARCH]) == 0
    assert "3000 points" in capsys.readouterr().out
    earlier = tmp_path / "earlier.ply"
    earlier.write_bytes(out.read_bytes())  # an earlier export
    assert cli.main(["export", "points", "--ckpt", str(run), "--max-points", "1", "--out", str(earlier),
                     "--no-progress", "--arch", ARCH]) == 0
    assert capsys.readouterr().out.endswith(f"wrote {earlier} (replacing the earlier one): 1 point\n")  # not "1 points"
    # a file no export wrote (COLMAP's points3D.ply, the user's model) was replaced in the same way
    for name in ("points3D.ply", "model.obj"):
        mine = tmp_path / name
        mine.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n" if name.endswith("ply") else
                         b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        before = mine.read_bytes()
        assert cli.main(["export", "points" if name.endswith("ply") else "mesh", "--ckpt", str(run), "--out", str(mine),
                         "--no-progress", "--arch", ARCH]) == cli.EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{mine}: a file taichi-nerf did not write" in err[0], err
        assert "give another --out" in err[0] and mine.read_bytes() == before
    for argv, message in ((["--views", "orbit", "--data", str(tmp_path)], "an orbit needs no dataset"),
                          (["--max-points", "0"], "at least 1")):
        assert cli.main(["export", "points", "--ckpt", str(run), "--out", str(tmp_path / "p.ply"), "--no-progress",
                         "--arch", ARCH, *argv]) == cli.EXIT_USAGE
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    v, c, f = export.read_ply(out)
    assert v.shape == (3000, 3) and c.shape == (3000, 3) and f.shape == (0, 3)
    sdf = scene_sdf(v).abs().numpy()
    assert sdf.mean() < POINTS_MEAN_SDF, sdf.mean()
    assert c.astype(float).std() > 20  # coloured, not one flat colour


def test_a_few_points_render_a_share_of_the_pixels_not_all_of_them(trained_builtin):
    """--max-points 2000 of the built-in scene's 100 views rendered every pixel first (5 minutes on a
    loaded 2-core machine); a random share now does, and the points are drawn as evenly as before."""
    from taichi_nerf.data.loaders import read_dataset
    from taichi_nerf.runs import checkpoint

    scene, run = trained_builtin
    renderer, cfg, _ = checkpoint.load(run, ARCH)
    train = read_dataset(scene).splits["train"]
    rendered, render_rays = [], renderer.render_rays
    renderer.render_rays = lambda o, *a, **k: rendered.append(o.shape[0]) or render_rays(o, *a, **k)
    views = 12  # of 32: the comparison with every pixel stays short
    args = (renderer, torch.zeros(3), train.poses[:views], train.intrinsics[:views], train.width, train.height)
    drawn = 400  # enough for the spread checks below to hold by 5 standard errors, whatever the trained field
    few, colors = export.extract_points(*args, max_points=drawn, progress=False)
    pixels = views * train.width * train.height
    assert few.shape == colors.shape == (drawn, 3) and sum(rendered) < pixels / 2, (sum(rendered), pixels)
    rendered.clear()
    every, _ = export.extract_points(*args, progress=False)
    assert sum(rendered) == pixels and len(every) > 1000
    assert scene_sdf(few).abs().mean() < POINTS_MEAN_SDF
    # the same spread: the sample's centre and extent agree with all the points' (an uneven draw would not), to
    # 5 standard errors of a fair draw (100 points and fixed bounds failed 1 run in ~50 on a differently trained field)
    standard_error = every.std(0) / np.sqrt(drawn)
    assert (np.abs(few.mean(0) - every.mean(0)) < 5 * standard_error).all(), (few.mean(0), every.mean(0))
    assert np.allclose(few.std(0), every.std(0), rtol=5 / np.sqrt(2 * drawn)), (few.std(0), every.std(0))


def test_points_from_an_orbit(trained_builtin, tmp_path):
    from taichi_nerf.api import export_points

    _, run = trained_builtin
    path, count = export_points(run, tmp_path / "p.obj", views="orbit", arch=ARCH, progress=False, orbit_views=6,
                                orbit_size=48)
    v = np.loadtxt(path, comments="#", usecols=(1, 2, 3))
    assert count == len(v) > 1000
    assert scene_sdf(v).abs().mean() < POINTS_MEAN_SDF


def test_points_of_a_forward_facing_field_come_back_to_the_world():
    """export points on a field trained in NDC (LLFF's default): each ray's surface is found along
    its NDC image, and the point is put back in the world. A stand-in renderer puts every ray's
    weight on one sample, at the NDC image of a known world point on the ray; the exported point is
    that world point. A surface at NDC infinity is left out."""
    from types import SimpleNamespace

    from taichi_nerf.rendering.renderer import Renderer
    from taichi_nerf.rendering.scene import Scene
    from taichi_nerf.stages import reference
    from taichi_nerf.stages.cameras import image_rays, look_at
    from taichi_nerf.stages.packing import Samples, fixed_layout

    scene = Scene(near=0.0, far=1.0, aabb=[-1.5, -1.5, -1.0, 1.5, 1.5, 1.0], ndc=True, ndc_focal=30.0, ndc_width=24,
                  ndc_height=16)
    pose = look_at(torch.tensor([0.1, -0.05, 0.0], dtype=torch.float64), torch.tensor([0.2, 0.1, -5.0],
                   dtype=torch.float64), torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))[None].float()
    intrinsics = torch.tensor([[30.0, 30.0, 12.0, 8.0, 0.0, 0.0, 0.0, 0.0]])  # no distortion
    o, d = image_rays(pose, intrinsics, 0, 24, 0, 24 * 16)
    g = torch.Generator().manual_seed(0)
    s = 1.5 + 20.0 * torch.rand(o.shape[0], generator=g)  # world depth along each ray, past the near plane
    world = o.double() + s[:, None].double() * d.double()
    o_ndc, d_ndc = reference.ndc_rays(o.double(), d.double(), 30.0, 24, 16)
    t_hit = (1.0 + 2.0 / world[:, 2] - o_ndc[:, 2]) / d_ndc[:, 2]
    t_hit[:5] = (0.999 - o_ndc[:5, 2]) / d_ndc[:5, 2]  # five rays see nothing short of NDC infinity
    per_ray = 3
    offsets, counts, ray_index = fixed_layout(o.shape[0], per_ray, "cpu")
    t = torch.stack([0.5 * t_hit, t_hit, t_hit + 0.01], 1).float().reshape(-1)
    weights = torch.tensor([0.0, 1.0, 0.0]).repeat(o.shape[0])

    def render_rays(origins, dirs, background, early_termination=False):
        n = origins.shape[0]
        samples = Samples(t, torch.full_like(t, 0.01), ray_index, offsets, counts, per_ray)
        return SimpleNamespace(samples=samples, weights=weights, opacity=torch.ones(n), rgb=torch.rand(n, 3))

    renderer = SimpleNamespace(scene=scene, device="cpu", render_rays=render_rays, carried=None)
    renderer.sampling_rays = lambda o, d: Renderer.sampling_rays(renderer, o, d)  # the real one: NDC rays
    renderer.drawn_poses = lambda poses, cam: Renderer.drawn_poses(renderer, poses, cam)  # as given: no refinement
    points, _ = surface_points(renderer, pose, intrinsics, 0, 24, 16, torch.ones(3), 0.95, True, chunk=384)
    assert points.shape == (o.shape[0] - 5, 3)
    assert float(((points.double() - world[5:]).norm(dim=1) / world[5:].norm(dim=1)).max()) < 1e-4


@pytest.mark.parametrize("kwargs, message", [({"threshold": "high"}, "threshold must be 'auto' or a positive density"),
                                             ({"threshold": float("nan")}, "positive density"),
                                             ({"resolution": "32"}, "resolution must be a whole number"),
                                             ({"resolution": 32.5}, "resolution must be a whole number")])
def test_the_api_refuses_a_bad_threshold_or_resolution_before_loading(run, tmp_path, monkeypatch, kwargs, message):
    """export_mesh(threshold="high") used to build the whole density lattice and then fail with
    float()'s "could not convert string to float"; resolution="32" raised a TypeError from a
    comparison. Both are one ExportError before the checkpoint is loaded, as the CLI's are."""
    from taichi_nerf.api import export_mesh

    monkeypatch.setattr("taichi_nerf.runs.checkpoint.load", lambda *a, **k: pytest.fail("loaded before refusing"))
    with pytest.raises(export.ExportError, match=message):
        export_mesh(run, tmp_path / "m.ply", **{"resolution": 32, **kwargs}, arch=ARCH, progress=False)
    assert not (tmp_path / "m.ply").exists()


@pytest.mark.parametrize("kwargs, message", [({"max_points": "5"}, "^max_points must be a whole number"),
                                             ({"max_points": 0}, "^max_points must be .*at least 1"),
                                             ({"orbit_views": 0}, "orbit_views must be a whole number"),
                                             ({"orbit_size": "48"}, "orbit_size must be a whole number of at least 8"),
                                             ({"views": "orbits"}, "^views must be 'train' or 'orbit', got 'orbits'$")])
def test_export_points_refuses_a_bad_count_before_loading(run, tmp_path, monkeypatch, kwargs, message):
    """max_points="5" raised a comparison's TypeError; orbit_views=0 torch.stack's "expects a non-empty
    TensorList" after the checkpoint loaded; orbit_size="48" a TypeError from the orbit's intrinsics."""
    from taichi_nerf.api import export_points

    monkeypatch.setattr("taichi_nerf.runs.checkpoint.load", lambda *a, **k: pytest.fail("loaded before refusing"))
    with pytest.raises(ValueError, match=message):
        export_points(run, tmp_path / "p.ply", **{"views": "orbit", **kwargs}, arch=ARCH, progress=False)
    assert not (tmp_path / "p.ply").exists()


def test_the_auto_threshold_reads_the_rendered_surface_inside_the_box_only(monkeypatch):
    """The lattice covers the box alone; an unbounded scene's orbit views mostly see scenery beyond
    it (on ngp-360-env after 200 steps every one of 24576 surface points lay outside), whose
    density chose a level above every density in the box: an empty mesh, said as if the user had
    given that --threshold. The level comes from the surface points inside the box, and with
    none there from the histogram, saying so."""
    from taichi_nerf.rendering.scene import Scene

    inside, outside = torch.zeros(20, 3), torch.full((40, 3), 5.0)
    monkeypatch.setattr(export, "surface_points", lambda *a, **k: (torch.cat([inside, outside]), None))

    class Field:
        scene, device = Scene(near=0.5, far=20.0, aabb=[-1.0] * 3 + [1.0] * 3), "cpu"

        def density(self, points):
            return torch.where(points.abs().amax(dim=1) > 1, 100.0, 2.0)

    level, note = export.auto_threshold(Field(), torch.ones(3), np.full((4, 4, 4), 3.0, np.float32))
    assert level == pytest.approx(export.AUTO_FRACTION * 2.0) and f"{export.AUTO_VIEWS * 20} orbit pixels" in note
    inside = torch.zeros(0, 3)
    level, note = export.auto_threshold(Field(), torch.ones(3), np.full((4, 4, 4), 3.0, np.float32))
    assert export.NO_SURFACE in note and level == pytest.approx(export.AUTO_FRACTION * 3.0)



class InterruptedFaces:
    """Faces that a Ctrl-C interrupts as they are written (after the header and the vertices)."""

    def __len__(self):
        return 3

    def __array__(self, *args, **kwargs):  # the PLY writer's copy
        raise KeyboardInterrupt

    def __add__(self, other):  # the OBJ writer's 1-based indices
        raise KeyboardInterrupt


def test_a_mesh_write_cut_short_leaves_the_earlier_file(mesh, tmp_path):
    """Ctrl-C while a big mesh was being written (np.savetxt of an OBJ: seconds for a million faces)
    left a truncated file in place of the earlier one; both writers now replace it whole or not at all."""
    _, m = mesh
    for name, writer in (("m.obj", export.write_obj), ("m.ply", export.write_ply)):
        earlier = writer(tmp_path / name, m.vertices, m.colors, m.faces).read_bytes()
        with pytest.raises(KeyboardInterrupt):
            writer(tmp_path / name, m.vertices[:10], m.colors[:10], InterruptedFaces())
        assert (tmp_path / name).read_bytes() == earlier, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.obj", "m.ply"]  # no partial file left


@pytest.mark.parametrize("function, kwargs, python_words, argv, flag_words", [
    ("evaluate", {"limit": 0}, "limit must be a whole number of at least 1, got 0",
     ["eval", "--limit", "0"], "--limit must be at least 1, got 0"),
    ("evaluate", {"align_steps": -1}, "align_steps must be a whole number of at least 0, got -1",
     ["eval", "--align-cameras", "-1"], "--align-cameras must not be negative, got -1"),
    ("export_mesh", {"resolution": 8}, "resolution must be a whole number of at least 16, got 8",
     ["export", "mesh", "--resolution", "8"], "--resolution must be at least 16, got 8"),
    ("export_points", {"max_points": 0}, "max_points must be a whole number of at least 1, got 0",
     ["export", "points", "--max-points", "0"], "--max-points must be at least 1, got 0"),
    ("export_mesh", {"threshold": -1}, "threshold must be 'auto' or a positive density, got -1",
     ["export", "mesh", "--threshold", "-1"], "--threshold must be 'auto' or a positive density, got '-1'"),
    ("export_mesh", {"resolution": 4096}, "resolution 4096 needs about ",
     ["export", "mesh", "--resolution", "4096"], "--resolution 4096 needs about "),
    ("export_mesh", {"out": "m.stl"}, "out must end in .ply or .obj, got m.stl",
     ["export", "mesh", "--out", "m.stl"], "--out must end in .ply or .obj, got m.stl"),
    ("export_points", {"out": "p.stl"}, "out must end in .ply or .obj, got p.stl",
     ["export", "points", "--out", "p.stl"], "--out must end in .ply or .obj, got p.stl"),
    ("export_points", {"views": "orbit", "data": "d"},
     "data picks the cameras of views='train'; an orbit needs no dataset (drop data, or use views='train')",
     ["export", "points", "--views", "orbit", "--data", "d"],
     "--data picks the cameras of --views train; an orbit needs no dataset (drop --data, or use --views train)")])
def test_a_bad_argument_is_named_as_the_caller_gave_it(tmp_path, capsys, function, kwargs, python_words, argv,
                                                      flag_words):
    """The API said "--align-cameras must be ..." to evaluate(align_steps=-1), a name its caller never
    typed (and --limit, --resolution, --max-points, --threshold, --out, --views and --data for its
    keywords): each now says its keyword, and the CLI its flag. Both refuse before looking for the
    checkpoint. (A resolution too big for memory: only the start is the same on every machine.)"""
    import taichi_nerf

    with pytest.raises(ValueError) as refused_call:
        getattr(taichi_nerf, function)(tmp_path / "no-run", **kwargs)
    said = str(refused_call.value)
    assert said == python_words or (python_words.endswith(" ") and said.startswith(python_words)), said
    assert cli.main([*argv, "--ckpt", str(tmp_path / "no-run")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err == f"taichi-nerf: error: {flag_words}\n" or (flag_words.endswith(" ") and err.startswith(
        f"taichi-nerf: error: {flag_words}") and err.count("\n") == 1), err


def test_points_of_a_barely_trained_field_say_how_far_it_trained_and_what_to_do(run, tmp_path):
    """A barely trained field renders no pixel opaque enough for a point: it said "nothing to export", and no more."""
    from taichi_nerf.outputs.from_checkpoint import export_points

    out = tmp_path / "points.ply"
    with pytest.raises(export.ExportError) as refused:
        export_points(run, out, views="orbit", arch=ARCH, progress=False, orbit_views=2, orbit_size=8)
    assert str(refused.value) == (
        "no pixel of the 2 views is 0.95 opaque: nothing to export (a field barely trained, or translucent, renders "
        f"nothing that opaque); its checkpoint is at step 10: train it longer first (taichi-nerf train --resume {run} "
        "--steps N, N over 10)")
    assert not out.exists()
