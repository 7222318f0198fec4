"""With --auth, nothing of the studio answers an anonymous caller: not the API, not the files."""

from __future__ import annotations

import http.client

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.image_cases import EXAMPLES
from tests.running_app import RunningApp


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with RunningApp(tmp_path_factory.mktemp("auth") / "data", "--auth", "ann:s3cret") as running:
        yield running


def _status(app: RunningApp, method: str, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        connection.request(method, path)
        return connection.getresponse().status
    finally:
        connection.close()


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


def test_a_logged_in_client_works(app):
    client = Client(app.url, auth=("ann", "s3cret"), verbose=False)
    path, info = client.predict(handle_file(str(EXAMPLES / "coffee.jpg")), "Built-in style", 4, -1, 0.5, None, 1.0,
                                False, 256, True, api_name="/stylize")
    assert Image.open(path).size == (256, 171) and "gallery #1" in info


def test_wrong_password_is_refused(app):
    with pytest.raises(Exception):  # noqa: B017
        Client(app.url, auth=("ann", "wrong"), verbose=False)
