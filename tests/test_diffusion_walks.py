"""Prompt/seed walks, audio-paced walks and image morphs on the tiny SD pipeline, through the real loading code."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import soundfile

from studio.backends.diffusion import DiffusionBackend, ImageRequest
from studio.backends.diffusion.walks import (
    Keyframe,
    MorphRequest,
    PromptWalkRequest,
    image_morph,
    prompt_walk,
)
from studio.catalog import load_catalog
from studio.errors import InputError
from studio.media.images import LoadedImage
from studio.media.interpolation import evenness
from studio.runtime import CancelToken, ModelCache
from studio.services import Studio
from studio.settings import Settings
from tests.image_models import TINY_SD, TINY_TAESD, write_models_file

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ImageRequest("walk", model=TINY_SD, decoder=TINY_TAESD, width=64, height=64, steps=2)
KEYS = (Keyframe("a red cat on the beach", 1), Keyframe("a blue dog in the snow", 2))


@pytest.fixture(scope="module")
def models_file(tmp_path_factory, tiny_sd_path, tiny_taesd_path):
    return write_models_file(tmp_path_factory.mktemp("models"), tiny_sd_path, tiny_taesd_path)


@pytest.fixture(scope="module")
def backend(models_file):
    return DiffusionBackend(ModelCache(2048), load_catalog(models_file), device="cpu", offline=True)


def _px(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_first_and_last_frames_are_the_image_tabs_own_pictures(backend):
    result = prompt_walk(backend, PromptWalkRequest(keyframes=KEYS, frames_between=6, settings=SETTINGS))
    assert len(result.frames) == 8
    first = backend.generate(replace(SETTINGS, prompt=KEYS[0].prompt, seed=1)).images[0]
    last = backend.generate(replace(SETTINGS, prompt=KEYS[1].prompt, seed=2)).images[0]
    assert np.array_equal(_px(result.frames[0]), _px(first))
    assert np.array_equal(_px(result.frames[-1]), _px(last))
    ratio = evenness([_px(f) for f in result.frames])
    print(f"prompt walk evenness (max/median step): {ratio:.2f}")
    assert ratio < 3.0
    assert result.params["keyframes"][1] == {"prompt": KEYS[1].prompt, "seed": 2}


def test_batching_does_not_change_the_in_between_frames_much(backend):
    one = prompt_walk(backend, PromptWalkRequest(keyframes=KEYS, frames_between=3, settings=SETTINGS, batch=1))
    four = prompt_walk(backend, PromptWalkRequest(keyframes=KEYS, frames_between=3, settings=SETTINGS, batch=4))
    for a, b in zip(one.frames, four.frames, strict=True):
        assert np.abs(_px(a) - _px(b)).mean() < 2.0  # same frames, up to float rounding in a batch


def test_guided_walk_with_a_negative_prompt_and_three_keyframes(backend):
    keys = (*KEYS, Keyframe("a green bird", 3))
    settings = replace(SETTINGS, guidance=3.0, negative_prompt="blurry")
    result = prompt_walk(backend, PromptWalkRequest(keyframes=keys, frames_between=2, settings=settings))
    assert len(result.frames) == 7
    middle = backend.generate(replace(settings, prompt=keys[1].prompt, seed=2)).images[0]
    assert np.array_equal(_px(result.frames[3]), _px(middle))


def test_stop_keeps_the_first_frames(backend):
    token = CancelToken()

    def progress(done, total, preview=None):
        if done == 3:
            token.cancel()

    result = prompt_walk(backend, PromptWalkRequest(keyframes=KEYS, frames_between=8, settings=SETTINGS, batch=1),
                         progress=progress, cancel=token)
    assert result.stopped and 1 <= len(result.frames) < 10


@pytest.mark.parametrize(
    "request_, words",
    [
        (PromptWalkRequest(keyframes=KEYS[:1], settings=SETTINGS), "at least two keyframes"),
        (PromptWalkRequest(keyframes=(Keyframe("", 1), KEYS[1]), settings=SETTINGS), "Write a prompt"),
        (PromptWalkRequest(keyframes=KEYS, frames_between=500, settings=SETTINGS), "limit is 240"),
        (PromptWalkRequest(keyframes=(Keyframe("x", -5), KEYS[1]), settings=SETTINGS), "seed"),
        (PromptWalkRequest(keyframes=KEYS, settings=replace(SETTINGS, width=70)), "multiple of 8"),
    ],
)
def test_bad_walks_are_explained(backend, request_, words):
    with pytest.raises(InputError, match=words):
        prompt_walk(backend, request_)


def test_two_identical_keyframes_give_a_still_walk(backend):
    same = (KEYS[0], KEYS[0])
    frames = prompt_walk(backend, PromptWalkRequest(keyframes=same, frames_between=2, settings=SETTINGS)).frames
    assert all(np.abs(_px(f) - _px(frames[0])).mean() < 1.0 for f in frames)


def test_morph_between_two_pictures_of_different_sizes(backend):
    a = backend.generate(replace(SETTINGS, prompt="a red cat", seed=5)).images[0]
    b = backend.generate(replace(SETTINGS, prompt="a blue sea", seed=6, width=128, height=64)).images[0]
    result = image_morph(backend, a, b, MorphRequest(frames=6, size=64, model=TINY_SD))
    assert len(result.frames) == 6 and result.frames[0].size == (64, 64)
    assert "fitted" in result.params["notes"][0]
    assert evenness([_px(f) for f in result.frames]) < 3.0
    with pytest.raises(InputError, match="between 2 and"):
        image_morph(backend, a, b, MorphRequest(frames=1, size=64, model=TINY_SD))


def _song(path: Path) -> Path:
    rate = 22050
    t = np.arange(rate * 4) / rate
    samples = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    hit = np.random.default_rng(0).standard_normal(200).astype(np.float32) * 0.8
    for beat in np.arange(2.0, 4.0, 0.25):
        samples[int(beat * rate) : int(beat * rate) + 200] += hit
    soundfile.write(path, samples, rate)
    return path


def test_audio_synced_walk_follows_the_beat_and_carries_the_song(tmp_path, models_file):
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=models_file, device="cpu", offline=True))
    walk = PromptWalkRequest(keyframes=KEYS, frames_between=10, settings=SETTINGS)
    outcome = studio.prompt_walk(walk, audio=_song(tmp_path / "song.wav"))
    positions = [t for _, t in outcome.params["positions"]]
    assert positions[0] == 0.0 and positions[-1] == 1.0 and positions[6] < 0.2  # quiet first half: little motion
    assert outcome.params["fps"] == pytest.approx(12 / 4.0)  # 12 frames over 4 seconds
    probe = subprocess.run([_ffmpeg(), "-hide_banner", "-i", str(outcome.item.file)], capture_output=True, text=True)
    assert "Audio:" in probe.stderr and "Video:" in probe.stderr
    again = studio.rerun(outcome.item.id)  # the song was kept with the item
    assert again.params["positions"] == outcome.params["positions"]


def test_morph_and_walk_are_kept_and_re_run(tmp_path, models_file):
    studio = Studio(Settings(data_dir=tmp_path / "data", models_file=models_file, device="cpu", offline=True))
    walk = studio.prompt_walk(PromptWalkRequest(keyframes=KEYS, frames_between=1, settings=SETTINGS))
    assert iio.imread(walk.item.file, index=None, plugin="FFMPEG").shape[0] == 3
    rerun = studio.rerun(walk.item.id)
    assert iio.imread(rerun.file, index=None, plugin="FFMPEG").shape[0] == 3
    pictures = [LoadedImage(f) for f in walk.frames[::2]]
    morph = studio.image_morph(pictures[0], pictures[1], MorphRequest(frames=4, size=64, model=TINY_SD))
    assert studio.rerun(morph.item.id).params["frames_made"] == 4


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def test_cli_walk(tmp_path, models_file):
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path / "data"), STUDIO_MODELS_FILE=str(models_file),
               STUDIO_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "studio", "walk", "--prompt", "a cat", "--seed", "1", "--prompt", "a dog", "--seed",
         "2", "--frames", "5", "--model", TINY_SD, "--size", "64x64", "--out", str(tmp_path / "walk.gif")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert iio.imread(tmp_path / "walk.gif", index=None).shape[:3] == (5, 64, 64)
    done = subprocess.run([sys.executable, "-m", "studio", "walk", "--prompt", "a cat", "--seed", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "two or more keyframes" in done.stderr
