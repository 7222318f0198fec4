"""The built-in melody model: seconds to compose and render a 16-bar tune (target: under 1 s).

Measured with the shipped model, warm (loaded once), median of interleaved repeats:
- compose: sampling 16 bars under the bar grammar;
- render: .mid + .wav (the studio's synthesiser) + piano-roll .png + .abc;
- the two together, per metre, and 50 tunes sampled at once (one batch) per tune.

Run: `make bench` or `.venv/bin/python benchmarks/melody_speed.py [--repeats 5]`.
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

from studio.backends.melody import MelodyBackend, MelodyRequest  # noqa: E402
from studio.runtime import ModelCache  # noqa: E402
from studio.services.music import write_melody_files  # noqa: E402

SETTINGS = (("D", "dorian", "6/8"), ("G", "major", "4/4"), ("A", "minor", "3/4"), ("E", "mixolydian", "2/4"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    backend = MelodyBackend(ModelCache(1024))
    started = time.perf_counter()
    backend.generate(MelodyRequest(bars=1))
    print(f"model load + first tune: {time.perf_counter() - started:.2f} s; torch threads: {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tonic, mode, meter in SETTINGS:
            compose, render = [], []
            for seed in range(args.repeats):
                request = MelodyRequest(tonic=tonic, mode=mode, meter=meter, bars=16, seed=seed, tempo=110)
                t = time.perf_counter()
                result = backend.generate(request)
                compose.append(time.perf_counter() - t)
                t = time.perf_counter()
                write_melody_files(result, Path(tmp) / f"{seed}.mid", 110, "piano")
                render.append(time.perf_counter() - t)
            rows.append((f"{tonic} {mode} {meter}", statistics.median(compose), statistics.median(render)))
        batch_request = MelodyRequest(tonic="D", mode="dorian", meter="6/8", bars=16, seed=0)
        t = time.perf_counter()
        backend.sample(batch_request, count=50)
        batch_seconds = time.perf_counter() - t
    print(f"\n16-bar tunes, median of {args.repeats} seeds:")
    print(f"  {'setting':22} {'compose':>8} {'render':>8} {'total':>8}")
    for name, compose_s, render_s in rows:
        print(f"  {name:22} {compose_s:7.3f}s {render_s:7.3f}s {compose_s + render_s:7.3f}s")
    worst = max(c + r for _, c, r in rows)
    print(f"  slowest total: {worst:.3f} s (target under 1 s)")
    print(f"50 tunes of 16 bars sampled as one batch: {batch_seconds:.2f} s ({batch_seconds / 50 * 1000:.0f} ms a tune)")


if __name__ == "__main__":
    main()
