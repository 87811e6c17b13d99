"""PromScan: tiling, labels, orientation, ambiguity and the built task."""

from __future__ import annotations

import json

from groverlm.cli import main
from groverlm.fasta import reverse_complement
from groverlm.tasks.annotations import TSS
from groverlm.tasks.gue import load_task
from groverlm.tasks.promscan import PromScanConfig, build_promscan, promscan_examples


def test_offsets():
    assert PromScanConfig().offsets() == list(range(-4500, 4000, 1000))
    assert PromScanConfig(window=1000, region=3000, stride=500).offsets() == [-1500, -1000,
                                                                               -500, 0, 500]
    for cfg in (PromScanConfig(), PromScanConfig(window=101, region=1000, stride=37)):
        offs = cfg.offsets()
        assert -(cfg.window // 2) in offs  # one window centred on the TSS
        assert min(offs) >= -(cfg.region // 2) and max(offs) + cfg.window <= cfg.region // 2 + 1


def test_one_positive_per_isolated_tss_and_strands(genome3_records):
    g = genome3_records
    tss = [TSS("chr3", 19000, "+"), TSS("chr2", 20000, "-")]
    ex, stats = promscan_examples(g, tss, PromScanConfig())
    assert stats["positives"] == 2 and stats["negatives"] == 16
    pos = {e.strand: e for e in ex if e.label == 1}
    assert (pos["+"].start, pos["+"].end) == (18500, 19500)
    assert pos["+"].sequence[500] == g["chr3"].sequence(19000, 19001)
    assert (pos["-"].start, pos["-"].end) == (19501, 20501)
    assert pos["-"].sequence == reverse_complement(g["chr2"].sequence(19501, 20501))
    assert pos["-"].sequence[500] == reverse_complement(g["chr2"].sequence(20000, 20001))
    for e in ex:
        assert len(e.sequence) == 1000
        near = [t for t in tss if t.chrom == e.chrom and e.start <= t.pos < e.end]
        assert e.label == int(bool(near))


def test_neighbours_and_ambiguity(genome3_records):
    # a second + TSS 2 kb downstream makes a shifted window positive; a - TSS inside a window of
    # the + TSS makes that window ambiguous (dropped)
    tss = [TSS("chr2", 20000, "+"), TSS("chr2", 22000, "+"), TSS("chr2", 17200, "-")]
    ex, stats = promscan_examples(genome3_records, tss, PromScanConfig())
    plus = {(e.start, e.end): e.label for e in ex if e.strand == "+"}
    assert plus[(21500, 22500)] == 1 and plus[(19500, 20500)] == 1
    assert (16500, 17500) not in plus  # holds the - TSS only
    assert stats["ambiguous"] >= 1
    assert len({(e.chrom, e.start, e.end, e.strand) for e in ex}) == len(ex)  # no duplicates
    # windows are half-open: a TSS at a window's end is outside it, at its start inside
    ex, _ = promscan_examples(genome3_records, [TSS("chr2", 20000, "+"), TSS("chr2", 23500, "+")],
                              PromScanConfig())
    plus = {(e.start, e.end): e.label for e in ex}
    assert plus[(22500, 23500)] == 0 and plus[(23500, 24500)] == 1


def test_cli_build(tmp_path, genome3, tss_refseq):
    out = tmp_path / "ps"
    assert main(["tasks", "promscan", "--genome", str(genome3), "--tss", str(tss_refseq),
                 "--out", str(out), "--split-block", "5000", "--split", "block"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["windows"]["skipped_edge_or_n"] >= 1  # N run near chr1:30000, chr2 start
    task = load_task(out)
    n = sum(len(s) for s in task.splits.values())
    pos = sum(int(s.labels.sum()) for s in task.splits.values())
    assert 0.08 < pos / n < 0.3  # unbalanced, about one in nine
    assert task.label_map == {"0": 0, "1": 1}


def test_chrom_filter(tmp_path, genome3, tss_refseq, capsys):
    out = tmp_path / "ps"
    args = ["tasks", "promscan", "--genome", str(genome3), "--tss", str(tss_refseq), "--out",
            str(out), "--chrom", "chr1,chr3", "--split-block", "5000"]
    # seed 0's blocks leave the test split without a TSS window: refused, not an MCC of 0 later
    assert main(args) == 2
    assert "the test split of the promscan task holds only label 0" in capsys.readouterr().err
    assert not (out / "manifest.json").exists()
    assert main([*args, "--seed", "1"]) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["chroms"] == ["chr1", "chr3"] and man["split"]["method"] == "block"
    assert man["tss"]["absent_chrom"] == 5  # chr2 (4) and chrX (1)
    task = load_task(out)
    assert {c for s in task.splits.values() for c in s.coords["chrom"]} == {"chr1", "chr3"}


def test_each_record_is_read_once_for_its_windows(tmp_path, genome6, decoded):
    """As Prom300: the TSSs' tiled 10-kb spans alone, a record at a time, in any file order."""
    six, ordered, tss = genome6
    build_promscan(six, tss, tmp_path / "six", PromScanConfig(), chroms=["chrA", "chrB", "chrC",
                                                                         "chrD", "chrE"])
    assert decoded.names == ["chrC", "chrA", "chrB", "chrE"] and decoded.most <= 2  # not chrF
    build_promscan(ordered, tss, tmp_path / "sorted", PromScanConfig(),
                   chroms=["chrE", "chrD", "chrC", "chrB", "chrA"])
    for split in ("train", "dev", "test"):
        assert (tmp_path / "six" / f"{split}.csv").read_bytes() == \
            (tmp_path / "sorted" / f"{split}.csv").read_bytes()
