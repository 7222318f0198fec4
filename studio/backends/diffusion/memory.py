"""Will a model fit? Its size in memory, counted from its weight files' headers (no weights read), against
the memory this machine has free, before loading: one sentence instead of a machine swapping itself
to death on a 34 GB FLUX folder.

A GGUF transformer counts its quantised bytes (it stays quantised in memory), so a Q4 FLUX fits where
the full one is refused. On a CUDA GPU with too little free memory for the whole model but RAM enough
for it, the model is kept in RAM and each part moved to the GPU only while it runs (diffusers'
model CPU offload).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio.errors import StudioError
from studio.model_folders import weights_header

# Bytes per element of the dtypes safetensors stores.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}
# What a pipeline holds besides its weights while it loads (buffers, the loader's own copies).
OVERHEAD = 1.1
# Where the whole model goes: on the device, or in RAM with each part on the GPU only while it runs.
WHOLE, OFFLOAD = "whole", "offload"


def weight_files(where: Path, variant: str | None) -> list[Path]:
    """The .safetensors files a pipeline folder loads (one per component: the variant's where it has
    one), or the single file itself. Single-file copies at the top of a hub folder are not loaded."""
    if where.is_file():
        return [where]
    files: list[Path] = []
    for component in sorted(p for p in where.iterdir() if p.is_dir()):
        found = sorted(component.glob("*.safetensors"))
        chosen = [f for f in found if variant and f.name.endswith(f".{variant}.safetensors")]
        files += chosen or [f for f in found if f.name.count(".") == 1 or "-of-" in f.name]
    return files


def needed_mb(files: list[Path], bytes_per_weight: int) -> float:
    """MB the weights take once loaded in a dtype of `bytes_per_weight` (floats change size; others keep theirs,
    GGUF's quantised blocks among them)."""
    total = 0
    for path in files:
        try:
            header = weights_header(path)
        except (OSError, ValueError):
            continue  # a damaged file gets its own message when it loads
        for name, info in header.items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            count = 1
            for side in info.get("shape", []):
                count *= int(side)
            dtype = str(info.get("dtype", "F32"))
            if dtype.startswith(("F", "BF")):
                total += count * bytes_per_weight
            else:
                total += int(info["bytes"]) if "bytes" in info else count * DTYPE_BYTES.get(dtype, 4)
    return total * OVERHEAD / 2**20


def available_mb() -> float:
    import psutil

    return psutil.virtual_memory().available / 2**20


def gpu_free_mb() -> float:
    """Free memory on the current CUDA GPU, MB (0 without one)."""
    import torch

    if not torch.cuda.is_available():
        return 0.0
    free, _total = torch.cuda.mem_get_info()
    return free / 2**20


@dataclass(frozen=True)
class Fit:
    """How a model is placed: its need, and WHOLE (all on the device) or OFFLOAD (RAM, parts lent to the GPU)."""

    need_mb: float
    placement: str = WHOLE

    def note(self, name: str) -> str:
        """What a result says about the placement, or nothing."""
        if self.placement != OFFLOAD:
            return ""
        return (f"'{name}' needs about {self.need_mb / 1024:.1f} GB, more than the GPU has free, so it ran with model "
                "CPU offload: kept in RAM, each part on the GPU only while it runs (slower, but it fits).")


def check_fits(name: str, files: list[Path], dtype, free_mb: Callable[[], float] = available_mb,
               device: str = "cpu", free_gpu_mb: Callable[[], float] = gpu_free_mb) -> Fit:
    """Where a model of these weight files goes, or one sentence refusing it when this machine has too
    little free memory. On a CUDA GPU: whole if its free memory holds the model, else offloaded if RAM
    holds it; elsewhere (CPU, MPS) it must fit in RAM, as before."""
    need = needed_mb(files, dtype.itemsize)
    if device == "cuda":
        gpu = free_gpu_mb()
        if need <= gpu:
            return Fit(need, WHOLE)
        ram = free_mb()
        if need <= ram:
            return Fit(need, OFFLOAD)
        raise StudioError(
            f"'{name}' needs about {need / 1024:.1f} GB of memory in {str(dtype).removeprefix('torch.')}; the GPU has "
            f"{gpu / 1024:.1f} GB free and this machine {ram / 1024:.1f} GB of RAM free, too little even to offload "
            "it: choose a smaller model (or a quantised one), or free memory first."
        )
    free = free_mb()
    if need > free:
        raise StudioError(
            f"'{name}' needs about {need / 1024:.1f} GB of memory in {str(dtype).removeprefix('torch.')} and this "
            f"machine has {free / 1024:.1f} GB free: choose a smaller model (or a quantised one), or free memory first."
        )
    return Fit(need, WHOLE)
