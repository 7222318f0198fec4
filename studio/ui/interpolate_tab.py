"""The Interpolate tab: walks through latent spaces, kept as animations (MP4 + GIF) and strips,
and melody walks (studio/ui/melody_walk_tab.py), kept as MIDI + WAV + piano roll."""

from __future__ import annotations

import random
from pathlib import Path

import gradio as gr

from studio.backends.diffusion import DEFAULT_MODEL, ImageRequest
from studio.backends.diffusion.walks import Keyframe, MorphRequest, PromptWalkRequest
from studio.backends.patterns import MAX_SEED, PALETTES, PatternRequest
from studio.backends.style_walk import StyleWalkRequest
from studio.backends.stylize import BUILTIN_STYLE_COUNT
from studio.media.animation import frame_strip
from studio.services import Studio
from studio.services.walks import FramesOutcome
from studio.ui import melody_walk_tab
from studio.ui.common import (
    StopButtons,
    api_doc,
    download_button,
    image_upload,
    servable,
    user_errors,
    with_previews,
)
from studio.ui.style_tab import style_thumbnails

BUILTIN, STYLE_IMAGES = "Built-in styles", "Style images"
PALETTE = f"one of {', '.join(PALETTES)}"
ZOOM = "0.25-8: show more of the plane (finer structure)"
NO_GIF_YET = "Nothing to download yet: make a {what} first, and its GIF is offered here."
WALK_RETURNS = "the latest frame while it runs, then the last frame, the MP4, the GIF, a summary"


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
    with gr.Tabs():
        with gr.Tab("Prompt walk"):
            _prompt_walk(studio, stops, settings.max_output_side, settings.max_walk_frames)
        with gr.Tab("Image morph"):
            _image_morph(studio, stops, settings.max_output_side, settings.max_walk_frames)
        with gr.Tab("Abstract patterns"):
            _patterns(studio, stops, settings.max_pattern_side, settings.max_walk_frames)
        with gr.Tab("Style walk"):
            _style_walk(studio, stops, settings.max_output_side, settings.max_walk_frames)
        with gr.Tab("Melody walk"):
            melody_walk_tab.build(studio, stops)


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
                    stop = gr.Button("Stop", variant="stop", elem_id="pattern-stop")
            keep = gr.Checkbox(value=True, label="Keep pictures in the gallery (walks are always kept)")
        with gr.Column():
            still = gr.Image(label="Picture", type="filepath", format="png", interactive=False, height=420,
                             elem_id="pattern-still")
            preview = gr.Image(label="Latest frame", type="pil", interactive=False, height=200)
            video = gr.Video(label="Walk", interactive=False, loop=True, autoplay=True, elem_id="pattern-video")
            gif = download_button("Download GIF", NO_GIF_YET.format(what="walk"), elem_id="pattern-gif")
            info = gr.Markdown(elem_id="pattern-info")

    dice.click(_random_seed, None, seed, api_visibility="private")

    @user_errors
    @api_doc(
        "Draw an abstract pattern at any size with no model (a seeded random network).",
        seed=f"which pattern, 0-{MAX_SEED}", palette=PALETTE, width="px", height="px", zoom=ZOOM,
        keep="true: list the picture in the gallery",
        returns="the picture (PNG), a summary",
    )
    def patterns(seed: float | None, palette: str, width: float, height: float, zoom: float, keep: bool,
                     request: gr.Request, progress=gr.Progress()):
        pattern = PatternRequest(seed=int(seed or 0), width=int(width), height=int(height), palette=palette,
                                 zoom=float(zoom))
        outcome = studio.make_patterns(pattern, keep=bool(keep), cancel=stops.start(request))
        image = servable(outcome.item.file) if outcome.item else _scratch_still(studio, outcome.frames[0])
        return image, _describe(outcome, "Pattern")

    render.click(patterns, [seed, palette, width, height, zoom, keep], [still, info], api_name="patterns",
                 concurrency_id="heavy")

    @user_errors
    @api_doc(
        "Make a looping animation from one pattern to another and back; kept in the gallery as MP4 and GIF.",
        seed=f"the pattern to start from, 0-{MAX_SEED}", walk_to=f"the pattern to walk to, 0-{MAX_SEED}",
        palette=PALETTE, size="side of the square frames in px, 64-1024", zoom=ZOOM,
        frames=f"frames in the loop, 2-{max_frames}",
        returns=WALK_RETURNS,
    )
    def pattern_walk(seed: float | None, walk_to: float | None, palette: str, size: float, zoom: float,
                    frames: float, request: gr.Request, progress=gr.Progress()):
        pattern = PatternRequest(seed=int(seed or 0), walk_to=int(walk_to or 0), width=int(size),
                                 height=int(size), palette=palette, zoom=float(zoom), frames=int(frames))
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
        pattern_walk,
        [seed, walk_to, palette, walk_size, zoom, frames],
        [preview, video, gif, info],
        api_name="pattern_walk",
        concurrency_id="heavy",
    )

    # Stop reaches the worker through its token; the walk then ends and keeps the frames made so far.
    stops.connect(stop)


