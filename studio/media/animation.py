"""Animations people keep: GIF and MP4 files (with an optional soundtrack) and frame strips."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def _even(size: tuple[int, int]) -> tuple[int, int]:
    return size[0] - size[0] % 2, size[1] - size[1] % 2


def write_gif(frames: Sequence[Image.Image], path: str | os.PathLike, fps: float, loop: bool = True) -> None:
    """An animated GIF; each frame gets its own palette so colours stay true."""
    frames = [f.convert("RGB") for f in frames]
    duration_ms = max(20, round(1000 / fps))
    frames[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=duration_ms,
        loop=0 if loop else 1,
        optimize=False,
        disposal=1,
    )


def write_mp4(
    frames: Sequence[Image.Image],
    path: str | os.PathLike,
    fps: float,
    audio: str | os.PathLike | None = None,
) -> None:
    """An H.264 MP4 that plays everywhere (yuv420p, even size); `audio` is muxed in as AAC."""
    import imageio_ffmpeg

    width, height = _even(frames[0].size)
    path = Path(path)
    silent = path.with_name(path.stem + ".video.mp4") if audio else path
    writer = imageio_ffmpeg.write_frames(
        str(silent),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=2,
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart", "-f", "mp4"],  # the file may have a temporary name
    )
    writer.send(None)
    try:
        for frame in frames:
            rgb = frame.convert("RGB")
            if rgb.size != (width, height):
                rgb = rgb.crop((0, 0, width, height))
            writer.send(np.ascontiguousarray(np.asarray(rgb)))
    finally:
        writer.close()
    if audio:
        try:
            _mux_audio(silent, Path(audio), path)
        finally:
            silent.unlink(missing_ok=True)


def _mux_audio(video: Path, audio: Path, out: Path) -> None:
    import imageio_ffmpeg

    # Arguments are passed as a list, never through a shell.
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-i", str(video), "-i", str(audio),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-shortest",
        "-movflags", "+faststart", "-f", "mp4", str(out),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=600)


def frame_strip(frames: Sequence[Image.Image], height: int = 128, max_frames: int = 12) -> Image.Image:
    """A row of evenly chosen frames, to see a whole walk at a glance."""
    count = len(frames)
    picks = [frames[round(i * (count - 1) / max(1, min(count, max_frames) - 1))] for i in range(min(count, max_frames))]
    thumbs = []
    for frame in picks:
        scale = height / frame.height
        thumbs.append(frame.convert("RGB").resize((max(1, round(frame.width * scale)), height), Image.Resampling.LANCZOS))
    gap = 4
    strip = Image.new("RGB", (sum(t.width for t in thumbs) + gap * (len(thumbs) - 1), height), "white")
    x = 0
    for thumb in thumbs:
        strip.paste(thumb, (x, 0))
        x += thumb.width + gap
    return strip
