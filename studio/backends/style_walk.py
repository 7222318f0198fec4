"""Style walks: one photo restyled frame by frame while the style glides between keyframes.

Built-in keyframes move through the multi-style network's 26 style weights; style-image
keyframes move through the arbitrary network's 100-number style vectors. Both spaces are
linear mixes, so the walk is a straight line between keyframes. Each keyframe frame is made
by exactly the call that makes its single-style image, so the walk's ends match those images.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from studio.backends.frames import FramesResult
from studio.backends.stylize import ARBITRARY_ID, BUILTIN_STYLE_COUNT, MULTISTYLE_ID, StyleBackend
from studio.errors import InputError
from studio.media.images import LoadedImage, restore_alpha
from studio.media.interpolation import lerp, walk_positions
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress


@dataclass(frozen=True)
class StyleWalkRequest:
    styles: tuple[int, ...] = ()  # built-in keyframes; leave empty when style images are given
    frames_between: int = 8
    size: int | None = 512
    preserve_color: bool = False
    fps: float = 12.0

    def validate(self, keyframe_images: int, max_side: int, max_frames: int) -> None:
        if self.styles and keyframe_images:
            raise InputError("A style walk goes through built-in styles or through style images, not both at once.")
        keyframes = len(self.styles) or keyframe_images
        if keyframes < 2:
            raise InputError("A style walk needs at least two styles to walk between.")
        bad = [s for s in self.styles if not 0 <= s < BUILTIN_STYLE_COUNT]
        if bad:
            raise InputError(f"Built-in styles are numbered 0 to {BUILTIN_STYLE_COUNT - 1}; {bad} are not.")
        if self.frames_between < 0:
            raise InputError("The number of frames between styles cannot be negative.")
        total = (keyframes - 1) * (self.frames_between + 1) + 1
        if total > max_frames:
            raise InputError(f"That walk would have {total} frames; the limit is {max_frames}. Use fewer in between.")
        if self.size is not None and not 32 <= self.size <= max_side:
            raise InputError(f"The frame size must be between 32 and {max_side} px, not {self.size}.")
        if not 1 <= self.fps <= 60:
            raise InputError(f"Frames per second must be between 1 and 60, not {self.fps}.")


def one_hot(style: int) -> np.ndarray:
    weights = np.zeros(BUILTIN_STYLE_COUNT, dtype=np.float32)
    weights[style] = 1.0
    return weights


def style_walk(
    backend: StyleBackend,
    photo: LoadedImage,
    request: StyleWalkRequest,
    style_images: list[LoadedImage] | None = None,
    *,
    max_side: int = 2048,
    max_frames: int = 240,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> FramesResult:
    style_images = style_images or []
    request.validate(len(style_images), max_side, max_frames)
    started = time.perf_counter()
    original = backend.prepare_photo(photo, request.size, max_side)
    if request.styles:
        keys = [one_hot(s) for s in request.styles]

        def render(point: np.ndarray) -> Image.Image:
            return backend.render_weights(original, point, preserve_color=request.preserve_color)
    else:
        keys = [backend.style_vector(image.rgb) for image in style_images]

        def render(point: np.ndarray) -> Image.Image:
            return backend.render_vector(original, point, request.preserve_color, cancel=cancel)

    positions = walk_positions(len(keys), request.frames_between)
    frames: list[Image.Image] = []
    stopped = False
    for i, (segment, t) in enumerate(positions):
        if cancel.cancelled:
            stopped = True
            break
        frame = restore_alpha(render(lerp(keys[segment], keys[segment + 1], t)), photo.alpha)
        frames.append(frame)
        progress(i + 1, len(positions), frame)
    if not frames:
        cancel.raise_if_cancelled()
    params = {
        "task": "style-walk",
        "model": MULTISTYLE_ID if request.styles else ARBITRARY_ID,
        **asdict(request),
        "frames": len(positions),
        "width": frames[0].width,
        "height": frames[0].height,
    }
    return FramesResult(frames=frames, params=params, seconds=time.perf_counter() - started, stopped=stopped)
