"""`alwayson_scripts.controlnet.args` of AUTOMATIC1111's /sdapi/v1/txt2img and img2img: the ControlNet
extension's units (module, model by its listed name, weight, guidance start/end, thresholds, a base64
picture) as the studio's ControlNets and their pictures."""

from __future__ import annotations

import re
from typing import Any

from studio.api.pictures import open_sent_picture
from studio.backends.diffusion.control_maps import BY_MODULE, CONTROL_TYPES, type_of_module
from studio.backends.diffusion.metadata import match_controlnet
from studio.backends.diffusion.request import MAX_CONTROLNETS, ControlUnit
from studio.errors import InputError
from studio.media.images import LoadedImage
from studio.services import Studio

_HASH = re.compile(r"\s*\[[0-9a-fA-F]+\]$")


def units_from_script(studio: Studio, script: Any, unhonoured: list[str] | None = None,
                      ) -> tuple[tuple[ControlUnit, ...], list[LoadedImage | None]]:
    """The enabled units of the script's `args`, each with its picture (None: the input picture); a
    module drawn by the studio's nearest preprocessor is noted in `unhonoured`."""
    args = script.get("args") if isinstance(script, dict) else None
    if not args:
        return (), []
    if not isinstance(args, list) or len(args) > MAX_CONTROLNETS * 4:
        raise InputError("'alwayson_scripts.controlnet.args' must be a list of ControlNet units.")
    units, pictures = [], []
    for number, unit in enumerate(args):
        where = f"alwayson_scripts.controlnet.args[{number}]"
        if not isinstance(unit, dict):
            raise InputError(f"'{where}' must be a ControlNet unit (an object).")
        if unit.get("enabled", True) is False or unit.get("model") in (None, "", "None"):
            continue
        module = str(unit.get("module", "none"))
        kind, difference = type_of_module(module)
        if kind is None:
            raise InputError(f"'{where}.module': the preprocessor '{module[:60]}' is not one the studio has "
                             f"({', '.join(BY_MODULE)}).")
        if difference and unhonoured is not None:
            unhonoured.append(f"{where}.module ({difference})")
        named = _HASH.sub("", str(unit["model"])).strip()
        model = match_controlnet(named, studio.catalog)
        if model is None:
            raise InputError(f"'{where}.model': the ControlNet '{named[:80]}' is not in the catalogue.")
        picture = unit.get("image", unit.get("input_image"))
        if isinstance(picture, dict):  # the extension's {"image": ..., "mask": ...}
            picture = picture.get("image")
        pictures.append(open_sent_picture(studio, picture, f"{where}.image") if picture else None)
        units.append(ControlUnit(
            model=model, control_type=kind, weight=_number(unit, "weight", 1.0),
            start=_number(unit, "guidance_start", 0.0), end=_number(unit, "guidance_end", 1.0),
            # A stand-in preprocessor's settings mean other things than the module's: its defaults apply.
            threshold_a=None if difference else _threshold(unit, "threshold_a", kind, 0),
            threshold_b=None if difference else _threshold(unit, "threshold_b", kind, 1),
        ))
    return tuple(units), pictures


def _number(unit: dict, key: str, default: float) -> Any:
    value = unit.get(key, default)
    return value if value is not None else default  # checked with the request (a sentence per field)


def _threshold(unit: dict, key: str, kind: str, which: int) -> Any:
    """The extension sends -1 (or its own defaults for other modules) where a setting is unused."""
    default = (CONTROL_TYPES[kind].threshold_a, CONTROL_TYPES[kind].threshold_b)[which]
    value = unit.get(key)
    if default is None or value is None or value == -1:
        return None
    return value
