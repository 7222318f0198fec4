"""The fast LCM switch: an SD 1.5 or SDXL model in 4 steps with its latent consistency LoRA.

The LCM-LoRA is a catalogue entry downloaded on first use (hub.locate: the cache, a download, or the
one offline message). It goes on the model through the same LoRA machinery as a `<lora:...>` tag
(loras.applied), first among the run's LoRAs, so the artist's own LoRAs combine with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio import hub
from studio.backends.diffusion.loras import AppliedLora, cached_lora
from studio.backends.diffusion.prompts import is_sdxl
from studio.catalog import Catalog, ModelEntry
from studio.errors import InputError, StudioError
from studio.model_folders import SD1, SD2, SDXL
from studio.runtime import ModelCache

# The LCM-LoRA the latent-consistency authors trained for each base.
LCM_LORAS = {SD1: "latent-consistency/lcm-lora-sdv1-5", SDXL: "latent-consistency/lcm-lora-sdxl"}
LCM_WEIGHT = 1.0
LORA_FILE = "pytorch_lora_weights.safetensors"  # the name in both hub repositories
# Words in a model's name that say it already makes pictures in a few steps (distilled or LCM-merged).
FEW_STEP_WORDS = ("turbo", "lightning", "lcm")
SWITCH = "The fast LCM switch"


def model_base(pipe: Any) -> str | None:
    """SD 1.x, SD 2.x or SDXL, from the loaded pipeline's architecture; None for anything else.

    SD 2.x UNets project attention inputs with linear layers and cross-attend to OpenCLIP-H (1024 wide);
    SD 1.x ones use 1x1 convolutions and CLIP-L (768 wide)."""
    config = getattr(getattr(pipe, "unet", None), "config", None)
    if config is None or getattr(pipe, "text_encoder", None) is None:
        return None
    if is_sdxl(pipe):
        return SDXL
    if getattr(config, "addition_embed_type", None) is not None:
        return None  # conditioned on more than text: not a plain SD 1.x / 2.x UNet
    width = getattr(config, "cross_attention_dim", None)
    if width == 1024 or (width != 768 and getattr(config, "use_linear_projection", False)):
        return SD2
    return SD1


def few_step_name(entry: ModelEntry) -> bool:
    text = f"{entry.id} {entry.name}".lower()
    return any(word in text for word in FEW_STEP_WORDS)


def refuse_by_name(entry: ModelEntry) -> None:
    """Before loading anything: a model whose name says it is already a few-step model."""
    if few_step_name(entry):
        raise InputError(f"'{entry.name}' is already a few-step model (1-4 steps); {SWITCH.lower()} is for "
                         "SD 1.5 and SDXL models, so run it without the switch.")


def lcm_entry(catalog: Catalog, entry: ModelEntry, pipe: Any) -> ModelEntry:
    """The catalogue's LCM-LoRA for the loaded model, or one sentence saying why the switch cannot apply."""
    refuse_by_name(entry)
    if getattr(getattr(pipe.unet, "config", None), "time_cond_proj_dim", None) is not None:
        raise InputError(f"'{entry.name}' is already a latent consistency (few-step) model; run it without "
                         f"{SWITCH.lower()}.")
    base = model_base(pipe)
    if base == SD2:
        raise InputError(f"{SWITCH} needs an SD 1.5 or SDXL model; '{entry.name}' is an SD 2.x model, for which "
                         "there is no LCM-LoRA (SD-Turbo, itself SD 2.1-based, is already a few-step model).")
    if base not in LCM_LORAS:
        raise InputError(f"{SWITCH} needs an SD 1.5 or SDXL model; '{entry.name}' is neither.")
    return catalog.get(LCM_LORAS[base])


def lcm_lora(catalog: Catalog, cache: ModelCache, entry: ModelEntry, pipe: Any, *, offline: bool) -> AppliedLora:
    """The model's LCM-LoRA at weight 1, read once into the cache (downloaded first if needed and allowed)."""
    lora_entry = lcm_entry(catalog, entry, pipe)
    where = hub.locate(lora_entry, offline=offline)
    return AppliedLora(cached_lora(cache, lora_file(lora_entry, where), lcm_name(lora_entry)), LCM_WEIGHT)


def lcm_name(lora_entry: ModelEntry) -> str:
    """What the LoRA is called in records: the repository's name, as AUTOMATIC1111 users name the file."""
    return lora_entry.id.rsplit("/", 1)[-1]


def lora_file(lora_entry: ModelEntry, where: Path) -> Path:
    """The weights file in the downloaded folder (or the file a local entry names)."""
    if where.is_file():
        return where
    if (where / LORA_FILE).is_file():
        return where / LORA_FILE
    found = sorted(where.glob("*.safetensors"))
    if len(found) != 1:
        raise StudioError(f"The folder of '{lora_entry.name}', {where}, has no single .safetensors LoRA file.")
    return found[0]
