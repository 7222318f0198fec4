"""Stable Diffusion 3.x and FLUX.1 in the image backend: tiny random-weight pipelines of their real
classes, saved with save_pretrained and loaded by the studio's own code; their sampler, guidance,
metadata, image to image, and the one-sentence refusals of what they do not take."""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion import (
    DiffusionBackend,
    ImageRequest,
    a1111_parameters,
    families,
    fields_from_parameters,
)
from studio.catalog import load_catalog
from studio.errors import InputError, StudioError
from studio.media.png_info import parse_a1111_parameters
from studio.model_folders import FLUX, inspect_checkpoint
from studio.runtime import ModelCache
from tests.image_models import TINY_SD, write_models_file
from tests.tiny_families import build_tiny_flux, build_tiny_sd3

SD3_ID, SCHNELL_ID, DEV_ID = "tiny-sd3", "tiny-flux-schnell", "tiny-flux-dev"
TASKS = '["txt2img", "img2img", "inpaint", "restyle"]'


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {
        SD3_ID: build_tiny_sd3(root / "sd3"),
        SCHNELL_ID: build_tiny_flux(root / "schnell"),
        DEV_ID: build_tiny_flux(root / "dev", guidance_embeds=True),
    }


@pytest.fixture(scope="module")
def backend(folders, tmp_path_factory) -> DiffusionBackend:
    models = tmp_path_factory.mktemp("families-models") / "models.toml"
    models.write_text("".join(
        f'[[model]]\nid = "{model_id}"\nname = "{model_id}"\nfamily = "diffusers"\ntasks = {TASKS}\npath = "{path}"\n\n'
        for model_id, path in folders.items()
    ), encoding="utf-8")
    return DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)


def sd3(**fields) -> ImageRequest:
    base = {"prompt": "a red cat", "model": SD3_ID, "steps": 2, "guidance": 2.0, "width": 64, "height": 64,
            "seed": 7, "decoder": "full"}
    return ImageRequest(**{**base, **fields})


def flux(model: str = SCHNELL_ID, **fields) -> ImageRequest:
    base = {"prompt": "a red cat", "model": model, "steps": 1, "guidance": 0.0, "width": 256, "height": 256,
            "seed": 7, "decoder": "full"}
    return ImageRequest(**{**base, **fields})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_the_family_is_told_from_the_loaded_pipeline(backend):
    sd3_family = families.family_of(backend.load(SD3_ID).pipe)
    schnell = families.family_of(backend.load(SCHNELL_ID).pipe)
    dev = families.family_of(backend.load(DEV_ID).pipe)
    assert (sd3_family.name, sd3_family.flow, sd3_family.negative_prompt, sd3_family.guidance) == (
        families.SD3, True, True, "cfg")
    assert (schnell.name, schnell.guidance, schnell.negative_prompt, schnell.size_multiple) == (
        families.FLUX, "none", False, 16)
    assert dev.guidance == "distilled"
    assert schnell.samplers == ("Euler",)
    # Native sizes: SD3 from its transformer's sample size; FLUX's transformer has none (1024, as trained).
    assert backend.load(SD3_ID).native_size == 64
    assert backend.load(SCHNELL_ID).native_size == 1024
    assert backend.native_size(SD3_ID) == 64 and backend.native_size(DEV_ID) == 1024


@pytest.mark.parametrize("make", [sd3, flux, lambda **f: flux(DEV_ID, guidance=3.5, **f)], ids=["sd3", "schnell", "dev"])
def test_same_seed_same_picture_and_another_seed_another(backend, make):
    # Image n of a batch is the single run with seed + n (within rounding: batched attention adds in
    # another order); the exact same request is exactly the same picture (see the metadata test).
    made = backend.generate(make(batch_size=2))
    again = backend.generate(make(seed=8)).images[0]
    assert made.images[0].size == (make().width, make().height)
    near = np.abs(pixels(made.images[1]) - pixels(again)).mean()
    far = np.abs(pixels(made.images[0]) - pixels(again)).mean()
    assert near < 1.0 and far > 10 * near


def test_flux_dev_reads_its_distilled_guidance_and_schnell_has_none(backend):
    low = backend.generate(flux(DEV_ID, guidance=1.0)).images[0]
    high = backend.generate(flux(DEV_ID, guidance=20.0)).images[0]
    assert np.abs(pixels(low) - pixels(high)).mean() > 0.5  # the guidance is an input of dev's transformer
    # schnell: 0 and 1 both mean no guidance, and make the same picture.
    assert np.array_equal(pixels(backend.generate(flux(guidance=0.0)).images[0]),
                          pixels(backend.generate(flux(guidance=1.0)).images[0]))


