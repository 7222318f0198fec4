"""Abstract patterns from CPPNs: small random networks that map a pixel's position to a colour.

No weights to download: a seed fixes the network and a point in its latent space. The
network sees coordinates, not pixels, so the same pattern renders at any resolution (a
bigger render is the same picture, sharper). Walking the latent vector morphs it smoothly.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from studio.backends.frames import FramesResult
from studio.errors import InputError
from studio.media.interpolation import loop_positions, slerp
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress

MODEL_ID = "cppn-patterns"
LATENT_DIM = 8
HIDDEN = 32
LAYERS = 4
ROWS_PER_CHUNK = 128  # bounds memory at any resolution
COORD_GAIN = 4.0
LATENT_GAIN = 1.0
HIDDEN_GAIN = 3.0
MAX_SEED = 2**32 - 1

# Colour stops from dark to light; the network's first output picks a place along them.
PALETTES: dict[str, list[tuple[int, int, int]]] = {
    "network colours": [],
    "sunset": [(26, 15, 48), (120, 28, 84), (220, 70, 60), (250, 160, 70), (255, 236, 170)],
    "ocean": [(4, 18, 38), (10, 62, 110), (22, 130, 160), (120, 200, 205), (235, 250, 245)],
    "forest": [(12, 26, 14), (34, 78, 40), (92, 128, 60), (180, 180, 110), (240, 236, 200)],
    "neon": [(10, 0, 30), (255, 0, 128), (0, 230, 255), (180, 255, 60), (255, 255, 255)],
    "ink": [(12, 12, 16), (70, 70, 80), (150, 150, 155), (225, 222, 215), (250, 248, 240)],
}
ACTIVATIONS = ("tanh", "sin", "softsign")


@dataclass(frozen=True)
class PatternRequest:
    seed: int = 0  # fixes the network and the starting latent vector
    width: int = 1024
    height: int = 1024
    palette: str = "network colours"
    zoom: float = 1.0  # how much of the plane is shown: higher shows more, finer structure
    walk_to: int | None = None  # a second seed: walk the latent vector towards it
    frames: int = 48

    def validate(self, max_side: int, max_frames: int) -> None:
        if not 0 <= self.seed <= MAX_SEED or (self.walk_to is not None and not 0 <= self.walk_to <= MAX_SEED):
            raise InputError(f"Seeds must be whole numbers from 0 to {MAX_SEED}.")
        if not (16 <= self.width <= max_side and 16 <= self.height <= max_side):
            raise InputError(f"Width and height must be between 16 and {max_side} px, not {self.width}x{self.height}.")
        if self.palette not in PALETTES:
            raise InputError(f"Unknown palette '{self.palette}'; choose one of {', '.join(PALETTES)}.")
        if not (isinstance(self.zoom, (int, float)) and math.isfinite(self.zoom) and 0.1 <= self.zoom <= 20):
            raise InputError(f"Zoom must be between 0.1 and 20, not {self.zoom}.")
        if self.walk_to is not None and not 2 <= self.frames <= max_frames:
            raise InputError(f"A walk has between 2 and {max_frames} frames, not {self.frames}.")


class CPPN:
    """One seeded network: coordinates (x, y, r) plus a latent vector in, three values out."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.latent = rng.standard_normal(LATENT_DIM).astype(np.float32)
        inputs = 3 + LATENT_DIM
        self.weights = []
        self.biases = []
        sizes = [inputs] + [HIDDEN] * LAYERS + [3]
        for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
            # Large gains on purpose: saturated units draw the crisp bands and folds CPPNs are known for.
            scale = COORD_GAIN if layer == 0 else HIDDEN_GAIN / math.sqrt(fan_in)
            weights = rng.standard_normal((fan_in, fan_out)) * scale
            if layer == 0:
                weights[3:] *= LATENT_GAIN / COORD_GAIN  # the latent shifts the pattern rather than replacing it
            self.weights.append(weights.astype(np.float32))
            self.biases.append((rng.standard_normal(fan_out) * 0.3).astype(np.float32))
        self.activations = [ACTIVATIONS[i] for i in rng.integers(0, len(ACTIVATIONS), LAYERS)]

    def render(self, width: int, height: int, latent: np.ndarray, zoom: float = 1.0) -> np.ndarray:
        """HxWx3 floats in [0, 1]."""
        aspect = width / height
        xs = np.linspace(-1.0, 1.0, width, dtype=np.float32) * zoom * max(aspect, 1.0)
        ys = np.linspace(-1.0, 1.0, height, dtype=np.float32) * zoom * max(1.0 / aspect, 1.0)
        out = np.empty((height, width, 3), dtype=np.float32)
        z = np.asarray(latent, dtype=np.float32)
        for top in range(0, height, ROWS_PER_CHUNK):
            rows = ys[top : top + ROWS_PER_CHUNK]
            gx, gy = np.meshgrid(xs, rows)
            r = np.sqrt(gx * gx + gy * gy)
            coords = np.stack([gx, gy, r], axis=-1).reshape(-1, 3)
            # The latent enters every pixel, so the whole picture changes with it.
            h = coords @ self.weights[0][:3] + (z @ self.weights[0][3:]) + self.biases[0]
            for layer, activation in enumerate(self.activations):
                h = _activate(h, activation)
                h = h @ self.weights[layer + 1] + self.biases[layer + 1]
            out[top : top + len(rows)] = (1.0 / (1.0 + np.exp(-h))).reshape(len(rows), width, 3)
        return out


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "sin":
        return np.sin(x)
    if name == "softsign":
        return x / (1.0 + np.abs(x))
    return np.tanh(x)


