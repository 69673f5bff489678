"""Field stage: the radiance field, a NeRF-style torch MLP over harmonic encodings.

Input rows are what :func:`taichi_nerf.stages.encoding.encode_samples` writes: encoded position,
then encoded view direction (none when ``dir_dim`` is 0). Density depends on position only;
colour on position features and the view direction.

Shape: ``depth`` hidden layers of ``width`` (the encoded position concatenated again to the
input of layer ``skip``); a linear density head; the colour branch: an optional linear
``feature`` layer, then [features, encoded direction] -> ``color_width`` hidden units -> 3
(``color_width`` 0: a linear read-out). The presets (presets.py) shape it like the Keras and
PyTorch3D tutorials' networks.

Per-image appearance codes (nerfacto's, NeRF-W's): with ``appearance_images`` and
``appearance_dim``, each training image has a learned code that joins the colour branch's
input, so exposure and white balance that change from photo to photo go into the code
instead of into the geometry. Density never sees it. New views use the codes' mean (or one
image's code, :attr:`RadianceField.appearance_image`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def softplus10(x: torch.Tensor) -> torch.Tensor:
    """torch.nn.Softplus(beta=10): PyTorch3D's tutorial activation, a sharper softplus."""
    return F.softplus(x, beta=10.0)


ACTIVATIONS = {"relu": F.relu, "softplus10": softplus10}

# Colour logits beyond this change a colour by under 0.0004: past it they are saturation, not colour.
COLOR_LOGIT_BOUND = 8.0
# The pull back towards the bound, per unit beyond it, as the gradient of this weight times
# mean(relu(|z| - bound)^2) / 2 over a batch's rows. Measured on ethiopianHead (docs/BENCHMARKS.md).
COLOR_LOGIT_PULL = 1e-3


class _BoundedColour(torch.autograd.Function):
    """sigmoid(z), whose backward also pulls logits beyond +-COLOR_LOGIT_BOUND back.

    Adam moves every weight at about the learning rate however small its gradient. A dark object
    on a lighter background (ethiopianHead on white) gets a weak but one-sided push while it is
    still transparent: its pixels are too bright, so every colour is told "darker". Its colour
    logits fell to the -100s within 50 steps, where sigmoid's gradient underflows, and the
    field stayed black (grey through its opacity) for 2000-3000 steps. With the pull they stay
    within about the bound, where the loss can still bring them back."""

    @staticmethod
    def forward(ctx, z):
        colour = torch.sigmoid(z)
        ctx.save_for_backward(z, colour)
        return colour

    @staticmethod
    def backward(ctx, grad):
        z, colour = ctx.saved_tensors
        logits = z.float()  # bf16 under autocast: the excess in float32
        beyond = logits - logits.clamp(-COLOR_LOGIT_BOUND, COLOR_LOGIT_BOUND)
        pull = (COLOR_LOGIT_PULL / max(z.shape[0], 1)) * beyond
        return (grad * colour * (1.0 - colour) + pull).to(z.dtype)


