"""SDXL-Turbo's UNet on this CPU: one step at 512 px (64x64 latents), torch fp32 against OpenVINO fp32 (the
studio's conversion, studio/backends/diffusion/openvino_unet.py) and its int8 twin (Speed "fastest"),
side by side in one run, with the conversion's and the compression's time and each stage's peak RSS.

The UNet is SDXL's published architecture (stabilityai/sdxl-turbo, unet/config.json; 2.57 B parameters,
10.3 GB in fp32) with random weights: speed does not depend on weight values, so no hub download is
needed. Every stage runs in a child process of its own, so only one big model is in memory at a time and
each peak RSS is that stage's alone (Linux's high-water mark of the child):

  torch      build the UNet (seed 0), one warm-up step, then --runs timed steps; its output is kept
  convert    build the same UNet again and convert it as the studio does (IR with fp16 weights)
  openvino   load the IR as the studio does (compile, the first tiny call), warm-up, --runs timed steps
  compress   NNCF's int8 weight compression of the IR, as the "fastest" speed makes it once per model
  int8       load and time the int8 twin like `openvino` (fp32 compute: the studio's bf16 is only for
             CPUs with native bf16)

A step is one UNet call, batch 1 (SDXL-Turbo runs without guidance), 77 text tokens. OpenVINO's outputs
are compared with torch's on the same inputs (largest difference over torch's largest value).

    nice -n 5 python benchmarks/sdxl_openvino.py [--runs 3] [--size 512] [--keep DIR]

`--tiny` runs the same stages on a tiny SDXL-shaped UNet in seconds (a check of the script, not a figure).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# stabilityai/sdxl-turbo, unet/config.json (the same architecture as SDXL 1.0 base's UNet).
SDXL_TURBO_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn", transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True, norm_num_groups=32,
    norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0, addition_embed_type="text_time",
    addition_embed_type_num_heads=64, addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
)
POOLED_WIDTH = 1280  # text_encoder_2's projection: 2816 = 1280 + 6 ids x 256
# The same layout at toy widths, for --tiny.
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4), cross_attention_dim=64,
    use_linear_projection=True, norm_num_groups=8, addition_embed_type="text_time", addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + 32,
)
TINY_POOLED_WIDTH = 32
STAGES = ("torch", "convert", "openvino", "compress", "int8")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed steps per engine after one warm-up (median shown)")
    parser.add_argument("--size", type=int, default=512, help="picture side in px (latents are 1/8 of it)")
    parser.add_argument("--keep", type=Path, help="keep the IR and the torch output here (else a temporary folder)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help="which stages to run, comma-separated (with --keep DIR, later ones reuse its IR)")
    parser.add_argument("--tiny", action="store_true", help="a tiny SDXL-shaped UNet: checks the script in seconds")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # one child process
    args = parser.parse_args(argv)
    if args.size % 64 or args.size <= 0:
        parser.error("--size must be a positive multiple of 64 (SDXL's UNet halves 64x64 latents twice)")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    unknown = [stage for stage in args.stages if stage not in STAGES]
    if unknown or not args.stages:
        parser.error(f"--stages takes {', '.join(STAGES)}, not {', '.join(unknown) or 'nothing'}")
    return args


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build_unet(tiny: bool):
    """The UNet with seed-0 random weights: the same weights in every stage that builds it."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(**(TINY_UNET if tiny else SDXL_TURBO_UNET)).eval()


def step_inputs(size: int, tiny: bool) -> dict:
    """One step's inputs, the same in every stage: latents, text, pooled text and SDXL's size ids."""
    import torch

    config = TINY_UNET if tiny else SDXL_TURBO_UNET
    generator = torch.Generator().manual_seed(1)
    return {
        "sample": torch.randn(1, 4, size // 8, size // 8, generator=generator),
        "timestep": torch.tensor([999.0]),
        "encoder_hidden_states": torch.randn(1, 77, config["cross_attention_dim"], generator=generator),
        "added_cond_kwargs": {
            "text_embeds": torch.randn(1, TINY_POOLED_WIDTH if tiny else POOLED_WIDTH, generator=generator),
            "time_ids": torch.tensor([[size, size, 0, 0, size, size]], dtype=torch.float32),
        },
    }


def timed_steps(unet, inputs: dict, runs: int) -> tuple[float, list[float], object]:
    """Median seconds of `runs` calls after one warm-up call, the times, the output, and the system's load
    average (1 minute) before and after: on a shared machine it says how far to trust the figure."""
    import torch

    load = [os.getloadavg()[0]]
    with torch.inference_mode():
        out = unet(**inputs).sample  # warm-up: oneDNN and OpenVINO pick their kernels at the first call
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            out = unet(**inputs).sample
            times.append(time.perf_counter() - started)
    load.append(os.getloadavg()[0])
    return statistics.median(times), times, out, load


def compared(out, folder: Path) -> float:
    """The largest difference from torch's output over torch's largest value."""
    import numpy as np

    reference = np.load(folder / "torch-output.npy")
    return float(np.abs(out.numpy() - reference).max() / np.abs(reference).max())


def run_stage(stage: str, args: argparse.Namespace, folder: Path) -> dict:
    """One stage's figures (seconds, MB) in this process."""
    import numpy as np

    from studio.backends.diffusion import openvino_unet

    ir_file = folder / "ir" / "unet.xml"
    if stage in ("torch", "convert"):
        started = time.perf_counter()
        unet = build_unet(args.tiny)
        built = time.perf_counter() - started
        parameters = sum(p.numel() for p in unet.parameters())
        if stage == "convert":
            started = time.perf_counter()
            openvino_unet.export_unet(unet, ir_file)
            return {"seconds": time.perf_counter() - started, "build": built, "peak_rss_mb": peak_rss_mb(),
                    "ir_mb": ir_file.with_suffix(".bin").stat().st_size / 2**20}
        step, times, out, load = timed_steps(unet, step_inputs(args.size, args.tiny), args.runs)
        np.save(folder / "torch-output.npy", out.numpy())
        return {"step": step, "times": times, "build": built, "parameters": parameters, "peak_rss_mb": peak_rss_mb(),
                "load_average": load}
    if stage == "compress":
        started = time.perf_counter()
        target = openvino_unet.compress_unet(ir_file)
        return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb(),
                "ir_mb": target.with_suffix(".bin").stat().st_size / 2**20}
    started = time.perf_counter()
    unet = openvino_unet.load_converted_unet(ir_file, fastest=stage == "int8", native_bf16=False)
    if unet is None:
        raise RuntimeError(f"no conversion in {ir_file.parent}: the convert stage did not finish")
    loaded = time.perf_counter() - started
    step, times, out, load = timed_steps(unet, step_inputs(args.size, args.tiny), args.runs)
    return {"step": step, "times": times, "load": loaded, "peak_rss_mb": peak_rss_mb(),
            "difference": compared(out, folder), "load_average": load}


