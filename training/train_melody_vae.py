"""Train the studio's melody VAE on the corpus inside music21, and write its report.

    make train-melody-vae       (or: nice -n 5 .venv/bin/python training/train_melody_vae.py)
    .venv/bin/python training/train_melody_vae.py --evaluate-only     (the report from the shipped weights)

The corpus, its parse cache and the train/held-out split are the melody model's
(studio/media/melody_corpus.py). Every tune is moved to a tonic of C and snapped to sixteenths
(studio/media/melody_grid.py); the VAE trains on two-bar windows starting at every bar (one-bar
windows in long metres). No transposition augmentation: with every tune on C there is nothing
for it to teach beyond a register shift, which the C-frame already narrows to a tritone.

Writes model.safetensors, config.json, training_run.json, report.json and REPORT.md to --out
(assets/melody-vae/). Seeded: the same command gives the same model on the same machine.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.media import melody_grid as grid  # noqa: E402
from studio.media.melody_corpus import CorpusTune, load_corpus, split  # noqa: E402
from training.melody_vae_report import evaluate, markdown_report  # noqa: E402
from training.train_melody import machine  # noqa: E402


def windows(tunes: list[CorpusTune]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every window the VAE trains on: (classes [N, SEGMENT_STEPS], metre ids, lengths, sounding-in)."""
    rows, meters, lengths, sounding = [], [], [], []
    for tune in tunes:
        melody = grid.to_grid(tune.melody)
        per_bar = grid.steps_per_bar(melody.meter)
        length = grid.segment_steps(melody.meter)
        classes = np.concatenate([melody.classes, np.full(length, grid.REST, dtype=np.int64)])
        for bar in range(melody.bars):
            start = bar * per_bar
            row = np.full(grid.SEGMENT_STEPS, grid.PAD, dtype=np.int64)
            row[:length] = classes[start : start + length]
            rows.append(row)
            meters.append(grid.METER_INDEX[melody.meter])
            lengths.append(length)
            sounding.append(start > 0 and grid.ends_sounding(classes[:start]))
    return (np.stack(rows), np.asarray(meters, dtype=np.int64), np.asarray(lengths, dtype=np.int64),
            np.asarray(sounding, dtype=bool))


