"""Tasks stage, shared helpers: examples, leak-free train/dev/test splits, CSV and manifest writing.

Reads nothing itself; every builder (prom300, promscan, ctcf) calls `split_examples` and then
`write_task`, which writes `train.csv`, `dev.csv`, `test.csv` (columns sequence,label,chrom,start,
end,strand; 0-based half-open coordinates; the sequence is on `strand`; plus `tokens`, the
space-separated BPE tokens, for token-shuffled tasks) and `manifest.json`.

Splits never share overlapping genomic intervals. With examples on at least three chromosomes whole
chromosomes go to one split each; otherwise the genome is cut into fixed blocks (1 Mbp by default)
that a seeded draw assigns to train/dev/test, and an example whose interval touches blocks of two
different splits is dropped. Two overlapping intervals always share a block, hence a split.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.errors import GroverError, counted
from groverlm.fasta import Genome, HeldRecord, Record, group_intervals, iter_records
from groverlm.manifest import MANIFEST, atomic_path, prepare_out, write_manifest, writes_folder

# tokenizers loads on first use, keeping the CLI and config loading light
tokenizers = lazy.module("tokenizers")

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
COLUMNS = ("sequence", "label", "chrom", "start", "end", "strand")  # then `tokens` when present
SPLIT_METHODS = ("auto", "chrom", "block")
# below these a dev or test split's scores are mostly noise (an MCC on 8 rows moves by a quarter
# with one row): warned about, not refused, since a toy genome may mean it
MIN_SPLIT_ROWS = 30
MIN_CLASS_ROWS = 5


@dataclass(frozen=True)
class Example:
    """One labelled window. `sequence` is genome[chrom][start:end] on `strand` (reverse complement
    on '-'), except for synthetic negatives (shuffles), which keep their source's coordinates."""

    sequence: str
    label: int
    chrom: str
    start: int
    end: int
    strand: str
    tokens: str | None = None  # space-separated BPE tokens spelling `sequence` (token shuffles)


def seeded_subset(n: int, limit: int | None, seed: Any) -> np.ndarray:
    """Sorted indices of a seeded random subset of `limit` of n items; all of them when `limit` is
    None or not below n. `seed` is anything numpy's default_rng takes.

    >>> seeded_subset(5, None, 0).tolist(), len(seeded_subset(100, 10, 0))
    ([0, 1, 2, 3, 4], 10)
    """
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def check_subset_classes(full: np.ndarray, subset: np.ndarray, limit: int) -> None:
    """A seeded training subset (--max-train) must keep every class of the training split: a
    class it lost is never learnt, and the scores would read as the method's."""
    lost = sorted(set(np.unique(full).tolist()) - set(np.unique(subset).tolist()))
    if lost:
        ids = "class id" if len(lost) == 1 else "class ids"
        raise GroverError(f"the random subset of {counted(limit, 'training row')} (--max-train) "
                          f"lacks {ids} {', '.join(map(str, lost))} of the training split: raise "
                          "--max-train")


@dataclass(frozen=True)
class SplitConfig:
    """How examples are split into train/dev/test without sharing genomic intervals."""

    method: str = "auto"  # auto: by chromosome when >= 3 chromosomes hold examples, else blocks
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, dev, test shares (targets)
    block: int = 1_000_000  # block length for the block method: long against any window
    seed: int = 0  # the draw of chromosomes/blocks to splits

    def __post_init__(self):
        if self.method not in SPLIT_METHODS:
            raise GroverError(f"split method must be one of {', '.join(SPLIT_METHODS)}, "
                              f"got {self.method!r}")
        if len(self.fractions) != 3 or min(self.fractions) <= 0:
            raise GroverError(f"split fractions must be 3 positive numbers, got {self.fractions}")
        if abs(sum(self.fractions) - 1) > 1e-6:
            raise GroverError(f"split fractions must sum to 1, got {self.fractions}")
        if self.block < 1:
            raise GroverError(f"split block must be at least 1 bp, got {self.block}")


@dataclass
class SplitResult:
    """Examples per split, plus what the manifest records about how they were split."""

    splits: dict[str, list[Example]]
    info: dict[str, Any] = field(default_factory=dict)


