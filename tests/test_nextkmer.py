"""Next-k-mer: sample drawing (no N, no shared bases between splits, labels), the baselines, and the
`nextkmer` command end to end with resume."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from groverlm.cli import build_parser, main
from groverlm.corpus import Region
from groverlm.errors import GroverError
from groverlm.fasta import Genome
from groverlm.kmer_vocab import write_kmer_vocab
from groverlm.kmers import index_to_kmer, kmer_to_index
from groverlm.metrics import read_metrics
from groverlm.nextkmer import (
    NextKmerBaselinesConfig,
    NextKmerSamplesConfig,
    Samples,
    draw_samples,
    genome_counts,
    kmer_classifier,
    most_frequent,
    run_nextkmer,
    table_record,
    table_scores,
    valid_starts,
    zero_shot_scores,
)

from .conftest import random_dna, write_fasta
from .test_finetune import cut_short, make_model


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Path:
    """One record with N runs inside the region, and a biased composition (so that the most
    frequent k-mer is well defined)."""
    root = tmp_path_factory.mktemp("nk")
    seq = random_dna(60_000, 11, alphabet="AAACGTT")
    seq = seq[:21_000] + "N" * 30 + seq[21_030:33_333] + "NNN" + seq[33_336:]
    return write_fasta(root / "g.fa", {"chrX": random_dna(5_000, 1), "chr1": seq})


@pytest.mark.parametrize("command", ["nextkmer", "select-vocab"])
def test_max_train_is_not_offered_where_it_is_refused(command, capsys):
    """--max-train always fails in next-k-mer (the model alone would train on fewer contexts:
    check_no_max_train), so --help does not list it; given anyway, as to finetune, it is still
    parsed, for that error naming --train-samples rather than argparse's 'unrecognized'."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--max-train" not in capsys.readouterr().out
    assert "--max-train" in build_parser(["finetune"])._command(["finetune"]).format_help()
    inputs = {"nextkmer": ["--model", "m"], "select-vocab": ["--bpe", "b"]}[command]
    argv = [command, *inputs, "--genome", "g", "--region", "chr1", "--out", "o", "--max-train",
            "50"]
    assert build_parser(argv).parse_args(argv).max_train == 50


def test_settings_a_resume_or_a_fair_comparison_could_not_survive(genome, tmp_path):
    import dataclasses

    with pytest.raises(GroverError, match="must differ"):  # a YAML list repeating a k
        NextKmerSamplesConfig(ks=(2, 2))
    with pytest.raises(GroverError, match="--train-samples"):  # the model alone on fewer rows
        run_nextkmer(None, None, tmp_path, dataclasses.replace(kmer_classifier(), max_train=5))
    # the same positions in another FASTA are other samples: a resume must not reuse results
    cfg = NextKmerSamplesConfig(ks=(2,), context=20, train_samples=30, dev_samples=10,
                                test_samples=10, block=2_000)
    s = draw_samples(Genome.read(genome), Region("chr1", 10_000, 50_000), cfg)
    other = dataclasses.replace(s, contexts={k: [c[::-1] for c in v] for k, v in s.contexts.items()})
    assert other.starts is s.starts and other.fingerprint() != s.fingerprint()


