"""Cutting a picture into overlapping tiles and blending them back without seams.

Shared by the networks that run on bounded pieces of a picture (style transfer at a fixed 384 px,
super-resolution at any size with bounded memory).
"""

from __future__ import annotations

import math

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile origins covering [0, length), adjacent tiles sharing >= `overlap` px."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def ramp(tile: int, overlap: int, fade_in: bool, fade_out: bool, margin: int = 0) -> np.ndarray:
    """1-D blending weights: rising over `overlap` px where a neighbour tile lies, flat elsewhere.

    The first `margin` px of a fading edge weigh nothing: a network's output there saw the tile's
    border instead of the picture, so the neighbour's pixels are used alone.
    """
    weight = np.ones(tile, dtype=np.float32)
    rise = max(1, overlap - margin)
    edge = np.clip((np.arange(overlap, dtype=np.float32) + 0.5 - margin) / rise, 0.0, 1.0)
    if fade_in:
        weight[:overlap] = edge
    if fade_out:
        weight[-overlap:] = np.minimum(weight[-overlap:], edge[::-1])
    return weight
