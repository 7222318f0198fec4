"""With --auth, nothing of the studio answers an anonymous caller: not the API, not the files."""

from __future__ import annotations

import http.client
import re

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio.ui.guard import OPEN_PATHS, OPEN_PREFIXES
from tests.image_cases import EXAMPLES
from tests.running_app import RunningApp


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with RunningApp(tmp_path_factory.mktemp("auth") / "data", "--auth", "ann:s3cret") as running:
        yield running


def _status(app: RunningApp, method: str, path: str, body: bytes | None = None) -> int:
    return _response(app, method, path, body)[0]


def _response(app: RunningApp, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(4096).decode(errors="replace")
    finally:
        connection.close()


def _every_route() -> list[tuple[str, str]]:
    """(method, path) of every route a Gradio app serves, read from Gradio's own route table."""
    with gr.Blocks() as empty:
        gr.Markdown()
    found: list[tuple[str, str]] = []

    def walk(routes) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router: the /gradio_api routes
                walk(route.original_router.routes)
            elif hasattr(route, "path"):
                found.extend((method, route.path) for method in sorted(getattr(route, "methods", None) or {"GET"}))

    walk(gr.routes.App.create_app(empty).routes)
    return [(method, path) for method, path in found if method != "HEAD"]


def test_anonymous_callers_are_refused(app):
    for method, path in (
        ("GET", "/config"),
        ("GET", "/gradio_api/info"),
        ("POST", "/gradio_api/upload"),
        ("POST", "/gradio_api/call/stylize"),
        ("GET", "/gradio_api/file=/etc/hostname"),
    ):
        assert _status(app, method, path) in (401, 403), path
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; what matters is that no call gets through
        Client(app.url, verbose=False)


def test_every_route_but_the_login_pages_refuses_anonymous_callers(app):
    routes = _every_route()
    assert len(routes) > 60  # the whole table, not a handful
    for method, path in routes:
        concrete = re.sub(r"\{[^}]*\}", "x", path)  # any value for path parameters
        if path in OPEN_PATHS or concrete.startswith(OPEN_PREFIXES):
            continue
        status, _ = _response(app, method, concrete, b"{}" if method == "POST" else None)
        assert status == 401, (method, path, status)
    # What stays open is the login page itself, and it shows nothing of the studio.
    status, page = _response(app, "GET", "/")
    assert status == 200 and "stylize" not in page and "tab-style" not in page


def test_a_logged_in_client_works(app):
    client = Client(app.url, auth=("ann", "s3cret"), verbose=False)
    path, info = client.predict(handle_file(str(EXAMPLES / "coffee.jpg")), "Built-in style", 4, -1, 0.5, None, 1.0,
                                False, 256, True, api_name="/stylize")
    assert Image.open(path).size == (256, 171) and "gallery #1" in info


def test_wrong_password_is_refused(app):
    with pytest.raises(Exception):  # noqa: B017
        Client(app.url, auth=("ann", "wrong"), verbose=False)
