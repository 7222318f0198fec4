"""The fast LCM switch against diffusers' default SD 1.5 run, side by side in one process.

SD 1.5's published architecture (UNet, full VAE, CLIP ViT-L/14 text encoder) with random weights, plus
TAESD, and a rank-64 LoRA in the kohya layout over the UNet's layers an LCM-LoRA covers (attention and
feed-forward linears, the transformers' 1x1 projections, the resnets' convolutions and time embeddings,
the down/up-samplers): about the size of latent-consistency/lcm-lora-sdv1-5. Speed does not depend on
weight values. Both runs are 512 px, the same dtype (the studio's on this CPU) and the same decoder (TAESD):

  (a) diffusers' default SD 1.5 run: the pipeline's own scheduler (PNDM), 25 steps, guidance 7.5
  (b) the studio's fast LCM switch: DiffusionBackend with fast_lcm (the LoRA from the catalogue entry,
      here a local copy in a models file; LCM sampler, 4 steps, guidance 1, which runs no unconditional half)

Every UNet evaluation is timed too. `--baseline-steps N` (N < 25) runs (a) with N steps only and
extrapolates to 25 from its measured time per step (the fixed part, text encoding and decoding, is the
run's time minus its UNet time), saying so in the output.

    nice -n 5 python benchmarks/lcm_speed.py [--baseline-steps 25] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = 512
DEFAULT_STEPS, DEFAULT_GUIDANCE = 25, 7.5
RANK = 64
PROMPT = "a lighthouse on a cliff at sunset, oil painting"
MODEL_ID, DECODER_ID = "sd15-random", "taesd-random"
LCM_ID = "latent-consistency/lcm-lora-sdv1-5"


def build_random_sd15(folder: Path) -> None:
    """SD 1.5's architecture with random weights, saved as fp16 safetensors like its hub repository, and TAESD."""
    import torch
    from diffusers import (
        AutoencoderKL,
        AutoencoderTiny,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32, act_fn="silu",
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        latent_channels=4, norm_num_groups=32, sample_size=512, scaling_factor=0.18215,
    )
    # A byte-level stand-in vocabulary of CLIP's size: prompts are padded to 77 tokens either way.
    tokenizer_dir = folder / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    alphabet = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 256)]
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    (tokenizer_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=77, pad_token="<|endoftext|>")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    # SD 1.5's scheduler as its repository ships it.
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(folder / "sd15", safe_serialization=True, variant="fp16")
    AutoencoderTiny().save_pretrained(folder / "taesd", safe_serialization=True)


def build_lcm_lora(folder: Path, target: Path) -> float:
    """A rank-64 kohya LoRA over the UNet layers an LCM-LoRA covers; returns its size in MB."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_pretrained(folder / "sd15" / "unet", variant="fp16")
    weights: dict[str, torch.Tensor] = {}
    for name, layer in unet.named_modules():
        if not any(part in name for part in ("attentions", "resnets", "samplers")):
            continue
        key = "lora_unet_" + name.replace(".", "_")
        if isinstance(layer, torch.nn.Linear):
            down = torch.randn(RANK, layer.in_features, dtype=torch.float16)
            up = torch.randn(layer.out_features, RANK, dtype=torch.float16)
        elif isinstance(layer, torch.nn.Conv2d):
            down = torch.randn(RANK, layer.in_channels, *layer.kernel_size, dtype=torch.float16)
            up = torch.randn(layer.out_channels, RANK, 1, 1, dtype=torch.float16)
        else:
            continue
        weights[f"{key}.lora_down.weight"] = down * 0.01
        weights[f"{key}.lora_up.weight"] = up * 0.01
        weights[f"{key}.alpha"] = torch.tensor(float(RANK))
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, target)
    return target.stat().st_size / 2**20


class UNetClock:
    """The time spent in a UNet's forward calls, and how many there were."""

    def __init__(self, unet) -> None:
        self.seconds, self.calls, self._started = 0.0, 0, 0.0
        unet.register_forward_pre_hook(self._before)
        unet.register_forward_hook(self._after)

    def _before(self, *_) -> None:
        self._started = time.perf_counter()

    def _after(self, *_) -> None:
        self.seconds += time.perf_counter() - self._started
        self.calls += 1

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0


def studio_backend(folder: Path):
    from studio.backends.diffusion import DiffusionBackend
    from studio.catalog import load_catalog
    from studio.runtime import ModelCache

    models = folder / "models.toml"
    models.write_text(
        f'[[model]]\nid = "{MODEL_ID}"\nname = "SD 1.5 (random weights)"\nfamily = "diffusers"\ntasks = ["txt2img"]\n'
        f'path = "{folder / "sd15"}"\nvariant = "fp16"\n\n'
        f'[[model]]\nid = "{DECODER_ID}"\nfamily = "diffusers"\ntasks = ["decode"]\npath = "{folder / "taesd"}"\n\n'
        # The LCM-LoRA's catalogue entry, pointed at a local copy (as the offline message suggests).
        f'[[model]]\nid = "{LCM_ID}"\nfamily = "diffusers"\ntasks = ["lora"]\npath = "{folder / "lcm-lora"}"\n',
        encoding="utf-8",
    )
    return DiffusionBackend(ModelCache(16384), load_catalog(models), device="cpu", openvino_dir=folder / "openvino",
                            offline=True)


