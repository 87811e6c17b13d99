"""Analyses, genome windows: seeded, non-overlapping windows of up to 510 tokens inside contigs.

Reads a genome FASTA (its contigs, then the drawn windows' bases, one record at a time) and a
tokenizer; writes nothing. Every analysis that needs the model to read genomic context
(masked-token accuracy, contextual self-similarity, annotation structure) samples its windows here,
so they share one definition: a window starts at a random position of a contig (N-free run, chosen
with probability proportional to its length), its sequence is tokenized alone, and it keeps the
first `tokens` tokens; `[start, end)` is the bases they cover.
`region` ("chrom" or "chrom:start-end") restricts the draw, e.g. to a held-out chromosome part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from groverlm.corpus import Region
from groverlm.errors import GroverError
from groverlm.fasta import Genome, group_intervals, iter_records

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


@dataclass
class GenomeContigs:
    """The contigs (A/C/G/T runs) of a genome FASTA's records, read one record at a time: all a
    window draw needs before it reads the drawn windows' bases (`sample_windows`)."""

    path: Path
    lengths: dict[str, int]
    runs: dict[str, np.ndarray]  # (k, 2) contigs per record, in file order

    @classmethod
    def read(cls, path: str | Path, region: str | Region | None = None) -> GenomeContigs:
        """The contigs of every record, or of the region's record alone (the others not
        decoded)."""
        names = None if region is None else {Region.parse(region, "region").chrom}
        lengths, runs = {}, {}
        for rec in iter_records(path, names):
            lengths[rec.name], runs[rec.name] = len(rec), rec.contigs()
        return cls(Path(path), lengths, runs)


def _contigs(genome: GenomeContigs, region: tuple[str, int, int] | None, min_bp: int
             ) -> list[tuple[str, int, int]]:
    out = []
    for name, found in genome.runs.items():
        if region is not None and name != region[0]:
            continue
        for s, e in found.tolist():
            if region is not None:
                s, e = max(s, region[1]), min(e, region[2])
            if e - s >= min_bp:
                out.append((name, s, e))
    return out


def sample_windows(genome: str | Path | GenomeContigs, tokenizer, n: int, tokens: int = 510,
                   seed: int = 0, region: str | Region | None = None, min_tokens: int = 32
                   ) -> list[Window]:
    """`n` non-overlapping windows of up to `tokens` tokens, sorted by (chrom, start).

    Fewer come back when the genome (or region) is too small to hold `n`; a window whose cut
    gives fewer than `min_tokens` tokens is skipped. Same genome, tokenizer and seed: same windows.
    `genome`: a FASTA, or its `GenomeContigs` (read once for several draws; of the region's
    record alone when there is a region). The draws depend on the contigs and the seed alone, so
    every try is drawn first and only those windows' bases are read (`Genome.read_windows`):
    memory holds one record while reading, not the genome.
    """
    if n < 1 or tokens < 1:
        raise GroverError(f"need at least one window of one token (got {n} windows of {tokens})")
    reg = None if region is None else Region.parse(region, "region")
    if not isinstance(genome, GenomeContigs):
        genome = GenomeContigs.read(genome, reg)
    min_tokens = min(min_tokens, tokens)
    bp = tokens * BP_PER_TOKEN
    bounds = None if reg is None else reg.bounds(genome.lengths)
    contigs = _contigs(genome, bounds, min(bp, 4 * min_tokens))
    if not contigs:
        raise GroverError("no N-free stretch long enough for a window", genome.path)
    rng = np.random.default_rng(seed)
    sizes = np.array([e - s for _, s, e in contigs], dtype=np.float64)
    tries = []  # (chrom, start, end) of every try, in the order the loop below takes them
    for _ in range(20 * n):
        chrom, cs, ce = contigs[int(rng.choice(len(contigs), p=sizes / sizes.sum()))]
        start = int(rng.integers(cs, max(cs + 1, ce - bp // 2)))
        tries.append((chrom, start, min(start + bp, ce)))
    held = Genome.read_windows(genome.path, group_intervals(tries))
    taken: dict[str, list[tuple[int, int]]] = {}
    out: list[Window] = []
    for chrom, start, end in tries:
        if len(out) == n:
            break
        if any(s < end and start < e for s, e in taken.get(chrom, [])):
            continue
        seq = held.sequence(chrom, start, end)
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
