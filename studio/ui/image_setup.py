"""The Image tab's first-visit notice: which model is missing, how to get it, and what works already.

Without a diffusion model every button of the Image tab (and the walks built on it) ends in an error,
so the tab says so up front instead, and leads to what needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.backends.diffusion import DEFAULT_DECODER, DEFAULT_MODEL
from studio.errors import Cancelled
from studio.services import Studio
from studio.ui.common import StopButtons, user_errors

# Every task whose model list the Image tab offers.
IMAGE_TASKS = ("txt2img", "img2img", "inpaint")


@dataclass
class SetupNotice:
    box: gr.Column
    text: gr.Markdown
    to_patterns: gr.Button
    to_style: gr.Button
    download: gr.Button


def image_model_present(studio: Studio) -> bool:
    """True once any model the Image tab can use is on this machine (nothing is downloaded to find out)."""
    ids = {entry.id for task in IMAGE_TASKS for entry in studio.image.image_entries(task)}
    return any(studio.image.is_available(model_id) for model_id in ids)


def can_download(studio: Studio) -> bool:
    """Visitors of a hosted demo cannot fetch models, nor can a studio told to stay offline."""
    return not (studio.settings.hosted or studio.settings.offline)


def notice_text(studio: Studio) -> str:
    """What is missing (the default model, its size and licence) and the two ways to get it."""
    entry = studio.catalog.get(DEFAULT_MODEL)
    use = "not for commercial use" if not entry.commercial_use else "commercial use allowed"
    return (
        f"### No image model on this machine yet\n"
        f"Generate, image to image, inpaint, outpaint, diffusion restyle, prompt walks and image morphs need "
        f"**{entry.name}** ({entry.size_text()} download; licence: {entry.licence}, {use}).\n\n"
        + ("- **Get it here**: the Download button below, or the Models tab.\n" if can_download(studio) else "")
        + f"- **Get it** where there is internet: `python -m studio download {entry.id}`, then reload this page.\n"
        f"- **Or use what you have**: drop a `.safetensors` checkpoint in `{studio.settings.data_dir / 'models' / 'checkpoints'}`, "
        f"start with `--models-from` your AUTOMATIC1111 or ComfyUI folder, or add an entry with "
        f"`path = \"/folder/of/the/model\"` to your models file (`--models-file`); then restart the studio.\n\n"
        f"**Works now, with no download:** abstract patterns drawn by seeded random networks, and the Style "
        f"tab's 26 built-in styles."
    )


def build(studio: Studio, stops: StopButtons) -> SetupNotice:
    """The notice, laid out where it is called; shown only while no image model is on this machine."""
    entry, decoder = studio.catalog.get(DEFAULT_MODEL), studio.catalog.get(DEFAULT_DECODER)
    # A Column carries the id: Gradio 6 repeats a Group's elem_id on an inner element.
    with gr.Column(visible=not image_model_present(studio), elem_id="image-setup") as box, gr.Group():
        text = gr.Markdown(notice_text(studio), elem_id="image-setup-text", padding=True)
        with gr.Row():
            download = gr.Button(f"Download {entry.name} ({entry.size_text()})", size="sm", variant="primary",
                                 visible=can_download(studio), elem_id="image-setup-download")
            stop = gr.Button("Stop", size="sm", variant="stop", visible=can_download(studio), elem_id="image-setup-stop")
            to_patterns = gr.Button("Draw abstract patterns (no download)", size="sm",
                                    variant="secondary" if can_download(studio) else "primary", elem_id="image-setup-patterns")
            to_style = gr.Button("Open the Style tab (no download)", size="sm", elem_id="image-setup-style")
        # The download's progress bar (bytes, speed, time left) shows over this line.
        status = gr.Markdown(elem_id="image-setup-status", min_height=40)

    @user_errors
    def fetch(request: gr.Request, progress=gr.Progress()):
        from studio.ui.models_tab import download_in_page

        try:  # the small decoder first: the big model's bar is the long one
            download_in_page(studio, [decoder, entry], progress, stops.start(request))
        except Cancelled:
            gr.Info("Download stopped. Press Download again to go on from the files already here.")
            return gr.skip(), "Download stopped. Press Download again to go on from the files already here."
        gr.Info(f"{entry.name} is ready. Generate away.")
        return gr.Column(visible=False), ""

    event = download.click(fetch, None, [box, status], api_visibility="private", concurrency_id="downloads",
                           concurrency_limit=1)
    def stop_fetch(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_fetch, None, None, cancels=[event], api_visibility="private")
    return SetupNotice(box=box, text=text, to_patterns=to_patterns, to_style=to_style, download=download)


def refresh(studio: Studio) -> gr.Column:
    """On each page load: a model fetched (or pointed at) since the studio started hides the notice."""
    return gr.Column(visible=not image_model_present(studio))
