"""The running studio in hosted mode, reached by several API clients at once."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from gradio_client import Client

from tests.running_app import RunningApp

SMOLLM = "smollm2-135m-instruct-gguf"


def pattern(client: Client, seed: int, keep: bool = True):
    return client.predict(seed, "sunset", 64, 64, 1.0, keep, api_name="/patterns")


def long_story(client: Client):
    """A reply long enough (512 tokens) to keep the one heavy slot busy while the test looks at the queue."""
    return client.submit("Once upon a time", SMOLLM, 0.8, 0.95, 40, 0.05, 1.1, 512, "", 1, False, api_name="/write")


def wait_for(job, state: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while job.status().code.name != state:
        assert time.monotonic() < deadline, f"the job never reached {state}: {job.status()}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    env = {"STUDIO_MAX_QUEUE": "1", "STUDIO_RATE_LIMIT_PER_MINUTE": "6"}
    with RunningApp(tmp_path_factory.mktemp("hosted") / "data", "--hosted", "--mcp", env=env) as running:
        yield running


def test_each_visitor_sees_only_their_own_gallery(app):
    alice, bob = Client(app.url, verbose=False), Client(app.url, verbose=False)
    _, info = pattern(alice, 7)
    item_id = int(info.rsplit("#", 1)[1])
    assert len(alice.predict("All", api_name="/gallery_list")[0]) == 1
    assert bob.predict("All", api_name="/gallery_list")[0] == []
    for endpoint in ("/gallery_delete", "/gallery_rerun"):
        with pytest.raises(Exception, match=f"#{item_id} does not exist"):
            bob.predict(item_id, "All", api_name=endpoint)
    assert len(alice.predict("All", api_name="/gallery_list")[0]) == 1  # still there for its owner


def test_a_full_queue_says_busy_and_a_stopped_run_frees_the_worker(app):
    first, second, third = (Client(app.url, verbose=False) for _ in range(3))
    story = long_story(first)
    wait_for(story, "PROCESSING")
    waiting = second.submit(8, "sunset", 64, 64, 1.0, False, api_name="/patterns")
    wait_for(waiting, "IN_QUEUE")
    with pytest.raises(Exception, match="Queue is full! Please try again"):
        pattern(third, 9, keep=False)
    story.cancel()  # the visitor leaves: the queued pattern gets the worker
    assert "not kept" in waiting.result(timeout=120)[1]


def test_a_visitor_who_goes_too_fast_is_told_when_to_come_back(app):
    client = Client(app.url, verbose=False)
    # All the test's clients share one address; earlier tests spent some of its six runs a minute.
    with pytest.raises(Exception, match=r"faster than this demo allows \(6 runs a minute\). Try again in \d+ s"):
        for seed in range(7):
            pattern(client, seed, keep=False)


def test_hosted_limits_hold_for_api_callers(app):
    client = Client(app.url, verbose=False)
    with pytest.raises(Exception, match="greater than maximum value 512"):
        client.predict("Once", SMOLLM, 0.8, 0.95, 40, 0.05, 1.1, 4096, "", 1, False, api_name="/write")


def test_mcp_clients_get_the_studios_tools(app):
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)  # the app on loopback
    try:
        connection.request("GET", "/gradio_api/mcp/schema")
        tools = {tool["name"]: tool for tool in json.load(connection.getresponse())}
    finally:
        connection.close()
    assert {"stylize", "txt2img", "write", "melody", "patterns", "style_walk"} <= set(tools)
    assert tools["patterns"]["inputSchema"]["properties"]["seed"]["description"]
    assert all(tool["description"].strip() for tool in tools.values())
    assert not any(name.startswith("lambda") for name in tools)  # internal plumbing stays private