class RadianceField(nn.Module):
    """``activation``: of the hidden layers (config.Activation). ``density_activation``: raw
    density output -> density: ``softplus``, ``relu``, or ``opacity-softplus10``:
    softplus10(raw) * ``density_scale``, where the scale is 1 / the nominal sample spacing, so
    that softplus10(raw) is a sample's optical thickness (see presets.PYTORCH3D). ``init``:
    ``default`` (torch's layers, a near-zero density head), ``torch`` (torch's everywhere)
    or ``glorot`` (Glorot-uniform weights, zero biases: Keras's Dense); the density head's
    bias is ``density_bias`` in all three."""

    def __init__(self, pos_dim: int, dir_dim: int, width: int = 128, depth: int = 4,
                 skip: int | None = None, color_width: int | None = None, density_bias: float = -4.0,
                 activation: str = "relu", density_activation: str = "softplus", density_scale: float = 1.0,
                 feature_layer: bool = True, init: str = "default", appearance_images: int = 0,
                 appearance_dim: int = 0):
        super().__init__()
        self.pos_dim, self.dir_dim = pos_dim, dir_dim
        self.skip = depth // 2 if skip is None else skip  # layer index whose input re-gets the encoding (0: none)
        self.act = ACTIVATIONS[activation]
        if density_activation not in ("softplus", "relu", "opacity-softplus10"):
            raise ValueError(f"unknown density activation {density_activation!r}")
        self.density_activation = density_activation
        # Saved with the weights: a checkpoint's densities mean the same whatever config loads it.
        self.register_buffer("density_scale", torch.tensor(float(density_scale)))
        layers = []
        for i in range(depth):
            fan_in = pos_dim if i == 0 else width
            if i == self.skip and i > 0:
                fan_in += pos_dim
            layers.append(nn.Linear(fan_in, width))
        self.trunk = nn.ModuleList(layers)
        self.density_head = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width) if feature_layer else None
        self.appearance = nn.Embedding(appearance_images, appearance_dim) if appearance_images and appearance_dim \
            else None
        self.appearance_image: int | None = None  # new views: None, the codes' mean; else this image's code
        color_in = width + dir_dim + self.appearance_dim
        cw = max(width // 2, 16) if color_width is None else color_width
        self.color_hidden = nn.Linear(color_in, cw) if cw > 0 else None
        self.color = nn.Linear(cw if cw > 0 else color_in, 3)
        if init == "glorot":
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight)
                    nn.init.zeros_(layer.bias)
        elif init == "default":
            # softplus(raw + bias) with a negative bias and small weights: every sample starts
            # nearly transparent, so training begins from an empty volume instead of fog.
            nn.init.normal_(self.density_head.weight, std=1e-2)
        elif init != "torch":
            raise ValueError(f"unknown init {init!r}")
        nn.init.constant_(self.density_head.bias, density_bias)
        if self.appearance is not None:  # every image starts at the mean look; its code learns how it differs
            nn.init.zeros_(self.appearance.weight)

    @property
    def appearance_dim(self) -> int:
        return 0 if self.appearance is None else self.appearance.embedding_dim

    def appearance_codes(self, image_index: torch.Tensor | None, rows: int) -> torch.Tensor | None:
        """(rows, appearance_dim) codes: of each row's training image (``image_index``, one
        per row), or for new views (None) the mean code or ``appearance_image``'s. None
        without appearance codes."""
        if self.appearance is None:
            return None
        if image_index is not None:
            return self.appearance(image_index.long())
        if self.appearance_image is not None:
            code = self.appearance.weight[int(self.appearance_image)]
        else:
            code = self.appearance.weight.mean(dim=0)
        return code.expand(rows, -1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before the density layer was renamed call it "density".
        for name in ("weight", "bias"):
            old, new = f"{prefix}density.{name}", f"{prefix}density_head.{name}"
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)
        # Checkpoints from before the opacity-softplus10 density had no scale (it was unused).
        state_dict.setdefault(f"{prefix}density_scale", self.density_scale.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def features(self, x_in: torch.Tensor) -> torch.Tensor:
        """Trunk features of encoded positions (M, pos_dim) -> (M, width)."""
        h = x_in
        for i, layer in enumerate(self.trunk):
            if i == self.skip and i > 0:
                h = torch.cat([h, x_in], dim=-1)
            h = self.act(layer(h))
        return h

    def density_from(self, h: torch.Tensor, raw_noise: torch.Tensor | None = None) -> torch.Tensor:
        """``raw_noise`` (training only) is added before the activation (see
        ``Renderer.density_noise``)."""
        raw = self.density_head(h)[:, 0]
        if raw_noise is not None:
            raw = raw + raw_noise
        if self.density_activation == "relu":
            return F.relu(raw)
        if self.density_activation == "opacity-softplus10":
            return softplus10(raw) * self.density_scale
        return F.softplus(raw)

    def color_from(self, h: torch.Tensor, encoded_dir: torch.Tensor,
                   codes: torch.Tensor | None = None) -> torch.Tensor:
        """``codes``: (M, appearance_dim) per-sample appearance codes; None: new views'
        (see :meth:`appearance_codes`)."""
        c = self.feature(h) if self.feature is not None else h
        if self.dir_dim:
            c = torch.cat([c, encoded_dir], dim=-1)
        if self.appearance is not None:
            codes = self.appearance_codes(None, c.shape[0]) if codes is None else codes
            c = torch.cat([c, codes.to(c.dtype)], dim=-1)
        if self.color_hidden is not None:
            c = self.act(self.color_hidden(c))
        logits = self.color(c)
        return _BoundedColour.apply(logits) if torch.is_grad_enabled() else torch.sigmoid(logits)

    def forward(self, encoded: torch.Tensor, raw_noise: torch.Tensor | None = None,
                codes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, pos_dim + dir_dim) -> density (M,) >= 0, colour (M, 3) in [0, 1]."""
        h = self.features(encoded[:, : self.pos_dim])
        return self.density_from(h, raw_noise), self.color_from(h, encoded[:, self.pos_dim:], codes)

    def density_only(self, encoded_pos: torch.Tensor) -> torch.Tensor:
        return self.density_from(self.features(encoded_pos))
