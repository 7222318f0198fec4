"""`python -m studio melody ...` and `python -m studio music ...`: the Music tab from a terminal."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from studio import settings as settings_mod
from studio.cli import batch as cli_batch
from studio.media.melody_tokens import METERS, MODES

MELODY_OUT = {".mid", ".midi"}
PRIMER_SUFFIXES = {".mid": "midi", ".midi": "midi", ".abc": "abc", ".txt": "abc"}


def add_commands(commands) -> None:
    from studio.backends.melody import MAX_BARS
    from studio.media.synth import TIMBRES

    melody = commands.add_parser(
        "melody",
        help="compose a melody (or continue one) with the built-in melody model: writes .mid, .wav, .png",
        description="Writes OUT (.mid) with a .wav, a piano-roll .png and an .abc beside it.",
    )
    melody.add_argument("--key", default="C", help="tonic: C, C#, Db, D, ... B (default C)")
    melody.add_argument("--mode", choices=MODES, default="major")
    melody.add_argument("--meter", choices=METERS[:4], default="4/4", help="metre (default 4/4)")
    melody.add_argument("--bars", type=int, default=16, help=f"new bars, 1-{MAX_BARS} (default 16)")
    melody.add_argument("--tempo", type=float, help="quarter notes per minute (default 110, or the primer's)")
    melody.add_argument("--temperature", type=float, default=0.9, help="0 (plain) .. 2 (wild); default 0.9")
    melody.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling share (default 0.95)")
    melody.add_argument("--key-strength", type=float, default=2.0, help="how firmly to stay in the key (0-20)")
    melody.add_argument("--seed", type=int, help="the same seed and settings give the same tune (default: a new seed each time, shown with the result)")
    melody.add_argument("--seeds", type=cli_batch.parse_seeds, metavar="LIST",
                        help="one tune per seed, e.g. 1-8 or 3,5,9: OUT-s<seed>.mid (with its .wav, .png, .abc)")
    melody.add_argument("--timbre", choices=sorted(TIMBRES), default="piano")
    melody.add_argument(
        "--continue", dest="primer", type=Path, metavar="FILE",
        help="a melody to carry on: MIDI (.mid), ABC (.abc) or a recording (.wav, .flac, .ogg, .mp3)",
    )
    melody.add_argument("--keep-key", action="store_true",
                        help="with --continue: use --key/--mode/--meter instead of the primer's own")
    melody.add_argument("--out", type=Path, default=Path("melody.mid"), help="the .mid to write (default melody.mid)")
    melody.add_argument("--json", action="store_true", help="print one JSON object describing the result")

    music = commands.add_parser("music", help="text to music audio with MusicGen (downloads on first use)")
    music.add_argument("prompt", help="what the music should be, e.g. 'lo-fi piano with soft drums'")
    music.add_argument("--seconds", type=float, default=8.0, help="length, 0.1-30 s (default 8)")
    music.add_argument("--guidance", type=float, default=3.0, help="how closely to follow the prompt (default 3)")
    music.add_argument("--seed", type=int, default=0)
    music.add_argument("--model", default="facebook/musicgen-small", help="a catalogue id with the music task")
    music.add_argument("--speed", choices=("exact", "fastest"), default="fastest",
                       help="exact: the model's own float32 result; fastest (default): int8 decoder on a CPU, "
                            "a quarter of the bytes per step, very close but not identical")
    music.add_argument("--melody", type=Path, help="a recording to follow (MusicGen melody models only)")
    music.add_argument("--out", type=Path, default=Path("music.wav"), help="the .wav to write")
    music.add_argument("--json", action="store_true", help="print one JSON object describing the result")


def run(args: argparse.Namespace, settings: settings_mod.Settings, fail) -> int:
    if args.command == "melody":
        return _melody(args, settings, fail)
    return _music(args, settings, fail)


def _melody(args: argparse.Namespace, settings: settings_mod.Settings, fail) -> int:
    from studio.backends.melody import MelodyRequest
    from studio.services import Studio
    from studio.services.music import new_seed

    out: Path = args.out
    if out.suffix.lower() not in MELODY_OUT:
        return fail(f"--out must end in .mid, not '{out.suffix or out.name}'")
    if not out.parent.resolve().is_dir():
        return fail(f"the folder {out.parent} does not exist")
    if args.seed is not None and args.seeds is not None:
        return fail("give --seed or --seeds, not both")
    studio = Studio(settings)
    primer = None
    key, mode, meter, tempo = args.key, args.mode, args.meter, args.tempo or 110.0
    if args.primer is not None:
        if not args.primer.is_file():
            return fail(f"{args.primer} does not exist")
        kind = PRIMER_SUFFIXES.get(args.primer.suffix.lower(), "audio")
        source = args.primer.read_text(encoding="utf-8", errors="replace") if kind == "abc" else args.primer
        read = studio.read_primer(kind, source, meter)
        primer = read.melody
        if not args.keep_key:
            from studio.media.melody_tokens import PITCH_NAMES

            key, mode, meter = PITCH_NAMES[primer.tonic], primer.mode, primer.meter
            if read.tempo and args.tempo is None:
                tempo = round(read.tempo)
    request = MelodyRequest(
        tonic=key, mode=mode, meter=meter, tempo=float(tempo), bars=args.bars, temperature=args.temperature,
        top_p=args.top_p, key_strength=args.key_strength, seed=args.seed if args.seed is not None else new_seed(),
        timbre=args.timbre,
    )
    if args.seeds is not None:
        return _melodies(studio, request, primer, args)
    outcome = studio.compose(request, primer)
    try:
        written = [str(p) for p in _copy_melody(outcome, out)]
    except OSError as exc:
        return fail(f"could not write {out}: {exc.strerror or exc}")
    from studio.services.music import describe_melody

    if args.json:
        print(json.dumps({"outputs": written, "parameters": outcome.result.params,
                          "seconds": round(outcome.result.seconds, 3), "gallery_id": outcome.item.id}))
    else:
        print(f"{', '.join(written)} ({describe_melody(outcome)})")
    return 0


def _copy_melody(outcome, out: Path) -> list[Path]:
    """The kept tune's .mid, .wav, .png and .abc, copied to OUT and beside it."""
    written = []
    for source in (outcome.files.midi, outcome.files.wav, outcome.files.png, outcome.files.abc):
        target = out.with_suffix(source.suffix)
        shutil.copyfile(source, target)
        written.append(target)
    return written


