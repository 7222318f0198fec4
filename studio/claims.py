"""Which of the processes sharing a data dir are still running.

A server and the command line can use one data dir at the same time. Each process claims the folder with
a lock it holds until it exits (the operating system releases it even when the process is killed), and
names its half-written files after its claim. Whoever starts next then tidies away only what a dead
process left, never a file another running process is still writing.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here, so every claim counts as alive (nothing is removed)
    fcntl = None  # type: ignore[assignment]

TOKEN = "w" + secrets.token_hex(6)  # this process's claim
CLAIM_NAME = re.compile(r"^w[0-9a-f]{12}$")
_held: dict[Path, int] = {}  # folder -> the open, locked claim file


def claim(folder: Path) -> None:
    """Hold this process's claim in `folder` for as long as the process lives."""
    folder = Path(folder).resolve()
    if fcntl is None or folder in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder / f"{TOKEN}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _held[folder] = handle


def is_alive(folder: Path, token: str) -> bool:
    """True while the process that made `token` may still be running."""
    if token == TOKEN:
        return True
    path = Path(folder) / f"{token}.lock"
    if not path.exists():
        return False
    if fcntl is None:
        return True
    handle = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)  # closing releases the probe's own lock, if it got one
    return False


def forget_dead(folder: Path) -> None:
    """Remove the claim files of processes that have ended."""
    for path in Path(folder).glob("w*.lock"):
        if CLAIM_NAME.match(path.stem) and not is_alive(folder, path.stem):
            path.unlink(missing_ok=True)
