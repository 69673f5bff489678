"""The colour's sigmoid with a pull on saturated logits (stages/field.py _BoundedColour): its
values and gradients against float64, and the collapse it prevents."""
import pytest
import torch

from taichi_nerf.stages import field, reference
from taichi_nerf.stages.field import COLOR_LOGIT_BOUND, COLOR_LOGIT_PULL

from .conftest import rel_err


@pytest.mark.parametrize("rows", [1, 7, 128, 4096])
def test_values_and_gradients_match_float64(rows):
    g = torch.Generator().manual_seed(rows)
    z = (torch.rand(rows, 3, generator=g) * 60.0 - 30.0)  # inside and far beyond the bound
    upstream = torch.randn(rows, 3, generator=g)
    z32 = z.clone().requires_grad_(True)
    colour = field._BoundedColour.apply(z32)
    colour.backward(upstream)
    z64 = z.double().requires_grad_(True)
    expected = torch.sigmoid(z64)
    ((expected * upstream.double()).sum() + reference.bounded_colour_loss(z64, COLOR_LOGIT_BOUND,
                                                                          COLOR_LOGIT_PULL)).backward()
    assert rel_err(colour, expected) < 1e-6
    assert rel_err(z32.grad, z64.grad) < 1e-5
    inside = z.abs() < COLOR_LOGIT_BOUND  # there, exactly sigmoid's gradient
    s = torch.sigmoid(z)
    assert torch.allclose(z32.grad[inside], (upstream * s * (1 - s))[inside], rtol=1e-5, atol=1e-12)
    far = z.abs() > 20.0  # there the pull outweighs sigmoid's gradient: back towards the bound
    assert (z32.grad[far].sign() == z[far].sign()).all()


def test_the_field_colours_alike_with_and_without_gradients():
    """Training goes through the pull, rendering (no gradients) through plain sigmoid: same colours."""
    torch.manual_seed(0)
    f = field.RadianceField(pos_dim=9, dir_dim=3, width=16, depth=2)
    h, dirs = f.features(torch.randn(50, 9)), torch.randn(50, 3)
    trained = f.color_from(h, dirs)
    with torch.no_grad():
        rendered = f.color_from(h, dirs)
    assert trained.grad_fn is not None and torch.equal(trained.detach(), rendered)
    z = torch.linspace(-40, 40, 81)[:, None].expand(81, 3).contiguous()
    assert torch.equal(field._BoundedColour.apply(z), torch.sigmoid(z))


def _train_dark_object(bounded: bool, seed: int, steps: int = 400) -> tuple[float, float]:
    """A colour MLP under the run's Adam (lr 5e-3, eps 1e-10, beta2 0.99) learns a dark object
    (0.15) composited over white while its opacity rises from 0.02 to 1 over 200 steps: the pixels
    are too bright all that while, so every colour is told "darker". Returns the lowest logit seen
    and the colour learnt."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 3))
    opt = torch.optim.Adam(net.parameters(), lr=5e-3, eps=1e-10, betas=(0.9, 0.99))
    x, lowest = torch.randn(256, 16), 0.0
    for t in range(steps):
        opacity = min(1.0, 0.02 + t / 200)
        z = net(x)
        colour = field._BoundedColour.apply(z) if bounded else torch.sigmoid(z)
        loss = (((1.0 - opacity) + opacity * colour - 0.15) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        lowest = min(lowest, float(z.detach().min()))
    with torch.no_grad():
        return lowest, float(torch.sigmoid(net(x)).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_a_dark_object_on_white_keeps_its_colour_alive(seed):
    lowest, colour = _train_dark_object(bounded=False, seed=seed)
    assert lowest < -20 and colour < 0.01  # plain sigmoid: saturated, stuck black long after the object is opaque
    lowest, colour = _train_dark_object(bounded=True, seed=seed)
    assert lowest > -20 and abs(colour - 0.15) < 0.01, (lowest, colour)
