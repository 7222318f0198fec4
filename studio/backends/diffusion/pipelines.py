"""Text-to-image, image-to-image, inpainting and outpainting on diffusers pipelines.

One set of weights per model is loaded once into the runtime cache; the three pipelines share it
(`from_pipe` reuses every module). On a CPU the studio's path decodes with a tiny decoder that fits the
model's latents (TAESD for SD 1.x/2.x, TAESDXL for SDXL) instead of the full VAE, keeps the model warm, runs the UNet and TAESD's decoder through OpenVINO where it is installed
(openvino_unet.py beside this file), and otherwise in bfloat16 (channels-last) where the CPU has native bf16
instructions (see benchmarks/image_speed.py).
Noise is always drawn from CPU generators, one per image, so a seed gives the same picture on any
device and image n of a batch is the same as a single run with seed + n.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image

from studio import hub
from studio.backends.diffusion import controlnet, families, hires, lcm, memory, model_defaults, step_time
from studio.backends.diffusion import embeddings as ti
from studio.backends.diffusion.canvas import cover, crop_around_mask, extend_canvas, paste_back, soft_mask
from studio.backends.diffusion.embeddings import Embedding, EmbeddingLibrary, load_embeddings
from studio.backends.diffusion.flow_files import base_parts, file_hash, flow_family
from studio.backends.diffusion.loading import from_single_file, no_safety_checker, quiet_loading
from studio.backends.diffusion.loras import AppliedLora, LoraLibrary, applied, load_loras, lora_tags
from studio.backends.diffusion.prompts import SCHEDULE_KEY, final_inputs, scheduled_inputs, switched_tensors
from studio.backends.diffusion.request import (
    DEFAULT_SPEED,
    FULL_VAE,
    HIRES_FIELDS,
    LCM_MAX_GUIDANCE,
    MAX_SEED,
    MIN_SIDE,
    SAMPLERS,
    UNUSED_FIELDS,
    ImageRequest,
    ImageResult,
)
from studio.catalog import Catalog, ModelEntry
from studio.errors import InputError, StudioError, first_line
from studio.runtime import (
    NEVER_CANCELLED,
    CacheKey,
    CancelToken,
    ModelCache,
    ProgressCallback,
    StageCallback,
    loading_errors,
    no_progress,
    no_stage,
    torch_device,
)

log = logging.getLogger(__name__)

# SD 1.x / 2.x latents (4 channels, VAE scaling 0.18215) -> rough RGB, for live previews.
SD_LATENT_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))
SDXL_LATENT_RGB = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068), (0.1076, 0.1111, -0.0362),
                   (-0.3165, -0.2492, -0.2188))
# Each latent space's VAE, as (latent channels, scaling factor): the tiny decoders are trained on one each.
VAE_LATENT_SPACES = {"sd": (4, 0.18215), "sdxl": (4, 0.13025), "sd3": (16, 1.5305), "flux": (16, 0.3611)}


def latent_space_of(vae_config: Any) -> str | None:
    """Which tiny decoder's latents a model makes ("sd", "sdxl", "sd3", "flux"; catalog.LATENT_SPACES), told
    from its VAE's channels and scaling factor; None for a VAE of none of them (a fine-tune's own)."""
    channels = vae_config.latent_channels
    scaling = float(getattr(vae_config, "scaling_factor", VAE_LATENT_SPACES["sd"][1]))
    for space, (space_channels, factor) in VAE_LATENT_SPACES.items():
        if channels == space_channels and abs(scaling - factor) < 1e-4:
            return space
    return None

@dataclass
class LoadedModel:
    """A diffusers pipeline plus what the studio needs to know about it."""

    pipe: Any
    entry: ModelEntry
    revision: str
    native_size: int  # the resolution it was trained at, px
    latent_rgb: tuple | None  # preview factors for its latent space, if known
    latent_space: str | None  # the tiny decoders that fit its latents (latent_space_of)
    engine: str = "torch"  # what runs the UNet: "torch" or "openvino <version>" (+ " int8" for "fastest")
    speed: str = DEFAULT_SPEED  # the path it runs: "exact", or "fastest" (request.SPEEDS)
    # Said in every result's notes when the model runs with model CPU offload (a GPU too small for it).
    placement_note: str = ""
    # Held while a run uses the pipeline: LoRAs change its shared modules for the length of a run.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


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
        lora_dirs: Sequence[Path] = (),
        embedding_dirs: Sequence[Path] = (),
        upscale_picture: hires.UpscalePicture | None = None,
        upscaler_names: Callable[[], Sequence[str]] = tuple,
    ):
        self.cache = cache
        self.catalog = catalog
        self.requested_device = device
        self.offline = offline
        # Where converted UNets are kept; None runs everything on torch.
        self.openvino_dir = openvino_dir
        # Where <lora:NAME> files are found (Settings.lora_folders).
        self.loras = LoraLibrary(lora_dirs)
        # Where textual-inversion embeddings, called by their names in a prompt, are found.
        self.embeddings = EmbeddingLibrary(embedding_dirs)
        # Upscaler models (GANs) a hires fix may use besides the built-in ones, by name.
        self.upscale_picture = upscale_picture
        self.upscaler_names = upscaler_names
        # Free memory before a model loads, MB: RAM and the CUDA GPU's (a test may stand in for the machine's).
        self.free_memory_mb: Callable[[], float] = memory.available_mb
        self.free_gpu_mb: Callable[[], float] = memory.gpu_free_mb

    def hires_upscalers(self) -> list[str]:
        """The upscalers a hires fix can use: latent and PIL ones, then any upscaler models."""
        extra = [name for name in self.upscaler_names() if name not in hires.BUILTIN_UPSCALERS]
        return [*hires.BUILTIN_UPSCALERS, *extra] if self.upscale_picture is not None else list(hires.BUILTIN_UPSCALERS)

    def uses_openvino(self, device: str, dtype) -> bool:
        """OpenVINO takes over fp32 CPU work when the operator allows it and it is installed."""
        import torch

        from studio.backends.diffusion import openvino_unet

        return (
            self.openvino_dir is not None and device == "cpu" and dtype == torch.float32 and openvino_unet.available()
        )

    def fastest_possible(self, device: str) -> bool:
        """The "fastest" speed needs OpenVINO on a CPU and NNCF to compress the UNet's weights."""
        import torch

        from studio.backends.diffusion import openvino_unet

        return self.uses_openvino(device, torch.float32) and openvino_unet.fastest_available()

    @property
    def device(self) -> str:
        return torch_device(self.requested_device)

    def control_map(self, picture: Image.Image, control_type: str, size: tuple[int, int],
                    threshold_a: float | None = None,
                    threshold_b: float | None = None) -> tuple[Image.Image, str | None]:
        """A ControlNet's map of `picture` at `size` as a run would make it (depth and pose through their
        annotator models, downloaded on first use), and a note when the picture was fitted."""
        from studio.backends.diffusion.annotators import Annotators
        from studio.backends.diffusion.control_maps import make_map

        annotate = Annotators(self.catalog, self.cache, self.device, offline=self.offline)
        return make_map(picture, control_type, size, threshold_a, threshold_b, annotate=annotate)

    # -- models ---------------------------------------------------------------------------

    def image_entries(self, task: str = "txt2img") -> list[ModelEntry]:
        return [e for e in self.catalog.for_task(task) if e.family == "diffusers"]

    def decoder_entries(self) -> list[ModelEntry]:
        return [e for e in self.catalog.for_task("decode") if e.family == "diffusers"]

    def decoder_to_fetch_with(self, entry: ModelEntry) -> ModelEntry | None:
        """The tiny decoder a catalogue model decodes with, when none for its latents is on this machine: the
        model manager fetches it first (a few MB), so the first picture is not decoded slowly."""
        from studio.model_folders import FLUX, SD1, SD2, SD3, SDXL

        space = {SD1: "sd", SD2: "sd", SDXL: "sdxl", SD3: "sd3", FLUX: "flux"}.get(
            entry.image.architecture if entry.image else None)
        fitting = [e for e in self.decoder_entries() if e.latent_space == space]
        if not fitting or any(self.is_available(e.id) for e in fitting):
            return None
        return next((e for e in fitting if e.source == "download"), None)

    def fast_decoder_for(self, model: LoadedModel, requested: str) -> ModelEntry | None:
        """The fast decoder that fits the model's latents: the one asked for where it fits, else the
        catalogue's decoder for that latent space (one on this machine first), so that asking for TAESD
        (every form's default) on an SDXL model decodes with TAESDXL. None: no tiny decoder fits."""
        asked = self.catalog.get(requested)
        if "decode" not in asked.tasks:
            raise InputError(f"'{asked.name}' is not a decoder.")
        if model.latent_space is None or asked.latent_space == model.latent_space:
            return asked if model.latent_space is not None else None
        fitting = [e for e in self.decoder_entries() if e.latent_space == model.latent_space]
        fitting.sort(key=lambda e: not self.is_available(e.id))  # stable: catalogue order among equals
        return fitting[0] if fitting else None

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

    def model_defaults(self, model_id: str) -> model_defaults.ModelDefaults:
        """A model's family and starting settings, told from its entry or its files (nothing loaded or fetched)."""
        entry = self.catalog.get(model_id)

        def where() -> Path | None:
            try:
                return hub.locate(entry, offline=True, download_if_missing=False)
            except StudioError:
                return None

        return model_defaults.defaults_of(entry, where)

    def step_estimate(self, model_id: str, width: int, height: int, steps: int, guidance: float, pictures: int = 1,
                      batches: int = 1) -> step_time.StepEstimate | None:
        """How long one step of this model will take here, scaled from the step its catalogue entry says a
        benchmark timed. None on a GPU (no figure timed there) and for a model without a figure (a person's own
        files: their size is not known without reading them)."""
        if self.device != "cpu":
            return None
        told = self.model_defaults(model_id)
        if told.cpu_step is None:
            return None
        passes = step_time.passes_per_picture(told.family.guidance, guidance)
        return step_time.estimate(told.cpu_step, width, height, steps, passes, step_time.torch_threads(), pictures,
                                  batches, native_bf16=cpu_has_native_bf16())

    def native_size(self, model_id: str) -> int:
        """The resolution a model was trained at, from its config alone (no weights loaded); 512 when
        it cannot be told without downloading."""

        if any(key.model_id == model_id for key in self.cache.keys()):  # noqa: SIM118 (a cache, not a dict)
            return self.load(model_id).native_size
        try:
            entry = self.catalog.get(model_id)
            where = hub.locate(entry, offline=True, download_if_missing=False)
            if where.is_file() and flow_family(where):  # an SD 3.x or FLUX transformer file (GGUF among them)
                return families.FLOW_NATIVE_SIZE
            if not (where / "unet").is_dir() and (where / "transformer").is_dir():  # SD 3.x, FLUX
                config = json.loads((where / "transformer" / "config.json").read_text(encoding="utf-8"))
                sample = config.get("sample_size")
                return int(sample) * 8 if sample else families.FLOW_NATIVE_SIZE
            config = json.loads((where / "unet" / "config.json").read_text(encoding="utf-8"))
            return int(config["sample_size"]) * 8
        except (StudioError, OSError, ValueError, KeyError, TypeError):
            return 512

    def load(self, model_id: str, torch_unet: bool = False, stage: StageCallback = no_stage,
             speed: str = DEFAULT_SPEED) -> LoadedModel:
        """The model, loaded once. `torch_unet` asks for a copy whose UNet is torch's even where
        OpenVINO runs the usual one (LoRAs change torch modules); it is kept beside it in the cache.
        `stage` hears of a first OpenVINO conversion, the one wait a person should be told about.
        `speed` "fastest" asks for the int8 OpenVINO UNet where this machine can run it (fp32 elsewhere, so
        that also on CPUs with native bf16 it is OpenVINO's); elsewhere the exact model comes back."""
        entry = self.catalog.get(model_id)
        if entry.family != "diffusers" or not set(entry.tasks) & {"txt2img", "img2img", "inpaint", "restyle"}:
            raise InputError(f"'{entry.name}' is not an image generation model.")
        device = self.device
        dtype = compute_dtype(device)
        if speed == "fastest" and not torch_unet and self.fastest_possible(device):
            import torch

            key = CacheKey(model_id, "float32", device, variant="fastest")
            return self.cache.get(key, lambda: self._load(entry, torch.float32, device, stage=stage, fastest=True))
        if torch_unet and self.uses_openvino(device, dtype):
            key = CacheKey(model_id, dtype_name(dtype), device, variant="torch")
            return self.cache.get(key, lambda: self._load(entry, dtype, device, openvino=False))
        key = CacheKey(model_id, dtype_name(dtype), device)
        return self.cache.get(key, lambda: self._load(entry, dtype, device, stage=stage))

    def _load(self, entry: ModelEntry, dtype, device: str, openvino: bool = True,
              stage: StageCallback = no_stage, fastest: bool = False) -> tuple[LoadedModel, float]:
        where = hub.locate(entry, offline=self.offline)
        # Refused in one sentence before a model too big for this machine's free memory starts loading; on a
        # GPU too small for it but with RAM enough, offloaded. A transformer file counts its base's other parts.
        files = memory.weight_files(where, entry.variant) + base_parts(entry, where, self._downloaded_folder)
        fit = memory.check_fits(entry.name, files, dtype, self.free_memory_mb, device, self.free_gpu_mb)
        log.info("loading %s from %s", entry.id, where)
        quiet_loading()
        with loading_errors(entry.name, where):
            return self._load_from(entry, where, dtype, device, openvino=openvino, stage=stage, fastest=fastest,
                                   fit=fit)

    def _load_from(
        self, entry: ModelEntry, where: Path, dtype, device: str, openvino: bool = True,
        stage: StageCallback = no_stage, fastest: bool = False, fit: memory.Fit | None = None,
    ) -> tuple[LoadedModel, float]:
        import torch
        from diffusers import DiffusionPipeline

        fit = fit or memory.Fit(0.0)
        # OpenVINO takes UNets only: flow models' transformers stay on torch.
        openvino = openvino and self.uses_openvino(device, dtype) and (where.is_file() or (where / "unet").is_dir())
        if openvino and where.is_dir():
            from studio.backends.diffusion import openvino_unet

            openvino = openvino_unet.pays_off(_unet_config(where), fastest)
        converted_file, weights, converted = None, None, None
        if openvino:
            converted_file, weights, converted = self._converted_unet(entry, where, fastest)
        if where.is_file():
            pipe = from_single_file(entry, where, dtype, self.offline, self._downloaded_folder)
            revision = f"file:{where.name}"
            if where.suffix.lower() == ".gguf":  # which quantisation of which weights, told apart by its hash
                revision += f" sha256:{file_hash(where)}"
        else:
            variant = entry.variant if entry.variant and any(where.rglob(f"*.{entry.variant}.safetensors")) else None
            try:
                pipe = DiffusionPipeline.from_pretrained(
                    where,
                    dtype=dtype,
                    variant=variant,
                    use_safetensors=True,
                    local_files_only=True,
                    **no_safety_checker(where),
                    **({"unet": None} if converted is not None else {}),  # the kept conversion runs it
                )
            except (OSError, ValueError) as exc:
                raise StudioError(
                    f"The model '{entry.name}' at {where} could not be loaded as a diffusers pipeline "
                    f"with safetensors weights ({first_line(exc)})."
                ) from None
            revision = entry.revision or (where.name if where.parent.name == "snapshots" else "local")
        if fit.placement == memory.OFFLOAD:
            pipe.enable_model_cpu_offload(device=device)  # kept in RAM; each part on the GPU while it runs
        else:
            pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        if device == "cpu" and dtype == torch.bfloat16 and getattr(pipe, "unet", None) is not None:
            # oneDNN's bf16 convolutions want channels-last; in fp32 it measured slower here.
            pipe.unet.to(memory_format=torch.channels_last)
        engine = f"torch {torch.__version__}"
        if openvino:
            from studio.backends.diffusion import openvino_unet

            ran = f"openvino {openvino_unet.version()}" + (" int8" if fastest else "")
            if converted is not None:
                pipe.unet = converted
                engine = ran
            elif converted_file is not None and getattr(pipe, "unet", None) is not None \
                    and openvino_unet.unet_is_supported(pipe.unet) and openvino_unet.pays_off(pipe.unet.config, fastest):
                try:
                    openvino_unet.accelerate_unet(pipe, converted_file, weights, stage, fastest=fastest,
                                                  native_bf16=cpu_has_native_bf16())
                    engine = ran
                except Exception as exc:  # noqa: BLE001 (a speed-up only: torch still runs the model)
                    log.warning("OpenVINO could not take the UNet of %s (%s); using torch", entry.id, first_line(exc))
                    if pipe.unet is None:  # it failed after freeing the torch UNet
                        return self._load_from(entry, where, dtype, device, openvino=False, fit=fit)
        vae_config = pipe.vae.config
        latent_space = latent_space_of(vae_config)
        latent_rgb = SD_LATENT_RGB if latent_space == "sd" else SDXL_LATENT_RGB if vae_config.latent_channels == 4 else None
        size_mb = sum(
            p.numel() * p.element_size()
            for module in pipe.components.values()
            if isinstance(module, torch.nn.Module)
            for p in module.parameters()
        ) / 2**20 + getattr(families.denoiser(pipe), "memory_mb", 0.0)
        loaded = LoadedModel(
            pipe=pipe,
            entry=entry,
            revision=revision,
            native_size=families.native_size(pipe),
            latent_rgb=latent_rgb,
            latent_space=latent_space,
            engine=engine,
            speed="fastest" if fastest and engine.endswith(" int8") else DEFAULT_SPEED,
            placement_note=fit.note(entry.name) if fit else "",
        )
        return loaded, size_mb

    def _downloaded_folder(self, model_id: str) -> Path | None:
        """A catalogue model's folder if it is on this machine (a FLUX or SD 3.x transformer file takes
        its text encoders and VAE from its base model's)."""
        try:
            return hub.locate(self.catalog.get(model_id), offline=True, download_if_missing=False)
        except StudioError:
            return None

    def _converted_unet(self, entry: ModelEntry, where: Path,
                        fastest: bool = False) -> tuple[Path | None, list[Path] | None, Any]:
        """Where this model's OpenVINO UNet is kept, the files it comes from, and the UNet itself if it
        was converted before."""
        from studio.backends.diffusion import openvino_unet

        assert self.openvino_dir is not None
        try:
            weights = [where] if where.is_file() else [p for p in (where / "unet").iterdir() if p.is_file()]
            converted_file = openvino_unet.converted_unet_file(self.openvino_dir, weights)
            if where.is_file():  # a single file loads whole; accelerate_unet swaps its UNet afterwards
                return converted_file, weights, None
            return converted_file, weights, openvino_unet.load_converted_unet(converted_file, fastest,
                                                                              cpu_has_native_bf16())
        except Exception as exc:  # noqa: BLE001 (a speed-up only: torch still runs the model)
            log.warning("OpenVINO could not read the kept UNet of %s (%s); using torch", entry.id, first_line(exc))
            return None, None, None

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
                from studio.backends.diffusion import openvino_unet

                try:
                    openvino_unet.accelerate_taesd(vae)
                except Exception as exc:  # noqa: BLE001 (a speed-up only)
                    log.warning("OpenVINO could not take %s's decoder (%s); using torch", entry.id, first_line(exc))
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
        preparing: StageCallback = no_stage,
        controls: Sequence[Image.Image | None] = (),
    ) -> ImageResult:
        """Make `batch_count x batch_size` pictures; each comes with the record that reproduces it.
        `preparing` hears of the model's one-off preparation for this machine, when it happens;
        `controls` holds each ControlNet's picture (None: the input picture), in the request's order."""
        request.validate()
        if request.mode != "txt2img" and image is None:
            raise InputError("Choose an input picture first.")
        if request.mode == "inpaint" and mask is None:
            raise InputError("Paint the area to change on the picture, or upload a mask.")
        task = "inpaint" if request.mode == "outpaint" else request.mode
        entry = self.catalog.get(request.model)
        if task not in entry.tasks and not (task == "img2img" and "restyle" in entry.tasks):
            raise InputError(f"'{entry.name}' cannot do {request.mode}; choose a model made for it.")
        if request.hires:
            self._check_hires(request, max_side)
        started = time.perf_counter()
        seed = request.seed if request.seed is not None else random.randint(0, MAX_SEED)
        request = replace(request, seed=seed)
        cancel.raise_if_cancelled()
        if request.fast_lcm:
            lcm.refuse_by_name(entry)  # SD-Turbo and the like: said before anything is loaded or downloaded
        # A hires fix's second pass counts in the same progress as the first.
        per_batch = request.steps_run + request.hires_steps_run
        progress(0, per_batch * request.batch_count)
        model = self.load(request.model, stage=preparing, speed=request.speed)
        family = families.family_of(model.pipe)
        families.check_request(family, request, model.entry.name)
        notes: list[str] = [model.placement_note] if model.placement_note else []
        # <lora:...> tags of both prompts (as AUTOMATIC1111 reads them), each file read once.
        loras = load_loras(self.loras, self.cache, lora_tags(request.prompt, request.negative_prompt))
        # The fast LCM switch: the model's LCM-LoRA goes on first, through the same machinery.
        fast = lcm.lcm_lora(self.catalog, self.cache, entry, model.pipe, offline=self.offline) \
            if request.fast_lcm else None
        twice = [lora.weights.name for lora in loras if fast is not None and lora.weights.hash == fast.weights.hash]
        if twice:
            raise InputError(f"<lora:{twice[0]}> is the LCM-LoRA the fast LCM switch already puts on; remove the tag "
                             "or turn the switch off.")
        if (loras or fast or request.controlnets) and model.engine.startswith("openvino"):
            # LoRAs change torch modules, and ControlNets add to a torch UNet's blocks: such runs use a torch
            # UNet, and their records and notes say so.
            what = "LoRAs" if loras or fast else "ControlNets"
            model = self.load(request.model, torch_unet=True)
            notes.append(f"With {what} the UNet ran on {model.engine} (OpenVINO runs it only without them).")
        if request.speed != model.speed:  # the record and the note say which path ran
            notes.append(speed_note(request.speed, model))
            request = replace(request, speed=model.speed)
        elif model.speed == "fastest":
            notes.append(speed_note(request.speed, model))
        # Embeddings whose names stand as words in either prompt, each file read once.
        embeddings = load_embeddings(self.embeddings, self.cache, request.prompt, request.negative_prompt)
        families.check_embeddings(family, [e.name for e in embeddings], model.entry.name)
        low, high = self.size_limits(model, max_side)

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
        if fast is not None and request.guidance > LCM_MAX_GUIDANCE:
            notes.append(f"LCM-LoRA works best with guidance 1-{LCM_MAX_GUIDANCE:g}; above that pictures burn.")

        control = None
        if request.controlnets:
            control = controlnet.control_inputs(
                self.catalog, self.cache, request.controlnets, controls, image, (request.width, request.height),
                seed, model.pipe.unet, model.entry.name, offline=self.offline,
                region=region, canvas_size=image.size if region is not None and image is not None else None,
                notes=notes,
            )
            if request.hires:
                notes.append("The ControlNets steered the first pass; the hires fix redrew it without them.")
        pipe, decoder_used = self._pipeline(model, request, notes, control.module if control else None)
        # The hires fix's second pass: image to image over the same modules and decoder.
        hires_pipe = self._pipeline(model, replace(request, mode="img2img"), [])[0] if request.hires else None
        latent_hires = request.hires and hires.is_latent(request.hires_upscaler)
        images: list[Image.Image] = []
        records: list[dict[str, Any]] = []
        # The LoRAs stay on the shared modules only inside this block, which no other run enters meanwhile.
        # So do the embeddings' tokens and vectors on the tokenizers and text encoders.
        with model.lock, applied(pipe, ([fast] if fast else []) + loras, model.entry.name), \
                ti.applied(pipe, embeddings, model.entry.name) as spell:
            # Emphasis and BREAK become embeddings once per request; a prompt without them stays a string.
            # Prompt editing ([from:to:when], [a|b]) is scheduled over the steps this pass runs.
            prompts = scheduled_inputs(
                pipe, spell(request.prompt), spell(request.negative_prompt), request.guidance > 1.0,
                request.steps_run, notes,
            )
            for batch in range(request.batch_count):
                cancel.raise_if_cancelled()
                seeds = [seed + batch * request.batch_size + i for i in range(request.batch_size)]
                done_before = batch * per_batch
                made = self._run(
                    pipe, model, request, prompts, seeds, work_image, work_mask, done_before, progress, cancel,
                    output_type="latent" if latent_hires else "pil",
                    control=control.call_kwargs(request.mode) if control else None,
                )
                if hires_pipe is not None:
                    made = self._hires_pass(
                        hires_pipe, model, request, final_inputs(prompts), seeds, made, done_before + request.steps_run,
                        progress, cancel,
                    )
                for offset, picture in enumerate(made):
                    if region is not None and blend is not None and image is not None:
                        picture = paste_back(image, picture, region, blend)
                    images.append(picture)
                    records.append(
                        self._record(
                            model, request, seeds[offset], decoder_used, picture, batch, offset, loras, embeddings,
                            fast, controlnet.unit_records(request.controlnets, control, seed) if control else [],
                        )
                    )
        progress(per_batch * request.batch_count, per_batch * request.batch_count)
        return ImageResult(images=images, params=records, seconds=time.perf_counter() - started, notes=notes,
                           control_maps=control.maps if control else [])

    def _pipeline(self, model: LoadedModel, request: ImageRequest, notes: list[str], control_module: Any = None):
        """A pipeline for the request's mode over the model's shared modules, with its own scheduler;
        with `control_module` (ControlNets) the mode's ControlNet pipeline over the same modules."""
        import diffusers
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, AutoPipelineForText2Image

        base = model.pipe
        if families.family_of(base).flow:
            scheduler = families.shifted_scheduler(base.scheduler.config, request.shift)
        else:
            class_name, overrides = SAMPLERS[request.sampler]
            scheduler = getattr(diffusers, class_name).from_config(base.scheduler.config, **overrides)
        components: dict[str, Any] = {"scheduler": scheduler}
        decoder_used = FULL_VAE
        if request.decoder != FULL_VAE:
            fitting = self.fast_decoder_for(model, request.decoder)
            if fitting is None:
                notes.append(f"'{model.entry.name}' has its own latent space and no fast decoder fits it; "
                             "decoded with its full VAE.")
            elif not self.is_available(fitting.id):
                notes.append(
                    f"The fast decoder {fitting.name} is not on this machine, so the full VAE decoded (slower). "
                    f"Fetch it with: python -m studio download {fitting.id}"
                )
            else:
                components["vae"] = self.decoder(fitting.id, families.denoiser(base).dtype)
                decoder_used = fitting.id
        auto = {
            "txt2img": AutoPipelineForText2Image,
            "img2img": AutoPipelineForImage2Image,
            "inpaint": AutoPipelineForInpainting,
            "outpaint": AutoPipelineForInpainting,
        }[request.mode]
        if control_module is not None:
            components["controlnet"] = control_module
        pipe = auto.from_pipe(base, **components)
        pipe.set_progress_bar_config(disable=True)
        return pipe, decoder_used

    def _run(
        self,
        pipe,
        model: LoadedModel,
        request: ImageRequest,
        prompts: dict[str, Any],
        seeds: list[int],
        work_image: Image.Image | None,
        work_mask: Image.Image | None,
        done_before: int,
        progress: ProgressCallback,
        cancel: CancelToken,
        output_type: str = "pil",
        control: dict[str, Any] | None = None,
    ) -> list[Image.Image] | Any:
        """The first (or only) pass: pictures, or with output_type "latent" a tensor of latents."""
        kwargs: dict[str, Any] = {"num_inference_steps": request.steps, "output_type": output_type, **(control or {})}
        if request.mode == "txt2img":
            kwargs.update(width=request.width, height=request.height)
        else:
            kwargs.update(image=work_image, strength=request.strength)
            if families.family_of(model.pipe).flow:  # their image to image makes 1024 px unless told the size
                kwargs.update(width=request.width, height=request.height)
        if request.mode in ("inpaint", "outpaint"):
            kwargs.update(mask_image=work_mask, width=request.width, height=request.height)
        return self._denoise(pipe, model, request, prompts, seeds, kwargs, done_before, progress, cancel)

    def _denoise(
        self,
        pipe,
        model: LoadedModel,
        request: ImageRequest,
        prompts: dict[str, Any],
        seeds: list[int],
        kwargs: dict[str, Any],
        done_before: int,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[Image.Image] | Any:
        """One pipeline call with the studio's progress, previews, Stop and per-image CPU noise."""
        import torch

        total = (request.steps_run + request.hires_steps_run) * request.batch_count

        schedule = prompts.get(SCHEDULE_KEY)  # a prompt that changes during the run: its versions by step
        held = ["latents"]
        if schedule:
            held += [name for name in ("prompt_embeds", "add_text_embeds") if name in pipe._callback_tensor_inputs]

        width, height = kwargs.get("width", request.width), kwargs.get("height", request.height)

        def on_step(_pipe, step: int, _timestep, tensors: dict) -> dict:
            cancel.raise_if_cancelled()  # ends the run right after this step
            if model.latent_rgb:
                preview = latent_preview(tensors["latents"][0], model.latent_rgb)
            else:
                try:
                    preview = tiny_decoder_preview(_pipe, tensors["latents"], width, height)
                except Exception as exc:  # noqa: BLE001 (a look only: the run goes on without it)
                    log.warning("No preview of step %d (%s)", step + 1, first_line(exc))
                    preview = None
            progress(done_before + step + 1, total, preview)
            if schedule:  # the conditioning for the next step (steps counted from 1)
                tensors.update(switched_tensors(schedule, step + 2, tensors, len(seeds)))
            return tensors

        kwargs = {
            **{k: v for k, v in prompts.items() if k != SCHEDULE_KEY},  # the prompt strings, or their embeddings
            "guidance_scale": request.guidance,
            "num_images_per_prompt": request.batch_size,
            # CPU generators: the same noise on every device.
            "generator": [torch.Generator("cpu").manual_seed(s) for s in seeds],
            "callback_on_step_end": on_step,
            "callback_on_step_end_tensor_inputs": held,
            **families.call_arguments(families.family_of(model.pipe), request),
            **kwargs,
        }
        with torch.inference_mode():
            made = pipe(**kwargs).images
        return made if kwargs["output_type"] == "latent" else list(made)

    # -- hires fix ------------------------------------------------------------------------

    def _check_hires(self, request: ImageRequest, max_side: int) -> None:
        """What a hires fix needs, checked before any model loads: a known upscaler, a size within limits."""
        if request.hires_upscaler not in self.hires_upscalers():
            raise InputError(
                f"The hires upscaler must be one of {', '.join(self.hires_upscalers())}, not '{request.hires_upscaler}'."
            )
        width, height = request.hires_cover
        if max(width, height) > max_side:
            how = "to the resize asked for" if request.hires_resize else f"at {request.hires_scale:g}x"
            raise InputError(
                f"Hires fix {how} would make {width}x{height} px; the limit is {max_side} px "
                f"a side: lower the upscale or the size."
            )

    def _hires_pass(
        self,
        pipe,
        model: LoadedModel,
        request: ImageRequest,
        prompts: dict[str, Any],
        seeds: list[int],
        first: list[Image.Image] | Any,
        done_before: int,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> list[Image.Image]:
        """Upscale the first pass (latents or pictures) to the hires size and redraw it, image to image,
        running exactly the hires steps at the hires strength, with the same seeds' noise."""
        cancel.raise_if_cancelled()
        size, cover = request.hires_size, request.hires_cover
        if hires.is_latent(request.hires_upscaler):
            factor = int(model.pipe.vae_scale_factor)
            start = hires.crop_latents(hires.upscale_latents(first, cover, request.hires_upscaler, factor), cover, size,
                                       factor)
        else:
            total = (request.steps_run + request.hires_steps_run) * request.batch_count

            def upscaler_progress(_done: int, _total: int, preview: Image.Image | None = None) -> None:
                progress(done_before, total, preview)  # an upscaler model's own steps show as previews only

            start = hires.upscale_pictures(
                first, request.hires_upscaler, cover[0] / request.width, cover, self.upscale_picture,
                upscaler_progress, cancel,
            )
            if cover != size:  # a resize of another aspect: the covering picture's centre
                start = [picture.crop(hires.crop_box(cover, size)) for picture in start]
            if request.hires_strength == 0:  # upscaled only: no second pass
                return start
        steps = request.hires_steps or request.steps
        kwargs = {
            "image": start,
            "strength": request.hires_strength,
            "num_inference_steps": hires.second_pass_steps(steps, request.hires_strength),
            "output_type": "pil",
        }
        if families.family_of(model.pipe).flow:  # as in _run: told the size, or 1024 px
            kwargs.update(width=size[0], height=size[1])
        return self._denoise(pipe, model, request, prompts, seeds, kwargs, done_before, progress, cancel)

    def _record(
        self,
        model: LoadedModel,
        request: ImageRequest,
        seed: int,
        decoder_used: str,
        picture: Image.Image,
        batch: int,
        index: int,
        loras: Sequence[AppliedLora] = (),
        embeddings: Sequence[Embedding] = (),
        fast: AppliedLora | None = None,
        units: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        # Recorded as a single picture with its own seed: that alone makes it again.
        params = asdict(replace(request, seed=seed, batch_size=1, batch_count=1))
        for key in UNUSED_FIELDS[request.mode] | (set() if request.hires else HIRES_FIELDS):
            params.pop(key, None)
        if not request.hires_resize:  # a hires fix by scale: records stay as before resizing existed
            params.pop("hires_resize_x", None)
            params.pop("hires_resize_y", None)
        for key in ("shift", "max_sequence_length"):  # 0: the model's own, left out as before they existed
            if not params[key]:
                params.pop(key)
        family = families.family_of(model.pipe)
        if family.flow:  # how its guidance is read back (FLUX.1-dev's is distilled)
            params["family"] = family.name
            params["guidance_kind"] = family.guidance
        params.update(
            task=request.mode,
            decoder=decoder_used,
            model_revision=model.revision,
            dtype=dtype_name(families.denoiser(model.pipe).dtype),
            device=self.device,
            engine=model.engine,
            batch=batch,
            batch_index=index,
            result_width=picture.width,
            result_height=picture.height,
        )
        params.update(networks_record(loras, embeddings))
        if fast is not None:  # the fast LCM switch's LoRA: which file, by hash, as for the prompt's own
            params["lcm_lora"] = {"name": fast.weights.name, "weight": fast.weight, "hash": fast.weights.short_hash}
        else:
            params.pop("fast_lcm")  # off: records stay as they were before the switch existed
        if params["speed"] == DEFAULT_SPEED:
            params.pop("speed")  # exact: records stay as they were before the choice existed
        if units:  # each ControlNet with its model's name and hash (its pictures are added when kept)
            params["controlnets"] = units
        else:
            params.pop("controlnets")  # none: records stay as they were before ControlNets
        return params


def speed_note(asked: str, model: LoadedModel) -> str:
    """What the result says about the "fastest" speed: that it ran, or why the exact path ran instead."""
    if model.speed == "fastest":
        return (f"Speed: fastest ({model.engine}, int8 weights): quicker and lighter, and the picture differs "
                "slightly from the exact path's.")
    return (f"Speed: exact ({model.engine}); '{asked}' runs only where OpenVINO runs this model's UNet on a CPU, "
            "with NNCF installed, and without LoRAs or ControlNets.")


def networks_record(loras: Sequence[AppliedLora], embeddings: Sequence[Embedding]) -> dict[str, Any]:
    """Which files a prompt's LoRA tags and embedding words meant, by hash (the prompt keeps its words)."""
    record: dict[str, Any] = {}
    if loras:
        record["loras"] = [
            {"name": lora.weights.name, "weight": lora.weight, "hash": lora.weights.short_hash} for lora in loras
        ]
    if embeddings:
        record["embeddings"] = [{"name": e.name, "hash": e.short_hash} for e in embeddings]
    return record


def latent_preview(latents, factors: tuple) -> Image.Image:
    """A cheap look at latents (C x h x w): a fixed linear map to RGB, scaled up 4x. No decoder needed."""
    import torch

    weights = torch.tensor(factors, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents.detach().float().cpu()[: len(factors)], weights)
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()
    preview = Image.fromarray(pixels)
    return preview.resize((preview.width * 4, preview.height * 4), Image.Resampling.BILINEAR)


def tiny_decoder_preview(pipe, latents, width: int, height: int) -> Image.Image | None:
    """A look at a run's first latents through the tiny decoder it runs with (TAEF1, TAESD3), at half size,
    for latent spaces with no linear map to RGB (SD 3.x's and FLUX.1's 16 channels). Nothing when the run
    decodes with its full VAE: that costs a picture's decode (9-40 s on a CPU) each step. The tiny decoder
    costs 0.5-3 s a step on a CPU (benchmarks/tiny_decoders.py), where such a step takes a minute or two."""
    import torch

    vae = getattr(pipe, "vae", None)
    if type(vae).__name__ != "AutoencoderTiny":
        return None
    first = latents[:1]
    if first.ndim == 3:  # FLUX.1 packs 2x2 latent patches into a sequence
        if not hasattr(pipe, "_unpack_latents"):
            return None
        first = pipe._unpack_latents(first, height, width, pipe.vae_scale_factor)
    first = first / vae.config.scaling_factor + vae.config.shift_factor  # as the pipelines decode
    pixels = vae.decode(first.to(vae.dtype), return_dict=False)[0][0].float().clamp(-1, 1)
    preview = Image.fromarray(((pixels + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())
    return preview.resize((max(1, preview.width // 2), max(1, preview.height // 2)), Image.Resampling.BILINEAR)


def _unet_config(where: Path) -> SimpleNamespace:
    """A pipeline folder's UNet config, read without loading the UNet (empty where it cannot be read: the
    load itself then says what is wrong)."""
    try:
        return SimpleNamespace(**json.loads((where / "unet" / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return SimpleNamespace()
