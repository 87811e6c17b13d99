"""Pretraining stage, corpus: a tokenized genome cut into samples of 20 to 510 tokens, split train/test.

Reads a tokenizer folder (a `bpe export`, a k-mer tokenizer or any `PreTrainedTokenizerFast` folder)
and a FASTA genome. When a saved segmentation (`bpe train --save-tokens-at`) made with the same merges
is given or sits in the vocabulary's train folder, its tokens are reused; otherwise every contig is
encoded with the tokenizer, in pieces. Writes into CORPUS/:

- `train/` and `test/`: `tokens.NNN.bin` (the token ids of every sample back to back, no special
  tokens; uint16 while the vocabulary fits, else uint32; memory-mapped by training) and `samples.npy`
  (int64 (N, 6): shard, offset, n_tokens, record, start, end: where each sample's tokens lie and the
  genomic interval [start, end) of `records[record]` they cover),
- `train_counts.npy` (int64 (V,): token frequencies of the training split, the unigram baseline),
- `tokenizer/` (a copy of the tokenizer, so the corpus alone is enough to pretrain),
- `manifest.json` (config, inputs, records, dtype, sample and token counts per split).

Sampling follows GROVER: along each contig, consecutive samples whose length is `max_tokens` with
probability 1/2, else uniform in [min_tokens, max_tokens]; a contig's tail shorter than `min_tokens`
is dropped. Samples go to the test split at random (`test_fraction`) or, with `holdout`, exactly when
they lie in a held-out region (a token overlapping a region is held out with it, so no training
sample holds a held-out base).

In a run (`run`): reads the run's vocabulary and the genome stage's FASTA; writes
RUN_DIR/corpus/corpus. Also the `groverlm corpus` command.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.args import seed_arg
from groverlm.bpe.tokens import TokenizedGenome
from groverlm.context import Context
from groverlm.errors import GroverError
from groverlm.fasta import decode, iter_records
from groverlm.manifest import (
    MANIFEST,
    fingerprint,
    finished,
    merges_sha256_of,
    prepare_out,
    read_manifest,
    write_manifest,
    writes_folder,
)
from groverlm.models import load_tokenizer

tqdm = lazy.module("tqdm")  # progress bars load on first use

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
SAMPLE_FIELDS = ("shard", "offset", "n_tokens", "record", "start", "end")  # samples.npy columns
ENCODE_BATCH = 64  # pieces encoded at once by the tokenizer's threads (memory: 64 pieces)
# a record name may itself hold ':' (hg38's HLA-A*01:01:01:01): only a final ':START-END' is a range
_REGION = re.compile(r"^(\S+?)(?::([\d,_]+)-([\d,_]+))?$")


@dataclass(frozen=True)
class Region:
    """A held-out interval, 0-based half-open; `end=None` means to the end of the record."""

    chrom: str
    start: int = 0
    end: int | None = None

    def __post_init__(self):
        # checked here, not in `parse` alone: a run config may give a region as a mapping
        # ({chrom: chr20, start: 5, end: 10}), as the run folder's config.yaml records it
        if not self.chrom:
            raise ValueError("chrom must name a record")
        if self.start < 0:
            raise ValueError("start must be 0 or more")
        if self.end is not None and self.start >= self.end:
            raise ValueError("start must be below end")

    @classmethod
    def parse(cls, text: str | Region, option: str = "--holdout") -> Region:
        """'chr20' (whole record) or 'chr20:50000000-63025520' (0-based, half-open); a Region is
        returned as it is. `option` names the setting in errors.

        >>> Region.parse("chr20:5,000-6000")
        Region(chrom='chr20', start=5000, end=6000)
        >>> Region.parse("HLA-A*01:01:01:01:5-10"), Region.parse("HLA-A*01:01:01:01").chrom
        (Region(chrom='HLA-A*01:01:01:01', start=5, end=10), 'HLA-A*01:01:01:01')
        """
        if isinstance(text, Region):
            return text
        m = _REGION.match(text.strip())
        if not m:
            raise GroverError(f"{option} {text!r}: expected CHROM or CHROM:START-END")
        chrom, start, end = m.group(1), m.group(2), m.group(3)
        if start is None:
            return cls(chrom)
        s, e = int(start.replace(",", "").replace("_", "")), int(end.replace(",", "").replace("_", ""))
        try:
            return cls(chrom, s, e)
        except ValueError as err:
            raise GroverError(f"{option} {text!r}: {err}") from None

    def bounds(self, lengths: dict[str, int], option: str = "region",
               genome: str | Path | None = None) -> tuple[str, int, int]:
        """(chrom, start, end) with the end filled in, checked against the genome's record lengths;
        an error names `option`, the region and, when given, the `genome` file.

        >>> Region.parse("chr1:5-10").bounds({"chr1": 20}), Region("chr1").bounds({"chr1": 20})
        (('chr1', 5, 10), ('chr1', 0, 20))
        """
        if self.chrom not in lengths:
            hint = " (a range is CHROM:START-END)" if ":" in self.chrom else ""
            raise GroverError(f"{option} {self}: no record {self.chrom!r} in the genome{hint}",
                              genome)
        end = lengths[self.chrom] if self.end is None else self.end
        if self.start >= lengths[self.chrom]:
            raise GroverError(f"{option} {self} starts beyond {self.chrom} "
                              f"({lengths[self.chrom]:,} bp)", genome)
        if end > lengths[self.chrom]:
            raise GroverError(f"{option} {self} ends beyond {self.chrom} "
                              f"({lengths[self.chrom]:,} bp)", genome)
        return self.chrom, self.start, end

    def __str__(self) -> str:
        return self.chrom if self.end is None and self.start == 0 else (
            f"{self.chrom}:{self.start}-{self.end}")


@dataclass(frozen=True)
class CorpusConfig:
    """How a token stream becomes samples (defaults are GROVER's)."""

    max_tokens: int = 510  # longest sample: BERT's 512 positions less [CLS] and [SEP]
    min_tokens: int = 20  # shortest sample; shorter contig tails are dropped
    full_fraction: float = 0.5  # share of samples drawn at max_tokens (GROVER: half)
    test_fraction: float = 0.2  # random split, used when no region is held out
    holdout: tuple[Region, ...] = ()  # held-out regions: the test split is exactly these
    seed: int = 0  # sample lengths and the random split
    piece_bp: int = 100_000  # tokenizer path: contigs are encoded in pieces this long...
    margin_bp: int = 500  # ...with this much overlap, stitched at a token boundary both agree on
    shard_tokens: int = 1 << 28  # tokens per shard file (512 MiB of uint16)

    def __post_init__(self):
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise GroverError(f"need 1 <= --min-tokens ({self.min_tokens}) <= --max-tokens "
                              f"({self.max_tokens})")
        if not 0.0 <= self.full_fraction <= 1.0:
            raise GroverError(f"full_fraction must be in [0, 1], got {self.full_fraction}")
        if not self.holdout and not 0.0 < self.test_fraction < 1.0:
            raise GroverError(f"--test-fraction must be strictly between 0 and 1, got "
                              f"{self.test_fraction}")
        if self.piece_bp < 1000 or not 0 < self.margin_bp < self.piece_bp:
            raise GroverError("piece_bp must be >= 1000 and 0 < margin_bp < piece_bp")


# ----------------------------------------------------------------------------------------------
# Sampling


def cut_samples(n: int, rng: np.random.Generator, cfg: CorpusConfig) -> np.ndarray:
    """(k, 2) int64 [lo, hi) token ranges tiling a stream of n tokens from its start.

    Each length is max_tokens with probability `full_fraction`, else uniform in [min, max]; the last
    sample is cut short at the end of the stream, and dropped when shorter than min_tokens.

    >>> cfg = CorpusConfig(max_tokens=10, min_tokens=3)
    >>> r = cut_samples(100, np.random.default_rng(0), cfg)
    >>> bool(r[0, 0] == 0 and (r[1:, 0] == r[:-1, 1]).all() and 100 - r[-1, 1] < 3)
    True
    """
    if n < cfg.min_tokens:
        return np.zeros((0, 2), np.int64)
    mean = cfg.full_fraction * cfg.max_tokens + (1 - cfg.full_fraction) * (
        cfg.min_tokens + cfg.max_tokens) / 2
    k = int(n / mean * 1.1) + 8
    lengths = np.empty(0, np.int64)
    while lengths.sum() < n:  # almost always one round
        full = rng.random(k) < cfg.full_fraction
        other = rng.integers(cfg.min_tokens, cfg.max_tokens + 1, size=k)
        lengths = np.concatenate([lengths, np.where(full, cfg.max_tokens, other)])
    ends = np.cumsum(lengths)
    last = int(np.searchsorted(ends, n, side="left"))  # first sample reaching the end
    ends = ends[: last + 1]
    ends[-1] = n
    starts = np.concatenate(([0], ends[:-1]))
    keep = (ends - starts) >= cfg.min_tokens
    return np.stack([starts[keep], ends[keep]], axis=1).astype(np.int64)


def region_runs(starts: np.ndarray, end: int, regions: Sequence[Region]
                ) -> list[tuple[int, int, bool]]:
    """Split a contig's tokens (token i covers starts[i] .. starts[i + 1], the last up to `end`) into
    runs [lo, hi) wholly inside or outside held-out regions. A token that overlaps a region belongs
    to it: the tokenization runs across region borders, and a training sample must never hold a
    held-out base.

    >>> region_runs(np.array([0, 4, 8, 12, 16]), 20, [Region("c", 5, 13)])
    [(0, 1, False), (1, 4, True), (4, 5, False)]
    """
    ends = np.append(starts[1:], end)
    inside = np.zeros(starts.size, dtype=bool)
    for r in regions:
        hit = ends > r.start
        if r.end is not None:
            hit &= starts < r.end
        inside |= hit
    n = starts.size
    edges = np.flatnonzero(np.diff(inside.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [n])).astype(np.int64)
    return [(int(a), int(b), bool(inside[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a]


# ----------------------------------------------------------------------------------------------
# Token sources: the saved segmentation or the tokenizer


@dataclass
class ContigTokens:
    """One contig's token stream: token i covers [starts[i], starts[i + 1]) (the last ends at end)."""

    record: str
    ids: np.ndarray  # (n,) token ids
    starts: np.ndarray  # (n,) int64 position of each token's first base in the record
    end: int


def encode_contig(tokenizer, seq: str, offset: int, cfg: CorpusConfig) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and starts (offset + position in seq) of one contig, encoded in overlapping pieces.

    Pieces [b - margin, b + piece + margin) are encoded in parallel batches; neighbours are joined at
    the token boundary nearest b that both agree on, so the result is a contiguous tiling (equal to
    encoding the whole contig whenever the segmentations agree away from the piece edges, as BPE's
    almost always do). Where no shared boundary exists (e.g. k-mers in a different frame), the next
    piece is re-encoded from the last boundary of the previous one.
    """
    n = len(seq)
    piece, margin = cfg.piece_bp, cfg.margin_bp
    nominal = list(range(0, n, piece))
    windows = [(max(0, b - margin), min(n, b + piece + margin)) for b in nominal]

    def enc(a: int, b: int, e=None) -> tuple[np.ndarray, np.ndarray]:
        e = e if e is not None else tokenizer.encode(seq[a:b], add_special_tokens=False)
        if not e.ids:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.asarray(e.ids, np.int64), a + np.asarray(e.offsets, np.int64)[:, 0]

    def encoded() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # pieces in order, a batch at a time
        for g in range(0, len(windows), ENCODE_BATCH):
            group = windows[g : g + ENCODE_BATCH]
            batch = tokenizer.encode_batch([seq[a:b] for a, b in group], add_special_tokens=False)
            for (a, b), e in zip(group, batch, strict=True):
                yield enc(a, b, e)

    pieces = encoded()
    cur_ids, cur_st = next(pieces)
    out_ids, out_st = [], []
    for k in range(1, len(windows)):
        nxt_ids, nxt_st = next(pieces)
        b = nominal[k]
        lo_b, hi_b = b - margin // 2, b + margin // 2
        common = np.intersect1d(cur_st[(cur_st >= lo_b) & (cur_st < hi_b)],
                                nxt_st[(nxt_st >= lo_b) & (nxt_st < hi_b)])
        if common.size:
            cut = int(common[np.argmin(np.abs(common - b))])
        else:  # no shared boundary: cut at our last boundary before b, re-encode the next piece
            before = cur_st[cur_st <= b]
            cut = int(before[-1]) if before.size and before[-1] > cur_st[0] else int(cur_st[-1])
            nxt_ids, nxt_st = enc(cut, windows[k][1])
        keep = cur_st < cut
        out_ids.append(cur_ids[keep])
        out_st.append(cur_st[keep])
        keep = nxt_st >= cut
        cur_ids, cur_st = nxt_ids[keep], nxt_st[keep]
    out_ids.append(cur_ids)
    out_st.append(cur_st)
    return np.concatenate(out_ids), offset + np.concatenate(out_st)


def iter_encoded(genome: Path, tokenizer, cfg: CorpusConfig, records: dict[str, int],
                 read: Callable[[int], None] | None = None) -> Iterator[ContigTokens]:
    """Contigs of a FASTA file encoded with a `tokenizers.Tokenizer`, one record in memory at a time.
    Fills `records` (name -> length) as it goes; `read(n)` hears of each record's n contigs once it
    is read, before they are encoded."""
    for rec in iter_records(genome):
        records[rec.name] = len(rec)
        spans = rec.contigs()
        if read is not None:
            read(len(spans))
        for start, end in spans:
            seq = decode(rec.codes[start:end])
            ids, starts = encode_contig(tokenizer, seq, int(start), cfg)
            yield ContigTokens(rec.name, ids, starts, int(end))


def iter_saved(tokens) -> Iterator[ContigTokens]:
    """Contigs of a saved segmentation (`bpe.tokens.TokenizedGenome`), memory-mapped."""
    for i, (record, *_rest) in enumerate(tokens.contigs):
        ids, starts, end = tokens.contig_tokens(i)
        yield ContigTokens(record, np.asarray(ids), np.asarray(starts, dtype=np.int64), int(end))


def find_segmentation(vocab: Path, genome: Path, tokens: str | Path | None):
    """The saved segmentation to reuse, or None to encode with the tokenizer.

    An explicit `tokens` folder must match the vocabulary (same merges_sha256) and the genome (same
    file as `bpe train` read, when recorded), and not come from a `bpe train --chunk` run (its
    cuts are not the tokenizer's); else a GroverError. Without one, `tokens/` beside the
    `train_dir` recorded in the vocabulary's manifest (relative to the vocabulary folder; manifests
    before 2026-12-05 recorded it relative to the working directory of `bpe export`) is used when it
    matches, silently skipped when it does not.
    """
    try:
        vman = read_manifest(vocab)
    except GroverError:
        vman = {}
    want = vman.get("merges_sha256")
    if tokens is None:
        recorded = (vman.get("config") or {}).get("train_dir")
        found = [d / "tokens" for d in ((vocab / recorded, Path(recorded)) if recorded else ())
                 if (d / "tokens" / "meta.json").exists()]
        if not want or not found:
            return None
        tokens, explicit = found[0], False
    else:
        tokens, explicit = Path(tokens), True
    seg = TokenizedGenome.load(tokens)
    try:
        tman = read_manifest(tokens.parent)
    except GroverError:
        tman = {}
    inputs = tman.get("inputs") or []
    chunk = seg.chunk or (tman.get("config") or {}).get("chunk")  # older folders: the manifest
    problem = None
    if seg.merges_sha256 != want:
        problem = (f"was made with other merges than the vocabulary {vocab} (merges_sha256 "
                   f"{seg.merges_sha256[:12]} vs {str(want)[:12]})")
    elif chunk:  # cut every `chunk` bases, so not what the exported tokenizer gives at embed/score
        problem = (f"was cut into {chunk:,}-bp pieces (bpe train --chunk), unlike the exported "
                   "tokenizer's encoding")
    elif inputs and "sha256" in inputs[0] and inputs[0]["sha256"] != fingerprint(genome)["sha256"]:
        problem = f"was made from another genome file than {genome} ({inputs[0].get('path')})"
    if problem is None:
        return seg
    if explicit:
        raise GroverError(problem + "; drop --tokens to encode with the tokenizer", tokens)
    log.info("not reusing %s: it %s; encoding with the tokenizer", tokens, problem)
    return None


# ----------------------------------------------------------------------------------------------
# Writing


@dataclass
class SplitWriter:
    """Appends samples of one split to memmap shards; `samples` collects their index rows."""

    folder: Path
    dtype: np.dtype
    shard_tokens: int
    vocab_size: int
    count: bool = False  # keep token frequencies (the training split)
    rows: list[np.ndarray] = field(default_factory=list)
    counts: np.ndarray | None = None
    shard: int = -1
    filled: int = 0
    tokens: int = 0
    _fh: object = None

    def _next_shard(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self.shard += 1
        self.filled = 0
        self._fh = open(self.folder / f"tokens.{self.shard:03d}.bin", "wb")

    def add(self, ids: np.ndarray, ranges: np.ndarray, record: int, coords: np.ndarray) -> None:
        """Write samples ids[lo:hi] for each (lo, hi) row of `ranges`; `coords` (k, 2) genomic."""
        if not len(ranges):
            return
        lengths = ranges[:, 1] - ranges[:, 0]
        i = 0
        while i < len(ranges):
            if self._fh is None or self.filled + lengths[i] > self.shard_tokens:
                self._next_shard()
            room = np.cumsum(lengths[i:]) <= self.shard_tokens - self.filled
            j = i + max(1, int(room.sum()))
            lo, hi = int(ranges[i, 0]), int(ranges[j - 1, 1])
            # consecutive samples of one run are contiguous in the stream: one write for all
            contiguous = bool((ranges[i + 1 : j, 0] == ranges[i : j - 1, 1]).all())
            chunk = ids[lo:hi] if contiguous else np.concatenate(
                [ids[a:b] for a, b in ranges[i:j]])
            chunk = np.asarray(chunk).astype(self.dtype, copy=False)
            chunk.tofile(self._fh)
            offsets = self.filled + np.concatenate(([0], np.cumsum(lengths[i:j])[:-1]))
            self.rows.append(np.stack([np.full(j - i, self.shard), offsets, lengths[i:j],
                                       np.full(j - i, record), coords[i:j, 0], coords[i:j, 1]],
                                      axis=1).astype(np.int64))
            if self.count:
                self.counts += np.bincount(chunk, minlength=self.vocab_size)[: self.vocab_size]
            self.filled += int(lengths[i:j].sum())
            self.tokens += int(lengths[i:j].sum())
            i = j

    def close(self) -> np.ndarray:
        if self._fh is not None:
            self._fh.close()
        samples = np.concatenate(self.rows) if self.rows else np.zeros((0, 6), np.int64)
        np.save(self.folder / "samples.npy", samples)
        return samples


def check_holdout(holdout: Sequence[Region], records: dict[str, int], genome: Path) -> None:
    """Every held-out region lies in a record of the genome (`records`: name -> length)."""
    for r in holdout:
        r.bounds(records, "--holdout", genome)


@writes_folder
def write_corpus(vocab: str | Path, genome: str | Path, out: str | Path, cfg: CorpusConfig,
                 tokens: str | Path | None = None, overwrite: bool = False,
                 progress: bool = False) -> dict:
    """`groverlm corpus`: write the sample shards, index, train counts and manifest; returns the
    manifest. Memory holds one contig's tokens (or one record when encoding), never the genome."""
    vocab, genome = Path(vocab), Path(genome)
    if not genome.exists():
        raise GroverError("no such genome file", genome)
    tok = load_tokenizer(vocab)
    vocab_size = len(tok)
    dtype = np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)
    seg = find_segmentation(vocab, genome, tokens)
    records: dict[str, int] = {}
    if seg is not None:
        records.update(seg.record_lengths)
        source, contigs = "segmentation", iter_saved(seg)
        n_contigs: int | None = len(seg.contigs)
        log.info("reusing the saved segmentation %s (%s tokens)", tokens or "of the vocabulary",
                 f"{seg.ids.size:,}")
    else:
        def read(n: int) -> None:
            # the bar's total grows as each record is read (a FASTA tells its contigs only then),
            # before they are encoded: exact for a one-record genome, as chr20, and from the last
            # record on
            bar.total = (bar.total or 0) + n
            bar.refresh()

        source, contigs, n_contigs = "tokenizer", iter_encoded(genome, tok.backend_tokenizer, cfg,
                                                               records, read), None
    if seg is not None:
        check_holdout(cfg.holdout, records, genome)
    out = prepare_out(out, overwrite)
    for stale in out.glob(".corpus*"):  # left by a run that crashed
        shutil.rmtree(stale)
    with tempfile.TemporaryDirectory(dir=out, prefix=".corpus") as tmpdir:
        tmp = Path(tmpdir)
        for s in SPLITS:
            (tmp / s).mkdir(parents=True)
        writers = {s: SplitWriter(tmp / s, dtype, cfg.shard_tokens, vocab_size, count=s == "train")
                   for s in SPLITS}
        writers["train"].counts = np.zeros(vocab_size, np.int64)
        record_index: dict[str, int] = {}
        bar = tqdm.tqdm(total=n_contigs, unit="contig", desc="corpus", dynamic_ncols=True,
                        disable=not progress)
        for ci, c in enumerate(contigs):
            if c.ids.size and int(c.ids.max()) >= vocab_size:
                raise GroverError(f"token id {int(c.ids.max())} is outside the vocabulary "
                                  f"({vocab_size} tokens)", tokens or vocab)
            rec = record_index.setdefault(c.record, len(record_index))
            rng = np.random.default_rng([cfg.seed, ci])
            regions = [r for r in cfg.holdout if r.chrom == c.record]
            runs = (region_runs(c.starts, c.end, regions) if cfg.holdout
                    else [(0, c.ids.size, False)])
            bounds = np.append(c.starts, c.end)  # (n + 1,) token i covers bounds[i]:bounds[i + 1]
            for lo, hi, held in runs:
                ranges = cut_samples(hi - lo, rng, cfg) + lo
                if not len(ranges):
                    continue
                coords = np.stack([bounds[ranges[:, 0]], bounds[ranges[:, 1]]], axis=1)
                if cfg.holdout:
                    to_test = np.full(len(ranges), held)
                else:
                    to_test = rng.random(len(ranges)) < cfg.test_fraction
                for split, sel in (("train", ~to_test), ("test", to_test)):
                    writers[split].add(c.ids, ranges[sel], rec, coords[sel])
            bar.update(1)
            bar.set_postfix(record=c.record, refresh=False)
        bar.close()
        samples = {s: w.close() for s, w in writers.items()}
        np.save(tmp / "train_counts.npy", writers["train"].counts)
        tok.save_pretrained(str(tmp / "tokenizer"))
        check_holdout(cfg.holdout, records, genome)
        for s in SPLITS:
            if not len(samples[s]):
                why = (f"the held-out regions hold {'all' if s == 'train' else 'no'} tokens"
                       if cfg.holdout else f"--test-fraction {cfg.test_fraction} drew "
                       f"{'every sample' if s == 'train' else 'none'}")
                raise GroverError(f"the {s} split is empty: the genome is too small for "
                                  f"--min-tokens {cfg.min_tokens} or {why}", genome)
        # move the finished parts in place (the manifest, written last, marks the folder done; an
        # old one goes first, so that a crash in between leaves a folder that says unfinished)
        (out / MANIFEST).unlink(missing_ok=True)
        for p in tmp.iterdir():
            dest = out / p.name
            if dest.is_dir():
                shutil.rmtree(dest)
            elif dest.exists():
                dest.unlink()
            p.replace(dest)
    counts = np.load(out / "train_counts.npy")
    special = set(tok.all_special_ids)
    order = [int(i) for i in np.argsort(-counts, kind="stable") if int(i) not in special]
    config = {k: v for k, v in asdict(cfg).items() if k != "holdout"}
    config["holdout"] = [str(r) for r in cfg.holdout]
    inputs: list[str | Path] = [vocab, genome] + ([Path(tokens)] if tokens else [])
    splits = {s: {"samples": int(len(samples[s])), "tokens": int(samples[s][:, 2].sum()),
                  "bases": int((samples[s][:, 5] - samples[s][:, 4]).sum()),
                  "shards": int(samples[s][:, 0].max()) + 1} for s in SPLITS}
    return write_manifest(
        out, "corpus", config, inputs, seed=cfg.seed, source=source,
        # its own record: finetune and score look it up here, and paths break when a run moves
        merges_sha256=merges_sha256_of(vocab),
        records=[{"name": n, "length": records[n]} for n in record_index],
        dtype=dtype.name, vocab_size=vocab_size, sample_fields=list(SAMPLE_FIELDS), splits=splits,
        most_frequent_token={"id": order[0], "token": tok.convert_ids_to_tokens(order[0]),
                             "train_fraction": float(counts[order[0]] / max(1, counts.sum()))})


# ----------------------------------------------------------------------------------------------
# Reading


class CorpusSplit:
    """One split, memory-mapped: `split[i]` is sample i's token ids (no special tokens)."""

    def __init__(self, folder: Path, dtype: np.dtype, records: list[str]):
        self.folder = folder
        self.samples = np.load(folder / "samples.npy")  # (N, 6) int64, columns SAMPLE_FIELDS
        n_shards = int(self.samples[:, 0].max()) + 1 if len(self.samples) else 0
        self.shards = [np.memmap(folder / f"tokens.{i:03d}.bin", dtype=dtype, mode="r")
                       for i in range(n_shards)]
        self.records = records

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def lengths(self) -> np.ndarray:
        """(N,) token count of each sample."""
        return self.samples[:, 2]

    def __getitem__(self, i: int) -> np.ndarray:
        shard, offset, n = (int(x) for x in self.samples[i, :3])
        return self.shards[shard][offset : offset + n]

    def coordinates(self, i: int) -> tuple[str, int, int]:
        """(record, start, end) of the genome sequence sample i covers."""
        _, _, _, rec, start, end = (int(x) for x in self.samples[i])
        return self.records[rec], start, end


@dataclass
class Corpus:
    """A finished `groverlm corpus` folder."""

    path: Path
    manifest: dict
    train: CorpusSplit
    test: CorpusSplit
    train_counts: np.ndarray  # (V,) int64

    @classmethod
    def open(cls, path: str | Path) -> Corpus:
        path = Path(path)
        manifest = read_manifest(path)
        if manifest.get("stage") != "corpus":
            raise GroverError(f"is a {manifest.get('stage')!r} folder, not a corpus", path)
        dtype = np.dtype(manifest["dtype"])
        records = [r["name"] for r in manifest["records"]]
        return cls(path, manifest, CorpusSplit(path / "train", dtype, records),
                   CorpusSplit(path / "test", dtype, records), np.load(path / "train_counts.npy"))

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer"

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    def split(self, name: str) -> CorpusSplit:
        if name not in SPLITS:
            raise GroverError(f"no split {name!r}; splits are {', '.join(SPLITS)}", self.path)
        return getattr(self, name)

    def most_frequent_token(self) -> int:
        """Id of the most frequent non-special training token (the unigram baseline's guess)."""
        return int(self.manifest["most_frequent_token"]["id"])


def describe(manifest: dict) -> str:
    """One summary line for the CLI."""
    s = manifest["splits"]
    mf = manifest["most_frequent_token"]
    return (f"corpus ({manifest['source']}): train {s['train']['samples']:,} samples / "
            f"{s['train']['tokens']:,} tokens, test {s['test']['samples']:,} / "
            f"{s['test']['tokens']:,}; most frequent token {mf['token']} "
            f"({100 * mf['train_fraction']:.2f}%); {manifest['dtype']}")


def regions(cfg: Any, config: Any) -> list[tuple[str, Region]]:
    """The held-out regions this section names (runner.Stage.regions: checked against the genome
    before the stages run)."""
    return [("corpus.holdout", Region.parse(r, "corpus.holdout")) for r in cfg.holdout]


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Pretraining corpus: the saved segmentation cut into samples, split train/test."""
    out = ctx.out / "corpus"
    if not finished(out):  # reuses the BPE stage's segmentation when it has the vocabulary's merges
        write_corpus(ctx.vocab, ctx.genome, out, cfg, progress=ctx.progress)
    splits = read_manifest(out)["splits"]
    return {"corpus": ctx.relative(out), **{f"{s}_{k}": splits[s][k] for s in ("train", "test")
                                   for k in ("samples", "tokens")}}


# -- command line ------------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction) -> None:
    dc = CorpusConfig()
    c = sub.add_parser("corpus", help="cut a tokenized genome into pretraining samples")
    c.add_argument("--vocab", required=True, help="tokenizer folder (bpe export, k-mer, GROVER)")
    c.add_argument("--genome", required=True, help="FASTA, gzip or bgzip")
    c.add_argument("--out", required=True, help="corpus folder to write")
    c.add_argument("--tokens", default=None, metavar="DIR",
                   help="saved segmentation to reuse (bpe train --save-tokens-at); by default the "
                        "one beside the vocabulary's train folder when it matches")
    c.add_argument("--max-tokens", type=int, default=dc.max_tokens,
                   help=f"longest sample, in tokens (default {dc.max_tokens})")
    c.add_argument("--min-tokens", type=int, default=dc.min_tokens,
                   help=f"shortest sample, in tokens (default {dc.min_tokens})")
    c.add_argument("--test-fraction", type=float, default=None,
                   help=f"share of samples held out at random (default {dc.test_fraction})")
    c.add_argument("--holdout", nargs="+", action="extend", default=[], metavar="REGION",
                   help="hold out CHROM or CHROM:START-END (0-based, half-open) as the test split "
                        "instead of a random share")
    c.add_argument("--seed", type=seed_arg, default=dc.seed,
                   help=f"sample lengths and the random test split (default {dc.seed})")
    c.add_argument("--overwrite", action="store_true", help="replace a finished corpus")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=_corpus_cmd)


def _corpus_cmd(args: argparse.Namespace) -> int:
    if args.holdout and args.test_fraction is not None:
        raise GroverError("give either --holdout or --test-fraction, not both")
    cfg = CorpusConfig(max_tokens=args.max_tokens, min_tokens=args.min_tokens,
                       test_fraction=(CorpusConfig.test_fraction if args.test_fraction is None
                                      else args.test_fraction),
                       holdout=tuple(Region.parse(r) for r in args.holdout), seed=args.seed)
    manifest = write_corpus(args.vocab, args.genome, args.out, cfg, args.tokens, args.overwrite,
                            progress=not args.quiet)
    print(describe(manifest) + f" -> {args.out}")
    return 0
