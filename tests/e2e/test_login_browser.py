"""A person with the login of a studio started with --auth: the login page works, then the studio does."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.image_cases import EXAMPLES
from tests.running_app import RunningApp


def test_log_in_through_the_page_and_stylise(page, tmp_path):
    with RunningApp(tmp_path / "data", "--auth", "ann:s3cret") as app:
        page.goto(app.url)
        page.get_by_label("username").fill("ann")
        page.get_by_label("password").fill("wrong")
        page.get_by_role("button", name="Login").click()
        expect(page.get_by_text("Incorrect Credentials")).to_be_visible()
        expect(page.locator("#style-run")).to_have_count(0)

        page.get_by_label("username").fill("ann")  # the form starts afresh after a refusal
        page.get_by_label("password").fill("s3cret")
        page.get_by_role("button", name="Login").click()
        expect(page.locator("#style-run")).to_be_visible()
        page.locator("#style-photo input[type=file]").set_input_files(str(EXAMPLES / "coffee.jpg"))
        expect(page.locator("#style-photo img").first).to_be_visible()
        page.locator("#style-run").click()
        expect(page.locator("#style-info")).to_contain_text("gallery #1", timeout=120_000)