def _melodies(studio, request, primer, args: argparse.Namespace) -> int:
    """One tune per seed of --seeds, each named OUT-s<seed>; one progress line each on stderr."""
    from dataclasses import replace

    from studio.errors import InputError

    request.validate()  # settings every tune shares are explained once, not once per seed
    out: Path = args.out

    def make(item: cli_batch.BatchItem) -> cli_batch.ItemResult:
        outcome = studio.compose(replace(request, seed=item.seed), primer)
        target = out.with_name(f"{out.stem}-s{item.seed}{out.suffix}")
        try:
            written = _copy_melody(outcome, target)
        except OSError as exc:
            raise InputError(f"could not write {target}: {exc.strerror or exc}") from None
        return cli_batch.ItemResult(item, written, [outcome.result.params], [outcome.item.id])

    results = cli_batch.run_items(cli_batch.plan([""], args.seeds, None), make)
    made = [r for r in results if not r.error]
    if args.json:
        print(json.dumps({"outputs": [str(p) for r in made for p in r.outputs],
                          "parameters": [rec for r in made for rec in r.records],
                          "gallery_ids": [i for r in made for i in r.gallery_ids],
                          "failed": [{"seed": r.item.seed, "error": r.error} for r in results if r.error]}))
    else:
        for result in made:
            print(result.outputs[0])
    print(cli_batch.summary(results), file=sys.stderr)
    return cli_batch.EXIT_SOME_FAILED if len(made) < len(results) else 0


def _music(args: argparse.Namespace, settings: settings_mod.Settings, fail) -> int:
    from studio.backends.musicgen import MusicRequest
    from studio.services import Studio

    out: Path = args.out
    if out.suffix.lower() != ".wav":
        return fail(f"--out must end in .wav, not '{out.suffix or out.name}'")
    if not out.parent.resolve().is_dir():
        return fail(f"the folder {out.parent} does not exist")
    studio = Studio(settings)
    request = MusicRequest(prompt=args.prompt, seconds=args.seconds, guidance=args.guidance, seed=args.seed,
                           model=args.model, speed=args.speed)

    def report(done: int, total: int, preview=None) -> None:
        if sys.stderr.isatty():
            print(f"\rgenerating {done}/{total} frames", end="", file=sys.stderr)

    if args.melody is not None and not args.melody.is_file():
        return fail(f"{args.melody} does not exist")
    outcome = studio.make_music(request, args.melody, progress=report)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    try:
        shutil.copyfile(outcome.file, out)
    except OSError as exc:
        return fail(f"could not write {out}: {exc.strerror or exc}")
    result = outcome.result
    if args.json:
        print(json.dumps({"outputs": [str(out)], "parameters": result.params, "seconds": round(result.seconds, 3),
                          "gallery_id": outcome.item.id}))
    else:
        print(f"{out} ({len(result.audio) / result.sample_rate:.1f} s of audio in {result.seconds:.1f} s, "
              f"{result.params['speed']}: {result.params['path']}; licence {result.params['licence']})")
    return 0
