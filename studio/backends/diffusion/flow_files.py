"""SD 3.x and FLUX.1 from single .safetensors or .gguf files.

Artists mostly have FLUX and SD 3.5 as a transformer alone (flux1-dev.safetensors from Black Forest
Labs, fine-tunes from Civitai): the text encoders and VAE come from the base model's diffusers folder,
which the studio finds as a downloaded catalogue model (or the entry's `config` folder). A whole
checkpoint (transformer, encoders and VAE in one file, as ComfyUI saves them) loads by itself, with the
configs diffusers fetches once. A GGUF file (the community's Q4/Q8 quantisations) is always a transformer
alone: diffusers keeps its weights quantised and dequantises each layer's as it runs (GGUFQuantizationConfig),
in either key layout (Black Forest Labs' original names, or diffusers' own, loaded as they are).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from studio.catalog import ModelEntry
from studio.errors import StudioError
from studio.model_folders import FLUX, SD3, checkpoint_family, weights_header

# The base model whose other parts a transformer file is used with.
FLUX_SCHNELL, FLUX_DEV = "black-forest-labs/FLUX.1-schnell", "black-forest-labs/FLUX.1-dev"
SD35_MEDIUM, SD35_LARGE = "stabilityai/stable-diffusion-3.5-medium", "stabilityai/stable-diffusion-3.5-large"
# Prefixes of the parts besides the transformer in a whole checkpoint.
OTHER_PARTS = ("first_stage_model.", "vae.", "text_encoders.", "cond_stage_model.", "conditioner.")


def flow_family(path: Path) -> str | None:
    """SD 3.x or FLUX for a single file of either, else None (headers only)."""
    try:
        family = checkpoint_family(weights_header(path))
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


def base_id_of(entry: ModelEntry, header: dict, family: str) -> str:
    """The catalogue model whose text encoders and VAE a transformer file runs with: the entry's `base`, or
    the one its tensors suggest."""
    return getattr(entry, "base", None) or base_model(header, family)


def base_location(entry: ModelEntry, header: dict, family: str, name: str,
                  base_folder: Callable[[str], Path | None]) -> Path:
    """The folder of a transformer file's base model, or one sentence saying which base is missing."""
    config = getattr(entry, "config", None)
    base_id = base_id_of(entry, header, family)
    base = Path(config) if config else base_folder(base_id)
    if base is None:
        raise StudioError(
            f"{name} holds only a {family} transformer; its text encoders and VAE come from {base_id}, which is "
            f"not on this machine. Download it (python -m studio download {base_id}, or the Models tab), or add "
            f"config = \"/folder/of/{base_id.split('/')[-1]}\" to its entry in your models file."
        )
    return base


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

    header = weights_header(path)
    pipeline_class = FluxPipeline if family == FLUX else StableDiffusion3Pipeline
    config = getattr(entry, "config", None)
    quantised = path.suffix.lower() == ".gguf"
    if not quantised and any(name.startswith(OTHER_PARTS) for name in header):
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
    base = base_location(entry, header, family, path.name, base_folder)
    transformer_class = FluxTransformer2DModel if family == FLUX else SD3Transformer2DModel
    extra = {}
    if quantised:
        from diffusers import GGUFQuantizationConfig

        # The weights stay in their quantised blocks; each layer is dequantised to `dtype` as it runs.
        extra["quantization_config"] = GGUFQuantizationConfig(compute_dtype=dtype)
    try:
        transformer = transformer_class.from_single_file(
            str(path), config=str(base), subfolder="transformer", torch_dtype=dtype, local_files_only=True, **extra,
        )
        return pipeline_class.from_pretrained(
            base, transformer=transformer, dtype=dtype, use_safetensors=True, local_files_only=True,
        )
    except (OSError, ValueError, KeyError, RuntimeError, IndexError) as exc:
        raise StudioError(
            f"The {family} transformer {path.name} does not fit the base model at {base} ({first_line(exc)})."
        ) from None


def base_parts(entry: ModelEntry, path: Path, base_folder: Callable[[str], Path | None]) -> list[Path]:
    """The weight files of the base model's other parts (text encoders, VAE) a transformer file runs with, for
    the memory check; none for a pipeline folder, a whole checkpoint, or a base not on this machine (loading
    says so in its own sentence)."""
    from studio.backends.diffusion.memory import weight_files

    if not path.is_file() or (family := flow_family(path)) is None:
        return []
    try:
        header = weights_header(path)
        if path.suffix.lower() != ".gguf" and any(name.startswith(OTHER_PARTS) for name in header):
            return []
        base = base_location(entry, header, family, path.name, base_folder)
        return [f for f in weight_files(base, None) if f.parent.name != "transformer"]
    except (StudioError, OSError, ValueError):
        return []


def file_hash(path: Path) -> str:
    """A weights file's sha256, its first 10 hex digits (AUTOMATIC1111's model hash)."""
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:10]
