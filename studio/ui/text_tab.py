"""The Text tab: Write (the model continues your text in place) and Chat, both streamed token by token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.backends import text_engine
from studio.backends.language import (
    BUILTIN_TEXT_MODEL,
    CHAT,
    MAX_NEW_TOKENS,
    MAX_TEMPERATURE,
    WRITE,
    TextRequest,
    TextResult,
    TextUpdate,
)
from studio.errors import StudioError
from studio.history import GalleryItem
from studio.services import Studio
from studio.services.writing_presets import DEFAULT_PRESET, PRESETS, guidance
from studio.ui.common import StopButtons, api_doc, user_errors

RANDOM_SEED = -1
UNDO_DEPTH = 20  # continuations that "Undo" can step back through
LIVE_STATS_EVERY_S = 0.3  # the numbers under the text refresh this often while it streams
FINISH_WORDS = {
    "end": "the model finished",
    "length": "reached max new tokens",
    "stop-sequence": "hit a stop sequence",
    "stopped": "stopped by you",
}
WRITE_EXAMPLE = "The lighthouse keeper had not spoken to anyone in three years, until the morning"

# What the API page and MCP tools say about the model and sampling settings every text endpoint takes.
TEXT_SETTINGS = {
    "model": f"catalogue id of the text model, e.g. the built-in {BUILTIN_TEXT_MODEL}",
    "temperature": f"0-{MAX_TEMPERATURE:g}; 0 always takes the most likely word",
    "top_p": "0.05-1: sample only from the likeliest words that together reach this share",
    "top_k": "0-200: sample only from this many likeliest words (0: no limit)",
    "min_p": "0-0.5: leave out words less likely than this share of the likeliest",
    "repetition_penalty": "0.8-2: above 1 discourages repeating words",
    "max_new_tokens": f"1-{MAX_NEW_TOKENS}: at most this many new tokens",
    "stop_sequences": "one per line; writing stops before any of them (\\n stands for a line break)",
    "seed": f"{RANDOM_SEED} for a new one each time; the same seed and settings give the same text",
    "keep": "true: list the result in the gallery",
}
PRESET = ("a creative preset whose examples and format guide the answer: "
          f"{', '.join(PRESETS)} (the system prompt and sampling are passed on their own)")
NOTHING_MORE = ("The model has nothing more to add: it ended the text here. Write a few words of your own to "
                "steer it on, or raise the temperature.")
HISTORY = "the conversation so far: a list of {'role': 'user' or 'assistant', 'content': text}"
SYSTEM_PROMPT = "instructions the model reads before the conversation (a preset's, or your own)"
CHAT_RETURNS = "the conversation with the answer (growing as it streams), the message box, statistics, the answer alone"


ENGINE_CHECK_EVERY_S = 5  # while the text engine builds on a first install, the notice refreshes this often


@dataclass
class TextTab:
    latest: gr.Textbox  # the newest continuation or reply: what the Send buttons pass on
    send_to_image: gr.Button
    send_to_music: gr.Button
    # While the text engine is still being built (first install): what each page load checks, and shows.
    engine_check: Any = None
    engine_outputs: list | None = None


def engine_notice() -> tuple[Any, Any]:
    """The notice above the chat and whether to look again soon: shown until the engine is ready."""
    now = text_engine.state()
    return (gr.Markdown(f"⏳ {now.message}", visible=now.state != text_engine.READY),
            gr.Timer(active=now.state == text_engine.BUILDING))


def model_choices(studio: Studio) -> list[tuple[str, str]]:
    choices = []
    for entry in studio.text.models():
        where = "built in" if entry.builtin else ("local" if entry.source == "local" else "download")
        choices.append((f"{entry.name} · {where}, {entry.size_text()}", entry.id))
    return choices


def model_note(studio: Studio, model_id: str) -> str:
    entry = studio.catalog.get(model_id)
    where = {"builtin": "Ships with the studio: works offline.",
             "download": f"Downloads on first use ({entry.size_text()}), or ahead: `python -m studio download {entry.id}`.",
             "local": "Your own copy on this machine."}[entry.source]
    return f"{entry.description} {where} Licence: {entry.licence}."


def parse_stops(text: str | None) -> tuple[str, ...]:
    """One stop sequence per line; `\\n` and `\\t` stand for a line break and a tab."""
    lines = (text or "").split("\n")
    return tuple(line.replace("\\n", "\n").replace("\\t", "\t") for line in lines if line != "")


def format_stops(stops: tuple[str, ...]) -> str:
    return "\n".join(s.replace("\n", "\\n").replace("\t", "\\t") for s in stops)


def _seed(value: float | None) -> int | None:
    if value is None or int(value) == RANDOM_SEED:
        return None
    return int(value)


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a whole number, not {value!r}.") from None


def _sampling(model, temperature, top_p, top_k, min_p, repetition, max_new, stop, seed) -> dict[str, Any]:
    return dict(
        model=model or BUILTIN_TEXT_MODEL,
        temperature=float(temperature),
        top_p=float(top_p),
        top_k=_int(top_k, "Top-k"),
        min_p=float(min_p),
        repetition_penalty=float(repetition),
        max_new_tokens=_int(max_new, "Max new tokens"),
        stop=parse_stops(stop),
        seed=_seed(seed),
    )


def live_stats(update: TextUpdate, what: str = "your text") -> str:
    if update.reading:
        return f"Reading {what}: {update.read_tokens:,} of {update.prompt_tokens:,} tokens"
    speed = ""
    if update.first_token_seconds is not None and update.new_tokens > 1:
        span = update.seconds - update.first_token_seconds
        if span > 0:
            speed = f" · {(update.new_tokens - 1) / span:.1f} tokens/s"
    return f"Writing… {update.new_tokens} tokens{speed}"


def final_stats(result: TextResult, item: GalleryItem | None) -> str:
    first = f"{result.first_token_seconds:.2f} s" if result.first_token_seconds is not None else "none"
    where = f"gallery #{item.id}" if item else "not kept"
    parts = [
        f"**{result.new_tokens} tokens** in {result.seconds:.2f} s",
        f"{result.tokens_per_second:.1f} tokens/s",
        f"first token after {first}",
        f"read {result.prompt_tokens} prompt tokens",
        f"seed {result.params['seed']}",
        FINISH_WORDS.get(result.finish, result.finish),
        where,
    ]
    text = " · ".join(parts)
    if result.notices:
        text += "\n\n" + "\n\n".join(f"⚠ {n}" for n in result.notices)
    return text


def _text_of(content: Any) -> str:
    """A chat message's text, whichever shape Gradio hands it in."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, (list, tuple)):
        return "".join(_text_of(part) for part in content)
    return ""


