"""The image speed choice ("exact" / "fastest") on the tiny pipeline: the exact path stays torch's picture
to within rounding, "fastest" (int8 UNet weights on OpenVINO) is reachable from the backend, the CLI and
the API and is written in the records and the PNG, and the torch UNet is gone once OpenVINO has it."""

from __future__ import annotations

import gc
import json
import weakref
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion import (
    DiffusionBackend,
    ImageRequest,
    a1111_parameters,
    openvino_unet,
    pipelines,
)
from studio.backends.diffusion.metadata import fields_from_parameters
from studio.errors import InputError
from studio.media.png_info import parse_a1111_parameters, read_a1111_parameters
from studio.runtime import ModelCache
from tests.image_models import TINY_SD, TINY_TAESD
from tests.test_image_cli import models, studio_cli  # noqa: F401 (the CLI fixture and runner)

pytest.importorskip("openvino")
pytest.importorskip("nncf")

BASE = ImageRequest("a red cat on the beach", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=11,
                    steps=2)


@pytest.fixture(autouse=True)
def a_cpu_without_native_bf16(monkeypatch):
    """The exact OpenVINO path is the fp32 one (a CPU with native bf16 runs torch in bf16 instead), and
    "fastest" then computes in fp32 too: these tests are about the weights, whatever CPU runs them."""
    monkeypatch.setattr(pipelines, "cpu_has_native_bf16", lambda: False)


@pytest.fixture(scope="module")
def accelerated(catalog, tmp_path_factory):
    return DiffusionBackend(ModelCache(4096), catalog, device="cpu", offline=True,
                            openvino_dir=tmp_path_factory.mktemp("openvino"))


@pytest.fixture(scope="module")
def plain(catalog):
    return DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_the_exact_path_stays_within_rounding_of_torch(accelerated, plain):
    exact = accelerated.generate(replace(BASE, speed="exact"))
    assert exact.params[0]["engine"].startswith("openvino ") and not exact.params[0]["engine"].endswith("int8")
    assert "speed" not in exact.params[0]  # records of the exact path stay as they were
    assert np.abs(pixels(exact.images[0]) - pixels(plain.generate(BASE).images[0])).max() <= 2


def test_fastest_runs_int8_weights_and_says_so(accelerated):
    exact = accelerated.generate(BASE)
    fastest = accelerated.generate(replace(BASE, speed="fastest"))
    record = fastest.params[0]
    assert record["speed"] == "fastest" and record["engine"].endswith(" int8")
    assert any(note.startswith("Speed: fastest") for note in fastest.notes)
    # The compressed twin is kept beside the exact conversion, at most about half its size.
    exact_bin = next(accelerated.openvino_dir.glob("*/unet.bin"))
    int8_bin = exact_bin.with_name("unet-int8.bin")
    assert int8_bin.stat().st_size < 0.6 * exact_bin.stat().st_size
    # Close to the exact picture, but not the same one: int8 weights move it beyond rounding.
    a, b = pixels(exact.images[0]), pixels(fastest.images[0])
    assert a.shape == b.shape == (64, 64, 3)
    assert np.abs(a - b).mean() < 24
    again = accelerated.generate(replace(BASE, speed="fastest"))
    assert np.array_equal(pixels(again.images[0]), b)  # and it is the same picture every time


def test_fastest_is_written_in_the_png_parameters_and_read_back(accelerated, catalog):
    record = accelerated.generate(replace(BASE, speed="fastest")).params[0]
    text = a1111_parameters(record, "tiny")
    assert "Speed: fastest" in text
    exact_text = a1111_parameters(accelerated.generate(BASE).params[0], "tiny")
    assert "Speed" not in exact_text
    values, _notes = fields_from_parameters(parse_a1111_parameters(text), catalog)
    assert values["speed"] == "fastest"
    assert "speed" not in fields_from_parameters(parse_a1111_parameters(exact_text), catalog)[0]


