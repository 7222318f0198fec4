"""A person in a browser: the Upscale button under a Style result, an Image result and a gallery item takes
the picture to the Upscale tab; the result is the scale times bigger, in the gallery, with the source's
own parameters and AUTOMATIC1111's `Postprocess upscale` line."""

from __future__ import annotations

from PIL import Image
from playwright.sync_api import expect

from studio.history import Gallery
from studio.media.png_info import read_png_text
from tests.e2e.conftest import SCREENSHOTS
from tests.image_cases import EXAMPLES
from tests.image_models import write_models_file
from tests.running_app import RunningApp

FAST = "R-ESRGAN AnimeVideo"  # realesr-animevideov3: its own x2 weights, quick on a CPU


def _natural_size(page, elem_id: str) -> tuple[int, int]:
    """The real pixel size of the picture a component shows, once the browser has decoded it."""
    img = page.locator(f"#{elem_id} img").first
    expect(img).to_be_visible()
    page.wait_for_function(f"() => document.querySelector('#{elem_id} img')?.naturalWidth > 0")
    return tuple(img.evaluate("img => [img.naturalWidth, img.naturalHeight]"))


def _upscale_by_two(page, kept_as: str) -> None:
    """In the Upscale tab, with the picture already there: the fast upscaler, x2, run."""
    expect(page.locator("#upscale-picture img").first).to_be_visible()
    page.locator("#upscale-upscaler input").click()
    page.get_by_role("option", name=FAST, exact=True).click()
    page.locator("#upscale-scale").get_by_label("2", exact=True).check()
    page.locator("#upscale-run").click()
    expect(page.locator("#upscale-info")).to_contain_text(kept_as, timeout=180_000)


def _parameters(item) -> str:
    return read_png_text(item.file).get("parameters", "")


def test_upscale_a_style_result_in_the_browser(page, tmp_path):
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        expect(page.locator("#style-run")).to_be_visible()
        page.locator("#style-photo input[type=file]").set_input_files(str(EXAMPLES / "astronaut.jpg"))
        expect(page.locator("#style-photo img").first).to_be_visible()
        side = page.locator("#style-size input[type=number]")
        side.fill("160")  # small, so the upscale is quick on a busy machine
        side.press("Enter")
        page.locator("#style-run").click()
        expect(page.locator("#style-info")).to_contain_text("gallery #1", timeout=180_000)
        source = _natural_size(page, "style-result")
        assert max(source) == 160

        page.locator("#style-send-to-upscale").click()
        expect(page.locator("#upscale-run")).to_be_visible()  # the Upscale tab is open
        _upscale_by_two(page, "gallery #2")
        expect(page.locator("#upscale-info")).to_contain_text(f"{source[0]}x{source[1]} → "
                                                              f"{2 * source[0]}x{2 * source[1]} px")
        assert _natural_size(page, "upscale-result") == (2 * source[0], 2 * source[1])
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "upscale-tab.png"))

        kept = Gallery(app.data_dir).get(2)
        assert kept.task == "upscale"
        with Image.open(kept.file) as picture:
            assert picture.size == (2 * source[0], 2 * source[1])
        assert _parameters(kept) == f"Postprocess upscale by: 2, Postprocess upscaler: {FAST}"

        page.get_by_role("tab", name="Gallery", exact=True).click()
        items = page.locator("#gallery-grid button.thumbnail-item")
        expect(items).to_have_count(2)
        expect(items.first).to_contain_text("#2 · upscale")


def test_image_results_and_gallery_items_go_to_the_upscaler_with_their_parameters(
        page, tmp_path, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)
    with RunningApp(tmp_path / "data", "--models-file", str(models), "--offline") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        page.locator("#image-prompt textarea").fill("a lighthouse on a cliff at sunset")
        page.locator("#image-run-txt2img").click()
        expect(page.locator("#image-info")).to_contain_text("gallery #1", timeout=180_000)
        original = _parameters(Gallery(app.data_dir).get(1))
        assert original.startswith("a lighthouse on a cliff at sunset\n") and "Seed: " in original

        page.locator("#image-send-to-upscale").click()
        _upscale_by_two(page, "gallery #2")
        from_image = Gallery(app.data_dir).get(2)
        with Image.open(from_image.file) as picture:
            assert picture.size == (128, 128)  # the tiny model's 64 px picture, twice over
        assert _parameters(from_image) == f"{original}\nPostprocess upscale by: 2, Postprocess upscaler: {FAST}"

        page.get_by_role("tab", name="Gallery", exact=True).click()
        items = page.locator("#gallery-grid button.thumbnail-item")
        expect(items).to_have_count(2)
        items.nth(1).click()
        expect(page.locator("#gallery-details")).to_contain_text("#1 · txt2img")
        page.locator("#gallery-send-to-upscale").click()
        _upscale_by_two(page, "gallery #3")
        from_gallery = Gallery(app.data_dir).get(3)
        assert _parameters(from_gallery) == _parameters(from_image)
        page.get_by_role("tab", name="Gallery", exact=True).click()
        expect(items).to_have_count(3)
        expect(items.first).to_contain_text("#3 · upscale")
