"""CTCF: JASPAR parsing, two-strand scoring against a naive scan, suppression, labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from groverlm.cli import main
from groverlm.errors import GroverError
from groverlm.fasta import Genome, Record, encode, reverse_complement
from groverlm.tasks import ctcf
from groverlm.tasks.ctcf import (
    CTCFConfig,
    Hit,
    build_ctcf,
    ctcf_examples,
    read_jaspar,
    scan_record,
    score_strands,
    suppress,
)
from groverlm.tasks.gue import load_task

from ..conftest import DATA, random_dna, write_fasta
from .conftest import SIX

JASPAR = """>MA_TEST\tToy
A  [ 10  0  0  1  8 ]
C  [  0 10  0  1  1 ]
G  [  0  0 10  1  0 ]
T  [  0  0  0  7  1 ]
"""


def toy_motif(tmp_path):
    path = tmp_path / "toy.jaspar"
    path.write_text(JASPAR)
    return read_jaspar(path)


def test_read_jaspar_layouts(tmp_path):
    m = toy_motif(tmp_path)
    assert m.name == "MA_TEST Toy" and len(m) == 5 and m.consensus() == "ACGTA"
    bare = tmp_path / "toy.pfm"  # rows in another order with letters, then bare rows
    bare.write_text("T [0 0 0 7 1]\nA [10 0 0 1 8]\nG [0 0 10 1 0]\nC [0 10 0 1 1]\n")
    np.testing.assert_array_equal(read_jaspar(bare).counts, m.counts)
    bare.write_text("10 0 0 1 8\n0 10 0 1 1\n0 0 10 1 0\n0 0 0 7 1\n")
    np.testing.assert_array_equal(read_jaspar(bare).counts, m.counts)
    real = DATA / "MA0139.1_CTCF.jaspar"
    if real.exists():
        ctcf = read_jaspar(real)
        assert len(ctcf) == 19 and ctcf.consensus() == "TGGCCACCAGGGGGCGCTA"


@pytest.mark.parametrize("text, line, msg", [
    (">m\nA [1 2]\nC [1 2 3]\nG [1 2]\nT [1 2]\n", 3, "columns"),
    (">m\nA [1 2]\nC [1 x]\n", 3, "matrix row"),
    (">m\nA [1 2]\nC [1 2]\nG [1 -2]\nT [1 2]\n", 4, "negative"),
    (">m\nA [1]\nC [1]\nG [1]\nT [1]\n>n\n", 6, "more than one"),
])
def test_jaspar_errors(tmp_path, text, line, msg):
    path = tmp_path / "m.jaspar"
    path.write_text(text)
    with pytest.raises(GroverError, match=msg) as err:
        read_jaspar(path)
    assert str(err.value).startswith(f"{path}:{line}:")
    path.write_text(">m\nA [1]\nC [1]\nG [1]\n")
    with pytest.raises(GroverError, match="4 rows"):
        read_jaspar(path)


def test_scores_match_naive_scan():
    rng = np.random.default_rng(0)
    pwm = rng.normal(size=(6, 4))
    seq = "".join(rng.choice(list("ACGT"), 300)) + "N" + "".join(rng.choice(list("ACGT"), 50))
    fwd, rev = score_strands(encode(seq), pwm)
    assert fwd.shape == rev.shape == (len(seq) - 5,)
    for i in range(len(seq) - 5):
        w = seq[i:i + 6]
        if "N" in w:
            assert fwd[i] < -1e8 and rev[i] < -1e8
            continue
        assert fwd[i] == pytest.approx(sum(pwm[j, "ACGT".index(b)] for j, b in enumerate(w)),
                                       abs=1e-4)
        rc = reverse_complement(w)
        assert rev[i] == pytest.approx(sum(pwm[j, "ACGT".index(b)] for j, b in enumerate(rc)),
                                       abs=1e-4)


def test_planted_hits_found_on_both_strands(tmp_path):
    m = toy_motif(tmp_path)
    seq = list("C" * 2000)  # poly-C scores low everywhere
    seq[300:305] = "ACGTA"
    seq[1200:1205] = reverse_complement("ACGTA")
    rec = Record("c", encode("".join(seq)))
    pwm = m.log_odds()
    perfect = scan_record(rec, pwm, pwm.max(1).sum() - 1e-3)
    assert [(h.start, h.strand) for h in perfect] == [(300, "+"), (1200, "-")]
    assert perfect[0].score == pytest.approx(pwm.max(1).sum(), abs=1e-4)
    assert perfect[0].score == pytest.approx(perfect[1].score)
    loose = scan_record(rec, pwm, CTCFConfig().cutoff(pwm))  # also ACGTC, one mismatch, at 1201
    assert {(h.start, h.strand) for h in perfect} < {(h.start, h.strand) for h in loose}


def test_the_scan_by_chunks_finds_the_hits_of_one_pass(tmp_path, monkeypatch, capsys):
    """scan_record scores a record chunk by chunk (for its bar over the genome's bases): motifs
    across a chunk's end are found, none twice, and the bar counts every base once."""
    m = toy_motif(tmp_path)
    pwm = m.log_odds()
    seq = list(random_dna(3000, 5))
    for at in (997, 1200, 1996):  # two across the 1,000-base chunks' ends
        seq[at:at + 5] = "ACGTA"
    seq[2997:] = "ACG"  # the motif's start, cut by the record's end
    records = [Record("c", encode("".join(seq))), Record("d", encode("ACGTA"))]
    thr = CTCFConfig().cutoff(pwm)
    whole = {r.name: score_strands(r.codes, pwm) for r in records}
    want = sorted((name, int(i), strand) for name, (f, r) in whole.items()
                  for strand, s in (("+", f), ("-", r)) for i in np.flatnonzero(s >= thr))
    monkeypatch.setattr(ctcf, "_CHUNK", 1000)
    bar = ctcf.tqdm.tqdm(unit="bp", unit_scale=True, desc="ctcf scan")
    hits = [h for r in records for h in scan_record(r, pwm, thr, bar)]
    bar.close()
    assert [(h.chrom, h.start, h.strand) for h in hits] == want
    assert {("c", 997, "+"), ("c", 1200, "+"), ("c", 1996, "+"), ("d", 0, "+")} <= set(want)
    last = capsys.readouterr().err.split("\r")[-1]
    assert last.startswith("ctcf scan: 3.00kbp ")  # 3,005 bases, each once


def test_suppress_keeps_best():
    hits = [Hit("c", 100, "+", 5.0), Hit("c", 150, "-", 7.0), Hit("c", 260, "+", 6.0),
            Hit("c", 400, "+", 1.0), Hit("d", 150, "+", 1.0)]
    kept = suppress(hits, 120)
    assert [(h.chrom, h.start) for h in kept] == [("c", 150), ("c", 400), ("d", 150)]


def test_labels_from_peaks(tmp_path):
    m = toy_motif(tmp_path)
    seq = list("C" * 4000)
    for p in (500, 1500, 2500):
        seq[p:p + 5] = "ACGTA"
    g = Genome([Record("c", encode("".join(seq)))])
    peaks = {"c": np.array([[400, 700], [1502, 1600]])}  # holds hit 500; clips hit 1500
    ex, stats = ctcf_examples(g.records.values(), m, peaks, CTCFConfig(window=100))
    assert [(e.start, e.end, e.label) for e in ex] == [(452, 552, 1), (1452, 1552, 0),
                                                       (2452, 2552, 0)]
    assert stats["fraction_bound"] == pytest.approx(1 / 3)
    assert all(e.sequence[48:53] == "ACGTA" for e in ex)  # motif centred
    ex, _ = ctcf_examples(g.records.values(), m, peaks, CTCFConfig(window=100, max_negative_ratio=1.0))
    assert sorted(e.label for e in ex) == [0, 1]
    # a hit on the - strand is read on its strand (the motif reads forward), or with orient
    # "genome" on the + strand
    seq[2500:2505] = reverse_complement("ACGTA")
    g = Genome([Record("c", encode("".join(seq)))])
    for orient in ("motif", "genome"):
        ex, _ = ctcf_examples(g.records.values(), m, peaks, CTCFConfig(window=100, orient=orient))
        minus = ex[-1]
        plain = g["c"].sequence(minus.start, minus.end)
        assert (minus.start, minus.strand) == (2452, "-" if orient == "motif" else "+")
        assert minus.sequence == (reverse_complement(plain) if orient == "motif" else plain)


def test_cli_build(tmp_path, capsys, caplog):
    rng = np.random.default_rng(1)
    chroms = {}
    for c in ("chr1", "chr2", "chr3"):
        s = list(random_dna(30000, hash(c) % 1000))
        for p in rng.choice(np.arange(500, 29000, 600), 20, replace=False):
            site = "ACGTA" if rng.random() < 0.5 else reverse_complement("ACGTA")
            s[p:p + 5] = site
        chroms[c] = "".join(s)
    genome = write_fasta(tmp_path / "g.fa", chroms)
    motif = tmp_path / "m.jaspar"
    motif.write_text(JASPAR)
    peaks = [tmp_path / "a.bed", tmp_path / "b.bed"]
    peaks[0].write_text("chr1\t0\t15000\nchr3\t0\t15000\n")
    peaks[1].write_text("chr2\t0\t15000\nchr9\t0\t100\n")
    out = tmp_path / "ctcf"
    caplog.set_level("INFO", logger="groverlm.tasks.ctcf")
    assert main(["tasks", "ctcf", "--genome", str(genome), "--motif", str(motif), "--peaks",
                 *map(str, peaks), "--out", str(out), "--window", "200",
                 "--threshold", "8"]) == 0
    said = capsys.readouterr().out + caplog.text
    assert said.count("threshold 8.00 bits") == 1, said  # once, not in the log and again on stdout
    man = json.loads((out / "manifest.json").read_text())
    assert man["hits"]["threshold_bits"] == 8.0
    assert man["motif"]["consensus"] == "ACGTA"
    task = load_task(out)
    for s in task.splits.values():
        c = s.coords
        for start, end, label in zip(c["start"], c["end"], s.labels, strict=True):
            assert end - start == 200
            motif_start = (start + end) // 2 - 5 // 2  # the window is centred on the motif
            assert label == int(motif_start + 5 <= 15000)
    assert 0 < man["hits"]["fraction_bound"] < 1


def test_user_inputs_that_used_to_mislead(tmp_path, capsys):
    """Review findings: peaks named unlike the genome (every hit silently unbound), a frequency
    matrix read as counts, a BOM before the header, --min-spacing 0 read as the default, and a
    task with one class written for every consumer to refuse."""
    m = toy_motif(tmp_path)
    bom = tmp_path / "bom.jaspar"
    bom.write_bytes(b"\xef\xbb\xbf" + JASPAR.encode())
    assert read_jaspar(bom).name == m.name
    freq = tmp_path / "freq.jaspar"
    freq.write_text(">f\nA [0.9 0 0]\nC [0.1 1 0]\nG [0 0 0.5]\nT [0 0 0.5]\n")
    with pytest.raises(GroverError, match="holds frequencies"):
        read_jaspar(freq)
    hits = [Hit("c", 100, "+", 5.0), Hit("c", 101, "-", 7.0)]
    assert len(suppress(hits, 0)) == 2
    seq = list("C" * 4000)
    for p in (500, 520, 2500):
        seq[p:p + 5] = "ACGTA"
    g = Genome([Record("c", encode("".join(seq)))])
    ex, stats = ctcf_examples(g.records.values(), m, {}, CTCFConfig(window=100, min_spacing=0))
    assert stats["hits_kept"] == 3  # not thinned to one window apart
    with pytest.raises(GroverError, match="--min-spacing must be 0 or more"):
        CTCFConfig(min_spacing=-1)
    seq[1500:1505] = "ACGTA"  # hits in three 1-kb blocks
    genome = write_fasta(tmp_path / "g.fa", {"chr1": "".join(seq)})
    motif = tmp_path / "m.jaspar"
    motif.write_text(JASPAR)
    nochr = tmp_path / "nochr.bed"
    nochr.write_text("1\t400\t700\n")
    base = ["tasks", "ctcf", "--genome", str(genome), "--motif", str(motif), "--window", "100",
            "--split", "block", "--split-block", "1000"]
    assert main([*base, "--peaks", str(nochr), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert f"{nochr}: nothing on a record of the genome (the file names 1; the genome chr1)" in err
    none_bound = tmp_path / "far.bed"
    none_bound.write_text("chr1\t3000\t3100\n")
    assert main([*base, "--peaks", str(none_bound), "--out", str(tmp_path / "b")]) == 2
    assert "every example of the ctcf task has label 0" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_scan_reads_one_record_at_a_time(tmp_path, genome6, decoded):
    """The builder held the whole genome while it scanned it (hg38: 3.1 GB): now each record is
    decoded, scanned and cut in turn, and the task is the same whatever the records' order in the
    file (windows in chromosome-name order, as before)."""
    six, ordered, _ = genome6
    motif = tmp_path / "m.jaspar"
    motif.write_text(JASPAR)
    peaks = tmp_path / "p.bed"
    peaks.write_text("".join(f"{c}\t0\t10000\n" for c in SIX))
    cfg = CTCFConfig(window=100, max_negative_ratio=1.0)
    build_ctcf(six, motif, [peaks], tmp_path / "six", cfg)
    assert decoded.names == list(SIX) and decoded.most <= 2  # the one read, the one before
    build_ctcf(ordered, motif, [peaks], tmp_path / "sorted", cfg)
    for split in ("train", "dev", "test"):
        assert (tmp_path / "six" / f"{split}.csv").read_bytes() == \
            (tmp_path / "sorted" / f"{split}.csv").read_bytes()
    assert json.loads((tmp_path / "six" / "manifest.json").read_text())["chroms"] == sorted(SIX)
    with pytest.raises(GroverError, match="--chrom chrZ not in the genome"):
        build_ctcf(six, motif, [peaks], tmp_path / "z", cfg, chroms=["chrA", "chrZ"])
