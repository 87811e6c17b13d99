"""Analyses, tokens: the vocabulary's statistics, the token-embedding PCA and masked-token accuracy.

Reads a `bpe export` folder (vocab_stats.json), a model folder and genome windows; writes nothing
itself (`groverlm analyze` saves the JSON and PNGs). Each function returns a JSON-ready dict; the
`plot_*` functions draw it. GROVER's published figures (600 cycles on hg19) sit beside ours:

- vocabulary: 601 tokens, mean length 4.07 nt, lengths 1 to 16 (A16 and T16 the longest), no CG
  token, 97% of tokens start with A or T;
- token-embedding PCA (Spearman): PC1 with frequency 0.88, PC2 with GC -0.96, PC3 with AG 0.94.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.analysis.plots import BASELINE_LIGHT, COLORS, figure, scatter_colored
from groverlm.embed import iter_batches, special_ids
from groverlm.errors import GroverError, counted

# torch, scipy, tqdm, matplotlib and groverlm.bpe.export (tokenizers) load on first use, keeping the
# CLI and config loading light
bpe_export = lazy.module("groverlm.bpe.export")
stats = lazy.module("scipy.stats")
ticker = lazy.module("matplotlib.ticker")
torch = lazy.module("torch")
tqdm_auto = lazy.module("tqdm.auto")

log = logging.getLogger(__name__)

PROPERTIES = ("frequency", "gc", "ag", "length")  # token properties the PCs are compared with
GROVER_VOCAB = {  # Sanabria et al. 2024, 600 cycles on hg19
    "tokens": 601, "mean_length_genome": 4.07, "min_length": 1, "max_length": 16,
    "longest": ["A" * 16, "T" * 16], "has_CG": False, "start_A_or_T": 0.97}
GROVER_PCA = {"PC1": ("frequency", 0.88), "PC2": ("gc", -0.96), "PC3": ("ag", 0.94)}


def load_rows(vocab: str | Path) -> list[dict]:
    """The present-token rows of a vocabulary's vocab_stats.json (most frequent first)."""
    rows = bpe_export.load_vocab_stats(vocab)["tokens"]
    if not rows:
        raise GroverError("vocab_stats.json lists no tokens", vocab)
    return rows


def check_tokenizer(tokenizer, rows: list[dict], vocab: str | Path) -> None:
    """The model's tokenizer must give each vocabulary token the same id."""
    ids = tokenizer.convert_tokens_to_ids([r["token"] for r in rows])
    bad = [r["token"] for r, i in zip(rows, ids, strict=True) if i != r["id"]]
    if bad:
        raise GroverError(f"the model's tokenizer differs from this vocabulary ({len(bad):,} of "
                          f"{counted(len(rows), 'token')} {'has' if len(bad) == 1 else 'have'} "
                          f"another id, e.g. {bad[0]!r})", vocab)


# ----------------------------------------------------------------------------- vocabulary


def vocab_analysis(rows: list[dict], cycles: int | None = None) -> dict[str, Any]:
    """Length, frequency, GC, AG and first-letter distributions of the present tokens, the longest
    and most frequent tokens, and the comparison with GROVER's vocabulary."""
    s = bpe_export.summarize_vocab(rows)
    freq = np.array([r["frequency"] for r in rows], dtype=np.float64)
    share = freq / freq.sum()
    lengths = Counter(r["length"] for r in rows)
    genome_len: Counter = Counter()
    first: Counter = Counter()
    first_genome: Counter = Counter()
    for r, w in zip(rows, share, strict=True):
        genome_len[r["length"]] += w
        first[r["token"][0]] += 1
        first_genome[r["token"][0]] += w
    longest = sorted(rows, key=lambda r: (-r["length"], -r["frequency"]))[:10]
    grover = GROVER_VOCAB
    comparison = [
        {"figure": "tokens present", "this": s["tokens"], "grover": grover["tokens"]},
        {"figure": "mean length in the genome (nt)", "this": round(s["mean_length_genome"], 2),
         "grover": grover["mean_length_genome"]},
        {"figure": "shortest token (nt)", "this": s["min_length"], "grover": grover["min_length"]},
        {"figure": "longest token (nt)", "this": s["max_length"], "grover": grover["max_length"]},
        {"figure": "longest tokens", "this": " ".join(s["longest"]),
         "grover": " ".join(grover["longest"])},
        {"figure": "CG token present", "this": s["has_CG"], "grover": grover["has_CG"]},
        {"figure": "tokens starting with A or T", "this": round(s["start_A_or_T"], 3),
         "grover": grover["start_A_or_T"]},
    ]
    return {
        "cycles": cycles, "summary": s, "comparison": comparison,
        "length_counts": {str(k): lengths[k] for k in sorted(lengths)},
        "length_genome_share": {str(k): float(genome_len[k]) for k in sorted(genome_len)},
        "first_letter_counts": {b: first[b] for b in "ACGT"},
        "first_letter_genome_share": {b: float(first_genome[b]) for b in "ACGT"},
        "gc_mean": float(np.mean([r["gc"] for r in rows])),
        "ag_mean": float(np.mean([r["ag"] for r in rows])),
        "most_frequent": [{k: r[k] for k in ("token", "frequency", "length")} for r in rows[:15]],
        "longest_tokens": [{k: r[k] for k in ("token", "frequency", "length")} for r in longest],
    }


