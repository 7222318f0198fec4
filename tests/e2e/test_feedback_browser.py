"""What every tab tells a person: an error's words stay where the result would have been after the toast
fades, and Stop buttons are live only while work runs."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from playwright.sync_api import expect

from tests.running_app import RunningApp

NO_MODEL = "is not on this machine"


def close_toasts(page) -> None:
    """What the toast's 10-second timer does, without the wait."""
    for button in page.locator("[data-testid='toast-close']").all():
        button.click()
    expect(page.locator("[data-testid='toast-body']")).to_have_count(0)


def write_tone(path, seconds: float = 2.0, rate: int = 22050) -> None:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.4 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The studio as a new user meets it: offline, no hub model downloaded."""
    folder = tmp_path_factory.mktemp("feedback")
    env = {"HF_HOME": str(folder / "hf"), "HF_HUB_CACHE": str(folder / "hf" / "hub")}
    with RunningApp(folder / "data", "--offline", env=env) as running:
        yield running


def test_an_error_stays_readable_where_the_result_would_have_been(page, app, tmp_path):
    page.goto(app.url)
    page.get_by_role("tab", name="Image", exact=True).click()
    page.locator("#image-prompt textarea").fill("a lighthouse")
    page.locator("#image-run-txt2img").click()
    results = page.locator("#image-results")
    expect(results.locator(".studio-error-text")).to_contain_text(NO_MODEL)
    close_toasts(page)
    expect(results).to_contain_text(NO_MODEL)
    expect(results).to_contain_text("python -m studio download stabilityai/sd-turbo")

    # The next run replaces the message with its result.
    page.locator("#image-setup-patterns").click()
    page.locator("#image-run-patterns").click()
    expect(results.locator("img").first).to_be_visible()
    expect(page.locator(".studio-error-text")).to_have_count(0)

    # An older result is not left showing beside a new error.
    write_tone(tmp_path / "tone.wav")
    (tmp_path / "notes.wav").write_text("not a sound", encoding="utf-8")
    page.get_by_role("tab", name="Music", exact=True).click()
    page.get_by_role("tab", name="Analyse").click()
    page.locator("#analyse-file input[type=file]").set_input_files(str(tmp_path / "tone.wav"))
    page.locator("#analyse-run").click()
    summary = page.locator("#analyse-summary")
    expect(summary).to_contain_text("Length 2.0 s")
    page.locator("#analyse-file button[aria-label='Clear']").first.click()
    page.locator("#analyse-file input[type=file]").set_input_files(str(tmp_path / "notes.wav"))
    page.locator("#analyse-run").click()
    words = summary.locator(".studio-error-text")
    expect(words).to_contain_text("not audio")
    close_toasts(page)
    expect(words).to_be_visible()
    # The message's panel is opaque and covers the old summary entirely.
    cover = summary.locator("[data-testid='status-tracker']").first
    assert cover.evaluate("e => getComputedStyle(e).backgroundColor") not in ("rgba(0, 0, 0, 0)", "transparent")
    panel, over = summary.bounding_box(), cover.bounding_box()
    assert over["height"] >= panel["height"] - 2 and over["width"] >= panel["width"] - 2


def test_stop_is_live_only_while_work_runs(page, app):
    page.goto(app.url)
    page.get_by_role("tab", name="Image", exact=True).click()
    expect(page.locator("#image-stop")).to_be_disabled()

    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("tab", name="Abstract patterns").click()
    stop = page.locator("#pattern-stop")
    expect(stop).to_be_disabled()
    page.locator("#pattern-walk").click()
    expect(stop).to_be_enabled()
    stop.click()
    expect(page.locator("#pattern-info")).to_contain_text("stopped early")
    expect(stop).to_be_disabled()
    # Every Stop in sight is idle now.
    for button in page.locator("button.studio-stop:visible").all():
        expect(button).to_be_disabled()


def test_a_typed_value_put_back_in_range_is_explained(page, app):
    page.goto(app.url)
    page.get_by_role("tab", name="Image", exact=True).click()
    box = page.locator("#image-width input[type=number]")
    box.fill("99999")
    box.press("Tab")
    expect(box).to_have_value("2048")
    note = page.locator("#image-width .studio-range-note")
    expect(note).to_have_text("Width: 99999 is more than the largest value allowed here, so 2048 is used.")
    box.fill("8")
    box.press("Tab")
    expect(note).to_have_text("Width: 8 is less than the smallest value allowed here, so 64 is used.")
    box.fill("512")
    box.press("Tab")
    expect(note).to_have_count(0)


def test_download_before_anything_was_made_says_there_is_nothing_yet(page, app):
    page.goto(app.url)
    page.get_by_role("tab", name="Interpolate").click()
    page.get_by_role("tab", name="Abstract patterns").click()
    page.locator("#pattern-gif").click()
    expect(page.get_by_test_id("toast-text")).to_have_text(
        "Nothing to download yet: make a walk first, and its GIF is offered here.")
    close_toasts(page)
    page.get_by_role("tab", name="Gallery", exact=True).click()
    page.locator("#gallery-download").click()
    expect(page.get_by_test_id("toast-text")).to_have_text("Nothing to download yet: open an item first.")
