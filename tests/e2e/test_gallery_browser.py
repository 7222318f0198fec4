"""The Gallery in a browser: walks are told apart from pictures, and Delete asks before it deletes."""

from __future__ import annotations

from gradio_client import Client
from playwright.sync_api import expect

from studio.history import Gallery
from tests.running_app import RunningApp


def test_walks_are_labelled_and_delete_asks_first(page, tmp_path):
    with RunningApp(tmp_path / "data", "--offline") as app:
        client = Client(app.url, verbose=False)
        client.predict(5, "network colours", 1.0, 64, 64, api_name="/image_patterns")  # item #1, a picture
        client.predict(5, 9, "network colours", 64, 1.0, 2, api_name="/pattern_walk")  # item #2, a walk

        page.goto(app.url)
        page.get_by_role("tab", name="Gallery", exact=True).click()
        thumbnails = page.locator("#gallery-grid button.thumbnail-item")
        expect(thumbnails).to_have_count(2)
        expect(thumbnails.nth(0)).to_contain_text("#2 · patterns · animation")
        expect(thumbnails.nth(1)).to_contain_text("#1 · patterns")
        expect(thumbnails.nth(1)).not_to_contain_text("animation")

        thumbnails.nth(0).click()
        expect(page.locator("#gallery-details")).to_contain_text("#2 · patterns · animation")
        page.locator("#gallery-delete").click()
        question = page.locator("#gallery-confirm-text")
        expect(question).to_contain_text("Delete #2")
        expect(question).to_contain_text("cannot be undone")
        assert len(Gallery(app.data_dir).list()) == 2  # nothing deleted by asking

        page.locator("#gallery-delete-no").click()
        expect(question).to_be_hidden()
        expect(thumbnails).to_have_count(2)
        assert len(Gallery(app.data_dir).list()) == 2

        page.locator("#gallery-delete").click()
        page.locator("#gallery-delete-yes").click()
        expect(thumbnails).to_have_count(1)
        expect(thumbnails.nth(0)).to_contain_text("#1 · patterns")
        expect(question).to_be_hidden()
        assert [item.id for item in Gallery(app.data_dir).list()] == [1]