def test_the_shift_bends_the_flow_samplers_steps(backend):
    own = backend.generate(sd3()).images[0]
    shifted = backend.generate(sd3(shift=9.0)).images[0]
    assert np.abs(pixels(own) - pixels(shifted)).mean() > 0.5
    result = backend.generate(sd3(shift=9.0))
    assert result.params[0]["shift"] == 9.0 and "shift" not in backend.generate(sd3()).params[0]


@pytest.mark.parametrize("make,model", [(sd3, SD3_ID), (lambda **f: flux(DEV_ID, guidance=3.5, **f), DEV_ID)],
                         ids=["sd3", "dev"])
def test_metadata_parses_back_and_makes_the_same_pixels(backend, make, model):
    result = backend.generate(make(max_sequence_length=64))
    record = result.params[0]
    text = a1111_parameters(record)
    parsed = parse_a1111_parameters(text)
    if model == DEV_ID:  # as Forge writes FLUX.1-dev: no CFG, the distilled guidance apart
        assert "CFG scale: 1," in text and "Distilled CFG Scale: 3.5" in text
    values, notes = fields_from_parameters(parsed, backend.catalog)
    assert notes == []
    again = ImageRequest(**values)
    assert (again.model, again.guidance, again.max_sequence_length, again.seed) == (
        model, record["guidance"], 64, record["seed"])
    assert np.array_equal(pixels(backend.generate(again).images[0]), pixels(result.images[0]))


def test_img2img_changes_less_at_low_strength(backend):
    photo = Image.new("RGB", (64, 64), (200, 40, 40))
    photo.paste((30, 30, 220), (0, 0, 32, 64))

    def made(strength: float) -> np.ndarray:
        return pixels(backend.generate(sd3(mode="img2img", strength=strength, steps=10), image=photo).images[0])

    # The same seed's noise: a picture barely changed (one step of ten) is nearer one changed a little
    # (three) than one made anew (ten).
    barely = made(0.1)
    assert np.abs(made(0.3) - barely).mean() < np.abs(made(1.0) - barely).mean()


def test_flux_img2img_runs_at_its_strength(backend):
    photo = Image.new("RGB", (256, 256), (200, 40, 40))
    seen: list[tuple[int, int]] = []
    result = backend.generate(flux(mode="img2img", strength=0.5, steps=4), image=photo,
                              progress=lambda done, total, preview=None: seen.append((done, total)))
    assert result.images[0].size == (256, 256) and seen[-1] == (2, 2)  # half the steps: strength 0.5


def test_inpaint_keeps_what_the_mask_leaves(backend):
    photo = Image.new("RGB", (64, 64), (200, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    made = backend.generate(sd3(mode="inpaint", strength=1.0, steps=2, mask_blur=0), image=photo, mask=mask).images[0]
    kept = pixels(made)[:, 40:]
    assert np.abs(kept - pixels(photo)[:, 40:]).max() == 0  # pasted back outside the mask


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda: flux(negative_prompt="blurry"), "takes no negative prompt"),
        (lambda: flux(guidance=3.5), "guidance-free"),
        (lambda: flux(width=264), "multiple of 16 px"),
        (lambda: sd3(sampler="DPM++ 2M"), "flow-matching model: its sampler is Euler"),
        (lambda: sd3(max_sequence_length=513), "must be from 0"),
        (lambda: flux(hires_scale=1.5, hires_upscaler="Latent"), "Latent upscalers work on SD latents"),
    ],
    ids=["negative", "schnell-guidance", "size", "sampler", "t5-length", "latent-hires"],
)
def test_what_a_family_does_not_take_is_refused_in_one_sentence(backend, make, words):
    with pytest.raises(InputError) as refused:
        backend.generate(make())
    message = str(refused.value)
    assert words in message and "\n" not in message


def test_shift_and_t5_length_are_refused_on_unet_models():
    fake = type("StableDiffusionPipeline", (), {})()
    family = families.family_of(fake)
    with pytest.raises(InputError, match="flow-matching models"):
        families.check_request(family, ImageRequest(prompt="a cat", shift=3.0), "Tiny SD")
    with pytest.raises(InputError, match="no T5"):
        families.check_request(family, ImageRequest(prompt="a cat", max_sequence_length=77), "Tiny SD")


