"""Do the Text tab's presets keep their promise on the built-in SmolLM2-135M (llama.cpp)?

For each preset that promises a shape, 20 short ideas are sent as chat messages with the preset's
system prompt, sampling, examples and grammar (seed = the idea's number), and each answer is checked
with the preset's own shape test:
- Image-prompt expander: five or more distinct comma-separated descriptive phrases, no introduction;
- Poem: four or more lines besides the title;
- Song lyrics: at least one [Verse] and one [Chorus], each with a line under it.
`--plain` runs the same without examples and grammar (the presets as they were), for comparison.

Prints a table: preset, good answers / total, share, median seconds per answer. Target: 90% each.
Run: `.venv/bin/python benchmarks/text_presets.py [--ideas N] [--plain] [--show]`.
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

from studio.backends.language import BUILTIN_TEXT_MODEL, CHAT, TextRequest  # noqa: E402
from studio.services import Studio  # noqa: E402
from studio.services.writing_presets import PRESETS, Preset  # noqa: E402
from studio.settings import Settings  # noqa: E402

IDEAS = (
    "a fox reading in a library", "rain on a city street", "a dragon over the mountains",
    "a girl with a red umbrella", "an abandoned train station", "a bowl of ramen at midnight",
    "a knight at dawn", "a spaceship landing in a desert", "first snow in the village",
    "an old man feeding pigeons", "a lighthouse keeper's cat", "a market in Marrakesh",
    "a whale under the ice", "a robot learning to paint", "summer thunderstorm",
    "a garden at the end of the world", "two friends on a night train", "a jazz club in 1920",
    "the last bookshop", "a kite over the sea",
)


def request(preset: Preset, idea: str, seed: int, plain: bool) -> TextRequest:
    guidance = {} if plain else preset.guidance()
    return TextRequest(
        mode=CHAT, messages=(("user", idea),), system=preset.system, model=BUILTIN_TEXT_MODEL,
        temperature=preset.temperature, top_p=preset.top_p, top_k=preset.top_k, min_p=preset.min_p,
        repetition_penalty=preset.repetition_penalty, max_new_tokens=preset.max_new_tokens,
        stop=preset.stop, seed=seed, **guidance,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ideas", type=int, default=len(IDEAS), help="how many of the 20 ideas to use")
    parser.add_argument("--plain", action="store_true", help="without the presets' examples and grammar")
    parser.add_argument("--show", action="store_true", help="print every answer, marked good or not")
    args = parser.parse_args()
    studio = Studio(Settings(data_dir=Path(tempfile.mkdtemp(prefix="bench-presets-")), offline=True))
    studio.text.engine(BUILTIN_TEXT_MODEL)  # loaded before the clock starts
    rows = []
    for preset in PRESETS.values():
        if preset.shape is None:
            continue
        good, seconds = 0, []
        for seed, idea in enumerate(IDEAS[: args.ideas]):
            started = time.perf_counter()
            result = studio.text.generate(request(preset, idea, seed, args.plain))
            seconds.append(time.perf_counter() - started)
            ok = preset.shape(result.text)
            good += ok
            if args.show:
                print(f"--- {preset.name} · {idea} · {'good' if ok else 'BAD'}\n{result.text}\n", flush=True)
        rows.append((preset.name, good, len(seconds), statistics.median(seconds)))
    label = "plain (system prompt only)" if args.plain else "with examples and grammar"
    print(f"\nBuilt-in {BUILTIN_TEXT_MODEL}, presets {label}:")
    print(f"{'preset':<24}{'good':>8}{'share':>8}{'s/answer':>10}")
    for name, good, total, median in rows:
        print(f"{name:<24}{f'{good}/{total}':>8}{good / total:>8.0%}{median:>10.1f}")


if __name__ == "__main__":
    main()
