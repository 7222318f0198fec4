"""The melody VAE's sixteenth-note grid: keys moved to C and back, complete bars, segments, ties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.media import melody_grid as grid
from studio.media import melody_tokens as mt
from studio.media.melody_tokens import Melody, bars_from_notes
from tests.test_melody_tokens import ODE


def notes_of(melody: Melody) -> list[tuple[int, int, int]]:
    return [(n.start, n.end, n.pitch) for n in melody.notes()]


@pytest.mark.parametrize("tonic", range(12))
def test_a_melody_on_the_grid_comes_back_unchanged_in_its_own_key(tonic):
    melody = Melody("4/4", 0, "major", bars_from_notes(ODE, "4/4")).transposed(tonic)
    on_grid = grid.to_grid(melody)
    assert on_grid.moved_notes == 0 and on_grid.bars == 4
    first = next(c for c in on_grid.classes if c >= grid.FIRST_PITCH_CLASS)
    assert grid.class_pitch(int(first)) % 12 == 4  # E: the third of C, whatever the key was
    back = grid.from_grid(on_grid)
    assert notes_of(back) == notes_of(melody)
    assert (back.tonic, back.mode, back.meter, len(back.bars)) == (tonic, "major", "4/4", 4)


def test_the_move_to_c_is_never_more_than_a_tritone():
    assert [grid.shift_to_c(t) for t in range(12)] == [0, -1, -2, -3, -4, -5, -6, 5, 4, 3, 2, 1]


def test_off_grid_notes_are_snapped_and_counted():
    # A triplet of eighths (8 ticks each) then a quarter.
    melody = Melody("2/4", 0, "major", bars_from_notes([(0, 8, 60), (8, 16, 62), (16, 24, 64), (24, 48, 65)], "2/4"))
    on_grid = grid.to_grid(melody)
    assert on_grid.moved_notes == 3  # each triplet note starts or ends between sixteenths
    assert [p for *_, p in grid.grid_notes(on_grid.classes)] == [60, 62, 64, 65]
    assert all(sum(e.ticks for e in bar) == mt.bar_ticks("2/4") for bar in grid.from_grid(on_grid).bars)


def test_segments_are_two_bars_or_one_long_bar_and_carry_ties():
    assert [grid.segment_steps(m) for m in ("4/4", "3/4", "6/8", "2/4", "3/8", "12/8", "4/2")] == [
        32, 24, 24, 16, 12, 24, 32]
    # Bar 2's last note is held over the line into bar 3: segment 2 starts with HOLD.
    notes = [(0, 96, 60), (96, 168, 62), (168, 216, 64), (216, 288, 65), (288, 384, 67)]
    on_grid = grid.to_grid(Melody("4/4", 0, "major", bars_from_notes(notes, "4/4")))
    segments, sounding = grid.segments(on_grid)
    assert segments.shape == (2, grid.SEGMENT_STEPS)
    assert segments[1, 0] == grid.HOLD and sounding.tolist() == [False, True]
    five_bars = grid.to_grid(Melody("3/4", 0, "major", bars_from_notes([(0, 360, 60)], "3/4")))
    segments, _ = grid.segments(five_bars)  # 5 bars of 3/4: the third segment is filled out with rest
    assert segments.shape[0] == 3 and (segments[2, 12:24] == grid.REST).all() and (segments[:, 24:] == grid.PAD).all()


@settings(max_examples=60, deadline=None)
@given(
    meter=st.sampled_from(mt.METERS),
    tonic=st.integers(0, 11),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_class_sequence_is_a_melody_of_complete_bars(meter, tonic, seed):
    """What makes the VAE's output valid by construction: every grid is whole bars of notes and rests."""
    rng = np.random.default_rng(seed)
    bars = int(rng.integers(1, 5))
    classes = rng.integers(grid.PAD, grid.CLASSES, size=bars * grid.steps_per_bar(meter))
    like = grid.GridMelody(meter, tonic, "minor", classes)
    melody = grid.from_grid(like)
    assert len(melody.bars) == bars
    assert all(sum(e.ticks for e in bar) == mt.bar_ticks(meter) for bar in melody.bars)
    assert mt.decode(mt.encode(melody)) == melody  # it has a token form, and parses back
    canonical = grid.canonical(classes)
    assert notes_of(grid.from_grid(like, canonical)) == notes_of(melody)  # canonical: same music
    assert grid.to_grid(melody).classes.tolist() == canonical.tolist()


def test_canonical_grids_hold_only_after_a_note():
    classes = np.array([grid.HOLD, grid.REST, grid.HOLD, grid.pitch_class_id(60), grid.HOLD, grid.PAD, grid.HOLD])
    assert grid.canonical(classes).tolist() == [grid.REST, grid.REST, grid.REST, grid.pitch_class_id(60),
                                                grid.HOLD, grid.REST, grid.REST]
    assert grid.canonical(classes, sounding=True)[0] == grid.HOLD
    assert grid.ends_sounding([grid.pitch_class_id(60), grid.HOLD]) and not grid.ends_sounding([grid.REST])


def test_pitches_outside_the_range_move_by_octaves():
    assert grid.class_pitch(grid.pitch_class_id(grid.LOWEST - 5)) == grid.LOWEST + 7
    assert grid.class_pitch(grid.pitch_class_id(grid.HIGHEST + 2)) == grid.HIGHEST + 2 - 12
