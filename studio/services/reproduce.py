"""Make a picture again from the parameters its PNG carries, and say whether the pixels match.

The studio's own `studio` record says everything (task, model and revision, seed, sizes, and where
its input pictures are kept); AUTOMATIC1111's `parameters` text is read where it maps onto the
catalogue. Input pictures come from the gallery's store or are given by the caller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from studio.errors import InputError, StudioError
from studio.history import GalleryItem
from studio.media.png_info import A1111_KEY, STUDIO_KEY, parse_a1111_parameters, read_png_text
from studio.services.records import known_fields

if TYPE_CHECKING:
    from studio.media.images import LoadedImage
    from studio.services.facade import Studio

IMAGE_TASKS = ("txt2img", "img2img", "inpaint", "outpaint", "restyle")
TASKS = (*IMAGE_TASKS, "style", "patterns")
# Facts of the machine a picture was made on; when they differ, the pixels may too.
MACHINE_FACTS = (
    ("model_revision", "model revision"),
    ("dtype", "number format"),
    ("device", "device"),
    ("engine", "engine"),
)


@dataclass
class Recipe:
    """What a PNG says made it."""

    task: str
    params: dict[str, Any]
    source: str  # "studio" (the studio's own record) or "AUTOMATIC1111" (the `parameters` text)
    notes: list[str] = field(default_factory=list)


@dataclass
class Reproduction:
    image: Image.Image
    record: dict[str, Any]  # the new picture's parameters
    png_text: dict[str, str]  # the text chunks its PNG carries
    seconds: float
    item: GalleryItem | None
    notes: list[str]


@dataclass(frozen=True)
class Comparison:
    same_size: bool
    changed_share: float  # of pixels that differ in any channel
    largest_difference: int  # 0-255

    @property
    def equal(self) -> bool:
        return self.same_size and self.changed_share == 0

    def describe(self, original: Image.Image, new: Image.Image) -> str:
        if not self.same_size:
            return (f"differs from the original: it is {new.width}x{new.height} px, "
                    f"the original {original.width}x{original.height} px")
        if self.equal:
            return "matches the original pixel for pixel"
        return (f"differs from the original in {self.changed_share:.2%} of its pixels "
                f"(largest difference {self.largest_difference} of 255)")


def read_recipe(path: Path, studio: Studio) -> Recipe:
    """The parameters a PNG carries, or an InputError saying why there are none to use."""
    try:
        text = read_png_text(path)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{path.name} cannot be read as a PNG ({_first_line(exc)}).") from None
    record = _studio_record(text.get(STUDIO_KEY))
    if record is not None:
        task = record.get("task")
        if task not in TASKS:
            raise InputError(f"{path.name} was made by the studio's '{task}' task, which cannot be reproduced from "
                             f"a picture; tasks that can: {', '.join(TASKS)}.")
        _check_model(record, studio)
        return Recipe(task, record, "studio")
    if text.get(A1111_KEY):
        return _a1111_recipe(path, text[A1111_KEY], studio)
    raise InputError(f"{path.name} carries no generation parameters (no 'studio' or 'parameters' text in the PNG).")


def _studio_record(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "task" in record and "model" in record else None


def _a1111_recipe(path: Path, raw: str, studio: Studio) -> Recipe:
    from studio.backends.diffusion import fields_from_parameters
    from studio.backends.diffusion.metadata import recorded_networks

    parsed = parse_a1111_parameters(raw)
    values, notes = fields_from_parameters(parsed, studio.catalog)
    if "model" not in values:
        named = parsed.get("Model id") or parsed.get("Model")
        if named:
            raise InputError(f"{path.name} was made with the model '{named}', which is not in the catalogue; add it "
                             "to your models file (--models-file) to reproduce it.")
        raise InputError(f"{path.name} does not say which model made it (no 'Model' in its parameters).")
    if "seed" not in values:
        raise InputError(f"{path.name} does not record its seed, so it cannot be made again.")
    task = values.pop("mode", "txt2img")
    # Which files the LoRA tags and embedding words meant, looked up by hash when the picture is made.
    networks = recorded_networks(parsed)
    return Recipe(task, {**values, **networks, "task": task}, "AUTOMATIC1111", notes)


def _check_model(record: dict[str, Any], studio: Studio) -> None:
    if record["model"] not in studio.catalog:
        raise InputError(f"This picture was made with '{record['model']}', which is not in the catalogue; add it to "
                         "your models file (--models-file) to reproduce it.")


def reproduce(
    studio: Studio,
    recipe: Recipe,
    *,
    picture: Path | None = None,
    mask: Path | None = None,
    style_image: Path | None = None,
    keep: bool = True,
) -> Reproduction:
    """Run the recipe again. Input pictures are the ones given, else the gallery's stored copies."""
    params = recipe.params
    if recipe.task in IMAGE_TASKS:
        return _image(studio, recipe, picture, mask, keep)
    if recipe.task == "style":
        from studio.backends.stylize import ARBITRARY_ID, StyleRequest

        photo = _input(studio, picture, params.get("input"), "the photo", "--input")
        style = None
        if params["model"] == ARBITRARY_ID:
            style = _input(studio, style_image, params.get("style_image"), "a style image", "--style-image")
        outcome = studio.stylize(photo, StyleRequest(**known_fields(StyleRequest, params)), style, keep=keep)
        record = outcome.item.params if outcome.item else outcome.result.params
        return Reproduction(outcome.result.image, record, {STUDIO_KEY: _json(record)}, outcome.result.seconds,
                            outcome.item, outcome.notes)
    from studio.backends.patterns import PatternRequest

    request = PatternRequest(**known_fields(PatternRequest, params))
    if request.walk_to is not None:
        raise InputError("This PNG records a pattern walk (an animation); reproduce makes pictures.")
    outcome = studio.make_patterns(request, keep=keep)
    return Reproduction(outcome.frames[0], outcome.params, {STUDIO_KEY: _json(outcome.params)}, outcome.seconds,
                        outcome.item, [])


