"""ControlNets: loading them (catalogue downloads, users' folders and `.safetensors` files, the
ControlNet folders of `--models-from` installations), refusing one made for another base, and
turning each unit's picture into its map at the run's working size.

A ControlNet joins the loaded model's own modules through `from_pipe` (nothing of the model is
loaded twice); several at once become diffusers' MultiControlNet, each with its weight and its
start/end share of the steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from studio import hub
from studio.backends.diffusion import control_maps
from studio.backends.diffusion.annotators import Annotators
from studio.backends.diffusion.request import ControlUnit
from studio.catalog import Catalog, ModelEntry
from studio.errors import InputError, StudioError, first_line
from studio.model_folders import SD1, SD2, SDXL, checkpoint_id, safetensors_header
from studio.runtime import CacheKey, ModelCache, loading_errors

log = logging.getLogger(__name__)

TASK = "controlnet"
# The base each catalogue ControlNet was trained for: a mismatch is refused before any download.
CATALOGUE_BASES = {
    "lllyasviel/control_v11p_sd15_canny": SD1,
    "lllyasviel/control_v11p_sd15_lineart": SD1,
    "lllyasviel/control_v11p_sd15_scribble": SD1,
    "lllyasviel/control_v11p_sd15_softedge": SD1,
    "lllyasviel/control_v11f1p_sd15_depth": SD1,
    "lllyasviel/control_v11p_sd15_openpose": SD1,
    "lllyasviel/control_v11f1e_sd15_tile": SD1,
    "diffusers/controlnet-canny-sdxl-1.0": SDXL,
    "xinsir/controlnet-canny-sdxl-1.0": SDXL,
    "xinsir/controlnet-scribble-sdxl-1.0": SDXL,
    "xinsir/controlnet-openpose-sdxl-1.0": SDXL,
}
WEIGHTS_NAME = "diffusion_pytorch_model"


@dataclass
class LoadedControlNet:
    model: Any  # diffusers ControlNetModel
    entry: ModelEntry
    name: str  # as AUTOMATIC1111 lists it: the file's (or repository's) name
    short_hash: str  # AUTOMATIC1111's 8-digit model hash of the weights file


def config_base(config: Any) -> str:
    """SD 1.x, SD 2.x or SDXL from a UNet's or ControlNet's config: SDXL conditions on text and
    time ids; SD 2.x cross-attends 1024 wide (OpenCLIP-H) through linear projections; SD 1.x 768 wide."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    if get("addition_embed_type") == "text_time":
        return SDXL
    width = get("cross_attention_dim")
    if width == 1024 or (width != 768 and get("use_linear_projection", False)):
        return SD2
    return SD1


