"""How well the melody VAE reconstructs held-out tunes and how its walks behave; REPORT.md's text.

Used by training/train_melody_vae.py (after training, or with --evaluate-only on the shipped
weights). Every figure is measured on the held-out tunes of the corpus split.
"""

from __future__ import annotations

import platform
import random
from collections import defaultdict

import numpy as np

from studio.backends.melody_walk import INTERPOLATIONS, decode_latents, encode_segments, grid_meter
from studio.media import melody_grid as grid
from studio.media.melody_corpus import CorpusTune
from studio.media.melody_tokens import scale_pitch_classes

POSITIONS = (0.25, 0.5, 0.75)
WALK_STEPS = 6


def _decode_all(model, latents: list[np.ndarray], meters: list[int]) -> list[np.ndarray]:
    """Decode melodies of different lengths in one batch per metre (segments padded with zeros)."""
    out: list[np.ndarray | None] = [None] * len(latents)
    by_meter: dict[int, list[int]] = defaultdict(list)
    for i, m in enumerate(meters):
        by_meter[m].append(i)
    for meter, rows in by_meter.items():
        longest = max(len(latents[i]) for i in rows)
        batch = np.zeros((len(rows), longest, latents[rows[0]].shape[1]))
        for j, i in enumerate(rows):
            batch[j, : len(latents[i])] = latents[i]
        decoded = decode_latents(model, batch, np.full(len(rows), meter, dtype=np.int64))
        for j, i in enumerate(rows):
            out[i] = decoded[j, : len(latents[i])]
    return out  # type: ignore[return-value]


def reconstruction(model, tunes: list[CorpusTune]) -> dict:
    """Held-out tunes through encode -> decode (latent means, greedy decoding, segment by segment)."""
    grids = [grid.to_grid(t.melody) for t in tunes]
    all_segments = [grid.segments(g) for g in grids]
    meters = [grid.METER_INDEX[g.meter] for g in grids]
    latents = [encode_segments(model, segs, np.full(len(segs), m, dtype=np.int64))
               for (segs, _), m in zip(all_segments, meters, strict=True)]
    decoded = _decode_all(model, latents, meters)
    notes_total = notes_right = segments_total = segments_right = tunes_right = 0
    for g, (segs, _), out in zip(grids, all_segments, decoded, strict=True):
        length = grid.segment_steps(g.meter)
        right = (segs[:, :length] == out[:, :length]).all(axis=1)
        segments_total += len(right)
        segments_right += int(right.sum())
        truth = set(grid.grid_notes(g.classes))
        made = set(grid.grid_notes(out[:, :length].reshape(-1)[: len(g.classes)]))
        notes_total += len(truth)
        notes_right += len(truth & made)
        tunes_right += truth == made
    original = [n for t in tunes for n in t.melody.notes()]
    on_grid = sum(n.start % grid.STEP_TICKS == 0 and n.end % grid.STEP_TICKS == 0 for n in original)
    return {
        "notes": notes_total,
        "notes_exact": round(notes_right / notes_total, 4),
        "segments": segments_total,
        "segments_exact": round(segments_right / segments_total, 4),
        "tunes_exact": round(tunes_right / len(tunes), 4),
        "notes_on_grid": round(on_grid / len(original), 4),
        "moved_notes": round(sum(g.moved_notes for g in grids) / len(original), 4),
    }


