"""A person in a browser picks a LoRA, moves its weight slider and makes a picture with it."""

from __future__ import annotations

from playwright.sync_api import expect

from studio.history import Gallery
from tests.image_models import write_models_file
from tests.running_app import RunningApp
from tests.test_lora_picker import make_lora_folder


def test_pick_a_lora_set_its_weight_and_generate(page, tmp_path, tiny_sd_path, tiny_taesd_path):
    models = write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)
    loras = make_lora_folder(tmp_path / "data" / "loras", tiny_sd_path)
    with RunningApp(tmp_path / "data", "--models-file", str(models), "--offline") as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        prompt = page.locator("#image-prompt textarea")
        prompt.fill("a lighthouse on a cliff")
        page.locator("#image-loras").get_by_text("LoRAs", exact=True).click()
        expect(page.locator("#image-lora-note")).to_contain_text("2 LoRA(s)")
        expect(page.locator("#image-lora-previews img")).to_have_count(1)

        choice = page.locator("#image-lora-choice input")
        choice.click()
        choice.fill("ink")
        page.get_by_role("option", name="ink_wash").click()
        expect(prompt).to_have_value("a lighthouse on a cliff <lora:ink_wash:1>")
        expect(page.locator("#image-lora-triggers")).to_contain_text("ink wash, monochrome, mountains")

        page.locator("#image-lora-weight input[type=range]").fill("0.65")
        expect(prompt).to_have_value("a lighthouse on a cliff <lora:ink_wash:0.65>")

        page.locator("#image-run-txt2img").click()
        expect(page.locator("#image-results img").first).to_be_visible(timeout=180_000)
        expect(page.locator("#image-info")).to_contain_text("gallery #1")
        record = Gallery(tmp_path / "data").list()[0].params
        assert record["prompt"] == "a lighthouse on a cliff <lora:ink_wash:0.65>"
        assert [(lora["name"], lora["weight"]) for lora in record["loras"]] == [("ink_wash", 0.65)]
        assert not (loras / "UNPICKLED").exists()
