"""The fast LCM switch on the tiny SD 1.5 and SDXL pipelines: tiny LCM-LoRA-shaped LoRAs laid out in a
Hugging Face cache as the catalogue's `latent-consistency/lcm-lora-*` snapshots, so they load through the
same hub code a download lands in (never the network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.backends.diffusion import (
    DiffusionBackend,
    ImageRequest,
    a1111_parameters,
    pipelines,
    with_fast_lcm,
)
from studio.backends.diffusion.lcm import LCM_LORAS, LORA_FILE
from studio.backends.diffusion.loras import addnet_hash
from studio.backends.diffusion.metadata import fields_from_parameters
from studio.catalog import load_catalog
from studio.errors import InputError, ModelUnavailable
from studio.media.png_info import parse_a1111_parameters, save_png
from studio.model_folders import SD1, SDXL
from studio.runtime import ModelCache
from studio.services.image import request_from_record
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file
from tests.tiny_models import build_tiny_lcm_lora, build_tiny_sdxl

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TINY_SD15, TINY_SDXL, TINY_TURBO = "tiny-sd15", "tiny-sdxl", "tiny-sd-turbo"
BASE = ImageRequest("a red cat on the beach", model=TINY_SD15, decoder=TINY_TAESD, width=64, height=64, seed=11)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def hub_snapshot(hub: Path, repo: str, lora: Path) -> Path:
    """`lora` where huggingface_hub keeps `repo`'s snapshot: models--owner--name/{refs/main, snapshots/<commit>}."""
    repo_dir = hub / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    shutil.copy(lora, snapshot / LORA_FILE)
    return snapshot / LORA_FILE


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_sd_path, tiny_sd15_path, tiny_taesd_path):
    """The models file (tiny SD 1.5, SDXL, SD 2.x-like "SD" and the same as "SD-Turbo"), a Hugging Face cache
    holding the two LCM-LoRAs, and a LoRA folder with a copy of the SD 1.5 one and a style LoRA."""
    folder = tmp_path_factory.mktemp("lcm")
    sdxl_path = build_tiny_sdxl(folder / "tiny-sdxl")
    models = write_models_file(folder / "models", tiny_sd_path, tiny_taesd_path)
    with models.open("a", encoding="utf-8") as out:
        for model_id, name, path in ((TINY_SD15, "Tiny SD 1.5", tiny_sd15_path), (TINY_SDXL, "Tiny SDXL", sdxl_path),
                                     (TINY_TURBO, "Tiny SD-Turbo", tiny_sd_path)):
            out.write(f'\n[[model]]\nid = "{model_id}"\nname = "{name}"\nfamily = "diffusers"\n'
                      f'tasks = ["txt2img", "img2img"]\npath = "{path}"\n')
    hub = folder / "hf" / "hub"
    made = {SD1: build_tiny_lcm_lora(tiny_sd15_path, folder / "made" / "sd15.safetensors", seed=1),
            SDXL: build_tiny_lcm_lora(sdxl_path, folder / "made" / "sdxl.safetensors", seed=2)}
    cached = {base: hub_snapshot(hub, LCM_LORAS[base], made[base]) for base in made}
    loras = folder / "loras"
    loras.mkdir()
    shutil.copy(made[SD1], loras / "lcm-lora-sdv1-5.safetensors")
    shutil.copy(made[SDXL], loras / "lcm-lora-sdxl.safetensors")
    build_tiny_lcm_lora(tiny_sd15_path, loras / "style.safetensors", seed=3)
    with pytest.MonkeyPatch.context() as patch:
        # Where hub.locate looks (huggingface_hub reads it at each call); subprocesses get HF_HUB_CACHE.
        patch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
        yield {"folder": folder, "models": models, "catalog": load_catalog(models), "hub": hub, "cached": cached,
               "loras": loras}


@pytest.fixture(scope="module")
def backend(world):
    return DiffusionBackend(ModelCache(4096), world["catalog"], device="cpu", offline=True,
                            lora_dirs=[world["loras"]])


