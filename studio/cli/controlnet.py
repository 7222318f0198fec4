"""The image commands' ControlNet options: `--controlnet ID` starts a group, and the `--control-*`
options after it belong to it, so several ControlNets are given one group after another:

    python -m studio image "a castle" --controlnet lllyasviel/control_v11p_sd15_canny \\
        --control-image photo.jpg --control-type canny --controlnet ID2 --control-image sketch.png ...
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.backends.diffusion.control_maps import CONTROL_TYPES
from studio.backends.diffusion.controlnet import TASK
from studio.backends.diffusion.request import ControlUnit
from studio.catalog import PICKLE_SUFFIXES, Catalog, ModelEntry
from studio.errors import InputError
from studio.model_folders import checkpoint_id

if TYPE_CHECKING:
    from studio.media.images import LoadedImage
    from studio.services import Studio

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
OPTIONS = {
    "--control-image": ("image", "PIC", "its picture: a photo to preprocess, or a ready map with --control-type none "
                                        "(default: the input picture of img2img/inpaint)"),
    "--control-type": ("control_type", "TYPE", f"how the picture becomes its map: {'|'.join(CONTROL_TYPES)} "
                                               "(default canny)"),
    "--control-weight": ("weight", "W", "how strongly it steers, 0..2 (default 1)"),
    "--control-start": ("start", "S", "the share of the steps before it starts, 0..1 (default 0)"),
    "--control-end": ("end", "E", "the share of the steps after which it stops, 0..1 (default 1)"),
    "--control-threshold": ("thresholds", "A[,B]", "the type's settings: canny's low,high thresholds (default "
                                                   "100,200), scribble's detail, tile's down-sampling, blur's sigma"),
    "--control-threshold-a": ("threshold_a", "A", "the type's first setting alone (canny: low threshold, scribble: "
                                                  "XDoG threshold, tile: down-sampling rate, blur: sigma)"),
    "--control-threshold-b": ("threshold_b", "B", "the type's second setting alone (canny: high threshold)"),
}


class _InGroup(argparse.Action):
    """Keeps the ControlNet options in the order given, so each belongs to the --controlnet before it."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = list(getattr(namespace, "control_args", None) or [])
        given.append((option_string, values))
        namespace.control_args = given


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(control_args=[])
    parser.add_argument("--controlnet", action=_InGroup, metavar="ID",
                        help="steer the picture with a ControlNet: a catalogue id, a hub id, or the path of a "
                             "ControlNet folder or .safetensors file; the --control-* options after it are its "
                             "settings; repeat the group for more")
    for option, (_, metavar, help_text) in OPTIONS.items():
        parser.add_argument(option, action=_InGroup, metavar=metavar, help=help_text)


def units(args: argparse.Namespace, studio: Studio) -> tuple[tuple[ControlUnit, ...], list[LoadedImage | None]]:
    """The ControlNet groups as units, and each one's picture (opened safely; None: the input picture)."""
    groups: list[dict[str, Any]] = []
    for option, value in args.control_args:
        if option == "--controlnet":
            groups.append({"model": controlnet_argument(studio.catalog, value)})
            continue
        if not groups:
            raise InputError(f"{option} belongs to a ControlNet: give --controlnet ID before it")
        key = OPTIONS[option][0]
        if key in groups[-1]:
            raise InputError(f"{option} is given twice for ControlNet {len(groups) - 1}; start another group with "
                             "--controlnet")
        groups[-1][key] = _value(option, key, value)
    made, pictures = [], []
    for group in groups:
        picture = group.pop("image", None)
        thresholds = group.pop("thresholds", ())
        if thresholds and ("threshold_a" in group or "threshold_b" in group):
            raise InputError(f"ControlNet {len(made)}: give --control-threshold A,B or --control-threshold-a/-b, "
                             "not both")
        group.setdefault("threshold_a", thresholds[0] if thresholds else None)
        group.setdefault("threshold_b", thresholds[1] if len(thresholds) > 1 else None)
        made.append(ControlUnit(**group))
        pictures.append(studio.open_image(picture) if picture is not None else None)
    return tuple(made), pictures


def _value(option: str, key: str, text: str) -> Any:
    if key == "image":
        return Path(text)
    if key == "control_type":
        if text not in CONTROL_TYPES:
            raise InputError(f"{option} {text}: choose one of {', '.join(CONTROL_TYPES)}")
        return text
    try:
        if key == "thresholds":
            numbers = tuple(float(part) for part in text.split(","))
            if not 1 <= len(numbers) <= 2:
                raise ValueError
            return numbers
        return float(text)
    except ValueError:
        raise InputError(f"{option} {text}: not a number{' (or two, A,B)' if key == 'thresholds' else ''}") from None


def controlnet_argument(catalog: Catalog, given: str) -> str:
    """`--controlnet` as a catalogue id: a ControlNet folder or `.safetensors` file, or a hub id, is listed
    for this run (a hub one is downloaded on first use, as catalogue ones are)."""
    if given in catalog:
        return given
    path = Path(given).expanduser()
    taken = {entry.id for entry in catalog.entries()}
    if path.exists():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise InputError(f"--controlnet {given}: a pickle file; the studio loads ControlNets only as .safetensors")
        if path.is_dir() and not (path / "config.json").is_file():
            raise InputError(f"--controlnet {given}: not a diffusers ControlNet folder (it has no config.json)")
        if path.is_file() and path.suffix.lower() != ".safetensors":
            raise InputError(f"--controlnet {given}: a ControlNet must be a .safetensors file or a folder")
        stem = path.stem if path.is_file() else path.name
        return catalog.add(ModelEntry(id=checkpoint_id(stem, taken), name=f"{stem} (ControlNet)", family="diffusers",
                                      tasks=(TASK,), licence="unknown (check before sharing outputs)", size_mb=0,
                                      source="local", path=path.resolve())).id
    if _HUB_ID.match(given):
        return catalog.add(ModelEntry(id=given, name=given, family="diffusers", tasks=(TASK,),
                                      licence="unknown (check the model's page)", size_mb=0, source="download",
                                      repo=given)).id
    raise InputError(f"--controlnet {given}: not in the catalogue (see `python -m studio models`), no such file or "
                     "folder, and not a hub id (owner/name)")
