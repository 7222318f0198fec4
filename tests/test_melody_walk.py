"""Melody walks on the shipped melody VAE: the ends, every melody between, keys, gradualness,
the gallery, the command line and bad input."""

from __future__ import annotations

import json

import numpy as np
import pretty_midi
import pytest
import soundfile
from PIL import Image

from studio.backends.melody import MelodyBackend, MelodyRequest
from studio.backends.melody_walk import MelodyWalkBackend, MelodyWalkRequest
from studio.errors import Cancelled, InputError
from studio.history import Gallery
from studio.media import melody_grid as grid
from studio.media import melody_tokens as mt
from studio.media.abc import abc_to_melody
from studio.media.midi import read_midi, write_midi
from studio.media.plots import LEFT, SECTION_LINE
from studio.runtime import CancelToken, ModelCache
from studio.services import Studio
from studio.services.music import walk_piano_roll
from studio.settings import Settings
from tests.test_cli import studio_cli

# Simple tunes of the kind the corpus holds (none of them is in it): folk-like, on the sixteenth grid.
FOLK_TUNES = {
    "jig": "X:1\nM:6/8\nL:1/8\nK:G\nGAB cBA | BGG DGG | GAB cde | dBG A3 |\n",
    "reel": "X:1\nM:4/4\nL:1/8\nK:D\nd2 fd Adfd | cBce A2 ce | d2 fd Adfd | edcB A4 |\n",
    "waltz": "X:1\nM:3/4\nL:1/8\nK:F\nc4 A2 | B2 G2 E2 | F2 A2 c2 | f4 z2 |\n",
    "march": "X:1\nM:2/4\nL:1/8\nK:Am\nA>B cA | e2 e2 | d>c BA | B2 E2 |\n",
    "air": "X:1\nM:4/4\nL:1/8\nK:C\nE2 G2 c3 B | A2 G2 E4 | F2 A2 G2 E2 | D4 C4 |\n",
}
# assets/melody-vae/REPORT.md: 93.7% of held-out notes come back exactly; five short tunes are a
# small sample (one wrong segment costs several notes), so the bar sits lower.
NOTES_EXACT_AT_LEAST = 0.8
# The report's lowest in-scale share for in-between melodies is 92.5% (at t = 0.5, where half the
# notes come from the other end's mode; the held-out tunes themselves: 97.6%). Three walks are a
# small sample, hence the margin.
IN_SCALE_AT_LEAST = 0.85


@pytest.fixture(scope="module")
def walks():
    return MelodyWalkBackend(ModelCache(1024))


@pytest.fixture(scope="module")
def composer():
    return MelodyBackend(ModelCache(1024))


def notes_of(melody: mt.Melody) -> list[tuple[int, int, int]]:
    return [(n.start, n.end, n.pitch) for n in melody.notes()]


def composed(composer, tonic: str, mode: str, meter: str, seed: int, bars: int = 4) -> mt.Melody:
    return composer.generate(MelodyRequest(tonic=tonic, mode=mode, meter=meter, bars=bars, seed=seed)).melody


def grid_distance(a: mt.Melody, b: mt.Melody) -> float:
    """Share of sixteenths where the two melodies differ (a pitch, hold or rest)."""
    return float(np.mean(grid.to_grid(a).classes != grid.to_grid(b).classes))


def test_simple_held_out_like_tunes_are_mostly_reconstructed_exactly(walks):
    right = total = 0
    for text in FOLK_TUNES.values():
        tune = abc_to_melody(text)
        truth = set(notes_of(tune))
        back = walks.reconstruct(tune)
        assert (back.meter, back.tonic, back.mode, len(back.bars)) == (tune.meter, tune.tonic, tune.mode, 4)
        right += len(truth & set(notes_of(back)))
        total += len(truth)
    assert right / total >= NOTES_EXACT_AT_LEAST, right / total


