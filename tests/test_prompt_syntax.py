"""AUTOMATIC1111's prompt syntax: the parser on its documented examples, the chunked and weighted
encoding against diffusers' own, and pictures made through the DiffusionBackend on the tiny SD model."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest, a1111_parameters, pipelines
from studio.backends.diffusion.prompts import (
    MAX_WEIGHT,
    UNSUPPORTED_NOTE,
    NetworkTag,
    chunks,
    encode,
    encode_pair,
    parse_attention,
    parse_prompt,
    prompt_inputs,
)
from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk
from studio.catalog import load_catalog
from studio.errors import InputError
from studio.runtime import ModelCache
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11)
# 48 two-word phrases, each word one token of the tiny tokenizer: 143 tokens with the commas.
LONG = ", ".join(["blue dog", "sunset sky", "red sky", "watercolor mountains"] * 12)


def flat(text: str) -> list[tuple[str, float] | str]:
    """The parse as one list, "BREAK" between sections, weights rounded for comparison."""
    out: list[tuple[str, float] | str] = []
    for n, section in enumerate(parse_attention(text)):
        if n:
            out.append("BREAK")
        out.extend((piece, round(weight, 6)) for piece, weight in section)
    return out


# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("a (word)", [("a ", 1.0), ("word", 1.1)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("((word))", [("word", 1.21)]),
        ("(word:1.5)", [("word", 1.5)]),
        ("(word: 0.25 )", [("word", 0.25)]),
        ("(word:-0.5)", [("word", -0.5)]),
        ("[word]", [("word", round(1 / 1.1, 6))]),
        ("[[word]]", [("word", round(1 / 1.21, 6))]),
        ("((a) b)", [("a", 1.21), (" b", 1.1)]),
        ("((house:1.3))", [("house", 1.43)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("\\(escaped\\) \\[too\\] \\\\", [("(escaped) [too] \\", 1.0)]),
        ("(a \\(b\\))", [("a (b)", 1.1)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        # Unbalanced: an unclosed bracket weighs the rest, a stray closing one is a character.
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("a (b c", [("a ", 1.0), ("b c", 1.1)]),
        ("a)", [("a)", 1.0)]),
        ("a] b", [("a] b", 1.0)]),
        ("[a", [("a", round(1 / 1.1, 6))]),
        ("(a]", [("a]", 1.1)]),
        # Colons: only ":number)" inside a round bracket is a weight.
        ("a:b", [("a:b", 1.0)]),
        ("time: 5 o'clock", [("time: 5 o'clock", 1.0)]),
        ("(a:b)", [("a:b", 1.1)]),
        ("a:1.5) b", [("a:1.5) b", 1.0)]),
        ("(a:nan)", [("a:nan", 1.1)]),
        ("(a:1e9)", [("a:1e9", 1.1)]),
        ("a\\b", [("ab", 1.0)]),  # A1111 drops a backslash that escapes nothing
        ("", []),
    ],
)
def test_attention_follows_automatic1111(text, expected):
    assert flat(text) == expected


def test_the_example_from_automatic1111s_documentation():
    assert flat("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).") == [
        ("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
        (", sun, ", 1.1), ("sky", 1.4641), (".", 1.1),
    ]


def test_break_starts_a_new_section_only_as_an_upper_case_word():
    assert flat("a castle BREAK second chunk") == [("a castle", 1.0), "BREAK", ("second chunk", 1.0)]
    assert flat("(gold BREAK light)") == [("gold", 1.1), "BREAK", ("light", 1.1)]
    assert flat("BREAK a") == ["BREAK", ("a", 1.0)]
    assert flat("break a BREAKING aBREAK") == [("break a BREAKING aBREAK", 1.0)]
    assert not parse_prompt("a (b:1.0) c").weighted and parse_prompt("a (b:1.0) c").plain
    assert not parse_prompt("a BREAK b").plain


def test_extra_network_tags_leave_the_text_and_are_returned():
    parsed = parse_prompt("a castle <lora:film_grain:0.6>, (gold:1.2) <hypernet:ink> <lora:x:te=0.5>")
    assert parsed.networks == (
        NetworkTag("lora", "film_grain", 0.6), NetworkTag("hypernet", "ink", 1.0), NetworkTag("lora", "x", 1.0),
    )
    assert "<" not in parsed.text and "lora" not in parsed.text
    assert parse_prompt("a castle <lora:film_grain:0.6>, (gold:1.2)").sections == ((("a castle , ", 1.0),
                                                                                  ("gold", 1.2)),)
    with pytest.raises(InputError, match="'strong' is not a number"):
        parse_prompt("<lora:film_grain:strong>")
    # Another tool's tag is taken out as A1111 takes it out, whatever its fields say.
    other = parse_prompt("a cat <wildcard:colours:any>")
    assert other.networks == (NetworkTag("wildcard", "colours", 1.0),) and other.text == "a cat "


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("(a:1.2.3)", "'1.2.3' is not a number"),
        ("(a:.)", "'.' is not a number"),
        ("(a:" + "9" * 400 + ")", "too large"),
        (f"(a:{MAX_WEIGHT * 2:g})", "between -10 and 10"),
        ("(a:-11)", "between -10 and 10"),
        ("(" * 30 + "a", "comes to 17.4494"),  # 1.1 ** 30, from brackets alone
    ],
)
def test_weights_that_mean_nothing_are_refused_in_one_sentence(text, words):
    with pytest.raises(InputError, match=words) as refused:
        parse_prompt(text)
    assert str(refused.value).count(". ") == 0 and len(str(refused.value)) < 120


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from([*"ab ,:()[]\\<>.1-9", " BREAK ", "BREAK", "lora", "\u00e9", "\x00"]), max_size=40)
       .map("".join))
def test_any_text_reads_as_weighted_pieces_or_one_clear_refusal(text):
    try:
        parsed = parse_prompt(text)
    except InputError as refused:
        assert str(refused).endswith(".") and "\n" not in str(refused)
        return
    for section in parsed.sections:
        for piece, weight in section:
            assert piece and math.isfinite(weight) and abs(weight) <= MAX_WEIGHT


def test_a_ten_thousand_character_prompt_is_read_quickly_and_refused_clearly(backend):
    prompt = "a red cat, (a blue dog:1.2), [sunset] " * 264
    assert len(prompt) > 10_000
    started = time.perf_counter()
    parsed = parse_prompt(prompt)
    nested = parse_prompt("(a " * 1700 + ":1)" * 1700)  # deep nesting, every range weighed
    assert time.perf_counter() - started < 2.0
    assert len(parsed.sections) == 1 and len(parsed.sections[0]) == 4 * 264 + 1
    assert parsed.sections[0][:4] == (("a red cat, ", 1.0), ("a blue dog", 1.2), (", ", 1.0), ("sunset", 1 / 1.1))
    assert nested.sections == ((("a " * 1700, 1.0),),)
    with pytest.raises(InputError, match="limited to 2000 characters"):
        backend.generate(replace(BASE, prompt=prompt))


# -- encoding -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend(catalog):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)


@pytest.fixture(scope="module")
def fp32_pipe(tiny_sd_path):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(tiny_sd_path, dtype=torch.float32, use_safetensors=True)


def test_a_plain_prompt_encodes_as_diffusers_encodes_it(backend, fp32_pipe):
    for pipe in (fp32_pipe, backend.load(TINY_SD).pipe):
        for text in ("a red cat on the beach", "", "watercolor, mountains at sunset"):
            ours = encode(pipe, parse_prompt(text)).embeds
            theirs, _ = pipe.encode_prompt(text, pipe.device, 1, False)
            assert ours.shape == theirs.shape == (1, 77, 32) and ours.dtype == theirs.dtype
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_sd2_style_padding_matches_diffusers_too(tiny_sd_path, fp32_pipe):
    """SD 2.x tokenizers pad with "!" (id 0) after the end token, not with the end token."""
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tiny_sd_path / "tokenizer", pad_token="!")
    pipe = SimpleNamespace(tokenizer=tokenizer, text_encoder=fp32_pipe.text_encoder,
                           _execution_device=torch.device("cpu"))
    laid = chunks(pipe, parse_prompt("a red cat"))
    assert laid[0].ids[laid[0].length:] == (tokenizer.pad_token_id,) * (77 - laid[0].length)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    fp32_pipe_sd2 = type(fp32_pipe)(**{**fp32_pipe.components, "tokenizer": tokenizer})
    theirs, _ = fp32_pipe_sd2.encode_prompt("a red cat", torch.device("cpu"), 1, False)
    torch.testing.assert_close(encode(pipe, parse_prompt("a red cat")).embeds, theirs)


def test_a_long_prompt_takes_two_chunks_and_the_negative_is_padded_to_match(fp32_pipe):
    parsed = parse_prompt(LONG)
    laid = chunks(fp32_pipe, parsed)
    assert len(laid) == 2 and all(len(c.ids) == 77 for c in laid)
    assert laid[0].ids[0] == fp32_pipe.tokenizer.bos_token_id and laid[1].ids[0] == fp32_pipe.tokenizer.bos_token_id
    # A phrase cut by the 75th token moves whole to the next chunk, when a comma is near (A1111's way).
    vocab = fp32_pipe.tokenizer.get_vocab()
    shifted = chunks(fp32_pipe, parse_prompt("dog dog " + LONG))
    assert [c.length for c in shifted] == [1 + 74 + 1, 1 + 71 + 1]
    assert shifted[0].ids[74] == vocab[",</w>"] and shifted[1].ids[1:3] == (vocab["blue</w>"], vocab["dog</w>"])
    inputs = prompt_inputs(fp32_pipe, LONG, "blurry", guided=True, notes=[])
    assert inputs["prompt_embeds"].shape == (1, 154, 32)
    assert inputs["negative_prompt_embeds"].shape == (1, 154, 32)
    # The negative's second chunk is the empty prompt's encoding.
    empty, _ = fp32_pipe.encode_prompt("", torch.device("cpu"), 1, False)
    torch.testing.assert_close(inputs["negative_prompt_embeds"][:, 77:], empty, rtol=1e-5, atol=1e-5)


def test_break_starts_a_chunk_and_weights_scale_tokens_keeping_the_mean(fp32_pipe):
    broken = chunks(fp32_pipe, parse_prompt("red sky BREAK blue dog"))
    assert len(broken) == 2 and [c.length for c in broken] == [4, 4]
    plain = encode(fp32_pipe, parse_prompt("red dog")).embeds
    weighted_chunks = chunks(fp32_pipe, parse_prompt("red (dog:1.5)"))
    assert weighted_chunks[0].weights[:4] == (1.0, 1.0, 1.5, 1.0)
    weighted = encode(fp32_pipe, parse_prompt("red (dog:1.5)")).embeds
    torch.testing.assert_close(weighted.mean(), plain.mean())
    ratio = (weighted / plain)[0, :, 0]
    assert ratio[2].item() == pytest.approx(1.5 * ratio[1].item(), rel=1e-4)
    assert ratio[5].item() == pytest.approx(ratio[1].item(), rel=1e-4)


def test_plain_prompts_stay_strings_and_other_encoders_keep_them_with_a_note(fp32_pipe):
    assert prompt_inputs(fp32_pipe, "a red cat", "", guided=True, notes=[]) == {
        "prompt": "a red cat", "negative_prompt": None,
    }
    assert prompt_inputs(fp32_pipe, "a (red:1.0) cat <lora:x:1>", "blurry", guided=True, notes=[]) == {
        "prompt": "a red cat ", "negative_prompt": "blurry",
    }
    # Weights in a negative prompt only count under guidance.
    assert "prompt" in prompt_inputs(fp32_pipe, "a cat", "(blurry:1.4)", guided=False, notes=[])
    assert "prompt_embeds" in prompt_inputs(fp32_pipe, "a cat", "(blurry:1.4)", guided=True, notes=[])
    # A pipeline without CLIP text encoders (none in the catalogue today) gets the words, and a note.
    other = SimpleNamespace(tokenizer=None, text_encoder=None)
    notes: list[str] = []
    assert prompt_inputs(other, "a (red:1.3) cat BREAK sky", "", guided=False, notes=notes) == {
        "prompt": "a red cat sky", "negative_prompt": None,
    }
    assert notes == [UNSUPPORTED_NOTE]
    notes.clear()
    prompt_inputs(other, "a red cat", "", guided=False, notes=notes)
    assert notes == []


# -- pictures -------------------------------------------------------------------------------------


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def as_before(monkeypatch):
    """The backend as it ran before prompt syntax: the typed strings straight to diffusers."""

    def strings(_pipe, prompt, negative_prompt, _guided, _steps, _notes):
        return {"prompt": prompt, "negative_prompt": negative_prompt or None}

    monkeypatch.setattr(pipelines, "scheduled_inputs", strings)


@pytest.mark.parametrize(
    "request_",
    [
        BASE,
        replace(BASE, steps=2, guidance=3.0, negative_prompt="blurry, low quality", sampler="Euler a"),
        replace(BASE, mode="img2img", steps=2, strength=0.6, guidance=2.0, negative_prompt="ugly"),
    ],
    ids=["txt2img", "guided", "img2img"],
)
def test_a_prompt_without_syntax_makes_exactly_the_picture_it_made_before(backend, monkeypatch, request_):
    start = Image.new("RGB", (64, 64), (200, 120, 40))
    now = backend.generate(request_, start)
    with monkeypatch.context() as patch:
        as_before(patch)
        before = backend.generate(request_, start)
    assert np.array_equal(pixels(now.images[0]), pixels(before.images[0]))
    assert now.notes == before.notes


def test_a_weight_of_one_is_the_plain_word_and_other_weights_change_the_picture(backend):
    assert np.array_equal(
        pixels(backend.generate(BASE).images[0]),
        pixels(backend.generate(replace(BASE, prompt="a (red:1.0) cat on the beach")).images[0]),
    )
    # The tiny random model listens to its prompt only faintly; guidance and the full VAE show it best.
    guided = replace(BASE, prompt="a red dog on the beach", steps=2, guidance=5.0, decoder="full")
    plain = pixels(backend.generate(guided).images[0])

    def change(prompt: str) -> float:
        return float(np.abs(pixels(backend.generate(replace(guided, prompt=prompt)).images[0]) - plain).mean())

    assert change("a (red:1.0) dog on the beach") == 0.0
    other_prompt = change("a blue cat in the snow")
    slight, strong, weak = change("a (red:1.2) dog on the beach"), change("a (red:1.8) dog on the beach"), change(
        "a [red] dog on the beach"
    )
    print(f"mean change: other prompt {other_prompt:.3f}, x1.2 {slight:.3f}, x1.8 {strong:.3f}, [ ] {weak:.3f}")
    assert 0.0 < slight < strong and weak > 0.0
    assert strong > 0.2 * other_prompt


def test_the_typed_prompt_is_what_the_record_and_png_keep(backend):
    # (A LoRA tag now needs its file: tests/test_loras.py keeps those prompts as typed too.)
    typed = "a castle, (golden hour:1.3), [people] <hypernet:film_grain:0.6> BREAK sunset sky"
    result = backend.generate(replace(BASE, prompt=typed, guidance=2.0, steps=2,
                                      negative_prompt="(blurry:1.2), " + LONG))
    assert result.images[0].size == (64, 64) and pixels(result.images[0]).std() > 0
    assert result.params[0]["prompt"] == typed
    assert a1111_parameters(result.params[0]).splitlines()[0] == typed
    again = backend.generate(replace(BASE, prompt=typed, guidance=2.0, steps=2,
                                     negative_prompt="(blurry:1.2), " + LONG))
    assert np.array_equal(pixels(result.images[0]), pixels(again.images[0]))


def test_inpaint_and_outpaint_take_weighted_long_prompts(backend):
    start = Image.new("RGB", (64, 64), (90, 140, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    prompt = "(red dog:1.4), " + LONG
    inpainted = backend.generate(replace(BASE, prompt=prompt, mode="inpaint", steps=2, guidance=2.0), start, mask)
    outpainted = backend.generate(replace(BASE, prompt=prompt, mode="outpaint", steps=2, extend_right=16,
                                          width=80, height=64), start)
    assert inpainted.images[0].size == (64, 64) and outpainted.images[0].size == (80, 64)
    assert (pixels(inpainted.images[0]) != pixels(start)).any()


def test_walks_read_the_syntax_as_the_image_tab_does(backend):
    keys = (Keyframe("a (red:1.6) dog BREAK on the beach", 1), Keyframe(LONG, 2), Keyframe("a blue dog", 3))
    settings = replace(BASE, steps=2, guidance=2.0, negative_prompt="[blurry]")
    result = prompt_walk(backend, PromptWalkRequest(keyframes=keys, frames_between=1, settings=settings))
    assert len(result.frames) == 5
    for index, key in ((0, keys[0]), (2, keys[1]), (4, keys[2])):
        alone = backend.generate(replace(settings, prompt=key.prompt, seed=key.seed)).images[0]
        assert np.array_equal(pixels(result.frames[index]), pixels(alone))
    between = pixels(result.frames[1])
    assert not np.array_equal(between, pixels(result.frames[0])) and between.std() > 0


def test_a_walk_between_plain_prompts_blends_diffusers_own_encodings(backend):
    from studio.backends.diffusion.prompts import walk_embeddings

    pipe = backend.load(TINY_SD).pipe
    embeds = walk_embeddings(pipe, ["a red cat", "a blue dog"], "blurry", guided=True)
    for (positive, negative), text in zip(embeds, ["a red cat", "a blue dog"], strict=True):
        theirs = pipe.encode_prompt(text, pipe.device, 1, True, "blurry")
        assert torch.equal(positive, theirs[0]) and torch.equal(negative, theirs[1])


def test_weighted_embeddings_run_through_the_openvino_unet(catalog, tmp_path, monkeypatch):
    monkeypatch.setattr(pipelines, "cpu_has_native_bf16", lambda: False)  # the fp32 path OpenVINO takes
    accelerated = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=tmp_path)
    plain = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)
    request = replace(BASE, prompt="(red dog:1.4), " + LONG, negative_prompt="[blurry]", guidance=2.0, steps=2)
    fast = accelerated.generate(request)
    assert fast.params[0]["engine"].startswith("openvino")
    reference = plain.generate(request)
    assert np.abs(pixels(fast.images[0]) - pixels(reference.images[0])).mean() < 2.0


def test_encode_pair_without_guidance_leaves_the_negative_out(fp32_pipe):
    positive, negative = encode_pair(fp32_pipe, parse_prompt("(cat:1.2)"), None)
    assert positive.embeds.shape == (1, 77, 32) and positive.pooled is None and negative is None


def test_a_weighted_batch_counts_seeds_up_like_a_plain_one(backend):
    request = replace(BASE, prompt="a (red:1.3) cat BREAK " + LONG, guidance=2.0, negative_prompt="[blurry]")
    batch = backend.generate(replace(request, batch_size=2))
    alone = backend.generate(replace(request, seed=BASE.seed + 1)).images[0]
    assert [p["seed"] for p in batch.params] == [11, 12]
    assert np.abs(pixels(batch.images[1]) - pixels(alone)).max() <= 2


# -- SDXL: two text encoders and a pooled embedding ------------------------------------------------

TINY_SDXL = "tiny-sdxl"


@pytest.fixture(scope="module")
def sdxl_backend(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    from tests.tiny_models import build_tiny_sdxl

    sdxl_path = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))
    models = write_models_file(tmp_path_factory.mktemp("sdxl-models"), tiny_sd_path, tiny_taesd_path)
    models.write_text(
        models.read_text(encoding="utf-8") + f'\n[[model]]\nid = "{TINY_SDXL}"\nname = "Tiny SDXL"\n'
        f'family = "diffusers"\ntasks = ["txt2img", "img2img", "inpaint"]\npath = "{sdxl_path}"\n',
        encoding="utf-8",
    )
    return DiffusionBackend(ModelCache(2048), load_catalog(models), device="cpu", offline=True)


SDXL = replace(BASE, model=TINY_SDXL, decoder="full", prompt="a red dog on the beach")


def test_sdxl_embeddings_match_diffusers_own_for_a_plain_prompt(sdxl_backend):
    pipe = sdxl_backend.load(TINY_SDXL).pipe
    for text in ("a red dog on the beach", ""):
        ours = encode(pipe, parse_prompt(text))
        embeds, _, pooled, _ = pipe.encode_prompt(text, device=pipe.device, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
        assert ours.embeds.shape == embeds.shape == (1, 77, 64) and ours.pooled.shape == pooled.shape == (1, 32)
        torch.testing.assert_close(ours.embeds, embeds)
        torch.testing.assert_close(ours.pooled, pooled)
    # An empty negative prompt is zeros on this model (force_zeros_for_empty_prompt), as diffusers makes it.
    _, negative = encode_pair(pipe, parse_prompt("(red:1.2) dog"), parse_prompt(""))
    assert not negative.embeds.any() and not negative.pooled.any()
    inputs = prompt_inputs(pipe, "(red:1.2) dog, " + LONG, "blurry", guided=True, notes=[])
    assert inputs["prompt_embeds"].shape == inputs["negative_prompt_embeds"].shape == (1, 154, 64)
    assert inputs["pooled_prompt_embeds"].shape == inputs["negative_pooled_prompt_embeds"].shape == (1, 32)


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_sdxl_plain_prompts_make_the_same_picture_and_weights_change_it(sdxl_backend, monkeypatch, guidance):
    request = replace(SDXL, guidance=guidance, steps=2)
    now = sdxl_backend.generate(request)
    with monkeypatch.context() as patch:
        as_before(patch)
        before = sdxl_backend.generate(request)
    assert np.array_equal(pixels(now.images[0]), pixels(before.images[0]))
    same = sdxl_backend.generate(replace(request, prompt="a (red:1.0) dog on the beach"))
    assert np.array_equal(pixels(now.images[0]), pixels(same.images[0]))
    weighted = sdxl_backend.generate(replace(request, prompt="a (red:1.8) dog on the beach"))
    assert np.abs(pixels(weighted.images[0]) - pixels(now.images[0])).mean() > 0.05
    assert weighted.notes == now.notes


def test_sdxl_takes_long_and_broken_prompts_in_every_mode(sdxl_backend):
    prompt = "(red dog:1.3) BREAK " + LONG
    start = Image.new("RGB", (64, 64), (90, 140, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    made = [
        sdxl_backend.generate(replace(SDXL, prompt=prompt, guidance=2.0, negative_prompt="[blurry]", steps=2)),
        sdxl_backend.generate(replace(SDXL, prompt=prompt, mode="img2img", strength=0.7, steps=2), start),
        sdxl_backend.generate(replace(SDXL, prompt=prompt, mode="inpaint", steps=2, guidance=2.0), start, mask),
    ]
    for result in made:
        assert result.images[0].size == (64, 64) and pixels(result.images[0]).std() > 0
        assert result.params[0]["prompt"] == prompt


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_sdxl_prompt_editing_switches_the_pooled_embedding_too(sdxl_backend, guidance):
    pooled_by_step: list[torch.Tensor] = []
    unet = sdxl_backend.load(TINY_SDXL).pipe.unet

    def record(_module, _args, kwargs):
        pooled_by_step.append(kwargs["added_cond_kwargs"]["text_embeds"][-1].detach().float().clone())

    request = replace(SDXL, guidance=guidance, steps=4)
    pooled = {}
    hook = unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        for text in ("a red dog on the beach", "a blue cat on the beach", "a [red dog:blue cat:2] on the beach"):
            pooled_by_step.clear()
            sdxl_backend.generate(replace(request, prompt=text))
            pooled[text] = list(pooled_by_step)
    finally:
        hook.remove()
    edited, dog, cat = (pooled["a [red dog:blue cat:2] on the beach"], pooled["a red dog on the beach"],
                        pooled["a blue cat on the beach"])
    assert len(edited) == 4 and not torch.allclose(dog[0], cat[0])
    for step in range(4):
        assert torch.allclose(edited[step], (dog if step < 2 else cat)[step], atol=1e-5)
