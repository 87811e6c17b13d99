"""Markov-chain synthetic DNA with the k-mer statistics of a real genome (for genome-scale runs)."""

from __future__ import annotations

import numpy as np
from numba import njit


def transition_table(records, order: int) -> np.ndarray:
    """(4**order, 4) cumulative next-base probabilities estimated from the records' contigs."""
    counts = np.ones((4**order, 4), dtype=np.float64)  # add-one: every state can continue
    for rec in records:
        for s, e in rec.contigs(min_length=order + 1):
            c = rec.codes[s:e].astype(np.int64)
            state = np.zeros(c.size - order, dtype=np.int64)
            for j in range(order):
                state = state * 4 + c[j : c.size - order + j]
            np.add.at(counts, (state, c[order:]), 1)
    probs = counts / counts.sum(axis=1, keepdims=True)
    return np.cumsum(probs, axis=1)


@njit(cache=True)
def _walk(cum, n, order, seed):
    np.random.seed(seed)
    out = np.empty(n, dtype=np.uint8)
    mask = 4**order - 1
    state = 0
    for i in range(n):
        u = np.random.random()
        b = 0
        while b < 3 and u > cum[state, b]:
            b += 1
        out[i] = b
        state = ((state << 2) | b) & mask
    return out


def markov_chain(records, n: int, order: int = 5, pieces: int = 1, seed: int = 0):
    """Yield `pieces` uint8 code arrays totalling n bases."""
    cum = transition_table(records, order)
    size = n // pieces
    for i in range(pieces):
        yield _walk(cum, size if i < pieces - 1 else n - size * (pieces - 1), order, seed + i)
