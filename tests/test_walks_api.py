"""Walks through the running app's API (gradio_client) and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
from gradio_client import Client, handle_file
from PIL import Image

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
