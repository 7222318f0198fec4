"""A person in a browser: chat with a preset, send the result to the Image tab, write and undo, right after start."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.running_app import RunningApp

STARTER = "The lighthouse keeper had not spoken to anyone in three years, until the morning"


def test_chat_write_and_send_on_the_built_in_model(page, tmp_path):
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Text", exact=True).click()
        expect(page.locator("#chat-send")).to_be_visible()

        # A preset fills the system prompt; the answer streams into the chat.
        page.locator("#text-preset input").click()
        page.get_by_role("option", name="Image-prompt expander").click()
        expect(page.locator("#text-system textarea")).to_have_value(
            "You turn a short idea into one detailed prompt for an image generator. Describe the subject, "
            "setting, composition, lighting, colour palette, art style and medium as one line of "
            "comma-separated phrases. Reply with the prompt only, no introduction."
        )
        page.locator("#chat-message textarea").fill("a fox reading in a library")
        page.locator("#chat-send").click()
        expect(page.locator("#chat-stats")).to_contain_text("tokens/s", timeout=120_000)
        expect(page.locator("#chat-stats")).to_contain_text("gallery #1")
        expect(page.locator("#chat-box .user-row")).to_have_count(1)
        expect(page.locator("#chat-box .user-row")).to_contain_text("a fox reading in a library")
        expect(page.locator("#chat-box .bot-row")).to_have_count(1)
        reply = page.locator("#chat-box .bot-row").inner_text().strip()
        assert len(reply) > 10
        SCREENSHOTS.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / "text-tab.png"), full_page=True)

        page.locator("#text-to-image").click()
        inbox = page.locator("#image-prompt textarea")  # the Image tab's own prompt
        expect(inbox).to_be_visible()
        # The chat bubble renders line breaks as spaces; compare the words, not the whitespace.
        assert " ".join(inbox.input_value().split())[:20] in " ".join(reply.split())

        # Write: the model continues the text in place; undo puts it back.
        page.get_by_role("tab", name="Text", exact=True).click()
        page.get_by_role("tab", name="Write", exact=True).click()
        document = page.locator("#write-text textarea")
        expect(document).to_have_value(STARTER)
        page.locator("#write-run").click()
        expect(page.locator("#write-stats")).to_contain_text("gallery #2", timeout=120_000)
        written = document.input_value()
        assert written.startswith(STARTER) and len(written) > len(STARTER) + 20
        page.locator("#write-undo").click()
        expect(document).to_have_value(STARTER)
