"""Vocabulary stage, training: exact genome-scale byte-pair encoding with every merge cycle kept.

Reads a FASTA genome; writes `merges.tsv` (one row per cycle), `progress.tsv` (tokens left after each
cycle), optionally the genome's segmentation at one cycle (`tokens/`), and `manifest.json`.

Rules (those of HF tokenizers' BpeTrainer): overlapping adjacent pairs are counted (AAA holds (A,A)
twice); the most frequent pair is merged, ties to the smallest (left id, right id) with A, C, G, T as
ids 0-3 and new tokens numbered in order of creation; each merge is applied left to right without
overlap; nothing merges across a contig (or --chunk word) boundary; a merge whose string already
exists reuses that token's id.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from groverlm import lazy
from groverlm.bpe import core
from groverlm.bpe.merges import NUM_SPECIAL, Merges
from groverlm.bpe.tokens import merges_fingerprint, write_segmentation
from groverlm.errors import GroverError
from groverlm.fasta import BASES, Record, iter_records
from groverlm.manifest import (
    INPUTS_BY_HASH,
    MANIFEST,
    atomic_path,
    check_resume,
    fingerprint,
    prepare_out,
    write_json,
    write_manifest,
    write_text,
    writes_folder,
)

tqdm = lazy.module("tqdm")  # progress bars load on first use

log = logging.getLogger(__name__)


@dataclass
class Words:
    """The genome laid out for training: `tok` holds every word's bases between SEP slots."""

    tok: np.ndarray  # (M,) uint16: SEP, word 0, SEP, word 1, ..., SEP
    word_tok: np.ndarray  # (W,) int64: slot of each word's first base
    word_len: np.ndarray  # (W,) int64
    word_start: np.ndarray  # (W,) int64: offset of the word in its record
    word_record: np.ndarray  # (W,) int32: index into `records`
    records: list[str] = field(default_factory=list)
    record_lengths: list[int] = field(default_factory=list)

    @property
    def bases(self) -> int:
        return int(self.word_len.sum())


