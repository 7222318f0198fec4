"""The Music tab through the running app's API: compose, continue, MusicGen, analysis, gallery, errors."""

from __future__ import annotations

import re

import numpy as np
import pretty_midi
import pytest
import soundfile
from gradio_client import Client, handle_file

from studio.history import Gallery
from studio.media.abc import abc_to_melody
from studio.media.melody_tokens import parse_tonic, scale_pitch_classes
from tests.running_app import RunningApp

NEW, MIDI, ABC, HUM = "Nothing: a new tune", "A MIDI file", "ABC notation", "Humming or singing"
TINY_MUSICGEN = "local/tiny-musicgen"
PRIMER_ABC = "X:1\nM:3/4\nL:1/8\nK:G\nG2 B2 d2 | g4 f2 | e2 c2 A2 | G6 |\n"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_musicgen_path):
    root = tmp_path_factory.mktemp("music-api")
    models = root / "models.toml"
    models.write_text(
        f'[[model]]\nid = "{TINY_MUSICGEN}"\nname = "Tiny MusicGen"\nfamily = "transformers"\n'
        f'tasks = ["music"]\npath = "{tiny_musicgen_path}"\nlicence = "MIT"\n'
    )
    with RunningApp(root / "data", "--models-file", str(models)) as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def compose(client, start=NEW, midi=None, abc="", hum=None, follow=True, key="D", mode="dorian", meter="6/8",
            tempo=110, bars=8, temperature=0.9, top_p=0.95, strength=2.0, random_seed=False, seed=3, timbre="piano"):
    """/melody's results: roll, WAV, files, ABC, summary, the seed used."""
    return client.predict(
        start, handle_file(str(midi)) if midi else None, abc, handle_file(str(hum)) if hum else None, follow,
        key, mode, meter, tempo, bars, temperature, top_p, strength, random_seed, seed, timbre, api_name="/melody",
    )


def midi_notes(path) -> list[tuple[float, float, int]]:
    notes = pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    return [(round(n.start, 4), round(n.end, 4), n.pitch) for n in notes]


def test_compose_gives_midi_audio_piano_roll_and_abc(client, app):
    roll, wav, files, abc_text, info, seed = compose(client, bars=8)
    suffixes = sorted(str(f).rsplit(".", 1)[-1] for f in files)
    assert suffixes == ["abc", "mid", "png", "wav"]
    midi_path = next(f for f in files if str(f).endswith(".mid"))
    notes = midi_notes(midi_path)
    assert len(notes) >= 8
    melody = abc_to_melody(abc_text)  # the ABC shown is the same tune
    assert [p for *_, p in notes] == [n.pitch for n in melody.notes()]
    assert (melody.tonic, melody.mode, melody.meter, len(melody.bars)) == (2, "dorian", "6/8", 8)
    audio, rate = soundfile.read(wav)
    assert rate == 32000 and 0.5 < np.abs(audio).max() < 1.0
    assert "D dorian" in info and "gallery #" in info and seed == 3 and "seed 3 " in info
    item = Gallery(app.data_dir).list(task="melody")[0]
    assert item.file.suffix == ".mid" and all(item.file.with_suffix(s).is_file() for s in (".wav", ".png", ".abc"))


def test_the_same_seed_gives_the_same_tune(client):
    first = midi_notes(next(f for f in compose(client, seed=11, bars=4)[2] if str(f).endswith(".mid")))
    again = midi_notes(next(f for f in compose(client, seed=11, bars=4)[2] if str(f).endswith(".mid")))
    other = midi_notes(next(f for f in compose(client, seed=12, bars=4)[2] if str(f).endswith(".mid")))
    assert first == again and first != other


def test_continue_typed_abc_keeps_it_and_its_key(client):
    *_, abc_text, info, _ = compose(client, start=ABC, abc=PRIMER_ABC, bars=4, key="C", mode="major", meter="4/4")
    primer = abc_to_melody(PRIMER_ABC).notes()
    result = abc_to_melody(abc_text)
    assert result.notes()[: len(primer)] == primer
    assert (result.tonic, result.mode, result.meter, len(result.bars)) == (7, "major", "3/4", 8)
    assert "4 new bars after 4 of yours" in info


