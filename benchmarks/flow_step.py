"""One sampler step of SD 3.5 Medium and of FLUX.1 [schnell] at 512 px on this CPU.

Both transformers are built from their published configs with random weights (speed does not depend on
weight values, so no hub download is needed) in the dtype the studio runs diffusion in on this machine
(studio.backends.diffusion.pipelines.compute_dtype: bf16 where the CPU has native bf16, else fp32).
One step is one transformer call; the text encoders run once a picture and the VAE once at the end, so
they are not in it.

  SD 3.5 Medium  the whole transformer (24 joint blocks, 2.24 B parameters + a 0.23 B position table),
                 one call on a 64x64 latent (1024 image tokens), batch 2 (classifier-free guidance:
                 prompt and negative prompt), with 333 prompt tokens (77 CLIP + 256 T5).
  FLUX.1 [schnell]  its 12 B transformer does not fit this machine's memory in fp32 and hardly in bf16,
                 so the step is EXTRAPOLATED from blocks: one double-stream block (FluxTransformerBlock)
                 and one single-stream block (FluxSingleTransformerBlock) at the real width (3072 = 24
                 heads x 128), 1024 image tokens + 256 T5 tokens, batch 1 (schnell has no guidance), timed
                 on their own, and the rest (the embedders, the rotary position table, the final norm and
                 projection) timed as a FLUX transformer with no blocks. Step = 19 x double + 38 x single
                 + rest.

Each call is timed --runs times after one warm-up call; the median counts. One model is in memory at a
time (freed before the next is built), so the peak stays near SD 3.5 Medium's weights (about 5 GB in bf16,
10 GB in fp32). Peak RSS is the process's high-water mark so far.

    nice -n 5 python benchmarks/flow_step.py [--runs 3] [--size 512] [--only sd35|flux]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIP_TOKENS = 77
T5_TOKENS = 256  # studio.backends.diffusion.request.MAX_T5_TOKENS, both families' default
# stabilityai/stable-diffusion-3.5-medium, transformer/config.json.
SD35_MEDIUM = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                   num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                   pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=384,
                   dual_attention_layers=tuple(range(13)), qk_norm="rms_norm")
# black-forest-labs/FLUX.1-schnell, transformer/config.json.
FLUX_SCHNELL = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                    guidance_embeds=False, axes_dims_rope=(16, 56, 56))


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB


def median_seconds(module, runs: int, *args, **kwargs) -> tuple[float, list[float]]:
    """Median wall time of `module(*args, **kwargs)` over `runs` calls after one warm-up call (oneDNN picks
    its kernels on the first)."""
    import torch

    with torch.inference_mode():
        module(*args, **kwargs)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            module(*args, **kwargs)
            times.append(time.perf_counter() - started)
    return statistics.median(times), times


def build(factory: Callable[[], object], dtype):
    """A module made in `dtype` from the start (no fp32 copy first, which would double the peak), in eval mode."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        started = time.perf_counter()
        module = factory().eval()
    finally:
        torch.set_default_dtype(previous)
    count = sum(p.numel() for p in module.parameters())
    print(f"  built {type(module).__name__} ({count / 1e9:.2f} B parameters) in {time.perf_counter() - started:.0f} s",
          flush=True)
    return module


