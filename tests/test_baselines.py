"""TF-IDF baselines: learn planted signals (binary and multi-class), metrics.json, compare."""

from __future__ import annotations

import json

import numpy as np
import pytest

from groverlm.args import stable as volatile_free
from groverlm.baselines import Featurizer, TfidfConfig, run_tfidf
from groverlm.cli import main
from groverlm.errors import GroverError
from groverlm.metrics import read_metrics

from .conftest import one_sequence_task

MOTIFS = ["GGGCGGGGC", "TATAAAAGG", "CACGTGACC"]


def planted(n, n_classes, seed, length=120):
    """Random sequences; class c > 0 carries MOTIFS[c - 1] at a random place, class 0 none."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        c = i % n_classes
        s = list(rng.choice(list("ACGT"), length))
        if c:
            p = int(rng.integers(0, length - 9))
            s[p:p + 9] = MOTIFS[c - 1]
        seqs.append("".join(s))
        labels.append(c)
    return seqs, labels


def planted_task(folder, sizes):
    """A GUE-format folder of `planted` binary splits: {split: (rows, seed)}."""
    folder.mkdir()
    for split, (n, seed) in sizes.items():
        seqs, labels = planted(n, 2, seed)
        (folder / f"{split}.csv").write_text(
            "sequence,label\n" + "".join(f"{s},{y}\n" for s, y in zip(seqs, labels, strict=True)))
    return folder


def test_binary_planted_signal():
    data = [*planted(300, 2, 0), *planted(100, 2, 1), *planted(100, 2, 2)]
    res = run_tfidf(*data, TfidfConfig(ks=(3, 5), seeds=(0, 1), n_estimators=50), task="toy")
    by = {r["model"]: r for r in res}
    assert set(by) == {"tfidf-rf", "tfidf-lr"}
    for r in res:
        assert r["test"]["mcc"] > 0.6, r["model"]
        assert r["params"]["features"] in ("k=3", "k=5")
        assert set(r["params"]["dev_mcc_by_features"]) == {"k=3", "k=5"}
        assert r["test"]["n"] == 100 and len(r["test"]["confusion"]) == 2
        assert r["test"]["auroc"] > 0.8
        for run in r["per_seed"]:  # test applies the cut each seed chose on dev, its rows kept
            assert run["test"]["threshold"] == run["dev"]["threshold"] is not None
            assert len(run["test"]["y_pred"]) == 100
    assert by["tfidf-rf"]["seeds"] == [0, 1] and by["tfidf-lr"]["seeds"] == [0]
    # k=5 sees 5-mers of the 9 bp motif that k=3 drowns in background: chosen on dev
    assert by["tfidf-lr"]["params"]["k"] == 5


def test_features_are_chosen_on_the_dev_metric_asked():
    """next-k-mer reports accuracy and chooses its model's epochs on it: its TF-IDF baselines now
    choose their k-mer length on dev accuracy too (they chose on dev MCC)."""
    data = [*planted(240, 4, 6), *planted(80, 4, 7), *planted(80, 4, 8)]
    for select in ("accuracy", "mcc"):
        [r] = run_tfidf(*data, TfidfConfig(ks=(2, 3, 5), models=("lr",), select=select),
                        task="toy")
        by = r["params"][f"dev_{select}_by_features"]
        assert by[r["params"]["features"]] == max(by.values())
        assert by[r["params"]["features"]] == r["per_seed"][0]["dev"][select]
    with pytest.raises(GroverError, match="select must be one of"):
        TfidfConfig(select="auroc")


def test_the_forest_is_the_same_on_any_core_count():
    """n_jobs is volatile (a run does not redo its baselines for it): only the time may change."""
    data = [*planted(200, 2, 3), *planted(60, 2, 4), *planted(60, 2, 5)]
    runs = [run_tfidf(*data, TfidfConfig(ks=(3,), models=("rf",), n_estimators=20, n_jobs=jobs),
                      task="toy")[0] for jobs in (1, 2, -1)]
    for r in runs[1:]:
        assert r["per_seed"][0]["test"] == runs[0]["per_seed"][0]["test"]  # AUROC: the scores
    assert "n_jobs" not in volatile_free(TfidfConfig())


def test_multiclass_and_shuffled_labels():
    tr, te = planted(400, 4, 3), planted(120, 4, 4)
    res = run_tfidf(*tr, *te, *te, TfidfConfig(ks=(4,), models=("lr",)), task="multi")
    t = res[0]["test"]
    assert t["labels"] == [0, 1, 2, 3] and np.array(t["confusion"]).shape == (4, 4)
    assert t["mcc"] > 0.6 and t["auroc"] > 0.8
    # labels carry no information once shuffled: MCC near 0
    rng = np.random.default_rng(0)
    noise = run_tfidf(tr[0], rng.permutation(tr[1]), *te, *te,
                      TfidfConfig(ks=(4,), models=("lr",)))
    assert abs(noise[0]["test"]["mcc"]) < 0.25


def test_training_subset_of_one_class_is_an_error():
    seqs, labels = planted(40, 2, 5)
    labels = [1] * 36 + [0] * 4  # 4 of 40 rows of class 0: a subset of 3 rows may miss it
    subset_errors = 0
    for seed in range(6):
        cfg = TfidfConfig(ks=(3,), models=("lr",), max_train=3, seeds=(seed,))
        try:
            run_tfidf(seqs, labels, seqs, labels, seqs, labels, cfg)
        except GroverError as err:  # never sklearn's ValueError (a traceback at the command line)
            assert "--max-train" in str(err)
            subset_errors += 1
    assert subset_errors > 0
    # three classes, a subset of two of them: class 1 was never learnt and scored as if it were
    seqs, labels = planted(40, 2, 5)
    labels = [0] * 18 + [1] * 2 + [2] * 20
    cfg = TfidfConfig(ks=(3,), models=("lr",), max_train=10, seeds=(0,))
    with pytest.raises(GroverError, match=r"subset of 10 training rows \(--max-train\) lacks "
                                          r"class id 1 of the training split"):
        run_tfidf(seqs, labels, seqs, labels, seqs, labels, cfg)


@pytest.mark.parametrize("flags, msg", [
    (["--trees", "0"], "--trees must be at least 1"),
    (["--jobs", "0"], "--jobs must be a positive core count"),
    (["--seeds", "0,0"], "seed 0 is listed twice"),
])
def test_bad_forest_flags_are_one_line_and_touch_no_folder(tmp_path, capsys, flags, msg):
    """Were scikit-learn tracebacks (exit 1) after the output folder was made."""
    folder = planted_task(tmp_path / "toy", {"train": (40, 0), "dev": (20, 1), "test": (20, 2)})
    out = tmp_path / "out"
    assert main(["baselines", "tfidf", "--task", str(folder), "--out", str(out), "--k", "3",
                 *flags]) == 2
    assert msg in capsys.readouterr().err and not out.exists()


def test_bpe_features_and_given_tokens(tmp_path):
    from groverlm.bpe.export import export_vocab
    from groverlm.bpe.train import write_training

    from .conftest import random_dna, write_fasta

    genome = write_fasta(tmp_path / "g.fa", {"c": random_dna(20000, 5)})
    write_training(genome, tmp_path / "bpe", 60)
    export_vocab(tmp_path / "bpe", 60, tmp_path / "voc")
    from groverlm.tasks.common import load_bpe_tokenizer

    tok = load_bpe_tokenizer(tmp_path / "voc")
    f = Featurizer(tokenizer=tok)
    seqs = ["ACGTACGTAA", "TTTTGGGG"]
    from_text = f.counts(seqs).toarray()
    given = f.counts([tok.encode(s, add_special_tokens=False).tokens for s in seqs]).toarray()
    np.testing.assert_array_equal(from_text, given)
    assert from_text.shape == (2, tok.get_vocab_size())
    with pytest.raises(GroverError, match="not in the vocabulary"):
        f.counts([["ACGTX"]])


def test_cli_prom300_given_tokens_are_a_perfect_control(tmp_path, capsys, caplog):
    """On token-shuffled Prom300, a bag of the given tokens cannot tell the classes apart (each
    pair has identical features): MCC exactly 0. Re-tokenizing the strings can."""
    from groverlm.bpe.export import export_vocab
    from groverlm.bpe.train import write_training

    from .conftest import random_dna, write_fasta

    rng = np.random.default_rng(0)
    chroms = {f"chr{i}": random_dna(60000, 20 + i) for i in range(1, 4)}
    genome = write_fasta(tmp_path / "g.fa", chroms)
    tss = tmp_path / "tss.tsv"
    tss.write_text("".join(f"chr{c}\t{p}\t{'+-'[int(rng.integers(2))]}\n" for c in (1, 2, 3)
                           for p in range(1000, 59000, 700)))
    write_training(genome, tmp_path / "bpe", 80)
    export_vocab(tmp_path / "bpe", 80, tmp_path / "voc")
    task = tmp_path / "task"
    assert main(["tasks", "prom300", "--genome", str(genome), "--tss", str(tss), "--vocab",
                 str(tmp_path / "voc"), "--out", str(task)]) == 0
    out = tmp_path / "tfidf"
    caplog.set_level("INFO", logger="groverlm.baselines")
    assert main(["baselines", "tfidf", "--task", str(task), "--out", str(out), "--k", "3",
                 "--models", "lr", "--vocab", str(tmp_path / "voc")]) == 0
    # the control working, said as such: not 'predicts one class ...; too little training data?'
    assert "MCC 0 by construction" in caplog.text and "too little" not in caplog.text
    res = {r["model"]: r for r in read_metrics(out)}
    assert res["tfidf-bpe-lr"]["params"]["given_tokens"] is True
    assert res["tfidf-bpe-lr"]["test"]["mcc"] == 0.0
    man = json.loads((out / "manifest.json").read_text())
    assert man["stage"] == "baselines-tfidf" and man["sizes"]["train"] > 0
    assert "test MCC" in capsys.readouterr().out
    assert main(["baselines", "tfidf", "--task", str(task), "--out", str(out)]) == 2


def test_cli_gue_folder_and_compare(tmp_path, capsys):
    folder = planted_task(tmp_path / "toy", {"train": (200, 0), "dev": (60, 1), "test": (60, 2)})
    out = tmp_path / "runs" / "toy"
    assert main(["baselines", "tfidf", "--task", str(folder), "--out", str(out), "--k", "4",
                 "--trees", "30", "--seeds", "0,1,2", "--max-train", "150"]) == 0
    res = read_metrics(out)
    assert [r["model"] for r in res] == ["tfidf-rf", "tfidf-lr"]
    rf = res[0]
    assert len(rf["per_seed"]) == 3 and rf["params"]["train_rows"] == 150
    assert rf["mcc_std"] == pytest.approx(np.std([p["test"]["mcc"] for p in rf["per_seed"]]))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "table.tsv")]) == 0
    printed = capsys.readouterr().out
    assert "| toy " in printed and "±" in printed
    rows = (tmp_path / "table.tsv").read_text().splitlines()
    assert rows[0].startswith("task\tmodel") and len(rows) == 3
    assert main(["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "t.txt")]) == 2
    assert main(["compare", str(tmp_path / "empty_nothing")]) == 2


def test_printed_f1_names_its_class_when_labels_are_words(tmp_path, capsys):
    """F1 is class 1's, the label that sorts second: with words for labels the printout named
    none, so 'F1 0.8' read as the other class's."""
    folder = tmp_path / "words"
    folder.mkdir()
    for split, (n, seed) in {"train": (60, 0), "dev": (20, 1), "test": (20, 2)}.items():
        seqs, labels = planted(n, 2, seed)
        (folder / f"{split}.csv").write_text("sequence,label\n" + "".join(
            f"{s},{'unbound' if y else 'bound'}\n" for s, y in zip(seqs, labels, strict=True)))
    assert main(["baselines", "tfidf", "--task", str(folder), "--out", str(tmp_path / "o"),
                 "--k", "3", "--models", "lr"]) == 0
    assert "F1 of 'unbound' " in capsys.readouterr().out
    numbers = planted_task(tmp_path / "numbers", {"train": (60, 0), "dev": (20, 1), "test": (20, 2)})
    assert main(["baselines", "tfidf", "--task", str(numbers), "--out", str(tmp_path / "n"),
                 "--k", "3", "--models", "lr"]) == 0
    assert ", F1 0." in capsys.readouterr().out  # 0/1 labels: nothing to name


