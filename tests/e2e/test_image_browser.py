"""A person in a browser: write a prompt, generate, see the picture, send it on to the Style tab."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.image_models import write_models_file
from tests.running_app import RunningApp


def test_generate_in_the_browser_and_send_the_picture_to_style(page, tmp_path, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)
    with RunningApp(tmp_path / "data", "--models-file", str(models), "--offline") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        expect(page.locator("#image-run-txt2img")).to_be_visible()
        expect(page.locator("#image-setup")).to_be_hidden()  # a model is there: no notice
        page.locator("#image-prompt textarea").fill("a lighthouse on a cliff at sunset")
        page.locator("#image-run-txt2img").click()

        result = page.locator("#image-results img").first
        expect(result).to_be_visible(timeout=180_000)  # the first run loads the model
        expect(page.locator("#image-info")).to_contain_text("gallery #1")
        expect(page.locator("#image-info")).to_contain_text("64x64 px")
        SCREENSHOTS.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / "image-tab.png"), full_page=True)

        page.get_by_role("button", name="Send to Style").click()
        expect(page.locator("#style-photo img").first).to_be_visible()
        expect(page.locator("#style-run")).to_be_visible()
