"""Text to music with MusicGen (transformers `MusicgenForConditionalGeneration`).

The default is facebook/musicgen-small (downloaded on first use; CC-BY-NC-4.0 weights). Models of the
MusicGen-Melody family (facebook/musicgen-melody) also follow a melody: any recording, reduced to its
chroma by the model's own processor.
Two speeds, the person's choice (`MusicRequest.speed`):
- "exact": the library's own float32 computation, token for token what `model.generate` gives for the
  same seed;
- "fastest": on a CPU the decoder's Linear layers run in int8 (weights quantised per output channel once,
  activations per step: `torch.ao.quantization.quantize_dynamic`), which reads a quarter of the bytes per
  audio frame the float32 decoder reads; the decoder is memory-bound at one frame a step, so this is
  where the time goes (benchmarks/musicgen_speed.py prints the figures and how close its logits stay to
  float32's). On a GPU, bfloat16 (float16 where bfloat16 is missing) for the text encoder and decoder.
The EnCodec audio decoder always runs in float32, where its LSTM and convolutions keep their quality, and
the work runs under `torch.inference_mode`. Progress and Stop hook into generation through a stopping
criterion that is consulted after every audio frame.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from studio import hub
from studio.catalog import Catalog
from studio.errors import InputError
from studio.media.audio import AudioClip
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

DEFAULT_MODEL = "facebook/musicgen-small"
MAX_SECONDS = 30.0
MAX_PROMPT_CHARS = 500
SPEEDS = ("exact", "fastest")
# int8 reads a quarter of float32's bytes per frame, and its guided logits stayed within cosine 0.996 of
# float32's on the real-size architecture (benchmarks/musicgen_speed.py prints both).
DEFAULT_SPEED = "fastest"


@dataclass(frozen=True)
class MusicRequest:
    prompt: str
    seconds: float = 8.0
    guidance: float = 3.0
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 250
    model: str = DEFAULT_MODEL
    speed: str = DEFAULT_SPEED

    def validate(self) -> None:
        if not self.prompt.strip():
            raise InputError("Describe the music first (e.g. 'calm piano over soft rain, 80 bpm').")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"The prompt is {len(self.prompt)} characters; keep it under {MAX_PROMPT_CHARS}.")
        if not (math.isfinite(self.seconds) and 0.1 <= self.seconds <= MAX_SECONDS):
            raise InputError(f"The length must be between 0.1 and {MAX_SECONDS:.0f} seconds, not {self.seconds}.")
        if not (math.isfinite(self.guidance) and 1.0 <= self.guidance <= 15.0):
            raise InputError(f"The guidance must be between 1 and 15, not {self.guidance}.")
        if not (math.isfinite(self.temperature) and 0.05 <= self.temperature <= 2.0):
            raise InputError(f"The temperature must be between 0.05 and 2, not {self.temperature}.")
        if not 1 <= self.top_k <= 2048:
            raise InputError(f"Top-k must be between 1 and 2048, not {self.top_k}.")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"The seed must be a whole number from 0 up, not {self.seed}.")
        if self.speed not in SPEEDS:
            raise InputError(f"The speed must be 'exact' or 'fastest', not '{self.speed}'.")


@dataclass
class MusicResult:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX). Without those instructions
    bfloat16 is emulated, and measured slower than float32 (benchmarks/musicgen_speed.py)."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def studio_dtype(device: str):
    """bfloat16 on a GPU that has it and on CPUs that compute in it natively, float32 elsewhere."""
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


def load_musicgen(path, device: str = "cpu", dtype=None):
    """MusicGen (or MusicGen-Melody) and its processor from a local folder, safetensors only; every part
    but the EnCodec audio decoder in `dtype`, EnCodec in float32."""
    import torch
    from transformers import (
        AutoConfig,
        AutoProcessor,
        MusicgenForConditionalGeneration,
        MusicgenMelodyForConditionalGeneration,
    )

    config = AutoConfig.from_pretrained(path)
    family = MusicgenMelodyForConditionalGeneration if config.model_type == "musicgen_melody" else \
        MusicgenForConditionalGeneration
    model = family.from_pretrained(path, use_safetensors=True, dtype=torch.float32)
    if dtype is not None and dtype != torch.float32:
        for name, part in model.named_children():
            if name != "audio_encoder":
                part.to(dtype)
    model.to(device).eval()
    if config.model_type == "musicgen_melody":
        return model, MelodyProcessor.from_folder(path)
    return model, AutoProcessor.from_pretrained(path)


class MelodyProcessor:
    """MusicGen-Melody's inputs: the prompt's tokens and the melody's chroma (one-hot per frame).

    The chroma follows the model's own feature extractor (its chroma filter bank over a Hann-window
    power spectrogram, the strongest bin per frame) computed with torch.stft, so the studio needs no
    torchaudio."""

    def __init__(self, tokenizer, settings: dict[str, Any]):
        from transformers.audio_utils import chroma_filter_bank

        self.tokenizer = tokenizer
        self.sampling_rate = int(settings.get("sampling_rate", 32000))
        self.n_fft = int(settings.get("n_fft", 16384))
        self.hop_length = int(settings.get("hop_length", 4096))
        self.max_samples = int(settings.get("chunk_length", 30)) * self.sampling_rate
        self.filters = chroma_filter_bank(sampling_rate=self.sampling_rate, num_frequency_bins=self.n_fft, tuning=0,
                                          num_chroma=int(settings.get("num_chroma", 12)))

    @classmethod
    def from_folder(cls, path) -> MelodyProcessor:
        import json
        from pathlib import Path

        from transformers import AutoTokenizer

        settings = json.loads((Path(path) / "preprocessor_config.json").read_text())
        return cls(AutoTokenizer.from_pretrained(path), settings)

    def chroma(self, samples: np.ndarray):
        import torch

        wave = torch.from_numpy(np.asarray(samples, dtype=np.float32)[: self.max_samples])
        if wave.numel() < self.n_fft:
            short = self.n_fft - wave.numel()
            wave = torch.nn.functional.pad(wave, (short // 2, short - short // 2))
        window = torch.hann_window(self.n_fft)
        spectrum = torch.stft(wave, self.n_fft, self.hop_length, window=window, center=True, pad_mode="reflect",
                              return_complex=True).abs() ** 2
        raw = torch.from_numpy(self.filters).float() @ spectrum  # (chroma, frames)
        strongest = raw.argmax(dim=0)
        one_hot = torch.zeros(raw.shape[1], raw.shape[0])
        one_hot[torch.arange(raw.shape[1]), strongest] = 1.0
        return one_hot.unsqueeze(0)  # (1, frames, chroma)

    def __call__(self, text, audio=None, sampling_rate=None, **kwargs):
        from transformers import BatchFeature

        inputs = dict(self.tokenizer(text, padding=True, return_tensors="pt"))
        if audio is not None:
            if sampling_rate != self.sampling_rate:
                raise ValueError(f"the melody must be at {self.sampling_rate} Hz")
            inputs["input_features"] = self.chroma(audio[0])
        return BatchFeature(inputs)


def follows_melody(model) -> bool:
    """Whether the model takes a melody (chroma) as well as text: the MusicGen-Melody family."""
    return model.config.model_type == "musicgen_melody"


INT8 = "int8-decoder"


def with_int8_decoder(model):
    """A second view of `model` whose decoder layers' Linear weights are int8 (dynamic quantisation: the
    activations are quantised per step), sharing the text encoder, EnCodec and the codebook heads with it.
    The heads stay float32: they are a few percent of the bytes and write the logits directly."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch.ao's notice that this API moves to torchao one day
        warnings.simplefilter("ignore")
        # One scale per output channel: per-tensor scales let a few large weights coarsen every other.
        spec = {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        layers = torch.ao.quantization.quantize_dynamic(model.decoder.model, spec, dtype=torch.qint8)
    decoder = _view(model.decoder, model=layers)
    return _view(model, decoder=decoder)


def _view(module, **replaced):
    """A shallow copy of a torch module with some children replaced; the original is left as it was."""
    view = copy.copy(module)
    view._modules = {**module._modules, **replaced}
    return view


def _decoder_mb(model) -> float:
    state = model.decoder.model.state_dict()
    total = 0
    for value in state.values():
        if hasattr(value, "element_size"):
            total += value.numel() * value.element_size()
        elif isinstance(value, tuple):  # a packed quantised Linear: (weight, bias)
            total += sum(v.numel() * v.element_size() for v in value if hasattr(v, "numel"))
    return total / 1e6


def _int8_linear() -> type:
    import torch

    return torch.ao.nn.quantized.dynamic.Linear


def speed_path(model) -> str:
    """What ran, in words, for the result's note: "float32", "int8 decoder", "bfloat16"."""
    decoder = model.decoder.model
    if any(isinstance(m, _int8_linear()) for m in decoder.modules()):
        return "int8 decoder"
    return str(next(decoder.parameters()).dtype).removeprefix("torch.")


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
    def __init__(
        self, cache: ModelCache, catalog: Catalog, *, device: str = "auto", offline: bool = False,
        dtype: str | None = None,
    ):
        self.cache = cache
        self.catalog = catalog
        self.device = device
        self.offline = offline
        self.dtype = dtype  # None: the studio's choice for the device (studio_dtype); or e.g. "float32"
        self._lock = threading.Lock()

    def _model(self, model_id: str, speed: str = "exact"):
        """(model, processor, entry) for `speed`: float32 for "exact"; for "fastest" on a CPU the same
        float32 model with an int8 decoder beside it, on a GPU the studio's half precision."""
        entry = self.catalog.get(model_id)
        if "music" not in entry.tasks:
            raise InputError(f"'{model_id}' is not a text-to-music model.")
        import torch

        device = torch_device(self.device)
        if self.dtype:
            dtype = getattr(torch, self.dtype)
        else:
            dtype = studio_dtype(device) if speed == "fastest" and device != "cpu" else torch.float32

        def load():
            path = hub.locate(entry, offline=self.offline)
            with loading_errors(entry.name, path):
                model, processor = load_musicgen(path, device, dtype)
            size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
            return (model, processor, entry), size_mb

        loaded = self.cache.get(CacheKey(model_id, str(dtype).removeprefix("torch."), device), load)
        if speed != "fastest" or device != "cpu" or dtype != torch.float32:
            return loaded
        model, processor, entry = loaded

        def quantise():
            fast = with_int8_decoder(model)
            return (fast, processor, entry), _decoder_mb(fast)

        return self.cache.get(CacheKey(model_id, INT8, device), quantise)

    def frame_rate(self, model) -> float:
        audio = model.config.audio_encoder
        return audio.sampling_rate / math.prod(audio.upsampling_ratios)

    def generate(
        self,
        request: MusicRequest,
        melody: AudioClip | None = None,
        *,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> MusicResult:
        """Audio for the prompt; with `melody`, a MusicGen-Melody model also follows that tune's chroma."""
        import torch
        from transformers import StoppingCriteriaList

        request.validate()
        started = time.perf_counter()
        model, processor, entry = self._model(request.model, request.speed)
        if melody is not None and not follows_melody(model):
            raise InputError(f"{entry.name} follows text only; to follow a melody choose a MusicGen melody model "
                             "(e.g. facebook/musicgen-melody).")
        device = next(model.audio_encoder.parameters()).device
        dtype = next(model.text_encoder.parameters()).dtype
        rate = getattr(processor, "sampling_rate", None) or int(model.config.audio_encoder.sampling_rate)
        frames = max(1, int(round(request.seconds * self.frame_rate(model))))
        features: dict[str, Any] = {"text": [request.prompt], "padding": True, "return_tensors": "pt"}
        if melody is not None:
            features.update(audio=[_resampled(melody, rate)], sampling_rate=rate)
        inputs = processor(**features).to(device)
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(dtype)
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
        params = {
            "task": "music",
            **asdict(request),
            "model_revision": entry.revision or "main",
            "licence": entry.licence,
            "dtype": str(dtype).removeprefix("torch."),
            "path": speed_path(model),
            "sample_rate": int(model.config.audio_encoder.sampling_rate),
            "melody_seconds": round(melody.seconds, 2) if melody is not None else None,
        }
        return MusicResult(samples.astype(np.float32), params["sample_rate"], params, time.perf_counter() - started)


def _resampled(clip: AudioClip, rate: int) -> np.ndarray:
    if clip.sample_rate == rate:
        return clip.samples
    import librosa

    return librosa.resample(clip.samples, orig_sr=clip.sample_rate, target_sr=rate)
