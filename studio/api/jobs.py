"""The picture runs API callers have started, for AUTOMATIC1111's `/progress` and `/interrupt`:
how far each has got, its latest live preview, and its Stop."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from studio.runtime import CancelToken


@dataclass
class Job:
    id: int
    address: str
    cancel: CancelToken = field(default_factory=CancelToken)
    queued: float = field(default_factory=time.time)
    started: float | None = None  # once it holds a slot of the heavy lane
    done: int = 0
    total: int = 0
    preview: Any | None = None  # a PIL image: the latents as they stand
    preview_step: int = 0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def eta_seconds(self) -> float:
        if self.started is None or not self.done or not self.total:
            return 0.0
        spent = time.time() - self.started
        return spent / self.done * (self.total - self.done)

    def report(self, done: int, total: int, preview: Any | None = None) -> None:
        """The backend's progress callback."""
        if self.started is None:
            self.started = time.time()
        self.done, self.total = done, total
        if preview is not None:
            self.preview, self.preview_step = preview, done


class Jobs:
    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, address: str) -> Job:
        with self._lock:
            job = Job(next(self._ids), address)
            self._jobs[job.id] = job
            return job

    def finish(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.id, None)

    def current(self, address: str | None) -> tuple[Job | None, int]:
        """(the job running for this address, or for anyone when None; how many are waiting or running)."""
        with self._lock:
            mine = [job for job in self._jobs.values() if address is None or job.address == address]
        running = [job for job in mine if job.started is not None]
        return (running[0] if running else (mine[0] if mine else None)), len(mine)

    def interrupt(self, address: str | None) -> int:
        """Stop this address's jobs (everyone's when None); how many were stopped."""
        with self._lock:
            mine = [job for job in self._jobs.values() if address is None or job.address == address]
        for job in mine:
            job.cancel.cancel()
        return len(mine)
