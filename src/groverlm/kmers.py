"""k-mer helpers shared by k-mer tokenizers, the TF-IDF baseline and next-k-mer labels.

Reads and writes nothing. A k-mer's index is its base-4 number with A=0, C=1, G=2, T=3 and the first
base most significant, so indices follow lexicographic order (`all_kmers(k)[i]` has index i).
Windows holding a base other than A/C/G/T have no index (-1) and are never counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from groverlm import lazy
from groverlm.errors import GroverError
from groverlm.fasta import BASES, NON_ACGT, encode

# scipy loads on first use, keeping the CLI and config loading light
sparse = lazy.module("scipy.sparse")

MAX_K = 15  # 4**15 indices still fit comfortably in int64 arithmetic and memory for a count vector


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise GroverError(f"k must be between 1 and {MAX_K}, got {k}")


def kmer_to_index(kmer: str) -> int:
    """Index of one k-mer.

    >>> kmer_to_index("A"), kmer_to_index("T"), kmer_to_index("CA"), kmer_to_index("TTT")
    (0, 3, 4, 63)
    """
    _check_k(len(kmer))
    ids = kmer_ids(kmer, len(kmer))
    if ids[0] < 0:
        raise GroverError(f"k-mer {kmer!r} holds a letter other than A/C/G/T")
    return int(ids[0])


def index_to_kmer(index: int, k: int) -> str:
    """Inverse of `kmer_to_index`.

    >>> index_to_kmer(4, 2), index_to_kmer(63, 3)
    ('CA', 'TTT')
    """
    _check_k(k)
    if not 0 <= index < 4**k:
        raise GroverError(f"k-mer index {index} outside 0..{4**k - 1} for k={k}")
    return "".join(BASES[(index >> (2 * (k - 1 - j))) & 3] for j in range(k))


def all_kmers(k: int) -> list[str]:
    """Every k-mer in index order.

    >>> all_kmers(1), all_kmers(2)[:5]
    (['A', 'C', 'G', 'T'], ['AA', 'AC', 'AG', 'AT', 'CA'])
    """
    _check_k(k)
    return [index_to_kmer(i, k) for i in range(4**k)]


def kmer_ids(seq: str | np.ndarray, k: int) -> np.ndarray:
    """Index of the k-mer starting at every position: (len - k + 1,) int64, -1 where the window
    holds a non-A/C/G/T base. `seq` is a string or uint8 codes (`fasta.encode`).

    >>> kmer_ids("ACGTNAC", 2).tolist()
    [1, 6, 11, -1, -1, 1]
    """
    _check_k(k)
    codes = encode(seq) if isinstance(seq, str) else np.asarray(seq, dtype=np.uint8)
    n = codes.size - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    ids = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    c = codes.astype(np.int64)
    for j in range(k):  # (n,) per step: shift in one base
        window = c[j : j + n]
        ids = (ids << 2) | (window & 3)
        bad |= window >= NON_ACGT
    ids[bad] = -1
    return ids


def count_kmers(seq: str | np.ndarray, k: int) -> np.ndarray:
    """(4**k,) int64 counts of the overlapping k-mers of one sequence.

    >>> count_kmers("AAAC", 2).tolist()[:2]
    [2, 1]
    """
    ids = kmer_ids(seq, k)
    return np.bincount(ids[ids >= 0], minlength=4**k)


def kmer_count_matrix(seqs: Sequence[str], k: int):
    """Sparse (len(seqs), 4**k) CSR matrix of k-mer counts, one row per sequence."""
    rows, cols = [], []
    for i, s in enumerate(seqs):
        ids = kmer_ids(s, k)
        ids = ids[ids >= 0]
        rows.append(np.full(ids.size, i, dtype=np.int64))
        cols.append(ids)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    m = sparse.csr_matrix((np.ones(r.size, dtype=np.float64), (r, c)), shape=(len(seqs), 4**k))
    m.sum_duplicates()
    return m


def kmer_tokens(seq: str, k: int, stride: int = 1) -> list[str]:
    """The k-mers of a sequence every `stride` bases, as strings (DNABERT-style k-mer tokenization
    with stride 1, non-overlapping with stride k); a short tail is dropped.

    >>> kmer_tokens("ACGTA", 3), kmer_tokens("ACGTAC", 3, stride=3)
    (['ACG', 'CGT', 'GTA'], ['ACG', 'TAC'])
    """
    _check_k(k)
    if stride < 1:
        raise GroverError(f"stride must be at least 1, got {stride}")
    return [seq[i : i + k] for i in range(0, len(seq) - k + 1, stride)]


def parse_ks(text: str | Iterable[int]) -> list[int]:
    """k values from '3,4,5,6' or '3-6' (or an iterable of ints), sorted and unique.

    >>> parse_ks("5,3-4")
    [3, 4, 5]
    """
    if not isinstance(text, str):
        ks = [int(k) for k in text]
    else:
        ks = []
        for part in text.split(","):
            part = part.strip()
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    ks += list(range(lo, hi + 1))
                elif part:
                    ks.append(int(part))
            except ValueError:
                raise GroverError(f"bad k list {text!r}: use e.g. 3,4,5,6 or 3-6") from None
    if not ks:
        raise GroverError(f"empty k list {text!r}")
    for k in ks:
        _check_k(k)
    return sorted(set(ks))
