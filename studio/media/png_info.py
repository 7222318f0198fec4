"""PNG text chunks: how results carry the parameters that made them."""

from __future__ import annotations

import json
import os
import re
from typing import IO, Any

from PIL import Image, PngImagePlugin

STUDIO_KEY = "studio"  # JSON of every parameter, the studio's own record


def pnginfo(text: dict[str, str]) -> PngImagePlugin.PngInfo:
    """One tEXt chunk per item of `text` (iTXt where it is not Latin-1)."""
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        try:
            value.encode("latin-1")
            info.add_text(key, value)
        except UnicodeEncodeError:
            info.add_itxt(key, value)
    return info


def save_png(image: Image.Image, path: str | os.PathLike | IO[bytes], text: dict[str, str]) -> None:
    """Write a PNG carrying `text` as chunks."""
    image.save(path, format="PNG", pnginfo=pnginfo(text))


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


# -- AUTOMATIC1111's `parameters` chunk ---------------------------------------------------------
#
#   a lighthouse at dusk, oil painting
#   Negative prompt: blurry
#   Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x512, Model: v1-5
#
# Values holding a comma, colon or newline are written as JSON strings, as AUTOMATIC1111 does.

A1111_KEY = "parameters"
NEGATIVE_PREFIX = "Negative prompt:"
_SETTING = re.compile(r'\s*([A-Za-z][\w \-/().]*?):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def _quote(value: Any) -> str:
    text = str(value)
    if any(c in text for c in ',\n:"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_a1111_parameters(prompt: str, negative_prompt: str, settings: dict[str, Any]) -> str:
    """The text AUTOMATIC1111 writes into a PNG's `parameters` chunk; None values are left out."""
    lines = [prompt.strip()]
    if negative_prompt.strip():
        lines.append(f"{NEGATIVE_PREFIX} {negative_prompt.strip()}")
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in settings.items() if value is not None))
    return "\n".join(lines)


def _settings(line: str) -> dict[str, str] | None:
    """`Key: value, Key: value, ...` as a dict, or None if the line is not such a list."""
    found: dict[str, str] = {}
    position = 0
    line = line.strip()
    while position < len(line):
        match = _SETTING.match(line, position)
        if match is None or match.end() == position:
            return None
        key, value = match.group(1).strip(), match.group(2).strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value[1:-1]
        found[key] = value
        position = match.end()
    return found if len(found) >= 2 else None


def parse_a1111_parameters(text: str) -> dict[str, str]:
    """Split AUTOMATIC1111 `parameters` text into {"prompt", "negative_prompt", <Key>: <value>...}.

    The settings are the last line when it is a `Key: value, ...` list; everything before a line
    starting with `Negative prompt:` is the prompt (prompts may span lines).
    """
    lines = text.strip().split("\n")
    settings: dict[str, str] = {}
    if lines and (parsed := _settings(lines[-1])) is not None:
        settings = parsed
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines:
        if negative or line.startswith(NEGATIVE_PREFIX):
            negative.append(line[len(NEGATIVE_PREFIX):].strip() if line.startswith(NEGATIVE_PREFIX) else line)
        else:
            prompt.append(line)
    return {"prompt": "\n".join(prompt).strip(), "negative_prompt": "\n".join(negative).strip(), **settings}


def read_a1111_parameters(path: str | os.PathLike) -> dict[str, str] | None:
    """The parsed `parameters` chunk of a PNG (written by the studio or by AUTOMATIC1111), if any."""
    try:
        raw = read_png_text(path).get(A1111_KEY)
    except (OSError, ValueError):
        return None
    return parse_a1111_parameters(raw) if raw else None
