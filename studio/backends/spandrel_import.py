"""Import spandrel (super-resolution architectures) without torchvision.

spandrel imports torchvision at start-up for two architectures the studio never serves (LaMa
inpainting and RestoreFormer face restoration). PyPI's torchvision for Linux is built for CUDA and
does not load beside the CPU build of torch the studio pins, so where torchvision is absent a
placeholder stands in for it while spandrel imports, and is taken away again at once: nothing
else in the process sees it, and those two architectures fail if ever called.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import types
from typing import Any

_lock = threading.Lock()
_PLACEHOLDERS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


def _unavailable(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("torchvision is not installed; this spandrel architecture needs it.")


class _Placeholder(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _unavailable


def import_spandrel() -> types.ModuleType:
    """The spandrel module, imported once."""
    with _lock:
        if "spandrel" in sys.modules:
            return sys.modules["spandrel"]
        if importlib.util.find_spec("torchvision") is not None:
            import spandrel

            return spandrel
        for name in _PLACEHOLDERS:
            sys.modules[name] = _Placeholder(name)
        try:
            import spandrel
        finally:
            for name in _PLACEHOLDERS:
                sys.modules.pop(name, None)
        return spandrel


def architectures() -> tuple[type, type]:
    """spandrel's RRDBNet (ESRGAN, Real-ESRGAN x4plus) and SRVGGNetCompact (Real-ESRGAN animevideov3)."""
    import_spandrel()
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN

    return ESRGAN, Compact
