"""Melody walks: morph one melody into another through the melody VAE's latent space.

Both melodies are moved to a tonic of C, snapped to sixteenths and cut into segments
(studio/media/melody_grid.py); each segment is encoded to its latent mean. Step i of an N-step
walk slerps every segment's latent from A's to B's at t = i / (N - 1) and decodes the segments
in order, each told whether the previous one left a note sounding (a tie across the segment
line). So step 0 is exactly the VAE's reconstruction of A and the last step B's.

Slerp rather than lerp: the latent means of real segments lie on a shell around the origin,
and slerp keeps every step on it, where the decoder has seen real melodies; a straight line dips
well inside it halfway. On the report's measures (assets/melody-vae/REPORT.md: notes in scale,
step sizes) the two paths differ little; `interpolation="lerp"` is there to compare.

Keys: a step decodes in the C frame and is moved to the key of the nearer end: A's before the
middle of the walk, B's from it on, so every step sounds in one key and the walk changes key
once, halfway. Melodies of different lengths walk over the first bars of both (the shorter's length).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio import catalog
from studio.errors import InputError, StudioError
from studio.media import melody_grid as grid
from studio.media.interpolation import lerp, slerp
from studio.media.melody_tokens import TICKS_PER_QUARTER, Melody, bar_ticks, key_name
from studio.runtime import (
    NEVER_CANCELLED,
    CacheKey,
    CancelToken,
    ModelCache,
    ProgressCallback,
    no_progress,
    one_torch_thread,
    weights_fingerprint,
)

MODEL_ID = "studio-melody-vae"
MIN_STEPS, MAX_STEPS = 2, 16
MAX_WALK_BARS = 32
MIN_TEMPO, MAX_TEMPO = 30, 300
INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}


@dataclass(frozen=True)
class MelodyWalkRequest:
    steps: int = 6  # melodies in the walk, A and B included
    tempo: float = 110.0
    timbre: str = "piano"
    interpolation: str = "slerp"

    def validate(self) -> None:
        from studio.media.synth import TIMBRES

        if not isinstance(self.steps, int) or not MIN_STEPS <= self.steps <= MAX_STEPS:
            raise InputError(f"A melody walk has {MIN_STEPS} to {MAX_STEPS} steps (A and B included), not {self.steps}.")
        if not (math.isfinite(self.tempo) and MIN_TEMPO <= self.tempo <= MAX_TEMPO):
            raise InputError(f"The tempo must be between {MIN_TEMPO} and {MAX_TEMPO} bpm, not {self.tempo}.")
        if self.timbre not in TIMBRES:
            raise InputError(f"The timbre must be one of {', '.join(TIMBRES)}, not '{self.timbre}'.")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"The interpolation must be one of {', '.join(INTERPOLATIONS)}, not '{self.interpolation}'.")


@dataclass
class MelodyWalkResult:
    steps: list[Melody]  # the VAE's A, the melodies between, the VAE's B
    positions: list[float]  # t of each step, 0 (A) to 1 (B)
    melody: Melody  # every step in turn, as one melody
    bars_per_step: int
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what was changed in the inputs, in words

    def step_starts(self) -> list[int]:
        """The tick at which each step starts in `melody`."""
        length = self.bars_per_step * bar_ticks(self.melody.meter)
        return [i * length for i in range(len(self.steps))]


def model_folder() -> Path:
    entry = catalog.Catalog(catalog.BUILTIN_ENTRIES).get(MODEL_ID)
    return catalog.builtin_file(entry, entry.files[0]).parent


def walk_seconds(bars: int, steps: int, meter: str, tempo: float) -> float:
    return steps * bars * bar_ticks(meter) / TICKS_PER_QUARTER * 60.0 / tempo


# -- the VAE over whole melodies ----------------------------------------------------------------------


def encode_segments(model, segments: np.ndarray, meters: np.ndarray) -> np.ndarray:
    """Latent means [N, latent] of segments [N, SEGMENT_STEPS] in metres [N] (metre ids)."""
    import torch

    with torch.inference_mode():
        mean, _ = model.encode(torch.from_numpy(segments), torch.from_numpy(meters))
    return mean.numpy().astype(np.float64)


def decode_latents(model, latents: np.ndarray, meters: np.ndarray, cancel: CancelToken = NEVER_CANCELLED,
                   progress: ProgressCallback = no_progress) -> np.ndarray:
    """Melodies [B, S, SEGMENT_STEPS] from latents [B, S, latent]: segment by segment, each told
    whether its melody's previous segment left a note sounding. PAD after each segment's length."""
    import torch

    batch, count = latents.shape[:2]
    lengths = torch.tensor([grid.segment_steps(grid_meter(m)) for m in meters])
    meter_ids = torch.from_numpy(meters)
    sounding = torch.zeros(batch, dtype=torch.bool)
    out = np.zeros((batch, count, grid.SEGMENT_STEPS), dtype=np.int64)
    with torch.inference_mode():
        for k in range(count):
            cancel.raise_if_cancelled()
            z = torch.from_numpy(latents[:, k]).float()
            classes = model.greedy(z, meter_ids, lengths, sounding)
            out[:, k] = classes.numpy()
            last = classes.gather(1, (lengths - 1)[:, None])[:, 0]
            sounding = (last != grid.REST) & (last != grid.PAD)
            progress(k + 1, count)
    return out


def grid_meter(meter_id: int) -> str:
    from studio.media.melody_tokens import METERS

    return METERS[int(meter_id)]


def join_segments(segments: np.ndarray, meter: str, bars: int) -> np.ndarray:
    """Decoded segments [S, SEGMENT_STEPS] as one class sequence of `bars` bars."""
    length = grid.segment_steps(meter)
    return segments[:, :length].reshape(-1)[: bars * grid.steps_per_bar(meter)]


# -- the backend -------------------------------------------------------------------------------------


class MelodyWalkBackend:
    """The adapter the Interpolate tab, the CLI and the gallery's re-run call."""

    def __init__(self, cache: ModelCache, folder: Path | None = None):
        self.cache = cache
        self._folder = folder
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self._folder or model_folder()

    def revision(self) -> str:
        """A short fingerprint of the shipped weights: part of every result's provenance."""
        return weights_fingerprint(self.folder / "model.safetensors")

    def model(self):
        def load():
            from studio.backends.melody_vae import VAEConfig, load_vae

            if not VAEConfig.load(self.folder / "config.json").matches_grid():
                raise StudioError("The melody VAE's weights do not match this version of the studio; "
                                  "run `make train-melody-vae`.")
            model = load_vae(self.folder)
            size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
            return model, size_mb

        return self.cache.get(CacheKey(MODEL_ID, "float32", "cpu"), load)

    def encode(self, melody: Melody) -> tuple[grid.GridMelody, np.ndarray]:
        """The melody on the grid and its segments' latent means [S, latent]."""
        on_grid = grid.to_grid(melody)
        segments, _ = grid.segments(on_grid)
        meters = np.full(len(segments), grid.METER_INDEX[melody.meter], dtype=np.int64)
        return on_grid, encode_segments(self.model(), segments, meters)

    def decode(self, latents: np.ndarray, like: grid.GridMelody) -> Melody:
        """Latents [S, latent] as a melody with `like`'s metre, key and length."""
        meters = np.array([grid.METER_INDEX[like.meter]], dtype=np.int64)
        segments = decode_latents(self.model(), latents[None], meters)[0]
        return grid.from_grid(like, join_segments(segments, like.meter, like.bars))

    def reconstruct(self, melody: Melody) -> Melody:
        """decode(encode(melody)): what the VAE makes of a melody, and so of a walk's ends."""
        with self._lock, one_torch_thread():
            on_grid, latents = self.encode(melody)
            return self.decode(latents, on_grid)

    def walk(
        self,
        a: Melody,
        b: Melody,
        request: MelodyWalkRequest,
        *,
        max_seconds: float = 600.0,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> MelodyWalkResult:
        """`request.steps` melodies from (the VAE's) A to B, and all of them in turn as one melody."""
        request.validate()
        started = time.perf_counter()
        a, b, notes = self._fit_together(a, b)
        bars = len(a.bars)
        seconds = walk_seconds(bars, request.steps, a.meter, request.tempo)
        if seconds > max_seconds:
            raise InputError(f"That walk would play for {seconds / 60:.1f} minutes; the studio makes walks of up to "
                             f"{max_seconds / 60:.0f} minutes. Use fewer steps, shorter melodies or a faster tempo.")
        positions = [i / (request.steps - 1) for i in range(request.steps)]
        mix = INTERPOLATIONS[request.interpolation]
        with self._lock, one_torch_thread():
            grid_a, latents_a = self.encode(a)
            grid_b, latents_b = self.encode(b)
            for name, on_grid in (("A", grid_a), ("B", grid_b)):
                if on_grid.moved_notes:
                    notes.append(f"{on_grid.moved_notes} note(s) of melody {name} were moved to the sixteenth-note "
                                 "grid (or by octaves into the model's range).")
            steps = []
            for done, t in enumerate(positions):
                cancel.raise_if_cancelled()
                latents = np.stack([mix(za, zb, t) for za, zb in zip(latents_a, latents_b, strict=True)])
                # One step at a time, exactly as `reconstruct` decodes: batching could change the
                # last bits of the arithmetic, and with them a near-tie, so the ends would not match.
                end = grid_a if t < 0.5 else grid_b
                steps.append(self.decode(latents, end))
                progress(done + 1, request.steps)
        melody = Melody(a.meter, a.tonic, a.mode, tuple(bar for step in steps for bar in step.bars))
        params = {
            "task": "melody-walk",
            "model": MODEL_ID,
            "model_revision": self.revision(),
            **asdict(request),
            "melody_a": a.to_json(),
            "melody_b": b.to_json(),
            "bars_per_step": bars,
            "key_a": key_name(a.tonic, a.mode),
            "key_b": key_name(b.tonic, b.mode),
        }
        return MelodyWalkResult(steps, positions, melody, bars, params, time.perf_counter() - started, notes)

    @staticmethod
    def _fit_together(a: Melody, b: Melody) -> tuple[Melody, Melody, list[str]]:
        """Check both melodies can be walked between; cut them to a common length."""
        for name, melody in (("A", a), ("B", b)):
            if not melody.bars or not melody.notes():
                raise InputError(f"Melody {name} has no notes.")
        if a.meter != b.meter:
            raise InputError(f"Melody A is in {a.meter} and melody B in {b.meter}; a walk needs both in one metre.")
        bars = min(len(a.bars), len(b.bars))
        if bars > MAX_WALK_BARS:
            raise InputError(f"Both melodies are longer than {MAX_WALK_BARS} bars; the studio walks between melodies "
                             f"of up to {MAX_WALK_BARS} bars.")
        notes = []
        if len(a.bars) != len(b.bars):
            longer = "A" if len(a.bars) > len(b.bars) else "B"
            notes.append(f"Melody {longer} is longer: the walk uses the first {bars} bars of each.")
            a, b = a.with_bars(a.bars[:bars]), b.with_bars(b.bars[:bars])
            for name, melody in (("A", a), ("B", b)):
                if not melody.notes():
                    raise InputError(f"Melody {name} has no notes in its first {bars} bars.")
        return a, b, notes
