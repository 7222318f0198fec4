"""ABC notation: the studio writes melodies as ABC text and reads typed ABC back (through music21).

Typed ABC is checked line by line first, so a mistake is reported as "line N: reason" rather
than a parser's internals or, worse, silently skipped notes.
"""

from __future__ import annotations

import logging
import re
import warnings
from fractions import Fraction

from studio.errors import InputError
from studio.media.melody_tokens import (
    METERS,
    MODE_STEPS,
    MODES,
    TICKS_PER_QUARTER,
    Melody,
    bars_from_notes,
    scale_pitch_classes,
    ticks_from_quarters,
)

MAX_ABC_CHARS = 20_000
UNIT_TICKS = TICKS_PER_QUARTER // 2  # L:1/8
LETTERS = "CDEFGAB"
NATURAL_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
MODE_SUFFIX = {"major": "", "minor": "m", "dorian": "dor", "mixolydian": "mix"}
SHARP_ORDER = "FCGDAEB"
# Pitch-class spellings (letter, accidental) for sharp-side and flat-side keys.
SHARP_SPELLING = ["C", "^C", "D", "^D", "E", "F", "^F", "G", "^G", "A", "^A", "B"]
FLAT_SPELLING = ["C", "_D", "D", "_E", "E", "F", "_G", "G", "_A", "A", "_B", "B"]


# -- writing --------------------------------------------------------------------------------------


def _signature(tonic: int, mode: str) -> dict[str, str]:
    """Letter -> accidental ('^' or '_') of the key signature of tonic + mode."""
    major = next(pc for pc in range(12) if scale_pitch_classes(pc, "major") == scale_pitch_classes(tonic, mode))
    fifths = {0: 0, 7: 1, 2: 2, 9: 3, 4: 4, 11: 5, 6: 6, 5: -1, 10: -2, 3: -3, 8: -4, 1: -5}[major]
    if fifths >= 0:
        return {letter: "^" for letter in SHARP_ORDER[:fifths]}
    return {letter: "_" for letter in SHARP_ORDER[::-1][:-fifths]}


def _tonic_name(tonic: int, mode: str) -> str:
    signature = _signature(tonic, mode)
    uses_flats = "_" in signature.values()
    spelling = (FLAT_SPELLING if uses_flats else SHARP_SPELLING)[tonic]
    letter = spelling[-1]
    accidental = {"^": "#", "_": "b"}.get(spelling[0], "") if len(spelling) == 2 else ""
    return letter + accidental


def _length(ticks: int) -> str:
    value = Fraction(ticks, UNIT_TICKS)
    if value == 1:
        return ""
    if value.denominator == 1:
        return str(value.numerator)
    if value.numerator == 1:
        return "/" if value.denominator == 2 else f"/{value.denominator}"
    return f"{value.numerator}/{value.denominator}"


def _note_text(pitch: int, signature: dict[str, str], in_bar: dict[tuple[str, int], str]) -> str:
    """One pitch in ABC, with an accidental only where the signature or the bar so far needs one."""
    uses_flats = "_" in signature.values()
    spelling = (FLAT_SPELLING if uses_flats else SHARP_SPELLING)[pitch % 12]
    letter, wanted = spelling[-1], (spelling[0] if len(spelling) == 2 else "=")
    # Octave of the letter (B#/Cb never arise with these spellings).
    octave = pitch // 12 - 1
    current = in_bar.get((letter, octave), signature.get(letter, "="))
    mark = "" if current == wanted else wanted
    in_bar[(letter, octave)] = wanted
    text = letter.lower() + "'" * (octave - 5) if octave >= 5 else letter + "," * (4 - octave)
    return mark + text


def melody_to_abc(melody: Melody, *, title: str = "Studio melody", tempo: float | None = None) -> str:
    """ABC 2.1 text of the melody (L:1/8, key with mode, ties where notes cross bar lines)."""
    signature = _signature(melody.tonic, melody.mode)
    lines = [
        "X:1",
        f"T:{title}",
        f"M:{melody.meter}",
        "L:1/8",
    ]
    if tempo:
        lines.append(f"Q:1/4={int(round(tempo))}")
    lines.append(f"K:{_tonic_name(melody.tonic, melody.mode)}{MODE_SUFFIX[melody.mode]}")
    bars_text = []
    events = [e for bar in melody.bars for e in bar]
    flat_index = 0
    for bar in melody.bars:
        in_bar: dict[tuple[str, int], str] = {}
        parts = []
        for event in bar:
            following = events[flat_index + 1] if flat_index + 1 < len(events) else None
            flat_index += 1
            if event.pitch is None:
                parts.append("z" + _length(event.ticks))
                continue
            text = _note_text(event.pitch, signature, in_bar) + _length(event.ticks)
            if following is not None and following.tied and following.pitch == event.pitch:
                text += "-"
            parts.append(text)
        bars_text.append(" ".join(parts))
    per_line = 4
    body = []
    for i in range(0, len(bars_text), per_line):
        last = i + per_line >= len(bars_text)
        body.append(" | ".join(bars_text[i : i + per_line]) + (" |]" if last else " |"))
    return "\n".join(lines + body) + "\n"


# -- reading --------------------------------------------------------------------------------------

