"""SD-Turbo (or, with --model sdxl-turbo, SDXL-Turbo) text-to-image on this machine: a naive diffusers call
against the studio's own paths.

The real-size architectures (SD-Turbo's UNet, VAE and OpenCLIP ViT-H text tower, and TAESD) are
built from their published configs with random weights (`--model sdxl-turbo`: SDXL-Turbo's UNet as in
benchmarks/sdxl_openvino.py, its CLIP ViT-L and OpenCLIP ViT-bigG text towers, SDXL's VAE and TAESDXL, which
has TAESD's architecture; the studio decodes SDXL's latents with TAESDXL, and its exact path keeps SDXL's
UNet on torch, so only "fastest" converts it): speed does not depend on weight values, so
no hub download is needed. Every path loads the same saved folder through its own loading code and
runs 512 px, 1 step, end to end to a PIL image, each in its own process so peak memory is its own:

  naive         AutoPipelineForText2Image.from_pretrained(...) in float32, full VAE decode
  studio        studio.backends.diffusion as configured on this machine (TAESD/TAESDXL decode, model kept warm in
                the runtime cache; on a CPU with native bf16 torch in bf16, else the exact OpenVINO path)
  studio-torch  the studio's torch-only path (`--no-openvino`)
  exact         Speed "exact": UNet and TAESD's decoder on OpenVINO in fp32 (converted once, kept on disk)
  exact-malloc  the same with the allocator settings (MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_MAX_) in its
                environment
  fastest-f32   the UNet's weights compressed to int8 (NNCF), computed in fp32
  fastest       Speed "fastest": int8 weights, computed in bf16 where the CPU has native bf16
and for "fastest" its closeness to "exact": PSNR and the largest difference of the decoded picture,
same prompt and seed.

The paths take turns, one process each, for --rounds rounds; each process's best call counts and the
median over rounds is shown, so a busy spell on this shared machine hits all paths alike (read the
ratios, not the seconds). Peak RSS is the kernel's high-water mark (it counts the file pages of
memory-mapped weights, which the system can reclaim); peak anonymous memory is sampled every 20 ms and
is what the process really holds. The first launch, which converts the UNet for OpenVINO and then
compresses it for "fastest", is timed on its own.

    nice -n 5 python benchmarks/image_speed.py [--model sd-turbo|sdxl-turbo] [--runs 2] [--rounds 3] [--keep DIR] [--paths a,b,...]
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
# Which architecture this process measures (--model); its folder inside the benchmark's folder.
MODEL = "sd-turbo"
# Its tiny decoder's folder and the latent space it decodes (catalog.LATENT_SPACES), by MODEL.
DECODERS = {"sd-turbo": ("taesd", "sd"), "sdxl-turbo": ("taesdxl", "sdxl")}


def stand_in_tokenizer(folder: Path):
    """A byte-level stand-in vocabulary the size of CLIP's, saved in `folder`: prompts are padded to 77
    tokens either way, so the text towers' cost is the real one without the hub's tokenizer files."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    alphabet = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(161, 256)]
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=77, pad_token="<|endoftext|>")


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
    from transformers import CLIPTextConfig, CLIPTextModel

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
    tokenizer = stand_in_tokenizer(folder / "tokenizer")
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


def build_random_sdxl_turbo(folder: Path) -> None:
    """SDXL-Turbo's published architecture (stabilityai/sdxl-turbo's configs) with random weights, saved as
    fp16 safetensors like the hub repository's fp16 variant. Each part is halved as soon as it is built, so
    the build holds about one fp32 UNet (10.3 GB) at most."""
    import torch
    from diffusers import (
        AutoencoderKL,
        AutoencoderTiny,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from benchmarks.sdxl_openvino import SDXL_TURBO_UNET

    torch.manual_seed(0)
    tokenizer = stand_in_tokenizer(folder / "tokenizer")
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id, "vocab_size": 49408, "max_position_embeddings": 77}
    text_encoder = CLIPTextModel(CLIPTextConfig(  # CLIP ViT-L/14's text tower
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        hidden_act="quick_gelu", projection_dim=768, **ids)).half()
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(  # OpenCLIP ViT-bigG/14's text tower
        hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
        hidden_act="gelu", projection_dim=1280, **ids)).half()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        latent_channels=4, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025, force_upcast=True,
    ).half()
    unet = UNet2DConditionModel(**SDXL_TURBO_UNET).half()
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
    )
    pipe.save_pretrained(folder / "sdxl-turbo", safe_serialization=True, variant="fp16")
    AutoencoderTiny().save_pretrained(folder / "taesdxl", safe_serialization=True)  # TAESDXL: TAESD's shape