def parse_keyframes(text: str) -> tuple[Keyframe, ...]:
    """One keyframe per line: `prompt | seed`."""
    keys = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        prompt, sep, seed = line.rpartition("|")
        if not sep or not prompt.strip():
            raise gr.Error(f"Keyframe line {number} should look like 'a lighthouse at dusk | 7' (a prompt, |, a seed).")
        try:
            keys.append(Keyframe(prompt.strip(), int(seed.strip())))
        except ValueError:
            raise gr.Error(f"Keyframe line {number}: the seed '{seed.strip()}' is not a whole number.") from None
    return tuple(keys)


def _model_choices(studio: Studio) -> list[str]:
    return [entry.id for entry in studio.image.image_entries("txt2img")]


def _prompt_walk(studio: Studio, stops: StopButtons, max_side: int, max_frames: int) -> None:
    gr.Markdown("Two or more keyframes, each a prompt and a seed: the noise glides along a great circle and "
                "the prompt blends between them. Add a song to pace the walk by its beat (the video carries it).")
    choices = _model_choices(studio)
    with gr.Row(equal_height=False):
        with gr.Column():
            keyframes = gr.Textbox(value="a lighthouse on a cliff at dawn, oil painting | 1\n"
                                         "a lighthouse in a storm at night, oil painting | 2",
                                   lines=4, label="Keyframes: one per line, 'prompt | seed'", elem_id="pwalk-keys")
            model = gr.Dropdown(choices, value=choices[0] if choices else None, label="Model")
            with gr.Row():
                steps = gr.Slider(1, min(50, studio.settings.max_steps), value=1, step=1, label="Steps")
                guidance = gr.Slider(0, 20, value=0.0, step=0.5, label="Guidance (CFG)")
            negative = gr.Textbox(value="", label="Negative prompt (with guidance above 1)")
            with gr.Row():
                width = gr.Slider(256, max_side, value=512, step=64, label="Width")
                height = gr.Slider(256, max_side, value=512, step=64, label="Height")
            between = gr.Slider(0, 60, value=12, step=1, label="Frames between keyframes")
            fps = gr.Slider(1, 30, value=12, step=1, label="Frames per second (a song sets its own)")
            batch = gr.Slider(1, 8, value=4, step=1, label="Frames per batch (4 is quickest on a CPU; more needs more memory)")
            song = gr.Audio(label="Song (optional): pace the walk by its beat", type="filepath", sources=["upload"])
            with gr.Row():
                run = gr.Button("Make walk", variant="primary", elem_id="pwalk-run")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column():
            preview = gr.Image(label="Latest frame", type="pil", interactive=False, height=240)
            video = gr.Video(label="Walk", interactive=False, loop=True, autoplay=True, elem_id="pwalk-video")
            strip = gr.Image(label="Frame strip", type="pil", interactive=False, height=140)
            gif = download_button("Download GIF", NO_GIF_YET.format(what="walk"))
            info = gr.Markdown(elem_id="pwalk-info")

    @user_errors
    @api_doc(
        "Walk between prompts and seeds on an image model, optionally paced by a song; kept as MP4 and GIF.",
        keyframes="two or more lines 'prompt | seed', in order",
        model=f"catalogue id of the image model, e.g. {DEFAULT_MODEL}",
        steps="denoising steps per frame, 1-50", guidance="CFG scale, 0-20",
        negative_prompt="what the frames should not show (acts only with guidance above 1)",
        width="px, a multiple of 8", height="px, a multiple of 8",
        frames_between="frames between two keyframes, 0-60", fps="frames per second (a song sets its own)",
        batch="frames made together, 1-8 (4 is quickest on a CPU; more needs more memory)",
        song="optional audio file: the walk follows its beat and the MP4 carries it",
        returns=f"{WALK_RETURNS} (with a frame strip before the GIF)",
    )
    def prompt_walk(keyframes: str, model: str | None, steps: float, guidance: float, negative_prompt: str | None,
                  width: float, height: float, frames_between: float, fps: float, batch: float, song: str | None,
                  request: gr.Request, progress=gr.Progress()):
        keys = parse_keyframes(keyframes)
        if not model:
            raise gr.Error("Choose an image model first.")
        settings = ImageRequest(prompt=keys[0].prompt if keys else "", model=model, steps=int(steps),
                                guidance=float(guidance), negative_prompt=negative_prompt or "", width=int(width),
                                height=int(height))
        walk = PromptWalkRequest(keyframes=keys, frames_between=int(frames_between), settings=settings,
                                 fps=float(fps), batch=int(batch))
        walk.validate(max_frames)
        token = stops.start(request)
        work = with_previews(
            lambda report: studio.prompt_walk(walk, audio=Path(song) if song else None, progress=report,
                                              cancel=token),
            progress, "Walking", token,
        )
        for frame, outcome in work:
            if outcome is None:
                yield frame, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        last, video_path, gif_path, text = _walk_outputs(studio, outcome, "Prompt walk")
        yield last, video_path, frame_strip(outcome.frames), gif_path, text

    run.click(prompt_walk, [keyframes, model, steps, guidance, negative, width, height, between, fps, batch, song],
              [preview, video, strip, gif, info], api_name="prompt_walk", concurrency_id="heavy")

    stops.connect(stop)


