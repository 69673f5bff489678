"""The loss/PSNR curves of a run as a small PNG (no plotting library needed)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..files import finite_number, metric_rows, write_png

SERIES_COLOURS = [(70, 110, 220), (220, 60, 60)]


def nice_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """Round values (1, 2 or 5 x 10^k apart) from ``lo`` to ``hi``, at most ``most`` of them."""
    span = max(hi - lo, 1e-9)
    base = 10.0 ** math.floor(math.log10(span / most))
    gap = next(g * base for g in (1, 2, 5, 10) if span / (g * base) < most)
    first = math.ceil(lo / gap) * gap
    return [first + k * gap for k in range(int((hi - first) // gap) + 1)]


def write_curves(out_dir: Path) -> Path | None:
    """``out_dir/curves.png``: train and validation PSNR from ``out_dir/metrics.jsonl``
    (None when there are fewer than two points to draw)."""
    from PIL import Image, ImageDraw

    path = Path(out_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    rows = metric_rows(path)
    series = {
        name: [(r["step"], r[key]) for r in rows if finite_number(r.get(key))]  # a perfect fit's PSNR is null
        for name, key in (("train PSNR", "train_psnr"), ("val PSNR", "val_psnr"))
    }
    w, h, pad = 640, 320, 40
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    points = [p for s in series.values() for p in s]
    if len(points) < 2:
        return None
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys)) + 1

    def to_px(x, y):
        return pad + (x - x0) / (x1 - x0) * (w - 2 * pad), h - pad - (y - y0) / (y1 - y0) * (h - 2 * pad)

    draw.rectangle([pad, pad, w - pad, h - pad], outline="black")
    for db in range(int(y0), int(y1) + 1, max(1, (int(y1) - int(y0)) // 6)):
        _, py = to_px(x0, db)
        draw.line([pad, py, w - pad, py], fill=(225, 225, 225))
        draw.text((4, py - 6), f"{db} dB", fill="black")
    for step in nice_ticks(x0, x1):
        px, _ = to_px(step, y0)
        draw.line([px, h - pad, px, h - pad + 4], fill="black")
        label = f"{step:g}"
        draw.text((px - 3 * len(label), h - pad + 6), label, fill="black")
    draw.text((w - pad - 24, h - pad + 20), "step", fill="black")
    for (name, pts), colour in zip(series.items(), SERIES_COLOURS):
        if len(pts) >= 2:
            draw.line([to_px(x, y) for x, y in pts], fill=colour, width=2)
        elif pts:  # one point (a short run's one logged row) is a dot, not a line of no length
            px, py = to_px(*pts[0])
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        draw.text((pad + 8, pad + 6 + 14 * list(series).index(name)), name, fill=colour)
    return write_png(Path(out_dir) / "curves.png", np.asarray(img))
