"""The Image tab's ControlNet accordion, as AUTOMATIC1111's extension shows it: "ControlNet Unit 0/1/2"
tabs, each with its ControlNet model, how its picture becomes a map (and that preprocessor's settings),
the picture (uploaded, or drawn on a sketch pad), its weight and start/end, and a preview of its map.

Text to image, image to image and inpainting take unit 0's first seven values as they always did, and
the rest (unit 0's thresholds, then units 1 and 2) after their other inputs, so older calls still fit."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from studio.backends.diffusion import control_maps
from studio.backends.diffusion.controlnet import TASK
from studio.backends.diffusion.metadata import controlnet_units
from studio.backends.diffusion.request import MAX_CONTROL_WEIGHT, ControlUnit
from studio.catalog import Catalog
from studio.errors import InputError, StudioError
from studio.media.images import LoadedImage
from studio.services import Studio
from studio.ui.common import UploadedImageEditor, api_doc, image_upload, user_errors

NONE = ""  # the model dropdown's "no ControlNet"
UNITS = 3  # the units AUTOMATIC1111's extension shows by default
THRESHOLD_MAX = 255  # the widest setting of any type (canny); each type's own range is checked by the request
# What the API page and MCP tools say about the ControlNet inputs (after the fast LCM switch).
CONTROL_SETTINGS = {
    "controlnet": "catalogue id of a ControlNet (task 'controlnet'), or '' for none",
    "control_type": f"how its picture becomes the map: {', '.join(control_maps.CONTROL_TYPES)} ('none': the "
                    "picture is already a map)",
    "control_picture": "the ControlNet's picture (a file); empty: the sketch, else the input picture",
    "control_sketch": "a sketch pad's value {'background', 'layers', 'composite'}: strokes drawn on white",
    "control_weight": f"0-{MAX_CONTROL_WEIGHT:g}: how strongly it steers (0: as without it)",
    "control_start": "0-1: the share of the steps before it starts steering",
    "control_end": "0-1: the share of the steps after which it stops",
}
THRESHOLD_SETTINGS = {
    "control_threshold_a": "the type's first setting (canny: low threshold 1-255, scribble: XDoG threshold 1-64, "
                           "tile: down-sampling rate 1-8, blur: sigma 0.1-64); 0: the type's default",
    "control_threshold_b": "the type's second setting (canny: high threshold 1-255); 0: the type's default",
}
UNIT_DEFAULTS: dict[str, Any] = {"controlnet": NONE, "control_type": "canny", "control_picture": None,
                                 "control_sketch": None, "control_weight": 1.0, "control_start": 0.0,
                                 "control_end": 1.0, "control_threshold_a": 0, "control_threshold_b": 0}
# The inputs after unit 0's first seven: its thresholds, then every field of units 1 and 2 (suffixed _1, _2).
MORE_SETTINGS = {
    **THRESHOLD_SETTINGS,
    **{f"{name}_{n}": f"ControlNet unit {n}: {text}" for n in range(1, UNITS)
       for name, text in {**CONTROL_SETTINGS, **THRESHOLD_SETTINGS}.items()},
}
LOADED_FIELDS = ("controlnet", "control_type", "control_weight", "control_start", "control_end",
                 "control_threshold_a", "control_threshold_b")
MORE_DEFAULTS = {name: UNIT_DEFAULTS[name.rstrip("_0123456789") if name[-1].isdigit() else name]
                 for name in MORE_SETTINGS}


@dataclass
class ControlPanel:
    inputs: list[gr.components.Component]  # unit 0's first seven, in CONTROL_SETTINGS' order
    more: list[gr.components.Component]  # in MORE_SETTINGS' order
    units: list[list[gr.components.Component]]  # each unit's nine fields, in UNIT_DEFAULTS' order

    @property
    def loaded_fields(self) -> list[gr.components.Component]:
        """What Load parameters fills in each unit (all but its picture and sketch), in LOADED_FIELDS' order."""
        return [unit[list(UNIT_DEFAULTS).index(name)] for unit in self.units for name in LOADED_FIELDS]

    @property
    def load_outputs(self) -> list[gr.components.Component]:
        """The threshold sliders, which a page load sets to the default type's values."""
        return [field for unit in self.units for field in unit[-2:]]

    def load_values(self) -> list[Any]:
        return [update for _ in self.units for update in threshold_sliders("canny")]


