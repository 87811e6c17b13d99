"""Pretraining stage: a stock transformers masked LM (BERT, or the CPU preset's DeBERTa-v2) trained
by masked-token prediction on a corpus.

Reads a `groverlm corpus` folder (shards, index, train token counts, tokenizer). Writes MODEL/: the
final model and tokenizer as a `save_pretrained` folder (`AutoModelForMaskedLM.from_pretrained` and
`AutoTokenizer.from_pretrained` load it with no custom code), `eval.json` (masked-token loss,
accuracy, perplexity and the unigram baseline on the test split), `log.jsonl` (learning curve),
`checkpoints/` (for --resume) and `manifest.json`. The loop itself is `groverlm.train`.
eval.json's baselines: `unigram_accuracy` and `context_accuracy` (see `context_table`).

Also registers the CLI commands `pretrain` and `plot-log`. As the run's pretrain stage (`run`), reads
RUN_DIR/corpus/corpus and writes RUN_DIR/pretrain/model; with `processes` > 1 it runs itself under
torchrun (`python -m groverlm.pretrain LAUNCH.json`, one process per rank).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.args import PRECISIONS, MaskingConfig, TrainConfig, add_fields, field_help, listed
from groverlm.context import Context
from groverlm.corpus import Corpus
from groverlm.errors import GroverError, counted, one_line
from groverlm.manifest import (
    atomic_path,
    clear_outputs,
    finished,
    folder_lock,
    merges_sha256_of,
    passed_locks,
    write_json,
    write_manifest,
    write_text,
)
from groverlm.metrics import masked_accuracy_text, paired_difference
from groverlm.models import (
    PRESETS,
    build_config,
    count_parameters,
    device_type,
    load_tokenizer,
    new_mlm_model,
    parse_overrides,
    save_model,
)

# torch, matplotlib and our torch modules load on first use, keeping the CLI and config loading
# light; groverlm.config imports every stage module, this one included
torch = lazy.module("torch")
F = lazy.module("torch.nn.functional")
matplotlib = lazy.module("matplotlib")
plt = lazy.module("matplotlib.pyplot")
backend_bases = lazy.module("matplotlib.backend_bases")
masking = lazy.module("groverlm.masking")
training = lazy.module("groverlm.train")
groverlm_config = lazy.module("groverlm.config")

log = logging.getLogger(__name__)

EVAL_JSON = "eval.json"


@dataclass(frozen=True)
class ModelConfig:
    """The model and what is measured; optimisation settings are `args.TrainConfig`."""

    preset: str = "tiny"  # architecture (tiny: the CPU model; grover-base: GROVER's BERT; models.PRESETS)
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields (--set key=value)
    mask_rate: float = 0.022  # share of tokens chosen as training targets (GROVER: 2.2%)
    mask_split: tuple[float, float] = (0.8, 0.2)  # of the targets: share shown as [MASK], as a
    #                                               random token (the rest kept; BERT: 0.8,0.1)
    eval_samples: int = 1024  # test samples per periodic evaluation (0: all); fixed masks
    final_eval_samples: int = 8192  # test samples in the final evaluation (0: all)
    pad_multiple: int = 8  # batch length rounded up to this (64 suits torch.compile)
    unigram_bias: bool = True  # start the output bias at the log token frequencies (so that step 0
    #                           predicts the unigram)
    # evaluation targets are this share of tokens (at most 25%), each shown as [MASK] and never
    # side by side, whatever the training masking: each is predicted from its true neighbours, as
    # the context table does, and recipes that train otherwise are scored on the same targets
    eval_mask_rate: float = 0.022
    # training targets never side by side (masking.MaskingConfig.isolated; mask_rate <= 0.25)
    mask_isolated: bool = False

    def __post_init__(self):
        if self.eval_samples < 0 or self.final_eval_samples < 0:
            raise GroverError("--eval-samples, --final-eval-samples must be >= 0")
        if self.pad_multiple < 1:
            raise GroverError(f"--pad-multiple must be at least 1, got {self.pad_multiple}")
        if not 0.0 < self.eval_mask_rate <= 0.25:  # isolated targets: at most every other token
            raise GroverError(f"--eval-mask-rate must be in (0, 0.25], got {self.eval_mask_rate}")
        _ = self.masking, self.eval_masking  # impossible settings fail here, before any output

    @property
    def masking(self) -> MaskingConfig:
        return MaskingConfig(self.mask_rate, self.mask_split[0], self.mask_split[1],
                             isolated=self.mask_isolated)

    @property
    def eval_masking(self) -> MaskingConfig:
        """The evaluation's masking: every target hidden behind [MASK], so accuracy measures
        prediction from context alone (a target left unchanged, as BERT's 80/10/10 does with 10%,
        would be copied, not predicted), and no two side by side (with random targets about 5% of
        them would lose a neighbour the context table still reads)."""
        return MaskingConfig(self.eval_mask_rate, 1.0, 0.0, isolated=True)


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining stage: the model and masking (pretrain.ModelConfig), the optimisation
    (args.TrainConfig), and how many processes share it."""

    processes: int = 1  # > 1: launched with torchrun (one process per GPU), else here; each
    #   takes its own batches (the global batch is processes x batch_size x grad_accum), so another
    #   count is another model: the stage runs again
    model: ModelConfig = field(default_factory=ModelConfig)  # preset, BertConfig overrides
    train: TrainConfig = field(default_factory=TrainConfig)  # steps, batch, learning rate, device

    def __post_init__(self):
        if self.processes < 1:
            raise ValueError(f"processes must be at least 1, got {self.processes}")


