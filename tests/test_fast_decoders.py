"""The fast decoder follows the model's latent space: TAESD for SD 1.x/2.x, TAESDXL for SDXL, TAESD3 for SD 3.x,
TAEF1 for FLUX.1 (the form's TAESD default included), the full VAE where no tiny decoder fits or the fitting one
is not here (said, with the command that fetches it); the PNG says which one decoded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion.metadata import a1111_parameters, fast_decoder_label, fields_from_parameters
from studio.backends.diffusion.pipelines import latent_space_of
from studio.catalog import CatalogError, load_catalog
from studio.media.png_info import parse_a1111_parameters
from studio.runtime import ModelCache
from tests.tiny_families import build_tiny_flux, build_tiny_sd3
from tests.tiny_models import build_tiny_sdxl

TINY_SDXL, TINY_TAESD, TINY_TAESDXL = "tiny-sdxl", "tiny-taesd", "tiny-taesdxl"
SDXL_RUN = ImageRequest("a red cat", model=TINY_SDXL, decoder=TINY_TAESD, width=64, height=64, steps=2, seed=3)


def tiny_decoder(path: Path, seed: int, latent_channels: int = 4) -> Path:
    """A tiny AutoencoderTiny; the seed makes TAESD and TAESDXL stand-ins with different weights."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1),
                    latent_channels=latent_channels).save_pretrained(path, safe_serialization=True)
    return path


def entry(model_id: str, tasks: str, path: Path, extra: str = "") -> str:
    return f'[[model]]\nid = "{model_id}"\nfamily = "diffusers"\ntasks = [{tasks}]\npath = "{path}"\n{extra}\n'


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fast-decoders")
    build_tiny_sdxl(folder / "sdxl")
    tiny_decoder(folder / "taesd", seed=1)
    tiny_decoder(folder / "taesdxl", seed=2)
    return folder


def backend_with(folder: Path, name: str, *entries: str) -> DiffusionBackend:
    models = folder / f"{name}.toml"
    models.write_text("".join(entries), encoding="utf-8")
    return DiffusionBackend(ModelCache(2048), load_catalog(models), device="cpu", offline=True)


@pytest.fixture(scope="module")
def backend(folder) -> DiffusionBackend:
    return backend_with(
        folder, "both",
        entry(TINY_SDXL, '"txt2img", "img2img", "inpaint"', folder / "sdxl"),
        entry(TINY_TAESD, '"decode"', folder / "taesd"),
        entry(TINY_TAESDXL, '"decode"', folder / "taesdxl", 'latent_space = "sdxl"'),
    )


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_an_sdxl_model_asked_for_taesd_decodes_with_taesdxl(backend):
    asked_taesd = backend.generate(SDXL_RUN)
    asked_taesdxl = backend.generate(replace(SDXL_RUN, decoder=TINY_TAESDXL))
    full = backend.generate(replace(SDXL_RUN, decoder="full"))
    assert asked_taesd.params[0]["decoder"] == TINY_TAESDXL
    assert np.array_equal(px(asked_taesd.images[0]), px(asked_taesdxl.images[0]))
    assert np.abs(px(asked_taesd.images[0]) - px(full.images[0])).mean() > 1  # not the full VAE's picture
    assert not any("latent space" in note for note in asked_taesd.notes)
    assert "VAE: TAESDXL" in a1111_parameters(asked_taesd.params[0])


def test_taesdxl_is_the_decoder_that_makes_the_picture(backend, monkeypatch):
    model = backend.load(TINY_SDXL)
    taesdxl = backend.decoder(TINY_TAESDXL, model.pipe.unet.dtype)
    decoded: list[torch.Tensor] = []
    original = taesdxl.decode

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        decoded.append((out[0] if isinstance(out, tuple) else out.sample).float())
        return out

    monkeypatch.setattr(taesdxl, "decode", recording)
    made = px(backend.generate(SDXL_RUN).images[0])
    assert len(decoded) == 1
    expected = ((decoded[0][0].clamp(-1, 1) + 1) / 2 * 255).permute(1, 2, 0).numpy()
    assert np.abs(expected - made).max() <= 1.0


def test_a_picture_re_run_from_its_record_uses_the_same_decoder(backend):
    made = backend.generate(SDXL_RUN)
    again = backend.generate(replace(SDXL_RUN, decoder=made.params[0]["decoder"]))
    assert np.array_equal(px(made.images[0]), px(again.images[0]))


