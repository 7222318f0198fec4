"""Key estimation: Krumhansl-Kessler key profiles correlated with a pitch-class histogram."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from studio.media.melody_tokens import PITCH_NAMES

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def estimate_key(histogram: Sequence[float]) -> tuple[int, str, float]:
    """(tonic pitch class, 'major' or 'minor', correlation) best matching a 12-bin histogram."""
    values = np.asarray(histogram, dtype=np.float64)
    if values.sum() <= 0 or np.allclose(values, values[0]):
        return 0, "major", 0.0
    best = (0, "major", -2.0)
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(values, np.roll(profile, tonic))[0, 1])
            if r > best[2]:
                best = (tonic, mode, r)
    return best


def estimate_key_from_notes(notes: Sequence[tuple[int, int, int]]) -> tuple[int, str]:
    """The key of (start, end, pitch) notes, weighting each pitch class by its sounding time."""
    histogram = np.zeros(12)
    for start, end, pitch in notes:
        histogram[pitch % 12] += max(end - start, 1)
    tonic, mode, _ = estimate_key(histogram)
    return tonic, mode


def key_label(tonic: int, mode: str) -> str:
    return f"{PITCH_NAMES[tonic]} {mode}"
