"""The depth and pose annotators: tiny Depth Anything and ViTPose models in a Hugging Face cache under the
catalogue's repository names, found and loaded by the studio's own hub code; the OpenPose drawing on known
keypoints; the offline message; pickles refused; and a depth ControlNet run through the running app."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio import hub
from studio.backends.diffusion import control_maps
from studio.backends.diffusion.annotators import DEPTH_MODEL, POSE_MODEL, Annotator, Annotators
from studio.backends.diffusion.pose_drawing import COLOURS, LIMB_STRENGTH, LIMBS, draw_openpose
from studio.backends.diffusion.request import ControlUnit, ImageRequest
from studio.catalog import load_catalog
from studio.cli.main import main
from studio.errors import ModelUnavailable, StudioError
from studio.runtime import ModelCache
from tests.annotator_models import build_tiny_depth_anything, build_tiny_vitpose, hub_snapshot
from tests.image_models import (
    TINY_CONTROLNET,
    TINY_SD,
    TINY_TAESD,
    build_tiny_controlnet,
    controlnet_models_entries,
    write_models_file,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    """A Hugging Face cache holding the tiny annotators under the catalogue's repository names, and a models
    file with the tiny pipeline and a tiny ControlNet."""
    folder = tmp_path_factory.mktemp("annotators")
    cache = folder / "hf" / "hub"
    hub_snapshot(cache, DEPTH_MODEL, build_tiny_depth_anything(folder / "depth"))
    hub_snapshot(cache, POSE_MODEL, build_tiny_vitpose(folder / "pose"))
    models = write_models_file(folder / "models", tiny_sd_path, tiny_taesd_path)
    with models.open("a", encoding="utf-8") as out:
        out.write(controlnet_models_entries({TINY_CONTROLNET: build_tiny_controlnet(tiny_sd_path, folder / "cn")}))
    with pytest.MonkeyPatch.context() as patch:
        # Where hub.locate looks (huggingface_hub reads it at each call); the app's process gets HF_HUB_CACHE.
        patch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
        yield {"folder": folder, "cache": cache, "models": models}


@pytest.fixture
def annotators(world) -> Annotators:
    return Annotators(load_catalog(), ModelCache(1024), "cpu", offline=True)


def photo() -> Image.Image:
    return Image.open(EXAMPLES / "rocket.jpg")


# -- depth --------------------------------------------------------------------------------------


def test_the_depth_map_is_grey_8_bit_at_the_working_size_and_follows_the_picture(annotators):
    made, note = control_maps.make_map(photo(), "depth", (80, 64), annotate=annotators)
    grey = np.asarray(made)
    assert made.size == (80, 64) and made.mode == "RGB" and grey.dtype == np.uint8
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 20  # stretched, not constant
    assert note is not None and "640x427" in note
    other = np.asarray(control_maps.make_map(Image.open(EXAMPLES / "coffee.jpg"), "depth", (80, 64),
                                             annotate=annotators)[0])
    assert np.abs(other.astype(int) - grey.astype(int)).mean() > 5  # another picture, another map


def test_near_is_white_and_the_map_is_resized_to_the_picture(annotators, monkeypatch):
    """Depth Anything's output is inverse depth: where it is larger (nearer), the map is whiter."""
    import torch

    class Nearer:  # the lower in the picture, the nearer: a floor seen from above
        def __call__(self, pixel_values):
            rows = torch.linspace(0.0, 5.0, pixel_values.shape[2])[:, None].expand(-1, pixel_values.shape[3])
            return type("Out", (), {"predicted_depth": rows[None]})()

    real = annotators.load("depth")
    monkeypatch.setattr(annotators, "load", lambda kind: Annotator(Nearer(), real.processor, real.entry))
    made = annotators.depth(Image.new("RGB", (90, 60), "grey"))
    assert made.shape == (60, 90) and made.dtype == np.uint8
    assert made[0].max() < 10 and made[-1].min() > 245 and (np.diff(made[:, 45].astype(int)) >= 0).all()


def test_the_annotator_is_found_through_the_hub_code_loaded_once_and_kept(annotators, monkeypatch, world):
    calls = []
    locate = hub.locate
    monkeypatch.setattr(hub, "locate", lambda entry, **kw: calls.append(entry.id) or locate(entry, **kw))
    first = control_maps.make_map(photo(), "depth", (64, 64), annotate=annotators)[0]
    second = control_maps.make_map(photo(), "depth", (64, 64), annotate=annotators)[0]
    assert calls == [DEPTH_MODEL] and np.array_equal(np.asarray(first), np.asarray(second))
    assert str(annotators.load("depth").entry.id) == DEPTH_MODEL


# -- pose ---------------------------------------------------------------------------------------

