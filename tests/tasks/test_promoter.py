"""Prom300: coordinates and strands, collapsing, the three shuffles, and the built task folder."""

from __future__ import annotations

import csv
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm.cli import main
from groverlm.fasta import reverse_complement
from groverlm.tasks.annotations import TSS
from groverlm.tasks.common import load_bpe_tokenizer, overlapping_pairs
from groverlm.tasks.gue import load_task
from groverlm.tasks.promoter import (
    Prom300Config,
    build_prom300,
    deepromoter_shuffle,
    dinucleotide_shuffle,
    prom300_examples,
    prom300_windows,
)

from .conftest import SIX


def dinucleotides(s):
    return Counter(s[i:i + 2] for i in range(len(s) - 1))


def test_windows_are_strand_aware(genome3_records):
    g = genome3_records
    cfg = Prom300Config(negatives="dinucleotide")
    ex, stats = prom300_examples(g, [TSS("chr2", 8000, "+"), TSS("chr2", 20000, "-")], cfg)
    plus, minus = [e for e in ex if e.label == 1]
    chr2 = g["chr2"].sequence()
    assert (plus.start, plus.end, plus.strand) == (8000 - 249, 8000 + 51, "+")
    assert plus.sequence == chr2[7751:8051] and plus.sequence[249] == chr2[8000]
    assert (minus.start, minus.end, minus.strand) == (20000 - 50, 20000 + 250, "-")
    assert minus.sequence == reverse_complement(chr2[19950:20250])
    assert minus.sequence[249] == reverse_complement(chr2[20000])  # the TSS base, complemented
    assert len(plus.sequence) == len(minus.sequence) == 300
    negs = [e for e in ex if e.label == 0]
    assert [(n.start, n.end, n.strand) for n in negs] == [(p.start, p.end, p.strand)
                                                          for p in (plus, minus)]
    assert stats["positives"] == 2


def test_collapse_same_strand_only():
    tss = [TSS("c", 1000, "+"), TSS("c", 1010, "+"), TSS("c", 1005, "-"), TSS("c", 1300, "+")]
    wins, collapsed = prom300_windows(tss, Prom300Config())
    assert collapsed == 1
    assert [(w[1], w[3]) for w in wins] == [(751, "+"), (1051, "+"), (955, "-")]
    wins, collapsed = prom300_windows(tss, Prom300Config(collapse="none"))
    assert len(wins) == 4 and collapsed == 0


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ACGT", min_size=0, max_size=80), st.integers(0, 2**31))
def test_dinucleotide_shuffle_keeps_counts(seq, seed):
    out = dinucleotide_shuffle(seq, np.random.default_rng(seed))
    assert len(out) == len(seq)
    assert dinucleotides(out) == dinucleotides(seq)
    if seq:
        assert out[0] == seq[0] and out[-1] == seq[-1]


def test_dinucleotide_shuffle_shuffles():
    seq = "ACGTTGCAAGCTTCGAGATCCATGGTACCA" * 5
    outs = {dinucleotide_shuffle(seq, np.random.default_rng(s)) for s in range(20)}
    assert len(outs) > 15


def test_deepromoter_keeps_eight_parts_in_place():
    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGT"), 300))
    out = deepromoter_shuffle(seq, rng)
    parts = [seq[i:i + 15] for i in range(0, 300, 15)]
    new = [out[i:i + 15] for i in range(0, 300, 15)]
    assert sorted(parts) == sorted(new)
    assert sum(a == b for a, b in zip(parts, new, strict=True)) >= 8
    assert out != seq


def test_token_shuffle_keeps_tokens(genome3_records, vocab):
    tok = load_bpe_tokenizer(vocab[1])
    tss = [TSS("chr3", 19000, "+"), TSS("chr3", 7000, "-")]
    ex, _ = prom300_examples(genome3_records, tss, Prom300Config(), tok)
    for pos, neg in zip(ex[::2], ex[1::2], strict=True):
        assert (pos.label, neg.label) == (1, 0)
        assert pos.tokens.split() == tok.encode(pos.sequence, add_special_tokens=False).tokens
        assert sorted(pos.tokens.split()) == sorted(neg.tokens.split())
        assert "".join(neg.tokens.split()) == neg.sequence != pos.sequence


