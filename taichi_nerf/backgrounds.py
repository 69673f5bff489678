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
