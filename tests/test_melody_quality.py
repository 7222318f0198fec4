"""The shipped melody model, measured over 50 seeded melodies per setting (one batch each)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pretty_midi
import pytest
import soundfile

from studio.backends.melody import MelodyBackend, MelodyRequest
from studio.errors import Cancelled, InputError
from studio.media.melody_tokens import TICKS_PER_QUARTER, Melody, bars_from_notes
from studio.runtime import CancelToken, ModelCache
from studio.services.music import write_melody_files
from tests.test_melody_tokens import ODE
from training.melody_quality import SETTINGS, corpus_histograms, measure

COUNT = 50


@pytest.fixture(scope="module")
def backend():
    return MelodyBackend(ModelCache(1024))


@pytest.fixture(scope="module")
def corpus():
    return corpus_histograms()


@pytest.mark.parametrize("request_", SETTINGS[:4], ids=lambda r: f"{r.tonic}-{r.mode}-{r.meter}")
def test_fifty_seeded_melodies_keep_key_metre_and_the_corpus_style(backend, corpus, request_):
    request = replace(request_, temperature=1.0, seed=7)
    melodies = backend.sample(request, count=COUNT)
    quality = measure(melodies, request, corpus)
    assert quality.in_scale >= 0.95
    assert quality.full_bars == 1.0 and quality.right_length == 1.0
    assert quality.histogram_distance < 0.15, quality
    assert quality.notes_per_tune > request.bars * 1.5  # tunes, not a few held notes
    assert len({tuple(n.pitch for n in m.notes()) for m in melodies}) == COUNT  # 50 different tunes


def test_a_continuation_keeps_the_primer_unchanged_at_its_start(backend):
    primer = Melody("4/4", 0, "major", bars_from_notes(ODE, "4/4"))
    request = MelodyRequest(tonic="C", mode="major", meter="4/4", bars=4, seed=3)
    continued = backend.sample(request, list(primer.bars), count=20)
    for melody in continued:
        assert melody.notes()[: len(primer.notes())] == primer.notes()
        assert len(melody.bars) == len(primer.bars) + 4
    result = backend.generate(request, primer)
    assert result.primer_bars == 4 and result.params["primer"] == primer.to_json()


def test_generate_is_reproducible_from_its_parameters(backend):
    request = MelodyRequest(tonic="F#", mode="minor", meter="3/4", bars=6, seed=99, temperature=0.8)
    first = backend.generate(request)
    again = backend.generate(MelodyRequest(**{k: first.params[k] for k in (
        "tonic", "mode", "meter", "tempo", "bars", "temperature", "top_p", "key_strength", "seed", "timbre")}))
    assert first.melody == again.melody
    assert first.params["model"] == "studio-melody" and first.params["model_revision"].startswith("assets-sha256:")


def test_a_generated_tune_survives_midi_and_wav(backend, tmp_path):
    result = backend.generate(MelodyRequest(tonic="E", mode="dorian", meter="6/8", bars=8, seed=5, tempo=132))
    files = write_melody_files(result, tmp_path / "tune.mid", 132, "pluck")
    seconds = 60.0 / 132 / TICKS_PER_QUARTER
    read = pretty_midi.PrettyMIDI(str(files.midi)).instruments[0].notes
    assert [(round(n.start, 3), round(n.end, 3), n.pitch) for n in read] == [
        (round(n.start * seconds, 3), round(n.end * seconds, 3), n.pitch) for n in result.melody.notes()]
    audio, rate = soundfile.read(files.wav, dtype="float32")
    assert np.abs(audio).max() < 0.95  # normalised below full scale: no clipping
    window = rate // 100
    for note in result.melody.notes():  # sound wherever a note sounds
        a, b = int(note.start * seconds * rate), int(note.end * seconds * rate)
        chunk = audio[a : a + (b - a) // window * window].reshape(-1, window)
        assert np.sqrt((chunk**2).mean(axis=1)).min() > 0.003
    assert files.png.stat().st_size > 1000 and files.abc.read_text().startswith("X:1")


def test_stop_ends_sampling(backend):
    token = CancelToken()

    def stop_after_two_bars(done, total, preview=None):
        if done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        backend.generate(MelodyRequest(bars=32), progress=stop_after_two_bars, cancel=token)


@pytest.mark.parametrize(
    "kwargs, words",
    [({"bars": 0}, "from 1 to 64"), ({"bars": 10_000}, "from 1 to 64"), ({"tonic": "H"}, "not a key name"),
     ({"meter": "7/8"}, "metre must be one of"), ({"tempo": 0}, "tempo"), ({"timbre": "kazoo"}, "timbre")],
)
def test_bad_requests_are_refused_with_a_reason(backend, kwargs, words):
    with pytest.raises(InputError, match=words):
        backend.generate(MelodyRequest(**kwargs))


def test_a_primer_outside_the_model_range_is_refused(backend):
    primer = Melody("4/4", 0, "major", bars_from_notes([(0, 24, 20)], "4/4"))
    with pytest.raises(InputError, match="outside C2..C7"):
        backend.generate(MelodyRequest(), primer)
