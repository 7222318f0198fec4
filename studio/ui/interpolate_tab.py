"""The Interpolate tab: walks through latent spaces, kept as animations (MP4 + GIF) and strips."""

from __future__ import annotations

import random

import gradio as gr

from studio.backends.patterns import MAX_SEED, PALETTES, PatternRequest
from studio.backends.style_walk import StyleWalkRequest
from studio.backends.stylize import BUILTIN_STYLE_COUNT
from studio.media.animation import frame_strip
from studio.services import FramesOutcome, Studio
from studio.ui.common import StopButtons, image_upload, servable, user_errors, with_previews
from studio.ui.style_tab import style_thumbnails

BUILTIN, STYLE_IMAGES = "Built-in styles", "Style images"
COMING = (
    "**Coming to this tab:** prompt and seed walks, audio-synced walks and image morphs on the Image tab's "
    "diffusion models, and melody walks on the studio's melody VAE."
)


def _random_seed() -> int:
    return random.randint(0, 2**31 - 1)


def _scratch_still(studio: Studio, image) -> str:
    path = studio.settings.cache_dir / "unsaved-pattern.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return servable(path)


def _describe(outcome: FramesOutcome, what: str) -> str:
    first = outcome.frames[0]
    size = f"{first.width}x{first.height} px"
    count = f"{len(outcome.frames)} frame{'s' if len(outcome.frames) != 1 else ''}"
    where = f"gallery #{outcome.item.id}" if outcome.item else "not kept"
    stopped = " · **stopped early: the frames made so far were kept**" if outcome.stopped else ""
    return f"{what}: {count}, {size}, {outcome.seconds:.1f} s · {where}{stopped}"


def build(studio: Studio, stops: StopButtons) -> None:
    settings = studio.settings
    gr.Markdown(COMING)
    with gr.Tabs():
        with gr.Tab("Abstract patterns"):
            _patterns(studio, stops, settings.max_pattern_side, settings.max_walk_frames)
        with gr.Tab("Style walk"):
            _style_walk(studio, stops, settings.max_output_side, settings.max_walk_frames)


def _patterns(studio: Studio, stops: StopButtons, max_side: int, max_frames: int) -> None:
    gr.Markdown("Random coordinate networks: every seed is a different picture, at any resolution, no download.")
    with gr.Row(equal_height=False):
        with gr.Column():
            with gr.Row():
                seed = gr.Number(value=5, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="pattern-seed")
                dice = gr.Button("🎲 Random", size="sm")
            palette = gr.Dropdown(list(PALETTES), value="network colours", label="Palette")
            with gr.Row():
                width = gr.Slider(64, max_side, value=min(1024, max_side), step=64, label="Width (px)")
                height = gr.Slider(64, max_side, value=min(1024, max_side), step=64, label="Height (px)")
            zoom = gr.Slider(0.25, 8, value=1.0, step=0.05, label="Zoom out (finer structure)")
            render = gr.Button("Render picture", variant="primary", elem_id="pattern-render")
            with gr.Accordion("Walk to another seed (a looping animation)", open=True):
                walk_to = gr.Number(value=9, precision=0, minimum=0, maximum=MAX_SEED, label="Walk to seed")
                frames = gr.Slider(2, max_frames, value=min(48, max_frames), step=1, label="Frames in the loop")
                walk_size = gr.Slider(64, 1024, value=384, step=32, label="Walk frame size (px)")
                with gr.Row():
                    walk = gr.Button("Make looping walk", variant="primary", elem_id="pattern-walk")
                    stop = gr.Button("Stop", variant="stop")
            keep = gr.Checkbox(value=True, label="Keep pictures in the gallery (walks are always kept)")
        with gr.Column():
            still = gr.Image(label="Picture", type="filepath", format="png", interactive=False, height=420,
                             elem_id="pattern-still")
            preview = gr.Image(label="Latest frame", type="pil", interactive=False, height=200)
            video = gr.Video(label="Walk", interactive=False, loop=True, autoplay=True, elem_id="pattern-video")
            gif = gr.DownloadButton("Download GIF", value=None)
            info = gr.Markdown(elem_id="pattern-info")

    dice.click(_random_seed, None, seed, api_visibility="private")

    @user_errors
    def render_still(seed_value, palette_name, w, h, zoom_value, keep_result, request: gr.Request,
                     progress=gr.Progress()):
        pattern = PatternRequest(seed=int(seed_value or 0), width=int(w), height=int(h), palette=palette_name,
                                 zoom=float(zoom_value))
        outcome = studio.make_patterns(pattern, keep=bool(keep_result), cancel=stops.start(request))
        image = servable(outcome.item.file) if outcome.item else _scratch_still(studio, outcome.frames[0])
        return image, _describe(outcome, "Pattern")

    render.click(render_still, [seed, palette, width, height, zoom, keep], [still, info], api_name="patterns",
                 concurrency_id="heavy")

    @user_errors
    def render_walk(seed_value, target, palette_name, size, zoom_value, count, request: gr.Request,
                    progress=gr.Progress()):
        pattern = PatternRequest(seed=int(seed_value or 0), walk_to=int(target or 0), width=int(size),
                                 height=int(size), palette=palette_name, zoom=float(zoom_value), frames=int(count))
        pattern.validate(max_side, max_frames)
        token = stops.start(request)
        work = with_previews(
            lambda report: studio.make_patterns(pattern, progress=report, cancel=token),
            progress, "Rendering the walk", token,
        )
        for frame, outcome in work:
            if outcome is None:
                yield frame, gr.skip(), gr.skip(), gr.skip()
        yield _walk_outputs(studio, outcome, "Pattern walk")

    walk.click(
        render_walk,
        [seed, walk_to, palette, walk_size, zoom, frames],
        [preview, video, gif, info],
        api_name="pattern_walk",
        concurrency_id="heavy",
    )

    def stop_walk(request: gr.Request) -> None:
        stops.stop(request)

    # Stop reaches the worker through its token; the walk then ends and keeps the frames made so far.
    stop.click(stop_walk, None, None, api_visibility="private")


