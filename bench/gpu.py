"""GPU check: grover-base pretraining throughput and MFU, bf16 against fp32, a 3-minute pretraining.

One command, sized to finish within 8 minutes on one H100 or H200 (`python bench/gpu.py`):

- throughput: `grover-base` (12 layers, hidden 768) trained by `groverlm.train.train`, our
  pretraining loop (masking, AdamW, clipping, bf16 autocast, SDPA attention), on random tokens with
  every sample 510 tokens + [CLS]/[SEP] (512 positions), eager and under `torch.compile`, and
  compiled without dropout (beside: the target is judged on GROVER's model). Warm-up steps are not
  timed. Reports tokens/s (all 512 positions count), seconds per step, model FLOPs
  per token (the formula is in the JSON), achieved TFLOP/s and MFU against the card's dense bf16
  peak (target: MFU >= 40%).
- precision: the masked-LM loss of one batch with one set of weights, in fp32 and under bf16
  autocast (target: relative difference <= 2%); repeated on the pretrained model of the next part.
- pretrain: builds chr20's 600-cycle BPE vocabulary and a corpus of 510-token samples (55-63 Mb held
  out) with the project's own stages, times a few steps of the `small` preset (6 layers of 512) as
  a DeBERTa-v2 with a neighbour convolution (25% isolated targets, lr 1e-3) to choose the step
  count that fills 3 minutes, pretrains with `groverlm.pretrain.pretrain` and
  reports held-out masked-token accuracy beside the unigram and context-table baselines (target:
  above the context table).

Reads hg19_chr20.fa.gz from --data (default $GROVERLM_DATA, else ../shared/data beside the
repository, else the `groverlm data fetch` cache). Writes the BPE, vocabulary, corpus and model into
--work (default runs/gpu_check; finished stages are reused by later runs) and every result into one
JSON (--out, default bench/gpu.json), rewritten after each part so that a run cut short keeps what
it measured, then prints a short table. A part that fails is recorded in the JSON with its error and
the others still run; the exit status is then 1 (a missed target does not change it). A bad option,
and for the pretrain part a chr20 not found or a --holdout outside it, stops the check before any
part runs (exit status 2).

`--smoke` runs every part on the CPU at toy sizes (the same presets cut to 2 layers of 64, a few
steps, a synthetic 60 kbp genome, `torch.compile` with its tracing-only "eager" backend) in seconds,
so that the code is tested without a GPU (tests/test_bench_gpu.py); its numbers mean nothing.

    python bench/gpu.py                                   # the GPU check
    python bench/gpu.py --sections throughput --batch-size 96 --peak-tflops 989
    python bench/gpu.py --smoke --out /tmp/gpu_smoke.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from groverlm import __version__, lazy
from groverlm.bpe.export import export_vocab
from groverlm.bpe.merges import NUM_SPECIAL
from groverlm.bpe.train import write_training
from groverlm.cli import guarded
from groverlm.corpus import CorpusConfig, Region, write_corpus
from groverlm.data import cache_dir
from groverlm.errors import GroverError
from groverlm.fasta import iter_records
from groverlm.manifest import MANIFEST, write_text
from groverlm.masking import MaskingConfig, MLMData
from groverlm.models import (
    build_config,
    count_parameters,
    load_model,
    named_device,
    new_mlm_model,
    parse_overrides,
    quiet_transformers,
)
from groverlm.pretrain import ModelConfig, build_run, pretrain
from groverlm.train import MaskedLM, TrainConfig, autocast, read_log, train
from mlm_common import FLOPS_FORMULA, SPECIAL_IDS, RandomSplit, device_peak, flops_per_token

transformers = lazy.module("transformers")  # loaded on first use (--help needs none of it)

REPO = Path(__file__).resolve().parents[1]
CHR20 = "hg19_chr20.fa.gz"
SECTIONS = ("throughput", "precision", "pretrain")

# a 3-minute run underfits, so no dropout; initializer_range 1/sqrt(hidden) ~ 0.044 rather than
# BERT's 0.02, at which small BERTs sat on the unigram plateau for thousands of steps on chr20 (the
# CPU measurements noted at models.PRESETS). The pretraining model is the CPU preset's kind: a stock
# DeBERTa-v2 with a convolution over each token's neighbours beside attention. On an H200
# (2026-12-04, bench/README.md) a BERT `small` with 15% random targets and lr 5e-4 stayed at 2.0% in
# 3,009 steps (context table 8.5%); this model with 25% isolated targets and lr 1e-3 reached 9.4% in
# 180 s.
SHORT_RUN = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
             "initializer_range": 0.044}
PRETRAIN_MODEL = {**SHORT_RUN, "model_type": "deberta-v2", "conv_kernel_size": 3}

# throughput runs: name -> (torch.compile mode, None for eager; config changes). The MFU target is
# judged on the runs that keep GROVER's model (no changes); "compile-nodropout" shows what dropout
# (0.1 on hidden states and attention, BERT's and GROVER's) costs, as recipes without it
# (ModernBERT, MosaicBERT) train. "compile-autotune" (inductor benchmarks kernel choices while it
# compiles: minutes more warm-up) is not in the default runs, which must fit the 8-minute check.
THROUGHPUT_RUNS = {
    "eager": (None, {}),
    "compile": ("default", {}),
    "compile-nodropout": ("default",
                          {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}),
    "compile-autotune": ("max-autotune-no-cudagraphs", {}),
}


@dataclass(frozen=True)
class Check:
    """Sizes and targets of the check; the defaults are for one H100 or H200, SMOKE's for a CPU."""

    device: str = "cuda"  # cuda or cuda:N (cpu only with --smoke: the figures need a GPU)
    threads: int | None = None  # torch CPU threads; None: torch's default
    # throughput and precision
    preset: str = "grover-base"  # GROVER's architecture
    overrides: dict[str, Any] = field(default_factory=dict)  # BertConfig fields (--set)
    vocab_size: int = 609  # GROVER's 600 merges + A/C/G/T + 5 special tokens
    seq: int = 510  # tokens per sample; 512 positions with [CLS] and [SEP]
    batch_size: int = 128  # 65k positions a step: larger matrices and fewer launches per token than 64
    mask_rate: float = 0.022  # GROVER's target share; the vocabulary head's FLOPs follow it
    # untimed: kernel selection, the allocator, compilation and the recompile when the number of
    # targets first changes (the masked-position head has a data-dependent shape)
    warmup_steps: int = 10
    timed_steps: int = 30
    compile_backend: str = "inductor"  # torch.compile's backend in the compiled run
    throughput_runs: tuple[str, ...] = ("eager", "compile", "compile-nodropout")  # THROUGHPUT_RUNS
    peak_tflops: float | None = None  # dense bf16 peak; None: from the device name
    target_mfu: float = 0.40
    tolerance: float = 0.02  # largest relative bf16/fp32 loss difference that passes
    # pretraining
    cycles: int = 600  # BPE merge cycles: the vocabulary of the README's chr20 runs
    max_tokens: int = 510  # longest sample (GROVER)
    min_tokens: int = 20
    holdout: str = "chr20:55000000-63025520"  # the README's held-out region (context table 9.8%)
    pretrain_preset: str = "small"  # 6 layers of 512, ~20M parameters: larger than `tiny`
    pretrain_overrides: dict[str, Any] = field(default_factory=lambda: dict(PRETRAIN_MODEL))
    pretrain_seconds: float = 180.0  # training time the step count is chosen to fill
    pretrain_max_steps: int | None = None  # upper bound on that step count
    pretrain_batch_size: int = 128
    pretrain_lr: float = 1e-3  # above GROVER's 4e-4: a smaller model, a short run
    # training targets; 11x GROVER's 2.2% gives a short run 11x the signal. Evaluation keeps 2.2%
    # (ModelConfig.eval_mask_rate), so targets keep their true neighbours, as the context table
    pretrain_mask_rate: float = 0.25
    # no two training targets side by side (ModelConfig.mask_isolated), as in the CPU demo: with 25%
    # random targets, 44% of them would lose a neighbour the evaluation and the table both see
    pretrain_mask_isolated: bool = True
    # BERT's 80/10/10 in pretrain (below): on the CPU, a short run with no target left unchanged
    # (GROVER's 80/20) stayed at the unigram baseline (bench/README.md, learning per minute)
    calibrate_steps: tuple[int, int] = (5, 25)  # (untimed, timed) steps that time the model first
    total_seconds: float = 480.0  # target for the whole check

    def __post_init__(self):
        for w, t in ((self.warmup_steps, self.timed_steps), self.calibrate_steps):
            if w < 0 or t < 1:
                raise ValueError(f"need >= 0 warm-up steps and >= 1 timed step, got {w}, {t}")
        unknown = sorted(set(self.throughput_runs) - set(THROUGHPUT_RUNS))
        if unknown or not self.throughput_runs:
            raise ValueError(f"throughput runs {unknown or 'none'}: choose from {list(THROUGHPUT_RUNS)}")
        if self.pretrain_seconds <= 0 or not 0 < self.tolerance < 1:
            raise ValueError("pretrain_seconds must be positive and tolerance in (0, 1)")
        sizes = ("seq", "batch_size", "cycles", "max_tokens", "min_tokens", "pretrain_batch_size")
        small = [n for n in sizes if getattr(self, n) < 1]
        if small:
            raise ValueError(f"{small[0]} must be 1 or more, got {getattr(self, small[0])}")


