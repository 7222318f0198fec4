"""The result of any backend that makes a picture or a run of frames (patterns, walks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image


@dataclass
class FramesResult:
    frames: list[Image.Image]
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    stopped: bool = False  # Stop was pressed; `frames` holds what was made until then