# COCO-17: 5 left shoulder, 6 right shoulder, 8 right elbow, 10 right wrist.
SHOULDERS_AND_RIGHT_ARM = {5: (70, 20), 6: (30, 20), 8: (30, 60), 10: (30, 90)}


def person(seen: dict[int, tuple[float, float]], low: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints with score 0.9 where given (0.1 for those in `low`) and 0 elsewhere, far outside the map."""
    keypoints = np.full((17, 2), 500.0)
    scores = np.zeros(17)
    for index, (x, y) in seen.items():
        keypoints[index] = (x, y)
        scores[index] = 0.1 if index in low else 0.9
    return keypoints, scores


def limb_colour(a: int, b: int) -> tuple[int, ...]:
    return tuple(int(c * LIMB_STRENGTH) for c in COLOURS[LIMBS.index((a, b))])


def test_the_pose_drawing_puts_openpose_s_limb_and_joint_colours_where_the_keypoints_are():
    drawn = draw_openpose((100, 120), [person(SHOULDERS_AND_RIGHT_ARM)])
    assert drawn.shape == (120, 100, 3) and drawn.dtype == np.uint8
    at = lambda x, y: tuple(int(v) for v in drawn[y, x])  # noqa: E731
    # OpenPose's points: 1 neck (between the shoulders, at 50,20), 2 right shoulder, 3 right elbow, 4 right wrist,
    # 5 left shoulder. Limbs between them at 60% of their colour, joints in their full colour.
    assert at(40, 20) == limb_colour(1, 2)  # neck to right shoulder: red
    assert at(60, 20) == limb_colour(1, 5)  # neck to left shoulder: orange
    assert at(30, 40) == limb_colour(2, 3)  # upper arm
    assert at(30, 76) == limb_colour(3, 4)  # forearm
    assert at(50, 20) == COLOURS[1] and at(30, 20) == COLOURS[2] and at(30, 60) == COLOURS[3]
    assert at(30, 90) == COLOURS[4] and at(70, 20) == COLOURS[5]
    # Everything else is black: nothing lit further than a limb's half-width from the skeleton.
    lit = np.argwhere(drawn.any(axis=2))
    near_arm = (np.abs(lit[:, 1] - 30) <= 4) & (lit[:, 0] >= 16) & (lit[:, 0] <= 94)
    near_shoulders = (np.abs(lit[:, 0] - 20) <= 4) & (lit[:, 1] >= 26) & (lit[:, 1] <= 74)
    assert (near_arm | near_shoulders).all()
    assert not drawn[100:].any() and not drawn[:, 80:].any()


def test_a_low_confidence_joint_draws_nothing():
    full = draw_openpose((100, 120), [person(SHOULDERS_AND_RIGHT_ARM)])
    without_elbow = draw_openpose((100, 120), [person(SHOULDERS_AND_RIGHT_ARM, low=(8,))])
    assert not without_elbow[25:85, 20:40].any()  # no elbow dot, no upper arm or forearm to it
    assert tuple(without_elbow[90, 30]) == COLOURS[4]  # the wrist was seen: its dot stays, alone
    # The shoulders and the neck as before (beside the arm, whose upper end reaches past the shoulder's dot).
    assert np.array_equal(without_elbow[:25, 36:], full[:25, 36:]) and without_elbow[:25, 36:].any()
    assert tuple(without_elbow[20, 30]) == COLOURS[2]
    # Without the left shoulder there is no neck either, so nothing joins the right shoulder to anything.
    one_shoulder = draw_openpose((100, 120), [person(SHOULDERS_AND_RIGHT_ARM, low=(5,))])
    assert not one_shoulder[10:30, 36:80].any()
    assert not draw_openpose((100, 120), [person(SHOULDERS_AND_RIGHT_ARM, low=(5, 6, 8, 10))]).any()


def test_the_pose_map_is_the_drawing_of_vitpose_s_keypoints_on_the_fitted_picture(annotators):
    made = np.asarray(control_maps.make_map(photo(), "openpose", (96, 64), annotate=annotators)[0])
    fitted, _ = control_maps.fit_picture(photo(), (96, 64))
    people = annotators.keypoints(fitted)
    assert len(people) == 1 and people[0][0].shape == (17, 2) and people[0][1].shape == (17,)
    assert np.array_equal(made, draw_openpose((96, 64), people))
    # With every point counted as seen, the skeleton shows: lit pixels in OpenPose's colours only.
    keypoints, scores = people[0]
    shown = draw_openpose((96, 64), [(keypoints, np.ones(17))])
    lit = {tuple(int(v) for v in pixel) for pixel in shown.reshape(-1, 3) if pixel.any()}
    assert lit and lit <= set(COLOURS) | {tuple(int(c * LIMB_STRENGTH) for c in colour) for colour in COLOURS}


# -- offline, pickles, the command line -----------------------------------------------------------


def test_offline_without_the_model_is_the_one_message(world, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    annotators = Annotators(load_catalog(), ModelCache(1024), "cpu", offline=True)
    with pytest.raises(ModelUnavailable) as caught:
        control_maps.make_map(photo(), "openpose", (64, 64), annotate=annotators)
    message = str(caught.value)
    assert "python -m studio download usyd-community/vitpose-base-simple" in message and "328 MB" in message
    assert "\n" not in message


def test_the_command_line_says_so_in_one_line_and_download_finds_a_cached_copy(world, tmp_path, monkeypatch,
                                                                              capsys):
    common = ["--data-dir", str(tmp_path / "data"), "--models-file", str(world["models"]), "--offline"]
    assert main([*common, "download", DEPTH_MODEL]) == 0
    assert Path(capsys.readouterr().out.strip()) == world["cache"] / f"models--{DEPTH_MODEL.replace('/', '--')}" / \
        "snapshots" / "fedcba9876543210fedcba9876543210fedcba98"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    code = main([*common, "image", "a dancer", "--model", TINY_SD, "--size", "64x64", "--no-gallery", "--out",
                 str(tmp_path / "o.png"), "--controlnet", TINY_CONTROLNET, "--control-image",
                 str(EXAMPLES / "rocket.jpg"), "--control-type", "depth"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"python -m studio download {DEPTH_MODEL}" in err


def test_a_model_folder_with_only_bin_weights_is_refused(world, tmp_path, monkeypatch):
    pickled = tmp_path / "depth-bin"
    pickled.mkdir()
    (pickled / "config.json").write_text((world["folder"] / "depth" / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"a pickle the studio must never open")
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nid = "{DEPTH_MODEL}"\nfamily = "transformers"\ntasks = ["annotator"]\n'
                      f'path = "{pickled}"\n', encoding="utf-8")
    annotators = Annotators(load_catalog(models), ModelCache(1024), "cpu", offline=True)
    with pytest.raises(StudioError, match=r"no \.safetensors weights .*never loads pickles") as caught:
        control_maps.make_map(photo(), "depth", (64, 64), annotate=annotators)
    assert "\n" not in str(caught.value)
    # In the hub cache, a snapshot with only a .bin counts as not downloaded: the offline message.
    cache = tmp_path / "hub"
    (tmp_path / "only-bin").mkdir()
    (tmp_path / "only-bin" / "pytorch_model.bin").write_bytes(b"pickle")
    (tmp_path / "only-bin" / "config.json").write_text("{}")
    hub_snapshot(cache, DEPTH_MODEL, tmp_path / "only-bin")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    with pytest.raises(ModelUnavailable, match="python -m studio download"):
        control_maps.make_map(photo(), "depth", (64, 64), annotate=Annotators(load_catalog(), ModelCache(1024),
                                                                              "cpu", offline=True))


def test_the_catalogue_lists_both_with_size_and_licence():
    catalog = load_catalog()
    for model_id in (DEPTH_MODEL, POSE_MODEL):
        entry = catalog.get(model_id)
        assert entry.source == "download" and entry.repo == model_id and entry.licence == "Apache-2.0"
        assert entry.size_mb > 50 and "annotator" in entry.tasks
    assert control_maps.BY_MODULE["depth_anything_v2"] == "depth" and control_maps.BY_MODULE["openpose"] == "openpose"


# -- the running app -----------------------------------------------------------------------------


def test_a_depth_controlnet_runs_end_to_end_through_the_app_s_apis(world, tmp_path, annotators):
    import httpx
    from gradio_client import Client, handle_file

    from tests.running_app import RunningApp

    picture = tmp_path / "rocket.png"
    photo().resize((96, 64)).save(picture)
    expected = control_maps.make_map(Image.open(picture), "depth", (64, 64), annotate=annotators)[0]
    with RunningApp(tmp_path / "data", "--models-file", str(world["models"]), "--offline", "--api",
                    env={"HF_HUB_CACHE": str(world["cache"])}) as app:
        client = Client(app.url, verbose=False)
        shown, _ = client.predict(control_type="depth", control_picture=handle_file(str(picture)),
                                  control_sketch=None, width=64, height=64, api_name="/control_map_preview")
        assert np.array_equal(np.asarray(Image.open(shown).convert("RGB")), np.asarray(expected))
        common = dict(model=TINY_SD, decoder=TINY_TAESD, prompt="a rocket", width=64, height=64, steps=2, guidance=1,
                      random_seed=False, seed=4, api_name="/txt2img")
        _, plain, _, _ = client.predict(**common)
        _, steered, _, _ = client.predict(**common, controlnet=TINY_CONTROLNET, control_type="depth",
                                          control_picture=handle_file(str(picture)))
        made = Image.open(steered[0]["image"])
        assert np.abs(np.asarray(made, dtype=int) - np.asarray(Image.open(plain[0]["image"]), dtype=int)).mean() > 1
        assert 'ControlNet 0: "Module: depth_anything_v2, Model: cn [' in made.text["parameters"]
        # AUTOMATIC1111's API with its ControlNet extension's module name.
        body = {"prompt": "a rocket", "steps": 2, "cfg_scale": 1, "width": 64, "height": 64, "seed": 4,
                "override_settings": {"sd_model_checkpoint": TINY_SD},
                "alwayson_scripts": {"controlnet": {"args": [
                    {"enabled": True, "module": "depth_anything_v2", "model": "cn", "weight": 1,
                     "image": base64.b64encode(picture.read_bytes()).decode("ascii")}]}}}
        answer = httpx.post(f"{app.url}sdapi/v1/txt2img", json=body, timeout=300)
        assert answer.status_code == 200, answer.text[:300]
        sent = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
        assert "Module: depth_anything_v2" in sent.text["parameters"]
        assert "alwayson_scripts.controlnet" not in json.dumps(json.loads(answer.json()["info"]))


def test_a_backend_run_records_the_depth_unit(world, tiny_taesd_path):
    from studio.backends.diffusion import DiffusionBackend

    backend = DiffusionBackend(ModelCache(2048), load_catalog(world["models"]), device="cpu", offline=True)
    request = replace(ImageRequest("a rocket", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, seed=3,
                                   steps=2, guidance=1.0), controlnets=(ControlUnit(model=TINY_CONTROLNET,
                                                                                    control_type="openpose"),))
    result = backend.generate(request, None, None, controls=[photo()])
    unit = result.params[0]["controlnets"][0]
    assert unit["control_type"] == "openpose" and (unit["map_width"], unit["map_height"]) == (64, 64)
    assert result.control_maps[0].size == (64, 64)


# -- first use downloads -------------------------------------------------------------------------


def test_first_use_downloads_the_annotator_through_the_studio_s_hub_code_and_never_a_pickle(world, tmp_path):
    """The stand-in hub serves the tiny depth model (with a pickle beside its safetensors) and a pose
    repository holding only a pickle; a studio with the internet makes a depth map on first use."""
    import os
    import shutil
    import subprocess
    import sys
    import textwrap

    from tests.loopback_hub import LoopbackHub

    depth = tmp_path / "depth-repo"
    shutil.copytree(world["folder"] / "depth", depth)
    (depth / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle: never fetched")
    pickles = tmp_path / "pose-repo"
    pickles.mkdir()
    (pickles / "config.json").write_text("{}")
    (pickles / "pytorch_model.bin").write_bytes(b"\x80\x04 a pickle: never fetched")
    served = LoopbackHub({DEPTH_MODEL: depth, POSE_MODEL: pickles}).start()
    try:
        program = textwrap.dedent(f"""
            import json, os
            from pathlib import Path
            from studio.errors import StudioError
            from studio.services import Studio
            from studio.settings import Settings
            studio = Studio(Settings(data_dir=Path(os.environ["STUDIO_DATA_DIR"]), device="cpu"))
            picture = studio.open_image({str(EXAMPLES / "rocket.jpg")!r})
            before = studio.models.row(studio.catalog.get({DEPTH_MODEL!r})).state
            made, _ = studio.control_map(picture, "depth", (64, 64))
            after = studio.models.row(studio.catalog.get({DEPTH_MODEL!r})).state
            try:
                studio.control_map(picture, "openpose", (64, 64))
                refused = ""
            except StudioError as exc:
                refused = str(exc)
            print(json.dumps(dict(before=before, after=after, size=made.size, levels=len(set(made.getdata())),
                                  refused=refused)))
        """)
        env = dict(os.environ, HF_ENDPOINT=served.url, HF_HOME=str(tmp_path / "home"),
                   HF_HUB_CACHE=str(tmp_path / "home" / "hub"), HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
                   STUDIO_DATA_DIR=str(tmp_path / "data"))
        for name in ("STUDIO_OFFLINE", "STUDIO_MODELS_FILE"):
            env.pop(name, None)
        done = subprocess.run([sys.executable, "-c", program], cwd=Path(__file__).resolve().parent.parent, env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        served.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["before"], result["after"]) == ("not here", "downloaded")
    assert result["size"] == [64, 64] and result["levels"] > 20
    assert "offers no safetensors" in result["refused"]
    assert not any(".bin" in request for request in served.requests)
