"""Evaluation metrics and the `metrics.json` schema shared by every stage that scores a classifier.

Reads and writes `metrics.json` files (baselines, fine-tuning); `groverlm compare` (here) reads them
back into one table.
One implementation of MCC, F1, accuracy, AUROC and the confusion matrix, wrapping scikit-learn, so
every stage reports the same numbers for the same predictions. MCC is the headline metric.

metrics.json (schema "groverlm-metrics/1"):
    {"schema": "groverlm-metrics/1", "task": "prom300", "task_dir": "...",
     "label_map": {"0": 0, "1": 1},                   # label text in the task's CSVs -> class id
     "rc": false,                                     # fine-tuning: both strands at evaluation
     "results": [{"task": "prom300", "model": "tfidf-lr", "seeds": [0, 1, 2],
                  "test": {mcc, f1, accuracy, auroc, confusion, n, labels,    # the first seed's run
                           mcc_argmax, mcc_dev_cut,   # binary: MCC by argmax / at dev's cut
                           threshold},                # binary: that dev cut on P(class 1); mcc is
                  #                                     mcc_argmax unless the method's threshold
                  #                                     setting is "dev"
                  "dev":  {...},                                              # the first seed's run
                  "per_seed": [{"seed": 0, "test": {..., y_true, y_pred},     # test rows kept
                                "dev": {...}}, ...],
                  "mcc_mean": ..., "mcc_std": ...,                # test MCC over seeds
                  "params": {...}}, ...]}
A file holding one bare result record (with "task" and "model") is read as a one-result file too.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.errors import GroverError, counted
from groverlm.manifest import write_json, write_text

log = logging.getLogger(__name__)

# scikit-learn loads on first use, keeping the CLI and config loading light
skm = lazy.module("sklearn.metrics")

SCHEMA = "groverlm-metrics/1"
METRICS = "metrics.json"


def classification_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                           scores: np.ndarray | None = None,
                           labels: Sequence[int] | None = None) -> dict[str, Any]:
    """MCC, F1, accuracy, AUROC and confusion matrix of one evaluation.

    `labels` are the class ids in order (default: 0..max seen); `scores` is (n, n_classes) class
    probabilities in that order, or (n,) scores of class 1 for a binary task. Binary tasks report F1
    of class 1; multi-class tasks macro F1 and one-vs-rest macro AUROC. AUROC is None when it is
    undefined (one class in y_true, or no scores). MCC is multi-class MCC (sklearn) in general.

    >>> m = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], np.array([0.1, 0.9, 0.4, 0.2]))
    >>> round(m["mcc"], 4), m["accuracy"], m["auroc"], m["confusion"]
    (0.5774, 0.75, 1.0, [[2, 0], [1, 1]])
    >>> classification_metrics([0, 1, 2], [0, 1, 2], labels=[0, 1, 2, 3])["f1"]  # 3 absent: not 0.75
    1.0
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape}, y_pred {y_pred.shape}: need equal 1-D shapes")
    if labels is None:
        top = int(max(y_true.max(initial=0), y_pred.max(initial=0)))
        labels = list(range(max(top + 1, 2)))
    labels = [int(x) for x in labels]
    binary = len(labels) == 2
    out: dict[str, Any] = {"n": int(y_true.size), "labels": labels}
    out["mcc"] = float(skm.matthews_corrcoef(y_true, y_pred)) if y_true.size else None
    # macro F1 over the classes in y_true or y_pred: one absent from both (a rare class missing
    # from dev, k-mers never seen) would count as F1 0 and hold a perfect classifier below 1
    seen = set(np.union1d(y_true, y_pred).tolist())
    f1_labels = labels if binary else ([x for x in labels if x in seen] or labels)
    out["f1"] = float(skm.f1_score(y_true, y_pred, labels=f1_labels, pos_label=labels[1],
                                   average="binary" if binary else "macro", zero_division=0))
    out["accuracy"] = float(skm.accuracy_score(y_true, y_pred)) if y_true.size else None
    out["auroc"] = _auroc(y_true, scores, labels)
    out["confusion"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


THRESHOLDS = ("argmax", "dev")  # how a binary classifier's scores become predictions
SELECT = ("mcc", "accuracy", "f1")  # dev metrics a classifier's epoch or features are chosen by


def mcc_threshold(y_true: Sequence[int] | np.ndarray, pos_scores: np.ndarray) -> float:
    """The cut on class-1 scores (predict 1 when score >= cut) with the highest MCC on these samples.

    A short run of fine-tuning often ranks well (AUROC above 0.5) while its argmax still predicts
    one class, which MCC scores as 0; the cut chosen on dev and applied unchanged to test says what
    the ranking is worth without looking at test. Cuts lie midway between distinct scores; ties
    go to the cut nearest the middle of the scores' range; where no cut has a positive MCC (or one
    class is missing) the cut is 0.5, argmax's for two class probabilities.

    >>> mcc_threshold([0, 0, 1, 1], np.array([0.1, 0.2, 0.25, 0.3]))
    0.225
    """
    y = np.asarray(y_true, dtype=np.int64) == 1
    s = np.asarray(pos_scores, dtype=np.float64)
    u = np.unique(s)
    if u.size < 2 or y.all() or not y.any():
        return 0.5
    cuts = (u[1:] + u[:-1]) / 2
    order = np.argsort(s)
    s_sorted, y_sorted = s[order], y[order]
    below = np.searchsorted(s_sorted, cuts, side="left")  # samples predicted 0 at each cut
    pos_below = np.concatenate([[0], np.cumsum(y_sorted)])[below]
    n, n_pos = y.size, int(y.sum())
    tp = (n_pos - pos_below).astype(np.float64)  # floats: the product below overflows int64
    fp = (n - below) - tp
    fn = pos_below.astype(np.float64)
    tn = below - fn
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1), 0.0)
    if mcc.max() <= 0:  # no cut beats a constant guess: the ranking is worthless, keep argmax's
        return 0.5
    best = np.flatnonzero(mcc >= mcc.max() - 1e-12)
    mid = (u[0] + u[-1]) / 2
    return float(cuts[best[np.argmin(np.abs(cuts[best] - mid))]])


