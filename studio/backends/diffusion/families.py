"""What each family of diffusion model takes: SD 1.x/2.x and SDXL (UNets on a noise schedule) and
the rectified-flow transformers, Stable Diffusion 3.x and FLUX.1.

Flow models integrate a learned velocity from noise to the picture, so only flow-matching samplers
apply (diffusers' FlowMatchEulerDiscreteScheduler; `shift` bends its timesteps toward the noisy end).
FLUX.1-dev is guidance-distilled (its guidance is an input of the transformer, one pass per step, no
negative prompt); FLUX.1-schnell takes no guidance at all. What a family cannot take is refused here in
one sentence, before any step runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.backends.diffusion.request import MAX_T5_TOKENS, SAMPLERS
from studio.errors import InputError

SD, SDXL, SD3, FLUX = "SD", "SDXL", "SD 3.x", "FLUX"
# Flow-matching samplers, under the names AUTOMATIC1111/Forge show for them.
FLOW_SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {"Euler": ("FlowMatchEulerDiscreteScheduler", {})}
# The T5 prompt length each family was trained with at most (tokens).
MAX_SEQUENCE_LENGTH = {SD3: MAX_T5_TOKENS, FLUX: MAX_T5_TOKENS}
# FLUX.1's transformer has no sample size in its config; it was trained at 1024 px (as SD 3.5).
FLOW_NATIVE_SIZE = 1024


@dataclass(frozen=True)
class Family:
    """What one family of pipelines takes."""

    name: str
    flow: bool = False
    negative_prompt: bool = True
    guidance: str = "cfg"  # "cfg" (classifier-free), "distilled" (an input of the model) or "none"
    size_multiple: int = 8  # px; FLUX packs 2x2 latent patches, so 16
    prompt_syntax: bool = True  # (word:1.3), BREAK: the studio encodes these for CLIP-only families
    embeddings: bool = True  # textual inversion (diffusers has no loader for SD3 / FLUX pipelines)
    fast_lcm: bool = True
    latent_hires: bool = True  # latent upscalers need plain (unpacked) 4-channel latents

    @property
    def samplers(self) -> tuple[str, ...]:
        return tuple(FLOW_SAMPLERS) if self.flow else tuple(SAMPLERS)


def denoiser(pipe: Any) -> Any:
    """The network that runs every step: the UNet, or the transformer of a flow model."""
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else pipe.transformer


def family_of(pipe: Any) -> Family:
    """The family of a loaded pipeline, from its class and its transformer's config."""
    name = type(pipe).__name__
    if name.startswith("Flux"):
        return family_named(FLUX, distilled=bool(getattr(pipe.transformer.config, "guidance_embeds", False)))
    if name.startswith("StableDiffusion3"):
        return family_named(SD3)
    return family_named(SDXL if "XL" in name else SD)


def family_named(name: str, distilled: bool = False) -> Family:
    """A family by name (model_folders' "SD 1.x" and "SD 2.x" are SD); `distilled`: FLUX.1-dev's guidance input."""
    if name == FLUX:
        return Family(FLUX, flow=True, negative_prompt=False, guidance="distilled" if distilled else "none",
                      size_multiple=16, prompt_syntax=False, embeddings=False, fast_lcm=False, latent_hires=False)
    if name == SD3:
        return Family(SD3, flow=True, prompt_syntax=False, embeddings=False, fast_lcm=False, latent_hires=False)
    return Family(SDXL) if name == SDXL else Family(SD)


def native_size(pipe: Any) -> int:
    """The resolution a pipeline's model was trained at, px."""
    config = denoiser(pipe).config
    sample = getattr(config, "sample_size", None)
    if isinstance(sample, int):
        return sample * int(pipe.vae_scale_factor)
    return FLOW_NATIVE_SIZE


def shifted_scheduler(base_config: Any, shift: float):
    """The flow-matching Euler sampler with the model's own timestep shift, or a fixed one (`shift` > 0,
    which also turns off FLUX.1-dev's resolution-dependent shifting)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    overrides = {"shift": float(shift), "use_dynamic_shifting": False} if shift else {}
    return FlowMatchEulerDiscreteScheduler.from_config(base_config, **overrides)


def check_request(family: Family, request: Any, model_name: str) -> None:
    """One sentence for anything in the request this family does not take."""
    if family.flow:
        if request.sampler not in FLOW_SAMPLERS:
            raise InputError(f"'{model_name}' is a flow-matching model: its sampler is "
                             f"{' or '.join(FLOW_SAMPLERS)}, not {request.sampler}.")
    elif request.shift:
        raise InputError(f"The shift applies to flow-matching models (SD 3.x, FLUX); '{model_name}' is not one, "
                         "so leave it at 0.")
    if not family.negative_prompt and request.negative_prompt.strip():
        raise InputError(f"'{model_name}' ({family.name}) takes no negative prompt; leave it empty and say what "
                         "you want in the prompt.")
    if family.guidance == "none" and request.guidance > 1.0:
        raise InputError(f"'{model_name}' is guidance-free (like FLUX.1-schnell): set the guidance (CFG scale) "
                         "to 0.")
    if family.flow and getattr(request, "controlnets", ()):
        raise InputError(f"ControlNets steer SD 1.x/2.x and SDXL models; '{model_name}' is a {family.name} model.")
    if not family.fast_lcm and request.fast_lcm:
        raise InputError(f"The fast LCM switch is for SD 1.5 and SDXL models, not {family.name} ones like "
                         f"'{model_name}'.")
    if request.mode == "txt2img" and request.hires and not family.latent_hires:
        from studio.backends.diffusion.hires import is_latent

        if is_latent(request.hires_upscaler) and request.hires_strength > 0:
            raise InputError(f"Latent upscalers work on SD latents; for {family.name} models like '{model_name}' "
                             "choose a picture upscaler such as Lanczos.")
    for name, value in (("width", request.width), ("height", request.height)):
        if value % family.size_multiple:
            near = max(family.size_multiple, round(value / family.size_multiple) * family.size_multiple)
            raise InputError(f"The {name} must be a multiple of {family.size_multiple} px for {family.name} "
                             f"models, not {value}; try {near}.")
    if request.max_sequence_length and not family.flow:
        raise InputError(f"The T5 prompt length applies to SD 3.x and FLUX models; '{model_name}' has no T5 "
                         "encoder, so leave it at 0.")
    limit = MAX_SEQUENCE_LENGTH.get(family.name, 0)
    if request.max_sequence_length > limit and family.flow:
        raise InputError(f"The T5 prompt length for '{model_name}' is at most {limit} tokens, not "
                         f"{request.max_sequence_length}.")


def check_embeddings(family: Family, names: list[str], model_name: str) -> None:
    if names and not family.embeddings:
        raise InputError(f"Textual-inversion embeddings ({', '.join(names)}) work on SD 1.x/2.x and SDXL models; "
                         f"diffusers cannot load them into {family.name} models like '{model_name}', so take the "
                         "name out of the prompt.")


def call_arguments(family: Family, request: Any) -> dict[str, Any]:
    """What the family's pipeline call takes beyond the common arguments."""
    extra: dict[str, Any] = {}
    if family.flow and request.max_sequence_length:
        extra["max_sequence_length"] = request.max_sequence_length
    if family.name == FLUX:
        # dev: the distilled guidance the transformer reads; schnell ignores it (no guidance input).
        extra["guidance_scale"] = request.guidance if family.guidance == "distilled" else 0.0
    return extra
