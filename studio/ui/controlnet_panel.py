"""The Image tab's ControlNet accordion: a ControlNet model, how its picture becomes a map, the picture
(uploaded, or drawn on a sketch pad), its weight and start/end, and a preview of the map before
generating. Text to image, image to image and inpainting take its values as their last inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from studio.backends.diffusion import control_maps
from studio.backends.diffusion.controlnet import TASK
from studio.backends.diffusion.request import MAX_CONTROL_WEIGHT, ControlUnit
from studio.errors import InputError
from studio.media.images import LoadedImage
from studio.services import Studio
from studio.ui.common import UploadedImageEditor, api_doc, image_upload, user_errors

NONE = ""  # the model dropdown's "no ControlNet"
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


@dataclass
class ControlPanel:
    inputs: list[gr.components.Component]  # in CONTROL_SETTINGS' order


def choices(studio: Studio) -> list[tuple[str, str]]:
    entries = studio.catalog.for_task(TASK)
    return [("None", NONE)] + [(f"{e.name} · {e.size_text()}" if e.size_mb else e.name, e.id) for e in entries]


def build(studio: Studio, width: gr.components.Component, height: gr.components.Component) -> ControlPanel:
    with gr.Accordion("ControlNet", open=False, elem_id="image-controlnet"):
        with gr.Row():
            model = gr.Dropdown(choices(studio), value=NONE, label="ControlNet", scale=3,
                                elem_id="image-controlnet-model",
                                info="SD 1.5 ones for SD 1.5 models, SDXL ones for SDXL; downloaded on first use")
            kind = gr.Dropdown(list(control_maps.CONTROL_TYPES), value="canny", label="Control type", scale=2,
                               elem_id="image-controlnet-type",
                               info="depth and openpose: their annotator models download on first use")
        with gr.Row():
            picture = image_upload(label="Control picture", height=220, elem_id="image-controlnet-picture")
            sketch = UploadedImageEditor(
                label="Or draw a scribble", type="filepath", format="png", image_mode="RGBA",
                sources=(), brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=6),
                canvas_size=(512, 512), layers=False, transforms=(), height=260,
                elem_id="image-controlnet-sketch",
            )
        with gr.Row():
            weight = gr.Slider(0, MAX_CONTROL_WEIGHT, value=1.0, step=0.05, label="Control weight",
                               elem_id="image-controlnet-weight")
            start = gr.Slider(0, 1, value=0.0, step=0.05, label="Starting step", elem_id="image-controlnet-start")
            end = gr.Slider(0, 1, value=1.0, step=0.05, label="Ending step", elem_id="image-controlnet-end")
        with gr.Row():
            show = gr.Button("Preview the control map", size="sm", elem_id="image-controlnet-preview-run")
            shown = gr.Image(label="Control map", type="pil", format="png", interactive=False, height=220,
                             elem_id="image-controlnet-preview")
        note = gr.Markdown(elem_id="image-controlnet-note")

    @user_errors
    @api_doc("The control map a ControlNet would follow, made from its picture (or a sketch) at the working size.",
             returns="the map, and a note when the picture was fitted to the size",
             control_type=CONTROL_SETTINGS["control_type"], control_picture=CONTROL_SETTINGS["control_picture"],
             control_sketch=CONTROL_SETTINGS["control_sketch"], width="px: the size the model works at",
             height="px: the size the model works at")
    def control_map_preview(control_type: str, control_picture: str | None, control_sketch: dict | None,
                            width: float, height: float):
        source = control_source(studio, control_picture, control_sketch)
        if source is None:
            raise gr.Error("Upload a control picture or draw a scribble first.")
        size = (_side(width), _side(height))
        made, fitted = studio.control_map(source, control_type, size)
        return made, fitted or ""

    show.click(control_map_preview, [kind, picture, sketch, width, height], [shown, note],
               api_name="control_map_preview")
    return ControlPanel([model, kind, picture, sketch, weight, start, end])


def _side(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 64 <= value <= 4096:
        raise InputError(f"The working size must be from 64 to 4096 px, not {value!r}.")
    return int(value) // 8 * 8


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


def unit_of(studio: Studio, model: Any, control_type: Any, picture: Any, sketch: Any, weight: Any, start: Any,
            end: Any) -> tuple[tuple[ControlUnit, ...], list[LoadedImage | None]]:
    """The accordion's values as the request's ControlNet and its picture; none when no model is chosen."""
    if model in (None, NONE):
        return (), []
    unit = ControlUnit(model=model, control_type=control_type, weight=weight, start=start, end=end)
    return (unit,), [control_source(studio, picture, sketch)]