def _walk_outputs(studio: Studio, outcome: FramesOutcome, what: str):
    """Final values for (preview, video, gif button, info) once a walk is done."""
    assert outcome.item is not None  # walks are always kept
    gif_path = studio.gallery.companion(outcome.item, ".gif")
    return (
        outcome.frames[-1],
        servable(outcome.item.file),
        servable(gif_path) if gif_path else None,
        _describe(outcome, what),
    )


def _style_walk(studio: Studio, stops: StopButtons, max_side: int, max_frames: int) -> None:
    gr.Markdown("One photo, the style gliding from keyframe to keyframe. Pick two or more built-in styles "
                "in order, or give two or more style images.")
    thumbs = style_thumbnails(studio)
    with gr.Row(equal_height=False):
        with gr.Column():
            photo = image_upload(label="Photo", height=260, elem_id="walk-photo")
            source = gr.Radio([BUILTIN, STYLE_IMAGES], value=BUILTIN, label="Walk through")
            with gr.Group(visible=True) as builtin_group:
                grid = gr.Gallery(value=thumbs, label="Click styles in the order to visit them", columns=6,
                                  height=300, allow_preview=False, elem_id="walk-grid", elem_classes=["thumb-grid"])
                with gr.Row():
                    chosen = gr.Textbox(value="3, 19", label="Keyframe styles, in order", elem_id="walk-styles",
                                        info=f"Numbers from 0 to {BUILTIN_STYLE_COUNT - 1}, separated by commas",
                                        scale=4)
                    clear = gr.Button("Clear", size="sm", scale=1)
            style_files = gr.File(label="Style images, in order (two or more)", file_count="multiple",
                                  file_types=["image"], visible=False)
            between = gr.Slider(0, 60, value=10, step=1, label="Frames between keyframes")
            size = gr.Slider(64, max_side, value=min(512, max_side), step=32, label="Frame size, longest side (px)")
            fps = gr.Slider(1, 30, value=12, step=1, label="Frames per second")
            preserve = gr.Checkbox(value=False, label="Keep the photo's own colours")
            with gr.Row():
                run = gr.Button("Make style walk", variant="primary", elem_id="walk-run")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column():
            preview = gr.Image(label="Latest frame", type="pil", interactive=False, height=240)
            video = gr.Video(label="Style walk", interactive=False, loop=True, autoplay=True, elem_id="walk-video")
            strip = gr.Image(label="Frame strip", type="pil", interactive=False, height=140, elem_id="walk-strip")
            gif = gr.DownloadButton("Download GIF", value=None)
            info = gr.Markdown(elem_id="walk-info")

    def add_style(current: str, evt: gr.SelectData) -> str:
        parts = [p.strip() for p in (current or "").split(",") if p.strip()]
        return ", ".join([*parts, str(evt.index)])

    grid.select(add_style, chosen, chosen, api_visibility="private")
    clear.click(lambda: "", None, chosen, api_visibility="private")
    source.change(lambda s: (gr.Group(visible=s == BUILTIN), gr.File(visible=s == STYLE_IMAGES)), source,
                  [builtin_group, style_files], api_visibility="private")

    @user_errors
    def make_walk(photo_path, source_choice, styles_text, files, frames_between, long_side, rate, keep_colours,
                  request: gr.Request, progress=gr.Progress()):
        if not photo_path:
            raise gr.Error("Upload a photo first.")
        images = []
        styles: tuple[int, ...] = ()
        if source_choice == STYLE_IMAGES:
            images = [studio.open_image(f) for f in (files or [])]
        else:
            styles = _parse_styles(styles_text)
        walk_request = StyleWalkRequest(styles=styles, frames_between=int(frames_between), size=int(long_side),
                                        preserve_color=bool(keep_colours), fps=float(rate))
        walk_request.validate(len(images), max_side, max_frames)
        loaded = studio.open_image(photo_path)
        token = stops.start(request)
        work = with_previews(
            lambda report: studio.style_walk(loaded, walk_request, images, progress=report, cancel=token),
            progress, "Walking through the styles", token,
        )
        for frame, outcome in work:
            if outcome is None:
                yield frame, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        for note in outcome.notes:
            gr.Info(note)
        last, video_path, gif_path, text = _walk_outputs(studio, outcome, "Style walk")
        yield last, video_path, frame_strip(outcome.frames), gif_path, text

    run.click(make_walk, [photo, source, chosen, style_files, between, size, fps, preserve],
              [preview, video, strip, gif, info], api_name="style_walk", concurrency_id="heavy")

    def stop_walk(request: gr.Request) -> None:
        stops.stop(request)

    stop.click(stop_walk, None, None, api_visibility="private")


def _parse_styles(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in (text or "").replace(" ", "").split(",") if part)
    except ValueError:
        raise gr.Error(f"Keyframe styles must be numbers separated by commas, like 3, 19, 7 (not '{text}').") from None
