"""LoRA files (`<lora:NAME:WEIGHT>`) on the tiny SD pipeline: built in both key layouts (kohya/A1111 and
diffusers/PEFT), saved with safetensors and applied through the studio's own loading code."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from studio import settings as settings_mod
from studio.backends.diffusion import DiffusionBackend, ImageRequest, a1111_parameters, pipelines
from studio.backends.diffusion.loras import LoraLibrary, read_lora, trigger_words
from studio.errors import InputError
from studio.media.png_info import parse_a1111_parameters
from studio.runtime import ModelCache
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

ROOT = Path(__file__).resolve().parent.parent
BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11)


def linears(module: torch.nn.Module, inside: str) -> list[tuple[str, torch.nn.Linear]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, torch.nn.Linear) and inside in n]


def kohya_lora(unet, text_encoder, seed: int, widen: int = 0) -> dict[str, torch.Tensor]:
    """kohya/A1111 names (`lora_unet_..._to_q.lora_down.weight`, `lora_te_...`); `widen` makes it fit
    a UNet of other sizes."""
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for prefix, module, inside in (("lora_unet_", unet, "attentions"), ("lora_te_", text_encoder, "layers")):
        for name, linear in linears(module, inside):
            key = prefix + name.replace(".", "_")
            out_features, in_features = linear.weight.shape
            weights[f"{key}.lora_down.weight"] = torch.randn(4, in_features + widen, generator=generator) * 0.5
            weights[f"{key}.lora_up.weight"] = torch.randn(out_features + widen, 4, generator=generator) * 0.5
            weights[f"{key}.alpha"] = torch.tensor(4.0)
    return weights


def locon_lora(unet, seed: int) -> dict[str, torch.Tensor]:
    """LoCon: kohya names on the UNet's convolutions too (`lora_down` a 3x3 conv, `lora_up` a 1x1)."""
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for name, conv in unet.named_modules():
        if isinstance(conv, torch.nn.Conv2d) and "resnets" in name and conv.kernel_size == (3, 3):
            key = "lora_unet_" + name.replace(".", "_")
            weights[f"{key}.lora_down.weight"] = torch.randn(4, conv.in_channels, 3, 3, generator=generator) * 0.3
            weights[f"{key}.lora_up.weight"] = torch.randn(conv.out_channels, 4, 1, 1, generator=generator) * 0.3
            weights[f"{key}.alpha"] = torch.tensor(4.0)
    return weights


def peft_lora(unet, text_encoder, seed: int) -> dict[str, torch.Tensor]:
    """diffusers/PEFT names (`unet.<module>.lora_A.weight`, `text_encoder.<module>.lora_B.weight`)."""
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for prefix, module, inside in (("unet.", unet, "attentions"), ("text_encoder.", text_encoder, "layers")):
        for name, linear in linears(module, inside):
            out_features, in_features = linear.weight.shape
            weights[f"{prefix}{name}.lora_A.weight"] = torch.randn(4, in_features, generator=generator) * 0.5
            weights[f"{prefix}{name}.lora_B.weight"] = torch.randn(out_features, 4, generator=generator) * 0.5
    return weights