def scored_metrics(y_true: Sequence[int] | np.ndarray, scores: np.ndarray, labels: Sequence[int],
                   rule: str = "argmax", cut: float | None = None) -> dict[str, Any]:
    """`classification_metrics` of class scores (n, len(labels)), predicting by a THRESHOLDS rule:
    "argmax", or for a binary task "dev", class 1 where its score >= `cut` (dev's cut). Both
    readings are kept whichever is the headline: `mcc_argmax`, and with a cut `mcc_dev_cut` and
    `threshold`.

    >>> s = np.array([[.7, .3], [.6, .4], [.55, .45], [.8, .2]])
    >>> m = scored_metrics([0, 1, 1, 0], s, [0, 1], "dev", cut=0.35)
    >>> m["mcc"], m["mcc_argmax"], m["mcc_dev_cut"], m["threshold"]
    (1.0, 0.0, 1.0, 0.35)
    >>> scored_metrics([0, 1, 1, 0], s, [0, 1], "argmax", cut=0.35)["mcc"]
    0.0
    """
    if rule not in THRESHOLDS:
        raise GroverError(f"threshold rule {rule!r}: expected one of {', '.join(THRESHOLDS)}")
    scores = np.asarray(scores, dtype=np.float64)
    labels = [int(x) for x in labels]
    argmax = np.asarray(labels)[scores.argmax(1)]
    binary = len(labels) == 2
    if not binary:
        cut = None
    at_cut = None if cut is None else np.where(scores[:, 1] >= cut, labels[1], labels[0])
    pred = at_cut if rule == "dev" and at_cut is not None else argmax
    out = classification_metrics(y_true, pred, scores, labels)
    out["threshold"] = cut

    def mcc(p):  # the headline's own predictions are not scored twice (4**k confusion matrices)
        return out["mcc"] if p is pred else classification_metrics(y_true, p, None, labels)["mcc"]

    out["mcc_argmax"] = mcc(argmax)
    out["mcc_dev_cut"] = None if at_cut is None else mcc(at_cut)
    # row by row, so that two models scored on the same rows can be compared pairwise
    # (`paired_difference`): a test set of 700 rows moves an MCC by several hundredths
    out["y_true"] = np.asarray(y_true, dtype=np.int64).tolist()
    out["y_pred"] = pred.tolist()
    return out


