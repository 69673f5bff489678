import taichi as ti
import torch

from taichi_nerf import backend


@ti.kernel
def _write_index(x: ti.types.ndarray()):
    for i in range(x.shape[0]):
        x[i] = i * 2.0


def test_zero_copy_kernel_writes_into_torch_memory(taichi_backend):
    x = torch.zeros(1000, device=taichi_backend.device)
    ptr = x.data_ptr()
    _write_index(x)
    assert x.data_ptr() == ptr
    assert torch.equal(x.cpu(), torch.arange(1000, dtype=torch.float32) * 2.0)
    view = x[10:20]  # a view at an offset is still the same memory
    _write_index(view)
    assert x[10] == 0.0 and x[19] == 18.0 and x[20] == 40.0


def test_device_matches_arch(taichi_backend):
    assert (taichi_backend.device.type == "cuda") == taichi_backend.is_cuda
    assert ti.lang.impl.current_cfg().arch == (ti.cuda if taichi_backend.is_cuda else ti.x64)


def test_init_is_idempotent_and_grows_autodiff_stack(taichi_backend):
    assert backend.init(taichi_backend.arch, 16) is backend.current()
    assert backend.current().max_samples_per_ray >= 512


def test_bad_arch_is_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="unknown arch"):
        backend.resolve_arch("vulkan")
