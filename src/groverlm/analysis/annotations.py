"""Analyses, annotations: do window embeddings organise the genome's annotations?

Reads a model, genome windows (up to 510 tokens) and annotation files (repeats BED, CpG islands BED,
TSS list); writes nothing itself (`groverlm analyze` saves the JSON and PNGs). Each window gets its
mean-pooled embedding (as `groverlm embed`) and four annotations: the fraction of its bases in
repeats, whether it overlaps a CpG island, its distance to the nearest TSS and its GC fraction. The
embeddings are projected (PCA; UMAP too when `umap-learn` is installed) and coloured by each; then a
linear probe (standardised logistic regression, stratified k-fold) predicts each annotation as a
binary label from the embeddings, and the same probe from k-mer frequencies is the reference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.analysis.plots import COLORS, figure, scatter_colored
from groverlm.embed import EmbedConfig, embed_token_ids
from groverlm.errors import GroverError, counted
from groverlm.kmers import kmer_ids
from groverlm.tasks.annotations import check_on_genome, read_bed_intervals, read_tss

# scikit-learn and umap-learn load on first use, keeping the CLI and config loading light
decomposition = lazy.module("sklearn.decomposition")
linear_model = lazy.module("sklearn.linear_model")
model_selection = lazy.module("sklearn.model_selection")
pipeline = lazy.module("sklearn.pipeline")
preprocessing = lazy.module("sklearn.preprocessing")
skm = lazy.module("sklearn.metrics")
umap = lazy.module("umap")  # optional: `project` falls back to PCA alone

log = logging.getLogger(__name__)

LABELS = ("repeat", "cpg_island", "tss", "gc")  # binary probe targets, in report order


@dataclass(frozen=True)
class AnnotationConfig:
    """How windows are labelled and probed."""

    repeat_min: float = 0.5  # a window is "repeat" when at least this fraction of it is repeat
    tss_near: int = 1000  # bp: a window is "near a TSS" when one lies within this distance
    kmer_k: int = 4  # k of the k-mer-frequency reference probe (4**k features)
    folds: int = 5  # stratified cross-validation folds of each probe
    C: float = 1.0  # inverse L2 strength of the logistic regression
    seed: int = 0  # fold assignment (and UMAP)

    def __post_init__(self):
        if not 0 < self.repeat_min <= 1:
            raise GroverError(f"repeat_min must be in (0, 1], got {self.repeat_min}")
        if self.folds < 2:
            raise GroverError(f"a probe needs at least 2 folds, got {self.folds}")
        if self.tss_near < 0:
            raise GroverError(f"tss_near must be >= 0, got {self.tss_near}")


def overlap_bp(intervals: dict[str, np.ndarray], chrom: str, start: int, end: int) -> int:
    """Bases of [start, end) inside the merged, sorted (k, 2) intervals of `chrom`.

    >>> overlap_bp({"c": np.array([[0, 5], [8, 20]])}, "c", 3, 10)
    4
    """
    iv = intervals.get(chrom)
    if iv is None or not len(iv):
        return 0
    lo = int(np.searchsorted(iv[:, 1], start, side="right"))
    hi = int(np.searchsorted(iv[:, 0], end, side="left"))
    part = iv[lo:hi]
    return int((np.minimum(part[:, 1], end) - np.maximum(part[:, 0], start)).clip(min=0).sum())


def tss_distance(positions: dict[str, np.ndarray], chrom: str, start: int, end: int) -> float:
    """Bases from [start, end) to the nearest TSS of `chrom` (0 inside, inf when none).

    >>> p = {"c": np.array([2, 50])}
    >>> tss_distance(p, "c", 10, 20), tss_distance(p, "c", 40, 51), tss_distance(p, "d", 0, 1)
    (8.0, 0.0, inf)
    """
    pos = positions.get(chrom)
    if pos is None or not pos.size:
        return float("inf")
    i = int(np.searchsorted(pos, start, side="left"))
    if i < pos.size and pos[i] < end:
        return 0.0
    best = float("inf")
    if i > 0:
        best = float(start - pos[i - 1])
    if i < pos.size:
        best = min(best, float(pos[i] - end + 1))
    return best


def read_annotations(repeats: str | Path | None = None, cpg: str | Path | None = None,
                     tss: str | Path | None = None, records: Iterable[str] | None = None,
                     tss_format: str = "auto") -> dict[str, dict[str, np.ndarray]]:
    """Merged repeat and CpG intervals and sorted TSS positions per chromosome (those given; the
    TSS list in `tss_format`, a run's data.tss_format); with the genome's `records`, a file with
    nothing on them is an error (`check_on_genome`)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    paths = {"repeat": repeats, "cpg_island": cpg, "tss": tss}
    if repeats is not None:
        out["repeat"] = read_bed_intervals(repeats)
    if cpg is not None:
        out["cpg_island"] = read_bed_intervals(cpg)
    if tss is not None:
        sites, _ = read_tss(tss, tss_format)
        pos: dict[str, list[int]] = {}
        for t in sites:
            pos.setdefault(t.chrom, []).append(t.pos)
        out["tss"] = {c: np.unique(np.array(v, dtype=np.int64)) for c, v in pos.items()}
    if records is not None:
        for name, track in out.items():
            check_on_genome(track, records, paths[name])
    return out


def annotate_windows(windows, tracks: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-window values: gc (fraction), and repeat (fraction), cpg_island (fraction),
    tss (distance in bp) for the tracks given."""
    vals: dict[str, np.ndarray] = {}
    length = np.array([w.end - w.start for w in windows], dtype=np.float64)
    vals["gc"] = np.array([(w.sequence.count("G") + w.sequence.count("C")) / max(len(w.sequence), 1)
                           for w in windows])
    for name in ("repeat", "cpg_island"):
        if name in tracks:
            vals[name] = np.array([overlap_bp(tracks[name], w.chrom, w.start, w.end)
                                   for w in windows]) / length
    if "tss" in tracks:
        vals["tss"] = np.array([tss_distance(tracks["tss"], w.chrom, w.start, w.end)
                                for w in windows])
    return vals


def binary_labels(values: dict[str, np.ndarray], cfg: AnnotationConfig) -> dict[str, np.ndarray]:
    """The probe's 0/1 targets: repeat >= repeat_min, any CpG-island overlap, a TSS within
    tss_near bp, GC at or above the windows' median."""
    out = {}
    if "repeat" in values:
        out["repeat"] = (values["repeat"] >= cfg.repeat_min).astype(np.int64)
    if "cpg_island" in values:
        out["cpg_island"] = (values["cpg_island"] > 0).astype(np.int64)
    if "tss" in values:
        out["tss"] = (values["tss"] <= cfg.tss_near).astype(np.int64)
    out["gc"] = (values["gc"] >= np.median(values["gc"])).astype(np.int64)
    return {k: out[k] for k in LABELS if k in out}


def kmer_features(windows, k: int) -> np.ndarray:
    """(N, 4**k) k-mer frequencies of each window's sequence (counts over valid k-mers)."""
    x = np.zeros((len(windows), 4**k), dtype=np.float64)
    for i, w in enumerate(windows):
        ids = kmer_ids(w.sequence, k)
        ids = ids[ids >= 0]
        if ids.size:
            x[i] = np.bincount(ids, minlength=4**k) / ids.size
    return x


def probe(x: np.ndarray, y: np.ndarray, cfg: AnnotationConfig) -> dict[str, Any]:
    """Stratified k-fold logistic regression: AUROC and MCC mean and std over folds."""
    pos = int(y.sum())
    res: dict[str, Any] = {"n": int(y.size), "positives": pos}
    if min(pos, y.size - pos) < cfg.folds:
        res["skipped"] = (f"{counted(min(pos, y.size - pos), 'window')} in the smaller class "
                          f"(< {cfg.folds})")
        return res
    aucs, mccs = [], []
    folds = model_selection.StratifiedKFold(cfg.folds, shuffle=True, random_state=cfg.seed)
    for train, test in folds.split(x, y):
        clf = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                     linear_model.LogisticRegression(C=cfg.C, max_iter=2000))
        clf.fit(x[train], y[train])
        aucs.append(skm.roc_auc_score(y[test], clf.predict_proba(x[test])[:, 1]))
        mccs.append(skm.matthews_corrcoef(y[test], clf.predict(x[test])))
    return {**res, "auroc_mean": float(np.mean(aucs)), "auroc_std": float(np.std(aucs)),
            "mcc_mean": float(np.mean(mccs)), "mcc_std": float(np.std(mccs))}


def project(x: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """2-D projections of the embeddings: PCA always, UMAP when umap-learn is installed."""
    out = {"pca": decomposition.PCA(2, random_state=seed).fit_transform(x)}
    try:
        reducer = umap.UMAP  # the first read imports umap-learn
    except ImportError:
        log.info("umap-learn not installed: PCA projection only")
        return out
    out["umap"] = reducer(random_state=seed).fit_transform(x)
    return out


def annotation_analysis(model, tokenizer, windows, tracks: dict[str, dict[str, np.ndarray]],
                        cfg: AnnotationConfig, batch_size: int = 16, layer: int = -1,
                        progress: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray],
                                                         dict[str, np.ndarray]]:
    """Embed the windows, annotate, project and probe. Returns (result, projections, values)."""
    if len(windows) < 2 * cfg.folds:
        raise GroverError(f"{counted(len(windows), 'window')}: too few for {cfg.folds}-fold probes")
    ecfg = EmbedConfig(layer=layer, batch_size=batch_size)
    emb, _, _ = embed_token_ids(model, tokenizer, [w.ids for w in windows], ecfg, progress)
    values = annotate_windows(windows, tracks)
    labels = binary_labels(values, cfg)
    kmers = kmer_features(windows, cfg.kmer_k)
    probes = []
    for name, y in labels.items():
        probes.append({"annotation": name, "embedding": probe(emb, y, cfg),
                       "kmer": probe(kmers, y, cfg)})
    proj = project(emb, cfg.seed)
    summary = {}
    for name, v in values.items():
        finite = v[np.isfinite(v)]
        summary[name] = {"mean": float(finite.mean()) if finite.size else None,
                         "median": float(np.median(finite)) if finite.size else None}
    result = {"config": asdict(cfg), "windows": len(windows), "layer": layer,
              "embedding_dim": int(emb.shape[1]),
              "mean_window_bp": float(np.mean([w.end - w.start for w in windows])),
              "mean_window_tokens": float(np.mean([len(w) for w in windows])),
              "annotations": summary, "probes": probes, "projections": sorted(proj)}
    return result, proj, values


def plot_projection(coords: np.ndarray, values: dict[str, np.ndarray], title: str):
    """The 2-D projection coloured by each annotation (one panel per annotation)."""
    panels = [k for k in ("repeat", "cpg_island", "tss", "gc") if k in values]
    # one column when GC is the only annotation (a genome with no annotation files): not half blank
    fig, ax = figure(min(2, len(panels)), (len(panels) + 1) // 2, width=5.0, height=3.8)
    ax = np.atleast_1d(ax)
    names = {"repeat": "repeat fraction", "cpg_island": "CpG-island fraction",
             "tss": "log10(TSS distance + 1 bp)", "gc": "GC fraction"}
    for a, k in zip(ax, panels, strict=False):
        v = values[k]
        if k == "tss":
            v = np.log10(np.where(np.isfinite(v), v, np.nanmax(v[np.isfinite(v)], initial=1)) + 1)
        # draw the rare windows last, on top: high fractions, and short distances to a TSS
        order = np.argsort(-v if k == "tss" else v, kind="stable")
        scatter_colored(a, coords[order, 0], coords[order, 1], v[order], names[k],
                        cmap="plasma" if k == "tss" else "viridis", size=7)
        a.set(xlabel=f"{title} 1", ylabel=f"{title} 2", title=f"Window embeddings: {names[k]}")
    for a in ax[len(panels):]:
        a.axis("off")
    return fig


def plot_probes(result: dict):
    """AUROC of each probe from embeddings and from k-mer frequencies (mean and std over folds)."""
    fig, ax = figure(1, 1, width=6.4, height=3.6)
    rows = [p for p in result["probes"] if "auroc_mean" in p["embedding"]]
    x = np.arange(len(rows))
    for off, key, color, label in ((-0.2, "embedding", COLORS[0], "model embedding"),
                                   (0.2, "kmer", COLORS[7],
                                    f"{result['config']['kmer_k']}-mer frequencies")):
        ax.bar(x + off, [p[key]["auroc_mean"] for p in rows], 0.4,
               yerr=[p[key]["auroc_std"] for p in rows], color=color, label=label, capsize=3)
    ax.axhline(0.5, color="k", lw=0.8, ls=":", label="chance")
    ax.set_xticks(x, [p["annotation"] for p in rows])
    ax.set(ylim=(0, 1.22), ylabel=f"AUROC (mean ± sd over {result['config']['folds']} folds)",
           title=f"Linear probes on {result['windows']} windows")
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(frameon=False, loc="upper center", ncol=3)
    return fig