# --smoke keeps the GPU check's presets (so the same model classes and attention run) shrunk to
# 2 layers; no attention dropout, which on a CPU sends SDPA to its slow math kernel
TOY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
       "intermediate_size": 128, "attention_probs_dropout_prob": 0.0}
GPU = Check()
SMOKE = replace(
    GPU, device="cpu", threads=1, overrides=TOY, seq=62, batch_size=4, warmup_steps=2,
    timed_steps=2, compile_backend="eager", peak_tflops=1.0, cycles=40, max_tokens=60,
    min_tokens=8, holdout="chr20:40000-60000", pretrain_overrides={**PRETRAIN_MODEL, **TOY},
    pretrain_seconds=1.0, pretrain_max_steps=4, pretrain_batch_size=8, calibrate_steps=(1, 2))


@dataclass
class Context:
    """What every part shares: where it runs and what it reads and writes."""

    cfg: Check
    device: torch.device
    work: Path
    genome: Path | None  # chr20 or --smoke's genome, before any part runs; None without pretrain
    smoke: bool
    fresh: bool  # rebuild the BPE, vocabulary and corpus even when finished ones are in `work`
    peak: float | None  # FLOP/s
    peak_source: str


# ----------------------------------------------------------------------------------------------
# Helpers


def log_every(warmup: int, timed: int) -> int:
    """The loop synchronises the GPU only at log steps, so logging every step would stall it; this
    logs at the end of the warm-up and of the timed steps and as seldom as that allows.

    >>> log_every(10, 30), log_every(0, 30), log_every(5, 15)
    (10, 30, 5)
    """
    return math.gcd(warmup, timed)


