"""Key estimation: which of the studio's keys (12 tonics x major, minor, dorian, mixolydian) a melody is in.

Krumhansl-Kessler key profiles say how well the notes' pitch classes fit each key. Profiles alone
cannot tell keys that share a scale apart (C major, D dorian, G mixolydian, A minor), and they pull
towards whichever note is held longest, so a melody's own cues of home weigh in too: the final note
(folk tunes end on their tonic), the first and the lowest note, and any note outside a key's scale
counts against it. The confidence is the best key's share of a softmax over every key's score: near
1 when nothing else comes close, about 0.5 when two keys are as likely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studio.media.melody_tokens import MODES, PITCH_NAMES, Melody, scale_pitch_classes

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _swapped(profile: np.ndarray, a: int, b: int) -> np.ndarray:
    out = profile.copy()
    out[[a, b]] = out[[b, a]]
    return out


# Dorian is minor with a major sixth, mixolydian major with a flat seventh: the ratings move with the note.
MODE_PROFILES = {
    "major": MAJOR_PROFILE,
    "minor": MINOR_PROFILE,
    "dorian": _swapped(MINOR_PROFILE, 8, 9),
    "mixolydian": _swapped(MAJOR_PROFILE, 10, 11),
}
# Weights of the melody's cues, tuned on made-up tunes and folk tunes with known keys (tests/test_keys.py).
# A melody to continue is often an opening, not a whole tune, so its last note is not trusted alone.
OUTSIDE_SCALE = 3.0  # per share of the note time outside the key's scale
FINAL_NOTE = 0.4
FIRST_NOTE = 0.15
LOWEST_NOTE = 0.3
# Modes other than major are rarer: they need slightly more evidence.
MODE_PRIOR = {"major": 0.0, "minor": -0.02, "dorian": -0.03, "mixolydian": -0.03}
SOFTMAX_SCALE = 0.08


@dataclass(frozen=True)
class KeyEstimate:
    tonic: int  # pitch class
    mode: str
    confidence: float  # 0-1

    @property
    def label(self) -> str:
        return key_label(self.tonic, self.mode)


def _correlations(values: np.ndarray, modes: Sequence[str]) -> dict[tuple[int, str], float]:
    out = {}
    for mode in modes:
        for tonic in range(12):
            out[tonic, mode] = float(np.corrcoef(values, np.roll(MODE_PROFILES[mode], tonic))[0, 1])
    return out


def _confidence(scores: dict[tuple[int, str], float], best: tuple[int, str]) -> float:
    values = np.array(list(scores.values()))
    weights = np.exp((values - values.max()) / SOFTMAX_SCALE)
    return float(np.exp((scores[best] - values.max()) / SOFTMAX_SCALE) / weights.sum())


def estimate_key(histogram: Sequence[float], modes: Sequence[str] = ("major", "minor")) -> tuple[int, str, float]:
    """(tonic pitch class, mode, correlation) best matching a 12-bin histogram (audio chroma, say)."""
    values = np.asarray(histogram, dtype=np.float64)
    if values.sum() <= 0 or np.allclose(values, values[0]):
        return 0, "major", 0.0
    correlations = _correlations(values, modes)
    tonic, mode = max(correlations, key=lambda k: correlations[k])
    return tonic, mode, correlations[tonic, mode]


def estimate_key_from_notes(notes: Sequence[tuple[int, int, int]]) -> KeyEstimate:
    """The key of (start, end, pitch) notes: pitch classes weighted by sounding time, and the melody's cues."""
    if not notes:
        return KeyEstimate(0, "major", 0.0)
    ordered = sorted(notes)
    histogram = np.zeros(12)
    for start, end, pitch in ordered:
        histogram[pitch % 12] += max(end - start, 1)
    share = histogram / histogram.sum()
    if np.count_nonzero(histogram) == 1:  # one pitch class: its major key, and no certainty about it
        return KeyEstimate(int(np.argmax(histogram)), "major", 1.0 / len(MODES))
    final, first = ordered[-1][2] % 12, ordered[0][2] % 12
    lowest = min(pitch for *_, pitch in ordered) % 12
    scores = {}
    for (tonic, mode), r in _correlations(histogram, MODES).items():
        scale = scale_pitch_classes(tonic, mode)
        outside = sum(share[pc] for pc in range(12) if pc not in scale)
        scores[tonic, mode] = (r - OUTSIDE_SCALE * outside + MODE_PRIOR[mode] + FINAL_NOTE * (final == tonic)
                               + FIRST_NOTE * (first == tonic) + LOWEST_NOTE * (lowest == tonic))
    best = max(scores, key=lambda k: scores[k])
    return KeyEstimate(best[0], best[1], round(_confidence(scores, best), 3))


def key_label(tonic: int, mode: str) -> str:
    return f"{PITCH_NAMES[tonic]} {mode}"


@dataclass(frozen=True)
class MelodyReading:
    """A melody read from a file or a recording, and how sure the reading of its key and metre is."""

    melody: Melody
    tempo: float | None  # quarter notes per minute, where known
    key: KeyEstimate | None  # None: the key was written in the source (an ABC K: line)
    meter_confidence: float | None  # None: the metre was written in the source or given
