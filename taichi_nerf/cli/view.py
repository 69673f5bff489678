"""``taichi-nerf view --ckpt RUN``: a trained field in the browser (taichi_nerf/viewer/)."""
from __future__ import annotations


def add_parser(sub) -> None:
    from ..viewer.launch import view_parser

    view_parser(sub)
