"""The text engine (llama-cpp-python) built beside a running studio on first install.

PyPI has no wheel of llama-cpp-python for Linux: pip compiles llama.cpp, about 17 CPU-minutes,
most of a first `make run`. So `make run` installs everything else, starts this build in the
background and serves the page at once; the Text tab says the engine is being prepared, with the
time left, and comes alive when the build ends. pip keeps the built wheel in its cache, and a later
start finds the engine installed and starts nothing. `make test` and `make bench` wait for it.

    python -m studio.backends.text_engine start llama-cpp-python==X   # background, returns at once
    python -m studio.backends.text_engine install llama-cpp-python==X # foreground: wait for it, or build it
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE, MODULE = "llama-cpp-python", "llama_cpp"
# Only the library the binding loads: llama.cpp's tools, server, examples and tests are not built.
CMAKE_ARGS = "-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF"
BUILD_CPU_SECONDS = 17 * 60  # measured for that trimmed build on this project's 2-core machine
READY, BUILDING, FAILED, MISSING = "ready", "building", "failed", "missing"
# Where `python -m studio...` finds the package: the folder that holds studio/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def status_file(prefix: Path | None = None) -> Path:
    """Where the build says how it is going: inside the virtual environment it installs into."""
    return Path(prefix or sys.prefix) / "text-engine.json"


def expected_seconds(cores: int | None = None) -> float:
    """How long the build takes on this machine when nothing else runs (at least two minutes)."""
    return max(120.0, BUILD_CPU_SECONDS / max(1, cores or os.cpu_count() or 1))


@dataclass(frozen=True)
class EngineState:
    state: str  # READY, BUILDING, FAILED or MISSING
    message: str  # one paragraph for a person; empty when ready
    seconds_left: float | None = None


_found: list[bool] = []  # once there, it stays: no look on every request


def installed() -> bool:
    if not _found:
        importlib.invalidate_caches()  # a build that ended while the studio ran put it on the path since
        if importlib.util.find_spec(MODULE) is not None:
            _found.append(True)
    return bool(_found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def state(prefix: Path | None = None, now: float | None = None) -> EngineState:
    """Whether text generation with llama.cpp models can run, and if not, what a person is told."""
    if installed():
        return EngineState(READY, "")
    info = _read(status_file(prefix))
    now = time.time() if now is None else now
    if info.get("state") == BUILDING and _alive(int(info.get("pid", 0))):
        elapsed = now - float(info.get("started", now))
        left = float(info.get("expected", expected_seconds())) - elapsed
        when = (f"about {max(1, round(left / 60))} minute{'s' if round(left / 60) > 1 else ''} left" if left >= 60
                else "any moment now" if left > 0 else
                f"taking longer than usual on this busy machine: started {elapsed / 60:.0f} minutes ago")
        return EngineState(BUILDING, "The text engine (llama.cpp) is being prepared for this computer, once, "
                           f"while you use the other tabs; {when}. This tab comes alive by itself when it is ready.",
                           max(0.0, left))
    if info.get("state") in (BUILDING, FAILED):
        tail = " ".join(str(info.get("error", "")).split())[-300:]
        return EngineState(FAILED, f"Preparing the text engine (llama.cpp) failed{f': {tail}' if tail else ''}. "
                           f"The whole log is in {info.get('log', 'the virtual environment')}; "
                           f"`make run` tries again.")
    return EngineState(MISSING, f"The text engine (llama.cpp) is not installed: start the studio with `make run`, "
                       f"which prepares it, or run `pip install {PACKAGE}`.")


def _version_wanted(requirement: str) -> str | None:
    return requirement.split("==", 1)[1].strip() if "==" in requirement else None


def _has(requirement: str) -> bool:
    try:
        have = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return False
    wanted = _version_wanted(requirement)
    return wanted is None or have == wanted


def _pip(requirement: str, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.setdefault("CMAKE_ARGS", CMAKE_ARGS)
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement], env=env, **kwargs)


def start(requirement: str, prefix: Path | None = None) -> str:
    """Start the build in the background unless the engine is installed or being built; say which."""
    path = status_file(prefix)
    if _has(requirement):
        return "The text engine is installed."
    info = _read(path)
    if info.get("state") == BUILDING and _alive(int(info.get("pid", 0))):
        return "The text engine is still being prepared in the background."
    log = path.with_name("text-engine-build.log")
    # A session of its own: stopping the studio (Ctrl-C) leaves the build running to its end.
    with open(log, "w") as out:
        child = subprocess.Popen([sys.executable, "-m", "studio.backends.text_engine", "build", requirement, str(path)],
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd=PROJECT_ROOT)
    path.write_text(json.dumps({"state": BUILDING, "pid": child.pid, "started": time.time(),
                                "expected": expected_seconds(), "requirement": requirement, "log": str(log)}),
                    encoding="utf-8")
    return (f"Preparing the text engine ({requirement}) in the background, about "
            f"{round(expected_seconds() / 60)} minutes; the page works meanwhile. Log: {log}")


def build(requirement: str, path: Path) -> int:
    """The background build itself: pip, then the outcome written where `state` reads it."""
    started = time.perf_counter()
    done = _pip(requirement, capture_output=True, text=True)
    sys.stdout.write(done.stdout + done.stderr)
    info = _read(path)  # read now: `start` writes it just after this process began
    info.update(state=READY if done.returncode == 0 else FAILED, seconds=round(time.perf_counter() - started),
                error=(done.stderr or done.stdout)[-2000:] if done.returncode else "")
    path.write_text(json.dumps(info), encoding="utf-8")
    return done.returncode


def install(requirement: str, prefix: Path | None = None, poll: float = 5.0) -> int:
    """In the foreground (tests, benchmarks): wait for a background build, then make sure it is there."""
    path = status_file(prefix)
    said = 0.0
    while (info := _read(path)).get("state") == BUILDING and _alive(int(info.get("pid", 0))):
        if time.monotonic() - said > 60:
            print(f"waiting for the text engine's background build (log: {info.get('log')})", flush=True)
            said = time.monotonic()
        time.sleep(poll)
    if _has(requirement):
        return 0
    return _pip(requirement).returncode


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "start":
        print(start(argv[1]))
        return 0
    if len(argv) >= 2 and argv[0] == "install":
        return install(argv[1])
    if len(argv) >= 3 and argv[0] == "build":
        return build(argv[1], Path(argv[2]))
    print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
