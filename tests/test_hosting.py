"""Hosted mode: settings, per-visitor galleries, rate limits, work limits, the Space's setup."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from huggingface_hub import metadata_load
from PIL import Image

from studio import hosting, limits
from studio import settings as settings_mod
from studio.backends.diffusion import ImageRequest
from studio.backends.language import TextRequest
from studio.backends.musicgen import MusicRequest
from studio.catalog import load_catalog
from studio.errors import InputError, StudioError
from studio.history import Gallery
from studio.hub import UNSAFE_PATTERNS, download_patterns
from studio.space import install_builtin_packages, missing_packages

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str], environ: dict[str, str] | None = None) -> settings_mod.Settings:
    parser = argparse.ArgumentParser()
    settings_mod.add_arguments(parser)
    return settings_mod.from_args(parser.parse_args(argv), environ=environ or {})


# -- settings -----------------------------------------------------------------------------------


def test_hosted_mode_tightens_the_limits_and_explicit_values_still_win():
    desktop = parse([])
    hosted = parse(["--hosted"])
    assert not desktop.hosted and hosted.hosted
    assert desktop.rate_limit_per_minute == 0 and desktop.max_queue == 0
    for name, value in settings_mod.HOSTED_DEFAULTS.items():
        assert getattr(hosted, name) == value
        assert value != getattr(desktop, name), name  # each hosted default really changes something
    chosen = parse(["--hosted"], {"STUDIO_MAX_STEPS": "8", "STUDIO_RATE_LIMIT_PER_MINUTE": "0"})
    assert chosen.max_steps == 8 and chosen.rate_limit_per_minute == 0 and chosen.max_images == 4


def test_a_space_is_hosted_and_listens_where_its_proxy_looks():
    space = parse([], {"SPACE_ID": "someone/creative-studio", "GRADIO_SERVER_PORT": "7861"})
    assert space.hosted and space.host == "0.0.0.0" and space.port == 7861
    assert not parse([], {"SPACE_ID": "x/y", "STUDIO_HOSTED": "0"}).hosted  # the operator may say otherwise


@pytest.mark.parametrize("env, words", [({"STUDIO_MAX_QUEUE": "-1"}, "max_queue must be 0"),
                                        ({"STUDIO_HEAVY_CONCURRENCY": "0"}, "heavy_concurrency must be positive"),
                                        ({"STUDIO_HOSTED": "maybe"}, "STUDIO_HOSTED='maybe' is not a valid bool")])
def test_bad_hosting_settings_are_refused(env, words):
    with pytest.raises(settings_mod.SettingsError, match=words):
        parse([], env)


# -- rate limit and visitors ----------------------------------------------------------------------


def test_the_rate_limit_counts_a_sliding_minute_per_visitor():
    now = [1000.0]
    limiter = hosting.RateLimiter(3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(hosting.RateLimited, match=r"3 runs a minute\). Try again in 60 s"):
        limiter.check("a")
    limiter.check("b")  # another visitor is not held back
    now[0] += 45
    with pytest.raises(hosting.RateLimited, match="Try again in 15 s"):
        limiter.check("a")
    now[0] += 15
    limiter.check("a")  # the first three starts have left the window
    hosting.RateLimiter(0).check("a")  # 0 turns it off


def test_behind_a_proxy_the_visitor_is_the_address_the_proxy_saw():
    request = types.SimpleNamespace(headers={"x-forwarded-for": "6.6.6.6, 10.0.0.7"},
                                    client=types.SimpleNamespace(host="10.0.0.1"))
    assert hosting.visitor_address(request, behind_proxy=True) == "10.0.0.7"  # the first entry is forgeable
    assert hosting.visitor_address(request, behind_proxy=False) == "10.0.0.1"
    assert hosting.visitor_address(types.SimpleNamespace(headers={}, client=None), behind_proxy=True) == "unknown"


# -- per-visitor gallery --------------------------------------------------------------------------


def picture(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (64, 48), colour)


def test_a_scoped_gallery_shows_each_visitor_only_their_own_items(tmp_path):
    visitor = ["session:a"]
    gallery = Gallery(tmp_path, scope=lambda: visitor[0])
    mine = gallery.add_image(picture((200, 0, 0)), task="style", model="m", params={"n": 1})
    visitor[0] = "session:b"
    theirs = gallery.add_file(lambda p: p.write_text("hello"), suffix=".txt", task="text", model="m", params={})
    assert [i.id for i in gallery.list()] == [theirs.id] and gallery.tasks() == ["text"]
    with pytest.raises(StudioError, match=f"#{mine.id} does not exist"):
        gallery.get(mine.id)
    with pytest.raises(StudioError, match="does not exist"):
        gallery.delete(mine.id)
    visitor[0] = "session:a"
    assert [i.id for i in gallery.list()] == [mine.id] and gallery.get(mine.id).owner == "session:a"
    everyone = Gallery(tmp_path)  # the desktop (and housekeeping) sees the whole gallery
    assert {i.id for i in everyone.list()} == {mine.id, theirs.id}


def test_expired_visitor_items_and_their_inputs_are_deleted(tmp_path):
    visitor = ["session:a"]
    gallery = Gallery(tmp_path, scope=lambda: visitor[0])
    old_input = gallery.keep_input(picture((0, 90, 0)))
    old = gallery.add_image(picture((1, 2, 3)), task="style", model="m", params={"input": old_input})
    shared_input = gallery.keep_input(picture((0, 0, 90)))
    gallery.add_image(picture((4, 5, 6)), task="style", model="m", params={"input": shared_input})
    visitor[0] = None
    desktop = gallery.add_image(picture((7, 8, 9)), task="style", model="m", params={"input": shared_input})
    for path in (tmp_path / old_input, tmp_path / shared_input):
        os.utime(path, (time.time() - 7200,) * 2)
    with gallery._connect() as db, db:  # age the first visitor item by two hours
        db.execute("UPDATE items SET created = created - 7200 WHERE id = ?", (old.id,))

    assert gallery.delete_expired(3600) == 1
    remaining = {i.id for i in Gallery(tmp_path).list()}
    assert old.id not in remaining and desktop.id in remaining and len(remaining) == 2
    assert not old.file.exists() and not old.preview.exists()
    assert not (tmp_path / old_input).exists()  # nothing refers to it any more
    assert (tmp_path / shared_input).exists()  # still the input of two items


# -- work limits ----------------------------------------------------------------------------------


def test_work_limits_hold_on_the_server():
    hosted = parse(["--hosted"])
    limits.check_image(ImageRequest(prompt="a cat", steps=30, batch_size=2, batch_count=2), hosted)
    with pytest.raises(InputError, match="at most 30 steps per image, not 31"):
        limits.check_image(ImageRequest(prompt="a cat", steps=31), hosted)
    with pytest.raises(InputError, match="6 images in one run; this studio makes at most 4"):
        limits.check_image(ImageRequest(prompt="a cat", batch_size=3, batch_count=2), hosted)
    with pytest.raises(InputError, match="at most 512 new tokens per reply, not 600"):
        limits.check_text(TextRequest(mode="write", text="Once", max_new_tokens=600), hosted)
    with pytest.raises(InputError, match="at most 15 s of music at a time, not 20 s"):
        limits.check_music(MusicRequest(prompt="calm piano", seconds=20), hosted)
    limits.check_image(ImageRequest(prompt="a cat", steps=150, batch_size=8, batch_count=4), parse([]))
    with pytest.raises(InputError, match="steps"):  # the backends' own checks still come first
        limits.check_image(ImageRequest(prompt="a cat", steps=0), hosted)


# -- heavy events ---------------------------------------------------------------------------------


def test_heavy_events_share_the_operators_concurrency_and_gpu_work_goes_through_spaces(tmp_path, monkeypatch):
    gpu_wrapped = []

    def gpu(fn):
        gpu_wrapped.append(fn.__name__)
        return fn

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=gpu))
    from studio.services import Studio
    from studio.ui.app import build_app

    settings = parse(["--hosted", "--data-dir", str(tmp_path)], {"STUDIO_HEAVY_CONCURRENCY": "2"})
    app = build_app(Studio(settings))
    heavy = {f.api_name: f for f in app.fns.values() if f.concurrency_id == hosting.HEAVY}
    assert {"txt2img", "stylize", "write", "chat", "melody", "music", "prompt_walk", "gallery_rerun"} <= set(heavy)
    assert all(f.concurrency_limit == 2 for f in heavy.values())
    assert all(getattr(f.fn, "__wrapped__", None) for f in heavy.values())  # each carries the rate limit
    gpu_names = {f.fn.__wrapped__.__name__ for name, f in heavy.items() if name not in hosting.CPU_ONLY_EVENTS}
    assert gpu_names and gpu_names <= set(gpu_wrapped)
    cpu_names = {f.fn.__wrapped__.__name__ for name, f in heavy.items() if name in hosting.CPU_ONLY_EVENTS}
    assert not cpu_names & (set(gpu_wrapped) - gpu_names)
    light = [f for f in app.fns.values() if f.api_name == "gallery_list"]
    assert light and light[0].concurrency_id != hosting.HEAVY


# -- the Space ------------------------------------------------------------------------------------


def test_the_readme_is_a_gradio_space_that_preloads_catalogue_models():
    meta = metadata_load(ROOT / "README.md")
    import gradio

    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (ROOT / meta["app_file"]).is_file()
    catalog = load_catalog(None)
    preloaded = [line.split() for line in meta["preload_from_hub"]]
    assert {"stabilityai/sd-turbo", "madebyollin/taesd"} <= {repo for repo, _ in preloaded}
    for repo, files in preloaded:
        entry = catalog.get(repo)  # only catalogue models
        allow, _ = download_patterns(entry)
        for name in files.split(","):
            assert not any(Path(name).match(p) for p in UNSAFE_PATTERNS), name
            assert allow is None or any(Path(name).match(p) for p in allow), name  # the studio would fetch it too


def test_a_space_installs_the_builtin_model_packages_without_their_dependencies(tmp_path):
    requirements = tmp_path / "requirements-builtin.txt"
    requirements.write_text("# weights\npillow==0.0.1  # wrong version\nnot-a-real-package-xyz==1.0\n\n")
    assert missing_packages(requirements) == ["pillow==0.0.1", "not-a-real-package-xyz==1.0"]
    calls = []
    installed = install_builtin_packages(requirements, run=lambda cmd, check: calls.append(cmd))
    assert installed == ["pillow==0.0.1", "not-a-real-package-xyz==1.0"]
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "pillow==0.0.1", "not-a-real-package-xyz==1.0"]]
    assert install_builtin_packages(ROOT / "requirements-builtin.txt", run=lambda *a, **k: calls.append(a)) == []
    assert len(calls) == 1  # the real built-in packages are installed here already: nothing to do


def test_app_py_help_lists_the_hosting_flags():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "--hosted" in out.stdout and "--mcp" in out.stdout


def test_the_start_up_check_of_the_page_waits_out_a_slow_first_answer(monkeypatch):
    """Gradio's own check gives up at the first 3-second timeout; a busy machine made the studio exit."""
    from gradio import networking

    from studio.ui import app as ui_app

    answers = iter([False, False, True])
    monkeypatch.setattr(networking, "url_ok", lambda url: next(answers))
    monkeypatch.setattr(ui_app.time, "sleep", lambda seconds: None)
    ui_app._patient_url_check()
    assert networking.url_ok("http://127.0.0.1:1/") is True
    ui_app._patient_url_check()  # once more: still one layer over Gradio's own check
    assert networking.url_ok.__wrapped__.__name__ == "<lambda>"
