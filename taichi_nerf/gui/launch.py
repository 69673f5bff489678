"""Whether a window can open here at all, and the window size from ``--window``; the
command itself is in taichi_nerf/cli/gui.py."""
import ctypes.util
import os
import sys
from pathlib import Path

BROWSER = "taichi-nerf gui --web, or taichi-nerf view --ckpt RUN"
MAX_WINDOW_SIDE = 8192  # larger windows overflow GGUI's images (an int32 index) and abort in Vulkan


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
            raise GuiUnavailable("no X display (DISPLAY is not set): over SSH, use the browser viewer "
                                 f"({BROWSER}); or run it under a virtual display, "
                                 "`xvfb-run -a -s '-screen 0 1280x800x24' taichi-nerf gui ...`, or use --headless")
        if not headless and not _display_answers(os.environ["DISPLAY"]):
            raise GuiUnavailable(f"cannot open the X display {os.environ['DISPLAY']!r} (DISPLAY): is its X server "
                                 f"running, and may this user connect? Without one: {BROWSER}, or --headless")
        if ctypes.util.find_library("vulkan") is None:
            raise GuiUnavailable("Taichi's window needs Vulkan: install the loader and a driver "
                                 "(Debian/Ubuntu: apt-get install libvulkan1 mesa-vulkan-drivers)")
        icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"]
        has_driver = any(Path(d).is_dir() and any(Path(d).glob("*.json")) for d in icd_dirs)
        if not os.environ.get("VK_ICD_FILENAMES") and not has_driver:
            raise GuiUnavailable("no Vulkan driver found: install one (Debian/Ubuntu without a GPU: "
                                 "apt-get install mesa-vulkan-drivers, which provides lavapipe)")


def window_failure(exc: Exception) -> str:
    """What to tell a user whose window failed to open after every check passed (Taichi says
    only "Vulkan must be available for GGUI", after printing "RHI Error: Can not create Vulkan
    instance")."""
    said = " ".join(str(exc).split())
    hint = ""
    if "vulkan" in said.lower():
        hint = (": the Vulkan driver is installed but did not start (check `vulkaninfo --summary`; without a GPU, "
                "Mesa's lavapipe: apt-get install mesa-vulkan-drivers; VK_ICD_FILENAMES is "
                f"{os.environ.get('VK_ICD_FILENAMES', 'unset')})")
    return f"the window could not open (Taichi: {said}){hint}. Without a window: {BROWSER}, or --headless"


def _display_answers(display: str) -> bool:
    """Whether an X server answers at ``display``; GLFW's own failure comes after the run folder
    is made, as a bare "cannot initialize GLFW". True where libX11 is absent (nothing to ask)."""
    library = ctypes.util.find_library("X11")
    if library is None:
        return True
    x11 = ctypes.CDLL(library)
    x11.XOpenDisplay.restype, x11.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    connection = x11.XOpenDisplay(display.encode())
    if connection:
        x11.XCloseDisplay(connection)
    return bool(connection)


def parse_window(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--window must look like 1120x800, got {text!r}") from None
    if w < 160 or h < 120:
        raise ValueError(f"--window {text} is too small (at least 160x120)")
    if max(w, h) > MAX_WINDOW_SIDE:
        raise ValueError(f"--window {text} is too large (at most {MAX_WINDOW_SIDE} pixels a side)")
    return w, h