def _in_scale(classes: np.ndarray, mode: str) -> tuple[int, int]:
    scale = scale_pitch_classes(0, mode)
    pitches = [p for _, _, p in grid.grid_notes(classes)]
    return sum(p % 12 in scale for p in pitches), len(pitches)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Share of sixteenths whose class differs: a note-level distance between two grids."""
    return float(np.mean(a != b))


def interpolation(model, tunes: list[CorpusTune], pairs: int, seed: int) -> dict:
    """Walks between random pairs of held-out segments (same metre, different tunes)."""
    rng = random.Random(seed)
    pool: dict[str, list[tuple[np.ndarray, str, int]]] = defaultdict(list)
    for index, tune in enumerate(tunes):
        g = grid.to_grid(tune.melody)
        segs, _ = grid.segments(g)
        length = grid.segment_steps(g.meter)
        for seg in segs:
            standalone = grid.canonical(seg[:length])  # a tie in from before becomes a rest
            if len(grid.grid_notes(standalone)) >= 2:
                pool[g.meter].append((standalone, g.mode, index))
    meters = [m for m in pool if len({index for *_, index in pool[m]}) > 1]  # two tunes at least
    if not meters:
        raise ValueError("walk figures need two held-out tunes in one metre")
    weights = [len(pool[m]) for m in meters]
    chosen = []
    while len(chosen) < pairs:
        meter = rng.choices(meters, weights)[0]
        (a, mode_a, tune_a), (b, mode_b, tune_b) = rng.sample(pool[meter], 2)
        if tune_a != tune_b:
            chosen.append((meter, a, mode_a, b, mode_b))

    def segment_row(classes: np.ndarray) -> np.ndarray:
        row = np.full(grid.SEGMENT_STEPS, grid.PAD, dtype=np.int64)
        row[: len(classes)] = classes
        return row

    meter_ids = np.array([grid.METER_INDEX[m] for m, *_ in chosen], dtype=np.int64)
    z_a = encode_segments(model, np.stack([segment_row(c[1]) for c in chosen]), meter_ids)
    z_b = encode_segments(model, np.stack([segment_row(c[3]) for c in chosen]), meter_ids)
    originals = [_in_scale(c[1], c[2]) for c in chosen] + [_in_scale(c[3], c[4]) for c in chosen]
    norms = np.linalg.norm(np.concatenate([z_a, z_b]), axis=1)
    result = {"pairs": pairs, "same_mode_pairs": sum(c[2] == c[4] for c in chosen),
              "originals_in_scale": round(sum(i for i, _ in originals) / sum(n for _, n in originals), 4),
              "latent_norm": [round(float(norms.mean()), 2), round(float(norms.std()), 2)]}
    for name, mix in INTERPOLATIONS.items():
        ts = [i / (WALK_STEPS - 1) for i in range(WALK_STEPS)]
        walks = []
        for t in ts:
            latents = np.stack([mix(a, b, t) for a, b in zip(z_a, z_b, strict=True)])[:, None, :]
            walks.append(decode_latents(model, latents, meter_ids)[:, 0])
        in_scale = {}
        for t in POSITIONS:
            latents = np.stack([mix(a, b, t) for a, b in zip(z_a, z_b, strict=True)])[:, None, :]
            decoded = decode_latents(model, latents, meter_ids)[:, 0]
            counts = [_in_scale(d[: grid.segment_steps(grid_meter(m))], c[2] if t < 0.5 else c[4])
                      for d, m, c in zip(decoded, meter_ids, chosen, strict=True)]
            in_scale[str(t)] = round(sum(i for i, _ in counts) / max(1, sum(n for _, n in counts)), 4)
        neighbour, ends, gradual, notes_per_segment = [], [], 0, []
        for p, m in enumerate(meter_ids):
            length = grid.segment_steps(grid_meter(m))
            path = [w[p, :length] for w in walks]
            steps_apart = [_distance(x, y) for x, y in zip(path, path[1:], strict=False)]
            apart = _distance(path[0], path[-1])
            neighbour.append(np.mean(steps_apart))
            ends.append(apart)
            gradual += max(steps_apart) < apart
            notes_per_segment += [len(grid.grid_notes(x)) for x in path[1:-1]]
        midpoints = [np.linalg.norm(mix(a, b, 0.5)) for a, b in zip(z_a, z_b, strict=True)]
        result[name] = {
            "midpoint_norm": round(float(np.mean(midpoints)), 2),
            "in_scale": in_scale,
            "neighbour_distance": round(float(np.mean(neighbour)), 4),
            "end_distance": round(float(np.mean(ends)), 4),
            "gradual_walks": round(gradual / pairs, 4),
            "notes_per_inner_segment": round(float(np.mean(notes_per_segment)), 2),
        }
    return result


def evaluate(model, held_out: list[CorpusTune], *, pairs: int = 400, seed: int = 0) -> dict:
    import torch

    with torch.inference_mode():
        return {"reconstruction": reconstruction(model, held_out),
                "interpolation": interpolation(model, held_out, pairs, seed),
                "python": platform.python_version(), "torch": torch.__version__}


def markdown_report(report: dict) -> str:
    rec, walk, run = report["reconstruction"], report["interpolation"], report["run"]
    rows = []
    for name in INTERPOLATIONS:
        w = walk[name]
        scale = " | ".join(f"{w['in_scale'][str(t)]:.1%}" for t in POSITIONS)
        rows.append(f"| {name} | {scale} | {w['neighbour_distance']:.3f} | {w['end_distance']:.3f} | "
                    f"{w['gradual_walks']:.1%} | {w['notes_per_inner_segment']:.1f} | {w['midpoint_norm']:.2f} |")
    table = "\n".join(rows)
    minutes = run["train_seconds"] / 60
    return f"""# Studio melody VAE: training report

