"""The live style mirror: frames per second at its default size (320 px), built-in style and style picture,
with the temporal blend on and off, on webcam-sized frames (640x480) of a still scene with sensor noise.

Run: `make bench` or `.venv/bin/python benchmarks/live_style.py [--frames N]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.backends.live_style import LIVE_SIDE, LIVE_TEMPORAL, LiveChoice, LiveStyler  # noqa: E402
from studio.backends.stylize import StyleBackend  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402
from tests import video_clips as clips  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    backend = StyleBackend(ModelCache(1024))
    scene = np.asarray(Image.fromarray(clips.photo("china.jpg", 640)).crop((0, 0, 640, 480)))
    rng = np.random.default_rng(0)
    frames = [np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8) for _ in range(args.frames)]
    painting = Image.fromarray(clips.photo("flower.jpg", 300))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Live mirror at {LIVE_SIDE} px from 640x480 frames, {args.frames} frames each; load average {load:.1f} "
          f"on {os.cpu_count()} CPUs")
    for label, choice, image in (("built-in 5", LiveChoice(style=5), None),
                                 ("style picture", LiveChoice(style_image_key="flower"), painting)):
        for temporal in (0.0, LIVE_TEMPORAL):
            mirror = LiveStyler(backend)
            picked = LiveChoice(choice.style, choice.style_image_key, temporal=temporal)
            mirror.frame(frames[0], picked, image)  # warm
            started = time.perf_counter()
            for frame in frames:
                mirror.frame(frame, picked, image)
            fps = len(frames) / (time.perf_counter() - started)
            print(f"{label:14s} temporal {temporal:.1f}: {fps:5.1f} frames a second")


if __name__ == "__main__":
    main()
