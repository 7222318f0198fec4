"""Faults a studio shared with strangers meets: damaged weights, a full disk, a process killed in the
middle of a save, visitors who leave mid-stream or press Stop. Each fails (or ends) one request with a
clear message and leaves the studio able to serve the next one."""

from __future__ import annotations

import errno
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client

from studio.backends.melody import MelodyRequest
from studio.backends.musicgen import MusicRequest
from studio.catalog import BUILTIN_ENTRIES, Catalog, builtin_file
from studio.errors import StudioError
from studio.history import Gallery, GallerySaveError
from studio.services import Studio
from studio.services import music as music_service
from studio.settings import Settings
from studio.ui.common import user_errors
from tests.api_calls import call
from tests.endpoint_args import NO_CONTROLNET
from tests.running_app import RunningApp

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_TEXT = "smollm2-135m-instruct-gguf"
BUILTIN_GGUF = builtin_file(Catalog(BUILTIN_ENTRIES).get(BUILTIN_TEXT),
                            Catalog(BUILTIN_ENTRIES).get(BUILTIN_TEXT).files[0])
STORY = "The lighthouse keeper climbed the stairs and"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    size = path.stat().st_size
    path.write_bytes(random.Random(path.name).randbytes(size))


# -- damaged weights -------------------------------------------------------------------------------------


@dataclass
class Damaged:
    """A catalogue entry whose weights file is damaged, the sound original, and a sound model to try next."""

    id: str
    family: str
    tasks: str
    folder: Path  # what the entry's path names: a model folder or a single file
    weights: Path  # the damaged file
    original: Path  # a sound copy of it
    sound_id: str

    def toml(self) -> str:
        return (f'[[model]]\nid = "{self.id}"\nname = "Damaged {self.id}"\nfamily = "{self.family}"\n'
                f'tasks = {self.tasks}\npath = "{self.folder}"\n\n')

    def repair(self) -> None:
        shutil.copyfile(self.original, self.weights)


def _damaged_copy(source: Path, into: Path, weights: str, damage, model_id: str, family: str, tasks: str,
                  sound_id: str) -> Damaged:
    if source.is_dir():
        shutil.copytree(source, into)
        target = into / weights
    else:
        into.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, into)
        target = into
    damage(target)
    original = source / weights if source.is_dir() else source
    return Damaged(model_id, family, tasks, into, target, original, sound_id)


def _sound_entries(sd: Path, taesd: Path, lm: Path, musicgen: Path) -> str:
    return (f'[[model]]\nid = "tiny-sd"\nfamily = "diffusers"\ntasks = ["txt2img", "img2img"]\npath = "{sd}"\n\n'
            f'[[model]]\nid = "tiny-taesd"\nfamily = "diffusers"\ntasks = ["decode"]\npath = "{taesd}"\n\n'
            f'[[model]]\nid = "tiny-lm"\nfamily = "transformers"\ntasks = ["text"]\npath = "{lm}"\n\n'
            f'[[model]]\nid = "tiny-musicgen"\nfamily = "transformers"\ntasks = ["music"]\npath = "{musicgen}"\n\n')


@pytest.fixture(scope="module")
def damaged(tmp_path_factory, tiny_sd_path, tiny_taesd_path, tiny_lm_path, tiny_musicgen_path):
    folder = tmp_path_factory.mktemp("damaged-models")
    cases = [
        _damaged_copy(tiny_sd_path, folder / "sd", "unet/diffusion_pytorch_model.safetensors", truncate,
                      "sd-truncated", "diffusers", '["txt2img", "img2img"]', "tiny-sd"),
        _damaged_copy(tiny_taesd_path, folder / "taesd", "diffusion_pytorch_model.safetensors", garbage,
                      "taesd-garbage", "diffusers", '["decode"]', "tiny-taesd"),
        _damaged_copy(tiny_lm_path, folder / "lm", "model.safetensors", garbage,
                      "lm-garbage", "transformers", '["text"]', "tiny-lm"),
        _damaged_copy(tiny_musicgen_path, folder / "musicgen", "model.safetensors", truncate,
                      "musicgen-truncated", "transformers", '["music"]', "tiny-musicgen"),
        _damaged_copy(BUILTIN_GGUF, folder / "truncated.gguf", "", truncate,
                      "gguf-truncated", "llama.cpp", '["text"]', BUILTIN_TEXT),
        _damaged_copy(BUILTIN_GGUF, folder / "garbage.gguf", "", garbage,
                      "gguf-garbage", "llama.cpp", '["text"]', BUILTIN_TEXT),
    ]
    models = folder / "models.toml"
    models.write_text(_sound_entries(tiny_sd_path, tiny_taesd_path, tiny_lm_path, tiny_musicgen_path)
                      + "".join(case.toml() for case in cases), encoding="utf-8")
    studio = Studio(Settings(data_dir=folder / "data", models_file=models, offline=True))
    return studio, {case.id: case for case in cases}


