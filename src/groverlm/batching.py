"""Batches for every model stage: [CLS] tokens [SEP] then [PAD], and windows over long sequences.

Reads and writes nothing; numpy only (callers turn arrays into tensors). Pretraining
(`masking.MLMData`), fine-tuning (`finetune.WindowedData`), embedding and scoring
(`embed.iter_batches`) all lay out their inputs with `wrap`; a sequence longer than the model
is cut by one of the two window rules below, each kept for what its stage needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def window_starts(n: int, size: int, stride: int) -> list[int]:
    """Fine-tuning's rule: the start of each window of `size` tokens over n tokens, every `stride`
    tokens, the last window ending at the end (so it may overlap its neighbour: every window is
    full, as in training); one window when n <= size.

    >>> window_starts(5, 8, 8), window_starts(10, 4, 4), window_starts(10, 4, 3)
    ([0], [0, 4, 6], [0, 3, 6])
    """
    if n <= size:
        return [0]
    starts = list(range(0, n - size, stride))
    return starts + [n - size]


def split_windows(ids: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Embedding's and scoring's rule: consecutive windows of at most `max_tokens` ids, the last
    possibly shorter (each token in exactly one window, so per-token values add up).

    >>> split_windows([5, 6, 7, 8, 9], 2)
    [[5, 6], [7, 8], [9]]
    """
    ids = list(ids)
    return [ids[i : i + max_tokens] for i in range(0, len(ids), max_tokens)] or [[]]


def wrap(pieces: Sequence[Sequence[int]], cls_id: int, sep_id: int, pad_id: int,
         pad_multiple: int = 1, max_width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token-id pieces (no special tokens) as one batch: ids (W, T) int64 with [CLS] first, [SEP]
    after the last token, then [PAD], and the attention mask (W, T) int64; T is the longest piece
    plus 2, rounded up to a multiple of `pad_multiple` but not past `max_width` (the model's
    positions: a model of 130 positions has no 136th for the padding to sit on).

    >>> ids, mask = wrap([[7, 8, 9], [5]], cls_id=2, sep_id=3, pad_id=0, pad_multiple=4)
    >>> ids.tolist()
    [[2, 7, 8, 9, 3, 0, 0, 0], [2, 5, 3, 0, 0, 0, 0, 0]]
    >>> mask.tolist()
    [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]
    >>> wrap([[7, 8, 9], [5]], cls_id=2, sep_id=3, pad_id=0, pad_multiple=4, max_width=6)[0].shape
    (2, 6)
    """
    need = max(len(p) for p in pieces) + 2
    width = -(-need // pad_multiple) * pad_multiple
    if max_width is not None:
        width = max(need, min(width, max_width))  # a piece too long for the model is not cut here
    ids = np.full((len(pieces), width), pad_id, dtype=np.int64)  # (W, T)
    mask = np.zeros((len(pieces), width), dtype=np.int64)  # (W, T)
    for row, p in enumerate(pieces):
        ids[row, 0] = cls_id
        ids[row, 1 : 1 + len(p)] = np.asarray(p, dtype=np.int64)
        ids[row, 1 + len(p)] = sep_id
        mask[row, : len(p) + 2] = 1
    return ids, mask
