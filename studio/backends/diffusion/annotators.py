"""The trained ControlNet preprocessors: Depth Anything V2 Small for depth maps and ViTPose for people's
poses, both through transformers. Each is a catalogue model fetched on first use by the studio's own hub
code (safetensors only; offline, the one message that says how to get it), loaded once into the model
cache and kept.

Pose: ViTPose is a top-down model: it finds the keypoints of a person inside a box. The whole picture is
that box, with no person detector before it: the pose pictures people give a ControlNet are nearly always
of one figure, and a detector would add a second download (RT-DETR: about 170 MB) and its run time on a
CPU for every map. A picture of a group gives one skeleton (the most prominent person's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from studio import hub
from studio.backends.diffusion.pose_drawing import draw_openpose
from studio.catalog import Catalog, ModelEntry
from studio.errors import StudioError
from studio.runtime import CacheKey, ModelCache, loading_errors

DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
POSE_MODEL = "usyd-community/vitpose-base-simple"
# The control types that need a trained annotator, and its catalogue id.
MODELS = {"depth": DEPTH_MODEL, "openpose": POSE_MODEL}
VARIANT = "annotator"


@dataclass
class Annotator:
    model: Any  # a transformers model in eval mode
    processor: Any  # its image processor
    entry: ModelEntry


def require_safetensors(entry: ModelEntry, where: Path) -> None:
    """A folder without .safetensors weights (a `pytorch_model.bin` one) is refused before transformers
    could look for a pickle."""
    if where.is_file():
        raise StudioError(f"The annotator '{entry.name}' must be a model folder (config.json, "
                          f"preprocessor_config.json, model.safetensors), not the file {where.name}.")
    if not any(where.glob("*.safetensors")):
        raise StudioError(f"The annotator '{entry.name}' at {where} has no .safetensors weights (the studio never "
                          "loads pickles such as .bin files): give it the model's folder with model.safetensors.")


class Annotators:
    """Depth and pose maps for the control types that need a model; the models come from the cache."""

    def __init__(self, catalog: Catalog, cache: ModelCache, device: str = "cpu", *, offline: bool):
        self.catalog, self.cache, self.device, self.offline = catalog, cache, device, offline

    def load(self, control_type: str) -> Annotator:
        entry = self.catalog.get(MODELS[control_type])

        def load() -> tuple[Annotator, float]:
            where = hub.locate(entry, offline=self.offline)
            with loading_errors(entry.name, where):
                require_safetensors(entry, where)
                model, processor = _read(control_type, where)
                model = model.to(self.device).eval()
            size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
            return Annotator(model, processor, entry), size_mb

        return self.cache.get(CacheKey(entry.id, "float32", self.device, variant=VARIANT), load)

    def __call__(self, control_type: str, pixels: np.ndarray) -> np.ndarray:
        """The map of an RGB picture (height x width x 3, uint8) at its own size."""
        picture = Image.fromarray(pixels, "RGB")
        if control_type == "depth":
            return self.depth(picture)
        if control_type == "openpose":
            return self.pose(picture)
        raise StudioError(f"The control type '{control_type}' has no annotator model.")

    def depth(self, picture: Image.Image) -> np.ndarray:
        """An 8-bit grey depth map at the picture's size, near white and far black (Depth Anything gives
        relative inverse depth: larger is nearer), stretched over the whole 0-255 range."""
        import torch

        annotator = self.load("depth")
        inputs = annotator.processor(images=picture, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            predicted = annotator.model(**inputs).predicted_depth
        depth = torch.nn.functional.interpolate(predicted[:, None].float(), size=(picture.height, picture.width),
                                                mode="bicubic", align_corners=False)[0, 0].cpu().numpy()
        low, high = float(depth.min()), float(depth.max())
        if not np.isfinite([low, high]).all() or high - low < 1e-6:
            return np.zeros((picture.height, picture.width), dtype=np.uint8)  # a flat picture: no depth to show
        return np.clip((depth - low) / (high - low) * 255 + 0.5, 0, 255).astype(np.uint8)

    def keypoints(self, picture: Image.Image) -> list[tuple[np.ndarray, np.ndarray]]:
        """The person's COCO-17 keypoints (pixels) and their scores, the whole picture taken as their box."""
        import torch

        annotator = self.load("openpose")
        boxes = [[[0.0, 0.0, float(picture.width), float(picture.height)]]]  # x, y, width, height
        inputs = annotator.processor(picture, boxes=boxes, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            outputs = annotator.model(**inputs)
        people = annotator.processor.post_process_pose_estimation(outputs, boxes=boxes)[0]
        return [(person["keypoints"].cpu().numpy(), person["scores"].cpu().numpy()) for person in people]

    def pose(self, picture: Image.Image) -> np.ndarray:
        return draw_openpose(picture.size, self.keypoints(picture))


def _read(control_type: str, where: Path) -> tuple[Any, Any]:
    """The model and its image processor from a folder, as transformers reads a hub snapshot."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation, VitPoseForPoseEstimation

    model_class = AutoModelForDepthEstimation if control_type == "depth" else VitPoseForPoseEstimation
    model = model_class.from_pretrained(where, use_safetensors=True, local_files_only=True)
    # PIL: the processors' portable path (their torchvision one needs a package the studio does not install).
    processor = AutoImageProcessor.from_pretrained(where, local_files_only=True, backend="pil")
    return model, processor
