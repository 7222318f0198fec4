"""`python -m studio image|inpaint|outpaint` as a person types them, on the tiny pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.history import Gallery
from studio.media.png_info import read_a1111_parameters
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    return write_models_file(tmp_path_factory.mktemp("cli-models"), tiny_sd_path, tiny_taesd_path)


def studio_cli(*args: str, models: Path, data_dir: Path, hub: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir), STUDIO_MODELS_FILE=str(models), STUDIO_OFFLINE="1")
    if hub is not None:
        env.update(HF_HOME=str(hub), HF_HUB_CACHE=str(hub / "hub"))
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_image_inpaint_and_outpaint_write_pngs_that_carry_their_parameters(models, tmp_path):
    data = tmp_path / "data"
    common = ["--model", TINY_SD, "--decoder", TINY_TAESD, "--seed", "3"]
    out = tmp_path / "cat.png"
    done = studio_cli("image", "a red cat", *common, "--steps", "2", "--size", "64x72", "--batch-size", "2",
                      "--out", str(out), "--json", models=models, data_dir=data)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outputs"] == [str(out), str(tmp_path / "cat-2.png")]
    assert [p["seed"] for p in report["parameters"]] == [3, 4]
    assert Image.open(out).size == (64, 72)
    params = read_a1111_parameters(out)
    assert (params["prompt"], params["Steps"], params["Seed"], params["Size"]) == ("a red cat", "2", "3", "64x72")
    assert len(Gallery(data).list()) == 2

    mask = tmp_path / "mask.png"
    picture = Image.open(out).convert("RGB").resize((64, 64))
    picture.save(tmp_path / "in.png")
    black = Image.new("L", (64, 64), 0)
    black.paste(255, (0, 0, 24, 24))
    black.save(mask)
    done = studio_cli("inpaint", str(tmp_path / "in.png"), "a blue sky", "--mask", str(mask), "--mask-blur", "0",
                      "--only-masked", "--steps", "2", *common, "--out", str(tmp_path / "fixed.png"),
                      models=models, data_dir=data)
    assert done.returncode == 0, done.stderr
    changed = (np.asarray(Image.open(tmp_path / "fixed.png")) != np.asarray(picture)).any(axis=-1)
    assert changed[:24, :24].any() and not changed[24:].any() and not changed[:, 24:].any()

    done = studio_cli("outpaint", str(tmp_path / "in.png"), "more beach", "--right", "16", "--bottom", "8",
                      "--steps", "2", *common, "--out", str(tmp_path / "wide.png"), "--no-gallery",
                      models=models, data_dir=data)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "wide.png").size == (80, 72)
    assert len(Gallery(data).list()) == 3


@pytest.mark.parametrize(
    "args, words",
    [
        (["image", "a cat", "--size", "65x64"], "multiple of 8"),
        (["image", "a cat", "--seed", "-3"], "seed must be between 0"),
        (["image", "a cat", "--out", "x.jpg"], ".png"),
        (["image", "a cat", "--model", "stabilityai/sd-turbo"], "python -m studio download stabilityai/sd-turbo"),
        (["inpaint", "{missing}", "a cat", "--mask", "{missing}"], "No image file"),
        (["image", "a cat", "--shift", "3"], "The shift applies to flow-matching models"),
        (["image", "a cat", "--model", "black-forest-labs/FLUX.1-dev"], "It is gated: accept its licence"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(models, tmp_path, args, words):
    args = [a.format(missing=tmp_path / "missing.png") for a in args]
    if args[0] == "image":
        args += ["--model", TINY_SD] if "--model" not in args else []
    done = studio_cli(*args, models=models, data_dir=tmp_path / "data", hub=tmp_path / "hf")
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith(("error:", "python -m studio"))]
    assert len(errors) == 1 and words in errors[0], done.stderr
    assert "Traceback" not in done.stderr
