"""The Image tab fits the chosen model's family: each model's own starting settings (from the catalogue, a
models file, or its family when it is a file from a folder), the controls a family takes, and the flow
models' shift and T5 prompt length from the page and the API to the picture and back."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from studio.backends.diffusion import DiffusionBackend, families
from studio.backends.diffusion.model_defaults import architecture_of
from studio.catalog import CatalogError, load_catalog
from studio.model_folders import FLUX, SD1, SD3, SDXL
from studio.runtime import ModelCache
from studio.ui.controlnet_panel import LOADED_FIELDS
from tests.tiny_families import build_tiny_flux, build_tiny_sd3

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SCHNELL = "black-forest-labs/FLUX.1-schnell"
DEV = "black-forest-labs/FLUX.1-dev"
TASKS = '["txt2img", "img2img", "inpaint", "restyle"]'


def header_only_file(path: Path, names: list[str]) -> Path:
    """A .safetensors file whose header lists these tensors (each one fp16 number)."""
    header = {name: {"dtype": "F16", "shape": [1], "data_offsets": [2 * i, 2 * i + 2]} for i, name in enumerate(names)}
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0\0" * len(names))
    return path


@pytest.fixture(scope="module")
def plain_backend(tmp_path_factory) -> DiffusionBackend:
    """The catalogue alone: no model on this machine (an empty hub cache)."""
    import os

    os.environ.setdefault("HF_HUB_CACHE", str(tmp_path_factory.mktemp("empty-hub")))
    return DiffusionBackend(ModelCache(1024), load_catalog(None), device="cpu", offline=True)


@pytest.mark.parametrize("model_id, expected", [
    ("stabilityai/sd-turbo", (families.SD, 1, 0.0, 512)),
    (SD15, (families.SD, 25, 7.0, 512)),
    ("stabilityai/sdxl-turbo", (families.SDXL, 1, 0.0, 512)),
    (SCHNELL, (families.FLUX, 4, 0.0, 1024)),
    (DEV, (families.FLUX, 28, 3.5, 1024)),
    ("stabilityai/stable-diffusion-3.5-medium", (families.SD3, 40, 4.5, 1024)),
    ("stabilityai/stable-diffusion-3.5-large-turbo", (families.SD3, 4, 0.0, 1024)),
])
def test_catalogue_models_start_with_their_model_cards_settings(plain_backend, model_id, expected):
    told = plain_backend.model_defaults(model_id)
    assert (told.family.name, told.steps, told.guidance, told.size) == expected
    assert told.family.guidance == {DEV: "distilled", SCHNELL: "none"}.get(model_id, "cfg")


def test_a_models_file_sets_a_models_own_settings_and_refuses_nonsense(tmp_path, tiny_sd_path):
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "mine"\nfamily = "diffusers"\ntasks = {TASKS}\npath = "{tiny_sd_path}"\n'
                      'steps = 12\nguidance = 5\n', encoding="utf-8")
    backend = DiffusionBackend(ModelCache(1024), load_catalog(models), device="cpu", offline=True)
    told = backend.model_defaults("mine")
    # Steps and guidance its own; the size from its folder's config (the tiny UNet works at 64 px).
    assert (told.steps, told.guidance, told.size, told.family.name) == (12, 5.0, 64, families.SD)
    models.write_text(f'[[model]]\nid = "mine"\nfamily = "diffusers"\ntasks = {TASKS}\npath = "{tiny_sd_path}"\n'
                      'size = 500\n', encoding="utf-8")
    with pytest.raises(CatalogError, match="size must be a whole number of px from 64, a multiple of 8"):
        load_catalog(models)


def test_single_files_in_a_folder_get_their_familys_settings(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    header_only_file(folder / "juggernaut.safetensors", ["conditioner.embedders.1.model.ln_final.weight",
                                                         "model.diffusion_model.input_blocks.0.0.weight"])
    header_only_file(folder / "my-dev.safetensors", ["double_blocks.0.img_attn.qkv.weight", "guidance_in.in_layer.weight"])
    header_only_file(folder / "my-schnell.safetensors", ["double_blocks.0.img_attn.qkv.weight"])
    backend = DiffusionBackend(ModelCache(1024), load_catalog(None, checkpoint_folders=(folder,)), device="cpu",
                               offline=True)
    sdxl, dev, schnell = (backend.model_defaults(name) for name in ("juggernaut", "my-dev", "my-schnell"))
    assert (sdxl.family.name, sdxl.steps, sdxl.guidance, sdxl.size) == (families.SDXL, 30, 6.0, 1024)
    assert (dev.family.guidance, dev.steps, dev.guidance) == ("distilled", 28, 3.5)
    assert (schnell.family.guidance, schnell.steps, schnell.guidance) == ("none", 4, 0.0)
    assert architecture_of(folder / "my-dev.safetensors") == (FLUX, True)


def test_pipeline_folders_are_told_from_their_configs(tmp_path, tiny_sd15_path):
    sd3 = build_tiny_sd3(tmp_path / "sd3")
    dev = build_tiny_flux(tmp_path / "dev", guidance_embeds=True)
    assert architecture_of(sd3) == (SD3, False)
    assert architecture_of(dev) == (FLUX, True)
    assert architecture_of(tiny_sd15_path) == (SD1, False)
    assert architecture_of(tmp_path) is None  # no model_index.json
    assert SDXL != SD1  # the names the catalogue uses are model_folders' own


# -- the tab's handlers ------------------------------------------------------------------------------

def test_picking_a_model_fits_the_controls_to_its_family(plain_backend):
    from types import SimpleNamespace

    from studio.ui import image_family

    studio = SimpleNamespace(image=plain_backend)  # all the handlers read
    # [sampler, negative prompt, guidance, flow row, shift, T5 length]
    sampler, negative, guidance, row, shift, length = image_family.model_changed(studio, SD15, "DPM++ 2M Karras")
    assert sampler["choices"] == list(families.Family(families.SD).samplers) and sampler["value"] == "DPM++ 2M Karras"
    assert negative["interactive"] is True and "value" not in negative
    assert guidance["label"] == "Guidance (CFG scale)" and guidance["interactive"] is True
    assert row["visible"] is False and shift["value"] == 0 and length["value"] == 0  # hidden ones back to 0

    sampler, negative, guidance, row, shift, length = image_family.model_changed(studio, SCHNELL, "DPM++ 2M Karras")
    assert sampler["choices"] == ["Euler"] and sampler["value"] == "Euler"  # a flow model's only sampler
    assert negative["interactive"] is False and negative["value"] == "" and "no negative prompt" in negative["info"]
    assert guidance["value"] == 0 and guidance["interactive"] is False
    assert row["visible"] is True and "value" not in shift and length["maximum"] == 512

    sampler, negative, guidance, row, _shift, _length = image_family.model_changed(studio, DEV, "Euler")
    assert sampler["value"] == "Euler" and negative["interactive"] is False
    assert guidance["label"] == "Distilled guidance" and guidance["interactive"] is True and "value" not in guidance
    assert row["visible"] is True
    # A person's pick sets the model's own steps, guidance and size (the page's size limit kept), shift and T5 at 0.
    assert image_family.model_picked(studio, DEV, 2048, 50) == [28, 3.5, 1024, 1024, 0, 0]
    assert image_family.model_picked(studio, SCHNELL, 768, 50) == [4, 0.0, 768, 768, 0, 0]
    assert image_family.model_picked(studio, SD15, 2048, 20) == [20, 7.0, 512, 512, 0, 0]
    # A name not in the catalogue changes nothing here: the run says what is wrong.
    assert all(update == {"__type__": "update"} for update in image_family.model_changed(studio, "nope", "Euler"))


# -- the running app ---------------------------------------------------------------------------------

SCHNELL_ID, SD3_ID = "tiny-flux-schnell", "tiny-sd3"


@pytest.fixture(scope="module")
def flow_app(tmp_path_factory):
    from tests.running_app import RunningApp

    root = tmp_path_factory.mktemp("family-ui")
    folders = {SCHNELL_ID: build_tiny_flux(root / "schnell"), SD3_ID: build_tiny_sd3(root / "sd3")}
    models = root / "models.toml"
    models.write_text("".join(
        f'[[model]]\nid = "{model_id}"\nname = "{model_id}"\nfamily = "diffusers"\ntasks = {TASKS}\npath = "{path}"\n\n'
        for model_id, path in folders.items()
    ), encoding="utf-8")
    with RunningApp(root / "data", "--models-file", str(models), "--offline") as running:
        yield running


def test_the_shift_goes_from_the_api_to_the_picture_and_back(flow_app):
    import numpy as np
    from gradio_client import Client, handle_file
    from PIL import Image

    from studio.media.png_info import read_a1111_parameters

    client = Client(flow_app.url, verbose=False)
    common = dict(model=SCHNELL_ID, decoder="full", prompt="a red cat", negative_prompt="", sampler="Euler", steps=2,
                  guidance=0, width=256, height=256, random_seed=False, seed=5, api_name="/txt2img")
    own = client.predict(**common)[1][0]["image"]  # an old caller, without the two new inputs: the model's own
    shifted = client.predict(**common, shift=3, max_sequence_length=64)[1][0]["image"]

    def pixels(path: str) -> np.ndarray:
        return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)

    assert np.abs(pixels(own) - pixels(shifted)).mean() > 0.5  # schnell's own shift is 1: 3 bends the steps
    parsed = read_a1111_parameters(shifted)
    assert parsed["Shift"] == "3" and parsed["Max sequence length"] == "64" and "Shift" not in read_a1111_parameters(own)
    loaded = client.predict(handle_file(shifted), api_name="/image_read_parameters")
    # The shift and T5 length come before the three ControlNet units, the fast LCM switch, the speed and the note.
    flow = slice(-3 - 3 * len(LOADED_FIELDS) - 2, -3 - 3 * len(LOADED_FIELDS))
    assert loaded[2] == SCHNELL_ID and tuple(loaded[flow]) == (3.0, 64)
    assert tuple(client.predict(handle_file(own), api_name="/image_read_parameters")[flow]) == (0.0, 0)
    # The same shift again makes the same picture: what the PNG carries reproduces it.
    assert np.array_equal(pixels(client.predict(**common, shift=loaded[flow][0], max_sequence_length=loaded[flow][1])[1][0]["image"]),
                          pixels(shifted))


def test_what_the_family_does_not_take_is_refused_through_the_api_in_one_sentence(flow_app):
    """The page disables FLUX's negative prompt; an API caller that sends one hears why."""
    from gradio_client import Client

    client = Client(flow_app.url, verbose=False)
    with pytest.raises(Exception, match="takes no negative prompt") as refused:
        client.predict(model=SCHNELL_ID, decoder="full", prompt="a red cat", negative_prompt="blurry", steps=1,
                       guidance=0, width=256, height=256, api_name="/txt2img")
    assert "\n" not in str(refused.value)
