"""`python -m studio image|img2img|inpaint|outpaint ...`: the Image tab from a terminal."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from studio.backends.diffusion import DEFAULT_DECODER, DEFAULT_MODEL, DEFAULT_SAMPLER, FULL_VAE, SAMPLERS
from studio.errors import InputError
from studio.settings import Settings

PNG_ONLY = "--out must be a .png file (the picture carries its parameters in it)"


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size like 512x512")
    width = int(match.group(1))
    return width, int(match.group(2) or width)


def add_parsers(commands) -> None:
    """Register the image commands on the studio's sub-command parser."""
    for name, help_text in (
        ("image", "make pictures from a prompt (text to image)"),
        ("img2img", "redraw a picture following a prompt"),
        ("inpaint", "repaint the white area of a mask"),
        ("outpaint", "extend a picture beyond its borders"),
    ):
        parser = commands.add_parser(name, help=help_text)
        if name != "image":
            parser.add_argument("input", type=Path, help="the picture to work on")
        parser.add_argument("prompt", help="what the picture should show")
        if name == "inpaint":
            parser.add_argument("--mask", type=Path, required=True, help="white = repaint, black = keep")
            parser.add_argument("--only-masked", action="store_true",
                                help="work on a crop around the mask at the model's resolution")
            parser.add_argument("--padding", type=int, default=32, help="px around the mask with --only-masked")
        if name == "outpaint":
            for side in ("left", "right", "top", "bottom"):
                parser.add_argument(f"--{side}", type=int, default=0, help=f"px to add on the {side}")
        if name in ("inpaint", "outpaint"):
            parser.add_argument("--mask-blur", type=int, default=4, help="feather the mask's edge, px (default 4)")
        if name != "image":
            parser.add_argument("--strength", type=float, default=None,
                                help="0..1: how far to move from the input (default 1 to paint, 0.5 for img2img)")
        parser.add_argument("--negative", default="", help="what the picture should not show")
        parser.add_argument("--model", default=DEFAULT_MODEL, help=f"a catalogue id (default {DEFAULT_MODEL})")
        parser.add_argument("--seed", type=int, help="the same seed and settings give the same picture (default random)")
        parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 1; 2 for img2img)")
        parser.add_argument("--guidance", type=float, default=0.0, help="CFG scale (default 0, right for SD-Turbo)")
        parser.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=list(SAMPLERS))
        parser.add_argument("--size", type=_size, help="WIDTHxHEIGHT (default 512x512, or the input's shape)")
        parser.add_argument("--batch-size", type=int, default=1, help="pictures made together")
        parser.add_argument("--batch-count", type=int, default=1, help="batches made one after another")
        parser.add_argument("--decoder", default=DEFAULT_DECODER,
                            help=f"fast decoder's catalogue id, or '{FULL_VAE}' for the model's own VAE")
        parser.add_argument("--out", type=Path, help="where to write the picture (.png; a batch adds -2, -3, ...)")
        parser.add_argument("--json", action="store_true", help="print one JSON object describing the result")
        parser.add_argument("--no-gallery", action="store_true", help="do not list the result in the gallery")


COMMANDS = ("image", "img2img", "inpaint", "outpaint")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from studio.backends.diffusion import ImageRequest
    from studio.images import working_size
    from studio.media.png_info import save_png
    from studio.services import Studio

    mode = "txt2img" if args.command == "image" else args.command
    out = args.out or Path(f"{mode}.png")
    if out.suffix.lower() != ".png":
        raise InputError(PNG_ONLY)
    if not out.parent.resolve().is_dir():
        raise InputError(f"the folder {out.parent} does not exist")

    studio = Studio(settings)
    picture = studio.open_image(args.input) if mode != "txt2img" else None
    mask = studio.open_image(args.mask) if mode == "inpaint" else None
    if args.size:
        width, height = args.size
    elif picture is not None:
        basis = picture.rgb
        if mode == "outpaint":
            basis = basis.resize((basis.width + args.left + args.right, basis.height + args.top + args.bottom))
        width, height = working_size(studio, args.model, basis)
    else:
        width = height = 512
    strength = args.strength if getattr(args, "strength", None) is not None else (0.5 if mode == "img2img" else 1.0)
    steps = args.steps if args.steps is not None else (2 if mode == "img2img" else 1)
    extra = {}
    if mode == "inpaint":
        extra.update(only_masked=args.only_masked, padding=args.padding)
    if mode == "outpaint":
        extra.update(extend_left=args.left, extend_right=args.right, extend_top=args.top, extend_bottom=args.bottom)
    if mode in ("inpaint", "outpaint"):
        extra["mask_blur"] = args.mask_blur
    request = ImageRequest(
        prompt=args.prompt, mode=mode, negative_prompt=args.negative, model=args.model, steps=steps,
        guidance=args.guidance, width=width, height=height, seed=args.seed, sampler=args.sampler,
        batch_size=args.batch_size, batch_count=args.batch_count, strength=strength, decoder=args.decoder, **extra,
    )
    outcome = studio.generate_image(request, picture, mask, keep=not args.no_gallery)
    result = outcome.result
    from studio.backends.diffusion import a1111_parameters

    paths = []
    for n, (image, record) in enumerate(zip(result.images, result.params, strict=True)):
        path = out if n == 0 else out.with_name(f"{out.stem}-{n + 1}{out.suffix}")
        try:
            save_png(image, path, {"studio": json.dumps(record, sort_keys=True), "parameters": a1111_parameters(record)})
        except OSError as exc:
            raise InputError(f"could not write {path}: {exc.strerror or exc}") from None
        paths.append(path)
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({
            "outputs": [str(p) for p in paths],
            "parameters": result.params,
            "seconds": round(result.seconds, 3),
            "gallery_ids": [item.id for item in outcome.items],
        }))
    else:
        for path, record in zip(paths, result.params, strict=True):
            print(f"{path} ({record['result_width']}x{record['result_height']}, seed {record['seed']})")
        print(f"{len(paths)} picture(s) in {result.seconds:.2f} s")
    return 0
