"""A person in the Style tab's video section: upload a short clip, restyle it, play the result, find it in
the Gallery."""

from __future__ import annotations

from playwright.sync_api import expect

from tests import video_clips as clips
from tests.running_app import RunningApp

FRAMES, FPS = 12, 8  # a 1.5 s clip: long enough that a wrong length shows, short enough for a busy CPU


def _duration_when_loaded(video) -> float:
    """The `<video>` element's own idea of the clip's length, read once its metadata has arrived."""
    return video.evaluate(
        """v => new Promise((done, fail) => {
            const report = () => done(v.duration);
            if (v.readyState >= 1) { report(); return; }
            v.addEventListener('loadedmetadata', report, {once: true});
            v.addEventListener('error', () => fail(new Error('the browser cannot play it: ' +
                (v.error && v.error.message))), {once: true});
            v.load();
        })"""
    )


def test_restyle_a_clip_in_the_browser_and_play_it(page, tmp_path):
    source = clips.write_clip(tmp_path / "walk.mp4", clips.pan(frames=FRAMES).frames, fps=FPS, audio=("aac", 44_100))
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        section = page.locator("#style-video")
        section.get_by_text("Restyle a video").first.click()  # the accordion opens
        expect(page.locator("#video-run")).to_be_visible()
        page.locator("#video-input input[type=file]").set_input_files(str(source))
        uploaded = page.locator("#video-input video")
        expect(uploaded).to_be_attached()
        assert abs(_duration_when_loaded(uploaded) - FRAMES / FPS) < 0.1  # the upload itself plays
        size = section.get_by_label("Longest side of the result (px)").first
        size.fill("96")  # small: quick on a busy machine
        size.press("Enter")

        page.locator("#video-run").click()
        info = page.locator("#video-info")
        expect(info).to_contain_text("gallery #1")
        expect(info).to_contain_text(f"{FRAMES} frames at {FPS} fps")
        expect(info).to_contain_text("sound kept")
        result = page.locator("#video-result video")
        expect(result).to_be_attached()
        assert ".mp4" in (result.get_attribute("src") or "")
        # Chromium decodes the H.264 and finds the same length as the clip's.
        assert abs(_duration_when_loaded(result) - FRAMES / FPS) < 0.1
        width = result.evaluate("v => v.videoWidth")
        height = result.evaluate("v => v.videoHeight")
        assert (width, height) == (96, 72)
        # It plays: the clock moves.
        result.evaluate("v => { v.muted = true; return v.play(); }")
        page.wait_for_function("v => v.currentTime > 0.2", arg=result.element_handle())

        page.get_by_role("tab", name="Gallery", exact=True).click()
        items = page.locator("#gallery-grid button.thumbnail-item")
        expect(items).to_have_count(1)
        expect(items.first).to_contain_text("#1 · style-video")
