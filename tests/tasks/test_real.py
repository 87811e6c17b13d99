"""The three tasks built from the real chr20 data: leak-free splits and biological sanity."""

from __future__ import annotations

from collections import Counter

import pytest

from groverlm.tasks.common import SPLITS, Example, overlapping_pairs
from groverlm.tasks.ctcf import CTCFConfig, build_ctcf
from groverlm.tasks.gue import load_task
from groverlm.tasks.promoter import Prom300Config, build_prom300
from groverlm.tasks.promscan import PromScanConfig, build_promscan

from ..conftest import DATA

CELLS = ("GM12878", "K562", "HeLa")


def examples(task, split):
    c = task.splits[split].coords
    return [Example("", 0, *row) for row in zip(c["chrom"], c["start"], c["end"], c["strand"],
                                                strict=True)]


def assert_leak_free(task):
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert overlapping_pairs(examples(task, a), examples(task, b)) == 0, (a, b)


@pytest.fixture(scope="module")
def data():
    need = [DATA / "hg19_chr20.fa.gz", DATA / "hg19_refseq_tss.tsv.gz",
            DATA / "MA0139.1_CTCF.jaspar"] + [DATA / f"ctcf_chipseq_peaks_{c}_chr20.bed"
                                              for c in CELLS]
    if not all(p.exists() for p in need):
        pytest.skip(f"real data not found in {DATA}")
    return DATA


def test_prom300_chr20(data, tmp_path):
    man = build_prom300(data / "hg19_chr20.fa.gz", data / "hg19_refseq_tss.tsv.gz",
                        tmp_path / "p", Prom300Config(negatives="dinucleotide"))
    assert man["tss"]["kept"] == 889  # the README's count of RefSeq TSSs on chr20
    assert man["split"]["method"] == "block"
    task = load_task(tmp_path / "p")
    assert_leak_free(task)
    pos = [s for sp in SPLITS for s, y in zip(task.splits[sp].sequences, task.splits[sp].labels,
                                              strict=True) if y == 1]
    # the TSS base (index 249) is the initiator's purine far more often than chance
    first = Counter(s[249] for s in pos)
    assert (first["A"] + first["G"]) / len(pos) > 0.6
    cpg = sum(s.count("CG") for s in pos) / sum(len(s) - 1 for s in pos)
    assert cpg > 0.03  # promoters are CpG-rich (the genome-wide CG dinucleotide rate is ~1%)


def test_promscan_chr20(data, tmp_path):
    build_promscan(data / "hg19_chr20.fa.gz", data / "hg19_refseq_tss.tsv.gz", tmp_path / "s",
                   PromScanConfig())
    task = load_task(tmp_path / "s")
    assert_leak_free(task)
    n = sum(len(task.splits[s]) for s in SPLITS)
    pos = sum(int(task.splits[s].labels.sum()) for s in SPLITS)
    assert 0.1 < pos / n < 0.2


def test_ctcf_chr20(data, tmp_path):
    man = build_ctcf(data / "hg19_chr20.fa.gz", data / "MA0139.1_CTCF.jaspar",
                     [data / f"ctcf_chipseq_peaks_{c}_chr20.bed" for c in CELLS], tmp_path / "c",
                     CTCFConfig())
    task = load_task(tmp_path / "c")
    assert_leak_free(task)
    # strong motif hits are enriched in peaks: peaks cover ~1.3% of chr20 (1,856 merged peaks of
    # ~420 bp) but hold far more than 1.3% of the hits
    assert 0.05 < man["hits"]["fraction_bound"] < 0.5
    assert man["motif"]["consensus"] == "TGGCCACCAGGGGGCGCTA"
