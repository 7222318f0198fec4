"""Style transfer as a task: restyle a photo, keep the result with its inputs in the gallery."""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.backends.stylize import StyleBackend, StyleRequest, StyleResult
from studio.history import Gallery, GalleryItem
from studio.media.images import LoadedImage
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress
from studio.settings import Settings

# Enlarging a photo more than this invents most of the result's detail: worth a warning.
ENLARGE_WARNING = 1.5


@dataclass
class StyleOutcome:
    result: StyleResult
    item: GalleryItem | None
    notes: list[str]
    warnings: list[str] = field(default_factory=list)


def enlargement_warning(photo: LoadedImage, result: StyleResult) -> str | None:
    """Say so when the asked size blew a small photo up (a 1x1 picture became 1024x1024 unannounced)."""
    (width, height), (new_width, new_height) = photo.rgb.size, result.image.size
    scale = max(new_width, new_height) / max(width, height)
    if scale < ENLARGE_WARNING:
        return None
    times = f"{scale:.0f}" if scale >= 10 else f"{scale:.1f}"
    return (f"The photo is only {width}x{height} px; it was enlarged {times}x to {new_width}x{new_height} px to "
            f"reach the asked size, so the style has little to work from. Choose a smaller size or a larger photo.")


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
        warning = enlargement_warning(photo, result)
        return StyleOutcome(result, item, notes, [warning] if warning else [])

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
