"""MusicGen on this machine: the plain library call in float32 against the studio's two speeds.

Builds the real-size musicgen-small architecture from its published configuration (decoder:
hidden 1024, 24 layers, 16 heads, 4 codebooks of 2048 codes; T5-base text encoder; EnCodec 32 kHz)
with random weights; timing does not depend on the weight values. Then, interleaved, for the same
prompt, 2 s and 10 s of audio, classifier-free guidance 3:
- naive: `MusicgenForConditionalGeneration` in float32, `model.generate(...)`;
- exact: `MusicBackend.generate` with speed "exact" (float32, the same tokens as naive for a seed);
- fastest: speed "fastest" (on a CPU the decoder's Linear layers in int8, dynamic quantisation);
- bf16 decoder (a candidate, not shipped unless it wins): text encoder and decoder in bfloat16.
Prints seconds per run (after one short untimed warm-up each), the ratio to naive, and how close each
inexact path's guided logits stay to float32's over the first 16 audio frames (cosine, top-1 agreement).

Run: `make bench` or `nice -n 5 .venv/bin/python benchmarks/musicgen_speed.py [--seconds 2,10] [--repeats 1]`
(`--folder DIR` keeps the built model there and reuses it).
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

from studio.backends.musicgen import MusicBackend, MusicRequest  # noqa: E402
from studio.catalog import Catalog, ModelEntry  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402

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
    parser.add_argument("--seconds", default="2,10", help="lengths of audio per run, comma-separated")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--folder", type=Path, help="build the model here once and reuse it")
    parser.add_argument("--skip-bf16", action="store_true", help="leave out the bfloat16 candidate")
    args = parser.parse_args()
    lengths = [float(x) for x in args.seconds.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "musicgen-small-random"
        if not (folder / "model.safetensors").is_file():
            started = time.perf_counter()
            build(folder)
            print(f"built the real-size musicgen-small with random weights in {time.perf_counter() - started:.0f} s")
        measure(folder, lengths, args)


def measure(folder: Path, lengths: list[float], args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    from studio.backends.musicgen_check import agreement

    naive = MusicgenForConditionalGeneration.from_pretrained(folder, use_safetensors=True).eval()
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(text=[PROMPT], padding=True, return_tensors="pt")
    print(f"parameters: {sum(p.numel() for p in naive.parameters()) / 1e6:.0f} M; 50 frames x 4 codebooks per "
          f"second of audio, guidance {args.guidance}; {torch.get_num_threads()} threads")

    entry = ModelEntry(id="bench/musicgen-small-random", name="musicgen-small (random)", family="transformers",
                       tasks=("music",), licence="n/a", size_mb=2360, source="local", path=folder)
    catalog = Catalog([entry])
    studio = MusicBackend(ModelCache(20_000), catalog, device="cpu")
    paths: dict[str, tuple[MusicBackend | None, str]] = {
        "naive fp32 generate()": (None, ""),
        "studio exact (float32)": (studio, "exact"),
        "studio fastest (int8 decoder)": (studio, "fastest"),
    }
    if not args.skip_bf16:
        paths["candidate: bf16 text+decoder"] = (MusicBackend(ModelCache(20_000), catalog, device="cpu",
                                                              dtype="bfloat16"), "exact")
    for name, (backend, speed) in paths.items():
        if backend is not None:
            load_started = time.perf_counter()
            backend._model(entry.id, speed)
            print(f"{name}: ready in {time.perf_counter() - load_started:.1f} s")

    print("\nfaithfulness (the same token history through both, guided logits):")
    for name, (backend, speed) in paths.items():
        if backend is not None and not (backend is studio and speed == "exact"):
            model, _, _ = backend._model(entry.id, speed)
            print(f"  {name:32} {agreement(naive, model, processor, PROMPT, 16, args.guidance).line()}", flush=True)

    def run(backend, speed: str, seconds: float) -> float:
        t = time.perf_counter()
        if backend is None:
            torch.manual_seed(0)
            with torch.inference_mode():
                naive.generate(**inputs, do_sample=True, guidance_scale=args.guidance,
                               max_new_tokens=max(1, int(round(seconds * 50))))
        else:
            backend.generate(MusicRequest(prompt=PROMPT, seconds=seconds, guidance=args.guidance, model=entry.id,
                                          speed=speed))
        return time.perf_counter() - t

    # One short untimed run each first: the first call pays for one-off allocations and kernel choice.
    for backend, speed in paths.values():
        run(backend, speed, 0.2)
    times: dict[tuple[str, float], list[float]] = {}
    for repeat in range(args.repeats):
        for seconds in lengths:
            for name, (backend, speed) in paths.items():
                took = run(backend, speed, seconds)
                times.setdefault((name, seconds), []).append(took)
                print(f"  run {repeat + 1}, {seconds:g} s of audio: {name:32} {took:7.2f} s", flush=True)
    print(f"\nMusicGen-small architecture, guidance {args.guidance}, {args.repeats} interleaved run(s) each "
          "(median seconds; ratio = naive / path):")
    for seconds in lengths:
        naive_median = statistics.median(times[("naive fp32 generate()", seconds)])
        for name in paths:
            median = statistics.median(times[(name, seconds)])
            print(f"  {seconds:4g} s audio  {name:32} {median:8.2f} s   {median / seconds:6.2f} s per s   "
                  f"{naive_median / median:5.2f}x")


if __name__ == "__main__":
    main()
