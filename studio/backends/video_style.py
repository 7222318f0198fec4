"""Restyle a whole video on the built-in Magenta networks, without flicker.

Frame by frame, a feed-forward style network flickers: tiny changes between frames move its brush
strokes about. Here the style is fixed once per clip (the built-in weights, or one 100-number style
vector for a style picture), and each new stylised frame is blended with the previous result carried
along the optical flow (OpenCV DIS), except where forward-backward consistency says pixels were
hidden or revealed (Ruder et al. 2016); scene cuts start afresh (studio/media/flow.py). Frames stream
from the decoder to the H.264 encoder, so memory stays flat however long the clip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from studio import catalog
from studio.backends.stylize import (
    ARBITRARY_ID,
    MIN_SIDE,
    MULTISTYLE_ID,
    StyleBackend,
    StyleRequest,
    style_weights,
)
from studio.errors import Cancelled, InputError
from studio.media import video
from studio.media.flow import TemporalBlender
from studio.media.images import LoadedImage
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress

DEFAULT_TEMPORAL = 0.8
DEFAULT_VIDEO_SIZE = 640


@dataclass(frozen=True)
class VideoStyleRequest:
    """A style (as for photos) plus the temporal blend; `style.size` is the output's longest side."""

    style: StyleRequest = field(default_factory=lambda: StyleRequest(size=DEFAULT_VIDEO_SIZE))
    temporal: float = DEFAULT_TEMPORAL  # 0: frame by frame
    gif: bool = False

    def validate(self, max_side: int) -> None:
        self.style.validate(max_side)
        value = self.temporal
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
            raise InputError(f"The temporal strength must be between 0 and 1, not {value}.")

    def params(self) -> dict[str, Any]:
        return {**asdict(self.style), "temporal": self.temporal, "gif": self.gif}


@dataclass
class VideoStyleResult:
    path: Path  # the finished MP4 (a working file: the caller moves it where it belongs)
    frames: int  # frames written
    total: int  # frames the header promised
    fps: float
    width: int
    height: int
    preview: Image.Image  # the middle frame written, for the gallery's grid
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # time spent
    stopped: bool = False  # Stop was pressed: `path` holds the part made before it
    cuts: list[int] = field(default_factory=list)  # frames where a new shot started
    style_seconds: float = 0.0  # in the network
    temporal_seconds: float = 0.0  # in flow and blending


