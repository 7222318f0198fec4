"""Text-to-image, image-to-image, inpainting and outpainting on diffusers pipelines.

One set of weights per model is loaded once into the runtime cache; the three pipelines share it
(`from_pipe` reuses every module). On a CPU the studio's path decodes with TAESD instead of the full
VAE, keeps the model warm, runs the UNet and TAESD's decoder through OpenVINO where it is installed
(openvino_unet.py), and otherwise in bfloat16 (channels-last) where the CPU has native bf16
instructions (see benchmarks/image_speed.py).
Noise is always drawn from CPU generators, one per image, so a seed gives the same picture on any
device and image n of a batch is the same as a single run with seed + n.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from studio import __version__, hub
from studio.catalog import Catalog, ModelEntry
from studio.errors import InputError, StudioError
from studio.media.png_info import format_a1111_parameters
from studio.runtime import (
    NEVER_CANCELLED,
    CacheKey,
    CancelToken,
    ModelCache,
    ProgressCallback,
    loading_errors,
    no_progress,
    torch_device,
)

log = logging.getLogger(__name__)

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
# Request fields that mean nothing in a mode, left out of its records.
UNUSED_FIELDS = {
    "txt2img": {"strength"} | _MASK_FIELDS | _EXTEND_FIELDS,
    "img2img": _MASK_FIELDS | _EXTEND_FIELDS,
    "inpaint": _EXTEND_FIELDS,
    "outpaint": {"only_masked"},  # outpainting always works on a crop around the new border
}
MAX_EXTEND = 1024  # outpainting, per side
# SD 1.x / 2.x latents (4 channels, VAE scaling 0.18215) -> rough RGB, for live previews.
SD_LATENT_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
SDXL_LATENT_RGB = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
                   (-0.3165, -0.2492, -0.2188))
SD_VAE_SCALING = 0.18215


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
                need = math.ceil(1 / self.strength)
                raise InputError(
                    f"With strength {self.strength:g} and {self.steps} step(s) no step would run "
                    f"(steps x strength < 1); use at least {need} steps or a higher strength."
                )
        _whole("mask blur", self.mask_blur, 0, 64, "px")
        _whole("padding", self.padding, 0, 512, "px")
        if self.mode == "outpaint":
            sides = (self.extend_left, self.extend_right, self.extend_top, self.extend_bottom)
            for name, value in zip(("left", "right", "top", "bottom"), sides, strict=True):
                _whole(f"extension on the {name}", value, 0, MAX_EXTEND, "px")
            if not any(sides):
                raise InputError("Choose how far to extend the picture on at least one side.")

    @property
    def steps_run(self) -> int:
        """Denoising steps actually run per batch (image-to-image skips the first 1 - strength)."""
        return self.steps if self.mode == "txt2img" else min(self.steps, int(self.steps * self.strength))


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


@dataclass
class LoadedModel:
    """A diffusers pipeline plus what the studio needs to know about it."""

    pipe: Any
    entry: ModelEntry
    revision: str
    native_size: int  # the resolution it was trained at, px
    latent_rgb: tuple | None  # preview factors for its latent space, if known
    accepts_taesd: bool
    engine: str = "torch"  # what runs the UNet: "torch" or "openvino <version>"


def compute_dtype(device: str):
    """The dtype the studio runs diffusion in: fp16 on GPUs; on a CPU bf16 only where it has native
    bf16 instructions (AVX512-BF16 or AMX). Elsewhere bf16 is emulated and measured about 3x slower
    than fp32 (benchmarks/image_speed.py), so fp32 it is."""
    import torch

    if device in ("cuda", "mps"):
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


class DiffusionBackend:
    """The adapter the Image tab, the Style tab's diffusion restyle, the CLI and re-runs call."""

    def __init__(
        self,
        cache: ModelCache,
        catalog: Catalog,
        device: str = "auto",
        offline: bool = False,
        openvino_dir: Path | None = None,
    ):
        self.cache = cache
        self.catalog = catalog
        self.requested_device = device
        self.offline = offline
        # Where converted UNets are kept; None runs everything on torch.
        self.openvino_dir = openvino_dir

    def uses_openvino(self, device: str, dtype) -> bool:
        """OpenVINO takes over fp32 CPU work when the operator allows it and it is installed."""
        import torch

        from studio.backends import openvino_unet

        return (
            self.openvino_dir is not None and device == "cpu" and dtype == torch.float32 and openvino_unet.available()
        )

    @property
    def device(self) -> str:
        return torch_device(self.requested_device)

    # -- models ---------------------------------------------------------------------------

    def image_entries(self, task: str = "txt2img") -> list[ModelEntry]:
        return [e for e in self.catalog.for_task(task) if e.family == "diffusers"]

    def decoder_entries(self) -> list[ModelEntry]:
        return [e for e in self.catalog.for_task("decode") if e.family == "diffusers"]

    def is_available(self, model_id: str) -> bool:
        """True if the model's files are on this machine (nothing is downloaded to find out)."""
        try:
            entry = self.catalog.get(model_id)
            if entry.source == "local":
                return entry.path is not None and entry.path.exists()
            hub.locate(entry, offline=True, download_if_missing=False)
            return True
        except StudioError:
            return False

    def native_size(self, model_id: str) -> int:
        """The resolution a model was trained at, from its config alone (no weights loaded); 512 when
        it cannot be told without downloading."""
        import json

        if any(key.model_id == model_id for key in self.cache.keys()):  # noqa: SIM118 (a cache, not a dict)
            return self.load(model_id).native_size
        try:
            entry = self.catalog.get(model_id)
            where = hub.locate(entry, offline=True, download_if_missing=False)
            config = json.loads((where / "unet" / "config.json").read_text(encoding="utf-8"))
            return int(config["sample_size"]) * 8
        except (StudioError, OSError, ValueError, KeyError, TypeError):
            return 512

    def load(self, model_id: str) -> LoadedModel:
        entry = self.catalog.get(model_id)
        if entry.family != "diffusers" or not set(entry.tasks) & {"txt2img", "img2img", "inpaint", "restyle"}:
            raise InputError(f"'{entry.name}' is not an image generation model.")
        device = self.device
        dtype = compute_dtype(device)
        key = CacheKey(model_id, dtype_name(dtype), device)
        return self.cache.get(key, lambda: self._load(entry, dtype, device))

    def _load(self, entry: ModelEntry, dtype, device: str) -> tuple[LoadedModel, float]:
        where = hub.locate(entry, offline=self.offline)
        log.info("loading %s from %s", entry.id, where)
        _quiet_loading()
        with loading_errors(entry.name, where):
            return self._load_from(entry, where, dtype, device)

    def _load_from(
        self, entry: ModelEntry, where: Path, dtype, device: str, openvino: bool = True
    ) -> tuple[LoadedModel, float]:
        import torch
        from diffusers import DiffusionPipeline

        openvino = openvino and self.uses_openvino(device, dtype)
        converted_file, converted = None, None
        if openvino:
            converted_file, converted = self._converted_unet(entry, where)
        if where.is_file():
            pipe = _from_single_file(entry, where, dtype, self.offline)
            revision = f"file:{where.name}"
        else:
            variant = entry.variant if entry.variant and any(where.rglob(f"*.{entry.variant}.safetensors")) else None
            try:
                pipe = DiffusionPipeline.from_pretrained(
                    where,
                    dtype=dtype,
                    variant=variant,
                    use_safetensors=True,
                    local_files_only=True,
                    **_no_safety_checker(where),
                    **({"unet": None} if converted is not None else {}),  # the kept conversion runs it
                )
            except (OSError, ValueError) as exc:
                raise StudioError(
                    f"The model '{entry.name}' at {where} could not be loaded as a diffusers pipeline "
                    f"with safetensors weights ({_first_line(exc)})."
                ) from None
            revision = entry.revision or (where.name if where.parent.name == "snapshots" else "local")
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        if device == "cpu" and dtype == torch.bfloat16:
            # oneDNN's bf16 convolutions want channels-last; in fp32 it measured slower here.
            pipe.unet.to(memory_format=torch.channels_last)
        engine = f"torch {torch.__version__}"
        if openvino:
            from studio.backends import openvino_unet

            if converted is not None:
                pipe.unet = converted
                engine = f"openvino {openvino_unet.version()}"
            elif converted_file is not None and openvino_unet.unet_is_supported(pipe.unet):
                try:
                    openvino_unet.accelerate_unet(pipe, converted_file)
                    engine = f"openvino {openvino_unet.version()}"
                except Exception as exc:  # noqa: BLE001 (a speed-up only: torch still runs the model)
                    log.warning("OpenVINO could not take the UNet of %s (%s); using torch", entry.id, _first_line(exc))
                    if pipe.unet is None:  # it failed after freeing the torch UNet
                        return self._load_from(entry, where, dtype, device, openvino=False)
        vae_config = pipe.vae.config
        scaling = float(getattr(vae_config, "scaling_factor", SD_VAE_SCALING))
        is_sd_latent = vae_config.latent_channels == 4 and abs(scaling - SD_VAE_SCALING) < 1e-4
        latent_rgb = SD_LATENT_RGB if is_sd_latent else SDXL_LATENT_RGB if vae_config.latent_channels == 4 else None
        size_mb = sum(
            p.numel() * p.element_size()
            for module in pipe.components.values()
            if isinstance(module, torch.nn.Module)
            for p in module.parameters()
        ) / 2**20 + getattr(pipe.unet, "memory_mb", 0.0)
        loaded = LoadedModel(
            pipe=pipe,
            entry=entry,
            revision=revision,
            native_size=int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor),
            latent_rgb=latent_rgb,
            accepts_taesd=is_sd_latent,
            engine=engine,
        )
        return loaded, size_mb

    def _converted_unet(self, entry: ModelEntry, where: Path) -> tuple[Path | None, Any]:
        """Where this model's OpenVINO UNet is kept, and the UNet itself if it was converted before."""
        from studio.backends import openvino_unet

        assert self.openvino_dir is not None
        try:
            weights = [where] if where.is_file() else [p for p in (where / "unet").iterdir() if p.is_file()]
            converted_file = openvino_unet.converted_unet_file(self.openvino_dir, weights)
            if where.is_file():  # a single file loads whole; accelerate_unet swaps its UNet afterwards
                return converted_file, None
            return converted_file, openvino_unet.load_converted_unet(converted_file)
        except Exception as exc:  # noqa: BLE001 (a speed-up only: torch still runs the model)
            log.warning("OpenVINO could not read the kept UNet of %s (%s); using torch", entry.id, _first_line(exc))
            return None, None

    def decoder(self, decoder_id: str, dtype):
        """TAESD (or another AutoencoderTiny entry), loaded once."""
        entry = self.catalog.get(decoder_id)
        if "decode" not in entry.tasks:
            raise InputError(f"'{entry.name}' is not a decoder.")
        device = self.device

        def load():
            from diffusers import AutoencoderTiny

            where = hub.locate(entry, offline=self.offline)
            with loading_errors(entry.name, where):
                vae = AutoencoderTiny.from_pretrained(where, dtype=dtype, use_safetensors=True)
            vae = vae.to(device)
            if self.uses_openvino(device, dtype):
                from studio.backends import openvino_unet

                try:
                    openvino_unet.accelerate_taesd(vae)
                except Exception as exc:  # noqa: BLE001 (a speed-up only)
                    log.warning("OpenVINO could not take %s's decoder (%s); using torch", entry.id, _first_line(exc))
            return vae, sum(p.numel() * p.element_size() for p in vae.parameters()) / 2**20

        return self.cache.get(CacheKey(decoder_id, dtype_name(dtype), device), load)

    def size_limits(self, model: LoadedModel, max_side: int) -> tuple[int, int]:
        """The smallest and largest side a model is asked to make, px."""
        native = model.native_size
        return max(MIN_SIDE, native // 4 // 8 * 8), min(max_side, max(2 * native, 512))

    # -- generation -----------------------------------------------------------------------

    def generate(
        self,
        request: ImageRequest,
        image: Image.Image | None = None,
        mask: Image.Image | None = None,
        *,
        max_side: int = 2048,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> ImageResult:
        """Make `batch_count x batch_size` pictures; each comes with the record that reproduces it."""
        request.validate()
        if request.mode != "txt2img" and image is None:
            raise InputError("Choose an input picture first.")
        if request.mode == "inpaint" and mask is None:
            raise InputError("Paint the area to change on the picture, or upload a mask.")
        task = "inpaint" if request.mode == "outpaint" else request.mode
        entry = self.catalog.get(request.model)
        if task not in entry.tasks and not (task == "img2img" and "restyle" in entry.tasks):
            raise InputError(f"'{entry.name}' cannot do {request.mode}; choose a model made for it.")
        started = time.perf_counter()
        seed = request.seed if request.seed is not None else random.randint(0, MAX_SEED)
        request = replace(request, seed=seed)
        cancel.raise_if_cancelled()
        progress(0, request.steps_run * request.batch_count)
        model = self.load(request.model)
        low, high = self.size_limits(model, max_side)
        notes: list[str] = []

        canvas = region = blend = None
        work_image = work_mask = None
        if request.mode == "outpaint":
            assert image is not None
            canvas, mask = extend_canvas(image, request)
            if max(canvas.size) > max_side:
                raise InputError(
                    f"Extended, the picture would be {canvas.width}x{canvas.height} px; the limit is {max_side} px."
                )
            image = canvas
        if request.mode in ("inpaint", "outpaint"):
            assert image is not None and mask is not None
            blend = soft_mask(mask.resize(image.size, Image.Resampling.NEAREST), request.mask_blur)
            if blend.getbbox() is None:
                raise InputError("The mask is empty: paint over the area to change (white in an uploaded mask).")
            region = (
                crop_around_mask(blend, request.padding, request.width / request.height)
                if request.only_masked or request.mode == "outpaint"
                else (0, 0, image.width, image.height)
            )
            work_image = image.crop(region).resize((request.width, request.height), Image.Resampling.LANCZOS)
            work_mask = blend.crop(region).resize((request.width, request.height), Image.Resampling.BILINEAR)
        elif request.mode == "img2img":
            assert image is not None
            work_image = cover(image, (request.width, request.height))

        for name, value in (("width", request.width), ("height", request.height)):
            if value % 8:
                raise InputError(f"The {name} must be a multiple of 8 px, not {value}.")
            if not low <= value <= high:
                raise InputError(
                    f"The {name} must be between {low} and {high} px for '{model.entry.name}' "
                    f"(it was trained at {model.native_size} px), not {value}."
                )
        if request.guidance <= 1.0 and request.negative_prompt.strip():
            notes.append("The negative prompt only acts with guidance (CFG scale) above 1.")

        pipe, decoder_used = self._pipeline(model, request, notes)
        images: list[Image.Image] = []
        records: list[dict[str, Any]] = []
        per_batch = request.steps_run
        for batch in range(request.batch_count):
            cancel.raise_if_cancelled()
            seeds = [seed + batch * request.batch_size + i for i in range(request.batch_size)]
            done_before = batch * per_batch
            made = self._run(pipe, model, request, seeds, work_image, work_mask, done_before, progress, cancel)
            for offset, picture in enumerate(made):
                if region is not None and blend is not None and image is not None:
                    picture = paste_back(image, picture, region, blend)
                images.append(picture)
                records.append(self._record(model, request, seeds[offset], decoder_used, picture, batch, offset))
        progress(per_batch * request.batch_count, per_batch * request.batch_count)
        return ImageResult(images=images, params=records, seconds=time.perf_counter() - started, notes=notes)

    def _pipeline(self, model: LoadedModel, request: ImageRequest, notes: list[str]):
        """A pipeline for the request's mode over the model's shared modules, with its own scheduler."""
        import diffusers
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

        base = model.pipe
        class_name, overrides = SAMPLERS[request.sampler]
        scheduler = getattr(diffusers, class_name).from_config(base.scheduler.config, **overrides)
        components: dict[str, Any] = {"scheduler": scheduler}
        decoder_used = FULL_VAE
        if request.decoder != FULL_VAE:
            if not model.accepts_taesd:
                notes.append(f"'{model.entry.name}' has its own latent space; decoded with its full VAE.")
            elif not self.is_available(request.decoder):
                entry = self.catalog.get(request.decoder)
                notes.append(
                    f"The fast decoder {entry.name} is not on this machine, so the full VAE decoded (slower). "
                    f"Fetch it with: python -m studio download {entry.id}"
                )
            else:
                components["vae"] = self.decoder(request.decoder, base.unet.dtype)
                decoder_used = request.decoder
        auto = {
            "txt2img": AutoPipelineForText2Image,
            "img2img": AutoPipelineForImage2Image,
            "inpaint": AutoPipelineForInpainting,
            "outpaint": AutoPipelineForInpainting,
        }[request.mode]
        pipe = auto.from_pipe(base, **components)
        pipe.set_progress_bar_config(disable=True)
        return pipe, decoder_used

    def _run(
        self,
        pipe,
        model: LoadedModel,
        request: ImageRequest,
        seeds: list[int],
        work_image: Image.Image | None,
        work_mask: Image.Image | None,
        done_before: int,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[Image.Image]:
        import torch

        total = request.steps_run * request.batch_count

        def on_step(_pipe, step: int, _timestep, tensors: dict) -> dict:
            cancel.raise_if_cancelled()  # ends the run right after this step
            preview = latent_preview(tensors["latents"][0], model.latent_rgb) if model.latent_rgb else None
            progress(done_before + step + 1, total, preview)
            return tensors

        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "num_images_per_prompt": request.batch_size,
            # CPU generators: the same noise on every device.
            "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds],
            "callback_on_step_end": on_step,
            "callback_on_step_end_tensor_inputs": ["latents"],
            "output_type": "pil",
        }
        if request.mode == "txt2img":
            kwargs.update(width=request.width, height=request.height)
        else:
            kwargs.update(image=work_image, strength=request.strength)
        if request.mode in ("inpaint", "outpaint"):
            kwargs.update(mask_image=work_mask, width=request.width, height=request.height)
        with torch.inference_mode():
            return list(pipe(**kwargs).images)

    def _record(
        self,
        model: LoadedModel,
        request: ImageRequest,
        seed: int,
        decoder_used: str,
        picture: Image.Image,
        batch: int,
        index: int,
    ) -> dict[str, Any]:
        # Recorded as a single picture with its own seed: that alone makes it again.
        params = asdict(replace(request, seed=seed, batch_size=1, batch_count=1))
        for key in UNUSED_FIELDS[request.mode]:
            params.pop(key)
        params.update(
            task=request.mode,
            decoder=decoder_used,
            model_revision=model.revision,
            dtype=dtype_name(model.pipe.unet.dtype),
            device=self.device,
            engine=model.engine,
            batch=batch,
            batch_index=index,
            result_width=picture.width,
            result_height=picture.height,
        )
        return params


# -- pictures and masks --------------------------------------------------------------------------


def cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale and centre-crop `image` to fill `size` exactly, keeping its proportions."""
    scale = max(size[0] / image.width, size[1] / image.height)
    scaled = image.resize(
        (max(size[0], round(image.width * scale)), max(size[1], round(image.height * scale))), Image.Resampling.LANCZOS
    )
    left, top = (scaled.width - size[0]) // 2, (scaled.height - size[1]) // 2
    return scaled.crop((left, top, left + size[0], top + size[1]))


def fit_size(width: int, height: int, native: int) -> tuple[int, int]:
    """A model-friendly working size for a picture: about native x native pixels, same proportions,
    both sides multiples of 8."""
    scale = native / math.sqrt(width * height)
    return max(MIN_SIDE, round(width * scale / 8) * 8), max(MIN_SIDE, round(height * scale / 8) * 8)


def soft_mask(mask: Image.Image, blur: int) -> Image.Image:
    """White = repaint. Any drawn or light pixel counts; edges are feathered by `blur` px."""
    hard = mask.convert("L").point(lambda v: 255 if v > 127 else 0)
    if blur <= 0:
        return hard
    # Grow first, then blur, so the feathered edge stays outside what was painted.
    grown = hard.filter(ImageFilter.MaxFilter(2 * (blur // 2) + 1))
    return grown.filter(ImageFilter.GaussianBlur(blur / 2))


def crop_around_mask(mask: Image.Image, padding: int, aspect: float) -> tuple[int, int, int, int]:
    """A box around the mask plus `padding`, widened to the working aspect ratio, inside the picture."""
    left, top, right, bottom = mask.getbbox() or (0, 0, mask.width, mask.height)
    left, top = max(0, left - padding), max(0, top - padding)
    right, bottom = min(mask.width, right + padding), min(mask.height, bottom + padding)
    width, height = right - left, bottom - top
    if width / height < aspect:
        width = min(mask.width, math.ceil(height * aspect))
    else:
        height = min(mask.height, math.ceil(width / aspect))
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    left = int(min(max(0, round(centre_x - width / 2)), mask.width - width))
    top = int(min(max(0, round(centre_y - height / 2)), mask.height - height))
    return left, top, left + width, top + height


def paste_back(original: Image.Image, made: Image.Image, region: tuple[int, int, int, int],
               blend: Image.Image) -> Image.Image:
    """The original with `made` laid over `region` through the mask: unmasked pixels stay as they were."""
    box_size = (region[2] - region[0], region[3] - region[1])
    result = original.convert("RGB").copy()
    result.paste(made.resize(box_size, Image.Resampling.LANCZOS), region[:2], blend.crop(region))
    return result


def extend_canvas(image: Image.Image, request: ImageRequest) -> tuple[Image.Image, Image.Image]:
    """The picture on a larger canvas whose new border repeats its edges, and the mask of the border
    (reaching `mask_blur` px into the picture so the seam is repainted too)."""
    left, right, top, bottom = request.extend_left, request.extend_right, request.extend_top, request.extend_bottom
    pixels = np.asarray(image.convert("RGB"))
    padded = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="edge")
    canvas = Image.fromarray(padded)
    # Smear the repeated edge so the model starts from colours, not streaks.
    smeared = canvas.filter(ImageFilter.GaussianBlur(16))
    mask = Image.new("L", canvas.size, 255)
    overlap = request.mask_blur
    inner = (
        left + (overlap if left else 0),
        top + (overlap if top else 0),
        left + image.width - (overlap if right else 0),
        top + image.height - (overlap if bottom else 0),
    )
    mask.paste(0, inner)
    keep_sharp = Image.new("L", canvas.size, 0)
    keep_sharp.paste(255, (left, top, left + image.width, top + image.height))
    canvas = Image.composite(canvas, smeared, keep_sharp)
    return canvas, mask


def latent_preview(latents, factors: tuple) -> Image.Image:
    """A cheap look at latents (C x h x w): a fixed linear map to RGB, scaled up 4x. No decoder needed."""
    import torch

    weights = torch.tensor(factors, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents.detach().float().cpu()[: len(factors)], weights)
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()
    preview = Image.fromarray(pixels)
    return preview.resize((preview.width * 4, preview.height * 4), Image.Resampling.BILINEAR)


# -- provenance -----------------------------------------------------------------------------------


def a1111_parameters(params: dict[str, Any], model_name: str | None = None) -> str:
    """A result's record in the text AUTOMATIC1111 writes (and reads back)."""
    sampler = params["sampler"]
    schedule = None
    if sampler.endswith(" Karras"):
        sampler, schedule = sampler.removesuffix(" Karras"), "Karras"
    model_id = params["model"]
    settings: dict[str, Any] = {
        "Steps": params["steps"],
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": f"{params['guidance']:g}",
        "Seed": params["seed"],
        "Size": f"{params['width']}x{params['height']}",
        "Model": model_name or Path(model_id).name.removesuffix(".safetensors"),
        "Denoising strength": f"{params['strength']:g}" if params.get("strength") is not None else None,
        "Mask blur": params.get("mask_blur"),
        "Inpaint area": ("Only masked" if params.get("only_masked") else "Whole picture")
        if params["task"] == "inpaint" else None,
        "Masked area padding": params.get("padding") if params.get("only_masked") else None,
        "Outpaint": ",".join(str(params[f"extend_{s}"]) for s in ("left", "right", "top", "bottom"))
        if params["task"] == "outpaint" else None,
        "VAE": "TAESD" if params.get("decoder") not in (None, FULL_VAE) else None,
        "Mode": params["task"],
        "Model id": model_id,
        "Model revision": params.get("model_revision"),
        "Decoder": params.get("decoder"),
        "Version": f"creative-studio {__version__}",
    }
    return format_a1111_parameters(params["prompt"], params.get("negative_prompt", ""), settings)


def fields_from_parameters(parsed: dict[str, str], catalog: Catalog) -> tuple[dict[str, Any], list[str]]:
    """ImageRequest fields from parsed AUTOMATIC1111 parameters (ours or another tool's), plus notes
    about what could not be carried over."""
    values: dict[str, Any] = {"prompt": parsed.get("prompt", ""), "negative_prompt": parsed.get("negative_prompt", "")}
    notes: list[str] = []

    def number(key: str, kind: type):
        raw = parsed.get(key)
        if raw is None:
            return None
        try:
            return kind(float(raw)) if kind is int else kind(raw)
        except ValueError:
            notes.append(f"'{key}: {raw}' is not a number; left as it was.")
            return None

    for key, name, kind in (("Steps", "steps", int), ("CFG scale", "guidance", float), ("Seed", "seed", int),
                            ("Denoising strength", "strength", float), ("Mask blur", "mask_blur", int),
                            ("Masked area padding", "padding", int)):
        value = number(key, kind)
        if value is not None:
            values[name] = value
    size = parsed.get("Size", "")
    if "x" in size:
        try:
            values["width"], values["height"] = (int(v) for v in size.lower().split("x", 1))
        except ValueError:
            notes.append(f"'Size: {size}' is not WIDTHxHEIGHT; left as it was.")
    sampler = parsed.get("Sampler")
    if sampler:
        schedule = parsed.get("Schedule type", "")
        name = f"{sampler} Karras" if schedule == "Karras" and not sampler.endswith("Karras") else sampler
        if name in SAMPLERS:
            values["sampler"] = name
        elif sampler in SAMPLERS:
            values["sampler"] = sampler
        else:
            notes.append(f"The sampler '{name}' is not one the studio offers; using {DEFAULT_SAMPLER}.")
            values["sampler"] = DEFAULT_SAMPLER
    if parsed.get("Inpaint area"):
        values["only_masked"] = parsed["Inpaint area"].lower().startswith("only masked")
    if parsed.get("Outpaint"):
        try:
            sides = [int(v) for v in parsed["Outpaint"].split(",")]
            values.update(zip(("extend_left", "extend_right", "extend_top", "extend_bottom"), sides, strict=True))
        except ValueError:
            notes.append(f"'Outpaint: {parsed['Outpaint']}' is not four numbers; left as it was.")
    if parsed.get("Mode") in MODES:
        values["mode"] = parsed["Mode"]
    decoder = parsed.get("Decoder")
    if decoder and (decoder == FULL_VAE or decoder in catalog):
        values["decoder"] = decoder
    else:  # another tool's picture: decoded by its full VAE unless it says TAESD
        values["decoder"] = DEFAULT_DECODER if parsed.get("VAE", "").lower().startswith("taesd") else FULL_VAE
    model = _match_model(parsed, catalog)
    if model:
        values["model"] = model
    elif parsed.get("Model"):
        notes.append(f"The model '{parsed['Model']}' is not in the catalogue; add it to your models file to use it.")
    return values, notes


def _match_model(parsed: dict[str, str], catalog: Catalog) -> str | None:
    if parsed.get("Model id") in catalog:
        return parsed["Model id"]
    name = parsed.get("Model", "").lower()
    if not name:
        return None
    for entry in catalog.entries():
        if entry.family != "diffusers":
            continue
        candidates = {entry.id.lower(), entry.id.split("/")[-1].lower(), entry.name.lower()}
        if entry.path is not None:
            candidates.add(entry.path.stem.lower())
        if name in candidates:
            return entry.id
    return None


# -- loading helpers ------------------------------------------------------------------------------


def _quiet_loading() -> None:
    """No per-component progress bars in the studio's log (downloads keep theirs)."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()  # e.g. TAESD's harmless "unexpected config attribute"
    transformers.utils.logging.disable_progress_bar()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _no_safety_checker(folder: Path) -> dict[str, Any]:
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
        raise StudioError(f"{path.name} is not a readable .safetensors checkpoint ({_first_line(exc)}).") from None
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        return StableDiffusionXLPipeline
    if in_channels == 9:
        return StableDiffusionInpaintPipeline
    return StableDiffusionPipeline


def _from_single_file(entry: ModelEntry, path: Path, dtype, offline: bool):
    """A checkpoint in one .safetensors file, the format artists usually have. diffusers needs the
    matching model configs for it: from `config` in the entry (a diffusers folder), or fetched from
    the hub once (cached afterwards)."""
    if path.suffix.lower() != ".safetensors":
        raise StudioError(f"{path.name}: the studio loads single-file checkpoints only as .safetensors.")
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
            f"machine ({_first_line(exc)}). Run the studio once with internet to fetch them, or add "
            f"config = \"/folder/of/a/matching/diffusers/model\" (e.g. a downloaded Stable Diffusion 1.5) to "
            f"its entry in your models file."
        ) from None