class Explodes:
    """A pickle that leaves a file behind if anything ever unpickles it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, tiny_sd_path) -> Path:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_path / "unet")
    text_encoder = CLIPTextModel.from_pretrained(tiny_sd_path / "text_encoder")
    folder = tmp_path_factory.mktemp("loras")
    tags = json.dumps({"10_ink": {"ink wash": 12, "mountains": 3}, "5_more": {"ink wash": 2, "monochrome": 7}})
    save_file(kohya_lora(unet, text_encoder, 1), folder / "ink_wash.safetensors",
              metadata={"ss_tag_frequency": tags})
    (folder / "styles").mkdir()
    save_file(peft_lora(unet, text_encoder, 2), folder / "styles" / "paper_cut.safetensors")
    save_file(kohya_lora(unet, text_encoder, 3, widen=8), folder / "big_model_style.safetensors")
    save_file(locon_lora(unet, 4), folder / "locon_grain.safetensors", metadata={"sshs_model_hash": "ab12" * 16})
    loha = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.hada_w1_a": torch.ones(4, 16),
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.hada_w1_b": torch.ones(4, 16)}
    save_file(loha, folder / "loha_style.safetensors")
    (folder / "garbage.safetensors").write_bytes(os.urandom(2000))
    whole = (folder / "ink_wash.safetensors").read_bytes()
    (folder / "cut_short.safetensors").write_bytes(whole[: len(whole) // 2])
    with open(folder / "pickled.pt", "wb") as handle:
        pickle.dump(Explodes(folder / "UNPICKLED"), handle)
    return folder


@pytest.fixture(scope="module")
def backend(catalog, lora_dir):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, lora_dirs=[lora_dir])


@pytest.fixture(scope="module")
def plain_picture(catalog) -> np.ndarray:
    """BASE made by a studio that has never seen a LoRA."""
    fresh = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)
    return pixels(fresh.generate(BASE).images[0])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def with_prompt(prompt: str, **changes) -> ImageRequest:
    return replace(BASE, prompt=prompt, **changes)


def test_a_lora_changes_the_picture_and_leaves_nothing_behind(backend, plain_picture):
    result = backend.generate(with_prompt("a red cat on the beach <lora:ink_wash:0.8>"))
    assert np.abs(pixels(result.images[0]) - plain_picture).mean() > 1
    record = result.params[0]
    assert record["prompt"] == "a red cat on the beach <lora:ink_wash:0.8>"  # kept as typed
    assert record["loras"] == [{"name": "ink_wash", "weight": 0.8, "hash": record["loras"][0]["hash"]}]
    # The run after it, without LoRAs, is the picture a fresh studio makes.
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)
    assert "loras" not in backend.generate(BASE).params[0]


def test_a_loaded_lora_is_reused_at_any_weight_and_after_plain_runs(catalog, lora_dir, plain_picture, monkeypatch):
    """Loading a LoRA takes seconds: later runs with the same file, at any weight and after runs without
    it, reuse it, and each gives the picture a run that loaded it afresh gives."""
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin

    def studio() -> DiffusionBackend:
        return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, lora_dirs=[lora_dir])

    loads = []
    original = StableDiffusionLoraLoaderMixin.load_lora_weights
    monkeypatch.setattr(StableDiffusionLoraLoaderMixin, "load_lora_weights",
                        lambda self, *a, **k: (loads.append(1), original(self, *a, **k))[1])
    backend = studio()
    inked = with_prompt("a red cat on the beach <lora:ink_wash:0.8>")
    first = pixels(backend.generate(inked).images[0])
    again = pixels(backend.generate(replace(inked, prompt="a red cat on the sand <lora:ink_wash:0.8>")).images[0])
    assert len(loads) == 1 and np.abs(again - first).mean() > 0  # loaded once; the new prompt still counts
    assert np.array_equal(pixels(backend.generate(inked).images[0]), first)
    half = with_prompt("a red cat on the beach <lora:ink_wash:0.5>")
    other = pixels(backend.generate(half).images[0])
    assert len(loads) == 1 and np.abs(other - first).mean() > 0  # another weight: the same adapter, reweighed
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)  # switched off, exactly
    assert np.array_equal(pixels(backend.generate(inked).images[0]), first)  # and on again
    assert len(loads) == 1
    # A studio that loads it at 0.5 first makes the same picture as this one reweighed.
    assert np.array_equal(pixels(studio().generate(half).images[0]), other)


def test_weight_zero_is_the_picture_without_the_lora(backend, plain_picture):
    for prompt in ("a red cat on the beach <lora:ink_wash:0>", "a red cat on the beach <lora:paper_cut:0>"):
        assert np.array_equal(pixels(backend.generate(with_prompt(prompt)).images[0]), plain_picture)


def test_the_diffusers_layout_and_two_loras_at_once(backend, plain_picture):
    ink = pixels(backend.generate(with_prompt("a red cat on the beach <lora:ink_wash:0.8>")).images[0])
    paper = pixels(backend.generate(with_prompt("a red cat on the beach <lora:paper_cut>")).images[0])
    both = backend.generate(with_prompt("a red cat on the beach <lora:ink_wash:0.8> <lora:paper_cut>"))
    assert np.abs(paper - plain_picture).mean() > 1
    for alone in (ink, paper, plain_picture):
        assert np.abs(pixels(both.images[0]) - alone).mean() > 1
    assert [(lora["name"], lora["weight"]) for lora in both.params[0]["loras"]] == [("ink_wash", 0.8),
                                                                                    ("paper_cut", 1.0)]
    # The same pair again makes the same picture: nothing of the first run lingers.
    again = backend.generate(with_prompt("a red cat on the beach <lora:ink_wash:0.8> <lora:paper_cut>"))
    assert np.array_equal(pixels(again.images[0]), pixels(both.images[0]))


def test_locon_convolutions_apply_and_a_hash_the_file_carries_is_the_one_shown(backend, plain_picture):
    result = backend.generate(with_prompt("a red cat on the beach <lora:locon_grain>"))
    assert np.abs(pixels(result.images[0]) - plain_picture).mean() > 1
    assert result.params[0]["loras"] == [{"name": "locon_grain", "weight": 1.0, "hash": "ab12ab12ab12"}]
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)


def test_negative_prompt_tags_are_applied_too(backend, plain_picture):
    result = backend.generate(with_prompt("a red cat on the beach", negative_prompt="<lora:ink_wash>"))
    assert [lora["name"] for lora in result.params[0]["loras"]] == ["ink_wash"]
    assert np.abs(pixels(result.images[0]) - plain_picture).mean() > 1


def test_a_file_is_read_once(backend, monkeypatch):
    backend.generate(with_prompt("a red cat <lora:ink_wash:0.5>"))

    def read_again(*_args, **_kwargs):
        raise AssertionError("the LoRA file was read a second time")

    monkeypatch.setattr(Path, "read_bytes", read_again)
    backend.generate(with_prompt("a red cat <lora:ink_wash:0.7>"))


def test_an_unknown_name_lists_the_closest(backend):
    with pytest.raises(InputError, match="No LoRA is named 'inkwash'") as caught:
        backend.generate(with_prompt("a cat <lora:inkwash:1>"))
    assert "ink_wash" in str(caught.value)


def test_a_pickle_is_refused_without_being_read(backend, lora_dir):
    with pytest.raises(InputError, match=r"pickled\.pt") as caught:
        backend.generate(with_prompt("a cat <lora:pickled:1>"))
    assert "safetensors" in str(caught.value) and "\n" not in str(caught.value)
    assert not (lora_dir / "UNPICKLED").exists()


@pytest.mark.parametrize("name", ["garbage", "cut_short"])
def test_a_damaged_file_is_refused_in_one_sentence(backend, name, plain_picture):
    with pytest.raises(InputError, match=rf"{name}\.safetensors is not a readable \.safetensors file") as caught:
        backend.generate(with_prompt(f"a cat <lora:{name}:1>"))
    assert "\n" not in str(caught.value)
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)


def test_loha_is_refused_naming_the_file(backend):
    with pytest.raises(InputError, match=r"loha_style\.safetensors is a LyCORIS LoHa"):
        backend.generate(with_prompt("a cat <lora:loha_style:1>"))


def test_a_lora_for_another_model_is_refused_and_undone(backend, plain_picture):
    with pytest.raises(InputError, match=r"big_model_style\.safetensors was made for another model than 'Tiny SD'"):
        backend.generate(with_prompt("a red cat on the beach <lora:ink_wash> <lora:big_model_style:1>"))
    # The LoRA loaded before it in that run is gone again too.
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)


def test_the_png_text_carries_lora_hashes_as_automatic1111_writes_them(backend, lora_dir):
    data = (lora_dir / "ink_wash.safetensors").read_bytes()
    header = int.from_bytes(data[:8], "little")
    expected = hashlib.sha256(data[8 + header:]).hexdigest()[:12]
    record = backend.generate(with_prompt("a cat <lora:ink_wash:0.8> <lora:paper_cut:0.5>")).params[0]
    text = a1111_parameters(record)
    paper = record["loras"][1]["hash"]
    assert f'Lora hashes: "ink_wash: {expected}, paper_cut: {paper}"' in text
    assert parse_a1111_parameters(text)["Lora hashes"] == f"ink_wash: {expected}, paper_cut: {paper}"


def test_trigger_words_come_from_the_training_tags(lora_dir):
    lora = read_lora(lora_dir / "ink_wash.safetensors", "ink_wash")
    assert trigger_words(lora) == ["ink wash", "monochrome", "mountains"]
    assert trigger_words(read_lora(lora_dir / "styles" / "paper_cut.safetensors", "paper_cut")) == []


def test_folders_come_from_flags_and_the_environment(tmp_path, lora_dir):
    parser = settings_mod.argparse.ArgumentParser()
    settings_mod.add_arguments(parser)
    args = parser.parse_args(["--lora-dir", str(lora_dir), "--lora-dir", str(tmp_path), "--data-dir", "d"])
    settings = settings_mod.from_args(args, environ={})
    assert settings.lora_folders == (Path("d") / "loras", lora_dir, tmp_path)
    env = settings_mod.from_args(parser.parse_args([]), environ={"STUDIO_LORA_DIRS": f"{lora_dir}{os.pathsep}{tmp_path}"})
    assert env.lora_dirs == (lora_dir, tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(settings_mod.SettingsError, match="not a folder"):
        settings_mod.from_args(parser.parse_args(["--lora-dir", str(tmp_path / "file.txt")]), environ={})
    assert "ink_wash" in LoraLibrary([lora_dir]).names() and "paper_cut" in LoraLibrary([lora_dir]).names()


def test_on_openvino_a_lora_run_uses_torch_and_says_so(catalog, lora_dir, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setattr(pipelines, "cpu_has_native_bf16", lambda: False)  # OpenVINO takes fp32 CPU work
    accelerated = DiffusionBackend(ModelCache(4096), catalog, device="cpu", offline=True, openvino_dir=tmp_path,
                                   lora_dirs=[lora_dir])
    torch_only = DiffusionBackend(ModelCache(4096), catalog, device="cpu", offline=True, lora_dirs=[lora_dir])
    request = with_prompt("a red cat on the beach <lora:ink_wash:0.8>")
    with_lora = accelerated.generate(request)
    assert with_lora.params[0]["engine"].startswith("torch ")
    assert np.array_equal(pixels(with_lora.images[0]), pixels(torch_only.generate(request).images[0]))
    assert accelerated.generate(BASE).params[0]["engine"].startswith("openvino ")


def test_the_image_command_takes_lora_dir(tmp_path, catalog, lora_dir, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path / "models", tiny_sd_path, tiny_taesd_path)
    out = tmp_path / "ink.png"
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path / "data"), STUDIO_MODELS_FILE=str(models), STUDIO_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "studio", "image", "--lora-dir", str(lora_dir), "a red cat <lora:ink_wash:0.8>",
         "--model", TINY_SD, "--decoder", TINY_TAESD, "--size", "64x64", "--seed", "3", "--out", str(out), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parameters"][0]["loras"][0]["name"] == "ink_wash"
    assert "Lora hashes" in Image.open(out).text["parameters"]


def test_a_walk_applies_the_key_frames_loras_to_the_frames_between_and_leaves_nothing_behind(
    backend, plain_picture
):
    from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk

    def walk(tag: str):
        keys = (Keyframe(f"a red cat on the beach {tag}", 11), Keyframe(f"a blue dog {tag}", 12))
        return prompt_walk(backend, PromptWalkRequest(keyframes=keys, frames_between=1, settings=BASE))

    with_lora, without = walk("<lora:ink_wash:0.8>"), walk("")
    # The key frames are the Image tab's own pictures, LoRA included ...
    alone = backend.generate(with_prompt("a red cat on the beach <lora:ink_wash:0.8>", seed=11)).images[0]
    assert np.array_equal(pixels(with_lora.frames[0]), pixels(alone))
    # ... and the frame between them has it on too: far from the same walk's middle without the LoRA.
    assert np.abs(pixels(with_lora.frames[1]) - pixels(without.frames[1])).mean() > 1
    # It lies between its own ends rather than jumping away from them.
    ends = np.abs(pixels(with_lora.frames[0]) - pixels(with_lora.frames[2])).mean()
    assert np.abs(pixels(with_lora.frames[1]) - pixels(with_lora.frames[0])).mean() < ends
    assert with_lora.params["loras"][0]["name"] == "ink_wash" and "loras" not in without.params
    assert np.array_equal(pixels(backend.generate(BASE).images[0]), plain_picture)


def test_a_walk_whose_key_frames_ask_for_different_loras_is_refused(backend):
    from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk

    keys = (Keyframe("a red cat <lora:ink_wash:0.8>", 1), Keyframe("a blue dog <lora:ink_wash:0.5>", 2))
    with pytest.raises(InputError, match="Every key frame of a walk needs the same <lora:...> tags and weights"):
        prompt_walk(backend, PromptWalkRequest(keyframes=keys, frames_between=1, settings=BASE))


def test_thirty_loras_at_once_all_apply_and_all_come_off(catalog, tiny_sd_path, tmp_path, plain_picture):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_path / "unet")
    text_encoder = CLIPTextModel.from_pretrained(tiny_sd_path / "text_encoder")
    # Small files (the UNet's attention queries only) keep thirty adapters quick to load.
    for index in range(30):
        queries = {k: v for k, v in kohya_lora(unet, text_encoder, 100 + index).items() if "to_q" in k and "unet" in k}
        save_file(queries, tmp_path / f"set_{index:02d}.safetensors")
    many = DiffusionBackend(ModelCache(4096), catalog, device="cpu", offline=True, lora_dirs=[tmp_path])
    tags = " ".join(f"<lora:set_{index:02d}:0.1>" for index in range(30))
    result = many.generate(with_prompt(f"a red cat on the beach {tags}"))
    assert [lora["name"] for lora in result.params[0]["loras"]] == [f"set_{index:02d}" for index in range(30)]
    # Every file counts: dropping the last one changes the picture.
    fewer = many.generate(with_prompt(f"a red cat on the beach {tags.rsplit(' ', 1)[0]}"))
    assert not np.array_equal(pixels(result.images[0]), pixels(fewer.images[0]))
    assert np.array_equal(pixels(many.generate(BASE).images[0]), plain_picture)


def test_an_sdxl_lora_in_the_kohya_layout_applies_to_both_text_encoders(tmp_path_factory, tiny_sd_path,
                                                                          tiny_taesd_path, lora_dir):
    """SDXL files name the UNet `lora_unet_`, the first encoder `lora_te1_` and the second `lora_te2_`."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from studio.catalog import load_catalog
    from tests.tiny_models import build_tiny_sdxl

    sdxl = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))
    models = write_models_file(tmp_path_factory.mktemp("sdxl-models"), tiny_sd_path, tiny_taesd_path)
    models.write_text(models.read_text(encoding="utf-8") + '\n[[model]]\nid = "tiny-sdxl"\nname = "Tiny SDXL"\n'
                      f'family = "diffusers"\ntasks = ["txt2img"]\npath = "{sdxl}"\n', encoding="utf-8")
    unet = UNet2DConditionModel.from_pretrained(sdxl / "unet")
    first = CLIPTextModel.from_pretrained(sdxl / "text_encoder")
    second = CLIPTextModelWithProjection.from_pretrained(sdxl / "text_encoder_2")
    folder = tmp_path_factory.mktemp("sdxl-loras")
    whole = kohya_lora(unet, first, 5)
    for key, value in kohya_lora(unet, second, 6).items():
        if key.startswith("lora_te_"):
            whole[key.replace("lora_te_", "lora_te2_", 1)] = value
    whole = {key.replace("lora_te_", "lora_te1_", 1): value for key, value in whole.items()}
    save_file(whole, folder / "xl_ink.safetensors")
    save_file({k: v for k, v in whole.items() if k.startswith("lora_te2_")}, folder / "xl_second_only.safetensors")
    backend = DiffusionBackend(ModelCache(2048), load_catalog(models), device="cpu", offline=True,
                               lora_dirs=[folder])
    request = replace(BASE, model="tiny-sdxl", decoder="full", guidance=0.0)
    plain = pixels(backend.generate(request).images[0])
    inked = backend.generate(replace(request, prompt=f"{request.prompt} <lora:xl_ink:0.8>"))
    assert np.abs(pixels(inked.images[0]) - plain).mean() > 1
    assert inked.params[0]["loras"][0]["name"] == "xl_ink"
    # The second encoder's part alone moves the picture too: it is read, not skipped.
    second_only = backend.generate(replace(request, prompt=f"{request.prompt} <lora:xl_second_only>"))
    assert np.abs(pixels(second_only.images[0]) - plain).mean() > 0.05
    assert np.array_equal(pixels(backend.generate(request).images[0]), plain)
    # An SD 1.x file on this SDXL model is refused naming it, and nothing of it stays on.
    mixed = DiffusionBackend(ModelCache(2048), load_catalog(models), device="cpu", offline=True,
                             lora_dirs=[folder, lora_dir])
    with pytest.raises(InputError, match=r"ink_wash\.safetensors was made for another model than 'Tiny SDXL'"):
        mixed.generate(replace(request, prompt=f"{request.prompt} <lora:ink_wash>"))
    assert np.array_equal(pixels(mixed.generate(request).images[0]), plain)


def test_the_walk_command_takes_lora_dir(tmp_path, lora_dir, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path / "models", tiny_sd_path, tiny_taesd_path)
    out = tmp_path / "walk.gif"
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path / "data"), STUDIO_MODELS_FILE=str(models), STUDIO_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "studio", "walk", "--lora-dir", str(lora_dir),
         "--prompt", "a red cat <lora:ink_wash:0.8>", "--seed", "1", "--prompt", "a blue dog <lora:ink_wash:0.8>",
         "--seed", "2", "--frames", "3", "--model", TINY_SD, "--size", "64x64", "--out", str(out), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["parameters"]["loras"][0]["name"] == "ink_wash"
    assert Image.open(out).n_frames == 3
