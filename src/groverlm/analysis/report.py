"""Report stage: `groverlm report RUN_DIR` renders every stage found under RUN_DIR as one HTML page.

Reads every `manifest.json` under RUN_DIR (and `*.manifest.json` of `groverlm embed`, and every
`metrics.json`), recognises stages by their "stage" field, and writes one self-contained HTML file
(default RUN_DIR/report.html; plots embedded as base64 PNG, no external file or script):

    bpe-train        merges per cycle and mean token length against cycle (merges.tsv, progress.tsv)
    bpe-export       the vocabulary's statistics against GROVER's (vocab_stats.json)
    corpus           its manifest's figures
    pretrain, any folder with log.jsonl: learning curves and eval.json
    select-vocab     (next-k-mer selection) its plot.png and tables (no plot.png: a curve of each
                     table whose first column is numeric)
    metrics.json     task results: test MCC per model, baselines beside the models (next-k-mer:
                     top-1 accuracy, against chance and the most frequent k-mer too)
    analyze          the analyses' tables and figures (`groverlm analyze`; the vocabulary's once,
                     in its bpe-export section, where the page has one)
    embed            shape and settings of each embedding file

A stage that is absent is absent from the page; one that cannot be read shows a one-line note.

In a run (`run`): RUN_DIR/report/report.html, rendered from the whole run folder.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import __version__, lazy
from groverlm.analysis import tokens
from groverlm.analysis.plots import CHANCE_LINE, COLORS, MOST_FREQUENT_LINE, figure, png_bytes
from groverlm.context import Context
from groverlm.errors import GroverError
from groverlm.manifest import fingerprint, read_jsonl, write_text
from groverlm.metrics import (
    best_against_best,
    difference_text,
    find_metrics,
    masked_token_verdict,
    mean_mcc,
    percent,
    read_metrics,
    rows_lines,
    scratch_pairs,
)

config = lazy.module("groverlm.config")  # config imports this module (ReportConfig)

log = logging.getLogger(__name__)

REPORT = "report.html"
MAX_TABLE_ROWS = 40  # rows of a found table shown in the page
_SKIP_PARTS = ("checkpoints", ".git")  # folders whose manifests are not stages of the run
_READ_ERRORS = (GroverError, OSError, ValueError, KeyError, TypeError, IndexError)


@dataclass(frozen=True)
class ReportConfig:
    """Report stage: no settings (the page shows every stage of the run)."""


@dataclass
class Section:
    """One part of the page: an anchor, a heading and its HTML body."""

    kind: str
    title: str
    body: list[str] = field(default_factory=list)

    def add(self, *parts: str) -> Section:
        self.body.extend(parts)
        return self


# ----------------------------------------------------------------------------- HTML helpers


def fmt(v: Any) -> str:
    """A cell's text: ints with thousands separators, floats to 4 significant digits.

    >>> fmt(1234567), fmt(0.123456), fmt(None), fmt(True), fmt(12345.678)
    ('1,234,567', '0.1235', '–', 'yes', '1.235e+04')
    """
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return "–"
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return ", ".join(fmt(x) for x in v)
    return str(v)


def table(rows: list[dict], columns: list[str] | None = None,
          headers: dict[str, str] | None = None) -> str:
    """An HTML table of dict rows (columns: the keys of the first row unless given)."""
    if not rows:
        return "<p class=note>(empty)</p>"
    columns = columns or list(rows[0])
    headers = headers or {}
    head = "".join(f"<th>{html.escape(headers.get(c, c))}</th>" for c in columns)
    numeric = {c for c in columns  # right-aligned: columns whose every value is a number
               if all(_is_number(r.get(c)) or r.get(c) is None for r in rows)
               and any(_is_number(r.get(c)) for r in rows)}
    body = []
    for r in rows:
        cells = []
        for c in columns:
            cls = " class=num" if c in numeric else ""
            cells.append(f"<td{cls}>{html.escape(fmt(r.get(c)))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def figure_html(fig, alt: str) -> str:
    return image(png_bytes(fig), alt)


def note(text: str) -> str:
    return f"<p class=note>{html.escape(text)}</p>"


def _seed_stats(record: dict, key: str) -> tuple[float | None, float | None]:
    """A test metric's mean and population sd over a result's seeds (its `test` holds the first
    seed's alone; sd None for one seed)."""
    vals = [(p.get("test") or {}).get(key) for p in record.get("per_seed") or []]
    vals = [v for v in vals if _is_number(v)]
    if not vals:
        v = (record.get("test") or {}).get(key)
        return (v if _is_number(v) else None), None
    return float(np.mean(vals)), (float(np.std(vals)) if len(vals) > 1 else None)


def _seed_mean(record: dict, key: str) -> float | None:
    return _seed_stats(record, key)[0]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- finding stages


@dataclass(frozen=True)
class StageFolder:
    """A folder with a stage's manifest, as the report finds it (runner.Stage is a pipeline step)."""

    folder: Path
    manifest: dict
    manifest_path: Path

    @property
    def name(self) -> str:
        return str(self.manifest.get("stage", "?"))


def find_stages(root: Path) -> tuple[list[StageFolder], list[str]]:
    """Every stage manifest under `root`, sorted by path; and notes on unreadable ones."""
    stages, notes = [], []
    paths = sorted(set(root.rglob("manifest.json")) | set(root.rglob("*.manifest.json")))
    for p in paths:
        parts = p.relative_to(root).parts
        if any(part in _SKIP_PARTS or part.startswith(".") for part in parts):
            continue
        try:
            m = json.loads(p.read_text())
        except (OSError, ValueError) as err:
            notes.append(f"{_rel(p, root)}: unreadable manifest ({err})")
            continue
        if not isinstance(m, dict) or "stage" not in m:
            continue
        stages.append(StageFolder(p.parent, m, p))
    return stages, notes


# ----------------------------------------------------------------------------- stage renderers


def render_bpe_train(st: StageFolder, root: Path) -> Section:
    m = st.manifest
    sec = Section("bpe-train", f"BPE training — {_rel(st.folder, root)}")
    sec.add(table([{"cycles": m.get("cycles"), "bases": m.get("bases"),
                    "records": len(m.get("records", [])), "chunk": m["config"].get("chunk"),
                    "seconds": m.get("seconds")}]))
    merges = np.genfromtxt(st.folder / "merges.tsv", delimiter="\t", names=True, dtype=None,
                           encoding="utf-8", usecols=(0, 4), ndmin=1)
    prog = np.genfromtxt(st.folder / "progress.tsv", delimiter="\t", names=True, ndmin=1)
    fig, ax = figure(2, 1, width=5.0, height=3.4)
    ax[0].plot(merges["cycle"], merges["count"], color=COLORS[0], lw=1.2)
    ax[0].set(yscale="log", xlabel="cycle", ylabel="occurrences of the merged pair",
              title="Merge count against cycle")
    ax[1].plot(prog["cycle"], prog["mean_length"], color=COLORS[1], lw=1.2)
    ax[1].axhline(4.07, color=COLORS[7], ls=":", lw=1, label="GROVER at 600 cycles: 4.07 nt")
    ax[1].legend(frameon=False, loc="lower right", fontsize=8)
    ax[1].set(xlabel="cycle", ylabel="mean token length (nt)",
              title="Mean token length against cycle")
    return sec.add(figure_html(fig, "BPE merge count and mean token length by cycle"))


def render_bpe_export(st: StageFolder, root: Path) -> Section:
    stats = json.loads((st.folder / "vocab_stats.json").read_text())
    rows = stats["tokens"]
    res = tokens.vocab_analysis(rows, stats.get("cycles"))
    sec = Section("bpe-export", f"Vocabulary at {stats.get('cycles')} cycles — "
                  f"{_rel(st.folder, root)}")
    sec.add(table(res["comparison"], ["figure", "this", "grover"],
                  {"this": "this vocabulary", "grover": "GROVER (hg19, 600 cycles)"}))
    sec.add(figure_html(tokens.plot_vocab(rows, res), "vocabulary statistics"))
    sec.add("<h4>Longest tokens</h4>", table(res["longest_tokens"]))
    return sec


def render_pretrain(st: StageFolder, root: Path) -> Section:
    title = "Pretraining" if st.name == "pretrain" else f"Training ({st.name})"
    sec = Section("train", f"{title} — {_rel(st.folder, root)}")
    ev = st.folder / "eval.json"
    if ev.exists():
        data = json.loads(ev.read_text())
        flat = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
        sec.add("<h4>eval.json</h4>", table([{"metric": k, "value": v} for k, v in flat.items()]))
    elif isinstance(st.manifest.get("eval"), dict):
        sec.add(table([{"metric": k, "value": v} for k, v in st.manifest["eval"].items()
                       if not isinstance(v, dict | list)]))
    for k in ("parameters", "non_embedding_parameters"):
        if k in st.manifest:
            sec.add(note(f"{k.replace('_', ' ')}: {fmt(st.manifest[k])}"))
    curves = learning_curves(st.folder)
    if curves:
        sec.add(curves)
    return sec


def curve_series(records: list[dict]) -> dict[tuple[str, str], tuple[list, list]]:
    """(kind, field) -> (steps, values) of every numeric field of the log records with a step.
    Evaluations on different sample counts are different series: the final one reads the whole
    test split, the periodic ones a sample, and one line through both would draw the change of
    sample (the context table's accuracy jumps) as learning."""
    series: dict[tuple[str, str], tuple[list, list]] = {}
    for r in records:
        if not isinstance(r.get("step"), int | float):
            continue
        kind = str(r.get("kind", "train"))
        if isinstance(r.get("eval_samples"), int):
            kind = f"{kind} on {r['eval_samples']:,} samples"
        for k, v in r.items():
            if k not in ("step", "kind") and isinstance(v, int | float) and not isinstance(v, bool):
                xs, ys = series.setdefault((kind, k), ([], []))
                xs.append(r["step"])
                ys.append(v)
    return series


# how learning-curve fields are drawn: (legend name, colour, line style); the model's own numbers in
# the model colour, its baselines in grey (as masked.png and the task figure draw them)
CURVE_STYLE = {"loss": ("loss", COLORS[0], "-"), "mlm_loss": ("loss", COLORS[0], "-"),
               "mlm_accuracy": ("model", COLORS[0], "-"), "accuracy": ("model", COLORS[0], "-"),
               "context_accuracy": ("context table", COLORS[7], "--"),
               "unigram_accuracy": ("unigram", COLORS[7], ":"),
               "lr": ("learning rate", COLORS[0], "-"),
               "learning_rate": ("learning rate", COLORS[0], "-")}


def learning_curves(folder: Path) -> str | None:
    """The learning-curve figure of every JSONL log in `folder` (`plot_learning_curves`)."""
    fig = plot_learning_curves([r for p in sorted(folder.glob("*.jsonl")) for r in read_jsonl(p)])
    return None if fig is None else figure_html(fig, "learning curves")


def plot_learning_curves(records: list[dict]):
    """Loss, accuracy (%) and learning-rate panels of log records (None: nothing to draw): a field
    keeps one colour across its series (training, the periodic evaluations as lines, an evaluation
    on another sample count, the final one on the whole test split, as markers of its own)."""
    series = curve_series(records)
    if not series:
        return None
    panels = {"loss": [s for s in series if "loss" in s[1]],
              "accuracy": [s for s in series if "acc" in s[1]],
              "learning rate": [s for s in series if s[1] in ("lr", "learning_rate")]}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    # per kind of record (train, eval), its series with the most points is the curve; the others
    # (another sample count) are points
    points = {kind: len(xs) for (kind, _), (xs, _) in series.items()}
    base = {kind: kind.split(" on ")[0] for kind in points}
    main = {b: max((k for k in points if base[k] == b), key=lambda k: (points[k], k))
            for b in set(base.values())}
    others = iter(COLORS[1:7] * 3)  # fields without a style of their own
    style = {k: CURVE_STYLE.get(k) or (k, next(others), "-") for k in sorted({f for _, f in series})}
    fig, ax = figure(len(panels), 1, width=4.6, height=3.4)
    ax = np.atleast_1d(ax)
    for a, (title, keys) in zip(ax, panels.items(), strict=True):
        scale = 100 if title == "accuracy" else 1
        named = set()  # one legend entry for the markers of each other sample count
        order = list(CURVE_STYLE)  # the model before its baselines, in the legend too
        for kind, k in sorted(keys, key=lambda s: (s[0] != main[base[s[0]]],
                                                   order.index(s[1]) if s[1] in order else 99, s)):
            xs, ys = series[(kind, k)]
            name, color, ls = style[k]
            if title == "loss":  # training and test loss share the field's colour
                name = "train loss" if base[kind] == "train" else "test loss"
            if kind != main[base[kind]]:  # another sample count: markers, not joined to the curve
                a.plot(xs, [scale * y for y in ys], "D", ms=5, mfc="none" if ls != "-" else color,
                       color=color, label="_" if kind in named else
                       f"{kind.split(' on ')[-1]} (hollow: baselines)" if title == "accuracy"
                       else kind.split(" on ")[-1])
                named.add(kind)
                continue
            many = len(xs) > 30
            a.plot(xs, [scale * y for y in ys], ls=ls, marker=None if many else "o", ms=3,
                   lw=0.8 if many and base[kind] == "train" else 1.2, color=color,
                   alpha=0.6 if many and base[kind] == "train" and title == "loss" else 1.0,
                   label=name + (f" ({kind.split(' on ')[-1]})" if " on " in kind else ""))
        a.set(xlabel="step", title=title,
              ylabel={"loss": "loss (nats)", "accuracy": "accuracy (%)"}.get(title, ""))
        if title == "learning rate":
            a.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        a.legend(frameon=False, fontsize=7)
    return fig


def render_select_vocab(st: StageFolder, root: Path) -> Section:
    """Next-k-mer vocabulary selection: its figure (plot.png: each k's accuracy beside the k-mer
    models, chance, the most frequent k-mer and TF-IDF) and its tables; without one, a curve of
    each table whose first column is numeric."""
    sec = Section("select-vocab", f"Vocabulary selection ({st.name}) — {_rel(st.folder, root)}")
    found = False
    plot = st.folder / "plot.png"
    if plot.is_file():
        # the stage's own figure: the generic curve put accuracies and the lift over the most
        # frequent k-mer (a ratio near 1-6) on one axis, with no baseline beside them
        sec.add(image(plot.read_bytes(), "next-k-mer accuracy against BPE cycles"))
    for p in sorted(st.folder.glob("*.tsv")) + sorted(st.folder.glob("*.csv")):
        rows = read_table(p)
        if not rows:
            continue
        found = True
        sec.add(f"<h4>{html.escape(p.name)}</h4>")
        cols = list(rows[0])
        numeric = [c for c in cols if all(isinstance(r.get(c), int | float) for r in rows)]
        if (len(rows) > 1 and numeric and cols[0] in numeric and len(numeric) > 1
                and not plot.is_file()):
            fig, ax = figure(1, 1, width=6.4, height=3.6)
            for c, color in zip(numeric[1:6], COLORS, strict=False):
                ax.plot([r[cols[0]] for r in rows], [r[c] for r in rows], "o-", ms=3,
                        color=color, label=c)
            ax.set(xlabel=cols[0], title=p.stem)
            ax.legend(frameon=False, fontsize=8)
            sec.add(figure_html(fig, p.stem))
        sec.add(table(rows[:MAX_TABLE_ROWS]))
        if len(rows) > MAX_TABLE_ROWS:
            sec.add(note(f"first {MAX_TABLE_ROWS} of {len(rows)} rows"))
    if not found:
        sec.add(note("no table found in this folder"))
    return sec


def render_nextkmer(st: StageFolder, root: Path) -> Section:
    """A next-k-mer run: per k, the accuracies of the model and its baselines (its summary), not
    its samples."""
    sec = Section("nextkmer", f"Next-k-mer prediction — {_rel(st.folder, root)}")
    rows = [{k: v for k, v in r.items() if isinstance(v, int | float | str)}
            for r in st.manifest.get("summary") or [] if isinstance(r, dict)]
    sec.add(table(rows) if rows else note("no summary in this folder's manifest"))
    return sec


def read_table(path: Path) -> list[dict]:
    """Rows of a small TSV/CSV with a header, numbers converted (files over 5 MB are skipped)."""
    if path.stat().st_size > 5 << 20:
        return []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
        rows = []
        for r in reader:
            rows.append({k: _number(v) for k, v in r.items() if k is not None})
    return rows


def _number(v: str | None) -> Any:
    if v is None:
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def read_results(paths: list[Path], stages: list[StageFolder], root: Path
                 ) -> tuple[list[dict], list[str]]:
    """The result records of metrics.json files, each with `baseline` and `producer` set; and
    notes on unreadable files."""
    records, notes = [], []
    for p in paths:
        producer = producer_of(p, stages)
        try:
            records += [{**r, "producer": producer, "baseline": is_baseline(r, producer)}
                        for r in read_metrics(p)]
        except _READ_ERRORS as err:
            notes.append(f"{_rel(p, root)}: {err}")
    return records, notes


def render_tasks(records: list[dict], notes: list[str], root: Path) -> Section | None:
    """Every model on every task, baselines in grey (`plot_tasks`), and their table."""
    if not records and not notes:
        return None
    sec = Section("tasks", "Task results")
    rows = []
    for r in records:
        test = r.get("test") or {}
        rows.append({"task": r["task"], "model": r["model"],
                     "mcc_mean": r.get("mcc_mean", test.get("mcc")), "mcc_std": r.get("mcc_std"),
                     "seeds": len(r.get("seeds") or [None]), "f1": _seed_mean(r, "f1"),
                     "auroc": _seed_mean(r, "auroc"), "accuracy": _seed_mean(r, "accuracy"),
                     "baseline": r["baseline"],
                     "source": _rel(Path(r.get("source", "")).parent, root)})
    rows.sort(key=lambda r: (r["task"], -(r["mcc_mean"] if r["mcc_mean"] is not None else -9)))
    if rows:
        sec.add(figure_html(plot_tasks(records), "task results"))
    for r in rows:
        r["kind"] = "baseline" if r["baseline"] else "language model"
    sec.add(table(rows, ["task", "model", "kind", "mcc_mean", "mcc_std", "seeds", "f1", "auroc",
                         "accuracy", "source"],
                  {"mcc_mean": "test MCC (seed mean)", "mcc_std": "± sd (population)",
                   "f1": "F1 (seed mean)", "auroc": "AUROC (seed mean)",
                   "accuracy": "accuracy (seed mean)"}))
    for n in notes:
        sec.add(note(f"could not read {n}"))
    return sec


# kmer_references's lines by name (paired with the styles in order, a missing chance gave the most
# frequent k-mer its dots)
REFERENCE_LINES = {"chance": CHANCE_LINE, "most frequent k-mer": MOST_FREQUENT_LINE}


def kmer_references(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per next-k-mer task (nextkmer-kK), the accuracy of chance and of always answering the most
    frequent k-mer, from the summary of the metrics.json its results came from."""
    refs: dict[str, dict[str, float]] = {}
    for src in sorted({str(r["source"]) for r in records
                       if str(r.get("task", "")).startswith("nextkmer") and r.get("source")}):
        try:
            summary = json.loads(Path(src).read_text()).get("summary") or []
        except (OSError, ValueError, AttributeError):
            continue
        for row in summary:
            if isinstance(row, dict) and "k" in row:
                refs[f"nextkmer-k{row['k']}"] = {
                    name: row[key] for name, key in (("chance", "chance"), (
                        "most frequent k-mer", "most_frequent_accuracy")) if _is_number(row.get(key))}
    return refs


def plot_tasks(records: list[dict]):
    """One panel per task, the models' bars (mean ± sd over seeds) blue and the baselines' grey,
    each bar's value written beside it. Classification tasks: test MCC on one scale for every
    task. Next-k-mer tasks: test top-1 accuracy (%), as the report's first table gives it (MCC
    over 4^k classes put every bar within 0.1 of a 0-1 axis), on an axis of its own with chance
    and the most frequent k-mer drawn as lines."""
    refs = kmer_references(records)
    tasks = sorted({r["task"] for r in records})
    per_task = {t: [r for r in records if r["task"] == t] for t in tasks}
    fig, ax = figure(1, len(tasks), width=7.0,
                     height=max(1.6, 0.32 * max(len(v) for v in per_task.values()) + 1.0))
    ax = np.atleast_1d(ax)
    scored = [mean_mcc(r) for r in records if not r["task"].startswith("nextkmer")]
    lo = min(0.0, min((v for v in scored if _is_number(v)), default=0.0) - 0.05)
    for a, t in zip(ax, tasks, strict=True):
        kmer = t.startswith("nextkmer")
        bars = []
        for r in per_task[t]:
            if kmer:
                v, sd = _seed_stats(r, "accuracy")
                v, sd = (None, None) if v is None else (100 * v, None if sd is None else 100 * sd)
            else:
                v, sd = mean_mcc(r), r.get("mcc_std")
            if _is_number(v):
                bars.append((v, sd if _is_number(sd) else 0.0, r))
        bars.sort(key=lambda b: b[0])  # the best at the top
        y = np.arange(len(bars))
        a.barh(y, [b[0] for b in bars],
               color=[COLORS[7] if b[2]["baseline"] else COLORS[0] for b in bars])
        spread = [i for i, b in enumerate(bars) if b[1] > 0]  # one seed: no error bar drawn
        a.errorbar([bars[i][0] for i in spread], spread, xerr=[bars[i][1] for i in spread],
                   fmt="none", ecolor="k", capsize=3, lw=1)
        a.set_yticks(y, [b[2]["model"] for b in bars], fontsize=8)
        top = max([b[0] + b[1] for b in bars] + [0.0]
                  + ([100 * v for v in refs.get(t, {}).values()] if kmer else []))
        for yi, (v, sd, _) in zip(y, bars, strict=True):
            a.text(max(v, 0) + sd + (0.01 * top if kmer else 0.01), yi, f"{v:.1f}%" if kmer
                   else f"{v:.3f}", va="center", fontsize=7)
        if kmer:
            for name, v in refs.get(t, {}).items():
                color, ls = REFERENCE_LINES[name]
                a.axvline(100 * v, color=color, ls=ls, lw=0.9, label=f"{name}: {100 * v:.1f}%")
            a.set_xlim(0, 1.15 * top if top > 0 else 1)
            a.set(xlabel="test top-1 accuracy (%, mean ± sd over seeds)")
            if refs.get(t):
                a.legend(frameon=False, fontsize=7, loc="lower right")
        else:
            a.set_xlim(lo, 1.0)
            a.set(xlabel="test MCC (mean ± sd over seeds)")
        a.set_title(f"{t} (grey: baselines)")
        a.axvline(0, color="k", lw=0.6)
    return fig


def is_baseline(record: dict, producer: str = "") -> bool:
    """Whether a result record is a baseline: as its producer marked it (`baseline` in the record,
    written by TF-IDF, the CNN and next-k-mer's reference answers), else by the stage that wrote
    its metrics.json (`baseline-...`), never by the model's name.

    >>> is_baseline({"model": "cnn", "baseline": True}), is_baseline({"model": "bert-kmer6"})
    (True, False)
    >>> is_baseline({"model": "tfidf-lr"}, "baselines-tfidf")
    True
    """
    if "baseline" in record:
        return bool(record["baseline"])
    return producer.startswith("baseline")


def producer_of(path: Path, stages: list[StageFolder]) -> str:
    """The stage name of the nearest manifest at or above a file (its producer), "" if none."""
    best = None
    for st in stages:
        if path.is_relative_to(st.folder) and (best is None or len(st.folder.parts)
                                               > len(best.folder.parts)):
            best = st
    return best.name if best is not None else ""


def vocab_section_of(analysis: dict, root: Path) -> str | None:
    """The title of the section that already shows the analysed vocabulary (a bpe-export folder
    under `root` whose manifest the analysis fingerprinted as its vocabulary), else None."""
    vocab = next((i for i in analysis.get("inputs") or []
                  if i.get("path") == analysis.get("vocab")), None)
    if vocab is None:
        return None
    for st in find_stages(root)[0]:
        if (st.name == "bpe-export" and (st.folder / "vocab_stats.json").exists()
                and fingerprint(st.folder)["sha256"] == vocab.get("sha256")):
            return f"Vocabulary at {st.manifest['config'].get('cycles')} cycles"
    return None


def render_analyze(st: StageFolder, root: Path) -> Section:
    sec = Section("analyze", f"Analyses — {_rel(st.folder, root)}")
    m = st.manifest
    sec.add(note(f"model: {m.get('model') or '–'}; vocabulary: {m.get('vocab') or '–'}"))
    shown = vocab_section_of(m, root)
    for name, entry in (m.get("analyses") or {}).items():
        path = st.folder / entry["json"]
        if not path.exists():
            continue
        sec.add(f"<h3>{html.escape(ANALYSIS_TITLES.get(name, name))}</h3>")
        if name == "vocab" and shown is not None:
            # the same vocabulary's figure and table, drawn twice on one page
            sec.add(note(f"Shown in “{shown}”."))
            continue
        res = json.loads(path.read_text())["result"]
        summarize = ANALYSIS_TABLES.get(name)
        if summarize is not None:
            sec.add(*summarize(res))
        for f in entry.get("figures", []):
            if (st.folder / f).exists():
                sec.add(image((st.folder / f).read_bytes(), f))
    for name, why in (m.get("skipped") or {}).items():
        sec.add(note(f"{name}: not run ({why})"))
    return sec


def _vocab_tables(res: dict) -> list[str]:
    return [table(res["comparison"], ["figure", "this", "grover"],
                  {"this": "this vocabulary", "grover": "GROVER (hg19, 600 cycles)"})]


def _pca_tables(res: dict) -> list[str]:
    rows = [{"component": c["component"], "explained variance": c["explained"],
             **{p: c[p] for p in ("frequency", "gc", "ag", "length")}} for c in res["components"]]
    return [table(rows), table(res["grover"], ["component", "property", "this_rho", "grover_rho"],
                               # negating every embedding flips a component and its rho: only
                               # the magnitudes compare
                               {"this_rho": "this model (Spearman; a component's sign is "
                                "arbitrary)", "grover_rho": "GROVER (compare magnitudes)"})]


def _masked_tables(res: dict) -> list[str]:
    rho = res["spearman_accuracy"]
    return [note("The analysis' own windows and masking rate, not pretraining's evaluation "
                 "samples: its accuracy is not the held-out accuracy above; the context table and "
                 "the unigram are scored on the same targets as the model."),
            table([{"windows": res["windows"], "masked tokens": res["masked"],
                    "model": percent(res["accuracy"]),
                    "context table": percent(res.get("context_accuracy")),
                    "unigram": percent(res.get("unigram_accuracy")),
                    "tokens scored": res["tokens_scored"],
                    "rho(accuracy, frequency)": rho["frequency"],
                    "rho(accuracy, length)": rho["length"]}])]


def _context_tables(res: dict) -> list[str]:
    rows = []
    for i, layer in enumerate(res["layers"]):
        row: dict[str, Any] = {"hidden state": layer}
        for name, c in res["curves"].items():
            row[f"{name}: self-similarity"] = c["self_similarity"][i]
            row[f"{name}: different tokens"] = c["baseline"][i]
        rows.append(row)
    return [table(rows)]


def _annotation_tables(res: dict) -> list[str]:
    rows = []
    for p in res["probes"]:
        e, k = p["embedding"], p["kmer"]
        rows.append({"annotation": p["annotation"], "windows": e["n"], "positives": e["positives"],
                     "embedding AUROC": e.get("auroc_mean"), "± ": e.get("auroc_std"),
                     "k-mer AUROC": k.get("auroc_mean"), "±": k.get("auroc_std"),
                     "embedding MCC": e.get("mcc_mean"), "k-mer MCC": k.get("mcc_mean"),
                     "note": e.get("skipped")})
    return [note(f"{res['windows']} windows, mean {res['mean_window_bp']:.0f} bp / "
                 f"{res['mean_window_tokens']:.0f} tokens; hidden state {res['layer']}; "
                 f"{res['config']['folds']}-fold probes"), table(rows)]


ANALYSIS_TITLES = {"vocab": "Vocabulary", "pca": "Token-embedding PCA",
                   "masked": "Masked-token accuracy per token",
                   "context": "Contextual self-similarity",
                   "annotations": "Window embeddings and annotations"}
ANALYSIS_TABLES: dict[str, Callable[[dict], list[str]]] = {
    "vocab": _vocab_tables, "pca": _pca_tables, "masked": _masked_tables,
    "context": _context_tables, "annotations": _annotation_tables}


def render_embed(stages: list[StageFolder], root: Path) -> Section:
    rows = []
    for st in stages:
        c = st.manifest.get("config", {})
        rows.append({"file": _rel(Path(st.manifest.get("outputs", {}).get("npy", "")), root),
                     "shape": " × ".join(str(x) for x in st.manifest.get("shape", [])),
                     "input": c.get("input"), "pooling": c.get("pooling"), "layer": c.get("layer"),
                     "dtype": c.get("dtype"), "empty": st.manifest.get("empty_sequences"),
                     "seconds": st.manifest.get("seconds")})
    return Section("embed", "Embeddings").add(table(rows))


def render_runner(stages: list[StageFolder], root: Path) -> Section:
    """The `groverlm run` manifests (one per stage folder): what each stage cost. Their outputs
    have manifests of their own, rendered as the other sections."""
    rows = [{"stage": st.name.removeprefix(RUNNER_PREFIX), "folder": _rel(st.folder, root),
             "seconds": st.manifest.get("seconds"), "CPU seconds": st.manifest.get("cpu_seconds"),
             "peak GB": st.manifest.get("peak_rss_gb"), "finished": st.manifest.get("created")}
            for st in sorted(stages, key=_run_order)]
    return Section("run", "Pipeline run: time and memory per stage").add(
        note("Wall and CPU time of each stage's process (torchrun's workers not included); peak "
             "resident memory while the stage ran."), table(rows))


def _run_order(st: StageFolder) -> tuple[str, int]:
    """When a runner manifest was written (whole seconds), then the pipeline's order: stages that
    finished within one second (a small run's genome and BPE) are not listed in folder order."""
    order = list(config.STAGE_SECTIONS)
    name = st.name.removeprefix(RUNNER_PREFIX)
    return str(st.manifest.get("created", "")), order.index(name) if name in order else len(order)


def render_other(st: StageFolder, root: Path) -> Section:
    """Any other stage (corpus, task builders, ...): its manifest's scalar figures, nested
    dictionaries flattened to dotted names (e.g. splits.train.samples)."""
    sec = Section(st.name, f"{st.name} — {_rel(st.folder, root)}")
    skip = {"stage", "groverlm_version", "created", "inputs"}
    rows = [{"field": k, "value": v}
            for k, v in _flatten({k: v for k, v in st.manifest.items() if k not in skip})]
    return sec.add(f"<details><summary>its manifest: {len(rows)} settings and figures"
                   f"</summary>{table(rows)}</details>" if rows else note("no figures in its manifest"))


def _flatten(d: dict, prefix: str = "", depth: int = 3) -> list[tuple[str, Any]]:
    """(dotted key, value) of the scalars and short scalar lists in nested dicts.

    >>> _flatten({"a": 1, "b": {"c": [1, 2], "d": [{"x": 1}]}})
    [('a', 1), ('b.c', [1, 2])]
    """
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth > 1:
            out += _flatten(v, key + ".", depth - 1)
        elif isinstance(v, list) and len(v) <= 12 and all(
                isinstance(x, str | int | float | bool) or x is None for x in v):
            out.append((key, v))
        elif not isinstance(v, dict | list):
            out.append((key, v))
    return out


# ----------------------------------------------------------------------------- the answer


def _eval_of(st: StageFolder) -> dict:
    ev = st.folder / "eval.json"
    data = json.loads(ev.read_text()) if ev.exists() else st.manifest.get("eval")
    return data if isinstance(data, dict) else {}


def _upstream(st: StageFolder, name: str, by_digest: dict[str, StageFolder],
              depth: int = 3) -> StageFolder | None:
    """The nearest stage named `name` among the inputs of `st`'s manifest, followed upstream
    (a pretrained model -> its corpus -> its vocabulary). `by_digest`: the stage folders by their
    fingerprints, by which the inputs are found: their recorded paths are absolute, no longer
    there in a run folder moved since."""
    for item in st.manifest.get("inputs") or []:
        up = by_digest.get(item.get("sha256")) if isinstance(item, dict) else None
        if up is None:
            continue
        if up.name == name:
            return up
        if depth > 1 and (found := _upstream(up, name, by_digest, depth - 1)) is not None:
            return found
    return None


def render_answer(stages: list[StageFolder], records: list[dict], root: Path) -> Section | None:
    """The page's first screen: what the model learned, each number beside its baselines
    (masked tokens: unigram and context table; tasks: every baseline; next-k-mer: chance and the
    most frequent k-mer; vocabulary: GROVER's figures)."""
    sec = Section("answer", "What the model learned")
    all_stages = stages
    # a vocabulary selection's candidate models are its own business (its section shows them)
    parts_of = [st.folder for st in stages if st.name == "select-vocab"]
    stages = [st for st in stages if not any(st.folder.is_relative_to(f) for f in parts_of)]
    rows = []
    for st in stages:
        ev = _eval_of(st) if st.name == "pretrain" else {}
        if _is_number(ev.get("mlm_accuracy")):
            rows.append({"model": _rel(st.folder, root), "tokens seen": st.manifest.get(
                             "tokens_seen", ev.get("tokens_seen")),
                         "held-out accuracy": percent(ev["mlm_accuracy"]),
                         "context table": percent(ev.get("context_accuracy")),
                         "unigram": percent(ev.get("unigram_accuracy")),
                         "model - table": difference_text(ev["vs_context_table"]) if isinstance(
                             ev.get("vs_context_table"), dict) else "",
                         "verdict": masked_token_verdict(ev["mlm_accuracy"],
                                                         ev.get("unigram_accuracy"),
                                                         ev.get("context_accuracy"),
                                                         ev.get("vs_context_table"))})
    if rows:
        sec.add("<h3>Masked tokens</h3>", note(
            "Held-out masked-token accuracy against the most frequent token (unigram) and the "
            "context table (the most frequent token between the same two neighbours, counted on "
            "the training split), on the same targets."), table(rows))

    tasks = [r for r in records if not str(r.get("task", "")).startswith("nextkmer")]
    if tasks:
        models = sorted({r["model"] for r in tasks if not r["baseline"]}) + sorted(
            {r["model"] for r in tasks if r["baseline"]})
        pivot, repeated = [], []
        for task in sorted({r["task"] for r in tasks}):
            by = {r["model"]: r for r in tasks if r["task"] == task}
            mine = [r["model"] for r in tasks if r["task"] == task]
            repeated += [f"{task} / {m}" for m in sorted(set(mine)) if mine.count(m) > 1]
            row: dict[str, Any] = {"task": task}
            for m in models:
                r = by.get(m)
                v = mean_mcc(r) if r else None
                row[m] = "-" if not _is_number(v) else (
                    f"{v:.3f}" + (f" ± {r['mcc_std']:.3f}" if _is_number(r.get("mcc_std"))
                                  and len(r.get("seeds") or []) > 1 else ""))
            c = best_against_best(list(by.values())).get(task)
            if c:
                p = c["paired"]
                # the paired interval decides where there is one; the point estimates where not
                above = p["better"] == "a" if p else c["mcc"] > c["baseline_mcc"]
                below = p["better"] == "b" if p else not above
                row["verdict"] = (f"{c['model']} beats every baseline" if above else
                                  f"below {c['baseline']} ({c['baseline_mcc']:.3f})" if below else
                                  f"level with {c['baseline']} ({c['baseline_mcc']:.3f})")
                row["against the best baseline"] = (
                    difference_text(p) + {"a": ": clearly above", "b": ": clearly below",
                                          None: ": within the noise"}[p["better"]]
                    if p else difference_text(p))
            pairs = scratch_pairs(list(by.values()))
            if pairs:  # the best language model that has a control
                ctl = max(pairs, key=lambda e: e["mcc"] if e["mcc"] is not None else -np.inf)
                row["pretraining adds"] = (f"{ctl['model']} - {ctl['control']}: "
                                           + difference_text(ctl["paired"]))
            pivot.append(row)
        sec.add("<h3>Tasks: test MCC</h3>", note(
            "Language models first, then baselines (marked as such by the stage that produced "
            "them); mean ± sd over seeds (population sd). Against the best baseline: the best "
            "language model's MCC minus the best baseline's (TF-IDF, the CNN: the from-scratch "
            "control is paired with its own model under 'pretraining adds'), with the 95% "
            "interval of a paired bootstrap over the test rows (both scored on the same "
            "resamples): a small test set moves an MCC by several hundredths."),
            table(pivot, ["task", *models] + (["verdict", "against the best baseline"]
                                               if any("verdict" in r for r in pivot) else [])
                  + (["pretraining adds"] if any("pretraining adds" in r for r in pivot) else [])))
        if repeated:  # "Task results" below lists every one, with its folder
            sec.add(note("more than one result for " + ", ".join(repeated) + ": the last one "
                         "found is shown here; see Task results for each"))
        rows_differ = rows_lines(tasks)
        if rows_differ:
            sec.add(note("Training rows differ between the models of a task: "
                         + "; ".join(line.strip() for line in rows_differ) + "."))

    kmer_rows = []
    for st in stages:
        path = st.folder / "metrics.json"
        if st.name != "nextkmer" or not path.exists():
            continue
        for r in json.loads(path.read_text()).get("summary") or []:
            tfidf = [(v, k) for k, v in r.items() if k.startswith("tfidf") and _is_number(v)]
            kmer_rows.append({"model": _rel(st.folder, root), "k": r.get("k"),
                              "fine-tuned": percent(r.get("accuracy")),
                              "zero-shot": percent(r.get("zero_shot_accuracy")),
                              "chance": percent(r.get("chance")),
                              "most frequent k-mer": percent(r.get("most_frequent_accuracy")),
                              "best TF-IDF": (f"{percent(max(tfidf)[0])} ({max(tfidf)[1]})"
                                              if tfidf else "-"),
                              "context table": (f"{percent(r['context_table'])} (last "
                                                f"{r['context_table_order']} nt)"
                                                if "context_table" in r else "-"),
                              "fine-tuned - best TF-IDF": (difference_text(r["vs_tfidf"])
                                                           if "vs_tfidf" in r else "-"),
                              "zero-shot - table": (difference_text(r["zero_shot_vs_table"])
                                                    if "zero_shot_vs_table" in r else "-")})
    if kmer_rows:
        sec.add("<h3>Next-k-mer prediction: test top-1 accuracy</h3>", table(kmer_rows))

    zero = [st for st in stages if st.name == "score-readouts"
            and (st.folder / "readouts.json").exists()]
    if zero and (rows := readout_rows(json.loads((zero[0].folder / "readouts.json").read_text()))):
        sec.add("<h3>Zero-shot: the model's own likelihoods, no fine-tuning</h3>", table(rows))

    # a folder's fingerprint is its manifest.json's (manifest.fingerprint), as its users record it
    by_digest = {fingerprint(st.folder)["sha256"]: st for st in all_stages
                 if st.manifest_path == st.folder / "manifest.json"}
    models = [st for st in stages if st.name == "pretrain"]
    exports = [e for e in (_upstream(m, "bpe-export", by_digest) for m in models) if e] or [
        st for st in stages if st.name == "bpe-export"]
    exports = [e for e in exports if (e.folder / "vocab_stats.json").exists()]
    if exports:
        stats = json.loads((exports[0].folder / "vocab_stats.json").read_text())
        res = tokens.vocab_analysis(stats["tokens"], stats.get("cycles"))
        sec.add(f"<h3>Vocabulary ({html.escape(_rel(exports[0].folder, root))}) against "
                "GROVER's</h3>",
                table(res["comparison"], ["figure", "this", "grover"],
                      {"this": "this vocabulary", "grover": "GROVER (hg19, 600 cycles)"}))
    return sec if sec.body else None


def _round(v: Any) -> Any:
    return round(v, 3) if _is_number(v) else v


def readout_rows(res: dict) -> list[dict]:
    """The zero-shot readouts as table rows (figure, value, baseline)."""
    rows = []
    if "prom300" in res:
        p = res["prom300"]
        rows.append({"readout": f"Prom300: promoter vs its token shuffle ({p['sequences']} "
                                f"sequences of the {p.get('rows', 'test split')}), AUROC of the "
                                "per-nt pseudo-log-likelihood",
                     "value": round(p["auroc"], 3), "chance": 0.5})
    if "ctcf" in res:
        c = res["ctcf"]
        rows.append({"readout": f"CTCF motif SNVs ({c['snvs']} in {c['sites']} bound sites, "
                                f"{c.get('region', '')}): Spearman with the JASPAR log-odds change",
                     "value": _round(c.get("spearman")), "chance": 0.0})
        rows.append({"readout": "CTCF motif SNVs: AUROC, the 5 most informative positions "
                                "against the 5 least", "value": _round(c.get("auroc_informative")),
                     "chance": 0.5})
    return rows


def render_readouts(st: StageFolder, root: Path) -> Section:
    """Zero-shot readouts (`score` stage): the figures and the SNV scatter against JASPAR."""
    res = json.loads((st.folder / "readouts.json").read_text())
    sec = Section("score-readouts", f"Zero-shot readouts — {_rel(st.folder, root)}")
    sec.add(table(readout_rows(res)) if res else note("no readout ran"))
    if (res.get("ctcf") or {}).get("points"):
        sec.add(figure_html(plot_snv_readout(res["ctcf"]), "CTCF SNV scores against JASPAR"))
    return sec


def plot_snv_readout(ctcf: dict):
    """The CTCF SNV readout: each SNV's model score against its JASPAR log-odds change, the
    Spearman correlation the readout table reports in the title."""
    pts = np.array(ctcf["points"], dtype=np.float64)  # (n, 2): JASPAR change, model score
    fig, ax = figure(1, 1, width=5.0, height=3.6)
    ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.4, color=COLORS[0], lw=0)
    ax.axhline(0, color="k", lw=0.5)
    rho = ctcf.get("spearman")
    ax.set(xlabel="JASPAR log-odds change (bits)", ylabel="model score (ALT - REF)",
           title=f"CTCF motif SNVs in bound sites\n{len(pts):,} SNVs, Spearman "
                 + ("n/a" if not _is_number(rho) else f"{rho:.2f}"))
    ax.title.set_fontsize(10)
    return fig


def render_ism(st: StageFolder, root: Path) -> Section:
    """`groverlm ism`: its heat map and importance track, and its summary."""
    sec = Section("ism", f"In-silico mutagenesis — {_rel(st.folder, root)}")
    summary = st.manifest.get("summary") or {}
    sec.add(table([{"field": k, "value": v} for k, v in summary.items()]))
    png = st.folder / "ism.png"
    if png.exists():
        sec.add(image(png.read_bytes(), "in-silico mutagenesis heat map"))
    return sec


RENDERERS: dict[str, Callable[[StageFolder, Path], Section]] = {
    "bpe-train": render_bpe_train, "bpe-export": render_bpe_export,
    "pretrain": render_pretrain, "select-vocab": render_select_vocab,
    "nextkmer": render_nextkmer, "next-kmer": render_nextkmer,
    "analyze": render_analyze, "score-readouts": render_readouts,
    "ism": render_ism}
RUNNER_PREFIX = "run-"  # `groverlm run` names its per-stage manifests run-<stage>
ORDER = ["answer", "run", "bpe-train", "bpe-export", "corpus", "pretrain", "train", "select-vocab",
         "nextkmer", "tasks", "analyze", "score-readouts", "ism",
         "embed"]  # section kinds in page order; others follow, by name


# ----------------------------------------------------------------------------- page


CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:16px 28px 60px;background:#fff}
h1{font-size:26px;margin:18px 0 4px}h2{font-size:20px;margin:36px 0 8px;padding-top:8px;
border-top:2px solid #1f77b4}h3{font-size:16px;margin:22px 0 6px}h4{font-size:14px;margin:14px 0 4px}
.meta{color:#666;font-size:13px}nav{font-size:13px;margin:10px 0 18px}nav a{margin-right:14px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 12px}
th,td{border:1px solid #ddd;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;display:block;margin:8px 0 14px}.note{color:#666;font-size:13px;margin:4px 0}
.warn{color:#a33}
"""


def build_sections(root: Path) -> tuple[list[Section], list[str], list[StageFolder]]:
    stages, notes = find_stages(root)
    sections: list[Section] = []
    embeds, runner = [], []
    for st in stages:
        if st.name == "embed":
            embeds.append(st)
            continue
        if st.name.startswith(RUNNER_PREFIX):
            runner.append(st)
            continue
        render = RENDERERS.get(st.name)
        if render is None and (st.folder / "log.jsonl").exists():
            render = render_pretrain
        if render is None and st.name.startswith("select"):
            render = render_select_vocab
        if render is None and ((st.folder / "metrics.json").exists()
                               or st.name == "finetune-model"):
            continue  # a baseline or fine-tuning folder (or its saved model): "Task results"
        if render is None:
            render = render_other
        try:
            sections.append(render(st, root))
        except _READ_ERRORS as err:
            log.warning("report: %s (%s) not rendered: %s", st.folder, st.name, err)
            notes.append(f"{_rel(st.folder, root)} ({st.name}): not rendered: {err}")
    paths = [p for p in find_metrics([root])
             if not any(x.startswith(".") for x in p.relative_to(root).parts)]
    records, read_notes = read_results(paths, stages, root)
    try:
        tasks = render_tasks(records, read_notes, root)
        answer = render_answer(stages, records, root)
    except _READ_ERRORS as err:
        tasks = answer = None
        notes.append(f"task results not rendered: {err}")
    if answer is not None:
        sections.append(answer)
    if tasks is not None:
        sections.append(tasks)
    if embeds:
        sections.append(render_embed(embeds, root))
    if runner:
        sections.append(render_runner(runner, root))
    sections.sort(key=lambda s: _rank(s.kind))  # stable: folders keep their path order
    stages.sort(key=lambda st: (_rank(st.name), str(st.folder)))
    return sections, notes, stages


def _rank(kind: str) -> tuple[int, int, str]:
    """Page position of a section kind: ORDER first; task builders (tasks-*) before results."""
    rank = {k: i for i, k in enumerate(ORDER)}
    if kind.startswith("tasks-"):
        return rank["tasks"], 0, kind
    return rank.get(kind, len(ORDER)), 1, kind


def render_report(run_dir: str | Path) -> str:
    """The HTML page of every stage found under `run_dir`."""
    root = Path(run_dir)
    if not root.is_dir():
        raise GroverError("no such run folder", root)
    sections, notes, stages = build_sections(root)
    parts = ["<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
             f"<title>groverlm report — {html.escape(root.resolve().name)}</title>",
             f"<style>{CSS}</style></head><body><main>",
             f"<h1>groverlm report: {html.escape(str(root))}</h1>",
             f"<p class=meta>groverlm {__version__}, {time.strftime('%Y-%m-%d %H:%M')}; "
             f"{len(stages)} stage folders found</p>"]
    if sections:
        short = [s.title.split(" — ")[0] for s in sections]
        # a title that repeats (a selection's candidate pretrainings) keeps its folder, so that
        # twelve links do not all read "Pretraining"
        links = "".join(f'<a href="#s{i}">{html.escape(t if short.count(t) == 1 else s.title)}</a>'
                        for i, (s, t) in enumerate(zip(sections, short, strict=True)))
        parts.append(f"<nav>{links}</nav>")
        parts.append(f"<details><summary>{len(stages)} stage folders</summary>"
                     + table([{"stage": st.name, "folder": _rel(st.folder, root),
                               "created": st.manifest.get("created")} for st in stages])
                     + "</details>")
    else:
        parts.append(note("No groverlm stage found under this folder."))
    for n in notes:
        parts.append(f"<p class='note warn'>{html.escape(n)}</p>")
    for i, s in enumerate(sections):
        parts.append(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>{"".join(s.body)}'
                     "</section>")
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 overwrite: bool = False) -> Path:
    """Render `run_dir` into `out` (default run_dir/report.html), atomically."""
    out = Path(out) if out is not None else Path(run_dir) / REPORT
    if out.exists() and not overwrite:
        raise GroverError("already exists; pass --overwrite to replace it", out)
    page = render_report(run_dir)
    write_text(out, page)
    return out


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Report: every stage of the run rendered as one self-contained HTML page."""
    path = write_report(ctx.run_dir, ctx.out / "report.html", overwrite=True)
    return {"report": ctx.relative(path)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML page of every stage in a folder")
    p.add_argument("run_dir", help="folder searched (recursively) for stage outputs")
    p.add_argument("--out", help=f"HTML file to write (default RUN_DIR/{REPORT})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    out = write_report(args.run_dir, args.out, args.overwrite)
    print(f"report: {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
