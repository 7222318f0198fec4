"""Hires fix on the tiny pipeline: the picture made at the model's size, upscaled (latents, Lanczos or
an upscaler model), redrawn by a second pass; its AUTOMATIC1111 entries, re-runs, the CLI and the API."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from studio.api.a1111 import hires_fields
from studio.api.fields import Fields
from studio.backends.diffusion import (
    DiffusionBackend,
    ImageRequest,
    a1111_parameters,
    fields_from_parameters,
    openvino_unet,
    pipelines,
)
from studio.backends.diffusion.hires import BUILTIN_UPSCALERS, second_pass_steps
from studio.cli.main import main
from studio.errors import Cancelled, InputError
from studio.history import Gallery
from studio.media.png_info import parse_a1111_parameters, read_a1111_parameters
from studio.runtime import CancelToken, ModelCache
from studio.services import Studio
from studio.settings import Settings
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11)
HIRES = replace(BASE, hires_scale=2.0, hires_steps=2, hires_strength=0.5, hires_upscaler="Latent")


@pytest.fixture(scope="module")
def backend(catalog):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    return write_models_file(tmp_path_factory.mktemp("hires-models"), tiny_sd_path, tiny_taesd_path)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def differ(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(pixels(a) - pixels(b)).mean())


def test_the_picture_is_scale_times_the_first_pass_and_both_passes_count_in_progress(backend):
    seen: list[tuple[int, int]] = []
    result = backend.generate(HIRES, progress=lambda done, total, preview=None: seen.append((done, total)))
    assert result.images[0].size == (128, 128)
    # 1 first-pass step + 2 hires steps, one report per step, against one total.
    assert {total for _, total in seen} == {3}
    assert [done for done, _ in seen[1:-1]] == [1, 2, 3]
    record = result.params[0]
    assert (record["width"], record["height"], record["result_width"], record["result_height"]) == (64, 64, 128, 128)
    assert (record["hires_scale"], record["hires_steps"], record["hires_upscaler"]) == (2.0, 2, "Latent")
    # Not a multiple of 8 after scaling: down to the model's block size; the shape is kept.
    odd = backend.generate(replace(HIRES, height=72, hires_scale=1.5, hires_upscaler="Lanczos"))
    assert odd.images[0].size == (96, 104)


def test_the_same_seed_makes_the_same_picture_and_the_settings_change_it(backend):
    first = backend.generate(HIRES).images[0]
    assert np.array_equal(pixels(first), pixels(backend.generate(HIRES).images[0]))
    lanczos = backend.generate(replace(HIRES, hires_upscaler="Lanczos")).images[0]
    stronger = backend.generate(replace(HIRES, hires_strength=0.9)).images[0]
    nearest = backend.generate(replace(HIRES, hires_upscaler="Latent (nearest-exact)")).images[0]
    for other in (lanczos, stronger, nearest):
        assert differ(first, other) > 0.5


def test_the_second_pass_redraws_the_upscaled_picture(backend):
    """At strength 0 with a picture upscaler nothing is redrawn: exactly the first pass, Lanczos-resized.
    Above 0 the second pass moves it, more at a higher strength."""
    plain = backend.generate(BASE).images[0]
    upscaled_only = backend.generate(replace(HIRES, hires_upscaler="Lanczos", hires_strength=0.0))
    assert np.array_equal(pixels(upscaled_only.images[0]), pixels(plain.resize((128, 128), Image.LANCZOS)))
    assert upscaled_only.params[0]["hires_strength"] == 0.0
    light = backend.generate(replace(HIRES, hires_upscaler="Lanczos", hires_strength=0.3)).images[0]
    heavy = backend.generate(replace(HIRES, hires_upscaler="Lanczos", hires_strength=1.0)).images[0]
    assert 0.5 < differ(light, upscaled_only.images[0]) < differ(heavy, upscaled_only.images[0])


def test_a_batch_picture_is_the_same_as_its_seed_made_alone(backend):
    batch = backend.generate(replace(HIRES, batch_size=2))
    alone = backend.generate(replace(HIRES, seed=12)).images[0]
    assert [p["seed"] for p in batch.params] == [11, 12]
    assert np.abs(pixels(batch.images[1]) - pixels(alone)).max() <= 2


def test_a_size_past_the_limit_is_refused_before_any_work(catalog):
    fresh = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)
    calls = []
    with pytest.raises(InputError, match="would make 128x128 px; the limit is 100 px"):
        fresh.generate(HIRES, max_side=100, progress=lambda *a: calls.append(a))
    assert calls == [] and list(fresh.cache.keys()) == []


@pytest.mark.parametrize("change, words", [
    ({"hires_scale": 5.0}, "between 1 (off) and 4"),
    ({"hires_scale": float("nan")}, "must be a number"),
    ({"hires_strength": 1.5}, "from 0 to 1"),
    ({"hires_steps": -1}, "hires steps"),
    ({"hires_strength": 0.0}, "latents, which need a second pass"),
    ({"hires_upscaler": "R-ESRGAN 4x+"}, "must be one of Latent"),
    ({"hires_resize_x": 100}, "multiple of 8 px from 64, not 100"),
    ({"hires_resize_y": -8}, "hires resize height must be between 0"),
])
def test_bad_hires_settings_are_explained(backend, change, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        backend.generate(replace(HIRES, **change))


def test_hires_steps_are_run_exactly():
    for steps in (1, 3, 10, 20):
        for strength in (0.05, 0.3, 0.33, 0.5, 0.7, 0.99, 1.0):
            total = second_pass_steps(steps, strength)
            assert min(int(total * strength), total) == steps, (steps, strength)


def test_an_upscaler_model_plugs_in_by_name(catalog):
    calls = []

    def upscale(picture, upscaler_id, scale, progress, cancel):
        calls.append((picture.size, upscaler_id, scale))
        progress(1, 1, None)
        return picture.resize((picture.width * 4, picture.height * 4), Image.NEAREST)  # a x4 model

    models = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, upscale_picture=upscale,
                              upscaler_names=lambda: ["fake-x4"])
    assert models.hires_upscalers() == [*BUILTIN_UPSCALERS, "fake-x4"]
    result = models.generate(replace(HIRES, hires_upscaler="fake-x4"))
    assert calls == [((64, 64), "fake-x4", 2.0)]
    assert result.images[0].size == (128, 128) and result.params[0]["hires_upscaler"] == "fake-x4"


def test_stop_in_the_second_pass_ends_the_run_and_keeps_nothing(models, tmp_path):
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=models, offline=True, device="cpu"))
    token = CancelToken()
    seen = []

    def progress(done, total, preview=None):
        seen.append(done)
        if done == HIRES.steps + 1:  # the first step of the second pass
            token.cancel()

    with pytest.raises(Cancelled):
        studio.generate_image(HIRES, progress=progress, cancel=token)
    assert max(seen) == HIRES.steps + 1
    assert Gallery(tmp_path / "data").list() == []


def test_the_a1111_text_carries_the_hires_fix_and_reads_back(backend, catalog):
    record = backend.generate(HIRES).params[0]
    text = a1111_parameters(record)
    assert "Size: 64x64" in text  # the first pass's size, as AUTOMATIC1111 writes it
    assert "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 2, Hires upscaler: Latent" in text
    values, notes = fields_from_parameters(parse_a1111_parameters(text), catalog)
    assert notes == []
    assert {k: values[k] for k in ("hires_scale", "hires_steps", "hires_strength", "hires_upscaler")} == {
        "hires_scale": 2.0, "hires_steps": 2, "hires_strength": 0.5, "hires_upscaler": "Latent"}
    assert "strength" not in values  # a text-to-image picture's strength is the second pass's
    assert np.array_equal(pixels(backend.generate(ImageRequest(**values)).images[0]),
                          pixels(backend.generate(HIRES).images[0]))
    assert "Hires" not in a1111_parameters(backend.generate(BASE).params[0])


def test_hires_text_written_by_automatic1111_is_read(catalog):
    text = ("a castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x384, Model: tiny-sd, "
            "Denoising strength: 0.7, Hires upscale: 1.5, Hires upscaler: R-ESRGAN 4x+")
    values, _ = fields_from_parameters(parse_a1111_parameters(text), catalog)
    assert (values["hires_scale"], values["hires_steps"], values["hires_strength"]) == (1.5, 0, 0.7)
    assert values["hires_upscaler"] == "R-ESRGAN 4x+"
    assert (values["hires_resize_x"], values["hires_resize_y"]) == (0, 0)  # by the scale
    resized = text.replace("Hires upscale: 1.5", "Hires resize: 1024x0")
    values, notes = fields_from_parameters(parse_a1111_parameters(resized), catalog)
    assert (values["hires_resize_x"], values["hires_resize_y"]) == (1024, 0) and notes == []
    assert ImageRequest(**values).hires_size == (1024, 768)


def test_the_cli_makes_it_and_reproduce_and_the_gallery_make_it_again(models, tmp_path, capsys, monkeypatch):
    # The studio's CPU path in fp32, so OpenVINO (where installed) runs both passes' UNet at their own sizes.
    monkeypatch.setattr(pipelines, "cpu_has_native_bf16", lambda: False)
    data, out = tmp_path / "data", tmp_path / "big.png"
    common = ["--data-dir", str(data), "--models-file", str(models), "--offline"]
    code = main([*common, "image", "a red cat", "--model", TINY_SD, "--decoder", TINY_TAESD, "--seed", "4",
                 "--size", "64x64", "--steps", "2", "--hires", "2", "--hires-strength", "0.6", "--hires-steps", "2",
                 "--hires-upscaler", "Lanczos", "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and Image.open(out).size == (128, 128)
    assert report["parameters"][0]["engine"].startswith("openvino" if openvino_unet.available() else "torch")
    text = read_a1111_parameters(out)
    assert (text["Size"], text["Hires upscale"], text["Hires steps"], text["Hires upscaler"],
            text["Denoising strength"]) == ("64x64", "2", "2", "Lanczos", "0.6")

    code = main([*common, "reproduce", str(out), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["matches"] is True
    assert np.array_equal(pixels(Image.open(again["outputs"][0])), pixels(Image.open(out)))

    studio = Studio(Settings(data_dir=data, models_file=models, offline=True))
    rerun = studio.rerunner.rerun(report["gallery_ids"][0])
    assert rerun.params["hires_scale"] == 2.0
    assert np.array_equal(pixels(Image.open(rerun.file)), pixels(Image.open(out)))

    code = main([*common, "image", "a red cat", "--model", TINY_SD, "--size", "64x64", "--hires", "9"])
    assert code == 2 and "between 1 (off) and 4" in capsys.readouterr().err


def test_the_a1111_api_reads_the_hires_fields():
    unhonoured: list[str] = []
    values = hires_fields(Fields({"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Lanczos",
                                  "hr_second_pass_steps": 4, "denoising_strength": 0.4, "hr_resize_x": 904}),
                          unhonoured)
    assert values == {"hires_scale": 1.5, "hires_upscaler": "Lanczos", "hires_steps": 4, "hires_strength": 0.4,
                      "hires_resize_x": 904, "hires_resize_y": 0}
    assert unhonoured == []
    defaults = hires_fields(Fields({"enable_hr": True}), [])  # AUTOMATIC1111's own defaults
    assert defaults == {"hires_scale": 2.0, "hires_upscaler": "Latent", "hires_steps": 0, "hires_strength": 0.75,
                        "hires_resize_x": 0, "hires_resize_y": 0}


def test_hires_resize_gives_the_asked_size_and_its_metadata_parses_back(backend, catalog):
    # One side given: the other follows the first pass's aspect; the resize alone turns the hires fix on.
    one_side = replace(BASE, width=96, hires_resize_x=144, hires_steps=1, hires_strength=0.5)
    made = backend.generate(one_side)
    assert made.images[0].size == (144, 96)
    record = made.params[0]
    assert (record["hires_resize_x"], record["hires_resize_y"], record["hires_scale"]) == (144, 0, 1.0)
    text = a1111_parameters(record)
    assert "Hires resize: 144x0" in text and "Hires upscale:" not in text and "Size: 96x64" in text
    values, notes = fields_from_parameters(parse_a1111_parameters(text), catalog)
    assert notes == [] and (values["hires_resize_x"], values["hires_resize_y"]) == (144, 0)
    assert np.array_equal(pixels(backend.generate(ImageRequest(**values)).images[0]), pixels(made.images[0]))
    # Both given, another aspect: upscaled until it covers them, then the centre kept. Upscaled only
    # (Lanczos at strength 0), that is the middle of the picture a plain 2x makes.
    enlarge = replace(BASE, hires_upscaler="Lanczos", hires_strength=0.0)
    square = backend.generate(replace(enlarge, hires_scale=2.0)).images[0]
    wide = backend.generate(replace(enlarge, hires_resize_x=128, hires_resize_y=96)).images[0]
    assert wide.size == (128, 96)
    assert np.array_equal(pixels(wide), pixels(square.crop((0, 16, 128, 112))))
    latent = backend.generate(replace(BASE, hires_resize_x=96, hires_resize_y=128, hires_steps=1,
                                      hires_strength=0.5))
    assert latent.images[0].size == (96, 128)
    assert "Hires resize: 96x128" in a1111_parameters(latent.params[0])
    # Off (a scale of 1, no resize): no hires fix, and records as before resizing existed.
    assert "hires_resize_x" not in backend.generate(BASE).params[0]


def test_the_cli_takes_a_hires_resize_and_reproduce_makes_it_again(models, tmp_path, capsys):
    common = ["--data-dir", str(tmp_path / "data"), "--models-file", str(models), "--offline"]
    out = tmp_path / "wide.png"
    code = main([*common, "image", "a red cat", "--model", TINY_SD, "--decoder", TINY_TAESD, "--seed", "4",
                 "--size", "64x64", "--steps", "1", "--hires-resize", "0x96", "--hires-upscaler", "Lanczos",
                 "--hires-strength", "0.5", "--out", str(out)])
    capsys.readouterr()
    assert code == 0 and Image.open(out).size == (96, 96)
    assert read_a1111_parameters(out)["Hires resize"] == "0x96"
    assert main([*common, "reproduce", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["matches"] is True
    with pytest.raises(SystemExit) as stopped:  # a usage mistake: argparse's one line
        main([*common, "image", "a red cat", "--model", TINY_SD, "--size", "64x64", "--hires-resize", "big"])
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and "is not WIDTHxHEIGHT" in err and len(err.splitlines()) == 1
