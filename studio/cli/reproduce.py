"""`python -m studio reproduce IMAGE.png`: make a picture again from the parameters it carries."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.errors import InputError
from studio.settings import Settings

EXIT_DIFFERS = 1  # made again, but not pixel for pixel (like `cmp`); 2 stays "could not be made"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "reproduce",
        help="make a PNG again from the parameters it carries and say whether the pixels match",
        description="Reads the parameters a PNG carries (the studio's own record, or AUTOMATIC1111's 'parameters' "
                    "text where its model is in the catalogue), makes the picture again and compares the pixels. "
                    "Exit code 0: it matches the original; 1: it was made but differs; 2: it could not be made.",
    )
    parser.add_argument("image", type=Path, help="a PNG made by the studio (or by AUTOMATIC1111)")
    parser.add_argument("--out", type=Path,
                        help="where to write the new picture (.png; default IMAGE-reproduced.png beside the original)")
    parser.add_argument("--input", type=Path,
                        help="the input picture, when the original's is not in this studio's gallery store "
                             "(img2img, inpaint, outpaint, restyle, style)")
    parser.add_argument("--mask", type=Path, help="the inpainting mask, likewise")
    parser.add_argument("--style-image", type=Path, help="the style image of a style-from-a-picture result, likewise")
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    parser.add_argument("--no-gallery", action="store_true", help="do not list the new picture in the gallery")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from PIL import Image

    from studio.media.png_info import save_png
    from studio.services import Studio
    from studio.services.reproduce import compare, machine_notes, read_recipe, reproduce

    source: Path = args.image
    out: Path = args.out or source.with_name(f"{source.stem}-reproduced.png")
    if out.suffix.lower() != ".png":
        raise InputError("--out must be a .png file (the picture carries its parameters in it)")
    if not out.parent.resolve().is_dir():
        raise InputError(f"the folder {out.parent} does not exist")
    if out.resolve() == source.resolve():
        raise InputError("--out names the picture being reproduced; write the new one elsewhere")

    studio = Studio(settings)
    studio.open_image(source)  # a missing, damaged or oversized file is explained before anything runs
    with Image.open(source) as opened:
        original = opened.copy()
    recipe = read_recipe(source, studio)
    made = reproduce(studio, recipe, picture=args.input, mask=args.mask, style_image=args.style_image,
                     keep=not args.no_gallery)
    try:
        save_png(made.image, out, made.png_text)
    except OSError as exc:
        raise InputError(f"could not write {out}: {exc.strerror or exc}") from None

    comparison = compare(original, made.image)
    notes = list(made.notes)
    if not comparison.equal:
        notes += machine_notes(recipe.params, made.record)
        if recipe.source == "AUTOMATIC1111":
            notes.append("the parameters came from AUTOMATIC1111's text: another program's pixels are rarely "
                         "matched exactly")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    verdict = comparison.describe(original, made.image)
    if args.json:
        print(json.dumps({
            "outputs": [str(out)],
            "parameters": made.record,
            "parameters_from": recipe.source,
            "seconds": round(made.seconds, 3),
            "gallery_id": made.item.id if made.item else None,
            "matches": comparison.equal,
            "changed_share": round(comparison.changed_share, 6),
            "largest_difference": comparison.largest_difference,
        }, default=str))
    else:
        seed = made.record.get("seed")
        print(f"{out} ({made.image.width}x{made.image.height}, {recipe.task}"
              f"{f', seed {seed}' if seed is not None else ''}, {made.seconds:.2f} s): {verdict}")
    return 0 if comparison.equal else EXIT_DIFFERS
