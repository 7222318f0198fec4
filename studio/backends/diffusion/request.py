"""What decides a picture: the request the Image tab, the CLI and re-runs fill in, its limits and
checks, the samplers the studio offers (named as AUTOMATIC1111 names them), and the result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from studio.backends.diffusion.hires import (
    DEFAULT_STRENGTH,
    DEFAULT_UPSCALER,
    MAX_SCALE,
    is_latent,
    resized_size,
    scaled_size,
)
from studio.errors import InputError

MODES = ("txt2img", "img2img", "inpaint", "outpaint")
DEFAULT_MODEL = "stabilityai/sd-turbo"
DEFAULT_DECODER = "madebyollin/taesd"
FULL_VAE = "full"  # decode with the model's own VAE
# Sampler names as AUTOMATIC1111 writes them -> (diffusers scheduler class, config overrides).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "DDIM": ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
    "LCM": ("LCMScheduler", {}),
}
DEFAULT_SAMPLER = "Euler"
# The fast LCM switch: the LCM-LoRA with its own sampler, few steps and almost no guidance (LCM-LoRA
# wants guidance 1-2: above that its pictures burn; 1 also skips the unconditional half of each step).
LCM_SAMPLER = "LCM"
LCM_STEPS = 4
LCM_GUIDANCE = 1.0
LCM_MAX_GUIDANCE = 2.0
# "Speed: exact / fastest". exact: the model's own weights at full precision. fastest: where OpenVINO runs
# the UNet on a CPU, its weights compressed to int8 (and bf16 compute on CPUs with native bf16): quicker and
# lighter, but the pictures move beyond rounding (benchmarks/image_speed.py measures how far), so the
# user chooses it.
SPEEDS = ("exact", "fastest")
DEFAULT_SPEED = "exact"
MAX_STEPS = 150
MAX_GUIDANCE = 30.0
MAX_BATCH_SIZE = 8
MAX_BATCH_COUNT = 16
MAX_IMAGES = 32  # per request, batch count x batch size
MAX_SEED = 2**32 - 1
MAX_PROMPT_CHARS = 2000
MIN_SIDE = 64
_MASK_FIELDS = {"mask_blur", "only_masked", "padding"}
_EXTEND_FIELDS = {"extend_left", "extend_right", "extend_top", "extend_bottom"}
HIRES_FIELDS = {"hires_scale", "hires_steps", "hires_strength", "hires_upscaler", "hires_resize_x", "hires_resize_y"}
# Request fields that mean nothing in a mode, left out of its records (the hires fields of a
# text-to-image record too when it had no hires fix).
UNUSED_FIELDS = {
    "txt2img": {"strength"} | _MASK_FIELDS | _EXTEND_FIELDS,
    "img2img": _MASK_FIELDS | _EXTEND_FIELDS | HIRES_FIELDS,
    "inpaint": _EXTEND_FIELDS | HIRES_FIELDS,
    "outpaint": {"only_masked"} | HIRES_FIELDS,  # outpainting always works on a crop around the new border
}
MAX_EXTEND = 1024  # outpainting, per side
MAX_CONTROLNETS = 4  # ControlNets in one run
MAX_CONTROL_WEIGHT = 2.0
CONTROL_FIELDS = {"controlnets"}


@dataclass(frozen=True)
class ControlUnit:
    """One ControlNet of a run: which model, how its picture becomes a map, and how much it steers.
    Its picture travels beside the request, as the input picture does."""

    model: str
    control_type: str = "canny"  # control_maps.CONTROL_TYPES
    weight: float = 1.0  # how strongly its residuals steer the UNet; 0 leaves the picture as without it
    start: float = 0.0  # the share of the steps before it begins to steer
    end: float = 1.0  # the share of the steps after which it stops
    threshold_a: float | None = None  # the type's first setting (canny: low threshold); None: its default
    threshold_b: float | None = None
    seed: int | None = None  # the shuffle's seed; None: the run's

    def validate(self, number: int) -> None:
        from studio.backends.diffusion.control_maps import settings

        where = f"ControlNet {number}"
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError(f"{where}: choose a ControlNet model.")
        settings(self.control_type, self.threshold_a, self.threshold_b)
        for name, value, low, high in (("weight", self.weight, 0.0, MAX_CONTROL_WEIGHT), ("start", self.start, 0, 1),
                                       ("end", self.end, 0, 1)):
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)) \
                    or not low <= value <= high:
                raise InputError(f"{where}: the {name} must be from {low:g} to {high:g}, not {value!r}.")
        if self.start >= self.end:
            raise InputError(f"{where}: it must start ({self.start:g}) before it ends ({self.end:g}).")


def control_units(values: Any) -> tuple[ControlUnit, ...]:
    """ControlNets as given: units, or records' dicts (extra keys, such as the kept pictures, left out)."""
    if not values:
        return ()
    if not isinstance(values, (list, tuple)):
        raise InputError("The ControlNets must be a list.")
    names = set(ControlUnit.__dataclass_fields__)
    units = []
    for value in values:
        if isinstance(value, ControlUnit):
            units.append(value)
        elif isinstance(value, dict) and "model" in value:
            units.append(ControlUnit(**{k: v for k, v in value.items() if k in names}))
        else:
            raise InputError("Each ControlNet needs at least its model.")
    return tuple(units)


