"""Melodies as the studio's models see them: a small vocabulary of tokens and the grammar they follow.

A melody is a key (tonic + mode), a metre and a list of complete bars; each bar is a list of
events (a pitch or a rest, with a length in ticks, 24 to the quarter note, so sixteenths,
triplets and dotted values are exact). As tokens:

    BOS METER_6/8 KEY_2 MODE_dorian LEN_16  P62 D12 P64 D12 ... BAR  ...  BAR END

Each event is a pitch slot (P<midi>, REST, or TIE: the previous note goes on) followed by one
duration token. Lengths with no duration token of their own are written as tied pieces.
`BarGrammar` tracks where a sequence stands, so generation only ever offers tokens that keep
every bar exactly full and end after the requested number of bars.

Everything here is plain Python and numpy: the melody model, the melody VAE and the tests share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache

TICKS_PER_QUARTER = 24
# Duration tokens, in ticks: 32nd, triplet 16th, 16th, triplet 8th, dotted 16th, 8th, triplet quarter,
# dotted 8th, quarter, dotted quarter, half, dotted half, whole, dotted whole, breve.
DURATIONS = (3, 4, 6, 8, 9, 12, 16, 18, 24, 36, 48, 72, 96, 144, 192)
LOWEST_PITCH, HIGHEST_PITCH = 36, 96  # C2..C7: every melody in the corpus, transposed, fits
METERS = ("4/4", "3/4", "6/8", "2/4", "2/2", "3/8", "9/8", "12/8", "3/2", "4/2", "6/4", "5/4")
MODES = ("major", "minor", "dorian", "mixolydian")
# Semitones above the tonic of each mode's scale.
MODE_STEPS = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
LENGTH_BUCKETS = (4, 8, 12, 16, 24, 32, 48, 64)  # tune length in bars, nearest bucket
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
TONIC_NAMES = {name: pc for pc, name in enumerate(PITCH_NAMES)} | {
    "Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "B#": 0, "E#": 5, "Fb": 4
}

PAD, BOS, END, BAR, REST, TIE = "PAD", "BOS", "END", "BAR", "REST", "TIE"


def _vocabulary() -> tuple[str, ...]:
    tokens = [PAD, BOS, END, BAR, REST, TIE]
    tokens += [f"P{p}" for p in range(LOWEST_PITCH, HIGHEST_PITCH + 1)]
    tokens += [f"D{d}" for d in DURATIONS]
    tokens += [f"METER_{m}" for m in METERS]
    tokens += [f"KEY_{pc}" for pc in range(12)]
    tokens += [f"MODE_{m}" for m in MODES]
    tokens += [f"LEN_{n}" for n in LENGTH_BUCKETS]
    return tuple(tokens)


VOCAB: tuple[str, ...] = _vocabulary()
TOKEN_ID: dict[str, int] = {token: i for i, token in enumerate(VOCAB)}
PAD_ID, BOS_ID, END_ID, BAR_ID, REST_ID, TIE_ID = (TOKEN_ID[t] for t in (PAD, BOS, END, BAR, REST, TIE))
PITCH_IDS = {p: TOKEN_ID[f"P{p}"] for p in range(LOWEST_PITCH, HIGHEST_PITCH + 1)}
DURATION_IDS = {d: TOKEN_ID[f"D{d}"] for d in DURATIONS}
ID_PITCH = {i: p for p, i in PITCH_IDS.items()}
ID_DURATION = {i: d for d, i in DURATION_IDS.items()}
HEADER_LENGTH = 5  # BOS METER KEY MODE LEN


def bar_ticks(meter: str) -> int:
    """The length of one bar of `meter` in ticks."""
    beats, unit = (int(x) for x in meter.split("/"))
    return beats * TICKS_PER_QUARTER * 4 // unit


def beat_ticks(meter: str) -> int:
    """The felt beat: a dotted quarter in compound metres (6/8, 9/8, 12/8), else the lower number's note."""
    beats, unit = (int(x) for x in meter.split("/"))
    if unit == 8 and beats % 3 == 0 and beats > 3:
        return 3 * TICKS_PER_QUARTER // 2
    return TICKS_PER_QUARTER * 4 // unit


def scale_pitch_classes(tonic: int, mode: str) -> frozenset[int]:
    return frozenset((tonic + step) % 12 for step in MODE_STEPS[mode])


def length_bucket(bars: int) -> int:
    return min(LENGTH_BUCKETS, key=lambda b: (abs(b - bars), b))


def key_name(tonic: int, mode: str) -> str:
    return f"{PITCH_NAMES[tonic]} {mode}"


def parse_tonic(name: str) -> int:
    """'D', 'f#', 'Bb' -> a pitch class; anything else raises ValueError."""
    cleaned = name.strip()
    cleaned = cleaned[:1].upper() + cleaned[1:].replace("♯", "#").replace("♭", "b")
    if cleaned not in TONIC_NAMES:
        raise ValueError(f"'{name}' is not a key name (use C, C#, Db, D, ... B)")
    return TONIC_NAMES[cleaned]


