"""`python -m studio models` lists the catalogue; `python -m studio download ID` fetches a hub model."""

from __future__ import annotations

import argparse
import sys

from studio import settings as settings_mod
from studio.cli.common import fail


def add_parsers(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("models", help="list the model catalogue")
    download = commands.add_parser("download", help="fetch a catalogue model from the hub into the local cache")
    download.add_argument("model", help="a catalogue id, e.g. stabilityai/sd-turbo (see `models`)")


def list_models(settings: settings_mod.Settings) -> int:
    from studio.catalog import load_catalog

    catalog = load_catalog(settings.models_file, settings.checkpoint_folders)
    for entry in catalog.entries():
        flag = "" if entry.commercial_use else "  [non-commercial]"
        print(f"{entry.id:48} {entry.source:9} {entry.size_text():>8}  {', '.join(entry.tasks)}  ({entry.licence}){flag}")
    for reason in catalog.skipped:
        print(f"not listed: {reason}", file=sys.stderr)
    return 0


def download(model_id: str, settings: settings_mod.Settings) -> int:
    from studio import hub
    from studio.catalog import load_catalog

    entry = load_catalog(settings.models_file, settings.checkpoint_folders).get(model_id)
    if entry.source != "download":
        return fail(f"'{model_id}' is {'built in' if entry.builtin else 'a local model'}; there is nothing to download")
    print(f"Downloading {entry.name} ({entry.repo}, about {entry.size_text()}, licence: {entry.licence})", file=sys.stderr)
    path = hub.locate(entry, offline=settings.offline)
    print(path)
    return 0
