"""Zero-shot scoring: pseudo-log-likelihoods against a by-hand computation, batching, both strands,
the BPE variant rule, VCF statuses, in-silico mutagenesis, Hub ids from a local cache; and the
other stages' `--rc` (embeddings, fine-tuning evaluation)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import weakref
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import groverlm
from groverlm.analysis.report import render_report
from groverlm.cli import build_parser, main
from groverlm.corpus import Region
from groverlm.data import format_jaspar
from groverlm.embed import EmbedConfig, embed_sequences
from groverlm.errors import GroverError
from groverlm.fasta import Genome, reverse_complement
from groverlm.finetune import WindowedData, predict, reverse_complement_ids, token_ids
from groverlm.finetune import score as finetune_metrics
from groverlm.metrics import read_metrics
from groverlm.models import load_model, load_tokenizer
from groverlm.score import (
    Scorer,
    ScoringConfig,
    Variant,
    check_variant,
    score_sequences,
    score_variants,
    variant_span,
)
from groverlm.tasks.gue import load_task

from .analysis.fixtures import make_model, make_vocab
from .conftest import held_elsewhere, random_dna, write_fasta
from .test_finetune import composition_task


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("score")
    genome, vocab = make_vocab(tmp)
    model_dir = make_model(vocab, tmp / "model", positions=64)  # windows of 62 tokens
    return tmp, genome, model_dir, Scorer.load(model_dir, ScoringConfig(batch_size=7))


def by_hand(scorer, seq: str, a: int = 0, b: int | None = None) -> float:
    """The PLL one masked copy at a time, through the stock MaskedLM forward; with `a`, `b` only
    over the tokens lying inside [a, b)."""
    ids, bounds = scorer.tokenize(seq)
    b = len(seq) if b is None else b
    tok, total = scorer.tok, 0.0
    for p in range(len(ids)):
        if not a <= bounds[p] < bounds[p + 1] <= b:
            continue
        x = [tok.cls_token_id] + ids + [tok.sep_token_id]
        x[p + 1] = tok.mask_token_id
        with torch.no_grad():
            logits = scorer.model(input_ids=torch.tensor([x])).logits[0, p + 1]
        total += float(torch.log_softmax(logits.double(), -1)[ids[p]])
    return total


def test_pll_matches_masking_one_token_at_a_time(tiny):
    _, _, _, scorer = tiny
    seqs = [random_dna(90, 11), random_dna(130, 12), "ACGTTGCA"]
    rows = score_sequences(scorer, ["a", "b", "c"], seqs)
    for row, s in zip(rows, seqs, strict=True):
        assert row["pll"] == pytest.approx(by_hand(scorer, s), abs=1e-5)
        assert row["pll_per_nt"] == pytest.approx(row["pll"] / len(s))
        assert row["tokens"] == len(scorer.tokenize(s)[0]) and row["length_nt"] == len(s)


def test_given_token_ids_are_scored_as_given(tiny):
    _, _, _, scorer = tiny
    seqs = [random_dna(90, 31), random_dna(300, 32)]
    ids = [scorer.tokenize(s)[0] for s in seqs]
    a = score_sequences(scorer, ["a", "b"], seqs)
    b = score_sequences(scorer, ["a", "b"], seqs, ids=ids)
    for r, s in zip(a, b, strict=True):
        assert r["pll"] == pytest.approx(s["pll"], abs=1e-5) and r["tokens"] == s["tokens"]
    # a token order that tokenizing the sequence would not give is scored as given
    shuffled = [list(reversed(x)) for x in ids]
    c = score_sequences(scorer, ["a", "b"], seqs, ids=shuffled)
    assert [r["tokens"] for r in c] == [len(x) for x in ids]
    assert c[0]["pll"] != pytest.approx(a[0]["pll"], abs=1e-3)


def test_batch_size_and_windows_change_nothing(tiny):
    _, _, model_dir, scorer = tiny
    seqs = [random_dna(n, 20 + n) for n in (40, 300, 75)]  # 300 nt: several windows
    a = score_sequences(scorer, list("xyz"), seqs)
    b = score_sequences(Scorer.load(model_dir, ScoringConfig(batch_size=256)), list("xyz"), seqs)
    for r, s in zip(a, b, strict=True):
        assert r["pll"] == pytest.approx(s["pll"], abs=1e-5)
    assert a[1]["tokens"] > scorer.max_tokens  # the long one was windowed


def test_rc_makes_a_sequence_and_its_reverse_complement_score_alike(tiny):
    _, _, _, scorer = tiny
    s = random_dna(150, 31)
    fwd = score_sequences(scorer, ["f"], [s], rc=True)[0]["pll"]
    rev = score_sequences(scorer, ["r"], [reverse_complement(s)], rc=True)[0]["pll"]
    assert fwd == pytest.approx(rev, abs=1e-5)
    plain = score_sequences(scorer, ["f", "r"], [s, reverse_complement(s)])
    assert plain[0]["pll"] != pytest.approx(plain[1]["pll"], abs=1e-3)  # the strands do differ


def test_variant_span_covers_the_change_in_both_segmentations(tiny):
    _, _, _, scorer = tiny
    rng = np.random.default_rng(0)
    for _ in range(30):
        left, right = random_dna(60, rng.integers(1e6)), random_dna(60, rng.integers(1e6))
        ref, alt = ("A", "G") if rng.random() < 0.5 else ("AT", "A")
        rb = scorer.tokenize(left + ref + right)[1]
        ab = scorer.tokenize(left + alt + right)[1]
        lo, hi = variant_span(rb, ab, 60, len(ref), len(alt), 0)
        assert lo <= 60 and hi >= 60 + len(ref)
        assert lo in rb and lo in ab and hi in rb and hi + len(alt) - len(ref) in ab


def variant_by_hand(scorer, left: str, ref: str, alt: str, right: str) -> float:
    """ALT's tokens inside the span minus REF's, each window tokenized on its own; the span's
    right end moved by the length difference in the ALT window."""
    ref_win, alt_win = left + ref + right, left + alt + right
    lo, hi = variant_span(scorer.tokenize(ref_win)[1], scorer.tokenize(alt_win)[1], len(left),
                          len(ref), len(alt), scorer.cfg.margin)
    return by_hand(scorer, alt_win, lo, hi + len(alt) - len(ref)) - by_hand(scorer, ref_win, lo, hi)


def test_variant_scores_match_masking_by_hand(tiny, tmp_path):
    """score = masked log P of the ALT tokens in the span minus the REF tokens' (negative: the
    model finds the change less natural); with rc the mean with the same on the reverse strand,
    where the change sits after the right flank (here a clipped left flank makes them differ)."""
    _, _, model_dir, _ = tiny
    seq = random_dna(400, 61)
    genome = Genome.read(write_fasta(tmp_path / "g.fa", {"c": seq}))
    alt = {p: "ACGT".replace(seq[p], "")[p % 3] for p in (12, 200)}
    cases = [(200, seq[200], alt[200]), (150, seq[150:153], seq[150]),  # an SNV, a deletion
             (250, seq[250], seq[250] + "GTA"), (12, seq[12], alt[12])]  # an insertion, an SNV
    for rc in (False, True):
        scorer = Scorer.load(model_dir, ScoringConfig(flank=30, margin=1, rc=rc))
        done = score_variants(scorer, genome, [Variant("c", p + 1, r, a) for p, r, a in cases])
        for v, (p, r, a) in zip(done, cases, strict=True):
            left, right = seq[max(0, p - 30) : p], seq[p + len(r) : p + len(r) + 30]
            want = variant_by_hand(scorer, left, r, a, right)
            if rc:
                want = (want + variant_by_hand(scorer, reverse_complement(right),
                                               reverse_complement(r), reverse_complement(a),
                                               reverse_complement(left))) / 2
            assert v.status == "ok" and v.score == pytest.approx(want, abs=1e-5), (rc, v)


def mirror(v: Variant, length: int) -> Variant:
    return Variant(v.chrom, length - v.pos + 1, reverse_complement(v.ref),
                   reverse_complement(v.alt))


def test_snvs_and_their_mirrors_on_the_reverse_complemented_genome_agree(tiny, tmp_path):
    _, _, model_dir, _ = tiny
    seq = random_dna(2000, 41)
    fwd = Genome.read(write_fasta(tmp_path / "f.fa", {"c": seq}))
    rev = Genome.read(write_fasta(tmp_path / "r.fa", {"c": reverse_complement(seq)}))
    rng = np.random.default_rng(1)
    snvs = []
    for p in rng.choice(np.arange(50, 1950), 12, replace=False):
        ref = seq[p]
        snvs.append(Variant("c", int(p) + 1, ref, "ACGT".replace(ref, "")[int(rng.integers(3))]))
    scorer = Scorer.load(model_dir, ScoringConfig(rc=True, flank=60))
    a = score_variants(scorer, fwd, [Variant(**vars(v)) for v in snvs])
    b = score_variants(scorer, rev, [mirror(v, len(seq)) for v in snvs])
    for x, y in zip(a, b, strict=True):
        assert x.status == y.status == "ok"
        assert abs(x.score - y.score) < 1e-5, (x, y)
    assert len({round(v.score, 4) for v in a}) > 6  # real, distinct scores


def test_variant_statuses_and_order(tiny, tmp_path, capsys, monkeypatch):
    _, _, model_dir, _ = tiny
    seq = random_dna(800, 51)
    fa = write_fasta(tmp_path / "g.fa", {"c": seq})
    alt = "ACGT".replace(seq[99], "")[0]
    vcf = tmp_path / "v.vcf"
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=c,length=800>", "##contig=<ID=z,length=10>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
             f"c\t100\t.\t{seq[99]}\t{alt}\t.\t.\t.",
             f"c\t200\t.\t{'ACGT'.replace(seq[199], '')[0]}\tA\t.\t.\t.",  # REF mismatch
             f"c\t300\t.\t{seq[299:302]}\t{seq[299]}\t.\t.\t.",  # a 2-nt deletion
             "z\t5\t.\tA\tC\t.\t.\t.",  # unknown contig... in the genome
             f"c\t400\t.\t{seq[399]}\t<DEL>\t.\t.\t.",  # symbolic
             f"c\t500\t.\t{seq[499]}\t{seq[499]}TTG,{'ACGT'.replace(seq[499], '')[1]}\t.\t.\t.",
             f"c\t600\t.\t{seq[599]}\t{seq[599]}[chrq:12[\t.\t.\t."]  # a breakend, kept as written
    vcf.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.tsv"
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(fa), "--vcf",
                 str(vcf), "--out", str(out), "--quiet"]) == 0
    rows = [r.split("\t") for r in out.read_text().splitlines()]
    assert rows[0] == ["chrom", "pos", "ref", "alt", "score", "ref_tokens", "alt_tokens", "status"]
    got = [(r[1], r[7]) for r in rows[1:]]
    assert got == [("100", "ok"), ("200", "ref_mismatch"), ("300", "ok"), ("5", "off_contig"),
                   ("400", "not_acgt"), ("500", "ok"), ("500", "ok"), ("600", "not_acgt")]
    assert rows[-1][3] == f"{seq[599]}[chrq:12["  # its contig name was upper-cased
    for r in rows[1:]:
        assert (r[4] != "") == (r[7] == "ok") and (r[7] != "ok" or math.isfinite(float(r[4])))
    # bgzipped, the same
    import pysam

    pysam.tabix_compress(str(vcf), str(vcf) + ".gz")
    out2 = tmp_path / "out2.tsv"
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(fa), "--vcf",
                 str(vcf) + ".gz", "--out", str(out2), "--quiet"]) == 0
    assert out2.read_text() == out.read_text()
    # plain gzip (`gzip v.vcf`), which htslib cannot open as a VCF, the same; gunzipped once for
    # the count and the scoring (a whole-genome VCF was decompressed twice)
    import gzip

    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(vcf.read_bytes()))
    out3 = tmp_path / "out3.tsv"
    module, copies = sys.modules["groverlm.score"], []
    gunzipped = module._gunzipped
    monkeypatch.setattr(module, "_gunzipped", lambda *a: copies.append(a) or gunzipped(*a))
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(fa), "--vcf",
                 str(plain), "--out", str(out3), "--quiet"]) == 0
    assert out3.read_text() == out.read_text() and len(copies) == 1
    assert not copies[0][1].exists()  # the copy's folder is removed
    # every record on a contig the genome lacks: chromosome names, most likely (all off_contig)
    vcf.write_text("\n".join(lines[:4] + [f"chr{lines[4]}"]) + "\n")
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(fa), "--vcf",
                 str(vcf), "--out", str(tmp_path / "o4.tsv")]) == 2
    assert f"{vcf}: nothing on a record of the genome (the file names chrc" in capsys.readouterr().err


def test_cli_bad_inputs_are_one_line(tiny, tmp_path, capsys):
    _, genome, model_dir, _ = tiny
    bad = tmp_path / "bad.vcf"
    bad.write_text("not a vcf\n")
    for argv in (["score", "variants", "--model", str(model_dir), "--genome", str(genome),
                  "--vcf", str(bad), "--out", str(tmp_path / "o.tsv")],
                 ["score", "seqs", "--model", str(tmp_path / "nope"), "--input", str(genome),
                  "--out", str(tmp_path / "o.tsv")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("groverlm: error:"), err
    assert not (tmp_path / "o.tsv").exists()
    # a record pysam cannot read is named by its line; an existing table is not replaced
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chrA>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
             "chrA\t10\t.\tA\tC\t.\t.\t.", "chrA\tx20\t.\tA\tC\t.\t.\t."]
    bad.write_text("\n".join(lines) + "\n")
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(genome), "--vcf",
                 str(bad), "--out", str(tmp_path / "o.tsv")]) == 2
    assert f"{bad}:5: cannot read this record" in capsys.readouterr().err
    # blank lines: at the end ignored (they failed the whole file, with no line named), amid the
    # records named at their own line (the next record's was named); a byte-order mark, a missing
    # ##fileformat and an empty VCF say so
    good = lines[:4] + ["chrA\t20\t.\tA\tC\t.\t.\t."]
    args = ["score", "variants", "--model", str(model_dir), "--genome", str(genome), "--vcf",
            str(bad), "--out", str(tmp_path / "v.tsv"), "--overwrite", "--quiet"]
    for text, expect in (("\n".join(good) + "\n\n\r\n", None),
                         ("\n".join(good[:4] + [""] + good[4:]) + "\n", ":5: an empty line"),
                         ("\ufeff" + "\n".join(good) + "\n", ":1: starts with a byte-order mark"),
                         ("\n".join(good[2:]) + "\n", ":1: not a VCF: the first line must be")):
        bad.write_text(text, encoding="utf-8")
        if expect is None:
            assert main(args) == 0
            assert len((tmp_path / "v.tsv").read_text().splitlines()) == 3  # header and 2 rows
        else:
            assert main(args) == 2
            assert f"{bad}{expect}" in capsys.readouterr().err
    bad.write_text("\n".join(lines[:3]) + "\n")
    capsys.readouterr()
    assert main(args) == 0 and "no variants in the VCF" in capsys.readouterr().out
    kept = tmp_path / "kept.tsv"
    kept.write_text("a finished table\n")
    assert main(["score", "seqs", "--model", str(model_dir), "--input", str(genome), "--out",
                 str(kept)]) == 2
    assert "--overwrite" in capsys.readouterr().err and kept.read_text() == "a finished table\n"
    for device in ("no-such-device", "cuda:0" if not torch.cuda.is_available() else "cuda:99",
                   "meta"):
        assert main(["score", "seqs", "--model", str(model_dir), "--input", str(genome), "--out",
                     str(tmp_path / "d.tsv"), "--device", device]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_ism_writes_the_table_and_the_picture(tiny, tmp_path, capsys):
    _, genome, model_dir, _ = tiny
    out = tmp_path / "ism"
    assert main(["ism", "--model", str(model_dir), "--genome", str(genome), "--region",
                 "chrA:1000-1030", "--out", str(out), "--flank", "40", "--quiet"]) == 0
    table = np.load(out / "ism.npy")
    ref = Genome.read(genome).sequence("chrA", 1000, 1030)
    assert table.shape == (4, 30)
    for i, b in enumerate(ref):
        assert np.isnan(table["ACGT".index(b), i]) and np.isfinite(np.delete(table[:, i],
                                                                             "ACGT".index(b))).all()
    assert len((out / "ism.tsv").read_text().splitlines()) == 1 + 3 * 30
    assert np.load(out / "importance.npy").shape == (30,)
    assert (out / "ism.png").read_bytes()[:4] == b"\x89PNG"
    page = render_report(tmp_path)  # the report shows the picture in its own section
    assert "In-silico mutagenesis" in page and page.count("data:image/png") >= 1
    assert main(["ism", "--model", str(model_dir), "--genome", str(genome), "--region",
                 "chrA:1000-1030", "--out", str(out), "--quiet"]) == 2  # finished: --overwrite
    n_gap = write_fasta(tmp_path / "gap.fa", {"g": "N" * 50 + random_dna(50, 9)})
    assert main(["ism", "--model", str(model_dir), "--genome", str(n_gap), "--region", "g:0-20",
                 "--out", str(tmp_path / "gap"), "--quiet"]) == 2  # nothing to change
    assert not (tmp_path / "gap").exists()

    # a whole chromosome would hold hundreds of millions of changes; a region's errors name the
    # genome file
    big = write_fasta(tmp_path / "big.fa", {"c": random_dna(100_001, 4)})
    assert main(["ism", "--model", str(model_dir), "--genome", str(big), "--region", "c",
                 "--out", str(tmp_path / "big"), "--quiet"]) == 2
    assert "spans 100,001 bp" in capsys.readouterr().err and not (tmp_path / "big").exists()
    assert main(["ism", "--model", str(model_dir), "--genome", str(genome), "--region",
                 "chrA:10-99999999", "--out", str(tmp_path / "far"), "--quiet"]) == 2
    assert f"{genome}: --region chrA:10-99999999 ends beyond" in capsys.readouterr().err



def test_ism_offers_no_option_it_ignores():
    """--max-indel (score variants': longer alleles get status too_long) changed nothing in ism,
    whose changes are all single bases; argparse now refuses it."""
    argv = ["ism", "--model", "m", "--genome", "g", "--region", "c:0-9", "--out", "o"]
    with pytest.raises(GroverError, match="unrecognized arguments: --max-indel"):
        build_parser(argv).parse_args([*argv, "--max-indel", "5"])

@pytest.mark.slow
def test_a_hub_id_loads_from_a_local_cache_offline(tiny, tmp_path):
    """The Hugging Face cache layout, built by hand: models--owner--name/{refs/main, snapshots};
    HF_HUB_CACHE is read when huggingface_hub is imported, hence the child process."""
    _, genome, model_dir, _ = tiny
    commit = "0" * 40
    repo = tmp_path / "hub" / "models--someone--tiny-dna"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    fa = write_fasta(tmp_path / "s.fa", {"s": random_dna(80, 3)})
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "groverlm", "score", "seqs", "--model",
                    "someone/tiny-dna", "--input", str(fa), "--out", str(tmp_path / "hub.tsv")],
                   check=True, env=env, capture_output=True, timeout=120)
    assert main(["score", "seqs", "--model", str(model_dir), "--input", str(fa), "--out",
                 str(tmp_path / "local.tsv")]) == 0
    assert (tmp_path / "hub.tsv").read_text() == (tmp_path / "local.tsv").read_text()


def test_an_absent_hub_id_is_a_one_line_error_offline(capsys, tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest: no test reaches a hub
    for load in (load_model, load_tokenizer):
        with pytest.raises(GroverError, match="someone/absent"):
            load("someone/absent")
    fa = write_fasta(tmp_path / "s.fa", {"s": "ACGT" * 5})
    assert main(["score", "seqs", "--model", "someone/absent", "--input", str(fa), "--out",
                 str(tmp_path / "x.tsv")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_check_variant_is_strict_about_alleles(tiny):
    _, genome, _, _ = tiny
    g = Genome.read(genome)
    base = g.sequence("chrA", 0, 1)
    cfg = ScoringConfig(max_indel=3)
    assert check_variant(Variant("chrA", 1, base, "N"), g, cfg) == "not_acgt"
    assert check_variant(Variant("chrA", 1, base, "*"), g, cfg) == "not_acgt"
    assert check_variant(Variant("chrA", 10**9, "A", "C"), g, cfg) == "off_contig"
    assert check_variant(Variant("chrA", 1, base, base + "ACGT"), g, cfg) == "too_long"


def test_python_api_reads_files_and_strings(tiny, tmp_path):
    _, _, model_dir, scorer = tiny
    seqs = {"a": random_dna(70, 61), "b": random_dna(45, 62)}
    fa = write_fasta(tmp_path / "s.fa", seqs)
    from_file = groverlm.score(model_dir, fa, per_token=True, device="cpu")
    from_list = groverlm.score(scorer, list(seqs.values()))
    assert [r["name"] for r in from_file] == ["a", "b"]
    for f, g in zip(from_file, from_list, strict=True):
        assert f["pll"] == pytest.approx(g["pll"], abs=1e-5)
        assert sum(map(float, f["log_probs"].split(","))) == pytest.approx(f["pll"], abs=1e-3)
    long = random_dna(300, 63)  # a string of DNA, however long, is a sequence, not a file name
    assert groverlm.score(scorer, long)[0]["length_nt"] == 300
    with pytest.raises(GroverError, match="missing_seqs.fa"):  # a file name that is no file
        groverlm.score(scorer, str(tmp_path / "missing_seqs.fa"))
    allN = groverlm.score(scorer, ["NNNNNNNN", "ACGTNNNN"])  # nothing to score: NaN, not 0
    assert math.isnan(allN[0]["pll"]) and math.isfinite(allN[1]["pll"])
    # tokens counts what was scored ([UNK] left out), as embed counts what it pooled
    n_unk = scorer.tokenize("ACGTNNNN")[0].count(scorer.unk)
    assert n_unk > 0
    assert [r["tokens"] for r in allN] == [0, len(scorer.tokenize("ACGTNNNN")[0]) - n_unk]
    _, pooled, _ = embed_sequences(scorer.model, scorer.tok, ["NNNNNNNN", "ACGTNNNN"],
                                   EmbedConfig())
    assert [r["tokens"] for r in allN] == pooled.tolist()
    # a loaded transformers model with its tokenizer, as embed takes it
    loaded = groverlm.score(scorer.model, list(seqs.values()), tokenizer=scorer.tok)
    assert [r["pll"] for r in loaded] == pytest.approx([r["pll"] for r in from_list], abs=1e-5)
    with pytest.raises(GroverError, match="pass `tokenizer`"):
        groverlm.score(scorer.model, list(seqs.values()))


# ----------------------------------------------------------------------------- --rc elsewhere


def test_embed_rc_is_the_mean_of_both_strands(tiny, tmp_path):
    _, _, model_dir, _ = tiny
    s = random_dna(120, 71)
    fwd, rev = (groverlm.embed(model_dir, [x]) for x in (s, reverse_complement(s)))
    both = groverlm.embed(model_dir, [s], rc=True)
    np.testing.assert_allclose(both, (fwd + rev) / 2, atol=1e-6)
    np.testing.assert_allclose(both, groverlm.embed(model_dir, [reverse_complement(s)], rc=True),
                               atol=1e-6)
    assert not np.allclose(fwd, rev, atol=1e-3)
    fa = write_fasta(tmp_path / "s.fa", {"s": s})
    assert main(["embed", "--model", str(model_dir), "--input", str(fa), "--out",
                 str(tmp_path / "e.npy"), "--rc", "--quiet"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "e.npy"), both, atol=1e-6)
    assert json.loads((tmp_path / "e.manifest.json").read_text())["config"]["rc"] is True


def test_finetune_rc_evaluates_both_strands(tiny, tmp_path):
    _, _, model_dir, _ = tiny
    tok = load_tokenizer(model_dir)
    seqs = [random_dna(90, 81), "ACGTNNACGGT" + random_dna(40, 82)]
    assert [x.tolist() for x in reverse_complement_ids(tok, token_ids(tok, seqs))] == [
        x.tolist() for x in token_ids(tok, [reverse_complement(s) for s in seqs])]
    task = composition_task(tmp_path / "task", n=(40, 20, 20))
    out = tmp_path / "ft"
    assert main(["finetune", "--model", str(model_dir), "--task", str(task), "--out", str(out),
                 "--seeds", "0", "--epochs", "1", "--lr", "2e-3", "--threads", "1", "--quiet",
                 "--rc"]) == 0
    assert json.loads((out / "metrics.json").read_text())["rc"] is True
    [r] = read_metrics(out)
    # the saved model reproduces the recorded test metrics with both strands' mean logits
    model = load_model(out / "model", "classification").eval()
    t = load_task(task).test
    data = [WindowedData(token_ids(tok, x), t.labels, tok, 62, 62)
            for x in (t.sequences, [reverse_complement(s) for s in t.sequences])]
    both = predict(model, data[0], 8, rc_data=data[1])
    assert finetune_metrics(both, t.labels)["auroc"] == pytest.approx(r["test"]["auroc"])
    assert np.abs(both - predict(model, data[0], 8)).max() > 1e-6  # the strands do differ


def test_a_folder_without_the_masked_lm_head_is_refused_not_scored_at_random(tiny, tmp_path,
                                                                              capsys):
    """A fine-tuned classifier's folder loads as a masked LM with a random head: scoring it gave
    a different 'PLL' on every call. Embedding reads the encoder alone and still takes it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, _, model_dir, _ = tiny
    clf = tmp_path / "clf"
    AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=2
                                                       ).save_pretrained(str(clf))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(clf))
    fa = write_fasta(tmp_path / "s.fa", {"s": random_dna(120, 3)})
    out = tmp_path / "o.tsv"
    assert main(["score", "seqs", "--model", str(clf), "--input", str(fa), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no masked-LM head in this folder (saved as BertForSequenceClassification" in err
    assert not out.exists()
    assert main(["embed", "--model", str(clf), "--input", str(fa), "--out",
                 str(tmp_path / "e.npy"), "--quiet"]) == 0
    # --out naming a folder is said so (it was an error about a temporary file)
    assert main(["score", "seqs", "--model", str(model_dir), "--input", str(fa), "--out",
                 str(tmp_path), "--overwrite"]) == 2
    assert f"{tmp_path}: is a folder: --out names the table" in capsys.readouterr().err


def test_the_python_api_reads_one_dna_string_alike(tiny):
    """embed() took a DNA string for a file name; an empty string or a non-DNA letter in a list
    is an error, as on the command line (X was read as [UNK])."""
    _, _, model_dir, scorer = tiny
    assert groverlm.embed(model_dir, "ACGTACGTAG").shape[0] == 1
    assert len(groverlm.score(scorer, "ACGTACGTAG")) == 1
    for bad, msg in (("", "an empty string is neither a sequence nor a file"),
                     (["ACGT", "AXGT"], r"sequence 1: not DNA \(letters \['X'\]\)")):
        for call in (lambda s: groverlm.embed(model_dir, s), lambda s: groverlm.score(scorer, s)):
            with pytest.raises(GroverError, match=msg):
                call(bad)


def test_threads_hold_while_the_model_runs_and_are_restored(tiny, tmp_path, monkeypatch):
    """embed, score and ism take --threads (a shared machine's share) for their forward passes
    only: the process's own setting comes back after."""
    import importlib

    embed_module = importlib.import_module("groverlm.embed")  # groverlm.embed: the function
    train_module = importlib.import_module("groverlm.train")
    _, genome, model_dir, _ = tiny
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2  # unlike the process's setting, so that a no-op fails
    seen = []

    def spy(real):
        def wrapped(*a, **k):
            seen.append(torch.get_num_threads())
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(train_module, "masked_logits", spy(train_module.masked_logits))
    monkeypatch.setattr(embed_module, "embed_sequences", spy(embed_module.embed_sequences))
    fa = write_fasta(tmp_path / "s.fa", {"s": random_dna(150, 3)})
    runs = {}
    for label, extra in (("default", []), ("threads", ["--threads", str(want)])):
        seen.clear()
        for cmd in (["embed", "--input", str(fa), "--out", str(tmp_path / f"{label}.npy")],
                    ["score", "seqs", "--input", str(fa), "--out", str(tmp_path / f"{label}.tsv")],
                    ["ism", "--genome", str(genome), "--region", "chrA:100-104",
                     "--out", str(tmp_path / f"ism-{label}")]):
            assert main([*cmd, "--model", str(model_dir), "--quiet", *extra]) == 0
            assert torch.get_num_threads() == before
        runs[label] = list(seen)
    assert len(runs["threads"]) >= 3 and set(runs["threads"]) == {want}
    assert set(runs["default"]) == {before}
    np.testing.assert_allclose(np.load(tmp_path / "threads.npy"),
                               np.load(tmp_path / "default.npy"), atol=1e-5)
    assert main(["score", "seqs", "--input", str(fa), "--out", str(tmp_path / "x.tsv"),
                 "--model", str(model_dir), "--threads", "0"]) == 2


def test_the_ism_colour_bar_and_the_snv_scatter_say_what_they_show():
    """ism.png's colour bar had no label, and the report's SNV scatter left out the Spearman
    correlation its table reports beside it."""
    from groverlm.analysis.report import plot_snv_readout
    from groverlm.score import plot_ism

    table = np.array([[np.nan, 1.0, -2.0], [0.5, np.nan, 1.0], [1.0, -1.0, np.nan],
                      [0.0, 2.0, 0.5]])
    heat = plot_ism(table, "ACG", "chr1", 10).axes[1]
    assert heat.child_axes[0].get_ylabel() == "ALT - REF log-likelihood"
    fig = plot_snv_readout({"points": [[-1.0, -0.5], [0.5, 0.2], [2.0, 1.0]], "spearman": 0.81})
    assert fig.axes[0].get_title() == "CTCF motif SNVs in bound sites\n3 SNVs, Spearman 0.81"


def test_ism_importance_of_an_unscored_base_is_nan_without_a_warning():
    """An N in an ism region (no change scored) printed numpy's 'Mean of empty slice' twice."""
    import warnings

    from groverlm.score import ism_importance

    table = np.array([[np.nan, 1.0], [np.nan, np.nan], [np.nan, 3.0], [np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imp = ism_importance(table)
    assert np.isnan(imp[0]) and imp[1] == -2.0



def test_score_and_ism_resume_after_an_interruption(tiny, tmp_path, monkeypatch, capsys):
    """A stopped `score seqs`, `score variants` or `ism` continues after its last saved chunk and
    writes the same table (and prints the same counts) as a run that was never stopped."""
    _, genome, model_dir, _ = tiny
    module = sys.modules["groverlm.score"]
    seq = Genome.read(genome).sequence("chrA", 0, 1200)
    fa = write_fasta(tmp_path / "in.fa", {f"s{i}": seq[100 * i: 100 * i + 90] for i in range(7)})
    vcf = tmp_path / "v.vcf"
    vcf.write_text("\n".join(["##fileformat=VCFv4.2", "##contig=<ID=chrA>",
                              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"] + [
        f"chrA\t{p}\t.\t{seq[p - 1]}\t{'ACGT'.replace(seq[p - 1], '')[0]}\t.\t.\t."
        for p in (3, 150, 300, 450, 600, 750, 900)]) + "\n")  # the first: a clipped flank
    commands = {  # command, the table's path in --out, the function scoring a chunk, its calls
        "seqs": (["score", "seqs", "--input", str(fa)], "", "score_sequences", [3, 1]),
        "variants": (["score", "variants", "--vcf", str(vcf), "--genome", str(genome)], "",
                     "score_variants", [3, 1]),
        "ism": (["ism", "--genome", str(genome), "--region", "chrA:500-504"], "ism.tsv",
                "score_variants", [3, 3, 3]),  # 12 changes
    }
    for name, (cmd, inner, func, rest) in commands.items():
        base = [*cmd, "--model", str(model_dir), "--chunk", "3", "--quiet", "--out"]
        ref, out = tmp_path / f"ref-{name}", tmp_path / f"run-{name}"
        assert main([*base, str(ref)]) == 0
        printed = capsys.readouterr().out
        real, calls = getattr(module, func), []

        def counted(*a, real=real, calls=calls, crash=None, **k):
            calls.append(len(a[2]))
            if len(calls) == crash:
                raise KeyboardInterrupt
            return real(*a, **k)

        monkeypatch.setattr(module, func, lambda *a, **k: counted(*a, crash=2, **k))
        assert main([*base, str(out)]) == 130
        table = out / inner if inner else out
        partial = table.with_name(table.name + ".partial")
        assert partial.exists() and not table.exists()
        calls.clear()
        monkeypatch.setattr(module, func, counted)
        # resumed with another batch size (volatile: it changes no score)
        assert main([*base, str(out), "--batch-size", "5"]) == 0
        assert calls == rest, name  # the first chunk was not scored again
        assert table.read_text() == ((ref / inner) if inner else ref).read_text(), name
        assert capsys.readouterr().out.replace(str(out), str(ref)) == printed
        assert not partial.exists() and not partial.with_suffix(".partial.json").exists()
        monkeypatch.setattr(module, func, real)
        if name == "variants":  # its total came from the chunk before the interruption
            assert "(1 with a flank cut by the contig end)" in printed
    np.testing.assert_array_equal(np.load(tmp_path / "run-ism/ism.npy"),
                                  np.load(tmp_path / "ref-ism/ism.npy"))


def test_a_stopped_score_moved_with_its_model_and_input_resumes(tiny, tmp_path, monkeypatch):
    """`score seqs` stopped, then its folder (model, input, partial table) moved or copied from a
    cluster: the partial table's settings fingerprinted the model and the input with their paths,
    so the rerun scored every chunk again. They are compared by their hashes: the rerun goes on
    after the saved chunk and writes the uninterrupted table; another input there starts over."""
    _, genome, model_dir, _ = tiny
    module = sys.modules["groverlm.score"]
    seq = Genome.read(genome).sequence("chrA", 0, 1200)
    work = tmp_path / "work"
    shutil.copytree(model_dir, work / "model")
    write_fasta(work / "in.fa", {f"s{i}": seq[100 * i: 100 * i + 90] for i in range(7)})

    def args(root: Path, out: str = "t.tsv") -> list[str]:
        return ["score", "seqs", "--input", str(root / "in.fa"), "--model", str(root / "model"),
                "--chunk", "3", "--quiet", "--out", str(root / out)]

    assert main(args(work, "whole.tsv")) == 0
    real, calls = module.score_sequences, []

    def counted(*a, crash=None, **k):
        calls.append(len(a[2]))
        if len(calls) == crash:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(module, "score_sequences", lambda *a, **k: counted(*a, crash=2, **k))
    assert main(args(work)) == 130
    assert (work / "t.tsv.partial").exists()
    shutil.copytree(work, tmp_path / "copy")
    shutil.move(work, tmp_path / "moved")
    calls.clear()
    monkeypatch.setattr(module, "score_sequences", counted)
    assert main(args(tmp_path / "moved")) == 0
    assert calls == [3, 1]  # the first chunk was not scored again
    moved = tmp_path / "moved"
    assert (moved / "t.tsv").read_text() == (moved / "whole.tsv").read_text()
    copy = tmp_path / "copy"  # the copy with another input under the same name: from the start
    write_fasta(copy / "in.fa", {f"s{i}": seq[100 * i + 5: 100 * i + 95] for i in range(7)})
    calls.clear()
    assert main(args(copy)) == 0
    assert calls == [3, 3, 1]


def test_a_partial_table_drops_a_half_written_chunk_and_restarts_under_other_settings(tmp_path):
    from groverlm.manifest import PartialTable

    out = tmp_path / "t.tsv"
    t = PartialTable(out, ["a", "b"], {"x": 1})
    t.add([{"a": "r1", "b": 1.5}, {"a": "r2", "b": math.nan}], 2, total=4)
    with open(t.path, "a") as fh:  # killed in mid-append: half a chunk, not yet counted
        fh.write("r3\t2.5\nr4")
    again = PartialTable(out, ["a", "b"], {"x": 1})
    assert (again.done, again.extra) == (2, {"total": 4})
    assert again.path.read_text() == "a\tb\nr1\t1.5\nr2\t\n"
    other = PartialTable(out, ["a", "b"], {"x": 2})  # other settings: from the start
    assert other.done == 0 and other.path.read_text() == "a\tb\n"
    other.add([{"a": "z", "b": 0.25}], 1)
    other.finish()
    assert out.read_text() == "a\tb\nz\t0.25\n" and not other.path.exists()


def test_variants_near_an_n_run_are_scored_and_counted(tiny, tmp_path, capsys):
    _, _, model_dir, _ = tiny
    seq = random_dna(300, 61) + "N" * 20 + random_dna(580, 62)
    fa = write_fasta(tmp_path / "g.fa", {"c": seq})
    vcf = tmp_path / "v.vcf"
    vcf.write_text("\n".join(["##fileformat=VCFv4.2", "##contig=<ID=c>",
                              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"] + [
        f"c\t{p}\t.\t{seq[p - 1]}\t{'ACGT'.replace(seq[p - 1], '')[0]}\t.\t.\t."
        for p in (330, 700)]) + "\n")  # 330: the N run lies within its 100-nt flank
    out = tmp_path / "o.tsv"
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(fa), "--vcf",
                 str(vcf), "--out", str(out), "--quiet"]) == 0
    assert "2 ok (1 with N in a flank, read as [UNK])" in capsys.readouterr().out
    scores = [r.split("\t")[4] for r in out.read_text().splitlines()[1:]]
    assert all(math.isfinite(float(x)) for x in scores)


def test_two_runs_into_one_table_are_refused_while_the_first_scores(tiny, tmp_path, capsys):
    """The second would append its chunks to the first's OUT.partial."""
    _, _, model_dir, _ = tiny
    fa = write_fasta(tmp_path / "s.fa", {"s": random_dna(80, 3)})
    out = tmp_path / "new" / "t.tsv"  # in a folder the command makes
    args = ["score", "seqs", "--model", str(model_dir), "--input", str(fa), "--out", str(out)]
    with held_elsewhere(out.parent / ".t.tsv.lock", out) as pid:
        assert main(args) == 2
        assert f"{out}: in use by another groverlm process (pid {pid})" in capsys.readouterr().err
        assert not out.exists() and not (out.parent / "t.tsv.partial").exists()
    assert main(args) == 0 and out.exists() and not (out.parent / ".t.tsv.lock").exists()
    assert main([*args[:-1], str(tmp_path / "other" / "u.tsv")]) == 0  # a folder not yet made


def test_variants_are_read_a_chunk_at_a_time(tiny, tmp_path, monkeypatch, capsys):
    """A whole-chromosome VCF holds millions of records: no more than a chunk of them is held while
    the model scores, and the table and its counts are those of the whole file."""
    _, genome, model_dir, _ = tiny
    module = sys.modules["groverlm.score"]
    seq = Genome.read(genome).sequence("chrA", 0, 1200)
    vcf = tmp_path / "v.vcf"
    vcf.write_text("\n".join(["##fileformat=VCFv4.2", "##contig=<ID=chrA>",
                              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"] + [
        f"chrA\t{p}\t.\t{seq[p - 1]}\t{'ACGT'.replace(seq[p - 1], '')[p % 3]}\t.\t.\t."
        for p in range(101, 1101, 25)]) + "\n")  # 40 SNVs
    alive, most = [0], []

    class Counted(Variant):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            alive[0] += 1
            weakref.finalize(self, lambda: alive.__setitem__(0, alive[0] - 1))

    real = module.score_variants

    def spy(*a, **k):
        most.append(alive[0])
        return real(*a, **k)

    monkeypatch.setattr(module, "Variant", Counted)
    monkeypatch.setattr(module, "score_variants", spy)
    out = tmp_path / "o.tsv"
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(genome), "--vcf",
                 str(vcf), "--out", str(out), "--chunk", "4", "--quiet"]) == 0
    assert len(most) == 10 and max(most) <= 4, most
    assert len(out.read_text().splitlines()) == 41
    assert "score variants: 40 ok" in capsys.readouterr().out


@pytest.fixture
def genomes_held(monkeypatch):
    """The record names of every fasta.Genome built meanwhile (what was held in memory)."""
    held: list[list[str]] = []
    init = Genome.__init__

    def spy(self, records, path=None):
        held.append([r.name for r in records])
        init(self, records, path)

    monkeypatch.setattr(Genome, "__init__", spy)
    return held


def test_variants_hold_their_windows_alone(tiny, tmp_path, decoded):
    """`score variants` held the whole genome (hg38: 3.1 GB) for 2 x flank bases around each
    variant: now the records the VCF names are decoded in turn (the others passed over) and only
    the variants' windows kept; the table is the one scored against the genome held whole."""
    _, _, model_dir, _ = tiny
    names = ["chr3", "chr1", "chr4", "chr2", "chr0"]
    seqs = {c: random_dna(2000, 70 + i) for i, c in enumerate(names)}
    fa = write_fasta(tmp_path / "g.fa", seqs)
    at = [("chr1", 500), ("chr4", 1990), ("chr1", 3), ("chrX", 40), ("chr0", 1200)]
    variants = [Variant(c, p, seqs[c][p - 1] if c in seqs else "A",
                        "ACGT".replace(seqs[c][p - 1] if c in seqs else "A", "")[0]) for c, p in at]
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join(f"{v.chrom}\t{v.pos}\t.\t{v.ref}\t{v.alt}\t.\t.\t.\n" for v in variants))
    out = tmp_path / "out.tsv"
    decoded.names.clear()
    assert main(["score", "variants", "--model", str(model_dir), "--genome", str(fa), "--vcf",
                 str(vcf), "--out", str(out), "--flank", "30", "--quiet"]) == 0
    assert decoded.names == ["chr1", "chr4", "chr0"] and decoded.most <= 2
    cfg = ScoringConfig(flank=30)
    whole = Genome.read(fa)
    for v in variants:
        v.status = check_variant(v, whole, cfg)
    score_variants(Scorer.load(model_dir, cfg), whole, variants)
    rows = [r.split("\t") for r in out.read_text().splitlines()[1:]]
    assert [r[7] for r in rows] == [v.status for v in variants] == ["ok"] * 3 + ["off_contig", "ok"]
    for r, v in zip(rows, variants, strict=True):
        assert (r[5], r[6]) == (str(v.ref_tokens), str(v.alt_tokens))
        if v.status == "ok":
            assert float(r[4]) == pytest.approx(v.score, abs=1e-4)


def test_ism_holds_only_the_regions_record(tiny, tmp_path, genomes_held, decoded):
    """`groverlm ism` read the whole genome into memory for a region of at most MAX_ISM_BP; then
    kept the region's record alone, but still decoded the others to pass them over."""
    _, genome, model_dir, _ = tiny
    two = write_fasta(tmp_path / "two.fa", {"chrZ": random_dna(3000, 5),
                                            "chrA": Genome.read(genome)["chrA"].sequence()})
    genomes_held.clear()
    decoded.names.clear()
    assert main(["ism", "--model", str(model_dir), "--genome", str(two), "--region",
                 "chrA:1000-1010", "--out", str(tmp_path / "ism"), "--flank", "20", "--quiet"]) == 0
    assert genomes_held == [["chrA"]] and decoded.names == ["chrA"]


def test_the_score_stage_holds_only_the_held_out_record(tmp_path, monkeypatch, genomes_held):
    """The CTCF readout's variants all lie in the held-out region, yet the stage read the whole
    genome into memory to score them (hg19: 3 GB, one byte a base)."""
    site = "CCGCGNGGNGGCAG".replace("N", "A")
    seq = list(random_dna(6000, 3))
    for p in (1000, 2500, 4000):  # three sites in the region, bound (in a peak)
        seq[p : p + len(site)] = site
    genome = write_fasta(tmp_path / "g.fa", {"chr1": random_dna(6000, 4), "chr2": "".join(seq)})
    motif = tmp_path / "m.jaspar"
    motif.write_text(format_jaspar("MA1", "X", {b: [20 if c == b else 0 for c in site]
                                                for b in "ACGT"}))
    peaks = tmp_path / "peaks.bed"
    peaks.write_text("".join(f"chr2\t{p - 50}\t{p + 50}\n" for p in (1000, 2500, 4000)))
    model = tmp_path / "model"
    model.mkdir()

    def scored(scorer, g, variants, progress=False):
        assert list(g.records) == ["chr2"]
        for i, v in enumerate(variants):
            v.score = float(i % 7)
        return variants

    score_module = sys.modules[Scorer.__module__]  # groverlm.score is also a function's name
    monkeypatch.setattr(Scorer, "load", lambda *a: None)
    monkeypatch.setattr(score_module, "score_variants", scored)
    ctx = SimpleNamespace(out=tmp_path / "score", data=SimpleNamespace(
        ctcf_motif=motif, ctcf_peaks=(peaks,)), task_dir=lambda name: None, model=model,
        held_out=lambda region, stage: Region("chr2", 0, 5000), genome=genome, progress=False,
        relative=str)
    summary = score_module.run(score_module.ScoreConfig(prom300_rows=0), ctx)
    assert summary["ctcf"]["region"] == "chr2:0-5000" and summary["ctcf"]["snvs"] == 3 * 3 * 14
    assert genomes_held == [["chr2"]]  # its one record, loaded once (the scan reads it)
