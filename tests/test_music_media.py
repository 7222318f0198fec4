"""MIDI, ABC, the synthesiser, pitch tracking, analysis and every odd input the Music tab takes."""

from __future__ import annotations

import io

import mido
import numpy as np
import pretty_midi
import pytest
import soundfile

from studio.errors import InputError
from studio.media import abc, audio, midi, plots, synth
from studio.media.melody_tokens import TICKS_PER_QUARTER, Melody, bars_from_notes
from tests.test_melody_tokens import ODE, ode

TEMPO = 120.0


def notes_of(melody: Melody) -> list[tuple[int, int, int]]:
    return [(n.start, n.end, n.pitch) for n in melody.notes()]


def test_midi_reads_back_with_pretty_midi_and_mido(tmp_path):
    melody = Melody("6/8", 2, "dorian", bars_from_notes([(0, 12, 62), (12, 20, 64), (20, 28, 65), (28, 36, 67),
                                                         (36, 72, 69), (72, 96, 72), (96, 144, 74)], "6/8"))
    path = tmp_path / "tune.mid"
    midi.write_midi(melody, path, TEMPO, "flute")
    seconds = 60.0 / TEMPO / TICKS_PER_QUARTER
    expected = [(s * seconds, e * seconds, p) for s, e, p in notes_of(melody)]
    # pretty_midi: same pitches, onsets and ends (to the file's tick resolution).
    read = pretty_midi.PrettyMIDI(str(path))
    got = [(n.start, n.end, n.pitch) for n in read.instruments[0].notes]
    assert [p for *_, p in got] == [p for *_, p in expected]
    assert np.allclose([g[:2] for g in got], [e[:2] for e in expected], atol=1e-3)
    assert read.instruments[0].program == midi.PROGRAMS["flute"]
    assert (read.time_signature_changes[0].numerator, read.time_signature_changes[0].denominator) == (6, 8)
    # mido, independently: note-on/note-off pairs in ticks.
    file = mido.MidiFile(str(path))
    ticks_per_studio_tick = file.ticks_per_beat // TICKS_PER_QUARTER
    now, starts, spans = 0, {}, []
    for message in mido.merge_tracks(file.tracks):
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            starts[message.note] = now
        elif message.type in ("note_off", "note_on"):
            spans.append((starts.pop(message.note), now, message.note))
    assert sorted(spans) == [(s * ticks_per_studio_tick, e * ticks_per_studio_tick, p) for s, e, p in notes_of(melody)]
    # And the studio's own reader gives the same melody back.
    back, tempo = midi.read_midi(path)
    assert notes_of(back) == notes_of(melody) and back.meter == "6/8" and round(tempo) == TEMPO


def test_abc_text_reads_back_to_the_same_notes():
    melody = Melody("3/4", 10, "mixolydian", bars_from_notes(
        [(0, 18, 70), (18, 24, 72), (24, 48, 68), (48, 56, 67), (56, 64, 65), (64, 72, 63), (72, 120, 70),
         (120, 144, 81), (144, 216, 46)], "3/4"))
    text = abc.melody_to_abc(melody, title="Round trip", tempo=96)
    assert "K:Bbmix" in text and "M:3/4" in text and "Q:1/4=96" in text
    back = abc.abc_to_melody(text)
    assert notes_of(back) == notes_of(melody)
    assert (back.tonic, back.mode, back.meter) == (10, "mixolydian", "3/4")


def test_typed_abc_with_a_pickup_and_a_dorian_key():
    melody = abc.abc_to_melody("X:1\nM:6/8\nL:1/8\nK:Ador\nE | A2B c2d | e3 e2 |]\n")
    assert (melody.tonic, melody.mode, melody.meter) == (9, "dorian", "6/8")
    assert notes_of(melody)[0] == (60, 72, 64)  # the pickup lands at the end of bar one
    assert all(sum(e.ticks for e in bar) == 72 for bar in melody.bars)


