"""The model learns sequence context: a short CPU pretraining on real chr20 at a fixed seed ends
clearly above the unigram baseline on held-out DNA.

A quality threshold at a fixed seed, not a timing; the thresholds leave room for platform noise
below the measured run (see the test's docstring).
"""

from __future__ import annotations

import pytest

from groverlm.bpe.export import export_vocab
from groverlm.bpe.train import write_training
from groverlm.corpus import CorpusConfig, Region, write_corpus
from groverlm.fasta import iter_records
from groverlm.pretrain import ModelConfig, pretrain
from groverlm.train import TrainConfig

from .conftest import write_fasta

START, END = 30_000_000, 33_000_000  # 3 Mbp of chr20 without N runs; the last 600 kb held out


@pytest.fixture(scope="module")
def chr20_corpus(tmp_path_factory):
    from .conftest import CHR20

    if not CHR20.exists():
        pytest.skip(f"real data not found at {CHR20}")
    folder = tmp_path_factory.mktemp("learning")
    record = next(iter_records(CHR20))
    genome = write_fasta(folder / "slice.fa", {"chr20": record.sequence(START, END)})
    write_training(genome, folder / "bpe", 200, save_tokens_at=200)
    export_vocab(folder / "bpe", 200, folder / "vocab")
    cfg = CorpusConfig(max_tokens=62, min_tokens=20,
                       holdout=(Region("chr20", 2_400_000, END - START),))
    write_corpus(folder / "vocab", genome, folder / "corpus", cfg)
    return folder / "corpus"


@pytest.mark.slow
def test_short_pretraining_on_chr20_learns_context(chr20_corpus, tmp_path):
    """tiny (DeBERTa-v2 with a neighbour convolution), 600 steps of 32 samples of <= 62 tokens
    (about 1 M tokens), 15% masking, lr 3e-3, seed 0; held-out targets isolated (2.2%) as in
    every evaluation. Measured (2-core CPU): accuracy 7.42% against unigram 2.32% and the context
    table's 16.3% (a 200-cycle vocabulary on 2.4 Mbp: short tokens, a sharp table); 5.76% with
    `tiny`'s GELU and 512-wide FFN before 2026-12-04."""
    cfg = ModelConfig(preset="tiny", mask_rate=0.15, eval_samples=0, final_eval_samples=0)
    tcfg = TrainConfig(max_steps=600, batch_size=32, lr=3e-3, warmup_steps=60, eval_every=0,
                       save_every=0, seed=0, threads=2)
    ev = pretrain(chr20_corpus, tmp_path / "model", cfg, tcfg, progress=False)
    acc, unigram, context = ev["mlm_accuracy"], ev["unigram_accuracy"], ev["context_accuracy"]
    measured = f"accuracy {acc:.4f}, unigram {unigram:.4f}, context table {context:.4f}"
    assert ev["masked_tokens"] > 2000, measured
    assert acc > 2 * unigram, measured
    assert acc > 0.25 * context, measured
