"""Baselines stage: TF-IDF over k-mers (or BPE tokens) with a random forest and logistic regression;
`groverlm baselines tfidf|cnn` (the CNN itself is groverlm.cnn).

Reads a task folder (ours or GUE format, via `tasks.load_task`) and optionally a tokenizer folder;
writes `metrics.json` (schema in `groverlm.metrics`) and `manifest.json` into the output folder.

Per model, every k in `ks` is fitted on train and scored on dev; the k with the best dev MCC
(ties to the smaller k) is then fitted once per seed and reported on dev and test. Logistic
regression is deterministic, so it runs once. Classes are reweighted (class_weight="balanced") by
default, which matters for unbalanced tasks such as PromScan and leaves balanced ones unchanged.
Multi-class labels work throughout (the next-k-mer study calls `run_tfidf` on 4**k classes).

In a run (`run`): reads the task folders the tasks stage built and the run's vocabulary; writes
RUN_DIR/baselines/TASK and, with baselines.cnn set, the CNN's RUN_DIR/baselines/cnn/TASK.

    from groverlm.baselines import TfidfConfig, run_tfidf
    results = run_tfidf(train_seqs, train_labels, dev_seqs, dev_labels, test_seqs, test_labels,
                        TfidfConfig(ks=(4,), models=("lr",)), task="mytask")
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from groverlm import lazy
from groverlm.args import (
    add_seeds,
    check_unique_seeds,
    every_row_as_none,
    listed,
    volatile,
)
from groverlm.cnn import CnnConfig, cnn_task
from groverlm.cnn import made_from as cnn_made_from
from groverlm.context import Context
from groverlm.errors import GroverError, counted
from groverlm.kmers import kmer_count_matrix, parse_ks
from groverlm.manifest import (
    keep_part,
    prepare_out,
    remove_other_parts,
    write_manifest,
    writes_folder,
)
from groverlm.metrics import (
    SELECT,
    THRESHOLDS,
    dev_metrics,
    f1_of,
    make_result,
    read_metrics,
    scored_metrics,
    warn_one_class,
    write_metrics,
)
from groverlm.tasks import TASKS, check_built
from groverlm.tasks.common import check_subset_classes, load_bpe_tokenizer, seeded_subset
from groverlm.tasks.gue import load_task

# scipy, scikit-learn and tqdm load on first use, keeping the CLI and config loading light
sparse = lazy.module("scipy.sparse")
sklearn_ensemble = lazy.module("sklearn.ensemble")
sklearn_linear = lazy.module("sklearn.linear_model")
sklearn_text = lazy.module("sklearn.feature_extraction.text")
tqdm = lazy.module("tqdm")

log = logging.getLogger(__name__)

MODELS = ("rf", "lr")


@dataclass(frozen=True)
class TfidfConfig:
    ks: tuple[int, ...] = (3, 4, 5, 6)  # k-mer lengths tried; the best on dev (MCC) is kept
    models: tuple[str, ...] = MODELS  # rf: random forest, lr: logistic regression
    seeds: tuple[int, ...] = (0,)  # random-forest seeds (mean and std of test MCC over them)
    class_weight: str | None = "balanced"  # "balanced" reweights classes 1/frequency; None: off
    n_estimators: int = 200  # trees in the forest
    max_iter: int = 2000  # logistic regression solver iterations
    C: float = 1.0  # inverse L2 strength of logistic regression
    max_train: int | None = None  # train on a seeded random subset of this many rows (speed; 0: all)
    # cores for the forest (-1: every core); the same forest on any count (its trees' seeds are
    # drawn first), so only the time changes
    n_jobs: int = volatile(-1)
    threshold: str = "argmax"  # binary tasks: argmax or dev's MCC-best cut (as fine-tuning)
    # dev metric that picks the features (next-k-mer: accuracy, the figure it reports)
    select: str = "mcc"
    # the command's flags named otherwise than their field (a run's errors name the field)
    FLAGS: ClassVar[dict[str, str]] = {"n_estimators": "--trees", "n_jobs": "--jobs"}

    def __post_init__(self):
        bad = [m for m in self.models if m not in MODELS]
        if bad or not self.models:
            raise GroverError(f"models must be among {', '.join(MODELS)}, got {list(self.models)}")
        if not self.seeds:
            raise GroverError("at least one seed is needed")
        if self.class_weight not in (None, "balanced"):
            raise GroverError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        object.__setattr__(self, "max_train", every_row_as_none(self.max_train))
        if self.threshold not in THRESHOLDS:
            raise GroverError(f"threshold must be one of {', '.join(THRESHOLDS)}")
        if self.select not in SELECT:
            raise GroverError(f"select must be one of {', '.join(SELECT)}")
        if self.n_estimators < 1:
            raise GroverError(f"--trees must be at least 1, got {self.n_estimators}")
        if self.n_jobs == 0:  # scikit-learn: -1 is every core, -2 all but one, 0 means nothing
            raise GroverError("--jobs must be a positive core count, or negative (-1: every core)")
        check_unique_seeds(self.seeds)


@dataclass(frozen=True)
class BaselinesConfig:
    """Baselines stage: TF-IDF over k-mers (and over the run's BPE tokens) on every task built,
    and a CNN on one-hot DNA trained from scratch when `cnn` is set."""

    tasks: tuple[str, ...] | None = None  # tasks scored (null: every task the tasks stage built)
    bpe: bool = True  # also TF-IDF over the run's BPE tokens (GROVER's tokens without the model)
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)
    # the CNN baseline's settings; null (the default): no CNN, `cnn: {}` for CnnConfig's defaults.
    # Off unless asked: it costs about a minute per task on a CPU core, TF-IDF seconds
    cnn: CnnConfig | None = None

    def __post_init__(self):
        bad = [t for t in self.tasks or () if t not in TASKS]
        if bad:
            raise ValueError(f"tasks must be among {', '.join(TASKS)}, got {list(bad)}")


class Featurizer:
    """Sequences -> TF-IDF rows over k-mers (k given) or BPE token ids (tokenizer given)."""

    def __init__(self, k: int | None = None, tokenizer=None):
        if (k is None) == (tokenizer is None):
            raise ValueError("give exactly one of k and tokenizer")
        self.k, self.tokenizer = k, tokenizer
        self.name = f"k={k}" if k is not None else "bpe"
        self._tfidf = None

    def counts(self, seqs: Sequence[str] | Sequence[list[str]]):
        """Sparse (n, features) counts. For BPE features an item may be a list of token strings
        (a task's given tokens) instead of a sequence to tokenize."""
        if self.k is not None:
            return kmer_count_matrix(seqs, self.k)
        if len(seqs) and not isinstance(seqs[0], str):
            vocab = self.tokenizer.get_vocab()
            try:
                ids = [[vocab[t] for t in toks] for toks in seqs]
            except KeyError as err:
                raise GroverError(f"token {err.args[0]!r} is not in the vocabulary") from None
        else:
            enc = self.tokenizer.encode_batch(list(seqs), add_special_tokens=False)
            ids = [e.ids for e in enc]
        rows = np.concatenate([np.full(len(x), i, np.int64) for i, x in enumerate(ids)])
        cols = np.concatenate([np.asarray(x, np.int64) for x in ids])
        m = sparse.csr_matrix((np.ones(rows.size), (rows, cols)),
                              shape=(len(seqs), self.tokenizer.get_vocab_size()))
        m.sum_duplicates()
        return m

    def fit_transform(self, seqs: Sequence[str]):
        self._tfidf = sklearn_text.TfidfTransformer()
        return self._tfidf.fit_transform(self.counts(seqs))

    def transform(self, seqs: Sequence[str]):
        assert self._tfidf is not None, "fit_transform first"
        return self._tfidf.transform(self.counts(seqs))


def make_model(kind: str, cfg: TfidfConfig, seed: int):
    if kind == "rf":
        return sklearn_ensemble.RandomForestClassifier(
            n_estimators=cfg.n_estimators, class_weight=cfg.class_weight, random_state=seed,
            n_jobs=cfg.n_jobs)
    return sklearn_linear.LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, class_weight=cfg.class_weight)


def _scores(model, X, labels: list[int]) -> np.ndarray:
    """(n, len(labels)) class probabilities, zero for classes absent from training."""
    proba = model.predict_proba(X)  # (n, classes seen in training)
    out = np.zeros((X.shape[0], len(labels)))
    col = {c: i for i, c in enumerate(labels)}
    out[:, [col[int(c)] for c in model.classes_]] = proba
    return out


def _evaluate(model, X, y, labels: list[int], rule: str, cut: float | None = None,
              choose_cut: bool = False) -> dict[str, Any]:
    """Dev metrics (`choose_cut`: the binary cut is chosen here) or test metrics at dev's `cut`."""
    scores = _scores(model, X, labels)
    if choose_cut:
        return dev_metrics(y, scores, labels, rule)
    return scored_metrics(y, scores, labels, rule, cut)


def check_splits(train_seqs: Sequence, train_labels: Sequence[int], dev_seqs: Sequence,
                 dev_labels: Sequence[int], test_seqs: Sequence, test_labels: Sequence[int],
                 labels: Sequence[int] | None, max_train: int | None, seed: int):
    """The shared checks and training subset of the supervised baselines (TF-IDF, CNN).

    Returns (train_seqs, y_train, y_dev, y_test, labels): labels as int64 arrays, the class list
    (`labels`, default the labels seen in any split) and a seeded subset of at most `max_train`
    training rows (in their order).
    """
    y_tr = np.asarray(train_labels, dtype=np.int64)
    y_dev = np.asarray(dev_labels, dtype=np.int64)
    y_te = np.asarray(test_labels, dtype=np.int64)
    if not (len(train_seqs) == y_tr.size and len(dev_seqs) == y_dev.size
            and len(test_seqs) == y_te.size):
        raise GroverError("sequences and labels differ in length")
    if np.unique(y_tr).size < 2:
        raise GroverError("the training set holds a single class")
    seen = {int(x) for x in np.concatenate([y_tr, y_dev, y_te])}
    if labels is None:
        labels = sorted(seen)
    else:
        labels = [int(x) for x in labels]
        if not seen <= set(labels):
            raise GroverError(f"labels {sorted(seen - set(labels))} are not in `labels`")
    n_available = len(train_seqs)
    train_seqs = list(train_seqs)
    if max_train is not None and n_available > max_train:
        keep = seeded_subset(n_available, max_train, seed)
        train_seqs = [train_seqs[i] for i in keep]
        log.info("training on a random subset of %d of %d rows", max_train, n_available)
        check_subset_classes(y_tr, y_tr[keep], max_train)
        y_tr = y_tr[keep]
    return train_seqs, y_tr, y_dev, y_te, labels


def run_tfidf(train_seqs: Sequence[str], train_labels: Sequence[int],
              dev_seqs: Sequence[str], dev_labels: Sequence[int],
              test_seqs: Sequence[str], test_labels: Sequence[int],
              cfg: TfidfConfig = TfidfConfig(), tokenizer=None, task: str = "task",
              labels: Sequence[int] | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """TF-IDF baselines on plain lists; one result record (metrics schema) per model.

    With `tokenizer` (a `tokenizers.Tokenizer`) the features are BPE-token TF-IDF (models named
    tfidf-bpe-rf/-lr) and `cfg.ks` is ignored; the "sequences" may then be lists of token strings
    (given tokens). Else k-mer TF-IDF (tfidf-rf/-lr), k chosen on dev. `labels` fixes the class
    list the metrics use (e.g. all 4**k k-mers); default: the labels seen in any split.
    `progress`: a bar over the steps, each feature set and each fit (a forest: most of a
    minute on a demo task).
    """
    train_seqs, y_tr, y_dev, y_te, labels = check_splits(
        train_seqs, train_labels, dev_seqs, dev_labels, test_seqs, test_labels, labels,
        cfg.max_train, cfg.seeds[0])
    feats = [Featurizer(tokenizer=tokenizer)] if tokenizer is not None else [
        Featurizer(k=k) for k in sorted(cfg.ks)]
    prefix = "tfidf-bpe" if tokenizer is not None else "tfidf"
    seeds_of = {kind: list(cfg.seeds) if kind == "rf" else [cfg.seeds[0]] for kind in cfg.models}
    # each feature set, then per model a fit per feature set and one per further seed
    steps = len(feats) + sum(len(feats) + len(s) - 1 for s in seeds_of.values())
    bar = tqdm.tqdm(total=steps, unit="step", desc=f"{prefix} {task}", disable=not progress,
                    dynamic_ncols=True)
    mats = []
    for f in feats:
        t0 = time.perf_counter()
        mats.append((f, f.fit_transform(train_seqs), f.transform(dev_seqs), f.transform(test_seqs)))
        log.debug("features %s in %.1fs", f.name, time.perf_counter() - t0)
        bar.update(1)
    results = []
    for kind, seeds in seeds_of.items():
        # choose the features on dev with the first seed, by the metric `select` names
        best = None
        selection = {}
        by = cfg.select
        for f, X_tr, X_dev, X_te in mats:
            t0 = time.perf_counter()
            model = make_model(kind, cfg, seeds[0]).fit(X_tr, y_tr)
            bar.update(1)
            dev = _evaluate(model, X_dev, y_dev, labels, cfg.threshold, choose_cut=True)
            selection[f.name] = dev[by]
            log.info("%s-%s %s: dev %s %.4f (%.1fs)", prefix, kind, f.name,
                     "MCC" if by == "mcc" else by, dev[by] or 0.0, time.perf_counter() - t0)
            if best is None or (dev[by] or -np.inf) > (best[0][by] or -np.inf):
                best = (dev, model, f, X_tr, X_dev, X_te)
        assert best is not None
        dev0, model0, f, X_tr, X_dev, X_te = best
        per_seed = []
        for s in seeds:
            model = model0 if s == seeds[0] else make_model(kind, cfg, s).fit(X_tr, y_tr)
            if s != seeds[0]:
                bar.update(1)
            dev = dev0 if s == seeds[0] else _evaluate(model, X_dev, y_dev, labels, cfg.threshold,
                                                       choose_cut=True)
            test = _evaluate(model, X_te, y_te, labels, cfg.threshold, dev["threshold"])
            per_seed.append({"seed": s, "dev": dev, "test": test})
        params = {"features": f.name, "k": f.k, f"dev_{by}_by_features": selection,
                  "train_rows": len(train_seqs), **{k: v for k, v in asdict(cfg).items()
                                                    if k not in ("seeds", "ks", "models")}}
        results.append(make_result(task, f"{prefix}-{kind}", per_seed, params,
                                       baseline=True))
        r = results[-1]
        log.info("%s: %s, test MCC %.4f ± %.4f", r["model"], f.name, r["mcc_mean"], r["mcc_std"])
    bar.close()
    return results


def _use_given_tokens(task, vocab: str | Path) -> bool:
    """Whether the task's `tokens` column was made with this vocabulary (then BPE features count
    those tokens: re-tokenizing a token-shuffled string would change its bag of tokens)."""
    if any(task.splits[s].tokens is None for s in task.splits):
        return False
    path = Path(vocab) / "manifest.json"
    mine = json.loads(path.read_text()).get("merges_sha256") if path.exists() else None
    theirs = task.manifest.get("tokens_merges_sha256")
    if mine and mine == theirs:
        log.info("BPE features count the task's given tokens (same vocabulary)")
        return True
    log.warning("the task's tokens column comes from another vocabulary: re-tokenizing")
    return False


def tfidf_made_from(cfg: TfidfConfig, task_dir: str | Path, vocab: str | Path | None
                    ) -> dict[str, Any]:
    """The config a TF-IDF baseline's manifest records, against which a run checks a finished one
    before keeping it (`run`)."""
    return {**asdict(cfg), "vocab": str(vocab) if vocab else None, "task_dir": str(task_dir)}


@writes_folder
def tfidf_task(task_dir: str | Path, out: str | Path, cfg: TfidfConfig,
               vocab: str | Path | None = None, overwrite: bool = False,
               progress: bool = False) -> list[dict[str, Any]]:
    """`groverlm baselines tfidf`: k-mer TF-IDF baselines (and BPE ones with a vocabulary) on a task
    folder; writes metrics.json and manifest.json. Returns the result records."""
    task = load_task(task_dir)
    out = prepare_out(out, overwrite)
    (out / "manifest.json").unlink(missing_ok=True)  # replacing: unfinished until the new one
    t0 = time.perf_counter()
    splits = (task.train.sequences, task.train.labels, task.dev.sequences, task.dev.labels,
              task.test.sequences, task.test.labels)
    results = run_tfidf(*splits, cfg, task=task.name, progress=progress)
    given_tokens = False
    if vocab is not None:
        tokenizer = load_bpe_tokenizer(vocab)
        given_tokens = _use_given_tokens(task, vocab)
        if given_tokens:
            splits = (task.train.tokens, task.train.labels, task.dev.tokens, task.dev.labels,
                      task.test.tokens, task.test.labels)
        results += run_tfidf(*splits, cfg, tokenizer=tokenizer, task=task.name,
                             progress=progress)
        for r in results[-len(cfg.models):]:
            r["params"]["given_tokens"] = given_tokens
    # a sequence and its token shuffle (Prom300's negatives) hold the same tokens: BPE-token
    # features cannot tell them apart, so one class everywhere is the control working, not a
    # model short of data
    control = given_tokens and (task.manifest.get("config") or {}).get("negatives") == "token"
    if control:
        log.info("tfidf-bpe on %s: each sequence and its token shuffle hold the same tokens, so "
                 "BPE-token features cannot tell them apart (MCC 0 by construction)", task.name)
    for r in results:
        if not (control and r["params"].get("given_tokens")):
            warn_one_class(r)
    write_metrics(out, task.name, results, task_dir=str(task_dir), label_map=task.label_map)
    write_manifest(out, "baselines-tfidf", tfidf_made_from(cfg, task_dir, vocab),
                   [task_dir, *([vocab] if vocab else [])],
                   seed=cfg.seeds[0], seconds=round(time.perf_counter() - t0, 1),
                   sizes={s: len(task.splits[s]) for s in task.splits})
    return results


def preflight(cfg: Any, config: Any) -> None:
    """The runner's check, before any stage runs, that the tasks named are among those built."""
    check_built("baselines", cfg.tasks, config)


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Baselines stage: TF-IDF + random forest / logistic regression on every task (into
    baselines/TASK/) and, when `baselines.cnn` is set, the CNN (into baselines/cnn/TASK/). A
    finished one made from the same task folder, vocabulary and settings is kept (the runner
    hands this stage its folder whatever changed: runner.Stage.checks_parts); one no longer asked
    for is removed."""
    tasks = ctx.task_dirs("baselines", cfg.tasks)
    # "cnn" is no task name (tasks.TASKS)
    cnns = {t.name: ctx.out / "cnn" / t.name for t in tasks} if cfg.cnn is not None else {}
    remove_other_parts(ctx.out, [*(ctx.out / t.name for t in tasks), *cnns.values()])
    summary = {}
    for task_dir in tasks:
        out, vocab = ctx.out / task_dir.name, ctx.vocab if cfg.bpe else None
        if not keep_part(out, tfidf_made_from(cfg.tfidf, task_dir, vocab),
                         [task_dir, *([vocab] if vocab else [])], cfg.tfidf):
            tfidf_task(task_dir, out, cfg.tfidf, vocab=vocab, progress=ctx.progress)
        outs = [out]
        if cfg.cnn is not None:
            outs.append(cnns[task_dir.name])
            if not keep_part(outs[-1], cnn_made_from(cfg.cnn, task_dir), [task_dir], cfg.cnn):
                cnn_task(task_dir, outs[-1], cfg.cnn, progress=ctx.progress)
        summary[task_dir.name] = {r["model"]: r.get("mcc_mean", r["test"]["mcc"])
                                  for o in outs for r in read_metrics(o / "metrics.json")}
    return summary


def register(sub: argparse._SubParsersAction) -> None:
    dt = TfidfConfig()
    # named as the stage (folder baselines/, YAML section baselines); `baseline`, its old name, stays
    t = sub.add_parser("baselines", aliases=["baseline"], help="baselines on a task folder")
    tg = t.add_subparsers(dest="baseline_command", metavar="MODEL", required=True)
    f = tg.add_parser("tfidf", help="TF-IDF over k-mers (and BPE tokens) + random forest / LR")
    f.add_argument("--task", required=True, help="task folder (ours or GUE format)")
    f.add_argument("--out", required=True, help="output folder (metrics.json, manifest.json)")
    f.add_argument("--k", default=listed(dt.ks),
                   help=f"k values tried, chosen on dev (default {listed(dt.ks)})")
    f.add_argument("--vocab", help="tokenizer folder: also TF-IDF over its BPE tokens")
    f.add_argument("--models", default=",".join(dt.models),
                   help=f"rf and/or lr (default {','.join(dt.models)})")
    add_seeds(f, dt.seeds, "one random forest per seed, test MCC mean ± std over them")
    f.add_argument("--trees", type=int, default=dt.n_estimators,
                   help=f"random forest size (default {dt.n_estimators})")
    f.add_argument("--max-train", type=int, default=dt.max_train, metavar="N",
                   help="train on a seeded random subset of N rows; 0: all (default: all)")
    f.add_argument("--no-class-weight", action="store_true",
                   help="do not reweight classes (default: balanced weights)")
    f.add_argument("--jobs", type=int, default=dt.n_jobs,
                   help=f"cores for the forest, -1 every core (default {dt.n_jobs}; the same "
                        "forest on any count)")
    f.add_argument("--threshold", choices=("argmax", "dev"), default=dt.threshold,
                   help="binary tasks: argmax (default) or the cut with the best dev MCC")
    f.add_argument("--overwrite", action="store_true", help="replace a finished output folder")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=tfidf)

    # the CNN's defaults live on CnnConfig only: a flag left out keeps the dataclass's value
    d = CnnConfig()
    c = tg.add_parser("cnn", help="a small CNN on one-hot DNA, trained from scratch (early "
                                  "stopping on dev MCC)")
    c.add_argument("--task", required=True, help="task folder (ours or GUE format)")
    c.add_argument("--out", required=True, help="output folder (metrics.json, manifest.json)")
    add_seeds(c, d.seeds, "one run per seed, test MCC mean ± std over them")
    c.add_argument("--epochs", type=int, help=f"most passes over train (default {d.epochs})")
    c.add_argument("--patience", type=int,
                   help=f"stop after N epochs without a better dev MCC (default {d.patience})")
    c.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr:g})")
    c.add_argument("--batch-size", type=int, help=f"sequences per step (default {d.batch_size})")
    c.add_argument("--channels", type=int, help=f"filters per convolution (default {d.channels})")
    c.add_argument("--kernel", type=int, help=f"filter width in bases (default {d.kernel})")
    c.add_argument("--layers", type=int, help=f"convolution blocks (default {d.layers})")
    c.add_argument("--max-train", type=int, metavar="N",
                   help=f"train on a seeded random subset of N rows; 0: all (default "
                        f"{d.max_train})")
    c.add_argument("--no-class-weight", action="store_true",
                   help="do not reweight classes (default: balanced weights)")
    c.add_argument("--threshold", choices=THRESHOLDS,
                   help=f"binary tasks: argmax or the cut with the best dev MCC (default "
                        f"{d.threshold})")
    c.add_argument("--threads", type=int, help=f"torch CPU threads (default {d.threads})")
    c.add_argument("--overwrite", action="store_true", help="replace a finished output folder")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cnn)


def tfidf(args: argparse.Namespace) -> int:
    cfg = TfidfConfig(ks=tuple(parse_ks(args.k)), models=tuple(m for m in args.models.split(",")
                                                                if m),
                      seeds=tuple(args.seeds), class_weight=None if args.no_class_weight else "balanced",
                      n_estimators=args.trees, max_train=args.max_train, n_jobs=args.jobs,
                      threshold=args.threshold)
    results = tfidf_task(args.task, args.out, cfg, args.vocab, args.overwrite,
                         progress=not args.quiet)
    for r in results:
        t = r["test"]
        auroc = "-" if t["auroc"] is None else f"{t['auroc']:.3f}"
        print(f"baseline {r['model']} on {r['task']} ({r['params']['features']}): test MCC "
              f"{r['mcc_mean']:.3f} ± {r['mcc_std']:.3f}, F1{f1_of(args.out)} {t['f1']:.3f}, "
              f"accuracy {t['accuracy']:.3f}, AUROC {auroc} -> {args.out}/metrics.json")
    return 0


def cnn(args: argparse.Namespace) -> int:
    flags = {"epochs": args.epochs, "patience": args.patience, "lr": args.lr,
             "batch_size": args.batch_size, "channels": args.channels, "kernel": args.kernel,
             "layers": args.layers, "threshold": args.threshold, "threads": args.threads,
             "seeds": tuple(args.seeds),
             "max_train": args.max_train}  # 0: the whole training split (every_row_as_none)
    given = {k: v for k, v in flags.items() if v is not None}  # the rest: CnnConfig's defaults
    if args.no_class_weight:
        given["class_weight"] = None
    cfg = replace(CnnConfig(), **given)
    r = cnn_task(args.task, args.out, cfg, args.overwrite, progress=not args.quiet)
    t = r["test"]
    auroc = "-" if t["auroc"] is None else f"{t['auroc']:.3f}"
    epochs = ", ".join(str(p["best_epoch"]) for p in r["per_seed"])
    print(f"baseline {r['model']} on {r['task']}: test MCC {r['mcc_mean']:.3f} ± {r['mcc_std']:.3f}"
          f" over {counted(len(r['seeds']), 'seed')} (best epoch {epochs}); seed {r['seeds'][0]}: "
          f"F1{f1_of(args.out)} {t['f1']:.3f}, accuracy {t['accuracy']:.3f}, AUROC {auroc} -> "
          f"{args.out}/metrics.json")
    return 0
