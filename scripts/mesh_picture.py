"""docs/mesh.png: a trained field beside the mesh exported from it, the mesh drawn by the
project's own rasteriser (taichi_nerf/scenes/mesh.py, the one behind `data from-mesh`).

    python scripts/mesh_picture.py --ckpt runs/builtin [--resolution 256] [--out mesh.png]

The exported OBJ is read back with scenes/obj.py, so the picture also checks the round trip.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import at_least, one_line_errors  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a trained run (or its checkpoint)")
    parser.add_argument("--resolution", type=int, default=256, help="marching cubes lattice (default 256)")
    parser.add_argument("--size", type=at_least(16), default=320, help="width of each panel in px (default 320)")
    parser.add_argument("--out", default="mesh.png", help="PNG to write (default mesh.png in this folder)")
    parser.add_argument("--arch", default="auto")
    args = parser.parse_args(argv)

    from taichi_nerf.files import check_writable_file, write_png
    from taichi_nerf.outputs.from_checkpoint import export_mesh
    from taichi_nerf.rendering.backgrounds import scene_background
    from taichi_nerf.rendering.scene import orbit_cameras
    from taichi_nerf.runs import checkpoint
    from taichi_nerf.scenes.mesh import MESH_RADIUS, MeshRenderer
    from taichi_nerf.scenes.obj import read_obj

    check_writable_file(args.out)  # before the export and renders (a folder given was refused after them)
    with tempfile.TemporaryDirectory() as tmp:
        path, result = export_mesh(args.ckpt, Path(tmp) / "mesh.obj", resolution=args.resolution, arch=args.arch)
        print(result.threshold_note)
        mesh = read_obj(path)
    renderer, cfg, _ = checkpoint.load(args.ckpt, args.arch)
    bg = scene_background(renderer.scene, cfg)
    poses, intr, w, h = orbit_cameras(renderer.scene, 8, args.size)
    pose = poses[1:2]
    field = renderer.render_image(poses, intr, 1, w, h, bg)["rgb"].cpu().clamp(0, 1).numpy()

    # The rasteriser normalises the mesh (centre of its box at the origin, bounding radius
    # MESH_RADIUS); move the camera the same way so both panels show the same view.
    centre = 0.5 * (mesh.positions.min(0) + mesh.positions.max(0))
    scale = MESH_RADIUS / np.linalg.norm(mesh.positions - centre, axis=1).max()
    moved = pose.clone().double()
    moved[0, :3, 3] = (moved[0, :3, 3] - torch.from_numpy(centre)) * scale
    fx, fy, cx, cy = (float(v) for v in intr[0, :4])
    rgba, _ = MeshRenderer(mesh, up="z").render(moved.float(), w, h, fx, fy, cx, cy, supersample=3)
    rgba = rgba[0].float().numpy() / 255.0
    drawn = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:]) * bg.cpu().numpy().reshape(1, 1, 3)
    write_png(Path(args.out), np.concatenate([field, drawn], axis=1))
    print(f"wrote {args.out}: field | exported mesh ({len(mesh.positions)} vertices, {len(mesh.faces)} triangles)")


if __name__ == "__main__":
    sys.exit(one_line_errors("mesh_picture.py", main))
