"""TSS and BED readers: three formats give the same 0-based TSSs; errors name file and line."""

from __future__ import annotations

import gzip
from collections import Counter

import numpy as np
import pytest

from groverlm.errors import GroverError
from groverlm.tasks.annotations import (
    TSS,
    contained,
    filter_tss,
    merge_intervals,
    read_bed_intervals,
    read_tss,
)

from ..conftest import DATA

# (chrom, 0-based TSS, strand)
WANT = [TSS("chr1", 100, "+"), TSS("chr1", 250, "-"), TSS("chr2", 0, "+")]


def write_all_formats(tmp_path):
    refseq = tmp_path / "refseq.tsv.gz"
    with gzip.open(refseq, "wt") as fh:
        fh.write("".join(f"{t.chrom}\t{t.pos}\t{t.strand}\n" for t in WANT))
    gencode = tmp_path / "gencode.tsv"
    gencode.write_text("chrom\tstart\tend\tstrand\tgene_name\tgene_type\n" + "".join(
        f"{t.chrom}\t{t.pos + 1}\t{t.pos + 2}\t{t.strand}\tG{i}\tprotein_coding\n"
        for i, t in enumerate(WANT)))
    bed = tmp_path / "genes.bed"  # gene bodies: the TSS is start on +, end - 1 on -
    bed.write_text("track name=genes\n# a comment\n" + "".join(
        f"{t.chrom}\t{t.pos if t.strand == '+' else t.pos - 30}\t"
        f"{t.pos + 40 if t.strand == '+' else t.pos + 1}\tg{i}\t0\t{t.strand}\n"
        for i, t in enumerate(WANT)))
    return refseq, gencode, bed


def test_three_formats_agree(tmp_path):
    for path, fmt in zip(write_all_formats(tmp_path), ["refseq", "gencode", "bed"], strict=True):
        got, detected = read_tss(path)
        assert detected == fmt
        assert got == WANT, fmt
        assert read_tss(path, fmt)[0] == WANT


def test_filter_counts_and_bounds(tmp_path):
    tss = WANT + [WANT[0], TSS("chrZ", 5, "+")]
    kept, stats = filter_tss(tss, {"chr1": 300, "chr2": 10})
    assert kept == WANT
    assert stats == {"read": 5, "absent_chrom": 1, "duplicates": 1, "kept": 3}
    with pytest.raises(GroverError, match="beyond the record's end"):
        filter_tss(WANT, {"chr1": 200, "chr2": 10})
    with pytest.raises(GroverError, match="no TSS on a record"):
        filter_tss(WANT, {"chrQ": 10})


@pytest.mark.parametrize("text, fmt, line, msg", [
    ("chr1\t5\t+\nchr1\tx\t+\n", "auto", 2, "not an integer"),
    ("chr1\t5\t+\nchr1\t6\t*\n", "auto", 2, "strand"),
    ("chr1\t5\t+\nchr1\t6\n", "auto", 2, "expected 3 columns"),
    ("a b c d\n", "auto", 1, "unrecognized TSS format"),
    ("chr1\t5\t6\t+\n", "gencode", 1, "needs the header"),
    ("chrom\tstart\tend\tstrand\nchr1\t0\t1\t+\n", "auto", 2, "1-based"),
    ("chr1\t5\t3\tn\t0\t+\n", "bed", 1, "not after start"),
    # a gene's span in the one-TSS-per-row format: which end is the TSS is not for us to guess
    ("chrom\tstart\tend\tstrand\nchr1\t10001\t15000\t-\n", "auto", 2, "span 4999 bp"),
])
def test_errors_name_file_and_line(tmp_path, text, fmt, line, msg):
    path = tmp_path / "t.txt"
    path.write_text(text)
    with pytest.raises(GroverError, match=msg) as err:
        read_tss(path, fmt)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_binary_file_is_an_error(tmp_path):
    path = tmp_path / "t.bin"
    path.write_bytes(b"chr1\t5\t+\n\xff\xfe\x00")
    with pytest.raises(GroverError, match="binary"):
        read_tss(path)


def test_bed_intervals(tmp_path):
    bed = tmp_path / "p.bed"
    bed.write_text("chr1\t50\t60\nchr1\t10\t20\nchr1\t15\t30\tpeak\nchr2\t0\t5\n")
    iv = read_bed_intervals(bed)
    assert iv["chr1"].tolist() == [[10, 30], [50, 60]]
    assert contained(iv, "chr1", 12, 30) and not contained(iv, "chr1", 25, 35)
    assert not contained(iv, "chr3", 0, 1) and not contained(iv, "chr1", 0, 5)
    assert contained(iv, "chr1", 50, 60) and not contained(iv, "chr1", 49, 55)  # a peak's edges
    bed.write_text("chr1\t50\n")
    with pytest.raises(GroverError, match=r"p.bed:1: BED needs"):
        read_bed_intervals(bed)
    bed.write_text("chrom\tstart\tend\nchr1\t10\t20\t\n")  # a header; a trailing tab
    assert read_bed_intervals(bed)["chr1"].tolist() == [[10, 20]]


def test_trailing_whitespace_is_no_column(tmp_path):
    path = tmp_path / "t.tsv"
    for end in (" ", "\t", "\t \r"):
        path.write_text(f"chr1\t5\t+{end}\nchr1\t9\t-{end}\n")
        assert read_tss(path, "auto") == ([TSS("chr1", 5, "+"), TSS("chr1", 9, "-")], "refseq")


def test_merge_intervals_matches_coverage():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 200, 40)
    iv = np.stack([s, s + rng.integers(1, 15, 40)], 1)
    cover = np.zeros(250, bool)
    for a, b in iv:
        cover[a:b] = True
    merged = merge_intervals(iv)
    again = np.zeros(250, bool)
    for a, b in merged:
        again[a:b] = True
    np.testing.assert_array_equal(cover, again)
    assert (merged[1:, 0] > merged[:-1, 1]).all()  # disjoint, not touching


def test_real_refseq_and_gencode_agree():
    """RefSeq positions are 0-based and GENCODE starts 1-based: after reading, TSSs of the same
    transcripts coincide exactly far more often than at any other offset."""
    refseq, gencode = DATA / "hg19_refseq_tss.tsv.gz", DATA / "hg19_gencode_tss.tsv.gz"
    if not (refseq.exists() and gencode.exists()):
        pytest.skip("real data not found")
    r, fr = read_tss(refseq)
    g, fg = read_tss(gencode)
    assert (fr, fg) == ("refseq", "gencode")
    by = {}
    for t in g:
        by.setdefault((t.chrom, t.strand), []).append(t.pos)
    by = {k: np.sort(v) for k, v in by.items()}
    diffs = Counter()
    for t in r:
        a = by.get((t.chrom, t.strand))
        if a is None:
            continue
        i = np.searchsorted(a, t.pos)
        near = [int(a[j]) - t.pos for j in (i - 1, i) if 0 <= j < len(a)]
        d = min(near, key=abs)
        if abs(d) <= 3:
            diffs[d] += 1
    assert diffs.most_common(1)[0][0] == 0
    assert diffs[0] > 10 * max(diffs[d] for d in (-3, -2, -1, 1, 2, 3))
