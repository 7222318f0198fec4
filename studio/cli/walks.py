"""Command-line walks: `patterns` (stills and looping walks), `walk`, `style-walk` and `melody-walk`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.errors import InputError
from studio.settings import Settings, add_network_dir_arguments

STILL_FORMATS = {".png", ".jpg", ".jpeg", ".webp"}
ANIMATION_FORMATS = {".gif", ".mp4"}
MELODY_WALK_FORMATS = {".mid", ".midi", ".wav"}
MELODY_INPUTS = {".mid": "midi", ".midi": "midi", ".abc": "abc", ".txt": "abc"}


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            return int(text), int(text)
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size like 1024x768") from None


def add_commands(commands: argparse._SubParsersAction) -> None:
    patterns = commands.add_parser("patterns", help="abstract CPPN patterns at any size, or a looping walk")
    patterns.add_argument("--seed", type=int, default=0, help="which pattern (default 0)")
    patterns.add_argument("--size", type=_size, default=(1024, 1024), help="WIDTHxHEIGHT (default 1024x1024)")
    patterns.add_argument("--palette", default="network colours", help="network colours, sunset, ocean, forest, neon, ink")
    patterns.add_argument("--zoom", type=float, default=1.0, help="show more of the plane (0.1-20, default 1)")
    patterns.add_argument("--walk-to", type=int, help="a second seed: make a looping walk to it and back")
    patterns.add_argument("--frames", type=int, default=48, help="frames in the loop (default 48)")
    patterns.add_argument("--out", type=Path, help="a .png for a picture, a .mp4 or .gif for a walk")
    patterns.add_argument("--json", action="store_true", help="print one JSON object describing the result")

    prompts = commands.add_parser("walk", help="a prompt and seed walk through an image model, optionally paced by a song")
    prompts.add_argument("--prompt", action="append", default=[], help="a keyframe's prompt (repeat, in order)")
    prompts.add_argument("--seed", type=int, action="append", default=[], help="that keyframe's seed (repeat)")
    prompts.add_argument("--frames", type=int, default=24, help="total frames, keyframes included (default 24)")
    prompts.add_argument("--model", default=None, help="an image model from the catalogue (default SD-Turbo)")
    prompts.add_argument("--steps", type=int, default=1)
    prompts.add_argument("--guidance", type=float, default=0.0)
    prompts.add_argument("--size", type=_size, default=(512, 512), help="WIDTHxHEIGHT (default 512x512)")
    prompts.add_argument("--fps", type=float, default=12.0)
    prompts.add_argument("--audio", type=Path, help="a song: the walk follows its beat and the MP4 carries it")
    add_network_dir_arguments(prompts)  # <lora:NAME> tags and embedding names in the prompts
    prompts.add_argument("--out", type=Path, help="a .mp4 or .gif (default walk.mp4)")
    prompts.add_argument("--json", action="store_true")

    walk = commands.add_parser("style-walk", help="restyle a photo while walking between styles")
    walk.add_argument("photo", type=Path)
    walk.add_argument("--style", type=int, action="append", default=[], help="a built-in style keyframe (repeat)")
    walk.add_argument("--style-image", type=Path, action="append", default=[], help="a style image keyframe (repeat)")
    walk.add_argument("--frames", type=int, default=24, help="total frames, keyframes included (default 24)")
    walk.add_argument("--size", type=int, default=512, help="longest side of the frames (default 512)")
    walk.add_argument("--fps", type=float, default=12.0)
    walk.add_argument("--preserve-color", action="store_true")
    walk.add_argument("--out", type=Path, help="a .gif or .mp4 (default walk.gif)")
    walk.add_argument("--json", action="store_true")

    melody = commands.add_parser(
        "melody-walk", help="morph one melody into another through the melody VAE: writes .mid, .wav, .png",
        description="Writes OUT (.mid or .wav) with the other two of .mid, .wav and a piano-roll .png beside it.",
    )
    melody.add_argument("first", type=Path, metavar="A", help="melody A: a MIDI (.mid) or ABC (.abc) file")
    melody.add_argument("second", type=Path, metavar="B", help="melody B, in the same metre as A")
    melody.add_argument("--steps", type=int, default=6, help="melodies in the walk, A and B included (default 6)")
    melody.add_argument("--tempo", type=float, help="quarter notes per minute (default: A's own, or 110)")
    melody.add_argument("--timbre", default="piano", help="piano, flute, organ, pluck or chiptune")
    melody.add_argument("--lerp", action="store_true", help="walk in a straight line instead of slerp")
    melody.add_argument("--out", type=Path, default=Path("morph.mid"), help="a .mid or .wav (default morph.mid)")
    melody.add_argument("--json", action="store_true", help="print one JSON object describing the result")


def run(args: argparse.Namespace, settings: Settings) -> int | None:
    """Run a walk command; None when `args` names another command."""
    if args.command == "patterns":
        return _patterns(args, settings)
    if args.command == "style-walk":
        return _style_walk(args, settings)
    if args.command == "walk":
        return _prompt_walk(args, settings)
    if args.command == "melody-walk":
        return _melody_walk(args, settings)
    return None


def _check_out(out: Path, formats: set[str]) -> None:
    if out.suffix.lower() not in formats:
        raise InputError(f"--out must end in one of {', '.join(sorted(formats))}, not '{out.suffix or out.name}'")
    if not out.parent.resolve().is_dir():
        raise InputError(f"the folder {out.parent} does not exist")


def _report(args: argparse.Namespace, out: Path, outcome) -> int:
    if outcome.stopped:
        print(f"note: stopped after {len(outcome.frames)} frames", file=sys.stderr)
    if args.json:
        print(json.dumps({"outputs": [str(out)], "parameters": outcome.params, "seconds": round(outcome.seconds, 3),
                          "gallery_id": outcome.item.id if outcome.item else None}, default=str))
    else:
        first = outcome.frames[0]
        print(f"{out} ({len(outcome.frames)} frame(s), {first.width}x{first.height}, {outcome.seconds:.2f} s)")
    return 0


def _write_animation(frames, out: Path, fps: float) -> None:
    from studio.media.animation import write_gif, write_mp4

    (write_gif if out.suffix.lower() == ".gif" else write_mp4)(frames, out, fps)


def _patterns(args: argparse.Namespace, settings: Settings) -> int:
    from studio.backends.patterns import PatternRequest
    from studio.services import Studio
    from studio.services.walks import PATTERN_WALK_FPS

    walking = args.walk_to is not None
    out = args.out or Path(f"pattern-{args.seed}{'.mp4' if walking else '.png'}")
    _check_out(out, ANIMATION_FORMATS if walking else STILL_FORMATS)
    width, height = args.size
    request = PatternRequest(seed=args.seed, width=width, height=height, palette=args.palette, zoom=args.zoom,
                             walk_to=args.walk_to, frames=args.frames)
    outcome = Studio(settings).make_patterns(request)
    if walking:
        _write_animation(outcome.frames, out, PATTERN_WALK_FPS)
    elif out.suffix.lower() == ".png":  # carries its parameters, like every PNG the studio writes
        from studio.media.png_info import STUDIO_KEY, save_png

        save_png(outcome.frames[0], out, {STUDIO_KEY: json.dumps(outcome.params, sort_keys=True)})
    else:
        outcome.frames[0].save(out)
    return _report(args, out, outcome)


def _style_walk(args: argparse.Namespace, settings: Settings) -> int:
    from studio.backends.style_walk import StyleWalkRequest
    from studio.services import Studio

    out = args.out or Path("walk.gif")
    _check_out(out, ANIMATION_FORMATS)
    keyframes = len(args.style) or len(args.style_image)
    if keyframes < 2 or (args.style and args.style_image):
        raise InputError("give two or more --style keyframes, or two or more --style-image keyframes (not both)")
    if args.frames < keyframes:
        raise InputError(f"--frames must be at least the number of keyframes ({keyframes})")
    between = max(0, (args.frames - 1) // (keyframes - 1) - 1)
    studio = Studio(settings)
    photo = studio.open_image(args.photo)
    images = [studio.open_image(path) for path in args.style_image]
    request = StyleWalkRequest(styles=tuple(args.style), frames_between=between, size=args.size,
                               preserve_color=args.preserve_color, fps=args.fps)
    outcome = studio.style_walk(photo, request, images)
    _write_animation(outcome.frames, out, args.fps)
    return _report(args, out, outcome)


def _prompt_walk(args: argparse.Namespace, settings: Settings) -> int:
    import shutil

    from studio.backends.diffusion import ImageRequest
    from studio.backends.diffusion.walks import Keyframe, PromptWalkRequest
    from studio.services import Studio

    out = args.out or Path("walk.mp4")
    _check_out(out, ANIMATION_FORMATS)
    if len(args.prompt) < 2 or len(args.prompt) != len(args.seed):
        raise InputError("give two or more keyframes as --prompt TEXT --seed N pairs")
    keys = tuple(Keyframe(p, s) for p, s in zip(args.prompt, args.seed, strict=True))
    if args.frames < len(keys):
        raise InputError(f"--frames must be at least the number of keyframes ({len(keys)})")
    width, height = args.size
    fields = {"model": args.model} if args.model else {}
    base = ImageRequest(prompt=keys[0].prompt, steps=args.steps, guidance=args.guidance, width=width, height=height,
                        **fields)
    between = max(0, (args.frames - 1) // (len(keys) - 1) - 1)
    request = PromptWalkRequest(keyframes=keys, frames_between=between, settings=base, fps=args.fps)
    if args.audio is not None and not args.audio.is_file():
        raise InputError(f"no audio file at {args.audio}")
    studio = Studio(settings)
    outcome = studio.prompt_walk(request, audio=args.audio)
    assert outcome.item is not None
    if out.suffix.lower() == ".mp4":
        shutil.copyfile(outcome.item.file, out)  # the kept MP4, soundtrack included
    else:
        _write_animation(outcome.frames, out, outcome.params["fps"])
    return _report(args, out, outcome)


def _melody_walk(args: argparse.Namespace, settings: Settings) -> int:
    import shutil

    from studio.backends.melody_walk import MelodyWalkRequest
    from studio.services import Studio
    from studio.services.music import describe_walk

    out: Path = args.out
    _check_out(out, MELODY_WALK_FORMATS)
    studio = Studio(settings)
    melodies, tempi = [], []
    for name, path in (("A", args.first), ("B", args.second)):
        if not path.is_file():
            raise InputError(f"melody {name}: {path} does not exist")
        kind = MELODY_INPUTS.get(path.suffix.lower())
        if kind is None:
            raise InputError(f"melody {name} must be a MIDI (.mid) or ABC (.abc) file, not '{path.suffix or path.name}'")
        source = path.read_text(encoding="utf-8", errors="replace") if kind == "abc" else path
        read = studio.read_primer(kind, source)
        melodies.append(read.melody)
        tempi.append(read.tempo)
    tempo = args.tempo or round(tempi[0] or 110.0)
    request = MelodyWalkRequest(steps=args.steps, tempo=float(tempo), timbre=args.timbre,
                                interpolation="lerp" if args.lerp else "slerp")
    outcome = studio.melody_walk(melodies[0], melodies[1], request)
    files = outcome.files
    written = []
    for source in (files.midi, files.wav, files.png):
        target = out if source.suffix == out.suffix.lower() or (
            source.suffix == ".mid" and out.suffix.lower() == ".midi") else out.with_suffix(source.suffix)
        try:
            shutil.copyfile(source, target)
        except OSError as exc:
            raise InputError(f"could not write {target}: {exc.strerror or exc}") from None
        written.append(str(target))
    for note in outcome.result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"outputs": written, "parameters": outcome.result.params,
                          "seconds": round(outcome.result.seconds, 3), "gallery_id": outcome.item.id}))
    else:
        print(f"{', '.join(written)} ({describe_walk(outcome)})")
    return 0
