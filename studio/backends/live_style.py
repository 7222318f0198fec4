"""The live style mirror: webcam frames restyled as they come, for one viewer.

The style is settled once per choice (a style picture's vector is computed when it is chosen, not
per frame) and the same temporal blend as for videos keeps the mirror from shimmering. A frame that
arrives while the previous one is still being restyled is dropped, not queued: a mirror must show
now, not a backlog. Changing the style starts the blend afresh.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from studio.backends.stylize import StyleBackend, StyleRequest, style_weights
from studio.errors import InputError
from studio.media.flow import TemporalBlender

LIVE_SIDE = 320  # the mirror's longest side: a few frames a second on a CPU
LIVE_TEMPORAL = 0.6  # less than for videos: a face moves fast and the flow is estimated live


@dataclass(frozen=True)
class LiveChoice:
    """What the viewer picked; a new choice resets the style and the blend."""

    style: int = 0
    style_image_key: str | None = None  # names the style picture (its digest), None for a built-in style
    strength: float = 1.0
    temporal: float = LIVE_TEMPORAL


class LiveStyler:
    def __init__(self, backend: StyleBackend, side: int = LIVE_SIDE):
        self.backend = backend
        self.side = side
        self._busy = threading.Lock()
        self._choice: LiveChoice | None = None
        self._render: Callable[[Image.Image], Image.Image] | None = None
        self._blender: TemporalBlender | None = None
        self._times: deque[float] = deque(maxlen=12)
        self.dropped = 0
        self.last: Image.Image | None = None

    def _settle(self, choice: LiveChoice, style_image: Image.Image | None) -> None:
        if choice == self._choice:
            return
        request = StyleRequest(style=choice.style, strength=choice.strength)
        request.validate(self.side)
        if choice.style_image_key is not None:
            if style_image is None:
                raise InputError("Choose a style picture for the mirror, or a built-in style.")
            vector = self.backend.style_vector(style_image)  # once per choice
            self._render = lambda frame: self.backend.render_vector(frame, vector)
        else:
            weights = style_weights(request)
            self._render = lambda frame: self.backend.render_weights(frame, weights, choice.strength)
        self._blender = TemporalBlender(choice.temporal)
        self._choice = choice

    def frame(self, rgb: np.ndarray, choice: LiveChoice, style_image: Image.Image | None = None) -> Image.Image | None:
        """The restyled frame, or None when it was dropped because the last one is still in work."""
        if not self._busy.acquire(blocking=False):
            self.dropped += 1
            return None
        try:
            if rgb is None or rgb.ndim != 3 or min(rgb.shape[:2]) < 8:
                return None  # a stream that stopped mid-frame: nothing to show, nothing to fail
            self._settle(choice, style_image)
            picture = Image.fromarray(np.ascontiguousarray(rgb[..., :3]).astype(np.uint8))
            picture.thumbnail((self.side, self.side), Image.Resampling.BILINEAR)
            stylised = np.asarray(self._render(picture).convert("RGB"))
            out, _ = self._blender(np.asarray(picture), stylised)
            self.last = Image.fromarray(out)
            self._times.append(time.perf_counter())
            return self.last
        finally:
            self._busy.release()

    @property
    def choice(self) -> LiveChoice | None:
        return self._choice

    @property
    def fps(self) -> float:
        """Frames shown per second over the last few."""
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-6)
