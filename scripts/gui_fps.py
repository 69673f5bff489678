"""The GUI's frame rate, measured without a person watching: runs ``taichi-nerf gui`` for a
fixed time (under ``xvfb-run`` when there is no display), then summarises the ``gui.jsonl``
it wrote (one line a second: fps, render and training ms per frame, steps per second, the
size of the view shown). Optionally opens the trained checkpoint afterwards without
training, turning the camera every few seconds, to time how long a still view takes to
sharpen: when each resolution level was first shown after a turn (gui.jsonl's
refined_after_s), median over the turns.

    python scripts/gui_fps.py --seconds 60                 # the built-in scene
    python scripts/gui_fps.py --seconds 60 --viewer-seconds 20 -- --data DIR
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import checkout_env, one_line_errors  # noqa: E402
from taichi_nerf.runs.run_folder import GUI_LOG as FILE_NAME  # noqa: E402
from taichi_nerf.viewing.perflog import read  # noqa: E402


def gui_command(args, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "taichi_nerf", "gui", "--window", args.window, "--no-progress", *extra]
    if os.environ.get("DISPLAY"):
        return cmd
    if shutil.which("xvfb-run") is None:
        sys.exit("gui_fps.py: no DISPLAY and no xvfb-run (apt-get install xvfb)")
    return ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *cmd]


def run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=checkout_env()).returncode
    if code != 0:
        sys.exit(f"gui_fps.py: the GUI exited with {code}; see {log}:\n{log.read_text()[-2000:]}")


def summary(rows: list[dict], skip_s: float) -> dict:
    """Medians over the lines after ``skip_s`` (start-up: kernels compile, the first steps are slow)."""
    kept = [r for r in rows if r["time_s"] > skip_s] or rows
    full = [r for r in rows if r["width"] == r["full_width"] and r["height"] == r["full_height"] and r["width"] > 0]

    def med(key):
        return round(statistics.median(r[key] for r in kept), 2)

    return {"seconds": len(rows), "median_fps": med("fps"),
            "p10_fps": round(sorted(r["fps"] for r in kept)[len(kept) // 10], 2),
            "median_fps_all_lines": round(statistics.median(r["fps"] for r in rows), 2),
            "median_render_ms": med("render_ms"), "median_train_ms": med("train_ms"),
            "train_steps_per_s": round(statistics.mean(r["train_steps_per_s"] for r in kept), 2),
            "final_step": rows[-1]["step"], "view_at_end": [rows[-1]["width"], rows[-1]["height"]],
            "canvas": [rows[-1]["full_width"], rows[-1]["full_height"]],
            "first_full_resolution_s": full[0]["time_s"] if full else None,
            "share_of_seconds_at_full_resolution": round(len(full) / len(rows), 2)}


def refinement(rows: list[dict]) -> dict:
    """Seconds from a camera turn to each level first shown, median over the turns (the
    opening view, which also pays for loading, is left out)."""
    turns, current = [], {}
    for row in rows:
        seen = row.get("refined_after_s") or {}
        if not set(current) <= set(seen) or any(seen[k] != v for k, v in current.items()):
            turns.append(current)  # the dict started over: a new turn
        current = seen
    turns = [t for t in turns[1:] + [current] if t]
    sizes = sorted({k for t in turns for k in t}, key=lambda k: int(k.split("x")[0]))
    return {"turns": len(turns),
            "median_s": {k: round(statistics.median(t[k] for t in turns if k in t), 2) for k in sizes},
            "turns_reaching": {k: sum(k in t for t in turns) for k in sizes}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="training time in the window (default: 60)")
    p.add_argument("--viewer-seconds", type=float, default=0.0,
                   help="then open the checkpoint this long without training (time to full resolution)")
    p.add_argument("--turn-every", type=float, default=5.0, help="the viewer's camera turns this often (default: 5 s)")
    p.add_argument("--out", default="/tmp/gui_fps", help="run folder (replaced)")
    p.add_argument("--window", default="1120x800")
    p.add_argument("--skip", type=float, default=5.0, help="seconds of start-up left out of the medians (default: 5)")
    p.add_argument("extra", nargs="*", help="more `taichi-nerf gui` flags, after --")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run(gui_command(args, ["--out", str(out), "--overwrite", "--seconds", str(args.seconds), *args.extra]),
        out / "gui_fps.log")
    training = out / "gui_train.jsonl"
    shutil.copyfile(out / FILE_NAME, training)
    report = {"training": summary(read(training), args.skip)}
    if args.viewer_seconds > 0:
        run(gui_command(args, ["--ckpt", str(out), "--seconds", str(args.viewer_seconds), "--turn-every",
                               str(args.turn_every)]), out / "gui_viewer.log")
        report["viewer"] = summary(read(out / FILE_NAME), 0.0)
        report["viewer"]["after_a_turn"] = refinement(read(out / FILE_NAME))
    report["conditions"] = {"window": args.window, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
                            "display": os.environ.get("DISPLAY") or "xvfb-run", "flags": args.extra}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors("gui_fps.py", main))
