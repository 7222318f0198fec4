"""Getting a model from the page: the Image tab's first-visit Download and the Models tab, against a
stand-in hub on loopback, with the download's progress shown in the page."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.loopback_hub import LoopbackHub
from tests.running_app import RunningApp


@pytest.fixture
def hub(tmp_path, tiny_sd_path, tiny_taesd_path):
    """SD-Turbo (as its fp16 variant files) and TAESD, served from the tiny models, a little slowly."""
    turbo = tmp_path / "served-sd-turbo"
    shutil.copytree(tiny_sd_path, turbo)
    for weights in turbo.rglob("*.safetensors"):
        weights.rename(weights.with_name(f"{weights.stem}.fp16.safetensors"))
    # Weights diffusers does not read, big enough for the bar to move a few times (it moves per MB read).
    (turbo / "unet" / "extra.fp16.safetensors").write_bytes(bytes(6 * 2**20))
    served = LoopbackHub({"stabilityai/sd-turbo": turbo, "madebyollin/taesd": tiny_taesd_path}, chunk_delay=0.05)
    yield served.start()
    served.stop()


def online_env(hub: LoopbackHub, tmp_path) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
            "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}


def test_the_first_visit_downloads_the_model_in_the_page_and_then_generates(page, tmp_path, hub):
    with RunningApp(tmp_path / "data", env=online_env(hub, tmp_path)) as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Image", exact=True).click()
        expect(page.locator("#image-setup")).to_contain_text("the Download button below")
        page.locator("#image-setup-download").click()
        # The bar's words: which model, bytes of bytes, speed and time left.
        expect(page.get_by_text(re.compile(r"SD-Turbo: [\d.]+ (KB|MB) of [\d.]+ (KB|MB)"))).to_be_visible()
        expect(page.locator("#image-setup")).to_be_hidden(timeout=120_000)
        page.locator("#image-prompt textarea").fill("a lighthouse")
        page.locator("#image-run-txt2img").click()
        expect(page.locator("#image-results img").first).to_be_visible()


def test_the_models_tab_lists_downloads_and_deletes(page, tmp_path, hub):
    with RunningApp(tmp_path / "data", env=online_env(hub, tmp_path)) as app:
        page.goto(app.url)
        page.get_by_role("tab", name="Models", exact=True).click()
        table = page.locator("#models-table")
        expect(table).to_contain_text("built in")
        expect(table).to_contain_text("not here")
        expect(table).not_to_contain_text("downloaded")

        page.locator("#models-choice input").fill("TAESD")
        page.get_by_role("option", name=re.compile(r"^TAESD \(")).click()  # not TAESDXL
        page.locator("#models-download").click()
        expect(page.locator("#models-status")).to_contain_text("is ready", timeout=120_000)
        expect(table).to_contain_text("downloaded")  # TAESD, the only one

        page.locator("#models-delete").click()
        expect(page.get_by_text(re.compile(r"Delete \S*TAESD.*frees [\d.]+ KB"))).to_be_visible()
        page.locator("#models-delete-confirm").click()
        expect(page.locator("#models-status")).to_contain_text("freed")
        expect(table).not_to_contain_text("downloaded")
        assert not (tmp_path / "hf" / "hub" / "models--madebyollin--taesd").exists()
