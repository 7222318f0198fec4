"""The studio as the UI, the CLI and the API all see it: settings, catalogue, model cache,
gallery and backends wired together once, plus the steps every task shares
(open the inputs, run the backend, keep the result and what is needed to re-run it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.stylize import StyleBackend, StyleRequest, StyleResult
from studio.catalog import Catalog, load_catalog
from studio.errors import StudioError
from studio.history import Gallery, GalleryItem
from studio.images import ImageOutcome, generate_image, rerun_image
from studio.media.images import LoadedImage, open_image
from studio.runtime import NEVER_CANCELLED, CancelToken, ModelCache, ProgressCallback, no_progress
from studio.settings import Settings

IMAGE_TASKS = ("txt2img", "img2img", "inpaint", "outpaint", "restyle")


@dataclass
class StyleOutcome:
    result: StyleResult
    item: GalleryItem | None
    notes: list[str]


class Studio:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.catalog: Catalog = load_catalog(settings.models_file)
        self.cache = ModelCache(settings.model_memory_budget_mb)
        self.gallery = Gallery(settings.data_dir)
        self.style = StyleBackend(self.cache, settings.device)
        self.image = DiffusionBackend(self.cache, self.catalog, settings.device, settings.offline)

    def open_image(self, source: str | os.PathLike | bytes) -> LoadedImage:
        return open_image(source, self.settings.max_input_pixels)

    # -- style transfer -------------------------------------------------------------------

    def stylize(
        self,
        photo: LoadedImage,
        request: StyleRequest,
        style_image: LoadedImage | None = None,
        *,
        keep: bool = True,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> StyleOutcome:
        result = self.style.stylize(
            photo,
            request,
            style_image,
            max_side=self.settings.max_output_side,
            progress=progress,
            cancel=cancel,
        )
        notes = list(photo.notes) + ([f"Style image: {n}" for n in style_image.notes] if style_image else [])
        item = self.keep_style(photo, result, style_image, owner=owner) if keep else None
        return StyleOutcome(result, item, notes)

    def keep_style(
        self,
        photo: LoadedImage,
        result: StyleResult,
        style_image: LoadedImage | None = None,
        owner: str | None = None,
    ) -> GalleryItem:
        """List a style result in the gallery together with the inputs needed to re-run it."""
        params = dict(result.params)
        params["input"] = self.gallery.keep_input(photo.original)
        if style_image is not None:
            params["style_image"] = self.gallery.keep_input(style_image.original)
        params["seconds"] = round(result.seconds, 3)
        return self.gallery.add_image(result.image, task="style", model=params["model"], params=params, owner=owner)

    # -- images: generate, inpaint, outpaint, restyle (studio/images.py) ------------------

    def generate_image(self, request: ImageRequest, image: LoadedImage | None = None,
                       mask: LoadedImage | None = None, **kwargs: Any) -> ImageOutcome:
        return generate_image(self, request, image, mask, **kwargs)

    # -- the gallery's re-run -------------------------------------------------------------

    def rerun(self, item_id: int, owner: str | None = None) -> GalleryItem:
        """Run a gallery item's task again with its recorded parameters; the new result is listed too."""
        item = self.gallery.get(item_id)
        if item.task == "style":
            return self._rerun_style(item, owner)
        if item.task in IMAGE_TASKS:
            return rerun_image(self, item, owner)
        raise StudioError(f"Items of the task '{item.task}' cannot be re-run from the gallery.")

    def _rerun_style(self, item: GalleryItem, owner: str | None) -> GalleryItem:
        params: dict[str, Any] = item.params
        photo = self.open_image(self.gallery.input_path(params["input"]))
        style_image = None
        if params.get("style_image"):
            style_image = self.open_image(self.gallery.input_path(params["style_image"]))
        names = {f.name for f in fields(StyleRequest)}
        request = StyleRequest(**{k: v for k, v in params.items() if k in names})
        outcome = self.stylize(photo, request, style_image, owner=owner)
        assert outcome.item is not None
        return outcome.item
