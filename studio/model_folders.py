"""Model files where artists already keep them: the studio's own `<data dir>/models/checkpoints`,
and whole AUTOMATIC1111 / Forge or ComfyUI installations (`--models-from DIR`), read in place.

A checkpoint's family is told from the tensor names in its safetensors header (a few kilobytes
read; no weights), never from its file name: Civitai names say little ("juggernautXL_v9" is
SDXL, "dreamshaper_8" is SD 1.5, and renamed files say nothing at all).
"""

from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Each tool's folder for each kind of file, relative to its installation folder. AUTOMATIC1111 and
# Forge share a layout; ComfyUI keeps everything under models/.
A1111_LAYOUT = {
    "checkpoints": ("models/Stable-diffusion",),
    "loras": ("models/Lora", "models/LyCORIS"),
    "embeddings": ("embeddings",),
    "upscalers": ("models/ESRGAN", "models/RealESRGAN", "models/DAT", "models/HAT"),
    "controlnets": ("models/ControlNet",),
    "vaes": ("models/VAE",),
}
COMFYUI_LAYOUT = {
    # unet/ and diffusion_models/ hold transformers alone (FLUX, SD 3.5), GGUF-quantised ones among them.
    "checkpoints": ("models/checkpoints", "models/unet", "models/diffusion_models"),
    "loras": ("models/loras",),
    "embeddings": ("models/embeddings",),
    "upscalers": ("models/upscale_models",),
    "controlnets": ("models/controlnet",),
    "vaes": ("models/vae",),
}
KINDS = tuple(A1111_LAYOUT)
CHECKPOINT_SUFFIXES = (".safetensors", ".gguf", ".ckpt", ".pt", ".pth", ".bin")
# Pickled weights: named as refused, never opened.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Where the studio's own data folder keeps single files: whole checkpoints, and transformers alone in
# ComfyUI's folder names (a GGUF FLUX transformer is usually dropped in unet/).
OWN_CHECKPOINT_FOLDERS = ("checkpoints", "unet", "diffusion_models")
# A header bigger than this is not a checkpoint's (real ones are a few hundred KB).
MAX_HEADER_BYTES = 64 * 2**20

# Families of single-file checkpoints, in the words the model list shows.
SD1, SD2, SDXL, SD3, FLUX = "SD 1.x", "SD 2.x", "SDXL", "SD 3.x", "FLUX"
# The families the image backend loads from one file (SD 3.x and FLUX with their other parts found
# beside them: see backends/diffusion/loading.py).
LOADABLE_FAMILIES = (SD1, SD2, SDXL, SD3, FLUX)
IMAGE_TASKS = ("txt2img", "img2img", "inpaint", "restyle", "image-walk")


class ModelFolderError(ValueError):
    """A folder given as an AUTOMATIC1111 or ComfyUI installation is neither."""


@dataclass(frozen=True)
class ToolFolders:
    """The folders of one installation, by kind of file; kinds it lacks are empty."""

    root: Path
    layout: str  # "AUTOMATIC1111" or "ComfyUI"
    folders: dict[str, tuple[Path, ...]] = field(default_factory=dict)

    def of(self, kind: str) -> tuple[Path, ...]:
        return self.folders.get(kind, ())


