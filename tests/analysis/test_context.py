"""Contextual self-similarity: the cosine helper, the occurrence sampling, and the per-layer curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from groverlm.analysis import context
from groverlm.analysis.windows import sample_windows
from groverlm.embed import load_encoder, special_ids
from groverlm.errors import GroverError
from groverlm.fasta import Genome

from .fixtures import make_model, make_vocab


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("context")
    genome, vocab = make_vocab(tmp)
    model, tok = load_encoder(make_model(vocab, tmp / "model", seed=3))
    wins = sample_windows(Genome.read(genome), tok, 16, tokens=40, seed=0)
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
    again = sample_windows(g, tok, 16, tokens=40, seed=0)
    assert [(w.chrom, w.start) for w in again] == [(w.chrom, w.start) for w in wins]
    inside = sample_windows(g, tok, 4, tokens=40, seed=1, region="chrA:20000-45000")
    assert all(w.chrom == "chrA" and 20000 <= w.start and w.end <= 45000 for w in inside)
    with pytest.raises(GroverError, match="no record"):
        sample_windows(g, tok, 4, tokens=40, seed=1, region="chrZ")


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
