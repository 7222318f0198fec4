"""Where SD-Turbo's time goes on this CPU, side by side: one UNet step in float32 and bfloat16
(plain and channels-last), and decoding 512 px with the full VAE and with TAESD; then the UNet step
and TAESD's decode on torch and on OpenVINO (the studio's conversion), taking turns. These figures
decide the studio's CPU path (studio.backends.diffusion.compute_dtype, diffusion/openvino_unet.py). Random
weights in the real architectures; see image_speed.py.

    nice -n 5 python benchmarks/image_components.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from image_speed import build_random_sd_turbo  # noqa: E402  (a sibling script)


def best_of(fn, runs: int = 2) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def taking_turns(contenders: dict, rounds: int = 5) -> dict[str, float]:
    """Median seconds of each contender, called in turn `rounds` times after one warm-up each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def openvino_against_torch(folder: Path, latents, step, text) -> None:
    import torch
    from diffusers import AutoencoderTiny, UNet2DConditionModel

    from studio.backends.diffusion import openvino_unet

    unet = UNet2DConditionModel.from_pretrained(folder / "sd-turbo" / "unet", variant="fp16", dtype=torch.float32)
    ir_file = folder / "openvino-parts" / "unet.xml"
    if not ir_file.exists():
        openvino_unet.export_unet(unet, ir_file)
    twin = openvino_unet.load_converted_unet(ir_file)
    taesd = AutoencoderTiny.from_pretrained(folder / "taesd", dtype=torch.float32)
    fast_taesd = AutoencoderTiny.from_pretrained(folder / "taesd", dtype=torch.float32)
    openvino_unet.accelerate_taesd(fast_taesd)
    with torch.inference_mode():
        unets = taking_turns({"torch": lambda: unet(latents, step, text), "openvino": lambda: twin(latents, step, text)})
        decoders = taking_turns({"torch": lambda: taesd.decode(latents), "openvino": lambda: fast_taesd.decode(latents)})
    for part, medians in (("UNet step, 64x64 latents", unets), ("decode 512 px, TAESD", decoders)):
        print(f"{part}, float32: torch {medians['torch']:5.2f} s, OpenVINO {medians['openvino']:5.2f} s "
              f"({medians['torch'] / medians['openvino']:.2f}x; median of 5, taking turns)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the random models here once and reuse them")
    args = parser.parse_args()
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel

    folder = args.keep or Path(tempfile.mkdtemp(prefix="image-parts-"))
    try:
        if not (folder / "taesd" / "config.json").exists():
            build_random_sd_turbo(folder)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
              f"{torch.backends.cpu.get_cpu_capability()}")
        latents = torch.randn(1, 4, 64, 64)
        text = torch.randn(1, 77, 1024)
        step = torch.tensor([999])
        unet = UNet2DConditionModel.from_pretrained(folder / "sd-turbo" / "unet", variant="fp16", dtype=torch.float32)
        with torch.inference_mode():
            for dtype, channels_last in ((torch.float32, False), (torch.bfloat16, False), (torch.bfloat16, True)):
                unet.to(dtype=dtype, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
                x = latents.to(dtype)
                x = x.to(memory_format=torch.channels_last) if channels_last else x
                seconds = best_of(lambda x=x, dtype=dtype, model=unet: model(x, step, text.to(dtype)))
                layout = ", channels-last" if channels_last else ""
                print(f"UNet step, 64x64 latents, {str(dtype).removeprefix('torch.')}{layout}: {seconds:6.2f} s")
            del unet
            vae = AutoencoderKL.from_pretrained(folder / "sd-turbo" / "vae", variant="fp16", dtype=torch.float32)
            full = best_of(lambda: vae.decode(latents / 0.18215).sample, runs=1)
            taesd = AutoencoderTiny.from_pretrained(folder / "taesd", dtype=torch.float32)
            tiny = best_of(lambda: taesd.decode(latents).sample)
        print(f"decode 512 px, full VAE (float32):   {full:6.2f} s")
        print(f"decode 512 px, TAESD (float32):      {tiny:6.2f} s   ({full / tiny:.0f}x faster)")
        openvino_against_torch(folder, latents, step, text)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
