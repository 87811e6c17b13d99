"""Models: BERT presets, `BertConfig` overrides, and the one loader every later stage uses.

Reads and writes nothing itself. Models are stock `transformers` BERT classes: a pretrained model is
a `save_pretrained` folder holding a `BertForMaskedLM` and a `PreTrainedTokenizerFast` (ours, or the
published GROVER's), loadable by `AutoModelForMaskedLM` / `AutoTokenizer` with no custom code.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from groverlm.errors import GroverError

# Architecture presets; every other BertConfig field keeps its transformers default (GELU, dropout
# 0.1, 2 token types, layer norm eps 1e-12). Any field can still be overridden (`--set key=value`).
PRESETS: dict[str, dict[str, float]] = {
    # a CPU-sized model that learns context within minutes. Measured on chr20 (2-core CPU, masked
    # tokens of 600-cycle BPE): a small BERT at BERT's initializer_range 0.02 sits at the unigram
    # plateau for thousands of steps, in our loop and in a bare transformers one (2 layers of 128:
    # no progress in 3,000 steps; 4 layers of 256 at 0.02 and 0.06: none in 600 and 1,000), since
    # its attention and value paths start tiny and Adam grows them slowly; at 0.1 (~1/sqrt(hidden))
    # 2 layers of 128 left it after 1,500-3,000 steps (3-6 minutes). They also make a step ~5x
    # cheaper than 4 layers of 256. No dropout: a short run underfits. No attention
    # dropout in any case: with it, PyTorch's SDPA leaves its fused CPU kernel for the plain math
    # one, which made attention about 10 times slower (B=8, T=512, 4 heads).
    "tiny": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 4,
             "intermediate_size": 512, "max_position_embeddings": 512,
             "initializer_range": 0.1, "hidden_dropout_prob": 0.0,
             "attention_probs_dropout_prob": 0.0},
    # a small GPU model, for sweeps
    "small": {"num_hidden_layers": 6, "hidden_size": 512, "num_attention_heads": 8,
              "intermediate_size": 2048, "max_position_embeddings": 512},
    # GROVER's architecture (BERT-base): 12 layers, hidden 768, 12 heads, 512 positions
    "grover-base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
                    "intermediate_size": 3072, "max_position_embeddings": 512},
}
TASKS = ("mlm", "classification", "base")  # load_model's `task`: head on top of the encoder


def parse_overrides(items: Iterable[str], option: str = "--set") -> dict[str, Any]:
    """'key=value' strings -> dict; values are read as JSON (numbers, true/false, null), else kept
    as strings. Nothing is evaluated.

    >>> parse_overrides(["num_hidden_layers=2", "hidden_act=gelu", "hidden_dropout_prob=0.0"])
    {'num_hidden_layers': 2, 'hidden_act': 'gelu', 'hidden_dropout_prob': 0.0}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GroverError(f"{option} {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def build_config(preset: str, vocab_size: int, overrides: Mapping[str, Any] | None = None,
                 pad_token_id: int = 0):
    """A `BertConfig` from a preset, the tokenizer's vocabulary size and field overrides.

    Unknown fields and values of the wrong type are GroverErrors (a typo must not be silently
    ignored, as BertConfig would do).
    """
    from transformers import BertConfig

    if preset not in PRESETS:
        raise GroverError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    defaults = BertConfig().to_dict()
    fields: dict[str, Any] = {**PRESETS[preset], "vocab_size": vocab_size,
                              "pad_token_id": pad_token_id}
    for key, value in (overrides or {}).items():
        if key not in defaults:
            raise GroverError(f"--set {key}: not a BertConfig field")
        old = defaults[key]
        if isinstance(old, bool) and not isinstance(value, bool) or (
                isinstance(old, int) and not isinstance(old, bool) and (
                    not isinstance(value, int) or isinstance(value, bool))) or (
                isinstance(old, float) and not isinstance(value, int | float)):
            raise GroverError(f"--set {key}={value!r}: expected a {type(old).__name__}")
        fields[key] = value
    cfg = BertConfig(**fields)
    if cfg.hidden_size % cfg.num_attention_heads:
        raise GroverError(f"hidden_size {cfg.hidden_size} is not a multiple of "
                          f"num_attention_heads {cfg.num_attention_heads}")
    return cfg


def new_mlm_model(config, seed: int = 0):
    """A randomly initialised `BertForMaskedLM` (seeded) with PyTorch's SDPA attention."""
    import torch
    from transformers import BertForMaskedLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BertForMaskedLM._from_config(config, attn_implementation="sdpa")


def _check_folder(path: str | Path, what: str, files: tuple[str, ...]) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise GroverError(f"no such {what} folder", path)
    if not any((path / f).exists() for f in files):
        raise GroverError(f"not a {what} folder (no {' or '.join(files)})", path)
    return path


def load_tokenizer(path: str | Path):
    """The `PreTrainedTokenizerFast` of a tokenizer or model folder (ours or the published GROVER)."""
    from transformers import AutoTokenizer

    path = _check_folder(path, "tokenizer", ("tokenizer.json", "tokenizer_config.json"))
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise GroverError(f"cannot load the tokenizer: {err}", path) from None
    if not tok.is_fast:
        raise GroverError("the tokenizer is not a fast (tokenizers-backed) tokenizer", path)
    if tok.mask_token_id is None or tok.pad_token_id is None:
        raise GroverError("the tokenizer has no [MASK] or [PAD] token", path)
    return tok


def load_model(path: str | Path, task: str = "mlm", **kwargs: Any):
    """A model folder as the stock transformers class for `task`.

    task: "mlm" (BertForMaskedLM), "classification" (BertForSequenceClassification, pass
    `num_labels`; the head is new when loading a pretrained MLM), "base" (BertModel). Extra keyword
    arguments go to `from_pretrained`. Attention runs through PyTorch's SDPA.
    """
    from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

    classes = {"mlm": AutoModelForMaskedLM, "classification": AutoModelForSequenceClassification,
               "base": AutoModel}
    if task not in classes:
        raise GroverError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    path = _check_folder(path, "model", ("config.json",))
    kwargs.setdefault("attn_implementation", "sdpa")
    try:
        return classes[task].from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as err:
        raise GroverError(f"cannot load the model: {err}", path) from None


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars or load reports inside (ours report progress themselves)."""
    from transformers.utils import logging as hf_logging

    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def save_model(model, tokenizer, folder: str | Path) -> None:
    """`save_pretrained` of the model and (when given) its tokenizer, quietly. Write into a
    temporary folder and rename it: this does not replace files atomically."""
    with quiet_transformers():
        model.save_pretrained(str(folder))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder))


def count_parameters(model, embeddings: bool = True) -> int:
    """Parameters of a model (tied weights once); without the embedding tables when asked."""
    seen, n = set(), 0
    for name, p in model.named_parameters():
        if id(p) in seen or (not embeddings and "embeddings" in name):
            continue
        seen.add(id(p))
        n += p.numel()
    return n
