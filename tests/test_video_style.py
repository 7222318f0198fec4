"""Video restyling on real outputs: tiny clips made from real photos with known motion, restyled by
the built-in networks, decoded back and measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from studio.backends.stylize import StyleRequest
from studio.backends.video_style import VideoStyleRequest
from studio.errors import InputError
from studio.media import flow, video
from studio.runtime import CancelToken
from studio.services import Studio
from studio.settings import Settings
from tests import video_clips as clips

ROOT = Path(__file__).resolve().parent.parent
LIMITS = video.VideoLimits(max_seconds=60, max_frames=600, max_side=1024)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio(Settings(data_dir=tmp_path_factory.mktemp("video-data"), max_video_seconds=60))


def restyle(studio, path, temporal=0.8, size=None, **kwargs):
    request = VideoStyleRequest(StyleRequest(style=7, size=size), temporal=temporal, gif=kwargs.pop("gif", False))
    return studio.restyle_video(path, request, **kwargs)


def av_streams(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        found = {}
        for stream in container.streams:
            found[stream.type] = {
                "codec": stream.codec_context.name,
                "seconds": float(stream.duration * stream.time_base) if stream.duration else None,
                "pix_fmt": getattr(stream.codec_context, "pix_fmt", None),
                "size": (stream.codec_context.width, stream.codec_context.height) if stream.type == "video" else None,
            }
        return found


# -- the file side --------------------------------------------------------------------------------


def test_frame_count_rate_and_length_kept_with_the_soundtrack_copied(studio, tmp_path):
    motion = clips.pan(frames=10)
    source = clips.write_clip(tmp_path / "in.mp4", motion.frames, fps=15, audio=("aac", 44_100))
    outcome = restyle(studio, source)
    out = outcome.video
    info = video.probe(out, LIMITS)
    assert (info.frames, info.fps) == (10, 15.0)
    frames = clips.decoded(out)
    assert len(frames) == 10 and frames[0].shape == (96, 128, 3)
    streams = av_streams(out)
    assert streams["video"]["codec"] == "h264" and streams["video"]["pix_fmt"] == "yuv420p"
    assert streams["audio"]["codec"] == "aac"
    assert streams["video"]["seconds"] == pytest.approx(10 / 15, abs=0.01)
    assert streams["audio"]["seconds"] == pytest.approx(streams["video"]["seconds"], abs=0.03)
    # Restyled: far from the source pixels.
    assert np.abs(frames[3].astype(float) - motion.frames[3]).mean() > 20
    # Kept in the gallery with its parameters and its input, and the gallery can run it again.
    item = outcome.item
    assert item.task == "style-video" and item.file.suffix == ".mp4"
    assert item.params["temporal"] == 0.8 and item.params["style"] == 7 and item.params["frames"] == 10
    again = studio.rerun(item.id)
    assert again.id != item.id and len(clips.decoded(again.file)) == 10


def test_a_soundtrack_the_mp4_cannot_carry_is_re_encoded_to_aac_at_the_same_length(studio, tmp_path):
    motion = clips.pan(frames=8)
    source = clips.write_clip(tmp_path / "in.mov", motion.frames, fps=8, audio=("pcm_s16le", 22_050))
    streams = av_streams(restyle(studio, source, size=64).video)
    assert streams["audio"]["codec"] == "aac"
    assert streams["video"]["seconds"] == pytest.approx(1.0, abs=0.01)
    assert streams["audio"]["seconds"] == pytest.approx(1.0, abs=0.05)


def test_webm_and_a_clip_without_sound(studio, tmp_path):
    motion = clips.pan(frames=6)
    source = clips.write_clip(tmp_path / "in.webm", motion.frames, fps=6)
    outcome = restyle(studio, source, size=64)
    assert "audio" not in av_streams(outcome.video) and len(clips.decoded(outcome.video)) == 6
    assert "no sound" in outcome.info.describe()


def test_odd_sizes_give_even_h264_and_a_gif_on_request(studio, tmp_path):
    motion = clips.pan(size=(128, 96), frames=6)
    source = clips.write_clip(tmp_path / "in.mp4", motion.frames, fps=6)
    outcome = restyle(studio, source, size=101, gif=True)  # 101x76 asked
    streams = av_streams(outcome.video)
    assert streams["video"]["size"] == (102, 76)  # padded by one pixel, not forced to a multiple of 16
    from PIL import Image

    with Image.open(outcome.gif) as gif:
        assert gif.n_frames == 6 and gif.size == (102, 76)
    assert outcome.item is not None and studio.gallery.companion(outcome.item, ".gif") is not None


def test_a_variable_frame_rate_keeps_each_frame_time_the_length_and_the_sound(studio, tmp_path):
    # Uneven gaps (40 ms, 220 ms, 360 ms, 20 ms...), written by x264 with its B-frames, whose MP4 header
    # then says 0.86 s: the track ends at the last decode time. The clip really lasts to 1.25 + 0.05 s.
    times = [0.0, 0.04, 0.08, 0.30, 0.34, 0.70, 0.72, 0.74, 1.20, 1.25]
    source = clips.write_clip(tmp_path / "phone.mp4", clips.pan(frames=len(times)).frames, times=times,
                              audio=("aac", 44_100), audio_seconds=1.30)
    info = video.probe(source, LIMITS)
    assert [round(f.time, 3) for f in video.read_frames(source, info)] == times
    outcome = restyle(studio, source, size=64)
    out_info = video.probe(outcome.video, LIMITS)
    assert [round(f.time, 3) for f in video.read_frames(outcome.video, out_info)] == times
    streams = av_streams(outcome.video)
    assert streams["video"]["seconds"] == pytest.approx(1.30, abs=0.005)  # the last frame shown 50 ms too
    assert streams["audio"]["seconds"] == pytest.approx(1.30, abs=0.03)
    assert outcome.item.params["clip_seconds"] == pytest.approx(1.30, abs=0.005)
    # Frames restyled, not copied, and each sample in the MP4 lasts until the next frame.
    with av.open(str(outcome.video)) as container:
        stream = container.streams.video[0]
        lengths = sorted((p.pts, p.duration) for p in container.demux(stream) if p.pts is not None)
    shown = [round(float(d * stream.time_base), 3) for _, d in lengths]
    assert shown == [round(b - a, 3) for a, b in zip(times, times[1:], strict=False)] + [0.05]


def test_the_clip_ends_where_its_last_frame_does():
    from studio.backends.video_style import clip_length

    assert clip_length(0.6, 1 / 15, 10 / 15, stopped=False) == pytest.approx(10 / 15)  # the header, just past
    assert clip_length(1.25, 0.05, 0.86, stopped=False) == pytest.approx(1.30)  # a header short of the frames
    assert clip_length(1.0, 0.1, 30.0, stopped=False) == pytest.approx(1.1)  # a soundtrack far longer
    assert clip_length(0.5, 0.1, 0.9, stopped=True) == pytest.approx(0.6)  # stopped: the part made


def test_rotation_is_honoured(studio, tmp_path):
    motion = clips.pan(size=(128, 96), frames=4)
    source = clips.write_clip(tmp_path / "portrait.mp4", motion.frames, fps=4, rotation=90)
    info = video.probe(source, LIMITS)
    assert (info.width, info.height, info.rotation) == (96, 128, 90)
    upright = next(iter(video.read_frames(source, info))).rgb
    assert upright.shape == (128, 96, 3)
    # Turned counter-clockwise: the photo's top row is now its left column.
    assert np.abs(upright[:, 0].astype(float) - motion.frames[0][0, ::-1]).mean() < 12
    outcome = restyle(studio, source, size=64)
    assert av_streams(outcome.video)["video"]["size"] == (48, 64)
    assert any("upright" in note for note in outcome.notes)


def test_transparent_gif_frames_go_on_white(tmp_path):
    from PIL import Image

    frames = []
    for t in range(4):
        frame = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
        frame.paste((200, 30, 30, 255), (8 + 8 * t, 10, 28 + 8 * t, 30))
        frames.append(frame)
    path = tmp_path / "sprite.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, disposal=2)
    info = video.probe(path, LIMITS)
    decoded_frames = list(video.read_frames(path, info))
    assert len(decoded_frames) == 4 and info.fps == pytest.approx(10, abs=0.5)
    first = decoded_frames[0].rgb
    assert first[40, 60].tolist() == [255, 255, 255]  # transparent corner: white
    assert first[20, 15, 0] > 150 and first[20, 15, 1] < 80  # the red square


# -- refusals -------------------------------------------------------------------------------------


def test_a_ten_hour_clip_is_refused_from_its_header_at_once(tmp_path, monkeypatch):
    import av

    path = tmp_path / "long.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(1, 3600))  # one frame an hour
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 9 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = index, Fraction(3600, 1)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before refusing")

    monkeypatch.setattr(video, "_first_frame", no_decoding)
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"^That video is 10\.0 hours long; this studio restyles clips of up to 60 s\. Trim it first\.$"):
        video.probe(path, LIMITS)
    assert time.perf_counter() - started < 1.0


def test_too_many_frames_and_too_large_are_refused_from_the_header(tmp_path):
    source = clips.write_clip(tmp_path / "in.mp4", clips.pan(frames=12).frames, fps=12)
    with pytest.raises(InputError, match="has 12 frames; this studio restyles up to 5"):
        video.probe(source, video.VideoLimits(60, 5, 1024))
    with pytest.raises(InputError, match="128x96 px; this studio takes videos up to 100 px"):
        video.probe(source, video.VideoLimits(60, 600, 100))


def test_hosted_mode_caps_videos_tighter():
    from studio.settings import _env_values, _resolve

    hosted = _resolve({"hosted": True}, {})
    desktop = _resolve({}, {})
    assert hosted.max_video_seconds < desktop.max_video_seconds
    assert hosted.max_video_frames < desktop.max_video_frames and hosted.max_video_side < desktop.max_video_side
    assert _env_values({"STUDIO_MAX_VIDEO_SECONDS": "5"}) == {"max_video_seconds": 5}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("just some words, not a film\n"), r"^That file is not a video the studio can read"),
        (lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64)), r"^That file is not a video"),
        (lambda p: _audio_only(p), r"^That file has sound but no picture"),
        (lambda p: _no_frames(p), r"^That video has no frames to restyle\.$"),
    ],
    ids=["text", "broken-mp4", "audio-only", "zero-frames"],
)
def test_bad_files_are_refused_in_one_sentence(tmp_path, make, message):
    path = tmp_path / "upload.mp4"
    make(path)
    with pytest.raises(InputError, match=message) as caught:
        video.probe(path, LIMITS)
    assert "\n" not in str(caught.value) and str(caught.value).count(". ") <= 1


def test_a_file_cut_short_before_its_index_is_refused_in_one_sentence(tmp_path):
    # PyAV writes the index (moov) at the end: an upload cut short loses it and with it every frame's place.
    whole = clips.write_clip(tmp_path / "whole.mp4", clips.pan(frames=12).frames, fps=12).read_bytes()
    assert whole.find(b"moov") > whole.find(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) * 7 // 10])
    with pytest.raises(InputError, match=r"^That file is not a video the studio can read \(use MP4"):
        video.probe(cut, LIMITS)


def test_a_clip_whose_index_promises_more_than_its_data_holds_restyles_what_is_there(studio, tmp_path):
    # A "fast start" file (the index first, as the studio writes them) cut short: the index still says 12
    # frames and 1 s, the data holds 3 of them. The part there is restyled, its sound cut to match, and
    # the person is told why the clip is shorter.
    source = clips.write_clip(tmp_path / "whole.mp4", clips.pan(frames=12).frames, fps=12, audio=("aac", 44_100))
    fast = tmp_path / "fast.mp4"
    video.finish_clip(source, source, fast, 1.0)
    data = fast.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    assert video.probe(cut, LIMITS).frames == 12
    outcome = restyle(studio, cut, size=64)
    made = outcome.result.frames
    assert 1 <= made < 12 and len(clips.decoded(outcome.video)) == made
    streams = av_streams(outcome.video)
    assert streams["video"]["seconds"] == pytest.approx(made / 12, abs=0.01)
    assert streams["audio"]["seconds"] == pytest.approx(made / 12, abs=0.05)
    assert any(f"Only {made} of the 12 frames" in note for note in outcome.notes), outcome.notes


def test_a_gif_is_said_to_be_transparent_only_when_it_is(studio, tmp_path):
    from PIL import Image

    opaque = [Image.new("RGB", (64, 48), (30 * t, 120, 200)) for t in range(4)]
    opaque[0].save(tmp_path / "opaque.gif", save_all=True, append_images=opaque[1:], duration=100, loop=0)
    clear = [Image.new("RGBA", (64, 48), (0, 0, 0, 0)) for _ in range(4)]
    for t, frame in enumerate(clear):
        frame.paste((200, 30, 30, 255), (8 + 8 * t, 10, 28 + 8 * t, 30))
    clear[0].save(tmp_path / "clear.gif", save_all=True, append_images=clear[1:], duration=100, loop=0, disposal=2)
    assert not video.probe(tmp_path / "opaque.gif", LIMITS).has_alpha  # FFmpeg decodes both to BGRA
    assert video.probe(tmp_path / "clear.gif", LIMITS).has_alpha
    outcome = restyle(studio, tmp_path / "opaque.gif", size=64)
    assert len(clips.decoded(outcome.video)) == 4
    assert not any("transparent" in note for note in outcome.notes)
    outcome = restyle(studio, tmp_path / "clear.gif", size=64)
    assert any("transparent parts" in note and "white" in note for note in outcome.notes)


def test_a_one_pixel_clip_is_scaled_up_and_a_one_pixel_line_refused(studio, tmp_path):
    from PIL import Image

    dots = [Image.new("RGB", (1, 1), (60 * t, 0, 0)) for t in range(3)]
    dots[0].save(tmp_path / "dot.gif", save_all=True, append_images=dots[1:], duration=100, loop=0)
    info = video.probe(tmp_path / "dot.gif", LIMITS)
    assert (info.width, info.height, info.frames) == (1, 1, 3)
    outcome = restyle(studio, tmp_path / "dot.gif", size=64)  # the output size asked for, as for any clip
    assert av_streams(outcome.video)["video"]["size"] == (64, 64) and len(clips.decoded(outcome.video)) == 3
    # One pixel wide stays one pixel wide at any size: nothing for the network to paint.
    thin = [Image.new("RGB", (1, 90), (60 * t, 0, 0)) for t in range(3)]
    thin[0].save(tmp_path / "line.gif", save_all=True, append_images=thin[1:], duration=100, loop=0)
    with pytest.raises(InputError, match=r"^At 1x64 px this video is too thin to stylise"):
        restyle(studio, tmp_path / "line.gif", size=64)


def test_a_9999_px_clip_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch):
    # A real 9999x9999 clip would take gigabytes to make; its header is what the check reads. A tiny GIF
    # whose screen and frame descriptors say 9999x9999 is that header.
    from PIL import Image

    dots = [Image.new("RGB", (1, 1), (60 * t, 0, 0)) for t in range(2)]
    dots[0].save(tmp_path / "dot.gif", save_all=True, append_images=dots[1:], duration=100, loop=0)
    data = bytearray((tmp_path / "dot.gif").read_bytes())
    side = (9999).to_bytes(2, "little")
    data[6:10] = side + side  # the logical screen
    start = 0
    while (start := data.find(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00", start)) != -1:  # each frame's descriptor
        data[start + 5:start + 9] = side + side
        start += 9
    (tmp_path / "huge.gif").write_bytes(bytes(data))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before refusing")

    monkeypatch.setattr(video, "_first_frame", no_decoding)
    with pytest.raises(InputError, match=r"^That video is 9999x9999 px; this studio takes videos up to 1024 px"):
        video.probe(tmp_path / "huge.gif", LIMITS)


def _audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=22_050)
        sound.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 22_050, 0
        for packet in [*sound.encode(frame), *sound.encode(None)]:
            out.mux(packet)


def _no_frames(path: Path) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        out.start_encoding()  # the header alone: a video track with no frames in it


# -- no flicker -----------------------------------------------------------------------------------


def test_the_warping_error_rises_on_a_clip_made_to_flicker():
    motion = clips.pan(frames=8)
    steady = flow.clip_warping_error(motion.frames, motion.flows, motion.masks)
    flickering = flow.clip_warping_error(clips.flicker(motion.frames), motion.flows, motion.masks)
    assert steady < 1e-4  # whole-pixel pan: warping back is exact
    assert flickering > 50 * steady and flickering > 0.005


@pytest.mark.parametrize("make", [lambda: clips.with_noise(clips.pan()), clips.moving_object],
                         ids=["noisy-pan", "moving-object"])
def test_temporal_blending_cuts_the_warping_error(studio, tmp_path, make):
    motion = make()
    source = clips.write_clip(tmp_path / "in.mp4", motion.frames, fps=12)
    alone = clips.decoded(restyle(studio, source, temporal=0.0).video)
    blended = clips.decoded(restyle(studio, source, temporal=0.8).video)
    error_alone = flow.clip_warping_error(alone, motion.flows, motion.masks)
    error_blended = flow.clip_warping_error(blended, motion.flows, motion.masks)
    assert error_blended < error_alone / 2.5, (error_alone, error_blended)
    # Still the same restyling: close to the frame-by-frame result, not smeared away from it.
    drift = np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(alone, blended, strict=True)])
    assert drift < 15


def test_a_scene_cut_starts_afresh(studio, tmp_path):
    first = clips.pan(frames=6).frames
    second = clips.pan(frames=6, source="flower.jpg").frames
    source = clips.write_clip(tmp_path / "cut.mp4", first + second, fps=12)
    outcome = restyle(studio, source)
    assert outcome.result.cuts == [6]
    assert any("scene cut" in note for note in outcome.notes)
    # The first frame after the cut is the fresh stylisation of the new shot, nothing carried over.
    fresh = clips.decoded(restyle(studio, clips.write_clip(tmp_path / "b.mp4", second, fps=12), temporal=0.8).video)
    after_cut = clips.decoded(outcome.video)[6]
    assert np.abs(after_cut.astype(float) - fresh[0]).mean() < 4


def test_blender_carries_a_still_scene_and_reports_the_cut():
    rng = np.random.default_rng(1)
    content = clips.pan(frames=3).frames
    blender = flow.TemporalBlender(1.0)
    first, report = blender(content[0], rng.integers(0, 255, content[0].shape, dtype=np.uint8))
    assert not report.cut and report.trusted == 0.0
    second, report = blender(content[0], rng.integers(0, 255, content[0].shape, dtype=np.uint8))
    assert report.trusted > 0.9
    assert np.abs(second[8:-8, 8:-8].astype(float) - first[8:-8, 8:-8]).mean() < 3  # strength 1: carried as is


# -- Stop -----------------------------------------------------------------------------------------


def test_stop_keeps_the_finished_part_as_its_own_clip(studio, tmp_path):
    motion = clips.pan(frames=12)
    source = clips.write_clip(tmp_path / "in.mp4", motion.frames, fps=12, audio=("aac", 44_100))
    token = CancelToken()

    def progress(done, total, preview=None):
        if done == 5:
            token.cancel()

    outcome = restyle(studio, source, progress=progress, cancel=token)
    assert outcome.result.stopped and outcome.result.frames == 5
    assert len(clips.decoded(outcome.video)) == 5
    streams = av_streams(outcome.video)
    assert streams["video"]["seconds"] == pytest.approx(5 / 12, abs=0.01)
    assert streams["audio"]["seconds"] == pytest.approx(5 / 12, abs=0.05)
    assert outcome.item.params["stopped_after_frames"] == 5
    leftovers = list((studio.settings.cache_dir).glob("style-video-*"))
    assert leftovers == []


# -- the command line -----------------------------------------------------------------------------


def _cli(args, cwd, data):
    env = dict(os.environ, PYTHONPATH=str(ROOT), STUDIO_DATA_DIR=str(data))
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_cli_restyles_a_clip_and_says_what_it_made(tmp_path):
    clips.write_clip(tmp_path / "clip.mp4", clips.pan(frames=6).frames, fps=6, audio=("aac", 44_100))
    done = _cli(["style-video", "clip.mp4", "--style", "7", "--temporal", "0.7", "--size", "96", "--gif",
                 "--out", "out.mp4", "--json"], tmp_path, tmp_path / "data")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outputs"] == ["out.mp4", "out.gif"] and report["frames"] == 6
    assert report["parameters"]["temporal"] == 0.7 and report["gallery_id"] == 1
    assert len(clips.decoded(tmp_path / "out.mp4")) == 6 and (tmp_path / "out.gif").stat().st_size > 0
    assert av_streams(tmp_path / "out.mp4")["audio"]["codec"] == "aac"


def test_cli_with_a_style_picture(tmp_path):
    from PIL import Image

    clips.write_clip(tmp_path / "clip.mp4", clips.pan(frames=3).frames, fps=6)
    Image.fromarray(clips.photo("flower.jpg", 128)).save(tmp_path / "painting.jpg")
    done = _cli(["style-video", "clip.mp4", "--style-image", "painting.jpg", "--size", "64", "--out", "p.mp4",
                 "--no-gallery"], tmp_path, tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("p.mp4 (64x48, 3 frames at 6 fps")
    assert len(clips.decoded(tmp_path / "p.mp4")) == 3


def test_cli_refuses_in_one_line(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a film")
    for args, words in [
        (["style-video", "notes.mp4"], "error: That file is not a video the studio can read"),
        (["style-video", "missing.mp4"], "error: no such file: missing.mp4"),
        (["style-video", "notes.mp4", "--out", "x.avi"], "error: --out must end in .mp4"),
        (["style-video", "notes.mp4", "--temporal", "2"], "2.0 is outside 0..1"),
    ]:
        done = _cli(args, tmp_path, tmp_path / "data")
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr
