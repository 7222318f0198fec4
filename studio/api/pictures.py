"""Pictures as the HTTP APIs carry them: base64 in JSON, PNG out with AUTOMATIC1111's `parameters`."""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Any

from PIL import Image

from studio.backends.diffusion import a1111_parameters
from studio.errors import InputError
from studio.history import GalleryItem
from studio.media.images import LoadedImage
from studio.media.png_info import A1111_KEY, STUDIO_KEY, save_png
from studio.services import Studio

# A picture at the studio's largest input (50 MP) as PNG is far below this; it only bounds hostile strings.
MAX_BASE64_CHARS = 48 * 1024 * 1024


def decode_base64(value: Any, what: str) -> bytes:
    """The bytes of a base64 picture, as clients send it: bare, or as a `data:image/...;base64,` URL."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"'{what}' must be a picture as a base64 string.")
    if len(value) > MAX_BASE64_CHARS:
        raise InputError(f"'{what}' is {len(value) / 2**20:.0f} MB of base64; the limit is "
                         f"{MAX_BASE64_CHARS // 2**20} MB.")
    text = value.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"'{what}' is not valid base64.") from None


def open_sent_picture(studio: Studio, value: Any, what: str) -> LoadedImage:
    """A base64 picture from a request, opened as an upload is (limits, odd formats), its field named."""
    data = decode_base64(value, what)
    try:
        return studio.open_image(data)
    except InputError as exc:
        raise InputError(f"'{what}' cannot be used: {exc}") from None


def png_bytes(picture: Image.Image, text: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    save_png(picture, buffer, text)
    return buffer.getvalue()


def result_png(picture: Image.Image, record: dict[str, Any], item: GalleryItem | None) -> bytes:
    """The PNG a client gets: the gallery's own file when the picture was kept, else the same chunks."""
    if item is not None and item.file.exists():
        return item.file.read_bytes()
    return png_bytes(picture, {STUDIO_KEY: json.dumps(record, sort_keys=True, default=str),
                               A1111_KEY: a1111_parameters(record)})


def encode_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def text_chunks(data: bytes) -> dict[str, str]:
    """A picture file's text chunks (empty for formats without them)."""
    with Image.open(io.BytesIO(data)) as opened:
        return {str(k): str(v) for k, v in getattr(opened, "text", {}).items()}
