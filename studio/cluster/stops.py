"""Stop through Ray without losing what was made: the front end asks the replica that holds a job to
stop, and the job ends the way it ends in-process (a stopped reply keeps its words, a stopped walk
its frames), its partial result coming back on the same response.

Cancelling a Serve response would reach the job too, but it ends the response, so nothing made so
far could come back. Instead every job carries an id; a small named actor (the board) holds one
event per stopped or running job. A replica waits on its job's event beside the job and sets the
job's cancel token when it fires; the front end sets the event on Stop, and cancels the response
only when the job has not ended a few seconds later (a replica too busy or gone to answer).

Only the front end (client.py) and Ray workers (replica.py) import this module.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray

BOARD = "studio-stops"
NAMESPACE = "studio"
# Stops asked for jobs that had already ended are forgotten after this long.
FORGET_AFTER_S = 600.0


@ray.remote(num_cpus=0, max_concurrency=10_000)
class StopBoard:
    """Job id -> an event set when the job is asked to stop."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._stopped_at: dict[str, float] = {}

    def _event(self, job: str) -> asyncio.Event:
        return self._events.setdefault(job, asyncio.Event())

    async def wait(self, job: str) -> bool:
        """Returns when the job is asked to stop (True) or is forgotten (False)."""
        await self._event(job).wait()
        return job in self._stopped_at

    async def stop(self, job: str) -> None:
        now = time.monotonic()
        # A stop that raced the job's end leaves an entry nobody forgets: drop old ones here.
        for old in [j for j, at in self._stopped_at.items() if now - at > FORGET_AFTER_S]:
            self._stopped_at.pop(old, None)
            self._events.pop(old, None)
        self._stopped_at[job] = now
        self._event(job).set()

    async def forget(self, job: str) -> None:
        event = self._events.pop(job, None)
        if event is not None:
            event.set()  # releases the replica's wait
        self._stopped_at.pop(job, None)

    async def size(self) -> int:
        return len(self._events)


def board() -> Any:
    """The board's handle, started on first use; it lives as long as the Ray cluster."""
    # Restarted if its node goes (its events are lost then: a Stop in flight falls back to cancelling).
    return StopBoard.options(name=BOARD, namespace=NAMESPACE, get_if_exists=True, lifetime="detached",
                             max_restarts=-1).remote()


def find_board() -> Any | None:
    """The running board, or None (a replica whose front end predates it: Stop then cancels the response)."""
    try:
        return ray.get_actor(BOARD, namespace=NAMESPACE)
    except ValueError:
        return None
