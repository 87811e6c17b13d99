"""`groverlm corpus`: sample lengths, coordinates, splits, both token sources, shards, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm.bpe.export import export_vocab
from groverlm.cli import main
from groverlm.corpus import (
    Corpus,
    CorpusConfig,
    Region,
    cut_samples,
    find_segmentation,
    region_runs,
    write_corpus,
)
from groverlm.errors import GroverError
from groverlm.fasta import Genome
from groverlm.manifest import read_manifest
from groverlm.models import load_tokenizer

from .lm_fixtures import CYCLES, bare_tokenizer_copy, make_vocab, read_json


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return make_vocab(tmp_path_factory.mktemp("vocab"))


def sample_text(tok, ids) -> str:
    return "".join(tok.convert_ids_to_tokens([int(i) for i in ids]))


def all_samples(corpus: Corpus, split: str) -> list[tuple[tuple[str, int, int], np.ndarray]]:
    s = corpus.split(split)
    return [(s.coordinates(i), np.asarray(s[i])) for i in range(len(s))]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 5000), lo=st.integers(1, 40), span=st.integers(0, 300),
       seed=st.integers(0, 2**16))
def test_cut_samples_tile_the_stream(n, lo, span, seed):
    cfg = CorpusConfig(min_tokens=lo, max_tokens=lo + span)
    r = cut_samples(n, np.random.default_rng(seed), cfg)
    lengths = r[:, 1] - r[:, 0]
    assert ((lengths >= lo) & (lengths <= lo + span)).all()
    if len(r):
        assert r[0, 0] == 0 and (r[1:, 0] == r[:-1, 1]).all()  # consecutive, no overlap
        assert n - r[-1, 1] < lo  # only a tail shorter than min_tokens is dropped
    else:
        assert n < lo + span or n < lo


def test_half_of_the_samples_are_full_length():
    cfg = CorpusConfig()
    r = cut_samples(6_000_000, np.random.default_rng(1), cfg)
    lengths = r[:, 1] - r[:, 0]
    assert abs((lengths == 510).mean() - 0.5) < 0.01  # 1/2 plus the 1/491 uniform draws of 510
    rest = lengths[lengths < 510]  # uniform on 20..509
    assert rest.min() == 20 and abs(rest.mean() - (20 + 509) / 2) < 4 * 141 / len(rest) ** 0.5
    r = cut_samples(600_000, np.random.default_rng(2), CorpusConfig(full_fraction=0.2))
    assert abs((r[:, 1] - r[:, 0] == 510).mean() - 0.2) < 0.03  # ~1,900 samples: 3 sd


def test_region_runs_split_at_borders():
    starts = np.arange(0, 100, 10)  # token i covers 10 i .. 10 i + 10
    # the token at 20..30 overlaps 25..55 and is held out with it; 50..60 too; 80.. to the end
    assert region_runs(starts, 100, [Region("c", 25, 55), Region("c", 80)]) == [
        (0, 2, False), (2, 6, True), (6, 8, False), (8, 10, True)]
    assert region_runs(starts, 100, [Region("c", 30, 50)]) == [  # borders on token borders
        (0, 3, False), (3, 5, True), (5, 10, False)]
    assert region_runs(starts, 100, [Region("c", 200, 300)]) == [(0, 10, False)]  # beyond the end


def test_samples_decode_to_their_genome_interval(built, tmp_path):
    genome, _, vocab = built
    cfg = CorpusConfig(max_tokens=50, min_tokens=5, test_fraction=0.25, seed=3)
    man = write_corpus(vocab, genome, tmp_path / "c", cfg)
    assert man["source"] == "segmentation" and man["dtype"] == "uint16"
    corpus, tok, g = Corpus.open(tmp_path / "c"), load_tokenizer(vocab), Genome.read(genome)
    n = 0
    for split in ("train", "test"):
        for (chrom, start, end), ids in all_samples(corpus, split):
            assert 5 <= len(ids) <= 50
            assert sample_text(tok, ids) == g.sequence(chrom, start, end)
            n += 1
    assert n == sum(man["splits"][s]["samples"] for s in ("train", "test"))
    # samples never overlap and never cross an N
    spans = sorted(corpus.train.coordinates(i) for i in range(len(corpus.train)))
    spans += [corpus.test.coordinates(i) for i in range(len(corpus.test))]
    spans.sort()
    for (c1, _, e1), (c2, s2, _) in itertools.pairwise(spans):
        assert c1 != c2 or e1 <= s2
    assert all("N" not in g.sequence(c, s, e) for c, s, e in spans)
    # the random split is about test_fraction, the train counts are the train shards' counts
    assert 0.15 < man["splits"]["test"]["samples"] / n < 0.35
    counts = np.bincount(np.concatenate([ids for _, ids in all_samples(corpus, "train")]),
                         minlength=corpus.vocab_size)
    assert (counts == corpus.train_counts).all()
    assert man["most_frequent_token"]["id"] == int(np.argmax(counts))
    assert load_tokenizer(corpus.tokenizer_path).get_vocab() == tok.get_vocab()


def test_tokenizer_path_equals_saved_segmentation(built, tmp_path):
    """Encoding in overlapping pieces gives the whole-contig BPE segmentation, sample for sample."""
    genome, _, vocab = built
    bare = bare_tokenizer_copy(vocab, tmp_path / "bare")
    cfg = CorpusConfig(max_tokens=40, min_tokens=6, seed=5, piece_bp=2000, margin_bp=200)
    a = write_corpus(vocab, genome, tmp_path / "a", cfg)
    b = write_corpus(bare, genome, tmp_path / "b", cfg)
    assert (a["source"], b["source"]) == ("segmentation", "tokenizer")
    ca, cb = Corpus.open(tmp_path / "a"), Corpus.open(tmp_path / "b")
    for split in ("train", "test"):
        assert (ca.split(split).samples == cb.split(split).samples).all()
        for (xa, ia), (xb, ib) in zip(all_samples(ca, split), all_samples(cb, split), strict=True):
            assert xa == xb and (ia == ib).all()


def test_the_bar_has_a_total_while_encoding(built, tmp_path, capsys):
    """Encoding with the tokenizer, the bar counted contigs with no total ('3contig'): each
    record's contigs now join its total once the record is read, before they are encoded."""
    genome, _, vocab = built
    bare = bare_tokenizer_copy(vocab, tmp_path / "bare")
    cfg = CorpusConfig(max_tokens=40, min_tokens=6)
    assert write_corpus(bare, genome, tmp_path / "c", cfg, progress=True)["source"] == "tokenizer"
    draws = capsys.readouterr().err.split("\r")
    # chrA's 3 contigs before the first is encoded, then chrB's
    assert any("| 0/3 " in d for d in draws) and "| 4/4 " in draws[-1], draws
    write_corpus(bare, genome, tmp_path / "q", cfg)
    assert capsys.readouterr().err == ""