def timed_loop(model, data, objective, tcfg: TrainConfig, warmup: int, folder: Path) -> dict:
    """Train with `groverlm.train.train` and time the steps after `warmup` from its log."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".timing") as out:
        # the loop ends with a checkpoint (model and optimizer); it comes after the last timed step
        res = train(model, data, objective, tcfg, out, progress=False)
        records = {r["step"]: r for r in read_log(out) if r["kind"] == "train"}
    start = records.get(warmup, {"elapsed_s": 0.0, "tokens_seen": 0})
    end = records[tcfg.max_steps]
    seconds = end["elapsed_s"] - start["elapsed_s"]
    tokens = end["tokens_seen"] - start["tokens_seen"]
    return {"tokens_per_s": tokens / seconds, "step_s": seconds / (tcfg.max_steps - warmup),
            "timed_tokens": int(tokens), "timed_s": round(seconds, 3),
            "warmup_s": round(start["elapsed_s"], 3), "last_loss": end["loss"],
            "all_steps_tokens_per_s": res.tokens_per_second}


@contextlib.contextmanager
def compile_backend(backend: str, mode: str = "default") -> Iterator[None]:
    """torch.compile with `backend` (and inductor's `mode`) inside. train() calls torch.compile with
    the defaults; --smoke swaps in "eager", which traces with dynamo as inductor does but generates
    no code (and takes no mode), so that the compiled path runs on a CPU in seconds rather than
    minutes."""
    if backend == "inductor" and mode == "default":
        yield
        return
    real = torch.compile
    torch.compile = functools.partial(real, backend=backend,
                                      **({"mode": mode} if backend == "inductor" else {}))
    try:
        yield
    finally:
        torch.compile = real


def compare_precision(model, batch: dict[str, torch.Tensor], device: torch.device, tolerance: float
                      ) -> dict[str, Any]:
    """Mean masked-token loss of `batch` in fp32 (TF32 off) and under bf16 autocast, same weights,
    eval mode (no dropout): the two must agree within `tolerance` (relative)."""
    model = model.to(device).eval()
    objective = MaskedLM(model)
    batch = {k: v.to(device) for k, v in batch.items()}
    targets = MaskedLM.count(batch)
    matmul_tf32, cudnn_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            fp32 = float(objective(**batch)) / targets
            with autocast(device, "bf16"):
                bf16 = float(objective(**batch)) / targets
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul_tf32, cudnn_tf32
    rel = abs(bf16 - fp32) / max(abs(fp32), 1e-12)
    return {"loss_fp32": fp32, "loss_bf16": bf16, "relative_difference": rel, "tolerance": tolerance,
            "pass": rel <= tolerance, "targets": int(targets),
            "batch": list(batch["input_ids"].shape)}


def random_data(cfg: Check, samples: int) -> MLMData:
    """Masked-LM batches of random tokens, every sample `cfg.seq` long."""
    return MLMData(RandomSplit(samples, cfg.vocab_size, cfg.seq), SPECIAL_IDS,
                   MaskingConfig(rate=cfg.mask_rate), torch.arange(NUM_SPECIAL, cfg.vocab_size),
                   pad_multiple=8)


def model_summary(model, preset: str) -> dict[str, Any]:
    c = model.config
    return {"preset": preset, "model_type": c.model_type, "layers": c.num_hidden_layers,
            "hidden": c.hidden_size, "heads": c.num_attention_heads, "vocab": c.vocab_size,
            "parameters": count_parameters(model),
            "non_embedding_parameters": count_parameters(model, embeddings=False),
            "attention": getattr(c, "_attn_implementation", None)}


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def max_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def error_record(err: BaseException) -> dict[str, str]:
    return {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-4000:]}


# ----------------------------------------------------------------------------------------------
# Part 1: throughput and MFU


def run_throughput(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    config = build_config(cfg.preset, cfg.vocab_size, cfg.overrides, SPECIAL_IDS.pad_token_id)
    steps = cfg.warmup_steps + cfg.timed_steps
    data = random_data(cfg, steps * cfg.batch_size)  # one epoch: every batch is new data
    f_tok = flops_per_token(config, cfg.seq + 2, cfg.mask_rate)
    out: dict[str, Any] = {
        "model": model_summary(new_mlm_model(config), cfg.preset), "precision": "bf16",
        "tokens_per_sample": cfg.seq, "positions": cfg.seq + 2, "batch_size": cfg.batch_size,
        "warmup_steps": cfg.warmup_steps, "timed_steps": cfg.timed_steps,
        "mask_rate": cfg.mask_rate, "flops_per_token": f_tok, "flops_formula": FLOPS_FORMULA,
        "peak_tflops": ctx.peak / 1e12 if ctx.peak else None, "peak_source": ctx.peak_source,
        "target_mfu": cfg.target_mfu,
        "target_tokens_per_s": cfg.target_mfu * ctx.peak / f_tok if ctx.peak else None,
        "runs": {}}
    tcfg = TrainConfig(max_steps=steps, batch_size=cfg.batch_size, eval_every=0, save_every=0,
                       log_every=log_every(cfg.warmup_steps, cfg.timed_steps), device=str(ctx.device),
                       precision="bf16", threads=cfg.threads)
    for name in cfg.throughput_runs:  # eager first: its figure survives a failing compilation
        mode, changes = THROUGHPUT_RUNS[name]
        compiled = mode is not None
        t0 = time.perf_counter()
        try:
            if ctx.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(ctx.device)
            run_config = build_config(cfg.preset, cfg.vocab_size, {**cfg.overrides, **changes},
                                      SPECIAL_IDS.pad_token_id)
            with compile_backend(cfg.compile_backend if compiled else "inductor",
                                 mode if compiled else "default"):
                r = timed_loop(new_mlm_model(run_config, seed=0), data, MaskedLM,
                               replace(tcfg, compile=compiled), cfg.warmup_steps, ctx.work)
            achieved = r["tokens_per_s"] * f_tok
            r.update(compile=compiled, backend=cfg.compile_backend if compiled else None,
                     mode=mode, changes=changes,
                     tflops=achieved / 1e12, mfu=achieved / ctx.peak if ctx.peak else None,
                     max_memory_gib=max_memory_gib(ctx.device))
        except Exception as err:  # recorded; the other runs still count
            r = error_record(err)
        finally:
            if compiled:
                torch._dynamo.reset()  # its graphs hold onto the model
            free_memory()
        r["wall_s"] = round(time.perf_counter() - t0, 2)
        out["runs"][name] = r
    # the target is on GROVER's own model: a run that changes the model (no dropout) is shown beside
    done = {k: v for k, v in out["runs"].items() if "error" not in v and not v["changes"]}
    if done:
        best = max(done, key=lambda k: done[k]["tokens_per_s"])
        out["best"] = {"run": best, "tokens_per_s": done[best]["tokens_per_s"],
                       "mfu": done[best]["mfu"]}
    errors = [k for k, v in out["runs"].items() if "error" in v]
    if len(errors) == len(out["runs"]):
        raise RuntimeError(f"every throughput run failed: {out['runs'][errors[0]]['error']}")
    if errors:
        out["error"] = f"the {', '.join(errors)} run failed: {out['runs'][errors[0]]['error']}"
    return out


# ----------------------------------------------------------------------------------------------
# Part 2: bf16 against fp32


def run_precision(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    config = build_config(cfg.preset, cfg.vocab_size, cfg.overrides, SPECIAL_IDS.pad_token_id)
    model = new_mlm_model(config, seed=0)
    batch = random_data(cfg, cfg.batch_size).collate(np.arange(cfg.batch_size),
                                                     torch.Generator().manual_seed(0))
    out = {"model": model_summary(model, cfg.preset), "weights": "fresh, seed 0",
           "data": "random tokens, masked as in the throughput part",
           **compare_precision(model, batch, ctx.device, cfg.tolerance)}
    del model
    free_memory()
    return out


# ----------------------------------------------------------------------------------------------
# Part 3: a short pretraining on chr20


def find_chr20(data: str | None) -> Path:
    env = os.environ.get("GROVERLM_DATA")
    folders = [Path(data)] if data else [
        *([Path(env)] if env else []), REPO.parent / "shared" / "data", REPO / "shared" / "data",
        cache_dir()]
    for folder in folders:
        if (folder / CHR20).exists():
            return folder / CHR20
    raise GroverError(f"no {CHR20} in {', '.join(map(str, folders))}: pass --data DIR or run "
                      f"`groverlm data fetch demo`")


def synthetic_genome(path: Path, bp: int = 60_000, seed: int = 0) -> Path:
    """--smoke's genome: one record `chr20` of random bases with a 20 bp repeat every ~2 kbp (so BPE
    finds long tokens)."""
    rng = np.random.default_rng(seed)
    seq = "".join(np.array(list("ACGT"))[rng.integers(0, 4, bp)])
    seq = "".join(seq[i : i + 1980] + "AGGCTGAGGCAGGAGAATCG" for i in range(0, bp, 2000))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(">chr20 synthetic\n" + "".join(seq[i : i + 60] + "\n"
                                                   for i in range(0, len(seq), 60)))
    return path


def finished(folder: Path, inputs: list[Path], **config: Any) -> bool:
    """Whether `folder` holds a finished stage made from `inputs` with these settings."""
    path = folder / MANIFEST
    if not path.exists():
        return False
    m = json.loads(path.read_text())
    paths = {i["path"] for i in m.get("inputs", [])}
    return all(str(p) in paths for p in inputs) and all(
        m.get("config", {}).get(k) == v for k, v in config.items())


def prepare_corpus(ctx: Context, genome: Path) -> tuple[Path, dict[str, Any]]:
    """BPE training, vocabulary export and corpus, as `groverlm bpe train`, `bpe export` and
    `corpus` would make them; finished stages with the same settings in --work are reused."""
    cfg = ctx.cfg
    bpe, vocab, corpus = (ctx.work / f"bpe{cfg.cycles}", ctx.work / f"vocab{cfg.cycles}",
                          ctx.work / f"corpus{cfg.max_tokens}")
    holdout = (Region.parse(cfg.holdout),)
    stages = [
        ("bpe_train", bpe, [genome], {"merges": cfg.cycles, "save_tokens_at": cfg.cycles},
         lambda: write_training(genome, bpe, cfg.cycles, save_tokens_at=cfg.cycles, overwrite=True)),
        ("bpe_export", vocab, [bpe / "merges.tsv"], {"cycles": cfg.cycles},
         lambda: export_vocab(bpe, cfg.cycles, vocab, overwrite=True)),
        ("corpus", corpus, [vocab, genome], {"max_tokens": cfg.max_tokens,
                                              "min_tokens": cfg.min_tokens,
                                              "holdout": [str(r) for r in holdout]},
         lambda: write_corpus(vocab, genome, corpus, CorpusConfig(
             max_tokens=cfg.max_tokens, min_tokens=cfg.min_tokens, holdout=holdout),
             overwrite=True)),
    ]
    seconds: dict[str, Any] = {}
    rebuilt = ctx.fresh
    for name, folder, inputs, config, make in stages:
        if not rebuilt and finished(folder, inputs, **config):
            seconds[name] = "reused"
            continue
        t0 = time.perf_counter()
        make()
        seconds[name] = round(time.perf_counter() - t0, 2)
        rebuilt = True  # the stages after it read what it wrote
    m = json.loads((corpus / MANIFEST).read_text())
    return corpus, {"path": str(corpus), "genome": str(genome), "cycles": cfg.cycles,
                    "vocab_size": m["vocab_size"], "holdout": cfg.holdout, "splits": m["splits"],
                    "seconds": seconds}


def run_pretrain(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    corpus, corpus_info = prepare_corpus(ctx, ctx.genome)
    pcfg = ModelConfig(preset=cfg.pretrain_preset, overrides=dict(cfg.pretrain_overrides),
                        mask_rate=cfg.pretrain_mask_rate, mask_split=(0.8, 0.1),
                        mask_isolated=cfg.pretrain_mask_isolated,
                        final_eval_samples=0, pad_multiple=8)
    base = TrainConfig(batch_size=cfg.pretrain_batch_size, lr=cfg.pretrain_lr, save_every=0,
                       eval_every=0, device=str(ctx.device), threads=cfg.threads)

    # time the model on this corpus first (eager, as the run), to choose the steps of the budget
    run = build_run(corpus, pcfg, base.seed, base.batch_size)
    warm, timed = cfg.calibrate_steps
    cal = timed_loop(run.model, run.data, MaskedLM,
                     replace(base, max_steps=warm + timed, log_every=log_every(warm, timed)), warm,
                     ctx.work)
    tokens_per_step = cfg.pretrain_batch_size * float(run.data.lengths.mean())
    steps = max(1, int(cfg.pretrain_seconds * cal["tokens_per_s"] / tokens_per_step))
    if cfg.pretrain_max_steps:
        steps = min(steps, cfg.pretrain_max_steps)
    tcfg = replace(base, max_steps=steps, eval_every=max(1, steps // 5),
                   log_every=max(1, steps // 100))

    out_dir = ctx.work / f"pretrain_{cfg.pretrain_preset}"
    t0 = time.perf_counter()
    s = pretrain(corpus, out_dir, pcfg, tcfg, overwrite=True, progress=False)
    wall = time.perf_counter() - t0
    curve = [{k: r.get(k) for k in ("step", "tokens_seen", "mlm_loss", "mlm_accuracy",
                                    "unigram_accuracy", "context_accuracy")}
             for r in read_log(out_dir) if r["kind"] == "eval"]
    with quiet_transformers():
        model = load_model(out_dir)
    f_tok = flops_per_token(model.config, float(run.data.lengths.mean()), cfg.pretrain_mask_rate)
    batch = run.data.collate(np.arange(min(cfg.pretrain_batch_size, len(run.data))),
                             torch.Generator().manual_seed(0))
    precision = {**compare_precision(model, batch, ctx.device, cfg.tolerance),
                 "weights": "pretrained", "data": "a training batch of the corpus"}
    context = s.get("context_accuracy")
    out = {
        "corpus": corpus_info, "model": model_summary(model, cfg.pretrain_preset),
        "overrides": dict(cfg.pretrain_overrides), "out": str(out_dir),
        "batch_size": cfg.pretrain_batch_size, "lr": cfg.pretrain_lr,
        "mask_rate": cfg.pretrain_mask_rate, "mask_isolated": cfg.pretrain_mask_isolated,
        "eval_mask_rate": getattr(pcfg, "eval_mask_rate", None),
        "budget_s": cfg.pretrain_seconds,
        "calibration": {"steps": list(cfg.calibrate_steps), **cal},
        "planned_steps": steps, "steps": s["steps"], "tokens_seen": s["tokens_seen"],
        "train_seconds": s["train_seconds"], "tokens_per_second": s["tokens_per_second"],
        "wall_s": round(wall, 2),
        "mfu": s["tokens_per_second"] * f_tok / ctx.peak if ctx.peak else None,
        "mlm_loss": s["mlm_loss"], "perplexity": s["perplexity"],
        "mlm_accuracy": s["mlm_accuracy"], "unigram_accuracy": s["unigram_accuracy"],
        "context_accuracy": context, "test_masked_tokens": s["masked_tokens"],
        "clears_unigram": s["mlm_accuracy"] > s["unigram_accuracy"],
        "clears_context_table": None if context is None else s["mlm_accuracy"] > context,
        "curve": curve, "bf16_vs_fp32": precision}
    if context is None:
        out["note"] = "eval.json has no context_accuracy: groverlm.pretrain predates the baseline"
    del model, run
    free_memory()
    return out


PARTS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "throughput": run_throughput, "precision": run_precision, "pretrain": run_pretrain}


# ----------------------------------------------------------------------------------------------
# Report


def environment(device: torch.device) -> dict[str, Any]:
    env = {"groverlm": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "transformers": transformers.__version__,
           "device": str(device), "cpus": os.cpu_count(), "host": platform.node(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["device_memory_gib"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    else:
        env["device_name"] = platform.processor() or platform.machine()
    try:
        git = ["git", "-C", str(REPO)]
        env["commit"] = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True, timeout=10, check=True).stdout.strip()
        env["uncommitted_changes"] = bool(subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
            text=True, timeout=10, check=True).stdout.strip())
    except (OSError, subprocess.SubprocessError):  # a copy of the tree without .git
        env["commit"] = None
    return env


def targets(report: dict[str, Any], cfg: Check) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it was met (None: not measured)."""
    thr = report.get("throughput", {}).get("best", {})
    prec = report.get("precision", {})
    pre = report.get("pretrain", {})
    context = pre.get("context_accuracy")
    rows = [
        (f"{cfg.preset} MFU, {cfg.seq} tokens, bf16, best of compile on/off, GROVER's model",
         thr.get("mfu"),
         f">= {cfg.target_mfu}", None if thr.get("mfu") is None else thr["mfu"] >= cfg.target_mfu),
        (f"bf16/fp32 loss, relative difference (fresh {cfg.preset})",
         prec.get("relative_difference"), f"<= {cfg.tolerance}", prec.get("pass")),
        (f"bf16/fp32 loss, relative difference (pretrained {cfg.pretrain_preset})",
         pre.get("bf16_vs_fp32", {}).get("relative_difference"), f"<= {cfg.tolerance}",
         pre.get("bf16_vs_fp32", {}).get("pass")),
        (f"{cfg.pretrain_seconds:.0f} s pretraining of {cfg.pretrain_preset}: held-out masked "
         f"accuracy above the context table's", pre.get("mlm_accuracy"),
         "> context table" + ("" if context is None else f" ({context:.4f})"),
         pre.get("clears_context_table")),
        ("whole check, seconds", report.get("seconds"), f"<= {cfg.total_seconds:.0f}",
         report["seconds"] <= cfg.total_seconds if "seconds" in report else None),
    ]
    return [{"target": t, "value": v, "goal": g, "pass": p} for t, v, g, p in rows]


