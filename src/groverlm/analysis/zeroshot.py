"""Zero-shot readouts of a masked LM on real data: no fine-tuning, only the model's likelihoods.

Two figures, for the demo's summary and report (issue: "score with the language model"):

- **Prom300 zero-shot**: the AUROC of the per-nucleotide pseudo-log-likelihood for telling a
  promoter (label 1) from its own token shuffle (label 0), on the Prom300 rows inside the held-out
  regions (`held_out_split`: promoters pretraining never read). A model of sequence context
  should find the shuffles unnatural (AUROC above 0.5).
- **CTCF motif SNVs**: every single-nucleotide change of every bound CTCF motif site (a motif hit
  inside a ChIP-seq peak, as the CTCF task finds them) in a held-out region, scored by the model
  (`groverlm.score`'s variant rule) and by the JASPAR matrix (the change of the site's log-odds).
  Reported: the Spearman correlation of the two, and the AUROC with which the model's score
  (lower = more damaging) separates changes at the motif's five most informative positions from
  changes at its five least informative ones.

Reads a task folder, or a genome + JASPAR matrix + peak BED files; writes nothing itself: the
callers (`groverlm score readouts`, the runner) store the returned dictionaries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.errors import GroverError
from groverlm.fasta import BASES, Genome, reverse_complement
from groverlm.tasks.annotations import contained, read_bed_intervals, union_intervals
from groverlm.tasks.common import seeded_subset
from groverlm.tasks.ctcf import CTCFConfig, read_jaspar, scan_record, suppress
from groverlm.tasks.gue import Split

# scipy and scikit-learn load on first use, keeping the CLI and config loading light
skm = lazy.module("sklearn.metrics")
stats = lazy.module("scipy.stats")

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class MotifSNV:
    """One base change inside a motif site; `pos` is 0-based on the genome's + strand."""

    chrom: str
    pos: int
    ref: str  # + strand base
    alt: str  # + strand base
    site: int  # index of the site
    motif_pos: int  # 0-based position in the motif (its own orientation)
    delta_log_odds: float  # the site's JASPAR log-odds change (bits), alt minus ref


def information_content(counts: np.ndarray, pseudocount: float = 1.0) -> np.ndarray:
    """(L,) bits per motif position: 2 + sum p log2 p of the smoothed base frequencies.

    >>> information_content(np.array([[10.0, 0, 0, 0], [1, 1, 1, 1]]), 0.0).round(3).tolist()
    [2.0, 0.0]
    """
    p = (counts + pseudocount / 4) / (counts.sum(1, keepdims=True) + pseudocount)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log2(p), 0.0)
    return 2.0 + plogp.sum(1)


def site_snvs(seq_plus: str, chrom: str, start: int, strand: str, pwm: np.ndarray,
              site: int) -> list[MotifSNV]:
    """The 3 L changes of one site whose bases are genome[start, start + L) (`seq_plus`, the +
    strand), with the log-odds change read on the motif's strand.

    >>> pwm = np.log2(np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]) / 0.25)
    >>> s = site_snvs("AT", "c", 10, "+", pwm, 0)
    >>> (s[0].pos, s[0].ref, s[0].alt, s[0].motif_pos, round(s[0].delta_log_odds, 3))
    (10, 'A', 'C', 0, -2.807)
    >>> r = site_snvs("AT", "c", 10, "-", pwm, 0)  # motif AT on the - strand reads AT too
    >>> (r[0].pos, r[0].motif_pos, round(r[0].delta_log_odds, 3))
    (10, 1, -2.807)
    """
    L = len(seq_plus)
    out = []
    for i, ref in enumerate(seq_plus):
        if ref not in BASES:
            continue
        for alt in BASES:
            if alt == ref:
                continue
            if strand == "+":
                j, r, a = i, ref, alt
            else:  # genome position i is motif position L-1-i, complemented
                j, r, a = L - 1 - i, reverse_complement(ref), reverse_complement(alt)
            delta = float(pwm[j, BASES.index(a)] - pwm[j, BASES.index(r)])
            out.append(MotifSNV(chrom, start + i, ref, alt, site, j, delta))
    return out


def bound_ctcf_snvs(g: Genome, motif: str | Path, peaks: Sequence[str | Path],
                    region: Any, max_sites: int | None = 100, seed: int = 0
                    ) -> tuple[list[MotifSNV], np.ndarray]:
    """Every SNV of the bound CTCF motif sites inside `region` (a corpus.Region) of `g` (a
    fasta.Genome holding region.chrom: `tasks.common.load_genome(path, [region.chrom])`, not the
    whole genome); with the motif's information content per position. Sites are found as the CTCF
    task finds them (tasks.ctcf defaults: relative threshold, spacing), on region.chrom alone; at
    most `max_sites`, a seeded draw."""
    mot = read_jaspar(motif)
    cfg = CTCFConfig()
    pwm = mot.log_odds(cfg.pseudocount)
    rec = g[region.chrom]
    bound = union_intervals([read_bed_intervals(p) for p in peaks])
    L = len(mot)
    end = region.end if region.end is not None else len(rec)
    hits = [h for h in suppress(scan_record(rec, pwm, cfg.cutoff(pwm)), cfg.window)
            if region.start <= h.start and h.start + L <= end
            and contained(bound, h.chrom, h.start, h.start + L)]
    hits = [hits[i] for i in seeded_subset(len(hits), max_sites, seed)]
    snvs: list[MotifSNV] = []
    codes = rec.codes
    for k, h in enumerate(hits):
        seq = "".join(BASES[c] if c < 4 else "N" for c in codes[h.start:h.start + L])
        snvs += site_snvs(seq, h.chrom, h.start, h.strand, pwm, k)
    log.info("ctcf readout: %d bound sites in %s, %d SNVs", len(hits), region, len(snvs))
    return snvs, information_content(mot.counts, cfg.pseudocount)


