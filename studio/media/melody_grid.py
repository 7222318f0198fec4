"""Melodies on a sixteenth-note grid, the way the melody VAE reads and writes them.

Each sixteenth of a bar holds one class: a pitch (a note starts here), HOLD (the sounding note
goes on) or REST. Every sequence of classes is a melody with complete bars, because the grid
has exactly one class per sixteenth of every bar; HOLD where nothing sounds reads as a rest.
Written canonically, silence is REST at every step and HOLD only follows a note.

Keys: melodies are moved to a tonic of C (by at most a tritone, so their register barely
changes) before the VAE sees them, and moved back after; the VAE only learns where a tune
sits relative to its tonic, and a walk's in-between melodies share the endpoints' scale.

Long melodies are cut into segments of two bars (one bar in metres whose bar holds more than
16 sixteenths, such as 12/8), each at most SEGMENT_STEPS long. Pure numpy, no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from studio.media.melody_tokens import METERS, Melody, bar_ticks, bars_from_notes

STEP_TICKS = 6  # a sixteenth note: 24 ticks to the quarter
SEGMENT_STEPS = 32
PAD, REST, HOLD = 0, 1, 2  # PAD only fills a segment's unused steps (a short metre)
# Pitches the VAE writes, in the tonic-of-C frame: every corpus note moved to C fits; anything
# else is moved by octaves into this range.
LOWEST, HIGHEST = 48, 88  # C3..E6
FIRST_PITCH_CLASS = 3
CLASSES = FIRST_PITCH_CLASS + HIGHEST - LOWEST + 1
METER_INDEX = {meter: i for i, meter in enumerate(METERS)}


def steps_per_bar(meter: str) -> int:
    return bar_ticks(meter) // STEP_TICKS


def bars_per_segment(meter: str) -> int:
    return 2 if steps_per_bar(meter) <= SEGMENT_STEPS // 2 else 1


def segment_steps(meter: str) -> int:
    return steps_per_bar(meter) * bars_per_segment(meter)


def shift_to_c(tonic: int) -> int:
    """The smallest move (-6..+5 semitones) that puts `tonic` on C."""
    return -tonic if tonic <= 6 else 12 - tonic


def pitch_class_id(pitch: int) -> int:
    while pitch < LOWEST:
        pitch += 12
    while pitch > HIGHEST:
        pitch -= 12
    return FIRST_PITCH_CLASS + pitch - LOWEST


def class_pitch(class_id: int) -> int:
    return LOWEST + class_id - FIRST_PITCH_CLASS


@dataclass(frozen=True)
class GridMelody:
    """A melody in the tonic-of-C frame: one class per sixteenth, whole bars."""

    meter: str
    tonic: int  # the original key, to move back to
    mode: str
    classes: np.ndarray  # int64, len = bars * steps_per_bar
    moved_notes: int = 0  # notes that did not sit on the grid (or left its range) and were moved

    @property
    def bars(self) -> int:
        return len(self.classes) // steps_per_bar(self.meter)


def to_grid(melody: Melody) -> GridMelody:
    """The melody moved to C and snapped to sixteenths. Notes that collapse onto another note's step
    are dropped; each note keeps at least one step."""
    shift = shift_to_c(melody.tonic)
    per_bar = steps_per_bar(melody.meter)
    total = len(melody.bars) * per_bar
    classes = np.full(total, REST, dtype=np.int64)
    moved = 0
    last_start = -1
    for note in melody.notes():
        start = int(round(note.start / STEP_TICKS))
        end = min(total, max(start + 1, int(round(note.end / STEP_TICKS))))
        pitch = note.pitch + shift
        exact = note.start % STEP_TICKS == 0 and note.end % STEP_TICKS == 0 and LOWEST <= pitch <= HIGHEST
        if start <= last_start or start >= total:
            moved += 1
            continue
        moved += not exact
        classes[start] = pitch_class_id(pitch)
        classes[start + 1 : end] = HOLD
        # A hold that rounding stretched past the next note's start is overwritten by that note.
        last_start = start
    return GridMelody(melody.meter, melody.tonic, melody.mode, canonical(classes), moved)


def canonical(classes: np.ndarray, sounding: bool = False) -> np.ndarray:
    """The same music with HOLD only after a note (REST elsewhere) and no PAD.
    `sounding`: a note from before the first step is still sounding there."""
    out = np.array(classes, dtype=np.int64, copy=True)
    for i, c in enumerate(out):
        if c == PAD:
            out[i] = c = REST
        if c == HOLD and not sounding:
            out[i] = REST
        sounding = c == HOLD and sounding or c >= FIRST_PITCH_CLASS
    return out


def grid_notes(classes: Sequence[int], sounding_pitch: int | None = None) -> list[tuple[int, int, int]]:
    """(start step, end step, pitch) of the notes a class sequence plays, in the C frame.
    `sounding_pitch`: a note carried in from before step 0 (its part here is listed too)."""
    notes: list[list[int]] = []
    current: list[int] | None = [0, 0, sounding_pitch] if sounding_pitch is not None else None
    if current is not None:
        notes.append(current)
    for step, c in enumerate(classes):
        c = int(c)
        if c >= FIRST_PITCH_CLASS:
            current = [step, step + 1, class_pitch(c)]
            notes.append(current)
        elif c == HOLD and current is not None:
            current[1] = step + 1
        else:
            current = None
    return [(s, e, p) for s, e, p in notes if e > s]


def from_grid(grid: GridMelody, classes: np.ndarray | None = None) -> Melody:
    """Classes (the grid's own, or decoded ones of the same length) as a Melody in the grid's key."""
    classes = grid.classes if classes is None else classes
    shift = shift_to_c(grid.tonic)
    notes = [(s * STEP_TICKS, e * STEP_TICKS, p - shift) for s, e, p in grid_notes(classes)]
    bars = bars_from_notes(notes, grid.meter, total_ticks=len(classes) * STEP_TICKS)
    return Melody(grid.meter, grid.tonic, grid.mode, bars)


def segments(grid: GridMelody) -> tuple[np.ndarray, np.ndarray]:
    """(segments [n, SEGMENT_STEPS] with PAD after each one's length, whether a note is sounding
    into each segment [n]). A last partial segment is filled out with rest."""
    length = segment_steps(grid.meter)
    count = -(-len(grid.classes) // length)
    padded = np.full(count * length, REST, dtype=np.int64)
    padded[: len(grid.classes)] = grid.classes
    out = np.full((count, SEGMENT_STEPS), PAD, dtype=np.int64)
    out[:, :length] = padded.reshape(count, length)
    sounding = np.zeros(count, dtype=bool)
    for k in range(1, count):
        sounding[k] = ends_sounding(out[k - 1, :length])
    return out, sounding


def ends_sounding(classes: Sequence[int]) -> bool:
    """Whether a note is still sounding at the end of a canonical class sequence."""
    return bool(len(classes)) and int(classes[-1]) not in (REST, PAD)
