"""Whether a window can open here at all, and the window size from ``--window``; the
command itself is in taichi_nerf/cli/gui.py."""
import ctypes.util
import os
import sys
from pathlib import Path


class GuiUnavailable(RuntimeError):
    """The window cannot open here (no display, no Vulkan); the message says what to do."""


def check_environment(headless: bool) -> None:
    """Fail early with a clear message where GGUI would crash the process instead."""
    import taichi as ti

    try:
        ti.ui.check_ggui_availability()
    except Exception as exc:
        raise GuiUnavailable(f"this Taichi build has no GGUI ({exc})") from None
    if sys.platform.startswith("linux"):
        if not headless and not os.environ.get("DISPLAY"):
            raise GuiUnavailable("no X display (DISPLAY is not set): run it under a virtual display, "
                                 "`xvfb-run -a -s '-screen 0 1280x800x24' taichi-nerf gui ...`, or use --headless")
        if ctypes.util.find_library("vulkan") is None:
            raise GuiUnavailable("Taichi's window needs Vulkan: install the loader and a driver "
                                 "(Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers)")
        icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"]
        has_driver = any(Path(d).is_dir() and any(Path(d).glob("*.json")) for d in icd_dirs)
        if not os.environ.get("VK_ICD_FILENAMES") and not has_driver:
            raise GuiUnavailable("no Vulkan driver found: install one (Debian/Ubuntu without a GPU: "
                                 "apt-get install mesa-vulkan-drivers, which provides lavapipe)")


def parse_window(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--window must look like 1120x800, got {text!r}") from None
    if w < 160 or h < 120:
        raise ValueError(f"--window {text} is too small (at least 160x120)")
    return w, h
