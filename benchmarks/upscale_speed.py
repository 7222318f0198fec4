"""Real-ESRGAN x4plus: the studio's path (ncnn weights read into torch, tiled) against the `ncnn` wheel's CPU path.

Prints, measured side by side in one run on the same picture (a crop of a real photo):
- seconds per picture for both (median of interleaved repeats, after one warm-up each), and the ratio;
- the largest difference between their pixels (0-255);
- peak memory (RSS) of a whole tiled 1024 px -> 4096 px run in a fresh process (resource.getrusage).

The issue asks for 512 px -> 2048 px; on a busy 2-core machine ncnn alone takes minutes per picture there,
so `--size` picks a smaller side and the output says which size was used.

Run: `make bench` or `.venv/bin/python benchmarks/upscale_speed.py [--size 512] [--repeats 3]
[--memory-size 1024] [--tile 256]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from studio.backends.upscale import DEFAULT_TILE, PACKAGE_DIR, UpscaleBackend, run_tiled  # noqa: E402
from studio.catalog import BUILTIN_ENTRIES, Catalog, builtin_file  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402

MODEL = "realesrgan-x4plus"
STEM = "REALESRGAN_X4PLUS_UP4X"


def picture(side: int) -> np.ndarray:
    """A real photo (the bundled astronaut), resized to side x side, as floats in [0, 1]."""
    with Image.open(ROOT / "assets" / "examples" / "astronaut.jpg") as image:
        return np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS), np.float32) / 255.0


def ncnn_runner(threads: int):
    import ncnn

    entry = Catalog(BUILTIN_ENTRIES).get(MODEL)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    net.load_param(str(builtin_file(entry, f"{PACKAGE_DIR}{STEM}.param")))
    net.load_model(str(builtin_file(entry, f"{PACKAGE_DIR}{STEM}.bin")))

    def run(pixels: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(pixels.transpose(2, 0, 1))  # ncnn.Mat borrows this memory
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat(chw))
        _, out = extractor.extract("output")
        return np.array(out).copy().transpose(1, 2, 0)

    return run


def to_bytes(pixels: np.ndarray) -> np.ndarray:
    return (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.int16)


def peak_memory(side: int, tile: int) -> dict:
    """Upscale a side x side picture in a fresh process; its peak RSS and time."""
    code = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from benchmarks.upscale_speed import picture\n"
        "from studio.backends.upscale import UpscaleBackend, run_tiled\n"
        "from studio.runtime import ModelCache\n"
        f"pixels = picture({side})\n"
        f"network = UpscaleBackend(ModelCache(4096), 'cpu').network({MODEL!r}, 4)\n"
        "started = time.perf_counter()\n"
        f"out = run_tiled(network, pixels, {tile})\n"
        "print(json.dumps({'seconds': time.perf_counter() - started, 'shape': list(out.shape),\n"
        "                  'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["children_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="side of the speed test's picture in px (default 512)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="ncnn's threads (torch uses its own default)")
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, help="the studio's tile for the memory run")
    parser.add_argument("--memory-size", type=int, default=1024, help="side of the memory run's picture (0: skip)")
    args = parser.parse_args()

    import torch

    pixels = picture(args.size)
    network = UpscaleBackend(ModelCache(4096), "cpu").network(MODEL, 4)
    # The speed test runs the picture whole on both sides (one tile), as ncnn does.
    runs = {"studio (torch, ncnn weights as arrays)": lambda: run_tiled(network, pixels, max(args.size, 64)),
            f"ncnn wheel, CPU, {args.threads} threads": lambda p=ncnn_runner(args.threads): p(pixels)}
    outputs = {name: run() for name, run in runs.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    ours, theirs = (to_bytes(o) for o in outputs.values())
    print(f"Real-ESRGAN x4plus, {args.size} px -> {args.size * 4} px (astronaut.jpg), torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads, median of {args.repeats}:")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"  {name:<42} {seconds:8.2f} s")
    studio_s, ncnn_s = medians.values()
    print(f"  studio is {ncnn_s / studio_s:.2f}x the ncnn wheel's speed (target >= 3x)")
    print(f"  largest pixel difference studio vs ncnn: {int(np.abs(ours - theirs).max())}/255, "
          f"mean {float(np.abs(ours - theirs).mean()):.4f}")
    if args.memory_size:
        report = peak_memory(args.memory_size, args.tile)
        print(f"Tiled {args.memory_size} px -> {args.memory_size * 4} px, tile {args.tile}: "
              f"peak RSS {report['max_rss_mb']:.0f} MB (target < 3072 MB), {report['seconds']:.1f} s")


if __name__ == "__main__":
    main()