def plot_vocab(rows: list[dict], result: dict):
    """2 x 2 figure: length distribution, frequency by rank, GC/AG histograms, first letters."""
    fig, ax = figure(2, 2, width=5.2, height=3.6)
    lens = sorted(int(k) for k in result["length_counts"])
    ax[0].bar(lens, [result["length_counts"][str(k)] for k in lens], color=COLORS[0])
    ax[0].xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    tw = ax[0].twinx()
    tw.plot(lens, [result["length_genome_share"][str(k)] for k in lens], "o-", color=COLORS[1],
            ms=3, label="share of genome tokens")
    tw.set_ylabel("share of genome tokens", color=COLORS[1])
    ax[0].set(xlabel="token length (nt)", ylabel="tokens in the vocabulary",
              title=f"Token lengths (mean {result['summary']['mean_length_genome']:.2f} nt "
                    f"in the genome; GROVER {GROVER_VOCAB['mean_length_genome']})")
    freq = np.array([r["frequency"] for r in rows], dtype=np.float64)
    length = np.array([r["length"] for r in rows])
    sc = ax[1].scatter(np.arange(1, freq.size + 1), freq, c=length, s=8, cmap="viridis")
    ax[1].set(xscale="log", yscale="log", xlabel="rank", ylabel="occurrences in the genome",
              title="Token frequency by rank")
    fig.colorbar(sc, ax=ax[1], label="length (nt)")
    bins = np.linspace(0, 1, 11)
    ax[2].hist([[r["gc"] for r in rows], [r["ag"] for r in rows]], bins=bins,
               color=[COLORS[2], COLORS[3]], label=["GC fraction", "AG fraction"])
    ax[2].legend(frameon=False)
    ax[2].set(xlabel="fraction of the token's bases", ylabel="tokens", title="GC and AG content")
    letters = list("ACGT")
    x = np.arange(4)
    n = sum(result["first_letter_counts"].values())
    ax[3].bar(x - 0.2, [result["first_letter_counts"][b] / n for b in letters], 0.4,
              color=COLORS[0], label="vocabulary")
    ax[3].bar(x + 0.2, [result["first_letter_genome_share"][b] for b in letters], 0.4,
              color=COLORS[1], label="genome tokens")
    ax[3].set_xticks(x, letters)
    ax[3].legend(frameon=False)
    at = result["summary"]["start_A_or_T"]
    ax[3].set(ylabel="share", title=f"First letter ({100 * at:.0f}% A/T; GROVER 97%)")
    return fig


# ----------------------------------------------------------------------------- embeddings PCA


def token_properties(rows: list[dict]) -> dict[str, np.ndarray]:
    return {p: np.array([r[p] for r in rows], dtype=np.float64) for p in PROPERTIES}