def time_lcm(folder: Path, runs: int) -> dict:
    from studio.backends.diffusion import ImageRequest, with_fast_lcm

    backend = studio_backend(folder)
    request = with_fast_lcm(ImageRequest(PROMPT, model=MODEL_ID, decoder=DECODER_ID, width=SIZE, height=SIZE, seed=0))
    started = time.perf_counter()
    first = backend.generate(request)  # loads the model and the LoRA, puts the LoRA on
    first_seconds = time.perf_counter() - started
    clock = UNetClock(backend.load(MODEL_ID, torch_unet=first.params[0]["engine"].startswith("torch")).pipe.unet)
    times, unet = [], []
    for _ in range(runs):
        clock.reset()
        started = time.perf_counter()
        result = backend.generate(request)
        times.append(time.perf_counter() - started)
        unet.append((clock.seconds, clock.calls))
    record = result.params[0]
    assert result.images[0].size == (SIZE, SIZE) and record["lcm_lora"]["name"] == "lcm-lora-sdv1-5"
    best = min(range(runs), key=times.__getitem__)
    return {"seconds": times[best], "all": times, "first": first_seconds, "unet_seconds": unet[best][0],
            "unet_calls": unet[best][1], "steps": record["steps"], "guidance": record["guidance"],
            "engine": f"{record['engine']} {record['dtype']}", "dtype": record["dtype"]}


def time_default(folder: Path, steps: int, dtype_name: str) -> dict:
    """diffusers' default SD 1.5 call (its scheduler, guidance 7.5) with `steps` steps and TAESD decoding."""
    import torch
    from diffusers import AutoencoderTiny, StableDiffusionPipeline

    dtype = getattr(torch, dtype_name)
    pipe = StableDiffusionPipeline.from_pretrained(folder / "sd15", dtype=dtype, variant="fp16", use_safetensors=True)
    pipe.vae = AutoencoderTiny.from_pretrained(folder / "taesd", dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    clock = UNetClock(pipe.unet)

    def run(n: int) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            image = pipe(PROMPT, num_inference_steps=n, guidance_scale=DEFAULT_GUIDANCE, width=SIZE, height=SIZE,
                         generator=torch.Generator("cpu").manual_seed(0)).images[0]
        assert image.size == (SIZE, SIZE)
        return time.perf_counter() - started

    run(1)  # warm-up
    clock.reset()
    seconds = run(steps)
    per_step = clock.seconds / steps  # each step: one UNet call on the prompt and the empty prompt together
    fixed = seconds - clock.seconds
    return {"seconds": seconds, "steps": steps, "unet_seconds": clock.seconds, "unet_calls": clock.calls,
            "per_step": per_step, "fixed": fixed, "at_25": fixed + DEFAULT_STEPS * per_step}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-steps", type=int, default=DEFAULT_STEPS,
                        help="steps actually run for (a); fewer than 25 are extrapolated to 25 per step")
    parser.add_argument("--runs", type=int, default=2, help="timed runs of (b); the best counts")
    parser.add_argument("--keep", type=Path, help="build the random models here once and reuse them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lcm-speed-"))
    try:
        if not (folder / "sd15").exists():
            build_random_sd15(folder)
        lora = folder / "lcm-lora" / "pytorch_lora_weights.safetensors"
        size_mb = build_lcm_lora(folder, lora) if not lora.exists() else lora.stat().st_size / 2**20
        fast = time_lcm(folder, args.runs)
        default = time_default(folder, args.baseline_steps, fast["dtype"])
        extrapolated = args.baseline_steps != DEFAULT_STEPS
        baseline = default["at_25"] if extrapolated else default["seconds"]
        print(f"SD 1.5 architecture (random weights), {SIZE} px, TAESD decoding both; {fast['dtype']} both; "
              f"rank-{RANK} LCM-LoRA of {size_mb:.0f} MB (kohya layout)")
        how = (f"EXTRAPOLATED from a {args.baseline_steps}-step run: {default['seconds']:.1f} s measured, "
               f"{default['per_step']:.2f} s per step (UNet, {default['unet_calls']} calls), "
               f"{default['fixed']:.1f} s fixed" if extrapolated else
               f"measured; {default['per_step']:.2f} s per step, {default['fixed']:.1f} s text encoding and decoding")
        print(f"  (a) diffusers default, PNDM {DEFAULT_STEPS} steps, guidance {DEFAULT_GUIDANCE:g}: "
              f"{baseline:.1f} s ({how})")
        print(f"  (b) studio fast LCM, LCM {fast['steps']} steps, guidance {fast['guidance']:g}: {fast['seconds']:.1f} s "
              f"(best of {args.runs}: {', '.join(f'{t:.1f}' for t in fast['all'])} s; UNet "
              f"{fast['unet_seconds'] / max(fast['unet_calls'], 1):.2f} s x {fast['unet_calls']} calls; "
              f"{fast['engine']}); first run with loading {fast['first']:.1f} s")
        print(f"  speed-up: {baseline / fast['seconds']:.1f}x (target: at least 5x)")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
