"""What changes when the studio is a demo for strangers: who a visitor is, how often they may start
heavy work, whose gallery items they see, and handing GPU work to a Hugging Face Space's scheduler.

A visitor is a browser session (Gradio's session hash): each page load gets a private gallery,
deleted after `session_max_age_hours`. The rate limit counts by network address instead, since
a new session costs nothing to open.
"""

from __future__ import annotations

import functools
import inspect
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gradio as gr

from studio.runtime import HeavyLane
from studio.settings import Settings

log = logging.getLogger(__name__)

HEAVY = "heavy"  # the concurrency id every model-running event shares
LIGHT_CONCURRENCY = 4  # gallery listing, parameter reading and the like never wait behind a model
# Heavy events whose models run on the CPU whatever the machine (ONNX, the studio's own small
# models): on a ZeroGPU Space they should not spend a visitor's GPU time.
CPU_ONLY_EVENTS = frozenset({"stylize", "style_walk", "patterns", "pattern_walk", "image_patterns", "melody",
                             "melody_walk", "analyse"})


def current_request() -> gr.Request | None:
    """The request of the event being served in this thread, if any.

    Gradio sets it around every call of an event function (generators included), which is what
    lets the gallery know its visitor without threading a request through every service.
    """
    from gradio.context import LocalContext

    return LocalContext.request.get(None)


def visitor_address(request: gr.Request, behind_proxy: bool) -> str:
    """The visitor's network address; behind a proxy (a Space), the one the proxy saw.

    The proxy appends the address it saw to X-Forwarded-For, so the last entry is the one a
    visitor cannot forge; earlier entries come from the visitor and are ignored.
    """
    if behind_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()
    client = request.client
    return client.host if client is not None else "unknown"


def session_owner() -> Callable[[], str | None]:
    """For Gallery(scope=...): the current session's owner tag in hosted mode.

    Outside an event (start-up, clean-up) there is no visitor, and the gallery is seen whole.
    Inside an event without a session hash, a fresh tag sees nothing rather than everything.
    """

    def owner() -> str | None:
        request = current_request()
        if request is None:
            return None
        return f"session:{request.session_hash}" if request.session_hash else f"nobody:{secrets.token_hex(8)}"

    return owner


class RateLimited(gr.Error):
    def __init__(self, wait_seconds: float, per_minute: int):
        super().__init__(
            f"You are going faster than this demo allows ({per_minute} runs a minute). "
            f"Try again in {max(1, round(wait_seconds))} s.",
            title="Slow down a little",
        )


class RateLimiter:
    """At most `per_minute` starts per key in any sliding minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.clock = clock
        self._starts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Count one start for `key`, or raise RateLimited saying how long to wait."""
        if self.per_minute <= 0:
            return
        now = self.clock()
        with self._lock:
            starts = self._starts.setdefault(key, deque())
            while starts and now - starts[0] >= 60:
                starts.popleft()
            if len(starts) >= self.per_minute:
                raise RateLimited(60 - (now - starts[0]), self.per_minute)
            starts.append(now)
            if len(self._starts) > 10_000:  # forget idle visitors so the table cannot grow without end
                for idle in [k for k, v in self._starts.items() if not v or now - v[-1] >= 60]:
                    del self._starts[idle]


def _gpu(fn: Callable) -> Callable:
    """`spaces.GPU` where the `spaces` package is installed (a ZeroGPU Space); the function itself elsewhere."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    return spaces.GPU(fn)


def _with_rate_limit(fn: Callable, limiter: RateLimiter, behind_proxy: bool) -> Callable:
    def check() -> None:
        request = current_request()
        if request is not None:
            limiter.check(visitor_address(request, behind_proxy))

    # Gradio reads the signature (through __wrapped__) to pass progress trackers and requests,
    # and whether the function is a generator to stream: the wrapper keeps both.
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def limited_stream(*args, **kwargs):
            check()
            yield from fn(*args, **kwargs)

        return limited_stream

    @functools.wraps(fn)
    def limited(*args, **kwargs):
        check()
        return fn(*args, **kwargs)

    return limited


def _in_lane(fn: Callable, lane: HeavyLane) -> Callable:
    """Hold a slot of the studio's heavy lane for the whole run (a generator's included), so API calls
    and the page's events take turns."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def lane_stream(*args, **kwargs):
            with lane.hold():
                yield from fn(*args, **kwargs)

        return lane_stream

    @functools.wraps(fn)
    def in_lane(*args, **kwargs):
        with lane.hold():
            return fn(*args, **kwargs)

    return in_lane


def apply(app: gr.Blocks, settings: Settings, limiter: RateLimiter | None = None,
          lane: HeavyLane | None = None) -> None:
    """Give every heavy event the operator's concurrency (shared with the HTTP APIs through `lane`), a
    rate limit where one is set, and the GPU hand-off on Spaces. Call after the tabs are built and
    before launch."""
    limiter = limiter or RateLimiter(settings.rate_limit_per_minute)
    for block_fn in app.fns.values():
        if block_fn.fn is None or block_fn.concurrency_id != HEAVY:
            continue
        block_fn.concurrency_limit = settings.heavy_concurrency
        fn = block_fn.fn if block_fn.api_name in CPU_ONLY_EVENTS else _gpu(block_fn.fn)
        if lane is not None:
            fn = _in_lane(fn, lane)
        if settings.rate_limit_per_minute > 0:
            fn = _with_rate_limit(fn, limiter, behind_proxy=settings.hosted)
        block_fn.fn = fn


def logged_in(server: Any, scope: dict[str, Any]) -> bool:
    """The same test Gradio's own routes make: a login cookie naming a live session."""
    from starlette.requests import HTTPConnection

    cookies = HTTPConnection(scope).cookies
    cookie_id = getattr(server, "cookie_id", "")
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return token is not None and token in getattr(server, "tokens", {})
