"""Video files, no models: probe from the headers, decode frames upright, encode MP4s browsers play.

Everything goes through PyAV (`av`, whose wheels bundle FFmpeg with libx264), in-process: no
shell, no command line built from a file name.
- `probe` opens only the container's headers and refuses a clip beyond the operator's limits
  (duration, frame count, size) before a single frame is decoded; then the first frame is
  decoded to confirm there is a picture and to read its rotation.
- `read_frames` yields RGB frames turned upright (phones store portrait clips sideways with a
  rotation in the display matrix) with their time stamps; transparent frames (animated GIFs,
  WebM with alpha) are composited on white, since MP4 has no transparency.
- `VideoWriter` encodes H.264 (yuv420p, the one pixel format every browser decodes) at the
  source's own time stamps, so frame rate, variable rate and length are kept; an odd width or
  height is padded by one edge pixel (H.264 in 4:2:0 needs even sizes; no multiple of 16 forced).
- `finish_clip` puts the soundtrack back: copied as it is where MP4 and browsers take it (AAC,
  MP3), re-encoded to AAC otherwise (Opus/Vorbis from WebM, PCM from MOV), cut to the video's length.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from studio.errors import InputError

READABLE = "MP4, MOV, WebM, MKV or an animated GIF"
COPYABLE_AUDIO = {"aac", "mp3"}  # played by every browser from an MP4 as they are
ALPHA_FORMATS = {"pal8", "rgba", "bgra", "argb", "abgr", "yuva420p", "yuva444p", "ya8"}
DEFAULT_FPS = 25.0  # for the rare stream that declares no rate at all
GIF_MAX_SIDE = 480  # GIFs are for sharing: smaller keeps them a sensible size


@dataclass(frozen=True)
class VideoLimits:
    max_seconds: float
    max_frames: int
    max_side: int


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as displayed (after rotation)
    height: int
    fps: float  # average frame rate
    frames: int  # from the header, or estimated from duration x rate where the header has none
    seconds: float
    rotation: int  # counter-clockwise degrees the stored picture is turned by to display it
    has_audio: bool
    audio_codec: str | None
    container: str
    has_alpha: bool = False

    def describe(self) -> str:
        sound = f"sound ({self.audio_codec})" if self.has_audio else "no sound"
        turned = f", turned {self.rotation}°" if self.rotation else ""
        return (f"{self.width}x{self.height} px, {self.frames} frames at {self.fps:.3g} fps, "
                f"{self.seconds:.2f} s, {sound}{turned}")


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray  # HxWx3 uint8, upright
    time: float  # seconds from the clip's start


def _duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds:.3g} s"


def _open(path: Path):
    import av

    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise InputError(f"That file is not a video the studio can read (use {READABLE}).") from None


def _video_stream(container):
    if not container.streams.video:
        if container.streams.audio:
            raise InputError("That file has sound but no picture; choose a video.")
        if not container.streams:  # a container whose only track is empty (FFmpeg drops it)
            raise InputError("That video has no frames to restyle.")
        raise InputError(f"That file has no video track (use {READABLE}).")
    return container.streams.video[0]


def _rate(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) < 1000:
            return float(rate)
    return DEFAULT_FPS


def _header_seconds(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return 0.0


def probe(path: str | os.PathLike, limits: VideoLimits) -> VideoInfo:
    """What the clip is, from its headers; refused beyond `limits` before any frame is decoded."""
    path = Path(path)
    if not path.is_file():
        raise InputError("That video file is missing; upload it again.")
    with _open(path) as container:
        stream = _video_stream(container)
        fps = _rate(stream)
        seconds = _header_seconds(container, stream)
        frames = int(stream.frames or 0) or round(seconds * fps)
        width, height = stream.codec_context.width, stream.codec_context.height
        if seconds > limits.max_seconds:
            raise InputError(f"That video is {_duration_text(seconds)} long; this studio restyles clips of up to "
                             f"{_duration_text(limits.max_seconds)}. Trim it first.")
        if frames > limits.max_frames:
            raise InputError(f"That video has {frames:,} frames; this studio restyles up to {limits.max_frames:,} "
                             "at a time. Trim it or lower its frame rate first.")
        if max(width, height) > limits.max_side:
            raise InputError(f"That video is {width}x{height} px; this studio takes videos up to {limits.max_side} px "
                             "on the longest side.")
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_codec = audio.codec_context.name if audio is not None else None
        # The first frame: proof there is a picture, and its rotation (kept in per-frame side data).
        first = _first_frame(container, stream)
        rotation = _rotation(first)
        if width <= 0 or height <= 0:
            width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        container_name = container.format.name
        has_alpha = _transparent(first)
    if frames <= 0:
        frames = 1  # a single picture with no declared length: at least the frame just decoded
    return VideoInfo(width=width, height=height, fps=fps, frames=frames, seconds=seconds or frames / fps,
                     rotation=rotation, has_audio=audio is not None, audio_codec=audio_codec,
                     container=container_name, has_alpha=has_alpha)


def _first_frame(container, stream):
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError:
        raise InputError("That video's frames cannot be decoded; the file is damaged or cut short.") from None
    raise InputError("That video has no frames to restyle.")


def _transparent(frame) -> bool:
    """True when the frame has see-through pixels, not merely a pixel format with room for them (FFmpeg
    decodes every GIF to BGRA, opaque or not)."""
    if frame.format.name not in ALPHA_FORMATS:
        return False
    return bool((frame.to_ndarray(format="rgba")[..., 3] < 255).any())


def _rotation(frame) -> int:
    try:
        degrees = frame.rotation or 0
    except (AttributeError, ValueError):
        degrees = 0
    return int(round(degrees / 90.0)) % 4 * 90


def _upright(frame) -> np.ndarray:
    """The frame as HxWx3 RGB, composited on white if it has transparency, turned upright."""
    if frame.format.name in ALPHA_FORMATS:
        rgba = frame.to_ndarray(format="rgba").astype(np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = (rgba[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    else:
        rgb = frame.to_ndarray(format="rgb24")
    turns = _rotation(frame) // 90
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def read_frames(path: str | os.PathLike, info: VideoInfo) -> Iterator[Frame]:
    """Every frame, upright, with its time from the clip's start; probe() the file first."""
    import av

    with _open(Path(path)) as container:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        start: float | None = None
        last = -math.inf
        index = 0
        try:
            for frame in container.decode(stream):
                if index >= info.frames * 2 + 16:
                    break  # the header understated the length: never decode far beyond what was checked
                stamp = frame.time if frame.time is not None else index / info.fps
                start = stamp if start is None else start
                stamp -= start
                if stamp <= last:  # missing or repeated time stamps: fall back to the frame rate
                    stamp = last + 1.0 / info.fps
                last = stamp
                index += 1
                yield Frame(_upright(frame), stamp)
        except av.error.FFmpegError:
            if index == 0:
                raise InputError("That video's frames cannot be decoded; the file is damaged.") from None
            # A clip cut short mid-frame keeps the frames before the damage.


