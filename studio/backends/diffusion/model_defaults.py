"""An image model's family and the settings it starts with (steps, guidance, size), told without loading it:
from its catalogue entry (known before any download), or from its files on this machine (a pipeline
folder's configs, a single checkpoint's safetensors header).

The Image tab switches to these when a model is picked, as Forge's presets switch with the family.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio.backends.diffusion.families import Family, family_named
from studio.catalog import CpuStep, ImageDefaults, ModelEntry
from studio.model_folders import FLUX, SD1, SD2, SD3, SDXL, checkpoint_family, weights_header

# (architecture, distilled guidance) -> steps, guidance, size: what a model without its own figures gets.
FAMILY_DEFAULTS: dict[tuple[str, bool], tuple[int, float, int]] = {
    (SD1, False): (25, 7.0, 512),  # AUTOMATIC1111's usual steps and CFG
    (SD2, False): (25, 7.0, 768),  # SD 2.1's card: 768 px
    (SDXL, False): (30, 6.0, 1024),
    (SD3, False): (40, 4.5, 1024),  # SD 3.5 Medium's card
    (FLUX, False): (4, 0.0, 1024),  # FLUX.1-schnell's card: guidance-free
    (FLUX, True): (28, 3.5, 1024),  # FLUX.1-dev: distilled guidance 3.5
}


@dataclass(frozen=True)
class ModelDefaults:
    """What the Image tab shows for a model: its family's controls and its own starting settings."""

    family: Family
    steps: int
    guidance: float
    size: int  # px, square
    architecture: str | None  # model_folders' words; None when neither the catalogue nor the files tell
    cpu_step: CpuStep | None = None  # its step on a CPU as timed on its real-size architecture (catalogue)


def defaults_of(entry: ModelEntry, where: Callable[[], Path | None]) -> ModelDefaults:
    """The entry's own figures, the rest from its family. `where()` finds its files on this machine (or None);
    it is asked only when the catalogue cannot tell."""
    own = entry.image or ImageDefaults()
    told: tuple[str, bool] | None = (own.architecture, own.distilled_guidance) if own.architecture else None
    folder = None
    if told is None or own.size is None:
        folder = where()
        if told is None and folder is not None:
            told = architecture_of(folder)
    architecture, distilled = told or (SD1, False)
    steps, guidance, size = FAMILY_DEFAULTS.get((architecture, distilled and architecture == FLUX),
                                                FAMILY_DEFAULTS[(SD1, False)])
    size = own.size or (config_size(folder) if folder is not None else None) or size
    return ModelDefaults(
        family=family_named(architecture, distilled),
        steps=own.steps if own.steps is not None else steps,
        guidance=own.guidance if own.guidance is not None else guidance,
        size=size,
        architecture=told[0] if told else None,
        cpu_step=own.cpu_step,
    )


def architecture_of(where: Path) -> tuple[str, bool] | None:
    """(architecture, distilled guidance) of a pipeline folder or a single .safetensors or .gguf file, from configs
    and headers only; None for anything else."""
    from studio.backends.diffusion.flow_files import FLUX_DEV, base_model

    try:
        if where.is_file():
            header = weights_header(where)
            found = checkpoint_family(header)
            if found is None:
                return None
            return found, found == FLUX and base_model(header, FLUX) == FLUX_DEV
        name = str(_config(where / "model_index.json").get("_class_name", ""))
        if name.startswith("Flux"):
            return FLUX, bool(_config(where / "transformer" / "config.json").get("guidance_embeds"))
        if name.startswith("StableDiffusion3"):
            return SD3, False
        if "XL" in name:
            return SDXL, False
        if name.startswith("StableDiffusion"):
            # SD 1.x cross-attends to CLIP-L (768 wide), SD 2.x to OpenCLIP-H (1024 wide).
            width = _config(where / "unet" / "config.json").get("cross_attention_dim")
            return (SD2 if width == 1024 else SD1), False
    except (OSError, ValueError):
        return None
    return None


def config_size(where: Path) -> int | None:
    """The size a pipeline folder's denoiser was trained at, from its config (None: a file, or not said)."""
    for part in ("unet", "transformer"):
        try:
            sample = _config(where / part / "config.json").get("sample_size")
        except (OSError, ValueError):
            continue
        if isinstance(sample, int) and sample > 0:
            return sample * 8
    return None


def _config(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} is not a config")
    return data
