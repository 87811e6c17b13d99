"""Tiny real inputs for the embedding and analysis tests: a BPE vocabulary trained on a small random
genome with repeats, and randomly initialised tiny BERTs saved with that vocabulary's tokenizer."""

from __future__ import annotations

from pathlib import Path

from ..conftest import random_dna, write_fasta

REPEAT = "AGGCTGAGGCAGGAGAATCG"  # an Alu-like unit: gives the vocabulary long tokens


def make_genome(path: Path) -> Path:
    """Two records (~70 kbp) with repeats, an N run and a GC-rich stretch."""
    gc_rich = random_dna(3000, 7, alphabet="GGCCAT")
    return write_fasta(path, {
        "chrA": random_dna(25000, 1) + REPEAT * 60 + "N" * 50 + random_dna(12000, 2) + gc_rich
        + random_dna(8000, 3),
        "chrB": random_dna(20000, 4) + REPEAT * 40 + random_dna(5000, 5, alphabet="AAAT"),
    })


def make_vocab(tmp: Path, merges: int = 120) -> tuple[Path, Path]:
    """(genome FASTA, `bpe export` folder) built with the project's own BPE stage."""
    from groverlm.bpe.export import export_vocab
    from groverlm.bpe.train import write_training

    genome = make_genome(tmp / "genome.fa")
    write_training(genome, tmp / "bpe", merges, None, None, False, progress=False)
    export_vocab(tmp / "bpe", merges, tmp / "vocab")
    return genome, tmp / "vocab"


def make_model(vocab: Path, out: Path, seed: int = 0, positions: int = 64) -> Path:
    """A random `BertForMaskedLM` (2 layers, hidden 32) saved with the vocabulary's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tok = AutoTokenizer.from_pretrained(str(vocab))
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=positions, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = BertForMaskedLM(cfg)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
