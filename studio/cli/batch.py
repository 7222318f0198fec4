"""Batches from the command line: many prompts (a file, one per line) times many seeds (`1-8`, `3,5,9`).

Each item is one run; its file name says which prompt and seed made it, a line on stderr says how it
went, and one item's mistake does not stop the others.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from studio.errors import InputError, StudioError

MAX_ITEMS = 10_000  # a typo such as 1-100000000 should be an error, not a night of work
EXIT_SOME_FAILED = 1  # bad input as a whole stays exit code 2, like every other command


def parse_seeds(text: str) -> list[int]:
    """`1-8`, `3,5,9` or `1-4,10` as a list of seeds, in the order given (argparse type)."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise argparse.ArgumentTypeError(
                f"'{part.strip() or text}' is not a seed or a range; write seeds like 1-8, 3,5,9 or 1-4,10"
            )
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise argparse.ArgumentTypeError(f"the range {first}-{last} runs backwards; write {last}-{first}")
        if len(seeds) + last - first + 1 > MAX_ITEMS:
            raise argparse.ArgumentTypeError(f"'{text}' lists more than {MAX_ITEMS} seeds")
        seeds.extend(range(first, last + 1))
    seen: set[int] = set()
    for seed in seeds:  # the seed names the file, so each may appear once
        if seed in seen:
            raise argparse.ArgumentTypeError(f"seed {seed} is listed twice in '{text}'")
        seen.add(seed)
    return seeds


def read_prompts(path: Path) -> list[str]:
    """The prompts of a file, one per line; blank lines and lines starting with # are skipped.
    `-` reads them from stdin."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no prompts file at {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder, not a prompts file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save the prompts as plain text, one per line") from None
    except OSError as exc:
        raise InputError(f"could not read {path}: {exc.strerror or exc}") from None
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [line for line in prompts if line and not line.startswith("#")]
    if not prompts:
        raise InputError(f"{path} has no prompts (blank lines and lines starting with # are skipped)")
    return prompts


@dataclass(frozen=True)
class BatchItem:
    prompt_number: int  # 1-based, counting only the prompts (not blank lines or comments)
    prompt: str
    seed: int | None  # None: a random seed, drawn when the item runs


@dataclass
class ItemResult:
    item: BatchItem
    outputs: list[Path]
    records: list[dict]
    gallery_ids: list[int]
    error: str | None = None


def plan(prompts: list[str], seeds: list[int] | None, seed: int | None) -> list[BatchItem]:
    """Every prompt with every seed, prompt by prompt; without `seeds`, each prompt once with `seed`."""
    if len(prompts) * len(seeds or [None]) > MAX_ITEMS:
        raise InputError(f"{len(prompts)} prompts x {len(seeds or [None])} seeds is more than {MAX_ITEMS} runs")
    return [
        BatchItem(number, prompt, item_seed)
        for number, prompt in enumerate(prompts, start=1)
        for item_seed in (seeds if seeds is not None else [seed])
    ]


def output_name(folder: Path, stem: str, item: BatchItem, seed: int, prompts: int, suffix: str) -> Path:
    """`<stem>-p<prompt number>-s<seed><suffix>`; the prompt number is padded so files sort in order."""
    width = len(str(prompts))
    return folder / f"{stem}-p{item.prompt_number:0{width}d}-s{seed}{suffix}"


def run_items(
    items: list[BatchItem],
    make: Callable[[BatchItem], ItemResult],
    log: TextIO = sys.stderr,
) -> list[ItemResult]:
    """Run every item through `make`, one progress line each; a StudioError ends only its own item."""
    results = []
    for index, item in enumerate(items, start=1):
        started = time.perf_counter()
        label = f"[{index}/{len(items)}] {_describe(item, _several_prompts(items))}"
        try:
            result = make(item)
        except StudioError as exc:
            result = ItemResult(item, [], [], [], error=_one_line(str(exc)))
        seconds = time.perf_counter() - started
        if result.error:
            print(f"{label}: failed: {result.error}", file=log, flush=True)
        else:
            print(f"{label}: {', '.join(str(p) for p in result.outputs)} ({seconds:.2f} s)", file=log, flush=True)
        results.append(result)
    return results


def summary(results: list[ItemResult]) -> str:
    failed = [r for r in results if r.error]
    line = f"{len(results) - len(failed)} of {len(results)} made"
    if failed:
        several = _several_prompts([r.item for r in results])
        which = "; ".join(_describe(r.item, several) for r in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        line += f"; {len(failed)} failed ({which}{more})"
    return line


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _several_prompts(items: list[BatchItem]) -> bool:
    return len({item.prompt_number for item in items}) > 1


def _describe(item: BatchItem, several_prompts: bool) -> str:
    seed = f"seed {'random' if item.seed is None else item.seed}"
    return f"prompt {item.prompt_number}, {seed}" if several_prompts else seed