_HEADER = re.compile(r"^[A-Za-z]:")
_QUOTED = re.compile(r'"[^"]*"')
_DECORATION = re.compile(r"![^!]*!|\+[^+]*\+")
_ALLOWED_BODY = set("ABCDEFGabcdefgzxZ^_=,'/0123456789|:[]()-<> .~{}\t\\&")


def check_abc(text: str) -> None:
    """Raise InputError naming the first line that is not ABC notation, and why."""
    if len(text) > MAX_ABC_CHARS:
        raise InputError(f"That ABC text is {len(text):,} characters; the studio reads up to {MAX_ABC_CHARS:,}.")
    has_notes = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("%", 1)[0].rstrip()
        if not line.strip():
            continue
        if _HEADER.match(line.strip()):
            field, value = line.strip()[0], line.strip()[2:].strip()
            if field == "M" and value not in ("C", "C|", "none", "") and not re.fullmatch(r"\d+/\d+", value):
                raise InputError(f"ABC line {number}: the metre '{value}' is not a fraction like 6/8.")
            if field == "L" and not re.fullmatch(r"1/\d+", value):
                raise InputError(f"ABC line {number}: the unit length '{value}' should look like 1/8.")
            if field == "K" and value and not re.match(r"^(none|[A-Ga-g][#b]?\s*[A-Za-z]*)", value):
                raise InputError(f"ABC line {number}: '{value}' is not a key (try K:D, K:Am, K:Ador).")
            continue
        body = _DECORATION.sub("", _QUOTED.sub("", line))
        if body.count('"') or body.count("!") == 1:
            raise InputError(f"ABC line {number}: a chord symbol or decoration is not closed.")
        for column, char in enumerate(body, start=1):
            if char not in _ALLOWED_BODY and char not in "HLMOPSTuv":
                raise InputError(f"ABC line {number}, column {column}: '{char}' is not ABC notation.")
        brackets = body.replace("|]", "|").replace("[|", "|")
        if brackets.count("[") != brackets.count("]"):
            raise InputError(f"ABC line {number}: a '[' chord or inline field is not closed.")
        if body.count("(") and not re.search(r"\(\d|\([A-Ga-gz^_=]", body):
            raise InputError(f"ABC line {number}: '(' must start a slur or a tuplet like (3.")
        has_notes = has_notes or bool(re.search(r"[A-Ga-g]", body))
    if not has_notes:
        raise InputError("That ABC text has no notes (write them after a K: line, e.g. K:D then DEF GAB|).")


def abc_to_melody(text: str) -> Melody:
    """Typed ABC as a melody: its first tune's metre and key (K: with a mode where given)."""
    text = text.strip()
    check_abc(text)
    if not re.search(r"^X:", text, re.M):
        text = "X:1\n" + text
    if not re.search(r"^K:", text, re.M):
        # Without a key line ABC parsers read the notes as a header; assume C major.
        text = re.sub(r"^(X:.*)$", r"\1\nK:C", text, count=1, flags=re.M)
    from music21 import converter, key, stream

    warnings.simplefilter("ignore")
    logging.getLogger("music21").setLevel(logging.ERROR)
    try:
        parsed = converter.parse(text, format="abc")
    except Exception as exc:  # music21 raises its own kinds; the message is what matters
        raise InputError(f"That ABC text could not be read: {exc}") from None
    score = parsed.scores[0] if isinstance(parsed, stream.Opus) else parsed
    part = score.parts[0] if score.hasPartLikeStreams() else score
    meters = [ts.ratioString for ts in part.recurse().getElementsByClass("TimeSignature")]
    meter = meters[0] if meters and meters[0] in METERS else "4/4"
    notes: list[tuple[int, int, int]] = []
    for element in part.recurse().notes:
        if element.duration.isGrace or element.quarterLength == 0:
            continue
        start = ticks_from_quarters(element.getOffsetInHierarchy(part))
        length = ticks_from_quarters(element.quarterLength)
        if start is None or length is None:
            raise InputError("That ABC text has a note length the studio cannot place (use halves, thirds, quarters).")
        pitch = max(p.midi for p in element.pitches)
        tie = element.tie.type if element.tie is not None else None
        if tie in ("stop", "continue") and notes and notes[-1][2] == pitch and notes[-1][1] == start:
            notes[-1] = (notes[-1][0], start + length, pitch)
        else:
            notes.append((start, start + length, pitch))
    if not notes:
        raise InputError("That ABC text has no notes the studio can read.")
    # A short first bar is a pickup: move everything so bar lines fall on whole bars.
    measures = list(part.getElementsByClass("Measure"))
    from studio.media.melody_tokens import bar_ticks

    length = bar_ticks(meter)
    first = ticks_from_quarters(measures[0].duration.quarterLength) if measures else length
    shift = (length - first) if first and first < length and len(measures) > 1 else 0
    notes = [(s + shift, e + shift, p) for s, e, p in notes]
    keys = list(part.recurse().getElementsByClass(key.Key))
    if keys and keys[0].mode in MODES:
        tonic, mode = keys[0].tonic.pitchClass, keys[0].mode
    else:
        from studio.media.keys import estimate_key_from_notes

        found = estimate_key_from_notes(notes)
        tonic, mode = found.tonic, found.mode
    try:
        bars = bars_from_notes(notes, meter)
    except ValueError as exc:
        raise InputError(f"That ABC tune's rhythm cannot be written in the studio's notes ({exc}).") from None
    assert mode in MODE_STEPS
    return Melody(meter, tonic, mode, bars)
