"""OpenVINO running the tiny pipeline's UNet and TAESD decoder: same pictures as torch (to within
rounding), converted once per set of weights, and torch again whenever OpenVINO cannot help."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from studio.backends.diffusion import DiffusionBackend, ImageRequest, openvino_unet, pipelines
from studio.errors import Cancelled
from studio.runtime import CancelToken, ModelCache
from studio.services.reproduce import machine_notes
from tests.image_models import TINY_SD, TINY_TAESD

pytest.importorskip("openvino")

BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11)


@pytest.fixture(autouse=True)
def a_cpu_without_native_bf16(monkeypatch):
    """OpenVINO takes the fp32 CPU path; a CPU with native bf16 instructions runs torch in bf16
    instead. These tests are about the fp32 path, whatever CPU runs them."""
    monkeypatch.setattr(pipelines, "cpu_has_native_bf16", lambda: False)


@pytest.fixture(scope="module")
def ir_root(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino")


@pytest.fixture(scope="module")
def accelerated(catalog, ir_root):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=ir_root)


@pytest.fixture(scope="module")
def plain(catalog):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_the_unet_and_decoder_run_on_openvino_and_say_so(accelerated, plain):
    model = accelerated.load(TINY_SD)
    assert isinstance(model.pipe.unet, openvino_unet.OpenVinoUNet)
    assert model.engine.startswith("openvino ")
    assert isinstance(accelerated.decoder(TINY_TAESD, torch.float32).decoder, openvino_unet.OpenVinoModule)
    assert plain.load(TINY_SD).engine.startswith("torch ")
    record = accelerated.generate(BASE).params[0]
    assert record["engine"] == model.engine and record["dtype"] == "float32"
    # A re-run on the other engine says why its pixels may differ by rounding.
    again = plain.generate(BASE).params[0]
    assert any("engine" in note for note in machine_notes(record, again))


@pytest.mark.parametrize("mode", ["txt2img", "img2img", "inpaint"])
@pytest.mark.parametrize("size", [(64, 64), (72, 80)])  # 72 and 80 px are not multiples of 64
def test_openvino_makes_the_torch_picture(accelerated, plain, mode, size):
    width, height = size
    request = replace(BASE, mode=mode, width=width, height=height, steps=2, strength=0.7)
    source = Image.fromarray(np.random.default_rng(3).integers(0, 255, (height, width, 3), dtype=np.uint8))
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (8, 8, width // 2, height // 2))
    kwargs = {} if mode == "txt2img" else {"image": source, **({"mask": mask} if mode == "inpaint" else {})}
    fast = pixels(accelerated.generate(request, **kwargs).images[0])
    slow = pixels(plain.generate(request, **kwargs).images[0])
    assert fast.shape == slow.shape == (height, width, 3)
    assert np.abs(fast - slow).max() <= 2  # float rounding, not a different picture
    again = pixels(accelerated.generate(request, **kwargs).images[0])
    assert np.array_equal(fast, again)


def test_a_batch_with_guidance_runs_through_one_ir(accelerated, plain):
    request = replace(BASE, batch_size=3, guidance=4.0, negative_prompt="blurry", steps=2)
    fast = accelerated.generate(request).images
    slow = plain.generate(request).images
    assert len(fast) == 3
    for mine, theirs in zip(fast, slow, strict=True):
        assert np.abs(pixels(mine) - pixels(theirs)).max() <= 2


def test_the_conversion_is_kept_and_reused(catalog, ir_root, accelerated, monkeypatch):
    accelerated.load(TINY_SD)
    converted = sorted(ir_root.glob("*/unet.xml"))
    assert len(converted) == 1 and converted[0].with_suffix(".bin").stat().st_size > 0
    assert not list(ir_root.glob("*/.converting-*"))

    def no_second_conversion(*_args, **_kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_unet, "export_unet", no_second_conversion)
    fresh = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=ir_root)
    assert fresh.load(TINY_SD).engine.startswith("openvino ")
    assert np.array_equal(pixels(fresh.generate(BASE).images[0]), pixels(accelerated.generate(BASE).images[0]))


def test_a_unet_loaded_on_its_own_converts_and_reloads(tiny_sd_path, tmp_path):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_sd_path / "unet")  # its config holds a Path
    ir_file = tmp_path / "unet.xml"
    openvino_unet.export_unet(unet, ir_file)
    twin = openvino_unet.load_converted_unet(ir_file)
    assert twin is not None and twin.config.in_channels == unet.config.in_channels
    sample, text = torch.randn(2, 4, 9, 10), torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.inference_mode():
        expected = unet(sample, 500, text).sample
    got = twin(sample, torch.tensor(500), text).sample
    assert got.shape == expected.shape
    # The IR keeps fp16 weights: the difference is their rounding, far below the output's scale.
    assert (got - expected).abs().max() <= 0.01 * expected.abs().max()


def test_new_weights_get_a_new_conversion(tmp_path):
    first = tmp_path / "a.safetensors"
    first.write_bytes(b"1")
    key = openvino_unet.weights_key([first])
    first.write_bytes(b"22")
    assert openvino_unet.weights_key([first]) != key


def test_a_failed_conversion_falls_back_to_torch(catalog, tmp_path, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("conversion exploded")

    monkeypatch.setattr(openvino_unet, "export_unet", broken)
    backend = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=tmp_path)
    model = backend.load(TINY_SD)
    assert model.engine.startswith("torch ")
    assert "conversion exploded" in caplog.text
    assert backend.generate(BASE).images[0].size == (64, 64)


def test_a_failure_after_the_torch_unet_is_freed_reloads_it(catalog, tmp_path, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("compile failed")

    monkeypatch.setattr(openvino_unet, "OpenVinoUNet", broken)
    backend = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=tmp_path)
    model = backend.load(TINY_SD)
    assert model.engine.startswith("torch ") and model.pipe.unet is not None
    assert backend.generate(BASE).images[0].size == (64, 64)


def test_unets_with_extra_conditioning_stay_on_torch(accelerated):
    unet = accelerated.load(TINY_SD).pipe.unet
    assert openvino_unet.unet_is_supported(unet)
    # LCM's guidance embedding (SDXL's too), class labels, image embeddings; SDXL itself runs (test_openvino_sdxl.py).
    for extra in ({"time_cond_proj_dim": 256}, {"addition_embed_type": "text_time", "time_cond_proj_dim": 256},
                  {"class_embed_type": "timestep"}, {"addition_embed_type": "image", "encoder_hid_dim": 32}):
        config = type("Config", (), {**dict(unet.config), **extra})
        assert not openvino_unet.unet_is_supported(type("UNet", (), {"config": config}))
    with pytest.raises(RuntimeError, match="STUDIO_OPENVINO=0"):
        unet(torch.zeros(1, 4, 8, 8), 1, torch.zeros(1, 77, 32), timestep_cond=torch.zeros(1, 256))


def test_stop_still_ends_the_run_after_a_step(accelerated):
    token = CancelToken()
    steps = []

    def progress(done, _total, _preview=None):
        steps.append(done)
        if done >= 1:
            token.cancel()

    with pytest.raises(Cancelled):
        accelerated.generate(replace(BASE, steps=6), progress=progress, cancel=token)
    assert max(steps) == 1


def test_the_page_announces_the_preparation_once_and_shows_its_progress(monkeypatch):
    from studio.ui import image_tab

    told, bars = [], []
    monkeypatch.setattr(image_tab.gr, "Info", told.append)

    def work(report, stage):
        for percent in (0, 40, 100):
            stage(openvino_unet.PREPARING, percent, 100)
        report(1, 1)
        return "made"

    events = list(image_tab.stream_run(work, CancelToken(), lambda value, desc: bars.append((value, desc)), "step"))
    assert events == [("done", "made")]
    assert told == [openvino_unet.PREPARING]
    assert bars == [((0, 100), openvino_unet.PREPARING), ((40, 100), openvino_unet.PREPARING),
                    ((100, 100), openvino_unet.PREPARING), ((1, 1), "step")]


def test_the_command_line_shows_the_preparation_on_one_line_the_first_time_only(
        tmp_path, monkeypatch, capsys, tiny_sd_path, tiny_taesd_path):
    from studio.cli.main import main
    from tests.image_models import write_models_file

    monkeypatch.setenv("STUDIO_MODELS_FILE", str(write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)))
    monkeypatch.setenv("STUDIO_OFFLINE", "1")
    command = ["--data-dir", str(tmp_path / "data"), "image", "a red cat", "--model", TINY_SD, "--decoder",
               TINY_TAESD, "--steps", "1", "--size", "64x64", "--seed", "3", "--out", str(tmp_path / "cat.png")]
    assert main(command) == 0
    err = capsys.readouterr().err
    assert openvino_unet.PREPARING == "Preparing this model for your CPU: once, about a minute"
    lines = [line for line in err.split("\n") if openvino_unet.PREPARING in line]  # "\r" moves within the line
    assert len(lines) == 1, err
    shown = lines[0].split("\r")[1:]
    assert all(part.startswith(f"{openvino_unet.PREPARING}: ") for part in shown)
    percents = [int(part.rsplit(": ", 1)[1].rstrip("%")) for part in shown]
    assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    assert {openvino_unet.CONVERTED, openvino_unet.SAVED} <= set(percents)  # it moves, not only start and end
    assert main(command) == 0
    assert openvino_unet.PREPARING not in capsys.readouterr().err


def test_conversions_of_changed_weights_are_pruned_and_current_ones_kept(tmp_path, tiny_sd_path, tiny_taesd_path):
    import os
    import shutil

    from studio.catalog import load_catalog
    from tests.image_models import write_models_file

    model = tmp_path / "model"
    shutil.copytree(tiny_sd_path, model)
    catalog = load_catalog(write_models_file(tmp_path, model, tiny_taesd_path))
    root = tmp_path / "openvino"
    unet_files = [p for p in (model / "unet").iterdir() if p.is_file()]
    # A conversion of this model's weights as they were before a fine-tune in place (another key, the
    # same files), another model's current one, and one an older studio made without a record.
    before = root / "00000000000000000000"
    before.mkdir(parents=True)
    openvino_unet.record_source(before / "unet.xml", unet_files)
    other_weights = tmp_path / "other.safetensors"
    other_weights.write_bytes(b"weights")
    other = root / openvino_unet.weights_key([other_weights])
    other.mkdir()
    openvino_unet.record_source(other / "unet.xml", [other_weights])
    legacy = root / "0123456789abcdef0123"
    legacy.mkdir()

    stages = []
    first = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=root)
    assert first.load(TINY_SD, stage=lambda *stage: stages.append(stage)).engine.startswith("openvino ")
    assert stages[0] == (openvino_unet.PREPARING, 0, 100) and stages[-1] == (openvino_unet.PREPARING, 100, 100)
    [current] = [p.parent for p in root.glob("*/unet.xml")]
    assert current.name == openvino_unet.weights_key(unet_files)
    assert not before.exists() and other.is_dir() and legacy.is_dir()
    assert not openvino_unet.is_stale(current)

    again = []
    second = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=root)
    assert second.load(TINY_SD, stage=lambda *stage: again.append(stage)).engine.startswith("openvino ")
    assert again == []  # kept: nothing to prepare, nothing said

    other_weights.unlink()  # a model deleted from disk: its conversion can never be used again
    os.utime(unet_files[0], ns=(0, 10**9))  # and this model's weights changed since
    assert openvino_unet.prune_stale_conversions(root) == sorted([other, current])
    assert [p.name for p in root.iterdir()] == [legacy.name]
