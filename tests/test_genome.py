"""FASTA reading: formats, soft-mask, contigs, and one-line errors for bad input; the genome stage's
part of a FASTA (genome.chroms, genome.max_bp), one record in memory at a time."""

from __future__ import annotations

import gc
import gzip
import tracemalloc
import weakref
import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from groverlm import genome as genome_stage
from groverlm.cli import main
from groverlm.context import Context, DataFiles
from groverlm.errors import GroverError
from groverlm.fasta import Genome, iter_records, reverse_complement, summarize, text_lines
from groverlm.genome import GenomeConfig, write_part

from .conftest import random_dna, write_fasta


@pytest.mark.parametrize("width,newline", [(60, "\n"), (7, "\r\n"), (10**6, "\n")])
def test_any_line_width_and_crlf(tmp_path, width, newline):
    seqs = {"a": random_dna(1000, 1), "b": random_dna(333, 2)}
    g = Genome.read(write_fasta(tmp_path / "g.fa", seqs, width, newline))
    assert {n: g.sequence(n, 0, len(s)) for n, s in seqs.items()} == seqs


@pytest.mark.parametrize("width,newline", [(60, "\n"), (7, "\r\n")])
def test_named_records_alone_are_decoded(tmp_path, width, newline, decoded):
    """A stage needing some chromosomes decoded every record of the genome to keep those: the
    others are now passed over undecoded (their letters unchecked), their lengths still known."""
    seqs = {"a": random_dna(1000, 1), "b": random_dna(333, 2), "c": "ACGT" * 5 + "J" + "ACGT"}
    path = write_fasta(tmp_path / "g.fa", seqs, width, newline)
    assert [r.name for r in iter_records(path, {"b", "z"})] == ["b"]
    assert decoded.names == ["b"]  # not a, nor c with its letter J
    g = Genome.read_windows(path, {"a": np.array([[990, 1200], [10, 20], [15, 30]]),
                                   "c": np.zeros((0, 2), dtype=np.int64)})
    assert decoded.names == ["b", "a"]  # c has no window
    assert g.lengths == {n: len(s) for n, s in seqs.items()}
    assert g["a"].intervals.tolist() == [[10, 30], [990, 1000]] and g["a"].codes.size == 30
    assert g.sequence("a", 12, 30, "-") == reverse_complement(seqs["a"][12:30])
    assert g.sequence("a", 995, 1000) == seqs["a"][995:] and g.sequence("c", 3, 3) == ""
    with pytest.raises(LookupError, match="a:25-40 was not read"):
        g.sequence("a", 25, 40)
    with pytest.raises(GroverError, match="outside record"):
        g.sequence("a", 995, 1001)
    only = Genome.read_windows(path, {"a": np.array([[0, 5]]), "b": np.array([[0, 5]])}, {"b"})
    assert list(only.records) == ["b"] and only.sequence("b", 0, 5) == seqs["b"][:5]
    (tmp_path / "e.fa").write_text(">a\nACGT\n>e\n\n")
    with pytest.raises(GroverError, match="record 'e' has no sequence"):  # passed over or not
        list(iter_records(tmp_path / "e.fa", {"a"}))


def test_gzip_and_bgzip(tmp_path):
    seqs = {"a": random_dna(5000, 1), "b": random_dna(4000, 2)}
    text = write_fasta(tmp_path / "g.fa", seqs).read_bytes()
    (tmp_path / "g.fa.gz").write_bytes(gzip.compress(text))
    # bgzip = concatenated gzip members
    (tmp_path / "g.bgz").write_bytes(b"".join(gzip.compress(text[i : i + 1000])
                                              for i in range(0, len(text), 1000)))
    for name in ["g.fa.gz", "g.bgz"]:
        assert Genome.read(tmp_path / name).sequence("b", 0, 4000) == seqs["b"]


def test_softmask_and_contigs(tmp_path):
    path = write_fasta(tmp_path / "g.fa", {"r": "ACGTacgtNNNNACRYGTtt"})
    rec = next(iter_records(path))
    assert rec.sequence() == "ACGTACGTNNNNACNNGTTT"
    assert rec.softmask.tolist() == [[4, 8], [18, 20]]
    assert rec.contigs().tolist() == [[0, 8], [12, 14], [16, 20]]
    s = summarize(path)["total"]
    assert (s["A"], s["C"], s["G"], s["T"], s["other"]) == (3, 3, 3, 5, 6)
    assert (s["n_runs"], s["contigs"], s["softmasked"]) == (2, 3, 6)