def write_report(path: Path, report: dict[str, Any]) -> None:
    """The JSON, atomically; a numpy number (or anything else) that slipped in must not lose it."""
    def plain(x: Any) -> Any:
        return x.item() if isinstance(x, np.generic) else str(x)

    write_text(path, json.dumps(report, indent=2, default=plain) + "\n")


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def print_table(report: dict[str, Any], out: Path) -> None:
    env = report["environment"]
    print(f"\nGPU check{' (--smoke: toy sizes on the CPU)' if report['smoke'] else ''} on "
          f"{env['device_name']}, {report['seconds']:.0f} s -> {out}")
    thr = report.get("throughput", {})
    if "runs" in thr:
        m = thr["model"]
        print(f"throughput: {m['preset']} ({m['layers']}x{m['hidden']}, {m['attention']}), batch "
              f"{thr['batch_size']} x {thr['positions']} positions, bf16; "
              f"{thr['flops_per_token'] / 1e9:.3f} GFLOP/token, peak {thr['peak_tflops']} TFLOP/s")
        for name, r in thr["runs"].items():
            if "error" in r:
                print(f"  {name:17s} failed: {r['error'][:200]}")
            else:
                print(f"  {name:17s} {r['tokens_per_s']:12,.0f} tokens/s  {r['step_s']:.4f} s/step  "
                      f"{r['tflops']:7.1f} TFLOP/s  MFU {pct(r['mfu'])}  (warm-up {r['warmup_s']:.0f} s)")
    for name in SECTIONS:
        if "error" in report.get(name, {}) and "runs" not in report[name]:
            print(f"{name}: failed: {report[name]['error'][:300]}")
    prec = report.get("precision", {})
    if "loss_fp32" in prec:
        print(f"bf16 vs fp32, fresh {prec['model']['preset']}: loss {prec['loss_fp32']:.5f} vs "
              f"{prec['loss_bf16']:.5f}, difference {pct(prec['relative_difference'], 3)} "
              f"({'pass' if prec['pass'] else 'FAIL'})")
    pre = report.get("pretrain", {})
    if "mlm_accuracy" in pre:
        print(f"pretrain: {pre['model']['preset']} ({pre['model'].get('model_type', 'bert')} "
              f"{pre['model']['layers']}x{pre['model']['hidden']})"
              f", {pre['steps']:,} steps x {pre['batch_size']} in {pre['train_seconds']:.0f} s "
              f"({pre['tokens_per_second']:,.0f} tokens/s, MFU {pct(pre['mfu'])}); held-out "
              f"masked accuracy {pct(pre['mlm_accuracy'], 2)}, unigram "
              f"{pct(pre['unigram_accuracy'], 2)}, context table {pct(pre['context_accuracy'], 2)}")
        b = pre["bf16_vs_fp32"]
        print(f"  bf16 vs fp32 on it: difference {pct(b['relative_difference'], 3)} "
              f"({'pass' if b['pass'] else 'FAIL'})")
    print("targets:")
    for t in report["targets"]:
        mark = {True: "pass", False: "MISS", None: "n/a "}[t["pass"]]
        value = t["value"] if not isinstance(t["value"], float) else f"{t['value']:.4g}"
        print(f"  [{mark}] {t['target']}: {value} (goal {t['goal']})")


