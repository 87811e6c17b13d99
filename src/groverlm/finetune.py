"""Fine-tuning stage: a stock sequence classifier (`AutoModelForSequenceClassification`) on a task.

Reads a model folder (ours from `pretrain`, a k-mer model, a fine-tuned model, or a GROVER-format
folder: `BertForMaskedLM` + `PreTrainedTokenizerFast`) and a task folder (ours or GUE format, via
`tasks.load_task`); optionally a saved genome segmentation (`--genome-context`). Writes OUT/:

- `metrics.json` (schema in `groverlm.metrics`): test MCC mean and standard deviation over seeds,
  F1, accuracy, AUROC and the confusion matrix of each seed at its best epoch;
- `model/`: the best seed's fine-tuned model and tokenizer (`save_pretrained`) and a manifest;
- `seed-N/`: each seed's run (`log.jsonl`, `result.json`; `checkpoints/` and `best/` while it runs);
- `settings.json`: the settings the run started with (a rerun resumes only under the same);
- `manifest.json`, written last.

Rules:
- Windows, never truncation: a sequence longer than the model's positions (less [CLS], [SEP]) is cut
  into windows of that many tokens every `stride` tokens, the last one aligned to the sequence's end;
  each window is [CLS] w [SEP] and the sequence's logits are the mean of its windows' logits, in
  training (the loss sees the pooled logits) and in evaluation alike.
- Both strands (`rc`, off by default): every evaluation, dev and test, scores the mean logits of a
  sequence and of its reverse complement; metrics.json records `"rc"`.
- Model selection on dev: the dev set is scored after every epoch; the epoch with the best dev MCC
  (`select`; ties to the earlier epoch) is kept and only its weights are scored on test, once. The
  saved model is the seed with the best dev score.
- Imbalance: with `class_weights` "auto" (default) each sample's loss is weighted by
  n / (n_classes * n_class) (sklearn's "balanced", mean weight 1) when the largest training class
  is more than `imbalance` times the smallest; "on"/"off" force it. MCC is the headline metric.
- Given tokens: a task with a `tokens` column (token-shuffled Prom300 negatives) is fed those tokens,
  never re-tokenized, when the model's vocabulary has the merges_sha256 the task manifest records as
  `tokens_merges_sha256` (re-tokenizing a shuffle merges across its junctions). With another
  vocabulary the sequences are tokenized (logged, and recorded as `given_tokens: false`).
- Genome context (`genome_context`): each window is tokenized as the genome-wide segmentation cut
  it (`tasks.GenomeContextTokenizer`); every sequence must then be the genome at its coordinates.

The loop is `groverlm.train` (one implementation for pretraining, fine-tuning and next-k-mer), with
the `WindowedClassification` objective. A run is resumable: a finished seed (result.json) is
skipped, an unfinished one continues from its last checkpoint.

From scratch (`from_scratch`, `--from-scratch`): the same architecture, tokenizer and settings with
every weight freshly initialised per seed; the record is named MODEL-scratch, marked a baseline and
carries `scratch_of`, so that summaries pair it with its pretrained model: the difference is what
pretraining adds (on the demo's PromScan and CTCF, nothing yet; bench/README.md).

In a run (`run`): reads the pretrained model and the task folders the tasks stage built (those
finetune.tasks names, else all); writes RUN_DIR/finetune/TASK and, with finetune.scratch, the
from-scratch control RUN_DIR/finetune/scratch/TASK.

    groverlm finetune --model runs/demo/pretrain/model --task tasks/promscan --out ft/promscan
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.args import (
    PRECISIONS,
    add_seeds,
    changes_to,
    check_precision,
    check_unique_seeds,
    every_row_as_none,
    stable,
    volatile,
)
from groverlm.batching import window_starts, wrap
from groverlm.context import Context
from groverlm.embed import max_window_tokens, tokenize
from groverlm.errors import GroverError, counted
from groverlm.fasta import reverse_complement
from groverlm.manifest import (
    MODEL_BY_HASH,
    SETTINGS,
    atomic_path,
    check_resume,
    clear_outputs,
    finished,
    keep_part,
    merges_sha256_of,
    model_sha256,
    prepare_out,
    remove_other_parts,
    write_json,
    write_manifest,
    writes_folder,
)
from groverlm.metrics import (
    SELECT,
    THRESHOLDS,
    dev_metrics,
    f1_of,
    make_result,
    scored_metrics,
    warn_one_class,
    write_metrics,
)
from groverlm.models import default_name, load_model, load_tokenizer, save_model, torch_threads
from groverlm.tasks import TASKS, check_built
from groverlm.tasks.common import check_subset_classes, seeded_subset
from groverlm.tasks.context import GenomeContextTokenizer
from groverlm.tasks.gue import load_task

# torch, transformers, scikit-learn and train (torch at its top) load on first use, keeping the CLI
# and config loading light
torch = lazy.module("torch")
F = lazy.module("torch.nn.functional")
hf_logging = lazy.module("transformers.utils.logging")
transformers = lazy.module("transformers")
sklearn_weights = lazy.module("sklearn.utils.class_weight")
training = lazy.module("groverlm.train")
pretrain = lazy.module("groverlm.pretrain")  # the model check of preflight (a stage module)

log = logging.getLogger(__name__)

CLASS_WEIGHTS = ("auto", "on", "off")
MAX_CONFUSION = 32  # more classes than this: the confusion matrix is left out of metrics.json
RESULT = "result.json"
SCRATCH = "-scratch"  # the model name of a from-scratch control: its pretrained model's + this
BEST = "best"


@dataclass(frozen=True)
class ClassifierConfig:
    """How a classifier is fine-tuned and selected (optimiser details are `train.TrainConfig`)."""

    epochs: int = 3  # passes over the training split; dev is scored after each
    lr: float | None = None  # peak learning rate; None: by the model's width (`learning_rate`)
    batch_size: int = 32  # sequences per step (their windows run together)
    seeds: tuple[int, ...] = (0, 1, 2)  # head initialisation, data order and dropout per run
    # auto | on | off: balanced per-sample loss weights (YAML 1.1 reads a bare on/off, or yes/no,
    # as true/false: taken as on/off, what it says)
    class_weights: str | bool = "auto"
    imbalance: float = 1.5  # auto: weights on when largest / smallest class count exceeds this
    select: str = "mcc"  # dev metric that picks the epoch and the saved seed
    threshold: str = "argmax"  # binary tasks: "argmax" predicts the larger logit (GROVER, GUE);
    #                            "dev" the MCC-best cut on dev's P(class 1) (metrics.mcc_threshold)
    max_tokens: int | None = None  # window length in tokens; None: the model's positions - 2
    stride: int | None = None  # tokens between window starts; None: max_tokens (no overlap)
    max_train: int | None = None  # train on a seeded subset of this many sequences (speed; 0: all)
    warmup_ratio: float = 0.06  # linear warmup share of the steps
    weight_decay: float = 0.01
    eval_batch_size: int = volatile(64)  # sequences per evaluation batch
    device: str = volatile("auto")  # auto: cuda when available, else cpu
    precision: str = "auto"  # auto: bf16 on cuda, fp32 on cpu
    threads: int | None = volatile(None)  # torch CPU threads (None: torch's default)
    rc: bool = False  # evaluation (dev and test) averages the logits of each sequence and of its
    #                   reverse complement (decoded, complemented and tokenized again)
    from_scratch: bool = False  # the control: the model's architecture and tokenizer, its weights
    #                             freshly initialised per seed, not pretrained (a baseline record)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise GroverError("--epochs and --batch-size must be at least 1")
        if self.lr is not None and self.lr <= 0:
            raise GroverError(f"--lr must be positive, got {self.lr}")
        if (not isinstance(self.seeds, (list, tuple)) or not self.seeds
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in self.seeds)):
            # a run's YAML lists seeds (seeds: [0, 1, 2]), as every --seeds does (0,1,2)
            raise GroverError(f"seeds must be a non-empty list of integers such as [0, 1, 2], got "
                              f"{self.seeds!r}")
        object.__setattr__(self, "seeds", tuple(self.seeds))
        check_unique_seeds(self.seeds)
        if isinstance(self.class_weights, bool):  # YAML 1.1 reads a bare on/off as a boolean
            object.__setattr__(self, "class_weights", "on" if self.class_weights else "off")
        if self.class_weights not in CLASS_WEIGHTS:
            raise GroverError(f"--class-weights must be one of {', '.join(CLASS_WEIGHTS)}")
        if self.select not in SELECT:
            raise GroverError(f"select must be one of {', '.join(SELECT)}")
        if self.threshold not in THRESHOLDS:
            raise GroverError(f"--threshold must be one of {', '.join(THRESHOLDS)}")
        check_precision(self.precision)
        if self.max_tokens is not None and self.max_tokens < 1:
            raise GroverError("--max-tokens must be at least 1")
        if self.stride is not None and (self.stride < 1 or (
                self.max_tokens is not None and self.stride > self.max_tokens)):
            raise GroverError("--stride must be between 1 and the window length")
        object.__setattr__(self, "max_train", every_row_as_none(self.max_train))
        if not 0 <= self.warmup_ratio < 1:
            raise GroverError("warmup_ratio must be in [0, 1)")
        if self.threads is not None and self.threads < 1:
            raise GroverError(f"--threads must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning stage: the pretrained BERT as a classifier on every task built."""

    tasks: tuple[str, ...] | None = None  # tasks fine-tuned (null: every task the tasks stage built)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)  # epochs, lr, seeds, ...
    per_task: dict[str, dict[str, Any]] = changes_to("classifier")  # a task's own classifier
    #   settings on top of `classifier`, e.g. {ctcf: {max_train: null}}
    scratch: bool = False  # also each task from scratch (same settings, fresh weights) into
    #   finetune/scratch/TASK: the control that says what pretraining adds

    def __post_init__(self):
        bad = [t for t in (*(self.tasks or ()), *self.per_task) if t not in TASKS]
        if bad:
            raise ValueError(f"tasks must be among {', '.join(TASKS)}, got {list(bad)}")
        names = {f.name for f in fields(ClassifierConfig)}
        for task, changes in self.per_task.items():
            unknown = sorted(set(changes) - names)
            if unknown:
                raise ValueError(f"per_task.{task}: {', '.join(unknown)} not a classifier setting")
            self.classifier_for(task)  # checks the values

    def classifier_for(self, task: str) -> ClassifierConfig:
        """`classifier` with `per_task[task]`'s changes."""
        changes = {k: tuple(v) if isinstance(v, list) else v
                   for k, v in self.per_task.get(task, {}).items()}
        return replace(self.classifier, **changes)