def read_tool_folders(root: Path) -> ToolFolders:
    """An AUTOMATIC1111/Forge or ComfyUI installation's model folders. `root` may be the
    installation itself or its `models` folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ModelFolderError(f"models_from: {root} is not a folder")
    candidates = [root] + ([root.parent] if root.name == "models" else [])
    for base in candidates:
        for layout_name, layout in (("AUTOMATIC1111", A1111_LAYOUT), ("ComfyUI", COMFYUI_LAYOUT)):
            if (base / layout["checkpoints"][0]).is_dir() or (base / layout["loras"][0]).is_dir():
                found = {
                    kind: tuple(base / rel for rel in relatives if (base / rel).is_dir())
                    for kind, relatives in layout.items()
                }
                return ToolFolders(base, layout_name, found)
    raise ModelFolderError(
        f"models_from: {root} looks like neither an AUTOMATIC1111/Forge installation (models/Stable-diffusion, "
        "models/Lora) nor a ComfyUI one (models/checkpoints, models/loras)"
    )


def safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file: tensor names, dtypes and shapes, no weights."""
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError("shorter than a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        if not 2 <= length <= MAX_HEADER_BYTES:
            raise ValueError("not a safetensors file")
        text = handle.read(length)
    if len(text) != length:
        raise ValueError("the file is cut short")
    header = json.loads(text)
    if not isinstance(header, dict):
        raise ValueError("not a safetensors file")
    return header


def gguf_header(path: Path) -> dict:
    """A .gguf file's tensors as a safetensors-like header: name -> {"shape" (torch's order), "dtype" (the
    GGML type's name: F32, F16, Q8_0, Q4_K...), "bytes" (as stored)}. Metadata only; no weights read."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        return {
            tensor.name: {"shape": [int(side) for side in reversed(tensor.shape)], "dtype": tensor.tensor_type.name,
                          "bytes": int(tensor.n_bytes)}
            for tensor in reader.tensors
        }
    except OSError:
        raise
    except Exception as exc:  # the reader fails on damaged files with whatever numpy or struct raises
        raise ValueError(str(exc) or exc.__class__.__name__) from None


def weights_header(path: Path) -> dict:
    """The tensor header of a .safetensors or .gguf file (raises ValueError for a damaged one)."""
    return gguf_header(path) if path.suffix.lower() == ".gguf" else safetensors_header(path)


def _shape(header: dict, name: str) -> list[int] | None:
    value = header.get(name)
    return value.get("shape") if isinstance(value, dict) else None


def checkpoint_family(header: dict) -> str | None:
    """SD 1.x, SD 2.x, SDXL, SD 3.x or FLUX from a checkpoint's tensor names, or None for anything
    else (a LoRA, a VAE, a ControlNet, a text encoder)."""
    names = [name for name in header if name != "__metadata__"]

    def has(prefix: str) -> bool:
        return any(name.startswith(prefix) for name in names)

    if has("double_blocks.") or has("model.diffusion_model.double_blocks."):
        return FLUX
    if has("joint_blocks.") or has("model.diffusion_model.joint_blocks."):
        return SD3
    # A transformer alone in diffusers' own layout (a pipeline folder's transformer file, copied out).
    if has("transformer_blocks.") and has("context_embedder."):
        return FLUX if has("single_transformer_blocks.") else SD3
    if has("conditioner.embedders.1.") or has("model.diffusion_model.label_emb."):
        return SDXL
    if not has("model.diffusion_model.input_blocks."):
        return None
    # SD 1.x cross-attends to CLIP-L (768 wide); SD 2.x to OpenCLIP-H (1024 wide).
    to_k = next((n for n in names if n.startswith("model.diffusion_model.") and n.endswith("attn2.to_k.weight")), None)
    shape = _shape(header, to_k) if to_k else None
    if shape and len(shape) == 2:
        return SD2 if shape[1] == 1024 else SD1
    return SD2 if has("cond_stage_model.model.") else SD1


def is_inpainting(header: dict) -> bool:
    shape = _shape(header, "model.diffusion_model.input_blocks.0.0.weight")
    return bool(shape and len(shape) == 4 and shape[1] == 9)


_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def checkpoint_id(stem: str, taken: set[str]) -> str:
    """A catalogue id from a file's stem: the characters a model id allows, made unique."""
    base = _UNSAFE_ID_CHARS.sub("-", stem).strip("-._")[:90] or "checkpoint"
    if not base[0].isalnum():
        base = "m" + base
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class FoundCheckpoint:
    path: Path
    family: str | None  # None: not an image checkpoint the studio can tell
    inpainting: bool
    size_mb: float
    problem: str | None = None  # why it is not offered, in one sentence


def scan_checkpoints(folders: tuple[Path, ...] | list[Path]) -> list[FoundCheckpoint]:
    """Every checkpoint-like file in these folders and their sub-folders (both tools allow those),
    each with its family or the reason it is not offered."""
    found: list[FoundCheckpoint] = []
    seen: set[Path] = set()
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*"), key=lambda p: (p.name.casefold(), str(p))):
            if path.name.startswith(".") or path.suffix.lower() not in CHECKPOINT_SUFFIXES or not path.is_file():
                continue
            if path.resolve() not in seen:
                seen.add(path.resolve())
                found.append(inspect_checkpoint(path))
    return found


def inspect_checkpoint(path: Path) -> FoundCheckpoint:
    """A file's family from its header. Pickled checkpoints are named as refused, never opened."""
    size_mb = path.stat().st_size / 2**20
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return FoundCheckpoint(path, None, False, size_mb,
                               f"{path.name} is a pickle checkpoint; the studio loads .safetensors files only")
    if suffix not in (".safetensors", ".gguf"):
        return FoundCheckpoint(path, None, False, size_mb, f"{path.name} is not a model file; the studio loads "
                               ".safetensors checkpoints and .gguf transformers")
    try:
        header = weights_header(path)
    except (OSError, ValueError) as exc:
        return FoundCheckpoint(path, None, False, size_mb, f"{path.name} is not a readable {suffix} file ({exc})")
    family = checkpoint_family(header)
    problem = None
    if suffix == ".gguf" and family not in (SD3, FLUX):
        problem = f"{path.name} is not a FLUX or SD 3.x transformer (the only GGUF image models the studio loads)"
    elif family is None:
        problem = f"{path.name} is not a whole image checkpoint (a LoRA, a VAE or another part?)"
    elif family not in LOADABLE_FAMILIES:
        problem = f"{path.name} is a {family} checkpoint, which the studio does not load from one file"
    return FoundCheckpoint(path, family, is_inpainting(header), size_mb, problem)
