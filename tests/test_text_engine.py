"""A first install serves the page while the text engine (llama-cpp-python) builds in the background:
what the studio says meanwhile, the build's bookkeeping, and the Makefile steps that use it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.backends import text_engine
from studio.backends.language import TextRequest
from studio.errors import StudioError
from studio.services import Studio
from studio.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
WANTED = "llama-cpp-python==0.0.1"  # a version nobody has: what a fresh virtual environment lacks


@pytest.fixture
def missing(monkeypatch):
    """The engine not importable yet, as on a first install."""
    monkeypatch.setattr(text_engine, "installed", lambda: False)


def a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def write_status(prefix: Path, **info) -> None:
    text_engine.status_file(prefix).write_text(json.dumps(info), encoding="utf-8")


def test_while_it_builds_a_person_is_told_the_time_left(tmp_path, missing):
    write_status(tmp_path, state="building", pid=subprocess.os.getpid(), started=1000.0, expected=600.0,
                 log="/x/build.log")
    now = text_engine.state(tmp_path, now=1000.0 + 170)
    assert now.state == text_engine.BUILDING and now.seconds_left == pytest.approx(430)
    assert "being prepared" in now.message and "about 7 minutes left" in now.message
    assert "comes alive by itself" in now.message
    assert "any moment now" in text_engine.state(tmp_path, now=1000.0 + 580).message
    late = text_engine.state(tmp_path, now=1000.0 + 1500).message
    assert "longer than usual" in late and "25 minutes ago" in late


def test_a_build_that_died_or_failed_says_so_and_where_the_log_is(tmp_path, missing):
    write_status(tmp_path, state="building", pid=a_dead_pid(), started=0, log="/x/build.log")
    died = text_engine.state(tmp_path)
    assert died.state == text_engine.FAILED and "/x/build.log" in died.message and "`make run`" in died.message
    write_status(tmp_path, state="failed", pid=a_dead_pid(), error="error: ninja: build stopped\n", log="/x/b.log")
    assert "ninja: build stopped" in text_engine.state(tmp_path).message


def test_without_make_run_it_says_how_to_install_it(tmp_path, missing):
    now = text_engine.state(tmp_path)
    assert now.state == text_engine.MISSING and "make run" in now.message and "pip install" in now.message


def test_a_text_request_meanwhile_gets_that_sentence(tmp_path, missing):
    studio = Studio(Settings(data_dir=tmp_path / "data", offline=True))
    with pytest.raises(StudioError, match="text engine"):
        studio.text.generate(TextRequest(text="Once upon a time", max_new_tokens=2, seed=1))


def test_start_runs_the_build_once_in_a_session_of_its_own(tmp_path, monkeypatch):
    started = []

    class FakeChild:
        pid = subprocess.os.getpid()  # alive as long as this test runs

    def popen(args, **kwargs):
        started.append((args, kwargs))
        return FakeChild()

    monkeypatch.setattr(text_engine.subprocess, "Popen", popen)
    said = text_engine.start(WANTED, tmp_path)
    assert "in the background" in said and len(started) == 1
    args, kwargs = started[0]
    assert args[1:4] == ["-m", "studio.backends.text_engine", "build"] and WANTED in args
    assert kwargs["start_new_session"]  # Ctrl-C on the studio leaves the build running
    info = json.loads(text_engine.status_file(tmp_path).read_text())
    assert info["state"] == "building" and info["pid"] == FakeChild.pid and info["requirement"] == WANTED
    assert "still being prepared" in text_engine.start(WANTED, tmp_path) and len(started) == 1
    # Installed already (a later start): nothing is started at all.
    monkeypatch.setattr(text_engine, "_has", lambda requirement: True)
    assert text_engine.start(WANTED, tmp_path / "elsewhere") == "The text engine is installed."
    assert len(started) == 1
    # The child finds the studio from where it starts (a build that could not import it never ran).
    monkeypatch.undo()
    clean = {k: v for k, v in subprocess.os.environ.items() if k != "PYTHONPATH"}
    found = subprocess.run([sys.executable, "-c", "import studio.backends.text_engine"], cwd=kwargs["cwd"],
                           capture_output=True, text=True, env=clean)
    assert found.returncode == 0, found.stderr


def test_the_build_records_its_outcome(tmp_path, monkeypatch):
    path = text_engine.status_file(tmp_path)
    write_status(tmp_path, state="building", pid=a_dead_pid(), started=0, log="/x/b.log")
    monkeypatch.setattr(text_engine, "_pip", lambda requirement, **kw: subprocess.CompletedProcess(
        [], 1, stdout="", stderr="CMake Error: no compiler found\n"))
    assert text_engine.build(WANTED, path) == 1
    info = json.loads(path.read_text())
    assert info["state"] == "failed" and "no compiler found" in info["error"] and info["log"] == "/x/b.log"
    monkeypatch.setattr(text_engine, "_pip", lambda requirement, **kw: subprocess.CompletedProcess([], 0, "", ""))
    assert text_engine.build(WANTED, path) == 0
    assert json.loads(path.read_text())["state"] == "ready"


def test_install_waits_for_a_background_build(tmp_path, monkeypatch):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    write_status(tmp_path, state="building", pid=child.pid, started=time.time(), log="/x/b.log")
    monkeypatch.setattr(text_engine, "_has", lambda requirement: child.poll() is not None)
    monkeypatch.setattr(text_engine, "_pip", lambda requirement, **kw: pytest.fail("pip ran beside the build"))
    # A finished child stays a zombie (kill 0 finds it) until reaped: ask Popen, which reaps it.
    monkeypatch.setattr(text_engine, "_alive", lambda pid: child.poll() is None)
    assert text_engine.install(WANTED, tmp_path, poll=0.05) == 0
    assert child.returncode == 0


def dry_run(target: str) -> list[str]:
    """The commands `make TARGET` runs on a fresh clone (every step, without running any)."""
    done = subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_make_run_serves_the_page_without_waiting_for_the_text_engine():
    lines = dry_run("run")
    wanted = next(line for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("llama-cpp-python=="))
    installs = [line for line in lines if "pip install" in line]
    assert installs and not any("llama-cpp-python" in line for line in installs)
    assert any("requirements-without-text-engine.txt" in line for line in installs)
    start = next(i for i, line in enumerate(lines) if f'studio.backends.text_engine start "{wanted}"' in line)
    serve = next(i for i, line in enumerate(lines) if "app.py" in line)
    assert start < serve


@pytest.mark.parametrize("target", ["test", "bench"])
def test_tests_and_benchmarks_install_the_text_engine_first(target):
    lines = dry_run(target)
    install = next(i for i, line in enumerate(lines) if 'studio.backends.text_engine install "llama-cpp-python==' in line)
    runs = next(i for i, line in enumerate(lines) if "pytest" in line or "benchmarks/" in line)
    assert install < runs


def test_the_text_tab_shows_the_notice_until_the_engine_is_ready(tmp_path, monkeypatch):
    import gradio as gr

    from studio.ui import text_tab
    from studio.ui.app import build_app

    building = text_engine.EngineState(text_engine.BUILDING, "The text engine is being prepared: 3 minutes.", 180)
    monkeypatch.setattr(text_engine, "state", lambda *a, **k: building)
    app = build_app(Studio(Settings(data_dir=tmp_path / "data", offline=True)))
    notice = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "text-engine-notice")
    timer = next(b for b in app.blocks.values() if isinstance(b, gr.Timer))
    assert "being prepared: 3 minutes" in notice.value and timer.active
    assert any(fn.fn is text_tab.engine_notice for fn in app.fns.values())  # each tick, and each page load
    shown, again = text_tab.engine_notice()
    assert shown.visible and again.active
    monkeypatch.setattr(text_engine, "state", lambda *a, **k: text_engine.EngineState(text_engine.READY, ""))
    shown, again = text_tab.engine_notice()
    assert shown.visible is False and again.active is False  # ready: the notice goes, the checks stop