# ----------------------------------------------------------------------------------------------
# Windows and batches


def pool_windows(logits, owner, n: int):
    """Mean of window logits per sequence: logits (W, L), owner (W,) sequence index -> (n, L)."""
    sums = torch.zeros((n, logits.shape[-1]), dtype=logits.dtype, device=logits.device)
    sums.index_add_(0, owner, logits)  # (n, L)
    counts = torch.bincount(owner, minlength=n).clamp(min=1).to(logits.dtype)  # (n,)
    return sums / counts[:, None]


class WindowedData:
    """Sequences of token ids as windowed classification batches (a `train.TrainData`).

    ids: per sequence its token ids without special tokens; labels (N,) int64; weights (N,) float or
    None. A batch of B sequences holds their W windows: input_ids and attention_mask (W, T), owner
    (W,) (the batch row each window belongs to), labels (B,) and, with weights, sample_weight (B,).
    """

    def __init__(self, ids: Sequence[np.ndarray], labels: np.ndarray, tokenizer, size: int,
                 stride: int, weights: np.ndarray | None = None, pad_multiple: int = 8):
        self.windows = [[(s, min(s + size, len(x))) for s in window_starts(len(x), size, stride)]
                        for x in ids]
        self.ids = [np.asarray(x, dtype=np.int64) for x in ids]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.cls, self.sep, self.pad = (tokenizer.cls_token_id, tokenizer.sep_token_id,
                                        tokenizer.pad_token_id)
        self.pad_multiple = pad_multiple
        self.max_width = size + 2  # a window and its specials fill the model's positions at most
        # (N,) tokens through the model per sequence: batches group similar lengths
        self.lengths = np.array([sum(b - a + 2 for a, b in w) for w in self.windows], np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def collate(self, indices, generator=None) -> dict[str, Any]:
        pieces, owner = [], []
        for row, i in enumerate(indices):
            x = self.ids[int(i)]
            for a, b in self.windows[int(i)]:
                pieces.append(x[a:b])
                owner.append(row)
        ids, mask = wrap(pieces, self.cls, self.sep, self.pad, self.pad_multiple,
                         self.max_width)  # (W, T) each
        idx = np.asarray(indices, dtype=np.int64)
        batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                 "owner": torch.tensor(owner, dtype=torch.int64),
                 "labels": torch.from_numpy(self.labels[idx])}
        if self.weights is not None:
            batch["sample_weight"] = torch.from_numpy(self.weights[idx])
        return batch


