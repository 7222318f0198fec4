"""The Style tab: restyle a photo with one of 26 built-in styles, a blend of two, or any picture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from studio.backends.stylize import BUILTIN_STYLE_COUNT, BUILTIN_STYLE_NAMES, StyleRequest
from studio.catalog import ASSETS_DIR, package_version
from studio.history import GalleryItem
from studio.media.images import resize_long_side
from studio.services import Studio
from studio.ui import diffusion_restyle, style_live, style_video
from studio.ui.common import StopButtons, api_doc, image_upload, progress_reporter, servable, user_errors

BUILTIN = "Built-in style"
STYLE_IMAGE = "Style image"
THUMB_SIDE = 160
NO_SECOND_STYLE = -1


@dataclass
class StyleTab:
    photo: gr.Image
    result: gr.Image
    send_to_image: gr.Button
    send_to_upscale: gr.Button


def style_thumbnails(studio: Studio) -> list[tuple[str, str]]:
    """One small example per built-in style, made once and kept in the data dir's cache."""
    entry = studio.catalog.get("magenta-style-26")
    folder = studio.settings.cache_dir / "style-thumbs" / package_version(entry).replace("=", "-")
    paths = [folder / f"{i:02d}.jpg" for i in range(BUILTIN_STYLE_COUNT)]
    if not all(p.is_file() for p in paths):
        folder.mkdir(parents=True, exist_ok=True)
        example = studio.open_image(ASSETS_DIR / "examples" / "astronaut.jpg")
        example.rgb = resize_long_side(example.rgb, THUMB_SIDE)
        for index, path in enumerate(paths):
            request = StyleRequest(style=index)
            image = studio.style.stylize(example, request).image
            image.save(path, quality=88)
    return [(servable(p), style_name(i)) for i, p in enumerate(paths)]


def style_name(index: int) -> str:
    """A built-in style as people see it: its number (what the API and walks take) and its name."""
    return f"{index} · {BUILTIN_STYLE_NAMES[index]}"


