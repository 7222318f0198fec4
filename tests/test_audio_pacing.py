"""An audio-synced walk's pace follows the song's percussive energy."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile

from studio.errors import InputError
from studio.media.audio_pacing import audio_seconds, load_audio, percussive_pacing, position_to_segment

RATE = 22050


def _song(path, seconds=8.0, clicks_from=4.0):
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # a soft pad throughout
    noise = np.random.default_rng(0).standard_normal(200).astype(np.float32)
    for beat in np.arange(clicks_from, seconds, 0.25):
        start = int(beat * RATE)
        samples[start : start + 200] += 0.8 * noise  # drum hits only from `clicks_from` on
    soundfile.write(path, samples, RATE)
    return path


def test_the_walk_lingers_in_quiet_parts_and_moves_on_the_beat(tmp_path):
    samples, rate = load_audio(_song(tmp_path / "song.wav"), max_seconds=600)
    pacing = percussive_pacing(samples, rate, 40)
    positions = pacing.positions
    assert positions[0] == 0.0 and positions[-1] == 1.0
    assert np.all(np.diff(positions) >= 0)  # never goes back
    assert positions[20] < 0.15  # the quiet first half covers little of the walk
    assert pacing.fps == pytest.approx(5.0) and pacing.seconds == pytest.approx(8.0)


def test_silent_audio_is_refused(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(RATE * 2, dtype=np.float32), RATE)
    samples, rate = load_audio(path, max_seconds=600)
    with pytest.raises(InputError, match="silent"):
        percussive_pacing(samples, rate, 24)


def test_two_hour_audio_is_refused_before_decoding(tmp_path):
    # A real two-hour file, kept small: silence compresses to almost nothing in FLAC.
    path = tmp_path / "long.flac"
    with soundfile.SoundFile(path, "w", samplerate=8000, channels=1, format="FLAC") as out:
        block = np.zeros(8000 * 600, dtype=np.float32)
        for _ in range(12):
            out.write(block)
    assert path.stat().st_size < 2_000_000
    assert audio_seconds(path) == pytest.approx(7200)
    with pytest.raises(InputError, match="120 min 00 s long; the limit is 10 min 00 s"):
        load_audio(path, max_seconds=600)


def test_not_audio_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio at all")
    with pytest.raises(InputError, match="not an audio file"):
        load_audio(path, max_seconds=600)


def test_positions_map_onto_keyframe_segments():
    assert position_to_segment(0.0, 3) == (0, 0.0)
    assert position_to_segment(0.5, 3) == (1, 0.0)
    assert position_to_segment(0.75, 3) == (1, 0.5)
    assert position_to_segment(1.0, 3) == (1, 1.0)