def _objective():
    """The `WindowedClassification` class (defined when called: a torch.nn.Module subclass at module
    level would import torch with this module)."""

    class WindowedClassification(torch.nn.Module):
        """Cross-entropy of the window-pooled logits, per-sample weighted, summed over sequences."""

        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        @staticmethod
        def count(batch: dict[str, Any]) -> int:
            return int(batch["labels"].shape[0])

        def forward(self, input_ids, attention_mask, owner, labels, sample_weight=None):
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits  # (W, L)
            pooled = pool_windows(logits.float(), owner, labels.shape[0])  # (B, L)
            loss = F.cross_entropy(pooled, labels, reduction="none")  # (B,)
            if sample_weight is not None:
                loss = loss * sample_weight
            return loss.sum()

    return WindowedClassification


def predict(model, data: WindowedData, batch_size: int, amp=None,
            rc_data: WindowedData | None = None) -> np.ndarray:
    """(N, L) float32 pooled logits of every sequence of `data` (model in eval mode, no grad);
    with `rc_data` (the same sequences' reverse complements) the mean of both strands' logits."""
    device = next(model.parameters()).device
    order = np.argsort(data.lengths, kind="stable")  # similar lengths together: little padding
    out = np.zeros((len(data), model.config.num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            b = data.collate(idx)
            with amp() if amp is not None else contextlib.nullcontext():
                logits = model(input_ids=b["input_ids"].to(device),
                               attention_mask=b["attention_mask"].to(device)).logits  # (W, L)
            pooled = pool_windows(logits.float(), b["owner"].to(device), len(idx))  # (B, L)
            out[idx] = pooled.cpu().numpy()
    model.train(was_training)
    if rc_data is not None:
        out = (out + predict(model, rc_data, batch_size, amp)) / 2
    return out


def score(logits: np.ndarray, labels: np.ndarray, rule: str = "argmax",
          cut: float | None = None, choose_cut: bool = False) -> dict[str, Any]:
    """Metrics of pooled logits (N, L) under a `metrics.THRESHOLDS` rule: on dev (`choose_cut`)
    the binary cut is chosen on these samples; on test, dev's `cut` is applied. The confusion
    matrix is dropped for more than MAX_CONFUSION classes (4**k next-k-mer labels)."""
    z = logits - logits.max(1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(1, keepdims=True)
    n_labels = logits.shape[1]
    if choose_cut:
        m = dev_metrics(labels, probs, list(range(n_labels)), rule)
    else:
        m = scored_metrics(labels, probs, list(range(n_labels)), rule, cut)
    if n_labels > MAX_CONFUSION:
        m["confusion"] = None
        m["labels"] = f"0..{n_labels - 1}"
    return m


def use_class_weights(labels: np.ndarray, cfg: ClassifierConfig) -> bool:
    if cfg.class_weights != "auto":
        return cfg.class_weights == "on"
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    return bool(counts.max() > cfg.imbalance * counts.min())


# ----------------------------------------------------------------------------------------------
# Vocabulary identity and tokenization


def given_tokens_apply(task, model_dir: str | Path) -> bool:
    """Whether the task's `tokens` column is to be fed to this model (same BPE merges)."""
    if any(task.splits[s].tokens is None for s in task.splits):
        return False
    theirs = task.manifest.get("tokens_merges_sha256")
    mine = merges_sha256_of(model_dir)
    if theirs and mine == theirs:
        log.info("feeding the task's given tokens (same vocabulary, merges %s)", mine[:12])
        return True
    log.warning("the task's tokens column was made with another (or an unknown) vocabulary "
                "(merges %s vs the model's %s): tokenizing its sequences instead",
                str(theirs)[:12], str(mine)[:12])
    return False


def token_ids(tokenizer, sequences: Sequence[str] | None = None,
              tokens: Sequence[list[str]] | None = None) -> list[np.ndarray]:
    """Token ids (no special tokens) of sequences, or of given token strings."""
    if tokens is not None:
        vocab = tokenizer.get_vocab()
        try:
            return [np.array([vocab[t] for t in toks], dtype=np.int64) for toks in tokens]
        except KeyError as err:
            raise GroverError(f"given token {err.args[0]!r} is not in the model's vocabulary"
                              ) from None

    return [np.asarray(x, dtype=np.int64) for x in tokenize(tokenizer, list(sequences or []))]


def reverse_complement_ids(tokenizer, ids: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Token ids of each tokenized sequence's reverse complement: decoded (a special token such as
    [UNK] counts as one N), reverse complemented and tokenized again."""
    special = set(tokenizer.all_special_ids)
    seqs = ["".join("N" if i in special else t for i, t in
                    zip(x.tolist(), tokenizer.convert_ids_to_tokens(x.tolist()), strict=True))
            for x in ids]
    return token_ids(tokenizer, [reverse_complement(s) for s in seqs])


def context_token_ids(ctx, split, name: str) -> list[np.ndarray]:
    """Genome-context token ids of a split; every sequence must be the genome at its coordinates."""
    if split.coords is None:
        raise GroverError(f"--genome-context needs coordinates (chrom,start,end,strand) in the "
                          f"{name} split")
    out, bad = [], 0
    c = split.coords
    for i, seq in enumerate(split.sequences):
        ids = ctx.encode(c["chrom"][i], c["start"][i], c["end"][i], c["strand"][i])
        if ctx.decode(ids) != seq:
            bad += 1
        out.append(np.asarray(ids, dtype=np.int64))
    if bad:
        raise GroverError(f"--genome-context: {bad} of {len(out)} {name} sequences are not the "
                          "genome at their coordinates (synthetic negatives?); genome-context "
                          "tokenization only applies to tasks of genomic windows")
    return out


@dataclass
class Encoded:
    """One split ready for the model: token ids per sequence (no special tokens) and label ids."""

    ids: list[np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.labels.astype(np.int64).tobytes())
        for x in self.ids:
            h.update(np.int64(len(x)).tobytes() + np.asarray(x, np.int64).tobytes())
        return h.hexdigest()

    def subset(self, n: int | None, seed: int) -> Encoded:
        """A seeded random subset of n sequences (all when n is None or larger)."""
        if n is None or n >= len(self):
            return self
        keep = seeded_subset(len(self), n, [seed, 0x5EB])
        return Encoded([self.ids[i] for i in keep], self.labels[keep])


# ----------------------------------------------------------------------------------------------
# Training


def load_classifier(model_dir: str | Path, num_labels: int, seed: int,
                    label_names: Sequence[str] | None = None, from_scratch: bool = False):
    """The folder's stock `AutoModelForSequenceClassification` (BERT, DeBERTa-v2, ...), its new head
    initialised from `seed`; `from_scratch`: the folder's architecture with every weight initialised
    from `seed` instead."""
    names = list(label_names) if label_names and len(label_names) == num_labels else None
    kwargs: dict[str, Any] = {"num_labels": num_labels, "ignore_mismatched_sizes": True,
                              "problem_type": "single_label_classification"}
    if names:
        kwargs["id2label"] = dict(enumerate(names))
        kwargs["label2id"] = {n: i for i, n in enumerate(names)}
    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # "newly initialized head" is expected here
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = load_model(model_dir, "classification", **kwargs)
            if from_scratch:
                # from_config draws every weight as the class initialises it, under the same seed
                model = transformers.AutoModelForSequenceClassification.from_config(model.config)
            return model
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def set_prior_bias(model, labels: np.ndarray, num_labels: int) -> None:
    """Start the head's output bias at the log class frequencies of the training labels, so that
    the untrained classifier predicts the most frequent class (as `pretrain.set_unigram_bias` does
    for tokens). Without it a head over many classes (next-k-mer: 256 at k = 4) spends a short run
    learning the prior and scored below the most frequent k-mer. Unweighted losses only: with
    balanced weights the prior the loss sees is uniform, the zero bias it starts with."""
    head = [m for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m.out_features == num_labels][-1]
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    logp = np.log(np.where(counts > 0, counts, 0.5) / counts.sum())
    with torch.no_grad():
        head.bias.copy_(torch.from_numpy(logp - logp.mean()).to(head.bias.dtype))


def window_size(model, tokenizer, cfg: ClassifierConfig) -> tuple[int, int]:
    """(window tokens, stride) for this model: its positions less [CLS] and [SEP] by default."""
    size = max_window_tokens(model, tokenizer, cfg.max_tokens)
    stride = cfg.stride or size
    if stride > size:
        raise GroverError(f"--stride {stride} exceeds the window of {size} tokens")
    return size, stride


def finetune_seed(model_dir: str | Path, tokenizer, train: Encoded, dev: Encoded, test: Encoded,
                  num_labels: int, cfg: ClassifierConfig, seed: int, out: str | Path,
                  label_names: Sequence[str] | None = None, progress: bool = True,
                  model_hash: str | None = None) -> dict[str, Any]:
    """One seed: train, keep the best dev epoch (weights in out/best), score it on test.
    `model_hash`: the model's `model_sha256`, when the caller has it (a folder without our
    manifest is hashed whole: once per fine-tuning, not once per seed).

    Returns {"seed", "dev", "test", "best_epoch", "dev_curve", ...}, also written to out/result.json.
    A finished seed (result.json present) is read back, not rerun.
    """
    out = Path(out)
    if (out / RESULT).exists():
        return json.loads((out / RESULT).read_text())
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_classifier(model_dir, num_labels, seed, label_names, cfg.from_scratch)
    size, stride = window_size(model, tokenizer, cfg)
    weighted = use_class_weights(train.labels, cfg)
    # sklearn's "balanced": n / (classes present * n_class) per sample, mean 1
    weights = sklearn_weights.compute_sample_weight("balanced", train.labels) if weighted else None
    if not weighted:
        set_prior_bias(model, train.labels, num_labels)
    data = WindowedData(train.ids, train.labels, tokenizer, size, stride, weights)
    dev_data = WindowedData(dev.ids, dev.labels, tokenizer, size, stride)
    dev_rc, test_rc = (WindowedData(reverse_complement_ids(tokenizer, e.ids), e.labels, tokenizer,
                                    size, stride) if cfg.rc else None for e in (dev, test))
    per_epoch = len(training.epoch_batches(data.lengths, cfg.batch_size, 0, seed))
    steps = cfg.epochs * per_epoch
    lr = learning_rate(cfg, model)
    tcfg = training.TrainConfig(max_steps=steps, batch_size=cfg.batch_size, lr=lr,
                                warmup_steps=int(cfg.warmup_ratio * steps),
                                weight_decay=cfg.weight_decay, adam_betas=(0.9, 0.999), adam_eps=1e-8,
                                eval_every=per_epoch, save_every=per_epoch, keep_checkpoints=1,
                                log_every=min(10, per_epoch), seed=seed, device=cfg.device,
                                precision=cfg.precision, threads=cfg.threads)
    best_path = out / "best.json"
    best = None  # the best epoch so far: kept on disk (best.json + best/) for a restart
    if best_path.exists() and (out / BEST / "config.json").exists():
        best = json.loads(best_path.read_text())
    done = [_resumed_epochs(out, per_epoch)]  # epochs evaluated so far (restarts included)

    def evaluate(m, amp, final: bool) -> dict[str, Any]:
        nonlocal best
        done[0] = min(done[0] + 1, cfg.epochs)  # min: never count past the last epoch
        metrics = score(predict(m, dev_data, cfg.eval_batch_size, amp, dev_rc), dev.labels,
                        cfg.threshold, choose_cut=True)
        value = metrics[cfg.select] if metrics[cfg.select] is not None else -np.inf
        if best is None or value > best["value"]:
            with atomic_path(out / BEST) as tmp:
                tmp.mkdir()
                save_model(m, tokenizer, tmp)
            best = {"epoch": done[0], "value": float(value), "dev": metrics}
            write_json(best_path, best)
        return {"epoch": done[0], **{f"dev_{k}": metrics[k]
                                     for k in ("mcc", "accuracy", "f1", "auroc")}}

    run_config = {"model": str(model_dir),
                  "model_sha256": model_hash if model_hash is not None else model_sha256(model_dir),
                  "num_labels": num_labels, "train": train.fingerprint(),
                  "dev": dev.fingerprint(), "window": [size, stride], "class_weights": weighted}
    res = training.train(model, data, _objective(), tcfg, out, evaluate, tokenizer, resume=True,
                         run_config=run_config, progress=progress, by_hash=MODEL_BY_HASH)
    assert best is not None, "the training loop evaluated no epoch"
    model = load_classifier(out / BEST, num_labels, seed, label_names)
    test_data = WindowedData(test.ids, test.labels, tokenizer, size, stride)
    device = training.resolve_device(tcfg)
    model.to(device)
    test_metrics = score(predict(model, test_data, cfg.eval_batch_size,
                                 lambda: training.autocast(device, cfg.precision), test_rc), test.labels,
                         cfg.threshold, best["dev"].get("threshold"))
    result = {"seed": seed, "dev": best["dev"], "test": test_metrics, "best_epoch": best["epoch"],
              "epochs": cfg.epochs, "steps": res.step, "lr": lr, "class_weights": weighted,
              "window_tokens": size, "stride": stride,
              "windows_per_sequence": float(np.mean([len(w) for w in data.windows])),
              "dev_curve": dev_curve(out),
              "seconds": round(time.perf_counter() - t0, 1)}
    write_json(out / RESULT, result)
    shutil.rmtree(out / training.CHECKPOINTS, ignore_errors=True)
    return result


# Peak fine-tuning rates by model width. BERT-base and GROVER (hidden size 768) fine-tune at
# 2e-5..5e-5; a small model learns little there. The demo's model (hidden size 128) on a GUE-format
# copy of its Prom300 task, 3 seeds each: test MCC 0.36 at 5e-5 against 0.82 at 5e-4.
BASE_WIDTH, BASE_LR, SMALL_LR = 768, 5e-5, 5e-4


def learning_rate(cfg: ClassifierConfig, model) -> float:
    """cfg.lr, or when it is None 5e-5 for a model of hidden size 768 or more, else 5e-4."""
    if cfg.lr is not None:
        return cfg.lr
    return BASE_LR if model.config.hidden_size >= BASE_WIDTH else SMALL_LR


def dev_curve(run: Path) -> list[dict[str, Any]]:
    """Dev scores after each epoch, from a seed's log.jsonl."""
    seen: dict[int, dict[str, Any]] = {}
    for r in training.read_log(run):
        if r.get("kind") == "eval":
            seen[r["epoch"]] = {"epoch": r["epoch"], "step": r["step"],
                                **{k[4:]: r[k] for k in r if k.startswith("dev_")}}
    return [seen[e] for e in sorted(seen)]


def _resumed_epochs(out: Path, per_epoch: int) -> int:
    """Epochs finished by an interrupted run of this seed (from its latest checkpoint)."""
    ck = training.latest_checkpoint(out)
    return 0 if ck is None else int(ck.name.split("-")[1]) // per_epoch


def finetune_splits(model_dir: str | Path, train: Encoded, dev: Encoded, test: Encoded,
                    num_labels: int, cfg: ClassifierConfig, out: str | Path, task: str,
                    model_name: str, label_names: Sequence[str] | None = None,
                    save: bool = True, progress: bool = True, **params: Any) -> dict[str, Any]:
    """Fine-tune on encoded splits once per seed; returns the result record (metrics schema).

    With `save`, the best seed's weights go to out/model (save_pretrained, with the tokenizer and a
    manifest recording the vocabulary's merges). Per-seed folders keep their log and result.
    """
    out = Path(out)
    tokenizer = load_tokenizer(model_dir, "model")
    if len(train) < 2 or len(dev) < 1 or len(test) < 1:
        raise GroverError(f"need at least 2 train, 1 dev and 1 test sequences, got {len(train)}, "
                          f"{len(dev)}, {len(test)}")
    if int(max(train.labels.max(), dev.labels.max(), test.labels.max())) >= num_labels:
        raise GroverError(f"a label id is not below num_labels={num_labels}")
    # what only the model can judge fails before check_resume records the settings: a corrected
    # rerun would otherwise be refused as a resume under other settings
    try:
        config = transformers.AutoConfig.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        raise GroverError(f"cannot load the model's config: {err}", model_dir) from None
    max_window_tokens(config, tokenizer, cfg.max_tokens)
    sub = train.subset(cfg.max_train, cfg.seeds[0])
    if len(sub) < len(train):
        check_subset_classes(train.labels, sub.labels, cfg.max_train)
    model_hash = model_sha256(model_dir)
    check_resume(out, {"model": str(model_dir), "model_sha256": model_hash,
                       "num_labels": num_labels, "task": task, "config": stable(cfg),
                       "data": [sub.fingerprint(), dev.fingerprint(), test.fingerprint()]},
                 by_hash=MODEL_BY_HASH)
    if len(sub) < len(train):
        log.info("training on a seeded subset of %d of %d sequences", len(sub), len(train))
    per_seed = []
    for seed in cfg.seeds:
        with torch_threads(cfg.threads):
            r = finetune_seed(model_dir, tokenizer, sub, dev, test, num_labels, cfg, seed,
                              out / f"seed-{seed}", label_names, progress, model_hash)
        # the model named: a run logs each task twice, pretrained and from scratch
        log.info("%s on %s, seed %d: best epoch %d, dev %s %.4f, test MCC %.4f, accuracy %.4f",
                 model_name, task, seed, r["best_epoch"], "MCC" if cfg.select == "mcc" else cfg.select,
                 r["dev"][cfg.select] or 0.0,
                 r["test"]["mcc"] or 0.0, r["test"]["accuracy"] or 0.0)
        per_seed.append(r)
    best_seed = max(per_seed, key=lambda r: (r["dev"][cfg.select] or -np.inf))["seed"]
    if save:
        save_best(model_dir, out / f"seed-{best_seed}" / BEST, out / "model", best_seed)
    for r in per_seed:  # the weights are in out/model (or not wanted); the scores in result.json
        shutil.rmtree(out / f"seed-{r['seed']}" / BEST, ignore_errors=True)
        (out / f"seed-{r['seed']}" / "best.json").unlink(missing_ok=True)
    record = make_result(task, model_name, per_seed, {
        **{k: v for k, v in stable(cfg).items() if k != "seeds"},  # seeds: in per_seed
        "train_rows": len(sub), "train_rows_available": len(train), "best_seed": best_seed,
        "source_model": str(model_dir), **params}, baseline=cfg.from_scratch)
    return record


def save_best(model_dir: str | Path, best: Path, dest: Path, seed: int) -> None:
    """Copy a seed's best weights to `dest` (atomically) with a manifest naming the vocabulary."""
    if not best.exists():
        if finished(dest):
            return  # copied by an earlier, interrupted run
        raise GroverError("the best weights of the selected seed are missing", best)
    with atomic_path(dest) as tmp:
        shutil.copytree(best, tmp)
        write_manifest(tmp, "finetune-model", {"source_model": str(model_dir), "seed": seed},
                       [], seed=seed, merges_sha256=merges_sha256_of(model_dir))


# ----------------------------------------------------------------------------------------------
# The stage


def encode_task(task, model_dir: str | Path, tokenizer, genome_context: str | Path | None = None
                ) -> tuple[dict[str, Encoded], dict[str, Any]]:
    """Token ids of every split (given tokens, genome context or plain tokenization) and a
    description of how they were made."""
    info: dict[str, Any] = {"tokenization": "sequence"}
    if genome_context is not None:
        ctx = GenomeContextTokenizer(genome_context, model_dir)
        mine = merges_sha256_of(model_dir)
        if mine and mine != ctx.genome.merges_sha256:
            raise GroverError(f"was made with other merges than the model's vocabulary "
                              f"({ctx.genome.merges_sha256[:12]} vs {mine[:12]})", genome_context)
        enc = {s: Encoded(context_token_ids(ctx, task.splits[s], s), task.splits[s].labels)
               for s in task.splits}
        info = {"tokenization": "genome-context", "genome_context": str(genome_context)}
    elif given_tokens_apply(task, model_dir):
        enc = {s: Encoded(token_ids(tokenizer, tokens=task.splits[s].tokens),
                          task.splits[s].labels) for s in task.splits}
        info = {"tokenization": "given-tokens"}
    else:
        enc = {s: Encoded(token_ids(tokenizer, task.splits[s].sequences), task.splits[s].labels)
               for s in task.splits}
    info["given_tokens"] = info["tokenization"] == "given-tokens"
    info["mean_tokens"] = float(np.mean([len(x) for x in enc["train"].ids]))
    return enc, info


def made_from(cfg: ClassifierConfig, model_dir: str | Path, task_dir: str | Path, name: str,
              genome_context: str | Path | None = None) -> dict[str, Any]:
    """The config a fine-tuning's manifest records (`name`: the record's model name, -scratch
    included), against which a run checks a finished one before keeping it (`run`)."""
    return {**asdict(cfg), "model": str(model_dir), "task_dir": str(task_dir), "name": name,
            "genome_context": str(genome_context) if genome_context else None}


@writes_folder
def finetune_task(model_dir: str | Path, task_dir: str | Path, out: str | Path,
                  cfg: ClassifierConfig, genome_context: str | Path | None = None,
                  name: str | None = None, overwrite: bool = False, progress: bool = True
                  ) -> dict[str, Any]:
    """`groverlm finetune`: fine-tune on a task folder, write metrics.json, model/ and manifest.json;
    returns the result record."""
    t0 = time.perf_counter()
    task = load_task(task_dir)
    tokenizer = load_tokenizer(model_dir, "model")
    out = Path(out)
    if overwrite and out.exists():
        clear_outputs(out, [*out.glob("seed-*"), out / "model", out / SETTINGS])
    out = prepare_out(out, overwrite)
    enc, info = encode_task(task, model_dir, tokenizer, genome_context)
    name = name or default_name(model_dir)
    if cfg.from_scratch:  # the control of `name`: paired with it in every summary
        info["scratch_of"] = name
        name = f"{name}{SCRATCH}"
    record = finetune_splits(model_dir, enc["train"], enc["dev"], enc["test"], task.num_labels,
                             cfg, out, task.name, name, task.label_names(), progress=progress,
                             **info)
    warn_one_class(record)
    write_metrics(out, task.name, [record], task_dir=str(task_dir), label_map=task.label_map,
                  rc=cfg.rc)
    write_manifest(out, "finetune", made_from(cfg, model_dir, task_dir, name, genome_context),
                   [model_dir, task_dir, *([genome_context] if genome_context else [])],
                   seed=cfg.seeds[0], seconds=round(time.perf_counter() - t0, 1),
                   sizes={s: len(task.splits[s]) for s in task.splits},
                   merges_sha256=merges_sha256_of(model_dir), **info,
                   summary={"mcc_mean": record["mcc_mean"], "mcc_std": record["mcc_std"]})
    return record


# ----------------------------------------------------------------------------------------------
# CLI


def check_window_settings(c: ClassifierConfig, key: Callable[[str], str], model_config: Any,
                          sample_tokens: int | None) -> None:
    """A run's check, before any stage runs, that a classifier's windows (`c.max_tokens`,
    `c.stride`; `key(field)`: the config key that set it) fit the model it fine-tunes:
    `model_config` (its built config, `pretrain.check_model`)'s positions and, where known,
    pretraining's longest sample, `sample_tokens` (its tokenizer's model_max_length less
    [CLS]/[SEP]). Else they fail after pretraining, naming --max-tokens or --stride."""
    limit = model_config.max_position_embeddings - 2
    what = "its positions"
    if sample_tokens is not None and sample_tokens < limit:
        limit, what = sample_tokens, "its positions and corpus.max_tokens"
    if c.max_tokens is not None and c.max_tokens > limit:
        raise GroverError(f"{key('max_tokens')} {c.max_tokens} exceeds the pretrained model's "
                          f"{limit} tokens ({what})")
    if c.stride is not None and c.stride > (c.max_tokens or limit):
        raise GroverError(f"{key('stride')} {c.stride} exceeds the window of "
                          f"{c.max_tokens or limit} tokens")


def check_pretrained_window(c: ClassifierConfig, config: Any, key: Callable[[str], str]) -> None:
    """`check_window_settings` against the run's pretrained model (pretrain.model, samples of up
    to corpus.max_tokens)."""
    if c.max_tokens is None and c.stride is None:
        return  # the model's own window: nothing to check (and transformers stays unloaded)
    check_window_settings(c, key, pretrain.check_model(config.stage("pretrain").model,
                                                       "pretrain.model"),
                          config.stage("corpus").max_tokens)


def preflight(cfg: Any, config: Any) -> None:
    """The runner's check, before any stage runs, that the tasks named are among those built and
    that each task's windows fit the pretrained model (`check_pretrained_window`)."""
    check_built("finetune", cfg.tasks, config)
    for task in cfg.tasks or config.stage("tasks").build:

        def key(name: str, task: str = task) -> str:
            given = name in cfg.per_task.get(task, {})
            return f"finetune.per_task.{task}.{name}" if given else f"finetune.classifier.{name}"

        check_pretrained_window(cfg.classifier_for(task), config, key)


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Fine-tuning stage: a sequence classifier from the pretrained model, per task. A finished
    one made from the same model, task folder and settings is kept (the runner hands this stage
    its folder whatever changed: runner.Stage.checks_parts); one no longer asked for is removed."""
    summary: dict[str, dict[str, float]] = {}
    name = ctx.model_name()
    runs = []
    for task_dir in ctx.task_dirs("finetune", cfg.tasks):
        task_cfg = cfg.classifier_for(task_dir.name)
        runs.append((task_dir, ctx.out / task_dir.name, task_cfg, name))
        if cfg.scratch:  # "scratch" is no task name (tasks.TASKS)
            runs.append((task_dir, ctx.out / "scratch" / task_dir.name,
                         replace(task_cfg, from_scratch=True), name + SCRATCH))
    remove_other_parts(ctx.out, [out for _, out, _, _ in runs])
    for task_dir, out, c, model_name in runs:
        if not keep_part(out, made_from(c, ctx.model, task_dir, model_name),
                         [ctx.model, task_dir], c):
            finetune_task(ctx.model, task_dir, out, c, name=name, progress=ctx.progress)
        r = json.loads((out / "manifest.json").read_text())["summary"]
        summary.setdefault(task_dir.name, {})[model_name] = r["mcc_mean"]
    return summary


def add_train_args(p: argparse.ArgumentParser, d: ClassifierConfig | None = None,
                   max_train: bool = True) -> None:
    """Fine-tuning options shared by `finetune`, `nextkmer` and `select-vocab`, their defaults those
    of `d` (default: ClassifierConfig()), so that the flags and YAML agree; `--seeds 0,1,2` lists
    the seeds, as YAML does. With `max_train` False, --max-train is left out of --help (next-k-mer
    refuses it: nextkmer.check_no_max_train) but still parsed, so that one given as to `finetune`
    gets the message naming the setting to use instead."""
    d = d or ClassifierConfig()
    # finetune selects and summarises on MCC, next-k-mer on accuracy: the help names neither
    add_seeds(p, d.seeds, "one fine-tuning per seed, the test figures' mean ± std over them")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"passes over train (default "
                                                                 f"{d.epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default " + (
        f"{d.lr:g})" if d.lr is not None else f"{BASE_LR:g} for a model of hidden size "
        f"{BASE_WIDTH} or more, else {SMALL_LR:g})"))
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"sequences per step (default {d.batch_size})")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="window length in tokens (default: the model's positions - 2)")
    p.add_argument("--stride", type=int, default=None,
                   help="tokens between window starts (default: the window length)")
    p.add_argument("--max-train", type=int, default=None, metavar="N",
                   help="train on a seeded random subset of N sequences; 0: all (default: all)"
                   if max_train
                   else argparse.SUPPRESS)
    p.add_argument("--device", default=d.device, help=f"auto (the GPU when torch sees one), cpu, "
                   f"cuda or cuda:N (default {d.device})")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help=f"auto: bf16 on a GPU, fp32 on the CPU (default {d.precision})")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="torch CPU threads (default: torch's, one per core)")
    p.add_argument("--overwrite", action="store_true", help="discard a previous run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune a BERT classifier on a task folder")
    p.add_argument("--model", required=True, help="model folder or Hub id (ours, k-mer, GROVER)")
    p.add_argument("--task", required=True, help="task folder (train/dev/test.csv; GUE works)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--class-weights", choices=CLASS_WEIGHTS, default=ClassifierConfig.class_weights,
                   help="balanced loss weights (default auto: on when classes are unbalanced)")
    p.add_argument("--threshold", choices=THRESHOLDS, default=ClassifierConfig.threshold,
                   help="binary tasks: predict the larger logit (argmax, default) or class 1 above "
                        "the cut on P(class 1) with the best dev MCC (dev); both MCCs are saved")
    p.add_argument("--genome-context", default=None, metavar="TOKENS_DIR",
                   help="tokenize windows as this saved genome segmentation cut them")
    p.add_argument("--name", default=None, help="model name in metrics.json")
    p.add_argument("--rc", action="store_true", help="evaluate with both strands: the mean "
                   "logits of each sequence and its reverse complement")
    p.add_argument("--from-scratch", action="store_true",
                   help="the control: the model's architecture and tokenizer with fresh weights "
                        "(what pretraining adds is the difference; named NAME-scratch, a baseline)")
    add_train_args(p)
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    cfg = ClassifierConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                           seeds=tuple(args.seeds),
                           class_weights=args.class_weights, max_tokens=args.max_tokens,
                           stride=args.stride, max_train=args.max_train, device=args.device,
                           precision=args.precision, threads=args.threads, threshold=args.threshold,
                           rc=args.rc, from_scratch=args.from_scratch)
    r = finetune_task(args.model, args.task, args.out, cfg, args.genome_context, args.name,
                      args.overwrite, progress=not args.quiet)
    t = r["test"]
    # both cuts of seed 0's test predictions (the mean above is under the --threshold rule)
    cut = "" if t.get("mcc_dev_cut") is None else (
        f"MCC {t['mcc_argmax']:.4f} at argmax, {t['mcc_dev_cut']:.4f} at dev's cut "
        f"{t['threshold']:.3f}, ")
    print(f"finetune {r['task']}: test MCC {r['mcc_mean']:.4f} ± {r['mcc_std']:.4f} over "
          f"{counted(len(r['seeds']), 'seed')}; seed {r['seeds'][0]}: {cut}F1{f1_of(args.out)} "
          f"{t['f1']:.4f}, accuracy "
          f"{t['accuracy']:.4f}, AUROC {t['auroc'] if t['auroc'] is None else round(t['auroc'], 4)}"
          f" -> {args.out}")
    return 0
