"""Walks through the running app's API (gradio_client) and the CLI; melody walks through the API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
import soundfile
from gradio_client import Client, handle_file
from PIL import Image

from studio.backends.patterns import MAX_SEED
from studio.media.midi import read_midi
from tests.image_cases import EXAMPLES
from tests.running_app import RunningApp

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with RunningApp(tmp_path_factory.mktemp("walks") / "data") as app:
        yield Client(app.url, verbose=False)


def test_pattern_picture_and_walk_through_the_api(client):
    still, info = client.predict(7, "sunset", 320, 200, 1.0, True, api_name="/patterns")
    assert Image.open(still).size == (320, 200) and "gallery #" in info
    _, video, gif, info = client.predict(7, 8, "ocean", 128, 1.0, 10, api_name="/pattern_walk")
    assert iio.imread(video, index=None, plugin="FFMPEG").shape[:3] == (10, 128, 128)
    assert iio.imread(gif, index=None).shape[0] == 10
    assert "10 frames" in info


@pytest.mark.parametrize(
    "endpoint, args, field",
    [
        ("/patterns", (-5, "sunset", 64, 64, 1.0, False), "'Seed'"),
        ("/pattern_walk", (5, -5, "ocean", 64, 1.0, 2), "'Walk to seed'"),
        ("/image_patterns", (-5, "sunset", 1.0, 64, 64), "'Pattern seed'"),
    ],
)
def test_a_negative_pattern_seed_gets_the_studios_message(client, endpoint, args, field):
    # Gradio's own words were "Value -5 is less than minimum value 0": no field, no range.
    with pytest.raises(Exception, match=f"{field} must be from 0 to {MAX_SEED}, not -5") as refused:
        client.predict(*args, api_name=endpoint)
    assert "Value -5" not in str(refused.value)


def test_style_walk_through_the_api(client):
    _, video, strip, gif, info = client.predict(
        handle_file(str(EXAMPLES / "coffee.jpg")), "Built-in styles", "2, 9", None, 3, 192, 8, False,
        api_name="/style_walk",
    )
    frames = iio.imread(video, index=None, plugin="FFMPEG")
    assert frames.shape[0] == 5 and max(frames.shape[1:3]) == 192
    assert Image.open(strip).width > 192


@pytest.mark.parametrize(
    "styles, words",
    [("3", "at least two"), ("3, forty", "numbers separated by commas"), ("3, 40", "0 to 25")],
)
def test_bad_style_walks_get_clear_messages(client, styles, words):
    with pytest.raises(Exception, match=words):
        client.predict(handle_file(str(EXAMPLES / "coffee.jpg")), "Built-in styles", styles, None, 3, 192, 8, False,
                       api_name="/style_walk")


def test_cli_walks(tmp_path):
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path / "data"))

    def studio(*args):
        return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    done = studio("patterns", "--seed", "5", "--size", "300x200", "--out", str(tmp_path / "art.png"))
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "art.png").size == (300, 200)
    done = studio("patterns", "--seed", "5", "--walk-to", "9", "--frames", "12", "--size", "96",
                  "--out", str(tmp_path / "loop.mp4"))
    assert done.returncode == 0, done.stderr
    assert iio.imread(tmp_path / "loop.mp4", index=None, plugin="FFMPEG").shape[:3] == (12, 96, 96)
    done = studio("style-walk", str(EXAMPLES / "coffee.jpg"), "--style", "3", "--style", "19", "--frames", "6",
                  "--size", "120", "--out", str(tmp_path / "walk.gif"))
    assert done.returncode == 0, done.stderr
    assert iio.imread(tmp_path / "walk.gif", index=None).shape[:2] == (6, 80)
    for args, words in (
        (["style-walk", str(EXAMPLES / "coffee.jpg"), "--style", "3"], "two or more"),
        (["patterns", "--size", "99999x2"], "between 16 and"),
        (["patterns", "--out", str(tmp_path / "x.gif")], "--out must end"),
        (["patterns", "--walk-to", "3", "--frames", "0", "--out", str(tmp_path / "x.mp4")], "between 2 and"),
        (["patterns", "--size", "big"], "not a size"),
    ):
        done = studio(*args)
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
            args, done.stderr)


# -- melody walks --------------------------------------------------------------------------------------

GENERATE, FROM_MIDI, FROM_ABC = "Generate", "MIDI file", "ABC notation"
JIG = "X:1\nM:6/8\nL:1/8\nK:G\nGAB cBA | BGG DGG | GAB cde | dBG A3 |\n"


def melody_walk(client, a=(GENERATE, None, "", "D", "dorian", "6/8", 3), b=(GENERATE, None, "", "D", "major", "6/8", 8),
                bars=2, steps=4, tempo=110, timbre="piano", random_seeds=False):
    """/melody_walk's results: roll, WAV, files, summary, the seeds A and B were composed with."""
    def side(source, midi, abc, key, mode, meter, seed):
        return [source, handle_file(str(midi)) if midi else None, abc, key, mode, meter, seed]

    return client.predict(*side(*a), *side(*b), random_seeds, bars, steps, tempo, timbre, api_name="/melody_walk")


