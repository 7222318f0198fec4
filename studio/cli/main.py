"""The studio from a terminal: `python -m studio style PHOTO --style 19 --out out.png`.

Every mistake ends in one line on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

from studio import cli_image, cli_music, cli_reproduce, cli_text, cli_walks
from studio import settings as settings_mod
from studio.errors import Cancelled, StudioError

EXIT_BAD_INPUT = 2
OUTPUT_FORMATS = {".png", ".jpg", ".jpeg", ".webp"}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m studio", description="Creative Studio from the command line.")
    parser.add_argument("--data-dir", type=Path, help="gallery and outputs folder (STUDIO_DATA_DIR)")
    parser.add_argument("--device", choices=settings_mod.DEVICES, help="where models run (STUDIO_DEVICE)")
    parser.add_argument("--models-file", type=Path, help="extra catalogue entries, TOML (STUDIO_MODELS_FILE)")
    parser.add_argument(
        "--offline", action="store_const", const=True, help="never contact the model hub (STUDIO_OFFLINE)"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    style = commands.add_parser("style", help="restyle a photo with a built-in style or any picture")
    style.add_argument("photo", type=Path, help="the photo to restyle")
    pick = style.add_mutually_exclusive_group()
    pick.add_argument("--style", type=int, default=None, help="built-in style 0-25 (default 0)")
    pick.add_argument("--style-image", type=Path, help="use any picture as the style")
    style.add_argument("--blend-style", type=int, help="a second built-in style to blend in")
    style.add_argument("--blend", type=_unit_interval, default=0.5, help="share of the second style (default 0.5)")
    style.add_argument("--strength", type=_unit_interval, default=1.0, help="0..1 (default 1)")
    style.add_argument("--preserve-color", action="store_true", help="keep the photo's own colours")
    style.add_argument("--size", type=int, help="longest side of the result in px (default: the photo's, capped)")
    style.add_argument(
        "--fast", action="store_true", help="style image mode: work at 384 px and upscale (quicker, softer)"
    )
    style.add_argument("--out", type=Path, help="where to write the result (.png, .jpg, .webp)")
    style.add_argument("--json", action="store_true", help="print one JSON object describing the result")
    style.add_argument("--no-gallery", action="store_true", help="do not list the result in the studio's gallery")

    cli_text.add_parser(commands)
    cli_image.add_parsers(commands)
    cli_music.add_commands(commands)

    commands.add_parser("models", help="list the model catalogue")

    download = commands.add_parser("download", help="fetch a catalogue model from the hub into the local cache")
    download.add_argument("model", help="a catalogue id, e.g. stabilityai/sd-turbo (see `models`)")

    cli_walks.add_commands(commands)
    cli_reproduce.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_mod.from_args(args)
        if args.command == "style":
            return _style(args, settings)
        if args.command == "text":
            return cli_text.run(args, settings)
        if args.command in cli_image.COMMANDS:
            return cli_image.run(args, settings)
        if args.command in ("melody", "music"):
            return cli_music.run(args, settings, _fail)
        if args.command == "models":
            return _models(settings)
        if args.command == "download":
            return _download(args.model, settings)
        if args.command == "reproduce":
            return cli_reproduce.run(args, settings)
        code = cli_walks.run(args, settings)
        if code is not None:
            return code
    except StudioError as exc:
        return _fail(str(exc))
    except settings_mod.SettingsError as exc:
        return _fail(str(exc))
    except Cancelled:
        return _fail("stopped")
    except KeyboardInterrupt:
        return _fail("interrupted", code=130)
    parser.error(f"unknown command {args.command}")


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _style(args: argparse.Namespace, settings: settings_mod.Settings) -> int:
    from studio.backends.stylize import StyleRequest
    from studio.services import Studio

    out = args.out or Path(f"{args.photo.stem}_styled.png")
    if out.suffix.lower() not in OUTPUT_FORMATS:
        return _fail(f"--out must end in one of {', '.join(sorted(OUTPUT_FORMATS))}, not '{out.suffix or out.name}'")
    if not out.parent.resolve().is_dir():
        return _fail(f"the folder {out.parent} does not exist")

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
    try:
        if out.suffix.lower() == ".png":
            from studio.media.png_info import save_png

            # The gallery's record also names the stored inputs, so `reproduce` finds them.
            record = outcome.item.params if outcome.item else outcome.result.params
            save_png(image, out, {"studio": json.dumps(record, sort_keys=True)})
        else:
            (image.convert("RGB") if out.suffix.lower() in {".jpg", ".jpeg"} else image).save(out, quality=95)
    except OSError as exc:
        return _fail(f"could not write {out}: {exc.strerror or exc}")
    for note in outcome.notes:
        print(f"note: {note}", file=sys.stderr)
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


def _models(settings: settings_mod.Settings) -> int:
    from studio.catalog import load_catalog

    for entry in load_catalog(settings.models_file).entries():
        flag = "" if entry.commercial_use else "  [non-commercial]"
        print(f"{entry.id:48} {entry.source:9} {entry.size_text():>8}  {', '.join(entry.tasks)}  ({entry.licence}){flag}")
    return 0


def _download(model_id: str, settings: settings_mod.Settings) -> int:
    from studio import hub
    from studio.catalog import load_catalog

    entry = load_catalog(settings.models_file).get(model_id)
    if entry.source != "download":
        return _fail(f"'{model_id}' is {'built in' if entry.builtin else 'a local model'}; there is nothing to download")
    print(f"Downloading {entry.name} ({entry.repo}, about {entry.size_text()}, licence: {entry.licence})", file=sys.stderr)
    path = hub.locate(entry, offline=settings.offline)
    print(path)
    return 0
