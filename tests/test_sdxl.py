"""SDXL all the way, on the tiny SDXL pipeline through the studio's own loading code: outpainting,
prompt walks (the pooled text embedding blended beside the tokens') and size conditioning for
pictures that are not square."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk
from studio.catalog import load_catalog
from studio.runtime import ModelCache
from tests.tiny_models import build_tiny_sdxl

TINY_SDXL = "tiny-sdxl"
SETTINGS = ImageRequest("walk", model=TINY_SDXL, decoder="full", width=64, height=64, steps=2, seed=1)


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> DiffusionBackend:
    folder = tmp_path_factory.mktemp("sdxl")
    path = build_tiny_sdxl(folder / "tiny-sdxl")
    models = folder / "models.toml"
    models.write_text(f'[[model]]\nid = "{TINY_SDXL}"\nname = "Tiny SDXL"\nfamily = "diffusers"\n'
                      f'tasks = ["txt2img", "img2img", "inpaint", "restyle", "image-walk"]\npath = "{path}"\n',
                      encoding="utf-8")
    return DiffusionBackend(ModelCache(2048), load_catalog(models), device="cpu", offline=True)


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


@pytest.mark.parametrize("guidance", [0.0, 3.0], ids=["unguided", "guided"])
def test_an_sdxl_prompt_walk_ends_on_the_image_tabs_own_pictures(backend, guidance):
    keys = (Keyframe("a red cat on the beach", 1), Keyframe("a blue dog in the snow", 2))
    settings = replace(SETTINGS, guidance=guidance, negative_prompt="blurry" if guidance else "")
    result = prompt_walk(backend, PromptWalkRequest(keyframes=keys, frames_between=1, settings=settings))
    assert len(result.frames) == 3
    first = backend.generate(replace(settings, prompt=keys[0].prompt, seed=1)).images[0]
    last = backend.generate(replace(settings, prompt=keys[1].prompt, seed=2)).images[0]
    assert np.array_equal(px(result.frames[0]), px(first)) and np.array_equal(px(result.frames[-1]), px(last))
    middle = px(result.frames[1])
    assert np.abs(middle - px(first)).mean() > 0.5 and np.abs(middle - px(last)).mean() > 0.5


def test_sdxl_outpaints_and_keeps_the_original(backend):
    photo = Image.new("RGB", (64, 64), (200, 40, 40))
    request = replace(SETTINGS, prompt="a red cat", mode="outpaint", extend_right=32, mask_blur=0, strength=1.0)
    made = backend.generate(request, image=photo).images[0]
    assert made.size == (96, 64)
    assert np.abs(px(made)[:, :56] - px(photo)[:, :56]).max() == 0  # the old picture untouched
    assert np.abs(px(made)[:, 72:] - 0).mean() > 1  # something drawn in the new part


def test_sdxl_size_conditioning_follows_a_picture_that_is_not_square(backend, monkeypatch):
    """SDXL reads (height, width) of the original and the target as conditions: a wide picture must say
    so (A1111 and diffusers agree: height first), or it comes out cropped-looking."""
    model = backend.load(TINY_SDXL)
    seen: list[tuple] = []
    unet = model.pipe.unet
    original_forward = unet.forward

    def recording(*args, **kwargs):
        seen.append(tuple(kwargs["added_cond_kwargs"]["time_ids"][0].tolist()))
        return original_forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", recording)
    backend.generate(replace(SETTINGS, prompt="a red cat", width=96, height=64))
    assert seen and seen[0] == (64.0, 96.0, 0.0, 0.0, 64.0, 96.0)
    seen.clear()
    backend.generate(replace(SETTINGS, prompt="a red cat", mode="img2img", width=96, height=64, strength=0.5),
                     image=Image.new("RGB", (300, 200), (20, 120, 40)))
    assert seen and seen[0][:2] == (64.0, 96.0) and seen[0][4:] == (64.0, 96.0)
