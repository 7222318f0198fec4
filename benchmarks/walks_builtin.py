"""Walks on the built-in models: style walk frames per second and pattern render times.

Prints, on this machine, the median of a few runs:
- style walk frames per second at 512 px, built-in styles (one network pass per frame) and
  style images (full-resolution tiles per frame);
- CPPN pattern render time at 512, 1024 and 2048 px, and pattern-walk frames per second at 384 px.

Run: `make bench` or `.venv/bin/python benchmarks/walks_builtin.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.backends.patterns import PatternBackend, PatternRequest  # noqa: E402
from studio.backends.style_walk import StyleWalkRequest, style_walk  # noqa: E402
from studio.backends.stylize import StyleBackend  # noqa: E402
from studio.media.images import LoadedImage, open_image  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    examples = ROOT / "assets" / "examples"
    styles = StyleBackend(ModelCache(1024))
    photo = open_image(examples / "coffee.jpg", 10**8)
    paintings = [LoadedImage(open_image(examples / name, 10**8).rgb) for name in ("astronaut.jpg", "rocket.jpg")]

    builtin = StyleWalkRequest(styles=(3, 19), frames_between=10, size=512)
    images = StyleWalkRequest(frames_between=10, size=512)
    style_walk(styles, photo, StyleWalkRequest(styles=(3, 19), frames_between=0, size=64))  # load the networks
    for name, request, keyframes in (("built-in styles", builtin, None), ("style images", images, paintings)):
        seconds = median_seconds(lambda r=request, k=keyframes: style_walk(styles, photo, r, k), args.repeats)
        print(f"style walk, {name:15s} 12 frames at 512 px: {seconds:6.2f} s  ({12 / seconds:5.1f} frames/s)")

    patterns = PatternBackend(max_side=4096)
    for side in (512, 1024, 2048):
        seconds = median_seconds(lambda s=side: patterns.render(PatternRequest(seed=5, width=s, height=s)),
                                 args.repeats)
        print(f"pattern picture {side}x{side}: {seconds:6.2f} s")
    walk = PatternRequest(seed=5, walk_to=9, frames=24, width=384, height=384)
    seconds = median_seconds(lambda: patterns.render(walk), 1)
    print(f"pattern walk, 24 frames at 384 px: {seconds:6.2f} s  ({24 / seconds:5.1f} frames/s)")


if __name__ == "__main__":
    main()
