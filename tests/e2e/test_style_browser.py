"""A person in a browser: upload a photo, pick a style, stylise, find it in the Gallery, even after a restart."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from studio.backends.stylize import BUILTIN_STYLE_NAMES
from tests.e2e.conftest import SCREENSHOTS
from tests.image_cases import EXAMPLES, write_cases
from tests.running_app import RunningApp


def _upload(page, elem_id: str, path) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    expect(page.locator(f"#{elem_id} img").first).to_be_visible()


def test_stylise_in_the_browser_and_find_it_in_the_gallery_after_a_restart(page, tmp_path):
    data = tmp_path / "data"
    with RunningApp(data) as app:
        page.goto(app.url)
        expect(page.locator("#style-run")).to_be_visible()
        _upload(page, "style-photo", EXAMPLES / "astronaut.jpg")

        thumbnails = page.locator("#style-grid button.thumbnail-item")
        expect(thumbnails).to_have_count(26)
        # Each style carries its name, so people can tell the 26 apart.
        for index in (0, 19, 25):
            expect(thumbnails.nth(index)).to_contain_text(f"{index} · {BUILTIN_STYLE_NAMES[index]}")
        thumbnails.nth(19).click()
        expect(page.locator("#style-grid")).to_contain_text(f"Style 19 · {BUILTIN_STYLE_NAMES[19]}")

        page.locator("#style-run").click()
        result = page.locator("#style-result img")
        expect(result).to_be_visible()
        expect(result).to_have_attribute("src", re.compile(r"style-.*\.png"))
        expect(page.locator("#style-info")).to_contain_text("gallery #1")
        SCREENSHOTS.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / "style-tab.png"), full_page=True)

        page.get_by_role("tab", name="Gallery", exact=True).click()
        first = page.locator("#gallery-grid button.thumbnail-item").first
        expect(first).to_be_visible()
        first.click()
        expect(page.locator("#gallery-details")).to_contain_text("#1 · style")
        expect(page.locator("#gallery-opened img")).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "gallery-tab.png"))

    with RunningApp(data) as restarted:
        page.goto(restarted.url)
        page.get_by_role("tab", name="Gallery", exact=True).click()
        items = page.locator("#gallery-grid button.thumbnail-item")
        expect(items).to_have_count(1)
        items.first.click()
        expect(page.locator("#gallery-details")).to_contain_text("#1 · style")


def test_a_bad_upload_shows_a_clear_message(page, tmp_path):
    cases = write_cases(tmp_path / "cases")
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        expect(page.locator("#style-run")).to_be_visible()
        page.locator("#style-photo input[type=file]").set_input_files(str(cases["text.png"]))
        page.wait_for_timeout(500)
        page.locator("#style-run").click()
        expect(page.get_by_test_id("toast-text")).to_contain_text("is not an image the studio can read")
        expect(page.locator("#style-result")).to_contain_text("is not an image the studio can read")  # and stays
        # Nothing was made, nothing listed.
        page.get_by_role("tab", name="Gallery", exact=True).click()
        expect(page.locator("#gallery-grid button.thumbnail-item")).to_have_count(0)