def ctcf_readout(snvs: Sequence[MotifSNV], scores: Sequence[float], ic: np.ndarray,
                 n_extreme: int = 5) -> dict[str, Any]:
    """Spearman(model score, log-odds change) and the AUROC of -score for SNVs at the `n_extreme`
    most informative motif positions (1) against the least informative ones (0).

    >>> snvs = [MotifSNV("c", i, "A", "C", 0, i % 4, -float(i % 4)) for i in range(8)]
    >>> r = ctcf_readout(snvs, [-float(s.motif_pos) for s in snvs], np.array([0., 1, 2, 3]), 1)
    >>> r["spearman"], r["auroc_informative"]
    (1.0, 1.0)
    """
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s)
    delta = np.array([v.delta_log_odds for v in snvs])
    pos = np.array([v.motif_pos for v in snvs])
    order = np.argsort(ic, kind="stable")
    low, high = set(order[:n_extreme].tolist()), set(order[-n_extreme:].tolist())
    out: dict[str, Any] = {"sites": len({v.site for v in snvs}), "snvs": int(ok.sum()),
                           "informative_positions": sorted(int(i) for i in high),
                           "uninformative_positions": sorted(int(i) for i in low)}
    out["spearman"] = float(stats.spearmanr(s[ok], delta[ok]).statistic) if ok.sum() > 2 else None
    sel = ok & np.isin(pos, list(high | low))
    y = np.isin(pos[sel], list(high)).astype(int)
    out["auroc_informative"] = (float(skm.roc_auc_score(y, -s[sel])) if 0 < y.sum() < y.size
                                else None)
    return out


def held_out_split(task: Any, regions: Sequence[Any]) -> tuple[Any, str]:
    """The Prom300 rows a zero-shot readout may score, and where they come from: those of every
    split lying wholly inside a held-out region (`corpus.Region`s), which pretraining never read;
    else (no such rows of both classes, no regions, no coordinates) the test split, whose
    promoters a pretraining on the whole genome has read."""
    # a region without an end runs to its record's end
    held = union_intervals([{r.chrom: np.array([[r.start, np.iinfo(np.int64).max if r.end is None
                                                 else r.end]])} for r in regions])
    picked: dict[str, list] = {"sequences": [], "labels": [], "tokens": []}
    for split in task.splits.values():
        c = split.coords
        if not c or not all(k in c for k in ("chrom", "start", "end")):
            continue
        for i, (chrom, start, end) in enumerate(zip(c["chrom"], c["start"], c["end"],
                                                    strict=True)):
            if contained(held, chrom, int(start), int(end)):
                picked["sequences"].append(split.sequences[i])
                picked["labels"].append(int(split.labels[i]))
                picked["tokens"].append(split.tokens[i] if split.tokens else None)
    labels = np.asarray(picked["labels"], dtype=np.int64)
    if 0 < labels.sum() < labels.size:
        tokens = picked["tokens"] if all(t is not None for t in picked["tokens"]) else None
        return (Split(picked["sequences"], labels, tokens=tokens),
                "held-out region (every split)")
    return task.test, "test split (pretraining may have read it)"


def prom300_readout(sequences: Sequence[str], labels: Sequence[int],
                    per_nt_score: Callable[[Sequence[str]], np.ndarray]) -> dict[str, Any]:
    """The AUROC of the per-nucleotide pseudo-log-likelihood, promoter (1) against shuffle (0)."""
    y = np.asarray(labels, dtype=int)
    if not 0 < y.sum() < y.size:
        raise GroverError("the Prom300 split needs both promoters and shuffles")
    s = np.asarray(per_nt_score(sequences), dtype=np.float64)
    keep = np.isfinite(s)  # a sequence with nothing to score (all N) scores NaN: left out
    y, s = y[keep], s[keep]
    if not 0 < y.sum() < y.size:
        raise GroverError("the Prom300 split needs promoters and shuffles with a score")
    return {"sequences": int(y.size), "auroc": float(skm.roc_auc_score(y, s)),
            "mean_pll_per_nt_promoter": float(s[y == 1].mean()),
            "mean_pll_per_nt_shuffle": float(s[y == 0].mean())}