def _image(studio: Studio, recipe: Recipe, picture: Path | None, mask: Path | None, keep: bool) -> Reproduction:
    from studio.backends.diffusion import a1111_parameters
    from studio.services.image import request_from_record, with_networks_found

    params, found_notes = with_networks_found(recipe.params, studio.image)
    try:
        request = request_from_record(params)
    except TypeError as exc:
        raise InputError(f"The recorded parameters cannot be read ({exc}).") from None
    image = loaded_mask = None
    if request.mode != "txt2img":
        image = _input(studio, picture, params.get("input"), "an input picture", "--input")
    if request.mode == "inpaint":
        loaded_mask = _input(studio, mask, params.get("mask"), "a mask", "--mask")
    task = "restyle" if recipe.task == "restyle" else None
    try:  # each ControlNet's picture, from the gallery's store
        controls = studio.image_service.control_pictures(params)
    except StudioError:
        raise InputError("This picture was made with a ControlNet whose picture is not in this studio's gallery "
                         "store, so it cannot be made again here.") from None
    outcome = studio.generate_image(request, image, loaded_mask, task=task, keep=keep, controls=controls)
    record = outcome.items[0].params if outcome.items else outcome.result.params[0]
    png_text = {STUDIO_KEY: _json(record), A1111_KEY: a1111_parameters(record)}
    return Reproduction(outcome.result.images[0], record, png_text, outcome.result.seconds,
                        outcome.items[0] if outcome.items else None, recipe.notes + found_notes + outcome.notes)


def _input(studio: Studio, given: Path | None, stored: str | None, what: str, flag: str) -> LoadedImage:
    """The input picture the caller gave, else the gallery's copy of the one recorded."""
    if given is not None:
        return studio.open_image(given)
    if stored:
        try:
            return studio.open_image(studio.gallery.input_path(stored))
        except StudioError:
            pass  # kept in another data dir, or deleted: explained below
    raise InputError(f"This picture was made from {what} that is not in this studio's gallery store; "
                     f"give it with {flag} FILE.")


def machine_notes(original: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why the pixels may differ: the facts of the machine that changed between the two runs."""
    notes = []
    for key, words in MACHINE_FACTS:
        if original.get(key) is not None and new.get(key) is not None and original[key] != new[key]:
            notes.append(f"the {words} was {original[key]}, now {new[key]}")
    # The fast LCM switch's LoRA comes from the catalogue by name: a changed file changes the pixels.
    before, after = (original.get("lcm_lora") or {}).get("hash"), (new.get("lcm_lora") or {}).get("hash")
    if before and after and before != after:
        notes.append(f"the fast LCM switch's LoRA file was {before}, now {after}")
    return notes


def compare(original: Image.Image, new: Image.Image) -> Comparison:
    """Pixel by pixel, in RGBA when either picture has transparency, else in RGB."""
    if original.size != new.size:
        return Comparison(False, 1.0, 255)
    mode = "RGBA" if "A" in original.getbands() or "A" in new.getbands() else "RGB"
    a = np.asarray(original.convert(mode), dtype=np.int16)
    b = np.asarray(new.convert(mode), dtype=np.int16)
    difference = np.abs(a - b)
    changed = difference.max(axis=-1) > 0
    return Comparison(True, float(changed.mean()), int(difference.max()))



def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
