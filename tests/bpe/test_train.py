"""The BPE trainer against hand-computed results, a plain reference implementation and HF."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm.bpe.core import INTERIOR, SEP
from groverlm.bpe.merges import NUM_SPECIAL, Merges
from groverlm.bpe.train import layout_words, train_bpe
from groverlm.fasta import Record, encode, iter_records

from .reference import naive_bpe


def words_of(seq: str, chunk: int | None = None) -> list[str]:
    rec = Record("r", encode(seq))
    out = []
    for s, e in rec.contigs():
        step = chunk or (e - s)
        out += [seq[p : min(p + step, e)] for p in range(s, e, step)]
    return out


def segmentation_strings(seg, merges: Merges) -> list[list[str]]:
    """Per word, the token strings of a saved segmentation."""
    ends = np.append(seg.word_first[1:], seg.ids.size)
    return [[merges.strings[i - NUM_SPECIAL] for i in seg.ids[f:e]]
            for f, e in zip(seg.word_first, ends, strict=True)]


def test_golden_example():
    # Worked by hand. AAAACGTAAAT holds (A,A) 5 times (overlapping). Merging it left to right gives
    # AA AA C G T AA A T (3 merges). Every pair now occurs once, so ties go to the smallest ids:
    # (A,T)=(0,3), then (C,G)=(1,2), then (T,AA)=(3,4), then (AA,AA)=(4,4).
    tr, seg = train_bpe([Record("r", encode("AAAACGTAAAT"))], 5, save_tokens_at=3)
    assert tr.merges.pairs() == [("A", "A"), ("A", "T"), ("C", "G"), ("T", "AA"), ("AA", "AA")]
    assert tr.merges.counts == [5, 1, 1, 1, 1]
    assert tr.applied == [3, 1, 1, 1, 1]
    # after 3 cycles: AA AA CG T AA AT, ids A0 C1 G2 T3 AA4 AT5 CG6 (+5 special tokens)
    assert seg.ids.tolist() == [9, 9, 11, 8, 9, 10]
    assert seg.starts.tolist() == [0, 2, 4, 6, 7, 9]


def test_contig_boundaries_block_merges():
    # (A,C) spans the N run and the chunk edge, so it must never be counted
    tr, _ = train_bpe([Record("r", encode("ATNCGATAT"))], 3, chunk=4)
    assert ("A", "C") not in tr.merges.pairs()
    assert tr.merges.pairs()[0] == ("A", "T")
    assert tr.merges.counts[0] == 3


def test_layout_never_joins_words():
    w = layout_words([Record("r", encode("ACGTNNACGTACGTA"))], chunk=4)
    tok = w.tok
    assert tok[0] == SEP and tok[-1] == SEP
    assert w.word_len.tolist() == [4, 4, 4, 1]
    for start, n in zip(w.word_tok, w.word_len, strict=True):
        assert tok[start - 1] == SEP and tok[start + n] == SEP


@settings(max_examples=60, deadline=None)
@given(seq=st.text(alphabet="AACCGTTN", min_size=1, max_size=300),
       chunk=st.sampled_from([None, 2, 7, 50]), merges=st.integers(1, 40))
def test_matches_reference(seq, chunk, merges):
    words = words_of(seq, chunk)
    if not words:
        return
    pairs, counts, segs = naive_bpe(words, merges)
    tr, seg = train_bpe([Record("r", encode(seq))], merges, chunk=chunk,
                        save_tokens_at=len(pairs) if len(pairs) <= merges else None)
    assert tr.merges.pairs() == pairs
    assert tr.merges.counts == counts
    # the segmentation equals the reference, and no token crosses a word (contig/chunk) edge
    got = segmentation_strings(seg, tr.merges)
    assert got == segs
    assert ["".join(s) for s in got] == words
    # slots hold the token id at both ends and INTERIOR inside
    for word_tokens, start in zip(got, tr.words.word_tok, strict=True):
        p = start
        for s in word_tokens:
            t = tr.index[s]
            assert tr.tok[p] == t and tr.tok[p + len(s) - 1] == t
            assert all(tr.tok[p + 1 : p + len(s) - 1] == INTERIOR)
            p += len(s)


def test_counts_never_negative_and_frequencies_replay():
    seq = "".join(np.random.default_rng(3).choice(list("ACGT"), size=20000))
    tr, seg = train_bpe([Record("r", encode(seq))], 200, save_tokens_at=200)
    assert (tr.counts >= 0).all()
    freq = tr.merges.token_frequencies(tr.base_counts, np.array(tr.applied), 200)
    observed = np.bincount(seg.ids.astype(np.int64) - NUM_SPECIAL, minlength=freq.size)
    assert np.array_equal(freq, observed)
    assert (freq >= 0).all()


@pytest.mark.parametrize("chunk", [1000, 10000])
def test_parity_with_hf_on_real_dna(chr20, chunk):
    pytest.importorskip("tokenizers")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from hf_ref import hf_merges

    rec = next(iter_records(chr20))
    sub = Record("x", rec.codes[30_000_000:31_000_000])  # 1 Mbp
    tr, _ = train_bpe([sub], 1000, chunk=chunk)
    assert tr.merges.pairs() == hf_merges(words_of(sub.sequence(), chunk), 1000)


def test_bad_arguments():
    from groverlm.errors import GroverError

    rec = Record("r", encode("ACGTACGT"))
    with pytest.raises(GroverError, match="--merges"):
        train_bpe([rec], 0)
    with pytest.raises(GroverError, match="--chunk"):
        train_bpe([rec], 3, chunk=1)
    with pytest.raises(GroverError, match="--save-tokens-at"):
        train_bpe([rec], 3, save_tokens_at=5)
    with pytest.raises(GroverError, match="no A/C/G/T"):
        train_bpe([Record("r", encode("NNNN"))], 3)
