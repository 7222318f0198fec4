"""The melody corpus that ships inside the `music21` package, parsed once into the studio's melodies.

Sources (all monophonic, all public domain): the Essen folksong collection, O'Neill's 1850
collection, Ryan's Mammoth Collection (ABC), and the soprano lines of the Bach chorales
(MusicXML). Each tune becomes a `Melody`: its single metre, complete bars (a pickup is padded
with a rest at the front), and a key labelled the folk-music way: the tonic is the final note
(the bass's final note for a chorale, whose soprano often ends on the third), and the mode is
whichever of major, minor, dorian and mixolydian holds most of the tune's notes.

Parsing takes minutes, so the result is cached as JSON lines (`load_corpus`).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from studio.media.melody_tokens import (
    METERS,
    MODE_STEPS,
    MODES,
    Melody,
    bar_ticks,
    bars_from_notes,
    ticks_from_quarters,
)

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
# music21 corpus folder -> the name the studio gives that source.
SOURCES = {"essenFolksong": "essen", "oneills1850": "oneills", "ryansMammoth": "ryans", "bach": "bach"}
VALIDATION_SHARE = 20  # one tune in 20 is held out, chosen by a hash of its id
MIN_BARS = 2


@dataclass(frozen=True)
class CorpusTune:
    source: str
    id: str
    title: str
    melody: Melody

    @property
    def held_out(self) -> bool:
        return is_held_out(self.id)


def is_held_out(tune_id: str) -> bool:
    """Validation membership by tune, stable across runs and machines."""
    return zlib.crc32(tune_id.encode()) % VALIDATION_SHARE == 0


def label_key(notes: list[tuple[int, int, int]], tonic: int) -> str:
    """The mode (of MODES) whose scale on `tonic` covers the most note time; earlier modes win ties."""
    weight = [0] * 12
    for start, end, pitch in notes:
        weight[(pitch - tonic) % 12] += end - start
    scores = [sum(weight[s] for s in MODE_STEPS[mode]) for mode in MODES]
    return MODES[max(range(len(MODES)), key=lambda i: (scores[i], -i))]


def melody_from_part(part, tonic_from=None) -> Melody | None:
    """One music21 part (monophonic) as a Melody, or None when it does not fit the studio's grammar."""
    from music21 import chord, note

    signatures = {ts.ratioString for ts in part.recurse().getElementsByClass("TimeSignature")} & set(METERS)
    if len(signatures) != 1:
        return None  # no usable metre, or a metre change
    meter = signatures.pop()
    length = bar_ticks(meter)
    measures = list(part.getElementsByClass("Measure"))
    if len(measures) < MIN_BARS:
        return None
    lengths = [ticks_from_quarters(m.duration.quarterLength) for m in measures]
    if any(t is None for t in lengths) or lengths[0] > length:
        return None
    # A short first bar is a pickup: shift everything so bar lines fall on whole bars.
    shift = length - lengths[0] if lengths[0] < length else 0
    start_offset = measures[0].offset
    position = shift
    for ticks in lengths[:-1]:
        # A bar may be written in two halves around a repeat sign; any other odd bar is a
        # metre change or a corpus error.
        if position % length != 0 and (position + ticks) % length != 0:
            return None
        position += ticks
    notes: list[list[int]] = []
    for element in part.recurse().notes:
        if element.duration.isGrace or element.quarterLength == 0:
            continue
        offset = ticks_from_quarters(element.getOffsetInHierarchy(part) - start_offset)
        ticks = ticks_from_quarters(element.quarterLength)
        if offset is None or ticks is None:
            return None
        if isinstance(element, chord.Chord):
            pitch = max(p.midi for p in element.pitches)
        elif isinstance(element, note.Note):
            pitch = element.pitch.midi
        else:
            continue
        start = offset + shift
        tie = element.tie.type if element.tie is not None else None
        if tie in ("stop", "continue") and notes and notes[-1][2] == pitch and notes[-1][1] == start:
            notes[-1][1] = start + ticks
        else:
            notes.append([start, start + ticks, pitch])
    if not notes:
        return None
    tonic = (tonic_from if tonic_from is not None else notes[-1][2]) % 12
    triples = [(s, e, p) for s, e, p in notes]
    try:
        bars = bars_from_notes(triples, meter)
    except ValueError:
        return None
    mode = label_key(triples, tonic)
    return Melody(meter, tonic, mode, bars)


