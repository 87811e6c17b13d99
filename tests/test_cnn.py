"""CNN baseline: learns a planted motif, is reproducible per seed, ignores padding, writes the
metrics.json that `compare`, the runner's summary and the report read."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest

from groverlm.cli import main
from groverlm.cnn import CnnConfig, build_network, encode, one_hot_batch, run_cnn
from groverlm.errors import GroverError
from groverlm.metrics import read_metrics

from .conftest import one_sequence_task

MOTIF = "GGGCGG"  # an SP1 site: the label is whether a sequence holds it
TINY = CnnConfig(channels=16, epochs=6, patience=2, lr=3e-3, batch_size=32, threads=1)


def motif_split(n, seed, lengths=(80, 80)):
    """n random sequences (lengths drawn from the range), half with MOTIF planted; the label is
    whether MOTIF occurs anywhere, so a chance occurrence is labelled right too."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        length = int(rng.integers(lengths[0], lengths[1] + 1))
        s = list(rng.choice(list("ACGT"), length))
        if i % 2:
            p = int(rng.integers(0, length - len(MOTIF) + 1))
            s[p:p + len(MOTIF)] = MOTIF
        seq = "".join(s)
        seqs.append(seq)
        labels.append(int(MOTIF in seq))
    return seqs, labels


def write_task(folder, lengths=(80, 80)):
    folder.mkdir(parents=True)
    for split, (n, seed) in {"train": (300, 0), "dev": (80, 1), "test": (80, 2)}.items():
        seqs, labels = motif_split(n, seed, lengths)
        (folder / f"{split}.csv").write_text(
            "sequence,label\n" + "".join(f"{s},{y}\n" for s, y in zip(seqs, labels, strict=True)))
    return folder


def test_learns_a_motif_and_one_seed_gives_the_same_metrics():
    # ~600 positives: with a few hundred the network memorises train before it finds the motif
    data = [*motif_split(1200, 0), *motif_split(100, 1), *motif_split(100, 2)]
    both = run_cnn(*data, replace(TINY, seeds=(0, 1)), task="motif")
    assert both["model"] == "cnn" and both["seeds"] == [0, 1]
    for run in both["per_seed"]:
        assert run["dev"]["mcc"] > 0.8 and run["test"]["mcc"] > 0.8, run["seed"]
        assert run["test"]["auroc"] > 0.95
        assert 1 <= run["best_epoch"] <= run["epochs_run"] <= TINY.epochs
        assert run["dev"]["mcc"] == max(e["dev_mcc"] for e in run["dev_curve"])
    tests = [r["test"]["mcc"] for r in both["per_seed"]]
    assert both["mcc_mean"] == pytest.approx(np.mean(tests))
    assert both["mcc_std"] == pytest.approx(np.std(tests))
    # seed 0 alone repeats seed 0 of the two-seed run exactly: weights, dropout and batch order
    again = run_cnn(*data, TINY, task="motif")["per_seed"][0]
    first = both["per_seed"][0]
    assert again["test"] == first["test"] and again["dev"] == first["dev"]
    assert [e["train_loss"] for e in again["dev_curve"]] == [
        e["train_loss"] for e in first["dev_curve"]]


def test_test_is_scored_with_the_best_dev_epochs_weights():
    """Early stopping keeps the best dev epoch's weights: with test the same rows as dev, test
    scores what dev scored at the best epoch, not at the last one; training stops `patience`
    epochs after it."""
    data = [*motif_split(200, 0), *motif_split(100, 1)]
    run = run_cnn(*data, *data[2:], replace(TINY, epochs=12, lr=3e-2))["per_seed"][0]
    curve = [e["dev_mcc"] for e in run["dev_curve"]]
    assert run["stopped_early"] and curve[-1] < max(curve)  # the last epoch is not the best
    assert run["epochs_run"] == run["best_epoch"] + TINY.patience
    assert run["best_epoch"] == 1 + int(np.argmax(curve))
    assert run["test"]["mcc"] == run["dev"]["mcc"] == max(curve)