def choices(studio: Studio) -> list[tuple[str, str]]:
    entries = studio.catalog.for_task(TASK)
    return [("None", NONE)] + [(f"{e.name} · {e.size_text()}" if e.size_mb else e.name, e.id) for e in entries]


def threshold_sliders(name: Any, set_defaults: bool = True) -> list[Any]:
    """The two setting sliders for a control type: labelled by what they mean for it (at its defaults
    with `set_defaults`, else keeping their values), hidden where it has no such setting."""
    kind = control_maps.CONTROL_TYPES.get(name) if isinstance(name, str) else None
    updates = []
    for which in (0, 1):
        default = None if kind is None else (kind.threshold_a, kind.threshold_b)[which]
        if kind is None or default is None:
            updates.append(gr.Slider(visible=False))
            continue
        low, high = (kind.a_range, kind.b_range)[which]
        updates.append(gr.Slider(minimum=0, maximum=high, step=kind.step, visible=True,
                                 label=(kind.a_label, kind.b_label)[which],
                                 info=f"{low:g}-{high:g}; 0: the default, {default:g}",
                                 **({"value": default} if set_defaults else {})))
    return updates


def _eid(number: int, part: str) -> str:
    return f"image-controlnet-{number}-{part}" if number else f"image-controlnet-{part}"


def _unit(studio: Studio, number: int) -> list[gr.components.Component]:
    """One unit's fields, in UNIT_DEFAULTS' order."""
    with gr.Row():
        model = gr.Dropdown(choices(studio), value=NONE, label="ControlNet", scale=3, elem_id=_eid(number, "model"),
                            info="SD 1.5 ones for SD 1.5 models, SDXL ones for SDXL; downloaded on first use")
        kind = gr.Dropdown(list(control_maps.CONTROL_TYPES), value="canny", label="Control type", scale=2,
                           elem_id=_eid(number, "type"), info="depth and openpose: their annotator models download on first use")
    with gr.Row():
        # 0 is each type's default: API callers who leave them out get it whatever the type (a page
        # load shows the default's own values).
        threshold_a = gr.Slider(0, THRESHOLD_MAX, value=0, step=1, label="Canny low threshold",
                                info="1-255; 0: the default, 100", elem_id=_eid(number, "threshold-a"))
        threshold_b = gr.Slider(0, THRESHOLD_MAX, value=0, step=1, label="Canny high threshold",
                                info="1-255; 0: the default, 200", elem_id=_eid(number, "threshold-b"))
    with gr.Row():
        picture = image_upload(label="Control picture", height=220, elem_id=_eid(number, "picture"))
        sketch = UploadedImageEditor(
            label="Or draw a scribble", type="filepath", format="png", image_mode="RGBA",
            sources=(), brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=6),
            canvas_size=(512, 512), layers=False, transforms=(), height=260, elem_id=_eid(number, "sketch"),
        )
    with gr.Row():
        weight = gr.Slider(0, MAX_CONTROL_WEIGHT, value=1.0, step=0.05, label="Control weight",
                           elem_id=_eid(number, "weight"))
        start = gr.Slider(0, 1, value=0.0, step=0.05, label="Starting step", elem_id=_eid(number, "start"))
        end = gr.Slider(0, 1, value=1.0, step=0.05, label="Ending step", elem_id=_eid(number, "end"))
    # Any change of type relabels the sliders; a person's pick also sets its defaults (parameters loaded
    # from a PNG set the type and its values together).
    kind.change(lambda name: threshold_sliders(name, set_defaults=False), kind, [threshold_a, threshold_b],
                api_visibility="private")
    kind.input(threshold_sliders, kind, [threshold_a, threshold_b], api_visibility="private")
    return [model, kind, picture, sketch, weight, start, end, threshold_a, threshold_b]


