"""An OpenAI-compatible API (`/v1/...`), as chat front ends, editor plug-ins and the `openai` package
call it: models, chat and text completions (streamed as server-sent events or whole), and image
generation on the studio's image models.

Sampling follows the Text tab: the same defaults, and the same text for the same seed and settings.
OpenAI fields the studio's models cannot honour (several choices, log-probabilities, tools,
presence and frequency penalties) are refused by name; llama.cpp's `top_k`, `min_p` and
`repetition_penalty` are taken as extensions.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from studio import __version__, limits
from studio.api.fields import Fields, parse_body
from studio.api.gate import ApiError, Caller, ClientGone, Gate, as_api_error
from studio.api.pictures import encode_base64, result_png
from studio.backends.diffusion import MAX_SEED, ImageRequest
from studio.backends.language import (
    BUILTIN_TEXT_MODEL,
    CHAT,
    MAX_STOP_LENGTH,
    MAX_STOP_SEQUENCES,
    SEED_RANGE,
    WRITE,
    TextRequest,
    TextResult,
    TextUpdate,
)
from studio.errors import InputError
from studio.runtime import CancelToken

DEFAULT_MAX_TOKENS = 512
FINISH_REASONS = {"end": "stop", "stop-sequence": "stop", "stopped": "stop", "length": "length"}
SERVED_FILES = 64  # pictures handed out by URL, newest kept
SERVED_SECONDS = 3600  # and for at most an hour, like the links OpenAI hands out
# Fields a client may send that the studio's models cannot honour, with the value meaning "not asked".
REFUSED = {
    "n": (1, "the studio writes one choice per request"),
    "logprobs": (False, "log-probabilities are not reported"),
    "top_logprobs": (0, "log-probabilities are not reported"),
    "presence_penalty": (0, "use 'repetition_penalty' (1 means none, 1.1 is the Text tab's default) instead"),
    "frequency_penalty": (0, "use 'repetition_penalty' (1 means none, 1.1 is the Text tab's default) instead"),
    "logit_bias": ({}, "token biases are not supported"),
    "tools": ([], "the studio's text models do not call tools"),
    "functions": ([], "the studio's text models do not call functions"),
    "best_of": (1, "the studio writes one completion per request"),
    "suffix": ("", "the studio's models do not fill in the middle"),
}


def _error(error: ApiError) -> JSONResponse:
    return JSONResponse({"error": {"message": error.message, "type": _error_type(error.status), "param": None,
                                   "code": error.code}}, status_code=error.status)


def _error_type(status: int) -> str:
    return {401: "authentication_error", 404: "invalid_request_error", 429: "rate_limit_error",
            503: "service_unavailable"}.get(status, "invalid_request_error" if status < 500 else "server_error")


@dataclass
class _Served:
    created: float
    path: Path | None
    data: bytes | None


class OpenAiApi:
    def __init__(self, gate: Gate):
        self.gate = gate
        self.studio = gate.studio
        self._served: OrderedDict[str, _Served] = OrderedDict()
        self._served_lock = threading.Lock()

    def routes(self) -> list[Route]:
        table = [
            ("/models", self.models, ["GET"]),
            ("/chat/completions", self.chat_completions, ["POST"]),
            ("/completions", self.completions, ["POST"]),
            ("/images/generations", self.image_generations, ["POST"]),
        ]
        routes = [Route(path, self._guarded(handler), methods=methods, name=f"openai{path}")
                  for path, handler, methods in table]
        # A picture handed out by URL: the unguessable name is the credential, as with OpenAI's own links.
        routes.append(Route("/files/images/{name}", self._answer_errors(self.served_image), methods=["GET"]))
        return routes

    def _guarded(self, handler):
        async def login_first(request: Request) -> Response:
            self.gate.check_login(request)
            return await handler(request)

        return self._answer_errors(login_first)

    def _answer_errors(self, handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientGone:
                return Response(status_code=499)
            except Exception as exc:  # every failure answers in OpenAI's error shape
                return _error(as_api_error(exc))

        return endpoint

    # -- models -------------------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        text = [(entry.id, "text") for entry in self.studio.text.models()]
        images = [(entry.id, "image") for entry in self.studio.image.image_entries("txt2img")]
        return JSONResponse({"object": "list", "data": [
            {"id": model_id, "object": "model", "created": 0, "owned_by": "creative-studio", "studio_kind": kind}
            for model_id, kind in text + images]})

    def _text_model(self, fields: Fields) -> str:
        model = fields.text("model", BUILTIN_TEXT_MODEL, 300) or BUILTIN_TEXT_MODEL
        known = [entry.id for entry in self.studio.text.models()]
        if model not in known:
            raise ApiError(404, f"There is no text model '{model[:100]}' here; GET /v1/models lists them "
                                f"({', '.join(known)}).", "model_not_found")
        return model

    # -- text ---------------------------------------------------------------------------------

    def _sampling(self, fields: Fields) -> dict[str, Any]:
        for name, (off, why) in REFUSED.items():
            if fields.present(name) and fields.raw(name) != off and fields.raw(name) not in ("", [], {}):
                raise InputError(f"'{name}' is not supported here: {why}.")
        response_format = fields.mapping("response_format")
        if response_format.get("type", "text") != "text":
            raise InputError("'response_format' other than text is not supported here.")
        max_tokens = fields.whole("max_completion_tokens", None, 1, None)
        if max_tokens is None:
            max_tokens = fields.whole("max_tokens", None, 1, None)
        defaults = TextRequest()
        seed = fields.whole("seed", None, 0, SEED_RANGE - 1)
        return dict(
            temperature=fields.real("temperature", defaults.temperature),
            top_p=fields.real("top_p", defaults.top_p),
            top_k=fields.whole("top_k", defaults.top_k),
            min_p=fields.real("min_p", defaults.min_p),
            repetition_penalty=fields.real("repetition_penalty", defaults.repetition_penalty),
            max_new_tokens=max_tokens or min(DEFAULT_MAX_TOKENS, self.studio.settings.max_new_tokens),
            stop=fields.strings("stop", MAX_STOP_SEQUENCES, MAX_STOP_LENGTH),
            seed=seed,
        )

    def _chat_request(self, fields: Fields) -> TextRequest:
        messages = fields.raw("messages")
        if not isinstance(messages, list) or not messages:
            raise InputError("'messages' must be a list of {role, content} objects, ending with the user's.")
        system: list[str] = []
        turns: list[tuple[str, str]] = []
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise InputError(f"messages[{index}] must be an object with 'role' and 'content'.")
            role = message.get("role")
            content = _content_text(message.get("content"), index)
            if role in ("system", "developer"):
                system.append(content)
            elif role in ("user", "assistant"):
                turns.append((role, content))
            else:
                raise InputError(f"messages[{index}] has role {json.dumps(role)[:40]}; the studio takes system, "
                                 "developer, user and assistant messages.")
        return TextRequest(mode=CHAT, messages=tuple(turns), system="\n\n".join(system),
                           model=self._text_model(fields), **self._sampling(fields))

    def _completion_request(self, fields: Fields) -> TextRequest:
        prompt = fields.raw("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise InputError("'prompt' must be a string (or a list holding one string).")
        return TextRequest(mode=WRITE, text=prompt, model=self._text_model(fields), **self._sampling(fields))

    async def chat_completions(self, request: Request) -> Response:
        return await self._text(request, chat=True)

    async def completions(self, request: Request) -> Response:
        return await self._text(request, chat=False)

    async def _text(self, request: Request, chat: bool) -> Response:
        fields = Fields(parse_body(await request.body()))
        text_request = self._chat_request(fields) if chat else self._completion_request(fields)
        self.studio.text_service.check(text_request)  # refuse before anything streams
        caller = self.gate.caller(request)
        self.gate.count_start(caller)
        keep = fields.flag("store", False)
        echo = "" if chat or not fields.flag("echo", False) else text_request.text
        answer = _Answer(chat, text_request.model, echo)
        if fields.flag("stream", False):
            usage = bool(fields.mapping("stream_options").get("include_usage"))
            chunks = self._stream(request, text_request, caller, keep, answer, usage)
            return StreamingResponse(chunks, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

        def work(cancel: CancelToken) -> TextResult:
            result = self._result(self.studio.stream_text(text_request, cancel=cancel))
            if keep and result.text.strip():
                self.studio.text_service.keep(result, caller.owner)
            return result

        result = await self.gate.run_heavy(request, work)
        return JSONResponse(answer.whole(result))

    @staticmethod
    def _result(updates: Iterator[TextUpdate]) -> TextResult:
        for update in updates:
            if update.result is not None:
                return update.result
        raise InputError("The text model ended without an answer.")

    async def _stream(self, request: Request, text_request: TextRequest, caller: Caller, keep: bool,
                      answer: _Answer, usage: bool) -> AsyncIterator[str]:
        def produce(cancel: CancelToken) -> Iterator[TextUpdate]:
            for update in self.studio.stream_text(text_request, cancel=cancel):
                if update.result is not None and keep and update.result.text.strip():
                    self.studio.text_service.keep(update.result, caller.owner)
                yield update

        sent = 0
        yield _event(answer.chunk({"role": "assistant", "content": answer.echo}, None))
        updates = self.gate.stream_heavy(produce)
        try:
            async for update in updates:
                if await request.is_disconnected():
                    break  # closing `updates` below stops the generation at its next token
                if len(update.text) > sent:
                    yield _event(answer.chunk({"content": update.text[sent:]}, None))
                    sent = len(update.text)
                if update.result is not None:
                    yield _event(answer.chunk({}, FINISH_REASONS.get(update.result.finish, "stop")))
                    if usage:
                        yield _event(answer.usage_chunk(update.result))
        except Exception as exc:  # the stream has begun: the error travels as an event, then it ends
            error = as_api_error(exc)
            yield _event({"error": {"message": error.message, "type": _error_type(error.status),
                                    "code": error.code}})
        finally:
            await updates.aclose()
        yield "data: [DONE]\n\n"

    # -- images -------------------------------------------------------------------------------

    async def image_generations(self, request: Request) -> Response:
        fields = Fields(parse_body(await request.body()))
        caller = self.gate.caller(request)
        models = [entry.id for entry in self.studio.image.image_entries("txt2img")]
        model = fields.text("model", "", 300) or self.studio.image_service.default_model()
        if model not in models:
            raise ApiError(404, f"There is no image model '{model[:100]}' here; GET /v1/models lists them.",
                           "model_not_found")
        width, height = _size(fields.text("size", "512x512", 40))
        response_format = fields.text("response_format", "b64_json", 40)
        if response_format not in ("b64_json", "url"):
            raise InputError(f"'response_format' must be b64_json or url, not {response_format[:40]!r}.")
        if fields.text("output_format", "png", 40) != "png":
            raise InputError("'output_format' must be png: the studio's pictures carry their parameters in PNG.")
        seed = fields.whole("seed", None, 0, MAX_SEED)
        image_request = ImageRequest(
            prompt=fields.text("prompt", "", 100_000), negative_prompt=fields.text("negative_prompt", "", 100_000),
            model=model, decoder=self.studio.image_service.default_decoder(), width=width, height=height, seed=seed,
            batch_size=fields.whole("n", 1, 1, 10_000),
            steps=fields.whole("steps", ImageRequest.steps, 1, 10_000),
            guidance=fields.real("guidance_scale", ImageRequest.guidance, 0, 1_000),
        )
        keep = fields.flag("store", True)
        limits.check_image(image_request, self.studio.settings)  # refused requests count no start
        self.gate.count_start(caller)

        def work(cancel: CancelToken):
            return self.studio.generate_image(image_request, keep=keep, owner=caller.owner, cancel=cancel)

        outcome = await self.gate.run_heavy(request, work)
        items = outcome.items or [None] * len(outcome.result.images)
        here = str(request.url.replace(query="")).rsplit("/images/generations", 1)[0]  # .../v1, as called
        data = []
        for picture, record, item in zip(outcome.result.images, outcome.result.params, items, strict=True):
            png = result_png(picture, record, item)
            if response_format == "b64_json":
                data.append({"b64_json": encode_base64(png), "revised_prompt": image_request.prompt})
            else:
                name = self._serve(png, item.file if item is not None else None)
                data.append({"url": f"{here}/files/images/{name}",
                             "revised_prompt": image_request.prompt})
        return JSONResponse({"created": int(time.time()), "data": data})

    def _serve(self, png: bytes, path: Path | None) -> str:
        name = f"{secrets.token_urlsafe(18)}.png"
        with self._served_lock:
            self._served[name] = _Served(time.monotonic(), path, None if path is not None else png)
            while len(self._served) > SERVED_FILES:
                self._served.popitem(last=False)
        return name

    async def served_image(self, request: Request) -> Response:
        name = request.path_params["name"]
        with self._served_lock:
            served = self._served.get(name)
        if served is None or time.monotonic() - served.created > SERVED_SECONDS:
            raise ApiError(404, "This picture link has expired or never existed; links last an hour.", "not_found")
        if served.path is not None:
            if not served.path.exists():
                raise ApiError(404, "This picture was deleted from the gallery.", "not_found")
            return Response(served.path.read_bytes(), media_type="image/png")
        return Response(served.data, media_type="image/png")


def _content_text(content: Any, index: int) -> str:
    """A message's content: a string, or a list of text parts (the studio's models read no pictures)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InputError(f"messages[{index}] has a {json.dumps(kind)[:40]} part; the studio's text models "
                                 "read text parts only.")
            texts.append(part["text"])
        return "\n".join(texts)
    raise InputError(f"messages[{index}].content must be a string or a list of text parts.")


