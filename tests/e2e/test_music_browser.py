"""A musician in a browser: compose a melody, hear it, take the MIDI away, find it in the Gallery."""

from __future__ import annotations

import re

import pretty_midi
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.running_app import RunningApp


def test_compose_a_melody_in_the_browser(page, tmp_path):
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Music", exact=True).click()
        expect(page.locator("#melody-run")).to_be_visible()
        page.locator("#melody-run").click()
        roll = page.locator("#melody-roll img")
        expect(roll).to_be_visible(timeout=60_000)  # the first tune also loads the model
        expect(roll).to_have_attribute("src", re.compile(r"melody-.*\.png"))
        expect(page.locator("#melody-info")).to_contain_text("D dorian · 6/8")
        expect(page.locator("#melody-info")).to_contain_text("gallery #1")
        expect(page.locator("#melody-audio audio, #melody-audio [data-testid='waveform-Listen']").first).to_be_attached()
        expect(page.locator("#melody-abc-out textarea")).to_have_value(re.compile(r"K:Ddor"))
        SCREENSHOTS.mkdir(exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOTS / "music-tab.png"), full_page=True)

        # Take the MIDI away: the download link serves a real MIDI file.
        link = page.locator("#melody-files a[href*='.mid']").first
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "taken.mid"
        download.value.save_as(saved)
        assert len(pretty_midi.PrettyMIDI(str(saved)).instruments[0].notes) >= 16

        page.get_by_role("tab", name="Gallery").click()
        first = page.locator("#gallery-grid button.thumbnail-item").first
        expect(first).to_be_visible()
        first.click()
        expect(page.locator("#gallery-details")).to_contain_text("#1 · melody")
        expect(page.locator("#gallery-opened img")).to_be_visible()  # the piano roll


def test_kept_key_controls_are_disabled_and_show_the_detected_key(page, tmp_path):
    from studio.media.melody_tokens import Melody, bars_from_notes
    from studio.media.midi import write_midi
    from tests.test_keys import MODAL_TUNE, degrees

    # An A dorian tune in 3/4 at 96 bpm: nothing like the controls' defaults (D dorian, 6/8, 110).
    notes = degrees(57, "dorian", *MODAL_TUNE)
    tune = tmp_path / "a-dorian.mid"
    write_midi(Melody("3/4", 9, "dorian", bars_from_notes(notes, "3/4")), tune, tempo=96)
    with RunningApp(tmp_path / "data") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Music", exact=True).click()
        page.locator("#melody-start").get_by_text("A MIDI file").click()
        expect(page.locator("#melody-follow input[type=checkbox]")).to_be_checked()
        page.locator("#melody-midi input[type=file]").set_input_files(str(tune))
        detected = page.locator("#melody-detected")
        expect(detected).to_contain_text("A dorian (confidence")
        expect(detected).to_contain_text("3/4")
        expect(page.locator("#melody-key input")).to_have_value("A")
        expect(page.locator("#melody-key input")).to_be_disabled()
        expect(page.locator("#melody-mode input")).to_have_value("dorian")
        expect(page.locator("#melody-mode input")).to_be_disabled()
        expect(page.locator("#melody-meter input[value='3/4']")).to_be_checked()
        expect(page.locator("#melody-meter input[value='3/4']")).to_be_disabled()
        expect(page.locator("#melody-tempo input[type=number]")).to_have_value("96")
        # Off: the settings are the user's again.
        page.locator("#melody-follow input[type=checkbox]").uncheck()
        expect(page.locator("#melody-key input")).to_be_enabled()
        expect(page.locator("#melody-meter input[value='4/4']")).to_be_enabled()
        expect(detected).to_be_hidden()
