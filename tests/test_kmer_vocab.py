"""k-mer tokenizers: hand-checked segmentations, ids, AutoTokenizer loading, corpus encoding."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm.bpe.merges import NUM_SPECIAL, SPECIAL_TOKENS
from groverlm.cli import main
from groverlm.kmer_vocab import build_kmer_tokenizer, kmer_vocabulary, write_kmer_vocab
from groverlm.kmers import kmer_to_index

from .conftest import random_dna, write_fasta


@pytest.mark.parametrize("k, seq, expected", [
    (3, "ACGTTGCAN", ["ACG", "TTG", "C", "A", "N"]),
    (3, "ACGTACGTA", ["ACG", "TAC", "GTA"]),
    (4, "ACGTACG", ["ACGT", "A", "C", "G"]),  # a remainder shorter than k: single bases
    (2, "ANNCGTA", ["A", "N", "N", "CG", "TA"]),  # N breaks the frame; k-mers restart after it
    (3, "AANCCCGG", ["A", "A", "N", "CCC", "G", "G"]),
    (6, "acgtac", ["ACGTAC"]),  # lower case reads as upper case
])
def test_segmentation_by_hand(k, seq, expected):
    enc = build_kmer_tokenizer(k).encode(seq, add_special_tokens=False)
    assert enc.tokens == expected
    # offsets point into the original string and tile it
    assert [seq[a:b].upper() for a, b in enc.offsets] == expected


def test_ids_follow_kmer_index_and_specials_come_first():
    vocab = kmer_vocabulary(3)
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    for kmer in ("AAA", "ACG", "TTT", "GCA"):
        assert vocab[kmer] == NUM_SPECIAL + kmer_to_index(kmer)
    assert len(vocab) == 5 + 64 + 5
    assert len(kmer_vocabulary(1)) == 5 + 4 + 1  # k=1: only N is new among the single bases


def test_other_letters_are_unknown_and_specials_are_added():
    tok = build_kmer_tokenizer(2)
    enc = tok.encode("ACRAC")
    assert enc.tokens == ["[CLS]", "AC", "[UNK]", "AC", "[SEP]"]
    # one [UNK] per letter, as BPE gives: a sequence keeps its length in tokens-to-bases maps
    assert tok.encode("ACRYAC", add_special_tokens=False).tokens == ["AC", "[UNK]", "[UNK]", "AC"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ACGTN", max_size=80), st.integers(2, 6))
def test_tokens_spell_the_sequence_and_follow_the_rule(seq, k):
    tokens = build_kmer_tokenizer(k).encode(seq, add_special_tokens=False).tokens
    assert "".join(tokens) == seq
    pos = 0
    for t in tokens:
        assert len(t) in (1, k)
        if len(t) == 1 and t != "N" and k > 1:
            # a single base only where fewer than k A/C/G/T bases remain before an N or the end
            run = re.match(r"[ACGT]*", seq[pos:]).group()
            assert len(run) < k
        pos += len(t)


def test_folder_loads_with_autotokenizer_and_refuses_overwrite(tmp_path):
    from transformers import AutoTokenizer

    write_kmer_vocab(4, tmp_path / "v4")
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "v4"))
    assert tok.is_fast
    assert tok.convert_ids_to_tokens(tok("ACGTAC")["input_ids"]) == [
        "[CLS]", "ACGT", "A", "C", "[SEP]"]
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id,
            tok.mask_token_id) == (0, 1, 2, 3, 4)
    m = json.loads((tmp_path / "v4" / "manifest.json").read_text())
    assert m["stage"] == "kmer-vocab" and m["vocab_size"] == len(tok) == 5 + 256 + 5
    assert main(["kmer-vocab", "--k", "4", "--out", str(tmp_path / "v4")]) == 2
    assert main(["kmer-vocab", "--k", "9", "--out", str(tmp_path / "v9")]) == 2


def test_corpus_encodes_with_the_kmer_tokenizer(tmp_path):
    """A k-mer vocabulary goes through `groverlm corpus`: no saved segmentation matches, so every
    contig is encoded with the tokenizer, in frame from the contig's start."""
    from groverlm.corpus import Corpus, CorpusConfig, write_corpus

    seq = random_dna(30_000, 7) + "NNNN" + random_dna(25_001, 8)
    genome = write_fasta(tmp_path / "g.fa", {"chr1": seq})
    write_kmer_vocab(3, tmp_path / "v3")
    man = write_corpus(tmp_path / "v3", genome, tmp_path / "corpus",
                       CorpusConfig(max_tokens=50, min_tokens=50, test_fraction=0.2))
    assert man["source"] == "tokenizer"
    corpus = Corpus.open(tmp_path / "corpus")
    inv = {i: t for t, i in kmer_vocabulary(3).items()}
    for split in (corpus.train, corpus.test):
        for i in range(0, len(split), 37):
            rec, start, end = split.coordinates(i)
            text = "".join(inv[int(t)] for t in split[i])
            assert text == seq[start:end]
            assert (start if start < 30_000 else start - 30_004) % 3 == 0  # frame kept
            assert len(split[i]) == 50
    ids = np.concatenate([corpus.train[i] for i in range(len(corpus.train))]
                         + [corpus.test[i] for i in range(len(corpus.test))])
    assert set(np.unique(ids).tolist()) <= set(range(5, 5 + 64 + 5))


def test_a_folder_groverlm_did_not_write_is_not_written_into(tmp_path, capsys):
    """kmer-vocab (and bpe export) replaced a downloaded model's tokenizer files in a folder
    without manifest.json; over a BPE export, --overwrite left its vocab_stats.json behind."""
    hf = tmp_path / "hfmodel"
    hf.mkdir()
    (hf / "tokenizer.json").write_text('{"my": "tokenizer"}')
    assert main(["kmer-vocab", "--k", "3", "--out", str(hf)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert (hf / "tokenizer.json").read_text() == '{"my": "tokenizer"}'
    bpe = tmp_path / "bpe"
    bpe.mkdir()
    (bpe / "vocab_stats.json").write_text("{}")
    (bpe / "manifest.json").write_text('{"stage": "bpe-export"}')
    assert main(["kmer-vocab", "--k", "3", "--out", str(bpe), "--overwrite"]) == 0
    assert not (bpe / "vocab_stats.json").exists()
    assert json.loads((bpe / "manifest.json").read_text())["stage"] == "kmer-vocab"
