"""Hub models: found in the local cache, or one clear message; never a pickle, never the network here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio import hub
from studio.catalog import ModelEntry, load_catalog
from studio.errors import ModelUnavailable, StudioError

ROOT = Path(__file__).resolve().parent.parent


def _fake_hub_cache(hf_home: Path, repo: str, files: dict[str, bytes]) -> Path:
    """The layout huggingface_hub writes: models--owner--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    for name, data in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(data)
    return snapshot


def test_offline_and_not_cached_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    entry = load_catalog().get("stabilityai/sd-turbo")
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable) as caught:
        hub.locate(entry, offline=True)
    assert time.perf_counter() - started < 5
    message = str(caught.value)
    for words in ("SD-Turbo", "stabilityai/sd-turbo", "2.5 GB", "python -m studio download stabilityai/sd-turbo",
                  "HF_HOME", "--models-file"):
        assert words in message


def test_a_cached_snapshot_is_found_without_the_network(tmp_path):
    snapshot = _fake_hub_cache(
        tmp_path, "madebyollin/taesd", {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"x" * 16}
    )
    code = (
        "from studio import hub; from studio.catalog import load_catalog; "
        "print(hub.locate(load_catalog().get('madebyollin/taesd'), offline=True))"
    )
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == snapshot


def test_a_snapshot_without_weights_does_not_count(tmp_path, monkeypatch):
    _fake_hub_cache(tmp_path, "madebyollin/taesd", {"config.json": b"{}"})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelUnavailable):
        hub.locate(load_catalog().get("madebyollin/taesd"), offline=True)


def test_downloads_never_include_pickles_and_take_one_variant():
    catalog = load_catalog()
    allow, ignore = hub.download_patterns(catalog.get("stabilityai/sd-turbo"))
    assert "*.fp16.safetensors" in allow and not any(p.endswith(".bin") for p in allow)
    for unsafe in ("*.bin", "*.ckpt", "*.pt", "*.pth", "*.pkl"):
        assert unsafe in ignore
    allow, ignore = hub.download_patterns(catalog.get("HuggingFaceTB/SmolLM2-360M-Instruct"))
    assert allow is None and "*.bin" in ignore


def test_local_entries(tmp_path):
    entry = ModelEntry(id="mine", name="Mine", family="diffusers", tasks=("txt2img",), licence="x", size_mb=1,
                       source="local", path=tmp_path / "model")
    with pytest.raises(StudioError, match="does not exist"):
        hub.locate(entry, offline=True)
    (tmp_path / "model").mkdir()
    assert hub.locate(entry, offline=True) == tmp_path / "model"


def test_cli_download_explains_in_one_line(tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_CACHE=str(tmp_path / "hub"), STUDIO_OFFLINE="1",
               STUDIO_DATA_DIR=str(tmp_path / "data"))
    for args, words in (
        (["download", "facebook/musicgen-small"], "python -m studio download facebook/musicgen-small"),
        (["download", "magenta-style-26"], "built in"),
        (["download", "no/such-model"], "not in the model catalogue"),
    ):
        done = subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and words in errors[0], done.stderr
        assert "Traceback" not in done.stderr