def shown(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def time_sd35(size: int, runs: int, dtype) -> float:
    import torch
    from diffusers import SD3Transformer2DModel

    print(f"\nSD 3.5 Medium transformer, {size} px, batch 2 (guidance), {CLIP_TOKENS + T5_TOKENS} prompt tokens",
          flush=True)
    model = build(lambda: SD3Transformer2DModel(**SD35_MEDIUM), dtype)
    latent = size // 8
    generator = torch.Generator().manual_seed(0)
    inputs = dict(hidden_states=torch.randn(2, 16, latent, latent, generator=generator).to(dtype),
                  encoder_hidden_states=torch.randn(2, CLIP_TOKENS + T5_TOKENS, 4096, generator=generator).to(dtype),
                  pooled_projections=torch.randn(2, 2048, generator=generator).to(dtype),
                  timestep=torch.tensor([500.0, 500.0]), return_dict=False)
    step, times = median_seconds(model, runs, **inputs)
    image_tokens = (latent // 2) ** 2
    print(f"  one step ({image_tokens} image tokens): {step:.2f} s median of {runs} ({shown(times)}); "
          f"peak RSS {peak_rss_gb():.1f} GB", flush=True)
    del model, inputs
    gc.collect()
    return step


def time_flux(size: int, runs: int, dtype) -> tuple[float, float, float, float]:
    """(step, double block, single block, rest) in seconds, the step extrapolated from the blocks."""
    import torch
    from diffusers import FluxTransformer2DModel
    from diffusers.models.transformers.transformer_flux import (
        FluxSingleTransformerBlock,
        FluxTransformerBlock,
    )

    width = FLUX_SCHNELL["num_attention_heads"] * FLUX_SCHNELL["attention_head_dim"]
    side = size // 16  # 8x VAE, then 2x2 latent patches packed into one token
    image_tokens = side * side
    print(f"\nFLUX.1 [schnell], {size} px, batch 1, {image_tokens} image + {T5_TOKENS} T5 tokens, width {width}: "
          f"EXTRAPOLATED from one block of each kind", flush=True)
    generator = torch.Generator().manual_seed(0)

    # The rest of the transformer: the same model with no blocks (embedders, rotary table, final layer).
    rest_model = build(lambda: FluxTransformer2DModel(**{**FLUX_SCHNELL, "num_layers": 0, "num_single_layers": 0}),
                       dtype)
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    img_ids = img_ids.reshape(image_tokens, 3)
    txt_ids = torch.zeros(T5_TOKENS, 3)
    rest_inputs = dict(hidden_states=torch.randn(1, image_tokens, 64, generator=generator).to(dtype),
                       encoder_hidden_states=torch.randn(1, T5_TOKENS, 4096, generator=generator).to(dtype),
                       pooled_projections=torch.randn(1, 768, generator=generator).to(dtype),
                       timestep=torch.tensor([1.0]), img_ids=img_ids, txt_ids=txt_ids, return_dict=False)
    rest, times = median_seconds(rest_model, runs, **rest_inputs)
    print(f"  embedders + rotary table + final layer: {rest:.3f} s ({shown(times)})", flush=True)
    with torch.inference_mode():
        rotary = rest_model.pos_embed(torch.cat([txt_ids, img_ids]))  # what every block is given
    del rest_model, rest_inputs
    gc.collect()

    hidden = torch.randn(1, image_tokens, width, generator=generator).to(dtype)
    context = torch.randn(1, T5_TOKENS, width, generator=generator).to(dtype)
    temb = torch.randn(1, width, generator=generator).to(dtype)
    heads, head_dim = FLUX_SCHNELL["num_attention_heads"], FLUX_SCHNELL["attention_head_dim"]

    block = build(lambda: FluxTransformerBlock(width, heads, head_dim), dtype)
    double, times = median_seconds(block, runs, hidden, context, temb, image_rotary_emb=rotary)
    print(f"  double-stream block: {double:.2f} s ({shown(times)}); peak RSS {peak_rss_gb():.1f} GB", flush=True)
    del block
    gc.collect()

    block = build(lambda: FluxSingleTransformerBlock(width, heads, head_dim), dtype)
    single, times = median_seconds(block, runs, hidden, context, temb, image_rotary_emb=rotary)
    print(f"  single-stream block: {single:.2f} s ({shown(times)}); peak RSS {peak_rss_gb():.1f} GB", flush=True)
    del block
    gc.collect()

    doubles, singles = FLUX_SCHNELL["num_layers"], FLUX_SCHNELL["num_single_layers"]
    return doubles * double + singles * single + rest, double, single, rest


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed calls after one warm-up; the median counts")
    parser.add_argument("--size", type=int, default=512, help="picture side in px (a multiple of 16; default 512)")
    parser.add_argument("--only", choices=("sd35", "flux"), help="time one model only")
    args = parser.parse_args(argv)
    if args.size <= 0 or args.size % 16 or args.runs < 1:
        parser.error("--size must be a positive multiple of 16 and --runs at least 1")
    return args


def main() -> int:
    args = parse_arguments()

    import torch

    from studio.backends.diffusion.pipelines import compute_dtype, cpu_has_native_bf16, dtype_name

    dtype = compute_dtype("cpu")
    why = "native bf16 (AVX512-BF16 or AMX) on this CPU" if cpu_has_native_bf16() else "no native bf16 on this CPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; dtype {dtype_name(dtype)} (the studio's "
          f"choice: {why}); median of {args.runs} calls after a warm-up", flush=True)

    sd35 = time_sd35(args.size, args.runs, dtype) if args.only in (None, "sd35") else None
    flux = time_flux(args.size, args.runs, dtype) if args.only in (None, "flux") else None

    print(f"\none sampler step at {args.size} px, {dtype_name(dtype)}, {torch.get_num_threads()} threads:")
    if sd35 is not None:
        print(f"  SD 3.5 Medium:    {sd35:6.1f} s a step (measured: the whole transformer, batch 2); "
              f"its default 40 steps: {40 * sd35 / 60:.0f} min")
    if flux is not None:
        step, double, single, rest = flux
        print(f"  FLUX.1 [schnell]: {step:6.1f} s a step, EXTRAPOLATED from blocks = 19 x {double:.2f} s (double) "
              f"+ 38 x {single:.2f} s (single) + {rest:.2f} s (embedders, final layer); its 4 steps: "
              f"{4 * step / 60:.1f} min")
    print(f"peak RSS {peak_rss_gb():.1f} GB (text encoders and VAE not counted or timed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
