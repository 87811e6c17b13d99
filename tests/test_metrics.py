"""Metrics against hand-computed values, and the metrics.json schema round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm.errors import GroverError
from groverlm.metrics import (
    _mcc_of_counts,
    _resampled,
    best_against_best,
    classification_metrics,
    comparison_lines,
    dev_metrics,
    find_metrics,
    format_table,
    make_result,
    paired_difference,
    read_metrics,
    results_table,
    scored_metrics,
    write_metrics,
)


def test_binary_by_hand():
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    p = [1, 1, 0, 0, 0, 1, 0, 1]
    tp, tn, fp, fn = 3, 3, 1, 1
    m = classification_metrics(y, p, np.array([0.9, 0.8, 0.4, 0.1, 0.2, 0.7, 0.3, 0.6]))
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m["mcc"] == pytest.approx(mcc)
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["confusion"] == [[tn, fp], [fn, tp]]
    # AUROC: fraction of (positive, negative) pairs ranked right: 0.4 and 0.6 lose to 0.7
    assert m["auroc"] == pytest.approx(14 / 16)


def test_multiclass_by_hand():
    y = [0, 0, 1, 1, 2, 2]
    p = [0, 1, 1, 1, 2, 0]
    c = np.zeros((3, 3))
    for a, b in zip(y, p, strict=True):
        c[a, b] += 1
    # Gorodkin's multi-class MCC from the confusion matrix
    t, s, n = c.sum(1), c.sum(0), c.sum()
    mcc = (np.trace(c) * n - t @ s) / math.sqrt((n * n - s @ s) * (n * n - t @ t))
    scores = np.eye(3)[y] * 0.8 + 0.1  # perfect ranking
    m = classification_metrics(y, p, scores)
    assert m["mcc"] == pytest.approx(mcc)
    assert m["confusion"] == c.astype(int).tolist()
    assert m["auroc"] == pytest.approx(1.0)
    f1s = [2 * c[i, i] / (t[i] + s[i]) for i in range(3)]
    assert m["f1"] == pytest.approx(np.mean(f1s))


def test_auroc_undefined_with_one_class_and_labels_fixed():
    m = classification_metrics([1, 1], [1, 0], np.array([0.9, 0.1]), labels=[0, 1, 2])
    assert m["auroc"] is None
    assert len(m["confusion"]) == 3


def _result(task, model, mccs):
    runs = [{"seed": i, "test": {"mcc": v}, "dev": {"mcc": v}} for i, v in enumerate(mccs)]
    return make_result(task, model, runs)


def test_metrics_file_round_trip_and_table(tmp_path):
    r = _result("prom300", "tfidf-lr", [0.4, 0.6])
    assert r["mcc_mean"] == pytest.approx(0.5) and r["mcc_std"] == pytest.approx(0.1)
    write_metrics(tmp_path / "a", "prom300", [r, _result("prom300", "tfidf-rf", [0.3])])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.json").write_text(json.dumps(_result("ctcf", "grover", [0.7])))
    files = find_metrics([tmp_path])
    assert [f.parent.name for f in files] == ["a", "b"]
    records = [x for f in files for x in read_metrics(f)]
    tasks, models, cells = results_table(records)
    assert tasks == ["ctcf", "prom300"] and models == ["grover", "tfidf-lr", "tfidf-rf"]
    md = format_table(tasks, models, cells)
    assert "0.500 ± 0.100" in md and "| ctcf " in md and " - " in md
    tsv = format_table(tasks, models, cells, "tsv").splitlines()
    assert tsv[0].split("\t") == ["task", "model", "mcc_mean", "mcc_std", "seeds"]
    assert len(tsv) == 4
    with pytest.raises(GroverError, match="found twice"):
        results_table(records + records[:1])


def test_bad_metrics_files(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text('{\n  "results": [\n oops')
    with pytest.raises(GroverError, match=r"metrics.json:3:"):
        read_metrics(bad)
    bad.write_text('{"something": 1}')
    with pytest.raises(GroverError, match="not a groverlm metrics file"):
        read_metrics(tmp_path)
    # were UnicodeDecodeError and (in compare's table) a format-code ValueError tracebacks
    bad.write_bytes(b"\xff\xfe{}")
    with pytest.raises(GroverError, match="binary data"):
        read_metrics(bad)
    bad.write_text('{"model": "x", "test": {"mcc": "abc"}}')
    with pytest.raises(GroverError, match="x: test.mcc 'abc' is not a number"):
        read_metrics(bad)
    bad.write_text('{"task": "x", "results": []}')  # compare printed an empty table, exit 0
    with pytest.raises(GroverError, match="holds no results"):
        read_metrics(bad)


def test_compare_keeps_an_existing_out(tmp_path, capsys):
    from groverlm.cli import main

    write_metrics(tmp_path / "a", "prom300", [_result("prom300", "tfidf-lr", [0.4])])
    notes = tmp_path / "notes.md"
    notes.write_text("mine")
    assert main(["compare", str(tmp_path / "a"), "--out", str(notes)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and notes.read_text() == "mine"
    assert main(["compare", str(tmp_path / "a"), "--out", str(notes), "--overwrite"]) == 0
    assert "tfidf-lr" in notes.read_text()


def test_compare_counts_in_the_singular_for_one(tmp_path, capsys):
    """compare printed '1 results from 1 files, 1 tasks x 1 models'."""
    from groverlm.cli import main

    write_metrics(tmp_path / "a", "prom300", [_result("prom300", "tfidf-lr", [0.4])])
    assert main(["compare", str(tmp_path / "a")]) == 0
    assert "compare: 1 result from 1 file, 1 task x 1 model" in capsys.readouterr().out
    write_metrics(tmp_path / "b", "ctcf", [_result("ctcf", "tfidf-lr", [0.4]),
                                          _result("ctcf", "tfidf-rf", [0.5])])
    assert main(["compare", str(tmp_path)]) == 0
    assert "compare: 3 results from 2 files, 2 tasks x 2 models" in capsys.readouterr().out


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 12)), min_size=2, max_size=40))
@settings(max_examples=200, deadline=None)
def test_mcc_threshold_is_the_best_cut(pairs):
    """The chosen cut reaches the highest MCC of any cut (brute force over every score); with no
    cut better than a constant guess it is argmax's 0.5."""
    from sklearn.metrics import matthews_corrcoef

    from groverlm.metrics import mcc_threshold

    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=float) / 12
    cut = mcc_threshold(y, s)
    got = matthews_corrcoef(y, (s >= cut).astype(int))
    best = max(matthews_corrcoef(y, (s >= c).astype(int)) for c in np.append(s, np.inf))
    if best > 1e-12:
        assert got == pytest.approx(best, abs=1e-12)
    else:
        assert cut == 0.5


