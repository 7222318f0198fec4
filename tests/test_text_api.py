"""The running app's Text endpoints through gradio_client, and `python -m studio text` as typed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client

from studio.history import Gallery
from studio.services.writing_presets import PRESETS
from tests.running_app import RunningApp

ROOT = Path(__file__).resolve().parent.parent
BUILTIN = "smollm2-135m-instruct-gguf"
STORY = "The lighthouse keeper climbed the stairs and"
# temperature, top-p, top-k, min-p, repetition penalty, max new tokens, stop sequences, seed, keep
SAMPLING = (0.8, 0.95, 40, 0.05, 1.1, 40, "", 7, True)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with RunningApp(tmp_path_factory.mktemp("text-api") / "data", env={"HF_HUB_CACHE": "/nonexistent"}) as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def sampling(**changes):
    names = ("temperature", "top_p", "top_k", "min_p", "repetition", "max_new", "stop", "seed", "keep")
    values = dict(zip(names, SAMPLING, strict=True))
    values.update(changes)
    return tuple(values[n] for n in names)


def test_write_streams_the_continuation_in_place_and_keeps_it(client, app):
    job = client.submit(STORY, BUILTIN, *sampling(max_new=60, temperature=0.0), api_name="/write")
    texts = [update[0] for update in job]
    text, stats, latest = job.outputs()[-1]
    assert len(texts) >= 10  # many partial updates, not one
    assert all(t.startswith(STORY) for t in texts)
    assert text == STORY + latest and len(latest) > 20
    assert "60 tokens" in stats and "tokens/s" in stats and "gallery #" in stats
    item = Gallery(app.data_dir).list(task="text")[0]
    assert item.file.read_text() == text and item.params["seed"] == 7


def test_same_seed_same_text_through_the_api(client):
    first = client.predict(STORY, BUILTIN, *sampling(seed=21, keep=False), api_name="/write")
    again = client.predict(STORY, BUILTIN, *sampling(seed=21, keep=False), api_name="/write")
    assert first[0] == again[0] and "not kept" in first[1]


@pytest.mark.parametrize("seed", [7, 20])  # seed 20's reply ends in a blank line, which the chat does not show
def test_the_latest_reply_is_the_reply_the_chat_shows(client, seed):
    history, _, _, latest = client.predict("Write a two-line poem about rain.", [], "You are a poet.", BUILTIN,
                                           *sampling(seed=seed, keep=False), api_name="/chat")
    assert latest and history[1]["content"][0]["text"] == latest == latest.strip()


def test_chat_regenerate_and_undo(client):
    history, message, stats, latest = client.predict(
        "Write a two-line poem about rain.", [], "You are a poet.", BUILTIN, *sampling(), api_name="/chat"
    )
    assert message == ""
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["content"][0]["text"] == latest and latest
    assert re.search(r"\bseed 7\b", stats)
    again, _, stats2, latest2 = client.predict(history, "You are a poet.", BUILTIN, *sampling(),
                                               api_name="/chat_regenerate")
    assert len(again) == 2 and again[1]["content"][0]["text"] == latest2
    assert not re.search(r"\bseed 7\b", stats2)  # a fresh seed for a fresh answer
    undone, back = client.predict(again, api_name="/chat_undo")
    assert undone == [] and back == "Write a two-line poem about rain."


def test_stop_sequences_through_the_api(client):
    free = client.predict(STORY, BUILTIN, *sampling(temperature=0.0, keep=False), api_name="/write")[2]
    stop = free.split()[3]
    stopped = client.predict(STORY, BUILTIN, *sampling(temperature=0.0, keep=False, stop=stop), api_name="/write")
    assert stopped[2] == free[: free.index(stop)] and "stop sequence" in stopped[1]


# A finished exchange in SmolLM2's chat format: at temperature 0 the model adds nothing after it.
FINISHED = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nThe answer is: 4"


def test_a_continuation_that_adds_nothing_is_not_kept(client, app):
    before = len(Gallery(app.data_dir).list(task="text"))
    text, stats, latest = client.predict(FINISHED, BUILTIN, *sampling(temperature=0.0), api_name="/write")
    assert (text, latest) == (FINISHED, "")
    assert "**0 tokens**" in stats and "the model finished" in stats and "not kept" in stats
    assert len(Gallery(app.data_dir).list(task="text")) == before


def test_the_chat_takes_a_preset_whose_format_the_answer_keeps(client, app):
    expander = PRESETS["Image-prompt expander"]
    history, _, stats, prompt = client.predict(
        "a fox reading in a library", [], expander.system, BUILTIN,
        *sampling(temperature=expander.temperature, min_p=expander.min_p, max_new=expander.max_new_tokens),
        preset=expander.name, api_name="/chat",
    )
    assert expander.shape(prompt), prompt
    item = Gallery(app.data_dir).list(task="text")[0]
    assert item.params["grammar"] == expander.grammar and len(item.params["examples"]) == len(expander.examples)
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict("hi", [], "", BUILTIN, *SAMPLING, "No such preset", api_name="/chat")


@pytest.mark.parametrize(
    "endpoint, args, words",
    [
        ("/write", ("", BUILTIN, *SAMPLING), "Write a few words first"),
        ("/write", ("x" * 100_000, BUILTIN, *SAMPLING), "100,000 characters"),
        ("/write", (STORY, BUILTIN, *sampling(max_new=0)), "less than minimum value 1"),
        ("/write", (STORY, BUILTIN, *sampling(max_new=10**7)), "greater than maximum value 4096"),
        ("/write", (STORY, BUILTIN, *sampling(temperature=-1)), "less than minimum value 0"),
        ("/write", (STORY, "../secrets", *SAMPLING), "not in the list of choices"),
        ("/chat", ("   ", [], "", BUILTIN, *SAMPLING), "Type a message first"),
        ("/chat", ("Hi", [], "", "HuggingFaceTB/SmolLM2-360M-Instruct", *SAMPLING),
         "python -m studio download HuggingFaceTB/SmolLM2-360M-Instruct"),
        ("/chat_regenerate", ([], "", BUILTIN, *SAMPLING), "no message to answer"),
    ],
)
def test_bad_input_gets_a_clear_message(client, endpoint, args, words):
    with pytest.raises(Exception, match=words) as caught:
        client.predict(*args, api_name=endpoint)
    assert "Traceback" not in str(caught.value)


def test_a_text_item_reruns_from_the_gallery(client, app):
    client.predict(STORY, BUILTIN, *sampling(seed=99), api_name="/write")
    gallery = Gallery(app.data_dir)
    made = gallery.list(task="text")[0]
    client.predict(made.id, "text", api_name="/gallery_rerun")
    again = gallery.list(task="text")[0]
    assert again.id != made.id and again.file.read_text() == made.file.read_text()


def studio_text(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, "-m", "studio", "text", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=180)


def test_cli_streams_to_stdout_and_json_reports_once(tmp_path):
    data = tmp_path / "data"
    plain = studio_text(STORY, "--seed", "4", "--max-tokens", "30", data_dir=data)
    assert plain.returncode == 0, plain.stderr
    assert "30 tokens" in plain.stderr and "seed 4" in plain.stderr
    done = studio_text(STORY, "--seed", "4", "--max-tokens", "30", "--json", "--no-gallery", data_dir=data)
    report = json.loads(done.stdout)
    assert report["text"] == plain.stdout.rstrip("\n")
    assert report["new_tokens"] == 30 and report["parameters"]["seed"] == 4 and report["gallery_id"] is None
    chat = studio_text("-", "--chat", "--preset", "Poem", "--seed", "2", "--max-tokens", "40", "--json",
                       "--temperature", "0.5", data_dir=data, stdin="the sea at night")
    report = json.loads(chat.stdout)
    assert report["parameters"]["messages"] == [["user", "the sea at night"]]
    assert report["parameters"]["system"].startswith("You are a poet")
    assert report["parameters"]["temperature"] == 0.5 and report["text"]
    assert len(Gallery(data).list(task="text")) == 2


@pytest.mark.parametrize(
    "args, words",
    [
        (("",), "Write a few words first"),
        (("hi", "--temperature", "-1"), "temperature must be from 0"),
        (("hi", "--max-tokens", "0"), "from 1 to 4,096"),
        (("hi", "--max-tokens", "123456789"), "from 1 to 4,096"),
        (("hi", "--model", "no/such-model"), "not in the model catalogue"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_2(tmp_path, args, words):
    done = studio_text(*args, data_dir=tmp_path / "data")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