def child(stage: str, args: argparse.Namespace, folder: Path) -> dict:
    command = [sys.executable, __file__, "--stage", stage, "--keep", str(folder), "--runs", str(args.runs),
               "--size", str(args.size), *(["--tiny"] if args.tiny else [])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if done.returncode:
        raise RuntimeError(f"the {stage} stage failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(figures: dict[str, dict], args: argparse.Namespace) -> list[str]:
    """The figures as lines: a header, one line per engine, then the one-off preparations. A stage that
    did not run (see `main`) is left out."""
    torch_run = figures.get("torch")
    side = args.size // 8
    size = f"{torch_run['parameters'] / 1e6:,.1f} M parameters, " if torch_run else ""
    lines = [f"{'tiny SDXL-shaped' if args.tiny else 'SDXL-Turbo'} UNet ({size}random weights), one step at "
             f"{args.size}x{args.size} px ({side}x{side} latents), batch 1, median of {args.runs} after a warm-up:"]
    if torch_run:
        lines.append(f"  torch fp32     {torch_run['step']:7.2f} s   peak RSS {torch_run['peak_rss_mb']:6.0f} MB  "
                     f"(built in {torch_run['build']:.0f} s; {load_and_times(torch_run)})")
    for stage, name in (("openvino", "OpenVINO fp32"), ("int8", "OpenVINO int8")):
        run = figures.get(stage)
        if run is None:
            continue
        versus = f"{torch_run['step'] / run['step']:.2f}x torch; " if torch_run else ""
        difference = f"; largest difference {run['difference']:.1e} of torch's largest value" if torch_run else ""
        lines.append(f"  {name:14s} {run['step']:7.2f} s   peak RSS {run['peak_rss_mb']:6.0f} MB  "
                     f"({versus}loaded in {run['load']:.0f} s{difference}; {load_and_times(run)})")
    if "convert" in figures:
        convert = figures["convert"]
        lines.append(f"  conversion to IR (once per model): {convert['seconds']:.0f} s, peak RSS "
                     f"{convert['peak_rss_mb']:.0f} MB (the torch UNet built first in {convert['build']:.0f} s), "
                     f"IR {convert['ir_mb']:.0f} MB")
    if "compress" in figures:
        compress = figures["compress"]
        lines.append(f"  int8 compression (once per model): {compress['seconds']:.0f} s, peak RSS "
                     f"{compress['peak_rss_mb']:.0f} MB, IR {compress['ir_mb']:.0f} MB")
    return lines


def load_and_times(run: dict) -> str:
    before, after = run.get("load_average", (0.0, 0.0))
    return f"steps {', '.join(f'{t:.2f}' for t in run['times'])} s, load average {before:.1f} then {after:.1f}"


# What each stage needs done before it.
NEEDS = {"torch": None, "convert": None, "openvino": "convert", "compress": "convert", "int8": "compress"}


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if args.stage:
        print(json.dumps(run_stage(args.stage, args, args.keep)))
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="sdxl-openvino-"))
    folder.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict] = {}
    try:
        for stage in args.stages:
            if NEEDS[stage] in args.stages and NEEDS[stage] not in figures:
                continue  # it failed: this one has nothing to start from
            print(f"... {stage}", flush=True)
            try:
                figures[stage] = child(stage, args, folder)
            except RuntimeError as exc:  # out of memory, say: the other stages' figures still count
                print(f"  {stage} failed, left out: {str(exc).splitlines()[0]} {str(exc).splitlines()[-1]}",
                      flush=True)
        print("\n".join(report(figures, args)))
        if len(figures) < len(args.stages):
            return 1
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
