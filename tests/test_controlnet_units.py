"""The Image tab's ControlNet units (AUTOMATIC1111's "ControlNet Unit 0/1/2") and their preprocessor
settings: how the panel reads its values, and the running app's endpoints with two units, the thresholds
and the parameters read back into the units."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion import control_maps
from studio.services import Studio
from studio.settings import Settings
from studio.ui import controlnet_panel
from studio.ui.controlnet_panel import (
    LOADED_FIELDS,
    MORE_DEFAULTS,
    UNIT_DEFAULTS,
    takes_more_units,
    thresholds,
    units_of,
)
from tests.image_models import (
    TINY_CONTROLNET,
    TINY_CONTROLNET_2,
    TINY_SD,
    TINY_TAESD,
    build_tiny_controlnet,
    controlnet_models_entries,
    write_models_file,
)
from tests.test_controlnet import drawing, pixels, scene

PER_UNIT = len(UNIT_DEFAULTS)


def unit_values(model: str = "", kind: str = "canny", picture: str | None = None, weight: float = 1.0,
                a: float = 0, b: float = 0) -> list:
    return [model, kind, picture, None, weight, 0.0, 1.0, a, b]


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    """The tiny pipeline and two tiny ControlNets made for it, in a models file."""
    folder = tmp_path_factory.mktemp("unit-controlnets")
    models = write_models_file(folder, tiny_sd_path, tiny_taesd_path)
    with open(models, "a", encoding="utf-8") as handle:
        handle.write(controlnet_models_entries({
            TINY_CONTROLNET: build_tiny_controlnet(tiny_sd_path, folder / "canny", seed=0),
            TINY_CONTROLNET_2: build_tiny_controlnet(tiny_sd_path, folder / "scribble", seed=1),
        }))
    return models


# -- the panel's values -------------------------------------------------------------------------


def test_thresholds_0_is_the_type_s_default_and_a_setting_the_type_lacks_is_left_out():
    assert thresholds("canny", 0, 0) == (None, None)
    assert thresholds("canny", 50, 120) == (50, 120)
    assert thresholds("scribble", 20, 200) == (20, None)  # scribble has one setting: the hidden slider is ignored
    assert thresholds("lineart", 100, 200) == (None, None)
    assert thresholds("tile", 2.5, 0) == (2.5, None)


def test_the_sliders_are_labelled_for_the_type_and_hidden_where_it_has_no_setting():
    a, b = controlnet_panel.threshold_sliders("canny")
    assert (a.label, a.value, a.visible, b.label, b.value) == ("Canny low threshold", 100, True,
                                                               "Canny high threshold", 200)
    a, b = controlnet_panel.threshold_sliders("blur")
    assert (a.label, a.value, a.step, a.maximum, b.visible) == ("Blur sigma (px)", 9, 0.1, 64, False)
    a, b = controlnet_panel.threshold_sliders("shuffle")
    assert a.visible is False and b.visible is False
    a, _ = controlnet_panel.threshold_sliders("tile", set_defaults=False)  # a loaded value is kept as it was
    assert (a.label, a.maximum) == ("Down-sampling rate", 8) and "value" not in a.constructor_args


def test_units_of_takes_every_unit_with_a_model_in_order(tmp_path, tiny_files):
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=tiny_files, offline=True, device="cpu"))
    picture = tmp_path / "scene.png"
    scene().save(picture)
    first = unit_values()[:7]  # unit 0: no model
    more = [*unit_values()[7:], *unit_values(TINY_CONTROLNET, "scribble", str(picture), 0.5, a=20, b=99),
            *unit_values(TINY_CONTROLNET_2, "canny", None, a=60, b=0)]
    units, pictures = units_of(studio, first, more)
    assert [(u.model, u.control_type, u.weight, u.threshold_a, u.threshold_b) for u in units] == [
        (TINY_CONTROLNET, "scribble", 0.5, 20, None), (TINY_CONTROLNET_2, "canny", 1.0, 60, None)]
    assert pictures[0] is not None and pictures[0].size == (96, 96) and pictures[1] is None
    assert units_of(studio, first, [0, 0, *unit_values(), *unit_values()]) == ((), [])


def test_the_endpoints_take_the_further_units_by_name_after_their_own_inputs():
    @takes_more_units
    def handler(prompt: str, control_end: float = 1.0, later: int = 0, request=None, more_controls=()):
        yield prompt, control_end, later, more_controls

    names = list(inspect.signature(handler).parameters)
    assert names == ["prompt", "control_end", *MORE_DEFAULTS, "later", "request"]
    assert len(MORE_DEFAULTS) == 2 + 2 * PER_UNIT and "controlnet_2" in names and "control_threshold_b_1" in names
    ((prompt, end, later, more),) = list(handler("a", 0.5, 0, 7, controlnet_1="x", later=3))
    assert (prompt, end, later) == ("a", 0.5, 3)
    assert more[:3] == (0, 7, "x") and more[3:] == tuple(list(MORE_DEFAULTS.values())[3:])


# -- the running app ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_files):
    from tests.running_app import RunningApp

    folder = tmp_path_factory.mktemp("units")
    with RunningApp(folder / "data", "--models-file", str(tiny_files), "--offline") as running:
        running.files = folder
        scene().save(folder / "scene.png")
        drawing((64, 64)).save(folder / "drawing.png")
        yield running


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def txt2img(client, app, **values) -> Image.Image:
    from gradio_client import handle_file

    for key in [k for k in values if k.startswith("control_picture")]:
        values[key] = handle_file(str(app.files / values[key]))
    _, made, _, _ = client.predict(model=TINY_SD, decoder=TINY_TAESD, prompt="a rocket", width=64, height=64,
                                   steps=2, guidance=1, random_seed=False, seed=4, **values, api_name="/txt2img")
    return Image.open(made[0]["image"])


FIRST = dict(controlnet=TINY_CONTROLNET, control_type="canny", control_picture="scene.png")
SECOND = dict(controlnet_1=TINY_CONTROLNET_2, control_type_1="scribble", control_picture_1="drawing.png",
              control_weight_1=2.0, control_end_1=0.9)


def test_two_units_each_change_the_picture(client, app):
    plain = pixels(txt2img(client, app))
    first = pixels(txt2img(client, app, **FIRST))
    second = pixels(txt2img(client, app, **SECOND))  # unit 1 alone, unit 0 left empty
    made = txt2img(client, app, **FIRST, **SECOND)
    both = pixels(made)
    for alone in (plain, first, second):
        assert np.abs(both - alone).mean() > 0.3
    assert np.abs(first - second).mean() > 0.3
    text = made.text["parameters"]
    assert 'ControlNet 0: "Module: canny, Model: canny [' in text
    assert 'ControlNet 1: "Module: scribble_xdog, Model: scribble [' in text and "Guidance End: 0.9" in text


def test_a_mistake_in_a_unit_names_its_tab_even_with_unit_0_empty(client, app):
    with pytest.raises(Exception, match=r"ControlNet Unit 1: it must start \(0\.5\) before it ends \(0\.4\)"):
        txt2img(client, app, **{**SECOND, "control_start_1": 0.5, "control_end_1": 0.4})
    with pytest.raises(Exception, match=r"ControlNet Unit 2: it must start \(0\.9\)"):
        txt2img(client, app, **FIRST, controlnet_2=TINY_CONTROLNET, control_picture_2="scene.png",
                control_start_2=0.9, control_end_2=0.2)


def test_the_thresholds_change_the_canny_map_the_preview_and_the_record(client, app):
    from gradio_client import handle_file

    def preview(a: float, b: float) -> np.ndarray:
        shown, _ = client.predict(control_type="canny", control_picture=handle_file(str(app.files / "scene.png")),
                                  control_sketch=None, width=64, height=64, control_threshold_a=a,
                                  control_threshold_b=b, api_name="/control_map_preview")
        return np.asarray(Image.open(shown).convert("RGB"))

    default, loose, strict = preview(0, 0), preview(20, 60), preview(200, 250)
    assert np.array_equal(default, np.asarray(control_maps.make_map(scene(), "canny", (64, 64))[0]))
    assert np.array_equal(loose, np.asarray(control_maps.make_map(scene(), "canny", (64, 64), 20, 60)[0]))
    assert (loose > 0).sum() > (default > 0).sum() > (strict > 0).sum()
    at_default = pixels(txt2img(client, app, **FIRST))
    made = txt2img(client, app, **FIRST, control_threshold_a=20, control_threshold_b=60)
    assert np.abs(pixels(made) - at_default).mean() > 0.1
    assert "Threshold A: 20, Threshold B: 60" in made.text["parameters"]
    # A type with one setting takes its own range; the caller who leaves it out gets its default.
    tiled = txt2img(client, app, controlnet=TINY_CONTROLNET, control_type="tile", control_picture="scene.png")
    assert "Module: tile_resample" in tiled.text["parameters"] and "Threshold A: 1," in tiled.text["parameters"]
    with pytest.raises(Exception, match="tile threshold must be from 1 to 8"):
        txt2img(client, app, controlnet=TINY_CONTROLNET, control_type="tile", control_picture="scene.png",
                control_threshold_a=100)



def test_load_parameters_fills_two_units_and_their_thresholds_back(client, app):
    from gradio_client import handle_file

    made = txt2img(client, app, **FIRST, control_threshold_a=20, control_threshold_b=60, **SECOND)
    path = app.files / "two-units.png"
    made.save(path, pnginfo=_info(made))
    fields = client.predict(handle_file(str(path)), api_name="/image_read_parameters")
    # The units come before the fast LCM switch, the speed and the note.
    units = [list(fields[-3 - 3 * len(LOADED_FIELDS):-3][n * len(LOADED_FIELDS):][:len(LOADED_FIELDS)]) for n in range(3)]
    assert units == [[TINY_CONTROLNET, "canny", 1.0, 0.0, 1.0, 20, 60],
                     [TINY_CONTROLNET_2, "scribble", 2.0, 0.0, 0.9, 32, 0],
                     ["", "canny", 1.0, 0.0, 1.0, 100, 200]]
    assert "picture again" in fields[-1]
    # Sent back in as the form would: the same picture.
    again = txt2img(client, app, **dict(zip(("controlnet", "control_type", "control_weight", "control_start",
                                             "control_end", "control_threshold_a", "control_threshold_b"),
                                            units[0], strict=True)), control_picture="scene.png",
                    **{f"{name}_1": value for name, value in zip(LOADED_FIELDS, units[1], strict=True)},
                    control_picture_1="drawing.png")
    assert np.array_equal(pixels(again), pixels(made))


def _info(picture: Image.Image):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", picture.text["parameters"])
    return info


def test_a_unit_whose_controlnet_is_not_here_is_left_empty_and_said(tiny_files):
    from studio.catalog import load_catalog

    catalog = load_catalog(tiny_files)
    parsed = {"ControlNet 0": "Module: canny, Model: lost_canny [12345678], Weight: 0.5, Guidance Start: 0, "
                              "Guidance End: 1, Threshold A: 50, Threshold B: 90",
              # A file renamed since: found by AUTOMATIC1111's short hash of its weights (a tiny file's is the
              # hash of nothing, the same for both tiny ControlNets: the first is taken).
              "ControlNet 1": "Module: invert, Model: renamed [e3b0c442], Weight: 1.5, Guidance Start: 0.2, "
                              "Guidance End: 0.8"}
    values, notes = controlnet_panel.loaded_units(parsed, catalog)
    size = len(LOADED_FIELDS)
    assert values[:2] == ["", "canny"] and values[size:size + 5] == [TINY_CONTROLNET, "invert", 1.5, 0.2, 0.8]
    assert values[size + 5:size + 7] == [0, 0]  # invert has no setting
    assert notes == ["ControlNet 0 used the ControlNet 'lost_canny', which is not in the catalogue: ControlNet "
                     "Unit 0 is left empty."]
    assert controlnet_panel.loaded_units({"Steps": "4"}, catalog) == (None, [])


def test_the_command_line_takes_each_threshold_on_its_own(tmp_path, tiny_files, capsys):
    import argparse

    from studio.cli import controlnet as cli_controlnet
    from studio.cli.main import main

    parser = argparse.ArgumentParser()
    cli_controlnet.add_arguments(parser)
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=tiny_files, offline=True, device="cpu"))
    args = parser.parse_args(["--controlnet", TINY_CONTROLNET, "--control-threshold-b", "150", "--controlnet",
                              TINY_CONTROLNET_2, "--control-type", "scribble", "--control-threshold-a", "12"])
    units, _ = cli_controlnet.units(args, studio)
    assert [(u.threshold_a, u.threshold_b) for u in units] == [(None, 150.0), (12.0, None)]
    picture = tmp_path / "scene.png"
    scene().save(picture)
    code = main(["--data-dir", str(tmp_path / "data"), "--models-file", str(tiny_files), "--offline", "image",
                 "a rocket", "--model", TINY_SD, "--size", "64x64", "--no-gallery", "--out", str(tmp_path / "o.png"),
                 "--controlnet", TINY_CONTROLNET, "--control-image", str(picture), "--control-threshold", "50,90",
                 "--control-threshold-a", "40"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not both" in err


def test_a_hires_resize_is_made_and_load_parameters_reads_it_back(client, app):
    from gradio_client import handle_file

    made = txt2img(client, app, hires=True, hires_upscaler="Lanczos", hires_strength=0.0, hires_resize_x=0,
                   hires_resize_y=96)
    assert made.size == (96, 96) and "Hires resize: 0x96" in made.text["parameters"]
    path = app.files / "resized.png"
    made.save(path, pnginfo=_info(made))
    fields = client.predict(handle_file(str(path)), api_name="/image_read_parameters")
    # The hires fields come before the flow models' shift and T5 length, then the units.
    units_and_after = 3 + 3 * len(LOADED_FIELDS) + 2
    hires = list(fields[-units_and_after - 7:-units_and_after])
    # On, the scale left as it was (the picture gives a size instead), upscaler, steps, strength, the resize.
    assert hires[0] is True and hires[2:] == ["Lanczos", 0, 0.0, 0, 96]