# -- melodies -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One note or rest inside a bar. `tied`: this is the previous note held on, not a new one."""

    pitch: int | None  # MIDI note number; None for a rest
    ticks: int
    tied: bool = False


@dataclass(frozen=True)
class TimedNote:
    start: int  # ticks from the start of the melody
    end: int
    pitch: int


@dataclass(frozen=True)
class Melody:
    meter: str
    tonic: int
    mode: str
    bars: tuple[tuple[Event, ...], ...] = field(default_factory=tuple)

    @property
    def bar_ticks(self) -> int:
        return bar_ticks(self.meter)

    @property
    def total_ticks(self) -> int:
        return sum(e.ticks for bar in self.bars for e in bar)

    def notes(self) -> list[TimedNote]:
        """Sounding notes with tied pieces joined, in order."""
        notes: list[TimedNote] = []
        position = 0
        for bar in self.bars:
            for event in bar:
                end = position + event.ticks
                if event.pitch is not None:
                    if event.tied and notes and notes[-1].end == position and notes[-1].pitch == event.pitch:
                        notes[-1] = TimedNote(notes[-1].start, end, event.pitch)
                    else:
                        notes.append(TimedNote(position, end, event.pitch))
                position = end
        return notes

    def with_bars(self, bars: Iterable[Sequence[Event]]) -> Melody:
        return Melody(self.meter, self.tonic, self.mode, tuple(tuple(b) for b in bars))

    def transposed(self, semitones: int) -> Melody:
        bars = tuple(
            tuple(Event(None if e.pitch is None else e.pitch + semitones, e.ticks, e.tied) for e in bar)
            for bar in self.bars
        )
        return Melody(self.meter, (self.tonic + semitones) % 12, self.mode, bars)

    def pitch_range(self) -> tuple[int, int] | None:
        pitches = [e.pitch for bar in self.bars for e in bar if e.pitch is not None]
        return (min(pitches), max(pitches)) if pitches else None

    def to_json(self) -> str:
        bars = [[[e.pitch, e.ticks, int(e.tied)] for e in bar] for bar in self.bars]
        return json.dumps({"meter": self.meter, "tonic": self.tonic, "mode": self.mode, "bars": bars})

    @staticmethod
    def from_json(text: str) -> Melody:
        data = json.loads(text)
        bars = tuple(tuple(Event(p, t, bool(tied)) for p, t, tied in bar) for bar in data["bars"])
        return Melody(data["meter"], int(data["tonic"]), data["mode"], bars)


def split_ticks(ticks: int) -> list[int]:
    """A length as duration-token pieces, longest first (e.g. 30 -> [24, 6]); [] if impossible."""
    return list(_split(ticks))


@cache
def _split(ticks: int) -> tuple[int, ...]:
    if ticks == 0:
        return ()
    if ticks in DURATIONS:
        return (ticks,)
    for piece in sorted(DURATIONS, reverse=True):
        if piece < ticks:
            rest = _split(ticks - piece)
            if rest or ticks - piece == 0:
                return (piece, *rest)
    return ()


@cache
def fillable(ticks: int) -> bool:
    """Whether a gap of `ticks` can be filled exactly with duration tokens."""
    return ticks == 0 or bool(_split(ticks))