@pytest.mark.parametrize(
    "a_key, b_key, meter",
    [(("D", "dorian"), ("D", "major"), "6/8"), (("G", "major"), ("E", "minor"), "4/4"), (("A", "minor"), ("A", "minor"), "3/4")],
)
def test_a_walk_goes_from_a_to_b_through_valid_melodies_in_key(walks, composer, a_key, b_key, meter):
    a = composed(composer, *a_key, meter, seed=3)
    b = composed(composer, *b_key, meter, seed=8)
    result = walks.walk(a, b, MelodyWalkRequest(steps=6))
    steps = result.steps
    assert len(steps) == 6 and result.positions == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    # The ends are A and B as the VAE hears them: exactly decode(encode(...)).
    assert steps[0] == walks.reconstruct(a) and steps[-1] == walks.reconstruct(b)
    in_scale = total = 0
    for t, melody in zip(result.positions, steps, strict=True):
        end = a if t < 0.5 else b
        assert (melody.meter, melody.tonic, melody.mode, len(melody.bars)) == (meter, end.tonic, end.mode, 4)
        assert all(sum(e.ticks for e in bar) == mt.bar_ticks(meter) for bar in melody.bars)  # every bar complete
        assert mt.decode(mt.encode(melody)) == melody  # it parses as the studio's melody tokens
        assert melody.notes(), t
        if 0 < t < 1:
            scale = mt.scale_pitch_classes(end.tonic, end.mode)
            in_scale += sum(n.pitch % 12 in scale for n in melody.notes())
            total += len(melody.notes())
    assert in_scale / total >= IN_SCALE_AT_LEAST, in_scale / total
    # Gradual: every step changes less than the whole walk does.
    neighbours = [grid_distance(x, y) for x, y in zip(steps, steps[1:], strict=False)]
    assert max(neighbours) < grid_distance(steps[0], steps[-1]), neighbours
    # All the steps, in turn, are the walk's one melody.
    assert result.melody.bars == tuple(bar for m in steps for bar in m.bars)
    assert result.step_starts() == [i * 4 * mt.bar_ticks(meter) for i in range(6)]


def test_every_step_writes_midi_that_reads_back_with_the_same_notes(walks, composer, tmp_path):
    a = composed(composer, "F", "major", "2/4", seed=1)
    b = composed(composer, "F", "mixolydian", "2/4", seed=2)
    for i, melody in enumerate(walks.walk(a, b, MelodyWalkRequest(steps=4)).steps):
        path = tmp_path / f"step{i}.mid"
        write_midi(melody, path, tempo=100.0)
        back, tempo = read_midi(path, default_meter="2/4")
        first_bar = notes_of(melody)[0][0] // mt.bar_ticks("2/4") * mt.bar_ticks("2/4")  # leading empty bars are dropped
        assert [(s + first_bar, e + first_bar, p) for s, e, p in notes_of(back)] == notes_of(melody)
        assert tempo == pytest.approx(100.0)


def test_the_same_walk_twice_is_the_same_and_lerp_is_another_path(walks, composer):
    a = composed(composer, "D", "dorian", "6/8", seed=5)
    b = composed(composer, "D", "dorian", "6/8", seed=6)
    first = walks.walk(a, b, MelodyWalkRequest(steps=5))
    assert walks.walk(a, b, MelodyWalkRequest(steps=5)).steps == first.steps
    straight = walks.walk(a, b, MelodyWalkRequest(steps=5, interpolation="lerp"))
    assert straight.steps[0] == first.steps[0] and straight.steps[-1] == first.steps[-1]
    assert first.params["interpolation"] == "slerp" and straight.params["interpolation"] == "lerp"


def test_melodies_of_different_lengths_walk_over_the_shorter_length(walks, composer):
    a = composed(composer, "C", "major", "4/4", seed=1, bars=6)
    b = composed(composer, "C", "major", "4/4", seed=2, bars=3)
    result = walks.walk(a, b, MelodyWalkRequest(steps=3))
    assert result.bars_per_step == 3 and all(len(m.bars) == 3 for m in result.steps)
    assert result.notes == ["Melody A is longer: the walk uses the first 3 bars of each."]
    assert result.steps[0] == walks.reconstruct(a.with_bars(a.bars[:3]))


