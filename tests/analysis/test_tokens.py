"""Token analyses: vocabulary statistics, token-embedding PCA and per-token masked accuracy."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.colors import LogNorm

from groverlm.analysis import tokens
from groverlm.bpe.export import summarize_vocab
from groverlm.embed import load_encoder
from groverlm.errors import GroverError

from .fixtures import make_model, make_vocab


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tokens")
    genome, vocab = make_vocab(tmp)
    model, tok = load_encoder(make_model(vocab, tmp / "model"))
    return vocab, model, tok, tokens.load_rows(vocab)


def test_vocab_analysis_counts(tiny):
    vocab, _, _, rows = tiny
    res = tokens.vocab_analysis(rows, 120)
    s = summarize_vocab(rows)
    assert sum(res["length_counts"].values()) == s["tokens"] == len(rows)
    assert sum(res["first_letter_counts"].values()) == len(rows)
    assert sum(res["length_genome_share"].values()) == pytest.approx(1.0)
    at = (res["first_letter_counts"]["A"] + res["first_letter_counts"]["T"]) / len(rows)
    assert at == pytest.approx(s["start_A_or_T"])
    comp = {c["figure"]: c for c in res["comparison"]}
    assert comp["tokens present"] == {"figure": "tokens present", "this": len(rows), "grover": 601}
    assert comp["longest token (nt)"]["this"] == max(r["length"] for r in rows)
    assert res["longest_tokens"][0]["length"] == max(r["length"] for r in rows)
    json.dumps(res)  # JSON-ready
    tokens.plot_vocab(rows, res)


def test_pca_recovers_planted_directions(tiny):
    """Embeddings built from log frequency (strong) and GC (weaker) come out as PC1 and PC2."""
    _, model, _, rows = tiny
    props = tokens.token_properties(rows)
    rng = np.random.default_rng(0)
    weight = model.get_input_embeddings().weight.detach().clone()
    logf = np.log(props["frequency"])
    z = (logf - logf.mean()) / logf.std()
    g = (props["gc"] - props["gc"].mean()) / props["gc"].std()
    planted = np.zeros((len(rows), weight.shape[1]))
    planted[:, 0] = 10 * z
    planted[:, 1] = 3 * g
    planted += 0.01 * rng.standard_normal(planted.shape)
    ids = [r["id"] for r in rows]
    weight[ids] = torch.tensor(planted, dtype=weight.dtype)
    fake = SimpleNamespace(get_input_embeddings=lambda: SimpleNamespace(weight=weight))
    res, coords = tokens.embedding_pca(fake, rows, 4)
    assert coords.shape == (len(rows), 4)
    pcs = {c["component"]: c for c in res["components"]}
    assert abs(pcs["PC1"]["frequency"]) > 0.99 and abs(pcs["PC2"]["gc"]) > 0.95
    assert res["strongest"]["frequency"]["component"] == "PC1"
    assert res["strongest"]["gc"]["component"] == "PC2"
    assert sum(c["explained"] for c in res["components"]) <= 1 + 1e-9
    assert pcs["PC1"]["explained"] > pcs["PC2"]["explained"] > pcs["PC3"]["explained"]
    assert [g["component"] for g in res["grover"]] == ["PC1", "PC2", "PC3"]
    # the frequency panel's colour bar names its unit as masked.png's x-axis does, on a log scale
    bar = tokens.plot_pca(rows, coords, res).axes[0].collections[0].colorbar
    assert bar.ax.get_ylabel() == "occurrences in the genome"
    assert isinstance(bar.norm, LogNorm)


class AlternatingOracle(torch.nn.Module):
    """Predicts token a at odd input positions and b at even ones: right for windows a, b, a, b
    exactly when the analysis maps window position i to input position i + 1 ([CLS] first)."""

    def __init__(self, vocab_size: int, a: int, b: int):
        super().__init__()
        self.config = SimpleNamespace(vocab_size=vocab_size)
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.a, self.b = a, b

    def forward(self, input_ids, attention_mask):
        bsz, t = input_ids.shape
        logits = torch.zeros(bsz, t, self.config.vocab_size)
        pos = torch.arange(t)
        logits[:, pos % 2 == 1, self.a] = 1.0
        logits[:, pos % 2 == 0, self.b] = 1.0
        return SimpleNamespace(logits=logits)


def test_masked_accuracy_scores_the_right_positions(tiny):
    _, model, tok, rows = tiny
    a, b = rows[0]["id"], rows[1]["id"]
    windows = [np.array([a, b] * 20), np.array([a, b] * 13 + [a])]
    oracle = AlternatingOracle(model.config.vocab_size, a, b)
    res = tokens.masked_accuracy(oracle, tok, windows, rows, rate=0.25, passes=4, seed=1,
                                 min_masked=1)
    per = {t["id"]: t for t in res["per_token"]}
    assert res["accuracy"] == 1.0 and per[a]["accuracy"] == per[b]["accuracy"] == 1.0
    # four disjoint 25% passes draw every position once; a drawn token right of another drawn in
    # the same pass is not a target (isolated targets), so fewer than the 67 positions are scored
    assert per[a]["masked"] + per[b]["masked"] == res["masked"] and 40 < res["masked"] < 67
    # the same oracle shifted by one position gets everything wrong
    res2 = tokens.masked_accuracy(AlternatingOracle(model.config.vocab_size, b, a), tok, windows,
                                  rows, rate=0.25, passes=4, seed=1, min_masked=1)
    assert res2["accuracy"] == 0.0


def test_masked_accuracy_has_the_unigram_and_context_table_beside_it(tiny):
    """masked.png showed the model's accuracy alone: 5.6% in the demo, below the 6.9% the context
    table gets on the same targets. Both baselines are scored on the model's targets and drawn."""
    from groverlm.pretrain import context_table

    _, model, tok, rows = tiny
    a, b = rows[0]["id"], rows[1]["id"]
    windows = [np.array([a, b] * 20), np.array([a, b] * 13 + [a])]

    class Split:  # the training split: the same alternation, framed by [CLS] and [SEP]
        data = windows
        lengths = np.array([w.size for w in windows])

        def __getitem__(self, i):
            return self.data[i]

    table = context_table(Split(), model.config.vocab_size, tok.cls_token_id, tok.sep_token_id,
                          fallback=a)
    oracle = AlternatingOracle(model.config.vocab_size, b, a)  # shifted: always wrong
    res = tokens.masked_accuracy(oracle, tok, windows, rows, rate=0.25, passes=4, seed=1,
                                 min_masked=1, table=table)
    assert res["accuracy"] == 0.0 and res["context_accuracy"] == 1.0
    per = {t["id"]: t for t in res["per_token"]}
    assert res["unigram_token"] == rows[0]["token"]
    assert res["unigram_accuracy"] == per[a]["masked"] / res["masked"]
    la, lb = str(rows[0]["length"]), str(rows[1]["length"])
    assert res["context_by_length"][la] == 1.0
    if la != lb:
        assert res["unigram_by_length"] == {la: 1.0, lb: 0.0}
    json.dumps(res)
    fig = tokens.plot_masked(res)
    bars = fig.axes[1]
    labels = [t.get_text() for t in bars.get_legend().get_texts()]
    assert labels == ["model: 0.0% overall", "context table: 100.0% overall",
                      f"unigram ({rows[0]['token']}): {100 * res['unigram_accuracy']:.1f}% overall"]
    heights = [[p.get_height() for p in c] for c in bars.containers]
    lens = sorted(int(k) for k in res["masked_by_length"])
    assert heights[1] == [100.0] * len(lens)  # the table, at every length
    # each length's tick names its targets
    assert [t.get_text() for t in bars.get_xticklabels()] == [
        f"{k}\n{res['masked_by_length'][str(k)]}" for k in lens]
    # without a table (no corpus given): the unigram still stands beside the model
    res = tokens.masked_accuracy(oracle, tok, windows, rows, rate=0.25, passes=4, seed=1)
    assert res["context_accuracy"] is None and res["context_by_length"] is None
    assert len(tokens.plot_masked(res).axes[1].containers) == 2


