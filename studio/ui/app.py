"""Assemble the tabs into one Gradio app, and launch it with the studio's settings."""

from __future__ import annotations

import gradio as gr
from starlette.middleware import Middleware

from studio import __version__
from studio.services import Studio
from studio.ui import gallery_tab, image_tab, interpolate_tab, music_tab, style_tab, text_tab
from studio.ui.common import StopButtons
from studio.ui.guard import LoginRequired, StudioBlocks

TITLE = "Creative Studio"
# Heavy model work shares one queue slot group; its size comes from settings.
HEAVY_CONCURRENCY = 1
CSS = """
/* Thumbnail grids: a fixed number of columns that shrink to fit, never one stretched item. */
.thumb-grid .grid-container { grid-template-columns: repeat(6, minmax(0, 1fr)) !important; }
"""


def build_app(studio: Studio) -> gr.Blocks:
    stops = StopButtons()
    with StudioBlocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"## {TITLE} <small>v{__version__}</small>")
        with gr.Tabs(selected="style", elem_id="tabs") as tabs:
            with gr.Tab("Image", id="image", elem_id="tab-image"):
                image = image_tab.build(studio, stops)
            with gr.Tab("Style", id="style", elem_id="tab-style"):
                style = style_tab.build(studio, stops)
            with gr.Tab("Text", id="text", elem_id="tab-text"):
                text = text_tab.build(studio, stops)
            with gr.Tab("Music", id="music", elem_id="tab-music"):
                music = music_tab.build(studio, stops)
            with gr.Tab("Interpolate", id="interpolate"):
                interpolate_tab.build(studio, stops)
            with gr.Tab("Gallery", id="gallery", elem_id="tab-gallery") as gallery_page:
                gallery = gallery_tab.build(studio)

        style.send_to_image.click(
            lambda path: (path, gr.Tabs(selected="image"), gr.Tabs(selected="img2img")),
            style.result,
            [image.img2img_input, tabs, image.modes],
            api_visibility="private",
        )
        image.send_to_style.click(
            lambda files, index: (image_tab.picked(files, index), gr.Tabs(selected="style")),
            [image.results, image.selected],
            [style.photo, tabs],
            api_visibility="private",
        )
        text.send_to_image.click(lambda latest: (latest, gr.Tabs(selected="image")), text.latest,
                                 [image.prompt, tabs], api_visibility="private")
        text.send_to_music.click(lambda latest: (latest, gr.Tabs(selected="music"), gr.Tabs(selected="musicgen")),
                                 text.latest, [music.prompt, tabs, music.sections], api_visibility="private")
        gallery_page.select(gallery.list_fn, gallery.filter, gallery.list_outputs, api_visibility="private")
        app.load(gallery.list_fn, gallery.filter, gallery.list_outputs, api_visibility="private")
    # api_open=False: direct POSTs to /run/<endpoint> would skip the queue and its concurrency limits.
    app.queue(default_concurrency_limit=HEAVY_CONCURRENCY, api_open=False)
    return app


def launch(studio: Studio, *, prevent_thread_lock: bool = False, quiet: bool = False) -> gr.Blocks:
    settings = studio.settings
    app = build_app(studio)
    app.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth_pair,
        max_file_size=f"{settings.max_upload_mb}mb",
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        css=CSS,
        footer_links=["api", "settings"],
        run_history=False,
        app_kwargs={"middleware": [Middleware(LoginRequired)]},
    )
    return app
