"""Real-ESRGAN x4plus on a CPU: the studio's paths against the `ncnn` wheel's own CPU path.

Prints, measured side by side in one run on the same picture (a real photo, resized):
- seconds per picture (median of interleaved repeats, after one warm-up each) for: the studio as shipped
  (the ncnn files read as plain arrays into spandrel's RRDBNet, on torch), the studio's optional ncnn engine,
  the same network converted to OpenVINO (float32), and the ncnn wheel called directly on the whole picture;
  each one's speed against the ncnn wheel's;
- the largest difference between each path's pixels and ncnn's (0-255);
- peak memory (RSS) of a whole tiled 1024 px -> 4096 px run in a fresh process (resource.getrusage).

The issue asks for 512 px -> 2048 px; on a busy 2-core machine ncnn alone takes minutes per picture there,
so `--size` picks a smaller side and the output says which size was used.

Run: `make bench` or `.venv/bin/python benchmarks/upscale_speed.py [--size 512] [--repeats 3]
[--memory-size 1024] [--memory-engine torch|ncnn] [--tile 256] [--no-openvino]`.
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


def openvino_runner(network_module, side: int):
    """The torch network converted to OpenVINO for one input size, float32 inference."""
    import openvino as ov
    import torch

    with torch.no_grad():
        model = ov.convert_model(network_module, example_input=torch.zeros(1, 3, side, side))
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def run(pixels: np.ndarray) -> np.ndarray:
        return compiled(np.ascontiguousarray(pixels.transpose(2, 0, 1))[None])[0][0].transpose(1, 2, 0)

    return run


def torch_module():
    """x4plus as a torch module, built the way the studio builds it."""
    from studio.backends import ncnn_weights
    from studio.backends.spandrel_import import architectures

    entry = Catalog(BUILTIN_ENTRIES).get(MODEL)
    esrgan, _ = architectures()
    module = esrgan(num_blocks=23).eval()
    ncnn_weights.load_into(module, builtin_file(entry, f"{PACKAGE_DIR}{STEM}.param"),
                           builtin_file(entry, f"{PACKAGE_DIR}{STEM}.bin"))
    return module


def peak_memory(side: int, tile: int, engine: str) -> dict:
    """Upscale a side x side picture in a fresh process; its peak RSS and time."""
    code = (
        "import json, resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from benchmarks.upscale_speed import picture\n"
        "from studio.backends.upscale import UpscaleBackend, run_tiled\n"
        "from studio.runtime import ModelCache\n"
        f"pixels = picture({side})\n"
        f"network = UpscaleBackend(ModelCache(4096), 'cpu', engine={engine!r}).network({MODEL!r}, 4)\n"
        "started = time.perf_counter()\n"
        f"out = run_tiled(network, pixels, {tile})\n"
        "print(json.dumps({'seconds': time.perf_counter() - started, 'shape': list(out.shape), 'engine': network.engine,\n"
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
    parser.add_argument("--memory-engine", default="torch", choices=("torch", "ncnn"))
    parser.add_argument("--no-openvino", action="store_true", help="leave out the OpenVINO conversion")
    args = parser.parse_args()

    import torch

    pixels = picture(args.size)
    shipped = UpscaleBackend(ModelCache(4096), "cpu").network(MODEL, 4)
    on_ncnn = UpscaleBackend(ModelCache(4096), "cpu", engine="ncnn").network(MODEL, 4)
    whole = max(args.size, 64)  # every path takes the picture whole (one tile), as the ncnn call does
    runs = {f"studio as shipped ({shipped.engine}, ncnn weights as arrays)": lambda: run_tiled(shipped, pixels, whole),
            "studio's optional ncnn engine": lambda: run_tiled(on_ncnn, pixels, whole)}
    if not args.no_openvino:
        started = time.perf_counter()
        openvino = openvino_runner(torch_module(), args.size)
        print(f"(OpenVINO conversion and compilation: {time.perf_counter() - started:.1f} s, once)")
        runs["same network on OpenVINO, float32"] = lambda: openvino(pixels)
    ncnn = ncnn_runner(args.threads)
    runs[f"ncnn wheel directly, {args.threads} threads"] = lambda: ncnn(pixels)
    outputs = {name: run() for name, run in runs.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    reference = to_bytes(list(outputs.values())[-1])
    print(f"Real-ESRGAN x4plus, {args.size} px -> {args.size * 4} px (astronaut.jpg), torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads, median of {args.repeats}:")
    medians = {name: statistics.median(t) for name, t in times.items()}
    ncnn_s = list(medians.values())[-1]
    for name, seconds in medians.items():
        diff = int(np.abs(to_bytes(outputs[name]) - reference).max())
        print(f"  {name:<44} {seconds:8.2f} s  {ncnn_s / seconds:5.2f}x ncnn's speed  max diff {diff}/255")
    print("  (target: the studio >= 3x the ncnn wheel's speed)")
    if args.memory_size:
        report = peak_memory(args.memory_size, args.tile, args.memory_engine)
        print(f"Tiled {args.memory_size} px -> {args.memory_size * 4} px on {report['engine']}, tile {args.tile}: "
              f"peak RSS {report['max_rss_mb']:.0f} MB (target < 3072 MB), {report['seconds']:.1f} s")


if __name__ == "__main__":
    main()
