"""Upscaling as a task: enlarge a picture, keep the result in the gallery with its parameters.

The PNG's `parameters` text is what AUTOMATIC1111's Extras writes: the source picture's own
parameters (when it had any), then `Postprocess upscale by: 4, Postprocess upscaler: R-ESRGAN 4x+`
on a line of its own, so other tools still read the original recipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from studio.backends.upscale import UpscaleBackend, UpscaleRequest, UpscaleResult
from studio.history import Gallery, GalleryItem
from studio.media.images import LoadedImage
from studio.media.png_info import read_png_text
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress
from studio.settings import Settings


@dataclass
class UpscaleOutcome:
    result: UpscaleResult
    item: GalleryItem | None
    parameters: str  # the PNG `parameters` text
    notes: list[str] = field(default_factory=list)


def source_parameters(path: str | os.PathLike | None) -> str | None:
    """The `parameters` text a PNG carries (AUTOMATIC1111's or the studio's), or None."""
    if path is None or Path(path).suffix.lower() != ".png":
        return None
    try:
        text = read_png_text(path).get("parameters")
    except (OSError, ValueError):
        return None
    return text.strip() or None if text else None


def postprocess_parameters(result: UpscaleResult, original: str | None = None) -> str:
    """AUTOMATIC1111's Extras line, after the original picture's parameters when it had some."""
    line = (f"Postprocess upscale by: {result.params['scale']}, "
            f"Postprocess upscaler: {result.params['upscaler_name']}")
    return f"{original}\n{line}" if original else line


class UpscaleService:
    def __init__(self, settings: Settings, gallery: Gallery, backend: UpscaleBackend):
        self.settings = settings
        self.gallery = gallery
        self.backend = backend

    def upscale(
        self,
        photo: LoadedImage,
        request: UpscaleRequest,
        *,
        parameters: str | None = None,
        keep: bool = True,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> UpscaleOutcome:
        """Enlarge `photo`; `parameters` is the source PNG's own `parameters` text, kept above ours."""
        result = self.backend.upscale(
            photo, request, max_pixels=self.settings.max_upscale_pixels, progress=progress, cancel=cancel
        )
        item = self.keep(photo, result, parameters, owner=owner) if keep else None
        return UpscaleOutcome(result, item, postprocess_parameters(result, parameters), list(photo.notes))

    def keep(self, photo: LoadedImage, result: UpscaleResult, parameters: str | None = None,
             owner: str | None = None) -> GalleryItem:
        """List an upscaled picture in the gallery with its input (and the source's own parameters
        text), so it can be re-run."""
        params = dict(result.params)
        params["input"] = self.gallery.keep_input(photo.original)
        params["source_parameters"] = parameters
        params["seconds"] = round(result.seconds, 3)
        text = postprocess_parameters(result, parameters)
        return self.gallery.add_image(result.image, task="upscale", model=params["model"], params=params,
                                      owner=owner, png_text={"parameters": text})
