"""The studio's small synthesiser: a melody to audio, in a handful of timbres.

Each note is a sum of harmonics (kept below Nyquist, so nothing aliases) shaped by an envelope
whose attack and release are raised-cosine ramps: no note starts or stops with a click. Notes
ring a little past their end (the release) and overlap the next, so legato lines have no gaps.
The mix is normalised to a fixed peak below full scale, so nothing clips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.media.melody_tokens import TICKS_PER_QUARTER, Melody

SAMPLE_RATE = 32_000
PEAK = 0.89  # -1 dBFS


@dataclass(frozen=True)
class Timbre:
    label: str
    harmonics: tuple[float, ...]  # amplitude of harmonic 1, 2, 3...
    attack: float  # seconds
    release: float  # seconds
    decay: float  # seconds for the fundamental to fall by 1/e while held (0: organ-like sustain)
    floor: float = 0.0  # the level a decaying note settles at instead of dying out
    brightness_decay: float = 1.0  # how much faster high harmonics decay than the fundamental
    vibrato: float = 0.0  # depth in semitones, after the first 0.15 s


TIMBRES: dict[str, Timbre] = {
    "piano": Timbre("Electric piano", (1.0, 0.45, 0.22, 0.12, 0.07, 0.04, 0.025), 0.004, 0.08, 1.2, 0.22, 1.6),
    "flute": Timbre("Soft flute", (1.0, 0.2, 0.08, 0.03), 0.045, 0.09, 0.0, vibrato=0.12),
    "organ": Timbre("Organ", (1.0, 0.7, 0.35, 0.5, 0.0, 0.25, 0.0, 0.2), 0.012, 0.05, 0.0),
    "pluck": Timbre("Harp pluck", (1.0, 0.6, 0.35, 0.2, 0.12, 0.08, 0.05, 0.03), 0.002, 0.12, 0.55, 0.12, 2.2),
    "chiptune": Timbre(
        "Chiptune square", tuple(1.0 / n if n % 2 else 0.0 for n in range(1, 16)), 0.003, 0.03, 0.0
    ),
}


def midi_to_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def _ramp(length: int) -> np.ndarray:
    """A raised-cosine rise from 0 to 1 over `length` samples."""
    if length <= 0:
        return np.ones(0)
    return 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, length))


def render_note(pitch: int, seconds: float, timbre: Timbre, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One note, `seconds` long plus its release tail (float32).

    Harmonics come from the recurrence sin((n+1)x) = 2 cos(x) sin(nx) - sin((n-1)x) and their decays
    from powers of one exponential, so a note costs a few multiply-adds per sample and harmonic.
    """
    held = max(int(round(seconds * sample_rate)), 1)
    release = int(timbre.release * sample_rate)
    total = held + release
    t = np.arange(total, dtype=np.float32) / np.float32(sample_rate)
    frequency = midi_to_hz(pitch)
    if timbre.vibrato:
        onset = np.clip((t - 0.15) / 0.2, 0.0, 1.0)
        bend = 2.0 ** (timbre.vibrato * onset * np.sin(2 * np.pi * 5.2 * t) / 12.0)
        phase = (2.0 * np.pi * frequency / sample_rate * np.cumsum(bend)).astype(np.float32)
    else:
        phase = (2.0 * np.pi * frequency) * t
    sin_prev, sin_now = np.zeros(total, dtype=np.float32), np.sin(phase)
    twice_cos = 2.0 * np.cos(phase)
    if timbre.decay:
        base = np.exp(-t / np.float32(timbre.decay))
        brighter = np.exp(-t * np.float32((timbre.brightness_decay - 1.0) / 4.0 / timbre.decay))
        decay = base.copy()
    wave = np.zeros(total, dtype=np.float32)
    for n, amplitude in enumerate(timbre.harmonics, start=1):
        if frequency * n >= sample_rate * 0.45:
            break
        if amplitude:
            if timbre.decay:
                wave += amplitude * sin_now * (timbre.floor + (1.0 - timbre.floor) * decay)
            else:
                wave += amplitude * sin_now
        sin_prev, sin_now = sin_now, twice_cos * sin_now - sin_prev
        if timbre.decay:
            decay *= brighter
    envelope = np.ones(total, dtype=np.float32)
    attack = min(int(timbre.attack * sample_rate), held)
    envelope[:attack] = _ramp(attack)
    envelope[held:] = _ramp(release)[::-1]
    return wave * envelope


def render(melody: Melody, tempo: float, timbre: str = "piano", sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole melody as float32 mono audio, peak-normalised to -1 dBFS (silence if it has no notes)."""
    voice = TIMBRES[timbre]
    seconds_per_tick = 60.0 / tempo / TICKS_PER_QUARTER
    length = int(round(melody.total_ticks * seconds_per_tick * sample_rate)) + int(voice.release * sample_rate) + 1
    out = np.zeros(length, dtype=np.float32)
    for note in melody.notes():
        start = int(round(note.start * seconds_per_tick * sample_rate))
        wave = render_note(note.pitch, (note.end - note.start) * seconds_per_tick, voice, sample_rate)
        # Lower notes sound weaker at equal amplitude; lift them gently.
        wave *= 1.0 + 0.3 * np.clip((72 - note.pitch) / 24.0, 0.0, 1.0)
        end = min(start + len(wave), length)
        out[start:end] += wave[: end - start]
    peak = float(np.abs(out).max())
    if peak > 0:
        out *= PEAK / peak
    return out.astype(np.float32)


def write_wav(audio: np.ndarray, path: Path, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM WAV, which every player and DAW opens."""
    import soundfile

    soundfile.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")
