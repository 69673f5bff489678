import os

import pytest
import torch

# Tests run on the CPU backend unless TAICHI_NERF_TEST_ARCH says otherwise (the GPU machine).
ARCH = os.environ.get("TAICHI_NERF_TEST_ARCH", "cpu")


@pytest.fixture(scope="session", autouse=True)
def taichi_backend():
    from taichi_nerf import backend

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    return backend.init(ARCH, max_samples_per_ray=512)


@pytest.fixture
def device(taichi_backend):
    return taichi_backend.device


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the reference's largest magnitude."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
