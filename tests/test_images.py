"""The safe image loader against every awkward file people upload."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from studio.errors import InputError
from studio.media.images import open_image, resize_long_side, restore_alpha
from tests.image_cases import huge_png_header, write_cases

LIMIT = 50_000_000


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return write_cases(tmp_path_factory.mktemp("cases"))


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty.png", "empty (0 bytes)"),
        ("text.png", "not an image"),
        ("truncated.jpg", "damaged or incomplete"),
    ],
)
def test_unreadable_files_are_refused_in_words(cases, name, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        open_image(cases[name], LIMIT)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="No image file"):
        open_image(tmp_path / "nope.png", LIMIT)


def test_a_missing_file_is_named_by_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as refused:
        open_image("nonexistent.jpg", LIMIT)
    assert str(refused.value) == f"No image file at '{tmp_path / 'nonexistent.jpg'}'."
    with pytest.raises(InputError, match="is a folder, not an image file"):
        open_image(tmp_path, LIMIT)


def test_huge_image_is_refused_from_its_header_without_decoding(cases):
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"too large.*the limit is 50 megapixels"):
        open_image(cases["huge.png"], LIMIT)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Decoding would need 1.2 GB; refusing from the header needs next to nothing.
    assert peak < 5_000_000
    assert elapsed < 1.0


def test_over_the_limit_image_names_its_size(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(huge_png_header(9000, 8000))
    with pytest.raises(InputError, match=r"9000x8000 \(72 megapixels\); the limit is 50 megapixels"):
        open_image(path, LIMIT)


def test_cmyk_becomes_rgb_with_the_same_look(cases):
    loaded = open_image(cases["cmyk.jpg"], LIMIT)
    assert loaded.rgb.mode == "RGB"
    reference = Image.open(cases["cmyk.jpg"]).convert("RGB")
    assert np.abs(np.asarray(loaded.rgb, float) - np.asarray(reference, float)).mean() < 1.0
    assert any("CMYK" in note for note in loaded.notes)


def test_16bit_png_is_scaled_not_clipped(cases):
    loaded = open_image(cases["grey16.png"], LIMIT)
    pixels = np.asarray(loaded.rgb)
    assert loaded.rgb.mode == "RGB"
    # A ramp from 0 to 65535 must become a ramp from 0 to 255, not mostly 255.
    assert pixels.min() == 0 and pixels.max() == 255
    assert 100 < pixels.mean() < 155


def test_alpha_is_flattened_on_white_and_kept_aside(cases):
    loaded = open_image(cases["alpha.png"], LIMIT)
    assert loaded.rgb.mode == "RGB"
    assert loaded.alpha is not None
    left = np.asarray(loaded.rgb)[:, :60]
    assert (left == 255).all()  # transparent half is white, not black
    restored = restore_alpha(loaded.rgb.resize((240, 160)), loaded.alpha)
    assert restored.mode == "RGBA" and restored.size == (240, 160)
    a = np.asarray(restored.getchannel("A"))
    assert a[:, :100].max() < 20 and a[:, 140:].min() > 235
    assert loaded.original.mode == "RGBA"  # what a re-run stores


def test_palette_png_becomes_rgb(cases):
    loaded = open_image(cases["palette.png"], LIMIT)
    assert loaded.rgb.mode == "RGB" and loaded.alpha is None
    assert len(np.unique(np.asarray(loaded.rgb).reshape(-1, 3), axis=0)) <= 16


def test_animated_gif_gives_its_first_frame_and_says_so(cases):
    loaded = open_image(cases["animated.gif"], LIMIT)
    r, g, b = loaded.rgb.getpixel((10, 10))
    assert r > 200 and g < 50 and b < 50  # the red first frame
    assert any("first frame" in note for note in loaded.notes)


def test_exif_rotation_is_honoured(cases):
    loaded = open_image(cases["rotated.jpg"], LIMIT)
    assert loaded.size == (80, 120)  # stored 120x80 with "rotate 90"
    assert any("EXIF" in note for note in loaded.notes)


def test_one_pixel_image_opens(cases):
    assert open_image(cases["one_pixel.png"], LIMIT).size == (1, 1)


def test_bytes_input_and_limits(cases):
    data = cases["palette.png"].read_bytes()
    assert open_image(data, LIMIT).size == (120, 80)
    with pytest.raises(InputError, match="limit"):
        open_image(data, 100)
    with pytest.raises(InputError, match="empty"):
        open_image(b"", LIMIT)


def test_resize_long_side_keeps_aspect():
    im = Image.new("RGB", (600, 400))
    assert resize_long_side(im, 300).size == (300, 200)
    assert resize_long_side(im, 1200).size == (1200, 800)