def build(studio: Studio, width: gr.components.Component, height: gr.components.Component) -> ControlPanel:
    units, previews = [], []
    with gr.Accordion("ControlNet", open=False, elem_id="image-controlnet"), \
            gr.Tabs(elem_id="image-controlnet-units"):
        for number in range(UNITS):
            with gr.Tab(f"ControlNet Unit {number}", id=f"unit-{number}", elem_id=_eid(number, "unit")):
                units.append(_unit(studio, number))
                with gr.Row():
                    show = gr.Button("Preview the control map", size="sm", elem_id=_eid(number, "preview-run"))
                    shown = gr.Image(label="Control map", type="pil", format="png", interactive=False,
                                     height=220, elem_id=_eid(number, "preview"))
                note = gr.Markdown(elem_id=_eid(number, "note"))
                previews.append((show, shown, note))

    @user_errors
    @api_doc("The control map a ControlNet would follow, made from its picture (or a sketch) at the working size.",
             returns="the map, and a note when the picture was fitted to the size",
             control_type=CONTROL_SETTINGS["control_type"], control_picture=CONTROL_SETTINGS["control_picture"],
             control_sketch=CONTROL_SETTINGS["control_sketch"], width="px: the size the model works at",
             height="px: the size the model works at", **THRESHOLD_SETTINGS)
    def control_map_preview(control_type: str, control_picture: str | None, control_sketch: dict | None,
                            width: float, height: float, control_threshold_a: float = 0,
                            control_threshold_b: float = 0):
        source = control_source(studio, control_picture, control_sketch)
        if source is None:
            raise gr.Error("Upload a control picture or draw a scribble first.")
        size = (_side(width), _side(height))
        a, b = thresholds(control_type, control_threshold_a, control_threshold_b)
        made, fitted = studio.control_map(source, control_type, size, a, b)
        return made, fitted or ""

    for number, ((show, shown, note), unit) in enumerate(zip(previews, units, strict=True)):
        # Unit 0's button is the API's /control_map_preview; the others run the same function privately.
        naming = {"api_name": "control_map_preview"} if number == 0 else {"api_visibility": "private"}
        show.click(control_map_preview, [unit[1], unit[2], unit[3], width, height, unit[7], unit[8]], [shown, note],
                   **naming)
    return ControlPanel(inputs=units[0][:7], more=[*units[0][7:], *(f for unit in units[1:] for f in unit)],
                        units=units)


