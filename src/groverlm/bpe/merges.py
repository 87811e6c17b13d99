"""The merge table: one row per BPE cycle, written as `merges.tsv` and read back by every later step.

`merges.tsv` columns: cycle (1-based), left, right, token (strings), count (the pair's frequency when
it was merged). Token ids follow from the table: A, C, G, T are 0-3 and each new string takes the
next id, so any prefix of the table is the vocabulary at that cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from groverlm.errors import GroverError
from groverlm.fasta import BASES
from groverlm.manifest import write_text

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NUM_SPECIAL = len(SPECIAL_TOKENS)  # tokenizer id = BPE id + NUM_SPECIAL
HEADER = "cycle\tleft\tright\ttoken\tcount"


@dataclass
class Merges:
    """Merge cycles as id arrays; `strings[i]` is the text of BPE id i."""

    left: list[int] = field(default_factory=list)
    right: list[int] = field(default_factory=list)
    token: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    strings: list[str] = field(default_factory=lambda: list(BASES))

    def __len__(self) -> int:
        return len(self.left)

    def append(self, left: int, right: int, token: int, count: int) -> None:
        if token == len(self.strings):
            self.strings.append(self.strings[left] + self.strings[right])
        self.left.append(int(left))
        self.right.append(int(right))
        self.token.append(int(token))
        self.counts.append(int(count))

    def upto(self, cycles: int) -> Merges:
        """The table after `cycles` cycles (any prefix is a valid vocabulary)."""
        if not 0 <= cycles <= len(self):
            raise GroverError(f"cycles must be between 0 and {len(self)} (the merges the table "
                              f"holds), got {cycles}")
        n_ids = len(BASES) + len(set(self.token[:cycles]))
        return Merges(self.left[:cycles], self.right[:cycles], self.token[:cycles],
                      self.counts[:cycles], self.strings[:n_ids])

    def pairs(self) -> list[tuple[str, str]]:
        return [(self.strings[a], self.strings[b]) for a, b in zip(self.left, self.right,
                                                                   strict=True)]

    def write(self, path: str | Path) -> None:
        s = self.strings
        rows = [HEADER] + [
            f"{i + 1}\t{s[a]}\t{s[b]}\t{s[t]}\t{n}"
            for i, (a, b, t, n) in enumerate(zip(self.left, self.right, self.token, self.counts,
                                                 strict=True))
        ]
        write_text(path, "\n".join(rows) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> Merges:
        path = Path(path)
        if not path.exists():
            raise GroverError("no such merges table", path)
        m = cls()
        index = {b: i for i, b in enumerate(BASES)}
        with open(path) as fh:
            if fh.readline().rstrip("\r\n") != HEADER:
                raise GroverError(f"not a merges table: header must be {HEADER!r}", path, 1)
            for line_no, line in enumerate(fh, start=2):
                parts = line.rstrip("\r\n").split("\t")
                try:
                    cycle, left, right, token, count = parts
                    a, b = index[left], index[right]
                    ok = int(cycle) == len(m) + 1 and token == left + right
                except (ValueError, KeyError):
                    ok = False
                if not ok:
                    raise GroverError("malformed merges row", path, line_no)
                t = index.setdefault(token, len(m.strings))
                m.append(a, b, t, int(count))
        return m

    def token_frequencies(self, base_counts: np.ndarray, applied: np.ndarray, cycles: int
                          ) -> np.ndarray:
        """Occurrences of every id in the genome after `cycles` cycles, from the base counts and the
        occurrences merged per cycle (no need to segment the genome again)."""
        freq = np.zeros(len(self.strings), dtype=np.int64)
        freq[: len(BASES)] = base_counts
        for a, b, t, n in zip(self.left[:cycles], self.right[:cycles], self.token[:cycles],
                              applied[:cycles], strict=True):
            freq[a] -= n
            freq[b] -= n
            freq[t] += n
        return freq
