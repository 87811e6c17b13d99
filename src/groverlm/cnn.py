"""Baselines stage, the CNN: a small convolutional network on one-hot DNA, trained from scratch.

Reads a task folder (ours or GUE format, via `tasks.gue.load_task`); writes `metrics.json` (schema
in `groverlm.metrics`: model "cnn", one run per seed, mean and std of test MCC over seeds, as
fine-tuning writes them) and `manifest.json` into the output folder, and while it runs each finished
seed's result (`seed-N.json`) and the settings they were made under (`settings.json`): an
interrupted run, rerun alike, resumes at the first unfinished seed. `groverlm baselines cnn`.

The network is the kind genomic-benchmarks and DeepSEA ship, the supervised model a DNA language
model has to beat: one-hot A/C/G/T (N: all zeros, (B, 4, L)); `layers` blocks of Conv1d -> ReLU ->
BatchNorm, each but the last followed by a max-pool; then the max and the mean over positions,
dropout and a linear head. Sequences of different lengths are padded per batch: padded positions
are kept out of every pool, so in eval mode a sequence scores the same alone or padded (in
training they still enter BatchNorm's batch statistics; the genome tasks have one length each).

Training: Adam on cross entropy, classes reweighted by sklearn's "balanced" weights (1/frequency;
all 1 on a balanced task); dev MCC after each epoch; the best epoch's weights are kept and training
stops after `patience` epochs without a better dev MCC. Each seed sets `torch.manual_seed` (weights,
dropout) and its own `torch.Generator` (batch order), so one seed gives the same metrics again.
Binary tasks also record the MCC at dev's best cut on P(class 1), as the other baselines do.

    from groverlm.cnn import CnnConfig, run_cnn
    result = run_cnn(train_seqs, train_labels, dev_seqs, dev_labels, test_seqs, test_labels,
                     CnnConfig(epochs=5), task="mytask")
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.args import check_unique_seeds, every_row_as_none, stable, volatile
from groverlm.errors import GroverError, counted
from groverlm.manifest import (
    SETTINGS,
    check_resume,
    fingerprint,
    prepare_out,
    read_json,
    write_json,
    write_manifest,
    writes_folder,
)
from groverlm.metrics import (
    THRESHOLDS,
    dev_metrics,
    make_result,
    scored_metrics,
    warn_one_class,
    write_metrics,
)
from groverlm.models import torch_threads
from groverlm.tasks.gue import load_task

# torch, scikit-learn and tqdm load on first use, keeping the CLI and config loading light
torch = lazy.module("torch")
nn = lazy.module("torch.nn")
F = lazy.module("torch.nn.functional")
sklearn_weights = lazy.module("sklearn.utils.class_weight")
baselines = lazy.module("groverlm.baselines")  # an import cycle: baselines imports CnnConfig
tqdm = lazy.module("tqdm")

log = logging.getLogger(__name__)

MODEL = "cnn"  # the model's name in metrics.json and in `compare`'s columns
N_CODE = 4  # code of N (and of padding): its one-hot row is all zeros

# A/C/G/T (either case) -> 0..3, anything else -> N_CODE
_CODES = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODES[_b] = _CODES[_b + 32] = _i


@dataclass(frozen=True)
class CnnConfig:
    """The CNN baseline: network size, training and early stopping. Sized for the demo's tasks
    on one shared CPU core: an epoch took ~9 s on PromScan (3,000 rows of 1 kb), ~2.6 s on CTCF
    (3,000 of 300 bp) and ~1.7 s on Prom300 (1,400 of 300 bp; the whole command 15 s)."""

    channels: int = 64  # filters per convolution
    kernel: int = 9  # filter width in bases: a transcription-factor motif's length
    layers: int = 3  # convolution blocks
    pool: int = 4  # max-pool width after every block but the last (1 kb -> 63 positions)
    dropout: float = 0.3  # before the linear head
    epochs: int = 10  # most passes over train; early stopping often ends sooner
    patience: int = 3  # stop after this many epochs without a better dev MCC
    lr: float = 1e-3  # Adam's learning rate
    weight_decay: float = 0.0  # Adam's L2 penalty
    batch_size: int = 64  # sequences per step
    max_train: int | None = 3000  # train on a seeded random subset of this many rows (speed;
    #                               None or 0: all of train)
    seeds: tuple[int, ...] = (0,)  # one run per seed (mean and std of test MCC over them)
    class_weight: str | None = "balanced"  # "balanced" reweights classes 1/frequency; None: off
    threshold: str = "argmax"  # binary tasks: argmax or dev's MCC-best cut (as fine-tuning)
    eval_batch_size: int = volatile(256)  # sequences per dev/test batch (memory only, not results)
    threads: int | None = volatile(1)  # torch CPU threads (None: torch's default; the CPU is shared)

    def __post_init__(self):
        for name in ("channels", "kernel", "layers", "pool", "epochs", "batch_size",
                     "eval_batch_size"):
            if getattr(self, name) < 1:
                raise GroverError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:  # BatchNorm cannot train on one sequence: every step would be skipped
            raise GroverError(f"batch size must be at least 2, got {self.batch_size}")
        if self.patience < 1:
            raise GroverError(f"patience must be at least 1, got {self.patience}")
        if not 0 <= self.dropout < 1:
            raise GroverError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise GroverError("lr must be positive and weight_decay not negative")
        object.__setattr__(self, "max_train", every_row_as_none(self.max_train))
        if not self.seeds:
            raise GroverError("at least one seed is needed")
        check_unique_seeds(self.seeds)
        if self.class_weight not in (None, "balanced"):
            raise GroverError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}")
        if self.threshold not in THRESHOLDS:
            raise GroverError(f"threshold must be one of {', '.join(THRESHOLDS)}")
        if self.threads is not None and self.threads < 1:
            raise GroverError(f"threads must be at least 1, got {self.threads}")


def encode(seqs: Sequence[str]) -> list[np.ndarray]:
    """Each sequence as uint8 codes A=0, C=1, G=2, T=3, other (N) = 4.

    >>> encode(["ACGTN", "gat"])[1].tolist()
    [2, 0, 3]
    """
    return [_CODES[np.frombuffer(s.encode("ascii", "replace"), dtype=np.uint8)] for s in seqs]


def one_hot_batch(codes: Sequence[np.ndarray]):
    """(x, lengths): x (B, 4, L) float32 one-hot, padded with zeros to the longest; lengths (B,).

    >>> x, n = one_hot_batch(encode(["AC", "T"]))
    >>> x.shape, n.tolist(), x[1].sum(0).tolist()
    (torch.Size([2, 4, 2]), [2, 1], [1.0, 0.0])
    """
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    padded = np.full((len(codes), int(lengths.max())), N_CODE, dtype=np.int64)  # (B, L)
    for i, c in enumerate(codes):
        padded[i, :len(c)] = c
    x = torch.nn.functional.one_hot(torch.from_numpy(padded), N_CODE + 1)[..., :N_CODE]  # (B, L, 4)
    return x.transpose(1, 2).float().contiguous(), torch.from_numpy(lengths)


@functools.cache
def _network_class():
    """The `DnaCnn` module class (defined on first call: a torch.nn.Module subclass at module level
    would import torch with this module)."""

    class DnaCnn(nn.Module):
        """Conv blocks over one-hot DNA, masked global max + mean pooling, a linear head."""

        def __init__(self, n_classes: int, cfg: CnnConfig):
            super().__init__()
            c = cfg.channels
            # "same" padding: a position's output sees the bases around it on both sides
            self.convs = nn.ModuleList(nn.Conv1d(4 if i == 0 else c, c, cfg.kernel, padding="same")
                                       for i in range(cfg.layers))
            self.norms = nn.ModuleList(nn.BatchNorm1d(c) for _ in range(cfg.layers))
            self.pool = cfg.pool
            self.dropout = nn.Dropout(cfg.dropout)
            self.head = nn.Linear(2 * c, n_classes)

        def forward(self, x, lengths):  # x (B, 4, L), lengths (B,) -> logits (B, n_classes)
            last = len(self.convs) - 1
            p = self.pool
            for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
                x = norm(torch.relu(conv(x)))  # (B, C, L)
                if i < last:
                    # padding is -inf to the pool, then 0 to the next conv (as its own padding),
                    # so a sequence's values do not depend on the batch's longest sequence
                    x = _fill(x, lengths, float("-inf"))
                    width = -(-x.shape[-1] // p)
                    if x.shape[-1] != width * p:  # a partial last window: pooled as ceil_mode
                        x = F.pad(x, (0, width * p - x.shape[-1]), value=float("-inf"))
                    # max-pool as a reshape: several times faster than max_pool1d on a CPU
                    x = x.view(*x.shape[:2], width, p).amax(-1)  # (B, C, ceil(L / pool))
                    lengths = -(-lengths // p)
                    x = _fill(x, lengths, 0.0)
            top = _fill(x, lengths, float("-inf")).amax(-1)  # (B, C)
            mean = _fill(x, lengths, 0.0).sum(-1) / lengths[:, None]  # (B, C)
            return self.head(self.dropout(torch.cat([top, mean], 1)))  # (B, n_classes)

    def _fill(x, lengths, value: float):
        """x (B, C, L) with positions at or past each sequence's length set to `value`."""
        width = x.shape[-1]
        if bool((lengths == width).all()):  # no padding (every genome task has one length)
            return x
        keep = torch.arange(width)[None, :] < lengths[:, None]  # (B, L)
        return x.masked_fill(~keep[:, None, :], value)

    return DnaCnn


