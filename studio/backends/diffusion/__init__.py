"""The diffusion family: text-to-image, image-to-image, inpainting, outpainting and walks on
diffusers pipelines.

- `request`: what decides a picture (ImageRequest), the samplers, the limits, the result
- `pipelines`: loading a model once and running its pipelines (DiffusionBackend)
- `loading`: reading pipeline folders and single-file checkpoints
- `openvino_unet`: the CPU path that runs the UNet and TAESD's decoder on OpenVINO
- `canvas`: working sizes, masks, crops and the outpaint canvas
- `hires`: AUTOMATIC1111's hires fix: upscalers, sizes and the second pass's steps
- `metadata`: AUTOMATIC1111's `parameters` text, written and read back
- `prompts`: AUTOMATIC1111's prompt syntax (emphasis, BREAK, `<lora:...>` tags) read and encoded
- `loras`: `<lora:NAME:WEIGHT>` files found, read once and applied for a run
- `lcm`: the fast LCM switch: the model's LCM-LoRA from the catalogue, on through `loras`
- `embeddings`: textual-inversion files called by name in a prompt, loaded for a run
- `walks`: prompt/seed walks and image morphs

The names most callers need are importable from the package itself.
"""

from studio.backends.diffusion.canvas import fit_size
from studio.backends.diffusion.metadata import a1111_parameters, fields_from_parameters
from studio.backends.diffusion.pipelines import DiffusionBackend, LoadedModel, compute_dtype
from studio.backends.diffusion.request import (
    DEFAULT_DECODER,
    DEFAULT_MODEL,
    DEFAULT_SAMPLER,
    DEFAULT_SPEED,
    FULL_VAE,
    LCM_GUIDANCE,
    LCM_SAMPLER,
    LCM_STEPS,
    MAX_BATCH_COUNT,
    MAX_BATCH_SIZE,
    MAX_EXTEND,
    MAX_GUIDANCE,
    MAX_IMAGES,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    MODES,
    SAMPLERS,
    SPEEDS,
    ImageRequest,
    ImageResult,
    steps_for_strength,
    with_fast_lcm,
)

__all__ = [
    "DEFAULT_DECODER", "DEFAULT_MODEL", "DEFAULT_SAMPLER", "DEFAULT_SPEED", "FULL_VAE", "LCM_GUIDANCE", "LCM_SAMPLER",
    "LCM_STEPS", "MAX_BATCH_COUNT", "MAX_BATCH_SIZE",
    "MAX_EXTEND", "MAX_GUIDANCE", "MAX_IMAGES", "MAX_PROMPT_CHARS", "MAX_SEED", "MAX_STEPS", "MODES", "SAMPLERS", "SPEEDS",
    "DiffusionBackend", "ImageRequest", "ImageResult", "LoadedModel", "a1111_parameters", "compute_dtype",
    "fields_from_parameters", "fit_size", "steps_for_strength", "with_fast_lcm",
]
