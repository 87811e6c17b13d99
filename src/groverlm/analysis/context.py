"""Analyses, context: how much a token's embedding depends on its genomic context, layer by layer.

Reads a model and genome windows; writes nothing itself (`groverlm analyze` saves the JSON and PNG).
Self-similarity (Ethayarajh 2019, as in GROVER): for each sampled token, the mean cosine similarity
between its hidden states at different occurrences (in different windows where possible); averaged
over the sampled tokens, per hidden-state index (0 = the embedding layer's output: word plus
position embeddings, normalised).
A high value means the layer still represents the token rather than its context. Two references:
the anisotropy baseline (mean cosine between occurrences of *different* tokens in the same layer)
and a control model, the same config with randomly initialised weights, read on the same windows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.analysis.plots import COLORS, figure
from groverlm.embed import iter_hidden, n_hidden_states, special_ids
from groverlm.errors import GroverError

# torch and transformers load on first use, keeping the CLI and config loading light
torch = lazy.module("torch")
transformers = lazy.module("transformers")

log = logging.getLogger(__name__)


def random_like(model, seed: int = 0):
    """A model of the same config with fresh random weights (transformers' initialisation)."""
    torch.manual_seed(seed)
    ctrl = transformers.AutoModelForMaskedLM.from_config(model.config)
    return ctrl.to(next(model.parameters()).device).eval()


def choose_occurrences(windows: Sequence[np.ndarray], n_tokens: int, per_token: int,
                       special: Sequence[int], seed: int = 0, min_windows: int = 5
                       ) -> tuple[list[int], dict[int, list[tuple[int, int]]]]:
    """Tokens to study and (window, position) occurrences of each.

    Eligible tokens occur in at least `min_windows` windows (at most `per_token`, at least 2);
    `n_tokens` of them are taken evenly along the ranking by number of windows, so frequent and
    rare tokens are both studied. Each gets up to `per_token` occurrences, one per window, the
    windows drawn at random.
    """
    rng = np.random.default_rng(seed)
    where: dict[int, dict[int, list[int]]] = {}  # token -> window -> positions
    for wi, w in enumerate(windows):
        for pos, t in enumerate(np.asarray(w).tolist()):
            if t not in special:
                where.setdefault(t, {}).setdefault(wi, []).append(pos)
    spread = {t: len(v) for t, v in where.items()}
    need = max(min(min_windows, per_token), 2)
    eligible = sorted((t for t, c in spread.items() if c >= need),
                      key=lambda t: (-spread[t], t))
    if not eligible:
        raise GroverError(f"no token occurs in {need} windows: sample more windows (--windows) "
                          "or ask for fewer occurrences per token (--context-occurrences)")
    pick = np.unique(np.linspace(0, len(eligible) - 1, min(n_tokens, len(eligible))).round())
    tokens = [eligible[int(i)] for i in pick]
    occ = {}
    for t in tokens:
        wins = sorted(where[t])
        chosen = rng.permutation(len(wins))[:per_token]
        occ[t] = [(wins[j], int(rng.choice(where[t][wins[j]]))) for j in sorted(chosen)]
    return tokens, occ


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine similarity over distinct pairs of rows of x (n, H), n >= 2.

    >>> round(mean_pairwise_cosine(np.array([[1.0, 0], [1, 0], [0, 1]])), 4)
    0.3333
    """
    n = x.shape[0]
    u = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    s = u.sum(0)
    return float((s @ s - (u * u).sum()) / (n * (n - 1)))


def gather_states(model, windows: Sequence[np.ndarray], wanted: dict[int, list[int]],
                  tokenizer, batch_size: int = 16, progress: bool = False) -> dict:
    """Hidden states (S, H) at every wanted (window, position), all hidden-state indices."""
    layers = list(range(n_hidden_states(model)))
    keep = sorted(wanted)
    states = {}
    sub = [windows[i] for i in keep]
    for idx, hidden, _ in iter_hidden(model, sub, tokenizer.cls_token_id, tokenizer.sep_token_id,
                                      tokenizer.pad_token_id, layers, batch_size, progress,
                                      desc="context"):
        for row, i in enumerate(idx):
            wi = keep[i]
            for pos in wanted[wi]:
                states[(wi, pos)] = hidden[:, row, pos + 1].numpy()  # (S, H); +1 for [CLS]
    return states


def self_similarity(model, tokenizer, windows: Sequence[np.ndarray], n_tokens: int = 50,
                    per_token: int = 30, baseline_pairs: int = 400, seed: int = 0,
                    batch_size: int = 16, control: bool = True, progress: bool = False
                    ) -> dict[str, Any]:
    """Per-layer self-similarity of sampled tokens for the model and (with `control`) for a
    randomly initialised model of the same config, with each one's anisotropy baseline."""
    special = special_ids(tokenizer)
    tokens, occ = choose_occurrences(windows, n_tokens, per_token, special, seed)
    rng = np.random.default_rng(seed + 1)
    # baseline: random positions of any token, one per pair member
    flat = [(wi, p) for wi, w in enumerate(windows) for p in range(len(w))
            if int(w[p]) not in special]
    pairs = [flat[i] for i in rng.choice(len(flat), size=min(2 * baseline_pairs, len(flat)),
                                         replace=False)]
    wanted: dict[int, set[int]] = {}
    for wi, p in [o for t in tokens for o in occ[t]] + pairs:
        wanted.setdefault(wi, set()).add(p)
    wanted_l = {k: sorted(v) for k, v in wanted.items()}
    models = {"model": model}
    if control:
        models["random_init"] = random_like(model, seed)
    out: dict[str, Any] = {"tokens": [tokenizer.convert_ids_to_tokens(t) for t in tokens],
                           "occurrences": {tokenizer.convert_ids_to_tokens(t): len(occ[t])
                                           for t in tokens},
                           "windows": len(windows), "layers": None, "curves": {}}
    for name, m in models.items():
        states = gather_states(m, windows, wanted_l, tokenizer, batch_size, progress)
        n_layers = next(iter(states.values())).shape[0]
        per_token = np.zeros((len(tokens), n_layers))
        for i, t in enumerate(tokens):
            x = np.stack([states[o] for o in occ[t]])  # (n_occ, S, H)
            per_token[i] = [mean_pairwise_cosine(x[:, layer]) for layer in range(n_layers)]
        a = np.stack([states[o] for o in pairs[0::2]])  # (P, S, H)
        b = np.stack([states[o] for o in pairs[1::2]][: len(a)])
        a = a[: len(b)]
        na = a / np.maximum(np.linalg.norm(a, axis=2, keepdims=True), 1e-12)
        nb = b / np.maximum(np.linalg.norm(b, axis=2, keepdims=True), 1e-12)
        baseline = (na * nb).sum(2).mean(0)  # (S,)
        out["layers"] = list(range(n_layers))
        out["curves"][name] = {
            "self_similarity": per_token.mean(0).tolist(),
            "self_similarity_std": per_token.std(0).tolist(),
            "baseline": baseline.tolist(),
            "adjusted": (per_token.mean(0) - baseline).tolist(),
        }
    return out


def plot_self_similarity(result: dict):
    """Self-similarity by layer: trained (solid) and random-init control (dashed), each with its
    spread over the sampled tokens (a band, ± 1 sd), baselines dotted."""
    fig, ax = figure(1, 1, width=6.4, height=4.0)
    layers = result["layers"]
    handles, labels = [], []
    for (name, c), color in zip(result["curves"].items(), COLORS, strict=False):
        style = "-" if name == "model" else "--"
        label = "trained model" if name == "model" else "random-init control"
        mean, std = np.array(c["self_similarity"]), np.array(c["self_similarity_std"])
        (line,) = ax.plot(layers, mean, style, marker="o", color=color)
        band = ax.fill_between(layers, mean - std, mean + std, color=color, alpha=0.15)
        (base,) = ax.plot(layers, c["baseline"], ":", color=color)
        # the band shares its curve's legend entry: six entries covered the curves
        handles += [(band, line), base]
        labels += [f"{label}: self-similarity (± 1 sd over tokens)", f"{label}: different tokens"]
    ax.set(xlabel="hidden state (0 = embedding layer)", ylabel="mean cosine similarity",
           title=f"Contextual self-similarity ({len(result['tokens'])} tokens, "
                 f"{result['windows']} windows)", ylim=(min(0, ax.get_ylim()[0]), 1.05))
    ax.set_xticks(layers)
    ax.legend(handles, labels, frameon=False, fontsize=8, loc="upper right")
    return fig