def test_holdout_region_is_exactly_the_test_split(built, tmp_path):
    genome, _, vocab = built
    region = Region.parse("chrA:5,000-15000")
    cfg = CorpusConfig(max_tokens=30, min_tokens=4, holdout=(region, Region("chrB")))
    write_corpus(vocab, genome, tmp_path / "c", cfg)
    corpus = Corpus.open(tmp_path / "c")
    for (chrom, start, end), _ in all_samples(corpus, "test"):
        assert chrom == "chrB" or (start > 5000 - 40 and end <= 15000 + 40)  # border tokens overhang
    for (chrom, start, end), _ in all_samples(corpus, "train"):  # not one held-out base
        assert chrom == "chrA" and (end <= 5000 or start >= 15000)
    # both sides of the region are used right up to it
    train = [corpus.train.coordinates(i) for i in range(len(corpus.train))]
    assert any(4800 < e <= 5000 for _, _, e in train) and any(15000 <= s < 15200 for _, s, _ in train)


def test_saved_segmentation_found_from_any_working_directory(built, tmp_path, monkeypatch):
    """`bpe export` run with relative paths; `corpus` run from elsewhere still reuses `tokens/`."""
    genome, bpe, _ = built
    monkeypatch.chdir(bpe.parent)
    export_vocab(bpe.name, CYCLES, tmp_path / "v")  # train_dir given relative to this directory
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    seg = find_segmentation(tmp_path / "v", genome, None)
    assert seg is not None and seg.merges_sha256 == read_manifest(tmp_path / "v")["merges_sha256"]


