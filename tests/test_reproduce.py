"""`python -m studio reproduce IMAGE.png`: the picture made again from what its PNG carries, pixels compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.cli.main import main
from studio.history import Gallery
from studio.media.png_info import read_png_text, read_studio_params, save_png
from studio.services.reproduce import compare
from tests.image_cases import EXAMPLES
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    return write_models_file(tmp_path_factory.mktemp("reproduce-models"), tiny_sd_path, tiny_taesd_path)


def studio_cli(*args: str, models: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir), STUDIO_MODELS_FILE=str(models), STUDIO_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def in_process(capsys, *args: str, models: Path, data_dir: Path) -> tuple[int, str, str]:
    """The same command run in this process (quicker for the cases that need no diffusion model)."""
    code = main(["--data-dir", str(data_dir), "--models-file", str(models), "--offline", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_a_generated_picture_is_made_again_pixel_for_pixel(models, tmp_path):
    data = tmp_path / "data"
    made = tmp_path / "cat.png"
    done = studio_cli("image", "a red cat", "--model", TINY_SD, "--decoder", TINY_TAESD, "--seed", "11", "--steps",
                      "2", "--size", "64x72", "--sampler", "DPM++ 2M Karras", "--out", str(made), models=models,
                      data_dir=data)
    assert done.returncode == 0, done.stderr
    before = made.read_bytes()

    done = studio_cli("reproduce", str(made), "--json", models=models, data_dir=data)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    again = tmp_path / "cat-reproduced.png"  # beside the original, never over it
    assert report["outputs"] == [str(again)] and report["matches"] is True and report["parameters_from"] == "studio"
    assert made.read_bytes() == before
    assert np.array_equal(pixels(again), pixels(made))
    assert read_studio_params(again)["seed"] == 11 and read_png_text(again)["parameters"].startswith("a red cat")
    assert [item.id for item in Gallery(data).list()][0] == report["gallery_id"]

    # AUTOMATIC1111's text alone (as another tool would keep it) is enough when its model is in the catalogue.
    a1111 = tmp_path / "a1111.png"
    save_png(Image.open(made), a1111, {"parameters": read_png_text(made)["parameters"]})
    done = studio_cli("reproduce", str(a1111), "--out", str(tmp_path / "from-text.png"), "--no-gallery",
                      models=models, data_dir=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("matches the original pixel for pixel")
    assert np.array_equal(pixels(tmp_path / "from-text.png"), pixels(made))


def test_img2img_finds_its_input_in_the_gallery_or_takes_it_given(models, tmp_path):
    data = tmp_path / "data"
    photo = tmp_path / "photo.png"
    Image.open(EXAMPLES / "coffee.jpg").convert("RGB").resize((96, 64)).save(photo)
    common = ["--model", TINY_SD, "--decoder", TINY_TAESD, "--seed", "4", "--size", "64x64", "--steps", "2"]
    for name, keep in (("kept.png", []), ("unkept.png", ["--no-gallery"])):
        done = studio_cli("img2img", str(photo), "a blue door", *common, "--out", str(tmp_path / name), *keep,
                          models=models, data_dir=data)
        assert done.returncode == 0, done.stderr

    done = studio_cli("reproduce", str(tmp_path / "kept.png"), models=models, data_dir=data)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(pixels(tmp_path / "kept-reproduced.png"), pixels(tmp_path / "kept.png"))

    done = studio_cli("reproduce", str(tmp_path / "unkept.png"), models=models, data_dir=tmp_path / "elsewhere")
    assert done.returncode == 2 and done.stderr.strip().endswith("give it with --input FILE."), done.stderr
    done = studio_cli("reproduce", str(tmp_path / "unkept.png"), "--input", str(photo), models=models,
                      data_dir=tmp_path / "elsewhere")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(pixels(tmp_path / "unkept-reproduced.png"), pixels(tmp_path / "unkept.png"))


def test_style_and_pattern_pngs_reproduce_too(models, tmp_path, capsys):
    data = tmp_path / "data"
    style = tmp_path / "style.png"
    code, _, err = in_process(capsys, "style", str(EXAMPLES / "coffee.jpg"), "--style", "7", "--size", "240",
                              "--out", str(style), models=models, data_dir=data)
    assert code == 0, err
    code, out, err = in_process(capsys, "reproduce", str(style), models=models, data_dir=data)
    assert code == 0 and out.strip().endswith("matches the original pixel for pixel"), err
    assert np.array_equal(pixels(tmp_path / "style-reproduced.png"), pixels(style))

    pattern = tmp_path / "pattern.png"
    code, _, err = in_process(capsys, "patterns", "--seed", "12", "--size", "160x96", "--palette", "ocean",
                              "--out", str(pattern), models=models, data_dir=data)
    assert code == 0, err
    code, out, err = in_process(capsys, "reproduce", str(pattern), "--out", str(tmp_path / "again.png"),
                                models=models, data_dir=data)
    assert code == 0, err
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(pattern))


def test_a_changed_picture_is_reported_as_different_with_exit_code_1(models, tmp_path, capsys):
    pattern = tmp_path / "pattern.png"
    code, _, err = in_process(capsys, "patterns", "--seed", "3", "--size", "64x64", "--out", str(pattern),
                              models=models, data_dir=tmp_path / "data")
    assert code == 0, err
    text = read_png_text(pattern)
    touched = np.asarray(Image.open(pattern)).copy()
    touched[:8, :8] = 0 if touched[0, 0, 0] > 127 else 255  # a corner repainted by hand
    save_png(Image.fromarray(touched), pattern, text)
    code, out, err = in_process(capsys, "reproduce", str(pattern), "--json", models=models, data_dir=tmp_path / "data")
    report = json.loads(out)
    assert code == 1 and report["matches"] is False
    assert report["changed_share"] == pytest.approx(64 / (64 * 64)) and report["largest_difference"] > 0


def test_comparison_counts_changed_pixels_and_notices_size():
    a = Image.new("RGB", (10, 10), (10, 20, 30))
    b = a.copy()
    b.putpixel((0, 0), (10, 20, 33))
    assert compare(a, a.copy()).equal
    result = compare(a, b)
    assert not result.equal and result.changed_share == pytest.approx(0.01) and result.largest_difference == 3
    assert "10x10 px" in compare(a, a.resize((10, 12))).describe(a, a.resize((10, 12)))


@pytest.mark.parametrize(
    "case, words",
    [
        ("no-parameters", "carries no generation parameters"),
        ("unknown-model", "made with 'someone/private-model', which is not in the catalogue"),
        ("other-tool-model", "made with the model 'dreamshaper_8', which is not in the catalogue"),
        ("damaged", "not an image the studio can read"),
        ("text-task", "'text' task, which cannot be reproduced"),
        ("missing", "No image file"),
        ("over-itself", "--out names the picture being reproduced"),
    ],
)
def test_pictures_that_cannot_be_reproduced_get_one_clear_line(models, tmp_path, capsys, case, words):
    path = tmp_path / f"{case}.png"
    picture = Image.new("RGB", (32, 32), (90, 40, 200))
    record = {"task": "txt2img", "model": "someone/private-model", "prompt": "a cat", "seed": 1, "width": 32,
              "height": 32}
    extra = []
    if case == "no-parameters":
        save_png(picture, path, {"Software": "a paint program"})
    elif case == "unknown-model":
        save_png(picture, path, {"studio": json.dumps(record)})
    elif case == "other-tool-model":
        save_png(picture, path, {"parameters": "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, "
                                               "Size: 512x512, Model: dreamshaper_8, Version: v1.9.4"})
    elif case == "damaged":
        picture.save(path)
        path.write_bytes(path.read_bytes()[:40])
    elif case == "text-task":
        save_png(picture, path, {"studio": json.dumps({**record, "task": "text", "model": TINY_SD})})
    elif case == "over-itself":
        save_png(picture, path, {"studio": json.dumps({**record, "model": TINY_SD})})
        extra = ["--out", str(path)]
    code, out, err = in_process(capsys, "reproduce", str(path), *extra, models=models, data_dir=tmp_path / "data")
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err, err
