"""Tasks stage, Prom300: promoter windows against shuffled copies of themselves (GROVER's task).

Reads a FASTA genome, a TSS list (RefSeq, GENCODE or BED6; see `annotations`) and, for token
shuffles, a tokenizer folder; writes a task folder (`common.write_task`): train/dev/test.csv and
manifest.json.

Positives are bases -249..+50 around each TSS (300 bp, the TSS base at index 249 of the sequence),
read on the TSS's strand. Windows that overlap an earlier kept window on the same strand are dropped
("overlapping duplicates collapsed"), as are windows leaving the record or holding a non-ACGT base.
Each positive gets one negative with its coordinates and label 0:

- token:        its BPE tokens in a random order (GROVER's control: same tokens, no grammar);
                the task then has a `tokens` column (space-separated token strings) for both
                classes, because re-tokenizing a shuffled string merges across the junctions and
                changes its token counts: a consumer using the same vocabulary (manifest
                `tokens_merges_sha256`) should read the tokens rather than re-tokenize;
- dinucleotide: a shuffle that keeps the exact dinucleotide counts (Altschul-Erickson);
- deepromoter:  the sequence cut in 20 parts, 12 of them permuted among their places (DeePromoter).

A shuffle that happens to return the positive is retried; a positive whose shuffle stays identical
(e.g. a single token) is dropped with its negative and counted.
"""

from __future__ import annotations

import json
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
    load_bpe_tokenizer,
    load_genome,
    oriented_interval,
    site_windows,
    split_examples,
    window_sequence,
    write_task,
)

log = logging.getLogger(__name__)

NEGATIVES = ("token", "dinucleotide", "deepromoter")
COLLAPSE = ("overlap", "none")
_RETRIES = 10  # shuffles tried before a positive is given up as unshufflable


@dataclass(frozen=True)
class Prom300Config:
    upstream: int = 249  # bases before the TSS base (GROVER: -249..+50, 300 bp in all)
    downstream: int = 50  # bases after the TSS base
    negatives: str = "token"  # token | dinucleotide | deepromoter (see module docstring)
    parts: int = 20  # deepromoter: parts the sequence is cut into
    permuted: int = 12  # deepromoter: parts moved (the other 8 stay in place)
    collapse: str = "overlap"  # overlap: drop windows overlapping a kept one on the same strand
    seed: int = 0  # shuffles and the split draw
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self):
        if self.upstream < 0 or self.downstream < 0:
            raise GroverError("--upstream and --downstream must be >= 0")
        if self.negatives not in NEGATIVES:
            raise GroverError(f"--negatives must be one of {', '.join(NEGATIVES)}, "
                              f"got {self.negatives!r}")
        if self.collapse not in COLLAPSE:
            raise GroverError(f"--collapse must be one of {', '.join(COLLAPSE)}")
        if not 2 <= self.permuted <= self.parts:
            raise GroverError("deepromoter shuffle needs 2 <= permuted parts <= parts")

    @property
    def length(self) -> int:
        return self.upstream + 1 + self.downstream


def dinucleotide_shuffle(seq: str, rng: np.random.Generator) -> str:
    """A random sequence with exactly the dinucleotide counts (and first and last base) of `seq`:
    a random Eulerian walk through its dinucleotide graph (Altschul & Erickson 1985).

    >>> s = dinucleotide_shuffle("AACGTTACGA", np.random.default_rng(0))
    >>> sorted(s[i:i + 2] for i in range(9)) == sorted("AACGTTACGA"[i:i + 2] for i in range(9))
    True
    """
    if len(seq) <= 2:
        return seq
    succ: dict[str, list[str]] = {}
    for a, b in zip(seq, seq[1:], strict=False):
        succ.setdefault(a, []).append(b)
    last = seq[-1]
    others = [v for v in sorted(succ) if v != last]
    while True:  # random last exits forming a tree into `last`; retry until they do
        exit_idx = {v: int(rng.integers(len(succ[v]))) for v in others}
        if all(_reaches(v, last, {u: succ[u][i] for u, i in exit_idx.items()}) for v in others):
            break
    lists: dict[str, list[str]] = {}
    for v, edges in succ.items():
        if v == last:
            lists[v] = [edges[i] for i in rng.permutation(len(edges))]
            continue
        rest = edges[: exit_idx[v]] + edges[exit_idx[v] + 1 :]
        lists[v] = [rest[i] for i in rng.permutation(len(rest))] + [edges[exit_idx[v]]]
    pos = dict.fromkeys(lists, 0)
    out = [seq[0]]
    for _ in range(len(seq) - 1):
        cur = out[-1]
        out.append(lists[cur][pos[cur]])
        pos[cur] += 1
    return "".join(out)


