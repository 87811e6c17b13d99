"""Training loop shared by every stage that trains a model: MLM pretraining, fine-tuning, next-k-mer.

Reads from its caller a stock transformers model, a `TrainData` (sample lengths and a `collate` that
builds a batch) and an objective (`MaskedLM`, `SequenceClassification`, or any module returning a
summed loss). Writes into the run folder OUT/:

- `checkpoints/step-NNNNNNN/`: a `save_pretrained` folder (model and tokenizer, loadable with no
  custom code) plus `trainer_state.pt` (optimizer, scheduler, RNG, data position, counters);
  `checkpoints/latest` names the newest complete one. A checkpoint is built in a temporary folder and
  renamed in one step, and `latest` is replaced atomically after it, so a crash while saving leaves
  the previous checkpoint as latest;
- `log.jsonl`: one record per `log_every` steps (loss, learning rate, gradient norm, tokens/s over
  those steps; the progress bar shows tokens/s over the run so far, `TrainResult`'s figure) and
  one per evaluation; `tb/` holds the same for TensorBoard when `tensorboard` is importable.

The caller writes the final model, its metrics and manifest.json. AdamW, linear warmup then linear
decay, gradient accumulation and clipping; bf16 autocast on a GPU; optional `torch.compile`. Batches
hold samples of similar length (shuffled pools of `bucket` batches sorted by length), so little
compute goes to padding. Runs under `torchrun --nproc_per_node K` (DistributedDataParallel: each rank
takes every K-th batch of the same shuffled epoch, so each sample is seen once per epoch).

Resuming is exact: the data position follows from the step, each batch's random choices (masks) come
from a generator seeded by (seed, epoch, batch), and the global RNG (dropout) is reseeded from (seed,
step, rank) at every step, so a run killed and resumed ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib.util
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from groverlm import lazy
from groverlm.args import TrainConfig, stable  # TrainConfig re-exported: groverlm.train
from groverlm.errors import GroverError
from groverlm.manifest import check_resume, read_jsonl, write_json, write_text
from groverlm.masking import IGNORE
from groverlm.models import device_type, named_device, quiet_transformers, save_model

# torch.utils.tensorboard loads on first use (it pulls in tensorboard); None without tensorboard, an
# optional dependency (a stand-in for a missing module would fail on any read, even doctest's probe)
torch_tb = lazy.module("torch.utils.tensorboard") if importlib.util.find_spec("tensorboard") else None

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STATE = "trainer_state.pt"
LOG = "log.jsonl"


class TrainData(Protocol):
    """What the loop needs from a dataset."""

    lengths: np.ndarray  # (N,) tokens per sample: batches group samples of similar length

    def collate(self, indices: np.ndarray, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """The batch of these samples; any random choice (masks) must come from `generator`."""
        ...


# ----------------------------------------------------------------------------------------------
# Objectives: a transformers model wrapped to return a summed loss, so that the loop can divide by
# the targets of a whole step (all micro-batches, all ranks), whatever their split.


class MaskedLM(nn.Module):
    """Masked-token cross-entropy, summed over targets; the vocabulary head runs on targets only
    (GROVER masks 2.2% of tokens, so scoring every position would waste most of the head)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @staticmethod
    def count(batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                labels: torch.Tensor) -> torch.Tensor:
        logits, targets = masked_logits(self.model, input_ids, attention_mask, labels)
        return F.cross_entropy(logits.float(), targets, reduction="sum")


