"""ControlNet: the preprocessors on real photos, the tiny ControlNets (built from the tiny UNets and
loaded through the studio's own loading code) steering real runs, several at once, weight and
start/end, the AUTOMATIC1111 metadata read back and re-run to the same pixels, refusals, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from studio.backends.diffusion import control_maps
from studio.errors import InputError

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def photo(name: str = "astronaut.jpg", size: tuple[int, int] = (256, 256)) -> Image.Image:
    with Image.open(EXAMPLES / name) as opened:
        return opened.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def grey(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("L"), dtype=np.float32)


def gradient(picture: Image.Image) -> np.ndarray:
    import cv2

    values = grey(picture)
    return np.hypot(cv2.Sobel(values, cv2.CV_32F, 1, 0), cv2.Sobel(values, cv2.CV_32F, 0, 1))


def sharpness(picture: Image.Image) -> float:
    import cv2

    return float(cv2.Laplacian(grey(picture), cv2.CV_32F).var())


def drawing(size: tuple[int, int] = (128, 128)) -> Image.Image:
    """Black strokes on white, as a person draws them."""
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    draw.line((10, 64, 118, 64), fill="black", width=3)
    draw.ellipse((30, 20, 90, 50), outline="black", width=3)
    return picture


# -- preprocessors ------------------------------------------------------------------------------


def test_canny_marks_the_photo_s_edges_and_its_thresholds_thin_them():
    picture = photo()
    edges, note = control_maps.make_map(picture, "canny", picture.size)
    assert note is None and edges.size == picture.size and edges.mode == "RGB"
    marked = grey(edges) > 0
    assert 0.01 < marked.mean() < 0.4
    strength = gradient(picture)
    # Edge pixels sit where the photo changes: their gradient is several times the photo's average.
    assert strength[marked].mean() > 3 * strength.mean()
    fewer = grey(control_maps.make_map(picture, "canny", picture.size, 200, 250)[0]) > 0
    assert fewer.sum() < 0.8 * marked.sum()
    # A black square on white: edges on its border and nowhere else.
    square = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(square).rectangle((16, 16, 47, 47), fill="black")
    lines = grey(control_maps.make_map(square, "canny", square.size)[0]) > 0
    assert lines[14:50, 14:50].sum() == lines.sum() > 0
    assert not lines[20:44, 20:44].any()


def test_lineart_and_scribble_find_the_strokes_of_a_drawing():
    picture = drawing()
    for name in ("lineart", "scribble"):
        made = grey(control_maps.make_map(picture, name, picture.size)[0])
        on_stroke, background = made[63:66, 20:110], made[90:120, 10:120]
        assert on_stroke.mean() > 100, name
        assert background.max() == 0, name
    # On a photo they mark some of it, not all.
    for name in ("lineart", "scribble"):
        share = (grey(control_maps.make_map(photo(), name, (256, 256))[0]) > 0).mean()
        assert 0.01 < share < 0.6, name


def test_shuffle_keeps_the_colours_moves_the_content_and_follows_its_seed():
    picture = photo()
    first = control_maps.make_map(picture, "shuffle", picture.size, seed=1)[0]
    again = control_maps.make_map(picture, "shuffle", picture.size, seed=1)[0]
    other = control_maps.make_map(picture, "shuffle", picture.size, seed=2)[0]
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert np.abs(np.asarray(first, np.int16) - np.asarray(other, np.int16)).mean() > 5
    assert np.abs(np.asarray(first, np.int16) - np.asarray(picture, np.int16)).mean() > 10
    # Its colours come from the picture: the mean colour stays close.
    assert np.abs(np.asarray(first, np.float32).mean((0, 1)) - np.asarray(picture, np.float32).mean((0, 1))).max() < 40


def test_tile_blur_invert_and_none():
    picture = photo()
    assert np.array_equal(np.asarray(control_maps.make_map(picture, "tile", picture.size)[0]), np.asarray(picture))
    coarse = control_maps.make_map(picture, "tile", picture.size, 4)[0]
    blurred = control_maps.make_map(picture, "blur", picture.size, 3)[0]
    assert sharpness(coarse) < 0.5 * sharpness(picture)
    assert sharpness(blurred) < 0.2 * sharpness(picture)
    inverted = control_maps.make_map(picture, "invert", picture.size)[0]
    assert np.array_equal(np.asarray(inverted), 255 - np.asarray(picture))
    assert np.array_equal(np.asarray(control_maps.make_map(picture, "none", picture.size)[0]), np.asarray(picture))


def test_maps_are_made_at_the_working_size_and_a_fitted_picture_is_said():
    wide = photo(size=(300, 150))
    made, note = control_maps.make_map(wide, "canny", (128, 128))
    assert made.size == (128, 128)
    assert note is not None and "300x150" in note and "128x128" in note and "cropped" in note
    same_shape, note = control_maps.make_map(photo(size=(256, 256)), "none", (128, 128))
    assert same_shape.size == (128, 128) and note is not None and "resized" in note and "cropped" not in note


@pytest.mark.parametrize(
    ("name", "a", "b", "words"),
    [
        ("depth", None, None, "control type must be one of"),
        ("canny", 300, None, "first canny threshold"),
        ("canny", 200, 100, "must not be above"),
        ("scribble", float("nan"), None, "first scribble threshold"),
        ("blur", 0, None, "first blur threshold"),
    ],
)
def test_bad_types_and_thresholds_are_refused_in_one_sentence(name, a, b, words):
    with pytest.raises(InputError, match=words) as caught:
        control_maps.make_map(photo(), name, (64, 64), a, b)
    assert "\n" not in str(caught.value)
