"""Pace a walk to a song: the walk moves when the drums hit and lingers in quiet passages.

The song is split into harmonic and percussive parts; the percussive part's onset strength,
summed per video frame and accumulated, says how far along the walk each frame should be.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import numpy as np

from studio.errors import InputError

ANALYSIS_RATE = 22050
STEADY_SHARE = 0.1  # a little even motion, so long quiet passages still drift


@dataclass
class Pacing:
    positions: np.ndarray  # per frame, 0..1 along the whole walk, never going back
    fps: float
    seconds: float


def audio_seconds(path: str | os.PathLike) -> float:
    """The length of an audio file from its header, without decoding it."""
    import soundfile

    try:
        info = soundfile.info(str(path))
        return float(info.frames) / float(info.samplerate)
    except (RuntimeError, ValueError, TypeError, soundfile.LibsndfileError):
        pass
    try:
        import librosa

        with warnings.catch_warnings():  # librosa's fallback reader announces itself; the result is what counts
            warnings.simplefilter("ignore")
            return float(librosa.get_duration(path=str(path)))
    except Exception:  # librosa raises many kinds for files it cannot read
        raise InputError(f"'{os.path.basename(path)}' is not an audio file the studio can read (WAV, FLAC, OGG, MP3).") from None


def load_audio(path: str | os.PathLike, max_seconds: float) -> tuple[np.ndarray, int]:
    """Mono samples at the analysis rate, refusing long files before decoding them."""
    import librosa

    seconds = audio_seconds(path)
    if seconds > max_seconds:
        raise InputError(
            f"The audio is {_minutes(seconds)} long; the limit is {_minutes(max_seconds)}. Trim it first."
        )
    if seconds <= 0.1:
        raise InputError("The audio is shorter than a tenth of a second.")
    try:
        samples, rate = librosa.load(str(path), sr=ANALYSIS_RATE, mono=True)
    except Exception:
        raise InputError(f"'{os.path.basename(path)}' could not be decoded as audio.") from None
    return samples, rate


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def percussive_pacing(samples: np.ndarray, rate: int, frames: int) -> Pacing:
    """Where along the walk each of `frames` frames lies, following the percussive energy."""
    import librosa

    if frames < 2:
        raise InputError("An audio-synced walk needs at least two frames.")
    seconds = len(samples) / rate
    if not np.isfinite(samples).all() or float(np.sqrt(np.mean(samples**2))) < 1e-4:
        raise InputError("The audio is silent, so there is no beat to follow.")
    _, percussive = librosa.effects.hpss(samples)
    strength = librosa.onset.onset_strength(y=percussive, sr=rate)
    times = librosa.times_like(strength, sr=rate)
    # Energy per video frame: each onset value lands in the frame interval it falls in.
    bins = np.minimum((times / seconds * frames).astype(int), frames - 1)
    energy = np.bincount(bins, weights=strength, minlength=frames)[:frames]
    if energy.sum() <= 1e-9:
        raise InputError("The audio has no percussive onsets to follow; try a song with a beat.")
    energy = energy / energy.sum()
    motion = (1.0 - STEADY_SHARE) * energy + STEADY_SHARE / frames
    # Frame i shows where the walk is at the start of its interval: 0 first, 1 last.
    positions = np.concatenate([[0.0], np.cumsum(motion)[:-1]])
    positions = positions / positions[-1]
    return Pacing(positions=positions, fps=frames / seconds, seconds=seconds)


def position_to_segment(position: float, keyframes: int) -> tuple[int, float]:
    """A point 0..1 along a walk through `keyframes` keyframes as (segment, t within it)."""
    scaled = position * (keyframes - 1)
    segment = min(int(math.floor(scaled)), keyframes - 2)
    return segment, float(scaled - segment)