def load(studio: Studio, model_id: str) -> None:
    """Load a model the way a request does (music: a whole tiny generation)."""
    entry = studio.catalog.get(model_id)
    if "decode" in entry.tasks:
        import torch

        studio.image.decoder(model_id, torch.float32)
    elif entry.family == "diffusers":
        studio.image.load(model_id)
    elif "music" in entry.tasks:
        studio.music.generate(MusicRequest(prompt="calm piano", seconds=0.1, model=model_id))
    else:
        studio.text.engine(model_id)


def cached(studio: Studio) -> set[str]:
    return {key.model_id for key in studio.cache.keys()}  # noqa: SIM118 (a cache, not a dict)


@pytest.mark.parametrize("model_id", ["sd-truncated", "taesd-garbage", "lm-garbage", "musicgen-truncated",
                                      "gguf-truncated", "gguf-garbage"])
def test_damaged_weights_fail_one_request_and_leave_nothing_half_loaded(damaged, model_id):
    studio, cases = damaged
    case = cases[model_id]
    with pytest.raises(StudioError) as failed:
        load(studio, model_id)
    message = str(failed.value)
    assert f"Damaged {model_id}" in message and "could not be loaded" in message
    assert "\n" not in message and "Traceback" not in message
    assert model_id not in cached(studio)
    # The same model again: the same explanation, not a leftover from the first try.
    with pytest.raises(StudioError, match=re.escape(message[:80])):
        load(studio, model_id)
    # A sound model of the same family serves the next request.
    load(studio, case.sound_id)
    assert case.sound_id in cached(studio)
    # Once the file is sound again, the same entry loads and is kept.
    case.repair()
    load(studio, model_id)
    assert model_id in cached(studio)


def test_a_damaged_single_file_checkpoint_is_refused_before_diffusers_reads_it(tmp_path):
    checkpoint = tmp_path / "dreamy.safetensors"
    checkpoint.write_bytes(random.Random(3).randbytes(4096))
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "dreamy"\nfamily = "diffusers"\ntasks = ["txt2img"]\npath = "{checkpoint}"\n')
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=models, offline=True))
    with pytest.raises(StudioError, match="dreamy.safetensors is not a readable .safetensors checkpoint"):
        studio.image.load("dreamy")
    assert cached(studio) == set()


# -- a full disk -----------------------------------------------------------------------------------------


