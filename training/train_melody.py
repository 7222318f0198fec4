"""Train the studio's melody model on the corpus inside music21, and write its report.

    make train-melody          (or: nice -n 5 .venv/bin/python training/train_melody.py)

Steps: parse the corpus once (cached under --cache-dir), hold out one tune in 20, train a small
Llama-style causal transformer (transformers' classes) on the other tunes, each drawn in a random
transposition, then compare its held-out negative log-likelihood per token with interpolated
Kneser-Ney n-grams fitted to the same training tunes in the same transpositions. Writes
model.safetensors, config.json, vocab.json, corpus_stats.json and REPORT.md to --out
(assets/melody-model/). Seeded: the same command gives the same model on the same machine.
Runs on a CPU (2 cores: about half an hour); uses a GPU when there is one.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.media.melody_corpus import CorpusTune, load_corpus, meta_path, split  # noqa: E402
from studio.media.melody_tokens import (  # noqa: E402
    BAR_ID,
    BOS_ID,
    END_ID,
    HEADER_LENGTH,
    HIGHEST_PITCH,
    LOWEST_PITCH,
    MODES,
    PAD_ID,
    PITCH_IDS,
    TOKEN_ID,
    VOCAB,
    encode,
)
from training.ngram import KneserNey  # noqa: E402

FIRST_PITCH_ID = PITCH_IDS[LOWEST_PITCH]
LAST_PITCH_ID = PITCH_IDS[HIGHEST_PITCH]
FIRST_KEY_ID = TOKEN_ID["KEY_0"]
TRANSPOSITIONS = range(-6, 6)


def transpose_ids(ids: np.ndarray, semitones: int) -> np.ndarray:
    out = ids.copy()
    pitches = (ids >= FIRST_PITCH_ID) & (ids <= LAST_PITCH_ID)
    out[pitches] += semitones
    out[2] = FIRST_KEY_ID + (ids[2] - FIRST_KEY_ID + semitones) % 12
    return out


def valid_shifts(ids: np.ndarray) -> list[int]:
    pitches = ids[(ids >= FIRST_PITCH_ID) & (ids <= LAST_PITCH_ID)]
    low, high = int(pitches.min()), int(pitches.max())
    return [k for k in TRANSPOSITIONS if low + k >= FIRST_PITCH_ID and high + k <= LAST_PITCH_ID]


def window(ids: np.ndarray, length: int, rng: random.Random) -> np.ndarray:
    """The header plus a run of whole bars fitting `length` tokens (a random start for long tunes)."""
    if len(ids) <= length:
        return ids
    body = ids[HEADER_LENGTH:]
    starts = [0] + [i + 1 for i in np.flatnonzero(body == BAR_ID) if i + 1 < len(body) - 8]
    start = rng.choice(starts)
    return np.concatenate([ids[:HEADER_LENGTH], body[start : start + length - HEADER_LENGTH]])


def corpus_stats(tunes: list[CorpusTune]) -> dict:
    """Pitch-class histograms relative to the tonic, per mode (note counts), for quality checks."""
    counts = {mode: np.zeros(12) for mode in MODES}
    for tune in tunes:
        m = tune.melody
        for note in m.notes():
            counts[m.mode][(note.pitch - m.tonic) % 12] += 1
    return {
        "pitch_class_histogram_from_tonic": {
            mode: (c / max(c.sum(), 1)).round(5).tolist() for mode, c in counts.items()
        },
        "tunes_per_mode": dict(collections.Counter(t.melody.mode for t in tunes)),
        "tunes_per_meter": dict(collections.Counter(t.melody.meter for t in tunes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the studio's melody model.")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "melody-model")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "studio-data" / "cache")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=256, help="tokens per training window")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes parsing the corpus")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="skip training: evaluate the model already in --out and rewrite the report")
    args = parser.parse_args()

    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.perf_counter()

    tunes = load_corpus(args.cache_dir, args.workers, report=lambda d, n: print(f"\rparsing {d}/{n}", end=""))
    parse_seconds = time.perf_counter() - started
    train_tunes, held_out = split(tunes)
    print(f"\ncorpus: {len(tunes)} tunes ({len(train_tunes)} training, {len(held_out)} held out) "
          f"ready in {parse_seconds:.0f} s")
    train_ids = [np.asarray(encode(t.melody), dtype=np.int64) for t in train_tunes]
    train_shifts = [valid_shifts(ids) for ids in train_ids]
    val_ids = [np.asarray(encode(t.melody), dtype=np.int64)[: args.context] for t in held_out]

    run_file = args.out / "training_run.json"
    if args.evaluate_only:
        model = LlamaForCausalLM.from_pretrained(args.out, use_safetensors=True, dtype=torch.float32).to(device)
        run = json.loads(run_file.read_text())
    else:
        model, run = train(args, train_ids, train_shifts, device)
        args.out.mkdir(parents=True, exist_ok=True)
        model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=END_ID, pad_token_id=PAD_ID)
        model.to("cpu").save_pretrained(args.out, safe_serialization=True)
        model.to(device)
        (args.out / "vocab.json").write_text(json.dumps({"tokens": list(VOCAB)}, indent=0) + "\n")
        run_file.write_text(json.dumps(run, indent=1) + "\n")
    parameters = sum(p.numel() for p in model.parameters())
    train_seconds = run["train_seconds"]

    model.eval()
    model_nll, tokens = held_out_nll(model, val_ids, device)
    print(f"held-out NLL per token: model {model_nll:.4f} nats over {tokens} tokens")

    ngram_started = time.perf_counter()
    ngram_train = [transpose_ids(ids, k) for ids, shifts in zip(train_ids, train_shifts, strict=True) for k in shifts]
    ngram_results = {}
    for order in (3, 4, 5, 6, 8, 9):  # 9: the longest history packed codes hold
        lm = KneserNey(order, len(VOCAB), PAD_ID).fit(ngram_train)
        ngram_results[order] = ngram_nll(lm, val_ids)
        print(f"held-out NLL per token: {order}-gram Kneser-Ney {ngram_results[order]:.4f}")
    ngram_seconds = time.perf_counter() - ngram_started
    best_order = min(ngram_results, key=ngram_results.get)

    stats = corpus_stats(train_tunes)
    stats["sources"] = dict(collections.Counter(t.source for t in tunes))
    (args.out / "corpus_stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    weights_mb = (args.out / "model.safetensors").stat().st_size / 1e6
    total_seconds = time.perf_counter() - started
    report = {
        "tunes": len(tunes),
        "training_tunes": len(train_tunes),
        "held_out_tunes": len(held_out),
        "held_out_tokens": tokens,
        "sources": stats["sources"],
        "parameters": parameters,
        "weights_mb": round(weights_mb, 2),
        "steps": run["steps"],
        "batch": run["batch"],
        "context": run["context"],
        "seed": run["seed"],
        "device": run["device"],
        "threads": run["threads"],
        "machine": machine(),
        "parse_seconds": round(parse_seconds, 1),
        "first_parse": json.loads(meta_path(args.cache_dir).read_text()) if meta_path(args.cache_dir).is_file() else None,
        "train_seconds": round(train_seconds, 1),
        "ngram_seconds": round(ngram_seconds, 1),
        "total_seconds": round(total_seconds, 1),
        "model_nll": round(model_nll, 4),
        "ngram_nll": {str(k): round(v, 4) for k, v in ngram_results.items()},
        "best_ngram_order": best_order,
    }
    (args.out / "training_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "REPORT.md").write_text(markdown_report(report, stats))
    print(json.dumps(report, indent=1))


def train(args, train_ids: list[np.ndarray], train_shifts: list[list[int]], device: str):
    """Train the transformer; returns it and the run's facts (steps, seconds)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 8 // 3 // 16 * 16,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=1024,
        bos_token_id=BOS_ID,
        eos_token_id=END_ID,
        pad_token_id=PAD_ID,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).to(device)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {parameters:,} parameters")
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    rng = random.Random(args.seed)
    model.train()
    train_started = time.perf_counter()
    for step in range(args.steps):
        rows = []
        for _ in range(args.batch):
            index = rng.randrange(len(train_ids))
            ids = transpose_ids(train_ids[index], rng.choice(train_shifts[index]))
            rows.append(window(ids, args.context, rng))
        width = max(len(r) for r in rows)
        batch = np.full((len(rows), width), PAD_ID, dtype=np.int64)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = r
        inputs = torch.from_numpy(batch).to(device)
        labels = inputs.clone()
        labels[labels == PAD_ID] = -100
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=inputs, attention_mask=(inputs != PAD_ID).long(), labels=labels).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step % 50 == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - train_started
            print(f"step {step:5d}  loss {loss.item():.3f}  lr {lr_at(step):.2e}  {elapsed:6.0f} s", flush=True)
    train_seconds = time.perf_counter() - train_started

    run = {"train_seconds": round(train_seconds, 1), "steps": args.steps, "batch": args.batch,
           "context": args.context, "threads": args.threads, "seed": args.seed, "device": device}
    return model, run


def machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores"


def held_out_nll(model, sequences: list[np.ndarray], device: str) -> tuple[float, int]:
    """Mean NLL (nats) of every token after the header, given everything before it."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(sequences), 64):
            rows = sequences[start : start + 64]
            width = max(len(r) for r in rows)
            batch = np.full((len(rows), width), PAD_ID, dtype=np.int64)
            for i, r in enumerate(rows):
                batch[i, : len(r)] = r
            inputs = torch.from_numpy(batch).to(device)
            logits = model(input_ids=inputs, attention_mask=(inputs != PAD_ID).long()).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = inputs[:, 1:]
            picked = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            mask = target != PAD_ID
            mask[:, : HEADER_LENGTH - 1] = False  # the header is given, not predicted
            total -= picked[mask].sum().item()
            count += int(mask.sum().item())
    return total / count, count


def ngram_nll(lm: KneserNey, sequences: list[np.ndarray]) -> float:
    """The same tokens as `held_out_nll`: everything after each header."""
    logp = lm.log_probs(sequences)
    keep, offset = [], 0
    for seq in sequences:
        n = len(seq) - 1
        keep.append(logp[offset + HEADER_LENGTH - 1 : offset + n])
        offset += n
    return float(-np.concatenate(keep).mean())


def markdown_report(report: dict, stats: dict) -> str:
    best = report["best_ngram_order"]
    ngram_best = report["ngram_nll"][str(best)]
    gain = (1 - report["model_nll"] / ngram_best) * 100
    orders = " · ".join(f"{k}-gram {v:.3f}" for k, v in report["ngram_nll"].items())
    minutes = report["train_seconds"] / 60
    first = report.get("first_parse")
    first_parse = (f"parsed once in {first['parse_seconds']:.0f} s ({first['workers']} processes), then read from "
                   f"the cache in {report['parse_seconds']:.0f} s." if first else
                   f"ready in {report['parse_seconds']:.0f} s.")
    return f"""# Studio melody model: training report

