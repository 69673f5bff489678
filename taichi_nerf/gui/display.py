"""Drawing into the window image: Taichi kernels that compose the frame the canvas shows.

The canvas image is a (W, H) vector field indexed [x, y] with y growing upwards (GGUI's
layout), while renders are (H, W, 3) tensors with row 0 at the top; :func:`_blit` does the
flip and the (bilinear) upsampling from the render size to the screen rectangle.
"""

import numpy as np
import taichi as ti
import torch

BACKGROUND = (0.12, 0.12, 0.13)  # the window behind the images


@ti.kernel
def _fill_rect(image: ti.template(), x0: ti.i32, y0: ti.i32, w: ti.i32, h: ti.i32,
               colour: ti.types.vector(3, ti.f32), alpha: ti.f32):
    for i, j in ti.ndrange(w, h):
        x, y = x0 + i, y0 + j
        if 0 <= x < image.shape[0] and 0 <= y < image.shape[1]:
            image[x, y] = image[x, y] * (1.0 - alpha) + colour * alpha


@ti.kernel
def _blit(src: ti.types.ndarray(dtype=ti.f32, ndim=3), rows_valid: ti.i32, image: ti.template(),
          x0: ti.i32, y0: ti.i32, w: ti.i32, h: ti.i32, i0: ti.i32, i1: ti.i32, j0: ti.i32, j1: ti.i32):
    """Scale the first ``rows_valid`` rows of ``src`` (H, W, 3) into the w x h rectangle at
    (x0, y0), drawing only its pixels [i0, i1) x [j0, j1); screen pixels below the valid rows
    keep what they had."""
    src_h, src_w = src.shape[0], src.shape[1]
    for i, j in ti.ndrange((i0, i1), (j0, j1)):
        u = (i + 0.5) * src_w / w - 0.5
        v = (h - j - 0.5) * src_h / h - 0.5  # screen y grows up, image rows grow down
        x, y = x0 + i, y0 + j
        if v < rows_valid - 0.5 and 0 <= x < image.shape[0] and 0 <= y < image.shape[1]:
            u = ti.math.clamp(u, 0.0, src_w - 1.0)
            v = ti.math.clamp(v, 0.0, rows_valid - 1.0)
            c0, r0 = ti.i32(ti.floor(u)), ti.i32(ti.floor(v))
            c1, r1 = ti.min(c0 + 1, src_w - 1), ti.min(r0 + 1, rows_valid - 1)
            fu, fv = u - c0, v - r0
            for k in ti.static(range(3)):
                top = src[r0, c0, k] * (1.0 - fu) + src[r0, c1, k] * fu
                bottom = src[r1, c0, k] * (1.0 - fu) + src[r1, c1, k] * fu
                image[x, y][k] = ti.math.clamp(top * (1.0 - fv) + bottom * fv, 0.0, 1.0)


@ti.kernel
def _draw_segments(segments: ti.types.ndarray(dtype=ti.f32, ndim=2), colours: ti.types.ndarray(dtype=ti.f32, ndim=2),
                   image: ti.template(), thickness: ti.i32):
    """Line segments (x0, y0, x1, y1) in screen pixels, one parallel task per segment."""
    for s in range(segments.shape[0]):
        ax, ay, bx, by = segments[s, 0], segments[s, 1], segments[s, 2], segments[s, 3]
        steps = ti.i32(ti.max(ti.abs(bx - ax), ti.abs(by - ay))) + 1
        colour = ti.Vector([colours[s, 0], colours[s, 1], colours[s, 2]])
        for k in range(steps + 1):
            t = k / steps
            x = ti.i32(ti.round(ax + (bx - ax) * t))
            y = ti.i32(ti.round(ay + (by - ay) * t))
            for d in range(thickness):
                if 0 <= x < image.shape[0] and 0 <= y + d < image.shape[1]:
                    image[x, y + d] = colour


class Display:
    """The window-sized image the canvas shows, plus the drawing operations on it."""

    def __init__(self, width: int, height: int):
        self.width, self.height = int(width), int(height)
        # A tree of its own, so a resized window's old image can be freed (release()).
        builder = ti.FieldsBuilder()
        self.image = ti.Vector.field(3, ti.f32)
        builder.dense(ti.ij, (self.width, self.height)).place(self.image)
        self._tree = builder.finalize()

    def release(self) -> None:
        if self._tree is not None:
            self._tree.destroy()
            self._tree = None

    def clear(self, colour=BACKGROUND) -> None:
        _fill_rect(self.image, 0, 0, self.width, self.height, ti.Vector(colour), 1.0)

    def fill(self, rect, colour=BACKGROUND) -> None:
        self.shade(rect, colour, 1.0)

    def shade(self, rect, colour, alpha: float) -> None:
        x0, y0, w, h = rect
        _fill_rect(self.image, x0, y0, w, h, ti.Vector(colour), float(alpha))

    def blit(self, src: torch.Tensor, rect, rows_valid: int | None = None, clip=None) -> None:
        """Draw an (H, W, 3) float image into ``rect`` = (x0, y0, w, h) screen pixels; with
        ``clip`` = (x0, y0, w, h) only where the two overlap (redrawing what changed)."""
        x0, y0, w, h = rect
        i0, j0, i1, j1 = 0, 0, w, h
        if clip is not None:
            cx, cy, cw, ch = clip
            i0, j0, i1, j1 = max(0, cx - x0), max(0, cy - y0), min(w, cx + cw - x0), min(h, cy + ch - y0)
        rows = src.shape[0] if rows_valid is None else rows_valid
        if rows > 0 and i1 > i0 and j1 > j0:
            _blit(src.float().contiguous(), rows, self.image, x0, y0, w, h, i0, i1, j0, j1)

    def plot(self, rect, series, thickness: int = 2) -> None:
        """Curves in ``rect`` on a translucent backdrop. ``series``: (values, colour) pairs;
        each curve is scaled to its own range (the panel prints the numbers)."""
        x0, y0, w, h = rect
        self.shade(rect, (0.0, 0.0, 0.0), 0.55)
        segments, colours = [], []
        for values, colour in series:
            v = np.asarray(values, dtype=np.float64)
            v = v[np.isfinite(v)]
            if v.size < 2:
                continue
            if v.size > w:  # at most one point per pixel column
                v = v[np.linspace(0, v.size - 1, w).astype(np.int64)]
            lo, hi = float(v.min()), float(v.max())
            ys = y0 + 4 + (v - lo) / max(hi - lo, 1e-12) * (h - 10)
            xs = x0 + 4 + np.arange(v.size) * (w - 8) / (v.size - 1)
            segments.append(np.stack([xs[:-1], ys[:-1], xs[1:], ys[1:]], axis=1))
            colours.append(np.tile(np.asarray(colour, dtype=np.float64), (v.size - 1, 1)))
        if segments:
            _draw_segments(np.concatenate(segments).astype(np.float32), np.concatenate(colours).astype(np.float32),
                           self.image, thickness)

    def to_numpy(self) -> np.ndarray:
        """(H, W, 3) uint8, row 0 at the top: what a PNG of the canvas holds."""
        return canvas_to_rows(self.image.to_numpy())


def canvas_to_rows(buffer: np.ndarray) -> np.ndarray:
    """GGUI's [x, y] (y up) float buffer -> (H, W, 3) uint8 image with row 0 at the top."""
    rgb = np.asarray(buffer)[..., :3]
    rows = np.ascontiguousarray(rgb.transpose(1, 0, 2)[::-1])
    return (np.clip(rows, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