def assert_consistent(gallery: Gallery, *, after_crash: bool = False) -> None:
    """Sound database; every row's files present; no half-written file. A save that failed cleans up
    after itself completely; a killed one may leave whole files that no row lists (never shown)."""
    with sqlite3.connect(gallery.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT file, preview FROM items").fetchall()
    for file, preview in rows:
        assert (gallery.data_dir / file).is_file() and (gallery.data_dir / preview).is_file(), file
    assert not list(gallery.data_dir.rglob("*.partial"))
    if after_crash:
        return
    stems = {Path(file).stem for file, _ in rows}
    for path in gallery.outputs_dir.rglob("*"):
        if path.is_file():
            assert path.name.split(".")[0] in stems, f"{path.name} belongs to no listed item"


@pytest.fixture(scope="module")
def melody(tmp_path_factory):
    """A short tune: kept, it is five files (MIDI, WAV, piano roll, ABC, thumbnail)."""
    studio = Studio(Settings(data_dir=tmp_path_factory.mktemp("disk") / "unused"))
    return studio.melody.generate(MelodyRequest(bars=1, seed=4))


def full_disk_on(monkeypatch, name: str, call_number: int) -> None:
    """os.<name> fails with ENOSPC on its call_number-th call, as a filling disk makes it."""
    import studio.history as history

    real = getattr(history.os, name)
    calls = [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] == call_number:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(history.os, name, failing)


@pytest.mark.parametrize(
    "name, call_number",
    [("fsync", 1), ("fsync", 3), ("fsync", 4), ("fsync", 5), ("replace", 2), ("replace", 4)],
    ids=["first-companion", "last-companion", "the-item", "the-thumbnail", "a-rename", "the-item-rename"],
)
def test_a_full_disk_during_a_save_is_explained_and_leaves_the_gallery_sound(tmp_path, monkeypatch, melody, name,
                                                                             call_number):
    gallery = Gallery(tmp_path)
    keep = user_errors(lambda: music_service.keep_melody(gallery, melody))  # as a tab's handler runs it
    before = keep().item
    full_disk_on(monkeypatch, name, call_number)
    with pytest.raises(gr.Error, match="could not be saved .*: the disk is full"):
        keep()
    monkeypatch.undo()
    assert [item.id for item in gallery.list()] == [before.id]
    assert_consistent(gallery)
    after = keep().item  # space again: the next save works
    assert [item.id for item in gallery.list()] == [after.id, before.id]
    assert after.file.with_suffix(".wav").is_file()
    assert_consistent(gallery)


def test_a_full_disk_making_a_new_days_folder_is_explained(tmp_path, monkeypatch):
    gallery = Gallery(tmp_path)
    real_mkdir = Path.mkdir

    def full(self, *args, **kwargs):
        if self.parent == gallery.outputs_dir:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(GallerySaveError, match="cannot be made .*the disk is full"):
        gallery.add_file(lambda p: p.write_text("a poem"), suffix=".txt", task="text", model="m", params={})
    monkeypatch.undo()
    assert gallery.list() == []
    assert_consistent(gallery)


def test_a_full_database_fails_the_save_and_removes_its_files(tmp_path, monkeypatch):
    """SQLite's own 'database or disk is full' (its page limit reached), not an imitation of it."""
    import studio.history as history

    gallery = Gallery(tmp_path)
    first = gallery.add_file(lambda p: p.write_text("short"), suffix=".txt", task="text", model="m", params={})
    real_connect = sqlite3.connect

    def capped(*args, **kwargs):
        db = real_connect(*args, **kwargs)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        return db

    monkeypatch.setattr(history.sqlite3, "connect", capped)
    with pytest.raises(GallerySaveError, match="database or disk is full"):
        gallery.add_file(lambda p: p.write_text("long"), suffix=".txt", siblings={".abc": lambda p: p.write_text("X")},
                         task="text", model="m", params={"text": "a long record " * 4000})
    monkeypatch.undo()
    assert [item.id for item in gallery.list()] == [first.id]
    assert_consistent(gallery)
    gallery.add_file(lambda p: p.write_text("again"), suffix=".txt", task="text", model="m", params={})
    assert len(gallery.list()) == 2


def test_a_writer_that_fails_leaves_no_partial_file(tmp_path):
    gallery = Gallery(tmp_path)

    def half_then_fail(path: Path) -> None:
        path.write_text("half a video")
        raise ValueError("the encoder gave up")

    with pytest.raises(ValueError, match="encoder gave up"):
        gallery.add_file(half_then_fail, suffix=".mp4", siblings={".gif": lambda p: p.write_bytes(b"GIF89a")},
                         task="image-walk", model="m", params={})
    assert gallery.list() == []
    assert_consistent(gallery)


# -- killed in the middle of a save ----------------------------------------------------------------------

# A process saving items in a loop. With a stage named, it stops itself there (on the second item) and
# says so, and the test kills it at that exact point; with "anywhere" it is killed at random moments.
SAVER = r"""
import os, sqlite3, sys, time
from PIL import Image
from studio import history

data, stage = sys.argv[1], sys.argv[2]
gallery = history.Gallery(data)
BODY = "every word of this text is kept whole " * 200


def pause():
    print("paused", flush=True)
    time.sleep(600)


def on_call(name, number, before):
    real, calls = getattr(os, name), [0]

    def hooked(*args):
        calls[0] += 1
        if before and calls[0] == number:
            pause()
        result = real(*args)
        if not before and calls[0] == number:
            pause()
        return result

    setattr(os, name, hooked)


if stage == "written":  # the item's .partial is on disk, not yet flushed nor renamed
    on_call("fsync", 5, before=True)
elif stage == "renamed":  # the item's file is in place, its row not yet written
    on_call("replace", 5, before=False)
elif stage == "inserted":  # the row is inserted, the transaction not yet committed
    class Pausing(sqlite3.Connection):
        def execute(self, sql, *args):
            cursor = super().execute(sql, *args)
            if sql.startswith("INSERT") and "n=2" in str(args):
                pause()
            return cursor

    real_connect = sqlite3.connect
    sqlite3.connect = lambda *a, **k: real_connect(*a, factory=Pausing, **k)

n = 0
while True:
    n += 1
    gallery.add_file(lambda p: p.write_text(BODY), suffix=".txt", siblings={".abc": lambda p: p.write_text("X:1")},
                     preview=Image.new("RGB", (8, 8)), task="text", model="m", params={"n": n}, owner=f"n={n}")
    print("saved", n, flush=True)
"""
BODY = "every word of this text is kept whole " * 200


def run_saver(data: Path, stage: str, kill_after_saved: int | None = None, wait: float = 0.0,
              while_paused=None) -> list[str]:
    """Start the saver; SIGKILL it when it pauses (after calling `while_paused`), or after some saves and
    `wait` seconds. Its output lines."""
    process = subprocess.Popen([sys.executable, "-c", SAVER, str(data), stage], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith("paused"):
                if while_paused is not None:
                    while_paused()
                break
            if kill_after_saved is not None and line.startswith(f"saved {kill_after_saved}"):
                time.sleep(wait)  # somewhere inside a later save
                break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert lines, process.stderr.read()
    return lines


def assert_sound_after_restart(data: Path) -> Gallery:
    gallery = Gallery(data)  # a restart: opening the gallery tidies what a crash left
    assert_consistent(gallery, after_crash=True)
    items = gallery.list(limit=100_000)
    for item in items:
        assert item.file.read_text() == BODY  # nothing listed is half-written
    fresh = gallery.add_file(lambda p: p.write_text(BODY), suffix=".txt", task="text", model="m", params={})
    assert gallery.list()[0].id == fresh.id
    return gallery


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stage", ["written", "renamed", "inserted"])
def test_killed_at_each_step_of_a_save_the_gallery_is_sound_after_restart(tmp_path, stage):
    lines = run_saver(tmp_path, stage)
    assert lines == ["saved 1", "paused"]
    debris = list(tmp_path.rglob("*.partial"))
    assert bool(debris) == (stage == "written")
    gallery = assert_sound_after_restart(tmp_path)
    assert [item.params.get("n") for item in gallery.list()][1:] == [1]  # item 2 never listed


@pytest.mark.timeout(120)
def test_a_second_process_opening_the_gallery_leaves_a_running_save_alone(tmp_path):
    """The server and the command line share a data dir: opening it must not take a file from under a save."""
    seen = {}

    def open_it_meanwhile():
        Gallery(tmp_path)
        seen["while running"] = list(tmp_path.rglob("*.partial"))

    run_saver(tmp_path, "written", while_paused=open_it_meanwhile)
    assert len(seen["while running"]) == 1  # the running saver's file was left alone
    Gallery(tmp_path)  # its writer is dead now: tidied
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.timeout(300)
def test_killed_at_random_moments_the_gallery_is_sound_after_every_restart(tmp_path):
    chance = random.Random(2024)
    for _ in range(5):
        run_saver(tmp_path, "anywhere", kill_after_saved=chance.randint(1, 3), wait=chance.uniform(0, 0.03))
        assert_sound_after_restart(tmp_path)


# -- the running studio: damaged models, visitors who leave, Stop -----------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_sd_path, tiny_taesd_path, tiny_lm_path, tiny_musicgen_path):
    folder = tmp_path_factory.mktemp("faults-app")
    broken_gguf = folder / "broken.gguf"
    garbage_bytes = random.Random(5).randbytes(1 << 16)
    broken_gguf.write_bytes(garbage_bytes)
    shutil.copytree(tiny_sd_path, folder / "broken-sd")
    truncate(folder / "broken-sd" / "unet" / "diffusion_pytorch_model.safetensors")
    models = folder / "models.toml"
    models.write_text(
        _sound_entries(tiny_sd_path, tiny_taesd_path, tiny_lm_path, tiny_musicgen_path)
        + f'[[model]]\nid = "broken-gguf"\nname = "Broken GGUF"\nfamily = "llama.cpp"\ntasks = ["text"]\n'
          f'path = "{broken_gguf}"\n\n'
        + f'[[model]]\nid = "broken-sd"\nname = "Broken SD"\nfamily = "diffusers"\ntasks = ["txt2img"]\n'
          f'path = "{folder / "broken-sd"}"\n',
        encoding="utf-8",
    )
    with RunningApp(folder / "data", "--models-file", str(models), "--offline") as running:
        running.broken_gguf = broken_gguf
        yield running


def write_args(model: str = BUILTIN_TEXT, max_new: int = 5, keep: bool = False, seed: int = 3) -> list:
    # text, model, temperature, top-p, top-k, min-p, repetition, max new tokens, stop sequences, seed, keep
    return [STORY, model, 0.8, 0.95, 40, 0.05, 1.1, max_new, "", seed, keep]


def txt2img_args(model: str) -> list:
    # ... then the hires fix (off, upscale, upscaler, steps, strength), the fast LCM switch (off), the
    # ControlNet accordion (none), the hires fix's resize (0, 0: by its scale), the shift and T5 prompt length
    # (the model's own), and the speed (exact)
    return [model, "tiny-taesd", "a red cat", "", "Euler", 1, 0.0, 64, 64, False, 7, 1, 1, False, 2, "Latent", 0, 0.5,
            False, *NO_CONTROLNET, 0, 0, 0, 0, "exact"]


def test_a_damaged_model_fails_its_request_and_the_studio_serves_the_next(app):
    broken = call(app.url, "write", write_args("broken-gguf"))
    assert broken.event == "error" and "Broken GGUF" in broken.message and "could not be loaded" in broken.message
    assert "Traceback" not in broken.raw
    assert call(app.url, "write", write_args()).event == "complete"
    image = call(app.url, "txt2img", txt2img_args("broken-sd"))
    assert image.event == "error" and "Broken SD" in image.message
    assert call(app.url, "txt2img", txt2img_args("tiny-sd")).event == "complete"
    again = call(app.url, "write", write_args("broken-gguf"))
    assert again.message == broken.message
    shutil.copyfile(BUILTIN_GGUF, app.broken_gguf)  # a sound copy in its place
    assert call(app.url, "write", write_args("broken-gguf")).event == "complete"
    assert app.process.poll() is None and app.responds()


def log_lines(app: RunningApp, pattern: str, count: int = 1, wait_s: float = 60) -> list[re.Match]:
    """Lines of the app's log matching `pattern`, waiting until there are `count` of them."""
    deadline = time.monotonic() + wait_s
    while True:
        found = [m for m in (re.search(pattern, line) for line in app.log().splitlines()) if m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


LEFT = r"text generation on \S+ stopped, its reader gone: (\d+) of at most (\d+) new tokens made"


def test_a_cancelled_api_call_stops_the_model_and_the_next_request_is_served(app):
    client = Client(app.url, verbose=False)
    before = len(log_lines(app, LEFT, count=0))
    job = client.submit(*write_args(max_new=4000, seed=11), api_name="/write")
    for updates, _ in enumerate(job, start=1):
        if updates == 3:
            break
    job.cancel()
    text, stats, _latest = client.predict(*write_args(max_new=5), api_name="/write")
    assert text.startswith(STORY) and "5 tokens" in stats
    stopped = log_lines(app, LEFT, count=before + 1)[before:]
    made, most = map(int, stopped[0].groups())
    assert most == 4000 and made < 400  # the model stopped with its reader, not at max tokens


def test_a_closed_connection_stops_the_model_and_the_next_request_is_served(app):
    before = len(log_lines(app, LEFT, count=0))
    started = httpx.post(f"{app.url}gradio_api/call/write", json={"data": write_args(max_new=4000, seed=12)})
    event_id = started.json()["event_id"]
    with httpx.stream("GET", f"{app.url}gradio_api/call/write/{event_id}", timeout=60) as stream:
        updates = 0
        for line in stream.iter_lines():
            updates += line.startswith("event: generating")
            if updates == 3:
                break  # the visitor closes the page
    assert call(app.url, "write", write_args(max_new=5)).event == "complete"
    stopped = log_lines(app, LEFT, count=before + 1)[before:]
    made, most = map(int, stopped[0].groups())
    assert most == 4000 and made < 400


def fn_index(app: RunningApp, elem_id: str) -> int:
    """The event a button with `elem_id` runs when clicked, as the page knows it."""
    config = httpx.get(f"{app.url}config", timeout=30).json()
    button = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)
    return next(d["id"] for d in config["dependencies"] if [button, "click"] in [list(t) for t in d["targets"]])


def press(app: RunningApp, elem_id: str, session_hash: str) -> None:
    """Click a button the way the page does: its event by number, in the visitor's session."""
    index = fn_index(app, elem_id)
    body = {"data": [], "fn_index": index, "session_hash": session_hash, "event_data": None}
    config = httpx.get(f"{app.url}config", timeout=30).json()
    queued = next(d for d in config["dependencies"] if d["id"] == index).get("queue", True) is not False
    route = "gradio_api/queue/join" if queued else "gradio_api/run/predict"
    httpx.post(f"{app.url}{route}", json=body, timeout=30).raise_for_status()


def test_stop_ends_the_text_within_a_few_tokens_and_keeps_it(app):
    client = Client(app.url, verbose=False)
    job = client.submit(*write_args(max_new=4000, keep=True, seed=13), api_name="/write")
    for updates, _ in enumerate(job, start=1):
        if updates == 3:
            press(app, "write-stop", client.session_hash)
            break
    text, stats, latest = job.result()
    assert "stopped by you" in stats
    item = Gallery(app.data_dir).list(task="text")[0]
    assert item.params["finish"] == "stopped" and item.params["new_tokens"] < 400
    assert item.file.read_text() == text == STORY + latest
    assert call(app.url, "write", write_args(max_new=5)).event == "complete"


def test_a_walk_whose_visitor_leaves_stops_and_keeps_the_frames_made(app):
    client = Client(app.url, verbose=False)
    walks = len(Gallery(app.data_dir).list(task="patterns"))
    job = client.submit(7, 8, "forest", 1024, 1.0, 240, api_name="/pattern_walk")
    for _update in job:
        job.cancel()  # the first frame has arrived; the visitor leaves
        break
    assert call(app.url, "patterns", [3, "ocean", 64, 64, 1.0, False]).event == "complete"
    deadline = time.monotonic() + 120
    while len(Gallery(app.data_dir).list(task="patterns")) == walks and time.monotonic() < deadline:
        time.sleep(0.2)  # the walk keeps what it made once its current frame is done
    walk = Gallery(app.data_dir).list(task="patterns")[0]
    assert walk.params["walk_to"] == 8 and walk.params["frames_made"] < 240


def test_stop_ends_a_walk_and_keeps_the_frames_made(app):
    client = Client(app.url, verbose=False)
    # seed, walk to, palette, frame size, zoom, frames
    job = client.submit(5, 9, "ocean", 1024, 1.0, 240, api_name="/pattern_walk")
    for _update in job:
        press(app, "pattern-stop", client.session_hash)
        break
    *_, info = job.result()
    assert "stopped early" in info
    walk = Gallery(app.data_dir).list(task="patterns")[0]
    assert walk.params["frames_made"] < 240 and walk.file.suffix == ".mp4"
    assert call(app.url, "patterns", [3, "ocean", 64, 64, 1.0, False]).event == "complete"
