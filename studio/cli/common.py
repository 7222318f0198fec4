"""What every command shares: argparse that fails in one line, `fail`, and argument types."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from PIL import Image

EXIT_BAD_INPUT = 2
PICTURE_FORMATS = (".jpeg", ".jpg", ".png", ".webp")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, like every other error, and a command's words may
    come in any order: `inpaint photo.png --mask mask.png "a red door" --only-masked` reads the prompt
    after the options, as people type it (argparse alone stops taking positionals after an option)."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        # The top-level parser dispatches to a sub-command, which intermixed parsing cannot do; each
        # command's own parser takes its positionals from anywhere in its words.
        if self._intermixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    """Say what went wrong in one line on stderr; the exit code to return."""
    print(f"error: {message}", file=sys.stderr)
    return code


def unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..1")
    return value


def picture_out_problem(out: Path) -> str | None:
    """Why a picture cannot be written to `out`, checked before any work; None when it can."""
    if out.suffix.lower() not in PICTURE_FORMATS:
        return f"--out must end in one of {', '.join(PICTURE_FORMATS)}, not '{out.suffix or out.name}'"
    if not out.parent.resolve().is_dir():
        return f"the folder {out.parent} does not exist"
    return None


def write_picture(image: Image.Image, out: Path, png_text: dict[str, str]) -> None:
    """Write a result; a PNG keeps `png_text` as its text chunks. Raises OSError when the disk refuses."""
    suffix = out.suffix.lower()
    if suffix == ".png":
        from studio.media.png_info import save_png

        save_png(image, out, png_text)
    else:
        # JPEG has no alpha channel.
        (image.convert("RGB") if suffix in {".jpg", ".jpeg"} else image).save(out, quality=95)


class StageLine:
    """A one-off stage's progress as one line on stderr, rewritten in place as it moves
    ("Preparing this model for your CPU: once, about a minute: 40%"), ended when it is done."""

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.shown: tuple[str, int] | None = None

    def __call__(self, text: str, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if self.shown == (text, percent):
            return
        self.shown = (text, percent)
        self.stream.write(f"\r{text}: {percent}%" + ("\n" if done >= total else ""))
        self.stream.flush()