@dataclass
class Run:
    """Everything a pretraining run is made of, before training (also used by tests and bench)."""

    corpus: Any  # corpus.Corpus
    tokenizer: Any
    model: Any  # BertForMaskedLM
    data: Any  # masking.MLMData over the training split
    evaluate: Any  # train.Evaluate on the test split
    run_config: dict


@dataclass
class HeldOut:
    """The test split as every masked-token evaluation sees it (`held_out`)."""

    data: Any  # masking.MLMData: targets at the evaluation rate, every one shown as [MASK]
    order: Any  # np.ndarray: the samples' fixed order; an evaluation of n samples takes order[:n]
    unigram: int  # the most frequent training token
    table: Any  # ContextTable (`context_table`) of the training split


def random_token_ids(corpus, tokenizer):
    """The ids a target shown as a random token is drawn from: tokens seen in training, no
    special tokens (a torch int64 tensor)."""
    special = set(tokenizer.all_special_ids)
    seen = np.flatnonzero(corpus.train_counts > 0)
    return torch.tensor([int(i) for i in seen if int(i) not in special], dtype=torch.int64)


def held_out(corpus, tokenizer, cfg: ModelConfig, random_ids, seed: int,
             max_width: int | None = None) -> HeldOut:
    """The evaluation's test data, sample order, unigram answer and context table (build_run's, and
    bench/eval_noise.py's, which rescores a model on other slices and mask seeds); `max_width`: the
    model's positions, which padded batches stay within."""
    return HeldOut(masking.MLMData(corpus.test, tokenizer, cfg.eval_masking, random_ids,
                                   cfg.pad_multiple, max_width),
                   np.random.default_rng([seed, 1]).permutation(len(corpus.test)),
                   *corpus_baselines(corpus, tokenizer, seed))


def corpus_baselines(corpus, tokenizer, seed: int) -> tuple[int, ContextTable]:
    """The two answers a masked LM is measured against, from its corpus's training split: the
    unigram (its most frequent token) and the context table (`context_table`); the evaluation's
    and the masked-token analysis' (analysis.analyze)."""
    unigram = corpus.most_frequent_token()
    return unigram, context_table(corpus.train, len(tokenizer), tokenizer.cls_token_id,
                                  tokenizer.sep_token_id, unigram, seed=seed)


def build_run(corpus_path: str | Path, cfg: ModelConfig, seed: int = 0, batch_size: int = 32
              ) -> Run:
    """Open the corpus, build a fresh seeded model and the train data and evaluation callback."""
    corpus = Corpus.open(corpus_path)
    tokenizer = load_tokenizer(corpus.tokenizer_path)
    config = build_config(cfg.preset, len(tokenizer), cfg.overrides, tokenizer.pad_token_id)
    longest = int(max(corpus.train.lengths.max(), corpus.test.lengths.max()))
    check_positions(longest, config, f"samples of {longest + 2} tokens", corpus.path)
    # the saved tokenizer's limit is the longest sample trained on: positions beyond it keep their
    # random initial embeddings, so fine-tuning, embedding and scoring cut windows no longer than
    # that (embed.max_window_tokens); the demo's 128-position samples in a 512-position model put
    # PromScan's 250-token windows half on untrained positions (test MCC 0.51 against 0.57, 1 seed)
    tokenizer.model_max_length = int(corpus.train.lengths.max()) + 2
    random_ids = random_token_ids(corpus, tokenizer)
    positions = int(config.max_position_embeddings)
    data = masking.MLMData(corpus.train, tokenizer, cfg.masking, random_ids, cfg.pad_multiple,
                           positions)
    ev = held_out(corpus, tokenizer, cfg, random_ids, seed, positions)

    def evaluate(model, amp, final: bool) -> dict[str, Any]:
        n = cfg.final_eval_samples if final else cfg.eval_samples
        return evaluate_mlm(model, amp, ev.data, ev.order[:n] if n else ev.order, batch_size, seed,
                            ev.unigram, ev.table, paired=final)

    model = new_mlm_model(config, seed)
    if cfg.unigram_bias:
        set_unigram_bias(model, corpus.train_counts, sorted(set(tokenizer.all_special_ids)))
    # JSON types only: checkpoints compare it on resume. The corpus by its content, not its path:
    # a corpus moved, or named relative instead of absolute, is the same corpus
    run_config = json.loads(json.dumps({"corpus_sha256": _corpus_id(corpus),
                                        "pretrain": asdict(cfg), "model": model_fields(config)}))
    return Run(corpus, tokenizer, model, data, evaluate, run_config)