Written by `make train-melody` (`training/train_melody.py`, seed {report["seed"]}).

## Corpus
The monophonic corpora inside `music21`: {", ".join(f"{k} {v}" for k, v in report["sources"].items())}
tunes usable ({report["tunes"]} in all: one metre, whole bars, notes on a 1/24-quarter grid).
Held out by tune (a hash of its id): {report["held_out_tunes"]} tunes, {report["held_out_tokens"]:,} tokens.
Every training draw is transposed at random (-6..+5 semitones, kept within C2..C7).
Modes found: {", ".join(f"{k} {v}" for k, v in stats["tunes_per_mode"].items())}.

## Model
Llama-style causal transformer (transformers `LlamaForCausalLM`): {report["parameters"]:,} parameters,
`model.safetensors` {report["weights_mb"]:.1f} MB, vocabulary of {len(VOCAB)} melody tokens.

## Held-out negative log-likelihood per token (nats; lower is better)
| model | NLL |
|---|---|
| studio melody transformer | **{report["model_nll"]:.3f}** |
| best n-gram baseline (interpolated Kneser-Ney, order {best}) | {ngram_best:.3f} |

All n-gram orders: {orders}. The transformer's NLL is {gain:.1f} % lower than the best n-gram's
(perplexity {math.exp(report["model_nll"]):.2f} versus {math.exp(ngram_best):.2f}).
Both see the same training tunes in the same transpositions and score the same held-out tokens
(everything after each tune's header, first {report["context"]} tokens of each tune).

## Cost
Training: {report["steps"]} steps of {report["batch"]} windows of up to {report["context"]} tokens, on
{report["device"]}, {report["threads"]} torch thread(s) under `nice -n 5` ({report["machine"]}; the machine was
shared with other work): {report["train_seconds"]:.0f} s ({minutes:.1f} min) wall time.
Corpus: {first_parse} N-gram baselines: {report["ngram_seconds"]:.0f} s.
"""


if __name__ == "__main__":
    main()
