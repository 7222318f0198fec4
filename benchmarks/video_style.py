"""Video restyling: flicker (warping error) and speed, the temporal blend against frame by frame.

Prints, measured side by side in one run:
- the warping error (Lai et al. 2018: the masked mean squared difference, 0..1 colour scale, between
  each output frame and the next output frame warped back) of the built-in style restyled frame by
  frame and with the studio's temporal blend, on clips with known motion made from real photos
  (a pan, a zoom, a moving object; each with sensor noise), and on one clip scored with flow
  estimated from the frames themselves (DIS + forward-backward consistency) instead of the true
  motion; how many times lower the blend's error is, and its drift from the frame-by-frame result
  (mean absolute difference, 0-255) - how much the blend moves away from the plain restyling;
- seconds per frame for a 640x360 clip with a built-in style and with a style picture, temporal
  against frame by frame, and the temporal work's share (flow and blending, timed inside the run).

Run: `make bench` or `.venv/bin/python benchmarks/video_style.py [--frames N] [--temporal T] [--repeats R]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.backends.stylize import StyleRequest  # noqa: E402
from studio.backends.video_style import DEFAULT_TEMPORAL, VideoStyleRequest  # noqa: E402
from studio.media import flow  # noqa: E402
from studio.media.images import LoadedImage  # noqa: E402
from studio.services import Studio  # noqa: E402
from studio.settings import Settings  # noqa: E402
from tests import video_clips as clips  # noqa: E402

QUALITY_SIZE = (256, 144)
SPEED_SIZE = (640, 360)


def estimated_motion(motion: clips.KnownMotion) -> clips.KnownMotion:
    """The same frames with flow and masks estimated from them, as when the true motion is unknown."""
    estimate = flow.FlowEstimator()
    grays = [flow.gray(f) for f in motion.frames]
    flows, masks = [], []
    for a, b in zip(grays, grays[1:], strict=False):
        forward, backward = estimate(a, b), estimate(b, a)
        flows.append(forward)
        masks.append(flow.consistent(forward, backward))  # pixels of frame t whose motion holds both ways
    return clips.KnownMotion(motion.name + " (estimated flow)", motion.frames, flows, masks)


def run(studio: Studio, path: Path, temporal: float, style_image: LoadedImage | None = None, style: int = 7):
    request = VideoStyleRequest(StyleRequest(style=style, size=None), temporal=temporal)
    outcome = studio.restyle_video(path, request, style_image, keep=False)
    return outcome.result, clips.decoded(outcome.video)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="frames per quality clip (default 16)")
    parser.add_argument("--speed-frames", type=int, default=8, help="frames of the 640x360 clip (default 8)")
    parser.add_argument("--temporal", type=float, default=DEFAULT_TEMPORAL)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each speed case (median)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="video-bench-"))
    studio = Studio(Settings(data_dir=work / "data"))
    frames = args.frames
    size = QUALITY_SIZE
    made = [
        clips.with_noise(clips.pan(size=size, frames=frames, step=(3, 1), scale_width=480)),
        clips.with_noise(clips.zoom(size=size, frames=frames, rate=1.025, scale_width=480)),
        clips.with_noise(clips.moving_object(size=size, frames=frames, step=(5, 2), side=56)),
    ]
    made.append(estimated_motion(clips.with_noise(clips.pan(size=size, frames=frames, step=(2, 1),
                                                            source="flower.jpg", scale_width=480), seed=3)))
    print(f"Warping error, built-in style 7, {size[0]}x{size[1]} px, {frames} frames at 12 fps, "
          f"temporal strength {args.temporal} (noise: sigma 6/255 per frame)")
    print(f"{'clip':34s} {'frame by frame':>15s} {'temporal':>10s} {'lower by':>9s} {'drift':>7s}")
    ratios = []
    for index, motion in enumerate(made):
        path = clips.write_clip(work / f"clip{index}.mp4", motion.frames, fps=12)
        _, alone = run(studio, path, 0.0)
        _, blended = run(studio, path, args.temporal)
        error_alone = flow.clip_warping_error(alone, motion.flows, motion.masks)
        error_blended = flow.clip_warping_error(blended, motion.flows, motion.masks)
        drift = float(np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(alone, blended, strict=True)]))
        ratios.append(error_alone / error_blended)
        print(f"{motion.name:34s} {error_alone:15.5f} {error_blended:10.5f} {ratios[-1]:8.1f}x {drift:7.2f}")
    print(f"lowest reduction {min(ratios):.1f}x (target >= 3x)")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nSpeed, {SPEED_SIZE[0]}x{SPEED_SIZE[1]} px clip, {args.speed_frames} frames (decode, restyle, "
          f"encode included), median of {args.repeats} interleaved runs; load average {load:.1f} on "
          f"{os.cpu_count()} CPUs")
    speed = clips.with_noise(clips.pan(size=SPEED_SIZE, frames=args.speed_frames, step=(4, 1), scale_width=900))
    path = clips.write_clip(work / "speed.mp4", speed.frames, fps=24)
    painting = LoadedImage(clips_image("flower.jpg"))
    print(f"{'style':18s} {'frame by frame':>15s} {'temporal':>10s} {'added':>8s} {'flow+blend share':>17s}")
    for label, image in (("built-in 7", None), ("style picture", painting)):
        run(studio, path, 0.0, image)  # warm: models loaded, caches filled
        alone, blended, shares = [], [], []
        for _ in range(args.repeats):  # interleaved, so a busy machine slows both alike
            result, _ = run(studio, path, 0.0, image)
            alone.append(result.seconds / result.frames)
            result, _ = run(studio, path, args.temporal, image)
            blended.append(result.seconds / result.frames)
            shares.append(result.temporal_seconds / max(result.style_seconds, 1e-9))
        per_alone, per_blended = statistics.median(alone), statistics.median(blended)
        print(f"{label:18s} {per_alone:13.3f} s {per_blended:8.3f} s {100 * (per_blended / per_alone - 1):+7.0f}% "
              f"{100 * statistics.median(shares):+16.0f}%")
    print("('added': whole run, temporal against frame by frame; 'flow+blend share': the flow and blending "
          "time over the network's time in the same run; target <= +30%)")


def clips_image(name: str):
    from PIL import Image

    return Image.fromarray(clips.photo(name, 400))


if __name__ == "__main__":
    main()
