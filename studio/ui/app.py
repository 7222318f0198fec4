"""Assemble the tabs into one Gradio app, and launch it with the studio's settings."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from studio import __version__, hosting
from studio.services import Studio
from studio.ui import (
    gallery_tab,
    image_tab,
    interpolate_tab,
    models_tab,
    music_tab,
    style_tab,
    text_tab,
    upscale_tab,
)
from studio.ui.common import StopButtons, user_errors
from studio.ui.guard import LoginRequired, StudioBlocks
from studio.ui.sessions import install as lazy_sessions

TITLE = "Creative Studio"
HOUSEKEEPING_EVERY_SECONDS = 600
log = logging.getLogger(__name__)
# The page's own styles and script (error messages that outlive their toast, Stop live only while work runs).
CSS = (Path(__file__).parent / "page.css").read_text(encoding="utf-8")
JS = (Path(__file__).parent / "page.js").read_text(encoding="utf-8")
STOP_CLASS = "studio-stop"


def build_app(studio: Studio, limiter: hosting.RateLimiter | None = None) -> gr.Blocks:
    settings = studio.settings
    lazy_sessions()  # a new session (each API call without one) no longer describes every block first
    stops = StopButtons()
    if settings.hosted:
        studio.gallery.set_scope(hosting.session_owner())
    max_age = settings.session_max_age_hours * 3600
    # Hosted, Gradio's own copies of uploads and results expire with the visitors' galleries.
    delete_cache = (HOUSEKEEPING_EVERY_SECONDS, max_age) if settings.hosted else None
    with StudioBlocks(title=TITLE, analytics_enabled=False, delete_cache=delete_cache) as app:
        gr.Markdown(f"## {TITLE} <small>v{__version__}</small>")
        if settings.hosted:
            gr.Markdown(
                f"A shared demo: what you make is listed in the Gallery for this browser tab only and deleted "
                f"after {settings.session_max_age_hours} h. Download what you want to keep.",
                elem_id="hosted-notice",
            )
        with gr.Tabs(selected="style", elem_id="tabs") as tabs:
            with gr.Tab("Image", id="image", elem_id="tab-image"):
                image = image_tab.build(studio, stops)
            with gr.Tab("Style", id="style", elem_id="tab-style"):
                style = style_tab.build(studio, stops)
            with gr.Tab("Upscale", id="upscale", elem_id="tab-upscale") as upscale_page:
                upscale = upscale_tab.build(studio, stops)
            with gr.Tab("Text", id="text", elem_id="tab-text"):
                text = text_tab.build(studio, stops)
            with gr.Tab("Music", id="music", elem_id="tab-music"):
                music = music_tab.build(studio, stops)
            with gr.Tab("Interpolate", id="interpolate"):
                interpolate_tab.build(studio, stops)
            with gr.Tab("Gallery", id="gallery", elem_id="tab-gallery") as gallery_page:
                gallery = gallery_tab.build(studio)
            with gr.Tab("Models", id="models", elem_id="tab-models") as models_page:
                models = models_tab.build(studio, stops)

        style.send_to_image.click(
            lambda path: (path, gr.Tabs(selected="image"), gr.Tabs(selected="img2img")),
            style.result,
            [image.img2img_input, tabs, image.modes],
            api_visibility="private",
        )
        # Every picture shown can go to the Upscale tab as its file, so a PNG's `parameters` travel with it.
        style.send_to_upscale.click(lambda path: (path, gr.Tabs(selected="upscale")), style.result,
                                    [upscale.picture, tabs], api_visibility="private")
        image.send_to_upscale.click(
            lambda files, index: (image_tab.picked(files, index), gr.Tabs(selected="upscale")),
            [image.results, image.selected], [upscale.picture, tabs], api_visibility="private",
        )
        gallery.send_to_upscale.click(
            user_errors(lambda item_id: (gallery_tab.picture_to_upscale(studio, item_id), gr.Tabs(selected="upscale"))),
            gallery.selected, [upscale.picture, tabs], api_visibility="private",
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
        upscale_page.select(lambda: upscale.refresh(studio), None, upscale.upscaler, api_visibility="private")
        image.setup.to_style.click(lambda: gr.Tabs(selected="style"), None, tabs, api_visibility="private")
        app.load(image.load_fn, None, image.load_outputs, api_visibility="private")
        if text.engine_check:  # a page opened after the text engine's build ended shows no notice
            app.load(text.engine_check, None, text.engine_outputs, api_visibility="private", queue=False)
        gallery_page.select(gallery.list_fn, gallery.filter, gallery.list_outputs, api_visibility="private")
        app.load(gallery.list_fn, gallery.filter, gallery.list_outputs, api_visibility="private")
        models_page.select(lambda: models.refresh(studio), None, [models.table, models.usage],
                           api_visibility="private")
    # api_open=False: direct POSTs to /run/<endpoint> would skip the queue and its concurrency limits.
    app.queue(default_concurrency_limit=hosting.LIGHT_CONCURRENCY, max_size=settings.max_queue or None,
              api_open=False)
    hosting.apply(app, settings, limiter, lane=studio.heavy)
    _name_tools_after_endpoints(app)
    _mark_stop_buttons(app)
    return app


def _mark_stop_buttons(app: gr.Blocks) -> None:
    """Tag every tab's Stop button, so the page script can make it live only while work runs there."""
    for block in app.blocks.values():
        if isinstance(block, gr.Button) and block.variant == "stop" and block.value == "Stop":
            classes = block.elem_classes or []
            block.elem_classes = [*([classes] if isinstance(classes, str) else classes), STOP_CLASS]