def set_unigram_bias(model, counts, special: Sequence[int]) -> None:
    """Start the masked-LM output bias at the log frequencies of the training tokens.

    With Adam every weight moves by about the learning rate per step, so a bias starting at zero
    needs thousands of steps to spread over the ~7 nats between common and rare tokens; until then
    the loss is dominated by learning frequencies, and a short run never gets to context. Starting
    from the unigram distribution (Karpathy's "init well") gives the first steps to context.
    Tokens never seen in training (specials included) get the log of half a count.
    """
    freq = np.asarray(counts, dtype=np.float64).copy()
    freq[list(special)] = 0
    freq = np.where(freq > 0, freq, 0.5)
    logp = np.log(freq / freq.sum())
    with torch.no_grad():
        bias = model.get_output_embeddings().bias  # (V,) the bias the logits are computed with
        bias.copy_(torch.from_numpy(logp - logp.mean()).to(bias.dtype))


def _corpus_id(corpus) -> str:
    return hashlib.sha256((corpus.path / "manifest.json").read_bytes()).hexdigest()


def model_fields(config) -> dict[str, Any]:
    d = config.to_diff_dict()
    d.pop("transformers_version", None)
    return d


@dataclass(frozen=True)
class ContextTable:
    """`context_table`'s answer per (left, right) pair, kept sparse: only the pairs seen, so a large
    vocabulary (an 8-mer one has 65,546 tokens: V² would be 32 GiB) costs what the corpus holds."""

    vocab_size: int
    pairs: np.ndarray  # (P,) int64 sorted keys left * V + right of the pairs seen
    middle: np.ndarray  # (P,) int64 the most frequent middle token of each
    fallback: int  # the answer for a pair never seen

    def __call__(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The answers (int64, the shape of `left`) for the pairs left[i], right[i]."""
        key = np.asarray(left, dtype=np.int64) * self.vocab_size + np.asarray(right, dtype=np.int64)
        if not self.pairs.size:
            return np.full(key.shape, self.fallback, dtype=np.int64)
        i = np.minimum(np.searchsorted(self.pairs, key), self.pairs.size - 1)
        return np.where(self.pairs[i] == key, self.middle[i], self.fallback)


def context_table(split, vocab_size: int, cls_id: int, sep_id: int, fallback: int,
                  max_tokens: int = 50_000_000, seed: int = 0) -> ContextTable:
    """The context baseline: for each (left, right) neighbour pair, the middle token seen most often
    between them in `split` (samples framed by [CLS] and [SEP], as the model sees them).

    Returns a `ContextTable`, called with left and right token ids; pairs never seen answer `fallback` (the
    unigram guess). At most `max_tokens` tokens are counted (a seeded subset of samples beyond that,
    so a whole-genome corpus costs seconds, not its size); ties go to the smaller token id.

    >>> class Split:  # two samples: 7 8 7 and 7 9 7 8 7
    ...     data = [np.array([7, 8, 7]), np.array([7, 9, 7, 8, 7])]
    ...     lengths = np.array([3, 5])
    ...     def __getitem__(self, i): return self.data[i]
    >>> t = context_table(Split(), 10, 2, 3, fallback=5)
    >>> t(np.array([7, 2, 9]), np.array([7, 8, 9])).tolist()  # 8 twice, 9 once; [CLS] 7 8; unseen
    [8, 7, 5]
    """
    v = np.int64(vocab_size)
    order = np.random.default_rng([seed, 2]).permutation(len(split.lengths))
    take = order[: int(np.searchsorted(np.cumsum(split.lengths[order]), max_tokens)) + 1]
    keys = []
    for i in np.sort(take):
        s = np.concatenate([[cls_id], np.asarray(split[int(i)], dtype=np.int64), [sep_id]])
        keys.append((s[:-2] * v + s[2:]) * v + s[1:-1])  # (left, right, middle) as one int64
    if not keys:
        return ContextTable(vocab_size, np.empty(0, np.int64), np.empty(0, np.int64), fallback)
    uniq, counts = np.unique(np.concatenate(keys), return_counts=True)
    pair, middle = uniq // v, uniq % v
    best = np.lexsort((middle, -counts, pair))  # by pair, then most frequent, then smallest id
    pair, middle = pair[best], middle[best]
    first = np.r_[True, pair[1:] != pair[:-1]]  # pairs stay sorted: the keys' order
    return ContextTable(vocab_size, pair[first], middle[first], fallback)


def evaluate_mlm(model, amp, data, indices, batch_size: int, seed: int, unigram_id: int,
                 table: ContextTable | None = None, paired: bool = False) -> dict[str, Any]:
    """Masked-token metrics over test samples `indices`, with masks fixed by `seed` (`data` masks
    with the evaluation rate, every target shown as [MASK]).

    mlm_loss: mean cross-entropy (nats) over targets; perplexity: its exponential; mlm_accuracy:
    top-1 accuracy; unigram_accuracy: accuracy of always answering the most frequent training token;
    context_accuracy (with `table`, see `context_table`): accuracy of the context table given each
    target's true neighbours: the bar a model of sequence context must clear; vs_context_table
    (with `paired`, the final evaluation's): the model's accuracy minus the table's with the 95%
    interval of a paired bootstrap over the targets (metrics.paired_difference).
    """
    device = next(model.parameters()).device
    indices = np.asarray(indices)
    indices = indices[np.argsort(data.lengths[indices], kind="stable")]  # little padding
    loss = correct = unigram = context = n = 0.0
    rows: dict[str, list[np.ndarray]] = {"truth": [], "model": [], "table": []}  # with `paired`
    for k in range(0, len(indices), batch_size):
        gen = torch.Generator().manual_seed(training.seed_of(seed, 0xE7A1, k, 1))
        batch = data.collate(indices[k : k + batch_size], gen)
        batch = {key: v.to(device) for key, v in batch.items()}
        with amp(), torch.no_grad():
            logits, targets = training.masked_logits(model, **batch)  # (M, V), (M,)
        logits = logits.float()
        loss += float(F.cross_entropy(logits, targets, reduction="sum"))
        correct += float((logits.argmax(-1) == targets).sum())
        unigram += float((targets == unigram_id).sum())
        if table is not None:
            labels = batch["labels"].cpu()
            where = labels[:, 1:-1] != masking.IGNORE  # (B, T-2): targets never sit at [CLS] or the end
            truth = torch.where(labels != masking.IGNORE, labels, batch["input_ids"].cpu())  # (B, T)
            truth, where = truth.numpy(), where.numpy()
            guess = table(truth[:, :-2][where], truth[:, 2:][where])  # (M,) for the targets only
            context += float((guess == truth[:, 1:-1][where]).sum())
            if paired:  # masked_logits gives the targets row-major too: the orders agree
                rows["truth"].append(targets.cpu().numpy())
                rows["model"].append(logits.argmax(-1).cpu().numpy())
                rows["table"].append(np.asarray(guess))
        n += targets.numel()
    n = max(n, 1)
    out = {"mlm_loss": loss / n, "mlm_accuracy": correct / n, "unigram_accuracy": unigram / n,
           "perplexity": math.exp(min(loss / n, 700.0)), "masked_tokens": int(n),
           "eval_samples": int(len(indices))}
    if table is not None:
        out["context_accuracy"] = context / n
    if rows["truth"]:
        truth = np.concatenate(rows["truth"])

        def scored(who: str) -> dict[str, Any]:
            return {"per_seed": [{"test": {"y_true": truth, "y_pred": np.concatenate(rows[who])}}]}

        out["vs_context_table"] = paired_difference(scored("model"), scored("table"), "accuracy")
    return out


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber a finished run or an unfinished one that was not asked to resume."""
    if _rank() != 0:
        return
    if finished(out) and not overwrite:
        raise GroverError("already holds a finished run; pass --overwrite to replace it", out)
    if overwrite:
        clear_outputs(out, [out / name for name in (training.CHECKPOINTS, "tb", training.LOG,
                                                    EVAL_JSON)])
    elif not resume and (out / training.CHECKPOINTS).exists():
        raise GroverError("holds checkpoints of an unfinished run; pass --resume to continue it "
                          "or --overwrite to start again", out)
    out.mkdir(parents=True, exist_ok=True)


def pretrain(corpus_path: str | Path, out: str | Path, cfg: ModelConfig, tcfg,
             resume: bool = False, overwrite: bool = False, progress: bool = True
             ) -> dict[str, Any]:
    """`groverlm pretrain`: train, then write the final model, eval.json and manifest.json (rank 0).
    Returns eval.json's content (on other ranks: the counters only)."""
    out = Path(out)
    with folder_lock(out) if _rank() == 0 else contextlib.nullcontext():  # rank 0 writes
        return _pretrain(corpus_path, out, cfg, tcfg, resume, overwrite, progress)


def _pretrain(corpus_path: str | Path, out: Path, cfg: ModelConfig, tcfg, resume: bool,
              overwrite: bool, progress: bool) -> dict[str, Any]:
    prepare_run_folder(out, resume, overwrite)
    run = build_run(corpus_path, cfg, tcfg.seed, tcfg.batch_size)
    res = training.train(run.model, run.data, training.MaskedLM, tcfg, out, run.evaluate, run.tokenizer,
                      resume, run.run_config, progress)
    summary = {**res.metrics, "steps": res.step, "tokens_seen": res.tokens_seen,
               "samples_seen": res.samples_seen, "train_seconds": round(res.train_seconds, 2),
               "tokens_per_second": round(res.tokens_per_second, 1), "processes": res.world}
    if res.rank != 0:
        return summary
    with tempfile.TemporaryDirectory(dir=out, prefix=".final") as tmp:  # whole folder, then moved
        save_model(run.model, run.tokenizer, tmp)
        for f in Path(tmp).iterdir():
            f.replace(out / f.name)
    write_json(out / EVAL_JSON, summary)
    config = {"corpus": str(corpus_path), **asdict(cfg), "train": asdict(tcfg),
              "model": model_fields(run.model.config)}
    write_manifest(out, "pretrain", config, [corpus_path], seed=tcfg.seed, eval=summary,
                   merges_sha256=merges_sha256_of(corpus_path),  # as the corpus records it
                   parameters=count_parameters(run.model),
                   non_embedding_parameters=count_parameters(run.model, embeddings=False))
    return summary



# the fields plot-log reads from each kind of pretraining log record
PLOTTED = {"train": ("tokens_seen", "loss"),
           "eval": ("tokens_seen", "mlm_loss", "mlm_accuracy", "unigram_accuracy")}


def eval_groups(evals: list[dict]) -> list[tuple[int | None, list[dict]]]:
    """Evaluation records by their sample count (`eval_samples`), the periodic ones (the most
    records) first: the final evaluation reads the whole test split, the periodic ones a sample,
    so their accuracies (and the context table's) are not one curve."""
    groups: dict[int | None, list[dict]] = {}
    for r in evals:
        groups.setdefault(r.get("eval_samples"), []).append(r)
    return sorted(groups.items(), key=lambda kv: -len(kv[1]))


def plot_learning_curve(runs: str | Path | Sequence[str | Path], png: str | Path,
                        title: str | None = None, labels: Sequence[str] | None = None,
                        overwrite: bool = False) -> Path:
    """Masked-token loss (train and test) and test accuracy against the unigram and context-table
    baselines, over tokens seen, for one run folder or several side by side (each with a
    pretraining log.jsonl); an existing `png` is replaced only with `overwrite`."""
    if importlib.util.find_spec("matplotlib") is None:
        raise GroverError("plotting needs matplotlib (pip install matplotlib)")
    matplotlib.use("Agg")
    runs = [runs] if isinstance(runs, str | Path) else list(runs)
    labels = list(labels) if labels else [Path(r).name for r in runs]
    if len(labels) != len(runs):
        raise GroverError(f"{counted(len(labels), 'label')} for {counted(len(runs), 'run')}")
    png = Path(png)
    fmt = png.suffix.lstrip(".").lower() or "png"
    formats = backend_bases.FigureCanvasBase.get_supported_filetypes()  # no figure made to ask
    if fmt not in formats:  # before the work, not a savefig traceback
        raise GroverError(f"--out must end in one of .{', .'.join(sorted(formats))}", png)
    if png.exists() and not overwrite:
        raise GroverError("already exists; pass --overwrite to replace it", png)
    logs = [training.read_log(run) for run in runs]
    for run, records in zip(runs, logs, strict=True):
        if not any(r.get("kind") in ("train", "eval") for r in records):
            raise GroverError("the log holds no training or evaluation record", run)
        evals = [r for r in records if r.get("kind") == "eval"]
        if evals and not any("mlm_accuracy" in r for r in evals):  # drawn as masked-LM curves
            raise GroverError("its evaluations are not masked-token ones (a fine-tuning log?): "
                              "plot-log draws pretraining runs", run)
        for r in records:
            missing = [k for k in PLOTTED.get(r.get("kind"), ()) if k not in r]
            if missing and (r.get("kind") == "train" or "mlm_accuracy" in r):
                raise GroverError(f"a {r['kind']} record (step {r.get('step', '?')}) lacks "
                                  f"{', '.join(missing)}: not a groverlm pretraining log", run)
    fig = draw_learning_curves(logs, labels, title)
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=120, format=fmt)
    plt.close(fig)
    return png


def draw_learning_curves(logs: Sequence[list[dict]], labels: Sequence[str],
                         title: str | None = None):
    """`plot_learning_curve`'s figure of checked pretraining logs (one per run, named by
    `labels`): loss, and accuracy beside the unigram and context-table baselines."""
    matplotlib.use("Agg")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2 + 0.25 * len(logs)))
    single = len(logs) == 1
    for k, (records, label) in enumerate(zip(logs, labels, strict=True)):
        color = f"C{k}"
        # one run: its baselines grey, as the report draws them, and no run name before each
        # entry (a run's folder is "model": "model: model"); several: a colour per run
        ref_color = "C7" if single else color
        prefix = "" if single else f"{label}: "
        tr = [r for r in records if r.get("kind") == "train"]
        ev = [r for r in records if r.get("kind") == "eval" and "mlm_accuracy" in r]
        ax1.plot([r["tokens_seen"] / 1e6 for r in tr], [r["loss"] for r in tr], lw=0.8,
                 alpha=0.5, color=color)
        for j, (n, group) in enumerate(eval_groups(ev)):
            # the periodic evaluations as lines; another sample count (the final one, on the
            # whole test split) as points of its own: joined, its change of sample reads as learning
            x = [r["tokens_seen"] / 1e6 for r in group]
            lines = ("o-", ":", "--") if j == 0 else ("D", "v", "s")
            tag = "" if j == 0 else f" ({n:,} samples)" if n else " (other samples)"
            ax1.plot(x, [r["mlm_loss"] for r in group], lines[0], ms=3, color=color,
                     label=f"{prefix}test{tag}" + ("" if j else " (line: train)"))
            ax2.plot(x, [100 * r["mlm_accuracy"] for r in group], lines[0], ms=3, color=color,
                     label=f"{prefix}model{tag}")
            ax2.plot(x, [100 * r["unigram_accuracy"] for r in group], lines[1], ms=3,
                     color=ref_color, lw=1, label=f"{prefix}unigram baseline{tag}")
            if all("context_accuracy" in r for r in group):
                ax2.plot(x, [100 * r["context_accuracy"] for r in group], lines[2], ms=3,
                         color=ref_color, lw=1, label=f"{prefix}context table{tag}")
    ax1.set_xlabel("tokens seen (millions)")
    ax1.set_ylabel("masked-token loss (nats)")
    ax2.set_xlabel("tokens seen (millions)")
    ax2.set_ylabel("test masked-token accuracy (%)")
    for ax in (ax1, ax2):  # below the panels: inside, six entries covered the curves
        ax.legend(fontsize=7, ncol=2, frameon=False, loc="upper center",
                  bbox_to_anchor=(0.5, -0.14))
    fig.suptitle(title or ", ".join(labels), fontsize=10)
    return fig