def test_padding_does_not_change_a_sequences_scores():
    import torch

    torch.manual_seed(0)
    model = build_network(2, CnnConfig(channels=8, pool=3)).eval()
    seqs = ["ACGTTGCANNGGGCGGA" * 3, "GATTACA" * 19, "ACG"]  # 51, 133 and 3 bases: partial pools
    codes = encode(seqs)
    with torch.no_grad():
        together = model(*one_hot_batch(codes))
        alone = torch.cat([model(*one_hot_batch([c])) for c in codes])
    torch.testing.assert_close(together, alone)


def test_bad_input_is_a_grover_error():
    seqs, labels = motif_split(20, 0)
    with pytest.raises(GroverError, match="single class"):
        run_cnn(seqs, [0] * 20, seqs, labels, seqs, labels, TINY)
    with pytest.raises(GroverError, match="differ in length"):
        run_cnn(seqs, labels[:-1], seqs, labels, seqs, labels, TINY)
    with pytest.raises(GroverError, match="patience"):
        CnnConfig(patience=0)
    with pytest.raises(GroverError, match="batch size must be at least 2"):  # else nothing trains
        CnnConfig(batch_size=1)


def test_cli_metrics_json_compare_and_errors(tmp_path, capsys):
    task = write_task(tmp_path / "motif", lengths=(60, 100))  # lengths vary: padded batches
    out = tmp_path / "runs" / "cnn"
    args = ["baselines", "cnn", "--task", str(task), "--out", str(out), "--channels", "8",
            "--epochs", "3", "--seeds", "0,1"]
    assert main(args) == 0
    assert "baseline cnn on motif: test MCC" in capsys.readouterr().out
    (r,) = read_metrics(out)
    # the schema fine-tuning writes: first seed's dev/test, per-seed runs, mean and std over seeds
    assert r["model"] == "cnn" and r["task"] == "motif" and r["seeds"] == [0, 1]
    first = r["per_seed"][0]["test"]
    assert [p["seed"] for p in r["per_seed"]] == [0, 1]
    # the record's test is the first seed's, less its rows (kept once, in per_seed)
    assert r["test"] == {k: v for k, v in first.items() if k not in ("y_true", "y_pred")}
    assert len(first["y_pred"]) == len(first["y_true"]) == first["n"]
    assert set(r["test"]) >= {"mcc", "f1", "accuracy", "auroc", "confusion", "n", "labels",
                              "mcc_argmax", "mcc_dev_cut", "threshold"}
    assert r["test"]["n"] == 80 and r["test"]["labels"] == [0, 1]
    assert r["mcc_std"] == pytest.approx(np.std([p["test"]["mcc"] for p in r["per_seed"]]))
    assert r["params"]["channels"] == 8 and r["params"]["train_rows"] == 300
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["schema"] == "groverlm-metrics/1" and metrics["label_map"] == {"0": 0, "1": 1}
    man = json.loads((out / "manifest.json").read_text())
    assert man["stage"] == "baselines-cnn" and man["config"]["epochs"] == 3
    assert man["sizes"] == {"train": 300, "dev": 80, "test": 80}

    # beside TF-IDF in compare's table
    assert main(["baselines", "tfidf", "--task", str(task), "--out", str(tmp_path / "runs" / "tf"),
                 "--k", "4", "--models", "lr"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs")]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert [c.strip() for c in header.strip("|").split("|")] == ["task", "cnn", "tfidf-lr"]

    # a finished folder is kept; a missing task or bad flag is one line and exit 2
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    missing = tmp_path / "nope"
    assert main(["baselines", "cnn", "--task", str(missing), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "not a task folder" in err
    assert not (tmp_path / "x").exists()
    assert main(["baselines", "cnn", "--task", str(task), "--out", str(tmp_path / "x"),
                 "--seeds", "a,b"]) == 2
    assert main(["baselines", "cnn", "--task", str(task), "--out", str(tmp_path / "x"),
                 "--patience", "0"]) == 2


def test_an_interrupted_run_resumes_at_its_first_unfinished_seed(tmp_path, capsys, caplog):
    task = write_task(tmp_path / "motif")
    out = tmp_path / "cnn"
    args = ["baselines", "cnn", "--task", str(task), "--out", str(out), "--channels", "16",
            "--epochs", "6", "--lr", "3e-3", "--batch-size", "32", "--seeds", "0,1",
            "--threads", "1"]
    assert main(args) == 0
    (first,) = read_metrics(out)
    # killed in seed 1: seed 0's result is on disk, the stage's outputs are not
    for f in ("manifest.json", "metrics.json", "seed-1.json"):
        (out / f).unlink()
    seed0 = (out / "seed-0.json").stat().st_mtime_ns
    assert main([*args, "--lr", "1e-3"]) == 2  # other settings would mix with seed 0's run
    assert "cannot resume" in capsys.readouterr().err
    caplog.set_level("INFO", logger="groverlm.cnn")
    assert main(args) == 0
    assert "seed 0: finished by an earlier run" in caplog.text
    assert (out / "seed-0.json").stat().st_mtime_ns == seed0  # reused, not retrained
    (again,) = read_metrics(out)
    assert [p["test"] for p in again["per_seed"]] == [p["test"] for p in first["per_seed"]]
    # --overwrite starts afresh under new settings: no earlier seed is reused
    assert main([*args, "--lr", "1e-3", "--overwrite"]) == 0
    assert (out / "seed-0.json").stat().st_mtime_ns != seed0
    assert read_metrics(out)[0]["params"]["lr"] == 1e-3


def test_runner_baselines_stage_adds_the_cnn_to_the_task_table(tmp_path):
    from groverlm.baselines import run as run_baselines
    from groverlm.config import load_config
    from groverlm.context import Context
    from groverlm.runner import summarize_run

    run = tmp_path / "run"
    task = write_task(run / "tasks" / "prom300")
    (task / "manifest.json").write_text(json.dumps({"task": "prom300",
                                                    "label_map": {"0": 0, "1": 1}}))
    # the tasks stage hands its folders on in its summary
    (run / "tasks" / "manifest.json").write_text(json.dumps(
        {"summary": {"prom300": {"dir": "tasks/prom300"}}}))
    cfg = load_config(None, ["tasks.build=[prom300]", "baselines.bpe=false",
                             "baselines.tfidf.ks=[4]", "baselines.tfidf.models=[lr]",
                             "baselines.cnn.channels=8", "baselines.cnn.epochs=2"])
    ctx = Context(run, run / "baselines", cfg, data=None, progress=False)
    summary = run_baselines(cfg.stage("baselines"), ctx)
    assert set(summary["prom300"]) == {"tfidf-lr", "cnn"}
    assert (run / "baselines" / "cnn" / "prom300" / "manifest.json").is_file()
    table = summarize_run(run).split("task test MCC")[1].splitlines()[1:]
    assert [c.strip() for c in table[0].strip("|").split("|")] == ["task", "cnn", "tfidf-lr"]
    # without baselines.cnn (the default) the stage runs TF-IDF alone
    assert load_config(None).stage("baselines").cnn is None


def test_cli_draws_a_bar_over_the_epochs_unless_quiet(tmp_path, capsys):
    """baselines cnn showed nothing for the minute a demo task takes; its bar counts the epochs of
    every seed, less those a seed's early stop leaves unrun, so it ends at its total."""
    task = write_task(tmp_path / "motif")
    args = ["baselines", "cnn", "--task", str(task), "--channels", "8", "--epochs", "3",
            "--seeds", "0,1"]
    assert main([*args, "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "cnn motif: 100%" in err, err
    # 6 epochs at most: both seeds' runs, early stops taken off (patience 3: none here)
    assert re.search(r"\| 6/6 \[", err), err
    assert main([*args, "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert "cnn motif" not in capsys.readouterr().err


def test_early_stopped_epochs_leave_the_bar_total(capsys, caplog):
    """A seed that stops early takes its unrun epochs off the bar's total: it ends full."""
    data = (*motif_split(120, 0), *motif_split(40, 1), *motif_split(40, 2))
    caplog.set_level("INFO", logger="groverlm.cnn")
    r = run_cnn(*data, replace(TINY, epochs=8, patience=1, lr=3e-2), task="motif", progress=True)
    run = r["per_seed"][0]["epochs_run"]
    assert run < 8  # stopped early (patience 1 on a noisy dev)
    err = capsys.readouterr().err
    assert f"| {run}/{run} [" in err and "cnn motif: 100%" in err, err
    assert " over 1 seed\n" in caplog.text + "\n"  # not "1 seed(s)"


def test_a_model_predicting_one_class_for_every_test_row_is_warned(tmp_path, caplog):
    """On tiny data the CNN can predict one class for every test row: MCC 0, logged as any other
    result. It is now one warning line."""
    task = one_sequence_task(tmp_path / "same")
    assert main(["baselines", "cnn", "--task", str(task), "--out", str(tmp_path / "cnn"),
                 "--epochs", "1", "--channels", "8", "--seeds", "0", "--threads", "1",
                 "--quiet"]) == 0
    assert "cnn on same predicts one class for every test row (seed 0): MCC 0; too little " \
           "training data?" in caplog.text


def test_a_run_keeps_a_baseline_only_if_made_from_the_same_task_and_settings(tmp_path,
                                                                              monkeypatch):
    """The runner hands the baselines stage its folder whatever changed (Stage.checks_parts): a
    finished TF-IDF or CNN part is kept only when its manifest records the task folder (and
    vocabulary) and the settings it would be made from now; else it is made again. A part no
    longer asked for is removed (the report reads every metrics.json under the stage)."""
    from groverlm import baselines
    from groverlm.config import load_config
    from groverlm.context import Context
    from groverlm.manifest import write_manifest

    run = tmp_path / "run"
    for name in ("prom300", "ctcf"):
        write_task(run / "tasks" / name)
        write_manifest(run / "tasks" / name, f"tasks-{name}", {}, [], task=name)
    write_manifest(run / "tasks", "run-tasks", {}, [],
                   summary={n: {"dir": f"tasks/{n}"} for n in ("prom300", "ctcf")})
    made: list[str] = []

    def counted(real):
        def make(task_dir, out, *args, **kwargs):
            made.append(str(out.relative_to(run / "baselines")))
            return real(task_dir, out, *args, **kwargs)
        return make

    for fn in ("tfidf_task", "cnn_task"):
        monkeypatch.setattr(baselines, fn, counted(getattr(baselines, fn)))

    def score(*sets: str) -> list[str]:
        cfg = load_config(None, ["tasks.build=[prom300,ctcf]", "baselines.bpe=false",
                                 "baselines.tfidf.ks=[4]", "baselines.tfidf.models=[lr]",
                                 "baselines.cnn.channels=8", "baselines.cnn.epochs=2", *sets])
        made.clear()
        baselines.run(cfg.stage("baselines"), Context(run, run / "baselines", cfg, None, False))
        return sorted(made)

    assert score() == ["cnn/ctcf", "cnn/prom300", "ctcf", "prom300"]
    assert score("baselines.tfidf.n_jobs=1", "baselines.cnn.threads=2") == []  # volatile
    kept = (run / "baselines" / "prom300" / "metrics.json").stat().st_mtime_ns
    write_manifest(run / "tasks" / "ctcf", "tasks-ctcf", {"window": 50}, [], task="ctcf")
    assert score() == ["cnn/ctcf", "ctcf"]
    assert (run / "baselines" / "prom300" / "metrics.json").stat().st_mtime_ns == kept
    assert score("baselines.cnn.epochs=1") == ["cnn/ctcf", "cnn/prom300"]
    assert score("baselines.cnn=null", "baselines.tasks=[prom300]") == []
    assert sorted(p.name for p in (run / "baselines").iterdir()) == ["prom300"]
    # the run folder moved: its parts record the task's old path, and are kept
    assert score("baselines.tasks=[prom300]") == ["cnn/prom300"]
    shutil.move(run, tmp_path / "moved")
    run = tmp_path / "moved"
    assert score("baselines.tasks=[prom300]") == []
