"""A person in the Interpolate tab: a pattern picture, a style walk that plays as a video, a melody walk."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.image_cases import EXAMPLES
from tests.running_app import RunningApp


def test_patterns_and_a_style_walk_in_the_browser(page, tmp_path):
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Interpolate", exact=True).click()
        expect(page.locator("#pwalk-keys")).to_be_visible()  # prompt walks come first
        page.get_by_role("tab", name="Abstract patterns", exact=True).click()
        page.locator("#pattern-render").click()
        expect(page.locator("#pattern-still img")).to_be_visible()
        expect(page.locator("#pattern-info")).to_contain_text("gallery #1")

        page.get_by_role("tab", name="Style walk", exact=True).click()
        page.locator("#walk-photo input[type=file]").set_input_files(str(EXAMPLES / "coffee.jpg"))
        expect(page.locator("#walk-photo img").first).to_be_visible()
        page.locator("#walk-grid button.thumbnail-item").nth(12).click()
        expect(page.locator("#walk-styles textarea")).to_have_value("3, 19, 12")
        page.locator("#walk-run").click()
        expect(page.locator("#walk-video video")).to_be_visible()
        expect(page.locator("#walk-info")).to_contain_text("23 frames")  # 3 keyframes, 10 frames between each pair
        expect(page.locator("#walk-strip img")).to_be_visible()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / "interpolate-tab.png"), full_page=True)

        page.get_by_role("tab", name="Gallery", exact=True).click()
        items = page.locator("#gallery-grid button.thumbnail-item")
        expect(items).to_have_count(2)
        items.first.click()
        expect(page.locator("#gallery-opened-video video")).to_be_visible()

        # A melody walk between two composed melodies (the defaults): piano roll, player and files.
        page.get_by_role("tab", name="Interpolate", exact=True).click()
        page.get_by_role("tab", name="Melody walk", exact=True).click()
        page.locator("#mwalk-steps input[type=number]").fill("4")
        page.locator("#mwalk-steps input[type=number]").press("Enter")
        page.locator("#mwalk-run").click()
        expect(page.locator("#mwalk-info")).to_contain_text("4 steps of 4 bars")
        expect(page.locator("#mwalk-roll img")).to_be_visible()
        expect(page.locator("#mwalk-audio audio, #mwalk-audio [data-testid='waveform-Listen']").first).to_be_attached()
        expect(page.locator("#mwalk-files")).to_contain_text(".mid")
