"""What stands between a visitor's request and the studio's handlers.

The page only ever sends well-formed values, but the API takes whatever a script sends. Gradio
checks some of it (choices, slider bounds, upload folders) and fails on the rest with an error it
does not explain (NaN in a number, a file that was never uploaded, a chat history of the wrong
shape). `StudioBlocks` turns every such refusal into one line for the person who sent it.

`LoginRequired` makes `--auth` cover every route: Gradio itself leaves a few of its own routes
(cancelling, streaming, heartbeats) open to anonymous callers.
"""

from __future__ import annotations

import math
import re
from typing import Any

import gradio as gr
from gradio.exceptions import ComponentProcessingError, InvalidPathError
from pydantic import ValidationError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from studio.hosting import logged_in

NOT_UPLOADED = (
    "A file given to this action was not uploaded to the studio, so it is refused: upload it first "
    "(the page does this for you; from Python use gradio_client's handle_file)."
)
NO_LINKS = (
    "Files must be uploaded to the studio; it does not fetch links (http://, file://, data:). Upload the "
    "file itself (the page does this for you; from Python use gradio_client's handle_file)."
)
MAX_REASON_CHARS = 160
_LINK = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^data:")


class StudioBlocks(gr.Blocks):
    """gr.Blocks whose API refuses unusable input values with one clear line instead of a bare error."""

    async def preprocess_data(self, block_fn, inputs: list[Any], state, explicit_call: bool = False):
        if len(inputs) < len(block_fn.inputs):
            raise gr.Error(f"This action takes {len(block_fn.inputs)} values; it was given {len(inputs)}.",
                           print_exception=False)
        props = set(getattr(block_fn, "component_prop_inputs", ()))  # these carry a dict of props, not a value
        for index, (block, value) in enumerate(zip(block_fn.inputs, inputs, strict=False)):
            if index not in props:
                _check_number(block, value)
                _check_choice(block, value)
            _check_files(value)
        try:
            return await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except InvalidPathError:
            raise gr.Error(NOT_UPLOADED, print_exception=False) from None
        except (ComponentProcessingError, ValidationError, ValueError, TypeError) as exc:
            what = _culprit(block_fn.inputs, exc)
            raise gr.Error(f"The value given for {what} cannot be used ({_reason(exc)}).",
                           print_exception=False) from None


def _check_number(block: Any, value: Any) -> None:
    """Numbers and sliders take a finite number (a Number may also be empty)."""
    if not isinstance(block, (gr.Number, gr.Slider)):
        return
    if value is None and isinstance(block, gr.Number):
        return
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not real or (isinstance(value, float) and not math.isfinite(value)):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise gr.Error(f"{_label(block)} must be a number, not {shown}.", print_exception=False)
    if isinstance(block, gr.Number):
        _check_bounds(block, value)


def _check_bounds(block: gr.Number, value: float) -> None:
    """Gradio's own refusal ("Value -5 is less than minimum value 0") names neither the field nor the range.
    (Sliders keep Gradio's: the page never sends them out of range, and callers match its words.)"""
    low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)
    if (low is None or value >= low) and (high is None or value <= high):
        return
    if low is not None and high is not None:
        allowed = f"from {_plain(low)} to {_plain(high)}"
    else:
        allowed = f"at least {_plain(low)}" if low is not None else f"at most {_plain(high)}"
    raise gr.Error(f"{_label(block)} must be {allowed}, not {_plain(value)}.", print_exception=False)


def _plain(number: float) -> str:
    """A number as people write it: 4294967295, not 4.29497e+09."""
    return str(int(number)) if float(number).is_integer() else f"{number:.10g}"


def _check_choice(block: Any, value: Any) -> None:
    """A single-choice list takes one value: Gradio lets an empty list through as 'no choice outside the list'."""
    single = isinstance(block, (gr.Dropdown, gr.Radio)) and not getattr(block, "multiselect", False)
    if single and isinstance(value, (list, tuple, dict)):
        raise gr.Error(f"{_label(block)} takes one of its choices, not a {type(value).__name__}.",
                       print_exception=False)


def _check_files(value: Any) -> None:
    """A file input names a file uploaded here, never a link: Gradio would fetch public URLs itself."""
    if isinstance(value, dict):
        if isinstance(value.get("meta"), dict) and value["meta"].get("_type") == "gradio.FileData":
            path = value.get("path")
            if not isinstance(path, str) or _LINK.match(path):
                raise gr.Error(NO_LINKS, print_exception=False)
        for item in value.values():
            _check_files(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_files(item)


def _label(block: Any) -> str:
    label = getattr(block, "label", None)
    return f"'{label}'" if label else f"a {block.get_block_name()} input"


def _culprit(blocks: list, exc: Exception) -> str:
    """The input a preprocessing error is about, as far as Gradio's error tells it."""
    if isinstance(exc, ComponentProcessingError):
        found = re.search(r"input component at index (\d+)", str(exc))
        if found and int(found.group(1)) < len(blocks):
            return _label(blocks[int(found.group(1))])
    if isinstance(exc, ValidationError):
        for block in blocks:
            model = getattr(block, "data_model", None)
            if model is not None and getattr(model, "__name__", None) == exc.title:
                return _label(block)
    return "one of the inputs"


def _reason(exc: Exception) -> str:
    """The underlying complaint, short: Gradio's own message repeats the whole value."""
    cause = exc.__cause__ if isinstance(exc, ComponentProcessingError) and exc.__cause__ else exc
    if isinstance(cause, ValidationError):
        first = cause.errors()[0] if cause.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        text = f"{where}: {first.get('msg', 'not the expected shape')}" if where else first.get("msg", "")
    else:
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return text[:MAX_REASON_CHARS] + ("…" if len(text) > MAX_REASON_CHARS else "")


# -- login for every route ------------------------------------------------------------------------------

# What the login page itself loads before anyone has logged in (measured in Chromium), and the login
# and logout routes. Everything else, Gradio's API included, needs the login cookie.
# Gradio's launch() also calls its own startup-events route, before anyone can log in.
OPEN_PATHS = {"/", "/login", "/login/", "/logout", "/theme.css", "/favicon.ico", "/robots.txt",
              "/gradio_api/startup-events"}
OPEN_PREFIXES = ("/assets/", "/static/")


class LoginRequired:
    """ASGI middleware: with a login set, anonymous requests get 401 on every route but the login page's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("app")
        if scope["type"] in ("http", "websocket") and getattr(server, "auth", None):
            path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
            if not _is_open(path) and not logged_in(server, scope):
                response = JSONResponse({"detail": {"error": "Not authenticated"}}, status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
