"""Fixtures for the task builders: a tiny three-chromosome genome, TSSs and a tiny vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest

from groverlm.fasta import Genome

from ..conftest import random_dna, write_fasta

# TSSs (0-based) of the tiny genome: isolated ones, a close pair on one strand, a bidirectional pair
TSS = [
    ("chr1", 6000, "+"), ("chr1", 6010, "+"), ("chr1", 15000, "-"), ("chr1", 24000, "+"),
    ("chr1", 24100, "-"), ("chr1", 40000, "-"), ("chr2", 8000, "+"), ("chr2", 20000, "-"),
    ("chr2", 33000, "+"), ("chr3", 7000, "-"), ("chr3", 19000, "+"), ("chr3", 30000, "+"),
    ("chr1", 33000, "+"),  # its promscan region holds the N run at 30000-30050
    ("chr2", 100, "+"),  # too close to the record start for a prom300 window
    ("chrX", 5000, "+"),  # not in the genome: skipped with a count
]


@pytest.fixture(scope="session")
def genome3(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("genome3")
    return write_fasta(tmp / "g.fa", {
        "chr1": random_dna(30000, 11) + "N" * 50 + random_dna(20000, 12),
        "chr2": random_dna(45000, 13),
        "chr3": random_dna(40000, 14),
    })


@pytest.fixture(scope="session")
def genome3_records(genome3) -> Genome:
    return Genome.read(genome3)


@pytest.fixture(scope="session")
def tss_refseq(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tss") / "tss.tsv"
    path.write_text("".join(f"{c}\t{p}\t{s}\n" for c, p, s in TSS))
    return path


@pytest.fixture(scope="session")
def vocab(tmp_path_factory, genome3) -> tuple[Path, Path]:
    """(bpe train folder with tokens/ at 120 cycles, exported tokenizer folder)."""
    from groverlm.bpe.export import export_vocab
    from groverlm.bpe.train import write_training

    tmp = tmp_path_factory.mktemp("vocab")
    write_training(genome3, tmp / "bpe", 120, save_tokens_at=120)
    export_vocab(tmp / "bpe", 120, tmp / "voc")
    return tmp / "bpe", tmp / "voc"


SIX = ("chrC", "chrA", "chrF", "chrB", "chrE", "chrD")  # a genome's records, not in sorted order


@pytest.fixture(scope="session")
def genome6(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(six records of 20 kbp in SIX's order, the same records sorted by name, TSSs on all but
    the last, chrD): the builders must read each record once, in the file's order, and make the
    same task whatever that order."""
    tmp = tmp_path_factory.mktemp("genome6")
    seqs = {c: random_dna(20000, 30 + i) for i, c in enumerate(SIX)}
    tss = tmp / "tss.tsv"
    tss.write_text("".join(f"{c}\t{p}\t{s}\n" for c in SIX[:-1]
                           for p, s in ((6000, "+"), (9000, "-"), (13000, "+"), (16000, "-"))))
    return (write_fasta(tmp / "six.fa", seqs), write_fasta(tmp / "sorted.fa", dict(sorted(seqs.items()))),
            tss)
