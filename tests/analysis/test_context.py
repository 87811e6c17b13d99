"""Contextual self-similarity: the cosine helper, the occurrence sampling, and the per-layer curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from groverlm.analysis import context
from groverlm.analysis.windows import GenomeContigs, sample_windows
from groverlm.embed import load_encoder, special_ids
from groverlm.errors import GroverError
from groverlm.fasta import Genome

from ..conftest import write_fasta
from .fixtures import make_model, make_vocab


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("context")
    genome, vocab = make_vocab(tmp)
    model, tok = load_encoder(make_model(vocab, tmp / "model", seed=3))
    wins = sample_windows(genome, tok, 16, tokens=40, seed=0)
    return genome, model, tok, wins


def test_mean_pairwise_cosine_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    brute = np.mean([u[i] @ u[j] for i in range(7) for j in range(7) if i != j])
    assert context.mean_pairwise_cosine(x) == pytest.approx(brute)
    assert context.mean_pairwise_cosine(np.tile(x[:1], (4, 1)) * [[1], [2], [3], [4]]) == \
        pytest.approx(1.0)


def test_windows_are_disjoint_reproducible_and_in_contigs(tiny):
    genome, _, tok, wins = tiny
    g = Genome.read(genome)
    assert len(wins) == 16 and all(len(w) == 40 for w in wins)
    for w in wins:
        assert "N" not in w.sequence and g.sequence(w.chrom, w.start, w.end) == w.sequence
        assert tok.backend_tokenizer.encode(w.sequence, add_special_tokens=False).ids == \
            w.ids.tolist()
    for a, b in zip(wins, wins[1:], strict=False):
        assert a.chrom != b.chrom or a.end <= b.start
    again = sample_windows(GenomeContigs.read(genome), tok, 16, tokens=40, seed=0)
    assert [(w.chrom, w.start) for w in again] == [(w.chrom, w.start) for w in wins]
    inside = sample_windows(genome, tok, 4, tokens=40, seed=1, region="chrA:20000-45000")
    assert all(w.chrom == "chrA" and 20000 <= w.start and w.end <= 45000 for w in inside)
    with pytest.raises(GroverError, match="no record"):
        sample_windows(genome, tok, 4, tokens=40, seed=1, region="chrZ")


def test_windows_are_drawn_from_a_record_at_a_time(tiny, tmp_path, decoded):
    """The analyses held the whole genome (hg38: 3.1 GB) to draw their windows: now its contigs
    are read a record at a time, then the drawn windows' bases (each the genome's bases at its
    coordinates); with a region, its record alone."""
    genome, _, tok, wins = tiny
    a, b = (Genome.read(genome)[c].sequence() for c in ("chrA", "chrB"))
    names = ["chrB", "chrA", "chrC", "chrD"]  # chrA and chrB, then each backwards
    seqs = dict(zip(names, (b, a, a[::-1], b[::-1]), strict=True))
    four = write_fasta(tmp_path / "four.fa", seqs)
    decoded.names.clear()
    decoded.most = decoded.alive
    got = sample_windows(four, tok, 16, tokens=40, seed=0)
    assert decoded.names[:4] == names and set(decoded.names[4:]) <= set(names)
    assert decoded.most <= 2  # the one read, the one before
    assert len(got) == 16 and all(seqs[w.chrom][w.start:w.end] == w.sequence for w in got)
    decoded.names.clear()
    inside = sample_windows(four, tok, 4, tokens=40, seed=1, region="chrC:20000-45000")
    assert set(decoded.names) == {"chrC"}
    assert all(w.chrom == "chrC" and 20000 <= w.start and w.end <= 45000 for w in inside)


def test_occurrences_one_per_window(tiny):
    _, _, tok, wins = tiny
    ids = [w.ids for w in wins]
    toks, occ = context.choose_occurrences(ids, 10, 5, special_ids(tok), seed=0)
    assert 1 <= len(toks) <= 10
    for t in toks:
        assert 2 <= len(occ[t]) <= 5
        assert len({wi for wi, _ in occ[t]}) == len(occ[t])
        assert all(ids[wi][p] == t for wi, p in occ[t])


def test_word_embedding_layer_is_exactly_self_similar(tiny):
    """Without position and segment embeddings hidden state 0 depends on the token alone, so its
    self-similarity is 1 when the right positions are gathered (and not for different tokens)."""
    _, model, tok, wins = tiny
    ids = [w.ids for w in wins]
    emb = model.base_model.embeddings
    saved = (emb.position_embeddings.weight.detach().clone(),
             emb.token_type_embeddings.weight.detach().clone())
    try:
        with torch.no_grad():
            emb.position_embeddings.weight.zero_()
            emb.token_type_embeddings.weight.zero_()
        res = context.self_similarity(model, tok, ids, n_tokens=8, per_token=6,
                                      baseline_pairs=50, control=False)
    finally:
        with torch.no_grad():
            emb.position_embeddings.weight.copy_(saved[0])
            emb.token_type_embeddings.weight.copy_(saved[1])
    curve = res["curves"]["model"]
    assert res["layers"] == [0, 1, 2]
    assert curve["self_similarity"][0] == pytest.approx(1.0, abs=1e-5)
    assert curve["baseline"][0] < 0.99  # different tokens are not identical


def test_control_is_a_different_seeded_model(tiny):
    _, model, tok, wins = tiny
    ids = [w.ids for w in wins]
    a = context.self_similarity(model, tok, ids, n_tokens=6, per_token=5, baseline_pairs=40,
                                seed=0)
    b = context.self_similarity(model, tok, ids, n_tokens=6, per_token=5, baseline_pairs=40,
                                seed=0)
    assert a == b
    m, c = a["curves"]["model"], a["curves"]["random_init"]
    assert len(m["self_similarity"]) == len(c["self_similarity"]) == 3
    assert not np.allclose(m["self_similarity"], c["self_similarity"])
    assert all(-1 <= v <= 1 for v in m["self_similarity"] + m["baseline"])
    fig = context.plot_self_similarity(a)
    assert len(fig.axes[0].lines) == 4
    # the bands say what they are (± 1 sd over the tokens), in their curve's legend entry
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "trained model: self-similarity (± 1 sd over tokens)", "trained model: different tokens",
        "random-init control: self-similarity (± 1 sd over tokens)",
        "random-init control: different tokens"]
