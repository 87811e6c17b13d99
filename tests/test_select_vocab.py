"""Vocabulary selection: the selection rule, the pretraining genome (region cut out), and the whole
`select-vocab` run on a tiny genome: fair nucleotide budgets, tables, plot, resume."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from groverlm import pretrain
from groverlm.bpe.train import write_training
from groverlm.cli import main
from groverlm.config import load_config
from groverlm.context import Context
from groverlm.corpus import Region
from groverlm.errors import GroverError
from groverlm.fasta import Genome
from groverlm.manifest import LOCK, SETTINGS, write_json, write_manifest
from groverlm.runner import run_pipeline
from groverlm.select_vocab import (
    LIFT,
    PROBE,
    baseline_rows,
    draw_selection,
    handed_on,
    preflight,
    reference_accuracy,
    reference_styles,
    relative_score,
    select_cycles,
    write_pretrain_genome,
)

from .conftest import held_elsewhere, random_dna, write_fasta


def test_selection_rule_and_ties():
    rows = [{"kind": "bpe", "cycles": 400, "dev_k2": 0.2, "dev_k3": 0.1},  # lifts 2, 2
            {"kind": "bpe", "cycles": 100, "dev_k2": 0.1, "dev_k3": 0.15},  # 1, 3
            {"kind": "bpe", "cycles": 800, "dev_k2": 0.15, "dev_k3": 0.05},
            {"kind": "kmer", "cycles": "", "dev_k2": 0.5, "dev_k3": 0.5},
            {"kind": "baseline", "model": "most-frequent", "dev_k2": 0.1, "dev_k3": 0.05}]
    ref = reference_accuracy(rows, [2, 3])
    assert relative_score(rows[0], [2, 3], ref) == pytest.approx(2.0)
    sel = select_cycles(rows, [2, 3])
    assert sel["cycles"] == 100 and sel["score"] == pytest.approx(2.0)  # tie -> fewer cycles
    assert set(sel["scores"]) == {"100", "400", "800"}  # k-mer models are references only
    assert select_cycles(rows, [2])["cycles"] == 400
    assert relative_score({"dev_k2": ""}, [2], ref) is None
    with pytest.raises(GroverError):
        select_cycles(rows[3:], [2])
    # chosen on dev; test (acc_k) is only reported, and here it would pick the other
    split = [{"kind": "bpe", "cycles": 100, "dev_k2": 0.2, "acc_k2": 0.1},
             {"kind": "bpe", "cycles": 600, "dev_k2": 0.1, "acc_k2": 0.3},
             {"kind": "baseline", "model": "most-frequent", "dev_k2": 0.1, "acc_k2": 0.1}]
    assert select_cycles(split, [2])["cycles"] == 100


def test_the_rule_does_not_reward_guessing_the_most_frequent_kmer():
    # at k = 6 poly-A alone scores 40x chance: a model that learned the k-mer frequencies and
    # nothing else (5,000 cycles) must not win over one that beats the most frequent k-mer at k = 2
    rows = [{"kind": "bpe", "cycles": 100, "dev_k2": 0.124, "dev_k6": 0.0098},
            {"kind": "bpe", "cycles": 5000, "dev_k2": 0.0945, "dev_k6": 0.0100},
            {"kind": "baseline", "model": "most-frequent", "dev_k2": 0.09, "dev_k6": 0.0100}]
    assert select_cycles(rows, [2, 6])["cycles"] == 100
    assert select_cycles(rows[:2], [2, 6])["cycles"] == 5000  # by chance alone it would win
    # a most frequent k-mer absent from the test samples: chance is the floor
    assert reference_accuracy([{"model": "most-frequent", "dev_k2": 0.0}], [2]) == {2: 1 / 16}
    assert reference_accuracy([{"model": "most-frequent", "dev_k2": 0.05}], [2]) == {2: 1 / 16}


def test_baseline_rows_take_every_tfidf_model():
    summary = [{"k": 2, "chance": 1 / 16, "most_frequent_accuracy": 0.1, "tfidf-rf": 0.2,
                "tfidf-lr": 0.3, "most_frequent_dev_accuracy": 0.12},
               {"k": 5, "chance": 4.0**-5, "most_frequent_accuracy": 0.01, "tfidf-lr": 0.02,
                "most_frequent_dev_accuracy": 0.03}]
    rows = {r["model"]: r for r in baseline_rows(summary)}
    # the rule's reference is the most frequent k-mer's dev accuracy: test is only reported
    assert reference_accuracy(list(rows.values()), [2, 5]) == {2: 0.12, 5: 0.03}
    assert set(rows) == {"chance", "most-frequent", "tfidf-lr", "tfidf-rf"}
    assert rows["tfidf-rf"]["acc_k5"] == "" and rows["tfidf-lr"]["acc_k5"] == 0.02
    ref = reference_accuracy(list(rows.values()), [2, 5], "acc_k")
    assert relative_score(rows["most-frequent"], [2, 5], ref, "acc_k") == pytest.approx(1.0)
    assert relative_score(rows["chance"], [2, 5], ref, "acc_k") < 1


def test_pretrain_genome_leaves_the_region_out(tmp_path):
    a, b = random_dna(5_000, 1), random_dna(3_000, 2)
    genome = write_fasta(tmp_path / "g.fa", {"c1": a, "c2": b})
    fasta = write_pretrain_genome(genome, Region("c1", 1_000, 4_000), tmp_path / "o", None)
    g = Genome.read(fasta)
    assert sorted(g.records) == ["c1:0-1000", "c1:4000-5000", "c2"]
    assert g["c1:0-1000"].sequence() == a[:1000] and g["c1:4000-5000"].sequence() == a[4000:]
    assert g["c2"].sequence() == b
    cut = write_pretrain_genome(genome, Region("c1", 1_000, 4_000), tmp_path / "p", 1_500)
    g = Genome.read(cut)
    assert [len(r) for r in g.records.values()] == [1000, 500]
    # the budget runs out in c1; the region's record comes after it and is still cut out
    late = write_pretrain_genome(genome, Region("c2", 0, 2_000), tmp_path / "r", 4_000)
    assert [(n, len(r)) for n, r in Genome.read(late).records.items()] == [("c1:0-4000", 4_000)]
    for where, region, message in [("q", Region("c9"), "--region c9: no record 'c9' in the genome"),
                                   ("s", Region("c9"), "--region c9: no record 'c9'"),
                                   ("t", Region("c2", 0, 9_000), "ends beyond c2 \\(3,000 bp\\)")]:
        with pytest.raises(GroverError, match=message):
            write_pretrain_genome(genome, region, tmp_path / where, 100 if where == "s" else None)
        assert not (tmp_path / where / "genome" / "pretrain.fa").exists()


def test_the_pretraining_budget_counts_acgt_bases_not_n(tmp_path):
    """--pretrain-bp is bases pretrained on, which tokens cover: A/C/G/T, not the N of a gap (hg19's
    chr20 starts with 60 kbp of N; a budget counting them would hold fewer real bases)."""
    a, b = random_dna(2_000, 3), random_dna(1_000, 4)
    genome = write_fasta(tmp_path / "g.fa", {"c1": "N" * 700 + a[:800] + "N" * 300 + a[800:],
                                             "c2": b, "c3": "N" * 50})
    fasta = write_pretrain_genome(genome, Region("c2", 0, 100), tmp_path / "o", 1_500)
    g = Genome.read(fasta)
    assert list(g.records) == ["c1:0-2500"]  # 700 N, 800 bases, 300 N, 700 bases
    assert g["c1:0-2500"].sequence().replace("N", "") == a[:1_500]
    manifest = json.loads((tmp_path / "o" / "genome" / "manifest.json").read_text())
    assert manifest["bases"] == 1_500 and manifest["records"][0]["bases"] == 1_500
    # past c1, the budget reaches into the region's record; a record of N alone adds nothing
    for where, bp, kept, total in (("p", 2_500, [("c1", 3_000), ("c2:100-600", 500)], 2_500),
                                   ("q", 5_000, [("c1", 3_000), ("c2:100-1000", 900)], 2_900)):
        g = Genome.read(write_pretrain_genome(genome, Region("c2", 0, 100), tmp_path / where, bp))
        assert [(n, len(r)) for n, r in g.records.items()] == kept
        manifest = json.loads((tmp_path / where / "genome" / "manifest.json").read_text())
        assert manifest["bases"] == total


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    """A genome with learnable structure (motifs) and its BPE training (60 merges)."""
    root = tmp_path_factory.mktemp("sv")
    rng = np.random.default_rng(1)
    motifs = ["ACGTTGCA", "GGGAAATTTC", "CATCATCAT"]
    parts, n = [], 0
    while n < 120_000:
        p = motifs[rng.integers(3)] if rng.random() < 0.7 else random_dna(5, int(rng.integers(99)))
        parts.append(p)
        n += len(p)
    genome = write_fasta(root / "g.fa", {"c1": "".join(parts)})
    write_training(genome, root / "bpe", 60)
    return genome, root / "bpe"


def sv_args(genome: Path, bpe: Path, out: Path, *extra: str) -> list[str]:
    tiny = ["num_hidden_layers=1", "hidden_size=32", "num_attention_heads=2",
            "intermediate_size=64"]
    return ["select-vocab", "--genome", str(genome), "--bpe", str(bpe), "--region",
            "c1:80000-120000", "--out", str(out), "--cycles", "60,20", "--kmers", "2",
            *[a for s in tiny for a in ("--set", s)], "--sample-nt", "64",
            "--pretrain-batch-size", "8", "--max-steps", "4", "--k", "1,2", "--train-samples",
            "120", "--dev-samples", "50", "--test-samples", "50", "--block", "4000", "--epochs", "1",
            "--threads", "1", "--rf-max-k", "1", "--quiet", *extra]


def read_tsv(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.mark.slow
def test_select_vocab_end_to_end(inputs, tmp_path, capsys):
    genome, bpe = inputs
    out = tmp_path / "sv"
    assert main(sv_args(genome, bpe, out, "--tfidf", "auto")) == 0
    rows = {r["model"]: r for r in read_tsv(out / "table.tsv")}
    assert set(rows) == {"bpe-20", "bpe-60", "kmer-2", "chance", "most-frequent", "tfidf-rf",
                         "tfidf-lr", "tfidf-bpe-rf@bpe-20", "tfidf-bpe-lr@bpe-20",
                         "tfidf-bpe-rf@bpe-60", "tfidf-bpe-lr@bpe-60",  # k-mer TF-IDF once
                         "context-table",  # once, in the baselines
                         "bpe-20-zeroshot", "bpe-60-zeroshot", "kmer-2-zeroshot"}
    for m in ("bpe-20", "bpe-60", "kmer-2"):  # each model's zero-shot readout, from its own run
        nk = json.loads((out / "nextkmer" / m / "manifest.json").read_text())["summary"]
        assert rows[f"{m}-zeroshot"]["kind"] == "zero-shot"
        assert [float(rows[f"{m}-zeroshot"][f"acc_k{r['k']}"]) for r in nk] == pytest.approx(
            [r["zero_shot_accuracy"] for r in nk], abs=1e-4)
    base = json.loads((out / "nextkmer" / "baselines" / "manifest.json").read_text())["summary"]
    assert [float(rows["context-table"][f"acc_k{r['k']}"]) for r in base] == pytest.approx(
        [r["context_table"] for r in base], abs=1e-4)
    models = [rows[m] for m in ("bpe-20", "bpe-60", "kmer-2")]
    # fairness: same steps and about the same nucleotides, from different token counts
    assert len({int(r["steps"]) for r in models}) == 1
    seen = [int(r["nt_seen"]) for r in models]
    assert max(seen) / min(seen) < 1.15
    assert len({int(r["tokens_per_sample"]) for r in models}) == 3
    assert int(rows["kmer-2"]["tokens_per_sample"]) == 32  # 64 nt in 2-mers
    # the same encoder: only the embeddings and the output bias (vocab_size) differ
    assert len({int(r["non_embedding_parameters"]) - int(r["vocab_size"]) for r in models}) == 1
    # the selection follows the rule on the written table
    man = json.loads((out / "manifest.json").read_text())
    table = [{**r, "kind": r["kind"], "cycles": int(r["cycles"]) if r["cycles"] else "",
              **{c: float(r[c]) for c in ("acc_k1", "acc_k2", "dev_k1", "dev_k2") if r[c]}}
             for r in rows.values()]
    assert man["selected"]["cycles"] == select_cycles(table, [1, 2])["cycles"]  # on dev
    # the score the selection compared is in both tables (table.md named dev columns it lacked)
    chosen = f"bpe-{man['selected']['cycles']}"
    assert float(rows[chosen]["dev_lift"]) == pytest.approx(man["selected"]["score"], abs=1e-4)
    md = (out / "table.md").read_text().splitlines()
    head = next(line for line in md if line.startswith("| model"))
    cells = next(line for line in md if line.startswith(f"| {chosen} |")).split("|")
    dev_cell = cells[head.split("|").index(" dev_lift ")]
    assert float(dev_cell) == pytest.approx(man["selected"]["score"], abs=1e-4)
    assert all(rows[m]["dev_k2"] for m in ("bpe-20", "bpe-60", "kmer-2", "most-frequent"))
    assert float(rows["chance"]["acc_k2"]) == pytest.approx(1 / 16)
    assert rows["tfidf-rf"]["acc_k2"] == ""  # --rf-max-k 1
    from groverlm.metrics import find_metrics, read_metrics, results_table

    records = [r for p in find_metrics([out]) for r in read_metrics(p)]
    tasks, models, _ = results_table(records)  # no (task, model) pair twice in the whole run
    assert tasks == ["nextkmer-k1", "nextkmer-k2"] and "tfidf-bpe-lr@bpe-60" in models
    curve = read_tsv(out / "curve.tsv")
    assert [int(r["cycles"]) for r in curve] == [20, 60]
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert "Fair comparison" in (out / "table.md").read_text()
    mcc = [float(rows[m]["mean_mcc"]) for m in ("bpe-20", "bpe-60", "kmer-2")]
    assert man["selected"]["constant_guesses"] == all(abs(x) < 0.01 for x in mcc)
    assert ("Warning" in (out / "table.md").read_text()) == man["selected"]["constant_guesses"]
    # resume: finished sub-runs are skipped
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*/manifest.json")}
    (out / "manifest.json").unlink()
    assert main(sv_args(genome, bpe, out, "--tfidf", "auto")) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/manifest.json")} == stamps
    assert json.loads((out / "manifest.json").read_text())["selected"] == man["selected"]
    assert main(sv_args(genome, bpe, out, "--tfidf", "auto")) == 2  # finished
    (out / "manifest.json").unlink()
    assert main(sv_args(genome, bpe, out, "--tfidf", "auto", "--max-steps", "5")) == 2
    capsys.readouterr()
    assert main(sv_args(genome, bpe, out, "--tfidf", "auto", "--mask-rate", "0.05")) == 2
    assert "pretraining.select.model.mask_rate: 0.022 -> 0.05" in capsys.readouterr().err
    # other next-k-mer settings: refused, unless only that step is redone
    assert main(sv_args(genome, bpe, out, "--lr", "2e-3")) == 2
    assert main(sv_args(genome, bpe, out, "--lr", "2e-3", "--redo-nextkmer")) == 0
    after = {p: p.stat().st_mtime_ns for p in out.glob("*/*/manifest.json")}
    assert all(after[p] == t for p, t in stamps.items() if p.parts[-3] != "nextkmer")
    assert all(after[p] != t for p, t in stamps.items() if p.parts[-3] == "nextkmer")
    rows = {r["model"] for r in read_tsv(out / "table.tsv")}
    assert "tfidf-bpe-lr@bpe-20" not in rows  # --tfidf kmer this time
    # a finished selection too (its manifest read the old results); nothing changed: refused
    assert main(sv_args(genome, bpe, out, "--lr", "1e-3", "--redo-nextkmer")) == 0
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["nextkmer"]["finetune"]["lr"] == 1e-3
    assert main(sv_args(genome, bpe, out, "--lr", "1e-3", "--redo-nextkmer")) == 2


def test_select_vocab_refuses_too_many_cycles(inputs, tmp_path):
    genome, bpe = inputs
    assert main(sv_args(genome, bpe, tmp_path / "o", "--cycles", "20,100")) == 2
    assert main(sv_args(genome, bpe, tmp_path / "o", "--cycles", "a,b")) == 2


def test_select_vocab_checks_its_inputs_before_touching_out(inputs, tmp_path, capsys,
                                                            monkeypatch):
    """Nothing is deleted or recorded for a command that cannot run; a folder that is not a
    selection is never written into; the same genome named another way resumes."""
    genome, bpe = inputs
    run = tmp_path / "run"  # e.g. a run folder given as --out by mistake
    (run / "pretrain" / "model").mkdir(parents=True)
    (run / "pretrain" / "model" / "w").write_text("weights")
    assert main(sv_args(tmp_path / "nothere.fa", bpe, run, "--overwrite")) == 2
    assert "nothere.fa" in capsys.readouterr().err
    assert main(sv_args(genome, bpe, run, "--overwrite")) == 2
    assert "is not a select-vocab folder" in capsys.readouterr().err
    assert (run / "pretrain" / "model" / "w").read_text() == "weights"
    out = tmp_path / "sel"
    for bad, message in ((sv_args(genome, tmp_path, out), "no merges.tsv"),
                         (sv_args(genome, bpe, out, "--kmers", "9"), "--kmers must be between")):
        assert main(bad) == 2
        assert message in capsys.readouterr().err
        assert not out.exists() or not any(out.iterdir())
    # started as ./g.fa from its folder (settings recorded), resumed with the absolute path
    import groverlm.select_vocab as sv

    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(sv, "write_pretrain_genome", stop)
    monkeypatch.chdir(genome.parent)
    assert main(sv_args(Path("./g.fa"), bpe, out)) == 130
    assert (out / "settings.json").is_file()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sv, "write_pretrain_genome", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("reached")))
    with pytest.raises(RuntimeError, match="reached"):  # past the settings check: resumed
        main(sv_args(genome, bpe, out))



def test_another_genome_or_bpe_at_the_same_path_is_a_changed_pretraining_setting(
        inputs, tmp_path, capsys, monkeypatch):
    """--redo-nextkmer kept the pretrained candidates whenever the genome's and BPE folder's paths
    were unchanged, so another file written to the same path was silently reused. Their contents
    are now pretraining settings (refused on the command line, as any); a settings.json from
    before, with paths alone, still resumes and is brought up to date."""
    import groverlm.select_vocab as sv

    genome, bpe = tmp_path / "g.fa", tmp_path / "bpe"
    shutil.copyfile(inputs[0], genome)
    shutil.copytree(inputs[1], bpe)
    out = tmp_path / "sel"

    def stop(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(sv, "write_pretrain_genome", stop)
    assert main(sv_args(genome, bpe, out)) == 130  # settings recorded, then stopped
    saved = json.loads((out / SETTINGS).read_text())
    monkeypatch.setattr(sv, "write_pretrain_genome", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("reached")))
    capsys.readouterr()
    # another genome at the same path: refused, as any other pretraining setting
    original = genome.read_bytes()
    genome.write_bytes(original.replace(b"ACGTTGCA", b"ACGTTGCT", 1))
    assert main(sv_args(genome, bpe, out, "--lr", "2e-3", "--redo-nextkmer")) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "pretraining.genome_sha256" in err, err
    genome.write_bytes(original)
    # a BPE run retrained in place with other merges among those the candidates read: refused
    merges = bpe / "merges.tsv"
    lines = merges.read_text().splitlines(keepends=True)
    merges.write_text("".join([lines[0], lines[2], lines[1], *lines[3:]]))
    assert main(sv_args(genome, bpe, out, "--lr", "2e-3", "--redo-nextkmer")) == 2
    assert "pretraining.merges_sha256" in capsys.readouterr().err
    merges.write_text("".join(lines))
    # a settings.json from before the hashes were recorded: paths alone, accepted as they match
    old = json.loads(json.dumps(saved))
    for key in ("genome_sha256", "merges_sha256"):
        del old["pretraining"][key]
    (out / SETTINGS).write_text(json.dumps(old))
    with pytest.raises(RuntimeError, match="reached"):  # past the settings check: resumed
        main(sv_args(genome, bpe, out, "--lr", "2e-3", "--redo-nextkmer"))
    now = json.loads((out / SETTINGS).read_text())
    assert now["pretraining"] == saved["pretraining"]  # the hashes recorded from now on
    assert now["nextkmer"]["finetune"]["lr"] == 2e-3
    # and with nothing changed (no --redo-nextkmer needed), brought up to date too
    old["nextkmer"] = now["nextkmer"]
    (out / SETTINGS).write_text(json.dumps(old))
    with pytest.raises(RuntimeError, match="reached"):
        main(sv_args(genome, bpe, out, "--lr", "2e-3"))
    assert json.loads((out / SETTINGS).read_text()) == now


def test_a_selection_another_process_writes_is_not_deleted_under_it(inputs, tmp_path, capsys):
    """A second `select-vocab --overwrite` into a selection still running stops in one line; it
    used to delete the first's pretraining folders (lock and all) and train beside it."""
    genome, bpe = inputs
    out = tmp_path / "sel"
    log = out / "pretrain" / "bpe-20" / "log.jsonl"  # the first process's sub-run, mid-way
    log.parent.mkdir(parents=True)
    log.write_text("{}\n")
    (out / SETTINGS).write_text("{}\n")
    with held_elsewhere(out / LOCK, out) as pid:
        assert main(sv_args(genome, bpe, out, "--overwrite")) == 2
        err = capsys.readouterr().err.strip()
        assert f"in use by another groverlm process (pid {pid})" in err and "\n" not in err
        assert log.read_text() == "{}\n" and (out / SETTINGS).is_file()

