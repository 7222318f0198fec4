"""Audio uploads: read safely (length checked from the header before decoding), hear the notes in a
hummed or sung melody, and analyse any audio (tempo, key, mel spectrogram) with librosa.

Pitch tracking follows librosa's pYIN, then turns frames into notes the careful way: rounding
frame by frame makes spurious notes wherever the voice glides, so the pitch curve is median
filtered first, segments shorter than a minimum note length are absorbed by their neighbours,
and only then are notes quantised to sixteenths in the detected tempo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.errors import InputError
from studio.media.keys import MelodyReading, estimate_key, estimate_key_from_notes
from studio.media.melody_tokens import HIGHEST_PITCH, LOWEST_PITCH, Melody, bars_from_notes, quantise_ticks
from studio.media.metre import estimate_meter

ANALYSIS_RATE = 22_050
PITCH_RATE = 16_000
HOP = 256
MIN_NOTE_SECONDS = 0.08
READABLE = "WAV, FLAC, OGG or MP3"


@dataclass(frozen=True)
class AudioClip:
    samples: np.ndarray  # float32 mono
    sample_rate: int
    seconds: float


def audio_seconds(path: Path) -> float:
    """The length the file's header declares, without decoding the audio."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception:
        raise InputError(f"That file is not audio the studio can read (use {READABLE}).") from None
    if info.samplerate <= 0:
        raise InputError("That audio file declares no sample rate; it is damaged.")
    return info.frames / info.samplerate


def load_audio(path: Path, max_seconds: float, sample_rate: int | None = ANALYSIS_RATE) -> AudioClip:
    """Mono float audio resampled to `sample_rate` (None: the file's own); refused above `max_seconds`
    before decoding."""
    import librosa
    import soundfile

    path = Path(path)
    seconds = audio_seconds(path)
    if seconds > max_seconds:
        raise InputError(
            f"That recording is {_duration(seconds)} long; the studio takes audio up to {_duration(max_seconds)}. "
            "Trim it first."
        )
    if seconds <= 0:
        raise InputError("That audio file is empty.")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception:
        raise InputError(f"That audio file is damaged and cannot be decoded (use {READABLE}).") from None
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise InputError("That audio file holds invalid samples (NaN or infinity).")
    if sample_rate is not None and rate != sample_rate:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=sample_rate)
    rate = sample_rate or rate
    return AudioClip(mono.astype(np.float32), rate, len(mono) / rate)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} s"


# -- hearing a melody -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HeardNotes:
    notes: list[tuple[float, float, int]]  # (start s, end s, MIDI pitch)
    tempo: float


def track_notes(clip: AudioClip) -> HeardNotes:
    """Notes of a monophonic recording (voice, whistle, one instrument) and its tempo."""
    import librosa
    import scipy.signal

    audio = clip.samples
    if clip.sample_rate != PITCH_RATE:
        audio = librosa.resample(audio, orig_sr=clip.sample_rate, target_sr=PITCH_RATE)
    if float(np.sqrt(np.mean(audio**2))) < 1e-4:
        raise InputError("No pitch found: the recording is silent. Hum or sing a little louder, close to the mic.")
    f0, voiced, probability = librosa.pyin(
        audio,
        fmin=librosa.note_to_hz("C2"),
        fmax=librosa.note_to_hz("C6"),
        sr=PITCH_RATE,
        frame_length=1024,
        hop_length=HOP,
    )
    voiced = voiced & (probability > 0.3) & np.isfinite(f0)
    if voiced.sum() < 3:
        raise InputError("No pitch found in that recording: hum or sing one clear note at a time.")
    midi = np.where(voiced, librosa.hz_to_midi(np.where(voiced, f0, 440.0)), np.nan)
    # Median filter over voiced frames only, so glides and vibrato do not split notes.
    smooth = midi.copy()
    filled = np.where(voiced, midi, np.nanmedian(midi[voiced]))
    smooth[voiced] = scipy.signal.medfilt(filled, 5)[voiced]
    frame_seconds = HOP / PITCH_RATE
    rounded = np.where(voiced, np.round(smooth), -1).astype(int)
    segments: list[list[int]] = []  # [first frame, last frame + 1, pitch]
    for index, pitch in enumerate(rounded):
        if segments and segments[-1][2] == pitch and segments[-1][1] == index:
            segments[-1][1] = index + 1
        else:
            segments.append([index, index + 1, pitch])
    minimum = max(1, int(MIN_NOTE_SECONDS / frame_seconds))
    # Absorb short segments into the longer neighbour (the glide between two notes).
    changed = True
    while changed:
        changed = False
        for i, seg in enumerate(segments):
            if seg[1] - seg[0] >= minimum or len(segments) == 1:
                continue
            left = segments[i - 1] if i > 0 else None
            right = segments[i + 1] if i + 1 < len(segments) else None
            target = max((s for s in (left, right) if s is not None), key=lambda s: s[1] - s[0])
            if target is left:
                left[1] = seg[1]
            else:
                right[0] = seg[0]
            del segments[i]
            changed = True
            break
        merged: list[list[int]] = []
        for seg in segments:
            if merged and merged[-1][2] == seg[2] and merged[-1][1] == seg[0]:
                merged[-1][1] = seg[1]
            else:
                merged.append(seg)
        segments = merged
    notes = [
        (s * frame_seconds, e * frame_seconds, int(np.clip(p, LOWEST_PITCH, HIGHEST_PITCH)))
        for s, e, p in segments
        if p >= 0 and e - s >= minimum
    ]
    if not notes:
        raise InputError("No pitch found in that recording: hum or sing one clear note at a time.")
    onsets = np.array([n[0] for n in notes])
    tempo = _tempo_from_onsets(onsets, clip)
    return HeardNotes(notes, tempo)


