"""The image backend on the tiny SD pipeline, loaded through the studio's own loading code."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion import (
    SAMPLERS,
    DiffusionBackend,
    ImageRequest,
    a1111_parameters,
    fields_from_parameters,
    fit_size,
    steps_for_strength,
)
from studio.backends.diffusion.canvas import crop_around_mask
from studio.catalog import load_catalog
from studio.errors import Cancelled, InputError, ModelUnavailable, StudioError
from studio.runtime import CancelToken, ModelCache
from tests.image_models import TINY_SD, TINY_TAESD

BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11)


@pytest.fixture(scope="module")
def backend(catalog):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)


@pytest.fixture(scope="module")
def picture(backend):
    """A 64 px picture the tiny model made, used as the input of the other modes."""
    return backend.generate(replace(BASE, seed=1)).images[0]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_txt2img_is_deterministic_and_records_everything(backend):
    first = backend.generate(BASE)
    again = backend.generate(BASE)
    other = backend.generate(replace(BASE, seed=12))
    assert first.images[0].size == (64, 64)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    assert np.abs(pixels(first.images[0]) - pixels(other.images[0])).mean() > 1
    record = first.params[0]
    assert record["seed"] == 11 and record["model"] == TINY_SD and record["decoder"] == TINY_TAESD
    assert record["model_revision"] and record["dtype"] in ("bfloat16", "float32")
    assert (record["width"], record["height"], record["steps"], record["sampler"]) == (64, 64, 1, "Euler")


def test_a_random_seed_is_drawn_and_recorded(backend):
    result = backend.generate(replace(BASE, seed=None))
    seed = result.params[0]["seed"]
    assert isinstance(seed, int) and seed >= 0
    assert np.array_equal(pixels(result.images[0]), pixels(backend.generate(replace(BASE, seed=seed)).images[0]))


def test_a_batch_counts_seeds_up_and_each_picture_reproduces_alone(backend):
    batch = backend.generate(replace(BASE, batch_size=2, batch_count=2))
    assert [p["seed"] for p in batch.params] == [11, 12, 13, 14]
    assert len({pixels(i).tobytes() for i in batch.images}) == 4
    alone = backend.generate(replace(BASE, seed=13)).images[0]
    # The third picture came from the second batch, first slot: the same noise as a single run.
    assert np.abs(pixels(batch.images[2]) - pixels(alone)).max() <= 2


def test_every_sampler_runs_and_the_full_vae_decodes(backend):
    for name in SAMPLERS:
        result = backend.generate(replace(BASE, sampler=name, steps=2, guidance=3.0, negative_prompt="blurry",
                                          decoder="full", height=72))
        assert result.images[0].size == (64, 72), name
        assert result.params[0]["decoder"] == "full"
        assert pixels(result.images[0]).std() > 0, name


def test_progress_reports_steps_with_live_previews(backend):
    seen = []
    backend.generate(replace(BASE, steps=3), progress=lambda done, total, preview=None: seen.append((done, total,
                                                                                                   preview)))
    steps = [(d, t) for d, t, p in seen if p is not None]
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(p, Image.Image) and p.size == (32, 32) for *_, p in seen if p is not None)


def test_stop_ends_the_run_within_one_step(backend):
    token = CancelToken()
    steps = []

    def progress(done, total, preview=None):
        if preview is not None:
            steps.append(done)
            token.cancel()  # Stop pressed during the first step

    with pytest.raises(Cancelled):
        backend.generate(replace(BASE, steps=20, batch_count=3), progress=progress, cancel=token)
    assert steps == [1]


def test_img2img_follows_the_input_more_at_low_strength(backend, picture):
    gentle = backend.generate(replace(BASE, mode="img2img", steps=4, strength=0.25), picture).images[0]
    strong = backend.generate(replace(BASE, mode="img2img", steps=4, strength=1.0), picture).images[0]
    assert gentle.size == (64, 64)
    assert np.abs(pixels(gentle) - pixels(picture)).mean() < np.abs(pixels(strong) - pixels(picture)).mean()


def _square_mask(size=(64, 64), box=(24, 24, 40, 40)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


@pytest.mark.parametrize("only_masked", [True, False])
def test_inpaint_changes_the_mask_and_nothing_else(backend, picture, only_masked):
    request = replace(BASE, mode="inpaint", steps=2, mask_blur=2, only_masked=only_masked, padding=4, seed=5)
    result = backend.generate(request, picture, _square_mask()).images[0]
    before, after = pixels(picture), pixels(result)
    changed = (before != after).any(axis=-1)
    assert changed[24:40, 24:40].mean() > 0.5  # repainted
    # The feathered edge reaches at most 2 px (blur) + 1 px (grown mask) beyond the painted square.
    outside = np.ones_like(changed)
    outside[21:43, 21:43] = False
    assert not changed[outside].any()


def test_only_masked_works_at_full_resolution_on_a_crop(backend):
    big = Image.new("RGB", (128, 128), (90, 140, 200))
    mask = _square_mask((128, 128), (100, 100, 112, 112))
    request = replace(BASE, mode="inpaint", steps=2, mask_blur=0, only_masked=True, padding=4)
    result = backend.generate(request, big, mask).images[0]
    assert result.size == (128, 128)
    changed = (pixels(result) != pixels(big)).any(axis=-1)
    assert changed[100:112, 100:112].any() and not changed[:100].any() and not changed[:, :100].any()
    box = crop_around_mask(mask, 4, 1.0)
    assert box == (96, 96, 116, 116)


def test_outpaint_extends_and_keeps_the_middle(backend, picture):
    request = replace(BASE, mode="outpaint", steps=2, extend_right=16, extend_top=8, mask_blur=4, width=80, height=72)
    result = backend.generate(request, picture)
    extended = result.images[0]
    assert extended.size == (80, 72)
    # The seam is repainted `mask_blur` px into the picture (plus the feathering); the rest is untouched.
    middle = pixels(extended)[8 + 12 : 8 + 64, 0 : 64 - 12]
    assert np.array_equal(middle, pixels(picture)[12:, : 64 - 12])
    assert not np.array_equal(pixels(extended)[:8], np.repeat(pixels(picture)[:1], 8, axis=0))
    assert result.params[0]["extend_right"] == 16 and result.params[0]["task"] == "outpaint"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"width": 65}, "multiple of 8"),
        ({"height": 100}, "multiple of 8"),
        ({"steps": 0}, "at least 1 step"),
        ({"seed": -1}, "seed must be between 0"),
        ({"batch_size": 4, "batch_count": 16}, "limit is 32"),
        ({"batch_size": 1000}, "batch size must be between 1 and 8"),
        ({"prompt": "   "}, "Write a prompt"),
        ({"guidance": float("nan")}, "must be a number"),
        ({"sampler": "Heun++"}, "sampler must be one of"),
        ({"width": 4096}, "between 64 and 512 px for 'Tiny SD'"),
        ({"mode": "img2img", "strength": 0.5}, "use at least 2 steps"),
        ({"mode": "outpaint"}, "at least one side"),
        ({"mode": "inpaint"}, "Paint the area"),
    ],
)
def test_bad_requests_are_explained(backend, picture, change, words):
    request = replace(BASE, **change)
    image = picture if request.mode != "txt2img" else None
    with pytest.raises(InputError, match=words):
        backend.generate(request, image)


def test_an_empty_mask_is_explained(backend, picture):
    with pytest.raises(InputError, match="mask is empty"):
        backend.generate(replace(BASE, mode="inpaint"), picture, Image.new("L", (64, 64), 0))


def test_a_missing_fast_decoder_falls_back_to_the_full_vae_with_a_note(backend):
    result = backend.generate(replace(BASE, decoder="madebyollin/taesd"))
    assert result.params[0]["decoder"] == "full"
    assert any("python -m studio download madebyollin/taesd" in note for note in result.notes)


def test_a_missing_model_offline_is_one_clear_message(catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    backend = DiffusionBackend(ModelCache(1024), catalog, device="cpu", offline=True)
    with pytest.raises(ModelUnavailable) as caught:
        backend.generate(replace(BASE, model="stabilityai/sd-turbo"))
    message = str(caught.value)
    for words in ("SD-Turbo", "2.5 GB", "python -m studio download stabilityai/sd-turbo", "--models-file"):
        assert words in message


def test_a_single_file_checkpoint_without_its_configs_offline_is_explained(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    checkpoint = tmp_path / "my-model.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3),
               "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(8, 768)},
              str(checkpoint))
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "mine"\nfamily = "diffusers"\ntasks = ["txt2img"]\npath = "{checkpoint}"\n')
    backend = DiffusionBackend(ModelCache(1024), load_catalog(models), device="cpu", offline=True)
    with pytest.raises(StudioError, match="my-model.safetensors could not be loaded: offline") as caught:
        backend.generate(replace(BASE, model="mine"))
    assert 'config = "' in str(caught.value)


def test_parameters_round_trip_through_the_a1111_text(backend, catalog):
    request = replace(BASE, prompt="a cat, oil: thick\nsecond line", negative_prompt="blurry, ugly", steps=2,
                      guidance=1.5, sampler="DPM++ 2M Karras", height=72, seed=77)
    result = backend.generate(request)
    text = a1111_parameters(result.params[0])
    assert "Sampler: DPM++ 2M, Schedule type: Karras" in text and "Seed: 77" in text and "Size: 64x72" in text
    from studio.media.png_info import parse_a1111_parameters

    values, notes = fields_from_parameters(parse_a1111_parameters(text), catalog)
    assert notes == []
    again = backend.generate(ImageRequest(**values))
    assert np.array_equal(pixels(again.images[0]), pixels(result.images[0]))


def test_parameters_written_by_another_tool_are_read(catalog):
    from studio.media.png_info import parse_a1111_parameters

    text = (
        "masterpiece, a cat\nwearing a hat\nNegative prompt: lowres, bad anatomy\n"
        'Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 3355006445, Size: 512x768, '
        'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.7, '
        'Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.6.0'
    )
    values, notes = fields_from_parameters(parse_a1111_parameters(text), catalog)
    assert values["prompt"] == "masterpiece, a cat\nwearing a hat"
    assert values["negative_prompt"] == "lowres, bad anatomy"
    assert (values["steps"], values["guidance"], values["seed"]) == (20, 7.0, 3355006445)
    assert (values["width"], values["height"], values["strength"]) == (512, 768, 0.7)
    assert values["sampler"] == "DPM++ 2M Karras" and values["decoder"] == "full"
    assert "model" not in values and any("v1-5-pruned-emaonly" in n for n in notes)
    old_style = parse_a1111_parameters("a cat\nSteps: 4, Sampler: Euler a, CFG scale: 1, Seed: 2, Size: 64x64, "
                                       "Model: tiny-sd")
    values, _ = fields_from_parameters(old_style, catalog)
    assert values["sampler"] == "Euler a" and values["model"] == TINY_SD


def test_working_sizes_keep_the_shape_in_multiples_of_8():
    assert fit_size(1024, 512, 512) == (728, 360)
    assert fit_size(300, 300, 512) == (512, 512)
    w, h = fit_size(641, 480, 512)
    assert w % 8 == 0 and h % 8 == 0 and abs(w / h - 641 / 480) < 0.05


@pytest.mark.parametrize("steps, strength, expected", [(1, 0.5, 2), (2, 0.5, 2), (1, 0.3, 4), (1, 0.1, 10),
                                                       (1, 0.05, 20), (1, 1.0, 1), (3, 0.35, 3), (1, 0.35, 3)])
def test_steps_for_strength_is_the_fewest_that_run_one(steps, strength, expected):
    needed = steps_for_strength(steps, strength)
    assert needed == expected
    assert int(needed * strength) >= 1 and (needed == steps or int((needed - 1) * strength) < 1)