@pytest.mark.slow
def test_a_sample_too_long_for_one_vocabulary_is_shortened_for_every_one(inputs, tmp_path,
                                                                        monkeypatch, caplog, capsys):
    """Samples were cut at the token cap for short-token vocabularies only (bpe-100 read 1,539 nt
    where the others read 2,000 and the table said about 2000); here 2-mers hit a cap of 24."""
    import groverlm.select_vocab as sv

    monkeypatch.setattr(sv, "MAX_TOKENS", 24)  # 64 nt: 32 2-mers; about 10 bpe-60 tokens
    genome, bpe = inputs
    out = tmp_path / "sv"
    args = sv_args(genome, bpe, out, "--cycles", "60", "--k", "1")
    assert main(args) == 0
    rows = {r["model"]: r for r in read_tsv(out / "table.tsv")}
    assert int(rows["kmer-2"]["tokens_per_sample"]) == 24
    nts = [float(rows[m]["nt_per_sample"]) for m in ("bpe-60", "kmer-2")]
    assert max(nts) / min(nts) < 1.1 and max(nts) < 52  # both about 48 nt, none 64
    sample = json.loads((out / "manifest.json").read_text())["sample_nt"]
    assert sample == {"asked": 64, "used": 48, "limited_by": "kmer-2"}
    assert "about 48 nt" in (out / "table.md").read_text()
    assert any("kmer-2" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    # resumed under the same settings: nothing is redone
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*/manifest.json")}
    (out / "manifest.json").unlink()
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/manifest.json")} == stamps
    # a selection whose candidates read different lengths (cut at the cap) is not resumed
    man = out / "corpus" / "bpe-60" / "manifest.json"
    old = json.loads(man.read_text())
    old["config"]["max_tokens"] = 15
    man.write_text(json.dumps(old))
    (out / "manifest.json").unlink()
    capsys.readouterr()
    assert main(args) == 2
    assert "holds samples of 15 tokens, these settings give" in capsys.readouterr().err


@pytest.mark.parametrize("sets, message", [
    # 512 nt are 128 4-mers (and some 170 tokens of 100-cycle BPE): 256 positions hold them; at
    # one nt per token the check took them for 510 tokens and refused the run
    (["overrides={max_position_embeddings: 256}"], None),
    (["overrides={max_position_embeddings: 64}"],
     "samples of at least 128 tokens (sample_nt 512 in kmer-4's tokens) with [CLS]/[SEP] exceed "
     "the model's 64 positions"),
    # BPE alone: its nt per token is measured after BPE, and checked then (below)
    (["overrides={max_position_embeddings: 64}", "kmers=[]"], None),
])
def test_the_preflight_counts_a_sample_in_its_candidates_tokens(sets, message):
    keys = [f"select_vocab.pretraining.{'model.' if s.startswith('over') else ''}{s}" for s in sets]
    cfg = load_config(None, ["select_vocab.select=true", *keys])
    if message is None:
        preflight(cfg.stage("select_vocab"), cfg)
    else:
        with pytest.raises(GroverError, match=re.escape(message)):
            preflight(cfg.stage("select_vocab"), cfg)


def test_the_preflight_builds_the_candidates_model_config_once(monkeypatch):
    """The model's config was built for the model check, then again for the classifier's window
    check (transformers' config classes, twice per run); now once, the window checked against it."""
    built = []
    real = pretrain.build_config
    monkeypatch.setattr(pretrain, "build_config", lambda *a, **k: built.append(a) or real(*a, **k))
    cfg = load_config(None, ["select_vocab.select=true", "select_vocab.classifier.max_tokens=40",
                             "select_vocab.pretraining.model.overrides="
                             "{max_position_embeddings: 40}"])
    with pytest.raises(GroverError, match=r"^select_vocab.classifier.max_tokens 40 exceeds the "
                                          r"pretrained model's 38 tokens"):
        preflight(cfg.stage("select_vocab"), cfg)
    assert len(built) == 1


def test_samples_longer_than_the_model_fail_once_measured_before_any_corpus(inputs, tmp_path,
                                                                            capsys):
    """Each candidate's tokens per sample are known once its nt per token is measured: samples the
    model cannot hold fail there, not in the first candidate's pretraining after its corpus."""
    genome, bpe = inputs
    out = tmp_path / "sel"
    assert main(sv_args(genome, bpe, out, "--set", "max_position_embeddings=20")) == 2
    err = capsys.readouterr().err
    npt = {p.parent.name: json.loads(p.read_text())["nt_per_token"]
           for p in (out / "vocab").glob("*/nt_per_token.json")}
    name = min(npt, key=npt.get)
    assert f"{out}: {name}'s samples of {round(64 / npt[name])} tokens (64 nt at" in err
    assert "exceed the model's 20 positions" in err and not (out / "corpus").exists()


def test_the_selection_figure_names_every_line_in_a_panel_of_its_own():
    """The legend sat in the first data panel at 6 pt over the BPE curve, the most frequent k-mer
    and a TF-IDF model were both dotted greys, and the selected cycles' line was unnamed."""
    def row(model, kind, accs, lift, **kw):
        return {"model": model, "kind": kind, LIFT: lift, "acc_k2": accs[0], "acc_k3": accs[1],
                **kw}

    rows = [row("bpe-100", "bpe", [0.0985, 0.0415], 3.2, cycles=100),
            row("bpe-600", "bpe", [0.078, 0.0335], 1.2, cycles=600),
            row("kmer-4", "kmer", [0.087, 0.035], 2.1),
            row("chance", "baseline", [0.0625, 0.0156], 1.0),
            row("most-frequent", "baseline", [0.075, 0.0325], 5.1),
            row("tfidf-rf", "baseline", [0.0915, ""], 2.9)]
    fig = draw_selection(rows, [2, 3], selected=100)
    k2, k3, lift, legend = fig.axes
    assert all(a.get_legend() is None for a in (k2, k3, lift))
    assert [t.get_text() for t in legend.get_legend().get_texts()] == [
        "BPE", "kmer-4", "chance", "most-frequent", "tfidf-rf", "selected: 100 cycles"]
    lines = {ln.get_label(): ln for ln in k2.get_lines()}
    assert list(lines["BPE"].get_ydata()) == pytest.approx([9.85, 7.8])  # percent
    assert k2.get_ylabel() == "test top-1 accuracy (%)"
    assert (lines["chance"].get_color(), lines["chance"].get_linestyle()) == ("k", ":")
    assert (lines["most-frequent"].get_color(), lines["most-frequent"].get_linestyle()) == (
        "k", "--")
    assert "tfidf-rf" not in {ln.get_label() for ln in k3.get_lines()}  # no k=3 result
    assert lines["tfidf-rf"].get_ydata()[0] == pytest.approx(9.15)
    assert {ln.get_label() for ln in lift.get_lines()} >= {"BPE", "chance"}
    assert lift.get_lines()[0].get_ydata()[0] == pytest.approx(3.2)  # a ratio, not scaled



def test_no_two_lines_of_the_selection_figure_look_alike():
    """Six colours and four dashes cycled over every reference line gave kmer-6 and the context
    table one orange dash, kmer-4 and TF-IDF + LR one red dash (the chr20 selection's figure)."""
    names = [("kmer-4", "kmer"), ("kmer-5", "kmer"), ("kmer-6", "kmer"),
             ("kmer-4-zeroshot", "zero-shot"), ("kmer-5-zeroshot", "zero-shot"),
             ("kmer-6-zeroshot", "zero-shot"), ("chance", "baseline"),
             ("most-frequent", "baseline"), ("tfidf-lr", "baseline"), ("tfidf-rf", "baseline"),
             ("tfidf-bpe-lr", "baseline"), ("context-table", "baseline")]
    refs = [{"model": n, "kind": kind, LIFT: 1 + i / 20, "acc_k2": 0.1 + i / 200}
            for i, (n, kind) in enumerate(names)]
    styles = reference_styles(refs)
    looks = {n: (to_hex(c), str(ls)) for n, (c, ls) in styles.items()}
    assert set(looks) == {n for n, _ in names} and len(set(looks.values())) == len(looks)
    # a k-mer model and its zero-shot readout share a colour, as BPE's curves do
    assert looks["kmer-5"][0] == looks["kmer-5-zeroshot"][0] != looks["kmer-4"][0]
    # and the figure draws each line so
    bpe = [{"model": f"bpe-{c}", "kind": "bpe", "cycles": c, LIFT: 1.0, "acc_k2": 0.1}
           for c in (100, 600)]
    k2 = draw_selection(bpe + refs, [2], selected=600).axes[0]
    drawn = {ln.get_label(): to_hex(ln.get_color()) for ln in k2.get_lines()}
    assert all(drawn[n] == looks[n][0] for n in looks)


def test_what_the_selection_hands_on_holds_no_path_of_the_run_folder(tmp_path):
    """A selection redone to the same vocabulary in a run folder that had been moved (or under
    another probe_bp) redid the corpus, pretraining and every stage after them: the digest it hands
    on covered the vocabulary folder's nt_per_token.json, which records the probed genome's
    absolute path (and probe_bp), and which only the selection reads. It covers the files that the
    later stages read, and those alone."""
    summary = {"cycles": 20, "vocab": "select_vocab/selection/vocab/bpe-20"}

    def digest(run: str, tokenizer: str = "{}", probe_bp: int = 100) -> dict[str, str]:
        vocab = tmp_path / run / summary["vocab"]
        vocab.mkdir(parents=True, exist_ok=True)
        (vocab / "tokenizer.json").write_text(tokenizer)
        write_json(vocab / PROBE, {"nt_per_token": 3.0, "probe_bp": probe_bp, "genome": str(
            tmp_path / run / "select_vocab" / "selection" / "genome" / "pretrain.fa")})
        write_manifest(vocab, "bpe-export", {"cycles": 20}, [])
        return handed_on(summary, Context(tmp_path / run, tmp_path / run / "select_vocab", None,
                                          None))

    first = digest("run")
    assert digest("moved") == first and digest("run", probe_bp=200) == first
    assert digest("run", tokenizer='{"model": 1}') != first


# the `inputs` genome as a run: its BPE stage and a selection of sv_args' size
RUN_SETS = ["data.tss=null", "data.ctcf_motif=null", "data.ctcf_peaks=[]", "data.repeats=null",
            "data.cpg=null", "tasks.build=[]", "bpe.merges=60", "bpe.cycles=60",
            "corpus.holdout=[c1:80000-120000]", "select_vocab.select=true",
            "select_vocab.pretraining={cycles: [20, 60], kmers: [2], sample_nt: 64, batch_size: 8, "
            "max_steps: 4, threads: 1, model: {overrides: {num_hidden_layers: 1, hidden_size: 32, "
            "num_attention_heads: 2, intermediate_size: 64}, final_eval_samples: 16}}",
            "select_vocab.samples={ks: [1, 2], train_samples: 120, dev_samples: 50, "
            "test_samples: 50, block: 4000}",
            "select_vocab.classifier={epochs: 1, threads: 1}",
            "select_vocab.baselines={rf_max_k: 1, n_estimators: 10, table_bp: 100000}"]


@pytest.mark.slow
def test_a_run_retrains_the_candidates_only_when_their_settings_change(inputs, tmp_path,
                                                                         monkeypatch):
    """`--set select_vocab.classifier.lr=...` in a run removed the stage folder and pretrained
    every candidate again (most of the stage's time); now only the next-k-mer step, the tables and
    the selection are redone, also when stopped midway, with the result of a fresh run. A changed
    pretraining setting or candidate list still pretrains them again."""
    import groverlm.select_vocab as sv

    genome = inputs[0]
    pretrained: list[str] = []  # each candidate pretrained, by name
    real_pretrain, real_nextkmer = sv.pretrain, sv.run_nextkmer
    monkeypatch.setattr(sv, "pretrain", lambda corpus, model, *a, **k: pretrained.append(
        Path(model).name) or real_pretrain(corpus, model, *a, **k))

    def run(folder: str, *sets: str) -> Path:
        cfg = load_config(None, [f"run.dir={tmp_path / folder}", f"data.genome={genome}",
                                 *RUN_SETS, *sets])
        results = run_pipeline(cfg, only=["genome", "bpe", "select_vocab"], progress=False)
        assert results[2].status == "ran"
        return tmp_path / folder / "select_vocab" / "selection"

    def weights(sel: Path) -> dict[Path, tuple[int, int]]:
        files = [p for p in sel.glob("pretrain/*/*") if p.is_file()]
        assert {p.parent.name for p in files} == {"bpe-20", "bpe-60", "kmer-2"}
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}

    def handed_on() -> tuple[int, str]:
        """The selected cycle count, and what the stage hands on to the corpus and later stages."""
        m = json.loads((tmp_path / "run" / "select_vocab" / "manifest.json").read_text())
        return m["summary"]["cycles"], m["handed_on"]

    sel = run("run")
    assert sorted(pretrained) == ["bpe-20", "bpe-60", "kmer-2"]
    first = handed_on()
    models, results = weights(sel), {p: p.stat().st_mtime_ns
                                     for p in sel.glob("nextkmer/*/manifest.json")}
    # another classifier lr, stopped in the second model's next-k-mer fine-tuning, then resumed
    pretrained.clear()
    calls = []

    def stopped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_nextkmer(*args, **kwargs)
    monkeypatch.setattr(sv, "run_nextkmer", stopped)
    with pytest.raises(KeyboardInterrupt):
        run("run", "select_vocab.classifier.lr=2e-3")
    monkeypatch.setattr(sv, "run_nextkmer", real_nextkmer)
    run("run", "select_vocab.classifier.lr=2e-3")
    assert pretrained == [] and weights(sel) == models
    # the corpus and the stages after it read the chosen vocabulary alone: the same choice, done
    assert (handed_on()[1] == first[1]) == (handed_on()[0] == first[0])
    redone = {p: p.stat().st_mtime_ns for p in sel.glob("nextkmer/*/manifest.json")}
    assert set(redone) == set(results) and all(redone[p] != t for p, t in results.items())
    for p in redone:
        if p.parent.name != "baselines":
            assert json.loads(p.read_text())["config"]["finetune"]["lr"] == 2e-3
    # the same tables and selection as a fresh run under the new lr
    fresh = run("fresh", "select_vocab.classifier.lr=2e-3")
    assert (sel / "table.tsv").read_text() == (fresh / "table.tsv").read_text()
    assert (json.loads((sel / "manifest.json").read_text())["selected"]
            == json.loads((fresh / "manifest.json").read_text())["selected"])
    # the run folder moved (an rsync from a cluster): the same genome and BPE at another path,
    # whose candidates are kept there
    shutil.move(tmp_path / "run", tmp_path / "moved")
    pretrained.clear()
    run("moved", "select_vocab.classifier.lr=3e-3")
    assert pretrained == []
    shutil.move(tmp_path / "moved", tmp_path / "run")
    # a pretraining setting: every candidate pretrained again
    pretrained.clear()
    run("run", "select_vocab.classifier.lr=2e-3", "select_vocab.pretraining.lr=1e-3")
    assert sorted(pretrained) == ["bpe-20", "bpe-60", "kmer-2"]
    assert not set(weights(sel).items()) & set(models.items())
    # a candidate removed: gone, not kept as if compared (the list sets every sample's length)
    pretrained.clear()
    run("run", "select_vocab.classifier.lr=2e-3", "select_vocab.pretraining.lr=1e-3",
        "select_vocab.pretraining.cycles=[20]")
    assert sorted(pretrained) == ["bpe-20", "kmer-2"]
    assert not (sel / "pretrain" / "bpe-60").exists()
    assert "bpe-60" not in {r["model"] for r in read_tsv(sel / "table.tsv")}
    # no selection asked: none is left to be read as this run's
    run("run", "select_vocab.select=false")
    assert not sel.exists()
    assert handed_on()[1] != first[1]  # bpe/vocab, not the selection's copy
