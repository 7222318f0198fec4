"""MusicGen on this machine: the plain library call in float32 versus the studio's path.

Builds the real-size musicgen-small architecture from its published configuration (decoder:
hidden 1024, 24 layers, 16 heads, 4 codebooks of 2048 codes; T5-base text encoder; EnCodec 32 kHz)
with random weights; timing does not depend on the weight values. Then, interleaved, for the same
prompt and the same length of audio with classifier-free guidance:
- naive: `MusicgenForConditionalGeneration` in float32, `model.generate(...)`;
- studio: `MusicBackend.generate` loading the same folder through the studio's own code (inference mode,
  progress + Stop hooks, float32 EnCodec), with the dtype it chooses for this CPU (bfloat16 text encoder
  and decoder only where the CPU has native bfloat16) and, for comparison, forced to bfloat16.
Prints seconds per run (after one short untimed warm-up each) and seconds per second of audio,
side by side.

Run: `make bench` or `nice -n 5 .venv/bin/python benchmarks/musicgen_speed.py [--seconds 2] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.backends.musicgen import MusicBackend, MusicRequest, studio_dtype  # noqa: E402
from studio.catalog import Catalog, ModelEntry  # noqa: E402
from studio.runtime import ModelCache, torch_device  # noqa: E402

PROMPT = "happy piano melody with slow drums"


def musicgen_small_config():
    """facebook/musicgen-small's published configuration, written out."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                    relative_attention_num_buckets=32, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1)
    audio = EncodecConfig(sampling_rate=32000, audio_channels=1, hidden_size=128, num_filters=64,
                          num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], codebook_size=2048,
                          codebook_dim=128, target_bandwidths=[2.2], num_lstm_layers=2, use_causal_conv=False,
                          normalize=False, pad_mode="reflect", norm_type="weight_norm")
    decoder = MusicgenDecoderConfig(vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=24,
                                    ffn_dim=4096, num_attention_heads=16, hidden_size=1024, num_codebooks=4,
                                    audio_channels=1, activation_function="gelu", pad_token_id=2048,
                                    bos_token_id=2048)
    return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def build(folder: Path) -> None:
    import torch
    from transformers import (
        EncodecFeatureExtractor,
        GenerationConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    from tests.tiny_models import _t5_tokenizer

    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(musicgen_small_config())
    model.generation_config = GenerationConfig(decoder_start_token_id=2048, bos_token_id=2048, pad_token_id=2048,
                                               do_sample=True, guidance_scale=3.0, max_length=1500, top_k=250)
    model.save_pretrained(folder, safe_serialization=True)
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=32000, padding_value=0.0)
    MusicgenProcessor(feature_extractor=extractor, tokenizer=_t5_tokenizer()).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--guidance", type=float, default=3.0)
    args = parser.parse_args()

    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "musicgen-small-random"
        started = time.perf_counter()
        build(folder)
        print(f"built the real-size musicgen-small with random weights in {time.perf_counter() - started:.0f} s")

        naive = MusicgenForConditionalGeneration.from_pretrained(folder, use_safetensors=True)
        processor = AutoProcessor.from_pretrained(folder)
        frames = int(round(args.seconds * 50))
        inputs = processor(text=[PROMPT], padding=True, return_tensors="pt")
        print(f"parameters: {sum(p.numel() for p in naive.parameters()) / 1e6:.0f} M; "
              f"{args.seconds:g} s of audio = {frames} frames x 4 codebooks, guidance {args.guidance}")

        entry = ModelEntry(id="bench/musicgen-small-random", name="musicgen-small (random)", family="transformers",
                           tasks=("music",), licence="n/a", size_mb=2360, source="local", path=folder)
        request = MusicRequest(prompt=PROMPT, seconds=args.seconds, guidance=args.guidance, model=entry.id)
        chosen = str(studio_dtype(torch_device("cpu"))).removeprefix("torch.")
        paths = {
            "naive fp32 generate()": None,
            f"studio path ({chosen}: its choice here)": MusicBackend(ModelCache(20_000), Catalog([entry]), device="cpu"),
            "studio path, forced bf16": MusicBackend(ModelCache(20_000), Catalog([entry]), device="cpu",
                                                     dtype="bfloat16"),
        }
        for name, backend in paths.items():
            if backend is not None:
                load_started = time.perf_counter()
                backend._model(entry.id)
                print(f"{name}: loaded in {time.perf_counter() - load_started:.1f} s")

        def run(backend, seconds: float) -> float:
            t = time.perf_counter()
            if backend is None:
                torch.manual_seed(0)
                naive.generate(**inputs, do_sample=True, guidance_scale=args.guidance,
                               max_new_tokens=max(1, int(round(seconds * 50))))
            else:
                backend.generate(MusicRequest(prompt=PROMPT, seconds=seconds, guidance=args.guidance, model=entry.id))
            return time.perf_counter() - t

        # One short untimed run each first: the first call pays for one-off allocations and kernel choice.
        for backend in paths.values():
            run(backend, 0.2)
        times: dict[str, list[float]] = {name: [] for name in paths}
        for repeat in range(args.repeats):
            for name, backend in paths.items():
                seconds = run(backend, request.seconds)
                times[name].append(seconds)
                print(f"  run {repeat + 1}: {name:40} {seconds:6.2f} s", flush=True)
        print(f"\nMusicGen-small architecture, {args.seconds:g} s of audio, guidance {args.guidance}, "
              f"{torch.get_num_threads()} threads, {args.repeats} interleaved runs each:")
        print(f"  {'':40} {'median':>8} {'best':>8}   s per s of audio   vs naive (median)")
        naive_median = statistics.median(times["naive fp32 generate()"])
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:40} {median:7.2f}s {min(values):7.2f}s   {median / args.seconds:12.2f}   "
                  f"{naive_median / median:8.2f}x")


if __name__ == "__main__":
    main()
