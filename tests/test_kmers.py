"""k-mer helpers against a plain-Python reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm.errors import GroverError
from groverlm.kmers import (
    all_kmers,
    count_kmers,
    index_to_kmer,
    kmer_count_matrix,
    kmer_ids,
    kmer_to_index,
    kmer_tokens,
    parse_ks,
)

dna = st.text(alphabet="ACGTN", max_size=60)


def test_index_order_is_lexicographic():
    for k in range(1, 5):
        kmers = all_kmers(k)
        assert kmers == ["".join(p) for p in itertools.product("ACGT", repeat=k)]
        assert [kmer_to_index(x) for x in kmers] == list(range(4**k))
        assert [index_to_kmer(i, k) for i in range(4**k)] == kmers


@settings(max_examples=200, deadline=None)
@given(dna, st.integers(1, 6))
def test_kmer_ids_match_reference(seq, k):
    want = [int("".join(str("ACGT".index(b)) for b in seq[i:i + k]), 4)
            if "N" not in seq[i:i + k] else -1 for i in range(len(seq) - k + 1)]
    assert kmer_ids(seq, k).tolist() == want
    counts = count_kmers(seq, k)
    assert counts.sum() == sum(1 for x in want if x >= 0)
    for i, c in enumerate(counts):
        if c:
            kmer = index_to_kmer(i, k)
            assert c == sum(1 for j in range(len(seq) - k + 1) if seq[j:j + k] == kmer)


def test_count_matrix_rows_are_counts():
    seqs = ["ACGTACGTNA", "", "AAAA", "TTTTGGGGCC"]
    m = kmer_count_matrix(seqs, 3)
    assert m.shape == (4, 64)
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(m[i].toarray().ravel(), count_kmers(s, 3))


def test_kmer_tokens_and_parse_ks():
    assert kmer_tokens("ACGTACG", 3, stride=2) == ["ACG", "GTA", "ACG"]
    assert parse_ks("6,3-4,4") == [3, 4, 6]
    for bad in ("", "a,b", "0", "3-99"):
        with pytest.raises(GroverError):
            parse_ks(bad)
    with pytest.raises(GroverError, match="other than A/C/G/T"):
        kmer_to_index("ANG")
    with pytest.raises(GroverError, match="outside"):
        index_to_kmer(16, 2)