# ----------------------------------------------------------------------------------------------
# The run's pretrain stage


def check_model(cfg: ModelConfig, key: str):
    """Build the model's config (no weights) so that a bad preset or override is an error naming
    `key` before a run spends hours on the stages ahead of pretraining (the vocabulary size is a
    stand-in: no check depends on it); returns the config."""
    try:  # an override's error names it in full (pretrain.model.overrides.hidden_size)
        return build_config(cfg.preset, 64, cfg.overrides, option=f"{key}.overrides.")
    except GroverError as err:
        raise GroverError(err.message if err.message.startswith(f"{key}.") else
                          f"{key}: {err.message}") from None


def preflight(cfg: Any, config: Any) -> None:
    """The runner's check of this stage's section (of the run's whole `config`) before any stage
    runs: the model, and that the corpus's samples fit its positions (build_run's check)."""
    longest = config.stage("corpus").max_tokens
    check_positions(longest, check_model(cfg.model, "pretrain.model"),
                    f"pretrain.model: samples of up to corpus.max_tokens {longest} tokens",
                    config.source)


def check_positions(tokens: int, config: Any, what: str, where: Any) -> None:
    """Samples of `tokens` tokens plus [CLS]/[SEP] fit the model's positions (`what` and `where`
    say whose samples, in the error)."""
    if tokens + 2 > config.max_position_embeddings:
        raise GroverError(f"{what} with [CLS]/[SEP] exceed the model's "
                          f"{config.max_position_embeddings} positions", where)


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Pretraining: BertForMaskedLM on the corpus; resumes from its checkpoints; torchrun when
    `processes` > 1."""
    out, corpus = ctx.out / "model", ctx.path(ctx.summary("corpus")["corpus"])
    if not finished(out):
        resume = (out / training.CHECKPOINTS).is_dir()
        if cfg.processes > 1:
            launch_distributed(cfg, corpus, out, resume, ctx)
        else:
            pretrain(corpus, out, cfg.model, cfg.train, resume=resume, progress=ctx.progress)
    ev = json.loads((out / EVAL_JSON).read_text())
    keys = ("steps", "tokens_seen", "mlm_accuracy", "unigram_accuracy", "context_accuracy",
            "vs_context_table", "mlm_loss", "perplexity", "tokens_per_second", "train_seconds")
    return {"model": ctx.relative(out), **{k: ev[k] for k in keys if k in ev}}


def launch_distributed(cfg: Any, corpus: Path, out: Path, resume: bool, ctx: Context) -> None:
    """`torchrun --standalone --nproc_per_node N -m groverlm.pretrain LAUNCH.json`: every rank
    rebuilds the configs from the JSON and calls `pretrain` (rank 0 writes the outputs)."""
    launch = ctx.out / "launch.json"
    for old in ctx.out.glob("rank-*.error"):
        old.unlink()
    write_json(launch, {"corpus": str(corpus), "out": str(out), "resume": resume,
                        "progress": ctx.progress, "model": groverlm_config.as_plain(cfg.model),
                        "train": groverlm_config.as_plain(cfg.train)})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={cfg.processes}", "-m", "groverlm.pretrain", str(launch)]
    log.info("launching %s", " ".join(cmd))
    if run_to_end(cmd, launch_env(cfg)) != 0:
        # the ranks' own one-line errors (torchrun's summary names neither file nor cause)
        errors = sorted(ctx.out.glob("rank-*.error"))
        if errors:
            raise GroverError(f"{errors[0].read_text().strip()} (distributed pretraining, "
                              f"{errors[0].stem.replace('-', ' ')})")
        raise GroverError(f"distributed pretraining failed ({' '.join(cmd)})", out)


def launch_env(cfg: Any) -> dict[str, str]:
    """The environment of torchrun's ranks: ours, with the folder locks this process holds passed
    on (rank 0 writes RUN/pretrain/model inside the run folder we hold: `manifest.passed_locks`),
    and, for CPU ranks with no OMP_NUM_THREADS of the user's, a share of the cores each (torchrun
    would give each rank one thread, leaving all but `processes` cores idle)."""
    env = {**os.environ, **passed_locks()}
    if device_type(cfg.train.device) == "cpu" and "OMP_NUM_THREADS" not in env:
        # the cores this process may use (a scheduler's share of the machine), else them all
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        env["OMP_NUM_THREADS"] = str(max(1, (cores or 1) // cfg.processes))
    return env


def run_to_end(cmd: list[str], env: dict[str, str]) -> int:
    """Run `cmd` (torchrun) in `env` and return its exit status. Stopped meanwhile (Ctrl-C, or
    SIGTERM from a scheduler), it stops torchrun too, which stops its ranks: they run in a session
    of their own, so a runner that just died would leave them training into the folder, and its
    rerun would start a second run beside them."""
    proc = subprocess.Popen(cmd, env=env)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        return proc.wait()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.terminate()  # torchrun passes it on to every rank
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # the CLI's "interrupted", exit status 130


def launch_main(launch: str) -> int:
    """Entry of each torchrun rank (see launch_distributed): a user error is printed as one line
    and left in rank-N.error beside the launch file for the launching process to report."""
    rank = os.environ.get("RANK", "0")
    try:
        spec = json.loads(Path(launch).read_text())
        model = groverlm_config.build_section(ModelConfig, spec["model"], ("pretrain", "model"),
                                              launch)
        tcfg = groverlm_config.build_section(TrainConfig, spec["train"], ("pretrain", "train"),
                                             launch)
        pretrain(spec["corpus"], spec["out"], model, tcfg, resume=spec["resume"],
                 progress=spec["progress"] and rank == "0")
    except (GroverError, OSError) as err:
        print(f"groverlm: error: {one_line(err)}", file=sys.stderr)
        write_text(Path(launch).with_name(f"rank-{rank}.error"), one_line(err) + "\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


# ----------------------------------------------------------------------------------------------
# CLI


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model and masking flags of the commands that pretrain (`pretrain`, `select-vocab`):
    --preset, --set KEY=VALUE, --mask-rate, --mask-isolated and --mask-split, with their
    ModelConfig fields' defaults and comments; `model_from_args` reads them back."""
    add_fields(p, ModelConfig, "preset", choices={"preset": list(PRESETS)})
    p.add_argument("--set", "--config-override", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a model config field, model_type included "
                                             "(repeatable)")
    add_fields(p, ModelConfig, "mask_rate", "mask_isolated")
    split = listed(ModelConfig().mask_split)
    p.add_argument("--mask-split", default=split, metavar="MASK,RANDOM",
                   help=f"{field_help(ModelConfig)['mask_split']} (default {split})")


