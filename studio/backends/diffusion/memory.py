"""Will a model fit? Its size in memory, counted from its safetensors headers (no weights read), against
the memory this machine has free, before loading: one sentence instead of a machine swapping itself
to death on a 34 GB FLUX folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from studio.errors import StudioError
from studio.model_folders import safetensors_header

# Bytes per element of the dtypes safetensors stores.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}
# What a pipeline holds besides its weights while it loads (buffers, the loader's own copies).
OVERHEAD = 1.1


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
    """MB the weights take once loaded in a dtype of `bytes_per_weight` (floats change size; others keep theirs)."""
    total = 0
    for path in files:
        try:
            header = safetensors_header(path)
        except (OSError, ValueError):
            continue  # a damaged file gets its own message when it loads
        for name, info in header.items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            count = 1
            for side in info.get("shape", []):
                count *= int(side)
            dtype = str(info.get("dtype", "F32"))
            total += count * (bytes_per_weight if dtype.startswith(("F", "BF")) else DTYPE_BYTES.get(dtype, 4))
    return total * OVERHEAD / 2**20


def available_mb() -> float:
    import psutil

    return psutil.virtual_memory().available / 2**20


def check_fits(name: str, where: Path, variant: str | None, dtype, free_mb: Callable[[], float] = available_mb) -> float:
    """The MB a model needs, or one sentence refusing it when this machine has less free."""
    need = needed_mb(weight_files(where, variant), dtype.itemsize)
    free = free_mb()
    if need > free:
        raise StudioError(
            f"'{name}' needs about {need / 1024:.1f} GB of memory in {str(dtype).removeprefix('torch.')} and this "
            f"machine has {free / 1024:.1f} GB free: choose a smaller model (or a quantised one), or free memory first."
        )
    return need
