"""Key, mode, metre and tempo detection on made-up melodies whose answers are known: notes, MIDI files and
recordings synthesised as sine tones."""

from __future__ import annotations

import mido
import numpy as np
import pytest
import soundfile

from studio.media import audio, keys, metre, midi
from studio.media.melody_tokens import MODE_STEPS, MODES, PITCH_NAMES, Melody, bars_from_notes

QUARTER = 24


def degrees(tonic: int, mode: str, steps: list[int], lengths: list[int]) -> list[tuple[int, int, int]]:
    """(start, end, pitch) notes on the scale degrees `steps` (0: the tonic; 7: an octave up; -1: below)."""
    notes, position = [], 0
    for step, length in zip(steps, lengths, strict=True):
        octave, index = divmod(step, 7)
        pitch = tonic + 12 * octave + MODE_STEPS[mode][index]
        notes.append((position, position + length, pitch))
        position += length
    return notes


def sine_tones(path, notes, tempo: float, rate: int = 16_000):
    """Each note a pure tone with a short fade and a breath between notes, over a little noise."""
    seconds_per_tick = 60.0 / tempo / QUARTER
    samples = np.zeros(int((notes[-1][1] * seconds_per_tick + 0.3) * rate), dtype=np.float32)
    for start, end, pitch in notes:
        first, last = int(start * seconds_per_tick * rate), int((end * seconds_per_tick - 0.03) * rate)
        t = np.arange(last - first) / rate
        fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
        samples[first:last] += 0.4 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t) * fade
    samples += np.random.default_rng(0).normal(0, 0.003, samples.size).astype(np.float32)
    soundfile.write(path, samples, rate)
    return path


def hear(path) -> keys.MelodyReading:
    return audio.hear_melody(audio.load_audio(path, 60, sample_rate=audio.PITCH_RATE))


# A tune on every degree of its mode, so the mode is audible: up, round the sixth and seventh, home.
MODAL_TUNE = ([0, 1, 2, 4, 5, 4, 2, 6, 5, 4, 2, 1, 0, -2, 0, 2, 4, 5, 6, 7, 5, 4, 2, 1, 0],
              [12] * 4 + [24] + [12] * 7 + [24] + [12] * 11 + [48])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tonic", range(60, 72))
def test_every_key_and_mode_is_found_from_its_notes(tonic, mode):
    found = keys.estimate_key_from_notes(degrees(tonic, mode, *MODAL_TUNE))
    assert (found.tonic, found.mode) == (tonic % 12, mode)
    assert 0.4 < found.confidence <= 1.0


def test_a_scale_that_ends_on_its_fifth_is_still_in_its_key():
    # C D E F G, the G held: the old profiles alone said G major, a key without the F that was sung.
    found = keys.estimate_key_from_notes(degrees(60, "major", [0, 1, 2, 3, 4], [24, 24, 24, 24, 48]))
    assert found.label == "C major"


def test_confidence_is_lower_when_the_notes_say_less():
    clear = keys.estimate_key_from_notes(degrees(62, "dorian", *MODAL_TUNE))
    vague = keys.estimate_key_from_notes([(0, 24, 62), (24, 48, 64)])
    assert clear.confidence > vague.confidence


def test_a_d_dorian_midi_file_reads_as_d_dorian(tmp_path):
    tune = degrees(62, "dorian", *MODAL_TUNE)
    path = tmp_path / "dorian.mid"
    midi.write_midi(Melody("4/4", 2, "dorian", bars_from_notes(tune, "4/4")), path, tempo=96)
    reading = midi.read_midi_melody(path)
    assert (reading.melody.tonic, reading.melody.mode) == (2, "dorian")
    assert reading.key is not None and reading.key.confidence > 0.5
    assert reading.meter_confidence is None and round(reading.tempo) == 96  # both written in the file


@pytest.mark.parametrize("meter, steps, lengths", [
    ("3/4", [0, 2, 4, 3, 1, 4, 5, 3, 2, 1, 6, 0], [48, 24] * 6),
    ("6/8", [0, 0, 2, 4, 4, 2, 1, -1, 0, 2, 4, 7, 3, 1, 0], [24, 12] * 7 + [36]),
    ("4/4", [0, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1, 0, 0], [QUARTER] * 16),
])
def test_a_midi_file_without_a_time_signature_gets_its_metre_from_its_notes(tmp_path, meter, steps, lengths):
    # Written with mido: pretty_midi would add a 4/4 time signature of its own.
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000)])
    per_tick = 480 // QUARTER
    for start, end, pitch in degrees(60, "major", steps, lengths):
        track.append(mido.Message("note_on", note=pitch, velocity=90, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=(end - start) * per_tick))
    song.tracks.append(track)
    path = tmp_path / "no-signature.mid"
    song.save(str(path))
    reading = midi.read_midi_melody(path)
    assert reading.melody.meter == meter and reading.meter_confidence is not None


def test_the_metre_of_even_notes_is_four_four():
    found = metre.estimate_meter(degrees(60, "major", [0, 1, 2, 3, 4], [24] * 4 + [48]))
    assert (found.meter, found.offset) == ("4/4", 0)


def test_a_hummed_c_major_scale_is_c_major_in_four_four_at_its_tempo(tmp_path):
    scale = [0, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1, 0, 0]
    reading = hear(sine_tones(tmp_path / "scale.wav", degrees(60, "major", scale, [QUARTER] * 16), tempo=100))
    assert reading.melody.meter == "4/4" and reading.key is not None
    assert (reading.melody.tonic, reading.melody.mode) == (0, "major")
    assert reading.tempo == pytest.approx(100, abs=2)


def test_hummed_c_d_e_f_g_is_c_major_not_g_major(tmp_path):
    notes = degrees(60, "major", [0, 1, 2, 3, 4], [24, 24, 24, 24, 48])
    reading = hear(sine_tones(tmp_path / "five.wav", notes, tempo=90))
    assert f"{PITCH_NAMES[reading.melody.tonic]} {reading.melody.mode}" == "C major"
    assert reading.melody.meter == "4/4" and reading.tempo == pytest.approx(90, abs=2)


def test_a_hummed_d_dorian_tune_is_d_dorian(tmp_path):
    reading = hear(sine_tones(tmp_path / "dorian.wav", degrees(62, "dorian", *MODAL_TUNE), tempo=110))
    assert (reading.melody.tonic, reading.melody.mode) == (2, "dorian")
    assert reading.key is not None and 0 < reading.key.confidence <= 1


def test_a_hummed_waltz_is_in_three_four(tmp_path):
    notes = degrees(57, "minor", [0, 2, 4, 3, 1, 4, 5, 3, 2, 1, 6, 0], [48, 24] * 6)
    reading = hear(sine_tones(tmp_path / "waltz.wav", notes, tempo=100))
    assert reading.melody.meter == "3/4" and (reading.melody.tonic, reading.melody.mode) == (9, "minor")