def _parse_file(args: tuple[str, str]) -> list[dict]:
    """All tunes of one corpus file, as JSON-ready dicts (runs in a worker process)."""
    source, path = args
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    from music21 import converter, stream

    try:
        parsed = converter.parse(path)
    except Exception as exc:  # a corpus file music21 itself cannot read: skip it, say which
        return [{"error": f"{path}: {type(exc).__name__}"}]
    scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
    tunes = []
    for number, score in enumerate(scores):
        parts = list(score.parts) if score.hasPartLikeStreams() else [score]
        if not parts:
            continue
        tonic = None
        if source == "bach":
            if len(parts) != 4:
                continue
            bass_notes = list(parts[-1].recurse().notes)
            if not bass_notes:
                continue
            last = bass_notes[-1]
            tonic = min(p.midi for p in last.pitches) % 12
        try:
            melody = melody_from_part(parts[0], tonic_from=tonic)
        except Exception as exc:  # one odd tune should not end the whole parse
            log.debug("skipping %s #%d: %s", path, number, exc)
            melody = None
        if melody is None:
            continue
        title = (score.metadata.title if score.metadata and score.metadata.title else "") or ""
        tune_id = f"{source}/{Path(path).name}#{number}"
        tunes.append({"source": source, "id": tune_id, "title": title, "melody": melody.to_json()})
    return tunes


def corpus_files() -> list[tuple[str, str]]:
    from music21 import corpus

    files = []
    for folder, source in SOURCES.items():
        files += [(source, str(p)) for p in sorted(corpus.getComposer(folder))]
    return files


def parse_corpus(workers: int = 2, report: Callable[[int, int], None] | None = None) -> list[CorpusTune]:
    """Parse every corpus file (in `workers` processes); tunes come back sorted by id."""
    files = corpus_files()
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done, result in enumerate(pool.map(_parse_file, files, chunksize=4), start=1):
            rows += result
            if report:
                report(done, len(files))
    for row in rows:
        if "error" in row:
            log.warning("corpus file skipped: %s", row["error"])
    return sorted((_tune(row) for row in rows if "error" not in row), key=lambda t: t.id)


def _tune(row: dict) -> CorpusTune:
    return CorpusTune(row["source"], row["id"], row["title"], Melody.from_json(row["melody"]))


def cache_path(cache_dir: Path) -> Path:
    import music21

    return Path(cache_dir) / f"melody-corpus-v{CORPUS_VERSION}-music21-{music21.__version__}.jsonl.gz"


def meta_path(cache_dir: Path) -> Path:
    """How the cached corpus was made (parse time, processes), for the training report."""
    return cache_path(cache_dir).with_name(cache_path(cache_dir).name.removesuffix(".jsonl.gz") + ".meta.json")


def load_corpus(cache_dir: Path, workers: int = 2, report: Callable[[int, int], None] | None = None) -> list[CorpusTune]:
    """The parsed corpus, from the cache when present; parsing (and caching) it otherwise."""
    path = cache_path(cache_dir)
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [_tune(json.loads(line)) for line in handle]
    started = time.perf_counter()
    tunes = parse_corpus(workers, report)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"parse_seconds": round(time.perf_counter() - started, 1), "workers": workers, "tunes": len(tunes)}
    meta_path(cache_dir).write_text(json.dumps(meta) + "\n")
    tmp = path.with_name(path.name + ".partial")
    with gzip.open(tmp, "wt", encoding="utf-8") as handle:
        for tune in tunes:
            row = {"source": tune.source, "id": tune.id, "title": tune.title, "melody": tune.melody.to_json()}
            handle.write(json.dumps(row) + "\n")
    os.replace(tmp, path)
    return tunes


def split(tunes: list[CorpusTune]) -> tuple[list[CorpusTune], list[CorpusTune]]:
    """(training, held-out) by tune."""
    return [t for t in tunes if not t.held_out], [t for t in tunes if t.held_out]


def iter_melodies(tunes: list[CorpusTune]) -> Iterator[Melody]:
    return (t.melody for t in tunes)