def model_from_args(args: argparse.Namespace, base: ModelConfig) -> ModelConfig:
    """`base` with the settings of `add_model_args`' flags."""
    return replace(base, preset=args.preset, overrides=parse_overrides(args.overrides),
                   mask_rate=args.mask_rate, mask_split=parse_mask_split(args.mask_split),
                   mask_isolated=args.mask_isolated)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="masked-language-model pretraining (BERT, DeBERTa-v2, ...)")
    p.add_argument("--corpus", required=True, help="a `groverlm corpus` folder")
    p.add_argument("--out", required=True, help="model folder to write")
    add_model_args(p)
    add_fields(p, TrainConfig, "max_steps", "batch_size", "grad_accum", "lr", "warmup_steps",
               "weight_decay", "clip_norm")
    add_fields(p, ModelConfig, "eval_mask_rate")
    add_fields(p, TrainConfig, "bucket", "eval_every", "save_every", "keep_checkpoints",
               "log_every", "seed", "device", "precision", "compile", "threads",
               choices={"precision": PRECISIONS})
    add_fields(p, ModelConfig, "eval_samples", "final_eval_samples", "pad_multiple",
               "unigram_bias")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="discard a previous run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_pretrain_cmd)

    g = sub.add_parser("plot-log", help="plot training runs' learning curves (PNG)")
    g.add_argument("runs", nargs="+", metavar="RUN", help="run folders holding log.jsonl")
    g.add_argument("--out", required=True, help="image to write (.png)")
    g.add_argument("--title", default=None, help="the plot's title (default: none)")
    g.add_argument("--labels", nargs="+", default=None, help="a name per run")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    g.set_defaults(func=_plot_cmd)


