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


# a process that sizes Taichi for ``samples`` rays and runs one kernel, caching it in $TI_OFFLINE_CACHE_FILE_PATH
_ONE_KERNEL = """
import sys, torch
from taichi_nerf import backend
from taichi_nerf.stages.sampling import ray_bounds
backend.init("cpu", int(sys.argv[1]))
ray_bounds(torch.zeros(4, 3), torch.ones(4, 3), torch.tensor([-1.0, -1, -1, 1, 1, 1]), 0.0, 10.0)
"""


def test_runs_sized_for_different_sample_counts_share_their_compiled_kernels(tmp_path):
    """Taichi's autodiff stack size is part of each cached kernel's key: a run sized for 193 samples
    (a stack of 256) and the suite's or a script's 512 (1024) compiled every kernel once each."""
    import os
    import subprocess
    import sys

    from .conftest import checkout_env

    env = checkout_env() | {"TI_OFFLINE_CACHE_FILE_PATH": str(tmp_path / "cache")}
    env.pop("TAICHI_NERF_NO_KERNEL_CACHE", None)
    for samples in (193, 600):
        subprocess.run([sys.executable, "-c", _ONE_KERNEL, str(samples)], env=env, check=True, capture_output=True,
                       timeout=300)
    cached = [name for name in os.listdir(tmp_path / "cache") if name.endswith(".tic")]
    assert len(cached) == 1, cached


def test_bad_arch_is_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="unknown arch"):
        backend.resolve_arch("vulkan")


def test_auto_after_a_cpu_call_says_it_stays_on_the_cpu_where_a_gpu_is(taichi_backend, monkeypatch):
    """A notebook's quick arch="cpu" check, then tn.train() (arch "auto"): on a GPU machine the
    training stayed on the CPU for the rest of the process without a word."""
    import pytest

    if taichi_backend.is_cuda:
        pytest.skip("the CPU must be the running backend")
    monkeypatch.setattr(backend, "_cuda_usable", lambda: True)  # as on a machine with a GPU
    monkeypatch.setattr(backend, "_said_cpu_stays", False)
    with pytest.warns(UserWarning, match="stays on the CPU.*arch='cuda'"):
        assert backend.init("auto", 16) is backend.current()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once a process, not on every call
        backend.init("auto", 16)
    monkeypatch.setattr(backend, "_cuda_usable", lambda: False)  # no GPU: nothing to say
    monkeypatch.setattr(backend, "_said_cpu_stays", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend.init("auto", 16)


def test_a_cuda_backend_puts_tensors_on_the_gpu_taichi_runs_on(monkeypatch):
    """Taichi's CUDA backend always opens the first visible GPU (ti.init has no device option), but the
    backend's device was plain "cuda": torch's *current* GPU. After a notebook's torch.cuda.set_device(1)
    a run's tensors went to GPU 1 while its kernels ran on GPU 0 and read them there (an illegal
    address). The device is cuda:0 now, and a current GPU elsewhere is said. Runs on the CPU: Taichi is
    not started (as if its CUDA backend had), torch is told it has two GPUs and is on the second."""
    import pytest

    monkeypatch.setattr(backend, "_current", None)  # the running backend comes back after the test
    monkeypatch.setattr(backend, "_start_taichi", lambda arch, stack, verbose: arch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    for flags, name in ((torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32")):
        monkeypatch.setattr(flags, name, getattr(flags, name))  # init turns TF32 on: back as it was
    with pytest.warns(UserWarning, match=r"current CUDA device is cuda:1.*first visible GPU.*CUDA_VISIBLE_DEVICES"):
        started = backend.init("cuda", 16)
    assert started.device == torch.device("cuda", 0)
