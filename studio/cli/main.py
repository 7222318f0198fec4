"""The studio from a terminal: `python -m studio style PHOTO --style 19 --out out.png`.

Every mistake ends in one line on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from studio import settings as settings_mod
from studio.cli import download as cli_download
from studio.cli import image as cli_image
from studio.cli import music as cli_music
from studio.cli import reproduce as cli_reproduce
from studio.cli import style as cli_style
from studio.cli import text as cli_text
from studio.cli import upscale as cli_upscale
from studio.cli import video as cli_video
from studio.cli import walks as cli_walks
from studio.cli.common import Parser, fail
from studio.errors import Cancelled, StudioError


def build_parser() -> argparse.ArgumentParser:
    # No abbreviations at the top: they would claim a command's own options ("--model" is not "--models-from").
    parser = Parser(prog="python -m studio", description="Creative Studio from the command line.", allow_abbrev=False)
    parser.add_argument("--data-dir", type=Path, help="gallery and outputs folder (STUDIO_DATA_DIR)")
    parser.add_argument("--device", choices=settings_mod.DEVICES, help="where models run (STUDIO_DEVICE)")
    parser.add_argument("--models-file", type=Path, help="extra catalogue entries, TOML (STUDIO_MODELS_FILE)")
    parser.add_argument(
        "--offline", action="store_const", const=True, help="never contact the model hub (STUDIO_OFFLINE)"
    )
    settings_mod.add_models_from_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    cli_style.add_parser(commands)
    cli_upscale.add_parser(commands)
    cli_video.add_parser(commands)
    cli_text.add_parser(commands)
    cli_image.add_parsers(commands)
    cli_music.add_commands(commands)
    cli_download.add_parsers(commands)
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
            return cli_style.run(args, settings)
        if args.command == "upscale":
            return cli_upscale.run(args, settings)
        if args.command == cli_video.COMMAND:
            return cli_video.run(args, settings)
        if args.command == "text":
            return cli_text.run(args, settings)
        if args.command in cli_image.COMMANDS:
            return cli_image.run(args, settings)
        if args.command in ("melody", "music"):
            return cli_music.run(args, settings, fail)
        if args.command == "models":
            return cli_download.list_models(settings)
        if args.command == "download":
            return cli_download.download(args.model, settings)
        if args.command == "reproduce":
            return cli_reproduce.run(args, settings)
        code = cli_walks.run(args, settings)
        if code is not None:
            return code
    except StudioError as exc:
        return fail(str(exc))
    except settings_mod.SettingsError as exc:
        return fail(str(exc))
    except Cancelled:
        return fail("stopped")
    except KeyboardInterrupt:
        return fail("interrupted", code=130)
    parser.error(f"unknown command {args.command}")
