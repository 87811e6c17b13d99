"""Pretraining stage, masking: choose the tokens a masked language model must predict.

Reads and writes nothing. GROVER's default selects 2.2% of the non-special tokens; 80% of those are
replaced by [MASK] and 20% by a random token (BERT's 15% with 80/10/10 is one option away). Every
sample keeps at least `min_per_sample` targets, so even a 20-token sample teaches something.
All randomness comes from an explicit `torch.Generator`, so a batch's mask is a function of its seed.
"""

from __future__ import annotations

import numpy as np
import torch

from groverlm.args import MaskingConfig  # torch-free: configs are read without torch
from groverlm.batching import wrap

IGNORE = -100  # label of positions without a target (the transformers / cross_entropy convention)


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, cfg: MaskingConfig, mask_id: int,
                random_ids: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked inputs and labels for a batch.

    input_ids: (B, T) int64; special: (B, T) bool, True where no target may be (special tokens and
    padding); random_ids: (R,) int64, the ids a random replacement draws from (the non-special
    vocabulary). Returns (inputs (B, T), labels (B, T)): labels hold the original id at each target
    and IGNORE elsewhere.

    >>> g = torch.Generator().manual_seed(0)
    >>> ids = torch.tensor([[2, 7, 8, 9, 3, 0]])
    >>> sp = torch.tensor([[True, False, False, False, True, True]])
    >>> x, y = mask_tokens(ids, sp, MaskingConfig(rate=0.01), 4, torch.arange(5, 10), g)
    >>> int((y != IGNORE).sum()), bool((y[sp] == IGNORE).all())  # one target, never a special
    (1, True)
    """
    raw = torch.rand(input_ids.shape, generator=generator)  # (B, T)
    u = raw.masked_fill(special, 2.0)  # never selected
    if cfg.isolated:
        # draw at p, then keep only the first of each run of drawn positions: a kept target's left
        # neighbour was not drawn and its right one, drawn or not, stays visible; p(1 - p) = rate.
        # The left neighbour's draw is read before specials are excluded, so the token after [CLS]
        # is kept at p(1 - p) too (else at p, twice the rate at 25%)
        p = (1.0 - (1.0 - 4.0 * cfg.rate) ** 0.5) / 2.0
        drawn = u < p  # (B, T)
        left = torch.zeros_like(drawn)
        left[:, 1:] = (raw < p)[:, :-1]
        selected = drawn & ~left
    else:
        selected = u < cfg.rate  # (B, T)
    if cfg.min_per_sample:
        eligible = (~special).sum(1)  # (B,)
        k = int(min(cfg.min_per_sample, input_ids.shape[1]))
        # the k positions with the smallest draws are the ones the rate would pick first
        low = torch.topk(u, k, dim=1, largest=False).indices  # (B, k)
        top = torch.zeros_like(selected).scatter_(1, low, True) & ~special  # (B, T)
        short = selected.sum(1) < torch.clamp(eligible, max=k)  # (B,)
        selected |= top & short[:, None]
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE))
    v = torch.rand(input_ids.shape, generator=generator)  # (B, T): what a target is shown as
    to_mask = selected & (v < cfg.mask_fraction)
    to_random = selected & (v >= cfg.mask_fraction) & (v < cfg.mask_fraction + cfg.random_fraction)
    pick = torch.randint(len(random_ids), input_ids.shape, generator=generator)  # (B, T)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, random_ids[pick], inputs)
    return inputs, labels


class MLMData:
    """Masked-LM batches over a corpus split (a `train.TrainData`): [CLS] tokens [SEP], padded to the
    longest sample of the batch (rounded up to `pad_multiple`, but not past `max_width`, the
    model's positions), then masked.

    split: anything with `lengths` (N,) and `split[i]` -> token ids (a `corpus.CorpusSplit`).
    random_ids: (R,) ids a random replacement draws from (the non-special tokens seen in training).
    """

    def __init__(self, split, tokenizer, cfg: MaskingConfig, random_ids: torch.Tensor,
                 pad_multiple: int = 8, max_width: int | None = None):
        self.split = split
        self.cfg = cfg
        self.lengths = split.lengths + 2  # (N,) with [CLS] and [SEP]
        self.cls, self.sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.pad, self.mask = tokenizer.pad_token_id, tokenizer.mask_token_id
        self.random_ids = random_ids
        self.pad_multiple = pad_multiple
        self.max_width = max_width

    def __len__(self) -> int:
        return len(self.lengths)

    def collate(self, indices, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask, labels: (B, T) int64 each."""
        seqs = [np.asarray(self.split[int(i)], dtype=np.int64) for i in indices]
        n = np.array([len(s) for s in seqs])  # (B,)
        ids, attention = wrap(seqs, self.cls, self.sep, self.pad, self.pad_multiple,
                           self.max_width)  # (B, T) each
        pos = np.arange(ids.shape[1])[None, :]
        content = (pos >= 1) & (pos <= n[:, None])  # (B, T): the sample's own tokens
        input_ids = torch.from_numpy(ids)
        inputs, labels = mask_tokens(input_ids, torch.from_numpy(~content), self.cfg, self.mask,
                                     self.random_ids, generator)
        return {"input_ids": inputs, "attention_mask": torch.from_numpy(attention),
                "labels": labels}
