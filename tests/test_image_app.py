"""The Image tab through the running app's API, and pictures kept, reloaded and re-run from their PNGs."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio.history import Gallery
from studio.media.png_info import read_a1111_parameters, read_studio_params, save_png
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file
from tests.running_app import RunningApp


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    folder = tmp_path_factory.mktemp("image-app")
    models = write_models_file(folder, tiny_sd_path, tiny_taesd_path)
    with RunningApp(folder / "data", "--models-file", str(models), "--offline") as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def settings(prompt="a red cat", steps=1, width=64, height=64, random_seed=False, seed=7, count=1, size=1,
             sampler="Euler", guidance=0.0, negative="", decoder=TINY_TAESD):
    return [TINY_SD, decoder, prompt, negative, sampler, steps, guidance, width, height, random_seed, seed, count,
            size]


def pictures(result) -> list[str]:
    _preview, files, _info, _seed = result
    return [entry["image"] for entry in files]


def array(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def made(client):
    """One txt2img picture, the input of the other modes."""
    return pictures(client.predict(*settings(seed=21), api_name="/txt2img"))[0]


def test_txt2img_batch_keeps_every_picture_with_its_parameters(client, app):
    preview, files, info, seed = client.predict(*settings(seed=5, count=2, size=2), api_name="/txt2img")
    paths = [f["image"] for f in files]
    assert len(paths) == 4 and seed == 5 and "seeds 5-8" in info
    params = read_a1111_parameters(paths[3])
    assert params["prompt"] == "a red cat" and params["Seed"] == "8" and params["Size"] == "64x64"
    assert params["Model id"] == TINY_SD
    assert read_studio_params(paths[0])["task"] == "txt2img"
    assert {i.seed for i in Gallery(app.data_dir).list(task="txt2img")} >= {5, 6, 7, 8}


def test_same_parameters_same_picture_and_a_random_seed_is_shown(client):
    a = pictures(client.predict(*settings(seed=9), api_name="/txt2img"))[0]
    b = pictures(client.predict(*settings(seed=9), api_name="/txt2img"))[0]
    assert np.array_equal(array(a), array(b))
    *_, info, seed = client.predict(*settings(random_seed=True, seed=0), api_name="/txt2img")
    assert isinstance(seed, (int, float)) and f"seed {int(seed)}" in info


def test_img2img_inpaint_and_outpaint_through_the_api(client, made, tmp_path):
    out = pictures(client.predict(*settings(steps=2), handle_file(made), 0.5, api_name="/img2img"))
    assert Image.open(out[0]).size == (64, 64) and read_studio_params(out[0])["strength"] == 0.5

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 32, 32))
    mask.save(tmp_path / "mask.png")
    editor = {"background": handle_file(made), "layers": [], "composite": None}
    out = pictures(client.predict(*settings(steps=2), editor, handle_file(str(tmp_path / "mask.png")), 0, 8, True,
                                  1.0, api_name="/inpaint"))
    changed = (array(out[0]) != array(made)).any(axis=-1)
    assert changed[16:32, 16:32].any()
    changed[16:32, 16:32] = False
    assert not changed.any()  # only the masked area moved, byte for byte

    out = pictures(client.predict(*settings(width=80, height=64, steps=2), handle_file(made), 0, 16, 0, 0, 4, 1.0,
                                  api_name="/outpaint"))
    assert Image.open(out[0]).size == (80, 64)
    assert read_a1111_parameters(out[0])["Outpaint"] == "0,16,0,0"


def test_img2img_with_the_tabs_defaults_runs_and_takes_the_steps_it_needs(client, made):
    """One step at strength 0.5 would run none: the tab takes two, as the CLI's default does."""
    out = pictures(client.predict(*settings(steps=1), handle_file(made), 0.5, api_name="/img2img"))
    record = read_studio_params(out[0])
    assert (record["steps"], record["strength"]) == (2, 0.5)
    out = pictures(client.predict(*settings(steps=1), handle_file(made), 0.3, api_name="/img2img"))
    assert read_studio_params(out[0])["steps"] == 4


