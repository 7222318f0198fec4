"""The tiny stand-in models load back through the real ``from_pretrained`` paths and really run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.tiny_models import build_tiny_causal_lm

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
MESSAGES = [{"role": "user", "content": "Write a short poem about the sea"}]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def sd_pipe(tiny_sd_path):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def source_image(sd_pipe):
    return sd_pipe("a red cat", num_inference_steps=1, guidance_scale=0.0, generator=_generator(0)).images[0]


@pytest.mark.parametrize("fixture", ["tiny_sd_path", "tiny_taesd_path", "tiny_lm_path", "tiny_musicgen_path"])
def test_saved_weights_are_safetensors_only(fixture, request):
    folder = Path(request.getfixturevalue(fixture))
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert not [p for p in files if p.suffix in PICKLE_SUFFIXES]
    for weights in (p for p in files if p.suffix == ".safetensors"):
        assert weights.read_bytes()[8:9] == b"{"  # a safetensors header, not a zip/pickle


def test_sd_folder_is_laid_out_like_sd_turbo(tiny_sd_path):
    index = json.loads((tiny_sd_path / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    assert index["scheduler"] == ["diffusers", "EulerDiscreteScheduler"]
    assert index["safety_checker"] == [None, None]
    assert index["requires_safety_checker"] is False
    scheduler = json.loads((tiny_sd_path / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["timestep_spacing"] == "trailing"
    for name in ("vocab.json", "merges.txt"):
        assert (tiny_sd_path / "tokenizer" / name).is_file()


def test_clip_tokenizer_loads_from_vocab_and_merges_alone(tiny_sd_path, sd_pipe, tmp_path):
    from transformers import CLIPTokenizer

    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tiny_sd_path / "tokenizer" / name, tmp_path / name)
    plain = CLIPTokenizer.from_pretrained(tmp_path)
    text = "A watercolor painting of a horse, blurry!"
    ids = sd_pipe.tokenizer(text).input_ids
    assert plain(text).input_ids == ids
    assert ids[0] == sd_pipe.tokenizer.bos_token_id and ids[-1] == sd_pipe.tokenizer.eos_token_id
    assert sd_pipe.tokenizer.model_max_length == 77
    assert (
        sd_pipe.tokenizer.decode(ids, skip_special_tokens=True)
        == "a watercolor painting of a horse , blurry !"
    )


def test_txt2img_one_step_gives_requested_size(sd_pipe):
    image = sd_pipe(
        "a photo of a cat", num_inference_steps=1, guidance_scale=0.0, height=64, width=64
    ).images[0]
    assert isinstance(image, Image.Image)
    assert image.size == (64, 64)


def test_txt2img_non_square_size(sd_pipe):
    image = sd_pipe("a dog", num_inference_steps=1, guidance_scale=0.0, height=64, width=128).images[0]
    assert image.size == (128, 64)


def test_txt2img_seed_reproducible(sd_pipe):
    def run(seed):
        result = sd_pipe("a cat", num_inference_steps=1, guidance_scale=0.0, generator=_generator(seed))
        return _pixels(result.images[0])

    first, again, other = run(7), run(7), run(8)
    assert np.array_equal(first, again)
    assert np.abs(first - other).mean() > 1.0


def test_classifier_free_guidance_with_negative_prompt(sd_pipe):
    def run(guidance):
        result = sd_pipe(
            "a cat",
            negative_prompt="blurry, low quality",
            num_inference_steps=2,
            guidance_scale=guidance,
            generator=_generator(3),
        )
        return result.images[0]

    guided, plain = run(5.0), run(0.0)
    assert guided.size == (64, 64)
    assert np.abs(_pixels(guided) - _pixels(plain)).mean() > 1.0


def test_img2img_through_auto_pipeline(tiny_sd_path, source_image):
    from diffusers import AutoPipelineForImage2Image

    pipe = AutoPipelineForImage2Image.from_pretrained(tiny_sd_path)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "StableDiffusionImg2ImgPipeline"

    def run(seed):
        result = pipe(
            "a blue dog",
            image=source_image,
            strength=0.5,
            num_inference_steps=2,
            guidance_scale=0.0,
            generator=_generator(seed),
        )
        return result.images[0]

    first, again = run(1), run(1)
    assert isinstance(first, Image.Image) and first.size == (64, 64)
    assert np.array_equal(_pixels(first), _pixels(again))


def test_inpainting_through_auto_pipeline(tiny_sd_path, sd_pipe, source_image):
    from diffusers import AutoPipelineForInpainting

    pipe = AutoPipelineForInpainting.from_pretrained(tiny_sd_path)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline"
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    image = pipe(
        "a bird",
        image=source_image,
        mask_image=mask,
        strength=0.75,
        num_inference_steps=2,
        guidance_scale=0.0,
        height=64,
        width=64,
        generator=_generator(2),
    ).images[0]
    assert isinstance(image, Image.Image) and image.size == (64, 64)
    shared = AutoPipelineForInpainting.from_pipe(sd_pipe)
    assert type(shared).__name__ == "StableDiffusionInpaintPipeline"


def test_taesd_encodes_and_decodes_sd_latents(tiny_taesd_path):
    from diffusers import AutoencoderTiny

    vae = AutoencoderTiny.from_pretrained(tiny_taesd_path)
    assert vae.config.latent_channels == 4
    with torch.no_grad():
        latents = vae.encode(torch.rand(1, 3, 64, 64) * 2 - 1).latents
        assert latents.shape == (1, 4, 8, 8)
        decoded = vae.decode(torch.randn(2, 4, 8, 8, generator=_generator(0))).sample
    assert decoded.shape == (2, 3, 64, 64)
    assert torch.isfinite(decoded).all()


def test_taesd_replaces_the_pipeline_vae(tiny_sd_path, tiny_taesd_path):
    from diffusers import AutoencoderTiny, StableDiffusionPipeline

    taesd = AutoencoderTiny.from_pretrained(tiny_taesd_path)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_path, vae=taesd)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a cat", num_inference_steps=1, guidance_scale=0.0, generator=_generator(0)).images[0]
    assert image.size == (64, 64)


@pytest.fixture(scope="module")
def lm(tiny_lm_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_path), AutoModelForCausalLM.from_pretrained(tiny_lm_path)


def test_lm_tokenizer_special_tokens(lm):
    tokenizer, model = lm
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.bos_token == "<|im_start|>"
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token_id is not None
    assert model.config.eos_token_id == tokenizer.eos_token_id
    for token in ("<|im_start|>", "<|im_end|>"):
        assert len(tokenizer(token, add_special_tokens=False).input_ids) == 1
    assert tokenizer.decode(tokenizer("tell me a story").input_ids) == "tell me a story"


def test_lm_chat_template_holds_the_messages(lm):
    tokenizer, _ = lm
    text = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>user\nWrite a short poem about the sea<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    with_system = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    text = tokenizer.apply_chat_template(with_system, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_lm_greedy_generate_is_deterministic(lm):
    tokenizer, model = lm
    inputs = tokenizer.apply_chat_template(
        MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    prompt_length = inputs["input_ids"].shape[1]
    first = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    again = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert torch.equal(first, again)
    assert first.shape[1] > prompt_length
    assert isinstance(tokenizer.decode(first[0, prompt_length:], skip_special_tokens=True), str)


def test_lm_build_is_deterministic(tiny_lm_path, tmp_path):
    rebuilt = build_tiny_causal_lm(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (rebuilt / name).read_bytes() == (tiny_lm_path / name).read_bytes()


def test_musicgen_generates_audio(tiny_musicgen_path):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_musicgen_path)
    model = MusicgenForConditionalGeneration.from_pretrained(tiny_musicgen_path)
    sampling_rate = processor.feature_extractor.sampling_rate
    assert sampling_rate == model.config.audio_encoder.sampling_rate > 0
    inputs = processor(text=["a happy tune", "slow sad piano melody"], padding=True, return_tensors="pt")

    def run(seed):
        torch.manual_seed(seed)
        return model.generate(**inputs, max_new_tokens=8, do_sample=True, guidance_scale=3.0)

    audio = run(0)
    assert audio.dtype == torch.float32
    assert audio.ndim == 3 and audio.shape[:2] == (2, 1) and audio.shape[2] > 0
    assert torch.isfinite(audio).all()
    assert torch.equal(audio, run(0))
