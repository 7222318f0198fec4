"""Serving the HTTP APIs beside the page: one small Starlette app for both dialects, and the ASGI
middleware that hands it their paths on the page's own server (same port, same process, same queue)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from studio import hosting
from studio.api.a1111 import A1111Api
from studio.api.gate import GRADIO_APP_KEY, Gate
from studio.api.openai_compat import OpenAiApi
from studio.services import Studio

A1111_PREFIX = "/sdapi/v1"
OPENAI_PREFIX = "/v1"


def build_api_app(studio: Studio, limiter: hosting.RateLimiter | None = None) -> Starlette:
    gate = Gate(studio, limiter)
    return Starlette(routes=[
        Mount(A1111_PREFIX, routes=A1111Api(gate).routes()),
        Mount(OPENAI_PREFIX, routes=OpenAiApi(gate).routes()),
    ])


class ExtraApis:
    """ASGI middleware on the page's server: requests under /sdapi/v1/ and /v1/ go to the APIs' app,
    everything else to the page."""

    def __init__(self, app: ASGIApp, api_app: ASGIApp) -> None:
        self.app = app
        self.api_app = api_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"].removeprefix(scope.get("root_path", "")) or "/"
            if path.startswith((A1111_PREFIX + "/", OPENAI_PREFIX + "/")):
                scope = {**scope, GRADIO_APP_KEY: scope.get("app")}
                await self.api_app(scope, receive, send)
                return
        await self.app(scope, receive, send)
