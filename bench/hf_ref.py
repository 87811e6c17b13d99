"""Reference: HF tokenizers' BpeTrainer on the same words, for parity checks and timing."""

from __future__ import annotations

import json

from tokenizers import Tokenizer, models, trainers


def hf_merges(words: list[str], merges: int) -> list[tuple[str, str]]:
    """Train HF's BpeTrainer on `words` (each one word) and return its merge list."""
    tok = Tokenizer(models.BPE())
    # alphabet A,C,G,T gets ids 0-3 as in our trainer; vocab_size counts it
    trainer = trainers.BpeTrainer(vocab_size=4 + merges, special_tokens=[], show_progress=False,
                                  min_frequency=0)
    tok.train_from_iterator(words, trainer=trainer)
    raw = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in raw]