def unet_calls(backend: DiffusionBackend, model_id: str) -> list[int]:
    """A list that grows by one at every UNet evaluation of the model."""
    calls: list[int] = []
    backend.load(model_id).pipe.unet.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_the_switch_sets_the_lcm_sampler_four_steps_and_guidance_one(backend, world, monkeypatch):
    fast = with_fast_lcm(BASE)
    assert (fast.fast_lcm, fast.sampler, fast.steps, fast.guidance) == (True, "LCM", 4, 1.0)
    schedulers = []
    build = backend._pipeline
    monkeypatch.setattr(backend, "_pipeline", lambda *a: (lambda made: (schedulers.append(made[0].scheduler), made)[1])(
        build(*a)))
    calls = unet_calls(backend, TINY_SD15)
    result = backend.generate(fast)
    assert [type(s).__name__ for s in schedulers] == ["LCMScheduler"]
    assert len(calls) == 4  # four steps, one evaluation each: guidance 1 runs no unconditional half
    record = result.params[0]
    assert (record["sampler"], record["steps"], record["guidance"], record["fast_lcm"]) == ("LCM", 4, 1.0, True)
    expected = addnet_hash(world["cached"][SD1].read_bytes())[:12]
    assert record["lcm_lora"] == {"name": "lcm-lora-sdv1-5", "weight": 1.0, "hash": expected}
    assert "loras" not in record  # the prompt named none
    # A plain run's record says nothing of the switch.
    plain = backend.generate(BASE).params[0]
    assert "fast_lcm" not in plain and "lcm_lora" not in plain


@pytest.mark.parametrize(("model", "name"), [(TINY_SD15, "lcm-lora-sdv1-5"), (TINY_SDXL, "lcm-lora-sdxl")])
def test_the_lcm_lora_is_applied_as_a_lora_tag_would_be(backend, model, name):
    fast = with_fast_lcm(replace(BASE, model=model))
    made = pixels(backend.generate(fast).images[0])
    without = pixels(backend.generate(replace(fast, fast_lcm=False)).images[0])
    assert np.abs(made - without).mean() > 1  # the LoRA changed the picture
    by_tag = backend.generate(replace(fast, fast_lcm=False, prompt=f"{BASE.prompt} <lora:{name}:1>"))
    assert np.array_equal(pixels(by_tag.images[0]), made)
    assert backend.generate(fast).params[0]["lcm_lora"]["name"] == name


def test_the_artists_own_loras_combine_with_it(backend):
    fast = with_fast_lcm(BASE)
    alone = pixels(backend.generate(fast).images[0])
    styled = backend.generate(replace(fast, prompt=f"{BASE.prompt} <lora:style:0.8>"))
    assert np.abs(pixels(styled.images[0]) - alone).mean() > 1
    record = styled.params[0]
    assert [lora["name"] for lora in record["loras"]] == ["style"] and record["lcm_lora"]["name"] == "lcm-lora-sdv1-5"
    text = a1111_parameters(record)
    assert f'Lora hashes: "lcm-lora-sdv1-5: {record["lcm_lora"]["hash"]}, style: {record["loras"][0]["hash"]}"' in text
    # And off again: the switch's LoRA leaves nothing behind.
    assert np.array_equal(pixels(backend.generate(fast).images[0]), alone)
    # Its own file as a tag as well would put it on twice.
    with pytest.raises(InputError, match=r"<lora:lcm-lora-sdv1-5> is the LCM-LoRA the fast LCM switch already puts on"):
        backend.generate(replace(fast, prompt=f"{BASE.prompt} <lora:lcm-lora-sdv1-5:1>"))


def test_the_png_text_says_lcm_and_reads_back_into_the_same_picture(backend, world):
    fast = with_fast_lcm(replace(BASE, prompt=f"{BASE.prompt} <lora:style:0.5>"))
    result = backend.generate(fast)
    record = result.params[0]
    text = a1111_parameters(record)
    assert "Sampler: LCM" in text and "Steps: 4" in text and "CFG scale: 1" in text and "Fast LCM: lcm-lora-sdv1-5" in text
    values, notes = fields_from_parameters(parse_a1111_parameters(text), world["catalog"], loras=backend.loras,
                                           embeddings=backend.embeddings)
    assert notes == []  # the switch's LoRA is not looked for in the LoRA folders
    assert (values["fast_lcm"], values["sampler"], values["steps"], values["guidance"]) == (True, "LCM", 4, 1.0)
    again = backend.generate(ImageRequest(**values))
    assert np.array_equal(pixels(again.images[0]), pixels(result.images[0]))
    # The studio's own record (the gallery's re-run and reproduce read it) makes it again too.
    from_record = backend.generate(request_from_record(json.loads(json.dumps(record))))
    assert np.array_equal(pixels(from_record.images[0]), pixels(result.images[0]))


