"""Metre estimation for melodies that come without one (a recording, a MIDI file with no time signature).

Notes that start on strong beats and last long carry the metre: each onset gets an accent (more for a
longer note), the accents are folded onto one bar of each candidate metre at each possible downbeat,
and the fold is correlated with that metre's hierarchy of strong and weak positions. A fold that
matches no metre better than another gives 4/4, the commonest, with a low confidence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SLOT = 6  # ticks: a sixteenth note, the grid hummed notes are quantised to
# Metrical weight of each sixteenth of one bar: downbeat, beats, then their halves.
TEMPLATES = {
    "4/4": (4, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0),
    "3/4": (4, 0, 1, 0, 2, 0, 1, 0, 2, 0, 1, 0),
    "6/8": (4, 0, 1, 0, 1, 0, 3, 0, 1, 0, 1, 0),
    "2/4": (4, 0, 1, 0, 2, 0, 1, 0),
}
# 4/4 is what a melody with no clear accents is written in; 2/4 is 4/4 cut in half, so it needs more.
PRIOR = {"4/4": 0.04, "3/4": 0.0, "6/8": 0.0, "2/4": -0.04}
PHASE_PRIOR = 0.05  # starting on a downbeat is likelier than a pickup
SOFTMAX_SCALE = 0.05
REPEAT = 0.5


@dataclass(frozen=True)
class MeterEstimate:
    meter: str
    offset: int  # ticks into its bar where the first note falls (0: on the downbeat; more: a pickup)
    confidence: float  # 0-1


def estimate_meter(notes: Sequence[tuple[int, int, int]]) -> MeterEstimate:
    """The likeliest of 4/4, 3/4, 6/8 and 2/4 for (start, end, pitch) notes in ticks (24 to the quarter)."""
    onsets = sorted(notes)
    if len(onsets) < 3:
        return MeterEstimate("4/4", 0, 0.0)
    first = onsets[0][0]
    accents: dict[int, float] = {}
    for start, end, _ in onsets:
        slot = round((start - first) / SLOT)
        accents[slot] = accents.get(slot, 0.0) + 1.0 + math.log2(max(end - start, SLOT) / SLOT)
    signal = np.zeros(max(accents) + 1)
    for slot, accent in accents.items():
        signal[slot] = accent
    scores: dict[tuple[str, int], float] = {}
    for meter, template in TEMPLATES.items():
        weights = np.array(template, dtype=np.float64)
        length = len(template)
        # Rhythms repeat bar by bar: how alike the signal is to itself one bar later.
        repeat = _self_similarity(signal, 2 * length if meter == "2/4" else length)  # 2/4: by pairs of bars
        for phase in range(length):
            folded = np.zeros(length)
            for slot, accent in accents.items():
                folded[(slot + phase) % length] += accent
            if folded.std() == 0:
                continue
            r = float(np.corrcoef(folded, weights)[0, 1])
            scores[meter, phase] = r + REPEAT * repeat + PRIOR[meter] + (PHASE_PRIOR if phase == 0 else 0.0)
    if not scores:
        return MeterEstimate("4/4", 0, 0.0)
    (meter, phase) = max(scores, key=lambda k: scores[k])
    # Confidence over metres: each metre by its best downbeat.
    best_per_meter = {m: max(v for (mm, _), v in scores.items() if mm == m) for m in TEMPLATES
                      if any(mm == m for mm, _ in scores)}
    values = np.array(list(best_per_meter.values()))
    shares = np.exp((values - values.max()) / SOFTMAX_SCALE)
    confidence = float(np.exp((best_per_meter[meter] - values.max()) / SOFTMAX_SCALE) / shares.sum())
    return MeterEstimate(meter, phase * SLOT, round(confidence, 3))


def _self_similarity(signal: np.ndarray, lag: int) -> float:
    """Correlation of the accent signal with itself `lag` slots later (0 when too short to tell)."""
    if len(signal) < 2 * lag:  # fewer than two bars to compare: no evidence either way
        return 0.0
    a, b = signal[:-lag], signal[lag:]
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