def test_where_fastest_cannot_run_the_exact_path_runs_and_the_note_says_so(plain):
    result = plain.generate(replace(BASE, speed="fastest"))
    assert "speed" not in result.params[0]  # what ran: the exact path
    assert any(note.startswith("Speed: exact") and "'fastest'" in note for note in result.notes)


def test_an_unknown_speed_is_refused_in_one_sentence():
    with pytest.raises(InputError, match="speed must be one of exact, fastest"):
        replace(BASE, speed="ludicrous").validate()


def test_the_torch_unet_is_gone_once_openvino_has_it(catalog, tmp_path, monkeypatch):
    """No second copy of the weights: the torch UNet the conversion read is freed, and the OpenVINO
    twin holds no torch parameters."""
    seen: list[weakref.ref] = []
    export = openvino_unet.export_unet

    def watched(unet, *args, **kwargs):
        seen.append(weakref.ref(unet))
        return export(unet, *args, **kwargs)

    monkeypatch.setattr(openvino_unet, "export_unet", watched)
    backend = DiffusionBackend(ModelCache(2048), catalog, device="cpu", offline=True, openvino_dir=tmp_path)
    model = backend.load(TINY_SD)
    gc.collect()
    assert len(seen) == 1 and seen[0]() is None
    assert isinstance(model.pipe.unet, openvino_unet.OpenVinoUNet) and list(model.pipe.unet.parameters()) == []
    # Nor are the IR file's pages kept resident beside OpenVINO's own copy of the weights.
    ir_bin = next(tmp_path.glob("*/unet.bin"))
    assert resident_kb(ir_bin) == 0
    assert backend.generate(BASE).images[0].size == (64, 64)  # and it still runs: the copy is what computes


def resident_kb(path) -> int:
    """kB of this process's maps of `path` that are resident now (/proc/self/smaps)."""
    target, total, inside = str(path.resolve()), 0, False
    with open("/proc/self/smaps", encoding="utf-8", errors="replace") as smaps:
        for line in smaps:
            fields = line.split(maxsplit=5)
            if "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:  # a map's header line
                inside = len(fields) == 6 and fields[5].strip() == target
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_the_command_line_takes_speed_fastest(models, tmp_path):  # noqa: F811 (the CLI's models fixture)
    out = tmp_path / "fast.png"
    done = studio_cli("image", "a red cat", "--model", TINY_SD, "--decoder", TINY_TAESD, "--seed", "3",
                      "--size", "64x64", "--speed", "fastest", "--out", str(out), "--json",
                      models=models, data_dir=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["parameters"][0]
    assert record["speed"] == "fastest" and record["engine"].endswith(" int8")
    assert "note: Speed: fastest" in done.stderr
    assert read_a1111_parameters(out)["Speed"] == "fastest"
    wrong = studio_cli("image", "a red cat", "--speed", "ludicrous", models=models, data_dir=tmp_path / "data")
    assert wrong.returncode == 2 and "--speed" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_api_takes_speed_fastest_and_the_picture_says_so(tmp_path, tiny_sd_path, tiny_taesd_path):
    from gradio_client import Client, handle_file

    from tests.image_models import write_models_file
    from tests.running_app import RunningApp
    from tests.test_image_app import pictures, settings

    models_file = write_models_file(tmp_path, tiny_sd_path, tiny_taesd_path)
    with RunningApp(tmp_path / "data", "--models-file", str(models_file), "--offline") as app:
        client = Client(app.url, verbose=False)
        result = client.predict(*settings(seed=5), speed="fastest", api_name="/txt2img")
        assert "speed fastest" in result[2]
        assert read_a1111_parameters(pictures(result)[0])["Speed"] == "fastest"
        loaded = client.predict(handle_file(pictures(result)[0]), api_name="/image_read_parameters")
        assert loaded[-2] == "fastest"  # the speed comes back into the form, just before the note
        exact = client.predict(*settings(seed=5), api_name="/txt2img")  # left out: exact, as before
        assert "speed exact" in exact[2] and "Speed" not in read_a1111_parameters(pictures(exact)[0])