def train(args, data, log=print):
    """Train the VAE on `data` (from `windows`); returns the model and the run's facts."""
    import torch

    from studio.backends.melody_vae import MelodyVAE, VAEConfig

    config = VAEConfig(latent=args.latent, embed=args.embed, encoder_hidden=args.encoder_hidden,
                       decoder_hidden=args.decoder_hidden, decoder_layers=args.decoder_layers)
    model = MelodyVAE(config)
    parameters = sum(p.numel() for p in model.parameters())
    log(f"model: {parameters:,} parameters, {len(data[0]):,} training windows")
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    classes, meters, lengths, sounding = (torch.from_numpy(a) for a in data)
    steps_range = torch.arange(grid.SEGMENT_STEPS)
    warmup = max(1, args.steps // 25)

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def beta_at(step: int) -> float:
        # KL annealing: the decoder first learns to use the latent, then the latent is shaped.
        return args.beta * min(1.0, step / max(1, args.steps * args.anneal))

    generator = torch.Generator().manual_seed(args.seed)
    model.train()
    started = time.perf_counter()
    history = []
    for step in range(args.steps):
        index = torch.randint(len(classes), (args.batch,), generator=generator)
        x, m, n, s = classes[index], meters[index], lengths[index], sounding[index]
        mean, log_var = model.encode(x, m)
        z = mean + torch.randn(mean.shape, generator=generator) * torch.exp(0.5 * log_var)
        previous = model.previous_classes(x, s)
        if args.input_dropout > 0:
            # Hide some previous steps from the decoder, so it must read the rest from the latent.
            hide = torch.rand(previous.shape, generator=generator) < args.input_dropout
            previous = torch.where(hide, torch.full_like(previous, grid.PAD), previous)
        logits = model.decode_logits(z, m, previous)
        active = steps_range[None, :] < n[:, None]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x, reduction="none")
        nll = (nll * active).sum(dim=1).mean()
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1).mean()
        loss = nll + beta_at(step) * torch.clamp(kl, min=args.free_bits)
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        if step % 100 == 0 or step == args.steps - 1:
            with torch.no_grad():
                accuracy = ((logits.argmax(-1) == x) | ~active).all(dim=1).float().mean().item()
            elapsed = time.perf_counter() - started
            history.append({"step": step, "nll": round(nll.item(), 3), "kl": round(kl.item(), 2)})
            log(f"step {step:5d}  nll {nll.item():6.3f}  kl {kl.item():6.2f}  beta {beta_at(step):.3f}  "
                f"teacher-forced segments right {accuracy:.2f}  {elapsed:5.0f} s")
    model.eval()
    run = {"train_seconds": round(time.perf_counter() - started, 1), "steps": args.steps, "batch": args.batch,
           "lr": args.lr, "beta": args.beta, "free_bits": args.free_bits, "anneal": args.anneal,
           "input_dropout": args.input_dropout, "threads": args.threads, "seed": args.seed,
           "parameters": parameters, "windows": len(classes), "history": history}
    return model, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train the studio's melody VAE.")
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "melody-vae")
    p.add_argument("--cache-dir", type=Path, default=ROOT / "studio-data" / "cache")
    p.add_argument("--steps", type=int, default=4500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--encoder-hidden", type=int, default=128)
    p.add_argument("--decoder-hidden", type=int, default=192)
    p.add_argument("--decoder-layers", type=int, default=1)
    p.add_argument("--beta", type=float, default=0.2, help="weight of the KL term once annealed")
    p.add_argument("--free-bits", type=float, default=64.0, help="KL (nats a segment) below which it is free")
    p.add_argument("--anneal", type=float, default=0.3, help="share of the steps over which beta rises")
    p.add_argument("--input-dropout", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="processes parsing the corpus (first run only)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--limit-tunes", type=int, default=0, help="train on the first N training tunes only (tests)")
    p.add_argument("--pairs", type=int, default=400, help="held-out segment pairs for the interpolation figures")
    p.add_argument("--evaluate-only", action="store_true",
                   help="skip training: evaluate the model already in --out and rewrite the report")
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    import torch
    from safetensors.torch import save_file

    from studio.backends.melody_vae import load_vae

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tunes = load_corpus(args.cache_dir, args.workers, report=lambda d, n: print(f"\rparsing {d}/{n}", end=""))
    train_tunes, held_out = split(tunes)
    if args.limit_tunes:
        train_tunes, held_out = train_tunes[: args.limit_tunes], held_out[: max(2, args.limit_tunes // 4)]
    print(f"corpus: {len(train_tunes)} training tunes, {len(held_out)} held out")

    run_file = args.out / "training_run.json"
    if args.evaluate_only:
        model = load_vae(args.out)
        run = json.loads(run_file.read_text())
    else:
        model, run = train(args, windows(train_tunes))
        args.out.mkdir(parents=True, exist_ok=True)
        model.config.save(args.out / "config.json")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out / "model.safetensors"))
        run["machine"] = machine()
        run_file.write_text(json.dumps(run, indent=1) + "\n")
    evaluation_started = time.perf_counter()
    report = evaluate(model, held_out, pairs=args.pairs, seed=args.seed)
    report.update(
        training_tunes=len(train_tunes),
        held_out_tunes=len(held_out),
        weights_mb=round((args.out / "model.safetensors").stat().st_size / 1e6, 2),
        evaluation_seconds=round(time.perf_counter() - evaluation_started, 1),
        latent=model.config.latent,
        run={k: v for k, v in run.items() if k != "history"},
    )
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "REPORT.md").write_text(markdown_report(report))
    print(json.dumps({k: v for k, v in report.items() if k != "run"}, indent=1))


if __name__ == "__main__":
    main()