def _reaches(v: str, last: str, exit_to: dict[str, str]) -> bool:
    seen = set()
    while v != last:
        if v in seen:
            return False
        seen.add(v)
        v = exit_to[v]
    return True


def deepromoter_shuffle(seq: str, rng: np.random.Generator, parts: int = 20,
                        permuted: int = 12) -> str:
    """Cut `seq` into `parts` near-equal parts and permute `permuted` of them among their places.

    >>> s = deepromoter_shuffle("A" * 30 + "C" * 30, np.random.default_rng(1), parts=4, permuted=2)
    >>> sorted(s) == sorted("A" * 30 + "C" * 30), len(s)
    (True, 60)
    """
    bounds = np.linspace(0, len(seq), parts + 1).round().astype(int)
    pieces = [seq[bounds[i] : bounds[i + 1]] for i in range(parts)]
    chosen = np.sort(rng.choice(parts, size=permuted, replace=False))
    moved = chosen[rng.permutation(permuted)]
    new = list(pieces)
    for dst, src in zip(chosen, moved, strict=True):
        new[dst] = pieces[src]
    return "".join(new)


def bpe_tokens(seq: str, tokenizer) -> list[str]:
    """`seq`'s BPE token strings (a `tokenizers.Tokenizer`, no special tokens)."""
    tokens = tokenizer.encode(seq, add_special_tokens=False).tokens
    if "".join(tokens) != seq:
        raise GroverError(f"the tokenizer does not spell the sequence back (unknown tokens?): "
                          f"{seq[:40]}...")
    return tokens


def token_shuffle(tokens: list[str], rng: np.random.Generator) -> list[str]:
    """The tokens in a random order."""
    return [tokens[i] for i in rng.permutation(len(tokens))]


def shuffle_negative(seq: str, rng: np.random.Generator, cfg: Prom300Config,
                     tokens: list[str] | None = None) -> tuple[str, list[str] | None] | None:
    """One negative for `seq` by `cfg.negatives` (with its token list for token shuffles), or None
    when every try returned `seq` itself."""
    for _ in range(_RETRIES):
        neg_tokens = None
        if cfg.negatives == "token":
            assert tokens is not None
            neg_tokens = token_shuffle(tokens, rng)
            neg = "".join(neg_tokens)
        elif cfg.negatives == "dinucleotide":
            neg = dinucleotide_shuffle(seq, rng)
        else:
            neg = deepromoter_shuffle(seq, rng, cfg.parts, cfg.permuted)
        if neg != seq:
            return neg, neg_tokens
    return None


def prom300_windows(tss: list[TSS], cfg: Prom300Config) -> tuple[list[tuple], int]:
    """(chrom, start, end, strand) of each TSS's window, collapsed; and the number collapsed."""
    wins = sorted({(t.chrom, *oriented_interval(t.pos, t.strand, -cfg.upstream,
                                                cfg.downstream + 1), t.strand) for t in tss},
                  key=lambda w: (w[0], w[3], w[1], w[2]))
    if cfg.collapse == "none":
        return wins, len(tss) - len(wins)
    kept: list[tuple] = []
    for w in wins:
        prev = kept[-1] if kept else None
        if prev and prev[0] == w[0] and prev[3] == w[3] and w[1] < prev[2]:
            continue
        kept.append(w)
    return kept, len(tss) - len(kept)


