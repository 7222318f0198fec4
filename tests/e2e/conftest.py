"""Headless Chromium (Debian's, driven by Playwright) against the real studio on a free port."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Tests take their screenshots somewhere temporary; `make screenshots` points this at docs/
# so the pictures there change only when someone means to refresh them.
SCREENSHOTS = Path(os.environ.get("STUDIO_SCREENSHOTS") or tempfile.mkdtemp(prefix="studio-screens-"))


@pytest.fixture(scope="package")
def playwright_driver():
    """One Playwright driver for the browser tests: a second sync driver in the same thread is refused, so
    tests that need a browser of their own (with other flags) launch it from this one. It ends with the
    browser tests: while it runs, the main thread counts as inside an asyncio loop, and libraries with
    sync calls that check for one (Ray Serve's handles) refuse to work in the tests after them."""
    from playwright.sync_api import expect

    # Model work on a busy 2-core machine can take a while; a stuck page still fails in a minute.
    expect.set_options(timeout=60_000)
    if not Path(CHROMIUM).exists():
        pytest.fail("the browser tests need Chromium at /usr/bin/chromium: apt-get install chromium "
                    "(.ci/run installs it)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright_driver):
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def checked_page(browser):
    """A page in a fresh context of `browser` that fails the test if it raised JavaScript errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(60_000)
    yield page
    context.close()
    # Each test stops its studio before this page closes: a request the page sent meanwhile (an update that
    # followed the last result) then fails to connect. A studio gone mid-test fails the test's own checks.
    errors = [error for error in errors if not error.startswith("Connection errored out")]
    assert not errors, f"the page raised JavaScript errors: {errors}"


@pytest.fixture
def page(browser):
    yield from checked_page(browser)