def _header_only_file(path: Path, names: list[str]) -> Path:
    """A .safetensors file whose header lists these tensors (each one fp16 number)."""
    header = {name: {"dtype": "F16", "shape": [1], "data_offsets": [2 * i, 2 * i + 2]} for i, name in enumerate(names)}
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0\0" * len(names))
    return path


def test_sd3_and_flux_checkpoints_in_a_folder_are_offered(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    _header_only_file(folder / "flux1-schnell.safetensors", ["double_blocks.0.img_attn.qkv.weight"])
    _header_only_file(folder / "sd3.5_medium.safetensors", ["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight"])
    assert inspect_checkpoint(folder / "flux1-schnell.safetensors").family == FLUX
    assert inspect_checkpoint(folder / "sd3.5_medium.safetensors").problem is None
    catalog = load_catalog(None, checkpoint_folders=(folder,))
    names = {entry.name for entry in catalog.for_task("txt2img") if entry.source == "local"}
    assert names == {"flux1-schnell (FLUX)", "sd3.5_medium (SD 3.x)"}


def test_catalogue_has_the_families_with_their_licences():
    catalog = load_catalog(None)
    schnell = catalog.get("black-forest-labs/FLUX.1-schnell")
    dev = catalog.get("black-forest-labs/FLUX.1-dev")
    medium = catalog.get("stabilityai/stable-diffusion-3.5-medium")
    assert schnell.licence == "Apache-2.0" and schnell.commercial_use and not schnell.gated
    assert "Non-Commercial" in dev.licence and not dev.commercial_use and dev.gated
    assert medium.gated and not medium.commercial_use and medium.size_mb > 10_000
    assert "hf auth login" in dev.gate_text() and schnell.gate_text() == ""


def test_a_flow_record_reruns_through_the_request(backend):
    record = backend.generate(flux(DEV_ID, guidance=3.5)).params[0]
    assert record["family"] == families.FLUX and record["guidance_kind"] == "distilled"
    assert "negative_prompt" in record  # the request's own fields all there
    from studio.services.records import known_fields

    again = ImageRequest(**known_fields(ImageRequest, record))
    assert again == replace(flux(DEV_ID, guidance=3.5), seed=record["seed"])


def test_a_flux_transformer_file_loads_with_its_base_models_other_parts(folders, tmp_path):
    """A transformer alone (here in diffusers' layout) in the checkpoints folder: its text encoders and VAE
    come from FLUX.1-schnell on this machine (a local copy of that catalogue model), and with the same
    weights it makes the very same picture."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    shutil.copy(folders[SCHNELL_ID] / "transformer" / "diffusion_pytorch_model.safetensors",
                checkpoints / "my-flux.safetensors")
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "black-forest-labs/FLUX.1-schnell"\nname = "FLUX.1 [schnell]"\n'
                      f'family = "diffusers"\ntasks = {TASKS}\npath = "{folders[SCHNELL_ID]}"\n', encoding="utf-8")
    catalog = load_catalog(models, checkpoint_folders=(checkpoints,))
    assert catalog.get("my-flux").name == "my-flux (FLUX)"
    backend = DiffusionBackend(ModelCache(4096), catalog, device="cpu", offline=True)
    from_file = backend.generate(flux("my-flux")).images[0]
    from_folder = backend.generate(flux("black-forest-labs/FLUX.1-schnell")).images[0]
    assert np.array_equal(pixels(from_file), pixels(from_folder))

    alone = DiffusionBackend(ModelCache(4096), load_catalog(None, checkpoint_folders=(checkpoints,)), device="cpu",
                             offline=True)
    with pytest.raises(StudioError) as missing:
        alone.generate(flux("my-flux"))
    assert "holds only a FLUX transformer" in str(missing.value)
    assert "python -m studio download black-forest-labs/FLUX.1-schnell" in str(missing.value)


def test_a_model_bigger_than_the_free_memory_is_refused_before_loading(folders, tmp_path):
    from studio.backends.diffusion import memory

    files = memory.weight_files(folders[DEV_ID], None)
    assert {f.parent.name for f in files} == {"transformer", "text_encoder", "text_encoder_2", "vae"}
    weights = sum(f.stat().st_size for f in files)  # stored in fp32: loaded in fp32 the same size (+ headers)
    assert memory.needed_mb(files, 4) == pytest.approx(weights / 2**20 * memory.OVERHEAD, rel=0.05)
    assert memory.needed_mb(files, 2) == pytest.approx(memory.needed_mb(files, 4) / 2, rel=0.01)
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "{DEV_ID}"\nname = "Tiny dev"\nfamily = "diffusers"\ntasks = {TASKS}\n'
                      f'path = "{folders[DEV_ID]}"\n', encoding="utf-8")
    small = DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True)
    small.free_memory_mb = lambda: 0.05  # a machine with 50 KB free
    with pytest.raises(StudioError) as refused:
        small.generate(flux(DEV_ID, guidance=3.5))
    assert "'Tiny dev' needs about" in str(refused.value) and "0.0 GB free" in str(refused.value)
    assert small.cache.keys() == []  # nothing loaded


def test_a_lora_applies_to_flux_through_its_own_loader(folders, tmp_path):
    """A LoRA for the FLUX transformer (diffusers' key layout) changes the picture; the record names it."""
    import torch
    from safetensors.torch import save_file

    loras = tmp_path / "loras"
    loras.mkdir()
    generator = torch.Generator().manual_seed(0)
    weights = {}
    for projection in ("to_q", "to_k", "to_v"):
        key = f"transformer.transformer_blocks.0.attn.{projection}"
        weights[f"{key}.lora_A.weight"] = torch.randn(4, 32, generator=generator)
        weights[f"{key}.lora_B.weight"] = torch.randn(32, 4, generator=generator)
    save_file(weights, str(loras / "inkflux.safetensors"))
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "{SCHNELL_ID}"\nname = "Tiny schnell"\nfamily = "diffusers"\ntasks = {TASKS}\n'
                      f'path = "{folders[SCHNELL_ID]}"\n', encoding="utf-8")
    backend = DiffusionBackend(ModelCache(4096), load_catalog(models), device="cpu", offline=True, lora_dirs=(loras,))
    plain = backend.generate(flux()).images[0]
    with_lora = backend.generate(flux(prompt="a red cat <lora:inkflux:1>"))
    assert with_lora.params[0]["loras"][0]["name"] == "inkflux"
    assert np.abs(pixels(with_lora.images[0]) - pixels(plain)).mean() > 0.5
    # Taken off again for the next run without it: the plain picture comes back exactly.
    assert np.array_equal(pixels(backend.generate(flux()).images[0]), pixels(plain))


def test_automatic1111_callers_reach_flux_guidance_shift_and_t5_length(folders, tmp_path, tiny_sd_path,
                                                                      tiny_taesd_path):
    """Forge's `distilled_cfg_scale` is FLUX.1 [dev]'s guidance; `shift` and `max_sequence_length` reach the
    flow models; each is said not to be honoured on a model without it."""
    from studio.api.a1111 import A1111Api
    from studio.api.fields import Fields
    from studio.api.gate import Caller, Gate
    from studio.catalog import load_catalog as read_models
    from studio.services import Studio
    from studio.settings import Settings

    models = write_models_file(tmp_path / "models", tiny_sd_path, tiny_taesd_path)
    models.write_text(models.read_text(encoding="utf-8") + "".join(
        f'\n[[model]]\nid = "{model_id}"\nname = "{model_id}"\nfamily = "diffusers"\ntasks = {TASKS}\npath = "{path}"\n'
        for model_id, path in folders.items()), encoding="utf-8")
    assert read_models(models).get(DEV_ID).path
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=models, offline=True, device="cpu"))
    api = A1111Api(Gate(studio))

    def asked(model: str, **body) -> tuple[ImageRequest, list[str]]:
        unhonoured: list[str] = []
        fields = Fields({"prompt": "a red cat", "override_settings": {"sd_model_checkpoint": model}, **body})
        request = api._request(fields, "txt2img", Caller("127.0.0.1", None), unhonoured)[0]
        return request, unhonoured

    request, unhonoured = asked(DEV_ID, cfg_scale=1, distilled_cfg_scale=3.5, shift=2.5, max_sequence_length=128)
    assert (request.guidance, request.shift, request.max_sequence_length, unhonoured) == (3.5, 2.5, 128, [])
    request, unhonoured = asked(DEV_ID, cfg_scale=7, distilled_cfg_scale=2)
    assert request.guidance == 2 and unhonoured == ["cfg_scale=7 (FLUX takes distilled_cfg_scale; true CFG is "
                                                    "not offered)"]
    request, unhonoured = asked(SCHNELL_ID, distilled_cfg_scale=3.5, shift=3)
    assert request.shift == 3 and unhonoured == ["distilled_cfg_scale"]
    request, unhonoured = asked(TINY_SD, shift=3, max_sequence_length=256, cfg_scale=5)
    assert (request.guidance, request.shift, request.max_sequence_length) == (5, 0.0, 0)
    assert unhonoured == ["shift", "max_sequence_length"]
