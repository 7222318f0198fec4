"""`python -m studio style PHOTO --style 19 --out out.png`: restyle a photo from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio import settings as settings_mod
from studio.cli.common import fail, picture_out_problem, unit_interval, write_picture


def add_parser(commands: argparse._SubParsersAction) -> None:
    style = commands.add_parser("style", help="restyle a photo with a built-in style or any picture")
    style.add_argument("photo", type=Path, help="the photo to restyle")
    pick = style.add_mutually_exclusive_group()
    pick.add_argument("--style", type=int, default=None, help="built-in style 0-25 (default 0)")
    pick.add_argument("--style-image", type=Path, help="use any picture as the style")
    style.add_argument("--blend-style", type=int, help="a second built-in style to blend in")
    style.add_argument("--blend", type=unit_interval, default=0.5, help="share of the second style (default 0.5)")
    style.add_argument("--strength", type=unit_interval, default=1.0, help="0..1 (default 1)")
    style.add_argument("--preserve-color", action="store_true", help="keep the photo's own colours")
    style.add_argument("--size", type=int, help="longest side of the result in px (default: the photo's, capped)")
    style.add_argument(
        "--fast", action="store_true", help="style image mode: work at 384 px and upscale (quicker, softer)"
    )
    style.add_argument("--out", type=Path, help="where to write the result (.png, .jpg, .webp)")
    style.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    style.add_argument("--no-gallery", action="store_true", help="do not list the result in the studio's gallery")


def run(args: argparse.Namespace, settings: settings_mod.Settings) -> int:
    from studio.backends.stylize import StyleRequest
    from studio.services import Studio

    out = args.out or Path(f"{args.photo.stem}_styled.png")
    if problem := picture_out_problem(out):
        return fail(problem)

    studio = Studio(settings)
    photo = studio.open_image(args.photo)
    style_image = studio.open_image(args.style_image) if args.style_image else None
    request = StyleRequest(
        style=0 if args.style is None else args.style,
        blend_style=args.blend_style,
        blend=args.blend if args.blend_style is not None else 0.0,
        strength=args.strength,
        preserve_color=args.preserve_color,
        size=args.size,
        tiled=not args.fast,
    )
    outcome = studio.stylize(photo, request, style_image, keep=not args.no_gallery)
    image = outcome.result.image
    # The gallery's record also names the stored inputs, so `reproduce` finds them.
    record = outcome.item.params if outcome.item else outcome.result.params
    try:
        write_picture(image, out, {"studio": json.dumps(record, sort_keys=True)})
    except OSError as exc:
        return fail(f"could not write {out}: {exc.strerror or exc}")
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "outputs": [str(out)],
                    "parameters": outcome.result.params,
                    "seconds": round(outcome.result.seconds, 3),
                    "gallery_id": outcome.item.id if outcome.item else None,
                }
            )
        )
    else:
        print(f"{out} ({image.width}x{image.height}, {outcome.result.seconds:.2f} s)")
    return 0
