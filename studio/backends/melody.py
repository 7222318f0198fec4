"""The studio's own melody model: a small Llama-style transformer over melody tokens.

It ships in assets/melody-model/ (transformers' save format, safetensors) and loads through
`from_pretrained` like any hub model. Sampling is the studio's own loop because every step is
constrained by the bar grammar (`BarGrammar`: bars exactly full, the tune ending on time) and
optionally nudged towards the requested key's scale; temperature and top-p follow.
Many melodies can be sampled at once (one batch), which the quality tests and previews use.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio import catalog
from studio.errors import InputError, StudioError
from studio.media import melody_tokens as mt
from studio.media.melody_tokens import Melody
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

MODEL_ID = "studio-melody"
MAX_BARS = 64
MIN_TEMPO, MAX_TEMPO = 30, 300
TRAINED_CONTEXT = 256  # the model never saw longer windows; longer tunes slide a window
KEEP_ON_SLIDE = 160
MAX_PRIMER_BARS = 64


@dataclass(frozen=True)
class MelodyRequest:
    tonic: str = "C"
    mode: str = "major"
    meter: str = "4/4"
    tempo: float = 110.0
    bars: int = 16  # new bars (added after the primer when continuing)
    temperature: float = 0.9
    top_p: float = 0.95
    key_strength: float = 2.0  # logit penalty on notes outside the key's scale (0: none)
    seed: int = 0
    timbre: str = "piano"

    def validate(self) -> None:
        from studio.media.synth import TIMBRES

        try:
            mt.parse_tonic(self.tonic)
        except ValueError as exc:
            raise InputError(f"{exc}.") from None
        if self.mode not in mt.MODES:
            raise InputError(f"The mode must be one of {', '.join(mt.MODES)}, not '{self.mode}'.")
        if self.meter not in mt.METERS:
            raise InputError(f"The metre must be one of {', '.join(mt.METERS)}, not '{self.meter}'.")
        if not isinstance(self.bars, int) or not 1 <= self.bars <= MAX_BARS:
            raise InputError(f"The number of bars must be a whole number from 1 to {MAX_BARS}, not {self.bars}.")
        if not (math.isfinite(self.tempo) and MIN_TEMPO <= self.tempo <= MAX_TEMPO):
            raise InputError(f"The tempo must be between {MIN_TEMPO} and {MAX_TEMPO} bpm, not {self.tempo}.")
        if not (math.isfinite(self.temperature) and 0.0 <= self.temperature <= 2.0):
            raise InputError(f"The temperature must be between 0 and 2, not {self.temperature}.")
        if not (math.isfinite(self.top_p) and 0.0 < self.top_p <= 1.0):
            raise InputError(f"Top-p must be above 0 and at most 1, not {self.top_p}.")
        if not (math.isfinite(self.key_strength) and 0.0 <= self.key_strength <= 20.0):
            raise InputError(f"The key strength must be between 0 and 20, not {self.key_strength}.")
        if self.timbre not in TIMBRES:
            raise InputError(f"The timbre must be one of {', '.join(TIMBRES)}, not '{self.timbre}'.")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise InputError(f"The seed must be a whole number from 0 up, not {self.seed}.")

    @property
    def tonic_pc(self) -> int:
        return mt.parse_tonic(self.tonic)


@dataclass
class MelodyResult:
    melody: Melody
    primer_bars: int
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def primer_ticks(self) -> int:
        return sum(e.ticks for bar in self.melody.bars[: self.primer_bars] for e in bar)


def model_folder() -> Path:
    entry = catalog.Catalog(catalog.BUILTIN_ENTRIES).get(MODEL_ID)
    return catalog.builtin_file(entry, entry.files[0]).parent


class MelodyBackend:
    """The adapter the Music tab, the CLI and the gallery's re-run call."""

    def __init__(self, cache: ModelCache, device: str = "auto", folder: Path | None = None):
        self.cache = cache
        self.device = device
        self._folder = folder
        self._sample_lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self._folder or model_folder()

    def revision(self) -> str:
        """A short fingerprint of the shipped weights: part of every result's provenance."""
        return weights_fingerprint(self.folder / "model.safetensors")

    def _model(self):
        def load():
            import torch
            from transformers import LlamaForCausalLM

            vocab = json.loads((self.folder / "vocab.json").read_text())["tokens"]
            if tuple(vocab) != mt.VOCAB:
                raise StudioError(
                    "The melody model's vocabulary does not match this version of the studio; run `make train-melody`."
                )
            model = LlamaForCausalLM.from_pretrained(self.folder, use_safetensors=True, dtype=torch.float32)
            model.eval()
            size_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
            return model, size_mb

        return self.cache.get(CacheKey(MODEL_ID, "float32", "cpu"), load)

    # -- public API -------------------------------------------------------------------------------

    def generate(
        self,
        request: MelodyRequest,
        primer: Melody | None = None,
        *,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> MelodyResult:
        """One melody (a continuation of `primer` when given), reproducible from its parameters."""
        request.validate()
        started = time.perf_counter()
        primer_bars = self._primer_bars(primer)
        melody = self.sample(request, primer_bars, count=1, progress=progress, cancel=cancel)[0]
        params = {
            "task": "melody",
            "model": MODEL_ID,
            "model_revision": self.revision(),
            **asdict(request),
            "primer": primer.to_json() if primer is not None else None,
            "primer_bars": len(primer_bars),
        }
        return MelodyResult(melody, len(primer_bars), params, time.perf_counter() - started)

    def _primer_bars(self, primer: Melody | None) -> list[tuple[mt.Event, ...]]:
        if primer is None:
            return []
        if not primer.bars or not primer.notes():
            raise InputError("The melody to continue has no notes.")
        if len(primer.bars) > MAX_PRIMER_BARS:
            raise InputError(f"The melody to continue is {len(primer.bars)} bars long; the studio continues "
                             f"melodies of up to {MAX_PRIMER_BARS} bars.")
        span = primer.pitch_range()
        assert span is not None
        if span[0] < mt.LOWEST_PITCH or span[1] > mt.HIGHEST_PITCH:
            raise InputError("The melody to continue has notes outside C2..C7, the model's range.")
        return list(primer.bars)

    def sample(
        self,
        request: MelodyRequest,
        primer_bars: list[tuple[mt.Event, ...]] | None = None,
        *,
        count: int = 1,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken = NEVER_CANCELLED,
    ) -> list[Melody]:
        """`count` melodies from one seed (one batch). The primer's bars come first, unchanged."""
        import torch

        request.validate()
        model = self._model()
        primer_bars = list(primer_bars or [])
        total_bars = len(primer_bars) + request.bars
        # The primer's last bar is left open where it ends in rests, so the tune carries straight on.
        open_bar: list[mt.Event] = []
        if primer_bars:
            last = list(primer_bars[-1])
            while last and last[-1].pitch is None:
                last.pop()
            if last:
                primer_bars, open_bar = primer_bars[:-1], last
        header = mt.header_ids(request.meter, request.tonic_pc, request.mode, total_bars)
        prefix = header + mt.body_ids(primer_bars)
        for event in open_bar:
            prefix += mt.body_ids([[event]])[:-1]  # the events without a closing bar line
        grammars = [mt.BarGrammar(request.meter, total_bars) for _ in range(count)]
        for grammar in grammars:
            for token in prefix[mt.HEADER_LENGTH :]:
                grammar.push(token)
        bias = self._scale_bias(request)
        generator = torch.Generator().manual_seed(request.seed)
        sequences = [list(prefix) for _ in range(count)]  # each melody's tokens
        fed = [list(prefix) for _ in range(count)]  # what the model saw: finished rows go on with PAD
        start = prefix if len(prefix) < TRAINED_CONTEXT else header + prefix[-KEEP_ON_SLIDE:]
        context = torch.tensor([start] * count)
        past = None
        reported = -1
        with self._sample_lock, torch.inference_mode(), one_torch_thread():
            while not all(g.finished for g in grammars):
                cancel.raise_if_cancelled()
                out = model(input_ids=context, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                chosen = self._choose(logits, grammars, bias, request, generator)
                for row, token in enumerate(chosen):
                    fed[row].append(token)
                    if not grammars[row].finished:
                        grammars[row].push(token)
                        sequences[row].append(token)
                context = torch.tensor(chosen, dtype=torch.long).unsqueeze(1)
                if past.get_seq_length() + 1 >= TRAINED_CONTEXT:
                    # Slide: keep the header and the recent tokens, and rebuild the cache.
                    context = torch.tensor([header + tokens[-KEEP_ON_SLIDE:] for tokens in fed])
                    past = None
                done = min(g.bars_done for g in grammars) - (total_bars - request.bars)
                if done != reported:
                    reported = done
                    progress(max(done, 0), request.bars)
        return [mt.decode(s) for s in sequences]

    @staticmethod
    def _scale_bias(request: MelodyRequest) -> np.ndarray:
        bias = np.zeros(len(mt.VOCAB), dtype=np.float32)
        scale = mt.scale_pitch_classes(request.tonic_pc, request.mode)
        for pitch, token in mt.PITCH_IDS.items():
            if pitch % 12 not in scale:
                bias[token] = -request.key_strength
        return bias

    @staticmethod
    def _choose(logits, grammars, bias, request: MelodyRequest, generator) -> list[int]:
        import torch

        mask = torch.full_like(logits, float("-inf"))
        for row, grammar in enumerate(grammars):
            mask[row, grammar.allowed()] = 0.0
        scores = logits + mask + torch.from_numpy(bias)
        if request.temperature == 0.0:
            return scores.argmax(dim=-1).tolist()
        probs = torch.softmax(scores / request.temperature, dim=-1)
        if request.top_p < 1.0:
            ordered, order = probs.sort(dim=-1, descending=True)
            before = ordered.cumsum(dim=-1) - ordered
            ordered = torch.where(before < request.top_p, ordered, torch.zeros_like(ordered))
            probs = torch.zeros_like(probs).scatter(-1, order, ordered)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1).tolist()