def legacy_hash(path: Path) -> str:
    """AUTOMATIC1111's short model hash, which its ControlNet extension writes beside a model's name:
    the sha256 of 64 KB read from 1 MB into the file, 8 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        handle.seek(0x100000)
        digest.update(handle.read(0x10000))
    return digest.hexdigest()[:8]


def weights_file(entry: ModelEntry, where: Path) -> Path:
    """The ControlNet's weights: the file itself, or the folder's (its variant's where it has one)."""
    if where.is_file():
        return where
    names = ([f"{WEIGHTS_NAME}.{entry.variant}.safetensors"] if entry.variant else []) + [f"{WEIGHTS_NAME}.safetensors"]
    for name in names:
        if (where / name).is_file():
            return where / name
    found = sorted(where.glob("*.safetensors"))
    if not found:
        raise StudioError(f"The ControlNet '{entry.name}' at {where} has no .safetensors weights (the studio never "
                          "loads pickles).")
    return found[0]


def a1111_name(entry: ModelEntry) -> str:
    """What AUTOMATIC1111 users call the model: the file's stem, or the repository's name."""
    if entry.path is not None:
        return entry.path.stem if entry.path.is_file() or entry.path.suffix else entry.path.name
    return entry.id.rsplit("/", 1)[-1]


def check_entry(catalog: Catalog, unit: ControlUnit, number: int) -> ModelEntry:
    entry = catalog.get(unit.model)
    if TASK not in entry.tasks:
        raise InputError(f"ControlNet {number}: '{entry.name}' is not a ControlNet model.")
    return entry


def refuse_other_base(entry: ModelEntry, base: str | None, model_name: str, model_base: str | None) -> None:
    if base is not None and model_base is not None and base != model_base:
        raise InputError(f"'{entry.name}' is a ControlNet for {base} models and '{model_name}' is an {model_base} "
                         f"model: choose a ControlNet made for {model_base}.")


def load_controlnet(cache: ModelCache, entry: ModelEntry, dtype: Any, device: str, *, offline: bool) -> LoadedControlNet:
    """The ControlNet, read once into the cache (downloaded first if needed and allowed)."""

    def load() -> tuple[LoadedControlNet, float]:
        where = hub.locate(entry, offline=offline)
        with loading_errors(entry.name, where):
            weights = weights_file(entry, where)
            model = _read(entry, where, weights, dtype, offline)
            model = model.to(device)
            model.eval()
        size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        return LoadedControlNet(model, entry, a1111_name(entry), legacy_hash(weights)), size_mb

    return cache.get(CacheKey(entry.id, str(dtype).removeprefix("torch."), device, variant=TASK), load)


def _read(entry: ModelEntry, where: Path, weights: Path, dtype: Any, offline: bool) -> Any:
    from diffusers import ControlNetModel

    if weights.suffix.lower() != ".safetensors":
        raise StudioError(f"{weights.name}: the studio loads ControlNets only as .safetensors.")
    if where.is_dir():
        variant = entry.variant if entry.variant and weights.name.endswith(f".{entry.variant}.safetensors") else None
        return ControlNetModel.from_pretrained(where, dtype=dtype, variant=variant, use_safetensors=True,
                                               local_files_only=True)
    config = where.with_name("config.json")
    header = safetensors_header(where)  # a damaged file fails here, before anything is built
    if config.is_file() and any(name.startswith("controlnet_cond_embedding.") for name in header):
        # A diffusers-layout file with its config beside it (a folder's weights copied on their own).
        from safetensors.torch import load_file

        model = ControlNetModel.from_config(json.loads(config.read_text(encoding="utf-8")))
        model.load_state_dict(load_file(str(where)))
        return model.to(dtype)
    try:
        return ControlNetModel.from_single_file(str(where), dtype=dtype, local_files_only=offline)
    except (OSError, ValueError, KeyError) as exc:
        raise StudioError(
            f"The ControlNet {where.name} could not be loaded: it is not a diffusers ControlNet, and the configs an "
            f"original-layout file needs are not on this machine ({first_line(exc)}). Put it in a folder with its "
            "config.json, or run the studio once with internet."
        ) from None


def check_fits(loaded: LoadedControlNet, unet_config: Any, model_name: str) -> None:
    """A ControlNet's residuals must match the UNet's blocks: one for another base is refused in one
    sentence naming both."""
    config, get = loaded.model.config, (lambda key: getattr(unet_config, key, None))
    same = (
        getattr(config, "addition_embed_type", None) == get("addition_embed_type")
        and config.cross_attention_dim == get("cross_attention_dim")
        and tuple(config.block_out_channels) == tuple(get("block_out_channels") or ())
    )
    if not same:
        base, model_base = config_base(config), config_base(unet_config)
        if base == model_base:
            raise InputError(f"'{loaded.entry.name}' does not fit '{model_name}': their blocks differ (a ControlNet "
                             f"for another {base} architecture).")
        refuse_other_base(loaded.entry, base, model_name, model_base)


@dataclass
class ControlInputs:
    """What the pipeline call needs: the ControlNet module(s), the maps and the per-unit settings."""

    module: Any  # one ControlNetModel, or a list of them
    maps: list[Image.Image]
    weights: list[float]
    starts: list[float]
    ends: list[float]
    loaded: list[LoadedControlNet]

    def call_kwargs(self, mode: str) -> dict[str, Any]:
        one = len(self.maps) == 1
        pick = (lambda values: values[0]) if one else list
        image_key = "image" if mode == "txt2img" else "control_image"
        return {
            image_key: pick(self.maps),
            "controlnet_conditioning_scale": pick(self.weights),
            "control_guidance_start": pick(self.starts),
            "control_guidance_end": pick(self.ends),
        }


def control_inputs(
    catalog: Catalog,
    cache: ModelCache,
    units: Sequence[ControlUnit],
    pictures: Sequence[Image.Image | None],
    fallback: Image.Image | None,
    size: tuple[int, int],
    seed: int,
    unet: Any,
    model_name: str,
    *,
    offline: bool,
    region: tuple[int, int, int, int] | None = None,
    canvas_size: tuple[int, int] | None = None,
    notes: list[str],
) -> ControlInputs:
    """Load every unit's ControlNet (refusing one for another base first) and make its map at `size`.
    A unit without a picture uses `fallback` (the input picture of image to image or inpainting). With
    `region` (inpainting), the map is made at the input picture's size (`canvas_size`) and cropped and
    resized as the work is."""
    entries = [check_entry(catalog, unit, n) for n, unit in enumerate(units)]
    pictures = list(pictures) + [None] * (len(units) - len(pictures))
    base = config_base(unet.config)
    for entry in entries:  # before any download: the catalogue knows what each was made for
        refuse_other_base(entry, CATALOGUE_BASES.get(entry.id), model_name, base)
    maps = []
    # Depth and pose maps come from models, loaded on first use; keyed by the device's kind ("cuda", not
    # "cuda:0") as the map preview keys them, so both share one copy.
    annotate = Annotators(catalog, cache, unet.device.type, offline=offline)
    for number, (unit, picture) in enumerate(zip(units, pictures, strict=True)):
        picture = picture if picture is not None else fallback
        if picture is None:
            raise InputError(f"ControlNet {number}: give it a picture (a photo to preprocess, or a ready control map).")
        target = size if region is None else canvas_size
        assert target is not None
        made, note = control_maps.make_map(picture, unit.control_type, target, unit.threshold_a, unit.threshold_b,
                                           seed if unit.seed is None else unit.seed, annotate=annotate)
        if region is not None:  # the map lies over the whole picture; the work is a part of it
            made = made.crop(region).resize(size, Image.Resampling.BILINEAR)
        if note:
            notes.append(f"ControlNet {number}: {note}")
        maps.append(made)
    loaded = [load_controlnet(cache, entry, unet.dtype, str(unet.device), offline=offline) for entry in entries]
    for item in loaded:
        check_fits(item, unet.config, model_name)
    return ControlInputs(
        module=loaded[0].model if len(loaded) == 1 else [item.model for item in loaded],
        maps=maps,
        weights=[float(u.weight) for u in units],
        starts=[float(u.start) for u in units],
        ends=[float(u.end) for u in units],
        loaded=loaded,
    )


def unit_records(units: Sequence[ControlUnit], inputs: ControlInputs, seed: int) -> list[dict[str, Any]]:
    """Each unit as recorded: its fields (the shuffle's seed fixed), the model's name and hash as
    AUTOMATIC1111 writes them, and the map's size."""
    from dataclasses import asdict

    records = []
    for unit, loaded, made in zip(units, inputs.loaded, inputs.maps, strict=True):
        record = asdict(unit)
        if unit.control_type == "shuffle" and unit.seed is None:
            record["seed"] = seed  # the shuffle drew from the run's seed: a re-run of any picture uses it again
        record.update(model_name=loaded.name, model_hash=loaded.short_hash, map_width=made.width,
                      map_height=made.height)
        records.append(record)
    return records


def folder_entries(folders: Sequence[Path], taken: set[str]) -> tuple[list[ModelEntry], list[str]]:
    """Catalogue entries for the ControlNets in these folders (AUTOMATIC1111's models/ControlNet and
    ComfyUI's models/controlnet): `.safetensors` files and diffusers folders; pickles are named as
    refused, never opened."""
    entries: list[ModelEntry] = []
    skipped: list[str] = []
    taken = set(taken)
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir(), key=lambda p: p.name.casefold()):
            if path.name.startswith("."):
                continue
            diffusers_folder = path.is_dir() and (path / "config.json").is_file()
            if diffusers_folder or (path.is_file() and path.suffix.lower() == ".safetensors"):
                found = path
            elif path.is_file() and path.suffix.lower() in (".pth", ".pt", ".ckpt", ".bin"):
                skipped.append(f"{path.name} is a pickle ControlNet; the studio loads .safetensors files only")
                continue
            else:
                continue
            try:
                size_mb = (found.stat().st_size if found.is_file() else sum(
                    p.stat().st_size for p in found.glob("*.safetensors"))) / 2**20
            except OSError as exc:
                skipped.append(f"{path.name} cannot be read ({exc})")
                continue
            entries.append(ModelEntry(
                id=checkpoint_id(found.stem if found.is_file() else found.name, taken),
                name=f"{found.stem if found.is_file() else found.name} (ControlNet)",
                family="diffusers",
                tasks=(TASK,),
                licence="unknown (check the model's page before sharing outputs)",
                size_mb=round(size_mb, 1),
                source="local",
                path=found,
                description=f"A ControlNet from {folder}.",
            ))
    return entries, skipped
