"""The Upscale tab (AUTOMATIC1111's Extras): enlarge a picture 2-4x with Real-ESRGAN or a user's upscaler."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio.backends.upscale import DEFAULT_TILE, DEFAULT_UPSCALER, MAX_TILE, MIN_TILE, SCALES, UpscaleRequest
from studio.services import Studio
from studio.services.upscale import source_parameters
from studio.ui.common import StopButtons, api_doc, image_upload, progress_reporter, servable, user_errors


@dataclass
class UpscaleTab:
    picture: gr.Image
    result: gr.Image
    upscaler: gr.Dropdown

    def refresh(self, studio: Studio):
        """The upscaler list again (a file dropped into the folders shows up without a restart)."""
        return gr.Dropdown(choices=studio.upscaler_choices())


def build(studio: Studio, stops: StopButtons) -> UpscaleTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            picture = image_upload(label="Picture", height=320, elem_id="upscale-picture")
            upscaler = gr.Dropdown(
                choices=studio.upscaler_choices(), value=DEFAULT_UPSCALER, label="Upscaler",
                info="R-ESRGAN 4x+ for photos, Anime6B for illustration, AnimeVideo small and fast; "
                     "your own .safetensors upscalers from <data dir>/upscalers and --upscalers-dir.",
                elem_id="upscale-upscaler",
            )
            scale = gr.Radio(list(SCALES), value=4, label="Scale", elem_id="upscale-scale")
            tile = gr.Slider(
                MIN_TILE, MAX_TILE, value=DEFAULT_TILE, step=32, label="Tile size (px of the picture)",
                info="Smaller tiles use less memory; the tiles overlap and are blended, so no seams show.",
            )
            with gr.Row():
                run = gr.Button("Upscale", variant="primary", elem_id="upscale-run")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=1):
            result = gr.Image(label="Result", type="filepath", format="png", interactive=False, height=520,
                              elem_id="upscale-result")
            info = gr.Markdown(elem_id="upscale-info")

    @user_errors
    @api_doc(
        "Enlarge a picture 2-4x with Real-ESRGAN (built in) or your own upscaler; kept in the gallery with its "
        "parameters (a PNG's own parameters kept, AUTOMATIC1111's 'Postprocess upscale' line added).",
        picture="the picture to enlarge (a file)",
        upscaler="realesrgan-x4plus, realesrgan-x4plus-anime, realesr-animevideov3, or a user's upscaler's name",
        scale="2, 3 or 4",
        tile="tile side in px of the picture: smaller uses less memory",
        returns="the result PNG, a summary",
    )
    def upscale(picture: str | None, upscaler: str, scale: float, tile: float, request: gr.Request,
                progress=gr.Progress()):
        if not picture:
            raise gr.Error("Upload a picture first.")
        loaded = studio.open_image(picture)
        upscale_request = UpscaleRequest(upscaler=upscaler or DEFAULT_UPSCALER, scale=int(scale or 4),
                                         tile=int(tile or DEFAULT_TILE))
        token = stops.start(request)
        outcome = studio.upscale(loaded, upscale_request, parameters=source_parameters(picture),
                                 progress=progress_reporter(progress, "Upscaling tiles"), cancel=token)
        for note in outcome.notes:
            gr.Info(note)
        image, item = outcome.result.image, outcome.item
        where = f"gallery #{item.id} · `{Path(item.file).name}`" if item else "not kept"
        summary = (f"{outcome.result.params['source_width']}x{outcome.result.params['source_height']} → "
                   f"{image.width}x{image.height} px with {outcome.result.params['upscaler_name']} in "
                   f"{outcome.result.seconds:.2f} s · {where}")
        return servable(item.file) if item else None, summary

    event = run.click(upscale, [picture, upscaler, scale, tile], [result, info], api_name="upscale",
                      concurrency_id="heavy")

    def stop_run(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_run, None, None, cancels=[event], api_visibility="private")
    return UpscaleTab(picture=picture, result=result, upscaler=upscaler)
