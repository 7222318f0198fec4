"""The fast decoder follows the model's latent space: TAESD for SD 1.x/2.x, TAESDXL for SDXL (the form's
TAESD default included), the full VAE where no tiny decoder fits or the fitting one is not here (said, with
the command that fetches it); the PNG says which one decoded."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion.metadata import a1111_parameters, fast_decoder_label
from studio.catalog import CatalogError, load_catalog
from studio.runtime import ModelCache
from tests.tiny_families import build_tiny_flux
from tests.tiny_models import build_tiny_sdxl

TINY_SDXL, TINY_TAESD, TINY_TAESDXL = "tiny-sdxl", "tiny-taesd", "tiny-taesdxl"
SDXL_RUN = ImageRequest("a red cat", model=TINY_SDXL, decoder=TINY_TAESD, width=64, height=64, steps=2, seed=3)


def tiny_decoder(path: Path, seed: int) -> Path:
    """A tiny AutoencoderTiny; the seed makes TAESD and TAESDXL stand-ins with different weights."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                    num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1),
                    latent_channels=4).save_pretrained(path, safe_serialization=True)
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


def test_a_flow_model_has_no_tiny_decoder_and_keeps_its_vae(folder, tmp_path):
    flux = build_tiny_flux(tmp_path / "flux")
    backend = backend_with(folder, "flux", entry("tiny-flux", '"txt2img"', flux),
                           entry(TINY_TAESD, '"decode"', folder / "taesd"))
    model = backend.load("tiny-flux")
    assert model.latent_space is None
    assert backend.fast_decoder_for(model, TINY_TAESD) is None


def test_the_model_manager_fetches_the_fitting_decoder_with_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    backend = DiffusionBackend(ModelCache(1024), load_catalog(None), device="cpu", offline=True)
    catalog = backend.catalog
    assert backend.decoder_to_fetch_with(catalog.get("stabilityai/sdxl-turbo")).id == "madebyollin/taesdxl"
    assert backend.decoder_to_fetch_with(catalog.get("stabilityai/sd-turbo")).id == "madebyollin/taesd"
    assert backend.decoder_to_fetch_with(catalog.get("black-forest-labs/FLUX.1-schnell")) is None


def test_the_catalogue_knows_taesdxl_and_checks_a_decoders_latent_space(tmp_path):
    taesdxl = load_catalog(None).get("madebyollin/taesdxl")
    assert taesdxl.latent_space == "sdxl" and "decode" in taesdxl.tasks and taesdxl.licence == "MIT"
    models = tmp_path / "models.toml"
    models.write_text(entry("my-decoder", '"decode"', tmp_path, 'latent_space = "flux"'), encoding="utf-8")
    with pytest.raises(CatalogError, match="latent_space must be one of sd, sdxl"):
        load_catalog(models)


@pytest.mark.parametrize(("decoder", "label"), [("madebyollin/taesd", "TAESD"), ("madebyollin/taesdxl", "TAESDXL"),
                                                ("full", None), (None, None)])
def test_the_vae_line_names_the_tiny_decoder(decoder, label):
    assert fast_decoder_label(decoder) == label
