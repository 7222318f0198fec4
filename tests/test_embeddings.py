"""Textual-inversion embeddings on the tiny SD pipeline (files in AUTOMATIC1111's and diffusers' layouts,
saved with safetensors and applied through the studio's own code), and finding LoRAs and embeddings by
hash when a picture is made again."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from safetensors.torch import save_file

from studio import settings as settings_mod
from studio.backends.diffusion import DiffusionBackend, ImageRequest, a1111_parameters, fields_from_parameters
from studio.backends.diffusion import embeddings as ti
from studio.backends.diffusion.embeddings import EmbeddingLibrary, load_embeddings
from studio.backends.diffusion.loras import LoraLibrary
from studio.backends.diffusion.prompts import chunks, encode, parse_prompt
from studio.catalog import load_catalog
from studio.errors import InputError
from studio.media.png_info import A1111_KEY, parse_a1111_parameters
from studio.runtime import ModelCache
from studio.services.reproduce import read_recipe, reproduce
from studio.settings import Settings
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file
from tests.test_loras import Explodes, kohya_lora

BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11)
WIDTH = 32  # the tiny CLIP text encoder's width


def vectors(seed: int, rows: int, width: int = WIDTH) -> torch.Tensor:
    # Large next to the tiny encoder's own token vectors, so that the pictures show them clearly.
    return torch.randn(rows, width, generator=torch.Generator().manual_seed(seed)) * 8


@pytest.fixture(scope="module")
def embedding_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("embeddings")
    # kohya / AUTOMATIC1111 layout: two vectors under `emb_params`
    save_file({"emb_params": vectors(1, 2)}, folder / "ink_style.safetensors")
    # diffusers layout: one vector under its token
    (folder / "concepts").mkdir()
    save_file({"<paper-tone>": vectors(2, 1)[0]}, folder / "concepts" / "paper_tone.safetensors")
    save_file({"emb_params": vectors(3, 1, width=48)}, folder / "wide_style.safetensors")
    save_file({"a": vectors(4, 1), "b": vectors(5, 1)}, folder / "two_terms.safetensors")
    (folder / "garbage.safetensors").write_bytes(os.urandom(2000))
    with open(folder / "pickled.pt", "wb") as handle:
        pickle.dump(Explodes(folder / "UNPICKLED"), handle)
    return folder


@pytest.fixture(scope="module")
def backend(catalog, embedding_dir):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, embedding_dirs=[embedding_dir])


@pytest.fixture(scope="module")
def fresh(catalog):
    """A studio that has never seen an embedding."""
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)


@pytest.fixture(scope="module")
def plain_picture(fresh) -> np.ndarray:
    return pixels(fresh.generate(BASE).images[0])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    """Clearly different pictures (the tiny model's text encoder moves its pictures less than a LoRA's UNet does)."""
    return bool(np.abs(a - b).mean() > 0.05)


def with_prompt(prompt: str, **changes) -> ImageRequest:
    return replace(BASE, prompt=prompt, **changes)


def test_an_embedding_changes_the_picture_and_leaves_nothing_behind(backend, fresh, embedding_dir, plain_picture):
    request = with_prompt("a red cat on the beach ink_style")
    result = backend.generate(request)
    # A studio without the file reads the name as a word: the embedding made the difference.
    assert differs(pixels(result.images[0]), pixels(fresh.generate(request).images[0]))
    full = hashlib.sha256((embedding_dir / "ink_style.safetensors").read_bytes()).hexdigest()
    assert result.params[0]["embeddings"] == [{"name": "ink_style", "hash": full[:12]}]
    assert result.params[0]["prompt"] == "a red cat on the beach ink_style"
    # The run after it is the picture a fresh studio makes, and its record names no embedding.
    after = backend.generate(BASE)
    assert np.array_equal(pixels(after.images[0]), plain_picture)
    assert "embeddings" not in after.params[0]


def test_only_whole_words_call_an_embedding_in_any_case(backend, fresh):
    for prompt in ("a red cat, ink_styles", "a red cat, my_ink_style"):
        result = backend.generate(with_prompt(prompt))
        assert "embeddings" not in result.params[0]
        assert np.array_equal(pixels(result.images[0]), pixels(fresh.generate(with_prompt(prompt)).images[0]))
    upper = backend.generate(with_prompt("a red cat, Ink_Style"))
    lower = backend.generate(with_prompt("a red cat, ink_style"))
    assert upper.params[0]["embeddings"][0]["name"] == "ink_style"
    assert np.array_equal(pixels(upper.images[0]), pixels(lower.images[0]))


def test_the_diffusers_layout_and_emphasis_on_an_embedding(backend, fresh, plain_picture):
    plain = pixels(backend.generate(with_prompt("a red cat on the beach, paper_tone")).images[0])
    assert differs(plain, pixels(fresh.generate(with_prompt("a red cat on the beach, paper_tone")).images[0]))
    strong = backend.generate(with_prompt("a red cat on the beach, (paper_tone:1.6)"))
    assert strong.params[0]["embeddings"][0]["name"] == "paper_tone"
    assert not np.array_equal(pixels(strong.images[0]), plain)
    # A weight of 1 written out is the same picture as the bare name.
    same = backend.generate(with_prompt("a red cat on the beach, (paper_tone:1.0)"))
    assert np.array_equal(pixels(same.images[0]), plain)
    both = backend.generate(with_prompt("ink_style on the beach, (paper_tone:1.2)"))
    assert [e["name"] for e in both.params[0]["embeddings"]] == ["ink_style", "paper_tone"]
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)


def test_emphasis_weighs_every_vector_of_an_embedding(backend):
    pipe = backend.load(TINY_SD).pipe
    ink = load_embeddings(backend.embeddings, backend.cache, "ink_style")
    with ti.applied(pipe, ink, "Tiny SD") as spell:
        ids = pipe.tokenizer.convert_tokens_to_ids([ti.token_for(0), f"{ti.token_for(0)}_1"])
        laid = chunks(pipe, parse_prompt(spell("a red (ink_style:1.3) cat")))[0]
        assert [laid.weights[laid.ids.index(token)] for token in ids] == [1.3, 1.3]
        weighted = encode(pipe, parse_prompt(spell("a red (ink_style:1.3) cat"))).embeds
        unweighted = encode(pipe, parse_prompt(spell("a red ink_style cat"))).embeds
        assert (weighted - unweighted).abs().max() > 0.1
    # Afterwards the tokenizer knows no such token.
    assert ti.token_for(0) not in pipe.tokenizer.get_vocab()


def test_the_negative_prompt_calls_embeddings_too(backend, fresh):
    request = with_prompt("a red cat on the beach", negative_prompt="ink_style", guidance=3.0, steps=2)
    result = backend.generate(request)
    assert [e["name"] for e in result.params[0]["embeddings"]] == ["ink_style"]
    assert differs(pixels(result.images[0]), pixels(fresh.generate(request).images[0]))


def test_a_file_is_read_once(backend, monkeypatch):
    backend.generate(with_prompt("a cat, ink_style"))

    def read_again(*_args, **_kwargs):
        raise AssertionError("the embedding file was read a second time")

    monkeypatch.setattr(Path, "read_bytes", read_again)
    backend.generate(with_prompt("a dog, ink_style"))


def test_a_pickle_is_refused_without_being_read(backend, embedding_dir):
    with pytest.raises(InputError, match=r"pickled\.pt") as caught:
        backend.generate(with_prompt("a cat, pickled"))
    assert "safetensors" in str(caught.value) and "\n" not in str(caught.value)
    assert not (embedding_dir / "UNPICKLED").exists()


def test_an_embedding_for_another_model_is_refused_and_undone(backend, plain_picture):
    with pytest.raises(InputError, match=r"wide_style\.safetensors was made for another model than 'Tiny SD'"):
        backend.generate(with_prompt("a cat, ink_style, wide_style"))
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)


def test_damaged_and_many_tensor_files_are_refused_in_one_sentence(backend, plain_picture):
    with pytest.raises(InputError, match=r"garbage\.safetensors is not a readable \.safetensors file") as caught:
        backend.generate(with_prompt("a cat, garbage"))
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match=r"two_terms\.safetensors holds 2 tensors, not one embedding's vectors"):
        backend.generate(with_prompt("a cat, two_terms"))
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)


def test_the_png_text_carries_ti_hashes_as_automatic1111_writes_them(backend, embedding_dir):
    record = backend.generate(with_prompt("a cat, ink_style, paper_tone")).params[0]
    ink = hashlib.sha256((embedding_dir / "ink_style.safetensors").read_bytes()).hexdigest()[:12]
    paper = hashlib.sha256((embedding_dir / "concepts" / "paper_tone.safetensors").read_bytes()).hexdigest()[:12]
    text = a1111_parameters(record)
    assert f'TI hashes: "ink_style: {ink}, paper_tone: {paper}"' in text
    assert parse_a1111_parameters(text)["TI hashes"] == f"ink_style: {ink}, paper_tone: {paper}"


def test_a_walk_reads_embedding_names_in_its_key_frames_and_the_frames_between(backend, fresh):
    from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk

    keys = (Keyframe("a red cat, ink_style", 11), Keyframe("a blue dog", 12))
    request = PromptWalkRequest(keyframes=keys, frames_between=1, settings=BASE)
    walk, plain_words = prompt_walk(backend, request), prompt_walk(fresh, request)
    alone = backend.generate(with_prompt("a red cat, ink_style", seed=11)).images[0]
    assert np.array_equal(pixels(walk.frames[0]), pixels(alone))
    # A studio without the file reads the name as words: the embedding moved the middle frame too.
    assert differs(pixels(walk.frames[1]), pixels(plain_words.frames[1]))
    assert walk.params["embeddings"][0]["name"] == "ink_style" and "embeddings" not in plain_words.params


def test_folders_come_from_flags_and_the_environment(tmp_path, embedding_dir):
    parser = settings_mod.argparse.ArgumentParser()
    settings_mod.add_arguments(parser)
    args = parser.parse_args(["--embeddings-dir", str(embedding_dir), "--embeddings-dir", str(tmp_path),
                              "--data-dir", "d"])
    settings = settings_mod.from_args(args, environ={})
    assert settings.embedding_folders == (Path("d") / "embeddings", embedding_dir, tmp_path)
    env = settings_mod.from_args(parser.parse_args([]),
                                 environ={"STUDIO_EMBEDDING_DIRS": f"{embedding_dir}{os.pathsep}{tmp_path}"})
    assert env.embedding_dirs == (embedding_dir, tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(settings_mod.SettingsError, match="not a folder"):
        settings_mod.from_args(parser.parse_args(["--embeddings-dir", str(tmp_path / "file.txt")]), environ={})
    assert {"ink_style", "paper_tone"} <= set(EmbeddingLibrary([embedding_dir]).names())


# -- made again: LoRAs and embeddings found by hash --------------------------------------------------


@pytest.fixture
def studio(tmp_path, tiny_sd_path, tiny_taesd_path, embedding_dir):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from studio.services import Studio

    data = tmp_path / "data"
    (data / "loras").mkdir(parents=True)
    (data / "embeddings").mkdir()
    unet = UNet2DConditionModel.from_pretrained(tiny_sd_path / "unet")
    text_encoder = CLIPTextModel.from_pretrained(tiny_sd_path / "text_encoder")
    save_file(kohya_lora(unet, text_encoder, 1), data / "loras" / "ink_wash.safetensors")
    shutil.copy(embedding_dir / "ink_style.safetensors", data / "embeddings" / "ink_style.safetensors")
    models = write_models_file(tmp_path / "models", tiny_sd_path, tiny_taesd_path)
    return Studio(Settings(data_dir=data, models_file=models, offline=True, openvino=False, device="cpu"))


RECIPE_PROMPT = "a red cat on the beach, ink_style <lora:ink_wash:0.8>"


def test_renamed_files_are_found_by_hash_when_a_picture_is_made_again(studio, tmp_path):
    made = studio.generate_image(with_prompt(RECIPE_PROMPT)).items[0]
    data = studio.settings.data_dir
    (data / "loras" / "ink_wash.safetensors").rename(data / "loras" / "ink_wash_v2.safetensors")
    (data / "embeddings" / "ink_style.safetensors").rename(data / "embeddings" / "ink_style_v2.safetensors")

    # The studio's own record.
    again = reproduce(studio, read_recipe(made.file, studio), keep=False)
    assert again.record["prompt"] == "a red cat on the beach, ink_style_v2 <lora:ink_wash_v2:0.8>"
    assert any("'ink_wash' is called 'ink_wash_v2'" in note for note in again.notes)
    assert any("'ink_style' is called 'ink_style_v2'" in note for note in again.notes)
    assert np.array_equal(pixels(again.image), pixels(Image.open(made.file)))

    # AUTOMATIC1111's text alone.
    a1111_only = tmp_path / "a1111.png"
    info = PngInfo()
    info.add_text(A1111_KEY, Image.open(made.file).text[A1111_KEY])
    Image.open(made.file).save(a1111_only, pnginfo=info)
    again = reproduce(studio, read_recipe(a1111_only, studio), keep=False)
    assert again.record["prompt"] == "a red cat on the beach, ink_style_v2 <lora:ink_wash_v2:0.8>"
    assert np.array_equal(pixels(again.image), pixels(Image.open(made.file)))

    # The gallery's re-run.
    rerun = studio.rerun(made.id)
    assert rerun.params["prompt"] == "a red cat on the beach, ink_style_v2 <lora:ink_wash_v2:0.8>"
    assert np.array_equal(pixels(Image.open(rerun.file)), pixels(Image.open(made.file)))


def test_a_missing_lora_is_named_in_one_line(studio):
    made = studio.generate_image(with_prompt(RECIPE_PROMPT)).items[0]
    digest = made.params["loras"][0]["hash"]
    (studio.settings.data_dir / "loras" / "ink_wash.safetensors").unlink()
    with pytest.raises(InputError) as caught:
        reproduce(studio, read_recipe(made.file, studio), keep=False)
    assert str(caught.value) == f"The LoRA 'ink_wash' (hash {digest}) is not in your LoRA folders."
    with pytest.raises(InputError, match="is not in your LoRA folders"):
        studio.rerun(made.id)


def test_load_parameters_rewrites_names_only_when_given_the_folders(studio, catalog):
    made = studio.generate_image(with_prompt(RECIPE_PROMPT)).items[0]
    data = studio.settings.data_dir
    (data / "loras" / "ink_wash.safetensors").rename(data / "loras" / "renamed.safetensors")
    (data / "embeddings" / "ink_style.safetensors").unlink()
    parsed = parse_a1111_parameters(Image.open(made.file).text[A1111_KEY])
    values, notes = fields_from_parameters(parsed, catalog)  # as callers without the folders call it
    assert values["prompt"] == RECIPE_PROMPT
    values, notes = fields_from_parameters(parsed, catalog, loras=LoraLibrary(studio.settings.lora_folders),
                                           embeddings=EmbeddingLibrary(studio.settings.embedding_folders))
    assert values["prompt"] == "a red cat on the beach, ink_style <lora:renamed:0.8>"
    ink = made.params["embeddings"][0]["hash"]
    assert f"The embedding 'ink_style' (hash {ink}) is not in your embedding folders." in notes
    assert any("'ink_wash' is called 'renamed'" in note for note in notes)


# -- SDXL: one file, vectors for both text encoders -------------------------------------------------

TINY_SDXL = "tiny-sdxl"


@pytest.fixture(scope="module")
def sdxl_catalog(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    from tests.tiny_models import build_tiny_sdxl

    sdxl_path = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))
    models = write_models_file(tmp_path_factory.mktemp("sdxl-models"), tiny_sd_path, tiny_taesd_path)
    models.write_text(
        models.read_text(encoding="utf-8") + f'\n[[model]]\nid = "{TINY_SDXL}"\nname = "Tiny SDXL"\n'
        f'family = "diffusers"\ntasks = ["txt2img"]\npath = "{sdxl_path}"\n',
        encoding="utf-8",
    )
    return load_catalog(models)


def test_sdxl_embeddings_use_both_encoders_and_other_models_files_are_refused(
    sdxl_catalog, embedding_dir, tmp_path, plain_picture
):
    folder = tmp_path / "sdxl-embeddings"
    folder.mkdir()
    save_file({"clip_l": vectors(6, 2), "clip_g": vectors(7, 2)}, folder / "xl_style.safetensors")
    shutil.copy(embedding_dir / "ink_style.safetensors", folder / "ink_style.safetensors")
    sdxl = DiffusionBackend(ModelCache(2048), sdxl_catalog, device="cpu", offline=True, embedding_dirs=[folder])
    fresh_sdxl = DiffusionBackend(ModelCache(2048), sdxl_catalog, device="cpu", offline=True)
    base = replace(BASE, model=TINY_SDXL, decoder="full", prompt="a red dog on the beach")
    request = replace(base, prompt="a red dog on the beach, xl_style")
    result = sdxl.generate(request)
    assert [e["name"] for e in result.params[0]["embeddings"]] == ["xl_style"]
    assert differs(pixels(result.images[0]), pixels(fresh_sdxl.generate(request).images[0]))
    assert np.array_equal(pixels(sdxl.generate(base).images[0]), pixels(fresh_sdxl.generate(base).images[0]))
    with pytest.raises(InputError, match=r"ink_style\.safetensors was made for another model than 'Tiny SDXL'"):
        sdxl.generate(replace(base, prompt="a red dog, ink_style"))
    sd = DiffusionBackend(ModelCache(2048), sdxl_catalog, device="cpu", offline=True, embedding_dirs=[folder])
    with pytest.raises(InputError, match=r"xl_style\.safetensors was made for another model than 'Tiny SD'"):
        sd.generate(with_prompt("a red cat, xl_style"))
    assert np.array_equal(pixels(sd.generate(BASE).images[0]), plain_picture)


def test_tags_are_renamed_in_every_spelling_and_a_changed_file_is_used_with_a_note(tmp_path):
    from studio.backends.diffusion.metadata import relocate_networks

    folder = tmp_path / "loras"
    folder.mkdir()
    save_file({"x": torch.ones(2)}, folder / "grain.safetensors")
    save_file({"x": torch.zeros(2)}, folder / "film_v2.safetensors")
    library = LoraLibrary([folder])
    film = library.file_hash(folder / "film_v2.safetensors")[:12]
    relocated = relocate_networks(
        {"prompt": "<lora:film:0.5> film grain <lyco:film> <lora:filmic:1>", "negative_prompt": "<lora:film>",
         "loras": [{"name": "film", "hash": film}, {"name": "grain", "hash": "0" * 12}]},
        library, None)
    assert relocated.prompt == "<lora:film_v2:0.5> film grain <lyco:film_v2> <lora:filmic:1>"
    assert relocated.negative_prompt == "<lora:film_v2>"
    assert not relocated.missing
    assert "'grain' in your folders is not the file the picture was made with" in relocated.notes[1]


def test_the_image_command_takes_embeddings_dir(tmp_path, embedding_dir, tiny_sd_path, tiny_taesd_path):
    import json
    import subprocess
    import sys

    models = write_models_file(tmp_path / "models", tiny_sd_path, tiny_taesd_path)
    out = tmp_path / "ink.png"
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path / "data"), STUDIO_MODELS_FILE=str(models), STUDIO_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "studio", "image", "--embeddings-dir", str(embedding_dir), "a red cat, ink_style",
         "--model", TINY_SD, "--decoder", TINY_TAESD, "--size", "64x64", "--seed", "3", "--out", str(out), "--json"],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parameters"][0]["embeddings"][0]["name"] == "ink_style"
    assert 'TI hashes: "ink_style: ' in Image.open(out).text["parameters"]