def test_dev_cut_is_applied_unchanged_to_test():
    from groverlm.metrics import dev_metrics, scored_metrics

    dev_scores = np.array([[0.8, 0.2], [0.7, 0.3], [0.62, 0.38], [0.58, 0.42]])
    dev = dev_metrics([0, 0, 1, 1], dev_scores, [0, 1], "dev")
    assert dev["mcc"] == 1.0 and dev["mcc_argmax"] == 0.0 and 0.3 < dev["threshold"] < 0.38
    test_scores = np.array([[0.75, 0.25], [0.5, 0.5], [0.69, 0.31]])
    test = scored_metrics([0, 1, 1], test_scores, [0, 1], "dev", dev["threshold"])
    assert test["confusion"] == [[1, 0], [1, 1]]  # 0.31 falls below dev's cut: not re-fitted
    # argmax is the headline under "argmax"; the cut's MCC is still recorded
    plain = dev_metrics([0, 0, 1, 1], dev_scores, [0, 1])
    assert plain["mcc"] == plain["mcc_argmax"] == 0.0 and plain["mcc_dev_cut"] == 1.0
    test = scored_metrics([0, 1, 1], test_scores, [0, 1], "argmax", plain["threshold"])
    assert test["confusion"] == [[1, 0], [2, 0]] and test["mcc_dev_cut"] == pytest.approx(0.5)
    other = dev_metrics([3, 3, 7, 7], dev_scores, [3, 7], "dev")  # any two label ids
    assert other["mcc"] == 1.0 and other["threshold"] == dev["threshold"]
    many = dev_metrics([0, 1, 2], np.eye(3), [0, 1, 2], "dev")  # multi-class: argmax, no cut
    assert many["threshold"] is None and many["mcc"] == 1.0
    with pytest.raises(GroverError):
        dev_metrics([0, 1], dev_scores[:2], [0, 1], "best")


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=60))
@settings(max_examples=200, deadline=None)
def test_mcc_of_counts_is_sklearns_mcc(pairs):
    """The bootstrap's vectorised MCC equals the one implementation's on every resample."""
    y = np.array([t for t, _ in pairs])
    p = np.array([q for _, q in pairs])
    idx = np.random.default_rng(len(pairs)).integers(0, len(y), size=(5, len(y)))
    fast = _resampled(y, p, idx, "mcc")
    for b in range(5):
        slow = classification_metrics(y[idx[b]], p[idx[b]])["mcc"]
        assert fast[b] == pytest.approx(slow, abs=1e-12)
    assert _resampled(y, p, idx, "accuracy") == pytest.approx((y[idx] == p[idx]).mean(1))
    assert _mcc_of_counts(np.array([3.0]), np.array([[3.0, 0]]), np.array([[3.0, 0]]), 3)[0] == 0


