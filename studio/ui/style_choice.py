"""The style choices the Style tab's photo and video sections share: where the style comes from (a built-in
style, a blend of two, any picture), strength, keep colours and the result's size, and the StyleRequest
they make.

The photo section picks built-in styles from a grid of thumbnails (hidden numbers carry the choice to
the API); the video section, which sits lower in the tab, from two lists. Either way the controls go to
the endpoint in the same order: source, style, second style, blend, style image, strength, keep colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.backends.stylize import BUILTIN_STYLE_COUNT, BUILTIN_STYLE_NAMES, StyleRequest
from studio.ui.common import image_upload

BUILTIN = "Built-in style"
STYLE_IMAGE = "Style image"
NO_SECOND_STYLE = -1


# What the endpoints' API page says of the shared inputs.
API_DOCS = {
    "source": f"'{BUILTIN}' or '{STYLE_IMAGE}'",
    "style": f"built-in style 0-{BUILTIN_STYLE_COUNT - 1}",
    "second_style": f"a second built-in style to blend in, or {NO_SECOND_STYLE} for none",
    "blend": "0-1: share of the second style",
    "style_image": f"with source '{STYLE_IMAGE}': the picture whose style to take (a file)",
}


def style_name(index: int) -> str:
    """A built-in style as people see it: its number (what the API and walks take) and its name."""
    return f"{index} · {BUILTIN_STYLE_NAMES[index]}"


@dataclass
class StyleChoice:
    source: gr.Radio
    style: gr.Number | gr.Dropdown  # the built-in style: a hidden number the grid sets, or a list
    second: gr.Number | gr.Dropdown  # the second style to blend in, NO_SECOND_STYLE for none
    blend: gr.Slider
    style_image: gr.Image
    strength: gr.Slider
    preserve: gr.Checkbox
    size: gr.Slider

    def inputs(self) -> list[gr.components.Component]:
        """The endpoint's style inputs, in the order both sections' endpoints take them (size apart)."""
        return [self.source, self.style, self.second, self.blend, self.style_image, self.strength, self.preserve]


def build(
    *,
    subject: str,
    size_limit: int,
    size_default: int,
    elem_prefix: str,
    thumbnails: list[tuple[str, str]] | None = None,
    style_image_height: int = 240,
) -> StyleChoice:
    """The controls, in place. `subject` names what is restyled ("photo", "clip"); with `thumbnails` the
    built-in styles are picked from a grid of them, without from lists."""
    source = gr.Radio([BUILTIN, STYLE_IMAGE], value=BUILTIN, label="Take the style from",
                      elem_id=f"{elem_prefix}-source")
    grids = None
    with gr.Group(visible=True) as builtin_group:
        if thumbnails is not None:
            grids = _grids(thumbnails, elem_prefix)
            blend = grids[-1]
        else:
            style, second, blend = _lists(elem_prefix)
    style_image = image_upload(label="Style image: any picture", visible=False, height=style_image_height)
    if grids is not None:
        # The grids set these; they are also the API's way to choose styles.
        style = gr.Number(value=0, precision=0, visible=False, label="style")
        second = gr.Number(value=NO_SECOND_STYLE, precision=0, visible=False, label="second_style")
        _pick_from_grids(*grids[:3], style, second)
    strength = gr.Slider(
        0, 1, value=1.0, step=0.05, label="Strength",
        info=f"Built-in styles: mix with the {subject}. Style image: move from the {subject}'s own style.",
    )
    preserve = gr.Checkbox(value=False, label=f"Keep the {subject}'s own colours")
    size = gr.Slider(64, size_limit, value=min(size_default, size_limit), step=32,
                     label="Longest side of the result (px)", elem_id=f"{elem_prefix}-size")
    source.change(
        lambda s: (gr.Group(visible=s == BUILTIN), gr.Image(visible=s == STYLE_IMAGE)),
        source, [builtin_group, style_image], api_visibility="private",
    )
    return StyleChoice(source=source, style=style, second=second, blend=blend, style_image=style_image,
                       strength=strength, preserve=preserve, size=size)


def _grids(thumbnails: list[tuple[str, str]], elem_prefix: str) -> tuple[gr.Gallery, gr.Gallery, gr.Button, gr.Slider]:
    styles = gr.Gallery(value=thumbnails, label=f"Style {style_name(0)}", columns=6, height=330,
                        allow_preview=False, selected_index=0, elem_id=f"{elem_prefix}-grid",
                        elem_classes=["thumb-grid"])
    with gr.Accordion("Blend in a second style", open=False):
        second_styles = gr.Gallery(value=thumbnails, label="Second style: none", columns=6, height=330,
                                   allow_preview=False, elem_classes=["thumb-grid"])
        blend = gr.Slider(0, 1, value=0.5, step=0.05, label="Share of the second style")
        no_second = gr.Button("No second style", size="sm")
    return styles, second_styles, no_second, blend


def _pick_from_grids(styles: gr.Gallery, second_styles: gr.Gallery, no_second: gr.Button, style: gr.Number,
                     second: gr.Number) -> None:
    def pick_style(evt: gr.SelectData):
        return evt.index, gr.Gallery(label=f"Style {style_name(evt.index)}")

    def pick_second(evt: gr.SelectData):
        return evt.index, gr.Gallery(label=f"Second style: {style_name(evt.index)}")

    styles.select(pick_style, None, [style, styles], api_visibility="private")
    second_styles.select(pick_second, None, [second, second_styles], api_visibility="private")
    no_second.click(
        lambda: (NO_SECOND_STYLE, gr.Gallery(label="Second style: none", selected_index=None)),
        None, [second, second_styles], api_visibility="private",
    )


def _lists(elem_prefix: str) -> tuple[gr.Dropdown, gr.Dropdown, gr.Slider]:
    choices = [(style_name(i), i) for i in range(BUILTIN_STYLE_COUNT)]
    style = gr.Dropdown(choices, value=0, label="Style", elem_id=f"{elem_prefix}-style")
    second = gr.Dropdown([("none", NO_SECOND_STYLE), *choices], value=NO_SECOND_STYLE,
                         label="Blend in a second style")
    blend = gr.Slider(0, 1, value=0.5, step=0.05, label="Share of the second style")
    return style, second, blend


def uses_style_image(source: str, style_image: Any) -> bool:
    """True when the style comes from a picture; refused in one line when that picture is missing."""
    use_image = source == STYLE_IMAGE
    if use_image and not style_image:
        raise gr.Error("Upload a style image, or switch to the built-in styles.")
    return use_image


def style_request(style: float | None, second_style: float | None, blend: float, strength: float,
                  preserve_color: bool, size: int | None) -> StyleRequest:
    """The request the controls' values make (a second style of NO_SECOND_STYLE, or none, blends nothing)."""
    second = None if second_style is None or int(second_style) == NO_SECOND_STYLE else int(second_style)
    return StyleRequest(
        style=int(style or 0),
        blend_style=second,
        blend=float(blend) if second is not None else 0.0,
        strength=float(strength),
        preserve_color=bool(preserve_color),
        size=size,
    )
