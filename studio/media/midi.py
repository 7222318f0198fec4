"""Melodies to and from Standard MIDI Files (pretty_midi), refusing anything that is not one."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from studio.errors import InputError
from studio.media.keys import MelodyReading, estimate_key_from_notes
from studio.media.melody_tokens import (
    METERS,
    TICKS_PER_QUARTER,
    Melody,
    bar_ticks,
    bars_from_notes,
    scale_pitch_classes,
)
from studio.media.metre import estimate_meter

log = logging.getLogger(__name__)

MAX_MIDI_BYTES = 5_000_000
RESOLUTION = 480  # MIDI ticks per quarter: a multiple of the studio's 24
# General MIDI programs for the studio's timbres, so other tools pick a similar sound.
PROGRAMS = {"piano": 4, "flute": 73, "organ": 19, "pluck": 46, "chiptune": 80}


def _key_number(melody: Melody) -> int:
    """pretty_midi's key number (0-11 major, 12-23 minor) of the melody's key signature."""
    if melody.mode == "minor":
        return 12 + melody.tonic
    if melody.mode == "major":
        return melody.tonic
    # Dorian and mixolydian share the signature of a major key: the one whose scale is theirs.
    scale = scale_pitch_classes(melody.tonic, melody.mode)
    return next(pc for pc in range(12) if scale_pitch_classes(pc, "major") == scale)


def melody_to_midi(melody: Melody, tempo: float, timbre: str = "piano", velocity: int = 90):
    """A pretty_midi.PrettyMIDI holding the melody on one instrument, with tempo, metre and key."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=RESOLUTION, initial_tempo=float(tempo))
    beats, unit = (int(x) for x in melody.meter.split("/"))
    midi.time_signature_changes.append(pretty_midi.TimeSignature(beats, unit, 0.0))
    midi.key_signature_changes.append(pretty_midi.KeySignature(_key_number(melody), 0.0))
    instrument = pretty_midi.Instrument(program=PROGRAMS.get(timbre, 0), name="Melody")
    seconds_per_tick = 60.0 / tempo / TICKS_PER_QUARTER
    for note in melody.notes():
        instrument.notes.append(
            pretty_midi.Note(velocity, note.pitch, note.start * seconds_per_tick, note.end * seconds_per_tick)
        )
    midi.instruments.append(instrument)
    return midi


def write_midi(melody: Melody, path: Path, tempo: float, timbre: str = "piano") -> None:
    melody_to_midi(melody, tempo, timbre).write(str(path))


def read_midi(data: bytes | Path, default_meter: str | None = "4/4") -> tuple[Melody, float]:
    """The melody in a MIDI file and its tempo (see `read_midi_melody`)."""
    reading = read_midi_melody(data, default_meter)
    return reading.melody, float(reading.tempo or 120.0)


def read_midi_melody(data: bytes | Path, default_meter: str | None = None) -> MelodyReading:
    """The melody in a MIDI file (the highest voice of its non-drum notes), its tempo and how sure its key is.

    The key is estimated from the notes: a key signature cannot tell D dorian from C major. The metre is
    the file's first time signature when the studio knows it, else `default_meter`, else estimated.
    """
    import pretty_midi

    raw = Path(data).read_bytes() if isinstance(data, Path) else data
    if len(raw) > MAX_MIDI_BYTES:
        raise InputError(f"That MIDI file is {len(raw) / 1e6:.1f} MB; the studio reads MIDI files up to "
                         f"{MAX_MIDI_BYTES / 1e6:.0f} MB.")
    if not raw.startswith(b"MThd"):
        raise InputError("That file is not a MIDI file (it does not start with a MIDI header).")
    try:
        midi = pretty_midi.PrettyMIDI(io.BytesIO(raw))
    except Exception as exc:  # mido/pretty_midi raise many kinds on damaged files
        raise InputError(f"That MIDI file is damaged and cannot be read ({type(exc).__name__}).") from None
    pitched = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    if not pitched:
        if any(inst.notes for inst in midi.instruments):
            raise InputError("That MIDI file has only drum notes; the studio needs a melody (pitched notes).")
        raise InputError("That MIDI file has no notes.")
    tempo_times, tempi = midi.get_tempo_changes()
    tempo = float(tempi[0]) if len(tempi) else 120.0
    exact = _exact_ticks(midi, pitched)
    # A sequencer's file sits on the tick grid already (triplets included); a played one goes to sixteenths.
    on_grid = all(abs(s - round(s)) < 0.05 and abs(e - round(e)) < 0.05 for s, e, _ in exact)
    meter, meter_confidence = _file_meter(midi), None
    if meter is None and default_meter is not None:
        meter = default_meter
    for grid in ((1, 6) if on_grid else (6,)):
        notes = _quantised(exact, grid)
        if meter is None:
            found = estimate_meter(notes)
            meter, meter_confidence = found.meter, found.confidence
        first_bar = notes[0][0] // bar_ticks(meter) * bar_ticks(meter)
        notes = [(s - first_bar, e - first_bar, p) for s, e, p in notes]  # drop leading empty bars
        try:
            bars = bars_from_notes(notes, meter)
        except ValueError:
            continue
        key = estimate_key_from_notes(notes)
        return MelodyReading(Melody(meter, key.tonic, key.mode, bars), tempo, key, meter_confidence)
    raise InputError("That MIDI file's rhythm cannot be placed on the studio's note grid.")


def _file_meter(midi) -> str | None:
    """The file's first time signature, when it is one of the studio's metres."""
    if not midi.time_signature_changes:
        return None
    first = midi.time_signature_changes[0]
    candidate = f"{first.numerator}/{first.denominator}"
    return candidate if candidate in METERS else None


def _exact_ticks(midi, notes) -> list[tuple[float, float, int]]:
    def ticks(seconds: float) -> float:
        return midi.time_to_tick(seconds) / midi.resolution * TICKS_PER_QUARTER

    return sorted((ticks(n.start), ticks(n.end), int(n.pitch)) for n in notes)


def _quantised(exact: list[tuple[float, float, int]], grid: int) -> list[tuple[int, int, int]]:
    out = []
    for start, end, pitch in exact:
        s = int(round(start / grid)) * grid
        e = max(s + grid, int(round(end / grid)) * grid)
        out.append((s, e, pitch))
    return out