def test_kmer_tokenizer_works_through_the_tokenizer_path(built, tmp_path):
    """A fixed 3-mer WordLevel tokenizer (no BPE) goes through the same code."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    genome = built[0]
    kmers = ["".join(p) for k in (1, 2, 3) for p in itertools.product("ACGT", repeat=k)]
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + kmers)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("[ACGT]{1,3}"), behavior="isolated")
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
                            ).save_pretrained(tmp_path / "k3")
    cfg = CorpusConfig(max_tokens=40, min_tokens=6, piece_bp=1000, margin_bp=100)
    man = write_corpus(tmp_path / "k3", genome, tmp_path / "c", cfg)
    assert man["source"] == "tokenizer"
    corpus, g = Corpus.open(tmp_path / "c"), Genome.read(genome)
    tok = load_tokenizer(tmp_path / "k3")
    contig_starts = {("chrA", 0), ("chrA", 24605), ("chrA", 36606), ("chrB", 0)}
    for split in ("train", "test"):
        for (chrom, start, end), ids in all_samples(corpus, split):
            text = sample_text(tok, ids)
            assert text == g.sequence(chrom, start, end)
            assert all(len(t) == 3 for t in tok.convert_ids_to_tokens(ids[:-1].tolist()))
            # the reading frame follows each contig's start, across the piece seams
            assert any(c == chrom and (start - s) % 3 == 0 and start >= s
                       for c, s in contig_starts)


def test_small_shards_read_back(built, tmp_path):
    genome, _, vocab = built
    cfg = CorpusConfig(max_tokens=50, min_tokens=5, shard_tokens=700)
    man = write_corpus(vocab, genome, tmp_path / "c", cfg)
    assert man["splits"]["train"]["shards"] > 3
    corpus, tok, g = Corpus.open(tmp_path / "c"), load_tokenizer(vocab), Genome.read(genome)
    assert max(int(np.memmap(p, np.uint16).size) for p in (tmp_path / "c" / "train").glob(
        "tokens.*.bin")) <= 700
    for (chrom, start, end), ids in all_samples(corpus, "train"):
        assert sample_text(tok, ids) == g.sequence(chrom, start, end)


def test_seed_reproduces_and_changes_the_corpus(built, tmp_path):
    genome, _, vocab = built
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_corpus(vocab, genome, tmp_path / name, CorpusConfig(max_tokens=50, seed=seed))
        runs[name] = Corpus.open(tmp_path / name).train.samples
    assert np.array_equal(runs["a"], runs["b"]) and not np.array_equal(runs["a"], runs["c"])


def test_cli_and_errors(built, tmp_path, capsys):
    genome, bpe, vocab = built
    out = tmp_path / "c"
    args = ["corpus", "--vocab", str(vocab), "--genome", str(genome), "--out", str(out),
            "--max-tokens", "50", "--holdout", "chrB:0-8000", "--quiet"]
    assert main(args) == 0
    assert "train" in capsys.readouterr().out
    man = read_json(out / "manifest.json")
    assert man["config"]["holdout"] == ["chrB:0-8000"] and man["stage"] == "corpus"
    assert main(args) == 2  # finished: refuses without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--tokens", str(bpe / "tokens")]) == 0
    bad = [
        (["--holdout", "chrB:9-3"], "start must be below end"),
        (["--holdout", "chrZ"], f"{genome}: --holdout chrZ: no record 'chrZ' in the genome"),
        (["--holdout", "chrB:0-99999999"], f"{genome}: --holdout chrB:0-99999999 ends beyond chrB ("),
        (["--holdout", "chrB", "--test-fraction", "0.1"], "not both"),
        (["--test-fraction", "1.5"], "--test-fraction"),
        (["--min-tokens", "80"], "--min-tokens"),
    ]
    for extra, message in bad:
        base = [a for a in args if a not in ("--holdout", "chrB:0-8000")]
        assert main(base + ["--overwrite"] + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_explicit_tokens_must_match_the_vocabulary(built, tmp_path):
    genome, _, vocab = built
    other = tmp_path / "other"
    other.mkdir()
    _, bpe2, _ = make_vocab(other)  # same genome and merges: it matches
    write_corpus(vocab, genome, tmp_path / "ok", CorpusConfig(max_tokens=50), bpe2 / "tokens")
    from groverlm.bpe.export import export_vocab

    export_vocab(bpe2, 40, tmp_path / "v40")  # fewer cycles: other merges
    with pytest.raises(GroverError, match="other merges"):
        write_corpus(tmp_path / "v40", genome, tmp_path / "bad", CorpusConfig(max_tokens=50),
                     bpe2 / "tokens")
    # found automatically but not matching: encoded instead
    man = write_corpus(tmp_path / "v40", genome, tmp_path / "enc", CorpusConfig(max_tokens=50))
    assert man["source"] == "tokenizer"


def test_docstring_examples():
    import doctest

    import groverlm.corpus

    assert doctest.testmod(groverlm.corpus).failed == 0


def test_chunk_cut_segmentation_is_not_reused(built, tmp_path):
    """`bpe train --chunk` cuts the genome where the exported tokenizer does not: the corpus must
    encode with the tokenizer (what fine-tuning, embed and score will see), not reuse those cuts."""
    import json

    from groverlm.bpe.train import write_training

    genome = built[0]
    write_training(genome, tmp_path / "bpe", CYCLES, chunk=997, save_tokens_at=CYCLES)
    export_vocab(tmp_path / "bpe", CYCLES, tmp_path / "v")
    cfg = CorpusConfig(max_tokens=40, min_tokens=6, seed=5)
    man = write_corpus(tmp_path / "v", genome, tmp_path / "auto", cfg)
    assert man["source"] == "tokenizer"
    with pytest.raises(GroverError, match="997-bp pieces"):
        write_corpus(tmp_path / "v", genome, tmp_path / "x", cfg, tmp_path / "bpe" / "tokens")
    meta = tmp_path / "bpe" / "tokens" / "meta.json"  # a folder from before chunk was recorded
    m = json.loads(meta.read_text())
    assert m.pop("chunk") == 997
    meta.write_text(json.dumps(m))
    with pytest.raises(GroverError, match="997-bp pieces"):
        write_corpus(tmp_path / "v", genome, tmp_path / "y", cfg, tmp_path / "bpe" / "tokens")


def test_record_names_with_colons_can_be_held_out(built, tmp_path):
    """hg38's alt contigs are named like HLA-A*01:01:01:01: whole or a range, they can be held out;
    a malformed range names the record it was read as."""
    from .conftest import random_dna, write_fasta

    vocab = built[2]
    name = "HLA-A*01:01:01:01"
    genome = write_fasta(tmp_path / "hla.fa", {"chrA": random_dna(9000, 7),
                                               name: random_dna(6000, 8)})
    cfg = CorpusConfig(max_tokens=30, min_tokens=4, holdout=(Region.parse(name),))
    write_corpus(vocab, genome, tmp_path / "whole", cfg)
    test = Corpus.open(tmp_path / "whole").split("test")
    assert {test.coordinates(i)[0] for i in range(len(test))} == {name}
    cfg = CorpusConfig(max_tokens=30, min_tokens=4, holdout=(Region.parse(f"{name}:1000-3000"),))
    write_corpus(vocab, genome, tmp_path / "range", cfg)
    test = Corpus.open(tmp_path / "range").split("test")
    spans = [test.coordinates(i) for i in range(len(test))]
    assert spans and all(c == name and s >= 1000 - 40 and e <= 3000 + 40 for c, s, e in spans)
    with pytest.raises(GroverError, match=r"no record 'chrA:5-' .*CHROM:START-END"):
        write_corpus(vocab, genome, tmp_path / "bad",
                     CorpusConfig(max_tokens=30, holdout=(Region.parse("chrA:5-"),)))
