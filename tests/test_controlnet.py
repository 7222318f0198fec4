"""ControlNet: the preprocessors on real photos, the tiny ControlNets (built from the tiny UNets and
loaded through the studio's own loading code) steering real runs, several at once, weight and
start/end, the AUTOMATIC1111 metadata read back and re-run to the same pixels, refusals, the CLI."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.backends.diffusion import (
    DiffusionBackend,
    ImageRequest,
    a1111_parameters,
    control_maps,
    fields_from_parameters,
)
from studio.backends.diffusion.request import ControlUnit
from studio.catalog import load_catalog
from studio.cli.main import main
from studio.errors import InputError, StudioError
from studio.media.png_info import parse_a1111_parameters
from studio.runtime import ModelCache
from studio.services import Studio
from studio.settings import Settings
from tests.image_models import (
    TINY_CONTROLNET,
    TINY_CONTROLNET_2,
    TINY_CONTROLNET_FILE,
    TINY_SD,
    TINY_SDXL_CONTROLNET,
    TINY_TAESD,
    build_tiny_controlnet,
    controlnet_models_entries,
    write_models_file,
)
from tests.tiny_models import build_tiny_sdxl

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def photo(name: str = "astronaut.jpg", size: tuple[int, int] = (256, 256)) -> Image.Image:
    with Image.open(EXAMPLES / name) as opened:
        return opened.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def grey(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("L"), dtype=np.float32)


def gradient(picture: Image.Image) -> np.ndarray:
    import cv2

    values = grey(picture)
    return np.hypot(cv2.Sobel(values, cv2.CV_32F, 1, 0), cv2.Sobel(values, cv2.CV_32F, 0, 1))


def sharpness(picture: Image.Image) -> float:
    import cv2

    return float(cv2.Laplacian(grey(picture), cv2.CV_32F).var())


def drawing(size: tuple[int, int] = (128, 128)) -> Image.Image:
    """Black strokes on white, as a person draws them."""
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    draw.line((10, 64, 118, 64), fill="black", width=3)
    draw.ellipse((30, 20, 90, 50), outline="black", width=3)
    return picture


# -- preprocessors ------------------------------------------------------------------------------


def test_canny_marks_the_photo_s_edges_and_its_thresholds_thin_them():
    picture = photo()
    edges, note = control_maps.make_map(picture, "canny", picture.size)
    assert note is None and edges.size == picture.size and edges.mode == "RGB"
    marked = grey(edges) > 0
    assert 0.01 < marked.mean() < 0.4
    strength = gradient(picture)
    # Edge pixels sit where the photo changes: their gradient is several times the photo's average.
    assert strength[marked].mean() > 3 * strength.mean()
    fewer = grey(control_maps.make_map(picture, "canny", picture.size, 200, 250)[0]) > 0
    assert fewer.sum() < 0.8 * marked.sum()
    # A black square on white: edges on its border and nowhere else.
    square = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(square).rectangle((16, 16, 47, 47), fill="black")
    lines = grey(control_maps.make_map(square, "canny", square.size)[0]) > 0
    assert lines[14:50, 14:50].sum() == lines.sum() > 0
    assert not lines[20:44, 20:44].any()


def test_lineart_and_scribble_find_the_strokes_of_a_drawing():
    picture = drawing()
    for name in ("lineart", "scribble"):
        made = grey(control_maps.make_map(picture, name, picture.size)[0])
        on_stroke, background = made[63:66, 20:110], made[90:120, 10:120]
        assert on_stroke.mean() > 100, name
        assert background.max() == 0, name
    # On a photo they mark some of it, not all.
    for name in ("lineart", "scribble"):
        share = (grey(control_maps.make_map(photo(), name, (256, 256))[0]) > 0).mean()
        assert 0.01 < share < 0.6, name


def test_shuffle_keeps_the_colours_moves_the_content_and_follows_its_seed():
    picture = photo()
    first = control_maps.make_map(picture, "shuffle", picture.size, seed=1)[0]
    again = control_maps.make_map(picture, "shuffle", picture.size, seed=1)[0]
    other = control_maps.make_map(picture, "shuffle", picture.size, seed=2)[0]
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert np.abs(np.asarray(first, np.int16) - np.asarray(other, np.int16)).mean() > 5
    assert np.abs(np.asarray(first, np.int16) - np.asarray(picture, np.int16)).mean() > 10
    # Its colours come from the picture: the mean colour stays close.
    assert np.abs(np.asarray(first, np.float32).mean((0, 1)) - np.asarray(picture, np.float32).mean((0, 1))).max() < 40


def test_tile_blur_invert_and_none():
    picture = photo()
    assert np.array_equal(np.asarray(control_maps.make_map(picture, "tile", picture.size)[0]), np.asarray(picture))
    coarse = control_maps.make_map(picture, "tile", picture.size, 4)[0]
    blurred = control_maps.make_map(picture, "blur", picture.size, 3)[0]
    assert sharpness(coarse) < 0.5 * sharpness(picture)
    assert sharpness(blurred) < 0.2 * sharpness(picture)
    inverted = control_maps.make_map(picture, "invert", picture.size)[0]
    assert np.array_equal(np.asarray(inverted), 255 - np.asarray(picture))
    assert np.array_equal(np.asarray(control_maps.make_map(picture, "none", picture.size)[0]), np.asarray(picture))


def test_maps_are_made_at_the_working_size_and_a_fitted_picture_is_said():
    wide = photo(size=(300, 150))
    made, note = control_maps.make_map(wide, "canny", (128, 128))
    assert made.size == (128, 128)
    assert note is not None and "300x150" in note and "128x128" in note and "cropped" in note
    same_shape, note = control_maps.make_map(photo(size=(256, 256)), "none", (128, 128))
    assert same_shape.size == (128, 128) and note is not None and "resized" in note and "cropped" not in note


@pytest.mark.parametrize(
    ("name", "a", "b", "words"),
    [
        ("mlsd", None, None, "control type must be one of"),
        ("canny", 300, None, "first canny threshold"),
        ("canny", 200, 100, "must not be above"),
        ("scribble", float("nan"), None, "first scribble threshold"),
        ("blur", 0, None, "first blur threshold"),
    ],
)
def test_bad_types_and_thresholds_are_refused_in_one_sentence(name, a, b, words):
    with pytest.raises(InputError, match=words) as caught:
        control_maps.make_map(photo(), name, (64, 64), a, b)
    assert "\n" not in str(caught.value)


# -- the backend on tiny models -----------------------------------------------------------------

BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11,
                    steps=2, guidance=1.0)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    """The tiny pipeline plus tiny ControlNets in a models file: two that fit it (a folder each, one also
    named by its weights file), one made from a tiny SDXL UNet, and a damaged file."""
    folder = tmp_path_factory.mktemp("controlnets")
    first = build_tiny_controlnet(tiny_sd_path, folder / "canny", seed=0)
    second = build_tiny_controlnet(tiny_sd_path, folder / "scribble", seed=1)
    sdxl = build_tiny_controlnet(build_tiny_sdxl(folder / "tiny-sdxl"), folder / "sdxl-canny")
    damaged = folder / "damaged" / "broken.safetensors"
    damaged.parent.mkdir()
    damaged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + b"\x00" * 64)
    models = write_models_file(folder, tiny_sd_path, tiny_taesd_path)
    with open(models, "a", encoding="utf-8") as handle:
        handle.write(controlnet_models_entries({
            TINY_CONTROLNET: first, TINY_CONTROLNET_2: second, TINY_CONTROLNET_FILE: first /
            "diffusion_pytorch_model.safetensors", TINY_SDXL_CONTROLNET: sdxl, "damaged-controlnet": damaged,
        }))
    return models


@pytest.fixture(scope="module")
def backend(tiny_files):
    return DiffusionBackend(ModelCache(2048), load_catalog(tiny_files), device="cpu", offline=True)


def scene() -> Image.Image:
    return photo("rocket.jpg", (96, 96))


def unit(**values) -> ControlUnit:
    return ControlUnit(**{"model": TINY_CONTROLNET, "control_type": "canny", **values})


def pixels(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB"), dtype=np.int16)


def run(backend, request: ImageRequest, *controls, image=None, mask=None):
    return backend.generate(request, image, mask, controls=list(controls))


def test_a_control_map_changes_the_picture_and_weight_0_leaves_it_as_without(backend):
    plain = run(backend, BASE).images[0]
    steered = run(backend, replace(BASE, controlnets=(unit(),)), scene())
    assert np.abs(pixels(steered.images[0]) - pixels(plain)).mean() > 1.0
    # The same run again: the same pixels; another map: another picture.
    again = run(backend, replace(BASE, controlnets=(unit(),)), scene()).images[0]
    assert np.array_equal(pixels(again), pixels(steered.images[0]))
    other = run(backend, replace(BASE, controlnets=(unit(),)), drawing((96, 96))).images[0]
    assert np.abs(pixels(other) - pixels(steered.images[0])).mean() > 0.5
    # The map it used is the canny map of the picture fitted to the working size, and is handed back.
    expected = control_maps.make_map(scene(), "canny", (64, 64))[0]
    assert np.array_equal(np.asarray(steered.control_maps[0]), np.asarray(expected))
    assert any("96x96" in note and "64x64" in note for note in steered.notes)
    off = run(backend, replace(BASE, controlnets=(unit(weight=0.0),)), scene()).images[0]
    assert np.array_equal(pixels(off), pixels(plain))


def test_start_and_end_are_respected(backend):
    plain = pixels(run(backend, BASE).images[0])
    whole = pixels(run(backend, replace(BASE, controlnets=(unit(),)), scene()).images[0])
    # With 2 steps, an end of 0.4 leaves no step steered (the first ends at 0.5): as without it.
    none_steered = pixels(run(backend, replace(BASE, controlnets=(unit(end=0.4),)), scene()).images[0])
    assert np.array_equal(none_steered, plain)
    half = pixels(run(backend, replace(BASE, controlnets=(unit(end=0.5),)), scene()).images[0])
    late = pixels(run(backend, replace(BASE, controlnets=(unit(start=0.5),)), scene()).images[0])
    for steered in (half, late):
        assert np.abs(steered - plain).mean() > 0.1
        assert np.abs(steered - whole).mean() > 0.1
    assert np.abs(half - late).mean() > 0.1


def test_two_controlnets_at_once_each_with_its_own_picture_and_weight(backend):
    one = pixels(run(backend, replace(BASE, controlnets=(unit(),)), scene()).images[0])
    both_request = replace(BASE, controlnets=(unit(), unit(model=TINY_CONTROLNET_2, control_type="scribble",
                                                            weight=0.8)))
    both = run(backend, both_request, scene(), drawing((64, 64)))
    assert len(both.control_maps) == 2
    assert np.abs(pixels(both.images[0]) - one).mean() > 0.3
    # The second at weight 0: as the first alone.
    quiet = replace(both_request, controlnets=(unit(), unit(model=TINY_CONTROLNET_2, control_type="scribble",
                                                            weight=0.0)))
    assert np.array_equal(pixels(run(backend, quiet, scene(), drawing((64, 64))).images[0]), one)
    records = both.params[0]["controlnets"]
    assert [(r["model"], r["control_type"], r["weight"]) for r in records] == [
        (TINY_CONTROLNET, "canny", 1.0), (TINY_CONTROLNET_2, "scribble", 0.8)]
    assert all(len(r["model_hash"]) == 8 for r in records)


def test_image_to_image_and_inpainting_take_controlnets_too(backend):
    start = photo("coffee.jpg", (64, 64))
    img2img = replace(BASE, mode="img2img", strength=0.75)
    plain = pixels(run(backend, img2img, image=start).images[0])
    # No picture of its own: the ControlNet preprocesses the input picture.
    steered = run(backend, replace(img2img, controlnets=(unit(),)), image=start)
    assert np.abs(pixels(steered.images[0]) - plain).mean() > 0.3
    assert np.array_equal(np.asarray(steered.control_maps[0]), np.asarray(control_maps.make_map(start, "canny",
                                                                                                 (64, 64))[0]))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    inpaint = replace(BASE, mode="inpaint", strength=1.0, mask_blur=0)
    plain = pixels(run(backend, inpaint, image=start, mask=mask).images[0])
    painted = pixels(run(backend, replace(inpaint, controlnets=(unit(),)), scene(), image=start, mask=mask).images[0])
    assert np.abs(painted - plain)[16:48, 16:48].mean() > 0.3
    assert np.array_equal(painted[:8], plain[:8])  # outside the mask, the picture as it was


def test_a_user_s_safetensors_file_loads_like_its_folder(backend):
    folder = pixels(run(backend, replace(BASE, controlnets=(unit(),)), scene()).images[0])
    from_file = pixels(run(backend, replace(BASE, controlnets=(unit(model=TINY_CONTROLNET_FILE),)), scene()).images[0])
    assert np.array_equal(folder, from_file)


def test_a_controlnet_for_another_base_and_a_damaged_file_are_refused_in_one_sentence(backend):
    with pytest.raises(InputError, match="ControlNet for SDXL models") as caught:
        run(backend, replace(BASE, controlnets=(unit(model=TINY_SDXL_CONTROLNET),)), scene())
    assert "'Tiny SD'" in str(caught.value) and "\n" not in str(caught.value)
    # A catalogue ControlNet for SD 1.5 on an SD 2.x model: refused before anything is downloaded.
    with pytest.raises(InputError, match="ControlNet for SD 1.x models") as caught:
        run(backend, replace(BASE, controlnets=(unit(model="lllyasviel/control_v11p_sd15_canny"),)), scene())
    with pytest.raises(StudioError, match="damaged-controlnet") as caught:
        run(backend, replace(BASE, controlnets=(unit(model="damaged-controlnet"),)), scene())
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="not a ControlNet"):
        run(backend, replace(BASE, controlnets=(unit(model=TINY_SD),)), scene())
    with pytest.raises(InputError, match="give it a picture"):
        run(backend, replace(BASE, controlnets=(unit(),)))
    with pytest.raises(InputError, match="start .* before it ends"):
        run(backend, replace(BASE, controlnets=(unit(start=0.6, end=0.4),)), scene())


# -- records, AUTOMATIC1111's text, re-runs and the command line ------------------------------------


def test_the_parameters_carry_each_controlnet_as_automatic1111_s_extension_writes_it(backend):
    request = replace(BASE, controlnets=(unit(threshold_a=50, threshold_b=150),
                                         unit(model=TINY_CONTROLNET_2, control_type="scribble", weight=0.5,
                                              start=0.25, end=0.75)))
    record = run(backend, request, scene(), drawing((64, 64))).params[0]
    text = a1111_parameters(record)
    first = parse_a1111_parameters(text)["ControlNet 0"]
    digest = record["controlnets"][0]["model_hash"]
    assert first == (f"Module: canny, Model: canny [{digest}], Weight: 1, Resize Mode: Crop and Resize, "
                     "Low Vram: False, Processor Res: 64, Threshold A: 50, Threshold B: 150, Guidance Start: 0, "
                     "Guidance End: 1, Pixel Perfect: True, Control Mode: Balanced")
    assert 'ControlNet 1: "Module: scribble_xdog, Model: scribble [' in text
    values, notes = fields_from_parameters(parse_a1111_parameters(text), backend.catalog)
    assert notes == []
    read_back = ImageRequest(**values).controlnets
    assert read_back == (unit(threshold_a=50.0, threshold_b=150.0),
                         unit(model=TINY_CONTROLNET_2, control_type="scribble", weight=0.5, start=0.25, end=0.75,
                              threshold_a=32.0))
    # Another tool's picture with a preprocessor the studio lacks, or a model it does not have (by name or by
    # hash: tiny files all share the hash of nothing, so the mystery model gets one of its own): said, left off.
    foreign = parse_a1111_parameters(re.sub(r"Model: scribble \[[0-9a-f]+\]", "Model: control_sd15_mystery [0badc0de]",
                                            text.replace("Module: canny", "Module: reference_only")))
    values, notes = fields_from_parameters(foreign, backend.catalog)
    assert "controlnets" not in values and len(notes) == 2
    assert "reference_only" in notes[0] and "control_sd15_mystery" in notes[1]
    # A preprocessor the studio has a stand-in for: that one, at its own settings, and said.
    similar = parse_a1111_parameters(text.replace("Module: canny", "Module: depth_midas")
                                     .replace("Module: scribble_xdog", "Module: dw_openpose_full"))
    values, notes = fields_from_parameters(similar, backend.catalog)
    assert [(u["control_type"], u.get("threshold_a")) for u in values["controlnets"]] == [("depth", None),
                                                                                        ("openpose", None)]
    assert notes == ["ControlNet 0: 'depth_midas' was drawn as 'depth': Depth Anything V2 in place of its depth "
                     "estimator.", "ControlNet 1: 'dw_openpose_full' was drawn as 'openpose': ViTPose's body in "
                     "place of DWPose's, without hands and face."]


@pytest.fixture(scope="module")
def studio(tmp_path_factory, tiny_files):
    return Studio(Settings(data_dir=tmp_path_factory.mktemp("data"), models_file=tiny_files, offline=True,
                           device="cpu"))


def test_the_gallery_keeps_the_control_picture_and_map_and_re_runs_to_the_same_pixels(studio):
    request = replace(BASE, controlnets=(unit(control_type="shuffle"),), batch_size=2)
    control = studio.open_image(EXAMPLES / "rocket.jpg")
    outcome = studio.generate_image(request, controls=[control])
    second = outcome.items[1]
    kept = second.params["controlnets"][0]
    shown = Image.open(studio.gallery.input_path(kept["map"]))
    assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(outcome.result.control_maps[0]))
    # The shuffle drew from the run's seed, recorded: the second picture (seed + 1) re-runs to itself.
    assert kept["seed"] == 11 and second.seed == 12
    again = studio.image_service.rerun(second)
    assert np.array_equal(pixels(Image.open(again.file)), pixels(Image.open(second.file)))


def test_the_command_line_takes_controlnet_groups_and_reproduce_makes_the_same_picture(tmp_path, tiny_files, capsys):
    common = ["--data-dir", str(tmp_path / "data"), "--models-file", str(tiny_files), "--offline", "--device", "cpu"]
    sketch = tmp_path / "sketch.png"
    drawing((64, 64)).save(sketch)
    out = tmp_path / "castle.png"
    code = main([*common, "image", "a castle", "--model", TINY_SD, "--decoder", TINY_TAESD, "--size", "64x64",
                 "--seed", "3", "--steps", "2", "--guidance", "1", "--out", str(out), "--json",
                 "--controlnet", TINY_CONTROLNET, "--control-image", str(EXAMPLES / "rocket.jpg"),
                 "--control-threshold", "50,150",
                 "--controlnet", TINY_CONTROLNET_2, "--control-image", str(sketch),
                 "--control-type", "scribble", "--control-weight", "0.7", "--control-start", "0",
                 "--control-end", "0.5"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    units = report["parameters"][0]["controlnets"]
    assert [(u["control_type"], u["weight"], u["end"], u["threshold_a"]) for u in units] == [
        ("canny", 1.0, 1.0, 50.0), ("scribble", 0.7, 0.5, None)]
    assert "ControlNet 1: " in read_a1111_parameters_text(out)
    code = main([*common, "reproduce", str(out), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["matches"] is True
    # A ControlNet folder of the user's own, named by its path for one run.
    code = main([*common, "image", "a castle", "--model", TINY_SD, "--size", "64x64", "--no-gallery", "--out",
                 str(tmp_path / "own.png"), "--controlnet", str(tiny_files.parent / "scribble"), "--control-image",
                 str(sketch), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["parameters"][0]["controlnets"][0]["model_name"] == "scribble"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--control-image", "x.png"], "give --controlnet ID before it"),
        (["--controlnet", TINY_CONTROLNET, "--control-type", "mlsd"], "choose one of canny"),
        (["--controlnet", TINY_CONTROLNET, "--control-weight", "lots"], "not a number"),
        (["--controlnet", TINY_CONTROLNET, "--control-weight", "1", "--control-weight", "2"], "given twice"),
        (["--controlnet", "weights.pth"], "pickle"),
        (["--controlnet", "no such thing"], "not in the catalogue"),
        (["--controlnet", TINY_SDXL_CONTROLNET, "--control-image", "SKETCH"], "ControlNet for SDXL models"),
    ],
)
def test_command_line_mistakes_are_one_line_and_exit_2(tmp_path, tiny_files, capsys, extra, words):
    (tmp_path / "weights.pth").write_bytes(b"not really")
    sketch = tmp_path / "sketch.png"
    drawing((64, 64)).save(sketch)
    extra = [str(tmp_path / e) if e == "weights.pth" else str(sketch) if e == "SKETCH" else e for e in extra]
    code = main(["--data-dir", str(tmp_path / "data"), "--models-file", str(tiny_files), "--offline", "image",
                 "a castle", "--model", TINY_SD, "--size", "64x64", "--no-gallery", "--out", str(tmp_path / "o.png"),
                 *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_models_from_controlnet_folders_are_listed_and_pickles_are_not(tmp_path, tiny_files):
    root = tmp_path / "webui"
    (root / "models" / "Stable-diffusion").mkdir(parents=True)
    folder = root / "models" / "ControlNet"
    folder.mkdir(parents=True)
    import shutil

    shutil.copytree(tiny_files.parent / "canny", folder / "my_canny")
    (folder / "control_sd15_old.pth").write_bytes(b"a pickle")
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=tiny_files, models_from=(root,), offline=True,
                             device="cpu"))
    found = [e for e in studio.catalog.for_task("controlnet") if e.source == "local" and e.path.parent == folder]
    assert [(e.id, e.path.name) for e in found] == [("my_canny", "my_canny")]
    outcome = studio.generate_image(replace(BASE, controlnets=(unit(model="my_canny"),)),
                                    controls=[studio.open_image(EXAMPLES / "rocket.jpg")], keep=False)
    assert outcome.result.params[0]["controlnets"][0]["model_name"] == "my_canny"


def read_a1111_parameters_text(path: Path) -> str:
    from studio.media.png_info import A1111_KEY, read_png_text

    return read_png_text(path)[A1111_KEY]


# -- the running app ----------------------------------------------------------------------------


def test_the_app_s_endpoints_take_a_controlnet_picture_or_a_drawn_scribble(tmp_path, tiny_files):
    from gradio_client import Client, handle_file

    from tests.running_app import RunningApp

    photo_file, strokes = tmp_path / "rocket.png", tmp_path / "strokes.png"
    scene().save(photo_file)
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(layer).line((5, 32, 60, 32), fill=(0, 0, 0, 255), width=4)
    layer.save(strokes)
    with RunningApp(tmp_path / "data", "--models-file", str(tiny_files), "--offline", "--api") as app:
        client = Client(app.url, verbose=False)
        common = dict(model=TINY_SD, decoder=TINY_TAESD, prompt="a rocket", width=64, height=64, steps=2, guidance=1,
                      random_seed=False, seed=4, api_name="/txt2img")
        shown, note = client.predict(control_type="canny", control_picture=handle_file(str(photo_file)),
                                     control_sketch=None, width=64, height=64, api_name="/control_map_preview")
        expected = control_maps.make_map(scene(), "canny", (64, 64))[0]
        assert np.array_equal(np.asarray(Image.open(shown).convert("RGB")), np.asarray(expected))
        assert "96x96" in note
        _, plain, _, _ = client.predict(**common)
        _, steered, info, _ = client.predict(**common, controlnet=TINY_CONTROLNET, control_type="canny",
                                             control_picture=handle_file(str(photo_file)))
        assert not np.array_equal(pixels(Image.open(plain[0]["image"])), pixels(Image.open(steered[0]["image"])))
        sketch = {"background": None, "layers": [handle_file(str(strokes))], "composite": None}
        _, drawn, _, _ = client.predict(**common, controlnet=TINY_CONTROLNET_2, control_type="scribble",
                                        control_sketch=sketch)
        text = read_a1111_parameters_text(Path(drawn[0]["image"]))
        assert 'ControlNet 0: "Module: scribble_xdog, Model: scribble [' in text
        with pytest.raises(Exception, match="ControlNet for SDXL models"):
            client.predict(**common, controlnet=TINY_SDXL_CONTROLNET, control_picture=handle_file(str(photo_file)))
        # AUTOMATIC1111's API with its ControlNet extension's units: the model by the name it lists.
        import base64

        import httpx

        sent = base64.b64encode(photo_file.read_bytes()).decode("ascii")
        body = {"prompt": "a rocket", "steps": 2, "cfg_scale": 1, "width": 64, "height": 64, "seed": 4,
                "override_settings": {"sd_model_checkpoint": TINY_SD},
                "alwayson_scripts": {"controlnet": {"args": [
                    {"enabled": True, "module": "canny", "model": "canny [00000000]", "weight": 1, "image": sent,
                     "threshold_a": 100, "threshold_b": 200, "guidance_start": 0, "guidance_end": 1}]}}}
        answer = httpx.post(f"{app.url}sdapi/v1/txt2img", json=body, timeout=300)
        assert answer.status_code == 200, answer.text[:300]
        info = json.loads(answer.json()["info"])
        assert "alwayson_scripts.controlnet" not in json.dumps(info.get("studio_not_honoured", []))
        made = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
        assert 'ControlNet 0: "Module: canny, Model: canny [' in made.text["parameters"]
        # A module the studio has no twin of is drawn by its nearest one, and the answer says so.
        body["alwayson_scripts"]["controlnet"]["args"][0]["module"] = "lineart_realistic"
        stood_in = httpx.post(f"{app.url}sdapi/v1/txt2img", json=body, timeout=300)
        assert stood_in.status_code == 200, stood_in.text[:300]
        not_honoured = json.loads(stood_in.json()["info"])["studio_not_honoured"]
        assert any("'lineart_realistic' was drawn as 'lineart'" in note for note in not_honoured), not_honoured
        made = Image.open(io.BytesIO(base64.b64decode(stood_in.json()["images"][0])))
        assert 'ControlNet 0: "Module: lineart_standard, Model: canny [' in made.text["parameters"]
        # One it has nothing like is refused, naming it.
        body["alwayson_scripts"]["controlnet"]["args"][0]["module"] = "reference_only"
        refused = httpx.post(f"{app.url}sdapi/v1/txt2img", json=body, timeout=60)
        assert refused.status_code >= 400 and "reference_only" in refused.text
