"""SD 3.x and FLUX.1 from single .safetensors files.

Artists mostly have FLUX and SD 3.5 as a transformer alone (flux1-dev.safetensors from Black Forest
Labs, fine-tunes from Civitai): the text encoders and VAE come from the base model's diffusers folder,
which the studio finds as a downloaded catalogue model (or the entry's `config` folder). A whole
checkpoint (transformer, encoders and VAE in one file, as ComfyUI saves them) loads by itself, with the
configs diffusers fetches once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from studio.catalog import ModelEntry
from studio.errors import StudioError
from studio.model_folders import FLUX, SD3, checkpoint_family, safetensors_header

# The base model whose other parts a transformer file is used with.
FLUX_SCHNELL, FLUX_DEV = "black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-dev"
SD35_MEDIUM, SD35_LARGE = "stabilityai/stable-diffusion-3.5-medium", "stabilityai/stable-diffusion-3.5-large"
# Prefixes of the parts besides the transformer in a whole checkpoint.
OTHER_PARTS = ("first_stage_model.", "vae.", "text_encoders.", "cond_stage_model.", "conditioner.")


def flow_family(path: Path) -> str | None:
    """SD 3.x or FLUX for a single file of either, else None (headers only)."""
    try:
        family = checkpoint_family(safetensors_header(path))
    except (OSError, ValueError):
        return None
    return family if family in (SD3, FLUX) else None


def base_model(header: dict, family: str) -> str:
    """The catalogue model a transformer file belongs to: FLUX.1-dev if it reads a guidance input, SD 3.5
    Large if it has more than 24 joint blocks."""
    names = [name.removeprefix("model.diffusion_model.") for name in header if name != "__metadata__"]
    if family == FLUX:
        return FLUX_DEV if any(n.startswith(("guidance_in.", "time_text_embed.guidance_embedder.")) for n in names) \
            else FLUX_SCHNELL
    blocks = {n.split(".")[1] for n in names if n.startswith(("joint_blocks.", "transformer_blocks."))}
    return SD35_LARGE if len(blocks) > 24 else SD35_MEDIUM


def load_flow_file(
    entry: ModelEntry, path: Path, family: str, dtype, offline: bool, base_folder: Callable[[str], Path | None]
):
    """The pipeline for an SD 3.x or FLUX file: a whole checkpoint by itself, a transformer with the base
    model's other parts."""
    from diffusers import (
        FluxPipeline,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    from studio.errors import first_line

    header = safetensors_header(path)
    pipeline_class = FluxPipeline if family == FLUX else StableDiffusion3Pipeline
    config = getattr(entry, "config", None)
    if any(name.startswith(OTHER_PARTS) for name in header):
        try:
            return pipeline_class.from_single_file(
                str(path), dtype=dtype, config=str(config) if config else None,
                local_files_only=offline or config is not None,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise StudioError(
                f"The {family} checkpoint {path.name} could not be loaded: the model configs it needs are not on "
                f"this machine ({first_line(exc)}). Run the studio once with internet, or add "
                f"config = \"/folder/of/a/{family}/diffusers/model\" to its entry in your models file."
            ) from None
    base_id = base_model(header, family)
    base = Path(config) if config else base_folder(base_id)
    if base is None:
        raise StudioError(
            f"{path.name} holds only a {family} transformer; its text encoders and VAE come from {base_id}, which is "
            f"not on this machine. Download it (python -m studio download {base_id}, or the Models tab), or add "
            f"config = \"/folder/of/{base_id.split('/')[-1]}\" to its entry in your models file."
        )
    transformer_class = FluxTransformer2DModel if family == FLUX else SD3Transformer2DModel
    try:
        transformer = transformer_class.from_single_file(
            str(path), config=str(base), subfolder="transformer", torch_dtype=dtype, local_files_only=True,
        )
        return pipeline_class.from_pretrained(
            base, transformer=transformer, dtype=dtype, use_safetensors=True, local_files_only=True,
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise StudioError(
            f"The {family} transformer {path.name} does not fit the base model at {base} ({first_line(exc)})."
        ) from None