class MaskRecorder(AlternatingOracle):
    """The alternating oracle, keeping every input it is given."""

    seen: list[torch.Tensor]

    def forward(self, input_ids, attention_mask):
        self.seen = [*getattr(self, "seen", []), input_ids.clone()]
        return super().forward(input_ids, attention_mask)


def test_masked_accuracy_masks_isolated_targets(tiny):
    """Each target is seen between its true neighbours, as pretraining's evaluation and the context
    table see it: with 15% of random targets over a quarter (1 - 0.85^2) were guessed beside a [MASK]
    (the demo's model 7.6% against 8.3% isolated; the table, given true neighbours, 7.1%)."""
    _, model, tok, rows = tiny
    rng = np.random.default_rng(0)
    windows = [rng.choice([r["id"] for r in rows[:10]], size=n) for n in (40, 61, 90)]
    rec = MaskRecorder(model.config.vocab_size, rows[0]["id"], rows[1]["id"])
    res = tokens.masked_accuracy(rec, tok, windows, rows, rate=0.5, passes=2, seed=3, min_masked=1)
    masks = torch.cat([(x == tok.mask_token_id) for x in rec.seen])  # (copies, T)
    assert int(masks.sum()) == res["masked"] > 0
    assert not (masks[:, 1:] & masks[:, :-1]).any()  # never two targets side by side


def test_masked_accuracy_real_model_and_correlations(tiny):
    _, model, tok, rows = tiny
    rng = np.random.default_rng(0)
    ids = np.array([r["id"] for r in rows])
    windows = [rng.choice(ids, size=40) for _ in range(30)]
    res = tokens.masked_accuracy(model, tok, windows, rows, rate=0.15, seed=0, min_masked=2)
    assert 30 * 4 < res["masked"] <= 30 * 6  # 6 drawn per window, those beside another left out
    assert 0 <= res["accuracy"] <= 1
    assert sum(t["masked"] for t in res["per_token"]) == res["masked"]
    assert sum(res["masked_by_length"].values()) == res["masked"]
    assert res["tokens_scored"] == sum(t["masked"] >= 2 for t in res["per_token"])
    rho = res["spearman_accuracy"]["frequency"]
    assert rho is None or -1 <= rho <= 1
    tokens.plot_masked(res)
    with pytest.raises(GroverError, match="passes"):
        tokens.masked_accuracy(model, tok, windows, rows, rate=0.5, passes=3)


def test_tokenizer_mismatch_is_refused(tiny):
    vocab, _, tok, rows = tiny
    tokens.check_tokenizer(tok, rows, vocab)
    moved = [dict(r, id=r["id"] + 1) if i == 3 else r for i, r in enumerate(rows)]
    with pytest.raises(GroverError, match=rf"vocabulary \(1 of {len(rows)} tokens has another id"):
        tokens.check_tokenizer(tok, moved, vocab)  # not "1 of N tokens have"
    moved[4] = dict(rows[4], id=rows[4]["id"] + 1)
    with pytest.raises(GroverError, match=rf"\(2 of {len(rows)} tokens have another id"):
        tokens.check_tokenizer(tok, moved, vocab)
