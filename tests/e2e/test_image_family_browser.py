"""A person picks a FLUX.1-dev model in the Image tab and the form fits it: its own steps and guidance, the
guidance named distilled, no negative prompt, the shift and T5 length shown; back on an SD model, the
flow controls hide and the negative prompt comes back."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.image_models import write_models_file
from tests.running_app import RunningApp
from tests.tiny_families import build_tiny_flux


def pick(page, name: str) -> None:
    """Choose a model as a person does: type into the dropdown (it lists what matches) and click it."""
    field = page.locator("#image-model input")
    field.click()
    field.fill(name)
    page.get_by_role("option", name=re.compile(f"^{re.escape(name)} ")).click()


def test_switching_family_shows_the_controls_it_takes(page, tmp_path, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)
    dev = build_tiny_flux(tmp_path / "dev", guidance_embeds=True)
    with open(models, "a", encoding="utf-8") as handle:
        handle.write(f'\n[[model]]\nid = "tiny-flux-dev"\nname = "Tiny FLUX dev"\nfamily = "diffusers"\n'
                     f'tasks = ["txt2img"]\npath = "{dev}"\n')
    with RunningApp(tmp_path / "data", "--models-file", str(models), "--offline") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        negative = page.locator("#image-negative textarea")
        expect(negative).to_be_enabled()
        expect(page.locator("#image-flow")).to_be_hidden()

        pick(page, "Tiny FLUX dev")
        expect(page.locator("#image-flow")).to_be_visible()
        expect(page.locator("#image-shift")).to_be_visible()
        expect(negative).to_be_disabled()
        expect(page.locator("#image-negative")).to_contain_text("no negative prompt")
        expect(page.locator("#image-guidance")).to_contain_text("Distilled guidance")
        expect(page.locator("#image-steps input[type=number]")).to_have_value("28")
        expect(page.locator("#image-guidance input[type=number]")).to_have_value("3.5")

        pick(page, "Tiny SD")
        expect(page.locator("#image-flow")).to_be_hidden()
        expect(negative).to_be_enabled()
        expect(page.locator("#image-guidance")).to_contain_text("Guidance (CFG scale)")
