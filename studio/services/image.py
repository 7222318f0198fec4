"""Images as a task (the Image tab, the Style tab's diffusion restyle, the CLI): run the diffusion
backend, keep every picture in the gallery with its AUTOMATIC1111-style `parameters` chunk and the
inputs needed to make it again, and re-run it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from studio import limits
from studio.backends.diffusion import (
    DEFAULT_DECODER,
    DEFAULT_MODEL,
    DiffusionBackend,
    ImageRequest,
    ImageResult,
    a1111_parameters,
    fit_size,
)
from studio.backends.diffusion.metadata import relocate_networks
from studio.errors import InputError, StudioError
from studio.history import Gallery, GalleryItem
from studio.media.images import LoadedImage, open_image
from studio.media.png_info import A1111_KEY
from studio.runtime import (
    NEVER_CANCELLED,
    CancelToken,
    ProgressCallback,
    StageCallback,
    no_progress,
    no_stage,
)
from studio.services.records import known_fields
from studio.settings import Settings


@dataclass
class ImageOutcome:
    result: ImageResult
    items: list[GalleryItem]  # empty when the pictures were not kept
    notes: list[str]


class ImageService:
    def __init__(self, settings: Settings, gallery: Gallery, backend: DiffusionBackend):
        self.settings = settings
        self.gallery = gallery
        self.backend = backend

    def open_image(self, source: str | os.PathLike | bytes) -> LoadedImage:
        return open_image(source, self.settings.max_input_pixels)

    def generate(
        self,
        request: ImageRequest,
        image: LoadedImage | None = None,
        mask: LoadedImage | None = None,
        *,
        task: str | None = None,
        keep: bool = True,
        owner: str | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
        preparing: StageCallback = no_stage,
        controls: Sequence[LoadedImage | None] = (),
    ) -> ImageOutcome:
        """Run one request; `task` names it in the gallery when it differs from the mode (e.g. "restyle");
        `preparing` hears of a model's one-off preparation for this machine (see DiffusionBackend.generate);
        `controls`: each ControlNet's picture, in the request's order (None: the input picture)."""
        limits.check_image(request, self.settings)
        result = self.backend.generate(
            request,
            image.rgb if image is not None else None,
            mask_picture(mask) if mask is not None else None,
            max_side=self.settings.max_output_side,
            progress=progress,
            cancel=cancel,
            preparing=preparing,
            controls=[c.rgb if c is not None else None for c in controls],
        )
        if task:
            for record in result.params:
                record["task"] = task
        notes = list(result.notes)
        for loaded, what in ((image, "Input"), (mask, "Mask"), *((c, f"ControlNet {n}") for n, c in enumerate(controls))):
            if loaded is not None:
                notes += [f"{what}: {note}" for note in loaded.notes]
        items = self.keep(result, image, mask, owner=owner, controls=controls) if keep else []
        return ImageOutcome(result, items, notes)

    def keep(
        self,
        result: ImageResult,
        image: LoadedImage | None = None,
        mask: LoadedImage | None = None,
        owner: str | None = None,
        controls: Sequence[LoadedImage | None] = (),
    ) -> list[GalleryItem]:
        """List every picture of a result in the gallery, each PNG carrying its own parameters; each
        ControlNet's picture (to re-run from) and its map (to look at) are kept beside them."""
        inputs: dict[str, str] = {}
        if image is not None:
            inputs["input"] = self.gallery.keep_input(image.original)
        if mask is not None:
            inputs["mask"] = self.gallery.keep_input(mask_picture(mask))
        kept_controls = [
            {"input": self.gallery.keep_input(control.original)} if control is not None else {}
            for control in controls
        ]
        for number, made in enumerate(result.control_maps):
            if number < len(kept_controls):
                kept_controls[number]["map"] = self.gallery.keep_input(made)
            else:
                kept_controls.append({"map": self.gallery.keep_input(made)})
        items = []
        for picture, record in zip(result.images, result.params, strict=True):
            params = {**record, **inputs, "seconds": round(result.seconds / len(result.images), 3)}
            if record.get("controlnets"):
                params["controlnets"] = [{**unit, **kept} for unit, kept in
                                         zip(record["controlnets"], kept_controls, strict=False)]
            items.append(
                self.gallery.add_image(
                    picture,
                    task=record["task"],
                    model=record["model"],
                    params=params,
                    seed=record["seed"],
                    owner=owner,
                    png_text={A1111_KEY: a1111_parameters(record)},
                )
            )
        return items

    def rerun(self, item: GalleryItem, owner: str | None = None) -> GalleryItem:
        """Make a gallery picture again from its record (same seed, same inputs: the same picture)."""
        params = item.params
        image = mask = None
        if params.get("input"):
            image = self.open_image(self.gallery.input_path(params["input"]))
        if params.get("mask"):
            mask = self.open_image(self.gallery.input_path(params["mask"]))
        controls = self.control_pictures(params)
        params, _ = with_networks_found(params, self.backend)
        try:
            request = request_from_record(params)
        except TypeError as exc:
            raise StudioError(f"Gallery item #{item.id} has a record the studio cannot read ({exc}).") from None
        outcome = self.generate(request, image, mask, task=params.get("task"), owner=owner, controls=controls)
        return outcome.items[0]

    def control_pictures(self, params: dict[str, Any]) -> list[LoadedImage | None]:
        """The kept picture of each ControlNet of a record (None where it used the input picture)."""
        pictures: list[LoadedImage | None] = []
        for unit in params.get("controlnets") or []:
            stored = unit.get("input") if isinstance(unit, dict) else None
            pictures.append(self.open_image(self.gallery.input_path(stored)) if stored else None)
        return pictures

    def default_model(self, task: str = "txt2img") -> str:
        """The model to start with: SD-Turbo where it is on this machine, else the first one that is."""
        present = [e.id for e in self.backend.image_entries(task) if self.backend.is_available(e.id)]
        return DEFAULT_MODEL if DEFAULT_MODEL in present or not present else present[0]

    def default_decoder(self) -> str:
        """The fast decoder to start with: TAESD where it is on this machine, else the first one that is."""
        present = [e.id for e in self.backend.decoder_entries() if self.backend.is_available(e.id)]
        return DEFAULT_DECODER if DEFAULT_DECODER in present or not present else present[0]

    def working_size(self, model_id: str, picture: Image.Image) -> tuple[int, int]:
        """The size a model works best at for this picture: its trained resolution, the picture's shape."""
        native = self.backend.load(model_id).native_size
        return fit_size(picture.width, picture.height, native)


