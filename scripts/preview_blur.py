"""How blurred a preview's prediction is, in pixels: the Gaussian blur of the photo beside it
that the prediction matches best, on the object's pixels (where the photo is not the white
background). PSNR alone mixes blur with colour and pose error; this number is what "the face is
soft" means (issue 25), comparable between runs of the same view. The photo is also shifted by up
to ``--max-shift`` px (half-pixel steps) to meet the prediction: a val camera's own pose error
moves the whole view a pixel or so, which would otherwise count as blur. A preview is the
training's ``previews/step_N.png`` (prediction | photo | depth ...: ``--panels`` of equal width).

    python scripts/preview_blur.py runs/ethiopianhead/previews/step_024254.png [more.png ...]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import at_least, one_line_errors  # noqa: E402

SIGMAS = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)


def panels(path: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The prediction and the photo of a preview of ``count`` side-by-side panels, as floats in [0, 1]."""
    image = np.asarray(Image.open(path).convert("RGB"))
    width = image.shape[1] // count
    if width * count != image.shape[1]:
        raise ValueError(f"{path}: {image.shape[1]} px wide, not {count} panels of equal width (--panels)")
    return image[:, :width], image[:, width:2 * width]


def moved(photo: np.ndarray, shift: tuple[float, float]) -> Image.Image:
    """The photo moved by ``shift`` (x, y) px (bicubic; white where it uncovers the border)."""
    image = Image.fromarray(photo)
    if shift == (0.0, 0.0):
        return image
    return image.transform(image.size, Image.Transform.AFFINE, (1, 0, -shift[0], 0, 1, -shift[1]),
                           resample=Image.Resampling.BICUBIC, fillcolor=(255, 255, 255))


def blurred(image: Image.Image, sigma: float) -> np.ndarray:
    """``image`` blurred by ``sigma`` px, as floats in [0, 1]."""
    if sigma:
        image = image.filter(ImageFilter.GaussianBlur(sigma))
    return np.asarray(image).astype(np.float64) / 255


def equivalent_blur(prediction: np.ndarray, photo: np.ndarray, max_shift: float = 2.0) -> dict:
    """On the photo's object pixels (not near-white): ``blur_px``, the sigma whose blur of the photo,
    moved by ``shift_px`` (x, y) within ``max_shift``, matches the prediction best; ``unshifted_blur_px``,
    the best sigma without the move; ``psnr`` as is and ``psnr_at_blur`` against that photo."""
    mask = photo.min(axis=2) < 0.97 * 255
    if mask.sum() < 16:
        raise ValueError("the photo has almost no object pixels (it is scored where it is not white)")
    pred = prediction.astype(np.float64) / 255

    def psnr(truth):
        return float(-10 * np.log10(max(((pred - truth)[mask] ** 2).mean(), 1e-12)))

    if max_shift < 0:
        raise ValueError(f"--max-shift must be 0 or more px, got {max_shift:g}")
    halves = int(max_shift / 0.5 + 1e-9)  # half-pixel steps, 0 among them
    offsets = 0.5 * np.arange(-halves, halves + 1)
    scores = {}
    for shift in ((float(dx), float(dy)) for dx in offsets for dy in offsets):
        image = moved(photo, shift)  # once per shift, then each blur of it
        scores.update({(sigma, shift): psnr(blurred(image, sigma)) for sigma in SIGMAS})
    sigma, shift = max(scores, key=scores.get)
    unshifted = max(SIGMAS, key=lambda s: scores[(s, (0.0, 0.0))])
    return {"blur_px": sigma, "shift_px": shift, "unshifted_blur_px": unshifted,
            "psnr": round(scores[(0.0, (0.0, 0.0))], 2), "psnr_at_blur": round(scores[(sigma, shift)], 2),
            "object_pixels": int(mask.sum())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("previews", nargs="+", type=Path, help="preview PNGs (prediction | photo | ...)")
    p.add_argument("--panels", type=at_least(2), default=3,
                   help="panels side by side (default 3: prediction, photo, depth)")
    p.add_argument("--max-shift", type=at_least(0, float), default=2.0,
                   help="move the photo up to this many px to meet the prediction (default 2; 0: not at all)")
    args = p.parse_args(argv)
    for path in args.previews:
        try:
            found = equivalent_blur(*panels(path, args.panels), max_shift=args.max_shift)
        except ValueError as exc:  # which of several previews it was
            raise ValueError(f"{path}: {exc}") from None
        dx, dy = found["shift_px"]
        print(f"{path}: blur {found['blur_px']:g} px, with the photo moved ({dx:g}, {dy:g}) px "
              f"({found['unshifted_blur_px']:g} px unmoved; object PSNR {found['psnr']:.2f} dB as is, "
              f"{found['psnr_at_blur']:.2f} against the photo moved and blurred so; "
              f"{found['object_pixels']} object pixels)")
    return 0


if __name__ == "__main__":
    sys.exit(one_line_errors("preview_blur.py", main))
