"""Pictures of music: a piano roll of a melody and a mel spectrogram of audio (PIL drawings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from studio.media.melody_tokens import (
    PITCH_NAMES,
    TICKS_PER_QUARTER,
    Melody,
    beat_ticks,
    key_name,
    scale_pitch_classes,
)

BACKGROUND = (250, 250, 252)
SCALE_ROW = (236, 239, 247)
OFF_SCALE_ROW = (250, 250, 252)
BAR_LINE = (120, 124, 140)
BEAT_LINE = (218, 220, 228)
NOTE = (72, 98, 214)
PRIMER_NOTE = (226, 120, 46)
LABEL = (70, 72, 84)
LEFT = 48  # room for note names
TOP = 40  # room for the title and bar numbers
SECTION_TINT = (244, 240, 230)  # every other section of a walk, behind the scale rows
SECTION_LINE = (40, 42, 52)


@dataclass(frozen=True)
class Section:
    """A stretch of a piano roll with its own label and key (a step of a melody walk)."""

    start: int  # tick
    label: str
    tonic: int
    mode: str


def piano_roll(
    melody: Melody,
    *,
    title: str = "",
    primer_ticks: int = 0,
    sections: Sequence[Section] = (),
    width: int = 1200,
    row_height: int = 12,
) -> Image.Image:
    """The melody as a piano roll: rows are semitones (the key's scale shaded), columns are time;
    bar lines strong, beats faint; notes before `primer_ticks` (a continuation's primer) in orange.
    `sections` (a walk's steps) each get their own scale shading, a heavy line and a label above."""
    notes = melody.notes()
    pitches = [n.pitch for n in notes] or [60, 72]
    low, high = min(pitches) - 2, max(pitches) + 2
    rows = high - low + 1
    total = max(melody.total_ticks, 1)
    px_per_tick = (width - LEFT - 8) / total
    height = TOP + rows * row_height + 8
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    spans = list(sections) or [Section(0, "", melody.tonic, melody.mode)]

    def y_of(pitch: int) -> int:
        return TOP + (high - pitch) * row_height

    def x_of(tick: int) -> float:
        return LEFT + tick * px_per_tick

    for index, span in enumerate(spans):
        x0 = x_of(span.start)
        x1 = x_of(spans[index + 1].start) if index + 1 < len(spans) else width - 8
        scale = scale_pitch_classes(span.tonic, span.mode)
        tinted = len(spans) > 1 and index % 2 == 1
        for pitch in range(low, high + 1):
            colour = SCALE_ROW if pitch % 12 in scale else (SECTION_TINT if tinted else OFF_SCALE_ROW)
            draw.rectangle([x0, y_of(pitch), x1, y_of(pitch) + row_height - 1], fill=colour)
    for pitch in range(low, high + 1):
        if pitch % 12 == 0 or pitch == low + 2:
            draw.text((4, y_of(pitch) - 1), f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}", fill=LABEL, font=font)
    beat = beat_ticks(melody.meter)
    for tick in range(0, total + 1, beat):
        x = LEFT + tick * px_per_tick
        draw.line([x, TOP, x, height - 8], fill=BEAT_LINE)
    for index, tick in enumerate(range(0, total + 1, melody.bar_ticks)):
        x = LEFT + tick * px_per_tick
        draw.line([x, TOP, x, height - 8], fill=BAR_LINE, width=1)
        if not sections and index < len(melody.bars) and (len(melody.bars) <= 32 or index % 4 == 0):
            draw.text((x + 3, TOP - 16), str(index + 1), fill=LABEL, font=font)
    for index, span in enumerate(sections):
        x = x_of(span.start)
        if index:
            draw.line([x, TOP - 18, x, height - 8], fill=SECTION_LINE, width=3)
        draw.text((x + 5, TOP - 16), span.label, fill=SECTION_LINE, font=font)
    for note in notes:
        x0 = LEFT + note.start * px_per_tick + 1
        x1 = max(x0 + 2, LEFT + note.end * px_per_tick - 1)
        y0 = y_of(note.pitch) + 1
        colour = PRIMER_NOTE if note.start < primer_ticks else NOTE
        draw.rounded_rectangle([x0, y0, x1, y0 + row_height - 3], radius=2, fill=colour)
    heading = title or f"{key_name(melody.tonic, melody.mode)} · {melody.meter} · {len(melody.bars)} bars"
    draw.text((LEFT, 3), heading, fill=LABEL, font=font)
    return image


def mel_spectrogram_image(
    audio: np.ndarray, sample_rate: int, *, width: int = 900, height: int = 260, n_mels: int = 96
) -> Image.Image:
    """A log-mel spectrogram (librosa), low frequencies at the bottom, in the magma colour map."""
    import librosa
    from matplotlib import colormaps

    audio = np.asarray(audio, dtype=np.float32)
    if audio.size < 2048:
        audio = np.pad(audio, (0, 2048 - audio.size))
    mel = librosa.feature.melspectrogram(y=audio, sr=sample_rate, n_mels=n_mels, n_fft=2048, hop_length=512)
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    scaled = (db + 80.0) / 80.0
    rgb = (colormaps["magma"](scaled[::-1])[..., :3] * 255).astype(np.uint8)
    return Image.fromarray(rgb).resize((width, height), Image.Resampling.BILINEAR)


def seconds_per_tick(tempo: float) -> float:
    return 60.0 / tempo / TICKS_PER_QUARTER