def split_examples(examples: Sequence[Example], cfg: SplitConfig) -> SplitResult:
    """Assign examples to train/dev/test so that no two overlapping intervals land in different
    splits (strand is ignored: both strands of a locus go together)."""
    if not examples:
        raise GroverError("no examples to split")
    chroms = Counter(e.chrom for e in examples)
    method = cfg.method
    if method == "auto":
        method = "chrom" if len(chroms) >= 3 else "block"
    if method == "chrom":
        assign = _assign_chroms(chroms, cfg)
        splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
        for e in examples:
            splits[assign[e.chrom]].append(e)
        info = {"method": "chrom", "seed": cfg.seed, "fractions": list(cfg.fractions),
                "chroms": {s: sorted(c for c, a in assign.items() if a == s) for s in SPLITS},
                "dropped_crossing": 0}
    else:
        splits, info = _split_blocks(examples, cfg)
    for s in SPLITS:
        if not splits[s]:
            raise GroverError(f"the {s} split is empty ({counted(len(examples), 'example')}, "
                              f"method {method}); use more data, a smaller --split-block or other "
                              "--split-fractions")
    info["counts"] = {s: len(splits[s]) for s in SPLITS}
    _warn_small_splits(splits, method, cfg.method)
    return SplitResult(splits, info)


def _warn_small_splits(splits: dict[str, list[Example]], method: str, asked: str) -> None:
    """Log one warning per dev/test split too small to score on (fewer than MIN_SPLIT_ROWS rows,
    or a class with fewer than MIN_CLASS_ROWS): whole chromosomes of a genome of few records can
    leave a split a handful of rows, silently, where blocks give every split its share."""
    if method == "chrom":
        how = ("split by chromosome" + (" (--split auto)" if asked == "auto" else "")
               + "; --split block cuts the genome into blocks, nearer the target shares")
    else:
        how = "split by blocks; a smaller --split-block or more data gives it more rows"
    for s in ("dev", "test"):
        rows = splits[s]
        per_class = Counter(e.label for e in rows)
        few = sorted(k for k, n in per_class.items() if n < MIN_CLASS_ROWS)
        if len(rows) < MIN_SPLIT_ROWS:
            log.warning("the %s split holds only %s: its scores will be noisy (%s)", s,
                        counted(len(rows), "row"), how)
        elif few:
            log.warning("the %s split holds fewer than %d rows of %s %s (%s rows): its scores "
                        "will be noisy (%s)", s, MIN_CLASS_ROWS, "label" if len(few) == 1
                        else "labels", ", ".join(map(str, few)),
                        ", ".join(str(per_class[k]) for k in few), how)


def _assign_chroms(counts: Counter, cfg: SplitConfig) -> dict[str, str]:
    """Greedy: chromosomes in seeded order, largest first, each to the split furthest below its
    target share; the last chromosomes fill any split still empty."""
    if len(counts) < 3:
        raise GroverError(f"splitting by chromosome needs examples on >= 3 chromosomes, found "
                          f"{len(counts)}; use --split block")
    rng = np.random.default_rng(cfg.seed)
    names = sorted(counts)
    names = [names[i] for i in rng.permutation(len(names))]
    names.sort(key=lambda c: -counts[c])  # stable: ties keep the seeded order
    total = sum(counts.values())
    have = dict.fromkeys(SPLITS, 0)
    assign: dict[str, str] = {}
    for i, c in enumerate(names):
        deficit = {s: f * total - have[s] for s, f in zip(SPLITS, cfg.fractions, strict=True)}
        empty = [s for s in SPLITS if have[s] == 0]
        pool = empty if len(names) - i <= len(empty) else list(SPLITS)
        best = max(pool, key=lambda s: deficit[s])
        assign[c] = best
        have[best] += counts[c]
    return assign


