"""OpenVINO running SDXL's UNet, which takes a pooled text embedding and six size and crop ids beside the
text: torch's output to within rounding at any size from one IR, and the tiny SDXL pipeline's pictures
through the studio (text-to-image, image-to-image, inpainting, prompt walks, the int8 "fastest" speed)
as torch makes them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from studio.backends.diffusion import ImageRequest, openvino_unet, pipelines
from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest, prompt_walk
from studio.services.facade import Studio
from studio.settings import Settings
from tests.tiny_models import build_tiny_sdxl

pytest.importorskip("openvino")

TINY_SDXL = "tiny-sdxl"
BASE = ImageRequest("a red cat on the beach", model=TINY_SDXL, decoder="full", width=96, height=64, steps=2,
                    seed=5, guidance=0.0)


@pytest.fixture(autouse=True)
def a_cpu_without_native_bf16(monkeypatch):
    """OpenVINO takes the fp32 CPU path; these tests are about it, whatever CPU runs them. SDXL's exact path
    stays on torch by measurement (EXACT_SDXL_ON_OPENVINO); here it is switched on, to show the conversion
    itself makes torch's pictures."""
    monkeypatch.setattr(pipelines, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(openvino_unet, "EXACT_SDXL_ON_OPENVINO", True)


@pytest.fixture(scope="module")
def sdxl_path(tmp_path_factory):
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl") / "tiny-sdxl")


@pytest.fixture(scope="module")
def models_file(tmp_path_factory, sdxl_path):
    path = tmp_path_factory.mktemp("sdxl-models") / "models.toml"
    path.write_text(f'[[model]]\nid = "{TINY_SDXL}"\nname = "Tiny SDXL"\nfamily = "diffusers"\n'
                    f'tasks = ["txt2img", "img2img", "inpaint", "restyle", "image-walk"]\npath = "{sdxl_path}"\n',
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fast(tmp_path_factory, models_file):
    return Studio(Settings(data_dir=tmp_path_factory.mktemp("ov-data"), models_file=models_file, offline=True,
                           device="cpu"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory, models_file):
    return Studio(Settings(data_dir=tmp_path_factory.mktemp("torch-data"), models_file=models_file, offline=True,
                           device="cpu", openvino=False))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def added(batch: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """What SDXL's pipelines pass: the pooled embedding of the second text encoder, and (original size,
    crop corner, target size) as ids."""
    ids = torch.tensor([[height * 8.0, width * 8.0, 0.0, 0.0, height * 8.0, width * 8.0]] * batch)
    return {"text_embeds": torch.randn(batch, 32), "time_ids": ids}


def test_one_ir_gives_torchs_output_at_two_sizes(sdxl_path, tmp_path):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(sdxl_path / "unet")
    assert unet.config.addition_embed_type == "text_time" and openvino_unet.unet_is_supported(unet)
    # The studio's IR stores its weights in fp16; one stored as they are shows the graph itself is exact.
    twins = {}
    for fp16 in (True, False):
        ir_file = tmp_path / ("fp16" if fp16 else "fp32") / "unet.xml"
        openvino_unet.export_unet(unet, ir_file, fp16_weights=fp16)
        twins[fp16] = openvino_unet.load_converted_unet(ir_file)
    assert twins[True].add_embedding.linear_1.in_features == 80  # what SDXL's pipelines check
    torch.manual_seed(0)
    for batch, height, width in ((2, 9, 10), (1, 12, 8)):  # guided and not; neither square nor the traced size
        sample, text = torch.randn(batch, 4, height, width), torch.randn(batch, 77, 64)
        conditions = added(batch, height, width)
        with torch.inference_mode():
            expected = unet(sample, 500, text, added_cond_kwargs=conditions).sample
        scale = expected.abs().max()
        exact = twins[False](sample, torch.tensor(500), text, added_cond_kwargs=conditions).sample
        assert exact.shape == expected.shape == (batch, 4, height, width)
        assert (exact - expected).abs().max() <= 1e-5 * scale  # fp32 rounding
        studios = twins[True](sample, torch.tensor(500), text, added_cond_kwargs=conditions).sample
        assert (studios - expected).abs().max() <= 0.01 * scale  # and the fp16 weights' rounding
        # The ids matter: other sizes give another output, so they really reach the IR.
        resized = {**conditions, "time_ids": conditions["time_ids"] * 2}
        other = twins[False](sample, torch.tensor(500), text, added_cond_kwargs=resized).sample
        assert (other - exact).abs().max() > 1e-3 * scale

    # Without its conditions, or with more (IP-Adapter's image embeddings), it is not the UNet to call.
    sample, text = torch.zeros(1, 4, 8, 8), torch.zeros(1, 77, 64)
    with pytest.raises(RuntimeError, match="text_embeds and time_ids"):
        twins[True](sample, 1, text)
    with pytest.raises(RuntimeError, match="STUDIO_OPENVINO=0"):
        twins[True](sample, 1, text, added_cond_kwargs={**added(1, 8, 8), "image_embeds": torch.zeros(1, 4)})


@pytest.mark.parametrize("guidance", [0.0, 4.0], ids=["turbo", "guided"])
def test_sdxl_txt2img_through_the_studio_on_openvino_is_torchs_picture(fast, plain, guidance):
    request = replace(BASE, guidance=guidance, negative_prompt="blurry" if guidance else "")
    mine = fast.generate_image(request, keep=False)
    theirs = plain.generate_image(request, keep=False)
    assert isinstance(fast.image.load(TINY_SDXL).pipe.unet, openvino_unet.OpenVinoUNet)
    assert mine.result.params[0]["engine"].startswith("openvino ")
    assert theirs.result.params[0]["engine"].startswith("torch ")
    a, b = pixels(mine.result.images[0]), pixels(theirs.result.images[0])
    assert a.shape == b.shape == (64, 96, 3)
    assert np.abs(a - b).max() <= 2 and psnr(a, b) > 45  # float rounding, not another picture
    assert a.std() > 5  # a picture, not a blank


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_sdxl_img2img_and_inpainting_on_openvino_are_torchs_pictures(fast, plain, mode):
    source = fast.open_image(_png(np.random.default_rng(3).integers(0, 255, (64, 96, 3), dtype=np.uint8)))
    mask = fast.open_image(_png(np.pad(np.full((24, 40), 255, np.uint8), ((8, 32), (8, 48)))))
    request = replace(BASE, mode=mode, strength=0.7)
    kwargs = {"mask": mask} if mode == "inpaint" else {}
    mine = fast.generate_image(request, source, keep=False, **kwargs)
    theirs = plain.generate_image(request, source, keep=False, **kwargs)
    assert mine.result.params[0]["engine"].startswith("openvino ")
    a, b = pixels(mine.result.images[0]), pixels(theirs.result.images[0])
    assert a.shape == b.shape and np.abs(a - b).max() <= 2 and psnr(a, b) > 45


def test_an_sdxl_prompt_walk_runs_on_openvino_as_on_torch(fast, plain):
    keys = (Keyframe("a red cat on the beach", 1), Keyframe("a blue dog in the snow", 2))
    request = PromptWalkRequest(keyframes=keys, frames_between=1, settings=BASE)
    mine = prompt_walk(fast.image, request)
    theirs = prompt_walk(plain.image, request)
    assert fast.image.load(TINY_SDXL).engine.startswith("openvino ")
    assert not any("torch" in note for note in mine.params["notes"])  # no fall back to a torch UNet
    assert len(mine.frames) == len(theirs.frames) == 3
    for a, b in zip(mine.frames, theirs.frames, strict=True):
        assert np.abs(pixels(a) - pixels(b)).max() <= 2


def test_the_fastest_speed_runs_sdxl_in_int8_and_says_so(fast, plain):
    pytest.importorskip("nncf")
    outcome = fast.generate_image(replace(BASE, speed="fastest"), keep=False)
    record = outcome.result.params[0]
    assert record["engine"].startswith("openvino ") and record["engine"].endswith(" int8")
    assert any(note.startswith("Speed: fastest (openvino ") for note in outcome.notes)
    exact = pixels(plain.generate_image(BASE, keep=False).result.images[0])
    # int8 weights: near the exact picture, not equal to it.
    assert psnr(pixels(outcome.result.images[0]), exact) > 25


def _png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_as_measured_sdxl_s_exact_path_stays_on_torch_and_fastest_converts_it(tmp_path, models_file, monkeypatch):
    """OpenVINO fp32 ran SDXL's real-size UNet slower than torch, int8 faster (benchmarks/sdxl_openvino.py)."""
    monkeypatch.setattr(openvino_unet, "EXACT_SDXL_ON_OPENVINO", False)
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=models_file, offline=True, device="cpu"))
    exact = studio.generate_image(BASE, keep=False)
    assert exact.result.params[0]["engine"].startswith("torch ")
    assert not isinstance(studio.image.load(TINY_SDXL).pipe.unet, openvino_unet.OpenVinoUNet)
    assert not list((tmp_path / "data").rglob("*.xml"))  # nothing converted for it
    pytest.importorskip("nncf")
    fastest = studio.generate_image(replace(BASE, speed="fastest"), keep=False)
    assert fastest.result.params[0]["engine"].endswith(" int8")


def test_the_conversion_notice_says_minutes_for_a_unet_as_big_as_sdxls():
    sd_turbo, sdxl = 865_910_724, 2_567_463_684
    assert openvino_unet.preparing_message(sd_turbo) == openvino_unet.PREPARING  # "about a minute"
    assert openvino_unet.preparing_message(sdxl) == "Preparing this model for your CPU: once, about 3 minutes"
    # The int8 twin is compressed after it: more to wait for.
    assert openvino_unet.preparing_message(sdxl, fastest=True).endswith("about 4 minutes")