def embedding_pca(model, rows: list[dict], n_components: int = 5) -> tuple[dict, np.ndarray]:
    """PCA of the input word embeddings of the present tokens, and the Spearman correlation of
    each component with frequency, GC, AG and length. Returns (result, coords (n_tokens, k))."""
    weight = model.get_input_embeddings().weight.detach().float().cpu().numpy()  # (V, H)
    ids = np.array([r["id"] for r in rows])
    if ids.max() >= weight.shape[0]:
        raise GroverError(f"token id {int(ids.max())} beyond the model's {weight.shape[0]} "
                          "embeddings: model and vocabulary differ")
    x = weight[ids] - weight[ids].mean(0)  # (n, H) centred
    k = min(n_components, *x.shape)
    u, sv, vt = np.linalg.svd(x, full_matrices=False)
    coords = u[:, :k] * sv[:k]  # (n, k)
    # sign convention: each component points towards its largest loading (deterministic, but
    # arbitrary: negated embeddings flip every rho, so comparisons with GROVER's read magnitudes)
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(1)])
    coords = coords * signs
    var = sv**2 / (sv**2).sum()
    props = token_properties(rows)
    table = []
    for j in range(k):
        row: dict[str, Any] = {"component": f"PC{j + 1}", "explained": float(var[j])}
        for p in PROPERTIES:
            rho = stats.spearmanr(coords[:, j], props[p]).statistic
            row[p] = None if np.isnan(rho) else float(rho)
        table.append(row)
    best = {}
    for p in PROPERTIES:
        vals = [(abs(r[p]) if r[p] is not None else -1, r["component"]) for r in table]
        v, comp = max(vals)
        best[p] = {"component": comp, "abs_rho": v}
    grover = [{"component": c, "property": p, "grover_rho": g,
               "this_rho": next((r[p] for r in table if r["component"] == c), None)}
              for c, (p, g) in GROVER_PCA.items()]
    return {"tokens": int(ids.size), "hidden": int(x.shape[1]), "components": table,
            "strongest": best, "grover": grover}, coords


