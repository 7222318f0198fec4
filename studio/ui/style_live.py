"""The Style tab's live mirror: the webcam restyled as you move, through Gradio's streaming image input."""

from __future__ import annotations

import threading
from collections import OrderedDict

import gradio as gr
import numpy as np
from PIL import Image

from studio.backends.live_style import LIVE_TEMPORAL, LiveChoice, LiveStyler
from studio.backends.stylize import BUILTIN_STYLE_COUNT, BUILTIN_STYLE_NAMES
from studio.media.images import image_digest
from studio.services import Studio
from studio.ui.common import image_upload, user_errors

MAX_MIRRORS = 16  # one per viewer; the oldest is forgotten beyond this
HOSTED_SECONDS = 60  # a hosted visitor's stream ends after this long (they can start it again)
CAMERA = {"width": {"ideal": 640}, "height": {"ideal": 480}}


class LiveCamera(gr.Image):
    """The streaming webcam input, where a frame that cannot be decoded (a stream that stopped mid-frame,
    a JPEG cut short) is no frame at all: Gradio's own decoding would raise and end the stream."""

    def get_block_name(self) -> str:
        return "image"  # render with the ordinary Image component in the browser

    def preprocess(self, payload):  # type: ignore[override]
        try:
            return super().preprocess(payload)
        except (OSError, SyntaxError, ValueError):  # PIL's broken or truncated image; base64 cut short
            return None


class Mirrors:
    """One LiveStyler per browser session, so viewers never share a blend."""

    def __init__(self, studio: Studio):
        self.studio = studio
        self._mirrors: OrderedDict[str, LiveStyler] = OrderedDict()
        self._lock = threading.Lock()
        self._pictures: dict[str, tuple[Image.Image, str]] = {}

    def picture(self, path: str) -> tuple[Image.Image, str]:
        """A style picture opened once, not once per frame, with the digest that names the choice."""
        with self._lock:
            if path not in self._pictures:
                image = self.studio.open_image(path).rgb
                self._pictures = {path: (image, image_digest(image))}  # only the latest is kept
            return self._pictures[path]

    def get(self, request: gr.Request | None) -> LiveStyler:
        key = getattr(request, "session_hash", None) or "local"
        with self._lock:
            mirror = self._mirrors.pop(key, None) or LiveStyler(self.studio.style)
            self._mirrors[key] = mirror
            while len(self._mirrors) > MAX_MIRRORS:
                self._mirrors.popitem(last=False)
            return mirror


def build(studio: Studio) -> None:
    mirrors = Mirrors(studio)
    hosted = studio.settings.hosted
    gr.Markdown(
        "Your webcam, restyled as you move. Browsers allow the camera only on pages served over HTTPS or from "
        "localhost. Frames are dropped, not queued, when the computer falls behind."
        + (f" Here a stream stops after {HOSTED_SECONDS} s; start it again to go on." if hosted else "")
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            # Gradio asks the camera for 1920x1440 unless told; the mirror shows 320 px, and every frame
            # crosses the network, so 640x480 is asked for (an "ideal": any camera still works).
            camera = LiveCamera(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                              elem_id="live-camera", height=240,
                              webcam_options=gr.WebcamOptions(constraints={"video": CAMERA}))
            style = gr.Dropdown([(f"{i} · {BUILTIN_STYLE_NAMES[i]}", i) for i in range(BUILTIN_STYLE_COUNT)],
                                value=0, label="Style (switch any time)", elem_id="live-style")
            picture = image_upload(label="Or a style picture (used while set)", height=160)
            temporal = gr.Slider(0, 1, value=LIVE_TEMPORAL, step=0.05, label="Temporal strength")
        with gr.Column(scale=1):
            mirror = gr.Image(label="Mirror", type="pil", interactive=False, elem_id="live-mirror", height=320)
            rate = gr.Markdown(elem_id="live-fps")
            snapshot = gr.Button("Keep this frame in the gallery", elem_id="live-snapshot")

    @user_errors
    def live_frame(frame: np.ndarray | None, style: float | None, picture: str | None, temporal: float,
                   request: gr.Request):
        if frame is None:
            return gr.skip(), gr.skip()
        styler = mirrors.get(request)
        style_image, key = mirrors.picture(picture) if picture else (None, None)
        choice = LiveChoice(style=int(style or 0), temporal=float(temporal), style_image_key=key)
        shown = styler.frame(frame, choice, style_image)
        if shown is None:
            return gr.skip(), gr.skip()
        return shown, f"{styler.fps:.1f} frames a second · {styler.dropped} dropped"

    # The stream has no public API: it needs a browser's camera. Its trigger mode stays Gradio's "multiple"
    # for streams: then each new frame goes to the open stream, which keeps only the latest (frames are
    # dropped, not queued). "always_last" would hold every frame back until the open stream ends, which
    # is after 30 s without a frame: the mirror would show one frame every 30 s.
    camera.stream(live_frame, [camera, style, picture, temporal], [mirror, rate], stream_every=0.2,
                  time_limit=HOSTED_SECONDS if hosted else None, concurrency_limit=2, concurrency_id="live",
                  show_progress="hidden", api_visibility="private")

    @user_errors
    def live_snapshot(request: gr.Request):
        styler = mirrors.get(request)
        if styler.last is None:
            raise gr.Error("Nothing to keep yet: start the camera first.")
        choice = styler.choice
        model = "magenta-arbitrary-style" if choice and choice.style_image_key else "magenta-style-26"
        params = {"task": "style-live", "model": model, "style": choice.style if choice else 0,
                  "temporal": choice.temporal if choice else None, "width": styler.last.width,
                  "height": styler.last.height}
        item = studio.gallery.add_image(styler.last, task="style-live", model=model, params=params)
        gr.Info(f"Kept in the gallery as #{item.id}.")

    snapshot.click(live_snapshot, None, None, api_visibility="private")
