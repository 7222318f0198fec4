"""Shared fixtures: tiny random-weight models saved like their hub repositories, built once per session."""

from __future__ import annotations

import os

import pytest

from tests.tiny_models import build_tiny_causal_lm, build_tiny_musicgen, build_tiny_sd, build_tiny_taesd

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_sd_path(tmp_path_factory):
    """A tiny Stable Diffusion pipeline folder laid out like stabilityai/sd-turbo."""
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


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