def without_full_mask(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """`batch` with an attention mask of all ones replaced by None (no padding: every position
    attends to every other).

    Why: transformers drops such a mask itself in eager runs, but under torch.compile it cannot look
    at a traced mask's values and passes it on to SDPA, which then cannot use its maskless flash
    kernels; given None it skips the mask (from 5.18; 5.17 built one from None while compiling). On
    an H200 the masked cuDNN kernel was 25% of a compiled grover-base step at 510 tokens, the maskless
    one 19% (bench/README, GPU). The check runs on the CPU copy, before the batch moves, so it costs
    the GPU no synchronisation.
    """
    mask = batch.get("attention_mask")
    if mask is None or not bool(mask.all()):
        return batch
    return {**batch, "attention_mask": None}


def masked_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, V) logits and (M,) targets at the M positions whose label is not IGNORE.

    Runs the encoder, then the vocabulary head on the targets only, for masked LMs whose head is
    `.cls` over the encoder's output (BERT, DeBERTa-v2); another masked LM is run whole and its
    logits gathered.
    """
    where = labels != IGNORE  # (B, T)
    if hasattr(model, "cls") and hasattr(model, "base_model"):
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)
        return model.cls(hidden.last_hidden_state[where]), labels[where]  # (M, H) -> (M, V)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits  # (B, T, V)
    return logits[where], labels[where]


# ----------------------------------------------------------------------------------------------
# Batching


def epoch_batches(lengths: np.ndarray, batch_size: int, epoch: int, seed: int, world: int = 1,
                  bucket: int = 64) -> list[np.ndarray]:
    """The batches of one epoch: every sample exactly once, in shuffled pools of `bucket` batches
    sorted by length; the batch count is a multiple of `world` (batches are then a little smaller
    than batch_size rather than a sample being dropped or repeated). Rank r takes batches r::world.

    >>> b = epoch_batches(np.array([5, 1, 4, 2, 3]), 2, epoch=0, seed=0, world=2)
    >>> len(b), sorted(np.concatenate(b).tolist())
    (4, [0, 1, 2, 3, 4])
    """
    n = len(lengths)
    n_batches = -(-n // batch_size)
    n_batches = -(-n_batches // world) * world
    if n_batches > n:
        raise GroverError(f"{n} samples cannot fill {n_batches} batches over {world} processes")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    sizes = np.full(n_batches, n // n_batches)
    sizes[: n % n_batches] += 1
    rng.shuffle(sizes)
    batches: list[np.ndarray] = []
    at = 0
    for p in range(0, n_batches, bucket):
        pool_sizes = sizes[p : p + bucket]
        pool = order[at : at + pool_sizes.sum()]
        at += pool_sizes.sum()
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches += np.split(pool, np.cumsum(pool_sizes)[:-1])
    perm = rng.permutation(n_batches)
    return [batches[i] for i in perm]


def seed_of(*keys: int) -> int:
    """A 63-bit seed from integer keys (numpy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> 1)


def batch_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Non-padding tokens of a batch."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


class DataPosition:
    """Which micro-batch a rank takes at a given global micro-batch counter."""

    def __init__(self, data: TrainData, cfg: TrainConfig, rank: int, world: int):
        self.data, self.cfg, self.rank, self.world = data, cfg, rank, world
        self.per_rank = len(epoch_batches(data.lengths, cfg.batch_size, 0, cfg.seed, world,
                                          cfg.bucket)) // world
        self._epoch, self._batches = -1, []

    def batch(self, micro: int) -> tuple[int, np.ndarray, dict[str, torch.Tensor]]:
        """(epoch, sample indices, collated batch) of this rank's micro-batch number `micro`."""
        epoch, i = divmod(micro, self.per_rank)
        if epoch != self._epoch:
            self._epoch = epoch
            self._batches = epoch_batches(self.data.lengths, self.cfg.batch_size, epoch,
                                          self.cfg.seed, self.world, self.cfg.bucket)
        k = i * self.world + self.rank  # index of the batch in the epoch, the same on every rank
        idx = self._batches[k]
        gen = torch.Generator().manual_seed(seed_of(self.cfg.seed, epoch, k))
        return epoch, idx, self.data.collate(idx, gen)


