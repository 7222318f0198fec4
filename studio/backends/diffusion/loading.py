"""Reading diffusers weights: a pipeline folder or an original-layout single-file checkpoint
(safetensors only), quietly, without the safety checker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from studio.catalog import ModelEntry
from studio.errors import StudioError, first_line


def quiet_loading() -> None:
    """No per-component progress bars in the studio's log (downloads keep theirs)."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()  # e.g. TAESD's harmless "unexpected config attribute"
    transformers.utils.logging.disable_progress_bar()


def no_safety_checker(folder: Path) -> dict[str, Any]:
    """Pipelines that ship a safety checker get it switched off: the studio is an artist's tool, and
    the checker costs over a gigabyte. Other pipelines take no such argument."""
    import json

    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if "safety_checker" in index:
        return {"safety_checker": None, "requires_safety_checker": False}
    return {}


def _single_file_class(path: Path):
    """The pipeline class for an original-layout checkpoint, told apart by its keys (no weights read)."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as checkpoint:
            keys = set(checkpoint.keys())
            first_conv = "model.diffusion_model.input_blocks.0.0.weight"
            in_channels = checkpoint.get_slice(first_conv).get_shape()[1] if first_conv in keys else 4
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise StudioError(f"{path.name} is not a readable .safetensors checkpoint ({first_line(exc)}).") from None
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return StableDiffusionXLPipeline
    if in_channels == 9:
        return StableDiffusionInpaintPipeline
    return StableDiffusionPipeline


def from_single_file(
    entry: ModelEntry, path: Path, dtype, offline: bool, base_folder: Callable[[str], Path | None] = lambda _id: None
):
    """A checkpoint in one .safetensors file, the format artists usually have. diffusers needs the
    matching model configs for it: from `config` in the entry (a diffusers folder), or fetched from
    the hub once (cached afterwards). SD 3.x and FLUX files go to flow_files (a transformer alone is
    used with its base model's other parts, found by `base_folder(model_id)`)."""
    if path.suffix.lower() not in (".safetensors", ".gguf"):
        raise StudioError(f"{path.name}: the studio loads single-file checkpoints only as .safetensors (or .gguf "
                          "for FLUX and SD 3.x transformers).")
    from studio.backends.diffusion.flow_files import flow_family, load_flow_file

    family = flow_family(path)
    if family is None and path.suffix.lower() == ".gguf":
        raise StudioError(f"{path.name} is not a FLUX or SD 3.x transformer in GGUF (a damaged file, or another "
                          "kind of model), so the studio cannot load it.")
    if family is not None:
        return load_flow_file(entry, path, family, dtype, offline, base_folder)
    pipeline_class = _single_file_class(path)
    config = getattr(entry, "config", None)
    try:
        return pipeline_class.from_single_file(
            str(path),
            dtype=dtype,
            config=str(config) if config else None,
            local_files_only=offline or config is not None,
            **({"safety_checker": None, "requires_safety_checker": False}
               if pipeline_class.__name__ != "StableDiffusionXLPipeline" else {}),
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        where = "offline, the" if offline else "the"
        raise StudioError(
            f"The checkpoint {path.name} could not be loaded: {where} model configs it needs are not on this "
            f"machine ({first_line(exc)}). Run the studio once with internet to fetch them, or add "
            f"config = \"/folder/of/a/matching/diffusers/model\" (e.g. a downloaded Stable Diffusion 1.5) to "
            f"its entry in your models file."
        ) from None
