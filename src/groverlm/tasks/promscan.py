"""Tasks stage, PromScan: find the window holding a TSS among the windows tiled around it (GROVER).

Reads a FASTA genome and a TSS list; writes a task folder (`common.write_task`).

Around each TSS, windows of `window` bp (1 kb) are tiled every `stride` bp over the `region`
(10 kb) centred on it, read on the TSS's strand: one window has the TSS base at its centre (index
window // 2) and the others are shifted by multiples of the stride, as far as they stay inside the
region (9 windows with the defaults, covering -4.5 kb .. +4.5 kb). A window's label is 1 when it
holds a TSS of the input on its own strand (its own TSS or a neighbour's), else 0; a label-0 window
holding a TSS of the other strand is dropped as ambiguous (a bidirectional promoter). Identical
windows from neighbouring TSSs are kept once. The task stays unbalanced, as in GROVER (about 1
positive in 9): score it with MCC and class weights.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groverlm.errors import GroverError
from groverlm.fasta import Genome
from groverlm.manifest import prepare_out, writes_folder
from groverlm.tasks.annotations import TSS, filter_tss, read_tss
from groverlm.tasks.common import (
    Example,
    SplitConfig,
    load_genome,
    oriented_interval,
    site_windows,
    split_examples,
    window_sequence,
    write_task,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromScanConfig:
    window: int = 1000  # window length (GROVER: 1 kb)
    region: int = 10000  # span tiled around each TSS (GROVER: 10 kb)
    stride: int = 1000  # shift between windows; < window gives several windows holding the TSS
    seed: int = 0  # the split draw and row order
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self):
        if self.window < 1 or self.stride < 1:
            raise GroverError("--window and --stride must be at least 1")
        if self.region < self.window:
            raise GroverError(f"--region ({self.region}) must be at least --window ({self.window})")

    def offsets(self) -> list[int]:
        """Start offsets (relative to the TSS, along its strand) of the tiled windows.

        >>> PromScanConfig().offsets()[:2], len(PromScanConfig().offsets())
        ([-4500, -3500], 9)
        """
        half = self.window // 2
        lo = -((self.region // 2 - half) // self.stride)
        hi = (self.region - self.region // 2 - (self.window - half)) // self.stride
        return [j * self.stride - half for j in range(lo, hi + 1)]


def promscan_examples(genome: Genome, tss: list[TSS], cfg: PromScanConfig
                      ) -> tuple[list[Example], dict[str, int]]:
    """The labelled windows of every TSS, deduplicated, in genomic order; with counts."""
    lists: dict[tuple[str, str], list[int]] = {}
    for t in tss:
        lists.setdefault((t.chrom, t.strand), []).append(t.pos)
    by_key = {k: np.array(sorted(v), dtype=np.int64) for k, v in lists.items()}

    def holds(chrom: str, strand: str, start: int, end: int) -> bool:
        pos = by_key.get((chrom, strand))
        if pos is None:
            return False
        return int(np.searchsorted(pos, end)) > int(np.searchsorted(pos, start))

    wins = set()
    for t in tss:
        for off in cfg.offsets():
            start, end = oriented_interval(t.pos, t.strand, off, off + cfg.window)
            wins.add((t.chrom, start, end, t.strand))
    stats = {"windows": len(wins), "skipped_edge_or_n": 0, "ambiguous": 0}
    out: list[Example] = []
    for chrom, start, end, strand in sorted(wins):
        label = int(holds(chrom, strand, start, end))
        if not label and holds(chrom, "-" if strand == "+" else "+", start, end):
            stats["ambiguous"] += 1
            continue
        seq = window_sequence(genome[chrom], start, end, strand)
        if seq is None:
            stats["skipped_edge_or_n"] += 1
            continue
        out.append(Example(seq, label, chrom, start, end, strand))
    stats["positives"] = sum(e.label for e in out)
    stats["negatives"] = len(out) - stats["positives"]
    log.info("promscan: %d windows, %d positive, %d ambiguous dropped, %d off-edge or with N",
             len(out), stats["positives"], stats["ambiguous"], stats["skipped_edge_or_n"])
    return out, stats


@writes_folder
def build_promscan(genome: str | Path, tss: str | Path, out: str | Path, cfg: PromScanConfig,
                   chroms: list[str] | None = None, tss_format: str = "auto",
                   overwrite: bool = False) -> dict[str, Any]:
    """`groverlm tasks promscan`: build and write the task; returns its manifest."""
    prepare_out(out, overwrite)  # refuse before the work, not after
    records, fmt = read_tss(tss, tss_format)
    offsets = cfg.offsets()  # the TSSs' tiled spans alone, read one record at a time
    g = load_genome(genome, chroms, windows=site_windows(records, offsets[0],
                                                         offsets[-1] + cfg.window))
    kept, tss_stats = filter_tss(records, g.lengths, tss)
    examples, stats = promscan_examples(g, kept, cfg)
    result = split_examples(examples, cfg.split)
    return write_task(out, "promscan", result, asdict(cfg), [genome, tss], cfg.seed,
                      overwrite, label_names={0: "no TSS", 1: "holds a TSS"}, tss_format=fmt,
                      tss=tss_stats, windows=stats, chroms=sorted(g.records),
                      offsets=offsets)
