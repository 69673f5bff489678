"""A pure-torch re-implementation of the Keras "3D volumetric rendering with NeRF" recipe,
for side-by-side time-to-quality benchmarks (``scripts/benchmark.py quality``). Nothing in
taichi-nerf's own path uses it.

The recipe: positions only, encoded with 16 frequencies ([x, sin(2^k x), cos(2^k x)]);
8 Dense(64) ReLU layers with the encoded input re-injected after layer 4; 4 outputs
(sigmoid colour, ReLU density); 32 stratified samples in [2, 6] (jittered when training);
the last interval is 1e10 long; batches of 5 whole images; Adam 1e-3; MSE.
"""
from __future__ import annotations

import sys

if __name__ == "__main__":  # a module, not a command: it exited 0 having done nothing, even for --help
    sys.exit("baselines.py is the Keras recipe that `python scripts/benchmark.py quality` trains beside taichi-nerf; "
             "run that (--help lists its options)")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from taichi_nerf.rendering.backgrounds import over_background  # noqa: E402
from taichi_nerf.stages import reference  # noqa: E402

FREQUENCIES, SAMPLES, NEAR, FAR, BATCH_IMAGES, LR = 16, 32, 2.0, 6.0, 5, 1e-3


class KerasNeRF(nn.Module):
    def __init__(self, width: int = 64, depth: int = 8):
        super().__init__()
        in_dim = 3 * (1 + 2 * FREQUENCIES)
        self.layers = nn.ModuleList()
        for i in range(depth):
            # Keras concatenates the input after layer i when i % 4 == 0 and i > 0, so the
            # layer after it takes width + in_dim.
            reinjected = i > 1 and (i - 1) % 4 == 0
            fan_in = in_dim if i == 0 else width + (in_dim if reinjected else 0)
            self.layers.append(nn.Linear(fan_in, width))
        self.out = nn.Linear(width, 4)
        for layer in [*self.layers, self.out]:  # Keras Dense defaults: Glorot uniform, zero bias
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        h = x
        for i, layer in enumerate(self.layers):
            h = F.relu(layer(h))
            if i % 4 == 0 and i > 0:
                h = torch.cat([h, x], dim=-1)
        return self.out(h)


def make_model() -> KerasNeRF:
    return KerasNeRF()


def image_rays(pose: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int):
    """All rays of one camera (OpenGL convention, unnormalised directions as in Keras, pixel
    centres at +0.5 as in the datasets here)."""
    dev = pose.device
    fx, fy, cx, cy = (float(v) for v in intrinsics[:4])
    j, i = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=dev),
                          torch.arange(width, dtype=torch.float32, device=dev), indexing="ij")
    cam = torch.stack([(i + 0.5 - cx) / fx, -(j + 0.5 - cy) / fy, -torch.ones_like(i)], -1)
    dirs = cam @ pose[:3, :3].T
    return pose[:3, 3].expand_as(dirs), dirs


def render(model: KerasNeRF, origins, dirs, jitter: bool, generator=None):
    """(R, 3) colours for (R, 3) rays, the recipe's way (no background term)."""
    r, dev = origins.shape[0], origins.device
    t = torch.linspace(NEAR, FAR, SAMPLES, device=dev).expand(r, SAMPLES)
    if jitter:
        t = t + torch.rand(r, SAMPLES, generator=generator, device=dev) * (FAR - NEAR) / SAMPLES
    pts = origins[:, None] + dirs[:, None] * t[..., None]
    raw = model(reference.harmonic(pts.reshape(-1, 3), FREQUENCIES)).view(r, SAMPLES, 4)
    sigma = F.relu(raw[..., 3])
    rgb = torch.sigmoid(raw[..., :3])
    delta = torch.cat([t[:, 1:] - t[:, :-1], torch.full((r, 1), 1e10, device=dev)], 1)
    alpha = 1.0 - torch.exp(-sigma * delta)
    trans = torch.cumprod(torch.cat([torch.ones(r, 1, device=dev), 1.0 - alpha + 1e-10], 1), 1)[:, :-1]
    return ((alpha * trans)[..., None] * rgb).sum(1)


class KerasRecipe:
    """Train and evaluate the baseline on a :class:`taichi_nerf.data.Split` pair."""

    def __init__(self, train_split, background: float = 0.0, seed: int = 0, device="cpu"):
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.model = make_model().to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.split = train_split.to(self.device)
        self.background = background
        self.steps = 0

    def target(self, split, index):
        return over_background(split.rgba[index].to(self.device), self.background)

    def rays(self, split, index):
        o, d = image_rays(split.poses[index].to(self.device), split.intrinsics[index], split.width, split.height)
        return o.reshape(-1, 3), d.reshape(-1, 3)

    def step(self) -> float:
        idx = torch.randint(0, self.split.count, (BATCH_IMAGES,), generator=self.generator, device=self.device).tolist()
        rays = [self.rays(self.split, i) for i in idx]
        o = torch.cat([r[0] for r in rays])
        d = torch.cat([r[1] for r in rays])
        target = torch.cat([self.target(self.split, i).reshape(-1, 3) for i in idx])
        loss = F.mse_loss(render(self.model, o, d, True, self.generator), target)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.steps += 1
        return float(loss.detach())

    @torch.no_grad()
    def render_view(self, split, index, chunk: int = 8192):
        o, d = self.rays(split, index)
        out = torch.cat([render(self.model, o[i:i + chunk], d[i:i + chunk], False)
                         for i in range(0, o.shape[0], chunk)])
        return out.view(split.height, split.width, 3)