def even_pad(rgb: np.ndarray) -> np.ndarray:
    """Pad an odd width or height by one edge pixel: 4:2:0 H.264 needs even sizes."""
    height, width = rgb.shape[:2]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return rgb


class VideoWriter:
    """H.264 MP4 (yuv420p, even size) written frame by frame at the given time stamps."""

    TICKS = 90_000  # the usual MPEG clock: fine enough for any frame rate

    def __init__(self, path: str | os.PathLike, fps: float, quality: int = 20):
        import av

        self.path = Path(path)
        self.fps = fps
        self._container = av.open(str(self.path), mode="w", format="mp4")
        self._stream = None
        self._quality = quality
        self._last_tick = -1
        self.frames = 0
        self.last_time = 0.0

    def _start(self, width: int, height: int) -> None:
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, self.TICKS)
        stream.codec_context.time_base = Fraction(1, self.TICKS)
        # No B-frames: with them x264 derives decode times from earlier frames' time stamps, and at a
        # variable rate the MP4's track then ends at the last decode time (0.86 s for a 1.3 s clip), not
        # at the last frame. Without them every sample's length is the gap to the next frame.
        stream.options = {"crf": str(self._quality), "preset": "veryfast", "bf": "0"}
        self._stream = stream

    def write(self, rgb: np.ndarray, time: float) -> None:
        import av

        rgb = even_pad(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))
        if self._stream is None:
            self._start(rgb.shape[1], rgb.shape[0])
        tick = max(round(time * self.TICKS), self._last_tick + 1)
        self._last_tick = tick
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = tick
        frame.time_base = Fraction(1, self.TICKS)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1
        self.last_time = time

    def close(self) -> None:
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken file: it is deleted next
            self._container.close()
        self.path.unlink(missing_ok=True)