def bars_from_notes(
    notes: Sequence[tuple[int, int, int]], meter: str, *, total_ticks: int | None = None
) -> tuple[tuple[Event, ...], ...]:
    """Cut (start, end, pitch) notes on a tick grid into complete bars: gaps become rests, notes
    crossing a bar line are tied, overlaps keep the higher note, the last bar is filled with rest."""
    length = bar_ticks(meter)
    ordered = sorted(notes, key=lambda n: (n[0], -n[2]))
    # Skyline: at any time the highest sounding note is the melody.
    cleaned: list[list[int]] = []
    for start, end, pitch in ordered:
        if end <= start:
            continue
        if cleaned and start < cleaned[-1][1]:
            if start == cleaned[-1][0]:
                continue  # same onset, lower note: a chord's inner voice
            cleaned[-1][1] = start
        cleaned.append([start, end, pitch])
    end_of_music = max([n[1] for n in cleaned] + [total_ticks or 0])
    bar_count = max(1, -(-end_of_music // length))
    spans: list[tuple[int, int, int | None]] = []  # (start, end, pitch or None)
    position = 0
    for start, end, pitch in cleaned:
        if start > position:
            spans.append((position, start, None))
        spans.append((start, end, pitch))
        position = end
    if position < bar_count * length:
        spans.append((position, bar_count * length, None))
    bars: list[list[Event]] = [[] for _ in range(bar_count)]
    for start, end, pitch in spans:
        cursor, first = start, True
        while cursor < end:
            bar = cursor // length
            piece_end = min(end, (bar + 1) * length)
            pieces = split_ticks(piece_end - cursor)
            if not pieces:
                raise ValueError(f"a length of {piece_end - cursor} ticks cannot be written")
            for piece in pieces:
                bars[bar].append(Event(pitch, piece, tied=pitch is not None and not first))
                first = False
            cursor = piece_end
    return tuple(tuple(b) for b in bars)


# -- tokens ---------------------------------------------------------------------------------------


def header_ids(meter: str, tonic: int, mode: str, bars: int) -> list[int]:
    return [
        BOS_ID,
        TOKEN_ID[f"METER_{meter}"],
        TOKEN_ID[f"KEY_{tonic % 12}"],
        TOKEN_ID[f"MODE_{mode}"],
        TOKEN_ID[f"LEN_{length_bucket(bars)}"],
    ]


def body_ids(bars: Iterable[Sequence[Event]]) -> list[int]:
    ids: list[int] = []
    for bar in bars:
        for event in bar:
            for n, piece in enumerate(split_ticks(event.ticks)):
                if event.pitch is None:
                    ids.append(REST_ID)
                elif event.tied or n > 0:
                    ids.append(TIE_ID)
                else:
                    ids.append(PITCH_IDS[event.pitch])
                ids.append(DURATION_IDS[piece])
        ids.append(BAR_ID)
    return ids


def encode(melody: Melody, *, end: bool = True, length_bars: int | None = None) -> list[int]:
    """Token ids of a whole melody (header, bars, END)."""
    ids = header_ids(melody.meter, melody.tonic, melody.mode, length_bars or len(melody.bars))
    ids += body_ids(melody.bars)
    if end:
        ids.append(END_ID)
    return ids


def decode(ids: Sequence[int]) -> Melody:
    """The melody a token sequence describes (header first); an unfinished last bar is dropped."""
    ids = list(ids)
    if len(ids) < HEADER_LENGTH or ids[0] != BOS_ID:
        raise ValueError("a melody's tokens start with BOS, metre, key, mode and length")
    meter = VOCAB[ids[1]].removeprefix("METER_")
    tonic = int(VOCAB[ids[2]].removeprefix("KEY_"))
    mode = VOCAB[ids[3]].removeprefix("MODE_")
    bars: list[tuple[Event, ...]] = []
    bar: list[Event] = []
    slot: tuple[int | None, bool] | None = None  # (pitch, tied) waiting for its duration
    last_pitch: int | None = None
    for token in ids[HEADER_LENGTH:]:
        if token == END_ID:
            break
        if token == BAR_ID:
            bars.append(tuple(bar))
            bar = []
        elif token in ID_PITCH:
            slot = (ID_PITCH[token], False)
        elif token == REST_ID:
            slot = (None, False)
        elif token == TIE_ID:
            slot = (last_pitch, last_pitch is not None)
        elif token in ID_DURATION and slot is not None:
            pitch, tied = slot
            bar.append(Event(pitch, ID_DURATION[token], tied))
            last_pitch = pitch
            slot = None
    return Melody(meter, tonic, mode, tuple(bars))


def token_names(ids: Iterable[int]) -> list[str]:
    return [VOCAB[i] for i in ids]


# -- the grammar every generated sequence keeps ------------------------------------------------------


class BarGrammar:
    """Which tokens may come next so that every bar is exactly full and the tune ends on time.

    Feed it the body tokens (after the header) one by one with `push`; `allowed()` gives the ids
    that may follow.
    """

    def __init__(self, meter: str, target_bars: int):
        self.bar_length = bar_ticks(meter)
        self.target_bars = target_bars
        self.position = 0  # ticks into the current bar
        self.bars_done = 0
        self.expect_duration = False
        self.can_tie = False  # a note is sounding that a TIE may hold on
        self.slot_is_note = False
        self.finished = False

    def push(self, token: int) -> None:
        if token == END_ID:
            self.finished = True
        elif token == BAR_ID:
            self.bars_done += 1
            self.position = 0
        elif token in ID_DURATION:
            self.position += ID_DURATION[token]
            self.expect_duration = False
            self.can_tie = self.slot_is_note
        elif token in ID_PITCH or token in (REST_ID, TIE_ID):
            self.expect_duration = True
            self.slot_is_note = token != REST_ID

    def allowed(self) -> list[int]:
        if self.finished:
            return [PAD_ID]
        if self.expect_duration:
            left = self.bar_length - self.position
            return [i for d, i in DURATION_IDS.items() if d <= left and fillable(left - d)]
        if self.position >= self.bar_length:
            return [BAR_ID]
        if self.position == 0 and self.bars_done >= self.target_bars:
            return [END_ID]
        slots = [*PITCH_IDS.values(), REST_ID]
        if self.can_tie:
            slots.append(TIE_ID)
        return slots


def quantise_ticks(seconds: float, tempo_bpm: float, grid: int = 6) -> int:
    """Seconds -> ticks at `tempo_bpm` quarter notes per minute, rounded to `grid` ticks (a sixteenth)."""
    ticks = seconds * tempo_bpm / 60.0 * TICKS_PER_QUARTER
    return int(round(ticks / grid)) * grid


def ticks_from_quarters(quarter_length: float | Fraction) -> int | None:
    """A music21 quarterLength in ticks, or None where it is off the tick grid."""
    value = Fraction(quarter_length).limit_denominator(96) * TICKS_PER_QUARTER
    return int(value) if value.denominator == 1 else None
