"""One place that decides where kernels run and initialises Taichi once per process.

Zero-copy between torch and Taichi only holds when the tensor's device matches the Taichi
arch (CPU tensor + ti.cpu, CUDA tensor + ti.cuda); otherwise Taichi silently copies. So the
backend owns both choices and every module asks it for ``device`` instead of guessing.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass

import torch

from .interrupts import startup_over

ARCH_CHOICES = ("auto", "cuda", "cpu")

# Taichi autodiff keeps loop-carried locals of a dynamic loop on a fixed-size stack; a ray
# with more samples than the stack holds segfaults instead of raising, so we size the stack
# from the largest sample count any kernel will be asked to differentiate and check against it.
# The stack size is part of Taichi's compile configuration, and so of every cached kernel's key:
# processes that sized it apart (five sizes in the suite's processes, 64 to 1024) compiled and
# cached every kernel once per size. Only the reference compositing (method="autodiff") uses the stack, so
# one generous size serves every run: the kernel cache is shared, and rays up to 1016 samples
# never re-initialise Taichi.
_MIN_AD_STACK = 1024


class BackendUnavailable(ValueError):
    """The asked-for compute backend cannot start here (a user-fixable choice)."""


@dataclass(frozen=True)
class Backend:
    arch: str  # "cuda" or "cpu"
    device: torch.device
    max_samples_per_ray: int

    @property
    def is_cuda(self) -> bool:
        return self.arch == "cuda"


_current: Backend | None = None
_said_cpu_stays = False  # the note that 'auto' kept the CPU, given once a process


def _ad_stack_size(max_samples_per_ray: int) -> int:
    need = max(_MIN_AD_STACK, int(max_samples_per_ray) + 8)
    return 1 << (need - 1).bit_length()  # round up to a power of two: fewer re-inits


def _cuda_usable() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import taichi as ti

        return bool(ti._lib.core.with_cuda())
    except Exception:  # pragma: no cover - depends on the taichi build
        return False


def resolve_arch(arch: str) -> str:
    if arch not in ARCH_CHOICES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCH_CHOICES)}")
    if arch == "auto":
        return "cuda" if _cuda_usable() else "cpu"
    if arch == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--arch cuda was asked for, but torch sees no CUDA GPU; use --arch cpu or auto")
    return arch


def init(arch: str = "auto", max_samples_per_ray: int = 256, *, verbose: bool = False) -> Backend:
    """Initialise Taichi (once) and return the backend every kernel call must use.

    Calling again with the same arch and a sample count that fits is free. A larger sample
    count re-initialises Taichi with a bigger autodiff stack (kernels recompile; torch-owned
    buffers are unaffected because Taichi owns no data here).
    """
    global _current, _said_cpu_stays
    resolved = resolve_arch(arch) if arch != "auto" or _current is None else _current.arch
    if arch == "auto" and resolved == "cpu" and _current is not None and not _said_cpu_stays and _cuda_usable():
        # "auto" keeps the running backend (another would strand the earlier CPU tensors): say so, once
        _said_cpu_stays = True
        warnings.warn("arch 'auto' stays on the CPU that an earlier call in this process chose, though a CUDA GPU "
                      "is here; give arch='cuda' (--arch cuda) to use the GPU", stacklevel=2)
    if (
        _current is not None
        and _current.arch == resolved
        and _current.max_samples_per_ray >= max_samples_per_ray
    ):
        return _current

    stack = _ad_stack_size(max(max_samples_per_ray, _current.max_samples_per_ray if _current else 0))
    actual = _start_taichi(resolved, stack, verbose)
    if actual != resolved:
        if arch != "auto":
            raise BackendUnavailable(f"Taichi could not start its {resolved} backend here; use --arch cpu or auto")
        warnings.warn("Taichi's CUDA backend did not start; running on the CPU")
    # Taichi's CUDA backend always opens the first visible GPU (ti.init has no device option), so the
    # tensors go there too: plain "cuda" is torch's current GPU, wherever torch.cuda.set_device put it.
    device = torch.device("cuda", 0) if actual == "cuda" else torch.device("cpu")
    if actual == "cuda":
        if torch.cuda.is_initialized() and torch.cuda.current_device() != 0:  # (is_initialized: no CUDA start)
            warnings.warn(f"torch's current CUDA device is cuda:{torch.cuda.current_device()}, but Taichi's CUDA "
                          "backend runs on the first visible GPU, so taichi-nerf uses cuda:0; to use another GPU, "
                          "start Python with CUDA_VISIBLE_DEVICES naming that GPU alone", stacklevel=2)
        # TF32 matmuls: ~8x the fp32 tensor-core rate for the MLP, well inside NeRF's noise.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    _current = Backend(arch=actual, device=device, max_samples_per_ray=stack - 8)
    startup_over()  # a Ctrl-C that Taichi's kernel decorators swallowed on the way is raised here
    return _current


def _start_taichi(arch: str, stack: int, verbose: bool) -> str:
    """ti.init with the settings every kernel needs; returns the arch that actually started."""
    import taichi as ti

    # Name the arch explicitly: ti.gpu may pick Vulkan, which copies torch tensors and returns
    # zero autodiff gradients. ti.cpu is x64 or arm64, whichever this host is.
    ti_arch = ti.cuda if arch == "cuda" else ti.cpu
    offline_cache = os.environ.get("TAICHI_NERF_NO_KERNEL_CACHE") is None
    # ti.init prints "Starting on arch=..." on stdout, which must stay clean for JSON output.
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        try:
            ti.init(arch=ti_arch, ad_stack_size=stack, default_fp=ti.f32, default_ip=ti.i32,
                    offline_cache=offline_cache, log_level=ti.INFO if verbose else ti.WARN)
        except RuntimeError:
            if arch != "cuda":
                raise
            ti.init(arch=ti.cpu, ad_stack_size=stack, default_fp=ti.f32, default_ip=ti.i32,
                    offline_cache=offline_cache, log_level=ti.INFO if verbose else ti.WARN)
    return "cuda" if ti.lang.impl.current_cfg().arch == ti.cuda else "cpu"


# Per-ray loops of at most this many rays run on one thread on the CPU (``serial_loop``): a
# training batch (512 rays) is; a render chunk (4096) is not.
SERIAL_LOOP_ITEMS = 1024


def serial_loop(items: int) -> bool:
    """Whether a kernel's loop over ``items`` rays runs on one thread. On the CPU, waking Taichi's
    thread pool costs ~95 us a launch, more than a training batch's work per kernel gains from the
    second core: marching, compositing both ways and the ray batch on one thread made 3.9% more
    steps (docs/BENCHMARKS.md, "Kernel launch overhead on the CPU"). Pass it as a ``ti.template()``
    argument to ``ti.loop_config(serialize=...)``: the kernel compiles once for each value."""
    return current().arch == "cpu" and items <= SERIAL_LOOP_ITEMS


def float32_trig_is_approximate() -> bool:
    """Whether Taichi's float32 sin/cos are fast approximations on the running arch (CUDA's
    are, with errors growing with the argument; the CPU's are accurate). For ``ti.static``."""
    import taichi as ti

    return ti.lang.impl.current_cfg().arch == ti.cuda


