"""The Style tab's video section: restyle a whole clip (MP4, MOV, WebM, animated GIF) without flicker,
the soundtrack kept, with a live view of the latest frame and Stop."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.backends.video_style import DEFAULT_TEMPORAL, DEFAULT_VIDEO_SIZE, VideoStyleRequest
from studio.services import Studio
from studio.services.video_style import VideoStyleOutcome
from studio.ui import style_choice
from studio.ui.common import (
    StopButtons,
    api_doc,
    download_button,
    servable,
    user_errors,
    with_previews,
)

NO_GIF_YET = "Nothing to download yet: restyle a video with 'Also make a GIF' on, and its GIF is offered here."


def build(studio: Studio, stops: StopButtons) -> None:
    """Build inside the Style tab (the caller opens the accordion)."""
    limit = studio.settings.max_output_side
    settings = studio.settings
    gr.Markdown(
        f"A clip up to {settings.max_video_seconds} s, {settings.max_video_frames:,} frames and "
        f"{settings.max_video_side} px. Each frame is blended with the previous result carried along the "
        "motion, so brush strokes stay put instead of flickering; scene cuts start afresh. The sound is kept. "
        "Transparent GIF frames are put on white."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            clip = gr.Video(label="Video", sources=["upload"], height=260, elem_id="video-input")
            choice = style_choice.build(subject="clip", size_limit=limit, size_default=DEFAULT_VIDEO_SIZE,
                                        elem_prefix="video", style_image_height=200)
            temporal = gr.Slider(
                0, 1, value=DEFAULT_TEMPORAL, step=0.05, label="Temporal strength",
                info="How much of the previous frame is carried along the motion: 0 restyles each frame on its "
                     "own (it flickers); 1 keeps the first frame's strokes for ever.",
            )
            gif = gr.Checkbox(value=False, label="Also make a GIF")
            with gr.Row():
                run = gr.Button("Restyle video", variant="primary", elem_id="video-run")
                stop = gr.Button("Stop", variant="stop", elem_id="video-stop")
        with gr.Column(scale=1):
            preview = gr.Image(label="Latest frame", type="pil", interactive=False, height=200,
                               elem_id="video-preview")
            result = gr.Video(label="Restyled video", interactive=False, elem_id="video-result")
            gif_button = download_button("Download GIF", NO_GIF_YET, elem_id="video-gif")
            info = gr.Markdown(elem_id="video-info")

    @user_errors
    @api_doc(
        "Restyle a whole video without flicker (built-in style, a blend of two, or any picture as the style); "
        "the sound is kept; kept in the gallery as H.264 MP4 (and a GIF on request).",
        video="the clip to restyle (MP4, MOV, WebM or animated GIF; a file)",
        **style_choice.API_DOCS,
        strength="0-1: how much of the style",
        preserve_color="true: keep the clip's own colours",
        temporal="0-1: how much of the previous frame is carried along the motion (0: frame by frame)",
        size="longest side of the result in px",
        gif="true: also make a looping GIF",
        returns="the latest frame (empty at the end), the restyled MP4, the GIF (or nothing), a summary",
    )
    def style_video(
        video: str | None,
        source: str,
        style: float | None,
        second_style: float | None,
        blend: float,
        style_image: str | None,
        strength: float,
        preserve_color: bool,
        temporal: float,
        size: float | None,
        gif: bool,
        request: gr.Request,
        progress=gr.Progress(),
    ):
        if not video:
            raise gr.Error("Upload a video first.")
        use_image = style_choice.uses_style_image(source, style_image)
        studio.probe_video(video)  # refuse a clip beyond the limits before anything else
        style_loaded = studio.open_image(style_image) if use_image else None
        video_request = VideoStyleRequest(
            style=style_choice.style_request(style, second_style, blend, strength, preserve_color,
                                             int(size) if size else DEFAULT_VIDEO_SIZE),
            temporal=float(temporal),
            gif=bool(gif),
        )
        token = stops.start(request)
        work = with_previews(
            lambda report: studio.restyle_video(video, video_request, style_loaded, progress=report, cancel=token),
            progress, "Restyling frames", token,
        )
        outcome: VideoStyleOutcome | None = None
        for frame, done in work:
            if done is None:
                yield frame, gr.skip(), gr.skip(), gr.skip()
            outcome = done
        assert outcome is not None
        for note in outcome.notes:
            gr.Info(note)
        yield (
            None,
            servable(outcome.video),
            servable(outcome.gif) if outcome.gif else None,
            _describe(outcome),
        )

    run.click(
        style_video,
        [clip, *choice.inputs(), temporal, choice.size, gif],
        [preview, result, gif_button, info],
        api_name="style_video",
        concurrency_id="heavy",
    )
    # Stop reaches the worker through its token; the part restyled so far is kept as its own clip.
    stops.connect(stop)


def _describe(outcome: VideoStyleOutcome) -> str:
    result = outcome.result
    where = f"gallery #{outcome.item.id} · `{Path(outcome.item.file).name}`" if outcome.item else "not kept"
    stopped = f" · **stopped after {result.frames} of {result.total} frames**" if result.stopped else ""
    sound = "sound kept" if outcome.info.has_audio else "no sound in the clip"
    return (f"{result.width}x{result.height} px, {result.frames} frames at {result.fps:.3g} fps, {sound} · "
            f"{result.seconds:.1f} s ({result.seconds / max(result.frames, 1):.2f} s a frame){stopped} · {where}")