BUILDERS = {"sd-turbo": build_random_sd_turbo, "sdxl-turbo": build_random_sdxl_turbo}


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
        folder / MODEL, dtype=torch.float32, variant="fp16", use_safetensors=True
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

    decoder, latent_space = DECODERS[MODEL]
    models = folder / "models.toml"
    models.write_text(
        f'[[model]]\nid = "{MODEL_ID}"\nfamily = "diffusers"\ntasks = ["txt2img"]\n'
        f'path = "{folder / MODEL}"\nvariant = "fp16"\n\n'
        f'[[model]]\nid = "{DECODER_ID}"\nfamily = "diffusers"\ntasks = ["decode"]\npath = "{folder / decoder}"\n'
        f'latent_space = "{latent_space}"\n',
        encoding="utf-8",
    )
    return DiffusionBackend(
        ModelCache(16384), load_catalog(models), device="cpu", openvino_dir=folder / "openvino" if openvino else None
    )


def run_first_launch(folder: Path) -> dict:
    """Loading the model when its OpenVINO conversion is not on disk yet: what a user's first
    picture with a new model waits for."""
    import torch

    from studio.backends.diffusion import pipelines

    pipelines.compute_dtype = lambda device: torch.float32  # the OpenVINO path, also on CPUs with native bf16
    backend = studio_backend(folder)
    started = time.perf_counter()
    # SDXL's exact path keeps its UNet on torch (openvino_unet.pays_off): nothing to convert for it.
    model = backend.load(MODEL_ID) if MODEL == "sd-turbo" else None
    converted = time.perf_counter()
    backend.cache.clear()
    fastest = backend.load(MODEL_ID, speed="fastest")
    return {"seconds": converted - started, "compress_seconds": time.perf_counter() - converted,
            "engine": f"{model.engine if model else 'torch'}; {fastest.engine}", "peak_rss_mb": peak_rss_mb(),
            "peak_anon_mb": ANONYMOUS.peak_mb}


def run_studio(folder: Path, runs: int, openvino: bool = True, speed: str = "exact", fp32: bool = False,
               bf16_compute: bool = True, picture: Path | None = None) -> dict:
    """The studio's path. `fp32`: the fp32 pipeline even on a CPU with native bf16 (where the studio
    otherwise runs torch in bf16), i.e. the exact OpenVINO path; `bf16_compute` False keeps "fastest"
    computing in fp32 too. `picture`: where to keep the last picture's pixels (.npy)."""
    import numpy as np
    import torch

    from studio.backends.diffusion import ImageRequest, pipelines

    if fp32:
        pipelines.compute_dtype = lambda device: torch.float32
    if not bf16_compute:
        pipelines.cpu_has_native_bf16 = lambda: False
    backend = studio_backend(folder, openvino)
    request = ImageRequest(PROMPT, model=MODEL_ID, decoder=DECODER_ID, steps=STEPS, guidance=0.0,
                           width=SIZE, height=SIZE, seed=0, speed=speed)
    times = []
    for run in range(runs + 1):  # the first call loads the models into the cache and warms up
        started = time.perf_counter()
        result = backend.generate(request)
        if run:
            times.append(time.perf_counter() - started)
    assert result.images[0].size == (SIZE, SIZE)
    if picture is not None:
        np.save(picture, np.asarray(result.images[0].convert("RGB")))
    record = result.params[0]
    return {"seconds": min(times), "all": times, "peak_rss_mb": peak_rss_mb(), "peak_anon_mb": ANONYMOUS.peak_mb,
            "engine": f"{record['engine']} {record['dtype']}, {record['decoder']}"}


def psnr_and_max(a_file: Path, b_file: Path) -> tuple[float, int]:
    """PSNR (dB) and the largest difference of one channel (0-255) between two pictures' pixels."""
    import numpy as np

    a, b = (np.load(f).astype(np.float64) for f in (a_file, b_file))
    mse = float(((a - b) ** 2).mean())
    return (float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)), int(np.abs(a - b).max())


# Allocator settings the studio sets where it starts (studio/allocator.py): measured as their own path.
ALLOCATOR = {"MALLOC_TRIM_THRESHOLD_": "0", "MALLOC_MMAP_MAX_": "0"}
# name: (label, function, extra environment)
PATHS = {
    "naive": ("(a) naive diffusers call", run_naive, {}),
    "studio": ("(b) studio, as configured here", run_studio, {}),
    "studio-torch": ("    studio, torch only", lambda folder, runs: run_studio(folder, runs, openvino=False), {}),
    "exact": ("(c) studio exact: OpenVINO fp32",
              lambda folder, runs: run_studio(folder, runs, fp32=True, picture=folder / "exact.npy"), {}),
    "exact-malloc": ("    exact, allocator settings", lambda folder, runs: run_studio(folder, runs, fp32=True), ALLOCATOR),
    "fastest-f32": ("    int8 weights, fp32 compute",
                    lambda folder, runs: run_studio(folder, runs, speed="fastest", bf16_compute=False,
                                                    picture=folder / "fastest-f32.npy"), {}),
    "fastest": ("(d) studio fastest", lambda folder, runs: run_studio(folder, runs, speed="fastest",
                                                                      picture=folder / "fastest.npy"), {}),
}


