"""`python -m studio style-video CLIP.mp4 --style 7 --out out.mp4`: restyle a whole video from the terminal,
without flicker, its soundtrack kept."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio import settings as settings_mod
from studio.backends.stylize import BUILTIN_STYLE_COUNT
from studio.backends.video_style import DEFAULT_TEMPORAL, DEFAULT_VIDEO_SIZE
from studio.cli.common import fail, unit_interval

COMMAND = "style-video"


def add_parser(commands: argparse._SubParsersAction) -> None:
    video = commands.add_parser(COMMAND, help="restyle a video (MP4, MOV, WebM, GIF) without flicker, sound kept")
    video.add_argument("clip", type=Path, help="the video to restyle")
    pick = video.add_mutually_exclusive_group()
    pick.add_argument("--style", type=int, default=None, help=f"built-in style 0-{BUILTIN_STYLE_COUNT - 1} (default 0)")
    pick.add_argument("--style-image", type=Path, help="use any picture as the style")
    video.add_argument("--blend-style", type=int, help="a second built-in style to blend in")
    video.add_argument("--blend", type=unit_interval, default=0.5, help="share of the second style (default 0.5)")
    video.add_argument("--strength", type=unit_interval, default=1.0, help="0..1 (default 1)")
    video.add_argument("--preserve-color", action="store_true", help="keep the clip's own colours")
    video.add_argument("--temporal", type=unit_interval, default=DEFAULT_TEMPORAL,
                       help=f"0..1: how much of the previous frame is carried along the motion against flicker "
                            f"(0: frame by frame; default {DEFAULT_TEMPORAL})")
    video.add_argument("--size", type=int, default=DEFAULT_VIDEO_SIZE,
                       help=f"longest side of the result in px (default {DEFAULT_VIDEO_SIZE})")
    video.add_argument("--gif", action="store_true", help="also write a looping GIF beside the MP4")
    video.add_argument("--out", type=Path, help="where to write the result (.mp4; default CLIP_styled.mp4)")
    video.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    video.add_argument("--no-gallery", action="store_true", help="do not list the result in the studio's gallery")


def _progress(done: int, total: int, preview: object = None) -> None:
    if sys.stderr.isatty() and (done == total or done % 10 == 0):
        print(f"\rframe {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, settings: settings_mod.Settings) -> int:
    from studio.backends.stylize import StyleRequest
    from studio.backends.video_style import VideoStyleRequest
    from studio.services import Studio

    out = args.out or Path(f"{args.clip.stem}_styled.mp4")
    if out.suffix.lower() != ".mp4":
        return fail(f"--out must end in .mp4, not '{out.suffix or out.name}' (add --gif for a GIF beside it)")
    if not out.parent.resolve().is_dir():
        return fail(f"the folder {out.parent} does not exist")
    if not args.clip.is_file():
        return fail(f"no such file: {args.clip}")
    studio = Studio(settings)
    style_image = studio.open_image(args.style_image) if args.style_image else None
    request = VideoStyleRequest(
        style=StyleRequest(
            style=0 if args.style is None else args.style,
            blend_style=args.blend_style,
            blend=args.blend if args.blend_style is not None else 0.0,
            strength=args.strength,
            preserve_color=args.preserve_color,
            size=args.size,
        ),
        temporal=args.temporal,
        gif=args.gif,
    )
    try:
        outcome = studio.restyle_video(args.clip, request, style_image, keep=not args.no_gallery, save_to=out,
                                       progress=_progress)
    except OSError as exc:
        return fail(f"could not write {out}: {exc.strerror or exc}")
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    result = outcome.result
    outputs = [str(out)] + ([str(out.with_suffix(".gif"))] if args.gif else [])
    if args.json:
        print(json.dumps({
            "outputs": outputs,
            "parameters": result.params,
            "frames": result.frames,
            "fps": round(result.fps, 4),
            "seconds": round(result.seconds, 3),
            "seconds_per_frame": round(result.seconds / result.frames, 4),
            "source": outcome.info.describe(),
            "gallery_id": outcome.item.id if outcome.item else None,
        }))
    else:
        print(f"{out} ({result.width}x{result.height}, {result.frames} frames at {result.fps:.3g} fps, "
              f"{result.seconds:.1f} s)")
    return 0