def test_models_that_are_not_sd15_or_sdxl_are_refused_in_one_sentence(backend, world):
    with pytest.raises(InputError, match=r"'Tiny SD-Turbo' is already a few-step model") as caught:
        backend.generate(with_fast_lcm(replace(BASE, model=TINY_TURBO)))
    assert "\n" not in str(caught.value)
    assert not any(key.model_id == TINY_TURBO for key in backend.cache.keys())  # noqa: SIM118 (a cache, not a dict)
    with pytest.raises(InputError, match=r"needs an SD 1\.5 or SDXL model; 'Tiny SD' is an SD 2\.x model") as caught:
        backend.generate(with_fast_lcm(replace(BASE, model=TINY_SD)))
    assert "already a few-step model" in str(caught.value)  # SD-Turbo is named as the SD 2.1 way to go fast
    with pytest.raises(InputError, match="The fast LCM switch runs the LCM sampler, not Euler"):
        backend.generate(replace(with_fast_lcm(BASE), sampler="Euler"))


def test_a_missing_lcm_lora_gives_the_one_offline_message(world, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    fresh = DiffusionBackend(ModelCache(4096), world["catalog"], device="cpu", offline=True)
    with pytest.raises(ModelUnavailable) as caught:
        fresh.generate(with_fast_lcm(BASE))
    message = str(caught.value)
    for words in ("LCM-LoRA for SD 1.5", "latent-consistency/lcm-lora-sdv1-5", "135 MB",
                  "python -m studio download latent-consistency/lcm-lora-sdv1-5", "HF_HOME"):
        assert words in message


def test_on_openvino_the_record_and_note_name_the_engine_that_ran(world, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setattr(pipelines, "cpu_has_native_bf16", lambda: False)  # OpenVINO takes fp32 CPU work
    accelerated = DiffusionBackend(ModelCache(4096), world["catalog"], device="cpu", offline=True,
                                   openvino_dir=tmp_path)
    torch_only = DiffusionBackend(ModelCache(4096), world["catalog"], device="cpu", offline=True)
    assert accelerated.generate(BASE).params[0]["engine"].startswith("openvino ")
    fast = with_fast_lcm(BASE)
    result = accelerated.generate(fast)
    engine = result.params[0]["engine"]
    assert engine.startswith("torch ")
    assert any(engine in note and "OpenVINO" in note for note in result.notes)
    assert np.array_equal(pixels(result.images[0]), pixels(torch_only.generate(fast).images[0]))


def cli(world: dict, hub: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, STUDIO_DATA_DIR=str(world["folder"] / "data"), STUDIO_MODELS_FILE=str(world["models"]),
               STUDIO_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub))
    return subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_cli_flag_and_reproduce_from_automatic1111s_text(backend, world, tmp_path):
    out = tmp_path / "fast.png"
    done = cli(world, world["hub"], "image", "a red cat on the beach", "--fast-lcm", "--model", TINY_SD15,
               "--decoder", TINY_TAESD, "--size", "64x64", "--seed", "11", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)["parameters"][0]
    assert (record["sampler"], record["steps"], record["guidance"], record["fast_lcm"]) == ("LCM", 4, 1.0, True)
    assert np.array_equal(pixels(Image.open(out)), pixels(backend.generate(with_fast_lcm(BASE)).images[0]))
    # A copy that carries only AUTOMATIC1111's text is made again pixel for pixel.
    elsewhere = tmp_path / "a1111.png"
    save_png(Image.open(out).convert("RGB"), elsewhere, {"parameters": Image.open(out).text["parameters"]})
    again = cli(world, world["hub"], "reproduce", str(elsewhere), "--out", str(tmp_path / "again.png"))
    assert again.returncode == 0, again.stderr
    assert "matches the original pixel for pixel" in again.stdout + again.stderr


def test_the_cli_says_in_one_line_what_is_missing_or_wrong(world, tmp_path):
    missing = cli(world, tmp_path / "empty-hub", "image", "a cat", "--fast-lcm", "--model", TINY_SD15, "--decoder",
                  TINY_TAESD, "--size", "64x64", "--out", str(tmp_path / "x.png"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    errors = [line for line in missing.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "python -m studio download latent-consistency/lcm-lora-sdv1-5" in errors[0]
    wrong = cli(world, world["hub"], "image", "a cat", "--fast-lcm", "--sampler", "Euler", "--model", TINY_SD15)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().splitlines()[-1] == "error: --fast-lcm runs the LCM sampler; leave out --sampler Euler"


def test_a_local_copy_in_the_models_file_stands_in_for_the_download(world, tmp_path, monkeypatch):
    """What the offline message suggests: an entry with the LCM-LoRA's id and a path; no hub cache needed."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    models = tmp_path / "models.toml"
    models.write_text(world["models"].read_text(encoding="utf-8") + (
        f'\n[[model]]\nid = "{LCM_LORAS[SD1]}"\nfamily = "diffusers"\ntasks = ["lora"]\n'
        f'path = "{world["cached"][SD1].parent}"\n'), encoding="utf-8")
    catalog = load_catalog(models)
    assert catalog.get(LCM_LORAS[SD1]).source == "local" and len(catalog.for_task("lora")) == 2
    local = DiffusionBackend(ModelCache(4096), catalog, device="cpu", offline=True)
    made = local.generate(with_fast_lcm(BASE))
    assert made.params[0]["lcm_lora"]["name"] == "lcm-lora-sdv1-5"


def test_the_image_tabs_api_takes_the_switch_and_loading_the_png_turns_it_on(backend, world):
    from gradio_client import Client, handle_file

    from tests.running_app import RunningApp

    with RunningApp(world["folder"] / "app-data", "--models-file", str(world["models"]), "--offline",
                    env={"HF_HUB_CACHE": str(world["hub"])}) as running:
        client = Client(running.url, verbose=False)
        # ... then the hires fix, off (on, upscale, upscaler, steps, strength)
        settings = [TINY_SD15, TINY_TAESD, BASE.prompt, "", "LCM", 4, 1.0, 64, 64, False, 11, 1, 1,
                    False, 2, "Latent", 0, 0.5]
        _preview, files, _info, _seed = client.predict(*settings, True, api_name="/txt2img")
        made = files[0]["image"]
        assert np.array_equal(pixels(Image.open(made)), pixels(backend.generate(with_fast_lcm(BASE)).images[0]))
        loaded = client.predict(handle_file(made), api_name="/image_read_parameters")
        # The switch, then the speed (exact), before the note.
        assert (loaded[4], loaded[5], loaded[6]) == ("LCM", 4, 1.0) and loaded[-3] is True and loaded[-2] == "exact"
        with pytest.raises(Exception, match="already a few-step model"):
            client.predict(TINY_TURBO, *settings[1:], True, api_name="/txt2img")


def test_reproduce_says_when_the_switchs_lora_file_is_not_the_one_recorded():
    from studio.backends.diffusion.metadata import recorded_networks
    from studio.services.reproduce import machine_notes

    parsed = {"Fast LCM": "lcm-lora-sdv1-5", "Lora hashes": "lcm-lora-sdv1-5: 0123456789ab, ink_wash: ba9876543210"}
    networks = recorded_networks(parsed)
    assert networks["lcm_lora"] == {"name": "lcm-lora-sdv1-5", "hash": "0123456789ab"}
    assert [lora["name"] for lora in networks["loras"]] == ["ink_wash"]  # the folders are searched for this one only
    same = {"lcm_lora": {"name": "lcm-lora-sdv1-5", "weight": 1.0, "hash": "0123456789ab"}}
    other = {"lcm_lora": {"name": "lcm-lora-sdv1-5", "weight": 1.0, "hash": "fedcba987654"}}
    assert machine_notes(networks, same) == []
    assert machine_notes(networks, other) == ["the fast LCM switch's LoRA file was 0123456789ab, now fedcba987654"]
