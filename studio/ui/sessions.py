"""Gradio's per-session state, made without describing every block of the page up front.

Gradio gives every new session (each page load, and every `POST /gradio_api/call/...` that comes
without a session) a `SessionState` whose constructor writes the config of every block: over 500 in
the studio, about 0.1 s on a busy 2-core machine, spent before the first event of the session runs.
That alone put an API caller's first token over 100 ms behind llama.cpp's (benchmarks/first_token.py).
Those configs are read only for deep links and for blocks an event changed, so here each is made
the first time it is asked for; whoever reads them all still gets them all, as they were.
"""

from __future__ import annotations

import os
from collections.abc import ItemsView, Iterator
from copy import copy
from typing import Any

from gradio import state_holder

_ORIGINAL_INIT = state_holder.SessionState.__init__


class LazyConfigs(dict):
    """Block id -> that block's config, each made on first use from the session's blocks."""

    def __init__(self, blocks_config: Any, ids: list[int]) -> None:
        super().__init__()
        self._blocks_config = blocks_config
        self._pending = dict.fromkeys(ids)  # ordered, so reading them all keeps the page's order

    def _make(self, key: int) -> dict:
        self._pending.pop(key, None)
        value = self._blocks_config.config_for_block(key, [], self._blocks_config.blocks[key])
        dict.__setitem__(self, key, value)
        return value

    def __missing__(self, key: int) -> dict:
        if key in self._pending:
            return self._make(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._pending

    def __setitem__(self, key: int, value: dict) -> None:
        self._pending.pop(key, None)
        dict.__setitem__(self, key, value)

    def _all(self) -> None:
        for key in list(self._pending):
            self._make(key)

    def items(self) -> ItemsView:  # type: ignore[override]
        self._all()
        return dict.items(self)

    def values(self):  # type: ignore[override]
        self._all()
        return dict.values(self)

    def keys(self):  # type: ignore[override]
        self._all()
        return dict.keys(self)

    def __iter__(self) -> Iterator[int]:
        self._all()
        return dict.__iter__(self)

    def __len__(self) -> int:
        return dict.__len__(self) + len(self._pending)

    def get(self, key: int, default: Any = None) -> Any:
        if key in self:  # noqa: SIM401 - dict.get would skip the configs not made yet
            return self[key]
        return default


def _lazy_init(self: state_holder.SessionState, blocks: Any) -> None:
    # Gradio 6.31's SessionState.__init__, with config_values made lazily.
    self.blocks_config = copy(blocks.default_config)
    self.config_values = LazyConfigs(self.blocks_config, [k for k in self.blocks_config.blocks if k in blocks.blocks])
    self.state_data = {}
    self._state_ttl = {}
    self.is_closed = False
    self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600


def install() -> None:
    """Make new sessions lazily (once per process; every place Gradio makes one uses this class)."""
    state_holder.SessionState.__init__ = _lazy_init  # type: ignore[method-assign]


def uninstall() -> None:
    state_holder.SessionState.__init__ = _ORIGINAL_INIT  # type: ignore[method-assign]
