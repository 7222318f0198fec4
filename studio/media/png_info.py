"""PNG text chunks: how results carry the parameters that made them."""

from __future__ import annotations

import json
import os
from typing import Any

from PIL import Image, PngImagePlugin

STUDIO_KEY = "studio"  # JSON of every parameter, the studio's own record


def save_png(image: Image.Image, path: str | os.PathLike, text: dict[str, str]) -> None:
    """Write a PNG with one tEXt chunk per item of `text` (iTXt where it is not Latin-1)."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        try:
            value.encode("latin-1")
            info.add_text(key, value)
        except UnicodeEncodeError:
            info.add_itxt(key, value)
    image.save(path, format="PNG", pnginfo=info)


def read_png_text(path: str | os.PathLike) -> dict[str, str]:
    """All text chunks of a PNG (empty for other formats)."""
    with Image.open(path) as im:
        return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}


def read_studio_params(path: str | os.PathLike) -> dict[str, Any] | None:
    """The studio's own parameter record in a PNG, if it has one."""
    raw = read_png_text(path).get(STUDIO_KEY)
    if raw is None:
        return None
    try:
        params = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return params if isinstance(params, dict) else None