def test_samples_avoid_n_and_never_share_bases(genome):
    g = Genome.read(genome)
    cfg = NextKmerSamplesConfig(ks=(2, 3), context=20, train_samples=300, dev_samples=60,
                         test_samples=80, block=2_000, seed=4)
    region = Region("chr1", 10_000, 50_000)
    s = draw_samples(g, region, cfg)
    seq = g["chr1"].sequence()
    intervals = {}
    for split, n in cfg.wanted().items():
        starts = s.starts[split]
        assert len(starts) == n == len(set(starts.tolist()))
        assert (starts >= 10_000).all() and (starts + cfg.span <= 50_000).all()
        for p, c, f in zip(starts, s.contexts[split], s.following[split], strict=True):
            assert c == seq[p : p + 20] and f == seq[p + 20 : p + 23]
            assert "N" not in c + f
            assert p // 2_000 == (p + cfg.span - 1) // 2_000  # one block
        intervals[split] = {int(p) // 2_000 for p in starts}
        for k in (2, 3):
            assert s.labels(split, k).tolist() == [kmer_to_index(f[:k])
                                                   for f in s.following[split]]
    assert not intervals["train"] & intervals["dev"]
    assert not intervals["train"] & intervals["test"]
    assert not intervals["dev"] & intervals["test"]
    again = draw_samples(g, region, cfg)
    assert all((again.starts[k] == s.starts[k]).all() for k in s.starts)  # seeded
    other = draw_samples(g, region, NextKmerSamplesConfig(**{**cfg.__dict__, "seed": 5}))
    assert any((other.starts[k] != s.starts[k]).any() for k in s.starts)


def test_valid_starts_and_errors(genome):
    g = Genome.read(genome)
    ok = valid_starts(g["chr1"], 20_000, 22_000, 10, 1_000)
    pos = 20_000 + np.flatnonzero(ok)
    assert not ((pos + 10 > 21_000) & (pos < 21_030)).any()  # never reads the N run
    assert ((pos % 1_000) <= 990).all()
    # exactly the starts whose 10 bases are A/C/G/T, in range, and inside one block
    seq = g["chr1"].sequence()
    for a, b in ((20_500, 23_000), (32_800, 33_950)):  # the N runs at 21,000 and 33,333
        ok = valid_starts(g["chr1"], a, b, 10, 1_000)
        assert (a + np.flatnonzero(ok)).tolist() == [
            p for p in range(a, b - 9) if p // 1_000 == (p + 9) // 1_000
            and "N" not in seq[p : p + 10]]
    cfg = NextKmerSamplesConfig(ks=(2,), context=20, train_samples=10_000, dev_samples=10,
                         test_samples=10, block=1_000)
    with pytest.raises(GroverError, match="fewer than"):
        draw_samples(g, Region("chr1", 0, 12_000), cfg)
    with pytest.raises(GroverError, match="usable block"):
        draw_samples(g, Region("chr1", 0, 1_500), cfg)
    with pytest.raises(GroverError, match="no record"):
        draw_samples(g, Region("chrZ"), cfg)


def test_most_frequent():
    assert most_frequent(np.array([3, 1, 1, 3, 2]), np.array([1, 1, 2, 0])) == (1, 0.5)


def test_zero_shot_readout_marginalises_over_tokens_that_agree_with_the_context():
    # vocabulary: two specials, then A C G T AC ACG GT; a context ending in token "A"
    strings = ["", "", "A", "C", "G", "T", "AC", "ACG", "GT"]
    train = np.array([kmer_to_index(x) for x in ["CG", "CG", "CT", "TA"]])  # add-one below
    p_last = np.zeros((1, 9))
    p_last[0, [2, 6, 7, 4]] = [0.2, 0.3, 0.4, 0.1]  # "G" disagrees with the context's "A"
    p_after = np.zeros((1, 9))
    p_after[0, 8] = 1.0  # after the whole context: "GT"
    s = zero_shot_scores(p_after, p_last, np.array([2]), strings, 2, train)[0]
    # "ACG" -> next two bases CG; "AC" -> C then the training k-mers starting with C (CG 3, CT 2,
    # CA 1, CC 1: add-one); "A" itself -> the appended mask's "GT"; weights renormalised over
    # the agreeing 0.9
    want = np.zeros(16)
    want[kmer_to_index("CG")] += 0.4 + 0.3 * 3 / 7
    want[kmer_to_index("CT")] += 0.3 * 2 / 7
    want[kmer_to_index("CA")] += 0.3 / 7
    want[kmer_to_index("CC")] += 0.3 / 7
    want[kmer_to_index("GT")] += 0.2
    np.testing.assert_allclose(s, want / 0.9)
    assert s.sum() == pytest.approx(1.0)


def test_context_table_counts_the_genome_outside_the_region(tmp_path):
    seq = "ACGT" * 125 + "T" * 500  # outside the region: ACGT repeats; inside: a T run
    fa = write_fasta(tmp_path / "g.fa", {"chr1": seq, "chr2": "GGGG"})
    counts, bases = genome_counts(fa, Region("chr1", 500, 1000), 6, 10_000)
    assert bases == 504 and counts.sum() == 495 + 0  # chr2 is shorter than a 6-mer
    assert counts[kmer_to_index("TTTTTT")] == 0
    capped, used = genome_counts(fa, Region("chr1", 500, 1000), 6, 100)
    assert used == 100 and capped.sum() == 95
    scores = table_scores(counts, 6, 3, 2, ["GGACG", "CCGTA"])
    assert scores[0].argmax() == kmer_to_index("TA") and scores[1].argmax() == kmer_to_index("CG")
    # order 3 + k 2 from 6-mer counts: the 5-mers that end 6-mers (one per 6-mer)
    assert scores.sum() == pytest.approx(2 * 495 / 4, rel=0.05)
    # N is no base of the budget nor of the count: 200 N first, then the same 100 bases are read
    fa = write_fasta(tmp_path / "n.fa", {"chr1": "N" * 200 + seq, "chr2": "GGGG"})
    capped_n, used_n = genome_counts(fa, Region("chr1", 700, 1200), 6, 100)
    assert used_n == 100 and np.array_equal(capped_n, capped)
    assert genome_counts(fa, Region("chr1", 700, 1200), 6, 10_000)[1] == 504


def test_context_table_keeps_the_order_best_on_dev(tmp_path):
    """Outside the region AACCGGTT repeats: one base before does not tell the next (A is followed
    by A or C), two always do, so order 2 is kept (longer ones tie: the shorter wins)."""
    fa = write_fasta(tmp_path / "g.fa", {"chr1": "AACCGGTT" * 200 + random_dna(1000, 3)})
    counts, bases = genome_counts(fa, Region("chr1", 1600, 2600), 6, 10**6)
    unit = "AACCGGTT" * 3
    contexts = [unit[i : i + 8] for i in range(8)]
    following = [unit[i + 8] for i in range(8)]
    cfg = NextKmerSamplesConfig(ks=(1,), context=8, train_samples=8, dev_samples=8,
                                test_samples=8, block=100)
    samples = Samples("chr1", cfg, {s: np.arange(8) for s in ("train", "dev", "test")},
                      {s: contexts for s in ("train", "dev", "test")},
                      {s: following for s in ("train", "dev", "test")})
    y = {s: samples.labels(s, 1) for s in ("dev", "test")}
    r = table_record(counts, 6, samples, 1, y, bases)
    assert r["params"]["order"] == 2 and r["params"]["dev_accuracy"] == 1.0
    assert r["test"]["accuracy"] == 1.0


def test_context_table_counts_many_scaffolds_at_once(tmp_path, monkeypatch):
    """A fragmented assembly: the width-mers of every record are counted, and the 4**12 count
    array is not rebuilt per record (300 scaffolds took 9 s that way, a 50,000-scaffold genome
    hours): one bincount for all of them."""
    fa = write_fasta(tmp_path / "g.fa", {f"s{i}": random_dna(100, i) for i in range(300)})
    bincount, calls = np.bincount, []
    monkeypatch.setattr(np, "bincount", lambda *a, **k: calls.append(1) or bincount(*a, **k))
    counts, bases = genome_counts(fa, Region("s0"), 12, 10**9)
    assert bases == 299 * 100 and counts.sum() == 299 * (100 - 11) and len(calls) == 1


def nk_args(model: Path, genome: Path, out: Path, *extra: str) -> list[str]:
    return ["nextkmer", "--model", str(model), "--genome", str(genome), "--region",
            "chr1:0-60000", "--out", str(out), "--k", "1,2", "--context", "16",
            "--train-samples", "160", "--dev-samples", "60", "--test-samples", "60", "--block",
            "3000", "--epochs", "1", "--lr", "1e-3", "--threads", "1", "--quiet", *extra]


def test_nextkmer_end_to_end(genome, tmp_path, capsys):
    write_kmer_vocab(2, tmp_path / "v2")
    model = make_model(tmp_path / "model", tmp_path / "v2")
    out = tmp_path / "nk"
    assert main(nk_args(model, genome, out)) == 0
    meta = json.loads((out / "metrics.json").read_text())
    rows = {r["k"]: r for r in meta["summary"]}
    with open(out / "samples.tsv") as fh:
        samples = list(csv.DictReader(fh, delimiter="\t"))
    assert len(samples) == 160 + 60 + 60
    for k in (1, 2):
        r = rows[k]
        assert r["chance"] == 4.0**-k and r["classes"] == 4**k
        train = np.array([kmer_to_index(s["next"][:k]) for s in samples if s["split"] == "train"])
        test = np.array([kmer_to_index(s["next"][:k]) for s in samples if s["split"] == "test"])
        label, acc = most_frequent(train, test)
        assert r["most_frequent_accuracy"] == pytest.approx(acc)
        assert r["most_frequent_kmer"] == index_to_kmer(label, k)
        assert 0.0 <= r["accuracy"] <= 1.0
        assert {"tfidf-rf", "tfidf-lr"} <= set(r)
        # the model against the best TF-IDF, paired over the 60 test contexts
        v = r["vs_tfidf"]
        best = max(("tfidf-rf", "tfidf-lr"), key=lambda m: r[m])
        assert v["baseline"] == best and v["rows"] == 60 and v["metric"] == "accuracy"
        assert v["difference"] == pytest.approx(r["accuracy"] - r[best])
        assert v["low"] <= v["difference"] <= v["high"]
    records = read_metrics(out)
    assert {(x["task"], x["model"]) for x in records} == {
        (f"nextkmer-k{k}", m) for k in (1, 2)
        for m in ("deberta-v2-model", "deberta-v2-model-zeroshot", "tfidf-rf", "tfidf-lr", "context-table")}
    for k in (1, 2):  # the zero-shot readout and the table, scored on the same 60 contexts
        mine = {x["model"]: x for x in records if x["task"] == f"nextkmer-k{k}"}
        assert rows[k]["zero_shot_accuracy"] == mine["deberta-v2-model-zeroshot"]["test"]["accuracy"]
        assert not mine["deberta-v2-model-zeroshot"].get("baseline") and mine["context-table"]["baseline"]
        assert rows[k]["context_table"] == mine["context-table"]["test"]["accuracy"]
        assert rows[k]["zero_shot_vs_table"]["rows"] == 60
    for x in records:  # TF-IDF's features chosen on the figure reported, as the model's epochs
        if x["model"].startswith("tfidf"):
            assert "dev_accuracy_by_features" in x["params"], x["params"]
    bert = {x["task"]: x for x in records if x["model"] == "deberta-v2-model"}
    assert bert["nextkmer-k2"]["test"]["accuracy"] == pytest.approx(rows[2]["accuracy"])
    assert bert["nextkmer-k2"]["params"]["class_weights"] == "off"
    assert bert["nextkmer-k2"]["test"]["labels"] == list(range(16))
    # resume: a finished k is read back, not recomputed
    stamp = (out / "k2" / "k.json").stat().st_mtime_ns
    (out / "manifest.json").unlink()
    assert main(nk_args(model, genome, out)) == 0
    assert (out / "k2" / "k.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "metrics.json").read_text())["summary"] == meta["summary"]
    assert main(nk_args(model, genome, out)) == 2  # finished: refuses without --overwrite
    (out / "manifest.json").unlink()
    # a model retrained in place between the interruption and the rerun: its finished k's came
    # from the other model, so the rerun is refused (the settings named the model by path only)
    saved = {f.name: f.read_bytes() for f in model.iterdir() if f.is_file()}
    make_model(model, tmp_path / "v2", seed=1)
    assert main(nk_args(model, genome, out)) == 2
    assert "model_sha256" in capsys.readouterr().err
    for name, data in saved.items():
        (model / name).write_bytes(data)
    assert main([*nk_args(model, genome, out), "--seed", "3"]) == 2  # other samples: refused
    assert main([*nk_args(model, genome, out), "--seed", "3", "--overwrite"]) == 0


def test_nextkmer_bad_region(genome, tmp_path):
    write_kmer_vocab(2, tmp_path / "v2")
    model = make_model(tmp_path / "model", tmp_path / "v2")
    args = nk_args(model, genome, tmp_path / "o")
    args[args.index("chr1:0-60000")] = "chr1:50-40"
    assert main(args) == 2
    args[args.index("chr1:50-40")] = "chr1:0-99999999"
    assert main(args) == 2


def test_nextkmer_without_bases_outside_the_region_skips_the_table(genome, tmp_path):
    write_kmer_vocab(2, tmp_path / "v2")
    model = make_model(tmp_path / "model", tmp_path / "v2")
    only = write_fasta(tmp_path / "chr1.fa", {"chr1": Genome.read(genome)["chr1"].sequence()})
    out = tmp_path / "nk"
    args = nk_args(model, only, out, "--no-zero-shot")
    args[args.index("--k") + 1] = "1"
    assert main(args) == 0  # the region is the whole FASTA: nothing to count a table on
    [row] = json.loads((out / "metrics.json").read_text())["summary"]
    assert "context_table" not in row and "vs_table" not in row and "vs_tfidf" in row
    assert "context-table" not in {x["model"] for x in read_metrics(out)}


def test_tfidf_baselines_draw_their_bar_when_asked(tmp_path, capsys):
    """next-k-mer's (and select-vocab's) TF-IDF baselines drew no bar, whatever the progress
    setting: their forests were the only silent fits of a run."""
    rng = np.random.default_rng(0)
    contexts = ["".join(rng.choice(list("ACGT"), 8)) for _ in range(30)]
    following = ["".join(rng.choice(list("ACGT"), 1)) for _ in range(30)]
    cfg = NextKmerSamplesConfig(ks=(1,), context=8, train_samples=10, dev_samples=10,
                                test_samples=10, block=100)
    samples = Samples("chr1", cfg, {s: np.arange(10) for s in ("train", "dev", "test")},
                      {s: contexts[i * 10:(i + 1) * 10] for i, s in enumerate(("train", "dev", "test"))},
                      {s: following[i * 10:(i + 1) * 10] for i, s in enumerate(("train", "dev", "test"))})
    bcfg = NextKmerBaselinesConfig(tfidf="kmer", ks=(2,), n_estimators=5, table=False)
    run_nextkmer(None, samples, tmp_path / "on", kmer_classifier(), bcfg, progress=True)
    err = capsys.readouterr().err
    assert "tfidf nextkmer-k1: 100%" in err, err  # 1 feature set, a forest and an LR fit
    assert "3/3" in err, err
    run_nextkmer(None, samples, tmp_path / "off", kmer_classifier(), bcfg, progress=False)
    assert "tfidf nextkmer-k1" not in capsys.readouterr().err


def test_a_moved_folder_resumes_an_interrupted_nextkmer_where_it_stopped(genome, tmp_path,
                                                                         caplog):
    """A folder holding the model and an interrupted next-k-mer, moved (`mv runs/a runs/b`): its
    settings named the model by its old path, so the rerun was refused ('cannot resume ... model:
    old -> new'). The model is compared by its hash: the finished k is kept, the cut one goes on
    from its checkpoint, and the results are an uninterrupted run's."""
    write_kmer_vocab(2, tmp_path / "v2")

    def args(root: Path) -> list[str]:
        return nk_args(root / "model", genome, root / "nk", "--epochs", "2", "--no-zero-shot",
                       "--tfidf", "none", "--no-table")

    for root in ("whole", "run"):
        make_model(tmp_path / root / "model", tmp_path / "v2")
    assert main(args(tmp_path / "whole")) == 0
    cut_short(lambda: main(args(tmp_path / "run")), 5)  # k=1: 2 dev epochs, its test; k=2: 1
    out = tmp_path / "run" / "nk"
    assert (out / "k1" / "k.json").exists() and not (out / "k2" / "k.json").exists()
    assert list((out / "k2" / "seed-0" / "checkpoints").glob("step-*"))
    shutil.move(tmp_path / "run", tmp_path / "moved")
    out = tmp_path / "moved" / "nk"
    k1 = (out / "k1" / "k.json").stat().st_mtime_ns
    caplog.set_level("INFO", logger="groverlm.train")
    assert main(args(tmp_path / "moved")) == 0
    assert (out / "k1" / "k.json").stat().st_mtime_ns == k1  # kept, not redone
    assert "resumed from" in caplog.text  # k=2 from its first epoch's checkpoint
    def results(nk: Path) -> list:  # each k's figures, less its time
        return [{k: v for k, v in row.items() if k != "seconds"}
                for row in json.loads((nk / "metrics.json").read_text())["summary"]]

    assert results(out) == results(tmp_path / "whole" / "nk")
    assert [r["per_seed"][0]["dev_curve"] for r in read_metrics(out)] == [
        r["per_seed"][0]["dev_curve"] for r in read_metrics(tmp_path / "whole" / "nk")]
