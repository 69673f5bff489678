"""Whether data puts the scene where a checkpoint's field was trained: ``eval`` and ``render``
refuse data that moved it (:func:`check_same_scene`), a resume trains in the checkpoint's geometry
(:func:`resumed_scene`)."""
from __future__ import annotations

import dataclasses

import torch

from ..config import DATASET_FIELDS, TrainConfig
from ..kind_defaults import KIND_WORDS, scene_kind
from ..rendering.scene import Scene
from ..wording import setting_words
from .checkpoint import CheckpointError, config_of, scene_of

# How far the scene a resume's data gives may lie from the checkpoint's, as a share of its box's
# diagonal (and of near/far): the masks' hull box moves a little at another --downscale. Further,
# the data puts the world elsewhere (fewer LLFF photos recentre and rescale it; other masks make
# another kind of scene), where the trained field and grid mean nothing.
SCENE_TOLERANCE = 0.05
# What places the field in the world: a resume keeps the checkpoint's.
SCENE_GEOMETRY = ("near", "far", "aabb", "center", "up", "ndc", "ndc_focal", "ndc_width", "ndc_height", "unbounded")
# The options that decide what a run's data is (the built-in scene's own two with them).
DATA_OPTIONS = (*DATASET_FIELDS, "scene_views", "scene_size")


def _numbers(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _scene_moves(old: Scene, new: Scene) -> list[str]:
    """How ``new`` lies elsewhere than ``old`` (beyond SCENE_TOLERANCE), in words."""
    if scene_kind(old) != scene_kind(new):
        return [f"{KIND_WORDS[scene_kind(old)]}, now {KIND_WORDS[scene_kind(new)]}"]
    a, b = torch.tensor(old.aabb, dtype=torch.float64), torch.tensor(new.aabb, dtype=torch.float64)
    reach = SCENE_TOLERANCE * float((a[3:] - a[:3]).norm())
    moves = []
    if float((a - b).abs().max()) > reach:
        moves.append(f"box [{_numbers(old.aabb)}], now [{_numbers(new.aabb)}]")
    if float((torch.tensor(old.center) - torch.tensor(new.center)).norm()) > reach:
        moves.append(f"centre ({_numbers(old.center)}), now ({_numbers(new.center)})")
    for name in ("near", "far"):
        was, now = getattr(old, name), getattr(new, name)
        if abs(was - now) > SCENE_TOLERANCE * max(abs(was), abs(now)):
            moves.append(f"{name} {was:.3g}, now {now:.3g}")
    return moves


def check_same_scene(saved: Scene, scene: Scene, path, data) -> None:
    """``data`` given to score or draw the checkpoint at ``path`` (eval, render) must put the scene
    where the run trained (``saved``): elsewhere its field means nothing. One line naming what moved."""
    moves = _scene_moves(saved, scene)
    if moves:
        raise CheckpointError(f"{data}: not the scene {path} was trained in ({'; '.join(moves)}), where its field "
                              f"means nothing; give the run's own dataset (--data its new place, when it moved)")


def resumed_scene(state: dict, path, scene: Scene, cfg: TrainConfig) -> Scene:
    """The scene a resumed run trains in: ``scene`` (from the data as loaded now) with the
    checkpoint's geometry, so that the field and the grid keep their coordinates. Refused in
    one line, naming the data options that changed, when the data now puts the scene elsewhere."""
    if not isinstance(state.get("scene"), dict):
        return scene
    old = scene_of(state, path)
    moves = _scene_moves(old, scene)
    if moves:
        saved = config_of(state, path)
        changed = [f"--{name.replace('_', '-')} {setting_words(getattr(saved, name))} before, "
                   f"{setting_words(getattr(cfg, name))} now" for name in DATA_OPTIONS
                   if getattr(saved, name) != getattr(cfg, name)]
        hint = (f" Data options changed ({'; '.join(changed)}): resume with the run's own (its config.json)"
                if changed else " The data changed since the run started")
        raise CheckpointError(f"{path}: cannot resume on this data: the run trained in another scene "
                              f"({'; '.join(moves)}), where its field means nothing.{hint}, or start a new "
                              f"run with another --out")
    return dataclasses.replace(scene, **{name: getattr(old, name) for name in SCENE_GEOMETRY})
