"""The running app through its API (gradio_client): style transfer, the gallery, errors, restarts."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio.media.png_info import read_studio_params
from tests.image_cases import EXAMPLES, write_cases
from tests.running_app import RunningApp

BUILTIN, STYLE_IMAGE = "Built-in style", "Style image"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with RunningApp(tmp_path_factory.mktemp("api") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return write_cases(tmp_path_factory.mktemp("api-cases"))


def stylize(client, photo, source=BUILTIN, style=0, second=-1, blend=0.5, style_image=None, strength=1.0,
            preserve=False, size=512, keep=True):
    return client.predict(
        handle_file(str(photo)), source, style, second, blend,
        handle_file(str(style_image)) if style_image else None,
        strength, preserve, size, keep, api_name="/stylize",
    )


def test_stylize_returns_the_kept_png_and_lists_it(client):
    path, info, *_ = stylize(client, EXAMPLES / "coffee.jpg", style=19, size=480)
    image = Image.open(path)
    assert image.size == (480, 320)
    assert read_studio_params(path)["style"] == 19  # the download is our PNG, parameters included
    assert "gallery #" in info
    listing, *_ = client.predict("All", api_name="/gallery_list")
    assert any("style" in entry["caption"] for entry in listing)


def test_style_image_and_blend_through_the_api(client):
    path, *_ = stylize(client, EXAMPLES / "coffee.jpg", source=STYLE_IMAGE, style_image=EXAMPLES / "astronaut.jpg",
                       size=400)
    assert read_studio_params(path)["model"] == "magenta-arbitrary-style"
    path, *_ = stylize(client, EXAMPLES / "coffee.jpg", style=3, second=12, blend=0.3, size=300)
    params = read_studio_params(path)
    assert (params["style"], params["blend_style"], params["blend"]) == (3, 12, 0.3)


@pytest.mark.parametrize(
    "case, kwargs, words",
    [
        ("text.png", {}, "not an image"),
        ("empty.png", {}, "empty"),
        ("huge.png", {}, "too large"),
        ("truncated.jpg", {}, "damaged"),
        (None, {"style": 40}, "0 to 25"),
        (None, {"strength": 4.0}, "greater than maximum value 1"),
        (None, {"source": STYLE_IMAGE}, "Upload a style image"),
        (None, {"size": 100_000}, "greater than maximum value 2048"),
    ],
)
def test_bad_input_gets_a_clear_message(client, cases, case, kwargs, words):
    photo = cases[case] if case else EXAMPLES / "coffee.jpg"
    with pytest.raises(Exception, match=words) as caught:
        stylize(client, photo, **kwargs)
    assert "Traceback" not in str(caught.value)


def test_odd_but_valid_images_work(client, cases):
    for name in ("cmyk.jpg", "grey16.png", "palette.png", "animated.gif", "rotated.jpg", "alpha.png"):
        path, *_ = stylize(client, cases[name], style=5, size=256)
        assert max(Image.open(path).size) == 256, name
    path, *_ = stylize(client, cases["rotated.jpg"], style=5, size=240)
    assert Image.open(path).size == (160, 240)  # portrait, as the EXIF says
    assert Image.open(stylize(client, cases["alpha.png"], style=5, size=240)[0]).mode == "RGBA"


def test_a_tiny_photo_blown_up_to_the_asked_size_says_so(client, tmp_path):
    Image.new("RGB", (1, 1), "teal").save(tmp_path / "dot.png")
    path, info, *_ = stylize(client, tmp_path / "dot.png", style=5, size=1024)
    assert Image.open(path).size == (1024, 1024)
    assert "The photo is only 1x1 px; it was enlarged 1024x to 1024x1024 px" in info
    # A photo kept near its own size says nothing of the kind.
    _, info, *_ = stylize(client, EXAMPLES / "coffee.jpg", style=5, size=480)
    assert "enlarged" not in info


def test_unkept_result_can_be_saved_later(client):
    before = len(client.predict("All", api_name="/gallery_list")[0])
    path, info, *_ = stylize(client, EXAMPLES / "rocket.jpg", style=2, size=256, keep=False)
    assert "not in the gallery" in info
    assert len(client.predict("All", api_name="/gallery_list")[0]) == before


def test_rerun_reproduces_and_delete_removes(client, app):
    path, *_ = stylize(client, EXAMPLES / "astronaut.jpg", source=STYLE_IMAGE, style_image=EXAMPLES / "rocket.jpg",
                       strength=0.8, size=448)
    from studio.history import Gallery

    gallery = Gallery(app.data_dir)
    newest = gallery.list()[0]
    rerun = client.predict(newest.id, "All", api_name="/gallery_rerun")
    again = gallery.list()[0]
    assert again.id != newest.id and rerun[0] is not None
    assert np.array_equal(np.asarray(Image.open(again.file)), np.asarray(Image.open(newest.file)))
    client.predict(again.id, "All", api_name="/gallery_delete")
    assert again.id not in [i.id for i in gallery.list()]
    assert not again.file.exists()


def test_gallery_survives_a_restart(tmp_path):
    data = tmp_path / "data"
    with RunningApp(data) as first:
        made, *_ = stylize(Client(first.url, verbose=False), EXAMPLES / "coffee.jpg", style=8, size=256)
    with RunningApp(data) as second:
        listing, *_ = Client(second.url, verbose=False).predict("style", api_name="/gallery_list")
    assert len(listing) == 1
    assert Image.open(listing[0]["image"]).size[0] <= 320  # the thumbnail
    assert Image.open(made).size == (256, 171)