def layout_words(records: Iterable[Record], chunk: int | None = None) -> Words:
    """Lay out every contig (or every `chunk`-long piece of one) between SEP slots.

    >>> w = layout_words([Record("r", np.array([0, 1, 4, 2, 3, 0], np.uint8))], chunk=2)
    >>> w.tok.tolist()
    [65535, 0, 1, 65535, 2, 3, 65535, 0, 65535]
    >>> w.word_start.tolist()
    [0, 3, 5]
    """
    if chunk is not None and chunk < 2:
        raise GroverError(f"--chunk must be at least 2 bases, got {chunk}")
    pieces: list[tuple[int, np.ndarray, np.ndarray]] = []  # (record index, starts, codes per word)
    names, lengths, blocks = [], [], []
    for ri, rec in enumerate(records):
        names.append(rec.name)
        lengths.append(len(rec))
        for start, end in rec.contigs():
            if chunk is None:
                starts = np.array([start], dtype=np.int64)
            else:
                starts = np.arange(start, end, chunk, dtype=np.int64)
            ends = np.minimum(starts + (chunk or end - start), end)
            pieces.append((ri, starts, ends))
            blocks.append(rec.codes[start:end])
    if not pieces:
        raise GroverError("no A/C/G/T sequence to train on")
    word_record = np.concatenate([np.full(s.size, ri, np.int32) for ri, s, _ in pieces])
    word_start = np.concatenate([s for _, s, _ in pieces])
    word_len = np.concatenate([e - s for _, s, e in pieces])
    word_tok = np.cumsum(word_len + 1) - word_len  # one SEP before each word
    total = int(word_tok[-1] + word_len[-1] + 1)
    if total >= 2**32:
        raise GroverError(f"{total:,} bases in one run: split the genome (positions are uint32)")
    tok = np.full(total, core.SEP, dtype=np.uint16)
    w = 0
    for (_, starts, _), codes in zip(pieces, blocks, strict=True):
        k = starts.size
        first = int(word_tok[w])
        if k == 1:
            tok[first : first + codes.size] = codes
        else:  # chunks of one contig sit `chunk` + 1 slots apart
            span = tok[first : first + codes.size + k]  # ends with the SEP after the last word
            full = (codes.size // chunk) * chunk
            grid = span[: (full // chunk) * (chunk + 1)].reshape(-1, chunk + 1)
            grid[:, :chunk] = codes[:full].reshape(-1, chunk)
            if full < codes.size:
                tail = first + (full // chunk) * (chunk + 1)
                tok[tail : tail + codes.size - full] = codes[full:]
        w += k
    return Words(tok, word_tok, word_len, word_start, word_record, names, lengths)


@dataclass
class Segmentation:
    """Token ids (tokenizer ids, i.e. BPE id + NUM_SPECIAL) and their starts within their record."""

    cycle: int
    ids: np.ndarray  # (N,) uint16
    starts: np.ndarray  # (N,) uint32
    word_record: np.ndarray
    word_start: np.ndarray
    word_len: np.ndarray
    word_first: np.ndarray  # (W,) index of each word's first token
    records: list[str]
    record_lengths: list[int]


class Trainer:
    """State of one BPE run; `step()` performs one merge cycle."""

    def __init__(self, words: Words, max_merges: int):
        if max_merges + len(BASES) > core.MAX_TOKENS:
            raise GroverError(f"at most {core.MAX_TOKENS - len(BASES)} merges fit in uint16 ids")
        self.words = words
        self.tok = words.tok
        v = len(BASES) + max_merges
        self.length = np.zeros(v, dtype=np.int64)
        self.length[: len(BASES)] = 1
        self.strings = list(BASES)
        self.index = {s: i for i, s in enumerate(BASES)}
        # uint32: a pair count is below the uint32 slot count; halves the (V, V) matrix
        self.counts = np.zeros((v, v), dtype=np.uint32)
        self.counts[:4, :4] = core.count_base_pairs(self.tok)
        self.base_counts = core.count_tokens(self.tok, self.length, len(BASES))
        self.heap = np.zeros(max(1024, 4 * v), dtype=np.uint64)
        self.heap_n = 0
        for a in range(4):
            for b in range(4):
                if self.counts[a, b] > 0:
                    self.heap_n = core.heap_push(self.heap, self.heap_n,
                                                 core.pair_key(self.counts[a, b], a, b))
        self.pool = np.zeros(max(1 << 16, self.tok.size // 8), dtype=np.uint32)
        self.off = np.zeros(v, dtype=np.int64)
        self.size = np.zeros(v, dtype=np.int64)
        self.tail = 0
        self.unsorted: set[int] = set()  # reused tokens whose list holds two sorted runs
        self.merges = Merges()
        self.tokens = int(words.bases)  # tokens in the current segmentation
        self.applied: list[int] = []  # occurrences merged per cycle (< count when pairs overlap)
        self.token_totals: list[int] = []

    @property
    def cycle(self) -> int:
        return len(self.merges)

    def step(self) -> bool:
        """One cycle: pick the best pair and merge it everywhere. False when no pair is left."""
        a, b, count, self.heap_n = core.pop_best(self.heap, self.heap_n, self.counts)
        if count <= 0:
            return False
        string = self.strings[a] + self.strings[b]
        c = self.index.get(string)
        if c is None:
            c = len(self.strings)
            self.strings.append(string)
            self.index[string] = c
            self.length[c] = len(string)
        if a == b and a in self.unsorted:  # a self-merge must walk starts left to right
            self._sort_list(a)
        if self.size[c]:
            self.unsorted.add(c)
        self._make_room(c, count)
        n, self.tail, self.heap_n = core.merge_pair(
            self.tok, self.length, self.counts, self.pool, self.off, self.size, self.heap,
            self.heap_n, a, b, c, self.tail)
        self.merges.append(a, b, c, count)
        self.tokens -= n
        self.applied.append(n)
        self.token_totals.append(self.tokens)
        return True

    def _make_room(self, c: int, count: int) -> None:
        """Ensure c's list ends at the pool tail with room for `count` more entries, and heap room."""
        room = 2 * self.length.size + 1  # one push per new pair (x, c) or (c, y)
        if self.heap.size < self.heap_n + room:
            self.heap_n = core.rebuild_heap(self.heap, self.heap_n, self.counts)
            if self.heap.size < 2 * (self.heap_n + room):
                self.heap.resize(2 * (self.heap_n + room), refcheck=False)
        need = count + self.size[c] + 1  # +1: the branch-free scan writes one slot ahead
        if self.tail + need > self.pool.size:
            order = np.argsort(self.off[self.size > 0], kind="stable")
            tokens = np.flatnonzero(self.size > 0)[order]
            self.tail = core.compact_pool(self.tok, self.pool, self.off, self.size, tokens)
            if self.tail + need > self.pool.size * 0.75:  # grow ahead of need to keep GCs rare
                # in place (realloc/mremap): no second copy of the pool at the peak
                self.pool.resize(int((self.tail + need) * 1.25) + 1024, refcheck=False)
        if self.size[c] and self.off[c] + self.size[c] != self.tail:
            # a reused token: move its list to the tail so the new starts extend it
            old = self.pool[self.off[c] : self.off[c] + self.size[c]].copy()
            self.pool[self.tail : self.tail + old.size] = old
            self.size[c] = old.size
            self.off[c] = self.tail
            self.tail += old.size
        elif not self.size[c]:
            self.off[c] = self.tail

    def _sort_list(self, t: int) -> None:
        self.pool[self.off[t] : self.off[t] + self.size[t]].sort()
        self.unsorted.discard(t)

    _ARRAYS = ("tok", "length", "counts", "off", "size", "base_counts")

    def save_state(self, folder: Path, meta: dict) -> None:
        """Checkpoint everything needed to continue (atomically: a crash keeps the previous one)."""
        w = self.words
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            arrays = {k: getattr(self, k) for k in self._ARRAYS}
            np.savez(tmp / "state.npz", pool=self.pool[: self.tail], heap=self.heap[: self.heap_n],
                     applied=np.array(self.applied, np.int64),
                     token_totals=np.array(self.token_totals, np.int64),
                     word_tok=w.word_tok, word_len=w.word_len, word_start=w.word_start,
                     word_record=w.word_record, **arrays)
            m = self.merges
            write_json(tmp / "state.json", {
                **meta, "cycle": self.cycle, "tokens": self.tokens, "unsorted": sorted(self.unsorted),
                "strings": self.strings, "merges": [m.left, m.right, m.token, m.counts],
                "records": w.records, "record_lengths": w.record_lengths})

    @classmethod
    def load_state(cls, folder: Path) -> tuple[Trainer, dict]:
        meta = json.loads((folder / "state.json").read_text())
        with np.load(folder / "state.npz") as z:
            words = Words(z["tok"], z["word_tok"], z["word_len"], z["word_start"],
                          z["word_record"], meta["records"], meta["record_lengths"])
            self = cls.__new__(cls)
            self.words, self.tok = words, words.tok
            for k in cls._ARRAYS[1:]:
                setattr(self, k, z[k])
            self.tail = int(z["pool"].size)
            self.pool = np.zeros(max(1 << 16, int(self.tail * 1.5)), dtype=np.uint32)
            self.pool[: self.tail] = z["pool"]
            self.heap_n = int(z["heap"].size)
            self.heap = np.zeros(max(1024, 2 * self.heap_n), dtype=np.uint64)
            self.heap[: self.heap_n] = z["heap"]
            self.applied = z["applied"].tolist()
            self.token_totals = z["token_totals"].tolist()
        self.strings = meta["strings"]
        self.index = {s: i for i, s in enumerate(self.strings)}
        self.unsorted = set(meta["unsorted"])
        self.tokens = meta["tokens"]
        self.merges = Merges()
        for a, b, t, n in zip(*meta["merges"], strict=True):
            self.merges.append(a, b, t, n)
        return self, meta

    def iter_segmentation(self, batch_bases: int = 1 << 24
                          ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The current segmentation in batches of words, so memory stays bounded at genome scale:
        (ids as tokenizer ids, starts in the record, index of each word's first token)."""
        w = self.words
        ends = np.cumsum(w.word_len)
        lo, done = 0, 0
        while lo < w.word_len.size:
            hi = max(int(np.searchsorted(ends, ends[lo] - w.word_len[lo] + batch_bases)), lo + 1)
            hi = min(hi, w.word_len.size)
            bases = int(w.word_len[lo:hi].sum())
            ids = np.empty(bases, dtype=np.uint16)
            starts = np.empty(bases, dtype=np.uint32)
            first = np.empty(hi - lo, dtype=np.int64)
            n = core.extract_tokens(self.tok, self.length, w.word_tok[lo:hi], w.word_len[lo:hi],
                                    w.word_start[lo:hi], ids, starts, first, NUM_SPECIAL)
            yield ids[:n], starts[:n], first + done
            done += n
            lo = hi
        assert done == self.tokens, (done, self.tokens)

    def segmentation(self) -> Segmentation:
        """The current segmentation, in memory (see `tokens.write_segmentation` for disk)."""
        w = self.words
        ids, starts, first = (np.concatenate(x) for x in zip(*self.iter_segmentation(),
                                                               strict=True))
        return Segmentation(self.cycle, ids, starts, w.word_record, w.word_start, w.word_len,
                            first, w.records, w.record_lengths)


def train_bpe(genome: str | Path | Iterable[Record], merges: int, chunk: int | None = None,
              save_tokens_at: int | None = None, progress: bool = False,
              on_save: Callable[[Trainer], None] | None = None,
              trainer: Trainer | None = None, on_cycle: Callable[[Trainer], None] | None = None
              ) -> tuple[Trainer, Segmentation | None]:
    """Run `merges` cycles over a genome (a FASTA path or records). Returns the trainer (merge table
    in `.merges`) and the segmentation at `save_tokens_at` cycles when asked; with `on_save`, that
    function gets the trainer at that cycle instead (to stream the segmentation to disk).
    `trainer` continues a run restored from a checkpoint; `on_cycle` runs after every cycle."""
    if merges < 1:
        raise GroverError(f"--merges must be at least 1, got {merges}")
    if save_tokens_at is not None and not 0 <= save_tokens_at <= merges:
        raise GroverError(f"--save-tokens-at must be between 0 and --merges ({merges})")
    if trainer is None:
        records = iter_records(genome) if isinstance(genome, str | Path) else genome
        t0 = time.perf_counter()
        try:
            words = layout_words(records, chunk)
        except GroverError as err:  # name the genome (an all-N FASTA)
            if err.path is not None or not isinstance(genome, str | Path):
                raise
            raise GroverError(str(err), genome) from None
        trainer = Trainer(words, merges)
        log.info("laid out %s bases in %.1fs", f"{trainer.words.bases:,}",
                 time.perf_counter() - t0)
    saved = None

    def save() -> None:
        nonlocal saved
        if on_save is None:
            saved = trainer.segmentation()
        else:
            on_save(trainer)

    if save_tokens_at == trainer.cycle:
        save()
    bar = None
    if progress:
        bar = tqdm.tqdm(total=merges, initial=trainer.cycle, unit="cycle", desc="bpe",
                   dynamic_ncols=True)
    while trainer.cycle < merges:
        if not trainer.step():
            log.warning("no pair left after %d cycles", trainer.cycle)
            if save_tokens_at is not None and trainer.cycle < save_tokens_at:
                log.warning("--save-tokens-at %d is beyond the %d cycles there are: no "
                            "segmentation saved", save_tokens_at, trainer.cycle)
            break
        if trainer.cycle == save_tokens_at:
            save()
        if on_cycle is not None:
            on_cycle(trainer)
        if bar is not None:
            bar.update(1)
            if trainer.cycle % 16 == 0 or trainer.cycle == merges:
                bar.set_postfix(pair_count=int(trainer.merges.counts[-1]), refresh=False)
    if bar is not None:
        bar.close()
    return trainer, saved


@writes_folder
def write_training(genome: str | Path, out: str | Path, merges: int, chunk: int | None = None,
                   save_tokens_at: int | None = None, overwrite: bool = False,
                   progress: bool = False, resume: bool = False,
                   checkpoint_minutes: float = 10.0, checkpoint_cycles: int | None = None
                   ) -> Trainer:
    """`groverlm bpe train`: train and write merges.tsv, progress.tsv, tokens/ and manifest.json.

    Every `checkpoint_minutes` (or `checkpoint_cycles`) the state goes to `out/checkpoint/`;
    `resume` continues from it when the genome and settings are the same.
    """
    if isinstance(genome, str | Path) and not Path(genome).is_file():
        raise GroverError("no such genome file", genome)  # before any output folder is made
    out = prepare_out(out, overwrite)
    ckpt = out / "checkpoint"
    config = {"merges": merges, "chunk": chunk, "save_tokens_at": save_tokens_at}
    inputs = [genome] if isinstance(genome, str | Path) else []
    meta = {"config": config, "inputs": [fingerprint(p) for p in inputs]}
    trainer = None
    if (ckpt / "state.json").exists() and not overwrite:
        if not resume:
            raise GroverError("holds an interrupted run: pass --resume to continue it or "
                              "--overwrite to start again", out)
        trainer, saved_meta = Trainer.load_state(ckpt)
        # the genome by its hash: a run folder moved with its genome resumes
        check_resume(ckpt, meta, saved={k: saved_meta.get(k) for k in meta},
                     by_hash=INPUTS_BY_HASH)
        log.info("resuming at cycle %d", trainer.cycle)
    else:  # a fresh start: an earlier run's files must not pass for this one's; its manifest
        # first, so that a run killed before its own is unfinished (resumable), not the old one
        for stale in (MANIFEST, "merges.tsv", "progress.tsv"):
            (out / stale).unlink(missing_ok=True)
        for stale in (out / "tokens", ckpt):
            if stale.exists():
                shutil.rmtree(stale)
    t0 = time.perf_counter()
    last = [time.monotonic()]

    def save(tr: Trainer) -> None:  # the fingerprint is fixed once the table reaches this cycle
        tr.merges.write(out / "merges.tsv")
        write_segmentation(tr, out / "tokens", merges_fingerprint(out / "merges.tsv", tr.cycle),
                           chunk)

    def checkpoint(tr: Trainer) -> None:
        due = (tr.cycle % checkpoint_cycles == 0 if checkpoint_cycles
               else time.monotonic() - last[0] > 60 * checkpoint_minutes)
        if due and tr.cycle < merges:
            tr.save_state(ckpt, meta)
            last[0] = time.monotonic()

    trainer, _ = train_bpe(genome, merges, chunk, save_tokens_at, progress, on_save=save,
                           trainer=trainer, on_cycle=checkpoint)
    seconds = time.perf_counter() - t0
    trainer.merges.write(out / "merges.tsv")
    bases = trainer.words.bases
    rows = ["cycle\tmerged\ttokens\tmean_length"] + [
        f"{i + 1}\t{n}\t{t}\t{bases / t:.6f}"
        for i, (n, t) in enumerate(zip(trainer.applied, trainer.token_totals, strict=True))]
    write_text(out / "progress.tsv", "\n".join(rows) + "\n")
    write_manifest(
        out, "bpe-train", config, inputs,
        cycles=trainer.cycle, bases=bases, words=int(trainer.words.word_len.size),
        records=trainer.words.records, base_counts=trainer.base_counts.tolist(),
        seconds=round(seconds, 2))
    # the checkpoint, and any copy a kill left half-saved (atomic_path's temporary folders)
    for left in [ckpt, *out.glob(f".{ckpt.name}.tmp*")]:
        if left.exists():
            shutil.rmtree(left)
    return trainer
