"""`python -m studio upscale PICTURE --scale 4 --out big.png`: enlarge a picture from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio import settings as settings_mod
from studio.cli.common import fail, picture_out_problem, write_picture


def add_parser(commands: argparse._SubParsersAction) -> None:
    from studio.backends.upscale import DEFAULT_TILE, DEFAULT_UPSCALER, MAX_TILE, MIN_TILE, SCALES

    upscale = commands.add_parser("upscale", help="enlarge a picture 2-4x with Real-ESRGAN or your own upscaler")
    upscale.add_argument("picture", type=Path, help="the picture to enlarge")
    upscale.add_argument("--scale", type=int, choices=SCALES, default=4, help="how many times larger (default 4)")
    upscale.add_argument(
        "--upscaler",
        default=DEFAULT_UPSCALER,
        help="realesrgan-x4plus (photos, default), realesrgan-x4plus-anime (illustration), realesr-animevideov3 "
        "(small, fast), or the name of a .safetensors file in the upscaler folders",
    )
    upscale.add_argument(
        "--tile", type=int, default=DEFAULT_TILE,
        help=f"tile side in px of the picture, {MIN_TILE}-{MAX_TILE} (default {DEFAULT_TILE}; smaller uses less memory)",
    )
    upscale.add_argument("--out", type=Path, help="where to write the result (.png, .jpg, .webp)")
    upscale.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    upscale.add_argument("--no-gallery", action="store_true", help="do not list the result in the studio's gallery")
    settings_mod.add_upscaler_dir_argument(upscale)


def run(args: argparse.Namespace, settings: settings_mod.Settings) -> int:
    from studio.backends.upscale import UpscaleRequest
    from studio.services import Studio
    from studio.services.upscale import source_parameters

    out = args.out or Path(f"{args.picture.stem}_x{args.scale}.png")
    if problem := picture_out_problem(out):
        return fail(problem)

    studio = Studio(settings)
    picture = studio.open_image(args.picture)
    request = UpscaleRequest(upscaler=args.upscaler, scale=args.scale, tile=args.tile)
    outcome = studio.upscale(picture, request, parameters=source_parameters(args.picture), keep=not args.no_gallery)
    image = outcome.result.image
    record = outcome.item.params if outcome.item else outcome.result.params
    try:
        write_picture(image, out, {"parameters": outcome.parameters, "studio": json.dumps(record, sort_keys=True)})
    except OSError as exc:
        return fail(f"could not write {out}: {exc.strerror or exc}")
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "outputs": [str(out)],
            "parameters": outcome.result.params,
            "png_parameters": outcome.parameters,
            "seconds": round(outcome.result.seconds, 3),
            "gallery_id": outcome.item.id if outcome.item else None,
        }))
    else:
        print(f"{out} ({image.width}x{image.height}, {outcome.result.seconds:.2f} s)")
    return 0