def build_network(n_classes: int, cfg: CnnConfig):
    """A freshly initialised CNN (seed torch first for reproducible weights)."""
    return _network_class()(n_classes, cfg)


def predict(model, codes: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    """(n, n_classes) class probabilities, float64; batches of similar lengths (less padding)."""
    order = np.argsort([len(c) for c in codes], kind="stable")
    out = np.zeros((len(codes), model.head.out_features))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            x, n = one_hot_batch([codes[i] for i in idx])
            out[idx] = torch.softmax(model(x, n).double(), -1).numpy()
    model.train(was_training)
    return out


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """sklearn's "balanced" weights per class column (1 for a class absent from y: never used).

    >>> class_weights(np.array([0, 0, 0, 1]), 3).tolist()
    [0.6666666666666666, 2.0, 1.0]
    """
    present = np.unique(y)
    out = np.ones(n_classes)
    out[present] = sklearn_weights.compute_class_weight("balanced", classes=present, y=y)
    return out


def train_seed(train: tuple[list[np.ndarray], np.ndarray], dev: tuple[list[np.ndarray], np.ndarray],
               test: tuple[list[np.ndarray], np.ndarray], labels: list[int], cfg: CnnConfig,
               seed: int, on_epoch: Callable[[dict[str, Any]], None] | None = None
               ) -> dict[str, Any]:
    """One seed: train with early stopping on dev MCC, score the best epoch on dev and test.

    Each split is (codes, y) with y the label ids; `labels` are the class ids in column order.
    `on_epoch` is called with each epoch's dev curve entry (run_cnn's progress bar).
    Returns {"seed", "dev", "test", "best_epoch", "epochs_run", "dev_curve", "seconds", ...}.
    """
    t0 = time.perf_counter()
    col = {c: i for i, c in enumerate(labels)}
    codes, y = train
    target = torch.tensor([col[int(v)] for v in y], dtype=torch.long)  # (N,) column of each row
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = build_network(len(labels), cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = class_weights(target.numpy(), len(labels)) if cfg.class_weight else None
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else torch.tensor(
        weights, dtype=torch.float32))
    n = len(codes)
    best: dict[str, Any] | None = None
    curve = []
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen).numpy()
        losses = []
        for b in range(0, n, cfg.batch_size):
            idx = order[b:b + cfg.batch_size]
            if len(idx) < 2 < n:  # BatchNorm cannot train on one sequence of one position
                continue
            x, lengths = one_hot_batch([codes[i] for i in idx])
            loss = loss_fn(model(x, lengths), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        m = dev_metrics(dev[1], predict(model, dev[0], cfg.eval_batch_size), labels, cfg.threshold)
        value = m["mcc"] if m["mcc"] is not None else -np.inf
        curve.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None,
                      "dev_mcc": m["mcc"], "dev_auroc": m["auroc"],
                      "seconds": round(time.perf_counter() - t_epoch, 2)})
        improved = best is None or value > best["value"]
        log.info("cnn seed %d epoch %d: train loss %.4f, dev MCC %.4f%s (%.1fs)", seed, epoch,
                 curve[-1]["train_loss"] or 0.0, m["mcc"] or 0.0, " (best)" if improved else "",
                 curve[-1]["seconds"])
        if on_epoch is not None:
            on_epoch(curve[-1])
        if improved:
            # a copy: the optimizer keeps changing the live tensors
            best = {"epoch": epoch, "value": value, "dev": m,
                    "state": copy.deepcopy(model.state_dict())}
        elif epoch - best["epoch"] >= cfg.patience:
            break
    assert best is not None, "no epoch was evaluated"
    model.load_state_dict(best["state"])
    test_m = scored_metrics(test[1], predict(model, test[0], cfg.eval_batch_size), labels,
                            cfg.threshold, best["dev"]["threshold"])
    return {"seed": seed, "dev": best["dev"], "test": test_m, "best_epoch": best["epoch"],
            "epochs_run": epoch, "stopped_early": epoch < cfg.epochs, "dev_curve": curve,
            "class_weights": None if weights is None else weights.tolist(),
            "seconds": round(time.perf_counter() - t0, 1)}


