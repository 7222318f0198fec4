"""Latent walks on the built-in models: interpolation maths, CPPN patterns, style walks, animation files."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from studio.backends.patterns import PALETTES, PatternBackend, PatternRequest
from studio.backends.style_walk import StyleWalkRequest, style_walk
from studio.backends.stylize import StyleBackend, StyleRequest
from studio.errors import Cancelled, InputError
from studio.media.animation import frame_strip, write_gif, write_mp4
from studio.media.images import LoadedImage
from studio.media.interpolation import evenness, frame_steps, lerp, loop_positions, slerp, walk_positions
from studio.runtime import CancelToken, ModelCache
from studio.services import Studio
from studio.settings import Settings
from tests.image_cases import photo

# -- slerp -----------------------------------------------------------------------------------


def test_slerp_keeps_gaussian_noise_statistics_where_lerp_does_not():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 64, 64)).astype(np.float32)
    assert 0.97 < slerp(a, b, 0.5).std() < 1.03
    assert 0.68 < lerp(a, b, 0.5).std() < 0.74


def test_slerp_returns_the_endpoints_exactly():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 1000)).astype(np.float32)
    assert np.array_equal(slerp(a, b, 0.0), a) and np.array_equal(slerp(a, b, 1.0), b)
    assert slerp(a, b, 0.3).dtype == np.float32


def test_near_parallel_inputs_fall_back_to_lerp_the_right_way_round():
    a = np.linspace(1, 2, 100)
    b = a * 1.0001 + 1e-6
    mixed = slerp(a, b, 0.25)
    assert np.allclose(mixed, 0.75 * a + 0.25 * b)
    assert np.isfinite(slerp(a, a.copy(), 0.5)).all()


def test_walk_and_loop_positions():
    positions = walk_positions(3, 4)
    assert len(positions) == 11 and positions[0] == (0, 0.0) and positions[-1] == (1, 1.0)
    assert (1, 0.0) in positions  # the middle keyframe appears exactly once
    loop = loop_positions(8)
    assert loop[0] == 0.0 and max(loop) == pytest.approx(1.0) and loop[1] == pytest.approx(loop[-1])


# -- CPPN patterns --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def patterns():
    return PatternBackend(max_side=4096, max_frames=240)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def test_a_seed_is_one_picture_and_other_seeds_are_others(patterns):
    a = patterns.render(PatternRequest(seed=5, width=160, height=120)).frames[0]
    again = patterns.render(PatternRequest(seed=5, width=160, height=120)).frames[0]
    other = patterns.render(PatternRequest(seed=6, width=160, height=120)).frames[0]
    assert a.size == (160, 120)
    assert np.array_equal(_pixels(a), _pixels(again))
    assert np.abs(_pixels(a) - _pixels(other)).mean() > 20


def test_patterns_render_at_any_resolution_as_the_same_picture(patterns):
    small = patterns.render(PatternRequest(seed=5, width=256, height=256)).frames[0]
    big = patterns.render(PatternRequest(seed=5, width=1024, height=1024)).frames[0]
    shrunk = big.resize((256, 256), Image.Resampling.BOX)
    other = patterns.render(PatternRequest(seed=8, width=256, height=256)).frames[0]
    same_gap = np.abs(_pixels(small) - _pixels(shrunk)).mean()
    assert same_gap < 8
    assert same_gap < 0.2 * np.abs(_pixels(small) - _pixels(other)).mean()


def _distance_to_path(pixels: np.ndarray, stops: list) -> np.ndarray:
    """Each pixel's RGB distance to the piecewise-linear path through a palette's colour stops."""
    points = pixels.reshape(-1, 3)
    best = np.full(len(points), np.inf)
    for a, b in zip(stops, stops[1:], strict=False):
        a, b = np.asarray(a, float), np.asarray(b, float)
        t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best


@pytest.mark.parametrize("palette", ["sunset", "ocean", "ink"])
def test_palettes_colour_with_their_own_colours_only(patterns, palette):
    pixels = _pixels(patterns.render(PatternRequest(seed=3, width=96, height=96, palette=palette)).frames[0])
    assert _distance_to_path(pixels, PALETTES[palette]).max() < 2.0
    other = "ocean" if palette != "ocean" else "sunset"
    assert _distance_to_path(pixels, PALETTES[other]).mean() > 20  # and not another palette's


def test_a_pattern_walk_loops_smoothly_from_its_seed(patterns):
    request = PatternRequest(seed=5, walk_to=9, frames=24, width=96, height=96)
    frames = patterns.render(request).frames
    assert len(frames) == 24
    start = patterns.render(PatternRequest(seed=5, width=96, height=96)).frames[0]
    assert np.array_equal(_pixels(frames[0]), _pixels(start))
    steps = frame_steps([_pixels(f) for f in frames] + [_pixels(frames[0])])  # the loop closes
    print(f"pattern walk evenness (max/median step): {steps.max() / np.median(steps):.2f}")
    assert steps.max() / np.median(steps) < 3.0
    assert np.median(steps) > 0.3  # it does move


def test_stop_keeps_the_frames_made_so_far(patterns):
    token = CancelToken()

    def progress(done, total, preview=None):
        if done == 5:
            token.cancel()

    result = patterns.render(PatternRequest(seed=1, walk_to=2, frames=40, width=64, height=64), progress=progress,
                             cancel=token)
    assert result.stopped and len(result.frames) == 5
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        patterns.render(PatternRequest(seed=1, walk_to=2, frames=40, width=64, height=64), cancel=token)


@pytest.mark.parametrize(
    "request_, words",
    [
        (PatternRequest(width=8), "between 16 and"),
        (PatternRequest(width=10_000), "between 16 and"),
        (PatternRequest(seed=-1), "Seeds"),
        (PatternRequest(palette="plaid"), "Unknown palette"),
        (PatternRequest(zoom=float("inf")), "Zoom"),
        (PatternRequest(walk_to=3, frames=1), "between 2 and"),
        (PatternRequest(walk_to=3, frames=100_000), "between 2 and"),
    ],
)
def test_bad_pattern_requests_are_explained(patterns, request_, words):
    with pytest.raises(InputError, match=words):
        patterns.render(request_)


def test_every_palette_renders(patterns):
    for name in PALETTES:
        assert patterns.render(PatternRequest(seed=2, width=32, height=32, palette=name)).frames[0].size == (32, 32)


# -- style walks ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def styles():
    return StyleBackend(ModelCache(1024))


@pytest.fixture(scope="module")
def coffee():
    return LoadedImage(photo("coffee"))


def test_builtin_style_walk_ends_on_its_single_style_images(styles, coffee):
    result = style_walk(styles, coffee, StyleWalkRequest(styles=(3, 19, 7), frames_between=4, size=192))
    assert len(result.frames) == 11
    for frame, style in ((result.frames[0], 3), (result.frames[5], 19), (result.frames[-1], 7)):
        single = styles.stylize(coffee, StyleRequest(style=style, size=192)).image
        assert np.array_equal(_pixels(frame), _pixels(single))
    ratio = evenness([_pixels(f) for f in result.frames[:6]])
    print(f"style walk evenness (max/median step): {ratio:.2f}")
    assert ratio < 3.0


def test_style_image_walk_ends_on_its_single_style_images(styles, coffee):
    painting_a = LoadedImage(photo("astronaut"))
    painting_b = LoadedImage(photo("rocket"))
    result = style_walk(styles, coffee, StyleWalkRequest(frames_between=3, size=160), [painting_a, painting_b])
    assert len(result.frames) == 5 and result.params["model"] == "magenta-arbitrary-style"
    first = styles.stylize(coffee, StyleRequest(size=160), painting_a).image
    last = styles.stylize(coffee, StyleRequest(size=160), painting_b).image
    assert np.array_equal(_pixels(result.frames[0]), _pixels(first))
    assert np.array_equal(_pixels(result.frames[-1]), _pixels(last))
    assert evenness([_pixels(f) for f in result.frames]) < 3.0


def test_two_identical_keyframes_make_a_still_walk(styles, coffee):
    frames = style_walk(styles, coffee, StyleWalkRequest(styles=(4, 4), frames_between=2, size=96)).frames
    assert all(np.array_equal(_pixels(f), _pixels(frames[0])) for f in frames)


@pytest.mark.parametrize(
    "request_, images, words",
    [
        (StyleWalkRequest(styles=(3,)), 0, "at least two"),
        (StyleWalkRequest(styles=()), 1, "at least two"),
        (StyleWalkRequest(styles=(3, 4)), 2, "not both"),
        (StyleWalkRequest(styles=(3, 40)), 0, "0 to 25"),
        (StyleWalkRequest(styles=(3, 4), frames_between=1000), 0, "limit is 240"),
        (StyleWalkRequest(styles=(3, 4), size=99_999), 0, "frame size"),
        (StyleWalkRequest(styles=(3, 4), fps=0), 0, "Frames per second"),
    ],
)
def test_bad_style_walks_are_explained(styles, coffee, request_, images, words):
    with pytest.raises(InputError, match=words):
        style_walk(styles, coffee, request_, [LoadedImage(photo("rocket"))] * images)


# -- files people keep ------------------------------------------------------------------------


def test_gif_and_mp4_open_elsewhere_with_the_right_frames_size_and_fps(tmp_path):
    frames = [Image.new("RGB", (90, 64), (i * 20, 255 - i * 20, 128)) for i in range(10)]
    write_gif(frames, tmp_path / "walk.gif", fps=10)
    write_mp4(frames, tmp_path / "walk.mp4", fps=10)
    gif = iio.imread(tmp_path / "walk.gif", index=None)
    assert gif.shape[:3] == (10, 64, 90)
    assert Image.open(tmp_path / "walk.gif").info["duration"] == 100
    video = iio.imread(tmp_path / "walk.mp4", index=None, plugin="FFMPEG")
    meta = iio.immeta(tmp_path / "walk.mp4", plugin="FFMPEG")
    assert video.shape[:3] == (10, 64, 90) and meta["fps"] == 10
    assert abs(video[3].astype(int).mean(axis=(0, 1)) - [60, 195, 128]).max() < 12  # colours survive the codec
    assert frame_strip(frames, height=32).height == 32


def test_walks_are_kept_and_re_run_from_the_gallery(tmp_path):
    studio = Studio(Settings(data_dir=tmp_path))
    outcome = studio.make_patterns(PatternRequest(seed=4, walk_to=6, frames=6, width=64, height=64))
    item = outcome.item
    assert item.file.suffix == ".mp4" and studio.gallery.companion(item, ".gif") is not None
    again = studio.rerun(item.id)
    assert iio.imread(again.file, index=None, plugin="FFMPEG").shape[0] == 6
    still = studio.make_patterns(PatternRequest(seed=4, width=64, height=64)).item
    assert np.array_equal(_pixels(Image.open(studio.rerun(still.id).file)), _pixels(Image.open(still.file)))
    walk = studio.style_walk(LoadedImage(photo("coffee")), StyleWalkRequest(styles=(1, 2), frames_between=1, size=64))
    rerun = studio.rerun(walk.item.id)
    assert rerun.params["styles"] == [1, 2] and rerun.params["frames"] == 3
    studio.gallery.delete(walk.item.id)
    assert not list(walk.item.file.parent.glob(walk.item.file.stem + ".*"))  # MP4, GIF and thumbnail all gone