def _split_blocks(examples: Sequence[Example], cfg: SplitConfig
                  ) -> tuple[dict[str, list[Example]], dict[str, Any]]:
    b = cfg.block
    used = sorted({(e.chrom, e.start // b) for e in examples})  # blocks where an example starts
    if len(used) < 3:
        raise GroverError(f"only {counted(len(used), 'genomic block')} of {b:,} bp hold examples; "
                          "use a smaller --split-block")
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(used))
    n = len(used)
    n_test = max(1, round(cfg.fractions[2] * n))
    n_dev = max(1, round(cfg.fractions[1] * n))
    if n_test + n_dev >= n:
        n_test, n_dev = 1, 1
    block_split: dict[tuple[str, int], str] = {}
    for rank, i in enumerate(order):
        split = "test" if rank < n_test else "dev" if rank < n_test + n_dev else "train"
        block_split[used[i]] = split
    splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
    dropped = 0
    for e in examples:
        touched = {block_split[(e.chrom, k)] for k in range(e.start // b, (e.end - 1) // b + 1)
                   if (e.chrom, k) in block_split}
        if len(touched) == 1:
            splits[touched.pop()].append(e)
        else:
            dropped += 1
    if dropped:
        log.info("dropped %s crossing the edge of blocks in different splits",
                 counted(dropped, "example"))
    blocks: dict[str, list[list[Any]]] = {}
    for (chrom, k), s in sorted(block_split.items()):
        blocks.setdefault(chrom, []).append([k * b, (k + 1) * b, s])
    info = {"method": "block", "seed": cfg.seed, "fractions": list(cfg.fractions), "block": b,
            "blocks": blocks, "dropped_crossing": dropped,
            "rule": "blocks holding an example start are drawn to splits; an example touching "
                    "blocks of two splits is dropped"}
    return splits, info


def overlapping_pairs(a: Iterable[Example], b: Iterable[Example]) -> int:
    """Number of (x in a, y in b) pairs on one chromosome whose intervals overlap (any strand)."""
    by_chrom: dict[str, np.ndarray] = {}
    for chrom, rows in _group(b).items():
        by_chrom[chrom] = np.array(sorted(rows), dtype=np.int64).reshape(-1, 2)
    n = 0
    for chrom, rows in _group(a).items():
        other = by_chrom.get(chrom)
        if other is None:
            continue
        starts, ends = other[:, 0], np.maximum.accumulate(other[:, 1])
        for s, e in rows:
            hi = int(np.searchsorted(starts, e, side="left"))  # others starting before e
            lo = int(np.searchsorted(ends, s, side="right"))  # first whose running end > s
            if hi > lo:
                n += int(((other[lo:hi, 1] > s) & (other[lo:hi, 0] < e)).sum())
    return n


def _group(examples: Iterable[Example]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for e in examples:
        out.setdefault(e.chrom, []).append((e.start, e.end))
    return out


def oriented_interval(pos: int, strand: str, a: int, b: int) -> tuple[int, int]:
    """Genomic [start, end) of the offsets [a, b) around `pos` read along `strand` (offset 0 is the
    base at pos; on '-' offsets grow towards lower coordinates).

    >>> oriented_interval(100, "+", -2, 1), oriented_interval(100, "-", -2, 1)
    ((98, 101), (100, 103))
    """
    return (pos + a, pos + b) if strand == "+" else (pos - b + 1, pos - a + 1)


def site_windows(sites: Iterable[Any], a: int, b: int) -> dict[str, np.ndarray]:
    """(k, 2) intervals per chromosome of the offsets [a, b) around each site (anything with
    chrom, pos and strand: a TSS) along its strand (`oriented_interval`): the bases a builder
    reads around its sites (`load_genome(windows=...)`).

    >>> from groverlm.tasks.annotations import TSS
    >>> site_windows([TSS("c", 100, "+"), TSS("c", 100, "-")], -2, 1)["c"].tolist()
    [[98, 101], [100, 103]]
    """
    return group_intervals((t.chrom, *oriented_interval(t.pos, t.strand, a, b)) for t in sites)


def window_sequence(rec: Record | HeldRecord, start: int, end: int, strand: str) -> str | None:
    """The window's sequence on `strand`, or None when it leaves the record or holds a non-ACGT
    (which the sequence spells N)."""
    if start < 0 or end > len(rec):
        return None
    seq = rec.sequence(start, end, strand)
    return None if "N" in seq else seq


def iter_genome(path: str | Path, chroms: Sequence[str] | None = None,
                option: str = "--chrom") -> Iterator[Record]:
    """The genome's records one at a time (only `chroms` when given, the others not decoded; each
    must exist, checked when the file ends; `option` names them in the error)."""
    wanted = set(chroms) if chroms else None
    found = set()
    for rec in iter_records(path, wanted):
        found.add(rec.name)
        yield rec
    _check_found(wanted, found, option, path)


def load_genome(path: str | Path, chroms: Sequence[str] | None = None,
                option: str = "--chrom", windows: Mapping[str, np.ndarray] | None = None
                ) -> Genome:
    """The genome's records (only `chroms` when given; each must exist; `option` names them in
    the error). With `windows` ((k, 2) intervals per record), only their bases are held
    (`fasta.Genome.read_windows`): a builder reading windows around known sites holds those and,
    while reading, one record, not the genome."""
    if windows is None:
        return Genome(list(iter_genome(path, chroms, option)), Path(path))
    wanted = set(chroms) if chroms else None
    g = Genome.read_windows(path, windows, wanted)
    _check_found(wanted, set(g.records), option, path)
    return g


def _check_found(wanted: set[str] | None, found: set[str], option: str, path: str | Path) -> None:
    missing = sorted((wanted or set()) - found)
    if missing:
        raise GroverError(f"{option} {', '.join(missing)} not in the genome", path)


def load_bpe_tokenizer(vocab: str | Path):
    """The `tokenizers.Tokenizer` of a `bpe export` folder (encode with add_special_tokens=False).
    """
    path = Path(vocab) / "tokenizer.json"
    if not path.exists():
        raise GroverError("no tokenizer.json: not a `groverlm bpe export` folder", vocab)
    return tokenizers.Tokenizer.from_file(str(path))


@writes_folder
def write_task(out: str | Path, task: str, result: SplitResult, config: dict[str, Any],
               inputs: list[str | Path], seed: int, overwrite: bool = False,
               label_names: dict[int, str] | None = None, **extra: Any) -> dict[str, Any]:
    """Write the three CSVs (rows in a seeded random order) and the manifest; returns the manifest.

    The manifest holds `task`, `label_map` (label text -> id, sorted), `label_names`, per-split
    label counts and `split` (how the split was made).
    """
    classes = {e.label for s in SPLITS for e in result.splits[s]}
    if len(classes) == 1:  # every consumer would refuse it: say so here, before writing
        raise GroverError(f"every example of the {task} task has label {classes.pop()} (of "
                          f"{sum(len(result.splits[s]) for s in SPLITS)}): a task needs two "
                          f"classes; check the inputs and settings")
    for s in SPLITS:  # likewise a split of one class (its MCC would read 0, its AUROC none)
        labels = {e.label for e in result.splits[s]}
        if len(labels) < 2:
            raise GroverError(f"the {s} split of the {task} task holds "
                              f"{'only label ' + str(labels.pop()) if labels else 'no example'}"
                              f" ({counted(len(result.splits[s]), 'example')}): try another seed "
                              "or split block, or more of the genome or annotations")
    out = prepare_out(out, overwrite)
    (out / MANIFEST).unlink(missing_ok=True)  # replacing: unfinished until the new manifest
    rng = np.random.default_rng(seed)
    with_tokens = any(e.tokens is not None for s in SPLITS for e in result.splits[s])
    columns = [*COLUMNS, "tokens"] if with_tokens else list(COLUMNS)
    counts: dict[str, dict[str, int]] = {}
    lengths: Counter = Counter()
    for s in SPLITS:
        rows = result.splits[s]
        order = rng.permutation(len(rows))
        with atomic_path(out / f"{s}.csv") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(columns)
            for i in order:
                e = rows[i]
                w.writerow([e.sequence, e.label, e.chrom, e.start, e.end, e.strand]
                           + ([e.tokens or ""] if with_tokens else []))
                lengths[len(e.sequence)] += 1
        c = Counter(e.label for e in rows)
        counts[s] = {str(k): c[k] for k in sorted(c)}
    labels = sorted({int(k) for c in counts.values() for k in c})
    for s in SPLITS:
        absent = [k for k in labels if str(k) not in counts[s]]
        if absent:
            log.warning("the %s split holds no example of %s %s", s,
                        "label" if len(absent) == 1 else "labels", ", ".join(map(str, absent)))
    return write_manifest(
        out, f"tasks-{task}", config, inputs, seed=seed, task=task,
        label_map={str(k): k for k in labels},
        label_names={str(k): v for k, v in (label_names or {}).items()},
        counts=counts, sequence_lengths={str(k): v for k, v in sorted(lengths.items())},
        split=result.info, **extra)
