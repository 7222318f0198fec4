"""Shared fixtures: tiny random-weight models saved like their hub repositories, built once per session."""

from __future__ import annotations

import os

import pytest

from tests.running_app import RunningApp
from tests.tiny_models import build_tiny_causal_lm, build_tiny_musicgen, build_tiny_sd, build_tiny_taesd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_sd_path(tmp_path_factory):
    """A tiny Stable Diffusion pipeline folder laid out like stabilityai/sd-turbo."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_sd15_path(tmp_path_factory):
    """A tiny Stable Diffusion pipeline with SD 1.5's architecture (the tiny SD above is SD 2.x-like)."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd15"), like_sd15=True)


@pytest.fixture(scope="session")
def tiny_taesd_path(tmp_path_factory):
    """A tiny AutoencoderTiny folder laid out like madebyollin/taesd."""
    return build_tiny_taesd(tmp_path_factory.mktemp("tiny-taesd"))


@pytest.fixture(scope="session")
def tiny_lm_path(tmp_path_factory):
    """A tiny Llama causal LM with a ChatML tokenizer, laid out like SmolLM2-Instruct."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def tiny_musicgen_path(tmp_path_factory):
    """A tiny MusicGen model and processor, laid out like facebook/musicgen-small."""
    return build_tiny_musicgen(tmp_path_factory.mktemp("tiny-musicgen"))


@pytest.fixture(scope="session")
def catalog(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    """The catalogue with the tiny SD pipeline and tiny TAESD as local entries, loaded by the real code."""
    from studio.catalog import load_catalog
    from tests.image_models import write_models_file

    return load_catalog(write_models_file(tmp_path_factory.mktemp("models"), tiny_sd_path, tiny_taesd_path))


@pytest.fixture(scope="session")
def open_studio(tmp_path_factory, tiny_sd_path, tiny_taesd_path, tiny_musicgen_path):
    """The running studio as strangers meet it (no login), with the tiny models in its catalogue and a few
    files uploaded; `args` holds valid arguments for every endpoint. Shared by the security and fuzz tests."""
    from tests.endpoint_args import baseline, uploads, write_models_file

    folder = tmp_path_factory.mktemp("open-studio")
    models = write_models_file(folder, tiny_sd_path, tiny_taesd_path, tiny_musicgen_path)
    uploads_dir = folder / "gradio"  # Gradio's upload folder and cache, where visitors' files land
    with RunningApp(folder / "data", "--models-file", str(models), "--offline",
                    env={"GRADIO_TEMP_DIR": str(uploads_dir)}) as running:
        running.uploads_dir = uploads_dir
        running.args = baseline(uploads(running.url, folder / "inputs"))
        yield running