def test_bad_walks_get_clear_messages(walks, composer):
    a = composed(composer, "D", "dorian", "6/8", seed=3, bars=2)
    b = composed(composer, "D", "dorian", "4/4", seed=3, bars=2)
    silent = mt.Melody("6/8", 2, "dorian", bars_rest(2, "6/8"))
    long_a = composed(composer, "D", "dorian", "6/8", seed=3, bars=40)
    cases = [
        (a, b, MelodyWalkRequest(), "A is in 6/8 and melody B in 4/4"),
        (a, silent, MelodyWalkRequest(), "Melody B has no notes"),
        (long_a, long_a, MelodyWalkRequest(), "up to 32 bars"),
        (a, a, MelodyWalkRequest(steps=1), "2 to 16 steps"),
        (a, a, MelodyWalkRequest(steps=1000), "2 to 16 steps"),
        (a, a, MelodyWalkRequest(tempo=float("nan")), "tempo"),
        (a, a, MelodyWalkRequest(timbre="kazoo"), "timbre"),
        (a, a, MelodyWalkRequest(interpolation="cubic"), "interpolation"),
    ]
    for first, second, request, words in cases:
        with pytest.raises(InputError, match=words):
            walks.walk(first, second, request)
    # 16 steps of 32 bars of 6/8 at 40 bpm is far more music than the limit allows.
    with pytest.raises(InputError, match="would play for"):
        walks.walk(long_a.with_bars(long_a.bars[:32]), long_a.with_bars(long_a.bars[:32]),
                   MelodyWalkRequest(steps=16, tempo=40.0), max_seconds=600)


def bars_rest(count: int, meter: str) -> tuple[tuple[mt.Event, ...], ...]:
    return tuple((mt.Event(None, mt.bar_ticks(meter)),) for _ in range(count))


def test_stop_ends_a_walk_between_steps(walks, composer):
    a = composed(composer, "D", "dorian", "6/8", seed=3, bars=2)
    token = CancelToken()
    seen = []

    def progress(done, total, preview=None):
        seen.append((done, total))
        if done == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        walks.walk(a, a, MelodyWalkRequest(steps=8), progress=progress, cancel=token)
    assert seen == [(1, 8), (2, 8)]


def test_the_gallery_keeps_midi_wav_and_piano_roll_and_reruns_the_same_walk(tmp_path, composer):
    studio = Studio(Settings(data_dir=tmp_path / "data"))
    a = composed(composer, "G", "major", "3/4", seed=4, bars=2)
    b = composed(composer, "E", "minor", "3/4", seed=9, bars=2)
    outcome = studio.melody_walk(a, b, MelodyWalkRequest(steps=5, tempo=120.0, timbre="flute"))
    item = outcome.item
    assert item.task == "melody-walk" and item.file.suffix == ".mid"
    assert outcome.files.wav == item.file.with_suffix(".wav") and outcome.files.png.is_file()
    notes = pretty_midi.PrettyMIDI(str(item.file)).instruments[0].notes
    assert len(notes) == len(outcome.result.melody.notes())
    audio, rate = soundfile.read(outcome.files.wav)
    seconds = 5 * 2 * 3 * 60 / 120  # 5 steps of 2 bars of 3/4 at 120 quarter notes a minute
    assert abs(len(audio) / rate - seconds) < 0.5 and 0.5 < np.abs(audio).max() < 1.0
    roll = Image.open(outcome.files.png)
    assert roll.width >= 1200
    params = item.params
    assert (params["steps"], params["tempo"], params["timbre"], params["key_a"], params["key_b"]) == (
        5, 120.0, "flute", "G major", "E minor")
    assert mt.Melody.from_json(params["melody_a"]) == a and mt.Melody.from_json(params["melody_b"]) == b
    again = studio.rerun(item.id)
    assert again.id != item.id and again.task == "melody-walk"
    assert read_notes(again.file) == read_notes(item.file)
    assert Gallery(tmp_path / "data").get(again.id).params["melody_a"] == params["melody_a"]


