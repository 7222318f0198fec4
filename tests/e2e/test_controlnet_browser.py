"""A person in a browser draws a scribble in the ControlNet accordion, previews its map, and generates
a picture the scribble steers."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.image_models import (
    TINY_CONTROLNET,
    build_tiny_controlnet,
    controlnet_models_entries,
    write_models_file,
)
from tests.running_app import RunningApp


def test_draw_a_scribble_and_generate_with_a_controlnet(page, tmp_path, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)
    controlnet = build_tiny_controlnet(tiny_sd_path, tmp_path / "scribble")
    with open(models, "a", encoding="utf-8") as handle:
        handle.write(controlnet_models_entries({TINY_CONTROLNET: controlnet}))
    with RunningApp(tmp_path / "data", "--models-file", str(models), "--offline") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        page.locator("#image-prompt textarea").fill("a house on a hill")
        page.locator("#image-controlnet").get_by_text("ControlNet", exact=True).first.click()
        # The page load shows canny's own thresholds (the API's 0 means the same defaults).
        expect(page.locator("#image-controlnet-threshold-a input[type=number]")).to_have_value("100")
        page.get_by_role("tab", name="ControlNet Unit 1").click()
        expect(page.locator("#image-controlnet-1-model")).to_be_visible()
        page.get_by_role("tab", name="ControlNet Unit 0").click()
        model = page.locator("#image-controlnet-model input")
        model.click()
        page.get_by_role("option", name=TINY_CONTROLNET).click()
        kind = page.locator("#image-controlnet-type input")
        kind.click()
        page.get_by_role("option", name="scribble", exact=True).click()
        # Its one setting, labelled by what it means for scribbles; canny's second threshold is hidden.
        expect(page.locator("#image-controlnet-threshold-a")).to_contain_text("XDoG threshold")
        expect(page.locator("#image-controlnet-threshold-a input[type=number]")).to_have_value("32")
        expect(page.locator("#image-controlnet-threshold-b")).to_be_hidden()

        sketch = page.locator("#image-controlnet-sketch")
        sketch.get_by_role("button", name=re.compile("brush|draw", re.I)).first.click()  # the pad starts with no tool
        canvas = sketch.locator("canvas").first
        expect(canvas).to_be_visible()
        box = canvas.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] * (0.2 + 0.06 * step), box["y"] + box["height"] * 0.5, steps=2)
        page.mouse.up()

        page.locator("#image-controlnet-preview-run").click()
        expect(page.locator("#image-controlnet-preview img").first).to_be_visible(timeout=60_000)

        page.locator("#image-run-txt2img").click()
        expect(page.locator("#image-results img").first).to_be_visible(timeout=180_000)
        expect(page.locator("#image-info")).to_contain_text("gallery #1")
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "image-controlnet.png"), full_page=True)
