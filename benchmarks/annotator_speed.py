"""What the depth and pose control types cost: Depth Anything V2 Small and ViTPose base, real-size
architectures (transformers' default configs are these two) with random weights, saved as their hub
repositories and loaded through the studio's own path (hub.locate in a Hugging Face cache, then
Annotators). Printed: each model's weights file (the catalogue's size), the first map (loading
included), and the median of the maps after it (wall clock and CPU time), at 512x512 on the bundled
rocket photo. Speed does not depend on the weights' values.

    nice -n 5 python benchmarks/annotator_speed.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZE = (512, 512)


def build(folder: Path) -> dict[str, Path]:
    """Both models as their repositories hold them: config, image processor settings, model.safetensors."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        DPTImageProcessor,
        VitPoseConfig,
        VitPoseForPoseEstimation,
        VitPoseImageProcessor,
    )

    depth, pose = folder / "depth", folder / "pose"
    DepthAnythingForDepthEstimation(DepthAnythingConfig()).save_pretrained(depth, safe_serialization=True)
    DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14,
                      do_pad=False, resample=3, image_mean=[0.485, 0.456, 0.406],
                      image_std=[0.229, 0.224, 0.225]).save_pretrained(depth)
    VitPoseForPoseEstimation(VitPoseConfig(num_labels=17)).save_pretrained(pose, safe_serialization=True)
    VitPoseImageProcessor().save_pretrained(pose)
    return {"depth": depth, "openpose": pose}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import huggingface_hub.constants
    from PIL import Image

    from studio.backends.diffusion.annotators import MODELS, Annotators
    from studio.backends.diffusion.control_maps import make_map
    from studio.catalog import load_catalog
    from studio.runtime import ModelCache
    from tests.annotator_models import hub_snapshot

    picture = Image.open(ROOT / "assets" / "examples" / "rocket.jpg")
    with tempfile.TemporaryDirectory() as scratch:
        folders = build(Path(scratch))
        cache = Path(scratch) / "hub"
        for kind, folder in folders.items():
            hub_snapshot(cache, MODELS[kind], folder)
        huggingface_hub.constants.HF_HUB_CACHE = str(cache)
        catalog = load_catalog()
        annotators = Annotators(catalog, ModelCache(4096), "cpu", offline=True)
        print(f"{'type':9} {'model':40} {'weights':>9} {'catalogue':>9} {'first map':>10} {'next maps':>10} "
              f"{'(CPU time)':>10}")
        for kind, folder in folders.items():
            started = time.perf_counter()
            make_map(picture, kind, SIZE, annotate=annotators)
            first = time.perf_counter() - started
            times, cpu = [], []
            for _ in range(args.rounds):
                started, cpu_started = time.perf_counter(), time.process_time()
                make_map(picture, kind, SIZE, annotate=annotators)
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
            weights = (folder / "model.safetensors").stat().st_size / 2**20
            entry = catalog.get(MODELS[kind])
            print(f"{kind:9} {entry.id:40} {weights:7.0f} MB {entry.size_mb:6.0f} MB {first:8.2f} s "
                  f"{statistics.median(times):8.2f} s {statistics.median(cpu):8.2f} s")
    print(f"({SIZE[0]}x{SIZE[1]} px maps on the CPU; median of {args.rounds}; CPU time: all threads together, "
          "which on a machine shared with other work says more than the wall clock)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
