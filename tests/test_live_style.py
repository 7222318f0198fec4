"""The live style mirror's engine on real frames (a photo with sensor noise, as a still webcam sees it)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from studio.backends.live_style import LiveChoice, LiveStyler
from studio.backends.stylize import StyleBackend
from studio.runtime import ModelCache
from tests import video_clips as clips


@pytest.fixture(scope="module")
def backend():
    return StyleBackend(ModelCache(1024))


def webcam(count: int, seed: int = 0) -> list[np.ndarray]:
    """A still scene with fresh noise in every frame, 480x320 like a small webcam."""
    scene = clips.photo("china.jpg", 480)[:320]
    rng = np.random.default_rng(seed)
    return [np.clip(scene + rng.normal(0, 6, scene.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def test_frames_are_restyled_small_and_the_rate_is_counted(backend):
    mirror = LiveStyler(backend)
    frames = webcam(4)
    outputs = [mirror.frame(f, LiveChoice(style=5)) for f in frames]
    assert all(isinstance(o, Image.Image) and max(o.size) == 320 for o in outputs)
    small = np.asarray(Image.fromarray(frames[0]).resize(outputs[0].size))
    assert np.abs(np.asarray(outputs[0], float) - small).mean() > 20  # restyled, not the camera's picture
    assert mirror.fps > 0 and mirror.dropped == 0 and mirror.last is outputs[-1]


def test_the_blend_keeps_a_still_scene_from_shimmering(backend):
    frames = webcam(6, seed=1)

    def shimmer(temporal: float) -> float:
        mirror = LiveStyler(backend)
        out = [np.asarray(mirror.frame(f, LiveChoice(style=5, temporal=temporal)), float) for f in frames]
        return float(np.mean([np.abs(a - b).mean() for a, b in zip(out, out[1:], strict=False)]))

    assert shimmer(0.6) < shimmer(0.0) / 2


def test_switching_style_mid_stream_starts_afresh(backend):
    frames = webcam(4, seed=2)
    mirror = LiveStyler(backend)
    for frame in frames[:3]:
        mirror.frame(frame, LiveChoice(style=5))
    switched = np.asarray(mirror.frame(frames[3], LiveChoice(style=19)), float)
    fresh = np.asarray(LiveStyler(backend).frame(frames[3], LiveChoice(style=19)), float)
    assert np.abs(switched - fresh).mean() < 1  # nothing of style 5 carried over
    assert mirror.choice.style == 19


def test_a_style_picture_is_read_once_per_choice(backend, monkeypatch):
    calls = []
    original = backend.style_vector
    monkeypatch.setattr(backend, "style_vector", lambda image: calls.append(1) or original(image))
    painting = Image.fromarray(clips.photo("flower.jpg", 200))
    mirror = LiveStyler(backend, side=128)
    choice = LiveChoice(style_image_key="flower")
    for frame in webcam(3, seed=3):
        assert mirror.frame(frame, choice, painting) is not None
    assert len(calls) == 1


def test_a_frame_arriving_while_one_is_in_work_is_dropped(backend, monkeypatch):
    mirror = LiveStyler(backend)
    slow = backend.render_weights

    def render(*args, **kwargs):
        time.sleep(0.4)
        return slow(*args, **kwargs)

    monkeypatch.setattr(backend, "render_weights", render)
    frames = webcam(2, seed=4)
    worker = threading.Thread(target=mirror.frame, args=(frames[0], LiveChoice(style=1)))
    worker.start()
    time.sleep(0.1)
    assert mirror.frame(frames[1], LiveChoice(style=1)) is None
    worker.join()
    assert mirror.dropped == 1 and mirror.last is not None


def test_a_stream_that_stops_mid_frame_shows_nothing_and_fails_nothing(backend):
    mirror = LiveStyler(backend)
    assert mirror.frame(np.zeros((0, 0, 3), np.uint8), LiveChoice()) is None
    assert mirror.frame(np.zeros((4, 640), np.uint8), LiveChoice()) is None
    assert mirror.last is None


def test_the_page_sends_every_frame_to_the_open_stream_and_asks_for_a_small_camera(tmp_path):
    """Gradio holds a stream's new frames back until the open stream ends (30 s without one) unless the
    stream's trigger mode is "multiple"; the browser test shows the mirror live, this says why."""
    import gradio as gr

    from studio.services import Studio
    from studio.settings import Settings
    from studio.ui import style_live

    with gr.Blocks() as demo:
        style_live.build(Studio(Settings(data_dir=tmp_path / "data")))
    streams = [fn for fn in demo.fns.values() if any(event == "stream" for _, event in fn.targets)]
    assert len(streams) == 1
    assert streams[0].trigger_mode == "multiple" and streams[0].connection == "stream"
    camera = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "live-camera")
    assert camera.webcam_options.constraints == {"video": style_live.CAMERA}
    assert style_live.CAMERA["width"]["ideal"] <= 640


def test_a_camera_that_changes_size_mid_stream_starts_afresh(backend):
    """Another camera chosen, or a phone turned: the next frame is a different size and nothing of the
    last one can be carried along the motion."""
    mirror = LiveStyler(backend)
    landscape = webcam(2, seed=5)
    portrait = [np.ascontiguousarray(np.rot90(frame)) for frame in webcam(2, seed=6)]
    assert mirror.frame(landscape[0], LiveChoice(style=3)).size == (320, 213)
    turned = mirror.frame(portrait[0], LiveChoice(style=3))
    assert turned.size == (213, 320)
    fresh = LiveStyler(backend).frame(portrait[0], LiveChoice(style=3))
    assert np.abs(np.asarray(turned, float) - np.asarray(fresh, float)).mean() < 1
    assert mirror.frame(portrait[1], LiveChoice(style=3)).size == (213, 320)  # and it carries on


def test_a_frame_cut_short_in_the_stream_is_skipped_not_an_error(tmp_path):
    """The page sends each camera frame as a JPEG data URL; one cut short (the stream stopped mid-frame)
    or garbled must not end the stream with an error, as Gradio's own decoding would."""
    import base64
    import io

    import gradio as gr
    from gradio.data_classes import ImageData

    from studio.ui.style_live import LiveCamera

    buffer = io.BytesIO()
    Image.fromarray(webcam(1)[0]).save(buffer, "JPEG", quality=80)
    jpeg = buffer.getvalue()

    def sent(data: bytes, cut_base64: int | None = None) -> ImageData:
        text = base64.b64encode(data).decode()
        return ImageData(url="data:image/jpeg;base64," + (text[:cut_base64] if cut_base64 else text))

    camera = LiveCamera(sources=["webcam"], streaming=True, type="numpy")
    assert camera.get_block_name() == "image"  # the browser draws Gradio's own webcam
    whole = camera.preprocess(sent(jpeg))
    assert isinstance(whole, np.ndarray) and whole.shape == (320, 480, 3)
    plain = gr.Image(sources=["webcam"], streaming=True, type="numpy")
    for broken in (sent(jpeg[: len(jpeg) // 3]), sent(jpeg[:40]), sent(b""), sent(jpeg, cut_base64=1001)):
        with pytest.raises((OSError, SyntaxError, ValueError)):
            plain.preprocess(broken)  # what would end the stream
        assert camera.preprocess(broken) is None
    on_disk = tmp_path / "frame.jpeg"
    on_disk.write_bytes(jpeg[: len(jpeg) // 2])
    assert camera.preprocess(ImageData(path=str(on_disk), orig_name="frame.jpeg")) is None