def test_melody_walk_through_the_api(client):
    roll, wav, files, info, a_seed, b_seed = melody_walk(client)
    assert sorted(str(f).rsplit(".", 1)[-1] for f in files) == ["mid", "png", "wav"]
    midi = next(f for f in files if str(f).endswith(".mid"))
    morph, tempo = read_midi(Path(midi), default_meter="6/8")
    assert morph.meter == "6/8" and round(tempo) == 110 and len(morph.notes()) >= 4 * 2
    audio, rate = soundfile.read(wav)
    assert abs(len(audio) / rate - 4 * 2 * 3 * 60 / 110) < 0.5  # 4 steps of 2 bars of 6/8 at 110 bpm
    assert Image.open(roll).width >= 1200
    assert "4 steps of 2 bars" in info and "D dorian to D major" in info and "gallery #" in info
    assert (a_seed, b_seed) == (3, 8) and "melody A seed 3 · melody B seed 8" in info
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/melody_walk"]
    assert endpoint["description"].startswith("Morph melody A into melody B")
    # A typed ABC tune to an uploaded MIDI file (the walk just made): both keep their own length.
    _, _, files, info, a_seed, b_seed = melody_walk(client, a=(FROM_ABC, None, JIG, "C", "major", "4/4", 0),
                                    b=(FROM_MIDI, midi, "", "C", "major", "4/4", 0), steps=3)
    assert "3 steps of 4 bars" in info and "G major" in info and (a_seed, b_seed) == (None, None)


@pytest.mark.parametrize(
    "a, b, extra, words",
    [
        ((FROM_ABC, None, "  ", "D", "dorian", "6/8", 3), None, {}, "Type some ABC notation for melody A"),
        ((FROM_ABC, None, "X:1\nK:D\n", "D", "dorian", "6/8", 3), None, {}, "no notes"),
        (None, (FROM_MIDI, None, "", "D", "major", "6/8", 8), {}, "Upload a MIDI file for melody B"),
        (None, (GENERATE, None, "", "D", "major", "4/4", 8), {}, "A is in 6/8 and melody B in 4/4"),
        (None, None, {"steps": 100}, "greater than maximum value 16"),
        (None, None, {"bars": 0}, "less than minimum value 1"),
    ],
)
def test_bad_melody_walks_get_clear_messages(client, a, b, extra, words):
    args = {"a": a, "b": b} if a and b else {"a": a} if a else {"b": b} if b else {}
    with pytest.raises(Exception, match=words) as caught:
        melody_walk(client, **args, **extra)
    assert "Traceback" not in str(caught.value)


def test_a_damaged_midi_file_gets_a_clear_message(client, tmp_path):
    fake = tmp_path / "tune.mid"
    fake.write_bytes(b"MThd\x00\x00\x00")
    with pytest.raises(Exception, match="damaged|not a MIDI file"):
        melody_walk(client, b=(FROM_MIDI, fake, "", "D", "major", "6/8", 8))