def plot_pca(rows: list[dict], coords: np.ndarray, result: dict):
    """PC1/PC2 coloured by frequency and by GC, PC2/PC3 by AG, and the |Spearman| heat map."""
    props = token_properties(rows)
    fig, ax = figure(2, 2, width=5.2, height=4.0)
    pc3 = coords[:, 2] if coords.shape[1] > 2 else np.zeros(len(coords))
    scatter_colored(ax[0], coords[:, 0], coords[:, 1], props["frequency"],
                    "occurrences in the genome", log=True)  # masked.png's frequency axis
    ax[0].set(xlabel="PC1", ylabel="PC2", title="Token embeddings: frequency")
    scatter_colored(ax[1], coords[:, 0], coords[:, 1], props["gc"], "GC fraction", cmap="coolwarm")
    ax[1].set(xlabel="PC1", ylabel="PC2", title="Token embeddings: GC")
    scatter_colored(ax[2], coords[:, 1], pc3, props["ag"], "AG fraction", cmap="PiYG")
    ax[2].set(xlabel="PC2", ylabel="PC3", title="Token embeddings: AG")
    comps = result["components"]
    mat = np.array([[np.nan if c[p] is None else c[p] for p in PROPERTIES] for c in comps])
    im = ax[3].imshow(mat, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if not np.isnan(mat[i, j]):
                ax[3].text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax[3].set_xticks(range(len(PROPERTIES)), PROPERTIES)
    ax[3].set_yticks(range(len(comps)),
                     [f"{c['component']} ({100 * c['explained']:.0f}%)" for c in comps])
    ax[3].set_title("Spearman rho (GROVER: PC1-freq .88, PC2-GC -.96, PC3-AG .94)", fontsize=9)
    fig.colorbar(im, ax=ax[3])
    return fig


# ----------------------------------------------------------------------------- masked tokens


def masked_accuracy(model, tokenizer, windows: Sequence[np.ndarray], rows: list[dict],
                    rate: float = 0.15, passes: int = 1, seed: int = 0, batch_size: int = 16,
                    min_masked: int = 5, progress: bool = False, unigram: int | None = None,
                    table: Any = None) -> dict[str, Any]:
    """Draw `rate` of each window's tokens (`passes` disjoint draws per window), mask those whose left
    neighbour was not drawn with them (the first of each run of drawn tokens: every target is seen
    between its true neighbours, as pretraining's evaluation isolates them and as the context table
    reads them), predict them with the MLM head (special tokens excluded) and score each token:
    accuracy against its genome frequency and length (Spearman over tokens masked at least
    `min_masked` times).

    Beside the model, on the same targets (overall and by token length), the baselines pretraining's
    evaluation reports: the unigram (always `unigram`, by default the vocabulary's most frequent
    token) and, with `table` (a `pretrain.ContextTable` of the training split), the context table
    given each target's true neighbours."""
    if not 0 < rate <= 1 or passes < 1 or passes * rate > 1:
        raise GroverError(f"need 0 < rate <= 1 and passes * rate <= 1 (rate {rate}, passes "
                          f"{passes})")
    unigram = rows[0]["id"] if unigram is None else int(unigram)  # rows: most frequent first
    rng = np.random.default_rng(seed)
    masked_windows, targets = [], []  # per masked copy: ids with [MASK]s; (positions, true ids)
    guesses = []  # per masked copy: the context table's answers for its targets
    for w in windows:
        w = np.asarray(w, dtype=np.int64)
        framed = np.concatenate([[tokenizer.cls_token_id], w, [tokenizer.sep_token_id]])  # as seen
        k = max(1, int(round(rate * w.size)))
        perm = rng.permutation(w.size)
        for p in range(passes):
            pos = np.sort(perm[p * k : (p + 1) * k])
            # side by side, a target would be guessed from a [MASK] while the table reads the true
            # token: on the demo's model (64 windows of 126 tokens) 7.6% with every drawn target
            # against 8.3% with isolated ones, the table 7.1% either way
            pos = pos[np.diff(pos, prepend=-2) > 1]
            if not pos.size:
                continue
            m = w.copy()
            m[pos] = tokenizer.mask_token_id
            masked_windows.append(m)
            targets.append((pos, w[pos]))
            if table is not None:  # framed[pos] and framed[pos + 2]: the true neighbours
                guesses.append(table(framed[pos], framed[pos + 2]))
    vsize = int(model.config.vocab_size)
    n_masked = np.zeros(vsize, dtype=np.int64)
    n_correct = np.zeros(vsize, dtype=np.int64)
    n_table = np.zeros(vsize, dtype=np.int64)  # targets of each token the table gets right
    if table is not None:
        for (_, true), guess in zip(targets, guesses, strict=True):
            np.add.at(n_table, true, (guess == true).astype(np.int64))
    blocked = torch.tensor(special_ids(tokenizer))
    device = next(model.parameters()).device
    bar = tqdm_auto.tqdm(total=len(masked_windows), desc="masked", unit="win",
                         disable=not progress, leave=False)
    with torch.inference_mode():
        for idx, ids, mask in iter_batches(masked_windows, tokenizer.cls_token_id,
                                           tokenizer.sep_token_id, tokenizer.pad_token_id,
                                           batch_size):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logits = logits.float().cpu()  # (B, T, V)
            logits[:, :, blocked] = -torch.inf
            pred = logits.argmax(-1).numpy()  # (B, T)
            for row, i in enumerate(idx):
                pos, true = targets[i]
                hit = pred[row, pos + 1] == true  # +1: [CLS] comes first
                np.add.at(n_masked, true, 1)
                np.add.at(n_correct, true, hit.astype(np.int64))
            bar.update(len(idx))
    bar.close()
    per_token = []
    for r in rows:
        m = int(n_masked[r["id"]])
        if m:
            per_token.append({"token": r["token"], "id": r["id"], "frequency": r["frequency"],
                          "length": r["length"], "masked": m, "correct": int(n_correct[r["id"]]),
                          "accuracy": n_correct[r["id"]] / m})
    scored = [t for t in per_token if t["masked"] >= min_masked]
    corr: dict[str, float | None] = {"frequency": None, "length": None}
    if len(scored) >= 3:
        acc = np.array([t["accuracy"] for t in scored])
        for p in corr:
            rho = stats.spearmanr(acc, [t[p] for t in scored]).statistic
            corr[p] = None if np.isnan(rho) else float(rho)
    by_len: dict[int, list[int]] = {}  # length -> [masked, model right, table right, unigram right]
    for t in per_token:
        c = by_len.setdefault(t["length"], [0, 0, 0, 0])
        c[0] += t["masked"]
        c[1] += t["correct"]
        c[2] += int(n_table[t["id"]])
        c[3] += t["masked"] if t["id"] == unigram else 0
    total = int(n_masked.sum())

    def share(right: float) -> float | None:
        return float(right / total) if total else None

    lens = sorted(by_len.items())
    return {"windows": len(windows), "rate": rate, "passes": passes, "masked": total,
            "accuracy": share(n_correct.sum()),
            "unigram_token": next((r["token"] for r in rows if r["id"] == unigram), None),
            "unigram_accuracy": share(n_masked[unigram]),
            "context_accuracy": share(n_table.sum()) if table is not None else None,
            "tokens_scored": len(scored), "min_masked": min_masked,
            "spearman_accuracy": corr,
            "accuracy_by_length": {str(k): v[1] / v[0] for k, v in lens},
            "context_by_length": ({str(k): v[2] / v[0] for k, v in lens} if table is not None
                                  else None),
            "unigram_by_length": {str(k): v[3] / v[0] for k, v in lens},
            "masked_by_length": {str(k): v[0] for k, v in lens},
            "per_token": per_token}


def plot_masked(result: dict):
    """Per-token accuracy against genome frequency (coloured by length), and by token length beside
    the context table and the unigram on the same targets, with the targets per length."""
    fig, ax = figure(2, 1, width=5.2, height=3.8)
    t = [r for r in result["per_token"] if r["masked"] >= result["min_masked"]]
    if t:
        scatter_colored(ax[0], np.array([r["frequency"] for r in t]),
                        100 * np.array([r["accuracy"] for r in t]),
                        np.array([r["length"] for r in t]), "length (nt)", size=10)
    rho = result["spearman_accuracy"]
    freq, length = (("n/a" if rho[k] is None else f"{rho[k]:.2f}") for k in ("frequency", "length"))
    ax[0].set(xscale="log", xlabel="occurrences in the genome", ylabel="masked-token accuracy (%)",
              title=f"Tokens masked {result['min_masked']}+ times (Spearman rho: frequency "
                    f"{freq}, length {length})")
    ax[0].title.set_fontsize(9)
    # a length with fewer targets than a token needs to be scored is left out (one target of a
    # 16-nt token read as 0% or 100%, and stretched the axis over the lengths that have data)
    lens = [int(k) for k, n in result["masked_by_length"].items() if n >= result["min_masked"]]
    lens.sort()
    few = sum(n for n in result["masked_by_length"].values() if n < result["min_masked"])
    x = np.arange(len(lens), dtype=np.float64)
    # results written before the baselines were added lack them: the model's bars alone
    series = [("model", "accuracy", "accuracy_by_length", COLORS[0]),
              ("context table", "context_accuracy", "context_by_length", COLORS[7]),
              (f"unigram ({result.get('unigram_token') or '?'})", "unigram_accuracy",
               "unigram_by_length", BASELINE_LIGHT)]
    series = [s for s in series if result.get(s[2]) is not None]
    width = 0.8 / len(series)
    for j, (name, overall, by, color) in enumerate(series):
        pct = "n/a" if result.get(overall) is None else f"{100 * result[overall]:.1f}%"
        ax[1].bar(x + (j - (len(series) - 1) / 2) * width,
                  [100 * result[by][str(k)] for k in lens], width, color=color,
                  label=f"{name}: {pct} overall")
    # under each length, the targets its bars rest on
    ax[1].set_xticks(x, [f"{k}\n{result['masked_by_length'][str(k)]:,}" for k in lens], fontsize=8)
    ax[1].legend(frameon=False, fontsize=8)
    left_out = (f"; {few:,} at lengths with under {result['min_masked']} not drawn" if few
                else "")
    ax[1].set(xlabel="token length (nt) / targets", ylabel="masked-token accuracy (%)",
              title=f"By token length: {result['masked']:,} targets{left_out}")
    ax[1].title.set_fontsize(9)
    return fig
