"""MusicGen through the studio's real path (from_pretrained, safetensors) on the tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.backends.musicgen import MusicBackend, MusicRequest
from studio.catalog import Catalog, ModelEntry, load_catalog
from studio.errors import Cancelled, InputError, ModelUnavailable
from studio.runtime import CancelToken, ModelCache

TINY_ID = "local/tiny-musicgen"


@pytest.fixture(scope="module")
def backend(tiny_musicgen_path):
    entry = ModelEntry(id=TINY_ID, name="tiny MusicGen", family="transformers", tasks=("music",), licence="MIT",
                       size_mb=1, source="local", path=tiny_musicgen_path)
    return MusicBackend(ModelCache(1024), Catalog([entry]), device="cpu")


def test_text_to_audio_through_the_real_musicgen_path(backend):
    steps = []
    result = backend.generate(MusicRequest(prompt="calm piano melody", seconds=0.1, model=TINY_ID),
                              progress=lambda done, total, preview=None: steps.append((done, total)))
    model, _, _ = backend._model(TINY_ID)
    hop = int(np.prod(model.config.audio_encoder.upsampling_ratios))
    frames = round(0.1 * backend.frame_rate(model))
    assert result.sample_rate == 8000
    # MusicGen's delay pattern costs (codebooks - 1) frames; the rest is audio.
    assert len(result.audio) == (frames - model.decoder.num_codebooks + 1) * hop
    assert np.isfinite(result.audio).all() and np.abs(result.audio).max() <= 1.0 and result.audio.std() > 0
    assert steps[0] == (0, frames) and steps[-1] == (frames, frames)
    assert result.params["model"] == TINY_ID and result.params["dtype"] in ("bfloat16", "float32")
    assert result.params["guidance"] == 3.0 and result.params["seed"] == 0


def test_same_seed_same_music_other_seed_other_music(backend, monkeypatch):
    # The tiny random codec decodes every code sequence to nearly the same sound, so compare the
    # audio codes the decoder hands to EnCodec, and the audio for equality.
    model, _, _ = backend._model(TINY_ID)
    codes = []
    decode = model.audio_encoder.decode
    monkeypatch.setattr(model.audio_encoder, "decode", lambda c, *a, **k: codes.append(c.clone()) or decode(c, *a, **k))
    request = MusicRequest(prompt="happy guitar song", seconds=0.1, seed=5, model=TINY_ID)
    a = backend.generate(request).audio
    b = backend.generate(request).audio
    backend.generate(MusicRequest(prompt="happy guitar song", seconds=0.1, seed=6, model=TINY_ID))
    assert np.array_equal(a, b) and codes[0].equal(codes[1])
    assert (codes[0] != codes[2]).float().mean() > 0.5


def test_stop_ends_generation(backend):
    token = CancelToken()

    def stop_after_three(done, total, preview=None):
        if done >= 3:
            token.cancel()

    with pytest.raises(Cancelled):
        backend.generate(MusicRequest(prompt="slow drums", seconds=0.2, model=TINY_ID), progress=stop_after_three,
                         cancel=token)


@pytest.mark.parametrize(
    "kwargs, words",
    [({"prompt": "  "}, "Describe the music"), ({"seconds": 0}, "between 0.1 and 30"),
     ({"seconds": 600}, "between 0.1 and 30"), ({"guidance": 0.2}, "guidance"),
     ({"speed": "turbo"}, "speed must be .exact. or .fastest.")],
)
def test_bad_requests_are_explained(backend, kwargs, words):
    request = MusicRequest(**{"prompt": "piano", "model": TINY_ID, **kwargs})
    with pytest.raises(InputError, match=words):
        backend.generate(request)


def test_missing_model_offline_is_one_clear_message():
    backend = MusicBackend(ModelCache(1024), load_catalog(), device="cpu", offline=True)
    with pytest.raises(ModelUnavailable) as caught:
        backend.generate(MusicRequest(prompt="piano"))
    message = str(caught.value)
    assert "MusicGen small" in message and "2.3 GB" in message
    assert "python -m studio download facebook/musicgen-small" in message and "models file" in message


def build_tiny_musicgen_melody(path):
    """A tiny MusicGen-Melody laid out like facebook/musicgen-melody: T5 text encoder, EnCodec, a decoder
    that also reads a 12-bin chroma of the melody."""
    import torch
    from transformers import (
        EncodecConfig,
        GenerationConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
    )

    from tests.tiny_models import _t5_tokenizer

    torch.manual_seed(0)
    tokenizer = _t5_tokenizer()
    text = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                    relative_attention_num_buckets=8, relative_attention_max_distance=32,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                    decoder_start_token_id=tokenizer.pad_token_id)
    codec = EncodecConfig(sampling_rate=8000, audio_channels=1, hidden_size=16, num_filters=4, num_residual_layers=1,
                          upsampling_ratios=[4, 4], num_lstm_layers=1, codebook_size=64, target_bandwidths=[6.0],
                          use_causal_conv=False)
    decoder = MusicgenMelodyDecoderConfig(vocab_size=64, max_position_embeddings=256, num_hidden_layers=2, ffn_dim=64,
                                          num_attention_heads=4, hidden_size=32, num_codebooks=2, audio_channels=1,
                                          pad_token_id=64, bos_token_id=64)
    config = MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec, decoder=decoder, num_chroma=12,
                                  chroma_length=32)
    model = MusicgenMelodyForConditionalGeneration(config)
    model.generation_config = GenerationConfig(decoder_start_token_id=64, bos_token_id=64, pad_token_id=64,
                                               do_sample=True, guidance_scale=3.0, max_length=64)
    model.save_pretrained(path, safe_serialization=True)
    # The hub repository's processor files: the tokenizer and the chroma extractor's settings.
    tokenizer.save_pretrained(path)
    (path / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "MusicgenMelodyFeatureExtractor", "processor_class": "MusicgenMelodyProcessor",
        "sampling_rate": 8000, "n_fft": 1024, "hop_length": 256, "chunk_length": 4, "num_chroma": 12,
        "feature_size": 12, "padding_value": 0.0}))
    return path


def test_a_melody_model_follows_a_recorded_tune(tmp_path_factory, tmp_path):
    from studio.media.audio import load_audio
    from tests.test_music_media import hummed

    folder = build_tiny_musicgen_melody(tmp_path_factory.mktemp("tiny-musicgen-melody"))
    entry = ModelEntry(id="local/tiny-melody", name="tiny MusicGen melody", family="transformers", tasks=("music",),
                       licence="MIT", size_mb=1, source="local", path=folder)
    backend = MusicBackend(ModelCache(1024), Catalog([entry]), device="cpu")
    model, _, _ = backend._model(entry.id)
    chroma = []
    project = model.audio_enc_to_dec_proj.forward
    model.audio_enc_to_dec_proj.forward = lambda x: chroma.append(x.float().clone()) or project(x)
    clip = load_audio(hummed(tmp_path), 60, sample_rate=None)
    request = MusicRequest(prompt="calm piano", seconds=0.1, model=entry.id)
    result = backend.generate(request, clip)
    assert result.params["melody_seconds"] == pytest.approx(clip.seconds, abs=0.01) and result.audio.size > 0
    # The melody reached the decoder: its chroma is not the 'no melody' placeholder (all weight on bin 0).
    assert chroma and chroma[0].shape[-1] == 12 and chroma[0][0, :, 1:].abs().sum() > 0


def test_a_text_only_model_says_it_cannot_follow_a_melody(backend, tmp_path):
    from studio.media.audio import load_audio
    from tests.test_music_media import hummed

    clip = load_audio(hummed(tmp_path), 60, sample_rate=None)
    with pytest.raises(InputError, match="follows text only"):
        backend.generate(MusicRequest(prompt="calm piano", seconds=0.1, model=TINY_ID), clip)


def _codes_of(model, monkeypatch) -> list:
    """The audio codes each run hands to EnCodec (the tiny codec makes nearly the same sound of any)."""
    codes = []
    decode = model.audio_encoder.decode
    monkeypatch.setattr(model.audio_encoder, "decode", lambda c, *a, **k: codes.append(c.clone()) or decode(c, *a, **k))
    return codes


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_the_exact_speed_samples_the_same_codes_as_the_plain_library_call(backend, tiny_musicgen_path, monkeypatch,
                                                                         guidance):
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    naive = MusicgenForConditionalGeneration.from_pretrained(tiny_musicgen_path, use_safetensors=True).eval()
    processor = AutoProcessor.from_pretrained(tiny_musicgen_path)
    naive_codes = _codes_of(naive, monkeypatch)
    frames = round(0.1 * backend.frame_rate(naive))
    torch.manual_seed(11)
    naive.generate(**processor(text=["warm strings"], padding=True, return_tensors="pt"), do_sample=True,
                   guidance_scale=guidance if guidance > 1 else None, temperature=1.0, top_k=250, max_new_tokens=frames)
    model, _, _ = backend._model(TINY_ID, "exact")
    studio_codes = _codes_of(model, monkeypatch)
    result = backend.generate(MusicRequest(prompt="warm strings", seconds=0.1, guidance=guidance, seed=11,
                                           model=TINY_ID, speed="exact"))
    assert naive_codes[0].shape == studio_codes[0].shape and naive_codes[0].equal(studio_codes[0])
    assert result.params["speed"] == "exact" and result.params["path"] == "float32"


def test_the_fastest_speed_runs_an_int8_decoder_that_stays_close_to_float32(backend):
    import torch

    from studio.backends.musicgen_check import agreement

    exact, processor, _ = backend._model(TINY_ID, "exact")
    fast, _, _ = backend._model(TINY_ID, "fastest")
    quantised = [m for m in fast.decoder.model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantised) == 2 * 10  # 2 layers: self and cross attention (4 each) and the 2 feed-forward Linears
    assert all(m.weight().qscheme() == torch.per_channel_affine for m in quantised)
    assert type(exact.decoder.model.decoder.layers[0].fc1) is torch.nn.Linear  # the float32 model is untouched
    assert fast.text_encoder is exact.text_encoder and fast.audio_encoder is exact.audio_encoder
    close = agreement(exact, fast, processor, "calm piano melody", steps=16)
    assert close.steps == 16 and close.cosine_min > 0.99 and close.top1 > 0.9, close.line()
    same = agreement(exact, exact, processor, "calm piano melody", steps=4)
    assert same.cosine_min > 0.99999 and same.top1 == 1.0


def test_the_fastest_speed_makes_audio_reports_progress_and_stops(backend):
    steps = []
    result = backend.generate(MusicRequest(prompt="calm piano melody", seconds=0.1, model=TINY_ID, speed="fastest"),
                              progress=lambda done, total, preview=None: steps.append((done, total)))
    assert result.params["speed"] == "fastest" and result.params["path"] == "int8 decoder"
    assert np.isfinite(result.audio).all() and result.audio.std() > 0
    assert steps[0] == (0, steps[-1][1]) and steps[-1][0] == steps[-1][1] and len(steps) > 3
    token = CancelToken()

    def stop_after_three(done, total, preview=None):
        if done >= 3:
            token.cancel()

    with pytest.raises(Cancelled):
        backend.generate(MusicRequest(prompt="slow drums", seconds=0.2, model=TINY_ID, speed="fastest"),
                         progress=stop_after_three, cancel=token)


def test_a_record_from_before_the_speed_choice_reruns_exact_and_a_newer_one_keeps_its_speed():
    from studio.services.music import music_request_from

    old = {"prompt": "calm piano", "seconds": 2.0, "guidance": 3.0, "seed": 4, "model": "musicgen-small"}
    assert music_request_from(old).speed == "exact"
    assert music_request_from({**old, "speed": "fastest"}).speed == "fastest"