def run_cnn(train_seqs: Sequence[str], train_labels: Sequence[int],
            dev_seqs: Sequence[str], dev_labels: Sequence[int],
            test_seqs: Sequence[str], test_labels: Sequence[int],
            cfg: CnnConfig = CnnConfig(), task: str = "task",
            labels: Sequence[int] | None = None, out: Path | None = None,
            progress: bool = False) -> dict[str, Any]:
    """The CNN baseline on plain lists; one result record (metrics schema, model "cnn").

    `labels` fixes the class list the metrics use; default: the labels seen in any split.
    `out`: a folder that keeps each finished seed's result (seed-N.json), so that a rerun after an
    interruption skips the seeds already trained (the caller guards the settings: cnn_task).
    `progress`: a bar over the epochs of the seeds still to train (a demo task's whole run takes
    about a minute); a seed that stops early takes its unrun epochs off the total.
    """
    if not (len(dev_seqs) and len(test_seqs)):
        raise GroverError("the dev and test splits must not be empty")
    if any(len(s) == 0 for split in (train_seqs, dev_seqs, test_seqs) for s in split):
        raise GroverError("empty sequence")
    n_available = len(train_seqs)
    train_seqs, y_tr, y_dev, y_te, labels = baselines.check_splits(
        train_seqs, train_labels, dev_seqs, dev_labels, test_seqs, test_labels, labels,
        cfg.max_train, cfg.seeds[0])
    train = (encode(train_seqs), y_tr)
    dev = (encode(dev_seqs), y_dev)
    test = (encode(test_seqs), y_te)
    per_seed = []
    done_of = {seed: None if out is None else out / f"seed-{seed}.json" for seed in cfg.seeds}
    todo = sum(1 for done in done_of.values() if done is None or not done.is_file())
    bar = tqdm.tqdm(total=todo * cfg.epochs, unit="epoch", desc=f"{MODEL} {task}",
                    disable=not progress, dynamic_ncols=True)

    def on_epoch(entry: dict[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix(dev_mcc=f"{entry['dev_mcc'] or 0.0:.3f}", refresh=False)

    with torch_threads(cfg.threads):
        for seed, done in done_of.items():
            if done is not None and done.is_file():
                per_seed.append(read_json(done))
                log.info("cnn seed %d: finished by an earlier run (%s)", seed, done)
                continue
            r = train_seed(train, dev, test, labels, cfg, seed, on_epoch)
            if r["epochs_run"] < cfg.epochs:  # stopped early: its other epochs never come
                bar.total -= cfg.epochs - r["epochs_run"]
                bar.refresh()
            if done is not None:
                write_json(done, r)
            log.info("cnn seed %d: best epoch %d of %d, dev MCC %.4f, test MCC %.4f (%.1fs)",
                     seed, r["best_epoch"], r["epochs_run"], r["dev"]["mcc"] or 0.0,
                     r["test"]["mcc"] or 0.0, r["seconds"])
            per_seed.append(r)
    bar.close()
    params = {**{k: v for k, v in stable(cfg).items() if k != "seeds"},  # seeds: in per_seed
              "train_rows": len(train_seqs), "train_rows_available": n_available,
              "parameters": sum(p.numel() for p in build_network(len(labels), cfg).parameters())}
    record = make_result(task, MODEL, per_seed, params, baseline=True)
    log.info("cnn: test MCC %.4f ± %.4f over %s", record["mcc_mean"] or 0.0,
             record["mcc_std"] or 0.0, counted(len(per_seed), "seed"))
    warn_one_class(record)
    return record


def made_from(cfg: CnnConfig, task_dir: str | Path) -> dict[str, Any]:
    """The config a CNN baseline's manifest records, against which a run checks a finished one
    before keeping it (baselines.run)."""
    return {**asdict(cfg), "task_dir": str(task_dir)}


@writes_folder
def cnn_task(task_dir: str | Path, out: str | Path, cfg: CnnConfig,
             overwrite: bool = False, progress: bool = False) -> dict[str, Any]:
    """`groverlm baselines cnn`: the CNN baseline on a task folder; writes metrics.json and
    manifest.json. Returns the result record. `progress`: run_cnn's bar over the epochs."""
    task = load_task(task_dir)
    out = prepare_out(out, overwrite)
    (out / "manifest.json").unlink(missing_ok=True)  # replacing: unfinished until the new one
    if overwrite:  # a fresh start: no earlier seed is reused
        for p in [*out.glob("seed-*.json"), out / SETTINGS]:
            p.unlink(missing_ok=True)
    # finished seeds are reused only under the same task files and settings (threads aside)
    check_resume(out, {"task": fingerprint(task_dir)["sha256"], "config": stable(cfg)})
    t0 = time.perf_counter()
    record = run_cnn(task.train.sequences, task.train.labels, task.dev.sequences, task.dev.labels,
                     task.test.sequences, task.test.labels, cfg, task=task.name,
                     labels=sorted(task.label_map.values()), out=out, progress=progress)
    write_metrics(out, task.name, [record], task_dir=str(task_dir), label_map=task.label_map)
    write_manifest(out, "baselines-cnn", made_from(cfg, task_dir), [task_dir],
                   seed=cfg.seeds[0], seconds=round(time.perf_counter() - t0, 1),
                   sizes={s: len(task.splits[s]) for s in task.splits},
                   summary={"mcc_mean": record["mcc_mean"], "mcc_std": record["mcc_std"]})
    return record
