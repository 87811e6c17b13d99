"""Vocabulary stage, tokenized genome: the segmentation of every contig at one cycle count.

Written by `bpe train --save-tokens-at C` into `DIR/tokens/`: `ids.npy` (uint16 tokenizer ids),
`starts.npy` (uint32 start of each token in its record), `contigs.tsv` (record, start, end, first
token, token count) and `meta.json` (cycle count, fingerprint of the merges up to it, the --chunk
length the genome was cut at, null for whole contigs). Later stages
memory-map it to build samples, and `covering` finds the tokens over any interval without encoding.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from groverlm.errors import GroverError
from groverlm.manifest import atomic_path, write_json


def merges_fingerprint(merges_tsv: str | Path, cycles: int) -> str:
    """SHA-256 of the header and the first `cycles` rows of merges.tsv: equal fingerprints mean the
    same vocabulary and the same segmentation rules."""
    h = hashlib.sha256()
    with open(merges_tsv, "rb") as fh:
        for i, line in enumerate(fh):
            if i > cycles:
                break
            h.update(line.rstrip(b"\r\n") + b"\n")
    return h.hexdigest()


def write_segmentation(trainer, out: Path, fingerprint: str, chunk: int | None = None) -> None:
    """Stream a trainer's current segmentation into a tokens folder, atomically, batch by batch.
    `chunk` is the --chunk the words were cut at: such a segmentation has cuts the tokenizer lacks."""
    w = trainer.words
    with atomic_path(out) as tmp:
        tmp.mkdir()
        firsts = []
        with open(tmp / "ids.npy", "wb") as f_ids, open(tmp / "starts.npy", "wb") as f_st:
            for fh, dtype in ((f_ids, "<u2"), (f_st, "<u4")):
                np.lib.format.write_array_header_1_0(
                    fh, {"descr": dtype, "fortran_order": False, "shape": (trainer.tokens,)})
            for ids, starts, first in trainer.iter_segmentation():
                f_ids.write(ids.tobytes())
                f_st.write(starts.tobytes())
                firsts.append(first)
        first = np.concatenate(firsts)
        ends = np.append(first[1:], trainer.tokens)
        rows: list[list[int]] = []  # record, start, end, first token, token count
        for k in range(first.size):
            rec, start = int(w.word_record[k]), int(w.word_start[k])
            end, n = start + int(w.word_len[k]), int(ends[k] - first[k])
            if rows and rows[-1][0] == rec and rows[-1][2] == start:  # next chunk of a contig
                rows[-1][2] = end
                rows[-1][4] += n
            else:
                rows.append([rec, start, end, int(first[k]), n])
        lines = ["record\tstart\tend\tfirst_token\tn_tokens"]
        lines += [f"{w.records[r]}\t{s}\t{e}\t{f}\t{n}" for r, s, e, f, n in rows]
        (tmp / "contigs.tsv").write_text("\n".join(lines) + "\n")
        write_json(tmp / "meta.json", {"cycles": trainer.cycle, "merges_sha256": fingerprint,
                                       "chunk": chunk, "records": dict(zip(w.records, w.record_lengths,
                                                           strict=True))})


@dataclass
class TokenizedGenome:
    """A saved segmentation, memory-mapped. Token i has id `ids[i]` and covers
    [starts[i], starts[i + 1]) of its record when i + 1 is in the same contig."""

    ids: np.ndarray
    starts: np.ndarray
    contigs: list[tuple[str, int, int, int, int]]  # record, start, end, first token, token count
    cycles: int
    merges_sha256: str
    record_lengths: dict[str, int]
    chunk: int | None = None  # bpe train --chunk; folders written before 2026-12-05 lack it

    @classmethod
    def load(cls, folder: str | Path) -> TokenizedGenome:
        folder = Path(folder)
        if not (folder / "meta.json").exists():
            raise GroverError("no meta.json: not a saved segmentation (bpe train --save-tokens-at)",
                              folder)
        meta = json.loads((folder / "meta.json").read_text())
        contigs = []
        with open(folder / "contigs.tsv") as fh:
            next(fh)
            for line in fh:
                r, s, e, f, n = line.rstrip("\n").split("\t")
                contigs.append((r, int(s), int(e), int(f), int(n)))
        return cls(np.load(folder / "ids.npy", mmap_mode="r"),
                   np.load(folder / "starts.npy", mmap_mode="r"), contigs, meta["cycles"],
                   meta["merges_sha256"], meta["records"], meta.get("chunk"))

    def contig_tokens(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(ids, starts, end) of contig i; token j ends where token j + 1 starts, the last at end."""
        _, _, end, first, n = self.contigs[i]
        return self.ids[first : first + n], self.starts[first : first + n], end

    def covering(self, chrom: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and starts of the tokens that overlap [start, end) of `chrom`, in order.

        A token that straddles start or end is included whole; gaps (N runs) hold no tokens.
        """
        ids, starts = [], []
        for i, (r, cs, ce, _, _) in enumerate(self.contigs):
            if r != chrom or ce <= start or cs >= end:
                continue
            cid, cst, _ = self.contig_tokens(i)
            lo = max(int(np.searchsorted(cst, start, side="right")) - 1, 0)
            hi = int(np.searchsorted(cst, end, side="left"))
            ids.append(np.asarray(cid[lo:hi]))
            starts.append(np.asarray(cst[lo:hi]))
        if not ids:
            if chrom not in self.record_lengths:
                raise GroverError(f"no record {chrom!r} in the tokenized genome")
            return np.zeros(0, np.uint16), np.zeros(0, np.uint32)
        return np.concatenate(ids), np.concatenate(starts)
