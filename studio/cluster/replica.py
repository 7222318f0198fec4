"""A model family's Ray Serve replica: the family's backends, run one step at a time.

`run` is an async generator: the backend call runs in a worker thread and its progress reaches the
front end as it happens. A visitor's Stop arrives through the stop board (stops.py): the replica
waits on its job's event beside the job and sets the job's cancel token when it fires; the backend
checks the token between steps and ends as it does in-process, with its partial result (a reply's
words, a walk's frames) or Cancelled, which go back on the response. When the front end cancels the
response instead (a closed page, or a Stop the board did not deliver in time), Ray Serve raises
`asyncio.CancelledError` at the generator's current `await` and the replica sets the token too. Either
way the job ends within one step. (Ray Serve cannot interrupt a sync generator, hence async all the
way down.)

Only Ray workers import this module. Replicas keep no visitor data: a request and its inputs come
in, progress and a result go out, and the front end keeps the result in its own gallery.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from studio.cluster import stops
from studio.cluster.families import STREAMING, build
from studio.errors import Cancelled, StudioError
from studio.runtime import CancelToken
from studio.settings import Settings

log = logging.getLogger(__name__)

_END = object()  # what next() returns at the end of a text stream
MAX_CHECKPOINTS = 2  # image checkpoints one replica keeps hot; Serve routes a checkpoint's requests to them


class FamilyReplica:
    def __init__(self, settings: Settings, family: str):
        self.family = family
        self.backends = build(settings, family)
        # Counted for operators and tests: steps run, jobs a Stop reached (through the board or a cancelled
        # response), and steps run after it had.
        self.stats_: dict[str, int] = {"jobs": 0, "steps": 0, "cancelled": 0, "steps_after_cancel": 0}
        self._board: Any | None = None

    async def stats(self) -> dict[str, int]:
        return dict(self.stats_)

    @serve.multiplexed(max_num_models_per_replica=MAX_CHECKPOINTS)
    async def checkpoint(self, model_id: str) -> str:
        """Load an image checkpoint into this replica's cache; Serve then sends its requests here."""
        await asyncio.to_thread(self.backends["image"].load, model_id)
        return model_id

    async def _stop_when_asked(self, job: str, token: CancelToken) -> None:
        """Set the job's token when the front end asks the board to stop it."""
        try:
            if self._board is None:
                self._board = stops.find_board()
            if self._board is not None and await self._board.wait.remote(job) and not token.cancelled:
                token.cancel()
                self.stats_["cancelled"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the board gone: Stop falls back to cancelling the response
            log.warning("stop board unavailable: %s", exc)

    def _step(self, token: CancelToken) -> None:
        self.stats_["steps"] += 1
        if token.cancelled:
            self.stats_["steps_after_cancel"] += 1

    async def run(self, target: str, method: str, args: tuple, kwargs: dict[str, Any],
                  job: str | None = None) -> AsyncIterator[tuple]:
        """("progress", done, total, preview)... then ("result", value); a text stream gives ("update",
        update)...; a refusal or failure ends with ("error", kind, message). `job` names the job on the
        stop board (none for calls that cannot be stopped)."""
        self.stats_["jobs"] += 1
        backend = getattr(self.backends[target], method)
        token = CancelToken()
        worker: asyncio.Future | None = None
        watcher = asyncio.ensure_future(self._stop_when_asked(job, token)) if job else None
        try:
            model_id = serve.get_multiplexed_model_id()
            if model_id:
                await self.checkpoint(model_id)
            if (target, method) in STREAMING:
                stream = backend(*args, cancel=token, **kwargs)
                while True:
                    worker = asyncio.ensure_future(asyncio.to_thread(next, stream, _END))
                    update = await worker
                    if update is _END:
                        return
                    self._step(token)
                    yield ("update", update)
            loop = asyncio.get_running_loop()
            updates: asyncio.Queue[tuple] = asyncio.Queue()

            def progress(done: int, total: int, preview: Any | None = None) -> None:
                self._step(token)
                loop.call_soon_threadsafe(updates.put_nowait, ("progress", done, total, preview))

            # Per-frame methods (a style network's one run) take neither a progress callback nor a token.
            accepted = inspect.signature(backend).parameters
            open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
            extra = {name: value for name, value in (("progress", progress), ("cancel", token))
                     if open_ended or name in accepted}
            worker = asyncio.ensure_future(asyncio.to_thread(backend, *args, **extra, **kwargs))
            while not worker.done():
                getter = asyncio.ensure_future(updates.get())
                try:
                    await asyncio.wait({worker, getter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    getter.cancel()
                if getter.done() and not getter.cancelled():
                    yield getter.result()
            while not updates.empty():
                yield updates.get_nowait()
            yield ("result", worker.result())
        except asyncio.CancelledError:
            if not token.cancelled:
                token.cancel()
                self.stats_["cancelled"] += 1
            if worker is not None:  # the backend sees the token at its next step; free the replica after it
                # Cancelled or a failure: the visitor has gone either way.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(worker)
            raise
        except Cancelled:
            yield ("error", "Cancelled", "Stopped.")
        except StudioError as exc:
            yield ("error", type(exc).__name__, str(exc))
        except Exception as exc:  # a bug or a broken model on this worker: one line back, details in its log
            log.exception("%s job failed", self.family)
            yield ("error", "internal", f"{type(exc).__name__}: {str(exc)[:300]}")
        finally:
            if watcher is not None:
                watcher.cancel()
                if self._board is not None:
                    self._board.forget.remote(job)  # releases the board's wait; nothing to wait for here