def mask_picture(mask: LoadedImage) -> Image.Image:
    """An uploaded mask as greyscale, white = repaint. A mask drawn on transparency counts where drawn."""
    if mask.alpha is not None and mask.alpha.getextrema()[0] < 255:
        return mask.alpha
    return mask.rgb.convert("L")


def with_networks_found(params: dict[str, Any], backend: DiffusionBackend) -> tuple[dict[str, Any], list[str]]:
    """A record's prompts with its LoRAs and embeddings found by hash in the folders (renamed files
    named as they are now), and notes saying what changed or is missing. A LoRA no folder holds stops
    the run with one line naming it: without its file the picture cannot be made again."""
    relocated = relocate_networks(params, backend.loras, backend.embeddings)
    if relocated.missing_loras:
        raise InputError(" ".join(relocated.missing_loras))
    found = {**params, "prompt": relocated.prompt, "negative_prompt": relocated.negative_prompt}
    return found, relocated.notes + relocated.missing


def request_from_record(params: dict[str, Any]) -> ImageRequest:
    values = known_fields(ImageRequest, params)
    if params.get("task") == "restyle":
        values["mode"] = "img2img"
    return ImageRequest(**values)


def mask_from_layers(layers: list[Image.Image], size: tuple[int, int]) -> Image.Image | None:
    """The strokes painted over a picture (any layer, any colour) as a mask; None if nothing was painted."""
    mask = Image.new("L", size, 0)
    for layer in layers:
        if layer.mode != "RGBA":
            continue
        drawn = layer.getchannel("A").point(lambda v: 255 if v > 0 else 0)
        if drawn.size != size:
            drawn = drawn.resize(size, Image.Resampling.NEAREST)
        mask.paste(255, (0, 0), drawn)
    return mask if mask.getbbox() else None