Written by `make train-melody-vae` (`training/train_melody_vae.py`, seed {run["seed"]}); recomputed from the
shipped weights by `.venv/bin/python training/train_melody_vae.py --evaluate-only`.

## What it is
A MusicVAE-style model of two-bar melody segments (one bar in metres longer than 16 sixteenths):
a bidirectional GRU encoder to a {report.get("latent", 64)}-number Gaussian latent, and a GRU decoder
that writes one class per sixteenth (a pitch, hold or rest), so every bar it writes is complete.
Tunes are moved to a tonic of C (by at most a tritone) before encoding and back after.
{run["parameters"]:,} parameters, `model.safetensors` {report["weights_mb"]:.1f} MB.

## Corpus
The melody model's corpus and split (the monophonic corpora inside `music21`): {report["training_tunes"]} training
tunes ({run["windows"]:,} two-bar windows, one starting at every bar), {report["held_out_tunes"]} held out.
On the sixteenth grid: {rec["notes_on_grid"]:.1%} of held-out notes sit on it exactly; the rest (triplets,
32nds) are snapped to it, and the figures below compare with the snapped tunes.

## Reconstruction of held-out tunes
Latent means, greedy decoding, segment after segment (each told whether a note is tied in), as the studio's walks do.

| measure | held out |
|---|---|
| notes exactly right (pitch, onset and length) | **{rec["notes_exact"]:.1%}** of {rec["notes"]:,} |
| segments entirely right | **{rec["segments_exact"]:.1%}** of {rec["segments"]:,} |
| whole tunes entirely right | {rec["tunes_exact"]:.1%} |

## Walks between held-out segments
{walk["pairs"]} random pairs of held-out segments (same metre, different tunes; {walk["same_mode_pairs"]} pairs share a
mode), walked in {WALK_STEPS} steps. *In scale*: share of the notes of the melody at t that lie in the scale of
the nearer end's mode (on C), the key the studio plays that step in. The held-out segments themselves have
{walk["originals_in_scale"]:.1%} of their notes in their own scale. *Distance*: share of sixteenths whose class
(pitch, hold, rest) differs; *gradual*: walks whose largest step is smaller than the distance from A to B.

| latent path | in scale, t=0.25 | t=0.5 | t=0.75 | mean step distance | A to B distance | gradual | notes a segment (inner steps) | latent norm at t=0.5 |
|---|---|---|---|---|---|---|---|---|
{table}

The latent means of the segments lie on a shell: norm {walk["latent_norm"][0]:.2f} ± {walk["latent_norm"][1]:.2f}. Slerp
keeps the walk on it; a straight line (lerp) dips inside it halfway. The studio walks with slerp, so
every step's latent looks like a real segment's; on the measures above the two paths differ little.

## Cost
Command: `nice -n 5 .venv/bin/python training/train_melody_vae.py` (its defaults; `make train-melody-vae`).
{run["steps"]} steps of {run["batch"]} windows (AdamW, learning rate {run["lr"]}, cosine; KL weight {run["beta"]} reached
over the first {run["anneal"]:.0%} of the steps, {run["free_bits"]:g} free nats per segment), {run["threads"]} torch thread(s)
on {run.get("machine", "a CPU")}, shared with other work: {run["train_seconds"]:.0f} s ({minutes:.1f} min) of
training. Evaluation: {report["evaluation_seconds"]:.0f} s.
"""
