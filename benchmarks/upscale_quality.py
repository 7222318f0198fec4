"""Is Real-ESRGAN worth it? Real photos shrunk 4x and enlarged back: Real-ESRGAN against Lanczos.

For each photo (the studio's bundled examples and scikit-learn's sample images, each cut to a centred
square of `--side` px), prints the variance of the Laplacian (sharpness; the original's too) and SSIM
on luminance against the original, for Lanczos and for each built-in upscaler asked for.

Run: `make bench` or `.venv/bin/python benchmarks/upscale_quality.py [--side 256]
[--upscaler realesrgan-x4plus --upscaler realesr-animevideov3]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from studio.backends.upscale import UpscaleBackend, UpscaleRequest  # noqa: E402
from studio.media.images import LoadedImage  # noqa: E402
from studio.media.quality import sharpness, ssim  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402


def photos(side: int) -> dict[str, Image.Image]:
    from sklearn.datasets import load_sample_image

    found = {p.name: Image.open(p).convert("RGB") for p in sorted((ROOT / "assets" / "examples").glob("*.jpg"))}
    for name in ("china.jpg", "flower.jpg"):
        found[f"sklearn {name}"] = Image.fromarray(load_sample_image(name))
    out = {}
    for name, image in found.items():
        crop = min(image.size)
        left, top = (image.width - crop) // 2, (image.height - crop) // 2
        out[name] = image.crop((left, top, left + crop, top + crop)).resize((side, side), Image.Resampling.LANCZOS)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256, help="side of each original in px (shrunk to side/4)")
    parser.add_argument("--upscaler", action="append", help="built-in upscaler ids (default: x4plus and animevideov3)")
    args = parser.parse_args()
    upscalers = args.upscaler or ["realesrgan-x4plus", "realesr-animevideov3"]
    backend = UpscaleBackend(ModelCache(4096), "cpu")
    scores: dict[str, list[tuple[float, float]]] = {"lanczos": [], **{u: [] for u in upscalers}}
    print(f"Shrunk 4x to {args.side // 4} px and enlarged back to {args.side} px; sharpness = variance of the "
          "Laplacian, SSIM on luminance against the original.")
    print(f"{'photo':<20} {'method':<24} {'sharpness':>10} {'SSIM':>7}")
    for name, original in photos(args.side).items():
        small = original.resize((args.side // 4, args.side // 4), Image.Resampling.LANCZOS)
        print(f"{name:<20} {'original':<24} {sharpness(original):10.0f}")
        results = {"lanczos": small.resize(original.size, Image.Resampling.LANCZOS)}
        for upscaler in upscalers:
            results[upscaler] = backend.upscale(LoadedImage(rgb=small), UpscaleRequest(upscaler, 4),
                                                max_pixels=10**9).image
        for method, image in results.items():
            scores[method].append((sharpness(image), ssim(image, original)))
            print(f"{'':<20} {method:<24} {scores[method][-1][0]:10.0f} {scores[method][-1][1]:7.4f}")
    print("Medians over the photos:")
    lanczos_sharp = statistics.median(s for s, _ in scores["lanczos"])
    for method, values in scores.items():
        sharp, fidelity = statistics.median(s for s, _ in values), statistics.median(q for _, q in values)
        wins = sum(q >= lq for (_, q), (_, lq) in zip(values, scores["lanczos"], strict=True))
        print(f"  {method:<24} sharpness {sharp:8.0f} ({sharp / lanczos_sharp:5.1f}x Lanczos)  SSIM {fidelity:.4f}  "
              f"SSIM >= Lanczos on {wins}/{len(values)} photos")


if __name__ == "__main__":
    main()