def finish_clip(video: Path, source: Path | None, out: Path, seconds: float) -> None:
    """`video` (the picture) with `source`'s soundtrack, cut to `seconds`, as the MP4 `out`.
    Without a source soundtrack the picture is remuxed as it is (fast-start for streaming)."""
    import av

    with av.open(str(video)) as picture, av.open(str(out), mode="w", format="mp4",
                                                   options={"movflags": "+faststart"}) as output:
        in_video = picture.streams.video[0]
        out_video = output.add_stream_from_template(in_video)
        sound = av.open(str(source), metadata_errors="ignore") if source is not None else None
        try:
            in_audio = sound.streams.audio[0] if sound is not None and sound.streams.audio else None
            out_audio, encoder_needed = None, False
            if in_audio is not None:
                encoder_needed = in_audio.codec_context.name not in COPYABLE_AUDIO
                if encoder_needed:
                    rate = in_audio.codec_context.sample_rate or 44_100
                    out_audio = output.add_stream("aac", rate=rate)
                    out_audio.layout = "stereo" if (in_audio.codec_context.channels or 2) > 1 else "mono"
                else:
                    out_audio = output.add_stream_from_template(in_audio)
            _copy_video(picture, in_video, output, out_video, seconds)
            if in_audio is not None:
                _copy_audio(sound, in_audio, output, out_audio, encoder_needed, seconds)
        finally:
            if sound is not None:
                sound.close()


def _copy_video(picture, in_video, output, out_video, seconds: float) -> None:
    """The picture's packets as they are, the last one lasting until `seconds`: an MP4 track ends where
    its last sample does, and an encoder can only guess how long the last frame is shown."""
    held = None
    for packet in picture.demux(in_video):
        if packet.dts is None:
            continue
        if held is not None:
            output.mux(held)
        packet.stream = out_video
        held = packet
    if held is None:
        return
    if held.pts is not None and held.time_base:
        end = round(seconds / held.time_base)
        if end > held.pts:
            held.duration = end - held.pts
    output.mux(held)


def _copy_audio(sound, in_audio, output, out_audio, encode: bool, seconds: float) -> None:
    import av

    start = float(in_audio.start_time * in_audio.time_base) if in_audio.start_time else 0.0
    if not encode:
        for packet in sound.demux(in_audio):
            if packet.dts is None or packet.pts is None:
                continue
            if float(packet.pts * in_audio.time_base) - start >= seconds:
                break
            packet.pts -= round(start / in_audio.time_base)
            packet.dts -= round(start / in_audio.time_base)
            packet.stream = out_audio
            output.mux(packet)
        return
    rate = out_audio.codec_context.sample_rate
    resampler = av.AudioResampler(format="fltp", layout=out_audio.layout.name, rate=rate)
    limit = round(seconds * rate)
    written = 0
    for frame in sound.decode(in_audio):
        for piece in resampler.resample(frame):
            keep = min(piece.samples, limit - written)
            if keep <= 0:
                break
            if keep < piece.samples:
                array = piece.to_ndarray()[:, :keep]
                piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format="fltp",
                                                   layout=out_audio.layout.name)
                piece.sample_rate = rate
            piece.pts = written
            piece.time_base = Fraction(1, rate)
            written += keep
            for packet in out_audio.encode(piece):
                output.mux(packet)
        if written >= limit:
            break
    for packet in out_audio.encode(None):
        output.mux(packet)


def write_gif_from_clip(clip: Path, gif: Path, max_side: int = GIF_MAX_SIDE) -> None:
    """A looping GIF of a finished clip, at most `max_side` px (GIFs are for sharing, not archiving)."""
    from PIL import Image

    from studio.media.animation import write_gif

    info = probe(clip, VideoLimits(max_seconds=math.inf, max_frames=10**9, max_side=10**6))
    frames = []
    for frame in read_frames(clip, info):
        image = Image.fromarray(frame.rgb)
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        frames.append(image)
    write_gif(frames, gif, min(info.fps, 50.0))  # GIF delays come in 10 ms steps, at least 20 ms
