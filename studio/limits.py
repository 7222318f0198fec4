"""The work limits an operator sets (Settings), checked on the server before any model runs.

The backends refuse what no machine should attempt (their own MAX_* constants); these checks
apply the operator's tighter caps, which a hosted demo lowers so that one visitor's request
cannot hold the machine for long. The UI offers the same caps on its sliders; these hold for
API calls, re-runs and the CLI too.
"""

from __future__ import annotations

from studio.backends.diffusion import ImageRequest
from studio.backends.language import TextRequest
from studio.backends.musicgen import MusicRequest
from studio.errors import InputError
from studio.media.video import VideoLimits
from studio.settings import Settings


def check_image(request: ImageRequest, settings: Settings) -> None:
    request.validate()  # types and absolute bounds first, so the comparisons below are sound
    if request.steps > settings.max_steps:
        raise InputError(f"This studio allows at most {settings.max_steps} steps per image, not {request.steps}.")
    if request.hires and request.hires_steps > settings.max_steps:
        raise InputError(
            f"This studio allows at most {settings.max_steps} hires steps per image, not {request.hires_steps}."
        )
    images = request.batch_size * request.batch_count
    if images > settings.max_images:
        raise InputError(
            f"That is {images} images in one run; this studio makes at most {settings.max_images} per run."
        )


def check_text(request: TextRequest, settings: Settings) -> None:
    request.validate()
    if request.max_new_tokens > settings.max_new_tokens:
        raise InputError(
            f"This studio writes at most {settings.max_new_tokens:,} new tokens per reply, "
            f"not {request.max_new_tokens:,}."
        )


def check_music(request: MusicRequest, settings: Settings) -> None:
    request.validate()
    if request.seconds > settings.max_music_seconds:
        raise InputError(
            f"This studio makes at most {settings.max_music_seconds} s of music at a time, not {request.seconds:g} s."
        )


def video_limits(settings: Settings) -> VideoLimits:
    """The operator's caps on a clip to restyle, checked from its headers before decoding."""
    return VideoLimits(max_seconds=settings.max_video_seconds, max_frames=settings.max_video_frames,
                       max_side=settings.max_video_side)
