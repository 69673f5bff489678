"""Mesh to dataset: the OBJ/MTL reader, the Taichi rasteriser (geometry, textures, vertex
colours, the y-up to z-up turn) and ``taichi-nerf data from-mesh``."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from taichi_nerf import cli
from taichi_nerf.data.dataset import DataError
from taichi_nerf.data.loaders import read_dataset
from taichi_nerf.scenes.mesh import MESH_RADIUS, MeshRenderer
from taichi_nerf.scenes.obj import read_obj
from taichi_nerf.stages.cameras import look_at, sphere_poses

# One colour per face of the cube, named by the face's outward axis in the file (y up).
FACE_COLOURS = {"+x": (255, 0, 0), "-x": (0, 255, 0), "+y": (0, 0, 255), "-y": (255, 255, 0),
                "+z": (255, 0, 255), "-z": (0, 255, 255)}


def write_textured_cube(folder):
    """A 2 x 2 x 2 cube: quads (one with negative indices), UVs into a 3 x 2 texture atlas of
    solid 20 px blocks (one per face), an MTL with map_Kd."""
    folder.mkdir(parents=True, exist_ok=True)
    atlas = np.zeros((40, 60, 3), dtype=np.uint8)
    uv_rects = {}
    for k, (name, colour) in enumerate(FACE_COLOURS.items()):
        col, row = k % 3, k // 3
        atlas[row * 20:(row + 1) * 20, col * 20:(col + 1) * 20] = colour
        # UV rectangle inset from the block edges (v runs bottom-up in OBJ)
        u0, u1 = (col * 20 + 4) / 60, ((col + 1) * 20 - 4) / 60
        v1, v0 = 1 - (row * 20 + 4) / 40, 1 - ((row + 1) * 20 - 4) / 40
        uv_rects[name] = [(u0, v0), (u1, v0), (u1, v1), (u0, v1)]
    Image.fromarray(atlas).save(folder / "atlas.png")
    (folder / "cube.mtl").write_text("newmtl paint\nKd 1 1 1\nmap_Kd -s 1 1 1 atlas.png\n")
    corners = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    index = {c: i + 1 for i, c in enumerate(corners)}
    lines = ["# textured cube", "mtllib cube.mtl"] + [f"v {x} {y} {z}" for x, y, z in corners]
    faces = []
    for name in FACE_COLOURS:
        axis, sign = "xyz".index(name[1]), 1 if name[0] == "+" else -1
        a, b = [k for k in range(3) if k != axis]
        quad = []
        for s, t in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            c = [0, 0, 0]
            c[axis], c[a], c[b] = sign, s, t
            quad.append(index[tuple(c)])
        faces.append((name, quad))
    vt = 0
    lines.append("usemtl paint")
    for name, quad in faces:
        for u, v in uv_rects[name]:
            lines.append(f"vt {u} {v}")
        vt += 4
        refs = [f"{q}/{vt - 3 + k}" for k, q in enumerate(quad)]
        if name == "-z":  # relative (negative) indices
            refs = [f"{q - 9}/{k - 4}" for k, q in enumerate(quad)]
        lines.append("f " + " ".join(refs))
    (folder / "cube.obj").write_text("\n".join(lines) + "\n")
    return folder / "cube.obj"


def test_obj_reader(tmp_path):
    mesh = read_obj(write_textured_cube(tmp_path))
    assert mesh.positions.shape == (8, 3) and mesh.faces.shape == (12, 3)  # 6 quads, fan-triangulated
    assert (mesh.face_uvs >= 0).all() and len(mesh.uvs) == 24
    assert [m.name for m in mesh.materials] == ["(default)", "paint"] and (mesh.face_materials == 1).all()
    assert mesh.materials[1].texture.shape == (40, 60, 3)
    # the -z quad used negative indices: same corners as the positive form would give
    assert sorted(set(mesh.faces[10:12].ravel().tolist())) == [0, 2, 4, 6]
    (tmp_path / "mixed.obj").write_text("v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nv 1 1 0 1 1 1\n"
                                        "vn 0 0 1\nf 1//1 2//1 3//1 4//1\nusemtl nowhere\nf 1 2 3\n")
    mixed = read_obj(tmp_path / "mixed.obj")
    assert mixed.faces.shape == (3, 3) and mixed.face_normals[0].tolist() == [0, 0, 0]
    assert mixed.vertex_colors[3].tolist() == [1.0, 1.0, 1.0] and mixed.vertex_colors[0].tolist() == [1.0, 0.0, 0.0]
    assert any("nowhere" in w for w in mixed.warnings)
    (tmp_path / "bytes.obj").write_text("v 0 0 0 255 0 0\nv 1 0 0 0 255 0\nv 0 1 0 0 0 51\nf 1 2 3\n")
    assert read_obj(tmp_path / "bytes.obj").vertex_colors.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0.2]]
    for text, problem in [("v 0 0 0\nf 1 2 3\n", "out of range"), ("v 0 0 0\n", "no faces"),
                          ("v 0 0 zero\nf 1 1 1\n", ":1"), ("v 0 0 0\nf 1 1\n", "at least 3")]:
        (tmp_path / "bad.obj").write_text(text)
        with pytest.raises(DataError, match=problem):
            read_obj(tmp_path / "bad.obj")
    # another format's mesh (export mesh's own PLY, an STL) said "no faces (an OBJ mesh needs 'f' lines)"
    for name, said in (("model.ply", "this is PLY"), ("model.STL", "this is STL")):
        (tmp_path / name).write_bytes(b"ply\nformat binary_little_endian 1.0\n\x00\x01" if name.endswith("ply") else
                                      b"solid model\nendsolid model\n")
        with pytest.raises(DataError, match=f"meshes are read as Wavefront OBJ, and {said}: export or convert it to "
                                            r"\.obj"):
            read_obj(tmp_path / name)


def render(renderer, eye, size=32, up=(0.0, 0.0, 1.0), s=1):
    pose = look_at(eye, (0.0, 0.0, 0.0), up)[None]
    f = 0.5 * size / math.tan(0.3)
    return renderer.render(pose, size, size, f, f, size / 2, size / 2, s), pose


def test_cube_geometry_depth_is_on_the_surface(tmp_path, taichi_backend):
    renderer = MeshRenderer(read_obj(write_textured_cube(tmp_path)))
    half = MESH_RADIUS / math.sqrt(3.0)  # the cube's half-size after normalising to radius 1.2
    poses = sphere_poses(4, 4.0, upper_only=False, seed=2)
    size, f = 24, 24 / (2 * math.tan(0.35))
    rgba, depth = renderer.render(poses, size, size, f, f, size / 2, size / 2, 3)
    for k in range(4):
        j, i = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
        cam = torch.stack([(i - size / 2) / f, -(j - size / 2) / f, -torch.ones_like(i)], -1)
        d = cam @ poses[k, :3, :3].T
        d = d / d.norm(dim=-1, keepdim=True)
        hit = depth[k] > 0
        assert hit.sum() > 20
        points = poses[k, :3, 3] + depth[k][..., None] * d
        assert torch.allclose(points[hit].abs().max(dim=1).values, torch.full((int(hit.sum()),), half), atol=2e-3)
        # silhouettes: opaque inside, empty outside, soft only on the edge
        alpha = rgba[k, ..., 3]
        assert (alpha[hit] > 0).all() and alpha.min() == 0


@pytest.mark.parametrize("eye, face", [((0.0, 0.0, 4.0), "+y"),  # the file's +y (up) is the project's +z
                                       ((4.0, 0.0, 0.0), "+x"),
                                       ((0.0, -4.0, 0.0), "+z"),  # the file's +z (front) turns to -y
                                       ((0.0, 0.0, -4.0), "-y")])
def test_textures_and_the_up_axis(tmp_path, taichi_backend, eye, face):
    renderer = MeshRenderer(read_obj(write_textured_cube(tmp_path)), up="y")
    up = (0.0, 1.0, 0.0) if eye[0] == 0 and eye[1] == 0 else (0.0, 0.0, 1.0)
    (rgba, _), _ = render(renderer, eye, up=up)
    centre = rgba[0, 12:20, 12:20, :3].float().mean(dim=(0, 1))
    expected = torch.tensor(FACE_COLOURS[face], dtype=torch.float32) / 255
    lit = centre / 255
    assert ((lit > 0.3) == (expected > 0.5)).all(), (face, lit)


def test_vertex_colours_and_flat_fallback(tmp_path, taichi_backend):
    (tmp_path / "red.obj").write_text("v -1 -1 0 1 0 0\nv 1 -1 0 1 0 0\nv 0 1 0 1 0 0\nf 1 2 3\n")
    (tmp_path / "plain.obj").write_text("v -1 -1 0\nv 1 -1 0\nv 0 1 0\nf 1 2 3\n")
    for name, check in [("red", lambda c: c[0] > 100 and c[1] < 5 and c[2] < 5),
                        ("plain", lambda c: c[0] > 100 and c[0] == c[1] == c[2])]:
        renderer = MeshRenderer(read_obj(tmp_path / f"{name}.obj"), up="z")
        (rgba, depth), _ = render(renderer, (0.0, 0.0, 4.0), up=(0.0, 1.0, 0.0))
        assert check(rgba[0, 16, 16, :3].tolist()), (name, rgba[0, 16, 16])


def test_cli_from_mesh(tmp_path, taichi_backend, capsys):
    import shlex

    obj = write_textured_cube(tmp_path / "model")
    out = tmp_path / "my ds"  # the suggested command is pasted into a shell: quoted
    args = ["data", "from-mesh", str(obj), "--out", str(out), "--views", "3", "--val-views", "1", "--test-views", "0",
            "--size", "16", "--no-progress"]
    assert cli.main(args) == 0
    assert f"train on it with: taichi-nerf train --data {shlex.quote(str(out))}\n" in capsys.readouterr().out
    ds = read_dataset(out)
    assert ds.splits["train"].count == 3 and ds.splits["val"].count == 1 and ds.splits["train"].depth is not None
    assert (ds.splits["train"].rgba[..., 3] == 0).any() and (ds.splits["train"].rgba[..., 3] == 255).any()
    assert cli.main(["data", "from-mesh", str(tmp_path / "none.obj"), "--out", str(out)]) == 2
    assert cli.main(["data", "from-mesh", str(obj), "--out", str(out), "--supersample", "2"]) == 2
    assert "mesh file not found" in capsys.readouterr().err
    # the mesh's folder said "cannot read (Is a directory)"; it names the .obj to give
    assert cli.main(["data", "from-mesh", str(obj.parent), "--out", str(tmp_path / "new")]) == 2
    assert f"a folder, not an .obj file; give the mesh file: {obj}" in capsys.readouterr().err


def test_rewriting_an_earlier_render_leaves_nothing_of_it(tmp_path, taichi_backend):
    """`from-mesh b.obj --out ds --val-views 0` over an earlier render of a.obj kept a.obj's
    transforms_val.json and transforms_test.json (another mesh, another size) beside the new train
    split, and its surplus views: training validated on the other mesh. A malformed mesh removes
    nothing, a user's own file stays, and a split this tool did not write is refused."""
    from taichi_nerf.data.loaders import refuse_foreign_dataset
    from taichi_nerf.scenes.mesh import write_mesh_dataset

    tetra = tmp_path / "tetra.obj"
    tetra.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    out = tmp_path / "ds"
    write_mesh_dataset(tetra, out, views=3, size=8, val_views=2, test_views=1, supersample=1, progress=False)
    (out / "NOTES.md").write_text("mine")
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nf 1 2 3\n")
    with pytest.raises(DataError, match="out of range"):
        write_mesh_dataset(bad, out, views=2, size=8, val_views=0, test_views=0, supersample=1, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    write_mesh_dataset(tetra, out, views=2, size=16, val_views=0, test_views=0, supersample=1, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "NOTES.md", "train", "train/r_000.png", "train/r_000_depth.npy", "train/r_001.png", "train/r_001_depth.npy",
        "transforms_train.json"]
    ds = read_dataset(out)
    assert list(ds.splits) == ["train"] and ds.splits["train"].count == 2 and ds.splits["train"].width == 16
    (out / "transforms_val.json").write_text('{"camera_angle_x": 0.69, "frames": []}')  # the user's own split
    with pytest.raises(DataError, match="transforms_val.json: a dataset this tool did not write"):
        refuse_foreign_dataset(out)


def test_a_mesh_near_the_float_limit_is_normalised_like_a_small_one(tmp_path):
    """A mesh with coordinates of 1e300 printed numpy's "overflow encountered in multiply" and was
    refused as having no extent ("all used vertices coincide"); a mesh of one point did not say
    which file it was."""
    import warnings

    from taichi_nerf.scenes.mesh import normalise

    faces = "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"
    meshes = {}
    for scale in ("1", "1e300", "-1e-300"):
        path = tmp_path / f"tetra{scale}.obj"
        path.write_text(f"v 0 0 0\nv {scale} 0 0\nv 0 {scale} 0\nv 0 0 {scale}\n" + faces)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            meshes[scale] = normalise(read_obj(path))
    assert np.allclose(meshes["1e300"], meshes["1"], atol=1e-12)
    assert np.allclose(meshes["-1e-300"], -meshes["1"], atol=1e-12)
    point = tmp_path / "point.obj"
    point.write_text("v 1 2 3\nv 1 2 3\nv 1 2 3\nf 1 2 3\n")
    with pytest.raises(DataError, match=r"point\.obj: the mesh has no extent"):
        normalise(read_obj(point))


def test_a_render_that_cannot_be_held_is_refused_before_anything_is_written(tmp_path, taichi_backend, capsys,
                                                                             monkeypatch):
    """`data from-mesh --size 20000` (and `data synthetic --size 100000`) ended in a traceback from
    torch's allocator ("DefaultCPUAllocator: can't allocate memory"); a size that is allowed
    but exceeds the machine would have taken it down. Now one line says what fits."""
    from taichi_nerf import resources

    from .conftest import refused

    tetra = tmp_path / "tetra.obj"
    tetra.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    monkeypatch.setattr(resources, "free_bytes", lambda device: (100_000_000, "in RAM"))  # 80 MB usable
    line = refused(capsys, ["data", "from-mesh", tetra, "--out", tmp_path / "m", "--size", "1000", "--views", "2"],
                   "--size 1000 needs about", "8 views at --supersample 3", "the largest that fits is")
    largest = int(line.rsplit(" ", 1)[1])
    assert 140 < largest < 160  # 80 MB over 8 views x 48 x 9 + 8 x 16 bytes a pixel: 149
    refused(capsys, ["data", "synthetic", "--out", tmp_path / "s", "--size", "2000"],
            "--size 2000 needs about", "100 views (the largest split)", "the largest that fits is")
    # too many views at a small size: "the largest that fits is 10" named only --size, for --views 10000000
    line = refused(capsys, ["data", "synthetic", "--out", tmp_path / "s", "--size", "64", "--views", "10000000"],
                   "--size 64 needs about", "10000000 views (the largest split)")
    fit = int(line.rsplit("; at most ", 1)[1].removesuffix(" views at this size fit").replace(",", ""))
    assert 1000 < fit < 1300, line  # 80 MB over 64 x 64 x 16 bytes a view kept (less the render's); not "is 0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tetra.obj"]


def test_an_obj_and_mtl_with_a_byte_order_mark(tmp_path):
    """An OBJ saved with a UTF-8 BOM (Windows tools) lost its first vertex ('\\ufeffv' is no keyword):
    "bom.obj:6: face index 4 is out of range (have 3)" for a file with 4 vertices; an MTL lost its
    first material the same way."""
    (tmp_path / "bom.mtl").write_text("\ufeffnewmtl red\nKd 1 0 0\n", encoding="utf-8")
    (tmp_path / "bom.obj").write_text("\ufeffv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nmtllib bom.mtl\nusemtl red\n"
                                      "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n", encoding="utf-8")
    mesh = read_obj(tmp_path / "bom.obj")
    assert len(mesh.positions) == 4 and mesh.positions[0].tolist() == [0, 0, 0] and not mesh.warnings
    assert [m.kd for m in mesh.materials] == [(0.7, 0.7, 0.7), (1.0, 0.0, 0.0)]


def test_an_interrupted_render_keeps_the_earlier_one_and_a_stop_while_it_is_moved_in_waits(
        tmp_path, taichi_backend, capsys, monkeypatch):
    """`data from-mesh` removed the earlier render in --out first and wrote the splits into it one by one: a Ctrl-C
    after the train split left it without val or test. Now a Ctrl-C while rendering keeps the earlier render byte for
    byte, with no partial folder beside it; a SIGTERM while the whole new render is moved in waits for its end."""
    import os
    import signal

    import taichi_nerf.capture.partial as partial
    import taichi_nerf.scenes.mesh as mesh

    from .conftest import snapshot

    tetra = tmp_path / "tetra.obj"
    tetra.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n")
    out = tmp_path / "ds"
    argv = ["data", "from-mesh", str(tetra), "--out", str(out), "--views", "3", "--val-views", "1", "--test-views",
            "1", "--size", "8", "--supersample", "1", "--no-progress"]
    assert cli.main(argv) == 0
    (out / "NOTES.md").write_text("mine")
    before = snapshot(out)
    write_split = mesh.write_split

    def interrupted_at_val(root, split, *args, **kwargs):
        if split == "val":
            raise KeyboardInterrupt
        return write_split(root, split, *args, **kwargs)

    monkeypatch.setattr(mesh, "write_split", interrupted_at_val)
    capsys.readouterr()
    assert cli.main([*argv[:6], "2", *argv[7:]]) == 130
    assert capsys.readouterr().err == f"taichi-nerf: interrupted; nothing written; the earlier dataset in {out} " \
                                      "kept as it was\n"
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "tetra.obj"]

    monkeypatch.setattr(mesh, "write_split", write_split)
    remove_files = partial.remove_files

    def terminated_while_moved_in(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return remove_files(*args)

    monkeypatch.setattr(partial, "remove_files", terminated_while_moved_in)
    assert cli.main([*argv[:6], "2", *argv[7:]]) == 130
    assert capsys.readouterr().err == f"taichi-nerf: interrupted; the dataset in {out} was written whole before " \
                                      "it stopped\n"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "NOTES.md", "test", "test/r_000.png", "test/r_000_depth.npy", "train", "train/r_000.png",
        "train/r_000_depth.npy", "train/r_001.png", "train/r_001_depth.npy", "transforms_test.json",
        "transforms_train.json", "transforms_val.json", "val", "val/r_000.png", "val/r_000_depth.npy"]
    assert read_dataset(out).splits["train"].count == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "tetra.obj"]