def test_a_missing_taesdxl_is_named_with_its_download_command(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    catalogue_decoders = backend_with(folder, "catalogue", entry(TINY_SDXL, '"txt2img"', folder / "sdxl"))
    result = catalogue_decoders.generate(replace(SDXL_RUN, decoder="madebyollin/taesd"))
    assert result.params[0]["decoder"] == "full"
    assert any("python -m studio download madebyollin/taesdxl" in note for note in result.notes)


@pytest.fixture(scope="module")
def flow_folder(folder) -> Path:
    build_tiny_flux(folder / "flux")
    build_tiny_sd3(folder / "sd3")
    tiny_decoder(folder / "taef1", seed=3, latent_channels=16)
    tiny_decoder(folder / "taesd3", seed=4, latent_channels=16)
    return folder


@pytest.mark.parametrize(("model", "decoder", "space", "label", "side"), [("flux", "taef1", "flux", "TAEF1", 256),
                                                                          ("sd3", "taesd3", "sd3", "TAESD3", 64)])
def test_a_flow_model_asked_for_taesd_decodes_with_its_own_tiny_decoder(flow_folder, model, decoder, space, label,
                                                                        side):
    backend = backend_with(
        flow_folder, f"flow-{model}",
        entry(f"tiny-{model}", '"txt2img", "img2img"', flow_folder / model),
        entry(TINY_TAESD, '"decode"', flow_folder / "taesd"),
        entry(f"tiny-{decoder}", '"decode"', flow_folder / decoder, f'latent_space = "{space}"'),
    )
    run = ImageRequest("a red cat", model=f"tiny-{model}", decoder=TINY_TAESD, width=side, height=side, steps=2,
                       guidance=0.0, seed=5)
    assert backend.load(f"tiny-{model}").latent_space == space
    asked_taesd = backend.generate(run)
    asked_directly = backend.generate(replace(run, decoder=f"tiny-{decoder}"))
    full = backend.generate(replace(run, decoder="full"))
    assert asked_taesd.params[0]["decoder"] == f"tiny-{decoder}"
    assert np.array_equal(px(asked_taesd.images[0]), px(asked_directly.images[0]))
    assert np.abs(px(asked_taesd.images[0]) - px(full.images[0])).mean() > 1  # not the full VAE's picture
    assert asked_taesd.images[0].size == (side, side)
    assert f"VAE: {label}" in a1111_parameters(asked_taesd.params[0])
    # The picture to picture mode encodes with the tiny decoder's encoder, at the model's scale.
    again = backend.generate(replace(run, mode="img2img", strength=0.5), image=asked_taesd.images[0])
    assert again.params[0]["decoder"] == f"tiny-{decoder}" and again.images[0].size == (side, side)


@pytest.mark.parametrize(("model", "decoder", "space", "side"), [("flux", "taef1", "flux", 256),
                                                                  ("sd3", "taesd3", "sd3", 64)])
def test_a_flow_model_shows_each_step_through_its_tiny_decoder(flow_folder, model, decoder, space, side):
    backend = backend_with(
        flow_folder, f"preview-{model}",
        entry(f"tiny-{model}", '"txt2img"', flow_folder / model),
        entry(f"tiny-{decoder}", '"decode"', flow_folder / decoder, f'latent_space = "{space}"'),
    )
    run = ImageRequest("a red cat", model=f"tiny-{model}", decoder=f"tiny-{decoder}", width=side, height=side * 2,
                       steps=3, guidance=0.0, seed=5)
    tiny = backend.decoder(f"tiny-{decoder}", backend.load(f"tiny-{model}").pipe.transformer.dtype)
    decoded: list[torch.Tensor] = []
    original = tiny.decode

    def recording(latents, *args, **kwargs):
        decoded.append(latents.detach().float().clone())
        return original(latents, *args, **kwargs)

    seen: list = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiny, "decode", recording)
        made = backend.generate(run, progress=lambda done, total, preview=None: seen.append(preview))
    previews = [preview for preview in seen if preview is not None]
    assert len(previews) == 3 and all(p.size == (side // 2, side) for p in previews)  # one a step
    # Each preview decodes that step's latents, unpacked to the picture's shape; the last step's are the
    # picture's own, so its preview is the picture at half size.
    assert len(decoded) == 4 and all(d.shape == (1, 16, side * 2 // 8, side // 8) for d in decoded)
    assert all(not torch.equal(a, b) for a, b in zip(decoded, decoded[1:3], strict=False))
    assert torch.equal(decoded[2], decoded[3])
    final = made.images[0].resize((side // 2, side), Image.Resampling.BILINEAR)
    assert np.abs(px(previews[-1]) - px(final)).mean() < 3

    full_vae: list = []
    backend.generate(replace(run, decoder="full"), progress=lambda done, total, preview=None: full_vae.append(preview))
    assert full_vae and not any(full_vae)  # a full decode each step would cost a third of the step on a CPU


def test_a_flow_model_whose_tiny_decoder_is_missing_names_its_download(flow_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    backend = backend_with(flow_folder, "flux-missing", entry("tiny-flux", '"txt2img"', flow_folder / "flux"),
                           entry(TINY_TAESD, '"decode"', flow_folder / "taesd"))
    result = backend.generate(ImageRequest("a red cat", model="tiny-flux", decoder=TINY_TAESD, width=256, height=256,
                                           steps=1, guidance=0.0, seed=5))
    assert result.params[0]["decoder"] == "full"
    assert any("python -m studio download madebyollin/taef1" in note for note in result.notes)


def test_the_latent_space_is_told_from_the_vae():
    def vae(channels: int, scaling: float) -> SimpleNamespace:
        return SimpleNamespace(latent_channels=channels, scaling_factor=scaling)

    assert latent_space_of(vae(4, 0.18215)) == "sd"
    assert latent_space_of(vae(4, 0.13025)) == "sdxl"
    assert latent_space_of(vae(16, 1.5305)) == "sd3"
    assert latent_space_of(vae(16, 0.3611)) == "flux"
    assert latent_space_of(vae(16, 0.18215)) is None  # no tiny decoder is trained on it: the full VAE decodes
    assert latent_space_of(vae(8, 0.3611)) is None


def test_the_model_manager_fetches_the_fitting_decoder_with_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    backend = DiffusionBackend(ModelCache(1024), load_catalog(None), device="cpu", offline=True)
    catalog = backend.catalog
    assert backend.decoder_to_fetch_with(catalog.get("stabilityai/sdxl-turbo")).id == "madebyollin/taesdxl"
    assert backend.decoder_to_fetch_with(catalog.get("stabilityai/sd-turbo")).id == "madebyollin/taesd"
    assert backend.decoder_to_fetch_with(catalog.get("black-forest-labs/FLUX.1-schnell")).id == "madebyollin/taef1"
    assert backend.decoder_to_fetch_with(catalog.get("flux1-dev-gguf-Q8_0")).id == "madebyollin/taef1"
    assert backend.decoder_to_fetch_with(catalog.get("stabilityai/stable-diffusion-3.5-medium")).id == \
        "madebyollin/taesd3"


def test_the_catalogue_knows_taesdxl_and_checks_a_decoders_latent_space(tmp_path):
    taesdxl = load_catalog(None).get("madebyollin/taesdxl")
    assert taesdxl.latent_space == "sdxl" and "decode" in taesdxl.tasks and taesdxl.licence == "MIT"
    models = tmp_path / "models.toml"
    for decoder_id, space in (("madebyollin/taesd3", "sd3"), ("madebyollin/taef1", "flux")):
        assert load_catalog(None).get(decoder_id).latent_space == space
    models.write_text(entry("my-decoder", '"decode"', tmp_path, 'latent_space = "sd4"'), encoding="utf-8")
    with pytest.raises(CatalogError, match="latent_space must be one of sd, sdxl, sd3, flux"):
        load_catalog(models)


@pytest.mark.parametrize(("decoder", "label"), [("madebyollin/taesd", "TAESD"), ("madebyollin/taesdxl", "TAESDXL"),
                                                ("madebyollin/taesd3", "TAESD3"), ("madebyollin/taef1", "TAEF1"),
                                                ("full", None), (None, None)])
def test_the_vae_line_names_the_tiny_decoder(decoder, label):
    assert fast_decoder_label(decoder) == label


@pytest.mark.parametrize(("vae", "decoder"), [("TAEF1", "madebyollin/taesd"), ("TAESDXL", "madebyollin/taesd"),
                                              ("ae.safetensors", "full")])
def test_another_tools_vae_line_reads_back_as_the_fast_decoder_or_the_full_vae(vae, decoder):
    text = f"a cat\nSteps: 4, Sampler: Euler, CFG scale: 1, Seed: 1, Size: 512x512, VAE: {vae}"
    values, _ = fields_from_parameters(parse_a1111_parameters(text), load_catalog(None))
    assert values["decoder"] == decoder
