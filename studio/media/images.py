"""Open any image a person may hand the studio, safely, as 8-bit RGB (+ alpha kept aside).

The size is checked from the header before a single pixel is decoded, so a huge
upload is refused cheaply. Odd formats are normalised: EXIF rotation honoured,
CMYK and palette converted, 16-bit scaled (not clipped), first frame of an animation.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from studio.errors import InputError

MIN_SIDE = 1


@dataclass
class LoadedImage:
    """An upload made ready for a model: RGB pixels, its alpha if it had one, and what was changed."""

    rgb: Image.Image
    alpha: Image.Image | None = None
    notes: list[str] = field(default_factory=list)
    source: Image.Image | None = None  # normalised but not yet flattened: what to store for a re-run

    @property
    def original(self) -> Image.Image:
        return self.source if self.source is not None else self.rgb

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.size


def _describe(source: str | os.PathLike | bytes) -> str:
    return "the image" if isinstance(source, bytes) else f"'{Path(source).name}'"


def open_image(source: str | os.PathLike | bytes, max_pixels: int) -> LoadedImage:
    """Decode `source` (a path or the file's bytes) into a LoadedImage, or raise InputError."""
    what = _describe(source)
    if isinstance(source, bytes):
        if not source:
            raise InputError("The image file is empty (0 bytes).")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            # The full path: a relative one says nothing about the folder it was looked for in.
            where = path.expanduser().absolute()
            if path.is_dir():
                raise InputError(f"'{where}' is a folder, not an image file.")
            raise InputError(f"No image file at '{where}'.")
        if path.stat().st_size == 0:
            raise InputError(f"{what} is empty (0 bytes).")
        stream = path

    with warnings.catch_warnings():
        # Our own pixel limit below is the one that counts.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(stream)
        except Image.DecompressionBombError:
            raise InputError(
                f"{what} is far too large to open; the limit is {max_pixels / 1e6:.0f} megapixels. Scale it down first."
            ) from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise InputError(
                f"{what} is not an image the studio can read. Use PNG, JPEG, WebP, GIF, BMP or TIFF."
            ) from None

    width, height = im.size
    if width * height > max_pixels:
        raise InputError(
            f"{what} is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {max_pixels / 1e6:.0f} megapixels. Scale it down first."
        )
    if min(width, height) < MIN_SIDE:
        raise InputError(f"{what} has no pixels ({width}x{height}).")

    notes: list[str] = []
    if getattr(im, "n_frames", 1) > 1:
        notes.append(f"{what} is animated; its first frame was used.")
    try:
        im.seek(0)
        im.load()
        rotated = ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError, EOFError):
        raise InputError(f"{what} is damaged or incomplete; it could not be decoded.") from None
    if rotated is not None and rotated.size != im.size:
        notes.append("Rotated to match the photo's EXIF orientation.")
    im = rotated if rotated is not None else im
    return _normalise(im, notes)


def _normalise(im: Image.Image, notes: list[str]) -> LoadedImage:
    alpha = None
    source = None
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        im = _wide_to_8bit(im)
        mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        alpha = im.getchannel("A")
        if alpha.getextrema() == (255, 255):
            alpha = None
        else:
            notes.append("Transparent areas were filled with white and the transparency kept on the result.")
            source = im
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    if im.mode == "CMYK":
        notes.append("Converted from CMYK to RGB.")
    rgb = im.convert("RGB")
    return LoadedImage(rgb=rgb, alpha=alpha, notes=notes, source=source)


def _wide_to_8bit(im: Image.Image) -> Image.Image:
    """Scale 16-bit or float greyscale into 0..255 instead of letting Pillow clip it."""
    arr = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        top = 1.0 if arr.max(initial=0.0) <= 1.0 else 255.0
        arr = arr / top * 255.0
    elif arr.max(initial=0.0) > 255:
        arr = arr / 257.0  # 65535 -> 255
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def restore_alpha(result: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Put an upload's transparency back on a result of any size."""
    if alpha is None:
        return result
    out = result.convert("RGBA")
    out.putalpha(alpha.resize(out.size, Image.Resampling.LANCZOS))
    return out


def resize_long_side(im: Image.Image, long_side: int) -> Image.Image:
    """Scale so the longer side is `long_side` px, keeping the aspect ratio."""
    width, height = im.size
    scale = long_side / max(width, height)
    if scale == 1:
        return im
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS)


def image_digest(im: Image.Image) -> str:
    """A content hash of the pixels, used to store each input once."""
    digest = hashlib.sha256()
    digest.update(f"{im.mode}{im.size}".encode())
    digest.update(im.tobytes())
    return digest.hexdigest()
