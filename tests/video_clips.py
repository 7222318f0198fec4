"""Short clips with known motion, made from real photos (scikit-learn's sample images), and the tools
to write them as real video files: for the video tests and benchmarks/video_style.py.

Each maker returns the frames and, for each pair of consecutive frames, the true flow from frame t
to t+1 (frame_t(x) = frame_t+1(x + flow(x))) and the mask of pixels visible in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class KnownMotion:
    name: str
    frames: list[np.ndarray]  # HxWx3 uint8
    flows: list[np.ndarray]  # len(frames) - 1, HxWx2 float32
    masks: list[np.ndarray]  # len(frames) - 1, HxW bool


def photo(name: str = "china.jpg", width: int | None = None) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    image = Image.fromarray(load_sample_image(name))
    if width is not None:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _inside(flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    tx, ty = xs + flow[..., 0], ys + flow[..., 1]
    return (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)


def pan(size=(128, 96), frames=12, step=(3, 1), source="china.jpg", scale_width=320) -> KnownMotion:
    """A camera gliding over a photo by whole pixels per frame."""
    width, height = size
    image = photo(source, scale_width)
    dx, dy = step
    out = [np.ascontiguousarray(image[20 + t * dy: 20 + t * dy + height, 10 + t * dx: 10 + t * dx + width])
           for t in range(frames)]
    flow = np.zeros((height, width, 2), np.float32)
    flow[..., 0], flow[..., 1] = -dx, -dy
    return KnownMotion("pan", out, [flow] * (frames - 1), [_inside(flow)] * (frames - 1))


def zoom(size=(128, 96), frames=12, rate=1.03, source="china.jpg", scale_width=320) -> KnownMotion:
    """A slow zoom into the middle of a photo."""
    import cv2

    width, height = size
    image = photo(source, scale_width)
    centre = np.array([image.shape[1] / 2, image.shape[0] / 2])
    middle = np.array([(width - 1) / 2, (height - 1) / 2])
    out, flows, masks = [], [], []
    for t in range(frames):
        z = rate**t
        # frame pixel u shows photo point centre + (u - middle) / z
        matrix = np.array([[1 / z, 0, centre[0] - middle[0] / z], [0, 1 / z, centre[1] - middle[1] / z]])
        out.append(cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    flow = np.stack([(xs - middle[0]) * (rate - 1), (ys - middle[1]) * (rate - 1)], axis=-1).astype(np.float32)
    for _ in range(frames - 1):
        flows.append(flow)
        masks.append(_inside(flow))
    return KnownMotion("zoom", out, flows, masks)


def moving_object(size=(128, 96), frames=12, step=(4, 2), side=32) -> KnownMotion:
    """A square cut from one photo sliding over another, still one; what it covers and uncovers is
    left out of the masks."""
    width, height = size
    background = photo("china.jpg", 320)[40:40 + height, 60:60 + width]
    thing = photo("flower.jpg", 200)[40:40 + side, 80:80 + side]
    dx, dy = step
    out, flows, masks = [], [], []
    position = lambda t: (8 + t * dx, 8 + t * dy)  # noqa: E731
    for t in range(frames):
        frame = background.copy()
        x, y = position(t)
        frame[y:y + side, x:x + side] = thing
        out.append(frame)
    for t in range(frames - 1):
        (x0, y0), (x1, y1) = position(t), position(t + 1)
        flow = np.zeros((height, width, 2), np.float32)
        flow[y0:y0 + side, x0:x0 + side] = (dx, dy)
        mask = np.ones((height, width), bool)
        mask[y1:y1 + side, x1:x1 + side] = False  # background hidden at t+1
        mask[y0:y0 + side, x0:x0 + side] = True  # the object itself stays visible
        flows.append(flow)
        masks.append(mask & _inside(flow))
    return KnownMotion("moving object", out, flows, masks)


def with_noise(clip: KnownMotion, sigma: float = 6.0, seed: int = 0) -> KnownMotion:
    """The same motion with fresh sensor noise in every frame."""
    rng = np.random.default_rng(seed)
    noisy = [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in clip.frames]
    return KnownMotion(clip.name + " + noise", noisy, clip.flows, clip.masks)


def flicker(frames: list[np.ndarray], amount: float = 24.0) -> list[np.ndarray]:
    """Every other frame brighter: what flicker looks like."""
    return [np.clip(f.astype(np.float32) + (amount if t % 2 else 0.0), 0, 255).astype(np.uint8)
            for t, f in enumerate(frames)]


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 12, *, audio: tuple[str, int] | None = None,
               rotation: int = 0, crf: int = 12, audio_seconds: float | None = None,
               times: list[float] | None = None) -> Path:
    """Frames (and optionally a 440 Hz tone with `audio` = (codec, rate)) as a real video file; the
    container follows the suffix (.mp4, .mov, .webm, .mkv). `times` (seconds, one per frame) makes a
    variable-rate clip, each frame at its own time on a millisecond clock, as phones record."""
    import av

    path = Path(path)
    webm = path.suffix == ".webm"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx-vp9" if webm else "libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)} if not webm else {"crf": "20", "b": "0", "deadline": "realtime"}
        clock = Fraction(1, 1000) if times is not None else 1 / stream.codec_context.framerate
        if times is not None:
            stream.time_base = stream.codec_context.time_base = clock
        if rotation:
            stream.set_display_rotation(rotation)
        sound = None
        if audio is not None:
            codec, rate = audio
            sound = out.add_stream(codec, rate=rate)
            sound.layout = "mono"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index if times is None else round(times[index] * 1000)
            frame.time_base = clock
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if sound is not None:
            codec, rate = audio
            count = round((audio_seconds if audio_seconds is not None else len(frames) / fps) * rate)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(count) / rate)).astype(np.float32)[None]
            pcm = codec.startswith("pcm_")
            data = (tone * 32767).astype(np.int16) if pcm else tone
            chunk = 1024
            for start in range(0, count, chunk):
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, start:start + chunk]),
                                                   format="s16" if pcm else "fltp", layout="mono")
                piece.sample_rate = rate
                piece.pts = start
                piece.time_base = Fraction(1, rate)
                for packet in sound.encode(piece):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return path


def stream_seconds(path: Path, kind: str) -> float | None:
    """How long a file's first `kind` ('video'/'audio') stream lasts, from the container."""
    import av

    with av.open(str(path)) as container:
        streams = getattr(container.streams, kind)
        if not streams:
            return None
        stream = streams[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return None


def decoded(path: Path) -> list[np.ndarray]:
    from studio.media import video

    info = video.probe(path, video.VideoLimits(1e9, 10**9, 10**6))
    return [frame.rgb for frame in video.read_frames(path, info)]
