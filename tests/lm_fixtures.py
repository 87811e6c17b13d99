"""Fixtures for the corpus and pretraining tests: a tiny genome, its BPE vocabulary and corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from groverlm.bpe.export import export_vocab
from groverlm.bpe.train import write_training
from groverlm.corpus import CorpusConfig, Region, write_corpus

from .conftest import random_dna, write_fasta

CYCLES = 80

# a small model for tests: 2 layers, hidden 32
TINY_SET = ["num_hidden_layers=2", "hidden_size=32", "num_attention_heads=2",
            "intermediate_size=64"]
TINY = {k: int(v) for k, v in (s.split("=") for s in TINY_SET)}


def make_genome(folder: Path) -> Path:
    """Two records; repeats (long tokens), an N run and a short contig exercise the edges."""
    rep = "AGGCTGAGGCAGGAGAATCG" * 30
    return write_fasta(folder / "g.fa", {
        "chrA": random_dna(24000, 1) + rep + "NNNNN" + random_dna(12000, 2).lower() + "N"
        + random_dna(15, 4),
        "chrB": random_dna(16000, 3) + rep,
    })


def make_vocab(folder: Path) -> tuple[Path, Path, Path]:
    """(genome, bpe train folder with tokens/, exported vocabulary) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    genome = make_genome(folder)
    write_training(genome, folder / "bpe", CYCLES, save_tokens_at=CYCLES)
    export_vocab(folder / "bpe", CYCLES, folder / "vocab")
    return genome, folder / "bpe", folder / "vocab"


def bare_tokenizer_copy(vocab: Path, dest: Path) -> Path:
    """The tokenizer files alone (no manifest): nothing points at a saved segmentation."""
    dest.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(vocab / name, dest / name)
    return dest


def make_corpus(folder: Path, **cfg) -> Path:
    """A corpus of short samples (so batches are quick) with chrB:10000-16600 held out."""
    genome, _, vocab = make_vocab(folder)
    cfg = {"max_tokens": 60, "min_tokens": 8, "holdout": (Region("chrB", 10000, 16600),), **cfg}
    write_corpus(vocab, genome, folder / "corpus", CorpusConfig(**cfg))
    return folder / "corpus"


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