def _scored(task, model, truth, preds, baseline=False):
    """A result record as a stage writes it: each seed's test metrics from scored_metrics."""
    runs = []
    for seed, pred in enumerate(preds):
        scores = np.eye(2)[pred]
        runs.append({"seed": seed, "test": scored_metrics(truth, scores, [0, 1]),
                     "dev": dev_metrics(truth, scores, [0, 1])})
    return make_result(task, model, runs, **({"baseline": True} if baseline else {}))


def test_paired_difference_tells_a_real_gap_from_noise():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 2000)
    flip = lambda share: np.where(rng.random(truth.size) < share, 1 - truth, truth)  # noqa: E731
    good = _scored("t", "lm", truth, [flip(0.10), flip(0.10)])
    bad = _scored("t", "tfidf", truth, [flip(0.30)], baseline=True)
    twin = _scored("t", "cnn", truth, [flip(0.10)], baseline=True)
    # test rows are kept, dev rows are not (dev is scored every epoch)
    assert len(good["per_seed"][1]["test"]["y_pred"]) == 2000 and "y_pred" not in good["dev"]
    assert "y_pred" not in good["test"]  # the first seed's copy: its rows are in per_seed

    d = paired_difference(good, bad)
    assert d["better"] == "a" and d["low"] < d["difference"] < d["high"]
    expected = np.mean([r["test"]["mcc"] for r in good["per_seed"]]) - bad["mcc_mean"]
    assert d["difference"] == pytest.approx(expected)
    assert paired_difference(bad, good)["better"] == "b"
    same = paired_difference(good, twin)  # the same error rate: the interval holds 0
    assert same["better"] is None and same["low"] < 0 < same["high"]
    # other rows, or rows not kept (files written before), give no interval
    assert paired_difference(good, _scored("t", "x", truth[::-1].copy(), [truth])) is None
    old = json.loads(json.dumps(bad))
    for run in old["per_seed"]:
        del run["test"]["y_pred"]
    assert paired_difference(good, old) is None

    best = best_against_best([good, bad, twin])["t"]
    assert (best["model"], best["baseline"]) == ("lm", "cnn")
    assert best["paired"]["better"] is None
    # a from-scratch control is paired with its own model elsewhere, never the best baseline here
    control = {**twin, "model": "lm-scratch", "mcc_mean": 1.0, "params": {"scratch_of": "lm"}}
    assert best_against_best([good, bad, control])["t"]["baseline"] == "tfidf"
    line = comparison_lines([good, bad])[0]
    assert "lm" in line and "clearly above tfidf" in line and "95% interval" in line
    line = comparison_lines([good, old])[0]  # a file written before rows were kept
    assert " beside tfidf " in line and "difference" not in line
    assert line.endswith(": no paired interval (test rows not kept, or not the same test rows)")


def test_paired_difference_cancels_the_errors_two_models_share():
    """Two models wrong on the same hard rows, one wrong on 2% more: the rows' difficulty is
    shared, so the paired interval is narrow and excludes 0, where resampling each model's rows
    on their own would give an interval about five times as wide, holding 0."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 2000)
    hard = rng.random(truth.size) < 0.2
    extra = ~hard & (rng.random(truth.size) < 0.025)
    a = np.where(hard, 1 - truth, truth)
    b = np.where(hard | extra, 1 - truth, truth)
    b2 = np.where(hard | (extra & (np.arange(truth.size) % 2 == 0)), 1 - truth, truth)
    d = paired_difference(_scored("t", "a", truth, [a]), _scored("t", "b", truth, [b, b2]),
                          "accuracy")
    # b's accuracy is the mean over its two seeds
    assert d["difference"] == pytest.approx((a == truth).mean() - np.mean(
        [(b == truth).mean(), (b2 == truth).mean()]))
    assert d["better"] == "a" and 0 < d["low"] and d["high"] - d["low"] < 0.02
