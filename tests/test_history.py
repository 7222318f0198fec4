"""The gallery keeps everything, survives restarts and crashes, and never lists half a result."""

from __future__ import annotations

import errno
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from studio.errors import StudioError
from studio.history import Gallery, GallerySaveError
from studio.media.png_info import read_studio_params


def _image(colour: str = "red") -> Image.Image:
    return Image.new("RGB", (64, 48), colour)


def test_items_are_listed_newest_first_and_survive_a_restart(tmp_path):
    gallery = Gallery(tmp_path)
    first = gallery.add_image(_image("red"), task="style", model="m", params={"style": 1})
    second = gallery.add_image(_image("blue"), task="image", model="m2", params={"prompt": "x"}, seed=7)
    reopened = Gallery(tmp_path)
    items = reopened.list()
    assert [i.id for i in items] == [second.id, first.id]
    assert items[0].seed == 7 and items[0].params == {"prompt": "x"}
    assert [i.id for i in reopened.list(task="style")] == [first.id]
    assert reopened.tasks() == ["image", "style"]
    assert reopened.get(first.id).file.read_bytes() == first.file.read_bytes()


def test_saved_png_carries_its_parameters(tmp_path):
    item = Gallery(tmp_path).add_image(_image(), task="style", model="m", params={"style": 19, "strength": 0.5})
    assert read_studio_params(item.file) == {"style": 19, "strength": 0.5}
    assert item.preview != item.file and Image.open(item.preview).size[0] <= 320


def test_database_uses_wal(tmp_path):
    Gallery(tmp_path)
    with sqlite3.connect(tmp_path / "gallery.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_delete_removes_row_and_files(tmp_path):
    gallery = Gallery(tmp_path)
    item = gallery.add_image(_image(), task="style", model="m", params={})
    gallery.delete(item.id)
    assert gallery.list() == []
    assert not item.file.exists() and not item.preview.exists()
    with pytest.raises(StudioError, match="does not exist"):
        gallery.get(item.id)


def test_item_whose_file_vanished_is_not_listed(tmp_path):
    gallery = Gallery(tmp_path)
    kept = gallery.add_image(_image(), task="style", model="m", params={})
    gone = gallery.add_image(_image(), task="style", model="m", params={})
    gone.file.unlink()
    assert [i.id for i in gallery.list()] == [kept.id]


def test_inputs_are_stored_once_by_content(tmp_path):
    gallery = Gallery(tmp_path)
    a = gallery.keep_input(_image("red"))
    b = gallery.keep_input(_image("red"))
    c = gallery.keep_input(_image("green"))
    assert a == b != c
    assert gallery.input_path(a).is_file()
    with pytest.raises(StudioError):
        gallery.input_path("../../etc/passwd")
    with pytest.raises(StudioError):
        gallery.input_path("outputs/whatever.png")


def test_full_disk_during_save_is_reported_and_leaves_nothing_behind(tmp_path, monkeypatch):
    gallery = Gallery(tmp_path)
    gallery.add_image(_image(), task="style", model="m", params={})

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(GallerySaveError, match="disk is full"):
        gallery.add_image(_image(), task="style", model="m", params={})
    monkeypatch.undo()
    assert len(gallery.list()) == 1
    leftovers = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert len(leftovers) == 2  # the first item's PNG and its thumbnail, nothing partial
    with sqlite3.connect(tmp_path / "gallery.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_database_failure_removes_the_written_file(tmp_path, monkeypatch):
    gallery = Gallery(tmp_path)
    real_connect = sqlite3.connect

    class Broken:
        def __init__(self, *a, **k):
            self._db = real_connect(*a, **k)

        def execute(self, sql, *args):
            if sql.startswith("INSERT"):
                raise sqlite3.OperationalError("database or disk is full")
            return self._db.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._db, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._db.__exit__(*exc)

    monkeypatch.setattr(sqlite3, "connect", Broken)
    with pytest.raises(GallerySaveError, match="could not be listed"):
        gallery.add_image(_image(), task="style", model="m", params={})
    monkeypatch.undo()
    assert not [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]


def test_a_process_killed_mid_save_leaves_a_sound_database(tmp_path):
    """Kill the process between writing the file and listing it: the database stays intact."""
    script = textwrap.dedent(
        f"""
        import os
        from PIL import Image
        from studio import history
        gallery = history.Gallery({str(tmp_path)!r})
        gallery.add_image(Image.new("RGB", (8, 8)), task="style", model="m", params={{"n": 1}})
        real = history._write_atomically
        def write_then_die(path, write):
            tmp = path.with_name(path.name + ".partial")
            write(tmp)
            os._exit(9)  # killed with a half-finished file on disk
        history._write_atomically = write_then_die
        gallery.add_image(Image.new("RGB", (8, 8)), task="style", model="m", params={{"n": 2}})
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, timeout=60)
    assert done.returncode == 9, done.stderr
    assert list((tmp_path / "outputs").rglob("*.partial"))  # the crash did leave debris
    gallery = Gallery(tmp_path)  # restart
    assert [i.params for i in gallery.list()] == [{"n": 1}]
    assert not list((tmp_path / "outputs").rglob("*.partial"))  # tidied at start
    with sqlite3.connect(tmp_path / "gallery.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert json.loads(json.dumps(gallery.list()[0].params)) == {"n": 1}


def test_any_file_can_be_kept_with_a_preview_or_a_placeholder(tmp_path):
    gallery = Gallery(tmp_path)
    text = gallery.add_file(lambda p: p.write_text("a poem"), suffix=".txt", task="text", model="m",
                            params={"prompt": "p"})
    tune = gallery.add_file(lambda p: p.write_bytes(b"MThd"), suffix=".mid", task="melody", model="m",
                            params={}, preview=_image("green"))
    assert text.file.read_text() == "a poem" and text.file.suffix == ".txt"
    assert Image.open(text.preview).size == (320, 320)  # a placeholder tile naming the task
    assert Image.open(tune.preview).getpixel((5, 5))[1] > 100  # the given preview, green
    assert [i.id for i in gallery.list()] == [tune.id, text.id]


def test_many_requests_keeping_the_same_input_at_once_all_succeed(tmp_path):
    """Two visitors restyling the same photo at once used to rename one temporary file between them."""
    from concurrent.futures import ThreadPoolExecutor

    gallery = Gallery(tmp_path)
    photo = Image.new("RGB", (300, 200), (30, 120, 200))
    with ThreadPoolExecutor(8) as pool:
        kept = list(pool.map(lambda _: gallery.keep_input(photo), range(32)))
    assert len(set(kept)) == 1
    assert Image.open(tmp_path / kept[0]).size == (300, 200)
    assert not list((tmp_path / "inputs").rglob("*.partial"))
