"""Field stage: the radiance field, a NeRF-style torch MLP over harmonic encodings.

Input rows are what :func:`taichi_nerf.encoding.encode_samples` writes: encoded position,
then encoded view direction. Density depends on position only; colour on position features
and the view direction.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class RadianceField(nn.Module):
    def __init__(self, pos_dim: int, dir_dim: int, width: int = 128, depth: int = 4,
                 skip: int | None = None, color_width: int | None = None, density_bias: float = -4.0):
        super().__init__()
        self.pos_dim, self.dir_dim = pos_dim, dir_dim
        self.skip = depth // 2 if skip is None else skip  # layer index whose input re-gets the encoding
        layers = []
        for i in range(depth):
            fan_in = pos_dim if i == 0 else width
            if i == self.skip and i > 0:
                fan_in += pos_dim
            layers.append(nn.Linear(fan_in, width))
        self.trunk = nn.ModuleList(layers)
        self.density_head = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        cw = color_width or max(width // 2, 16)
        self.color_hidden = nn.Linear(width + dir_dim, cw)
        self.color = nn.Linear(cw, 3)
        # softplus(raw + bias) with a negative bias and small weights: every sample starts
        # nearly transparent, so training begins from an empty volume instead of fog.
        nn.init.normal_(self.density_head.weight, std=1e-2)
        nn.init.constant_(self.density_head.bias, density_bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the density layer was renamed call it "density".
        for name in ("weight", "bias"):
            old, new = f"{prefix}density.{name}", f"{prefix}density_head.{name}"
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def features(self, x_in: torch.Tensor) -> torch.Tensor:
        """Trunk features of encoded positions (M, pos_dim) -> (M, width)."""
        h = x_in
        for i, layer in enumerate(self.trunk):
            if i == self.skip and i > 0:
                h = torch.cat([h, x_in], dim=-1)
            h = F.relu(layer(h))
        return h

    def density_from(self, h: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.density_head(h)[:, 0])

    def color_from(self, h: torch.Tensor, encoded_dir: torch.Tensor) -> torch.Tensor:
        c = F.relu(self.color_hidden(torch.cat([self.feature(h), encoded_dir], dim=-1)))
        return torch.sigmoid(self.color(c))

    def forward(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, pos_dim + dir_dim) -> density (M,) >= 0, colour (M, 3) in [0, 1]."""
        h = self.features(encoded[:, : self.pos_dim])
        return self.density_from(h), self.color_from(h, encoded[:, self.pos_dim:])

    def density_only(self, encoded_pos: torch.Tensor) -> torch.Tensor:
        return self.density_from(self.features(encoded_pos))
