"""AUTOMATIC1111's prompt editing (`[from:to:when]`, `[to:when]`, `[from::when]`, `[a|b]`): the
schedule on its documented examples, and the UNet of the tiny SD model seeing each version of the
prompt at the steps the schedule gives."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion.prompt_editing import prompt_schedule
from studio.errors import InputError
from studio.runtime import ModelCache
from tests.image_models import TINY_SD, TINY_TAESD

# The documented examples, over 10 steps: (prompt, [(last step, text)]).
DOCUMENTED = [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", [(step, "a" if step % 2 else "(b:1.1)") for step in range(1, 11)]),
    ("[fe|]male", [(step, "female" if step % 2 else "male") for step in range(1, 11)]),
    ("[fe|||]male", [(step, "female" if step % 4 == 1 else "male") for step in range(1, 11)]),
    ("a | b [c:2]", [(10, "a | b [c:2]")]),  # a "|" outside brackets: the prompt is used as written
]


@pytest.mark.parametrize(("prompt", "expected"), DOCUMENTED)
def test_the_schedule_follows_automatic1111s_examples(prompt, expected):
    assert prompt_schedule(prompt, 10) == expected


def test_the_wiki_example_over_a_hundred_steps():
    prompt = ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
              "[ in background:0.25] [shoddy:masterful:0.5]")
    assert prompt_schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


def test_deep_and_long_prompts_parse_without_failing():
    assert prompt_schedule("[" * 5000 + "x", 20) == [(20, "[" * 5000 + "x")]
    many = ", ".join(f"(word{i}:1.1) [a{i}:b{i}:{i % 9 + 1}]" for i in range(150))
    schedule = prompt_schedule(many, 30)
    assert [end for end, _ in schedule] == list(range(1, 10)) + [30]
    assert "b0" not in schedule[0][1] and "b149" in schedule[-1][1] and "a0" not in schedule[-1][1]


BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11,
                    steps=4, guidance=3.0, negative_prompt="blurry")


@pytest.fixture(scope="module")
def backend(catalog):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)


def conditioning_by_step(
    backend: DiffusionBackend, request: ImageRequest, half: int = -1
) -> tuple[list[torch.Tensor], np.ndarray]:
    """What the UNet is conditioned on at each step (the positive prompt's; half=0 the negative's), and
    the picture."""
    seen: list[torch.Tensor] = []
    unet = backend.load(request.model).pipe.unet

    def record(_module, args, kwargs):
        hidden = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        seen.append(hidden[half].detach().float().clone())  # under guidance the negative's half comes first

    hook = unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        picture = backend.generate(request).images[0]
    finally:
        hook.remove()
    return seen, np.asarray(picture.convert("RGB"), dtype=np.int16)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5)


def test_the_unet_sees_each_version_at_its_steps(backend):
    cat, cat_picture = conditioning_by_step(backend, BASE)
    dog, dog_picture = conditioning_by_step(backend, replace(BASE, prompt="a blue dog on the beach"))
    edited, picture = conditioning_by_step(backend, replace(BASE, prompt="a [red cat:blue dog:2] on the beach"))
    assert len(edited) == 4
    assert same(edited[0], cat[0]) and same(edited[1], cat[1])
    assert same(edited[2], dog[2]) and same(edited[3], dog[3])
    assert np.abs(picture - cat_picture).mean() > 0 and np.abs(picture - dog_picture).mean() > 0
    # Alternation swaps every step; a share of the steps counts like A1111's.
    alternating, _ = conditioning_by_step(backend, replace(BASE, prompt="a [red cat|blue dog] on the beach"))
    assert [same(seen, cat[0]) for seen in alternating] == [True, False, True, False]
    assert all(same(seen, dog[0]) for seen in alternating[1::2])
    half, _ = conditioning_by_step(backend, replace(BASE, prompt="a [red cat:blue dog:0.5] on the beach"))
    assert [same(seen, cat[0]) for seen in half] == [True, True, False, False]


def test_an_edit_at_the_last_step_or_never_is_the_plain_prompt_exactly(backend):
    _, cat_picture = conditioning_by_step(backend, BASE)
    _, dog_picture = conditioning_by_step(backend, replace(BASE, prompt="a blue dog on the beach"))
    for prompt, expected in (("a [red cat:blue dog:4] on the beach", cat_picture),
                             ("a [red cat:blue dog:9] on the beach", cat_picture),
                             ("a [red cat:blue dog:0] on the beach", dog_picture)):
        _, picture = conditioning_by_step(backend, replace(BASE, prompt=prompt))
        assert np.array_equal(picture, expected), prompt


def test_the_negative_prompt_is_edited_too_and_the_record_keeps_what_was_typed(backend):
    request = replace(BASE, negative_prompt="[blurry:grainy:2]")
    result = backend.generate(request)
    assert result.params[0]["negative_prompt"] == "[blurry:grainy:2]"
    blurry = conditioning_by_step(backend, BASE, half=0)[0]
    grainy = conditioning_by_step(backend, replace(BASE, negative_prompt="grainy"), half=0)[0]
    edited = conditioning_by_step(backend, request, half=0)[0]
    assert [same(seen, blurry[0]) for seen in edited] == [True, True, False, False]
    assert same(edited[3], grainy[3])
    positive = conditioning_by_step(backend, request)[0]
    assert all(same(seen, positive[0]) for seen in positive)  # the prompt itself stays as it is


def test_a_batch_switches_every_picture(backend):
    request = replace(BASE, prompt="a [red cat:blue dog:2] on the beach", batch_size=2)
    result = backend.generate(request)
    one_by_one = [backend.generate(replace(request, batch_size=1, seed=seed)).images[0] for seed in (11, 12)]
    for made, alone in zip(result.images, one_by_one, strict=True):
        assert np.abs(np.asarray(made, dtype=np.int16) - np.asarray(alone, dtype=np.int16)).max() <= 2


def test_walks_refuse_prompt_editing_in_one_sentence(backend):
    from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk

    keys = (Keyframe("a [red cat:blue dog:2]", 1), Keyframe("a green bird", 2))
    with pytest.raises(InputError, match=r"Prompt walks do not take prompt editing"):
        prompt_walk(backend, PromptWalkRequest(keyframes=keys, frames_between=1, settings=BASE))