def turns_of(history: list[dict] | None) -> list[tuple[str, str]]:
    return [(m["role"], _text_of(m["content"])) for m in history or [] if m.get("role") in ("user", "assistant")]


def messages_of(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in turns]


def build(studio: Studio, stops: StopButtons) -> TextTab:
    preset = PRESETS[DEFAULT_PRESET]
    token_limit = min(MAX_NEW_TOKENS, studio.settings.max_new_tokens)
    preparing = text_engine.state()
    check = None
    if preparing.state != text_engine.READY:  # a first install: llama.cpp still builds in the background
        notice = gr.Markdown(f"⏳ {preparing.message}", elem_id="text-engine-notice")
        timer = gr.Timer(ENGINE_CHECK_EVERY_S, active=preparing.state == text_engine.BUILDING)
        timer.tick(engine_notice, None, [notice, timer], api_visibility="private", queue=False)
        check = [notice, timer]
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Tabs(elem_id="text-modes"):
                with gr.Tab("Chat", id="chat", elem_id="text-chat-tab"):
                    # Only the chat reads a system prompt, so it lives here, out of sight on the Write tab.
                    system = gr.Textbox(value=preset.system, label="System prompt", lines=2, max_lines=6,
                                        elem_id="text-system")
                    chatbot = gr.Chatbot(
                        label="Chat",
                        height=440,
                        editable="user",
                        buttons=["copy", "copy_all"],
                        placeholder="Pick a preset on the right, then say what you want.",
                        elem_id="chat-box",
                    )
                    with gr.Row():
                        message = gr.Textbox(
                            label="Message", show_label=False, placeholder=preset.hint, lines=2, max_lines=8, scale=5,
                            elem_id="chat-message",
                        )
                        with gr.Column(scale=1, min_width=120):
                            send = gr.Button("Send", variant="primary", elem_id="chat-send")
                            chat_stop = gr.Button("Stop", variant="stop", elem_id="chat-stop")
                    with gr.Row():
                        regenerate = gr.Button("Regenerate", size="sm", elem_id="chat-regenerate")
                        undo_turn = gr.Button("Undo last turn", size="sm")
                        clear = gr.Button("Clear", size="sm")
                    chat_stats = gr.Markdown(elem_id="chat-stats")
                with gr.Tab("Write", id="write", elem_id="text-write-tab"):
                    document = gr.Textbox(
                        value=WRITE_EXAMPLE,
                        label="Your text: the model continues it in place",
                        lines=16,
                        max_lines=40,
                        elem_id="write-text",
                    )
                    with gr.Row():
                        continue_button = gr.Button("Continue", variant="primary", elem_id="write-run")
                        write_stop = gr.Button("Stop", variant="stop", elem_id="write-stop")
                        undo = gr.Button("Undo last continuation", elem_id="write-undo")
                    write_stats = gr.Markdown(elem_id="write-stats")
            with gr.Row():
                send_to_image = gr.Button("Send to Image tab", size="sm", elem_id="text-to-image")
                send_to_music = gr.Button("Send to Music tab", size="sm", elem_id="text-to-music")
            latest = gr.Textbox(visible=False, label="latest")
        with gr.Column(scale=2):
            model = gr.Dropdown(
                model_choices(studio), value=BUILTIN_TEXT_MODEL, label="Model", elem_id="text-model"
            )
            about_model = gr.Markdown(model_note(studio, BUILTIN_TEXT_MODEL))
            preset_pick = gr.Dropdown(list(PRESETS), value=DEFAULT_PRESET, label="Preset", elem_id="text-preset")
            with gr.Accordion("Sampling", open=False):
                temperature = gr.Slider(0, MAX_TEMPERATURE, value=preset.temperature, step=0.05, label="Temperature",
                                        elem_id="text-temperature",
                                        info="0 always takes the most likely word")
                top_p = gr.Slider(0.05, 1, value=preset.top_p, step=0.01, label="Top-p")
                top_k = gr.Slider(0, 200, value=preset.top_k, step=1, label="Top-k", info="0 turns it off")
                min_p = gr.Slider(0, 0.5, value=preset.min_p, step=0.01, label="Min-p")
                repetition = gr.Slider(0.8, 2.0, value=preset.repetition_penalty, step=0.01,
                                       label="Repetition penalty")
                max_new = gr.Slider(1, token_limit, value=min(preset.max_new_tokens, token_limit), step=1,
                                    label="Max new tokens")
                stop_text = gr.Textbox(value=format_stops(preset.stop), label="Stop sequences",
                                       info="One per line; write \\n for a line break", lines=2)
            seed = gr.Number(value=RANDOM_SEED, precision=0, label="Seed (-1: a new one each time)",
                             elem_id="text-seed")
            keep = gr.Checkbox(value=True, label="Keep every result in the gallery")
    undo_stack = gr.State([])
    settings = [model, temperature, top_p, top_k, min_p, repetition, max_new, stop_text, seed]

    # -- Write ---------------------------------------------------------------------------------

    @user_errors
    @api_doc(
        "Continue a text: the model writes on from its end, streamed token by token; kept in the gallery.",
        text="the text to continue", **TEXT_SETTINGS,
        undo_stack="kept by the session for 'Undo last continuation', not sent",
        returns="the text with its continuation (growing as it streams), statistics, the new part alone",
    )
    def write(text: str | None, model: str, temperature: float, top_p: float, top_k: float, min_p: float,
                      repetition_penalty: float, max_new_tokens: float, stop_sequences: str | None,
                      seed: float | None, keep: bool, undo_stack: list | None, request: gr.Request):
        text = text or ""
        text_request = TextRequest(mode=WRITE, text=text, **_sampling(
            model, temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens, stop_sequences, seed))
        text_request.validate()
        stack = [*(undo_stack or []), text][-UNDO_DEPTH:]
        token = stops.start(request)
        for update, stats in _streamed(studio.stream_text(text_request, cancel=token)):
            if update.result is None:
                yield text + update.text, stats, gr.skip(), stack
                continue
            result = update.result
            if not result.text.strip():
                # Nothing was added: no gallery card, no undo step, and a plain word on why.
                if result.finish != "stopped":
                    gr.Info(NOTHING_MORE)
                yield text, final_stats(result, None), "", undo_stack or []
                return
            item = studio.keep_text(result) if keep else None
            yield text + result.text, final_stats(result, item), result.text, stack

    # The text box is the output while the model writes: anything typed into it then would be overwritten.
    # So it is locked from the click until the run ends, however it ends (done, stopped, refused).
    continue_button.click(lambda: gr.Textbox(interactive=False), None, document, queue=False,
                          api_visibility="private")
    continue_button.click(
        write,
        [document, *settings, keep, undo_stack],
        [document, write_stats, latest, undo_stack],
        api_name="write",
        concurrency_id="heavy",
    ).then(lambda: gr.Textbox(interactive=True), None, document, queue=False, api_visibility="private")

    def undo_continuation(stack):
        if not stack:
            gr.Warning("Nothing to undo.")
            return gr.skip(), stack, gr.skip()
        return stack[-1], stack[:-1], "Undone: the text is back as it was before the last continuation."

    undo.click(undo_continuation, undo_stack, [document, undo_stack, write_stats], api_visibility="private")

    # -- Chat ----------------------------------------------------------------------------------

    def reply(turns, system_prompt, sampling, keep_result, preset_name, request, restore_message=""):
        """Stream the assistant's answer to `turns` (which end with the user's message)."""
        if preset_name and preset_name not in PRESETS:
            raise gr.Error(f"There is no preset '{preset_name}'; choose one of: {', '.join(PRESETS)}.")
        chat_request = TextRequest(mode=CHAT, messages=tuple(turns), system=system_prompt or "", **sampling,
                                   **guidance(preset_name))
        chat_request.validate()
        shown = messages_of(turns)
        token = stops.start(request)
        yield [*shown, {"role": "assistant", "content": ""}], "", "Thinking…", gr.skip()
        try:
            for update, stats in _streamed(studio.stream_text(chat_request, cancel=token), "your message"):
                answer = {"role": "assistant", "content": update.text}
                if update.result is None:
                    yield [*shown, answer], gr.skip(), stats, gr.skip()
                    continue
                kept = keep_result and update.result.text.strip()  # an empty answer makes no gallery card
                item = studio.keep_text(update.result) if kept else None
                # The chat shows a reply without its surrounding blank lines (Gradio strips them), and so
                # does what the Send buttons pass on.
                yield [*shown, answer], "", final_stats(update.result, item), update.result.text.strip()
        except StudioError:
            # Put the conversation and the message back as they were, then explain.
            yield messages_of(turns[:-1]), restore_message, "", gr.skip()
            raise

    @user_errors
    @api_doc(
        "Send a chat message: the model answers it after the conversation so far, streamed; kept in the gallery.",
        message="your message", history=HISTORY, system_prompt=SYSTEM_PROMPT, **TEXT_SETTINGS, preset=PRESET,
        returns=f"{CHAT_RETURNS}; the message box is emptied once the answer is done",
    )
    def chat(message: str | None, history: list | None, system_prompt: str | None, model: str, temperature: float,
             top_p: float, top_k: float, min_p: float, repetition_penalty: float, max_new_tokens: float,
             stop_sequences: str | None, seed: float | None, keep: bool, preset: str | None, request: gr.Request):
        turns = [*turns_of(history), ("user", message or "")]
        sampling = _sampling(model, temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens,
                             stop_sequences, seed)
        yield from reply(turns, system_prompt, sampling, keep, preset, request, restore_message=message)

    chat_outputs = [chatbot, message, chat_stats, latest]
    gr.on(
        [send.click, message.submit],
        chat,
        [message, chatbot, system, *settings, keep, preset_pick],
        chat_outputs,
        api_name="chat",
        concurrency_id="heavy",
    )

    def _without_reply(history) -> list[tuple[str, str]]:
        turns = turns_of(history)
        while turns and turns[-1][0] == "assistant":
            turns.pop()
        if not turns:
            raise gr.Error("There is no message to answer yet.")
        return turns

    @user_errors
    @api_doc(
        "Answer the last message again with a new seed (the conversation's last reply is replaced).",
        history=HISTORY, system_prompt=SYSTEM_PROMPT,
        **{**TEXT_SETTINGS, "seed": "ignored: each regeneration draws a new seed, shown in the statistics"},
        preset=PRESET, returns=CHAT_RETURNS,
    )
    def chat_regenerate(history: list | None, system_prompt: str | None, model: str, temperature: float,
                         top_p: float, top_k: float, min_p: float, repetition_penalty: float, max_new_tokens: float,
                         stop_sequences: str | None, seed: float | None, keep: bool, preset: str | None,
                         request: gr.Request):
        sampling = _sampling(model, temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens,
                             stop_sequences, seed)
        sampling["seed"] = None  # a new answer each time; the one used is shown and kept
        yield from reply(_without_reply(history), system_prompt, sampling, keep, preset, request)

    regenerate.click(
        chat_regenerate,
        [chatbot, system, *settings, keep, preset_pick],
        chat_outputs,
        api_name="chat_regenerate",
        concurrency_id="heavy",
    )

    @user_errors
    def retry_reply(history, system_prompt, model_id, temp, p, k, mp, rep, new, stop_lines, seed_value, keep_result,
                    preset_name, evt: gr.RetryData, request: gr.Request):
        turns = turns_of(history)
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        cut = turns[: index + 1] if turns[index][0] == "user" else turns[:index]
        sampling = _sampling(model_id, temp, p, k, mp, rep, new, stop_lines, seed_value)
        sampling["seed"] = None
        yield from reply(cut, system_prompt, sampling, keep_result, preset_name, request)

    chatbot.retry(retry_reply, [chatbot, system, *settings, keep, preset_pick], chat_outputs, api_visibility="private",
                  concurrency_id="heavy")

    @user_errors
    def edit_and_resend(history, system_prompt, model_id, temp, p, k, mp, rep, new, stop_lines, seed_value, keep_result,
                        preset_name, evt: gr.EditData, request: gr.Request):
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        turns = turns_of(history)[:index] + [("user", _text_of(evt.value))]
        sampling = _sampling(model_id, temp, p, k, mp, rep, new, stop_lines, seed_value)
        yield from reply(turns, system_prompt, sampling, keep_result, preset_name, request)

    chatbot.edit(edit_and_resend, [chatbot, system, *settings, keep, preset_pick], chat_outputs, api_visibility="private",
                 concurrency_id="heavy")

    @api_doc(
        "Take back the last exchange: the conversation without your last message and its answer.",
        history=HISTORY,
        returns="the shorter conversation, and your last message (to edit and send again)",
    )
    def chat_undo(history: list | None):
        turns = turns_of(history)
        last_user = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=None)
        if last_user is None:
            return gr.skip(), gr.skip()
        return messages_of(turns[:last_user]), turns[last_user][1]

    undo_turn.click(chat_undo, chatbot, [chatbot, message], api_name="chat_undo")

    def undo_from_chatbot(history, evt: gr.UndoData):
        turns = turns_of(history)
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        return messages_of(turns[:index]), turns[index][1] if index < len(turns) else ""

    chatbot.undo(undo_from_chatbot, chatbot, [chatbot, message], api_visibility="private")
    clear.click(lambda: ([], "", ""), None, [chatbot, message, chat_stats], api_visibility="private")

    # -- Stop, presets, model ------------------------------------------------------------------

    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    for button in (write_stop, chat_stop):
        button.click(stop_run, None, None, api_visibility="private", queue=False)

    def apply_preset(name):
        chosen = PRESETS.get(name, PRESETS[DEFAULT_PRESET])
        return (
            chosen.system, chosen.temperature, chosen.top_p, chosen.top_k, chosen.min_p,
            chosen.repetition_penalty, min(chosen.max_new_tokens, token_limit), format_stops(chosen.stop),
            gr.Textbox(placeholder=chosen.hint),
        )

    preset_pick.input(
        apply_preset,
        preset_pick,
        [system, temperature, top_p, top_k, min_p, repetition, max_new, stop_text, message],
        api_visibility="private",
    )
    model.input(lambda model_id: model_note(studio, model_id), model, about_model, api_visibility="private")
    return TextTab(latest=latest, send_to_image=send_to_image, send_to_music=send_to_music,
                   engine_check=engine_notice if check else None, engine_outputs=check)


def _streamed(updates: Iterator[TextUpdate], what: str = "your text") -> Iterator[tuple[TextUpdate, Any]]:
    """Each update with the numbers to show under it: refreshed now and then, not on every token
    (while the model reads a long prompt: how far it has read)."""
    shown_at = 0.0
    warned = False
    for update in updates:
        if update.notices and not warned:
            for notice in update.notices:
                gr.Warning(notice)
            warned = True
        now = time.monotonic()
        if update.result is None and now - shown_at >= LIVE_STATS_EVERY_S:
            shown_at = now
            yield update, live_stats(update, what)
        else:
            yield update, gr.skip()