def _size(text: str) -> tuple[int, int]:
    if text in ("auto", ""):
        return 512, 512
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise InputError(f"'size' must be WIDTHxHEIGHT in pixels, like 512x512, not {text!r}.")
    return int(width), int(height)


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


class _Answer:
    """One completion's ids and shapes, chat or text, whole or in chunks."""

    def __init__(self, chat: bool, model: str, echo: str):
        self.chat = chat
        self.model = model
        self.echo = echo
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{secrets.token_hex(12)}"
        self.created = int(time.time())

    def _base(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model,
                "system_fingerprint": f"creative-studio-{__version__}"}

    @staticmethod
    def _usage(result: TextResult) -> dict[str, int]:
        return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.new_tokens,
                "total_tokens": result.prompt_tokens + result.new_tokens}

    def whole(self, result: TextResult) -> dict[str, Any]:
        finish = FINISH_REASONS.get(result.finish, "stop")
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": result.text}, "logprobs": None,
                      "finish_reason": finish}
            return {**self._base("chat.completion"), "choices": [choice], "usage": self._usage(result)}
        choice = {"index": 0, "text": self.echo + result.text, "logprobs": None, "finish_reason": finish}
        return {**self._base("text_completion"), "choices": [choice], "usage": self._usage(result)}

    def chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        if self.chat:
            return {**self._base("chat.completion.chunk"),
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return {**self._base("text_completion"),
                "choices": [{"index": 0, "text": delta.get("content", ""), "logprobs": None,
                             "finish_reason": finish}]}

    def usage_chunk(self, result: TextResult) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {**self._base(kind), "choices": [], "usage": self._usage(result)}
