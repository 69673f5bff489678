"""Backgrounds: the colour behind the scene, and RGBA images composited over it.

A field learns only what the training targets show, and the targets are RGBA images drawn
over ``TrainConfig.background``. Everything that compares a render with a target (validation,
previews, ``eval``, the GUI's side-by-side) must draw both over the same colour, so the name
-> colour mapping lives here once.

``random`` trains against a fresh colour per ray (the trainer draws it; only true opacity
explains every colour at once), so it names no colour to evaluate against: evaluation uses
white for it, the NeRF synthetic convention. A background that depends on the data (say, one
detected from the images) belongs in whatever has the dataset: it resolves to one of the
names here before :func:`background_colour` is asked.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

BACKGROUND_COLOURS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
EVALUATION_STAND_INS = {"random": "white"}  # names that are no fixed colour -> the colour used to evaluate


def evaluation_background(name: str) -> str:
    """The fixed background a configured background name renders and evaluates with."""
    name = EVALUATION_STAND_INS.get(name, name)
    if name not in BACKGROUND_COLOURS:
        choices = ", ".join([*BACKGROUND_COLOURS, *EVALUATION_STAND_INS])
        raise ValueError(f"unknown background {name!r}: choose {choices}")
    return name


def background_colour(name: str, device=None) -> torch.Tensor:
    """(1, 3) float32 colour of a background name (``random`` -> white, see the module doc)."""
    return torch.tensor([BACKGROUND_COLOURS[evaluation_background(name)]], dtype=torch.float32, device=device)


def render_colour(background, device=None) -> torch.Tensor:
    """(1, 3) float32 colour on ``device`` of what a caller of ``Renderer.render_image`` gives as its
    background: a name (``"white"``), one grey level, or an RGB triple (a tuple, NumPy's or torch's),
    each in 0 to 1; anything else is a one-line ValueError (torch said "new(): invalid data type 'str'",
    and (255, 255, 255) rendered a scene over a colour 255 times too bright, without a word)."""
    if isinstance(background, str):
        return background_colour(background, device)
    try:
        colour = torch.as_tensor(background, dtype=torch.float32, device=device)
    except (TypeError, ValueError, RuntimeError):
        colour = None
    if colour is None or colour.numel() not in (1, 3):
        raise ValueError(f"background must be a colour: a name ({', '.join(BACKGROUND_COLOURS)}), a grey level or an "
                         f"(r, g, b) triple in 0 to 1, got {background!r}")
    colour = colour.reshape(1, -1).expand(1, 3).contiguous()
    if colour.device.type == "cpu" and not bool(((colour >= 0) & (colour <= 1)).all()):  # (no GPU sync per band)
        raise ValueError(f"background colour values must be in 0 to 1, got {background!r}"
                         + ("; divide 0-255 values by 255" if bool((colour > 1).any()) else ""))
    return colour


def over_background(rgba: torch.Tensor, background) -> torch.Tensor:
    """RGBA images or pixels (..., 4), uint8 or float in [0, 1], composited over
    ``background`` (a (1, 3) or (3,) colour, or one grey level): float RGB (..., 3) in [0, 1]
    on ``rgba``'s device."""
    rgba = rgba.float() / 255.0 if rgba.dtype == torch.uint8 else rgba.float()
    bg = torch.as_tensor(background, dtype=torch.float32, device=rgba.device)
    if bg.numel() == 3:
        bg = bg.reshape(3)
    alpha = rgba[..., 3:]
    return rgba[..., :3] * alpha + (1.0 - alpha) * bg


@dataclass
class TrainingBackground:
    """What a run composites onto: ``random`` (a fresh colour per ray while training) or a
    fixed ``colour``; ``colour`` is also what renders and evaluation use."""
    random: bool
    colour: tuple[float, float, float]
    description: str  # one line for the start of training and `data info`
    warning: str | None = None  # an automatic choice that could be wrong, with the override


def resolve_background(name: str, detected=None) -> TrainingBackground:
    """The background of a run configured with ``name``; ``auto`` follows ``detected`` (the
    dataset's data/surround.py ``BackgroundChoice``): transparency or a uniform surround ->
    that colour; a surround that is scenery -> random per ray, so the field must explain
    every pixel with opaque content instead of leaning on a background colour."""
    override = "set --background white, black or random if it is wrong"
    if name != "auto":
        colour = BACKGROUND_COLOURS[evaluation_background(name)]
        return TrainingBackground(name == "random", colour, f"{name} (set by the configuration)")
    if detected is None:
        return TrainingBackground(False, BACKGROUND_COLOURS["white"], "white (auto: nothing detected)")
    if detected.name == "scene":
        return TrainingBackground(True, BACKGROUND_COLOURS["white"], f"random per ray (auto: {detected.reason})",
                                  warning="background: the surround looks like scenery, so it is modelled; if it is "
                                          "a plain colour, set --background white or black")
    colour = tuple(float(c) for c in detected.colour)
    shown = detected.name if detected.name != "colour" else "(" + ", ".join(f"{c:.2f}" for c in colour) + ")"
    warning = None if detected.confident else f"background: auto chose {shown} ({detected.reason}); {override}"
    return TrainingBackground(False, colour, f"{shown} (auto: {detected.reason})", warning)


def scene_background(scene, cfg=None, device=None) -> torch.Tensor:
    """(1, 3) colour to render a trained scene over: the one its run resolved (saved in the
    scene), else the configuration's (checkpoints from before automatic backgrounds)."""
    if getattr(scene, "background", None) is not None:
        return torch.tensor([scene.background], dtype=torch.float32, device=device)
    name = cfg.background if cfg is not None and cfg.background != "auto" else "white"
    return background_colour(name, device)