def read_notes(path) -> list[tuple[float, float, int]]:
    return [(round(n.start, 4), round(n.end, 4), n.pitch) for n in pretty_midi.PrettyMIDI(str(path)).instruments[0].notes]


def test_piano_roll_separates_the_steps(walks, composer):
    walks = MelodyWalkBackend(ModelCache(1024))
    a = composed(composer, "D", "dorian", "6/8", seed=3, bars=2)
    result = walks.walk(a, a, MelodyWalkRequest(steps=4))
    roll = np.asarray(walk_piano_roll(result))
    # A heavy dark line at the start of each step after the first.
    total = result.melody.total_ticks
    per_tick = (roll.shape[1] - LEFT - 8) / total
    for start in result.step_starts()[1:]:
        x = int(round(LEFT + start * per_tick))
        column = roll[60:, x - 1 : x + 2]
        assert (np.abs(column.astype(int) - SECTION_LINE).sum(axis=-1) < 10).any(axis=1).mean() > 0.9


# -- command line ------------------------------------------------------------------------------------


def test_cli_walks_between_a_midi_and_an_abc_file(tmp_path, composer):
    first = tmp_path / "a.mid"
    write_midi(composed(composer, "D", "dorian", "6/8", seed=3), first, tempo=96.0)
    second = tmp_path / "b.abc"
    second.write_text(FOLK_TUNES["jig"])
    out = tmp_path / "morph.mid"
    done = studio_cli("melody-walk", str(first), str(second), "--steps", "6", "--out", str(out), "--json",
                      data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["outputs"]) == sorted(str(out.with_suffix(s)) for s in (".mid", ".png", ".wav"))
    assert report["parameters"]["steps"] == 6 and report["parameters"]["tempo"] == 96.0
    morph, _ = read_midi(out, default_meter="6/8")
    assert len(morph.notes()) > 6 * 4  # six steps of four bars, each with notes
    assert Image.open(out.with_suffix(".png")).width >= 1200
    assert [i.id for i in Gallery(tmp_path / "data").list()] == [report["gallery_id"]]
    wav = tmp_path / "morph.wav"
    done = studio_cli("melody-walk", str(second), str(second), "--steps", "2", "--out", str(wav), data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    audio, rate = soundfile.read(wav)
    assert rate == 32000 and abs(len(audio) / rate - 2 * 4 * 3 * 60 / 110) < 0.5  # 2 steps, 4 bars of 6/8, 110 bpm


def test_cli_mistakes_are_one_line_and_exit_code_2(tmp_path):
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00")
    jig, waltz, empty = tmp_path / "jig.abc", tmp_path / "waltz.abc", tmp_path / "empty.abc"
    jig.write_text(FOLK_TUNES["jig"])
    waltz.write_text(FOLK_TUNES["waltz"])
    empty.write_text("X:1\nK:D\n")
    cases = [
        ((str(broken), str(jig)), "damaged"),
        ((str(jig), str(tmp_path / "missing.mid")), "does not exist"),
        ((str(jig), str(empty)), "no notes"),
        ((str(jig), str(waltz)), "one metre"),
        ((str(jig), str(jig), "--steps", "500"), "2 to 16 steps"),
        ((str(jig), str(jig), "--out", str(tmp_path / "x.gif")), "--out must end"),
        ((str(jig), str(tmp_path / "photo.png")), "MIDI (.mid) or ABC (.abc)"),
    ]
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    for args, words in cases:
        done = studio_cli("melody-walk", *args, data_dir=tmp_path / "data")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], (args, done.stderr)
