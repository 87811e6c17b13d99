"""Tasks stage, CTCF: is a CTCF motif occurrence bound (inside a ChIP-seq peak) or not?

Reads a FASTA genome, a JASPAR count matrix and one or more BED peak files; writes a task folder
(`common.write_task`).

Both strands are scanned with the motif's log-odds matrix (log2 of the smoothed base frequencies
over a uniform background); a hit is every position scoring at least the threshold (absolute in
bits, or `rel_threshold` of the way from the matrix's minimum to its maximum score). Hits closer
than `min_spacing` to a better hit are suppressed (with the default spacing, one window, the
windows never overlap). A window of `window` bp is centred on each kept hit, read on the hit's
strand (or the + strand with orient="genome"); its label is 1 when the motif lies wholly inside a
peak of any of the peak files (their union), else 0.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.errors import GroverError
from groverlm.fasta import BASES, Record
from groverlm.manifest import prepare_out, writes_folder
from groverlm.tasks.annotations import (
    check_on_genome,
    contained,
    read_bed_intervals,
    union_intervals,
)
from groverlm.tasks.common import (
    Example,
    SplitConfig,
    iter_genome,
    split_examples,
    window_sequence,
    write_task,
)

log = logging.getLogger(__name__)
tqdm = lazy.module("tqdm")  # progress bars load on first use

_CHUNK = 1 << 22  # bases scored at a time: (chunk,) float32 arrays, memory stays small
_FORBIDDEN = -1e9  # score of a non-ACGT base: no hit can hold one
ORIENT = ("motif", "genome")


@dataclass
class Motif:
    """A JASPAR count matrix. `counts` is (L, 4) float64, columns A, C, G, T."""

    name: str
    counts: np.ndarray

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def log_odds(self, pseudocount: float = 1.0, background: np.ndarray | None = None
                 ) -> np.ndarray:
        """(L, 4) log2((count + pc * bg) / (column total + pc) / bg)."""
        bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
        freq = (self.counts + pseudocount * bg) / (self.counts.sum(1, keepdims=True) + pseudocount)
        return np.log2(freq / bg)

    def consensus(self) -> str:
        return "".join(BASES[i] for i in self.counts.argmax(1))


_ROW = re.compile(r"^\s*([ACGTacgt])?\s*\[?([^\]]*)\]?\s*$")


def read_jaspar(path: str | Path) -> Motif:
    """The one count matrix of a JASPAR file: `>ID name` then rows `A [ n n ... ]` for A, C, G, T
    (the bare four-row .pfm layout, without letters or brackets, is read too)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not a header
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise GroverError(err.strerror or str(err), path) from None
    except UnicodeDecodeError:
        raise GroverError("binary data, not a JASPAR text file", path) from None
    name, rows, letters = path.stem, [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(">"):
            if rows:
                raise GroverError("more than one matrix: give a file with one motif", path, n)
            name = " ".join(line[1:].split()) or name
            continue
        m = _ROW.match(line)
        try:
            values = [float(x) for x in (m.group(2) if m else "").split()]
        except ValueError:
            values = []
        if not values:
            raise GroverError("expected a matrix row like `A [ 87 167 ... ]`", path, n)
        if min(values) < 0:
            raise GroverError("negative count in the matrix", path, n)
        if rows and len(values) != len(rows[0]):
            raise GroverError(f"row has {len(values)} columns, the first had {len(rows[0])}",
                              path, n)
        rows.append(values)
        letters.append(m.group(1).upper() if m and m.group(1) else None)
    if len(rows) != 4:
        raise GroverError(f"expected 4 rows (A, C, G, T), found {len(rows)}", path)
    if any(letters):
        if sorted(letters) != sorted(BASES) or None in letters:
            raise GroverError("matrix rows must be labelled A, C, G and T once each", path)
        rows = [rows[letters.index(b)] for b in BASES]
    counts = np.array(rows, dtype=np.float64).T  # (L, 4)
    if (counts.sum(1) <= 0).any():
        raise GroverError("a matrix column has no counts", path)
    if np.allclose(counts.sum(1), 1.0, atol=0.02):  # the pseudocount would swamp them
        raise GroverError("the matrix holds frequencies (each column sums to 1), not counts: give "
                          "the count matrix (JASPAR .jaspar or .pfm)", path)
    return Motif(name, counts)


def score_strands(codes: np.ndarray, pwm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds scores of the motif starting at each position of `codes`, on the + strand and on the
    - strand (the reverse complement occupying the same bases): two (n - L + 1,) float32 arrays.
    Windows holding a non-ACGT base score about -1e9."""
    L = pwm.shape[0]
    n = codes.size - L + 1
    if n <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    fwd_t = np.full((L, 5), _FORBIDDEN, dtype=np.float32)  # (L, 5): column 4 is non-ACGT
    fwd_t[:, :4] = pwm
    rev_t = np.full((L, 5), _FORBIDDEN, dtype=np.float32)
    rev_t[:, :4] = pwm[::-1, ::-1]  # reversed positions, complemented bases (ACGT -> TGCA)
    fwd = np.empty(n, np.float32)
    rev = np.empty(n, np.float32)
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        f = np.zeros(b - a, np.float32)
        r = np.zeros(b - a, np.float32)
        for j in range(L):
            c = codes[a + j : b + j]
            f += fwd_t[j][c]
            r += rev_t[j][c]
        fwd[a:b], rev[a:b] = f, r
    return fwd, rev


@dataclass(frozen=True)
class Hit:
    chrom: str
    start: int  # the motif's bases are [start, start + L)
    strand: str
    score: float


def scan_record(rec: Record, pwm: np.ndarray, threshold: float, bar: Any = None) -> list[Hit]:
    """Every motif occurrence scoring >= threshold on either strand of one record, in order.
    `bar`: a tqdm bar over bases, advanced as the record is scored (chr20's scan takes about 10 s,
    hg19's minutes)."""
    L = pwm.shape[0]
    hits: list[Hit] = []
    for a in range(0, len(rec), _CHUNK):  # the motifs starting in [a, a + _CHUNK)
        fwd, rev = score_strands(rec.codes[a : a + _CHUNK + L - 1], pwm)
        for strand, s in (("+", fwd), ("-", rev)):
            for i in np.flatnonzero(s >= threshold):
                hits.append(Hit(rec.name, a + int(i), strand, float(s[i])))
        if bar is not None:
            bar.update(min(_CHUNK, len(rec) - a))
    hits.sort(key=lambda h: (h.start, h.strand))
    return hits


def suppress(hits: list[Hit], spacing: int) -> list[Hit]:
    """Best-first non-maximum suppression: drop a hit starting within `spacing` of a better kept
    one on the same chromosome (either strand). Returned in genomic order."""
    kept: dict[str, list[int]] = {}
    out = []
    for h in sorted(hits, key=lambda h: (-h.score, h.chrom, h.start, h.strand)):
        pos = kept.setdefault(h.chrom, [])
        i = bisect.bisect_left(pos, h.start)
        if (i < len(pos) and pos[i] - h.start < spacing) or (i and h.start - pos[i - 1] < spacing):
            continue
        pos.insert(i, h.start)
        out.append(h)
    return sorted(out, key=lambda h: (h.chrom, h.start, h.strand))


@dataclass(frozen=True)
class CTCFConfig:
    window: int = 300  # bp centred on the motif (the README's peak statistic uses 300 bp)
    threshold: float | None = None  # absolute log-odds cut-off in bits; None: use rel_threshold
    rel_threshold: float = 0.85  # fraction of the way from the minimum to the maximum score
    pseudocount: float = 1.0  # added to each column's counts, spread by the background
    min_spacing: int | None = None  # suppress weaker hits closer than this (null: the window; 0: none)
    orient: str = "motif"  # motif: sequence on the hit's strand; genome: always the + strand
    max_negative_ratio: float | None = None  # keep at most this many negatives per positive
    seed: int = 0  # negative subsampling, split draw, row order
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self):
        if self.window < 1:
            raise GroverError("--window must be at least 1")
        if not 0 <= self.rel_threshold <= 1:
            raise GroverError("--rel-threshold must be between 0 and 1")
        if self.orient not in ORIENT:
            raise GroverError(f"--orient must be one of {', '.join(ORIENT)}")
        if self.max_negative_ratio is not None and self.max_negative_ratio <= 0:
            raise GroverError("--max-negative-ratio must be positive")
        if self.min_spacing is not None and self.min_spacing < 0:
            raise GroverError("--min-spacing must be 0 or more")

    def cutoff(self, pwm: np.ndarray) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        lo, hi = float(pwm.min(1).sum()), float(pwm.max(1).sum())
        return lo + self.rel_threshold * (hi - lo)


def ctcf_examples(records: Iterable[Record], motif: Motif, peaks: dict[str, np.ndarray],
                  cfg: CTCFConfig, progress: bool = False) -> tuple[list[Example], dict[str, Any]]:
    """Labelled windows around the kept motif hits, ordered by (chrom, start, strand); with
    counts. `records` are scanned one at a time (`tasks.common.iter_genome`: memory holds one
    record, not the genome); `progress`: a bar over the bases scanned."""
    pwm = motif.log_odds(cfg.pseudocount)
    thr = cfg.cutoff(pwm)
    L = len(motif)
    spacing = cfg.window if cfg.min_spacing is None else cfg.min_spacing
    stats: dict[str, Any] = {"threshold_bits": thr, "max_score_bits": float(pwm.max(1).sum()),
                             "hits": 0, "hits_kept": 0, "skipped_edge_or_n": 0}
    per_record: dict[str, list[Example]] = {}
    bar = tqdm.tqdm(unit="bp", unit_scale=True, desc="ctcf scan", disable=not progress,
                    dynamic_ncols=True)
    for rec in records:
        hits = scan_record(rec, pwm, thr, bar)
        # suppression compares hits of one chromosome: per record it keeps what it kept genome-wide
        kept = suppress(hits, spacing)
        stats["hits"] += len(hits)
        stats["hits_kept"] += len(kept)
        rows = per_record[rec.name] = []
        for h in kept:
            centre = h.start + L // 2
            start = centre - cfg.window // 2
            end = start + cfg.window
            strand = h.strand if cfg.orient == "motif" else "+"
            seq = window_sequence(rec, start, end, strand)
            if seq is None:
                stats["skipped_edge_or_n"] += 1
                continue
            label = int(contained(peaks, h.chrom, h.start, h.start + L))
            rows.append(Example(seq, label, h.chrom, start, end, strand))
    bar.close()
    out = [e for name in sorted(per_record) for e in per_record[name]]
    pos = sum(e.label for e in out)
    stats["bound"], stats["unbound"] = pos, len(out) - pos
    stats["fraction_bound"] = pos / len(out) if out else 0.0
    if cfg.max_negative_ratio is not None:
        neg = [i for i, e in enumerate(out) if e.label == 0]
        limit = int(round(cfg.max_negative_ratio * pos))
        if len(neg) > limit:
            rng = np.random.default_rng(cfg.seed)
            drop = set(rng.choice(neg, size=len(neg) - limit, replace=False).tolist())
            out = [e for i, e in enumerate(out) if i not in drop]
            stats["negatives_subsampled_to"] = limit
    log.info("ctcf: threshold %.2f bits, %d hits, %d kept, %.1f%% bound", thr, stats["hits"],
             stats["hits_kept"], 100 * stats["fraction_bound"])
    return out, stats


@writes_folder
def build_ctcf(genome: str | Path, motif: str | Path, peaks: list[str | Path], out: str | Path,
               cfg: CTCFConfig, chroms: list[str] | None = None, overwrite: bool = False,
               progress: bool = False) -> dict[str, Any]:
    """`groverlm tasks ctcf`: build and write the task; returns its manifest."""
    if not peaks:
        raise GroverError("--peaks needs at least one BED file")
    prepare_out(out, overwrite)  # refuse before the work, not after
    m = read_jaspar(motif)
    peak_sets = [read_bed_intervals(p) for p in peaks]
    union = union_intervals(peak_sets)
    names: list[str] = []  # the records scanned

    def records() -> Iterator[Record]:
        for rec in iter_genome(genome, chroms):
            names.append(rec.name)
            yield rec

    examples, stats = ctcf_examples(records(), m, union, cfg, progress)
    per_file = {}
    for p, s in zip(peaks, peak_sets, strict=True):
        on = {c: iv for c, iv in s.items() if c in names}
        check_on_genome(s, names, p)  # else every hit would be unbound by this file
        per_file[str(p)] = {"peaks": int(sum(len(v) for v in on.values())),
                            "bp": int(sum(int((v[:, 1] - v[:, 0]).sum()) for v in on.values()))}
    result = split_examples(examples, cfg.split)
    return write_task(out, "ctcf", result, asdict(cfg), [genome, motif, *peaks], cfg.seed,
                      overwrite, label_names={0: "unbound motif", 1: "bound motif (in a peak)"},
                      motif={"name": m.name, "length": len(m), "consensus": m.consensus()},
                      hits=stats, peaks=per_file, chroms=sorted(names))
