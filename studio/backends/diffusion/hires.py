"""Hires fix, as AUTOMATIC1111 does it: a text-to-image picture at the model's own size, made bigger
(its latents interpolated, or the decoded picture resized by Lanczos or a named upscaler), then
redrawn by a second image-to-image pass at a chosen denoising strength and number of steps.

This module holds what needs no pipeline: the upscalers' names, the sizes, the latent and picture
upscaling, and the step count that makes the second pass run exactly the steps asked for. The run
itself is in `pipelines.DiffusionBackend.generate`.

A super-resolution model (a GAN) plugs in through one seam: the backend takes an `UpscalePicture`
callable and the names it answers to; those names join `BUILTIN_UPSCALERS` in the choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from studio.runtime import CancelToken, ProgressCallback

# A1111's latent upscalers: name -> (torch interpolation mode, antialias). Plain "Latent" is bilinear.
LATENT_UPSCALERS: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
# Upscalers on the decoded picture that need no model (PIL's filters, as A1111 names them).
PICTURE_UPSCALERS: dict[str, Image.Resampling] = {
    "Lanczos": Image.Resampling.LANCZOS,
    "Nearest": Image.Resampling.NEAREST,
}
BUILTIN_UPSCALERS: tuple[str, ...] = (*LATENT_UPSCALERS, *PICTURE_UPSCALERS)
DEFAULT_UPSCALER = "Latent"
DEFAULT_STRENGTH = 0.7  # A1111's default denoising strength for the second pass
MAX_SCALE = 4.0

# (picture, upscaler id, scale, progress, cancel) -> the picture about `scale` times bigger.
UpscalePicture = Callable[[Image.Image, str, float, ProgressCallback, CancelToken], Image.Image]


def is_latent(upscaler: str) -> bool:
    return upscaler in LATENT_UPSCALERS


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The second pass's size: the first pass's times `scale` (as A1111: int(side x scale)), down to
    a multiple of 8 px, the model's block size."""
    return int(width * scale) // 8 * 8, int(height * scale) // 8 * 8


def resized_size(width: int, height: int, resize_x: int, resize_y: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """AUTOMATIC1111's "Resize width/height to": (the size the first pass is upscaled to, the size it is then
    centre-cropped to). One side 0 keeps the first pass's aspect; both given, the picture is upscaled
    until it covers that size and its overflow cropped. Sides are whole multiples of 8 px."""
    if not resize_y:
        target = (resize_x, resize_x * height // width)
    elif not resize_x:
        target = (resize_y * width // height, resize_y)
    else:
        target = (resize_x, resize_y)
    target = (target[0] // 8 * 8, target[1] // 8 * 8)
    scale = max(target[0] / width, target[1] / height)
    cover = (max(target[0], math.ceil(width * scale / 8 - 1e-9) * 8), max(target[1], math.ceil(height * scale / 8 - 1e-9) * 8))
    return cover, target


def crop_box(cover: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred `target` box inside `cover` (px), its corner on the 8 px grid so latents crop with it."""
    left, top = (cover[0] - target[0]) // 16 * 8, (cover[1] - target[1]) // 16 * 8
    return left, top, left + target[0], top + target[1]


def crop_latents(latents: Any, cover: tuple[int, int], target: tuple[int, int], scale_factor: int = 8) -> Any:
    """Latents of the `cover` size cut to the centred `target` (px sizes)."""
    if cover == target:
        return latents
    left, top, right, bottom = (v // scale_factor for v in crop_box(cover, target))
    return latents[..., top:bottom, left:right]


def second_pass_steps(steps: int, strength: float) -> int:
    """The `num_inference_steps` for which image-to-image at `strength` runs exactly `steps` steps
    (diffusers runs int(n x strength) of n), as A1111's second pass runs its hires steps in full."""
    total = max(steps, math.ceil(steps / strength) - 1)
    while min(int(total * strength), total) < steps:  # int() of a float product can land one short
        total += 1
    return total


def upscale_latents(latents: Any, size: tuple[int, int], upscaler: str, scale_factor: int = 8) -> Any:
    """Latents (N x C x h x w) interpolated to the latent size of `size` (width, height in px)."""
    import torch

    mode, antialias = LATENT_UPSCALERS[upscaler]
    target = (size[1] // scale_factor, size[0] // scale_factor)
    # Interpolation runs in fp32: bf16/fp16 bicubic is missing or coarse on some devices.
    resized = torch.nn.functional.interpolate(latents.float(), size=target, mode=mode, antialias=antialias)
    return resized.to(latents.dtype)


def upscale_pictures(
    pictures: Sequence[Image.Image],
    upscaler: str,
    scale: float,
    size: tuple[int, int],
    upscale_picture: UpscalePicture | None,
    progress: ProgressCallback,
    cancel: CancelToken,
) -> list[Image.Image]:
    """Decoded pictures brought to `size`: by a PIL filter, or by the named upscaler model and then
    Lanczos to the exact size (a x4 model makes more than a 2x hires fix asks for)."""
    made = []
    for picture in pictures:
        cancel.raise_if_cancelled()
        if upscaler in PICTURE_UPSCALERS:
            made.append(picture.resize(size, PICTURE_UPSCALERS[upscaler]))
            continue
        if upscale_picture is None:
            raise LookupError(f"no upscaler model answers to '{upscaler}'")
        bigger = upscale_picture(picture, upscaler, scale, progress, cancel)
        made.append(bigger if bigger.size == size else bigger.resize(size, Image.Resampling.LANCZOS))
    return made