# ----------------------------------------------------------------------------------------------
# Processes, devices, precision


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    created: bool = False  # this loop started the process group (and ends it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed(device_type: str) -> Dist:
    """Join the process group that torchrun (or accelerate) describes in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    created = False
    if not torch.distributed.is_initialized():
        # the other ranks wait at a barrier while rank 0 evaluates and checkpoints: a final
        # evaluation of tens of thousands of samples and its paired bootstrap can outlast NCCL's
        # 10-minute default, which would end the run at its last step
        torch.distributed.init_process_group(backend="nccl" if device_type == "cuda" else "gloo",
                                             timeout=datetime.timedelta(hours=2))
        created = True
    return Dist(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                int(os.environ.get("LOCAL_RANK", "0")), created)


def resolve_device(cfg: TrainConfig, local_rank: int = 0) -> torch.device:
    return named_device(cfg.device, local_rank)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU by default, or on the CPU when asked; fp32 otherwise."""
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext()
    if device.type == "cpu":
        _check_cpu_bf16()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@functools.cache
def _check_cpu_bf16() -> None:
    """Warn (once) when this CPU lacks native bf16, where autocast makes a run crawl unexplained."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        # measured with the tiny preset: 14x slower than fp32 on an AVX2 AMD EPYC, 1.4x faster on
        # an AMX Xeon
        log.warning("this CPU has no native bf16 (%s): bf16 runs far slower than fp32 here",
                    torch.backends.cpu.get_cpu_capability())


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device
                   ) -> torch.optim.Optimizer:
    """AdamW; biases and LayerNorm weights are not decayed (BERT's rule).

    The fused implementation runs on CPUs too (torch >= 2.4) and matters there: for the tiny preset
    a step took 6.5 ms of CPU fused, 28 ms with `foreach`, 450 ms with torch's CPU default.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs = {"lr": cfg.lr, "betas": cfg.adam_betas, "eps": cfg.adam_eps}
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except RuntimeError:  # an older torch without fused AdamW for this device
        return torch.optim.AdamW(groups, foreach=True, **kwargs)


def make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to lr, then linear decay to 0 at max_steps."""
    warm, total = cfg.warmup, cfg.max_steps

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ----------------------------------------------------------------------------------------------
# Checkpoints


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    ck = Path(out) / CHECKPOINTS
    pointer = ck / LATEST
    if not pointer.exists():
        return None
    path = ck / pointer.read_text().strip()
    if not (path / STATE).exists():
        raise GroverError(f"names {path.name}, which is missing or incomplete", pointer)
    return path


def save_checkpoint(out: Path, step: int, model: nn.Module, tokenizer, state: dict,
                    keep: int) -> Path:
    """Write checkpoints/step-N atomically, point `latest` at it, drop the oldest beyond `keep`."""
    ck = out / CHECKPOINTS
    ck.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = ck / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, tokenizer, tmp)
    torch.save(state, tmp / STATE)
    write_json(tmp / "trainer_state.json", {k: v for k, v in state.items()
                                            if isinstance(v, int | float | str | dict)
                                            and k not in ("optimizer", "scheduler", "rng")})
    final = ck / name
    if final.exists():  # an older attempt at the same step, never the one `latest` names
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_text(ck / LATEST, name + "\n")
    done = sorted(p for p in ck.glob("step-*") if p.is_dir())
    # a folder after this step is an orphan of a run stopped before `latest` named it: sorted by
    # name it would outlive this one and the pruning below would drop the folder `latest` names
    for old in [p for p in done if p.name > name] + [p for p in done if p.name <= name][:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# Logging


class RunLog:
    """log.jsonl (and TensorBoard when importable), written by rank 0 only."""

    def __init__(self, out: Path, enabled: bool, resume_step: int | None):
        self.path = out / LOG
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():  # drop what followed the checkpoint
            # read_jsonl also drops a last line cut short when the run was killed mid-write
            kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= resume_step]
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        if torch_tb is not None:
            self.tb = torch_tb.SummaryWriter(str(out / "tb"), purge_step=resume_step)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            prefix = record.get("kind", "train")
            for k, v in record.items():
                if isinstance(v, int | float) and k not in ("step", "kind"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_log(path: str | Path) -> list[dict]:
    """Records of a run's log.jsonl (a run folder or the file)."""
    given = Path(path)
    if not given.exists():
        raise GroverError("no such training run folder or log file", given)
    path = given / LOG if given.is_dir() else given
    if not path.exists():
        raise GroverError("no log.jsonl: not a training run folder", given)
    return read_jsonl(path)


# ----------------------------------------------------------------------------------------------
# The loop


@dataclass
class TrainResult:
    step: int
    tokens_seen: int  # non-padding tokens through the model in training, all ranks
    samples_seen: int
    train_seconds: float  # time in training steps (no evaluation, no checkpoints)
    metrics: dict[str, Any] = field(default_factory=dict)  # the final evaluation
    rank: int = 0
    world: int = 1

    @property
    def tokens_per_second(self) -> float:
        """Non-padding tokens per second of training time, over the whole run (a resumed run's
        earlier part included): tokens_seen / train_seconds, where each step is timed from
        building its batch to its optimizer update, evaluations and checkpoints left out. The
        progress bar's tok_s is the same figure so far (`Throughput.rate`)."""
        return self.tokens_seen / max(self.train_seconds, 1e-9)


class Throughput:
    """Training tokens and seconds, step by step: `rate` over the run so far (the progress bar's
    tok_s, and at the end `TrainResult.tokens_per_second`), `take_window` over the steps since
    its last call (log.jsonl's tokens_per_s). Only time between `start` and `stop` counts, so an
    evaluation or a checkpoint between steps lowers neither; `clock` is injectable for tests.

    >>> t = iter([0.0, 2.0, 10.0, 11.0]); th = Throughput(clock=lambda: next(t))
    >>> th.start(); th.stop(100); th.start(); th.stop(50); th.rate, th.take_window()
    (50.0, 50.0)
    """

    def __init__(self, tokens: int = 0, seconds: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter):
        self.tokens, self.seconds, self.clock = tokens, seconds, clock
        self.window_tokens, self.window_seconds = 0, 0.0
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = self.clock()

    def stop(self, tokens: int) -> None:
        """End the step begun by `start`, which put `tokens` through the model."""
        dt = self.clock() - self._t0
        self.tokens += tokens
        self.seconds += dt
        self.window_tokens += tokens
        self.window_seconds += dt

    @property
    def rate(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    def take_window(self) -> float:
        """Tokens per second since the last call (or the start), then a fresh window."""
        rate = self.window_tokens / max(self.window_seconds, 1e-9)
        self.window_tokens, self.window_seconds = 0, 0.0
        return rate


# evaluate(model, autocast, final) -> metrics; `final` is True for the evaluation after the last step
Evaluate = Callable[[nn.Module, Callable[[], contextlib.AbstractContextManager], bool],
                    dict[str, Any]]


def train(model: nn.Module, data: TrainData, objective: type[nn.Module], cfg: TrainConfig,
          out: str | Path, evaluate: Evaluate | None = None, tokenizer=None, resume: bool = False,
          run_config: dict | None = None, progress: bool = True,
          by_hash: Mapping[str, str] | None = None) -> TrainResult:
    """Train `model` (in place) on `data`; returns counters and the final evaluation.

    objective: a class wrapping the model whose forward(**batch) returns the loss summed over the
    batch's targets, with a static `count(batch)` of those targets (`MaskedLM`,
    `SequenceClassification`). evaluate(model, autocast, final) -> metrics runs on rank 0 every
    `eval_every` steps and at the end (final=True), in eval mode without gradients. run_config (the caller's
    settings) is stored in checkpoints and must match on resume; `by_hash`: its paths compared by
    the hashes beside them (manifest.located_by_hash: a moved folder resumes). Checkpoints are
    written every `save_every` steps and at the end; `resume` continues from the latest one.
    """
    out = Path(out)
    threads_before = torch.get_num_threads()
    dist = init_distributed(device_type(cfg.device))  # nccl or gloo, before the rank's device
    device = resolve_device(cfg, dist.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif dist.world > 1 and device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # torch's default, every core, shared by this machine's ranks; OMP_NUM_THREADS is per rank
        # (torchrun sets 1 unless told, `groverlm run` a share of the cores: pretrain.launch_env)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))
        torch.set_num_threads(max(1, threads_before // local))
    try:
        return _train(model, data, objective, cfg, out, evaluate, tokenizer, resume,
                      run_config or {}, progress, dist, device, by_hash or {})
    finally:
        torch.set_num_threads(threads_before)
        if dist.created:
            torch.distributed.destroy_process_group()


def _train(model, data, objective, cfg, out, evaluate, tokenizer, resume, run_config, progress,
           dist: Dist, device: torch.device, by_hash: Mapping[str, str]) -> TrainResult:
    if device.type == "cpu" and getattr(model.config, "attention_probs_dropout_prob", 0) > 0 \
            and dist.main:
        log.warning("attention dropout makes SDPA use its slow math kernel on a CPU (attention about "
                    "10x slower); --set attention_probs_dropout_prob=0 avoids it")
    model.to(device)
    model.train()
    loss_module: nn.Module = objective(model)
    if dist.world > 1:
        loss_module = DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    step_fn = torch.compile(loss_module) if cfg.compile else loss_module
    opt = make_optimizer(model, cfg, device)
    sched = make_schedule(opt, cfg)
    position = DataPosition(data, cfg, dist.rank, dist.world)
    settings = {"train": stable(cfg),  # volatile fields (threads, device, ...) may change
                "run": run_config, "world_size": dist.world}
    step, tokens_seen, samples_seen, train_seconds = 0, 0, 0, 0.0
    metrics: dict[str, Any] = {}  # the latest evaluation
    loss_window = (0.0, 0)  # the loss summed over the steps since the last train record, and their count
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        state = torch.load(ckpt / STATE, map_location="cpu", weights_only=False)
        check_resume(ckpt, settings, saved=state["settings"],
                     hint="pass the first run's settings, or --overwrite to start again",
                     by_hash={f"run.{key}": digest for key, digest in by_hash.items()})
        with quiet_transformers():
            loaded = type(model).from_pretrained(str(ckpt))
        model.load_state_dict(loaded.state_dict())
        del loaded
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step, tokens_seen = state["step"], state["tokens_seen"]
        samples_seen, train_seconds = state["samples_seen"], state["train_seconds"]
        metrics = state.get("metrics", {})
        loss_window = tuple(state.get("loss_window", loss_window))  # so the next record is exact
        assert state["micro_batch"] == step * cfg.grad_accum
        if dist.main:
            log.info("resumed from %s (step %d, %s tokens seen)", ckpt, step, f"{tokens_seen:,}")
    elif resume and dist.main:
        # no folder yet is the usual start (fine-tuning resumes each seed's folder): no INFO line
        # per seed; a checkpoints folder without a finished checkpoint is worth one
        fresh = not (out / CHECKPOINTS).exists()
        log.log(logging.DEBUG if fresh else logging.INFO, "no checkpoint in %s: starting at step 0",
                out / CHECKPOINTS)
    runlog = RunLog(out, dist.main, step if ckpt is not None else None)
    amp = lambda: autocast(device, cfg.precision)  # noqa: E731

    def run_eval() -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        if dist.main and evaluate is not None:
            model.eval()
            with torch.no_grad():
                metrics = evaluate(model, amp, step >= cfg.max_steps)
            model.train()
            runlog.write({"kind": "eval", "step": step, "tokens_seen": tokens_seen, **metrics})
        dist.barrier()
        return metrics

    def summed(x: torch.Tensor) -> torch.Tensor:
        """x summed over the ranks (every rank calls it at the same step)."""
        if dist.world == 1:
            return x
        x = x.clone()
        torch.distributed.all_reduce(x)
        return x

    def checkpoint() -> None:
        windows = [torch.zeros_like(loss_acc) for _ in range(dist.world)]
        if dist.world > 1:  # every rank's loss window, each taken back by its rank on resume
            torch.distributed.all_gather(windows, loss_acc)
        else:
            windows = [loss_acc]
        if dist.main:
            state = {"step": step, "tokens_seen": tokens_seen, "samples_seen": samples_seen,
                     "train_seconds": train_seconds, "micro_batch": step * cfg.grad_accum,
                     "epoch": (step * cfg.grad_accum) // position.per_rank,
                     "settings": json.loads(json.dumps(settings)),
                     "metrics": metrics,
                     "loss_window": [[float(w) for w in windows], loss_n],
                     "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(),
                     "rng": rng_state()}
            save_checkpoint(out, step, model, tokenizer, state, cfg.keep_checkpoints)
        dist.barrier()

    bar = None
    if progress and dist.main:
        bar = tqdm(total=cfg.max_steps, initial=step, unit="step", desc="train", dynamic_ncols=True)
    # the bar's tok_s is the run's rate so far, as the summary reports it: the rate of the last
    # log window swung from 3,915 to 39,236 on a shared CPU in a run that averaged 16,448
    speed = Throughput(tokens_seen, train_seconds)
    window = loss_window[0]  # per rank (a single number: a checkpoint from before, one rank's)
    window = window[dist.rank] if isinstance(window, list) else window if dist.main else 0.0
    loss_acc = torch.tensor(float(window), dtype=torch.float32, device=device)
    loss_n = int(loss_window[1])
    while step < cfg.max_steps:
        speed.start()
        torch.manual_seed(seed_of(cfg.seed, step, dist.rank))  # dropout: a function of the step
        micro = [position.batch(step * cfg.grad_accum + j) for j in range(cfg.grad_accum)]
        counts = torch.tensor([sum(objective.count(b) for _, _, b in micro),
                               sum(batch_tokens(b) for _, _, b in micro),
                               sum(len(idx) for _, idx, _ in micro)], dtype=torch.float64)
        if dist.world > 1:  # on the device: NCCL reduces CUDA tensors only
            counts = counts.to(device)
            torch.distributed.all_reduce(counts)
            counts = counts.cpu()
        targets = max(float(counts[0]), 1.0)  # every rank's
        scale = dist.world / targets  # DDP averages gradients over ranks
        for j, (_, _, batch) in enumerate(micro):
            batch = {k: None if v is None else v.to(device, non_blocking=True)
                     for k, v in without_full_mask(batch).items()}
            sync = dist.world == 1 or j == cfg.grad_accum - 1
            with (contextlib.nullcontext() if sync else loss_module.no_sync()), amp():
                loss_sum = step_fn(**batch)
            (loss_sum * scale).backward()
            loss_acc += loss_sum.detach() / targets  # this rank's share of the step's mean
        loss_n += 1
        grad_norm = torch.nn.utils.clip_grad_norm_(
            model.parameters(), cfg.clip_norm if cfg.clip_norm > 0 else float("inf"))
        lr = sched.get_last_lr()[0]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if device.type == "cuda" and (step % cfg.log_every == 0 or step == cfg.max_steps):
            torch.cuda.synchronize()
        speed.stop(int(counts[1]))
        tokens_seen, train_seconds = speed.tokens, speed.seconds
        samples_seen += int(counts[2])
        if bar is not None:
            bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            record = {"kind": "train", "step": step, "epoch": micro[-1][0],
                      "loss": float(summed(loss_acc)) / loss_n, "lr": lr,
                      "grad_norm": float(grad_norm),
                      "tokens_seen": tokens_seen, "tokens_per_s": speed.take_window(),
                      "elapsed_s": round(train_seconds, 3)}
            runlog.write(record)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.3f}",
                                tok_s=f"{speed.rate:,.0f}", refresh=False)
            loss_acc, loss_n = torch.zeros((), device=device), 0
        last = step == cfg.max_steps
        if last or (cfg.eval_every and step % cfg.eval_every == 0):
            metrics = run_eval()
        if last or (cfg.save_every and step % cfg.save_every == 0):
            checkpoint()
    if bar is not None:
        bar.close()
    runlog.close()
    return TrainResult(step, tokens_seen, samples_seen, train_seconds, metrics, dist.rank,
                       dist.world)