def dev_metrics(y_dev: Sequence[int] | np.ndarray, scores: np.ndarray, labels: Sequence[int],
                rule: str = "argmax") -> dict[str, Any]:
    """Dev metrics under a THRESHOLDS rule; on a binary task the MCC-best cut on these scores is
    chosen in any case (its `threshold` goes with the model to test, see `scored_metrics`)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = [int(x) for x in labels]
    positive = (np.asarray(y_dev) == labels[1]).astype(np.int64) if len(labels) == 2 else None
    cut = mcc_threshold(positive, scores[:, 1]) if positive is not None else None
    out = scored_metrics(y_dev, scores, labels, rule, cut)
    del out["y_true"], out["y_pred"]  # dev is scored every epoch; only test rows are compared
    return out


def _auroc(y_true: np.ndarray, scores: np.ndarray | None, labels: list[int]) -> float | None:
    if scores is None:
        return None
    scores = np.asarray(scores, dtype=np.float64)
    present = np.unique(y_true)
    if present.size < 2:
        return None
    if len(labels) == 2:
        pos = scores[:, 1] if scores.ndim == 2 else scores
        return float(skm.roc_auc_score(y_true == labels[1], pos))
    if scores.ndim != 2 or scores.shape[1] != len(labels):
        raise ValueError(f"scores {scores.shape} must be (n, {len(labels)}) for a multi-class task")
    # one-vs-rest over the classes present in y_true: an absent class has no defined AUROC
    col = {c: i for i, c in enumerate(labels)}
    cols = [col[int(c)] for c in present]
    aucs = [skm.roc_auc_score(y_true == labels[j], scores[:, j]) for j in cols]
    return float(np.mean(aucs))


def seed_summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """mcc_mean and mcc_std (population std, 0 for one seed) of the test MCC over seeds."""
    mccs = [r["test"]["mcc"] for r in per_seed if r["test"].get("mcc") is not None]
    if not mccs:
        return {"mcc_mean": None, "mcc_std": None}
    return {"mcc_mean": float(np.mean(mccs)), "mcc_std": float(np.std(mccs))}


def make_result(task: str, model: str, per_seed: list[dict[str, Any]],
                params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """One result record from per-seed runs, each {"seed", "test": metrics, "dev": metrics}."""
    if not per_seed:
        raise ValueError("a result needs at least one run")
    # the first seed's metrics again, less its rows (per_seed holds them once)
    first = {k: v for k, v in per_seed[0]["test"].items() if k not in ("y_true", "y_pred")}
    return {"task": task, "model": model, "seeds": [r["seed"] for r in per_seed],
            "test": first, "dev": per_seed[0].get("dev"), "per_seed": per_seed,
            **seed_summary(per_seed), "params": params or {}, **extra}


def warn_one_class(record: dict[str, Any]) -> list[int]:
    """Log one warning when a result's model predicted one class for every test row (of a test
    split holding several) in any seed, as a tiny training split or a short run does: its MCC of 0
    says nothing about the model, yet reads as a result. Returns those seeds.

    >>> warn_one_class({"model": "cnn", "task": "t", "per_seed": [
    ...     {"seed": 0, "test": {"y_true": [0, 1, 1], "y_pred": [1, 1, 1]}},
    ...     {"seed": 1, "test": {"y_true": [0, 1, 1], "y_pred": [0, 1, 1]}}]})
    [0]
    """
    seeds = [r["seed"] for r in record["per_seed"]
             if len(set(r["test"].get("y_pred") or ())) == 1 < len(set(r["test"].get("y_true") or ()))]
    if seeds:
        n = len(record["per_seed"])
        which = (f"seed {seeds[0]}" if n == 1 else "every seed" if len(seeds) == n else
                 f"{counted(len(seeds), 'seed')} of {n}: {', '.join(map(str, seeds))}")
        log.warning("%s on %s predicts one class for every test row (%s): MCC 0; too little "
                    "training data?", record["model"], record["task"], which)
    return seeds


RESAMPLES = 1000  # bootstrap resamples of the test rows in a paired comparison
ALPHA = 0.05  # paired comparisons report the 95% interval


def _mcc_of_counts(correct: np.ndarray, true_counts: np.ndarray, pred_counts: np.ndarray,
                   n: int) -> np.ndarray:
    """Multi-class MCC (Gorodkin's, as sklearn computes it) from per-resample counts: correct (B,),
    true_counts and pred_counts (B, classes); 0 where it is undefined."""
    cov_tp = correct * n - (true_counts * pred_counts).sum(1)
    cov_pp = n * n - (pred_counts**2).sum(1)
    cov_tt = n * n - (true_counts**2).sum(1)
    denom = np.sqrt(cov_pp * cov_tt)
    return np.where(denom > 0, cov_tp / np.where(denom > 0, denom, 1.0), 0.0)


def _resampled(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray, metric: str) -> np.ndarray:
    """`metric` ("mcc" or "accuracy") of y_pred on each bootstrap resample idx (B, n) -> (B,)."""
    t, p = y_true[idx], y_pred[idx]  # (B, n)
    correct = (t == p).sum(1).astype(np.float64)
    n = idx.shape[1]
    if metric == "accuracy":
        return correct / n
    classes = int(max(y_true.max(), y_pred.max())) + 1
    rows = np.arange(idx.shape[0])[:, None] * classes  # one block of counts per resample
    size = idx.shape[0] * classes
    true_counts = np.bincount((rows + t).ravel(), minlength=size).reshape(-1, classes)
    pred_counts = np.bincount((rows + p).ravel(), minlength=size).reshape(-1, classes)
    return _mcc_of_counts(correct, true_counts.astype(np.float64), pred_counts.astype(np.float64), n)


def _test_rows(record: dict[str, Any]) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """(y_true, [y_pred of each seed]) of a result's test set, None when not kept (older files)."""
    runs = [r.get("test") or {} for r in record.get("per_seed") or [record]]
    if not runs or any("y_pred" not in m or "y_true" not in m for m in runs):
        return None
    truth = np.asarray(runs[0]["y_true"], dtype=np.int64)
    if any(m["y_true"] != runs[0]["y_true"] for m in runs[1:]):
        return None
    return truth, [np.asarray(m["y_pred"], dtype=np.int64) for m in runs]


def paired_difference(a: dict[str, Any], b: dict[str, Any], metric: str = "mcc",
                      resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any] | None:
    """Result `a` minus result `b` in test `metric` (mean over each one's seeds), with the 95%
    interval of a paired bootstrap: the same resamples of the test rows score both, so what the
    two models share (the rows' difficulty) cancels. None when either lacks its rows or the two
    were scored on different rows.

    >>> y = [0, 1] * 50
    >>> a = {"per_seed": [{"test": {"y_true": y, "y_pred": y}}]}
    >>> b = {"per_seed": [{"test": {"y_true": y, "y_pred": [0] * 100}}]}
    >>> d = paired_difference(a, b)
    >>> d["difference"], d["low"] > 0.8, d["better"]
    (1.0, True, 'a')
    """
    ra, rb = _test_rows(a), _test_rows(b)
    if ra is None or rb is None or not np.array_equal(ra[0], rb[0]) or ra[0].size == 0:
        return None
    truth = ra[0]
    every = np.arange(truth.size)[None, :]
    rng = np.random.default_rng(seed)

    def mean_over_seeds(preds: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
        return np.mean([_resampled(truth, p, rows, metric) for p in preds], axis=0)

    point = float(mean_over_seeds(ra[1], every)[0] - mean_over_seeds(rb[1], every)[0])
    # resamples drawn a block at a time (the same draws as all at once): 46,000 masked targets
    # x 1,000 resamples would take a gigabyte at once
    step = max(1, 4_000_000 // truth.size)
    diffs = []
    for start in range(0, resamples, step):
        idx = rng.integers(0, truth.size, size=(min(step, resamples - start), truth.size))
        diffs.append(mean_over_seeds(ra[1], idx) - mean_over_seeds(rb[1], idx))
    diffs = np.concatenate(diffs)
    low, high = (float(x) for x in np.quantile(diffs, [ALPHA / 2, 1 - ALPHA / 2]))
    better = "a" if low > 0 else "b" if high < 0 else None  # None: the interval holds 0
    return {"metric": metric, "difference": point, "low": low, "high": high, "better": better,
            "rows": int(truth.size), "resamples": resamples}


def best_against_best(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task, the best language model (highest mean test MCC among records not marked
    `baseline`) against the best baseline: {task: {"model", "baseline", "mcc", "baseline_mcc",
    "paired": paired_difference or None}}. From-scratch controls are left out: `scratch_pairs`
    pairs each with its own model, and here they would hide the baselines a user would pick
    instead (TF-IDF, the CNN)."""
    out: dict[str, dict[str, Any]] = {}
    for task in sorted({str(r["task"]) for r in records}):
        mine = [r for r in records if str(r["task"]) == task and mean_mcc(r) is not None
                and not (r.get("params") or {}).get("scratch_of")]
        lms = [r for r in mine if not r.get("baseline")]
        bases = [r for r in mine if r.get("baseline")]
        if lms and bases:
            lm, base = max(lms, key=mean_mcc), max(bases, key=mean_mcc)
            out[task] = {"model": lm["model"], "baseline": base["model"], "mcc": mean_mcc(lm),
                         "baseline_mcc": mean_mcc(base), "paired": paired_difference(lm, base)}
    return out


def mean_mcc(r: dict[str, Any]) -> float | None:
    """A result's headline test MCC: the mean over seeds, else its one run's."""
    return r.get("mcc_mean", (r.get("test") or {}).get("mcc"))


def difference_text(c: dict[str, Any] | None) -> str:
    """A paired difference as the summaries print it (an accuracy in percentage points).

    >>> difference_text({"metric": "mcc", "difference": -0.078, "low": -0.14, "high": -0.015})
    '-0.078 (95% interval -0.140 to -0.015)'
    >>> difference_text({"metric": "accuracy", "difference": -0.0022, "low": -0.005, "high": 0.001})
    '-0.22 points (95% interval -0.50 to +0.10)'
    >>> difference_text(None)
    'no paired interval (test rows not kept, or not the same test rows)'
    """
    if not c or "difference" not in c:  # paired_difference's None
        return "no paired interval (test rows not kept, or not the same test rows)"
    if c.get("metric") == "accuracy":
        return (f"{100 * c['difference']:+.2f} points (95% interval {100 * c['low']:+.2f} to "
                f"{100 * c['high']:+.2f})")
    return f"{c['difference']:+.3f} (95% interval {c['low']:+.3f} to {c['high']:+.3f})"


AT_UNIGRAM = "at the unigram: nothing learned"


def at_unigram(acc: float, unigram: float | None) -> bool:
    """Whether a masked-token accuracy is no better than always guessing the most frequent token
    (within 10% of it, or below it): the model learned nothing a summary should let pass.

    >>> at_unigram(0.028, 0.031), at_unigram(0.0125, 0.0121), at_unigram(0.09, 0.012)
    (True, True, False)
    """
    return unigram is not None and acc <= 1.1 * unigram


def masked_accuracy_text(ev: dict[str, Any]) -> str:
    """A pretraining evaluation (`eval.json`, pretrain's summary) as the summaries print it: the
    held-out accuracy beside the unigram and the context table, saying so when it is at the
    unigram.

    >>> masked_accuracy_text({"mlm_accuracy": 0.028, "unigram_accuracy": 0.0312})
    'test masked-token accuracy 2.80%, at the unigram: nothing learned (unigram 3.12%)'
    >>> masked_accuracy_text({"mlm_accuracy": 0.0876, "unigram_accuracy": 0.0125,
    ...                       "context_accuracy": 0.0855})
    'test masked-token accuracy 8.76% (unigram 1.25%, context table 8.55%)'
    """
    verdict = f", {AT_UNIGRAM}" if at_unigram(ev["mlm_accuracy"], ev["unigram_accuracy"]) else ""
    context = (f", context table {100 * ev['context_accuracy']:.2f}%"
               if "context_accuracy" in ev else "")
    if "vs_context_table" in ev:
        context += f"; model - table {difference_text(ev['vs_context_table'])}"
    return (f"test masked-token accuracy {100 * ev['mlm_accuracy']:.2f}%{verdict} (unigram "
            f"{100 * ev['unigram_accuracy']:.2f}%{context})")


def masked_token_verdict(acc: float, unigram: float | None, context: float | None,
                         paired: dict[str, Any] | None = None) -> str:
    """One phrase placing a masked-token accuracy against its two baselines (with `paired`, the
    model - table interval, whether the gap to the table is told apart from 0).

    >>> masked_token_verdict(0.09, 0.012, 0.087)
    'above the context table'
    >>> masked_token_verdict(0.09, 0.012, 0.087, {"low": -0.001, "high": 0.007})
    'level with the context table (interval holds 0)'
    >>> masked_token_verdict(0.0785, 0.0121, 0.087)
    '90% of the context table'
    >>> masked_token_verdict(0.0125, 0.0121, 0.087)
    'at the unigram: nothing learned'
    """
    if at_unigram(acc, unigram):
        return AT_UNIGRAM
    if context is None or context <= 0:
        return "above the unigram"
    if isinstance(paired, dict) and "low" in paired and paired["low"] <= 0 <= paired["high"]:
        return "level with the context table (interval holds 0)"
    if acc >= context:
        return "above the context table"
    return f"{acc / context:.0%} of the context table"


COMPARISON_HEADER = ("best language model against the best baseline, from-scratch controls aside "
                     "(paired bootstrap over test rows):")


def comparison_lines(records: list[dict[str, Any]]) -> list[str]:
    """One line per task (under COMPARISON_HEADER): the best language model against the best
    baseline, paired."""
    lines = []
    for task, c in best_against_best(records).items():
        p = c["paired"]
        verdict = ("clearly above" if p and p["better"] == "a" else
                   "clearly below" if p and p["better"] == "b" else
                   "not told apart from" if p else "beside")
        lines.append(f"  {task}: {c['model']} {c['mcc']:.3f} {verdict} {c['baseline']} "
                     f"{c['baseline_mcc']:.3f}: {'difference ' if p else ''}{difference_text(p)}")
    return lines


PRETRAINING_HEADER = ("what pretraining adds: each language model against itself fine-tuned from "
                      "scratch (paired bootstrap over test rows):")


def scratch_pairs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every language model with a from-scratch control among the records (a control's
    `scratch_of` names a language model of its task), as best_against_best's entries: {"task",
    "model", "control", "mcc", "control_mcc", "paired": paired_difference or None}, by task and
    model."""
    pairs = []
    for c in records:
        of = (c.get("params") or {}).get("scratch_of")
        lm = [r for r in records if of is not None and r["task"] == c["task"]
              and r["model"] == of and not r.get("baseline")]
        if lm:
            pairs.append({"task": str(c["task"]), "model": lm[0]["model"], "control": c["model"],
                          "mcc": mean_mcc(lm[0]), "control_mcc": mean_mcc(c),
                          "paired": paired_difference(lm[0], c)})
    return sorted(pairs, key=lambda p: (p["task"], str(p["model"])))


def pretraining_lines(records: list[dict[str, Any]]) -> list[str]:
    """One line per language model with a from-scratch control (under PRETRAINING_HEADER).

    >>> y = [0, 1] * 50
    >>> lm = {"task": "t", "model": "lm", "mcc_mean": 1.0,
    ...       "per_seed": [{"test": {"y_true": y, "y_pred": y}}]}
    >>> scratch = {"task": "t", "model": "lm-scratch", "mcc_mean": 0.0, "baseline": True,
    ...            "params": {"scratch_of": "lm"},
    ...            "per_seed": [{"test": {"y_true": y, "y_pred": [0] * 100}}]}
    >>> pretraining_lines([scratch, lm])[0].split(":")[:2]
    ['  t', ' lm 1.000 against lm-scratch 0.000']
    """
    lines = []
    for c in scratch_pairs(records):
        p = c["paired"]
        verdict = ("pretraining helps" if p and p["better"] == "a" else
                   "pretraining hurts" if p and p["better"] == "b" else
                   "no difference shown" if p else "")
        lines.append(f"  {c['task']}: {c['model']} {c['mcc']:.3f} against {c['control']} "
                     f"{c['control_mcc']:.3f}: difference {difference_text(p)}"
                     + (f", {verdict}" if verdict else ""))
    return lines


ROWS_HEADER = "training rows, where a task's models trained on different numbers of them:"


def rows_lines(records: list[dict[str, Any]]) -> list[str]:
    """One line per task whose models trained on different numbers of rows (`params.train_rows`;
    a subset by --max-train), under ROWS_HEADER: a comparison a reader should weigh with them.

    >>> rec = lambda m, n: {"task": "t", "model": m, "params": {"train_rows": n,
    ...                                                          "train_rows_available": 6467}}
    >>> rows_lines([rec("lm", 1500), rec("cnn", 3000), rec("tfidf-lr", 5000), rec("rf", 5000)])
    ['  t: lm 1,500; cnn 3,000; rf, tfidf-lr 5,000 (of 6,467)']
    >>> rows_lines([rec("lm", 1500), rec("cnn", 1500)])
    []
    """
    lines = []
    for task in sorted({str(r["task"]) for r in records}):
        params = [(r["model"], r.get("params") or {}) for r in records if str(r["task"]) == task]
        by_rows: dict[int, list[str]] = {}
        for model, p in params:
            if isinstance(p.get("train_rows"), int):
                by_rows.setdefault(p["train_rows"], []).append(str(model))
        if len(by_rows) > 1:
            whole = max((p.get("train_rows_available") or 0 for _, p in params), default=0)
            lines.append(f"  {task}: " + "; ".join(f"{', '.join(sorted(ms))} {n:,}"
                                                   for n, ms in sorted(by_rows.items()))
                         + (f" (of {whole:,})" if whole else ""))
    return lines


def comparison_block(records: list[dict[str, Any]]) -> list[str]:
    """The paired comparisons a summary prints under the task table: best language model against
    best baseline, then what pretraining adds where a from-scratch control ran, then the training
    rows where they differ."""
    best, scratch, rows = (comparison_lines(records), pretraining_lines(records),
                           rows_lines(records))
    return (([COMPARISON_HEADER, *best] if best else [])
            + ([PRETRAINING_HEADER, *scratch] if scratch else [])
            + ([ROWS_HEADER, *rows] if rows else []))


def write_metrics(out: str | Path, task: str, results: list[dict[str, Any]],
                  **extra: Any) -> Path:
    """Write `out/metrics.json` (atomically) holding one or more result records."""
    path = Path(out) / METRICS
    write_json(path, {"schema": SCHEMA, "task": task, **extra, "results": results})
    return path


def f1_of(out: str | Path) -> str:
    """" of 'LABEL'" for the printed F1 of a binary task whose labels are not 0/1 (F1 is class 1's,
    the label that sorts second: 'unbound' of bound/unbound), else ""."""
    try:
        label_map = json.loads((Path(out) / METRICS).read_text()).get("label_map") or {}
        names = [t for t, _ in sorted(label_map.items(), key=lambda kv: kv[1])]
    except (OSError, ValueError, AttributeError, TypeError):
        return ""
    return f" of {names[1]!r}" if len(names) == 2 and names != ["0", "1"] else ""


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Result records of a metrics.json file (or of `path/metrics.json` for a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise GroverError("no such metrics file", path) from None
    except json.JSONDecodeError as err:
        raise GroverError(f"not valid JSON ({err.msg})", path, err.lineno) from None
    except UnicodeDecodeError:
        raise GroverError("binary data, not a JSON file", path) from None
    if isinstance(obj, dict) and isinstance(obj.get("results"), list):
        records = obj["results"]
    elif isinstance(obj, dict) and "model" in obj:
        records = [obj]
    else:
        raise GroverError("not a groverlm metrics file (no 'results' list)", path)
    if not records:  # no stage writes one: a table of nothing would read as a finished comparison
        raise GroverError("holds no results (an empty 'results' list)", path)
    for r in records:
        if not isinstance(r, dict) or "model" not in r or not isinstance(r.get("test"), dict):
            raise GroverError("a result lacks 'model' or 'test'", path)
        for key, v in (("test.mcc", r["test"].get("mcc")), ("mcc_mean", r.get("mcc_mean"))):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise GroverError(f"{r['model']}: {key} {v!r} is not a number", path)
        r.setdefault("task", obj.get("task", path.parent.name))
        r.setdefault("source", str(path))
    return records


def find_metrics(folders: Sequence[str | Path]) -> list[Path]:
    """Every metrics.json under the given folders (or the files themselves), sorted, unique."""
    found: set[Path] = set()
    for f in folders:
        p = Path(f)
        if p.is_file():
            found.add(p)
        elif p.is_dir():
            found.update(p.rglob(METRICS))
        else:
            raise GroverError("no such file or folder", p)
    return sorted(found)


def percent(v: Any) -> str:
    """A fraction as the summaries and the report print it; "-" when it is missing.

    >>> percent(0.08634), percent(1), percent(None), percent("n/a")
    ('8.63%', '100.00%', '-', '-')
    """
    number = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
    return f"{100 * v:.2f}%" if number else "-"


def results_table(records: list[dict[str, Any]]) -> tuple[list[str], list[str], dict]:
    """(tasks, models, cells) with cells[(task, model)] = (mcc_mean, mcc_std, n_seeds). Tasks and
    models are sorted by name; a (task, model) pair found twice is a GroverError (ambiguous)."""
    cells: dict[tuple[str, str], tuple[float | None, float | None, int]] = {}
    where: dict[tuple[str, str], str] = {}
    for r in records:
        key = (str(r["task"]), str(r["model"]))
        if key in cells:
            raise GroverError(f"task {key[0]!r}, model {key[1]!r} found twice (also in "
                              f"{where[key]}); compare fewer folders, or name the models apart "
                              "(finetune --name)", r.get("source"))
        cells[key] = (mean_mcc(r), r.get("mcc_std"), len(r.get("seeds") or [None]))
        where[key] = str(r.get("source"))
    tasks = sorted({t for t, _ in cells})
    models = sorted({m for _, m in cells})
    return tasks, models, cells


def _cell(v: tuple[float | None, float | None, int] | None) -> str:
    if v is None or v[0] is None:
        return "-"
    mean, std, n = v
    return f"{mean:.3f} ± {std:.3f}" if std is not None and n > 1 else f"{mean:.3f}"


def format_table(tasks: list[str], models: list[str], cells: dict, fmt: str = "markdown") -> str:
    """The task x model table of test MCC (mean ± std over seeds) as markdown or TSV."""
    if fmt == "tsv":
        lines = ["task\tmodel\tmcc_mean\tmcc_std\tseeds"]
        for t in tasks:
            for m in models:
                v = cells.get((t, m))
                if v is not None:
                    lines.append(f"{t}\t{m}\t{'' if v[0] is None else f'{v[0]:.6f}'}\t"
                                 f"{'' if v[1] is None else f'{v[1]:.6f}'}\t{v[2]}")
        return "\n".join(lines) + "\n"
    rows = [["task", *models]] + [[t, *(_cell(cells.get((t, m))) for m in models)] for t in tasks]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
           for r in rows]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out) + "\n"


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("compare", help="table of test MCC (task x model) from metrics.json files")
    m.add_argument("dirs", nargs="+", help="folders searched for metrics.json (or the files)")
    m.add_argument("--out", help="write the table: .md for markdown, .tsv for TSV")
    m.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    m.set_defaults(func=compare)


def compare(args: argparse.Namespace) -> int:
    if args.out and not args.out.endswith((".tsv", ".md")):  # before the work, not after
        raise GroverError("--out must end in .md or .tsv", args.out)
    if args.out and Path(args.out).exists() and not args.overwrite:
        raise GroverError("already exists; pass --overwrite to replace it", args.out)
    files = find_metrics(args.dirs)
    if not files:
        raise GroverError(f"no metrics.json under {' '.join(args.dirs)}")
    records = [r for f in files for r in read_metrics(f)]
    tasks, models, cells = results_table(records)
    print(format_table(tasks, models, cells, "markdown"), end="")
    lines = comparison_block(records)
    if lines:
        print("\n".join(lines))
    if args.out:
        fmt = "tsv" if args.out.endswith(".tsv") else "markdown"
        write_text(args.out, format_table(tasks, models, cells, fmt))
    print(f"compare: {counted(len(records), 'result')} from {counted(len(files), 'file')}, "
          f"{counted(len(tasks), 'task')} x {counted(len(models), 'model')}"
          + (f" -> {args.out}" if args.out else ""))
    return 0
