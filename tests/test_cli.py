"""`python -m studio style ...` as a person types it: real files out, one-line errors, exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from studio.history import Gallery
from studio.media.png_info import read_studio_params
from tests.image_cases import EXAMPLES, write_cases

ROOT = Path(__file__).resolve().parent.parent


def studio_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_style_writes_the_image_with_its_parameters_and_lists_it(tmp_path):
    out = tmp_path / "out.png"
    done = studio_cli("style", str(EXAMPLES / "coffee.jpg"), "--style", "19", "--out", str(out), "--json",
                      data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outputs"] == [str(out)] and report["seconds"] > 0
    assert report["parameters"]["style"] == 19
    assert Image.open(out).size == (600, 400)
    assert read_studio_params(out)["style"] == 19
    items = Gallery(tmp_path / "data").list()
    assert [i.id for i in items] == [report["gallery_id"]]


def test_style_size_is_what_is_made_and_what_json_reports(tmp_path):
    out = tmp_path / "big.png"
    done = studio_cli("style", str(EXAMPLES / "coffee.jpg"), "--style", "19", "--size", "1600", "--out", str(out),
                      "--json", "--no-gallery", data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert Image.open(out).size == (1600, 1067)
    assert (report["parameters"]["width"], report["parameters"]["height"]) == (1600, 1067)


def test_style_image_strength_colour_and_size(tmp_path):
    out = tmp_path / "styled.jpg"
    done = studio_cli(
        "style", str(EXAMPLES / "coffee.jpg"), "--style-image", str(EXAMPLES / "astronaut.jpg"),
        "--strength", "0.7", "--preserve-color", "--size", "480", "--out", str(out), "--no-gallery",
        data_dir=tmp_path / "data",
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(out).size == (480, 320)
    assert Gallery(tmp_path / "data").list() == []


@pytest.mark.parametrize(
    "args, words",
    [
        (["style", "{cases}/text.png"], "not an image"),
        (["style", "{cases}/empty.png"], "empty"),
        (["style", "{cases}/huge.png"], "too large"),
        (["style", "{cases}/missing.png"], "No image file"),
        (["style", "{cases}/one_pixel.png"], "smallest"),
        (["style", "{examples}/coffee.jpg", "--style", "26"], "0 to 25"),
        (["style", "{examples}/coffee.jpg", "--strength", "1.5"], "outside 0..1"),
        (["style", "{examples}/coffee.jpg", "--strength", "lots"], "not a number"),
        (["style", "{examples}/coffee.jpg", "--size", "99999"], "output size"),
        (["style", "{examples}/coffee.jpg", "--out", "{cases}/x.gif"], "--out must end"),
        (["style", "{examples}/coffee.jpg", "--out", "{cases}/no/such/dir/x.png"], "does not exist"),
        (["style", "{examples}/coffee.jpg", "--style", "3", "--style-image", "{examples}/rocket.jpg"], "not allowed"),
        (["paint"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, words):
    cases = write_cases(tmp_path / "cases")
    assert cases
    args = [a.format(cases=tmp_path / "cases", examples=EXAMPLES) for a in args]
    done = studio_cli(*args, data_dir=tmp_path / "data")
    assert done.returncode == 2
    assert words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_models_lists_the_catalogue(tmp_path):
    done = studio_cli("models", data_dir=tmp_path)
    assert done.returncode == 0
    assert "magenta-style-26" in done.stdout and "non-commercial" in done.stdout


def test_no_torchvision_notice_on_stderr_and_other_warnings_still_show():
    """The studio runs without torchvision on purpose; transformers' notice about it only alarmed users."""
    code = ("import logging, studio\n"
            "from diffusers import AutoPipelineForText2Image\n"
            "logging.getLogger('transformers.utils.import_utils').warning('another warning')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "requires torchvision" not in done.stderr and "another warning" in done.stderr
