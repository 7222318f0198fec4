"""Hires fix at 2x on SD-Turbo's real-size architecture: the second pass's time against the first's.

SD-Turbo's UNet, VAE and text tower and TAESD are built with random weights (image_speed.py; speed
does not depend on weight values) and run through the studio's own backend as the studio runs it on
a CPU (UNet and TAESD decoder on OpenVINO where installed, TAESD decode, model kept warm). For each
hires upscaler it times one picture end to end and splits it at the first pass's last step
(reported through the progress callback):

  first pass:  text encoding + the first pass's steps at --size px
  second pass: the upscale (latents, or TAESD decode + Lanczos + TAESD encode) + the hires steps at
               2 x --size px + the TAESD decode of the big picture

A plain text-to-image picture at --size px (steps and decode) is timed beside them. A1111's hires fix
starts at the model's own size, 512 px for SD-Turbo, so the second pass runs at 1024 px; on a busy
2-core machine `--size 256` gives the same comparison at a quarter of the pixels.

    nice -n 5 python benchmarks/hires_speed.py [--size 512] [--steps 1] [--hires-steps 1] [--runs 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from image_speed import DECODER_ID, MODEL_ID, PROMPT, build_random_sd_turbo, studio_backend  # noqa: E402

UPSCALERS = ("Latent", "Lanczos")


def timed(backend, request) -> tuple[float, float, tuple[int, int]]:
    """(first pass s, rest s, picture size): the split is the moment the first pass's last step reports."""
    first_steps = request.steps_run
    marks: dict[str, float] = {}

    def progress(done: int, total: int, preview=None) -> None:
        if done == first_steps and "first" not in marks:
            marks["first"] = time.perf_counter()

    started = time.perf_counter()
    result = backend.generate(request, progress=progress)
    ended = time.perf_counter()
    split = marks.get("first", ended)
    return split - started, ended - split, result.images[0].size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="first pass side, px (default 512, SD-Turbo's own)")
    parser.add_argument("--steps", type=int, default=1, help="first pass steps (default 1)")
    parser.add_argument("--hires-steps", type=int, default=1, help="second pass steps (default 1)")
    parser.add_argument("--strength", type=float, default=0.5, help="second pass denoising strength (default 0.5)")
    parser.add_argument("--runs", type=int, default=1, help="timed pictures per case after a warm-up (median shown)")
    parser.add_argument("--keep", type=Path, help="build the random models here once and reuse them")
    args = parser.parse_args()

    import torch

    from studio.backends.diffusion import ImageRequest

    folder = args.keep or Path(tempfile.mkdtemp(prefix="hires-bench-"))
    try:
        if not (folder / "taesd" / "config.json").exists():
            print(f"building SD-Turbo-sized random models in {folder} ...", flush=True)
            build_random_sd_turbo(folder)
        backend = studio_backend(folder)
        plain = ImageRequest(PROMPT, model=MODEL_ID, decoder=DECODER_ID, steps=args.steps, guidance=0.0,
                             width=args.size, height=args.size, seed=0)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; first pass {args.size} px, "
              f"{args.steps} step(s); hires fix 2x to {2 * args.size} px, {args.hires_steps} step(s) at strength "
              f"{args.strength:g}", flush=True)
        started = time.perf_counter()
        backend.generate(plain)  # loads the model (and converts its UNet for OpenVINO) and warms up
        print(f"warm-up (load, conversion, first picture): {time.perf_counter() - started:.1f} s; engine "
              f"{backend.load(MODEL_ID).engine} {backend.load(MODEL_ID).pipe.unet.dtype}", flush=True)

        cases = {"plain": plain}
        for upscaler in UPSCALERS:
            cases[upscaler] = replace(plain, hires_scale=2.0, hires_upscaler=upscaler, hires_steps=args.hires_steps,
                                      hires_strength=args.strength)
        for name, request in cases.items():  # each case warmed once at its sizes (OpenVINO compiles per shape)
            if name != "plain":
                backend.generate(request)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, request in cases.items():  # taking turns, so a busy spell hits every case alike
                first, rest, size = timed(backend, request)
                times[name].append((first, rest))
                print(f"  {name:8} {size[0]}x{size[1]} px: first pass {first:6.2f} s, then {rest:6.2f} s", flush=True)

        plain_total = statistics.median(f + r for f, r in times["plain"])
        print(f"\nplain text to image, {args.size} px end to end: {plain_total:.2f} s (median of {args.runs})")
        for upscaler in UPSCALERS:
            first = statistics.median(f for f, _ in times[upscaler])
            second = statistics.median(r for _, r in times[upscaler])
            print(f"hires fix 2x, {upscaler:7}: first pass {first:6.2f} s, second pass {second:6.2f} s "
                  f"= {second / first:.1f}x the first pass; whole picture {first + second:.2f} s "
                  f"= {(first + second) / plain_total:.1f}x a plain picture")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
