"""What a LoRA costs on the studio's own image path, side by side with the same run without it.

SD-Turbo's real-size architecture with random weights (see image_speed.py) and a real-size rank-32
LoRA in the kohya layout on every attention and feed-forward linear of the UNet and every linear of
the text encoder, made here with random weights. Timed on the studio's DiffusionBackend as the Image
tab runs it (OpenVINO where it is used today): the first run with the LoRA (reading the file, and
what the engine needs for it), then rounds of a plain run, a LoRA run after it and a LoRA run again.
Speed does not depend on the weights' values.

    nice -n 5 python benchmarks/lora_speed.py [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from image_speed import DECODER_ID, MODEL_ID, PROMPT, SIZE, STEPS, build_random_sd_turbo  # noqa: E402

RANK = 32


def build_lora(model_folder: Path, target: Path) -> float:
    """A rank-32 kohya LoRA for the model in `model_folder`; returns its size in MB."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(model_folder / "unet", variant="fp16")
    text_encoder = CLIPTextModel.from_pretrained(model_folder / "text_encoder", variant="fp16")
    weights: dict[str, torch.Tensor] = {}
    for prefix, module, inside in (("lora_unet_", unet, ("attn", "ff.net", "proj_")),
                                   ("lora_te_", text_encoder, ("layers",))):
        for name, layer in module.named_modules():
            if isinstance(layer, torch.nn.Linear) and any(part in name for part in inside):
                key = prefix + name.replace(".", "_")
                out_features, in_features = layer.weight.shape
                weights[f"{key}.lora_down.weight"] = torch.randn(RANK, in_features, dtype=torch.float16) * 0.01
                weights[f"{key}.lora_up.weight"] = torch.randn(out_features, RANK, dtype=torch.float16) * 0.01
                weights[f"{key}.alpha"] = torch.tensor(float(RANK))
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, target)
    return target.stat().st_size / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the random models here once and reuse them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lora-speed-"))
    try:
        if not (folder / "sd-turbo").exists():
            build_random_sd_turbo(folder)
        lora = folder / "loras" / "random_style.safetensors"
        size_mb = build_lora(folder / "sd-turbo", lora) if not lora.exists() else lora.stat().st_size / 2**20

        from image_speed import studio_backend

        from studio.backends.diffusion import ImageRequest
        from studio.backends.diffusion.loras import LoraLibrary

        backend = studio_backend(folder)
        backend.loras = LoraLibrary([folder / "loras"])
        plain = ImageRequest(PROMPT, model=MODEL_ID, decoder=DECODER_ID, steps=STEPS, guidance=0.0,
                             width=SIZE, height=SIZE, seed=0)
        with_lora = ImageRequest(PROMPT + " <lora:random_style:0.8>", model=MODEL_ID, decoder=DECODER_ID,
                                 steps=STEPS, guidance=0.0, width=SIZE, height=SIZE, seed=0)
        backend.generate(plain)  # loads (and converts) the model
        started = time.perf_counter()
        first = backend.generate(with_lora)
        first_seconds = time.perf_counter() - started
        # Each round: a plain run, then the LoRA run after it (the LoRA goes on again: what switching
        # costs), then the LoRA run once more (it stayed on: what an artist iterating with it pays).
        times: dict[str, list[float]] = {"plain": [], "switch": [], "repeat": []}
        engines: dict[str, str] = {}
        for _ in range(args.rounds):
            for name, request in (("plain", plain), ("switch", with_lora), ("repeat", with_lora)):
                started = time.perf_counter()
                result = backend.generate(request)
                times[name].append(time.perf_counter() - started)
                engines[name] = result.params[0]["engine"]
        assert first.params[0]["loras"][0]["name"] == "random_style"
        median = {name: statistics.median(values) for name, values in times.items()}
        print(f"LoRA on the studio's path: SD-Turbo architecture, {SIZE} px, {STEPS} step, TAESD; "
              f"rank-{RANK} kohya LoRA of {size_mb:.0f} MB; median of {args.rounds} rounds")
        print(f"  first run with the LoRA (file read, engine set up): {first_seconds:.1f} s")
        print(f"  without the LoRA:                 {median['plain']:.2f} s ({engines['plain']})")
        for name, label in (("repeat", "with it, again (it stays on)"), ("switch", "with it, after a plain run")):
            print(f"  {label + ':':33s} {median[name]:.2f} s ({engines[name]}), "
                  f"{100 * (median[name] / median['plain'] - 1):+.0f}%")
        print("  target: after the first load, a LoRA adds at most 15% to a run")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
