"""Analyses, genome windows: seeded, non-overlapping windows of up to 510 tokens inside contigs.

Reads a genome FASTA (in memory) and a tokenizer; writes nothing. Every analysis that needs the
model to read genomic context (masked-token accuracy, contextual self-similarity, annotation
structure) samples its windows here, so they share one definition: a window starts at a random
position of a contig (N-free run, chosen with probability proportional to its length), its sequence
is tokenized alone, and it keeps the first `tokens` tokens; `[start, end)` is the bases they cover.
`region` ("chrom" or "chrom:start-end") restricts the draw, e.g. to a held-out chromosome part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from groverlm.corpus import Region
from groverlm.errors import GroverError

log = logging.getLogger(__name__)

BP_PER_TOKEN = 6  # bases cut per requested token: GROVER's tokens average ~4 nt in the genome


@dataclass(frozen=True)
class Window:
    chrom: str
    start: int
    end: int  # start + bases covered by `ids`
    ids: np.ndarray  # (T,) int64 token ids, no special tokens
    sequence: str  # the bases of [start, end)

    def __len__(self) -> int:
        return int(self.ids.size)


def _contigs(genome, region: tuple[str, int, int] | None, min_bp: int) -> list[tuple[str, int, int]]:
    out = []
    for name, rec in genome.records.items():
        if region is not None and name != region[0]:
            continue
        for s, e in rec.contigs().tolist():
            if region is not None:
                s, e = max(s, region[1]), min(e, region[2])
            if e - s >= min_bp:
                out.append((name, s, e))
    return out


def sample_windows(genome, tokenizer, n: int, tokens: int = 510, seed: int = 0,
                   region: str | Region | None = None, min_tokens: int = 32) -> list[Window]:
    """`n` non-overlapping windows of up to `tokens` tokens, sorted by (chrom, start).

    Fewer come back when the genome (or region) is too small to hold `n`; a window whose cut
    gives fewer than `min_tokens` tokens is skipped. Same genome, tokenizer and seed: same windows.
    """
    if n < 1 or tokens < 1:
        raise GroverError(f"need at least one window of one token (got {n} windows of {tokens})")
    min_tokens = min(min_tokens, tokens)
    bp = tokens * BP_PER_TOKEN
    bounds = None if region is None else Region.parse(region, "region").bounds(genome.lengths)
    contigs = _contigs(genome, bounds, min(bp, 4 * min_tokens))
    if not contigs:
        raise GroverError("no N-free stretch long enough for a window", genome.path)
    rng = np.random.default_rng(seed)
    sizes = np.array([e - s for _, s, e in contigs], dtype=np.float64)
    taken: dict[str, list[tuple[int, int]]] = {}
    out: list[Window] = []
    attempts = 0
    while len(out) < n and attempts < 20 * n:
        attempts += 1
        chrom, cs, ce = contigs[int(rng.choice(len(contigs), p=sizes / sizes.sum()))]
        start = int(rng.integers(cs, max(cs + 1, ce - bp // 2)))
        end = min(start + bp, ce)
        if any(s < end and start < e for s, e in taken.get(chrom, [])):
            continue
        seq = genome.sequence(chrom, start, end)
        enc = tokenizer.backend_tokenizer.encode(seq, add_special_tokens=False)
        ids = enc.ids[:tokens]
        if len(ids) < min_tokens:
            continue
        stop = start + enc.offsets[len(ids) - 1][1]
        taken.setdefault(chrom, []).append((start, stop))
        out.append(Window(chrom, start, stop, np.asarray(ids, dtype=np.int64), seq[: stop - start]))
    if len(out) < n:
        log.warning("only %d of %d windows fit", len(out), n)
    return sorted(out, key=lambda w: (w.chrom, w.start))
