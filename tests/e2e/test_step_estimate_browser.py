"""On a CPU the Image tab says how long a step will take: picking FLUX.1 [schnell] (not downloaded: the estimate
needs only its catalogue entry) shows the estimate at its own 1024 px, a new width changes it, and the tests'
tiny model, which has no timed figure, hides it."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.image_models import write_models_file
from tests.running_app import RunningApp


def pick(page, typed: str, option: str) -> None:
    """Choose a model as a person does: type into the dropdown, then click the option whose label matches."""
    field = page.locator("#image-model input")
    field.click()
    field.fill(typed)
    page.get_by_role("option", name=re.compile(option)).click()


def test_the_step_estimate_follows_the_model_and_the_size(page, tmp_path, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)
    with RunningApp(tmp_path / "data", "--models-file", str(models), "--offline", "--device", "cpu") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        note = page.locator("#image-step-estimate")

        pick(page, "FLUX.1 [schnell]", r"^FLUX\.1 \[schnell\] \(download")
        expect(note).to_contain_text(re.compile(r"Estimate: on this CPU a step takes about [\d.]+ (s|min) at "
                                                r"1024×1024, so 4 steps ≈ [\d.]+ (s|min|h)\."))
        expect(note).to_contain_text("benchmarks/flow_step.py")
        box = page.locator("#image-width input[type=number]")
        box.fill("512")
        box.press("Tab")
        expect(note).to_contain_text("at 512×1024, so 4 steps")

        pick(page, "Tiny SD", r"^Tiny SD \(")
        expect(note).to_be_hidden()
