"""Pieces every tab shares: safe uploads, error messages, progress, Stop, serving files."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import utils as gr_utils
from gradio.data_classes import FileData

from studio.errors import Cancelled, StudioError
from studio.runtime import CancelToken, ProgressCallback

log = logging.getLogger(__name__)


class UploadedImage(gr.Image):
    """gr.Image that hands the raw upload's path to the studio instead of decoding it itself.

    The studio's own loader checks the pixel count before decoding and explains any
    problem in words; Gradio's preprocessing would fail on such files with a bare error.
    """

    def get_block_name(self) -> str:
        return "image"  # render with the ordinary Image component in the browser

    def preprocess(self, payload):  # type: ignore[override]
        if payload is None:
            return None
        if payload.path is None:  # pasted as a data: URL
            return super().preprocess(payload)
        return str(payload.path)


def image_upload(**kwargs: Any) -> UploadedImage:
    """An image input handing the studio its file path. (Gradio reads a component's props from its
    __init__ signature, so the defaults are set here rather than in an __init__ override.)"""
    kwargs.setdefault("type", "filepath")
    kwargs.setdefault("sources", ["upload", "clipboard"])
    return UploadedImage(**kwargs)


class UploadedImageEditor(gr.ImageEditor):
    """gr.ImageEditor handing the studio the uploaded files' paths, as UploadedImage does.

    Gradio's own preprocessing re-encodes each picture in the editor's mode under its original
    suffix, which fails outright for a JPEG in an RGBA editor; the studio decodes them itself.
    """

    def get_block_name(self) -> str:
        return "imageeditor"

    def convert_and_format_image(self, file, flatten_on_white: bool = False):  # type: ignore[override]
        if isinstance(file, FileData):
            return str(file.path)
        return super().convert_and_format_image(file, flatten_on_white)  # pasted bytes, no file


def user_errors(fn: Callable) -> Callable:
    """Turn the studio's errors into alerts; anything unexpected is logged and explained briefly.
    Works for plain handlers and for generator handlers (streaming previews)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any):
            with _as_alerts(fn.__name__):
                yield from fn(*args, **kwargs)

        return stream

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        with _as_alerts(fn.__name__):
            return fn(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _as_alerts(name: str) -> Iterator[None]:
    try:
        yield
    except (gr.Error, GeneratorExit):
        raise
    except StudioError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    except Cancelled:
        raise gr.Error("Stopped.", title="Stopped", print_exception=False) from None
    except Exception as exc:
        log.exception("unexpected error in %s", name)
        raise gr.Error(
            f"Something went wrong ({type(exc).__name__}). The details are in the studio's log.",
            print_exception=False,
        ) from None


def api_doc(summary: str, *, returns: str = "", **parameters: str) -> Callable[[Callable], Callable]:
    """Give an endpoint's handler the docstring Gradio reads for the API page and MCP tool descriptions:
    a one-line summary, then `Args:` with one `name: description` line per parameter (Gradio reads one
    line each), then `Returns:`. Every parameter a caller passes must be described, and nothing else:
    a handler whose signature and descriptions drift apart fails when the app is built."""

    def document(fn: Callable) -> Callable:
        hints = gr_utils.get_type_hints(fn)
        callers = [
            name
            for name, parameter in inspect.signature(fn).parameters.items()
            if not gr_utils.is_special_typed_parameter(name, hints) and not isinstance(parameter.default, gr.Progress)
        ]
        if set(callers) != set(parameters):
            missing, extra = set(callers) - set(parameters), set(parameters) - set(callers)
            raise TypeError(f"{fn.__qualname__}: undescribed parameters {sorted(missing)}, unknown {sorted(extra)}")
        texts = [summary, *parameters.values(), *([returns] if returns else [])]
        if any("\n" in text or not text.strip() for text in texts):
            raise TypeError(f"{fn.__qualname__}: descriptions are one non-empty line each")
        lines = [summary, "", "Args:", *(f"    {name}: {parameters[name]}" for name in callers)]
        if returns:
            lines += ["", "Returns:", f"    {returns}"]
        fn.__doc__ = "\n".join(lines)
        return fn

    return document


def progress_reporter(progress: gr.Progress, description: str) -> ProgressCallback:
    def report(done: int, total: int, preview: Any | None = None) -> None:
        progress((done, max(total, 1)), desc=description)

    return report


def with_previews(
    work: Callable[[ProgressCallback], Any],
    progress: gr.Progress,
    description: str,
    token: CancelToken,
    every: float = 0.25,
) -> Iterator[tuple[Any | None, Any | None]]:
    """Run `work(progress_callback)` in a worker thread; yield (latest preview, None) as previews
    arrive, then (None, result). Closing the generator (Gradio's Stop) cancels the work."""
    state: dict[str, Any] = {"done": 0, "total": 1, "preview": None, "fresh": False}
    outcome: dict[str, Any] = {}

    def report(done: int, total: int, preview: Any | None = None) -> None:
        state.update(done=done, total=total)
        if preview is not None:
            state.update(preview=preview, fresh=True)

    def run() -> None:
        try:
            outcome["value"] = work(report)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"studio-{description}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(every)
            progress((state["done"], max(state["total"], 1)), desc=description)
            if state["fresh"]:
                state["fresh"] = False
                yield state["preview"], None
    except GeneratorExit:
        token.cancel()
        raise
    if "error" in outcome:
        raise outcome["error"]
    yield None, outcome["value"]


def download_button(label: str, nothing_yet: str, **kwargs: Any) -> gr.DownloadButton:
    """A DownloadButton that answers a click before there is a file with `nothing_yet`: an empty one
    otherwise does nothing at all, which reads as broken."""
    button = gr.DownloadButton(label, value=None, **kwargs)

    def explain(current: Any) -> None:
        if not current:
            gr.Info(nothing_yet)

    button.click(explain, button, None, api_visibility="private")
    return button


class StopButtons:
    """One cancel token per browser session, so Stop ends that visitor's work and nobody else's."""

    def __init__(self) -> None:
        self._tokens: dict[str, CancelToken] = {}
        self._lock = threading.Lock()

    def start(self, request: gr.Request | None) -> CancelToken:
        token = CancelToken()
        with self._lock:
            self._tokens[_session(request)] = token
        return token

    def connect(self, button: gr.Button) -> None:
        """Make `button` stop whatever its visitor's session is running."""

        def stop(request: gr.Request) -> None:
            self.stop(request)

        button.click(stop, None, None, api_visibility="private")

    def stop(self, request: gr.Request | None) -> None:
        with self._lock:
            token = self._tokens.pop(_session(request), None)
        if token is not None:
            token.cancel()


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


_SERVE_DIR = Path(tempfile.gettempdir()) / "studio-serve"


def servable(path: Path) -> str:
    """A path Gradio may hand to the browser: files outside the working and temp folders are copied.

    Keeping the data dir out of Gradio's allowed paths means no URL can reach it directly.
    """
    path = Path(path).resolve()
    for root in (Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve()):
        if path.is_relative_to(root):
            return str(path)
    _SERVE_DIR.mkdir(parents=True, exist_ok=True)
    copy = _SERVE_DIR / f"{hashlib.sha1(str(path).encode()).hexdigest()[:12]}-{path.name}"
    if not copy.exists():
        shutil.copyfile(path, copy)
    return str(copy)