def _image_morph(studio: Studio, stops: StopButtons, max_side: int, max_frames: int) -> None:
    gr.Markdown("Two pictures, encoded by the model's autoencoder; the frames walk between their latents.")
    choices = _model_choices(studio)
    with gr.Row(equal_height=False):
        with gr.Column():
            with gr.Row():
                first = image_upload(label="From", height=220, elem_id="morph-first")
                second = image_upload(label="To", height=220, elem_id="morph-second")
            model = gr.Dropdown(choices, value=choices[0] if choices else None, label="Model (its autoencoder)")
            frames = gr.Slider(2, max_frames, value=24, step=1, label="Frames")
            size = gr.Slider(64, max_side, value=512, step=64, label="Longest side (px)")
            fps = gr.Slider(1, 30, value=12, step=1, label="Frames per second")
            with gr.Row():
                run = gr.Button("Morph", variant="primary", elem_id="morph-run")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column():
            preview = gr.Image(label="Latest frame", type="pil", interactive=False, height=240)
            video = gr.Video(label="Morph", interactive=False, loop=True, autoplay=True)
            strip = gr.Image(label="Frame strip", type="pil", interactive=False, height=140)
            gif = download_button("Download GIF", NO_GIF_YET.format(what="morph"))
            info = gr.Markdown()

    @user_errors
    @api_doc(
        "Morph one picture into another through an image model's autoencoder; kept as MP4 and GIF.",
        first="the picture to start from (a file)", second="the picture to end on (a file)",
        model=f"catalogue id of the image model whose autoencoder to use, e.g. {DEFAULT_MODEL}",
        frames=f"frames, 2-{max_frames}", size=f"longest side in px, 64-{max_side}", fps="frames per second",
        returns=f"{WALK_RETURNS} (with a frame strip before the GIF)",
    )
    def image_morph(first: str | None, second: str | None, model: str | None, frames: float, size: float, fps: float,
                   request: gr.Request, progress=gr.Progress()):
        if not first or not second:
            raise gr.Error("Upload both pictures first.")
        if not model:
            raise gr.Error("Choose an image model first.")
        morph = MorphRequest(frames=int(frames), size=int(size), model=model, fps=float(fps))
        morph.validate(max_side, max_frames)
        a, b = studio.open_image(first), studio.open_image(second)
        token = stops.start(request)
        work = with_previews(lambda report: studio.image_morph(a, b, morph, progress=report, cancel=token),
                             progress, "Morphing", token)
        for frame, outcome in work:
            if outcome is None:
                yield frame, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        for note in outcome.notes:
            gr.Info(note)
        last, video_path, gif_path, text = _walk_outputs(studio, outcome, "Morph")
        yield last, video_path, frame_strip(outcome.frames), gif_path, text

    run.click(image_morph, [first, second, model, frames, size, fps], [preview, video, strip, gif, info],
              api_name="image_morph", concurrency_id="heavy")

    stops.connect(stop)


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
            gif = download_button("Download GIF", NO_GIF_YET.format(what="style walk"))
            info = gr.Markdown(elem_id="walk-info")

    def add_style(current: str, evt: gr.SelectData) -> str:
        parts = [p.strip() for p in (current or "").split(",") if p.strip()]
        return ", ".join([*parts, str(evt.index)])

    grid.select(add_style, chosen, chosen, api_visibility="private")
    clear.click(lambda: "", None, chosen, api_visibility="private")
    source.change(lambda s: (gr.Group(visible=s == BUILTIN), gr.File(visible=s == STYLE_IMAGES)), source,
                  [builtin_group, style_files], api_visibility="private")

    @user_errors
    @api_doc(
        "Restyle a photo while walking from style to style; kept in the gallery as MP4 and GIF.",
        photo="the photo to restyle (a file)", source=f"'{BUILTIN}' or '{STYLE_IMAGES}'",
        styles=f"with source '{BUILTIN}': the keyframe styles in order, e.g. '3, 19' (0-{BUILTIN_STYLE_COUNT - 1})",
        style_images=f"with source '{STYLE_IMAGES}': two or more pictures, in order (files)",
        frames_between="frames between two keyframes, 0-60", size=f"longest side of the frames in px, 64-{max_side}",
        fps="frames per second", preserve_color="true: keep the photo's own colours",
        returns=f"{WALK_RETURNS} (with a frame strip before the GIF)",
    )
    def style_walk(photo: str | None, source: str, styles: str | None, style_images: list | None,
                  frames_between: float, size: float, fps: float, preserve_color: bool,
                  request: gr.Request, progress=gr.Progress()):
        if not photo:
            raise gr.Error("Upload a photo first.")
        images = []
        keyframe_styles: tuple[int, ...] = ()
        if source == STYLE_IMAGES:
            images = [studio.open_image(f) for f in (style_images or [])]
        else:
            keyframe_styles = _parse_styles(styles)
        walk_request = StyleWalkRequest(styles=keyframe_styles, frames_between=int(frames_between), size=int(size),
                                        preserve_color=bool(preserve_color), fps=float(fps))
        walk_request.validate(len(images), max_side, max_frames)
        loaded = studio.open_image(photo)
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

    run.click(style_walk, [photo, source, chosen, style_files, between, size, fps, preserve],
              [preview, video, strip, gif, info], api_name="style_walk", concurrency_id="heavy")

    stops.connect(stop)


def _parse_styles(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in (text or "").replace(" ", "").split(",") if part)
    except ValueError:
        raise gr.Error(f"Keyframe styles must be numbers separated by commas, like 3, 19, 7 (not '{text}').") from None
