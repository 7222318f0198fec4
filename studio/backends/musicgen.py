"""Text to music with MusicGen (transformers `MusicgenForConditionalGeneration`).

The default is facebook/musicgen-small (downloaded on first use; CC-BY-NC-4.0 weights).
The studio's path differs from the plain library call in two ways that matter on a CPU:
the text encoder and the decoder run in bfloat16 where the CPU handles it (the EnCodec audio
decoder stays in float32, where its LSTM and convolutions keep their quality), and the work runs
under `torch.inference_mode`. Progress and Stop hook into generation through a stopping criterion
that is consulted after every audio frame.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from studio import hub
from studio.catalog import Catalog
from studio.errors import InputError, StudioError
from studio.runtime import (
    NEVER_CANCELLED,
    CacheKey,
    CancelToken,
    ModelCache,
    ProgressCallback,
    no_progress,
    torch_device,
)

DEFAULT_MODEL = "facebook/musicgen-small"
MAX_SECONDS = 30.0
MAX_PROMPT_CHARS = 500


@dataclass(frozen=True)
class MusicRequest:
    prompt: str
    seconds: float = 8.0
    guidance: float = 3.0
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 250
    model: str = DEFAULT_MODEL

    def validate(self) -> None:
        if not self.prompt.strip():
            raise InputError("Describe the music first (e.g. 'calm piano over soft rain, 80 bpm').")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"The prompt is {len(self.prompt)} characters; keep it under {MAX_PROMPT_CHARS}.")
        if not (math.isfinite(self.seconds) and 0.5 <= self.seconds <= MAX_SECONDS):
            raise InputError(f"The length must be between 0.5 and {MAX_SECONDS:.0f} seconds, not {self.seconds}.")
        if not (math.isfinite(self.guidance) and 1.0 <= self.guidance <= 15.0):
            raise InputError(f"The guidance must be between 1 and 15, not {self.guidance}.")
        if not (math.isfinite(self.temperature) and 0.05 <= self.temperature <= 2.0):
            raise InputError(f"The temperature must be between 0.05 and 2, not {self.temperature}.")
        if not 1 <= self.top_k <= 2048:
            raise InputError(f"Top-k must be between 1 and 2048, not {self.top_k}.")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"The seed must be a whole number from 0 up, not {self.seed}.")


@dataclass
class MusicResult:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def cpu_supports_bf16() -> bool:
    import torch

    return bool(getattr(torch.backends, "mkldnn", None) and torch.backends.mkldnn.is_available())


def studio_dtype(device: str):
    """bfloat16 on a GPU that has it and on CPUs (oneDNN), float32 elsewhere (e.g. MPS)."""
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


def load_musicgen(path, device: str = "cpu", dtype=None):
    """MusicGen and its processor from a local folder (safetensors only); decoder + text encoder in
    `dtype`, the EnCodec audio decoder in float32."""
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(path, use_safetensors=True, dtype=torch.float32)
    if dtype is not None and dtype != torch.float32:
        model.text_encoder.to(dtype)
        model.decoder.to(dtype)
        model.enc_to_dec_proj.to(dtype)
    model.to(device).eval()
    processor = AutoProcessor.from_pretrained(path)
    return model, processor


class _Watch:
    """A stopping criterion that never stops generation itself: it reports progress and honours Stop."""

    def __init__(self, start_length: int, total: int, progress: ProgressCallback, cancel: CancelToken):
        self.start_length, self.total, self.progress, self.cancel = start_length, total, progress, cancel

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.cancel.raise_if_cancelled()
        self.progress(min(input_ids.shape[-1] - self.start_length, self.total), self.total)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class MusicBackend:
    def __init__(self, cache: ModelCache, catalog: Catalog, *, device: str = "auto", offline: bool = False):
        self.cache = cache
        self.catalog = catalog
        self.device = device
        self.offline = offline
        self._lock = threading.Lock()

    def _model(self, model_id: str):
        entry = self.catalog.get(model_id)
        if "music" not in entry.tasks:
            raise InputError(f"'{model_id}' is not a text-to-music model.")
        device = torch_device(self.device)
        dtype = studio_dtype(device)

        def load():
            path = hub.locate(entry, offline=self.offline)
            try:
                model, processor = load_musicgen(path, device, dtype)
            except OSError as exc:
                raise StudioError(f"The model '{entry.name}' at {path} could not be loaded: {exc}") from None
            size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
            return (model, processor, entry), size_mb

        return self.cache.get(CacheKey(model_id, str(dtype).removeprefix("torch."), device), load)

    def frame_rate(self, model) -> float:
        audio = model.config.audio_encoder
        return audio.sampling_rate / math.prod(audio.upsampling_ratios)

    def generate(
        self,
        request: MusicRequest,
        *,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> MusicResult:
        import torch
        from transformers import StoppingCriteriaList

        request.validate()
        started = time.perf_counter()
        model, processor, entry = self._model(request.model)
        device = next(model.decoder.parameters()).device
        frames = max(1, int(round(request.seconds * self.frame_rate(model))))
        inputs = processor(text=[request.prompt], padding=True, return_tensors="pt").to(device)
        watch = _Watch(1, frames, progress, cancel)
        progress(0, frames)
        with self._lock, torch.inference_mode():
            torch.manual_seed(request.seed)
            audio = model.generate(
                **inputs,
                do_sample=True,
                guidance_scale=request.guidance if request.guidance > 1.0 else None,
                temperature=request.temperature,
                top_k=request.top_k,
                max_new_tokens=frames,
                stopping_criteria=StoppingCriteriaList([watch]),
            )
        samples = audio[0, 0].float().cpu().numpy()
        peak = float(np.abs(samples).max(initial=0.0))
        if peak > 1.0:  # EnCodec can overshoot; scale rather than clip
            samples = samples / peak * 0.98
        rate = int(model.config.audio_encoder.sampling_rate)
        params = {
            "task": "music",
            **asdict(request),
            "model_revision": entry.revision or "main",
            "licence": entry.licence,
            "dtype": str(next(model.decoder.parameters()).dtype).removeprefix("torch."),
            "sample_rate": rate,
        }
        return MusicResult(samples.astype(np.float32), rate, params, time.perf_counter() - started)
