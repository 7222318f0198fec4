"""The live style mirror in Chromium with its fake camera (a moving test pattern): the stream starts,
restyled frames arrive and change, the rate is shown, Stop stops it and a snapshot lands in the gallery."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, checked_page
from tests.running_app import RunningApp

# Chromium's own fake camera, granted without asking. Browsers give pages the camera only over HTTPS or
# from localhost, so the page is opened as localhost.
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]

# The mirror's picture as numbers, read in the page: its size, how much its pixels vary (a blank or flat
# picture hardly does) and a small grey thumbnail to compare two pictures by.
READ_PICTURE = """img => {
    const canvas = document.createElement('canvas');
    canvas.width = 32; canvas.height = 24;
    const context = canvas.getContext('2d');
    context.drawImage(img, 0, 0, 32, 24);
    const rgba = context.getImageData(0, 0, 32, 24).data;
    const grey = [];
    for (let i = 0; i < rgba.length; i += 4) grey.push((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3);
    const mean = grey.reduce((a, b) => a + b, 0) / grey.length;
    const spread = Math.sqrt(grey.reduce((a, b) => a + (b - mean) ** 2, 0) / grey.length);
    return {width: img.naturalWidth, height: img.naturalHeight, spread, grey};
}"""


@pytest.fixture
def camera_page(playwright_driver):
    # A browser of its own, with the fake camera, from the run's one Playwright driver.
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + FAKE_CAMERA)
    try:
        yield from checked_page(browser)
    finally:
        browser.close()


def _mirror_picture(page, previous_src: str | None, deadline: float) -> tuple[str, dict]:
    """The next picture the mirror shows after `previous_src`, loaded, as numbers."""
    image = page.locator("#live-mirror img").first
    while time.monotonic() < deadline:
        src = image.get_attribute("src") if image.count() else None
        if src and src != previous_src and image.evaluate("img => img.complete && img.naturalWidth > 0"):
            return src, image.evaluate(READ_PICTURE)
        page.wait_for_timeout(250)
    raise AssertionError(f"the mirror showed no new picture after {previous_src!r}")


def test_the_mirror_restyles_the_fake_camera_live_and_stops(camera_page, tmp_path):
    page = camera_page
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url.replace("127.0.0.1", "localhost"))
        expect(page.locator("#style-run")).to_be_visible()  # the page is built
        page.locator("#style-live").get_by_text("Live style mirror").first.click()
        camera = page.locator("#live-camera")
        access = camera.get_by_text("Click to Access Webcam")
        expect(access).to_be_visible()
        access.click()
        video = camera.locator("video")
        page.wait_for_function("v => v.readyState >= 2 && v.videoWidth > 0", arg=video.element_handle())
        # The studio asks for 640x480, not Gradio's 1920x1440: every frame crosses the network.
        assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [640, 480]

        record = camera.locator("button.capture-button")
        expect(record).to_contain_text("Record")
        record.click()
        expect(record).to_contain_text("Stop")

        # Restyled frames arrive one after another, each a real picture and not the same one again.
        deadline = time.monotonic() + 240  # a busy 2-core machine restyles slowly, but it keeps going
        pictures, src, arrived = [], None, []
        for _ in range(3):
            src, picture = _mirror_picture(page, src, deadline)
            pictures.append(picture)
            arrived.append(time.monotonic())
        # Frames keep coming while the stream is open: held back until it ends, the next would come 30 s on.
        assert arrived[-1] - arrived[0] < 45, arrived
        for picture in pictures:
            assert (picture["width"], picture["height"]) == (320, 240)  # the mirror's size, aspect kept
            assert picture["spread"] > 15, picture["spread"]  # not blank, not one flat colour
        first, last = pictures[0]["grey"], pictures[-1]["grey"]
        assert sum(abs(a - b) for a, b in zip(first, last, strict=True)) / len(first) > 1  # the pattern moved
        expect(page.locator("#live-fps")).to_contain_text(re.compile(r"[1-9]\d*\.\d frames a second|0\.[1-9] frames"))

        page.locator("#live-snapshot").click()
        expect(page.get_by_test_id("toast-text")).to_contain_text("Kept in the gallery as #1")

        record.click()
        expect(record).to_contain_text("Record")
        page.wait_for_timeout(1500)  # a frame already in work may still land
        image = page.locator("#live-mirror img").first
        stopped = image.get_attribute("src")
        page.wait_for_timeout(4000)
        assert image.get_attribute("src") == stopped  # nothing new once stopped

        page.get_by_role("tab", name="Gallery", exact=True).click()
        items = page.locator("#gallery-grid button.thumbnail-item")
        expect(items).to_have_count(1)
        expect(items.first).to_contain_text("#1 · style-live")
