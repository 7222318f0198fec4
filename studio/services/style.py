"""Style transfer as a task: restyle a photo, keep the result with its inputs in the gallery."""

from __future__ import annotations

from dataclasses import dataclass

from studio.backends.stylize import StyleBackend, StyleRequest, StyleResult
from studio.history import Gallery, GalleryItem
from studio.media.images import LoadedImage
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress
from studio.settings import Settings


@dataclass
class StyleOutcome:
    result: StyleResult
    item: GalleryItem | None
    notes: list[str]


class StyleService:
    def __init__(self, settings: Settings, gallery: Gallery, backend: StyleBackend):
        self.settings = settings
        self.gallery = gallery
        self.backend = backend

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
        result = self.backend.stylize(
            photo,
            request,
            style_image,
            max_side=self.settings.max_output_side,
            progress=progress,
            cancel=cancel,
        )
        notes = list(photo.notes) + ([f"Style image: {n}" for n in style_image.notes] if style_image else [])
        item = self.keep(photo, result, style_image, owner=owner) if keep else None
        return StyleOutcome(result, item, notes)

    def keep(
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