def _join(tokens: list[str] | None) -> str | None:
    return None if tokens is None else " ".join(tokens)


def prom300_examples(genome: Genome, tss: list[TSS], cfg: Prom300Config, tokenizer=None
                     ) -> tuple[list[Example], dict[str, int]]:
    """Positive windows and one shuffled negative each, in genomic order; with counts."""
    if cfg.negatives == "token" and tokenizer is None:
        raise GroverError("--negatives token needs --vocab (a tokenizer folder)")
    rng = np.random.default_rng(cfg.seed)
    wins, collapsed = prom300_windows(tss, cfg)
    out: list[Example] = []
    stats = {"windows": len(wins), "collapsed": collapsed, "skipped_edge_or_n": 0,
             "unshufflable": 0}
    for chrom, start, end, strand in wins:
        seq = window_sequence(genome[chrom], start, end, strand)
        if seq is None:
            stats["skipped_edge_or_n"] += 1
            continue
        tokens = bpe_tokens(seq, tokenizer) if tokenizer is not None else None
        shuffled = shuffle_negative(seq, rng, cfg, tokens)
        if shuffled is None:
            stats["unshufflable"] += 1
            continue
        neg, neg_tokens = shuffled
        out.append(Example(seq, 1, chrom, start, end, strand, _join(tokens)))
        out.append(Example(neg, 0, chrom, start, end, strand, _join(neg_tokens)))
    stats["positives"] = len(out) // 2
    for k in ("skipped_edge_or_n", "unshufflable"):
        if stats[k]:
            log.info("prom300: %d windows %s", stats[k], k.replace("_", " "))
    return out, stats


@writes_folder
def build_prom300(genome: str | Path, tss: str | Path, out: str | Path, cfg: Prom300Config,
                  vocab: str | Path | None = None, chroms: list[str] | None = None,
                  tss_format: str = "auto", overwrite: bool = False) -> dict[str, Any]:
    """`groverlm tasks prom300`: build and write the task; returns its manifest."""
    if cfg.negatives == "token" and vocab is None:
        raise GroverError("--negatives token needs --vocab (a tokenizer folder)")
    prepare_out(out, overwrite)  # refuse before the work, not after
    records, fmt = read_tss(tss, tss_format)
    # the TSSs' windows alone, read one record at a time (the whole of hg38 held 3.1 GB)
    g = load_genome(genome, chroms, windows=site_windows(records, -cfg.upstream,
                                                         cfg.downstream + 1))
    kept, tss_stats = filter_tss(records, g.lengths, tss)
    tokenizer = load_bpe_tokenizer(vocab) if cfg.negatives == "token" else None
    examples, stats = prom300_examples(g, kept, cfg, tokenizer)
    result = split_examples(examples, cfg.split)
    inputs: list[str | Path] = [genome, tss] + ([vocab] if vocab and tokenizer else [])
    return write_task(out, "prom300", result, asdict(cfg), inputs, cfg.seed, overwrite,
                      label_names={0: f"shuffled ({cfg.negatives})", 1: "promoter"},
                      tss_format=fmt, tss=tss_stats, windows=stats, chroms=sorted(g.records),
                      sequence_length=cfg.length,
                      tokens_merges_sha256=_merges_sha256(vocab) if tokenizer else None)


def _merges_sha256(vocab: str | Path | None) -> str | None:
    """The vocabulary's merges fingerprint (from its export manifest), if any."""
    path = Path(vocab) / "manifest.json" if vocab else None
    if path is None or not path.exists():
        return None
    return json.loads(path.read_text()).get("merges_sha256")
