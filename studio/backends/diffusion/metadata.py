"""AUTOMATIC1111's `parameters` text: written into every PNG the studio makes, and read back from
ours or another tool's into the fields of an ImageRequest."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio import __version__
from studio.backends.diffusion.request import (
    DEFAULT_DECODER,
    DEFAULT_SAMPLER,
    DEFAULT_SPEED,
    FULL_VAE,
    MODES,
    SAMPLERS,
    SPEEDS,
)
from studio.catalog import Catalog
from studio.media.png_info import format_a1111_parameters

if TYPE_CHECKING:
    from studio.backends.diffusion.embeddings import EmbeddingLibrary
    from studio.backends.diffusion.loras import LoraLibrary

LORA_NAME_SYMBOLS = str.maketrans("", "", ":,")  # AUTOMATIC1111 drops these from names in `Lora hashes`


TINY_DECODER_LABELS = ("TAESDXL", "TAESD3", "TAEF1")  # the catalogue's, by the end of their ids


def fast_decoder_label(decoder: str | None) -> str | None:
    """The VAE line for a picture a tiny decoder decoded: TAESDXL, TAESD3 or TAEF1 by the catalogue id's end,
    TAESD otherwise (SD 1.x/2.x, and a user's own, whose id says nothing reliable)."""
    if decoder in (None, FULL_VAE):
        return None
    return next((label for label in TINY_DECODER_LABELS if decoder.lower().endswith(label.lower())), "TAESD")


def a1111_parameters(params: dict[str, Any], model_name: str | None = None) -> str:
    """A result's record in the text AUTOMATIC1111 writes (and reads back)."""
    sampler = params["sampler"]
    schedule = None
    if sampler.endswith(" Karras"):
        sampler, schedule = sampler.removesuffix(" Karras"), "Karras"
    model_id = params["model"]
    loras = ([params["lcm_lora"]] if params.get("lcm_lora") else []) + list(params.get("loras") or [])
    # A hires fix: `Size` stays the first pass's, as A1111 writes it; the strength is the second pass's.
    resize = params.get("hires_resize_x") or params.get("hires_resize_y")
    hires = (float(params.get("hires_scale") or 1) > 1 or bool(resize)) and params["task"] == "txt2img"
    strength = params.get("strength") if params.get("strength") is not None else (
        params.get("hires_strength") if hires else None)
    distilled = params.get("guidance_kind") == "distilled"
    settings: dict[str, Any] = {
        "Steps": params["steps"],
        "Sampler": sampler,
        "Schedule type": schedule,
        # FLUX.1-dev's guidance is distilled: Forge writes it apart, with no classifier-free guidance (1).
        "CFG scale": "1" if distilled else f"{params['guidance']:g}",
        "Distilled CFG Scale": f"{params['guidance']:g}" if distilled else None,
        "Shift": f"{params['shift']:g}" if params.get("shift") else None,
        "Max sequence length": params.get("max_sequence_length") or None,
        "Seed": params["seed"],
        "Size": f"{params['width']}x{params['height']}",
        "Model": model_name or Path(model_id).name.removesuffix(".safetensors"),
        "Denoising strength": f"{strength:g}" if strength is not None else None,
        # A target size is written instead of the scale, as A1111 does (0: that side kept to the aspect).
        "Hires upscale": f"{params['hires_scale']:g}" if hires and not resize else None,
        "Hires resize": f"{params.get('hires_resize_x') or 0}x{params.get('hires_resize_y') or 0}" if hires and resize
        else None,
        "Hires steps": params.get("hires_steps") or None if hires else None,  # A1111 leaves out 0 (as many)
        "Hires upscaler": params.get("hires_upscaler") if hires else None,
        "Mask blur": params.get("mask_blur"),
        "Inpaint area": ("Only masked" if params.get("only_masked") else "Whole picture")
        if params["task"] == "inpaint" else None,
        "Masked area padding": params.get("padding") if params.get("only_masked") else None,
        "Outpaint": ",".join(str(params[f"extend_{s}"]) for s in ("left", "right", "top", "bottom"))
        if params["task"] == "outpaint" else None,
        "VAE": fast_decoder_label(params.get("decoder")),
        "Mode": params["task"],
        "Model id": model_id,
        "Model revision": params.get("model_revision"),
        "Decoder": params.get("decoder"),
        # As AUTOMATIC1111 writes it: names without ':' or ',', each with its 12-digit hash; the fast LCM
        # switch's LoRA first (AUTOMATIC1111 users add it as a tag; here the switch says so: `Fast LCM`).
        "Lora hashes": ", ".join(
            f"{lora['name'].translate(LORA_NAME_SYMBOLS)}: {lora['hash']}" for lora in loras
        ) if loras else None,
        "Fast LCM": params["lcm_lora"]["name"] if params.get("lcm_lora") else None,
        # The "fastest" speed (int8 UNet weights) makes another picture than the exact path: said, to make it again.
        "Speed": params.get("speed") if params.get("speed", DEFAULT_SPEED) != DEFAULT_SPEED else None,
        # Embeddings likewise (A1111's hash of an embedding is the sha256 of the whole file).
        "TI hashes": ", ".join(
            f"{e['name'].translate(LORA_NAME_SYMBOLS)}: {e['hash']}" for e in params["embeddings"]
        ) if params.get("embeddings") else None,
        **controlnet_settings(params.get("controlnets") or []),
        "Version": f"creative-studio {__version__}",
    }
    return format_a1111_parameters(params["prompt"], params.get("negative_prompt", ""), settings)


def fields_from_parameters(
    parsed: dict[str, str],
    catalog: Catalog,
    *,
    loras: LoraLibrary | None = None,
    embeddings: EmbeddingLibrary | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """ImageRequest fields from parsed AUTOMATIC1111 parameters (ours or another tool's), plus notes
    about what could not be carried over. Given the libraries, the `Lora hashes` and `TI hashes`
    entries are looked up by hash (see `relocate_networks`)."""
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
                            ("Masked area padding", "padding", int), ("Distilled CFG Scale", "guidance", float),
                            ("Shift", "shift", float), ("Max sequence length", "max_sequence_length", int)):
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
    notes += _hires_fields(parsed, values)
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
    else:  # another tool's picture: decoded by its full VAE unless it names a tiny decoder (TAESD, TAEF1, ...)
        values["decoder"] = DEFAULT_DECODER if parsed.get("VAE", "").lower().startswith("tae") else FULL_VAE
    model = _match_model(parsed, catalog)
    if model:
        values["model"] = model
    elif parsed.get("Model"):
        notes.append(f"The model '{parsed['Model']}' is not in the catalogue; add it to your models file to use it.")
    if parsed.get("Fast LCM"):  # the fast LCM switch was on: its LoRA comes from the catalogue again
        values["fast_lcm"] = True
    if parsed.get("Speed") in SPEEDS:
        values["speed"] = parsed["Speed"]
    units, unit_notes = controlnet_units(parsed, catalog)
    if units:
        values["controlnets"] = units
    notes += unit_notes
    if loras is not None or embeddings is not None:
        recorded = recorded_networks(parsed)
        relocated = relocate_networks({**values, **recorded}, loras, embeddings)
        values["prompt"], values["negative_prompt"] = relocated.prompt, relocated.negative_prompt
        notes += relocated.notes + relocated.missing
    return values, notes


def controlnet_settings(units: list[dict[str, Any]]) -> dict[str, str]:
    """Each ControlNet as AUTOMATIC1111's ControlNet extension writes it: `ControlNet 0` and its unit's
    fields as `Key: value` pairs (the map made at the working size: pixel perfect; the picture fitted
    by cropping: Crop and Resize)."""
    from studio.backends.diffusion.control_maps import control_type

    written = {}
    for number, unit in enumerate(units):
        kind = control_type(unit["control_type"])
        fields: dict[str, Any] = {
            "Module": kind.module,
            "Model": f"{unit.get('model_name') or unit['model']} [{unit.get('model_hash') or '00000000'}]",
            "Weight": f"{unit['weight']:g}",
            "Resize Mode": "Crop and Resize",
            "Low Vram": False,
            "Processor Res": min(unit.get("map_width") or 512, unit.get("map_height") or 512),
            "Threshold A": _number(unit.get("threshold_a"), kind.threshold_a),
            "Threshold B": _number(unit.get("threshold_b"), kind.threshold_b),
            "Guidance Start": f"{unit['start']:g}",
            "Guidance End": f"{unit['end']:g}",
            "Pixel Perfect": True,
            "Control Mode": "Balanced",
        }
        written[f"ControlNet {number}"] = ", ".join(f"{k}: {v}" for k, v in fields.items() if v is not None)
    return written


def _number(value: Any, default: float | None) -> str | None:
    if default is None:
        return None  # a setting the preprocessor does not have: AUTOMATIC1111 leaves it out
    return f"{(default if value is None else value):g}"


def controlnet_units(parsed: dict[str, str], catalog: Catalog) -> tuple[list[dict[str, Any]], list[str]]:
    """`ControlNet N` entries (AUTOMATIC1111's extension, or ours) as the request's ControlNets, each
    model found in the catalogue by the name AUTOMATIC1111 lists it under; notes on what was not."""
    from studio.backends.diffusion.control_maps import type_of_module

    units: list[dict[str, Any]] = []
    notes: list[str] = []
    keys = sorted((k for k in parsed if re.fullmatch(r"ControlNet \d+", k)), key=lambda k: int(k.split()[1]))
    for key in keys:
        fields = {}
        for part in parsed[key].split(","):
            name, colon, value = part.partition(":")
            if colon:
                fields[name.strip().lower()] = value.strip()
        module = fields.get("module", "none")
        kind, difference = type_of_module(module)
        if kind is None:
            notes.append(f"{key} used the preprocessor '{module}', which the studio does not have; left off.")
            continue
        if difference:
            notes.append(f"{key}: {difference}.")
        digest = re.search(r"\[([0-9a-fA-F]+)\]$", fields.get("model", ""))
        named = re.sub(r"\s*\[[0-9a-fA-F]+\]$", "", fields.get("model", "")).strip()
        model = match_controlnet(named, catalog, digest.group(1) if digest else None)
        if model is None:
            notes.append(f"{key} used the ControlNet '{named}', which is not in the catalogue; left off.")
            continue
        unit: dict[str, Any] = {"model": model, "control_type": kind}
        try:
            # A stand-in preprocessor's thresholds mean other things than the module's: its defaults apply.
            thresholds = () if difference else (("threshold_a", "threshold a"), ("threshold_b", "threshold b"))
            for field_name, key_name in (("weight", "weight"), ("start", "guidance start"), ("end", "guidance end"),
                                         *thresholds):
                if fields.get(key_name) is not None and float(fields[key_name]) != -1:  # -1: A1111's unused
                    unit[field_name] = float(fields[key_name])
        except ValueError:
            notes.append(f"{key} has a setting that is not a number; left off.")
            continue
        units.append(unit)
    return units, notes


def match_controlnet(name: str, catalog: Catalog, short_hash: str | None = None) -> str | None:
    """The catalogue's ControlNet AUTOMATIC1111 lists under `name` (a file's or repository's name), else
    the one on this machine whose weights have AUTOMATIC1111's `short_hash` (a file renamed since)."""
    from studio import hub
    from studio.backends.diffusion.controlnet import TASK, a1111_name, legacy_hash, weights_file
    from studio.errors import StudioError

    lowered = name.lower()
    entries = catalog.for_task(TASK)
    for entry in entries:
        if lowered in {entry.id.lower(), a1111_name(entry).lower(), entry.name.lower()}:
            return entry.id
    if not short_hash or short_hash.strip("0") == "":  # 00000000: the hash was not known when written
        return None
    for entry in entries:
        try:  # only files already here: a lookup never downloads
            found = legacy_hash(weights_file(entry, hub.locate(entry, offline=True, download_if_missing=False)))
        except (StudioError, OSError):
            continue
        if found == short_hash.lower():
            return entry.id
    return None


def recorded_networks(parsed: dict[str, str]) -> dict[str, Any]:
    """The `Lora hashes` and `TI hashes` of parsed parameters, as [{name, hash}], to look up in the folders.
    The fast LCM switch's LoRA (named by `Fast LCM`) is kept apart as `lcm_lora`: the catalogue holds it,
    not the folders, and its hash only tells whether the same file is used again."""
    switch = parsed.get("Fast LCM", "").translate(LORA_NAME_SYMBOLS).strip()
    hashes = parse_hashes(parsed.get("Lora hashes", ""))
    networks: dict[str, Any] = {
        "loras": [lora for lora in hashes if not switch or lora["name"] != switch],
        "embeddings": parse_hashes(parsed.get("TI hashes", "")),
    }
    fast = [lora for lora in hashes if switch and lora["name"] == switch]
    if fast:
        networks["lcm_lora"] = fast[0]
    return networks


def _hires_fields(parsed: dict[str, str], values: dict[str, Any]) -> list[str]:
    """A1111's hires fix entries into `values` (`Denoising strength` is then the second pass's): a
    scale (`Hires upscale`) or a target size (`Hires resize`, WxH, 0 for a side kept to the aspect).
    Notes on what was not read."""
    scale_text, resize = parsed.get("Hires upscale"), parsed.get("Hires resize")
    if scale_text is None and resize is None:
        return []
    notes: list[str] = []
    try:
        if resize is not None:
            values["hires_resize_x"], values["hires_resize_y"] = (int(v) for v in resize.lower().split("x", 1))
        else:
            values["hires_scale"] = float(scale_text or "")
            values["hires_resize_x"] = values["hires_resize_y"] = 0  # by the scale, not a size
    except ValueError:
        for key in ("hires_resize_x", "hires_resize_y"):
            values.pop(key, None)
        return [f"The hires fix '{scale_text or resize}' could not be read; left off."]
    if parsed.get("Hires steps"):
        try:
            values["hires_steps"] = int(float(parsed["Hires steps"]))
        except ValueError:
            notes.append(f"'Hires steps: {parsed['Hires steps']}' is not a number; left as it was.")
    else:
        values["hires_steps"] = 0  # A1111 writes none when the second pass ran as many as the first
    if parsed.get("Hires upscaler"):
        values["hires_upscaler"] = parsed["Hires upscaler"]
    if values.get("mode", parsed.get("Mode", "txt2img")) == "txt2img" and "strength" in values:
        values["hires_strength"] = values.pop("strength")
    return notes


def parse_hashes(text: str) -> list[dict[str, str]]:
    """`Lora hashes` / `TI hashes` as AUTOMATIC1111 writes them ("name: hash, name: hash")."""
    entries = []
    for part in text.split(","):
        name, colon, digest = part.rpartition(":")
        if colon and name.strip() and digest.strip():
            entries.append({"name": name.strip(), "hash": digest.strip()})
    return entries


@dataclass
class Relocated:
    """A record's prompts with every LoRA and embedding named as its file is called now."""

    prompt: str
    negative_prompt: str
    notes: list[str] = field(default_factory=list)  # names rewritten
    missing: list[str] = field(default_factory=list)  # one line per file that no folder holds
    missing_loras: list[str] = field(default_factory=list)  # those of them a run cannot go without


def relocate_networks(
    params: dict[str, Any], loras: LoraLibrary | None, embeddings: EmbeddingLibrary | None
) -> Relocated:
    """Find the record's LoRAs and embeddings (`loras`/`embeddings`: [{name, hash}]) by hash in the
    folders, whatever their files are called now. A file found under another name has the prompts'
    `<lora:OLD:w>` tags (or the embedding's word) rewritten to that name, with a note; a hash no file
    has gets a line of `missing` (a file of the old name but another hash, a note: it is used)."""
    from studio.backends.diffusion.embeddings import word_pattern
    from studio.backends.diffusion.loras import LORA_KINDS
    from studio.backends.diffusion.prompts import outside_tags

    out = Relocated(params.get("prompt", ""), params.get("negative_prompt", "") or "")
    for kind, library, entries in (("LoRA", loras, params.get("loras")), ("embedding", embeddings,
                                                                          params.get("embeddings"))):
        if library is None or not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("hash"):
                continue
            old, digest = str(entry["name"]), str(entry["hash"])
            found = library.find_by_hash(digest, old)
            if found is None and old in library.names():
                out.notes.append(f"The {kind} '{old}' in your folders is not the file the picture was made with "
                                 f"(hash {digest}): the picture may differ.")
                continue
            if found is None:
                line = f"The {kind} '{old}' (hash {digest}) is not in your {kind} folders."
                out.missing.append(line)
                if kind == "LoRA":
                    out.missing_loras.append(line)
                continue
            if found == old:
                continue
            if kind == "LoRA":
                tag = re.compile(rf"<({'|'.join(LORA_KINDS)}):{re.escape(old)}(?=[:>])")
                def rename(text: str, tag=tag, found=found) -> str:
                    return tag.sub(lambda m: f"<{m.group(1)}:{found}", text)
            else:
                word = word_pattern(old)
                def rename(text: str, word=word, found=found) -> str:
                    return outside_tags(text, lambda part: word.sub(lambda _: found, part))
            out.prompt, out.negative_prompt = rename(out.prompt), rename(out.negative_prompt)
            out.notes.append(f"The {kind} '{old}' is called '{found}' in your folders now (same hash {digest}); "
                             "the prompt names it so.")
    return out


def _match_model(parsed: dict[str, str], catalog: Catalog) -> str | None:
    if parsed.get("Model id") in catalog:
        return parsed["Model id"]
    name = parsed.get("Model", "").lower()
    if not name:
        return None
    for entry in catalog.entries():
        if entry.family != "diffusers" or "lora" in entry.tasks:  # a LoRA is never the picture's model
            continue
        candidates = {entry.id.lower(), entry.id.split("/")[-1].lower(), entry.name.lower()}
        if entry.path is not None:
            candidates.add(entry.path.stem.lower())
        if name in candidates:
            return entry.id
    return None


