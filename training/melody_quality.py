"""How the shipped melody model's tunes measure up: scale membership, full bars, and how close
their pitch-class histogram lies to the corpus's (total variation distance, 0 = identical, 1 = disjoint).

    .venv/bin/python training/melody_quality.py [--count 50] [--report]

With --report the table also goes into assets/melody-model/REPORT.md (its "Quality" section).

The tests assert the same figures (tests/test_melody_quality.py); this prints them for the report.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.backends.melody import MelodyBackend, MelodyRequest, model_folder  # noqa: E402
from studio.media.melody_tokens import Melody, bar_ticks, scale_pitch_classes  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402

SETTINGS = (
    MelodyRequest(tonic="D", mode="dorian", meter="6/8", bars=16),
    MelodyRequest(tonic="G", mode="major", meter="4/4", bars=16),
    MelodyRequest(tonic="A", mode="minor", meter="3/4", bars=16),
    MelodyRequest(tonic="E", mode="mixolydian", meter="2/4", bars=16),
    MelodyRequest(tonic="Bb", mode="major", meter="6/8", bars=8),
)


@dataclass(frozen=True)
class Quality:
    in_scale: float  # share of notes in the requested key's scale
    full_bars: float  # share of bars whose lengths sum to the metre
    right_length: float  # share of tunes with exactly the requested number of bars
    histogram_distance: float  # total variation distance to the corpus's histogram for the mode
    notes_per_tune: float


def corpus_histograms(folder: Path | None = None) -> dict[str, np.ndarray]:
    stats = json.loads(((folder or model_folder()) / "corpus_stats.json").read_text())
    return {mode: np.array(h) for mode, h in stats["pitch_class_histogram_from_tonic"].items()}


def measure(melodies: list[Melody], request: MelodyRequest, corpus: dict[str, np.ndarray]) -> Quality:
    scale = scale_pitch_classes(request.tonic_pc, request.mode)
    pitches = [n.pitch for m in melodies for n in m.notes()]
    histogram = np.zeros(12)
    for pitch in pitches:
        histogram[(pitch - request.tonic_pc) % 12] += 1
    histogram /= max(histogram.sum(), 1)
    bars = [sum(e.ticks for e in bar) for m in melodies for bar in m.bars]
    return Quality(
        in_scale=sum(p % 12 in scale for p in pitches) / max(len(pitches), 1),
        full_bars=sum(b == bar_ticks(request.meter) for b in bars) / max(len(bars), 1),
        right_length=sum(len(m.bars) == request.bars for m in melodies) / len(melodies),
        histogram_distance=0.5 * float(np.abs(histogram - corpus[request.mode]).sum()),
        notes_per_tune=len(pitches) / len(melodies),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--report", action="store_true", help="write the table into the model's REPORT.md")
    args = parser.parse_args()
    backend = MelodyBackend(ModelCache(1024))
    corpus = corpus_histograms()
    lines = [
        f"{args.count} seeded melodies per setting (one batch, seed 1), temperature {args.temperature}, top-p 0.95. "
        "Histogram distance: total variation between the tunes' pitch classes (from the tonic) and the "
        "corpus's for that mode (0 = identical, 1 = disjoint).",
        "",
        "| setting | stay in key | in scale | full bars | right length | histogram distance | notes a tune |",
        "|---|---|---|---|---|---|---|",
    ]
    print(lines[0])
    for base in SETTINGS:
        for strength in (0.0, base.key_strength):
            request = replace(base, temperature=args.temperature, key_strength=strength, seed=1)
            q = measure(backend.sample(request, count=args.count), request, corpus)
            name = f"{base.tonic} {base.mode} {base.meter}, {base.bars} bars"
            row = (f"| {name} | {strength:.1f} | {q.in_scale:.1%} | {q.full_bars:.0%} | {q.right_length:.0%} | "
                   f"{q.histogram_distance:.3f} | {q.notes_per_tune:.1f} |")
            lines.append(row)
            print(row)
    if args.report:
        path = model_folder() / "REPORT.md"
        text = path.read_text()
        text = text.split("\n## Quality\n")[0].rstrip() + "\n\n## Quality\n" + "\n".join(lines) + "\n" + (
            "\nWritten by `training/melody_quality.py --report`; the tests assert the same measures.\n")
        path.write_text(text)


if __name__ == "__main__":
    main()
