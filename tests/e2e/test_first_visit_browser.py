"""A first visit with no hub model downloaded: the Image tab says what is missing and leads to what works."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from studio.backends.diffusion import DEFAULT_MODEL
from studio.catalog import load_catalog
from tests.image_models import TINY_SD
from tests.running_app import RunningApp


def empty_hub(tmp_path) -> dict[str, str]:
    """Point the hub cache at an empty folder, so no downloaded model can be found."""
    return {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}


def test_the_image_tab_names_the_missing_model_and_leads_to_what_works(page, tmp_path):
    entry = load_catalog().get(DEFAULT_MODEL)
    with RunningApp(tmp_path / "data", "--offline", env=empty_hub(tmp_path)) as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        notice = page.locator("#image-setup")
        expect(notice).to_be_visible()
        for words in (entry.name, entry.size_text(), entry.licence, f"python -m studio download {entry.id}",
                      "models file"):
            expect(notice).to_contain_text(words)

        # Abstract patterns sit in an overflow menu of the modes; the notice opens them directly.
        page.locator("#image-setup-patterns").click()
        expect(page.locator("#image-run-patterns")).to_be_visible()
        page.locator("#image-run-patterns").click()
        expect(page.locator("#image-results img").first).to_be_visible()
        expect(page.locator("#image-info")).to_contain_text(re.compile(r"Pattern 5, \d+x\d+ px"))

        page.locator("#image-setup-style").click()
        expect(page.locator("#style-run")).to_be_visible()


def test_the_notice_goes_once_a_model_is_on_disk(page, tmp_path, tiny_sd_path):
    # A models file pointing at a folder that is not there yet, as if the copy were still being made.
    later = tmp_path / "models" / "tiny-sd"
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "{TINY_SD}"\nname = "Tiny SD"\nfamily = "diffusers"\n'
                      f'tasks = ["txt2img", "img2img", "inpaint"]\npath = "{later}"\n', encoding="utf-8")
    with RunningApp(tmp_path / "data", "--offline", "--models-file", str(models), env=empty_hub(tmp_path)) as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        expect(page.locator("#image-setup")).to_be_visible()

        later.parent.mkdir(parents=True)
        later.symlink_to(tiny_sd_path, target_is_directory=True)
        page.reload()
        page.get_by_role("tab", name="Image", exact=True).click()
        expect(page.locator("#image-run-txt2img")).to_be_visible()
        expect(page.locator("#image-setup")).to_be_hidden()
        expect(page.locator("#image-model input")).to_have_value("Tiny SD (on this machine)")
