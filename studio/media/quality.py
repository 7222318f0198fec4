"""Numbers that say how an image looks: sharpness, seams, and style (Gram) statistics.

Used by the tests and benchmarks to prove what the eye would see.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def _grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64)


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian: higher means more fine detail."""
    a = _grey(image)
    lap = -4.0 * a[1:-1, 1:-1] + a[:-2, 1:-1] + a[2:, 1:-1] + a[1:-1, :-2] + a[1:-1, 2:]
    return float(lap.var())


def column_step_profile(image: Image.Image) -> np.ndarray:
    """Mean absolute change between each column and the next (length width - 1)."""
    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    return np.abs(np.diff(a, axis=1)).mean(axis=(0, 2))


def seam_score(image: Image.Image, columns: list[int]) -> float:
    """How much harder the image changes at the given columns than it does typically (1 = no seam).

    A visible vertical seam at column x shows as a jump between x-1 and x, far above the
    median column-to-column change.
    """
    profile = column_step_profile(image)
    typical = float(np.median(profile))
    worst = max(float(profile[x - 1]) for x in columns if 0 < x < len(profile) + 1)
    return worst / max(typical, 1e-9)


def _patch_features(image: Image.Image, side: int) -> np.ndarray:
    """3x3 RGB patches of the image scaled to `side` px: 27 numbers per position."""
    small = np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR), dtype=np.float64) / 255
    h, w = small.shape[:2]
    patches = [small[dy : h - 2 + dy, dx : w - 2 + dx] for dy in range(3) for dx in range(3)]
    return np.concatenate(patches, axis=2).reshape(-1, 27)


def gram(image: Image.Image, sides: tuple[int, ...] = (64, 128, 256)) -> list[np.ndarray]:
    """Gram matrices of patch features at a few scales: statistics of texture and colour, not layout."""
    out = []
    for side in sides:
        features = _patch_features(image, side)
        out.append(features.T @ features / len(features))
    return out


def gram_distance(a: Image.Image, b: Image.Image) -> float:
    """Distance between two images' style statistics (0 for the same texture and colours)."""
    return float(sum(np.linalg.norm(ga - gb) for ga, gb in zip(gram(a), gram(b), strict=True)))


def luminance(image: Image.Image) -> np.ndarray:
    """ITU-R BT.601 luma in 0..255 (what SSIM on luminance compares)."""
    return np.asarray(image.convert("RGB").convert("YCbCr").getchannel("Y"), dtype=np.float64)


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Structural similarity of two same-sized pictures' luminance (Wang et al. 2004: Gaussian window,
    sigma 1.5, K1 0.01, K2 0.03); 1 for identical pictures."""
    from scipy.ndimage import gaussian_filter

    if a.size != b.size:
        raise ValueError(f"SSIM compares pictures of one size, not {a.size} and {b.size}")
    x, y = luminance(a), luminance(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, 1.5, truncate=3.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    score = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(score[5:-5, 5:-5].mean())  # the borders see the blur's padding, not the pictures


def seam_strength(image: Image.Image, columns: list[int], reach: int = 4) -> float:
    """How much harder the picture changes across each given column than beside it, row by row (1 = no
    seam). A seam runs down the whole picture, so the median over rows is taken: an edge in the picture
    itself crosses a column in a few rows only, and does not count."""
    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    steps = np.abs(np.diff(a, axis=1)).mean(axis=2)  # rows x (width - 1): the change from x to x + 1
    worst = 0.0
    for x in columns:
        if not reach < x < steps.shape[1] - reach:
            continue
        beside = np.concatenate([steps[:, x - 1 - reach : x - 1], steps[:, x : x + reach]], axis=1)
        ratio = steps[:, x - 1] / (np.median(beside, axis=1) + 1.0)  # +1: flat rows say nothing
        worst = max(worst, float(np.median(ratio)))
    return worst
