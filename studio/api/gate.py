"""What every API request passes before it reaches a service: the login, the caller's identity and
rate limit, and the heavy lane, with the client's disconnect turned into Stop.

The rules are the page's: `--auth` covers these routes (HTTP Basic with that login, the page's login
cookie, or `Authorization: Bearer` with `--api-key`), model work waits its turn with the page's
visitors in the studio's heavy lane, and in hosted mode each address has the page's rate limit and
its own gallery scope.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request

from studio import hosting
from studio.errors import Cancelled, InputError, ModelUnavailable, StudioError
from studio.runtime import CancelToken
from studio.services import Studio

log = logging.getLogger(__name__)
T = TypeVar("T")
DISCONNECT_POLL_SECONDS = 0.1
GRADIO_APP_KEY = "studio.gradio_app"  # the page's server, kept in the scope for its login cookie check


@dataclass
class ApiError(Exception):
    """A refusal with its HTTP status; each dialect writes it in its own error shape."""

    status: int
    message: str
    code: str = "invalid_request_error"

    def __str__(self) -> str:
        return self.message


class ClientGone(Exception):
    """The caller hung up before the answer was ready; its work was stopped."""


@dataclass(frozen=True)
class Caller:
    address: str
    owner: str | None  # gallery owner tag: per address in hosted mode, the whole gallery locally


class Gate:
    def __init__(self, studio: Studio, limiter: hosting.RateLimiter | None = None):
        self.studio = studio
        self.settings = studio.settings
        self.limiter = limiter or hosting.RateLimiter(self.settings.rate_limit_per_minute)

    # -- who is calling ---------------------------------------------------------------------

    def check_login(self, request: Request) -> None:
        """ApiError 401 unless the request carries the login or the API key, where either is set."""
        pair, key = self.settings.auth_pair, self.settings.api_key
        if pair is None and key is None:
            return
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer" and key is not None and secrets.compare_digest(credentials.encode(), key.encode()):
            return
        if scheme == "basic" and pair is not None and _basic_matches(credentials, pair):
            return
        server = request.scope.get(GRADIO_APP_KEY)
        if pair is not None and server is not None and hosting.logged_in(server, request.scope):
            return
        wanted = " or ".join(
            what for what, needed in (("the studio's login (HTTP Basic)", pair), ("its API key (Bearer)", key))
            if needed
        )
        raise ApiError(401, f"This studio needs {wanted} for its API.", "invalid_api_key")

    def caller(self, request: Request) -> Caller:
        client = request.client
        address = client.host if client is not None else "unknown"
        if self.settings.hosted:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded.strip():
                address = forwarded.split(",")[-1].strip()  # the entry the proxy added; the rest is forgeable
            return Caller(address, f"api:{address}")
        return Caller(address, None)

    def count_start(self, caller: Caller) -> None:
        """Count a heavy start against the caller's rate limit (429 when over it)."""
        try:
            self.limiter.check(caller.address)
        except hosting.RateLimited as exc:
            raise ApiError(429, exc.message, "rate_limit_exceeded") from None

    # -- running model work -----------------------------------------------------------------

    async def run_heavy(self, request: Request, work: Callable[[CancelToken], T],
                        cancel: CancelToken | None = None) -> T:
        """Run `work(cancel)` in a worker thread once the heavy lane has a slot; a caller who hangs up,
        while waiting or while it runs, stops it (ClientGone)."""
        token = cancel or CancelToken()
        loop = asyncio.get_running_loop()
        finished: asyncio.Future = loop.create_future()

        def settle(outcome: Any, failed: bool) -> None:
            if finished.done():
                return
            if failed:
                finished.set_exception(outcome)
            else:
                finished.set_result(outcome)

        def target() -> None:
            try:
                with self.studio.heavy.hold(token):
                    outcome, failed = work(token), False
            except BaseException as exc:  # handed to the request's task, which explains it
                outcome, failed = exc, True
            with contextlib.suppress(RuntimeError):  # the server's loop has closed: nobody waits for the answer
                loop.call_soon_threadsafe(settle, outcome, failed)

        threading.Thread(target=target, name="api-heavy", daemon=True).start()
        try:
            while True:
                done, _ = await asyncio.wait({finished}, timeout=DISCONNECT_POLL_SECONDS)
                if done:
                    return finished.result()
                if await request.is_disconnected():
                    token.cancel()
                    raise ClientGone()
        except asyncio.CancelledError:
            token.cancel()
            raise


    async def stream_heavy(self, produce: Callable[[CancelToken], Iterator[T]]) -> AsyncIterator[T]:
        """The items of `produce(cancel)`, made in a worker thread once the heavy lane has a slot. Whoever
        stops reading (a client that hangs up closes the response's iterator) stops the work."""
        token = CancelToken()
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()

        def hand_over(kind: str, payload: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, (kind, payload))
            except RuntimeError:  # the server's loop has closed: nobody is reading any more
                token.cancel()

        def target() -> None:
            try:
                with self.studio.heavy.hold(token):
                    for item in produce(token):
                        hand_over("item", item)
            except BaseException as exc:  # handed to the reader, which explains it
                hand_over("error", exc)
            hand_over("end", None)

        threading.Thread(target=target, name="api-heavy-stream", daemon=True).start()
        try:
            while True:
                kind, payload = await items.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise payload
                yield payload
        finally:
            token.cancel()  # a no-op once the work is done; otherwise the reader left, so stop it


def _basic_matches(credentials: str, pair: tuple[str, str]) -> bool:
    try:
        user, _, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    return secrets.compare_digest(user.encode(), pair[0].encode()) & secrets.compare_digest(
        password.encode(), pair[1].encode()
    )


def as_api_error(exc: BaseException) -> ApiError:
    """Any failure of a request as the refusal a client reads: the studio's own sentence where it has one."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, hosting.RateLimited):
        return ApiError(429, exc.message, "rate_limit_exceeded")
    if isinstance(exc, ModelUnavailable):
        return ApiError(503, str(exc), "model_not_available")
    if isinstance(exc, InputError):
        return ApiError(400, str(exc))
    if isinstance(exc, StudioError):
        message = str(exc)
        not_listed = "is not in the model catalogue" in message
        return ApiError(404 if not_listed else 400, message, "model_not_found" if not_listed else "studio_error")
    if isinstance(exc, Cancelled):
        return ApiError(409, "The work was stopped before it finished.", "cancelled")
    log.error("API request failed", exc_info=exc)
    return ApiError(500, f"The studio failed on this request ({type(exc).__name__}); its log has the details.",
                    "server_error")