def _name_tools_after_endpoints(app: gr.Blocks) -> None:
    """MCP clients know each tool by its function's name; make that the endpoint's stable API name."""
    for block_fn in app.fns.values():
        if block_fn.fn is not None and block_fn.api_name and block_fn.api_visibility != "private":
            block_fn.fn.__name__ = block_fn.api_name


def _housekeeping(studio: Studio) -> None:
    """Hosted: delete visitors' gallery items once they are older than the configured age."""
    max_age = studio.settings.session_max_age_hours * 3600

    def loop() -> None:
        while True:
            try:
                studio.gallery.delete_expired(max_age)
            except Exception:  # a locked or full disk now is no reason to stop tidying later
                log.exception("gallery housekeeping failed; trying again in %d s", HOUSEKEEPING_EVERY_SECONDS)
            time.sleep(HOUSEKEEPING_EVERY_SECONDS)

    threading.Thread(target=loop, name="gallery-housekeeping", daemon=True).start()


STARTUP_CHECK_SECONDS = 60


def _patient_url_check() -> None:
    """Before it serves, Gradio asks its own page once, and a single 3-second timeout makes it give up
    ("localhost is not accessible"): on a busy machine the studio then exited at start. The same check,
    tried again for up to a minute."""
    from gradio import networking

    once = getattr(networking.url_ok, "__wrapped__", networking.url_ok)

    def patient(url: str) -> bool:
        deadline = time.monotonic() + STARTUP_CHECK_SECONDS
        while not once(url):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    patient.__wrapped__ = once  # type: ignore[attr-defined]
    networking.url_ok = patient


def launch(studio: Studio, *, prevent_thread_lock: bool = False, quiet: bool = False) -> gr.Blocks:
    settings = studio.settings
    limiter = hosting.RateLimiter(settings.rate_limit_per_minute)  # one count per address, page and APIs alike
    app = build_app(studio, limiter)
    middleware = [Middleware(LoginRequired)]
    if settings.api or settings.api_key:
        from studio.api import ExtraApis, build_api_app

        middleware.insert(0, Middleware(ExtraApis, api_app=build_api_app(studio, limiter)))
    if settings.hosted:
        _housekeeping(studio)
    _patient_url_check()
    app.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        auth=settings.auth_pair,
        max_file_size=f"{settings.max_upload_mb}mb",
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        css=CSS,
        js=JS,
        footer_links=["api", "settings"],
        run_history=False,
        mcp_server=settings.mcp,
        app_kwargs={"middleware": middleware},
    )
    return app
