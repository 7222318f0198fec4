"""Picture geometry for image-to-image, inpainting and outpainting: working sizes, masks, crops
around a mask and pasting the result back, and the extended canvas of an outpaint."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

from studio.backends.diffusion.request import MIN_SIDE, ImageRequest


def cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop `image` to fill `size` exactly, keeping its proportions."""
    scale = max(size[0] / image.width, size[1] / image.height)
    scaled = image.resize(
        (max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale))), Image.Resampling.LANCZOS
    )
    left, top = (scaled.width - size[0]) // 2, (scaled.height - size[1]) // 2
    return scaled.crop((left, top, left + size[0], top + size[1]))


def fit_size(width: int, height: int, native: int) -> tuple[int, int]:
    """A model-friendly working size for a picture: about native x native pixels, same proportions,
    both sides multiples of 8."""
    scale = native / math.sqrt(width * height)
    return max(MIN_SIDE, round(width * scale / 8) * 8), max(MIN_SIDE, round(height * scale / 8) * 8)


def soft_mask(mask: Image.Image, blur: int) -> Image.Image:
    """White = repaint. Any drawn or light pixel counts; edges are feathered by `blur` px."""
    hard = mask.convert("L").point(lambda v: 255 if v > 127 else 0)
    if blur <= 0:
        return hard
    # Grow first, then blur, so the feathered edge stays outside what was painted.
    grown = hard.filter(ImageFilter.MaxFilter(2 * (blur // 2) + 1))
    return grown.filter(ImageFilter.GaussianBlur(blur / 2))


def crop_around_mask(mask: Image.Image, padding: int, aspect: float) -> tuple[int, int, int, int]:
    """A box around the mask plus `padding`, widened to the working aspect ratio, inside the picture."""
    left, top, right, bottom = mask.getbbox() or (0, 0, mask.width, mask.height)
    left, top = max(0, left - padding), max(0, top - padding)
    right, bottom = min(mask.width, right + padding), min(mask.height, bottom + padding)
    width, height = right - left, bottom - top
    if width / height < aspect:
        width = min(mask.width, math.ceil(height * aspect))
    else:
        height = min(mask.height, math.ceil(width / aspect))
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    left = int(min(max(0, round(centre_x - width / 2)), mask.width - width))
    top = int(min(max(0, round(centre_y - height / 2)), mask.height - height))
    return left, top, left + width, top + height


def paste_back(original: Image.Image, made: Image.Image, region: tuple[int, int, int, int],
               blend: Image.Image) -> Image.Image:
    """The original with `made` laid over `region` through the mask: unmasked pixels stay as they were."""
    box_size = (region[2] - region[0], region[3] - region[1])
    result = original.convert("RGB").copy()
    result.paste(made.resize(box_size, Image.Resampling.LANCZOS), region[:2], blend.crop(region))
    return result


def extend_canvas(image: Image.Image, request: ImageRequest) -> tuple[Image.Image, Image.Image]:
    """The picture on a larger canvas whose new border repeats its edges, and the mask of the border
    (reaching `mask_blur` px into the picture so the seam is repainted too)."""
    left, right, top, bottom = request.extend_left, request.extend_right, request.extend_top, request.extend_bottom
    pixels = np.asarray(image.convert("RGB"))
    padded = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="edge")
    canvas = Image.fromarray(padded)
    # Smear the repeated edge so the model starts from colours, not streaks.
    smeared = canvas.filter(ImageFilter.GaussianBlur(16))
    mask = Image.new("L", canvas.size, 255)
    overlap = request.mask_blur
    inner = (
        left + (overlap if left else 0),
        top + (overlap if top else 0),
        left + image.width - (overlap if right else 0),
        top + image.height - (overlap if bottom else 0),
    )
    mask.paste(0, inner)
    keep_sharp = Image.new("L", canvas.size, 0)
    keep_sharp.paste(255, (left, top, left + image.width, top + image.height))
    canvas = Image.composite(canvas, smeared, keep_sharp)
    return canvas, mask