def current() -> Backend:
    """The active backend, initialising a CPU/auto one on first use."""
    return _current if _current is not None else init("auto")


def require_samples(n: int) -> Backend:
    """Make sure differentiating rays of ``n`` samples is safe (see ``_ad_stack_size``)."""
    b = current()
    if n > b.max_samples_per_ray:
        b = init(b.arch, n)
    return b


def native_bf16(device) -> bool:
    """Whether bf16 autocast has a fast path on ``device``: CUDA with bf16 support, or a CPU
    for which oneDNN has bf16 kernels (AVX-512 and newer). Elsewhere autocast emulates bf16,
    and a training step ran ~20x slower than in float32 on an AVX2-only EPYC (docs/BENCHMARKS.md)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def cpu_bf16_instructions() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX), not only oneDNN's bf16
    path (which plain AVX-512 also has, by emulation)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes
        return False


def use_bf16(requested: bool | None, device) -> bool:
    """Whether the MLP runs under bf16 autocast (``TrainConfig.mixed_precision``). Asked for
    (True): where bf16 is native (:func:`native_bf16`). Left to the CPU (None, the default for
    objects and forward-facing scenes: ``TrainConfig.mixed_precision_for``): on a CPU with bf16
    instructions, where training made 6-40% more steps (docs/BENCHMARKS.md, "bf16 on the CPU");
    float32 elsewhere, CUDA included until measured there."""
    device = torch.device(device)
    if requested is None:
        return device.type == "cpu" and cpu_bf16_instructions() and native_bf16(device)
    return bool(requested) and native_bf16(device)


def autodiff_leaf(x: torch.Tensor, grad: torch.Tensor | None = None) -> torch.Tensor:
    """A fresh leaf whose ``.grad`` Taichi's ``kernel.grad`` may read or write without touching
    torch's graph: zeros, or a private copy of ``grad`` (kernel.grad zeroes output gradients,
    and the caller may still hold this one)."""
    leaf = x.detach().contiguous().requires_grad_(True)
    leaf.grad = torch.zeros_like(leaf) if grad is None else grad.clone(memory_format=torch.contiguous_format)
    return leaf