@dataclass(frozen=True)
class ImageRequest:
    """Everything that decides a picture; with the input image (and mask) it reproduces it exactly."""

    prompt: str
    mode: str = "txt2img"
    negative_prompt: str = ""
    model: str = DEFAULT_MODEL
    steps: int = 1
    guidance: float = 0.0
    width: int = 512
    height: int = 512
    seed: int | None = None  # None: a random seed, recorded in the result
    sampler: str = DEFAULT_SAMPLER
    batch_size: int = 1
    batch_count: int = 1
    strength: float = 1.0  # img2img / inpaint / outpaint: how far from the input picture
    decoder: str = DEFAULT_DECODER  # a catalogue "decode" entry (TAESD) or FULL_VAE
    mask_blur: int = 4  # px, inpaint / outpaint
    only_masked: bool = False  # inpaint: work on a crop around the mask at full model resolution
    padding: int = 32  # px around the mask for `only_masked`
    extend_left: int = 0  # outpaint, px
    extend_right: int = 0
    extend_top: int = 0
    extend_bottom: int = 0
    fast_lcm: bool = False  # the LCM-LoRA for the model's base (SD 1.5 or SDXL) added to the run
    # Hires fix (text to image only): 1 = off; else the first pass upscaled this many times and redrawn.
    hires_scale: float = 1.0
    hires_steps: int = 0  # steps the second pass runs; 0: as many as the first pass (as A1111)
    hires_strength: float = DEFAULT_STRENGTH  # the second pass's denoising strength; 0: upscaled only
    hires_upscaler: str = DEFAULT_UPSCALER  # hires.BUILTIN_UPSCALERS or a named upscaler model
    # AUTOMATIC1111's "Resize width/height to": the hires fix's size instead of its scale (0, 0: the scale;
    # one of them 0: the first pass's aspect kept).
    hires_resize_x: int = 0
    hires_resize_y: int = 0
    # Flow-matching models (SD 3.x, FLUX) only; 0: the model's own (families.py).
    shift: float = 0.0  # the sampler's timestep shift
    max_sequence_length: int = 0  # the T5 prompt length, tokens
    controlnets: tuple[ControlUnit, ...] = ()  # ControlNets steering the run, each with its own picture
    speed: str = DEFAULT_SPEED  # one of SPEEDS

    def __post_init__(self) -> None:
        # Records hold ControlNets as dicts; a request always holds units.
        if not isinstance(self.controlnets, tuple) or any(not isinstance(u, ControlUnit) for u in self.controlnets):
            object.__setattr__(self, "controlnets", control_units(self.controlnets))

    def validate(self) -> None:
        """Checks that need no model; sizes are checked against the model once it is known."""
        if self.mode not in MODES:
            raise InputError(f"The mode must be one of {', '.join(MODES)}, not '{self.mode}'.")
        if not self.prompt.strip():
            raise InputError("Write a prompt first: a few words describing the picture.")
        if len(self.prompt) > MAX_PROMPT_CHARS or len(self.negative_prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"Prompts are limited to {MAX_PROMPT_CHARS} characters.")
        _whole("steps", self.steps, 1, MAX_STEPS, "at least 1 step is needed to make anything")
        if not (isinstance(self.guidance, (int, float)) and math.isfinite(self.guidance)):
            raise InputError(f"The guidance (CFG scale) must be a number, not {self.guidance}.")
        if not 0.0 <= self.guidance <= MAX_GUIDANCE:
            raise InputError(f"The guidance (CFG scale) must be between 0 and {MAX_GUIDANCE:g}, not {self.guidance}.")
        if self.seed is not None:
            _whole("seed", self.seed, 0, MAX_SEED, "leave it empty (random) or use a whole number from 0")
        if self.sampler not in SAMPLERS:
            raise InputError(f"The sampler must be one of {', '.join(SAMPLERS)}, not '{self.sampler}'.")
        if self.fast_lcm and self.sampler != LCM_SAMPLER:
            raise InputError(f"The fast LCM switch runs the {LCM_SAMPLER} sampler, not {self.sampler}; "
                             f"choose {LCM_SAMPLER} or turn the switch off.")
        if self.speed not in SPEEDS:
            raise InputError(f"The speed must be one of {', '.join(SPEEDS)}, not '{self.speed}'.")
        _whole("batch size", self.batch_size, 1, MAX_BATCH_SIZE, "images made together")
        _whole("batch count", self.batch_count, 1, MAX_BATCH_COUNT, "batches made one after another")
        if self.batch_size * self.batch_count > MAX_IMAGES:
            raise InputError(
                f"{self.batch_count} batches of {self.batch_size} would make {self.batch_size * self.batch_count} "
                f"images; the limit is {MAX_IMAGES} per run."
            )
        if self.mode == "txt2img":
            for name, value in (("width", self.width), ("height", self.height)):
                if not isinstance(value, int) or value % 8:
                    raise InputError(
                        f"The {name} must be a multiple of 8 px (the model works on 8x8 blocks), not {value}; "
                        f"try {min(max(8, round(value / 8) * 8), 2048) if isinstance(value, (int, float)) else 512}."
                    )
        if self.mode != "txt2img":
            if not (isinstance(self.strength, (int, float)) and 0.0 < self.strength <= 1.0):
                raise InputError(f"The strength must be above 0 and at most 1, not {self.strength}.")
            if int(self.steps * self.strength) < 1:
                need = steps_for_strength(self.steps, self.strength)
                raise InputError(
                    f"With strength {self.strength:g} and {self.steps} step(s) no step would run "
                    f"(steps x strength < 1); use at least {need} steps or a higher strength."
                )
        if self.mode == "txt2img":
            self._validate_hires()
        validate_flow_fields(self.shift, self.max_sequence_length)
        if len(self.controlnets) > MAX_CONTROLNETS:
            raise InputError(f"At most {MAX_CONTROLNETS} ControlNets can steer one run, not {len(self.controlnets)}.")
        if self.controlnets and self.mode == "outpaint":
            raise InputError("ControlNets steer text to image, image to image and inpainting; not outpainting.")
        for number, unit in enumerate(self.controlnets):
            unit.validate(number)
        _whole("mask blur", self.mask_blur, 0, 64, "px")
        _whole("padding", self.padding, 0, 512, "px")
        if self.mode == "outpaint":
            sides = (self.extend_left, self.extend_right, self.extend_top, self.extend_bottom)
            for name, value in zip(("left", "right", "top", "bottom"), sides, strict=True):
                _whole(f"extension on the {name}", value, 0, MAX_EXTEND, "px")
            if not any(sides):
                raise InputError("Choose how far to extend the picture on at least one side.")

    def _validate_hires(self) -> None:
        for name, side in (("width", self.hires_resize_x), ("height", self.hires_resize_y)):
            _whole(f"hires resize {name}", side, 0, 16384, "0: from the upscale")
            if side and (side < MIN_SIDE or side % 8):
                raise InputError(f"The hires resize {name} must be 0 (from the upscale) or a multiple of 8 px from "
                                 f"{MIN_SIDE}, not {side}.")
        scale = self.hires_scale
        if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and math.isfinite(scale)):
            raise InputError(f"The hires upscale must be a number, not {scale!r}.")
        if not 1.0 <= scale <= MAX_SCALE:
            raise InputError(f"The hires upscale must be between 1 (off) and {MAX_SCALE:g}, not {scale:g}.")
        if not self.hires:
            return
        _whole("hires steps", self.hires_steps, 0, MAX_STEPS, "0 runs as many as the first pass")
        strength = self.hires_strength
        if isinstance(strength, bool) or not (isinstance(strength, (int, float)) and 0.0 <= strength <= 1.0):
            raise InputError(f"The hires denoising strength must be from 0 to 1, not {strength!r}.")
        if not isinstance(self.hires_upscaler, str) or not self.hires_upscaler.strip():
            raise InputError("Choose a hires upscaler, such as Latent or Lanczos.")
        if strength == 0 and is_latent(self.hires_upscaler):
            raise InputError(
                f"'{self.hires_upscaler}' upscales the latents, which need a second pass to become a sharp picture: "
                "use a denoising strength above 0 (0.5 or more suits latent upscaling), or Lanczos to enlarge only."
            )

    @property
    def hires(self) -> bool:
        """Whether a hires fix follows the first pass."""
        return self.mode == "txt2img" and (self.hires_scale > 1.0 or self.hires_resize)

    @property
    def hires_resize(self) -> bool:
        """Whether the hires fix aims at a size (hires_resize_x/y) rather than a scale."""
        return bool(self.hires_resize_x or self.hires_resize_y)

    @property
    def hires_size(self) -> tuple[int, int]:
        """The finished picture's size with a hires fix (the first pass's size without)."""
        if not self.hires:
            return self.width, self.height
        if self.hires_resize:
            return resized_size(self.width, self.height, self.hires_resize_x, self.hires_resize_y)[1]
        return scaled_size(self.width, self.height, self.hires_scale)

    @property
    def hires_cover(self) -> tuple[int, int]:
        """The size the first pass is upscaled to: the hires size, or with a resize of another aspect the
        size that covers it, centre-cropped after."""
        if self.hires and self.hires_resize:
            return resized_size(self.width, self.height, self.hires_resize_x, self.hires_resize_y)[0]
        return self.hires_size

    @property
    def hires_steps_run(self) -> int:
        """Steps the hires fix's second pass runs per batch: none without one, or at strength 0."""
        if not self.hires or self.hires_strength == 0:
            return 0
        return self.hires_steps or self.steps

    @property
    def steps_run(self) -> int:
        """Denoising steps actually run per batch (image-to-image skips the first 1 - strength) in the
        first pass; `hires_steps_run` more follow with a hires fix."""
        return self.steps if self.mode == "txt2img" else min(self.steps, int(self.steps * self.strength))


