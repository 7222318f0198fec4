"""AUTOMATIC1111's `parameters` text: written into every PNG the studio makes, and read back from
ours or another tool's into the fields of an ImageRequest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio import __version__
from studio.backends.diffusion.request import DEFAULT_DECODER, DEFAULT_SAMPLER, FULL_VAE, MODES, SAMPLERS
from studio.catalog import Catalog
from studio.media.png_info import format_a1111_parameters

LORA_NAME_SYMBOLS = str.maketrans("", "", ":,")  # AUTOMATIC1111 drops these from names in `Lora hashes`


def a1111_parameters(params: dict[str, Any], model_name: str | None = None) -> str:
    """A result's record in the text AUTOMATIC1111 writes (and reads back)."""
    sampler = params["sampler"]
    schedule = None
    if sampler.endswith(" Karras"):
        sampler, schedule = sampler.removesuffix(" Karras"), "Karras"
    model_id = params["model"]
    settings: dict[str, Any] = {
        "Steps": params["steps"],
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": f"{params['guidance']:g}",
        "Seed": params["seed"],
        "Size": f"{params['width']}x{params['height']}",
        "Model": model_name or Path(model_id).name.removesuffix(".safetensors"),
        "Denoising strength": f"{params['strength']:g}" if params.get("strength") is not None else None,
        "Mask blur": params.get("mask_blur"),
        "Inpaint area": ("Only masked" if params.get("only_masked") else "Whole picture")
        if params["task"] == "inpaint" else None,
        "Masked area padding": params.get("padding") if params.get("only_masked") else None,
        "Outpaint": ",".join(str(params[f"extend_{s}"]) for s in ("left", "right", "top", "bottom"))
        if params["task"] == "outpaint" else None,
        "VAE": "TAESD" if params.get("decoder") not in (None, FULL_VAE) else None,
        "Mode": params["task"],
        "Model id": model_id,
        "Model revision": params.get("model_revision"),
        "Decoder": params.get("decoder"),
        # As AUTOMATIC1111 writes it: names without ':' or ',', each with its 12-digit hash.
        "Lora hashes": ", ".join(
            f"{lora['name'].translate(LORA_NAME_SYMBOLS)}: {lora['hash']}" for lora in params["loras"]
        ) if params.get("loras") else None,
        "Version": f"creative-studio {__version__}",
    }
    return format_a1111_parameters(params["prompt"], params.get("negative_prompt", ""), settings)


def fields_from_parameters(parsed: dict[str, str], catalog: Catalog) -> tuple[dict[str, Any], list[str]]:
    """ImageRequest fields from parsed AUTOMATIC1111 parameters (ours or another tool's), plus notes
    about what could not be carried over."""
    values: dict[str, Any] = {"prompt": parsed.get("prompt", ""), "negative_prompt": parsed.get("negative_prompt", "")}
    notes: list[str] = []

    def number(key: str, kind: type):
        raw = parsed.get(key)
        if raw is None:
            return None
        try:
            return kind(float(raw)) if kind is int else kind(raw)
        except ValueError:
            notes.append(f"'{key}: {raw}' is not a number; left as it was.")
            return None

    for key, name, kind in (("Steps", "steps", int), ("CFG scale", "guidance", float), ("Seed", "seed", int),
                            ("Denoising strength", "strength", float), ("Mask blur", "mask_blur", int),
                            ("Masked area padding", "padding", int)):
        value = number(key, kind)
        if value is not None:
            values[name] = value
    size = parsed.get("Size", "")
    if "x" in size:
        try:
            values["width"], values["height"] = (int(v) for v in size.lower().split("x", 1))
        except ValueError:
            notes.append(f"'Size: {size}' is not WIDTHxHEIGHT; left as it was.")
    sampler = parsed.get("Sampler")
    if sampler:
        schedule = parsed.get("Schedule type", "")
        name = f"{sampler} Karras" if schedule == "Karras" and not sampler.endswith("Karras") else sampler
        if name in SAMPLERS:
            values["sampler"] = name
        elif sampler in SAMPLERS:
            values["sampler"] = sampler
        else:
            notes.append(f"The sampler '{name}' is not one the studio offers; using {DEFAULT_SAMPLER}.")
            values["sampler"] = DEFAULT_SAMPLER
    if parsed.get("Inpaint area"):
        values["only_masked"] = parsed["Inpaint area"].lower().startswith("only masked")
    if parsed.get("Outpaint"):
        try:
            sides = [int(v) for v in parsed["Outpaint"].split(",")]
            values.update(zip(("extend_left", "extend_right", "extend_top", "extend_bottom"), sides, strict=True))
        except ValueError:
            notes.append(f"'Outpaint: {parsed['Outpaint']}' is not four numbers; left as it was.")
    if parsed.get("Mode") in MODES:
        values["mode"] = parsed["Mode"]
    decoder = parsed.get("Decoder")
    if decoder and (decoder == FULL_VAE or decoder in catalog):
        values["decoder"] = decoder
    else:  # another tool's picture: decoded by its full VAE unless it says TAESD
        values["decoder"] = DEFAULT_DECODER if parsed.get("VAE", "").lower().startswith("taesd") else FULL_VAE
    model = _match_model(parsed, catalog)
    if model:
        values["model"] = model
    elif parsed.get("Model"):
        notes.append(f"The model '{parsed['Model']}' is not in the catalogue; add it to your models file to use it.")
    return values, notes


def _match_model(parsed: dict[str, str], catalog: Catalog) -> str | None:
    if parsed.get("Model id") in catalog:
        return parsed["Model id"]
    name = parsed.get("Model", "").lower()
    if not name:
        return None
    for entry in catalog.entries():
        if entry.family != "diffusers":
            continue
        candidates = {entry.id.lower(), entry.id.split("/")[-1].lower(), entry.name.lower()}
        if entry.path is not None:
            candidates.add(entry.path.stem.lower())
        if name in candidates:
            return entry.id
    return None