def _tempo_from_onsets(onsets: np.ndarray, clip: AudioClip) -> float:
    """The tempo of the notes' own spacing where it is regular, else librosa's estimate of the
    recording; folded into a singable 60-160 bpm."""
    tempo = _tempo_from_intervals(np.diff(onsets))
    if not tempo and clip.seconds >= 2.0:
        import librosa

        envelope = librosa.onset.onset_strength(y=clip.samples, sr=clip.sample_rate)
        tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=clip.sample_rate))[0])
    if not tempo and len(onsets) > 2:
        tempo = 60.0 / float(np.median(np.diff(onsets)))
    tempo = tempo or 100.0
    while tempo > 160:
        tempo /= 2
    while tempo < 60:
        tempo *= 2
    return round(tempo, 1)


def _tempo_from_intervals(intervals: np.ndarray) -> float | None:
    """60 / the longest unit most gaps between onsets are whole multiples of (a sung eighth, a quarter).

    librosa's beat tracker leans towards 120 bpm and hears a steady hum at odd tempi; the gaps
    between the notes themselves say it exactly when the singer keeps time.
    """
    gaps = intervals[intervals >= MIN_NOTE_SECONDS]
    if len(gaps) < 3:
        return None
    candidates = {g / k for g in gaps for k in (1, 2, 3, 4) if 0.1 <= g / k <= 1.5}
    best: tuple[float, float] | None = None  # (share of gaps that fit, unit)
    for unit in sorted(candidates, reverse=True):
        share = float(_fitting(gaps, unit).mean())
        if best is None or share > best[0] + 0.05:
            best = (share, unit)
    if best is None or best[0] < 0.75:
        return None
    unit = best[1]
    fits = _fitting(gaps, unit)
    counts = np.round(gaps[fits] / unit)
    unit = float((gaps[fits] * counts).sum() / (counts * counts).sum())  # least squares over the fitting gaps
    return 60.0 / unit


def _fitting(gaps: np.ndarray, unit: float) -> np.ndarray:
    """Which gaps are a whole number of units, give or take 12% of a unit per unit."""
    counts = np.maximum(np.round(gaps / unit), 1)
    return np.abs(gaps / unit - counts) < 0.12 * counts


def hear_melody(clip: AudioClip, meter: str | None = None) -> MelodyReading:
    """The hummed melody on sixteenths in its own tempo, its key and, unless `meter` is given, its metre
    (a pickup starts its first bar with a rest)."""
    heard = track_notes(clip)
    first = heard.notes[0][0]
    notes: list[tuple[int, int, int]] = []
    for start, end, pitch in heard.notes:
        s = quantise_ticks(start - first, heard.tempo)
        e = max(s + 6, quantise_ticks(end - first, heard.tempo))
        if notes and s < notes[-1][1]:
            s = notes[-1][1]
            if e <= s:
                continue
        notes.append((s, e, pitch))
    key = estimate_key_from_notes(notes)
    meter_confidence = None
    if meter is None:
        found = estimate_meter(notes)
        meter, meter_confidence = found.meter, found.confidence
        notes = [(s + found.offset, e + found.offset, p) for s, e, p in notes]
    melody = Melody(meter, key.tonic, key.mode, bars_from_notes(notes, meter))
    return MelodyReading(melody, heard.tempo, key, meter_confidence)


def melody_from_audio(clip: AudioClip, meter: str | None = None) -> tuple[Melody, float]:
    """The hummed melody (see `hear_melody`) and its tempo."""
    reading = hear_melody(clip, meter)
    return reading.melody, float(reading.tempo or 0.0)


# -- analysis -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    tempo: float
    tonic: int
    mode: str
    key_confidence: float
    seconds: float


def analyse(clip: AudioClip) -> Analysis:
    """Tempo (beat tracking) and key (chroma against key profiles) of any audio."""
    import librosa

    audio = clip.samples
    if float(np.abs(audio).max(initial=0.0)) < 1e-5:
        raise InputError("That audio is silent: there is nothing to analyse.")
    envelope = librosa.onset.onset_strength(y=audio, sr=clip.sample_rate)
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=envelope, sr=clip.sample_rate))[0])
    chroma = librosa.feature.chroma_cqt(y=audio, sr=clip.sample_rate)
    tonic, mode, confidence = estimate_key(chroma.sum(axis=1))
    return Analysis(round(tempo, 1), tonic, mode, round(confidence, 3), round(clip.seconds, 2))