def test_tfidf_draws_a_full_bar_unless_quiet(tmp_path, capsys):
    """baselines tfidf showed nothing for the minute or two its forests take on a demo task; its
    bar counts each feature set and each fit (here 2 k + rf on 2 k and 1 more seed + lr on 2 k)."""
    folder = planted_task(tmp_path / "toy", {"train": (60, 0), "dev": (20, 1), "test": (20, 2)})
    argv = ["baselines", "tfidf", "--task", str(folder), "--k", "3,4", "--trees", "5",
            "--seeds", "0,1"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "tfidf toy: 100%" in err and "7/7" in err, err
    assert main([*argv, "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert "tfidf toy" not in capsys.readouterr().err


def test_a_model_predicting_one_class_for_every_test_row_is_warned(tmp_path, caplog):
    task = one_sequence_task(tmp_path / "same")
    assert main(["baselines", "tfidf", "--task", str(task), "--out", str(tmp_path / "tfidf"),
                 "--k", "3", "--trees", "5", "--seeds", "0,1", "--quiet"]) == 0
    said = [r.getMessage() for r in caplog.records if "one class" in r.getMessage()]
    assert said == ["tfidf-rf on same predicts one class for every test row (every seed): MCC 0; "
                    "too little training data?",
                    "tfidf-lr on same predicts one class for every test row (seed 0): MCC 0; "
                    "too little training data?"]