def test_continue_an_uploaded_midi(client, tmp_path):
    _, _, files, *_ = compose(client, bars=2, seed=4)
    primer_path = next(f for f in files if str(f).endswith(".mid"))
    _, _, continued, *_ = compose(client, start=MIDI, midi=primer_path, bars=2, seed=5)
    primer = midi_notes(primer_path)
    result = midi_notes(next(f for f in continued if str(f).endswith(".mid")))
    assert result[: len(primer)] == primer and len(result) > len(primer)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"bars": 0}, "less than minimum value 1"),
        ({"bars": 10_000}, "greater than maximum value 64"),
        ({"start": ABC, "abc": "X:1\nK:D\nDEF | G@A |\n"}, "ABC line 3, column 8: '@'"),
        ({"start": MIDI}, "Upload a MIDI file"),
        ({"start": HUM}, "Record or upload"),
    ],
)
def test_bad_melody_input_gets_a_clear_message(client, kwargs, words):
    with pytest.raises(Exception, match=words) as caught:
        compose(client, **kwargs)
    assert "Traceback" not in str(caught.value)


def test_bad_uploads_get_a_clear_message(client, tmp_path):
    fake = tmp_path / "song.mid"
    fake.write_text("not midi at all")
    with pytest.raises(Exception, match="not a MIDI file"):
        compose(client, start=MIDI, midi=fake)
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(16000 * 2, dtype=np.float32), 16000)
    with pytest.raises(Exception, match="No pitch found"):
        compose(client, start=HUM, hum=silence)


def test_musicgen_through_the_app_and_analysis_of_its_output(client, app):
    wav, spectrogram, info = client.predict("calm piano melody", TINY_MUSICGEN, 1, 3, 7, None, "exact",
                                            api_name="/music")
    audio, rate = soundfile.read(wav)
    assert rate == 8000 and audio.size > 0
    assert "licence MIT" in info and "gallery #" in info and "exact: float32" in info
    summary, picture = client.predict(handle_file(str(wav)), api_name="/analyse")
    assert "Tempo" in summary and "Key" in summary and picture
    kept = Gallery(app.data_dir).list(task="music")[0].params
    assert kept["prompt"] == "calm piano melody" and kept["speed"] == "exact" and kept["path"] == "float32"


def test_analysis_of_a_melody_output(client):
    _, wav, *_ = compose(client, key="A", mode="minor", meter="4/4", bars=8, seed=2, strength=6)
    summary, _ = client.predict(handle_file(str(wav)), api_name="/analyse")
    found = re.search(r"\*\*Key\*\* (\S+) (major|minor)", summary)
    assert "bpm" in summary and found
    heard = scale_pitch_classes(parse_tonic(found.group(1)), found.group(2))
    assert len(heard & scale_pitch_classes(9, "minor")) >= 6  # A minor, its relative or a next-door key


def test_gallery_rerun_reproduces_a_melody_and_delete_removes_its_files(client, app):
    compose(client, key="F", mode="major", meter="2/4", bars=4, seed=21)
    gallery = Gallery(app.data_dir)
    item = gallery.list(task="melody")[0]
    client.predict(item.id, "All", api_name="/gallery_rerun")
    again = gallery.list(task="melody")[0]
    assert again.id != item.id and midi_notes(again.file) == midi_notes(item.file)
    client.predict(again.id, "All", api_name="/gallery_delete")
    assert not any(again.file.with_suffix(s).exists() for s in (".mid", ".wav", ".png", ".abc"))


def defaults_compose(client, **changes):
    """/melody as a caller who sets only what they care about: every other argument is the tab's default."""
    return client.predict(bars=2, midi_file=None, recording=None, api_name="/melody", **changes)


def test_compose_twice_with_the_defaults_gives_two_tunes_and_shows_their_seeds(client):
    first, second = defaults_compose(client), defaults_compose(client)
    *_, first_abc, first_info, first_seed = first
    *_, second_abc, second_info, second_seed = second
    assert first_seed != second_seed
    assert abc_to_melody(first_abc).notes() != abc_to_melody(second_abc).notes()  # the tunes, not just titles
    assert f"seed {first_seed} " in first_info and f"seed {second_seed} " in second_info
    # "Reuse last seed": the seed shown, with the random seed off, gives the first tune again.
    *_, again_abc, again_info, again_seed = defaults_compose(client, random_seed=False, seed=first_seed)
    assert again_seed == first_seed and again_abc == first_abc


def test_a_fixed_seed_needs_a_seed(client):
    with pytest.raises(Exception, match="Enter a seed, or tick 'Random seed'") as caught:
        compose(client, random_seed=False, seed=None)
    assert "Traceback" not in str(caught.value)
