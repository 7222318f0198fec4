"""What every backend shares: the device choice, the model cache, cancellation and progress.

Models load lazily, once, into one cache keyed by (model id, dtype, device). The cache
holds a memory budget and evicts the least recently used models beyond it. Each key has
its own lock, so two requests for one model load it once while other models load freely.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from studio.errors import Cancelled, StudioError

log = logging.getLogger(__name__)


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int, preview: Any | None = None) -> None: ...


def no_progress(done: int, total: int, preview: Any | None = None) -> None:
    """The progress callback used when nobody is watching."""


class StageCallback(Protocol):
    """Progress of a one-off stage before the work itself (a model prepared for this machine): what it
    is, in words for a person, and how far along."""

    def __call__(self, text: str, done: int, total: int) -> None: ...


def no_stage(text: str, done: int, total: int) -> None:
    """The stage callback used when nobody is watching."""


class CancelToken:
    """Set by a Stop button; long work checks it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


NEVER_CANCELLED = CancelToken()


class HeavyLane:
    """The one line every model-running request waits in, whether it comes from the page or from an
    HTTP API: at most `slots` run at once, the rest start in the order they arrived.

    Gradio's queue already orders the page's own events; this lane is what makes an API call wait
    its turn with them instead of running beside them. A slot is counted, not owned by a thread, so
    a Gradio generator may hold it across the worker threads that step it.
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._changed = threading.Condition()
        self._waiting: list[object] = []
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextmanager
    def hold(self, cancel: CancelToken = NEVER_CANCELLED) -> Iterator[None]:
        """Wait for a slot (raising Cancelled if `cancel` is set while waiting), hold it for the block."""
        ticket = object()
        with self._changed:
            self._waiting.append(ticket)
            try:
                while not (self._waiting[0] is ticket and self._running < self.slots):
                    if cancel.cancelled:
                        raise Cancelled()
                    self._changed.wait(timeout=0.2)
            finally:
                self._waiting.remove(ticket)
                self._changed.notify_all()
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()


def torch_device(requested: str = "auto") -> str:
    """Resolve 'auto' to the best torch device here; an unavailable explicit choice falls back to cpu."""
    import torch

    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return "cuda"
    if requested in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    if requested not in ("auto", "cpu"):
        log.warning("device %s is not available here; using the CPU", requested)
    return "cpu"


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the studio's small models (melody transformer, melody VAE) on one thread: more only add
    synchronisation (3x slower on a busy 2-core machine). torch's thread count is process-wide,
    so it is restored right after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@functools.cache
def weights_fingerprint(path: Path) -> str:
    """A short fingerprint of a weights file shipped in assets/: part of every result's provenance.
    Read once per process: the files are large and do not change under a running studio."""
    import hashlib

    return f"assets-sha256:{hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]}"


def onnx_providers(requested: str = "auto") -> list[str]:
    """onnxruntime execution providers for the requested device, always ending on the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class CacheKey:
    model_id: str
    dtype: str
    device: str
    variant: str = ""  # another form of the same weights kept beside it (e.g. "torch" beside an OpenVINO UNet)


@dataclass
class _Slot:
    value: Any
    size_mb: float


class ModelCache:
    """Least-recently-used model cache under a memory budget (in MB)."""

    def __init__(self, budget_mb: float):
        self.budget_mb = budget_mb
        self._slots: OrderedDict[CacheKey, _Slot] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[CacheKey, threading.Lock] = {}

    def _key_lock(self, key: CacheKey) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def get(self, key: CacheKey, load: Callable[[], tuple[Any, float]]) -> Any:
        """The cached model for `key`, loading it with `load()` -> (model, size_mb) on first use."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                self._slots.move_to_end(key)
                return slot.value
        with self._key_lock(key):
            with self._lock:
                slot = self._slots.get(key)
                if slot is not None:
                    self._slots.move_to_end(key)
                    return slot.value
            value, size_mb = load()
            with self._lock:
                self._slots[key] = _Slot(value, size_mb)
                self._evict_over_budget(keep=key)
            return value

    def _evict_over_budget(self, keep: CacheKey) -> None:
        while self.used_mb > self.budget_mb and len(self._slots) > 1:
            oldest = next(iter(self._slots))
            if oldest == keep:
                break
            log.info("evicting %s from the model cache", oldest.model_id)
            del self._slots[oldest]

    @property
    def used_mb(self) -> float:
        return sum(slot.size_mb for slot in self._slots.values())

    def keys(self) -> list[CacheKey]:
        with self._lock:
            return list(self._slots)

    def clear(self) -> None:
        with self._lock:
            self._slots.clear()


@contextmanager
def loading_errors(name: str, where: Path | str) -> Iterator[None]:
    """A model's files failing to load (truncated, damaged, not weights at all) as one message that
    names the model: the request fails, the studio stays up, and nothing enters the cache."""
    try:
        yield
    except (StudioError, Cancelled):
        raise
    except Exception as exc:  # each library has its own error types for a bad file (SafetensorError...)
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        log.info("loading %s from %s failed", name, where, exc_info=True)  # details for the log only
        raise StudioError(
            f"The model '{name}' could not be loaded from {where} ({reason}). Its files may be damaged or "
            "incomplete: download or copy them again."
        ) from None
