"""Benchmark scripts as the tests see them: loaded as modules (benchmarks/ is not a package), and the
arguments each README command gives them, so a test can prove the documented command is one they accept."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module, its main() not run."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_arguments(name: str) -> list[list[str]]:
    """The arguments after benchmarks/<name>.py in each command the README shows for it (code spans never
    cross lines there); an empty list when it shows none."""
    script = f"benchmarks/{name}.py"
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    commands = [span for line in lines for span in re.findall(r"`([^`]+)`", line) if script in span and "python" in span]
    return [words[words.index(script) + 1:] for words in map(shlex.split, commands)]