def build(studio: Studio, stops: StopButtons) -> StyleTab:
    limit = studio.settings.max_output_side
    thumbs = style_thumbnails(studio)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            photo = image_upload(label="Photo", height=320, elem_id="style-photo")
            source = gr.Radio([BUILTIN, STYLE_IMAGE], value=BUILTIN, label="Take the style from", elem_id="style-source")
            with gr.Group(visible=True) as builtin_group:
                styles = gr.Gallery(
                    value=thumbs,
                    label=f"Style {style_name(0)}",
                    columns=6,
                    height=330,
                    allow_preview=False,
                    selected_index=0,
                    elem_id="style-grid",
                    elem_classes=["thumb-grid"],
                )
                with gr.Accordion("Blend in a second style", open=False):
                    second_styles = gr.Gallery(
                        value=thumbs,
                        label="Second style: none",
                        columns=6,
                        height=330,
                        allow_preview=False,
                        elem_classes=["thumb-grid"],
                    )
                    blend = gr.Slider(0, 1, value=0.5, step=0.05, label="Share of the second style")
                    no_second = gr.Button("No second style", size="sm")
            style_image = image_upload(label="Style image: any picture", visible=False, height=240)
            # The grids set these; they are also the API's way to choose styles.
            style_index = gr.Number(value=0, precision=0, visible=False, label="style")
            second_index = gr.Number(value=NO_SECOND_STYLE, precision=0, visible=False, label="second_style")
            strength = gr.Slider(
                0, 1, value=1.0, step=0.05, label="Strength",
                info="Built-in styles: mix with the photo. Style image: move from the photo's own style.",
            )
            preserve = gr.Checkbox(value=False, label="Keep the photo's own colours")
            size = gr.Slider(64, limit, value=min(1024, limit), step=32, label="Longest side of the result (px)",
                             elem_id="style-size")
            keep = gr.Checkbox(value=True, label="Keep every result in the gallery")
            with gr.Row():
                run = gr.Button("Stylise", variant="primary", elem_id="style-run")
                stop = gr.Button("Stop", variant="stop")
            restyle = diffusion_restyle.build_controls(studio)  # the second family: diffusion img2img
        with gr.Column(scale=1):
            result = gr.Image(
                label="Result", type="filepath", format="png", interactive=False, height=520, elem_id="style-result"
            )
            info = gr.Markdown(elem_id="style-info")
            with gr.Row():
                send_to_image = gr.Button("Send to Image tab")
                send_to_upscale = gr.Button("Upscale", elem_id="style-send-to-upscale")
                # Only needed when results are not kept as they are made.
                save = gr.Button("Save to gallery", visible=False, elem_id="style-save")
    pending = gr.State(None)  # the last result while it is not yet in the gallery
    diffusion_restyle.wire(restyle, studio, stops, photo, result, info)

    def pick_style(evt: gr.SelectData):
        return evt.index, gr.Gallery(label=f"Style {style_name(evt.index)}")

    def pick_second(evt: gr.SelectData):
        return evt.index, gr.Gallery(label=f"Second style: {style_name(evt.index)}")

    styles.select(pick_style, None, [style_index, styles], api_visibility="private")
    second_styles.select(pick_second, None, [second_index, second_styles], api_visibility="private")
    no_second.click(
        lambda: (NO_SECOND_STYLE, gr.Gallery(label="Second style: none", selected_index=None)),
        None,
        [second_index, second_styles],
        api_visibility="private",
    )
    source.change(
        lambda s: (gr.Group(visible=s == BUILTIN), gr.Image(visible=s == STYLE_IMAGE)),
        source,
        [builtin_group, style_image],
        api_visibility="private",
    )

    @user_errors
    @api_doc(
        "Restyle a photo with a built-in style, a blend of two, or any picture as the style; kept in the gallery.",
        photo="the photo to restyle (a file)",
        source=f"'{BUILTIN}' or '{STYLE_IMAGE}'",
        style=f"built-in style 0-{BUILTIN_STYLE_COUNT - 1}",
        second_style=f"a second built-in style to blend in, or {NO_SECOND_STYLE} for none",
        blend="0-1: share of the second style",
        style_image=f"with source '{STYLE_IMAGE}': the picture whose style to take (a file)",
        strength="0-1: how much of the style (built-in: mixed with the photo; style image: moved from the photo's own)",
        preserve_color="true: keep the photo's own colours",
        size="longest side of the result in px",
        keep="true: list the result in the gallery now; false: keep it aside for /style_save",
        returns="the result PNG, a summary",
    )
    def stylize(
        photo: str | None,
        source: str,
        style: float | None,
        second_style: float | None,
        blend: float,
        style_image: str | None,
        strength: float,
        preserve_color: bool,
        size: float | None,
        keep: bool,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        if not photo:
            raise gr.Error("Upload a photo first.")
        use_image = source == STYLE_IMAGE
        if use_image and not style_image:
            raise gr.Error("Upload a style image, or switch to the built-in styles.")
        photo_loaded = studio.open_image(photo)
        style_loaded = studio.open_image(style_image) if use_image else None
        second = None if second_style is None or int(second_style) == NO_SECOND_STYLE else int(second_style)
        style_request = StyleRequest(
            style=int(style or 0),
            blend_style=second,
            blend=float(blend) if second is not None else 0.0,
            strength=float(strength),
            preserve_color=bool(preserve_color),
            size=int(size) if size else None,
        )
        token = stops.start(request)
        outcome = studio.stylize(
            photo_loaded,
            style_request,
            style_loaded,
            keep=bool(keep),
            progress=progress_reporter(progress, "Stylising"),
            cancel=token,
        )
        for note in outcome.notes:
            gr.Info(note)
        for warning in outcome.warnings:
            gr.Warning(warning)
        seconds = outcome.result.seconds
        image = outcome.result.image
        # The summary keeps the warnings after their toasts fade.
        warned = "".join(f"\n\n**Note:** {warning}" for warning in outcome.warnings)
        if outcome.item is not None:
            return servable(outcome.item.file), _describe(image, seconds, outcome.item) + warned, None
        scratch = studio.settings.cache_dir / "unsaved.png"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        image.save(scratch)
        return servable(scratch), _describe(image, seconds, None) + warned, (photo_loaded, outcome.result, style_loaded)

    run_event = run.click(
        stylize,
        [photo, source, style_index, second_index, blend, style_image, strength, preserve, size, keep],
        [result, info, pending],
        api_name="stylize",
        concurrency_id="heavy",
    )
    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_run, None, None, cancels=[run_event], api_visibility="private")

    @user_errors
    @api_doc(
        "Save the last result made with keep false to the gallery.",
        pending_result="kept by the session between calls, not sent",
        returns="the saved PNG, a summary",
    )
    def style_save(pending_result):
        if pending_result is None:
            gr.Info("Nothing new to save: every result is already in the gallery while 'Keep' is on.")
            return gr.skip(), gr.skip(), None
        photo_loaded, style_result, style_loaded = pending_result
        item = studio.keep_style(photo_loaded, style_result, style_loaded)
        gr.Info(f"Saved to the gallery as #{item.id}.")
        return servable(item.file), _describe(style_result.image, style_result.seconds, item), None

    save.click(style_save, pending, [result, info, pending], api_name="style_save")
    keep.change(lambda kept: gr.Button(visible=not kept), keep, save, api_visibility="private")
    with gr.Accordion("Restyle a video", open=False, elem_id="style-video"):
        style_video.build(studio, stops)
    with gr.Accordion("Live style mirror (webcam)", open=False, elem_id="style-live"):
        style_live.build(studio)
    return StyleTab(photo=photo, result=result, send_to_image=send_to_image, send_to_upscale=send_to_upscale)


def _describe(image: Image.Image, seconds: float, item: GalleryItem | None) -> str:
    where = f"gallery #{item.id} · `{Path(item.file).name}`" if item else "not in the gallery yet"
    return f"{image.width}x{image.height} px in {seconds:.2f} s · {where}"
