"""An interpolated Kneser-Ney n-gram model over token ids: the baseline the melody model must beat.

Counts live in sorted numpy arrays of n-grams packed into int64 codes (7 bits per token), so
tens of millions of tokens count in seconds. Discounts follow Chen & Goodman's estimate
D = n1 / (n1 + 2 n2) per order; the lowest order is interpolated with the uniform distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BITS = 7  # token ids < 128


@dataclass
class _Order:
    codes: np.ndarray  # sorted unique n-gram codes
    counts: np.ndarray  # (continuation) counts per code
    contexts: np.ndarray  # sorted unique context codes
    totals: np.ndarray  # sum of counts per context
    types: np.ndarray  # distinct followers per context
    discount: float


def _pack(windows: np.ndarray) -> np.ndarray:
    codes = np.zeros(windows.shape[0], dtype=np.int64)
    for column in range(windows.shape[1]):
        codes = (codes << BITS) | windows[:, column].astype(np.int64)
    return codes


def _windows(sequences: Sequence[np.ndarray], order: int, pad: int) -> np.ndarray:
    """Every `order`-long window ending at each predicted token (positions 1.. of each sequence)."""
    rows = []
    for seq in sequences:
        padded = np.concatenate([np.full(order - 1, pad, dtype=np.int64), np.asarray(seq, dtype=np.int64)])
        view = np.lib.stride_tricks.sliding_window_view(padded, order)
        rows.append(view[1:])  # the first token (BOS) is given, never predicted
    return np.concatenate(rows)


def _grouped(codes: np.ndarray, counts: np.ndarray, discount: float) -> _Order:
    contexts_all = codes >> BITS
    contexts, starts = np.unique(contexts_all, return_index=True)
    totals = np.add.reduceat(counts, starts)
    types = np.diff(np.append(starts, len(codes)))
    return _Order(codes, counts, contexts, totals.astype(np.float64), types.astype(np.float64), discount)


def _discount(counts: np.ndarray) -> float:
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    # Kept inside (0, 1): a zero discount would give unseen tokens no probability at all.
    return float(np.clip(n1 / (n1 + 2 * n2), 0.05, 0.95)) if n1 and n2 else 0.5


class KneserNey:
    def __init__(self, order: int, vocab_size: int, pad_id: int = 0):
        if vocab_size > 1 << BITS or order * BITS > 63:
            raise ValueError("vocabulary or order too large for packed codes")
        self.order, self.vocab_size, self.pad = order, vocab_size, pad_id
        self.levels: list[_Order] = []

    def fit(self, sequences: Sequence[np.ndarray]) -> KneserNey:
        top = _windows(sequences, self.order, self.pad)
        codes, counts = np.unique(_pack(top), return_counts=True)
        levels = [_grouped(codes, counts.astype(np.int64), _discount(counts))]
        mask = (1 << (BITS * (self.order - 1))) - 1
        for _ in range(self.order - 1, 0, -1):
            # Continuation counts: in how many distinct contexts each shorter n-gram follows.
            suffixes = levels[-1].codes & mask
            codes, counts = np.unique(suffixes, return_counts=True)
            levels.append(_grouped(codes, counts.astype(np.int64), _discount(counts)))
            mask >>= BITS
        self.levels = levels[::-1]  # unigram first
        return self

    def log_probs(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """Natural-log probability of every predicted token (all but each sequence's first)."""
        windows = _windows(sequences, self.order, self.pad)
        prob = np.full(len(windows), 1.0 / self.vocab_size)
        for k, level in enumerate(self.levels, start=1):
            grams = _pack(windows[:, self.order - k :])
            contexts = grams >> BITS
            at = np.clip(np.searchsorted(level.contexts, contexts), 0, len(level.contexts) - 1)
            known = level.contexts[at] == contexts
            total = np.where(known, level.totals[at], 1.0)
            types = np.where(known, level.types[at], 0.0)
            where = np.clip(np.searchsorted(level.codes, grams), 0, len(level.codes) - 1)
            count = np.where(level.codes[where] == grams, level.counts[where], 0).astype(np.float64)
            mixed = np.maximum(count - level.discount, 0.0) / total + level.discount * types / total * prob
            prob = np.where(known, mixed, prob)
        return np.log(prob)
