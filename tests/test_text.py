"""Text generation on the real built-in SmolLM2 (llama.cpp) and on a tiny transformers model."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from studio.backends.language import CHAT, READ_CHUNK, WRITE, StopScanner, TextRequest
from studio.errors import InputError, ModelUnavailable, StudioError
from studio.runtime import CancelToken
from studio.services import Studio
from studio.services.writing_presets import PRESETS
from studio.settings import Settings

BUILTIN = "smollm2-135m-instruct-gguf"
STORY = "The old clockmaker opened his shop before dawn, and"


@pytest.fixture(scope="module")
def studio(tmp_path_factory, tiny_lm_path):
    models = tmp_path_factory.mktemp("text-models") / "models.toml"
    models.write_text(f'[[model]]\nid = "tiny-lm"\nfamily = "transformers"\ntasks = ["text"]\npath = "{tiny_lm_path}"\n')
    return Studio(Settings(data_dir=tmp_path_factory.mktemp("text") / "data", models_file=models, offline=True))


def write(**kwargs) -> TextRequest:
    return TextRequest(**{"mode": WRITE, "text": STORY, "seed": 11, "max_new_tokens": 40, **kwargs})


def chat(message: str, **kwargs) -> TextRequest:
    return TextRequest(**{"mode": CHAT, "messages": (("user", message),), "seed": 5, "max_new_tokens": 40, **kwargs})


@pytest.mark.parametrize("model", [BUILTIN, "tiny-lm"])
def test_same_seed_and_settings_give_the_same_text(studio, model):
    first = studio.text.generate(write(model=model))
    again = studio.text.generate(write(model=model))
    other = studio.text.generate(write(model=model, seed=12))
    assert first.text and first.new_tokens > 0
    assert again.text == first.text
    assert other.text != first.text
    assert first.params["seed"] == 11 and first.params["model"] == model
    assert first.params["text"] == STORY and first.params["temperature"] == 0.8


def test_a_random_seed_is_recorded_and_reproduces(studio):
    result = studio.text.generate(write(seed=None))
    seed = result.params["seed"]
    assert isinstance(seed, int)
    assert studio.text.generate(write(seed=seed)).text == result.text


def test_streaming_yields_many_growing_updates(studio):
    updates = list(studio.text.stream(write(max_new_tokens=60, temperature=0.0)))
    partial = [u for u in updates if not u.done]
    assert len(partial) >= 10
    for before, after in zip(partial, partial[1:], strict=False):
        assert after.text.startswith(before.text) and after.new_tokens > before.new_tokens
    final = updates[-1].result
    assert final is not None and final.text.startswith(partial[-1].text)
    assert final.new_tokens == 60 and final.finish == "length"
    assert final.first_token_seconds is not None and final.tokens_per_second > 0


class StopArrivesAt(CancelToken):
    """A visitor's Stop arriving while the model writes: cancelled from the `at`-th time generation looks.
    (Cancelling from the reader raced a tiny model, which can write all its tokens before the reader's
    first update.)"""

    def __init__(self, at: int):
        super().__init__()
        self.at, self.looks = at, 0

    @property
    def cancelled(self) -> bool:
        self.looks += 1
        if self.looks >= self.at:
            self.cancel()
        return super().cancelled


@pytest.mark.parametrize("model", [BUILTIN, "tiny-lm"])
def test_stop_ends_generation_within_a_token(studio, model):
    stop = StopArrivesAt(5)  # generation looks at least once a token: stopped by the fifth token at the latest
    result = None
    for update in studio.text.stream(write(model=model, max_new_tokens=400, temperature=0.0), cancel=stop):
        if update.done:
            result = update.result
    assert result is not None and result.finish == "stopped"
    assert result.new_tokens <= 5 + 2, result.new_tokens


def test_chat_uses_the_models_chat_template(studio):
    engine = studio.text.engine(BUILTIN)
    request = chat("Name a colour.", system="Answer in one word.")
    prompt, tokens, dropped, notices = studio.text.prepare(engine, request)
    assert prompt == (
        "<|im_start|>system\nAnswer in one word.<|im_end|>\n"
        "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert (dropped, notices) == (0, [])
    result = studio.text.generate(request)
    assert result.prompt_tokens == tokens == engine.count_tokens(prompt)
    assert "<|im_end|>" not in result.text and result.finish in ("end", "length")
    tiny = studio.text.engine("tiny-lm")
    assert tiny.chat_prompt([{"role": "user", "content": "hello"}]).endswith("<|im_start|>assistant\n")


def test_a_long_conversation_drops_its_oldest_turns_with_a_notice(studio):
    engine = studio.text.engine(BUILTIN)
    long_turns = []
    for i in range(12):
        long_turns += [("user", f"Question {i}: " + "tell me more about the sea. " * 120),
                       ("assistant", f"Answer {i}: " + "the sea is wide and deep. " * 120)]
    request = chat("And the sky?", max_new_tokens=512)
    request = replace(request, messages=(*long_turns, ("user", "And the sky?")))
    prompt, tokens, dropped, notices = studio.text.prepare(engine, request)
    assert dropped > 0 and tokens <= engine.context_size - 512
    assert "Question 0:" not in prompt and "Question 11:" in prompt and prompt.endswith("assistant\n")
    assert "oldest" in notices[0] and f"{dropped} exchange" in notices[0]
    # The whole way through, on the small-context model: a reply, never a crash.
    tiny = replace(request, model="tiny-lm", max_new_tokens=20)
    result = studio.text.generate(tiny)
    assert result.dropped_turns > 0 and result.params["dropped_turns"] == result.dropped_turns
    assert result.prompt_tokens <= 512 - 20 and result.notices


def test_a_text_longer_than_the_context_is_read_from_its_end(studio):
    text = "the cat and the dog sat on the beach at sunset " * 120
    result = studio.text.generate(TextRequest(mode=WRITE, text=text, model="tiny-lm", seed=1, max_new_tokens=12))
    assert result.prompt_tokens <= 512 - 12
    assert "reads only its last" in result.notices[0]
    assert result.params["text"] == text  # the record keeps the whole text


def test_stop_sequences_end_the_text_before_them(studio):
    free = studio.text.generate(write(max_new_tokens=60, temperature=0.0)).text
    words = free.split()
    stop = words[len(words) // 2]
    stopped = studio.text.generate(write(max_new_tokens=60, temperature=0.0, stop=(stop,)))
    assert stopped.finish == "stop-sequence"
    assert stop not in stopped.text
    assert stopped.text == free[: free.index(stop)]


def test_the_stop_scanner_holds_back_what_may_start_a_stop_sequence():
    scanner = StopScanner(("THE END", "\n\n"))
    assert scanner.scan("Once upon a time") == ("Once upon a time", False)
    assert scanner.scan("and so it was. THE E") == ("and so it was. ", False)
    assert scanner.scan("line\n") == ("line", False)
    assert scanner.scan("and so it was. THE END and more") == ("and so it was. ", True)


@pytest.mark.parametrize(
    "request_, words",
    [
        (write(text=""), "Write a few words first"),
        (write(text="   \n "), "Write a few words first"),
        (write(text="x" * 100_000), "100,000 characters"),
        (chat(""), "Type a message first"),
        (chat("y" * 100_000), "100,000 characters"),
        (write(max_new_tokens=0), "from 1 to 4,096, not 0"),
        (write(max_new_tokens=10**9), "not 1000000000"),
        (write(temperature=-0.5), "temperature must be from 0 up to 2"),
        (write(temperature=float("nan")), "temperature"),
        (write(top_p=0.0), "Top-p must be above 0"),
        (write(seed=-3), "seed must be a whole number"),
        (write(stop=("",)), "stop sequence"),
        (write(mode="sing"), "mode must be"),
    ],
)
def test_bad_input_gets_a_clear_message(studio, request_, words):
    started = time.perf_counter()
    with pytest.raises(InputError, match=words):
        studio.text.generate(request_)
    assert time.perf_counter() - started < 1  # refused before any model work


def test_models_outside_the_text_catalogue_are_refused(studio):
    with pytest.raises(InputError, match="not a text model"):
        studio.text.generate(write(model="magenta-style-26"))
    with pytest.raises(StudioError, match="not in the model catalogue"):
        studio.text.generate(write(model="../../etc/passwd"))
    with pytest.raises(InputError, match="at most 496 new tokens"):
        studio.text.generate(write(model="tiny-lm", max_new_tokens=1000))


def test_a_hub_model_missing_offline_gets_one_clear_message(studio, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as caught:
        studio.text.generate(write(model="HuggingFaceTB/SmolLM2-360M-Instruct"))
    assert time.perf_counter() - started < 5
    for words in ("SmolLM2 360M Instruct", "724 MB", "python -m studio download HuggingFaceTB/SmolLM2-360M-Instruct",
                  "--models-file"):
        assert words in str(caught.value)


def test_results_are_kept_and_rerun_from_the_gallery(studio):
    written = studio.text.generate(write())
    item = studio.keep_text(written)
    assert item.task == "text" and item.file.suffix == ".txt"
    assert item.file.read_text() == STORY + written.text
    assert item.params["new_tokens"] == written.new_tokens and item.seed == 11
    again = studio.rerun(item.id)
    assert again.id != item.id and again.file.read_text() == item.file.read_text()

    answered = studio.text.generate(chat("Write a haiku about rain.", system="You are a poet."))
    kept = studio.keep_text(answered)
    transcript = kept.file.read_text()
    assert kept.file.suffix == ".md"
    assert transcript.startswith("**System:** You are a poet.") and transcript.rstrip().endswith(answered.text.strip())
    assert studio.rerun(kept.id).file.read_text() == transcript


# -- a long message is read in chunks: Stop works while it is read, and the reader sees how far ---------

LONG_MESSAGE = "Tell me everything you know about the sea, the tides and the moon. " * 140  # ~2,000 tokens


@pytest.mark.parametrize("model, message", [(BUILTIN, LONG_MESSAGE), ("tiny-lm", LONG_MESSAGE[:500])])
def test_stop_works_while_a_long_message_is_read(studio, model, message):
    cancel = CancelToken()
    updates, stopped_at, stop_time = [], None, None
    for update in studio.text.stream(chat(message, model=model, max_new_tokens=64), cancel=cancel):
        updates.append(update)
        if stopped_at is None and update.reading and update.read_tokens >= 3 * READ_CHUNK:
            stopped_at, stop_time = update.read_tokens, time.perf_counter()
            cancel.cancel()
    result = updates[-1].result
    assert stopped_at is not None, "no progress was reported while the message was read"
    reading = [u for u in updates if u.reading]
    assert [u.read_tokens for u in reading] == sorted(u.read_tokens for u in reading)
    assert all(u.prompt_tokens == result.prompt_tokens for u in reading) and result.prompt_tokens > 3 * READ_CHUNK
    assert reading[-1].read_tokens <= stopped_at + READ_CHUNK  # at most one more chunk after Stop
    assert time.perf_counter() - stop_time < 5
    assert result.finish == "stopped" and result.new_tokens == 0 and result.text == ""


def test_a_message_read_after_a_stop_is_answered_in_full(studio):
    # What the model had read before the Stop is reused, never mixed into the next answer.
    cancel = CancelToken()
    for update in studio.text.stream(chat(LONG_MESSAGE, max_new_tokens=8), cancel=cancel):
        if update.reading and update.read_tokens >= 2 * READ_CHUNK:
            cancel.cancel()
    short = chat("Name a colour.", temperature=0.0, max_new_tokens=12)
    fresh = Studio(studio.settings).text.generate(short)
    assert studio.text.generate(short).text == fresh.text


# -- presets: few-shot examples and a grammar keep a small model to the promised shape ---------------

SHAPED = [p for p in PRESETS.values() if p.shape is not None]


def preset_request(preset, idea: str, seed: int, **guide) -> TextRequest:
    return TextRequest(
        mode=CHAT, messages=(("user", idea),), system=preset.system, temperature=preset.temperature,
        top_p=preset.top_p, top_k=preset.top_k, min_p=preset.min_p, repetition_penalty=preset.repetition_penalty,
        max_new_tokens=preset.max_new_tokens, stop=preset.stop, seed=seed, **guide,
    )


@pytest.mark.parametrize("preset", SHAPED, ids=lambda p: p.name)
def test_each_preset_gives_its_promised_shape_on_the_built_in_model(studio, preset):
    for seed, idea in enumerate(("a fox reading in a library", "rain on a city street")):
        result = studio.text.generate(preset_request(preset, idea, seed, **preset.guidance()))
        assert preset.shape(result.text), f"{preset.name} on {idea!r} is not {preset.promise}:\n{result.text}"
        assert result.params["grammar"] == preset.grammar


def test_the_shape_checks_tell_good_answers_from_bad():
    expander, poem, song = PRESETS["Image-prompt expander"], PRESETS["Poem"], PRESETS["Song lyrics"]
    assert expander.shape("a red fox, old library, warm lamplight, oil painting, muted greens and browns")
    assert not expander.shape("the fox in the library is a classic image that has been reimagined")
    assert not expander.shape("Here is your prompt: a red fox, old library, warm light, oil painting, detailed")
    assert not expander.shape("a fox, a fox, a fox, a fox, a fox, a fox")
    assert poem.shape("Night\n\nline one here\nline two here\nline three\nline four")
    assert not poem.shape("Night\n\nThe whole poem on one single long line, as a small model writes it.")
    assert song.shape("[Verse 1]\nla la la\n\n[Chorus]\noh oh oh")
    assert not song.shape("la la la\noh oh oh")


def test_preset_examples_come_before_the_conversation_and_are_recorded(studio):
    preset = PRESETS["Image-prompt expander"]
    request = preset_request(preset, "a kite over the sea", 3, **preset.guidance())
    prompt, _, _, _ = studio.text.prepare(studio.text.engine(BUILTIN), request)
    first_idea = preset.examples[0][0]
    assert prompt.index(preset.system) < prompt.index(first_idea) < prompt.index("a kite over the sea")
    assert prompt.count("<|im_start|>assistant") == len(preset.examples) + 1
    result = studio.text.generate(request)
    assert result.params["examples"] == [list(pair) for pair in preset.examples]
    again = studio.text.generate(TextRequest.from_params(result.params))
    assert again.text == result.text
    # The few-shot examples reach a transformers model too; it is told the format is not enforced there.
    short = replace(request, model="tiny-lm", examples=(("a cat", "a cat, a mat, soft light"),), max_new_tokens=8)
    tiny_prompt = studio.text.prepare(studio.text.engine("tiny-lm"), short)[0]
    assert tiny_prompt.index("a cat, a mat, soft light") < tiny_prompt.index("a kite over the sea")
    tiny = studio.text.generate(short)
    assert tiny.params["examples"] == [["a cat", "a cat, a mat, soft light"]]
    assert any("llama.cpp" in n for n in tiny.notices)
    assert "grammar" not in studio.text.generate(write()).params  # Write mode has no preset guidance


def test_a_broken_grammar_is_one_clear_message(studio):
    with pytest.raises(StudioError, match="grammar could not be read"):
        studio.text.generate(chat("hi", grammar="root ::= ("))
