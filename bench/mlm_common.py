"""Shared by bench/mlm.py and bench/gpu.py: model FLOPs per token, dense bf16 peaks of GPUs, and
random token samples. Reads and writes nothing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from groverlm.bpe.merges import NUM_SPECIAL, SPECIAL_TOKENS

# the special-token ids of an exported BPE vocabulary, for batches of random tokens (ids from
# NUM_SPECIAL up) without a tokenizer folder
SPECIAL_IDS = SimpleNamespace(**{f"{t.strip('[]').lower()}_token_id": i
                                 for i, t in enumerate(SPECIAL_TOKENS)})

# dense bf16 tensor-core peaks (FLOP/s, no sparsity) by device-name fragment; the longest fragment
# found in the name wins, so an "H100 PCIe" is not taken for an SXM card
PEAK_BF16 = {"H200": 989e12, "H200 NVL": 835e12, "H100": 989e12, "H100 PCIe": 756e12,
             "H100 NVL": 835e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12,
             "4090": 165e12}

FLOPS_FORMULA = ("6 x encoder weights (layers x (4 h^2 + 2 h ffn)) + 12 x layers x h x seq "
                 "(attention scores and weighted values) + 6 x (h^2 + h V) x mask rate (the "
                 "vocabulary head runs on the targets only); forward and backward, PaLM's accounting")


def device_peak(name: str) -> float | None:
    """Dense bf16 peak (FLOP/s) of a device named `name`, or None when unknown.

    >>> device_peak("NVIDIA H100 80GB HBM3") / 1e12, device_peak("NVIDIA H100 PCIe") / 1e12
    (989.0, 756.0)
    """
    found = [k for k in PEAK_BF16 if k in name]
    return PEAK_BF16[max(found, key=len)] if found else None


def flops_per_token(config, seq: float, mask_rate: float) -> float:
    """Training FLOPs per token (see FLOPS_FORMULA); `seq` is the attended length, [CLS] and [SEP]
    included. Biases, LayerNorms and embeddings lookups are left out, as in PaLM's MFU.

    >>> from types import SimpleNamespace as C  # BERT-base at 512 positions, GROVER's 2.2% targets
    >>> round(flops_per_token(C(hidden_size=768, num_hidden_layers=12, intermediate_size=3072,
    ...                         vocab_size=609), 512, 0.022) / 1e6, 1)
    566.4
    """
    h, layers, v = config.hidden_size, config.num_hidden_layers, config.vocab_size
    encoder = layers * (4 * h * h + 2 * h * config.intermediate_size)
    head = h * h + h * v
    return 6 * encoder + 12 * layers * h * seq + 6 * head * mask_rate


class RandomSplit:
    """Random token samples (a `corpus.CorpusSplit` stand-in): GROVER's length mix (half 510, half
    20-510), or all `seq` long."""

    def __init__(self, n: int, vocab: int, seq: int | None, seed: int = 0):
        rng = np.random.default_rng(seed)
        if seq:
            self.lengths = np.full(n, seq)
        else:
            self.lengths = np.where(rng.random(n) < 0.5, 510, rng.integers(20, 511, n))
        self._tokens = [rng.integers(NUM_SPECIAL, vocab, size=k).astype(np.uint16) for k in self.lengths]

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return self._tokens[i]