def read_rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_cli_builds_task(tmp_path, genome3, tss_refseq, vocab, capsys):
    out = tmp_path / "prom300"
    args = ["tasks", "prom300", "--genome", str(genome3), "--tss", str(tss_refseq),
            "--vocab", str(vocab[1]), "--out", str(out)]
    assert main(args) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["tss"]["absent_chrom"] == 1  # chrX
    assert man["windows"]["collapsed"] == 1  # chr1:6000/6010 on +
    assert man["windows"]["skipped_edge_or_n"] == 1  # chr2:100
    assert man["split"]["method"] == "chrom"
    rows = {s: read_rows(out / f"{s}.csv") for s in ("train", "dev", "test")}
    assert list(rows["train"][0]) == ["sequence", "label", "chrom", "start", "end", "strand",
                                      "tokens"]
    all_rows = [r for v in rows.values() for r in v]
    assert len(all_rows) == 2 * man["windows"]["positives"] == 2 * 12
    assert Counter(r["label"] for r in all_rows) == {"0": 12, "1": 12}
    assert all(len(r["sequence"]) == 300 for r in all_rows)
    task = load_task(out)
    spl = task.splits
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert not set(spl[a].coords["chrom"]) & set(spl[b].coords["chrom"])
    assert main(args) == 2  # refuses to overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--negatives", "dinucleotide", "--seed", "1"]) == 0
    assert "tokens" not in read_rows(out / "train.csv")[0]


def test_block_split_has_no_overlaps(tmp_path, genome3, tss_refseq):
    out = tmp_path / "p"
    assert main(["tasks", "prom300", "--genome", str(genome3), "--tss", str(tss_refseq),
                 "--negatives", "deepromoter", "--out", str(out), "--split", "block",
                 "--split-block", "5000"]) == 0
    task = load_task(out)

    def examples(split):
        from groverlm.tasks.common import Example

        c = task.splits[split].coords
        return [Example("", 0, *row) for row in zip(c["chrom"], c["start"], c["end"],
                                                    c["strand"], strict=True)]

    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert overlapping_pairs(examples(a), examples(b)) == 0


def test_token_negatives_need_vocab(tmp_path, genome3, tss_refseq, capsys):
    assert main(["tasks", "prom300", "--genome", str(genome3), "--tss", str(tss_refseq),
                 "--out", str(tmp_path / "x")]) == 2
    assert "needs --vocab" in capsys.readouterr().err
    assert main(["tasks", "prom300", "--genome", str(genome3), "--tss", str(tss_refseq),
                 "--negatives", "dinucleotide", "--chrom", "chrQ", "--out",
                 str(tmp_path / "y")]) == 2
    assert "chrQ not in the genome" in capsys.readouterr().err


@pytest.mark.parametrize("negatives", ["dinucleotide", "deepromoter"])
def test_shuffles_are_seeded(genome3_records, negatives):
    tss = [TSS("chr3", 19000, "+")]
    a, _ = prom300_examples(genome3_records, tss, Prom300Config(negatives=negatives, seed=5))
    b, _ = prom300_examples(genome3_records, tss, Prom300Config(negatives=negatives, seed=5))
    c, _ = prom300_examples(genome3_records, tss, Prom300Config(negatives=negatives, seed=6))
    assert a == b and a[1].sequence != c[1].sequence


def test_each_record_is_read_once_for_its_windows(tmp_path, genome6, decoded):
    """The builder held the whole genome (hg38: 3.1 GB) to cut 300 bp around each TSS: now each
    record holding a TSS is decoded in turn and its windows alone kept (chrD, without one, is not
    decoded), and the task is the same whatever the records' order in the file."""
    six, ordered, tss = genome6
    cfg = Prom300Config(negatives="dinucleotide")
    build_prom300(six, tss, tmp_path / "six", cfg)
    assert decoded.names == list(SIX[:-1]) and decoded.most <= 2  # the one read, the one before
    build_prom300(ordered, tss, tmp_path / "sorted", cfg)
    for split in ("train", "dev", "test"):
        assert (tmp_path / "six" / f"{split}.csv").read_bytes() == \
            (tmp_path / "sorted" / f"{split}.csv").read_bytes()