@pytest.mark.parametrize(
    "text, words",
    [
        ("X:1\nM:4/4\nK:C\nCDEF | GAB# |\n", "line 4, column 11: '#'"),
        ("X:1\nM:four\nK:C\nCDEF|\n", "line 2: the metre 'four'"),
        ("X:1\nK:C\nC D [CE G |\n", "line 3: a '\\[' chord"),
        ("X:1\nT:Only a title\nK:C\n", "no notes"),
        ("X:1\nK:C\nC D \"Am E |\n", "line 3: a chord symbol"),
    ],
)
def test_invalid_abc_names_the_line_and_the_reason(text, words):
    with pytest.raises(InputError, match=words):
        abc.abc_to_melody(text)


def test_synth_has_no_clipping_no_clicks_and_no_gaps(tmp_path):
    melody = ode()
    seconds_per_tick = 60.0 / TEMPO / TICKS_PER_QUARTER
    for timbre in synth.TIMBRES:
        samples = synth.render(melody, TEMPO, timbre)
        assert samples.dtype == np.float32
        assert np.abs(samples).max() == pytest.approx(synth.PEAK, rel=1e-3)  # normalised, below full scale
        # No gaps: every 10 ms window inside the sounding notes carries signal.
        window = synth.SAMPLE_RATE // 100
        end = int(melody.notes()[-1].end * seconds_per_tick * synth.SAMPLE_RATE)
        rms = np.sqrt(np.mean(samples[: end // window * window].reshape(-1, window) ** 2, axis=1))
        assert rms.min() > 0.01 * rms.max(), timbre
        # No clicks: every note starts and ends at silence, through a ramp, never a step.
        note = synth.render_note(60, 0.25, synth.TIMBRES[timbre])
        assert note[0] == 0.0 and abs(note[-1]) < 1e-6
        assert np.abs(note[:16]).max() < 0.5 * np.abs(note).max(), timbre
        if timbre != "chiptune":  # a square wave's own edges are steep by design
            assert np.abs(np.diff(samples)).max() < 0.35, timbre
    path = tmp_path / "ode.wav"
    synth.write_wav(synth.render(melody, TEMPO), path)
    data, rate = soundfile.read(path, dtype="int16")
    assert rate == synth.SAMPLE_RATE and np.abs(data).max() < 32767  # nothing at full scale


def test_a_rest_is_silent_and_only_the_rest():
    melody = Melody("4/4", 0, "major", bars_from_notes([(0, 48, 60), (96, 144, 64)], "4/4"))
    samples = synth.render(melody, TEMPO, "organ")
    per_tick = 60.0 / TEMPO / TICKS_PER_QUARTER * synth.SAMPLE_RATE
    rest = samples[int(60 * per_tick) : int(90 * per_tick)]  # after the release, before the next note
    assert np.abs(rest).max() < 1e-6


def test_piano_roll_and_spectrogram_pictures():
    image = plots.piano_roll(ode(), primer_ticks=96)
    assert image.width == 1200 and image.height > 100
    pixels = np.asarray(image)
    assert (np.all(pixels == plots.NOTE, axis=-1)).sum() > 100  # generated notes in blue
    assert (np.all(pixels == plots.PRIMER_NOTE, axis=-1)).sum() > 100  # the primer in orange
    picture = plots.mel_spectrogram_image(synth.render(ode(), TEMPO), synth.SAMPLE_RATE)
    assert picture.size == (900, 260)


def hummed(tmp_path, notes=ODE, tempo=100.0, name="hum.wav"):
    """A 'voice': the soft-flute timbre (near sine, vibrato) singing the notes, with a little noise."""
    melody = Melody("4/4", 0, "major", bars_from_notes(notes, "4/4"))
    samples = synth.render(melody, tempo, "flute")
    samples = samples + np.random.default_rng(0).normal(0, 0.003, samples.size).astype(np.float32)
    path = tmp_path / name
    soundfile.write(path, samples, synth.SAMPLE_RATE)
    return path


def test_humming_becomes_the_sung_notes(tmp_path):
    path = hummed(tmp_path)
    clip = audio.load_audio(path, 60, sample_rate=audio.PITCH_RATE)
    melody, tempo = audio.melody_from_audio(clip)
    heard = [p for *_, p in notes_of(melody)]
    sung = [p for *_, p in ODE]
    # Repeated pitches sung legato merge; the sequence of distinct pitches must match.
    distinct = [p for i, p in enumerate(sung) if i == 0 or p != sung[i - 1]]
    assert [p for i, p in enumerate(heard) if i == 0 or p != heard[i - 1]] == distinct
    assert 60 <= tempo <= 160


def test_silent_audio_says_no_pitch_found(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(16_000 * 3, dtype=np.float32), 16_000)
    clip = audio.load_audio(path, 60, sample_rate=audio.PITCH_RATE)
    with pytest.raises(InputError, match="No pitch found"):
        audio.melody_from_audio(clip)


def test_two_hours_of_audio_are_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "two-hours.flac"
    rate = 1000  # two hours of silence at a low rate: a small FLAC whose header says 7,200 s
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=1, format="FLAC") as handle:
        block = np.zeros(rate * 600, dtype=np.float32)
        for _ in range(12):
            handle.write(block)
    decoded = []
    monkeypatch.setattr(soundfile, "read", lambda *a, **k: decoded.append(a) or (np.zeros((1, 1)), rate))
    with pytest.raises(InputError, match="2.0 hours long; the studio takes audio up to 10 minutes"):
        audio.load_audio(path, 600)
    assert decoded == []  # never decoded


def test_not_audio_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples")
    with pytest.raises(InputError, match="not audio the studio can read"):
        audio.load_audio(path, 600)


def _instrument(notes, is_drum=False) -> pretty_midi.Instrument:
    instrument = pretty_midi.Instrument(0, is_drum=is_drum)
    instrument.notes.extend(notes)
    return instrument


def _midi_bytes(*tracks: pretty_midi.Instrument) -> bytes:
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.extend(tracks)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def test_bad_midi_files_get_clear_messages(tmp_path):
    cases = {
        "text.mid": b"MIDI? no, just text",
        "truncated.mid": _midi_bytes(_instrument([pretty_midi.Note(90, 60, 0, 1)]))[:30],
        "drums.mid": _midi_bytes(_instrument([pretty_midi.Note(90, 36, 0, 0.5)], is_drum=True)),
        "empty.mid": _midi_bytes(_instrument([])),
    }
    words = {"text.mid": "not a MIDI file", "truncated.mid": "damaged", "drums.mid": "only drum notes",
             "empty.mid": "no notes"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError, match=words[name]):
            midi.read_midi(path)


def test_a_played_midi_is_quantised_to_sixteenths():
    piano = _instrument([])
    for i, pitch in enumerate([60, 62, 64, 65]):
        start = i * 0.5 + (0.013 if i % 2 else -0.0)  # a human's timing at 120 bpm
        piano.notes.append(pretty_midi.Note(80, pitch, start, start + 0.46))
    melody, _ = midi.read_midi(_midi_bytes(piano))
    assert notes_of(melody) == [(0, 24, 60), (24, 48, 62), (48, 72, 64), (72, 96, 65)]


def test_analysis_finds_tempo_and_key(tmp_path):
    # Eight bars of quarter notes in G major at 120 bpm.
    scale = [67, 71, 74, 79, 74, 71, 67, 66, 67, 69, 71, 72, 74, 72, 71, 69]
    notes = [(i * 24, i * 24 + 24, p) for i, p in enumerate(scale * 2)]
    melody = Melody("4/4", 7, "major", bars_from_notes(notes, "4/4"))
    path = tmp_path / "g.wav"
    synth.write_wav(synth.render(melody, 120.0, "piano"), path)
    result = audio.analyse(audio.load_audio(path, 600))
    assert (result.tonic, result.mode) == (7, "major")
    assert result.tempo == pytest.approx(120, rel=0.05)