def test_painted_strokes_are_the_mask(client, made, tmp_path):
    stroke = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    stroke.paste((255, 255, 255, 255), (40, 40, 56, 56))
    stroke.save(tmp_path / "layer.png")
    editor = {"background": handle_file(made), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": None}
    out = pictures(client.predict(*settings(steps=2), editor, None, 0, 8, False, 1.0, api_name="/inpaint"))
    changed = (array(out[0]) != array(made)).any(axis=-1)
    assert changed[40:56, 40:56].any() and not changed[:40].any()


def test_a_kept_png_reloads_its_parameters_and_reproduces(client, app):
    first = pictures(client.predict(*settings(prompt="a blue dog", seed=31, steps=3, guidance=2.0,
                                              negative="blurry", sampler="DPM++ 2M Karras"), api_name="/txt2img"))[0]
    loaded = client.predict(handle_file(first), api_name="/image_read_parameters")
    prompt, negative, model, decoder, sampler, steps, guidance, width, height, random_seed, seed = loaded[:11]
    assert (prompt, negative, model, decoder, sampler) == ("a blue dog", "blurry", TINY_SD, TINY_TAESD,
                                                           "DPM++ 2M Karras")
    again = pictures(client.predict(model, decoder, prompt, negative, sampler, steps, guidance, width, height,
                                    random_seed, seed, 1, 1, api_name="/txt2img"))[0]
    assert np.array_equal(array(again), array(first))
    # The gallery's re-run makes it once more.
    gallery = Gallery(app.data_dir)
    newest = gallery.list()[0]
    client.predict(newest.id, "All", api_name="/gallery_rerun")
    assert np.array_equal(array(gallery.list()[0].file), array(first))


def test_a_png_written_by_another_tool_fills_the_fields(client, tmp_path):
    path = tmp_path / "a1111.png"
    save_png(Image.new("RGB", (32, 32)), path, {"parameters": (
        "portrait of a cat\nNegative prompt: ugly\nSteps: 4, Sampler: Euler a, Schedule type: Automatic, "
        "CFG scale: 6.5, Seed: 1234, Size: 512x768, Model hash: abc, Model: dreamshaper_8, Version: v1.9.4")})
    loaded = client.predict(handle_file(str(path)), api_name="/image_read_parameters")
    assert loaded[0] == "portrait of a cat" and loaded[1] == "ugly"
    assert (loaded[4], loaded[5], loaded[6], loaded[7], loaded[8], loaded[10]) == ("Euler a", 4, 6.5, 512, 768, 1234)
    assert "dreamshaper_8" in loaded[-1]
    save_png(Image.new("RGB", (32, 32)), path, {})
    with pytest.raises(Exception, match="no generation parameters"):
        client.predict(handle_file(str(path)), api_name="/image_read_parameters")


@pytest.mark.parametrize(
    "change, words",
    [
        ({"width": 100}, "multiple of 8"),
        ({"steps": 0}, "less than minimum value 1"),
        ({"seed": -5}, "seed must be between 0"),
        ({"count": 16, "size": 8}, "limit is 32"),
        ({"size": 500}, "greater than maximum value 8"),
        ({"prompt": ""}, "Write a prompt"),
    ],
)
def test_bad_settings_get_a_clear_message(client, change, words):
    with pytest.raises(Exception, match=words) as caught:
        client.predict(*settings(**change), api_name="/txt2img")
    assert "Traceback" not in str(caught.value)


def test_missing_inputs_and_models_are_explained(client, made):
    with pytest.raises(Exception, match="Upload an input picture"):
        client.predict(*settings(steps=2), None, 0.5, api_name="/img2img")
    with pytest.raises(Exception, match="Paint over the area"):
        client.predict(*settings(), {"background": handle_file(made), "layers": [], "composite": None}, None, 4, 8,
                       True, 1.0, api_name="/inpaint")
    values = settings()
    values[0] = "stabilityai/sd-turbo"
    with pytest.raises(Exception, match="python -m studio download stabilityai/sd-turbo"):
        client.predict(*values, api_name="/txt2img")


def test_diffusion_restyle_in_the_style_tab(client, made):
    path, info = client.predict(handle_file(made), TINY_SD, TINY_TAESD, "watercolor painting", 0.5, 2, False, 3,
                                api_name="/restyle")
    assert Image.open(path).size == (64, 64) and "gallery #" in info
    params = read_studio_params(path)
    assert params["task"] == "restyle" and params["prompt"] == "watercolor painting" and params["strength"] == 0.5


def test_abstract_patterns_in_the_image_tab_need_no_model(client):
    _, files, info, seed = client.predict(7, "ocean", 1.0, 320, 192, api_name="/image_patterns")
    assert Image.open(files[0]["image"]).size == (320, 192)
    assert "gallery #" in info and seed == 7