def takes_more_units(fn: Callable) -> Callable:
    """An endpoint handler with MORE_SETTINGS as named parameters right after unit 0's (`control_end`), which
    reach it as one tuple, `more_controls`: three endpoints share them without spelling 20 names each."""
    signature = inspect.signature(fn)
    own = [p for p in signature.parameters.values() if p.name != "more_controls"]
    cut = next(i for i, p in enumerate(own) if p.name == "control_end") + 1
    added = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
             for name, default in MORE_DEFAULTS.items()]
    public = signature.replace(parameters=[*own[:cut], *added, *own[cut:]])

    @functools.wraps(fn)
    def handler(*args: Any, **kwargs: Any):
        bound = public.bind(*args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        more = tuple(given.pop(name) for name in MORE_DEFAULTS)
        models = [bound.arguments.get("controlnet" if n == 0 else f"controlnet_{n}") for n in range(UNITS)]
        chosen = [n for n, model in enumerate(models) if model not in (None, NONE)]
        try:
            yield from fn(**given, more_controls=more)
        except StudioError as error:
            raise with_unit_numbers(error, chosen) from None

    handler.__signature__ = public  # type: ignore[attr-defined]  # what Gradio and api_doc read
    return handler


def with_unit_numbers(error: StudioError, chosen: Sequence[int]) -> StudioError:
    """The request counts only the units with a model ("ControlNet 0" is the first of those); the page
    names its tabs, so a message about one says which tab: "ControlNet Unit 1" when unit 0 is empty."""
    message = str(error)
    found = re.match(r"ControlNet (\d+)\b", message)
    if found and int(found.group(1)) < len(chosen):
        error.args = (f"ControlNet Unit {chosen[int(found.group(1))]}{message[found.end():]}", *error.args[1:])
    return error


def _side(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 64 <= value <= 4096:
        raise InputError(f"The working size must be from 64 to 4096 px, not {value!r}.")
    return int(value) // 8 * 8


def thresholds(control_type: Any, a: Any, b: Any) -> tuple[Any, Any]:
    """The sliders' values as the unit's settings: 0 (or empty) is the type's default, and a setting the
    type does not have (its slider hidden, holding whatever it had) is left out."""
    kind = control_maps.CONTROL_TYPES.get(control_type) if isinstance(control_type, str) else None
    given = []
    for value, default in ((a, kind and kind.threshold_a), (b, kind and kind.threshold_b)):
        given.append(None if default is None or value is None or value == 0 else value)
    return given[0], given[1]


def control_source(studio: Studio, picture: Any, sketch: Any) -> LoadedImage | None:
    """The uploaded picture, else the strokes drawn on the sketch pad, on white; None if neither."""
    if isinstance(picture, str) and picture:
        return studio.open_image(picture)
    if not isinstance(sketch, dict):
        return None
    layers = [studio.open_image(p) for p in (sketch.get("layers") or []) if isinstance(p, str) and p]
    drawn = [layer for layer in layers if layer.alpha is not None and layer.alpha.getbbox()]
    if not drawn:
        return None
    canvas = Image.new("RGB", drawn[0].rgb.size, "white")
    for layer in drawn:
        strokes = layer.rgb.resize(canvas.size) if layer.rgb.size != canvas.size else layer.rgb
        alpha = layer.alpha.resize(canvas.size) if layer.alpha.size != canvas.size else layer.alpha
        canvas.paste(strokes, (0, 0), alpha)
    return LoadedImage(canvas)


def loaded_units(parsed: dict[str, str], catalog: Catalog) -> tuple[list[Any] | None, list[str]]:
    """The units' LOADED_FIELDS values from parsed parameters' `ControlNet N` entries (unit N from entry N;
    units without one emptied), or None when there are none; a note for each unit left empty because its
    ControlNet (by name or hash) or preprocessor is not here."""
    keys = {int(key.split()[1]): key for key in parsed if re.fullmatch(r"ControlNet \d+", key)}
    if not keys:
        return None, []
    values: list[Any] = []
    notes: list[str] = []
    for number in range(UNITS):
        found, said = controlnet_units({keys[number]: parsed[keys[number]]}, catalog) if number in keys else ([], [])
        notes += [note.replace("; left off.", f": ControlNet Unit {number} is left empty.") for note in said]
        unit = {"weight": 1.0, "start": 0.0, "end": 1.0, **(found[0] if found else {})}
        kind = control_maps.control_type(unit.get("control_type", "canny"))
        settings = [unit.get(name, default) for name, default in (("threshold_a", kind.threshold_a),
                                                                   ("threshold_b", kind.threshold_b))]
        values += [unit.get("model", NONE), kind.name, unit["weight"], unit["start"], unit["end"],
                   *(0 if value is None else value for value in settings)]  # 0: a setting the type lacks
    return values, notes


def unit_of(studio: Studio, model: Any, control_type: Any, picture: Any, sketch: Any, weight: Any, start: Any,
            end: Any, threshold_a: Any = 0, threshold_b: Any = 0) -> tuple[tuple[ControlUnit, ...],
                                                                          list[LoadedImage | None]]:
    """One unit's values as the request's ControlNet and its picture; none when no model is chosen."""
    if model in (None, NONE):
        return (), []
    a, b = thresholds(control_type, threshold_a, threshold_b)
    unit = ControlUnit(model=model, control_type=control_type, weight=weight, start=start, end=end, threshold_a=a,
                       threshold_b=b)
    return (unit,), [control_source(studio, picture, sketch)]


def units_of(studio: Studio, first: Sequence[Any], more: Sequence[Any]) -> tuple[tuple[ControlUnit, ...],
                                                                                 list[LoadedImage | None]]:
    """Every unit with a model chosen, in unit order: unit 0's first seven values (`first`) and the
    rest (`more`, in MORE_SETTINGS' order)."""
    per_unit = len(UNIT_DEFAULTS)
    values = [*first, *more]
    units: tuple[ControlUnit, ...] = ()
    pictures: list[LoadedImage | None] = []
    for start in range(0, len(values), per_unit):
        made, shown = unit_of(studio, *values[start:start + per_unit])
        units += made
        pictures += shown
    return units, pictures