def test_reverse_complement_lookup(tmp_path):
    g = Genome.read(write_fasta(tmp_path / "g.fa", {"r": "AACCGTTN"}))
    assert g.sequence("r", 0, 4, "-") == "GGTT"
    with pytest.raises(GroverError, match="outside record"):
        g.sequence("r", 5, 20)


BAD = {
    "empty": (b"", "empty FASTA", None),
    "only blank lines": (b"\n\n", "empty FASTA", None),
    "no header": (b"\nACGT\n>r\nACGT\n", "before any '>' header", 2),
    "binary": (b">r\nAC\x00\x01GT\n", "binary", 1),
    "bad letter": (b">r\nACGT\nACGT\nACXT\n", "'X'", 4),
    "duplicate": (b">r\nACGT\n>s\nAC\n>r x\nGG\n", "duplicate record name 'r'", 5),
    "nameless": (b">\nACGT\n", "no record name", 1),
    "empty record": (b">a\n>b\nACGT\n", "record 'a' has no sequence", 1),
    "empty last record": (b">a\nACGT\n>b\n", "record 'b' has no sequence", 3),
    "CR line ends": (b">a\rACGT\rAC\r", "CR alone", 1),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_with_file_and_line(tmp_path, capsys, case):
    data, message, line = BAD[case]
    path = tmp_path / "bad.fa"
    path.write_bytes(data)
    assert main(["genome", "summary", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and str(path) in err
    if line is not None:
        assert f"{path}:{line}:" in err


def test_many_short_records_keep_their_line_numbers(tmp_path):
    """A fragmented assembly: each header's line is counted on from the last header's
    (fasta._LineCounter; 60,000 records took 15 s when every count started at the block's start,
    half a second since, on the development machine), and still names the right line."""
    n = 60_000
    path = tmp_path / "scaffolds.fa"
    path.write_text("".join(f">s{i}\nACGT\n" for i in range(n)) + ">last\nACXT\n")
    with pytest.raises(GroverError, match=f"{path}:{2 * n + 2}: unknown nucleotide letter 'X'"):
        for _ in iter_records(path):
            pass


def test_text_lines_skip_a_byte_order_mark_and_name_an_undecodable_line(tmp_path):
    bom = tmp_path / "bom.bed"
    bom.write_bytes("\ufeffchr20\t100\t200\n".encode())
    assert list(text_lines(bom)) == [(1, "chr20\t100\t200")]
    bad = tmp_path / "bin.bed"
    lines = [b"chr20\t%d\t%d\n" % (i, i + 10) for i in range(1000)]
    lines[499] = b"chr20\t\xff\xfe\t1\n"
    bad.write_bytes(b"".join(lines))
    with pytest.raises(GroverError, match=r"bin.bed:500: binary data"):
        list(text_lines(bad))


def test_utf8_headers_and_a_byte_order_mark_are_text(tmp_path):
    """A UTF-8 description or a BOM was 'binary data' at line 1; outside a header, or not UTF-8,
    a byte beyond ASCII stays an error at its own line."""
    path = tmp_path / "u.fa"
    path.write_bytes(b"\xef\xbb\xbf>seq1\nACGT\n>seq2 \xc2\xb5m desc\nACGTT\n")
    assert [(r.name, len(r)) for r in iter_records(path)] == [("seq1", 4), ("seq2", 5)]
    for data, line, msg in ((b">a\nAC\n\xc2\xb5GT\n", 3, "binary data"),
                            (b">a\nACGT\n>b \xff\nAC\n", 3, "not UTF-8")):
        path.write_bytes(data)
        with pytest.raises(GroverError, match=f"u.fa:{line}: .*{msg}"):
            list(iter_records(path))


def test_truncated_gzip(tmp_path, capsys):
    text = write_fasta(tmp_path / "g.fa", {"r": random_dna(200000, 1)}).read_bytes()
    blob = gzip.compress(text)
    (tmp_path / "t.fa.gz").write_bytes(blob[: len(blob) // 2])
    assert main(["genome", "summary", str(tmp_path / "t.fa.gz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "truncated" in err and len(err.splitlines()) == 1
    # the line named is the last whole one before the damage (not the read block's first)
    readable = zlib.decompressobj(31).decompress(blob[: len(blob) // 2]).count(b"\n")
    assert readable > 1000 and f"after line {readable} (" in err, err


def test_missing_file(tmp_path, capsys):
    assert main(["genome", "summary", str(tmp_path / "nope.fa")]) == 2
    assert "nope.fa" in capsys.readouterr().err


def test_summary_of_real_chr20(chr20):
    t = summarize(chr20)["total"]
    assert t["length"] == 63_025_520
    assert t["A"] + t["C"] + t["G"] + t["T"] == 59_505_520


def test_summary_holds_no_per_base_copy_beyond_reading(tmp_path, monkeypatch):
    """np.bincount made an int64 copy of each record (8 bytes a base: 2 GB on hg19's chr1),
    more than reading it takes (about 5 bytes a base, at peak)."""
    import groverlm.fasta as fasta

    monkeypatch.setattr(fasta, "_BLOCK", 1 << 16)  # blocks much shorter than the record, as on hg19
    n = 2_000_000
    path = write_fasta(tmp_path / "g.fa", {"r": random_dna(n, 1) + "NN"})
    summarize(path)  # numba compiles first
    tracemalloc.start()
    try:
        t = summarize(path)["total"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(t[b] for b in "ACGT") == n and t["other"] == 2
    assert peak < 8 * n


def test_large_record_streams_in_blocks(tmp_path, monkeypatch):
    import groverlm.fasta as fasta

    monkeypatch.setattr(fasta, "_BLOCK", 97)  # headers and lines straddle block edges
    seqs = {f"r{i}": random_dna(500 + 37 * i, i) for i in range(5)}
    path = write_fasta(tmp_path / "g.fa", seqs, width=13)
    got = {r.name: r.sequence() for r in iter_records(path)}
    assert got == seqs
    assert np.array_equal(next(iter_records(path)).codes, fasta.encode(seqs["r0"]))


# -- the genome stage's part of the genome (genome.chroms, genome.max_bp) ----------------------

def test_the_part_holds_the_chroms_in_their_order_each_cut_to_max_bp(tmp_path):
    seqs = {f"chr{i}": random_dna(300 + 10 * i, i) for i in range(5)}
    path = write_fasta(tmp_path / "g.fa", seqs, width=17)
    out = tmp_path / "part.fa"
    write_part(path, out, ["chr3", "chr0", "chr4", "chr1"], 250)  # not the file's order
    got = {r.name: r.sequence() for r in iter_records(out)}
    assert list(got) == ["chr3", "chr0", "chr4", "chr1"]
    assert got == {c: seqs[c][:250] for c in got}
    write_part(path, out, None, None)  # every record, whole
    assert {r.name: r.sequence() for r in iter_records(out)} == seqs
    assert not list(tmp_path.glob(".genome-part*"))  # the records that waited their turn


def test_the_genome_stage_holds_one_record_in_memory_at_a_time(tmp_path, monkeypatch):
    """With genome.chroms, hg19's 24 chromosomes were all held until written (3 GB more than the
    largest)."""
    seqs = {f"chr{i}": random_dna(200, i) for i in range(6)}
    path = write_fasta(tmp_path / "g.fa", seqs)
    alive: list[weakref.ref] = []

    def records(p):
        for rec in iter_records(p):
            gc.collect()
            assert sum(r() is not None for r in alive) == 0, "an earlier record is still held"
            alive.append(weakref.ref(rec))
            yield rec

    monkeypatch.setattr(genome_stage, "iter_records", records)
    config = SimpleNamespace(data=SimpleNamespace(tss_format="auto"))  # all run() reads of it
    ctx = Context(tmp_path, tmp_path / "genome", config, DataFiles(path, None, None, ()),
                  progress=False)
    ctx.out.mkdir()
    summary = genome_stage.run(GenomeConfig(chroms=("chr1", "chr2", "chr4")), ctx)
    assert [r.name for r in iter_records(ctx.out / "genome.fa")] == ["chr1", "chr2", "chr4"]
    assert summary["fasta"] == "genome/genome.fa" and summary["records"] == 3


def test_the_part_names_the_chroms_the_genome_lacks(tmp_path):
    path = write_fasta(tmp_path / "g.fa", {"chr1": random_dna(100), "chr2": random_dna(100, 1)})
    with pytest.raises(GroverError, match=r"genome.chroms: chr9, chr7 not in the genome"):
        write_part(path, tmp_path / "part.fa", ["chr2", "chr9", "chr1", "chr7"], None)
    with pytest.raises(ValueError, match="chroms names chr1 more than once"):
        GenomeConfig(chroms=("chr1", "chr2", "chr1"))
