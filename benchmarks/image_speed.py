"""SD-Turbo text-to-image on this machine: a naive diffusers call against the studio's own path.

The real-size architectures (SD-Turbo's UNet, VAE and OpenCLIP ViT-H text tower, and TAESD) are
built from their published configs with random weights: speed does not depend on weight values, so
no hub download is needed. Both paths load the same saved folder through their own loading code and
run 512 px, 1 step, end to end to a PIL image, each in its own process so peak memory is its own:

  (a) naive:  AutoPipelineForText2Image.from_pretrained(...) in float32, full VAE decode
  (b) studio: studio.backends.diffusion as the studio runs it (TAESD decode, model kept warm in the
              runtime cache, UNet and TAESD decoder on OpenVINO, converted once and kept on disk)
  and for reference the studio's torch-only path (`--no-openvino`: bfloat16 and channels-last only
  where the CPU has native bf16 instructions, else float32).

The paths take turns, one process each, for --rounds rounds; each process's best call counts and the
median over rounds is shown, so a busy spell on this shared machine hits all paths alike. Peak RSS is
the kernel's high-water mark (it counts the file pages of memory-mapped weights, which the system
can reclaim); peak anonymous memory is sampled every 20 ms and is what the process really holds.
The first launch, which converts the UNet for OpenVINO, is timed on its own.

    nice -n 5 python benchmarks/image_speed.py [--runs 2] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from studio.backends.diffusion import DiffusionBackend

SIZE = 512
STEPS = 1
PROMPT = "a lighthouse on a cliff at sunset, oil painting"
# Catalogue ids of the random models (studio_backend).
MODEL_ID = "sd-turbo-random"
DECODER_ID = "taesd-random"


def build_random_sd_turbo(folder: Path) -> None:
    """SD-Turbo's published architecture (SD 2.1 layout) with random weights, saved as fp16 safetensors
    like the hub repository's fp16 variant; plus TAESD with its default configuration."""
    import torch
    from diffusers import (
        AutoencoderKL,
        AutoencoderTiny,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=1024,
        attention_head_dim=[5, 10, 20, 20],
        use_linear_projection=True,
        norm_num_groups=32,
        act_fn="silu",
        flip_sin_to_cos=True,
        freq_shift=0,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=768,
        scaling_factor=0.18215,
    )
    # A byte-level stand-in vocabulary the size of CLIP's: prompts are padded to 77 tokens either way.
    tokenizer_dir = folder / "tokenizer"
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    alphabet = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 256)]
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    (tokenizer_dir / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (tokenizer_dir / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir, model_max_length=77, pad_token="<|endoftext|>")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.to(torch.float16).save_pretrained(folder / "sd-turbo", safe_serialization=True, variant="fp16")
    AutoencoderTiny().save_pretrained(folder / "taesd", safe_serialization=True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class AnonymousMemoryPeak:
    """Samples this process's anonymous resident memory (RssAnon): memory only it can hold."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, self.now_mb())

    @staticmethod
    def now_mb() -> float:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
        return 0.0


ANONYMOUS = AnonymousMemoryPeak()


def run_naive(folder: Path, runs: int) -> dict:
    import torch
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(
        folder / "sd-turbo", dtype=torch.float32, variant="fp16", use_safetensors=True
    )
    pipe.set_progress_bar_config(disable=True)
    times = []
    for run in range(runs + 1):  # the first call warms up
        started = time.perf_counter()
        image = pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=0.0, width=SIZE, height=SIZE,
                     generator=torch.Generator("cpu").manual_seed(run)).images[0]
        if run:
            times.append(time.perf_counter() - started)
    assert image.size == (SIZE, SIZE)
    return {"seconds": min(times), "all": times, "peak_rss_mb": peak_rss_mb(), "peak_anon_mb": ANONYMOUS.peak_mb,
            "engine": "torch float32, full VAE"}


def studio_backend(folder: Path, openvino: bool = True) -> DiffusionBackend:
    """The studio's diffusion backend on the CPU, with the random models in `folder` as catalogue
    entries `MODEL_ID` and `DECODER_ID` (loaded by the studio's own code, like a user's models.toml),
    and its OpenVINO conversions kept in `folder`/openvino like the studio keeps them in its cache."""
    from studio.backends.diffusion import DiffusionBackend
    from studio.catalog import load_catalog
    from studio.runtime import ModelCache

    models = folder / "models.toml"
    models.write_text(
        f'[[model]]\nid = "{MODEL_ID}"\nfamily = "diffusers"\ntasks = ["txt2img"]\n'
        f'path = "{folder / "sd-turbo"}"\nvariant = "fp16"\n\n'
        f'[[model]]\nid = "{DECODER_ID}"\nfamily = "diffusers"\ntasks = ["decode"]\npath = "{folder / "taesd"}"\n',
        encoding="utf-8",
    )
    return DiffusionBackend(
        ModelCache(16384), load_catalog(models), device="cpu", openvino_dir=folder / "openvino" if openvino else None
    )


def run_first_launch(folder: Path) -> dict:
    """Loading the model when its OpenVINO conversion is not on disk yet: what a user's first
    picture with a new model waits for."""
    started = time.perf_counter()
    model = studio_backend(folder).load(MODEL_ID)
    return {"seconds": time.perf_counter() - started, "engine": model.engine, "peak_rss_mb": peak_rss_mb(),
            "peak_anon_mb": ANONYMOUS.peak_mb}


def run_studio(folder: Path, runs: int, openvino: bool = True) -> dict:
    from studio.backends.diffusion import ImageRequest

    backend = studio_backend(folder, openvino)
    request = ImageRequest(PROMPT, model=MODEL_ID, decoder=DECODER_ID, steps=STEPS, guidance=0.0,
                           width=SIZE, height=SIZE, seed=0)
    times = []
    for run in range(runs + 1):  # the first call loads the models into the cache and warms up
        started = time.perf_counter()
        result = backend.generate(request)
        if run:
            times.append(time.perf_counter() - started)
    assert result.images[0].size == (SIZE, SIZE)
    record = result.params[0]
    return {"seconds": min(times), "all": times, "peak_rss_mb": peak_rss_mb(), "peak_anon_mb": ANONYMOUS.peak_mb,
            "engine": f"{record['engine']} {record['dtype']}, {record['decoder']}"}


PATHS = {
    "naive": ("(a) naive diffusers call", run_naive),
    "studio": ("(b) studio path", run_studio),
    "studio-torch": ("    studio, torch only", lambda folder, runs: run_studio(folder, runs, openvino=False)),
}


def child(name: str, folder: Path, runs: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--only", name, "--folder", str(folder), "--runs", str(runs)],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="timed calls per path after one warm-up (best is shown)")
    parser.add_argument("--keep", type=Path, help="build the random models here once and reuse them")
    parser.add_argument("--rounds", type=int, default=3, help="times each path runs, taking turns (median is shown)")
    parser.add_argument("--only", choices=[*PATHS, "first-launch"], help=argparse.SUPPRESS)  # one child process
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.only == "first-launch":
        print(json.dumps(run_first_launch(args.folder)))
        return 0
    if args.only:
        print(json.dumps(PATHS[args.only][1](args.folder, args.runs)))
        return 0

    import torch

    folder = args.keep or Path(tempfile.mkdtemp(prefix="image-bench-"))
    try:
        if not (folder / "taesd" / "config.json").exists():
            print(f"building SD-Turbo-sized random models in {folder} ...", flush=True)
            build_random_sd_turbo(folder)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
              f"{torch.backends.cpu.get_cpu_capability()}; {SIZE} px, {STEPS} step, end to end to a PIL image")
        shutil.rmtree(folder / "openvino", ignore_errors=True)
        first = child("first-launch", folder, args.runs)
        print(f"first launch (converts the UNet for OpenVINO, once per model): load {first['seconds']:.1f} s, "
              f"peak RSS {first['peak_rss_mb']:.0f} MB, peak anonymous {first['peak_anon_mb']:.0f} MB", flush=True)
        results: dict[str, list[dict]] = {name: [] for name in PATHS}
        for round_ in range(args.rounds):
            for name in PATHS:
                results[name].append(child(name, folder, args.runs))
            print(f"round {round_ + 1}: " + ", ".join(f"{n} {r[-1]['seconds']:.2f} s" for n, r in results.items()),
                  flush=True)
        summary = {}
        for name, (label, _) in PATHS.items():
            rounds = results[name]
            summary[name] = {key: statistics.median(r[key] for r in rounds)
                             for key in ("seconds", "peak_rss_mb", "peak_anon_mb")}
            print(f"{label:26} {summary[name]['seconds']:7.2f} s   peak RSS {summary[name]['peak_rss_mb']:6.0f} MB   "
                  f"peak anonymous {summary[name]['peak_anon_mb']:6.0f} MB   ({rounds[-1]['engine']}; best of "
                  f"{args.runs} per round: {', '.join(format(r['seconds'], '.2f') for r in rounds)} s)")
        naive, studio, torch_only = summary["naive"], summary["studio"], summary["studio-torch"]
        print(f"speed-up: {naive['seconds'] / studio['seconds']:.1f}x   (torch only: "
              f"{naive['seconds'] / torch_only['seconds']:.1f}x)")
        print(f"peak memory of the studio path: {studio['peak_rss_mb'] / naive['peak_rss_mb']:.2f}x the naive call's "
              f"RSS, {studio['peak_anon_mb'] / naive['peak_anon_mb']:.2f}x its anonymous memory")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
