"""Decoding one picture's latents: each family's full VAE against the tiny decoder that fits it, on this CPU.

The studio decodes with a tiny decoder (TAESD for SD 1.x/2.x, TAESDXL for SDXL, TAESD3 for SD 3.x, TAEF1 for
FLUX.1) unless the form asks for the full VAE. Both are built from their published configs with random
weights (speed does not depend on weight values, so no hub download is needed), in the dtype the studio runs
diffusion in here (studio.backends.diffusion.pipelines.compute_dtype). Two shapes cover the four families:
SD 1.x/2.x and SDXL share the 4-channel VAE (they differ only in scaling), SD 3.x and FLUX.1 the 16-channel one
(no quant convs); TAESD and its kin are one architecture with 4 or 16 latent channels.

  full VAE        AutoencoderKL.decode, as the pipelines call it
  tiny, torch     AutoencoderTiny.decode
  tiny, OpenVINO  the same decoder through OpenVINO, as the studio runs it in fp32 on a CPU where OpenVINO is
                  installed (in bf16, on a CPU with native bf16, torch runs it: "not used")

Each decode is timed --runs times after one warm-up; the median counts.

    nice -n 5 python benchmarks/tiny_decoders.py [--sizes 512,1024] [--runs 3] [--only 4ch|16ch] [--dtype fp32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The VAE of stabilityai/sd-turbo and stabilityai/sdxl-turbo (vae/config.json), 4 latent channels.
VAE_4CH = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
               down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
               layers_per_block=2, norm_num_groups=32, sample_size=512)
# The VAE of stabilityai/stable-diffusion-3.5-medium and black-forest-labs/FLUX.1-schnell: 16 channels, no quant convs.
VAE_16CH = dict(VAE_4CH, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False, sample_size=1024)
SHAPES = {"4ch": ("SD 1.x/2.x, SDXL", VAE_4CH, "TAESD, TAESDXL"), "16ch": ("SD 3.x, FLUX.1", VAE_16CH, "TAESD3, TAEF1")}


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024", help="picture sides in px, comma-separated (multiples of 8)")
    parser.add_argument("--runs", type=int, default=3, help="timed decodes of each, after one warm-up")
    parser.add_argument("--only", choices=sorted(SHAPES), help="one latent shape only")
    parser.add_argument("--dtype", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto: what the studio runs here (bf16 on a CPU with native bf16, else fp32)")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(side) for side in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes takes numbers such as 512,1024, not {args.sizes!r}")
    if any(side < 64 or side % 8 for side in args.sizes):
        parser.error("each size must be a multiple of 8 px, at least 64")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def median_decode_seconds(decode, latents, runs: int) -> float:
    import torch

    with torch.no_grad():
        decode(latents)  # warm-up: first-call allocations and OpenVINO's compiled shapes
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            decode(latents)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(shape: str, sizes: list[int], runs: int, dtype) -> list[tuple[str, int, float, float, float | None]]:
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny

    _families, vae_config, _tiny_names = SHAPES[shape]
    channels = vae_config["latent_channels"]
    torch.manual_seed(0)
    full = AutoencoderKL(**vae_config).to(dtype).eval()
    tiny = AutoencoderTiny(latent_channels=channels).to(dtype).eval()
    tiny_openvino = None
    from studio.backends.diffusion import openvino_unet

    if dtype == torch.float32 and openvino_unet.available():  # as DiffusionBackend.uses_openvino decides
        tiny_openvino = AutoencoderTiny(latent_channels=channels).eval()
        tiny_openvino.load_state_dict(tiny.state_dict())
        openvino_unet.accelerate_taesd(tiny_openvino)
    rows = []
    for side in sizes:
        latents = torch.randn(1, channels, side // 8, side // 8, dtype=dtype)
        full_s = median_decode_seconds(full.decode, latents, runs)
        tiny_s = median_decode_seconds(tiny.decode, latents, runs)
        openvino_s = median_decode_seconds(tiny_openvino.decode, latents, runs) if tiny_openvino else None
        rows.append((shape, side, full_s, tiny_s, openvino_s))
        print(f"  {shape} {side} px: full {full_s:.2f} s, tiny {tiny_s:.3f} s"
              + (f", tiny on OpenVINO {openvino_s:.3f} s" if openvino_s is not None else ""), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    import torch
    from diffusers.utils import logging as diffusers_logging

    from studio.backends.diffusion.pipelines import compute_dtype, dtype_name

    diffusers_logging.set_verbosity_error()  # random-weight models cast with .to(): its advice does not apply
    dtype = {"auto": compute_dtype("cpu"), "fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {dtype_name(dtype)}", flush=True)
    rows = [row for shape in ([args.only] if args.only else list(SHAPES)) for row in measure(shape, args.sizes,
                                                                                           args.runs, dtype)]
    print("\n| latents | families | tiny decoders | size | full VAE s | tiny s (x) | tiny on OpenVINO s (x) |")
    print("|---|---|---|---|---|---|---|")
    for shape, side, full_s, tiny_s, openvino_s in rows:
        families, _config, tiny_names = SHAPES[shape]
        openvino = f"{openvino_s:.3f} ({full_s / openvino_s:.0f}x)" if openvino_s is not None else "not used"
        print(f"| {shape} | {families} | {tiny_names} | {side} px | {full_s:.2f} | {tiny_s:.3f} "
              f"({full_s / tiny_s:.0f}x) | {openvino} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