def output_size(width: int, height: int, size: int | None, max_side: int) -> tuple[int, int]:
    """The restyled frames' size: longest side `size` (or the clip's, capped), aspect kept."""
    longest = min(size or max(width, height), max_side)
    scale = longest / max(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(new) < MIN_SIDE:
        raise InputError(f"At {new[0]}x{new[1]} px this video is too thin to stylise; both sides need at least "
                         f"{MIN_SIDE} px. Choose a larger output size.")
    return new


def clip_length(last_time: float, last_gap: float, header_seconds: float, stopped: bool) -> float:
    """Where the restyled clip ends: where the source's header says its picture ends when that is just
    past the last frame (the last frame's own length), else one gap past the last frame, as long as the
    gap before it (at a variable rate the average rate says little about the last frame). A header far
    beyond the last frame (a longer soundtrack, a damaged end) or a stopped run is not followed."""
    if not stopped and last_time < header_seconds <= last_time + 2 * last_gap:
        return header_seconds
    return last_time + last_gap


class VideoStyler:
    """Restyles clips through the photo backend's networks (loaded once, shared with the Style tab)."""

    def __init__(self, backend: StyleBackend):
        self.backend = backend

    def _renderer(self, request: StyleRequest, style_image: LoadedImage | None,
                  first: Image.Image) -> Callable[[Image.Image], Image.Image]:
        """One function from a frame to its stylised frame; the style is settled here, once per clip."""
        if style_image is None:
            weights = style_weights(request)
            return lambda frame: self.backend.render_weights(frame, weights, request.strength, request.preserve_color)
        vector = self.backend.style_vector(style_image.rgb)
        if request.strength < 1.0:
            # As for photos: move from the clip's own style (its first frame's) towards the chosen one.
            vector = request.strength * vector + (1.0 - request.strength) * self.backend.style_vector(first)
        return lambda frame: self.backend.render_vector(frame, vector, request.preserve_color)

    def restyle(
        self,
        source: Path,
        info: video.VideoInfo,
        request: VideoStyleRequest,
        style_image: LoadedImage | None,
        work_dir: Path,
        *,
        max_side: int = 2048,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> VideoStyleResult:
        """Restyle `source` (already probed as `info`) into an MP4 under `work_dir`. Stop ends it between
        frames with the part made so far finished as a clip of its own (`stopped`); nothing half-written."""
        request.validate(max_side)
        started = time.perf_counter()
        width, height = output_size(info.width, info.height, request.style.size, max_side)
        picture = work_dir / "picture.mp4"
        writer = video.VideoWriter(picture, info.fps)
        blender = TemporalBlender(request.temporal)
        render: Callable[[Image.Image], Image.Image] | None = None
        style_seconds = temporal_seconds = 0.0
        cuts: list[int] = []
        frames_done, end_time, gap, preview = 0, 0.0, 1.0 / info.fps, None
        progress(0, info.frames)
        try:
            for frame in video.read_frames(source, info):
                if cancel.cancelled and frames_done:
                    break
                cancel.raise_if_cancelled()
                content = Image.fromarray(frame.rgb).resize((width, height), Image.Resampling.LANCZOS)
                if render is None:
                    render = self._renderer(request.style, style_image, content)
                tick = time.perf_counter()
                stylised = np.asarray(render(content).convert("RGB"))
                tock = time.perf_counter()
                out, report = blender(np.asarray(content), stylised)
                temporal_seconds += time.perf_counter() - tock
                style_seconds += tock - tick
                if report.cut:
                    cuts.append(frames_done)
                writer.write(out, frame.time)
                frames_done += 1
                if frames_done > 1:
                    gap = frame.time - end_time
                end_time = frame.time
                latest = Image.fromarray(out)
                if frames_done <= info.frames // 2 + 1:
                    preview = latest
                progress(frames_done, max(info.frames, frames_done), latest)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        stopped = cancel.cancelled
        if frames_done == 0:
            picture.unlink(missing_ok=True)
            if stopped:
                raise Cancelled("Stopped before the first frame was restyled.")
            raise InputError("That video has no frames to restyle.")
        length = clip_length(end_time, gap, info.seconds, stopped)
        out_path = work_dir / "restyled.mp4"
        video.finish_clip(picture, source if info.has_audio else None, out_path, length)
        picture.unlink(missing_ok=True)
        model_id = MULTISTYLE_ID if style_image is None else ARBITRARY_ID
        entry = self.backend.catalog.get(model_id)
        params = {
            "task": "style-video",
            "model": model_id,
            "model_revision": catalog.package_version(entry),
            "mode": "builtin" if style_image is None else "style-image",
            **request.params(),
            "width": width + width % 2,
            "height": height + height % 2,
            "fps": round(info.fps, 4),
            "frames": frames_done,
            "source_frames": info.frames,
            "clip_seconds": round(length, 3),
            "scene_cuts": cuts,
        }
        if style_image is not None:
            for key in ("style", "blend_style", "blend"):
                params.pop(key)
        params.pop("tiled", None)
        if stopped:
            params["stopped_after_frames"] = frames_done
        return VideoStyleResult(
            path=out_path, frames=frames_done, total=info.frames, fps=info.fps, width=params["width"],
            height=params["height"], preview=preview or latest, params=params,
            seconds=time.perf_counter() - started, stopped=stopped, cuts=cuts,
            style_seconds=style_seconds, temporal_seconds=temporal_seconds,
        )