def parse_mask_split(text: str) -> tuple[float, float]:
    """--mask-split MASK,RANDOM: the shares of targets shown as [MASK] and as a random token.

    >>> parse_mask_split("0.8,0.1")
    (0.8, 0.1)
    """
    try:
        split = tuple(float(x) for x in text.split(","))
    except ValueError:
        split = ()
    if len(split) != 2:
        raise GroverError(f"--mask-split {text!r}: expected MASK,RANDOM e.g. 0.8,0.2")
    return split  # type: ignore[return-value]


def _pretrain_cmd(args: argparse.Namespace) -> int:
    cfg = model_from_args(args, ModelConfig(eval_samples=args.eval_samples,
                                       final_eval_samples=args.final_eval_samples,
                                       pad_multiple=args.pad_multiple,
                                       unigram_bias=args.unigram_bias,
                                       eval_mask_rate=args.eval_mask_rate))
    tcfg = TrainConfig(max_steps=args.max_steps, batch_size=args.batch_size,
                       grad_accum=args.grad_accum, lr=args.lr, warmup_steps=args.warmup_steps,
                       weight_decay=args.weight_decay, clip_norm=args.clip_norm,
                       eval_every=args.eval_every, save_every=args.save_every,
                       keep_checkpoints=args.keep_checkpoints, log_every=args.log_every,
                       seed=args.seed, device=args.device, precision=args.precision,
                       compile=args.compile, threads=args.threads, bucket=args.bucket)
    s = pretrain(args.corpus, args.out, cfg, tcfg, args.resume, args.overwrite,
                 progress=not args.quiet)
    if _rank() == 0:
        print(f"pretrain: {s['steps']} steps, {s['tokens_seen']:,} tokens "
              f"({s['tokens_per_second']:,.0f}/s); {masked_accuracy_text(s)}, "
              f"loss {s['mlm_loss']:.3f}, perplexity {s['perplexity']:.1f} -> {args.out}")
    return 0


def _plot_cmd(args: argparse.Namespace) -> int:
    png = plot_learning_curve(args.runs, args.out, args.title, args.labels, args.overwrite)
    print(f"plot-log: {png}")
    return 0


if __name__ == "__main__":  # a torchrun rank (launch_distributed)
    # the package's module, not this __main__ copy, so that the run config's ModelConfig is the
    # same class as the one the rank builds
    from groverlm.pretrain import launch_main

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(launch_main(sys.argv[1]))
