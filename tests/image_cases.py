"""Odd image files people really upload, made on the fly for the bad-input tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def photo(name: str = "coffee") -> Image.Image:
    return Image.open(EXAMPLES / f"{name}.jpg").convert("RGB")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG that declares a huge size but holds almost no data: decoding it would be the mistake."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def write_cases(folder: Path) -> dict[str, Path]:
    """Every awkward case, written into `folder`; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    base = photo().resize((120, 80))
    cases: dict[str, Path] = {}

    def path(name: str) -> Path:
        cases[name] = folder / name
        return cases[name]

    path("empty.png").write_bytes(b"")
    path("text.png").write_text("this is not an image\n")
    good = (EXAMPLES / "coffee.jpg").read_bytes()
    path("truncated.jpg").write_bytes(good[: len(good) // 3])
    path("huge.png").write_bytes(huge_png_header(20000, 20000))
    base.convert("CMYK").save(path("cmyk.jpg"), quality=95)
    grey16 = (np.linspace(0, 65535, 120 * 80).reshape(80, 120)).astype(np.uint16)
    Image.fromarray(grey16).save(path("grey16.png"))
    rgba = base.convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, 60, 80))  # left half fully transparent
    rgba.putalpha(alpha)
    rgba.save(path("alpha.png"))
    base.quantize(16).save(path("palette.png"))
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "green", "blue")]
    frames[0].save(path("animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    base.save(path("rotated.jpg"), exif=exif, quality=95)
    Image.new("RGB", (1, 1), "purple").save(path("one_pixel.png"))
    return cases
