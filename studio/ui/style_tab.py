"""The Style tab: restyle a photo with one of 26 built-in styles, a blend of two, or any picture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from studio.backends.stylize import BUILTIN_STYLE_COUNT, StyleRequest
from studio.catalog import ASSETS_DIR, package_version
from studio.history import GalleryItem
from studio.media.images import resize_long_side
from studio.services import Studio
from studio.ui import diffusion_restyle
from studio.ui.common import StopButtons, image_upload, progress_reporter, servable, user_errors

BUILTIN = "Built-in style"
STYLE_IMAGE = "Style image"
THUMB_SIDE = 160
NO_SECOND_STYLE = -1


@dataclass
class StyleTab:
    photo: gr.Image
    result: gr.Image
    send_to_image: gr.Button


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
    return [(servable(p), f"{i}") for i, p in enumerate(paths)]


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
                    label="Style 0",
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
            size = gr.Slider(64, limit, value=min(1024, limit), step=32, label="Longest side of the result (px)")
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
                save = gr.Button("Save to gallery")
    pending = gr.State(None)  # the last result while it is not yet in the gallery
    diffusion_restyle.wire(restyle, studio, stops, photo, result, info)

    def pick_style(evt: gr.SelectData):
        return evt.index, gr.Gallery(label=f"Style {evt.index}")

    def pick_second(evt: gr.SelectData):
        return evt.index, gr.Gallery(label=f"Second style: {evt.index}")

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
    def stylise(
        photo_path,
        source_choice,
        style,
        second,
        blend_share,
        style_image_path,
        strength_value,
        preserve_colours,
        long_side,
        keep_result,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        if not photo_path:
            raise gr.Error("Upload a photo first.")
        use_image = source_choice == STYLE_IMAGE
        if use_image and not style_image_path:
            raise gr.Error("Upload a style image, or switch to the built-in styles.")
        photo_loaded = studio.open_image(photo_path)
        style_loaded = studio.open_image(style_image_path) if use_image else None
        second = None if second is None or int(second) == NO_SECOND_STYLE else int(second)
        style_request = StyleRequest(
            style=int(style or 0),
            blend_style=second,
            blend=float(blend_share) if second is not None else 0.0,
            strength=float(strength_value),
            preserve_color=bool(preserve_colours),
            size=int(long_side) if long_side else None,
        )
        token = stops.start(request)
        outcome = studio.stylize(
            photo_loaded,
            style_request,
            style_loaded,
            keep=bool(keep_result),
            progress=progress_reporter(progress, "Stylising"),
            cancel=token,
        )
        for note in outcome.notes:
            gr.Info(note)
        seconds = outcome.result.seconds
        image = outcome.result.image
        if outcome.item is not None:
            return servable(outcome.item.file), _describe(image, seconds, outcome.item), None
        scratch = studio.settings.cache_dir / "unsaved.png"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        image.save(scratch)
        return servable(scratch), _describe(image, seconds, None), (photo_loaded, outcome.result, style_loaded)

    run_event = run.click(
        stylise,
        [photo, source, style_index, second_index, blend, style_image, strength, preserve, size, keep],
        [result, info, pending],
        api_name="stylize",
        concurrency_id="heavy",
    )
    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_run, None, None, cancels=[run_event], api_visibility="private")

    @user_errors
    def save_pending(pending_result):
        if pending_result is None:
            raise gr.Error("Nothing new to save: results are already in the gallery when 'Keep' is on.")
        photo_loaded, style_result, style_loaded = pending_result
        item = studio.keep_style(photo_loaded, style_result, style_loaded)
        gr.Info(f"Saved to the gallery as #{item.id}.")
        return servable(item.file), _describe(style_result.image, style_result.seconds, item), None

    save.click(save_pending, pending, [result, info, pending], api_name="style_save")
    return StyleTab(photo=photo, result=result, send_to_image=send_to_image)


def _describe(image: Image.Image, seconds: float, item: GalleryItem | None) -> str:
    where = f"gallery #{item.id} · `{Path(item.file).name}`" if item else "not in the gallery yet"
    return f"{image.width}x{image.height} px in {seconds:.2f} s · {where}"
