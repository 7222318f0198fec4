"""`python -m studio text PROMPT`: write or chat from a terminal, streaming to stdout."""

from __future__ import annotations

import argparse
import json
import sys

from studio import settings as settings_mod
from studio.backends.language import BUILTIN_TEXT_MODEL, CHAT, WRITE, TextRequest
from studio.services.writing_presets import PRESETS


def add_parser(commands: argparse._SubParsersAction) -> None:
    text = commands.add_parser(
        "text",
        help="continue a text, or answer it as a chat message (--chat), streaming to stdout",
        description="Streams the new text to stdout as it is written. PROMPT '-' reads it from stdin.",
    )
    text.add_argument("prompt", help="the text to continue, or your chat message with --chat ('-': stdin)")
    text.add_argument("--chat", action="store_true", help="answer PROMPT as a chat message (the chat template)")
    text.add_argument("--system", help="chat: the system prompt (default: the preset's)")
    text.add_argument("--preset", choices=list(PRESETS), help="a creative preset: system prompt and sampling")
    text.add_argument("--model", default=BUILTIN_TEXT_MODEL, help=f"a text model id (default {BUILTIN_TEXT_MODEL})")
    text.add_argument("--seed", type=int, help="same seed and settings give the same text (default: random)")
    text.add_argument("--max-tokens", type=int, help="how many new tokens at most (default 256)")
    text.add_argument("--temperature", type=float, help="0 takes the most likely word; default 0.8")
    text.add_argument("--top-p", type=float)
    text.add_argument("--top-k", type=int)
    text.add_argument("--min-p", type=float)
    text.add_argument("--repeat-penalty", type=float, dest="repetition_penalty")
    text.add_argument("--stop", action="append", default=None, help="a stop sequence (repeatable; \\n allowed)")
    text.add_argument("--json", action="store_true", help="print only one JSON object at the end")
    text.add_argument("--no-gallery", action="store_true", help="do not list the result in the studio's gallery")


def request_from_args(args: argparse.Namespace, prompt: str) -> TextRequest:
    preset = PRESETS[args.preset] if args.preset else None
    values = {}
    for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens"):
        given = getattr(args, "max_tokens" if name == "max_new_tokens" else name)
        if given is not None:
            values[name] = given
        elif preset is not None:
            values[name] = getattr(preset, name)
    stops = tuple(s.replace("\\n", "\n") for s in args.stop) if args.stop else (preset.stop if preset else ())
    system = args.system if args.system is not None else (preset.system if preset else "")
    if args.chat:
        # The preset's examples and format come with it: a small model needs them to keep its shape.
        guide = preset.guidance() if preset else {}
        return TextRequest(mode=CHAT, messages=(("user", prompt),), system=system, model=args.model,
                           stop=stops, seed=args.seed, **values, **guide)
    return TextRequest(mode=WRITE, text=prompt, model=args.model, stop=stops, seed=args.seed, **values)


def run(args: argparse.Namespace, settings: settings_mod.Settings) -> int:
    from studio.runtime import CancelToken
    from studio.services import Studio

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    request = request_from_args(args, prompt)
    request.validate()  # before loading anything: a mistake is reported at once
    studio = Studio(settings)
    cancel = CancelToken()
    printed = 0
    result = None
    try:
        for update in studio.stream_text(request, cancel=cancel):
            if not args.json:
                sys.stdout.write(update.text[printed:])
                sys.stdout.flush()
                printed = len(update.text)
            result = update.result
    except KeyboardInterrupt:
        # Ctrl-C ends the text where it is, like the Stop button; what was written stays.
        cancel.cancel()
        print("\n[stopped]", file=sys.stderr)
        return 130
    assert result is not None
    empty = not result.text.strip()
    item = None if args.no_gallery or empty else studio.keep_text(result)  # an empty result is not listed
    if empty and result.finish == "end":
        print("note: the model has nothing more to add: it ended the text here.", file=sys.stderr)
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "text": result.text,
            "parameters": result.params,
            "prompt_tokens": result.prompt_tokens,
            "new_tokens": result.new_tokens,
            "seconds": round(result.seconds, 3),
            "first_token_seconds": None if result.first_token_seconds is None else round(result.first_token_seconds, 3),
            "tokens_per_second": round(result.tokens_per_second, 1),
            "finish": result.finish,
            "gallery_id": item.id if item else None,
        }))
    else:
        print()
        print(f"[{result.new_tokens} tokens, {result.tokens_per_second:.1f} tokens/s, seed {result.params['seed']}"
              f"{f', gallery #{item.id}' if item else ''}]", file=sys.stderr)
    return 0
