"""Which backends each family's replicas run, built the way the facade builds them in-process, and
which of their methods go to Ray (the rest, catalogue look-ups and the like, stay in the front end)."""

from __future__ import annotations

from typing import Any

from studio.catalog import load_catalog
from studio.runtime import ModelCache
from studio.settings import Settings

# family -> {the Studio attribute holding the backend: the methods that run models}
REMOTE_METHODS: dict[str, dict[str, tuple[str, ...]]] = {
    "image": {"image": ("generate",), "image_walks": ("prompt_walk", "image_morph"), "upscaler": ("upscale",)},
    # The per-frame methods too: style walks, video restyling and the live mirror call them frame by
    # frame from the front end, which keeps the loop (Stop, progress, the temporal blend, the video
    # files) and sends each frame's network run to a replica.
    "style": {"style": ("stylize", "style_vector", "render_weights", "render_vector")},
    "text": {"text": ("stream",)},
    "music": {"music": ("generate",)},
    "melody": {"melody": ("generate",)},
    "walks": {"patterns": ("render",), "melody_walks": ("walk",)},
}
# Methods whose result is a stream of updates rather than progress and one result.
STREAMING = frozenset({("text", "stream")})


def checkpoint_of(target: str, method: str, args: tuple) -> str | None:
    """The image checkpoint a call needs, so Serve routes it to a replica that already holds it."""
    if target == "image" and method == "generate" and args:
        return getattr(args[0], "model", None)
    if target == "image_walks" and method == "prompt_walk" and args:
        return args[0].settings.model
    if target == "image_walks" and method == "image_morph" and len(args) > 2:
        return args[2].model
    return None


def build(settings: Settings, family: str) -> dict[str, Any]:
    """The backends of `family`, keyed by their Studio attribute, over a model cache of their own."""
    cache = ModelCache(settings.model_memory_budget_mb)
    if family == "style":
        from studio.backends.stylize import StyleBackend

        return {"style": StyleBackend(cache, settings.device)}
    if family == "melody":
        from studio.backends.melody import MelodyBackend

        return {"melody": MelodyBackend(cache, settings.device)}
    if family == "walks":
        from studio.backends.melody_walk import MelodyWalkBackend
        from studio.backends.patterns import PatternBackend

        return {"patterns": PatternBackend(settings.max_pattern_side, settings.max_walk_frames),
                "melody_walks": MelodyWalkBackend(cache)}
    catalog = load_catalog(settings.models_file, settings.checkpoint_folders)
    if family == "text":
        from studio.backends.language import TextBackend

        return {"text": TextBackend(cache, catalog, device=settings.device, offline=settings.offline)}
    if family == "music":
        from studio.backends.musicgen import MusicBackend

        return {"music": MusicBackend(cache, catalog, device=settings.device, offline=settings.offline)}
    if family == "image":
        from studio.backends.diffusion import DiffusionBackend
        from studio.backends.diffusion.walks import DiffusionWalks
        from studio.backends.upscale import UpscaleBackend

        upscaler = UpscaleBackend(cache, settings.device, settings.upscaler_folders)
        image = DiffusionBackend(
            cache, catalog, settings.device, settings.offline,
            openvino_dir=settings.cache_dir / "openvino" if settings.openvino else None,
            lora_dirs=settings.lora_folders, embedding_dirs=settings.embedding_folders,
            upscale_picture=upscaler.picture, upscaler_names=upscaler.hires_names,
        )
        return {"image": image, "image_walks": DiffusionWalks(image), "upscaler": upscaler}
    raise ValueError(f"unknown family {family!r}")