def colourise(values: np.ndarray, palette: str) -> Image.Image:
    """Network outputs to an image: its own RGB, or its first channel looked up in a palette."""
    stops = PALETTES[palette]
    if not stops:
        return Image.fromarray((values * 255.0 + 0.5).astype(np.uint8))
    # Stretch the first channel over the whole palette so every pattern uses all its colours.
    channel = values[..., 0]
    low, high = np.percentile(channel, [1, 99])
    t = np.clip((channel - low) / max(high - low, 1e-6), 0.0, 1.0) * (len(stops) - 1)
    index = np.minimum(t.astype(np.int32), len(stops) - 2)
    frac = (t - index)[..., None]
    table = np.asarray(stops, dtype=np.float32)
    rgb = table[index] * (1.0 - frac) + table[index + 1] * frac
    return Image.fromarray((rgb + 0.5).astype(np.uint8))


class PatternBackend:
    def __init__(self, max_side: int = 4096, max_frames: int = 240):
        self.max_side = max_side
        self.max_frames = max_frames

    def render(
        self,
        request: PatternRequest,
        *,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> FramesResult:
        """One picture, or a looping walk (A -> B -> A) when `walk_to` is set."""
        request.validate(self.max_side, self.max_frames)
        started = time.perf_counter()
        network = CPPN(request.seed)
        if request.walk_to is None:
            progress(0, 1)
            values = network.render(request.width, request.height, network.latent, request.zoom)
            frames = [colourise(values, request.palette)]
            progress(1, 1)
            stopped = False
        else:
            target = CPPN(request.walk_to).latent
            frames = []
            stopped = False
            positions = loop_positions(request.frames)
            for i, t in enumerate(positions):
                if cancel.cancelled:
                    stopped = True
                    break
                latent = slerp(network.latent, target, t)
                frame = colourise(network.render(request.width, request.height, latent, request.zoom), request.palette)
                frames.append(frame)
                progress(i + 1, len(positions), frame)
            if not frames:
                cancel.raise_if_cancelled()
        params = {"task": "patterns", "model": MODEL_ID, **asdict(request)}
        if request.walk_to is None:
            params.pop("frames")
        return FramesResult(frames=frames, params=params, seconds=time.perf_counter() - started, stopped=stopped)