def with_fast_lcm(request: ImageRequest) -> ImageRequest:
    """The fast LCM switch turned on: the LCM-LoRA, its sampler, 4 steps and guidance 1, set together."""
    return replace(request, fast_lcm=True, sampler=LCM_SAMPLER, steps=LCM_STEPS, guidance=LCM_GUIDANCE)


def steps_for_strength(steps: int, strength: float) -> int:
    """The fewest steps, from `steps` up, of which at least one runs at `strength` (image to image
    runs int(steps x strength) of them)."""
    if int(steps * strength) >= 1:
        return steps
    needed = math.ceil(1 / strength)
    while int(needed * strength) < 1:  # 1 / strength can round just below the step that works
        needed += 1
    return max(steps, needed)


def _whole(name: str, value: Any, low: int, high: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"The {name} must be a whole number, not {value!r}.")
    if not low <= value <= high:
        raise InputError(f"The {name} must be between {low} and {high} ({hint}), not {value}.")


@dataclass
class ImageResult:
    images: list[Image.Image]
    params: list[dict[str, Any]]  # one record per image: everything needed to make it again
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    control_maps: list[Image.Image] = field(default_factory=list)  # one per ControlNet, as it steered the run


MAX_SHIFT = 20.0
MAX_T5_TOKENS = 512  # the longest T5 prompt SD 3.x and FLUX take


def validate_flow_fields(shift: Any, max_sequence_length: Any) -> None:
    """The request's own checks of the flow fields (no model needed)."""
    if isinstance(shift, bool) or not (isinstance(shift, (int, float)) and math.isfinite(shift)):
        raise InputError(f"The shift must be a number, not {shift!r}.")
    if not 0.0 <= shift <= MAX_SHIFT:
        raise InputError(f"The shift must be from 0 (the model's own) to {MAX_SHIFT:g}, not {shift:g}.")
    if isinstance(max_sequence_length, bool) or not isinstance(max_sequence_length, int):
        raise InputError(f"The T5 prompt length must be a whole number of tokens, not {max_sequence_length!r}.")
    if not 0 <= max_sequence_length <= MAX_T5_TOKENS:
        raise InputError(f"The T5 prompt length must be from 0 (the model's own) to "
                         f"{MAX_T5_TOKENS} tokens, not {max_sequence_length}.")
