"""The browser viewer's speed while it trains the built-in scene, measured with a real browser
(Debian's chromium, headless, software WebGL, driven by Playwright): ``taichi-nerf gui --web``
runs three phases in one process and its ``viewer.jsonl`` (one line a second) is summarised:

1. closed: no browser connected (training alone, the viewer idle);
2. still: a browser watching a still camera (training and rendering share each frame);
3. moving: the browser's camera dragged every ~1.5 s (the moving preview, then refinement).

It prints pictures sent per second, the median latency from a camera message to the first
picture of that camera (server side: received -> JPEG queued; on localhost the browser shows
it a few ms later), and training steps per second in each phase.

    python scripts/viewer_bench.py --seconds 30            # 30 s a phase
    python scripts/viewer_bench.py --seconds 30 -- --data DIR --batch-rays 2048
"""
import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts import one_line_errors  # noqa: E402
from taichi_nerf.runs.run_folder import VIEWER_LOG as FILE_NAME  # noqa: E402
from taichi_nerf.viewing.perflog import read  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def wait_for(condition, what: str, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"viewer_bench.py: waited {seconds:g} s for {what}")


def status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def phase(rows: list[dict], start: float, end: float, skip_s: float = 2.0) -> dict:
    kept = [r for r in rows if start + skip_s <= r["unix_s"] <= end]
    if not kept:
        return {}
    latencies = [r["latency_ms"] for r in kept if r["latency_ms"] is not None]
    return {"seconds": len(kept), "fps": round(statistics.mean(r["fps"] for r in kept), 2),
            "train_steps_per_s": round(statistics.mean(r["train_steps_per_s"] for r in kept), 2),
            "median_latency_ms": round(statistics.median(latencies), 1) if latencies else None,
            "view_at_end": [kept[-1]["width"], kept[-1]["height"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase (default 30)")
    parser.add_argument("--warmup-steps", type=int, default=200,
                        help="steps trained before measuring (kernels compile, the grid warms up; default 200)")
    parser.add_argument("--viewport", default="1024x640", help="browser window (default 1024x640)")
    parser.add_argument("extra", nargs="*", help="more `taichi-nerf gui` arguments (after --)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="viewer_bench_"))
    status_path, log_path = tmp / "status.json", tmp / "viewer.log"
    total = 3 * args.seconds + 900
    cmd = [sys.executable, "-m", "taichi_nerf", "gui", "--web", "--out", str(tmp / "run"), "--no-progress",
           "--viewer-port", "0", "--seconds", str(total), "--status", str(status_path), *args.extra]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        url = wait_for(lambda: (m := re.search(r"open (http://127\.0\.0\.1:\d+)", log_path.read_text())) and m.group(1),
                       "the viewer's address", 600)
        wait_for(lambda: status(status_path).get("step", 0) >= args.warmup_steps, "the warm-up steps", 900)
        marks = {"closed": [time.time()]}
        time.sleep(args.seconds)
        marks["closed"].append(time.time())
        width, height = (int(v) for v in args.viewport.split("x"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"])
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            wait_for(lambda: status(status_path).get("frames_sent", 0) > 0, "the first picture", 120)
            time.sleep(3.0)
            marks["still"] = [time.time()]
            time.sleep(args.seconds)
            marks["still"].append(time.time())
            marks["moving"] = [time.time()]
            x = width // 3
            while time.time() - marks["moving"][0] < args.seconds:
                page.mouse.move(x, height // 2)
                page.mouse.down()
                page.mouse.move(x + 60, height // 2 + 10, steps=6)
                page.mouse.up()
                time.sleep(1.5)
            marks["moving"].append(time.time())
            page.screenshot(path=str(tmp / "page.png"))
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    rows = read(tmp / "run" / FILE_NAME)
    result = {name: phase(rows, *span) for name, span in marks.items()}
    closed, still = result["closed"].get("train_steps_per_s"), result["still"].get("train_steps_per_s")
    if closed and still:
        result["training_slowdown_watched"] = round(closed / still, 2)
    result["files"] = str(tmp)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(one_line_errors("viewer_bench.py", main))