def child(name: str, folder: Path, runs: int) -> dict:
    extra = PATHS[name][2] if name in PATHS else {}
    done = subprocess.run(
        [sys.executable, __file__, "--only", name, "--folder", str(folder), "--runs", str(runs), "--model", MODEL],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS="ignore", **extra),
    )
    if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=BUILDERS, default="sd-turbo", help="the architecture to measure")
    parser.add_argument("--runs", type=int, default=2, help="timed calls per path after one warm-up (best is shown)")
    parser.add_argument("--keep", type=Path, help="build the random models here once and reuse them")
    parser.add_argument("--rounds", type=int, default=3, help="times each path runs, taking turns (median is shown)")
    parser.add_argument("--paths", default=",".join(PATHS), help="which paths to measure, comma-separated")
    parser.add_argument("--no-first-launch", action="store_true",
                        help="keep the conversions a previous run left in --keep DIR and do not time them")
    parser.add_argument("--only", choices=[*PATHS, "first-launch", "build"], help=argparse.SUPPRESS)  # one child process
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global MODEL
    MODEL = args.model

    if args.only == "build":
        BUILDERS[MODEL](args.folder)
        print(json.dumps({}))
        return 0
    if args.only == "first-launch":
        print(json.dumps(run_first_launch(args.folder)))
        return 0
    if args.only:
        print(json.dumps(PATHS[args.only][1](args.folder, args.runs)))
        return 0

    import torch

    folder = args.keep or Path(tempfile.mkdtemp(prefix="image-bench-"))
    try:
        if not (folder / MODEL / "model_index.json").exists() or not (folder / DECODERS[MODEL][0] / "config.json").exists():
            print(f"building {MODEL}-sized random models in {folder} ...", flush=True)
            child("build", folder, args.runs)  # its own process: the allocator keeps what a build freed
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
              f"{torch.backends.cpu.get_cpu_capability()}; {SIZE} px, {STEPS} step, end to end to a PIL image")
        if not args.no_first_launch:
            shutil.rmtree(folder / "openvino", ignore_errors=True)
            first = child("first-launch", folder, args.runs)
            print(f"first launch (converts the UNet for OpenVINO, once per model; SDXL: only for 'fastest'): load {first['seconds']:.1f} s, "
                  f"then int8 weights for 'fastest' {first['compress_seconds']:.1f} s, "
                  f"peak RSS {first['peak_rss_mb']:.0f} MB, peak anonymous {first['peak_anon_mb']:.0f} MB", flush=True)
        chosen = [name for name in args.paths.split(",") if name in PATHS]
        results: dict[str, list[dict]] = {name: [] for name in chosen}
        for round_ in range(args.rounds):
            for name in chosen:
                results[name].append(child(name, folder, args.runs))
                print(f"  {name}: {results[name][-1]['seconds']:.2f} s, peak RSS {results[name][-1]['peak_rss_mb']:.0f} MB",
                      flush=True)
            print(f"round {round_ + 1}: " + ", ".join(f"{n} {r[-1]['seconds']:.2f} s" for n, r in results.items()),
                  flush=True)
        summary = {}
        for name in chosen:
            label, rounds = PATHS[name][0], results[name]
            summary[name] = {key: statistics.median(r[key] for r in rounds)
                             for key in ("seconds", "peak_rss_mb", "peak_anon_mb")}
            print(f"{label:26} {summary[name]['seconds']:7.2f} s   peak RSS {summary[name]['peak_rss_mb']:6.0f} MB   "
                  f"peak anonymous {summary[name]['peak_anon_mb']:6.0f} MB   ({rounds[-1]['engine']}; best of "
                  f"{args.runs} per round: {', '.join(format(r['seconds'], '.2f') for r in rounds)} s)")
        naive = summary.get("naive")
        for name in chosen:
            if naive is None or name == "naive":
                continue
            mine = summary[name]
            print(f"{name:13} {naive['seconds'] / mine['seconds']:4.1f}x faster than naive; peak RSS "
                  f"{mine['peak_rss_mb'] / naive['peak_rss_mb']:.2f}x naive's, anonymous "
                  f"{mine['peak_anon_mb'] / naive['peak_anon_mb']:.2f}x")
        for name in ("fastest", "fastest-f32"):
            if name in chosen and "exact" in chosen:
                psnr, biggest = psnr_and_max(folder / "exact.npy", folder / f"{name}.npy")
                print(f"{name} against exact, same seed, decoded picture: PSNR {psnr:.1f} dB, max difference "
                      f"{biggest}/255")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
