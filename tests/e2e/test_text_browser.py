"""A person in a browser: chat with a preset, send the result to the Image tab, write and undo, right after start."""

from __future__ import annotations

import re

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
        # A fixed seed: a sampled continuation may end its sentence after a few words, and one
        # drawn at random would make the length below a matter of chance.
        page.get_by_role("button", name="Sampling").click()
        seed = page.locator("#text-seed input[type=number]")
        seed.fill("7")
        seed.press("Enter")
        page.locator("#write-run").click()
        expect(page.locator("#write-stats")).to_contain_text("gallery #2", timeout=120_000)
        expect(page.locator("#write-stats")).to_contain_text("seed 7")
        written = document.input_value()
        added = written[len(STARTER):].split()
        assert written.startswith(STARTER) and len(added) >= 3, written
        page.locator("#write-undo").click()
        expect(document).to_have_value(STARTER)


# A finished exchange in SmolLM2's chat format: at temperature 0 the model adds nothing after it.
FINISHED = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nThe answer is: 4"
LONG_MESSAGE = "Tell me everything you know about the sea, the tides and the moon. " * 140  # ~2,000 tokens


def test_write_locks_its_box_says_when_nothing_is_added_and_stop_works_while_reading(page, tmp_path):
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Text", exact=True).click()
        system = page.locator("#text-system")
        expect(system).to_be_visible()

        # Write has no system prompt, so the chat's is not shown there.
        page.get_by_role("tab", name="Write", exact=True).click()
        expect(system).to_be_hidden()
        document = page.locator("#write-text textarea")

        # Greedy from the start: what the model holds from this run decides the next one's last word.
        page.get_by_role("button", name="Sampling").click()
        temperature = page.locator("#text-temperature input[type=number]")
        temperature.fill("0")
        temperature.press("Enter")

        # While the model writes into the box, it takes no typing; afterwards it does again.
        page.locator("#write-run").click()
        expect(document).to_be_disabled(timeout=5_000)
        expect(page.locator("#write-stats")).to_contain_text("gallery #1", timeout=120_000)
        expect(document).to_be_enabled()
        assert document.input_value().startswith(STARTER)

        # A text the model has nothing to add to: said plainly, no empty card in the gallery.
        document.fill(FINISHED)
        page.locator("#write-run").click()
        expect(page.get_by_text("The model has nothing more to add")).to_be_visible(timeout=120_000)
        expect(page.locator("#write-stats")).to_contain_text("not kept")
        expect(document).to_be_enabled()
        expect(document).to_have_value(FINISHED)

        # A long message: the stats say how far the model has read, and Stop works while it reads.
        page.get_by_role("tab", name="Chat", exact=True).click()
        expect(system).to_be_visible()
        page.locator("#chat-message textarea").fill(LONG_MESSAGE)
        page.locator("#chat-send").click()
        expect(page.locator("#chat-stats")).to_contain_text(re.compile(r"Reading your message: \d+ of [\d,]+ tokens"),
                                                            timeout=60_000)
        page.locator("#chat-stop").click()
        expect(page.locator("#chat-stats")).to_contain_text("stopped by you", timeout=15_000)
        expect(page.locator("#chat-stats")).to_contain_text("not kept")