# ----------------------------------------------------------------------------------------------
# Command


FLAGS = {  # flag -> (Check field, type, help)
    "--device": ("device", str, "cuda or cuda:N"),
    "--threads": ("threads", int, "torch CPU threads"),
    "--preset": ("preset", str, "throughput model preset"),
    "--seq": ("seq", int, "tokens per sample, without [CLS]/[SEP]"),
    "--batch-size": ("batch_size", int, "throughput batch size"),
    "--warmup-steps": ("warmup_steps", int, "untimed steps"),
    "--steps": ("timed_steps", int, "timed steps"),
    "--compile-backend": ("compile_backend", str, "torch.compile backend"),
    "--throughput-runs": ("throughput_runs",
                          lambda text: tuple(filter(None, map(str.strip, text.split(",")))),
                          f"comma-separated throughput runs, of {','.join(THROUGHPUT_RUNS)}"),
    "--peak-tflops": ("peak_tflops", float, "dense bf16 peak of the device"),
    "--pretrain-preset": ("pretrain_preset", str, "pretraining model preset"),
    "--pretrain-seconds": ("pretrain_seconds", float, "training time to fill"),
    "--pretrain-max-steps": ("pretrain_max_steps", int, "upper bound on the pretraining steps"),
    "--pretrain-batch-size": ("pretrain_batch_size", int, "pretraining batch size"),
    "--pretrain-lr": ("pretrain_lr", float, "pretraining peak learning rate"),
    "--pretrain-mask-rate": ("pretrain_mask_rate", float, "share of tokens that are pretraining "
                             "targets"),
    "--cycles": ("cycles", int, "BPE merge cycles of the vocabulary"),
    "--holdout": ("holdout", str, "held-out region of the corpus"),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--smoke", action="store_true",
                    help="every part on the CPU at toy sizes, in seconds (tests the code)")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated parts to run (default {','.join(SECTIONS)})")
    ap.add_argument("--out", default=None, help="JSON to write (default bench/gpu.json; with "
                    "--smoke, WORK/gpu_smoke.json)")
    ap.add_argument("--work", default=None, help="folder for the corpus and models (default "
                    "runs/gpu_check, --smoke: runs/gpu_check_smoke)")
    ap.add_argument("--data", default=None, help=f"folder holding {CHR20} (default "
                    "$GROVERLM_DATA, ../shared/data, the groverlm data cache)")
    ap.add_argument("--fresh", action="store_true",
                    help="rebuild the BPE, vocabulary and corpus even when --work holds them")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="BertConfig field of the throughput model (repeatable)")
    ap.add_argument("--pretrain-set", dest="pretrain_overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="BertConfig field of the pretraining model (repeatable; "
                    f"on top of {PRETRAIN_MODEL})")
    ap.add_argument("--pretrain-mask-isolated", dest="pretrain_mask_isolated", default=None,
                    action=argparse.BooleanOptionalAction,
                    help=f"no two pretraining targets side by side (default {GPU.pretrain_mask_isolated})")
    for flag, (name, kind, text) in FLAGS.items():
        ap.add_argument(flag, dest=name, type=kind, default=None,
                        help=f"{text} (default {getattr(GPU, name)}; --smoke {getattr(SMOKE, name)})")
    return ap.parse_args(argv)


def resolve(args: argparse.Namespace) -> Check:
    base = SMOKE if args.smoke else GPU
    names = [name for name, _, _ in FLAGS.values()] + ["pretrain_mask_isolated"]
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    given["overrides"] = {**base.overrides, **parse_overrides(args.overrides)}
    given["pretrain_overrides"] = {**base.pretrain_overrides,
                                   **parse_overrides(args.pretrain_overrides, "--pretrain-set")}
    try:
        cfg = replace(base, **given)
    except ValueError as err:  # Check's own checks of a value given
        raise GroverError(str(err)) from None
    for preset, overrides in ((cfg.preset, cfg.overrides),
                              (cfg.pretrain_preset, cfg.pretrain_overrides)):
        build_config(preset, cfg.vocab_size, overrides, SPECIAL_IDS.pad_token_id)  # or GroverError
    return cfg


def main(argv: list[str] | None = None) -> int:
    # every bad value is found here, before a part spends GPU time (GroverError: exit status 2)
    args = parse_args(argv)
    cfg = resolve(args)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise GroverError(f"unknown sections {unknown}; they are {', '.join(SECTIONS)}")
    pretraining = "pretrain" in sections
    genome = find_chr20(args.data) if pretraining and not args.smoke else None
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise GroverError("torch sees no GPU; `--smoke` runs every part on the CPU at toy sizes")
    device = named_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    work = Path(args.work) if args.work else REPO / "runs" / (
        "gpu_check_smoke" if args.smoke else "gpu_check")
    work.mkdir(parents=True, exist_ok=True)
    if pretraining:
        genome = genome or synthetic_genome(work / "smoke_genome.fa")
        lengths = {r.name: len(r) for r in iter_records(genome)}  # a few seconds for chr20
        Region.parse(cfg.holdout).bounds(lengths, "--holdout", genome)
    out = Path(args.out) if args.out else (work / "gpu_smoke.json" if args.smoke
                                           else REPO / "bench" / "gpu.json")
    env = environment(device)
    if cfg.peak_tflops:
        peak, source = cfg.peak_tflops * 1e12, "given" + (" (--smoke: nominal)" if args.smoke else "")
    else:
        peak = device_peak(env["device_name"]) if device.type == "cuda" else None
        source = "device name" if peak else "unknown: pass --peak-tflops"
    ctx = Context(cfg, device, work, genome, args.smoke, args.fresh, peak, source)
    report: dict[str, Any] = {"script": "bench/gpu.py", "smoke": args.smoke, "environment": env,
                              "settings": asdict(cfg), "sections": sections, "errors": []}
    start = time.perf_counter()
    for name in sections:
        print(f"gpu.py: {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            result = PARTS[name](ctx)
        except Exception as err:  # recorded; the other parts still run
            result = error_record(err)
            free_memory()
        result["seconds"] = round(time.perf_counter() - t0, 2)
        if "error" in result:
            report["errors"].append(name)
            print(f"gpu.py: {name} failed: {result['error']}", file=sys.stderr, flush=True)
        report[name] = result
        report["seconds"] = round(time.perf_counter() - start, 2)
        report["targets"] = targets(report, cfg)
        write_report(out, report)
    print_table(report, out)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(guarded(main))
