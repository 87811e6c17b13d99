"""bench/scale.py: the scaled genome's annotation rows follow its copies, and --smoke runs the
stages through `groverlm run` and reports each one's wall time and peak memory."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
import yaml

from groverlm.fasta import iter_records
from groverlm.tasks.annotations import read_tss

from .conftest import BENCH, DATA, load_bench, random_dna, write_fasta


def test_each_chr20_row_is_repeated_once_per_copy_and_the_rest_kept(tmp_path):
    scale = load_bench("scale")
    src = tmp_path / "tss.tsv"
    src.write_text("chrom\tstart\tend\tstrand\n"  # a header, kept
                   "chr1\t50\t51\t+\nchr20\t10\t11\t-\nchr20\t900\t901\t+\nchr2\t5\t6\t-\n")
    out = tmp_path / "out.gz"
    assert scale.write_annotation(src, out, 3, max_bp=500) == 3  # the row at 900 lies beyond
    lines = gzip.open(out, "rt").read().splitlines()
    assert lines == ["chrom\tstart\tend\tstrand", "chr1\t50\t51\t+", "chr20_0\t10\t11\t-",
                     "chr20_1\t10\t11\t-", "chr20_2\t10\t11\t-", "chr2\t5\t6\t-"]
    sites, fmt = read_tss(out)
    assert fmt == "gencode" and [t.chrom for t in sites].count("chr20_2") == 1


def test_the_variants_lie_on_the_copies_with_the_genome_s_bases(tmp_path):
    scale = load_bench("scale")
    fa = write_fasta(tmp_path / "g.fa", {"chr1": "ACGT" * 10, "chr20": "NNNN" + random_dna(996, 9)})
    assert scale.write_variants(fa, tmp_path / "v.vcf", 3, max_bp=500, n=30) == 30
    rows = [r.split("\t") for r in (tmp_path / "v.vcf").read_text().splitlines()
            if not r.startswith("#")]
    seq = next(iter_records(fa, {"chr20"})).sequence()
    assert [r[0] for r in rows] == ["chr20_0", "chr20_1", "chr20_2"] * 10
    assert all(4 < int(r[1]) <= 500 and r[3] == seq[int(r[1]) - 1] != r[4] for r in rows)


@pytest.mark.slow  # about 20 s on the shared 2-core machine: five `groverlm run` processes a size
def test_smoke_runs_the_stages_at_two_sizes(tmp_path, chr20):
    out = tmp_path / "scale.json"
    stages = ["genome", "bpe", "select_vocab", "corpus", "tasks"]
    proc = subprocess.run([sys.executable, str(BENCH / "scale.py"), "--smoke", "--copies", "1,2",
                           "--stages", ",".join(stages), "--work", str(tmp_path / "work"),
                           "--data", str(DATA), "--json", str(out), "--keep"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["smoke"] is True and list(r["sizes"]) == ["1", "2"]
    one, two = r["sizes"]["1"], r["sizes"]["2"]
    assert two["built"]["bases"] == 2 * one["built"]["bases"] == 2 * 2_000_000
    assert two["built"]["tss"] == 2 * one["built"]["tss"] > 0
    for size in (one, two):
        assert list(size["stages"]) == stages
        for row in size["stages"].values():
            assert row["wall_s"] > 0 and row["peak_gb"] > 0 and row["stage_peak_gb"] > 0
    # the run read the copies, named apart, and built its tasks on both
    run = tmp_path / "work" / "x2"
    assert [(r.name, len(r)) for r in iter_records(run / "run" / "genome" / "genome.fa")] == [
        ("chr20_0", 2_000_000), ("chr20_1", 2_000_000)]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["genome"]["chroms"] == ["chr20_0", "chr20_1"]
    tasks = json.loads((run / "run" / "tasks" / "manifest.json").read_text())["summary"]
    assert set(tasks) == {"prom300", "promscan", "ctcf"}
    assert "| genome |" in proc.stdout and "ratio x2/x1" in proc.stdout
