"""The Image tab's LoRA picker lists the files with previews and trigger words; `--lora FILE[:WEIGHT]`
applies one file from the command line."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import save_file

from studio import settings as settings_mod
from studio.services import Studio
from studio.ui import lora_picker
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file
from tests.test_image_cli import studio_cli
from tests.test_loras import Explodes, kohya_lora

TAGS = {"10_ink": {"ink wash": 12, "mountains": 3}, "5_more": {"ink wash": 2, "monochrome": 7}}


def make_lora_folder(folder: Path, tiny_sd_path: Path) -> Path:
    """ink_wash (trigger words, a preview), plain_style (neither), and a pickle that is never listed."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_path / "unet")
    text_encoder = CLIPTextModel.from_pretrained(tiny_sd_path / "text_encoder")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(kohya_lora(unet, text_encoder, 1), folder / "ink_wash.safetensors",
              metadata={"ss_tag_frequency": json.dumps(TAGS)})
    Image.new("RGB", (24, 16), (200, 30, 40)).save(folder / "ink_wash.preview.png")
    save_file(kohya_lora(unet, text_encoder, 2), folder / "plain_style.safetensors")
    with open(folder / "pickled.pt", "wb") as handle:
        pickle.dump(Explodes(folder / "UNPICKLED"), handle)
    return folder


@pytest.fixture(scope="module")
def lora_folder(tmp_path_factory, tiny_sd_path) -> Path:
    return make_lora_folder(tmp_path_factory.mktemp("picker") / "loras", tiny_sd_path)


def studio_with(data: Path, *flags: str) -> Studio:
    parser = settings_mod.argparse.ArgumentParser()
    settings_mod.add_arguments(parser)
    return Studio(settings_mod.from_args(parser.parse_args(["--data-dir", str(data), *flags]), environ={}))


def test_the_picker_lists_each_lora_with_its_preview_and_trigger_words(lora_folder, tmp_path):
    studio = studio_with(tmp_path / "data", "--lora-dir", str(lora_folder))
    names, previews, note = lora_picker.listing(studio)
    assert names == ["ink_wash", "plain_style"]  # the pickle is not offered
    assert [caption for _, caption in previews] == ["ink_wash"]
    shown = Image.open(previews[0][0])
    assert shown.size == (24, 16) and shown.convert("RGB").getpixel((3, 3)) == (200, 30, 40)
    assert "2 LoRA(s)" in note and str(lora_folder) in note
    card = lora_picker.card_named(studio, "ink_wash")
    assert card is not None and card.trigger_words == ("ink wash", "monochrome", "mountains")
    assert lora_picker.describe_triggers(card) == "**ink_wash** trigger words: ink wash, monochrome, mountains"
    plain = lora_picker.card_named(studio, "plain_style")
    assert plain is not None and plain.preview is None and plain.trigger_words == ()
    # Only names found are accepted: a path, even to the very file, is no name.
    for stranger in (str(lora_folder / "ink_wash.safetensors"), "../loras/ink_wash", "pickled", None, 3):
        assert lora_picker.card_named(studio, stranger) is None
    assert not (lora_folder / "UNPICKLED").exists()


def test_with_no_lora_files_the_picker_says_where_to_put_them(tmp_path):
    studio = studio_with(tmp_path / "data", "--lora-dir", str(tmp_path / "more"))
    names, previews, note = lora_picker.listing(studio)
    assert (names, previews) == ([], [])
    assert str(tmp_path / "data" / "loras") in note and str(tmp_path / "more") in note
    hosted = studio_with(tmp_path / "data", "--hosted")
    assert str(tmp_path) not in lora_picker.listing(hosted)[2]  # strangers are not shown the server's paths


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    return write_models_file(tmp_path_factory.mktemp("lora-cli-models"), tiny_sd_path, tiny_taesd_path)


def test_cli_lora_file_with_a_weight(models, lora_folder, tmp_path):
    out = tmp_path / "ink.png"
    done = studio_cli("image", "--lora", str(lora_folder / "ink_wash.safetensors:0.7"), "a red cat", "--model",
                      TINY_SD, "--decoder", TINY_TAESD, "--size", "64x64", "--seed", "5", "--out", str(out),
                      "--json", models=models, data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["parameters"][0]
    assert record["prompt"] == "a red cat <lora:ink_wash:0.7>"
    assert [(lora["name"], lora["weight"]) for lora in record["loras"]] == [("ink_wash", 0.7)]


@pytest.mark.parametrize(("given", "says"), [
    ("missing.safetensors", "no such file"),
    ("pickled.pt", "must be a .safetensors file"),
    ("ink_wash.preview.png:0.5", "must be a .safetensors file"),
])
def test_cli_lora_errors_are_one_line(models, lora_folder, tmp_path, given, says):
    done = studio_cli("image", "a red cat", "--model", TINY_SD, "--lora", str(lora_folder / given),
                      models=models, data_dir=tmp_path / "data")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and says in done.stderr, done.stderr
    assert not (lora_folder / "UNPICKLED").exists()
