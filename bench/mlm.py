"""Benchmark: tokens per second of groverlm's training loop against a bare transformers loop.

Both loops train the same freshly initialised masked LM (the preset's class) on the same batches,
in the same process, alternately (each step's time is its median over `--repeats`): the bare loop is
`model(**batch).loss.backward()`, gradient clipping, `AdamW.step()`, scheduler step. Ours is
`groverlm.train.train` with its data position, masking, bucketing and logging, once with its
default objective (vocabulary head on the masked positions only) and once with a full-logits
objective, which isolates the loop's own overhead.

CPU (default): prints tokens/s of each and the ratios (target: ours >= 0.9 x bare).
GPU (`--device cuda`): also prints model FLOPs utilisation (MFU) against the card's dense bf16 peak,
for `grover-base` at 510 tokens by default there:

    python bench/mlm.py                                  # CPU, tiny preset, real-length batches
    python bench/mlm.py --corpus CORPUS                  # batches from a real corpus
    python bench/mlm.py --device cuda --preset grover-base --batch-size 64 --steps 30 [--compile]

Without --corpus, samples are random tokens with GROVER's length mix (half 510, half 20-510), or
all exactly --seq tokens when --seq is given.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

import numpy as np
import torch
from torch.nn import functional as F

from groverlm.bpe.merges import NUM_SPECIAL
from groverlm.cli import guarded
from groverlm.corpus import Corpus
from groverlm.masking import IGNORE, MaskingConfig, MLMData
from groverlm.models import (
    build_config,
    count_parameters,
    load_tokenizer,
    named_device,
    new_mlm_model,
    parse_overrides,
)
from groverlm.train import (
    DataPosition,
    MaskedLM,
    TrainConfig,
    autocast,
    make_optimizer,
    make_schedule,
    read_log,
    train,
)
from mlm_common import SPECIAL_IDS, RandomSplit, device_peak, flops_per_token


class FullLogitsMLM(torch.nn.Module):
    """The stock BertForMaskedLM loss (logits at every position), summed: isolates loop overhead."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @staticmethod
    def count(batch):
        return MaskedLM.count(batch)

    def forward(self, input_ids, attention_mask, labels):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum",
                               ignore_index=IGNORE)


def bare_loop(model, batches, cfg: TrainConfig, device) -> list[float]:
    """The reference, what a user would write with transformers alone; seconds of each step."""
    opt = make_optimizer(model, cfg, device)
    sched = make_schedule(opt, cfg)
    model.train()
    times = []
    for batch in batches:
        t0 = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast(device, cfg.precision):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def ours(model, data, objective, cfg: TrainConfig) -> list[float]:
    """groverlm.train.train; seconds of each step, from its log (log_every=1)."""
    with tempfile.TemporaryDirectory() as out:
        train(model, data, objective, cfg, out, progress=False)
        elapsed = [r["elapsed_s"] for r in read_log(out) if r["kind"] == "train"]
    return list(np.diff([0.0, *elapsed]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--preset", default=None, help="default: tiny on cpu, grover-base on cuda")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--corpus", default=None, help="take batches from a corpus's train split")
    ap.add_argument("--seq", type=int, default=None, help="every sample this many tokens "
                    "(default on cuda: 510)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 8 on cpu, 64 on cuda")
    ap.add_argument("--steps", type=int, default=None, help="default 12 on cpu, 30 on cuda")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mask-rate", type=float, default=0.022)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the bf16 peak")
    args = ap.parse_args(argv)
    device = named_device(args.device)  # a GroverError names a bad one
    cuda = device.type == "cuda"
    preset = args.preset or ("grover-base" if cuda else "tiny")
    seq = args.seq if args.seq is not None else (510 if cuda else None)
    batch_size = args.batch_size if args.batch_size is not None else (64 if cuda else 8)
    steps = args.steps if args.steps is not None else (30 if cuda else 12)
    if steps < 2:  # the first step pays one-time costs and is left out of every figure
        ap.error(f"--steps {steps}: need 2 or more")
    if args.repeats < 1 or batch_size < 1 or (seq is not None and seq < 1):
        ap.error("--repeats, --batch-size and --seq must be 1 or more")
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True

    masking = MaskingConfig(rate=args.mask_rate)
    tok = SPECIAL_IDS
    if args.corpus:
        corpus = Corpus.open(args.corpus)
        tok, split, vocab = load_tokenizer(corpus.tokenizer_path), corpus.train, corpus.vocab_size
    else:
        vocab = 609
        split = RandomSplit(max(64 * batch_size, 2 * steps * batch_size), vocab, seq)
    data = MLMData(split, tok, masking, torch.arange(NUM_SPECIAL, vocab), pad_multiple=8)
    config = build_config(preset, vocab, parse_overrides(args.set), tok.pad_token_id)
    cfg = TrainConfig(max_steps=steps, batch_size=batch_size, eval_every=0, save_every=0,
                      log_every=1, device=str(device), precision=args.precision,
                      compile=args.compile, warmup_steps=1)
    pos = DataPosition(data, cfg, 0, 1)
    batches = [pos.batch(i)[2] for i in range(steps)]
    tokens = np.array([int(b["attention_mask"].sum()) for b in batches])  # (steps,)
    mean_len = float(np.mean([b["attention_mask"].sum(1).float().mean() for b in batches]))
    print(f"device {device} ({torch.cuda.get_device_name(device) if cuda else 'CPU'}), "
          f"threads {torch.get_num_threads()}, preset {preset} "
          f"({count_parameters(new_mlm_model(config)) / 1e6:.1f}M parameters), batch "
          f"{batch_size}, {steps} steps, mean sample {mean_len:.0f} tokens, precision "
          f"{args.precision}, compile {args.compile}")

    # per-step times of every repeat; a step's throughput is its tokens over its median time, so a
    # burst of load from another process on the machine does not decide the comparison
    runs: dict[str, list[list[float]]] = {"bare transformers": [], "groverlm": [],
                                          "groverlm, full-logits objective": []}
    fresh = lambda: new_mlm_model(config, seed=0)  # noqa: E731
    for _ in range(args.repeats):
        for name in runs:  # alternate, so that a noisy neighbour hurts all alike
            model = fresh().to(device)
            if name == "bare transformers":
                step = torch.compile(model) if args.compile else model
                bare_loop(step, batches[:2], cfg, device)  # warm up kernels, allocator
                model = fresh().to(device)
                step = torch.compile(model) if args.compile else model
                times = bare_loop(step, batches, cfg, device)
            else:
                objective = MaskedLM if name == "groverlm" else FullLogitsMLM
                warm = TrainConfig(**{**cfg.__dict__, "max_steps": 2})
                ours(model, data, objective, warm)
                times = ours(fresh(), data, objective, cfg)
            runs[name].append(times)
            del model
    # the first step of a run pays one-time costs (optimizer state allocation) in both loops
    best = {k: float(tokens[1:].sum() / np.median(np.array(v)[:, 1:], axis=0).sum())
            for k, v in runs.items()}
    ref = best["bare transformers"]
    for name, tps in best.items():
        print(f"{name:34s} {tps:12,.0f} tokens/s   ratio to bare {tps / ref:5.3f}")
    print(f"loop overhead (full-logits objective vs bare): "
          f"{100 * (1 - best['groverlm, full-logits objective'] / ref):+.1f}% "
          f"(target <= 10%); default objective speed-up x{best['groverlm'] / ref:.2f}")
    if cuda:
        name = torch.cuda.get_device_name(device)
        peak = args.peak_tflops * 1e12 if args.peak_tflops else device_peak(name)
        f_tok = flops_per_token(config, mean_len, args.mask_rate)
        for label, tps in best.items():
            achieved = tps * f_tok
            mfu = f"MFU {100 * achieved / peak:.1f}%" if peak else "MFU: pass --peak-tflops"
            print(f"{label:34s} {achieved / 1e12:7.1f} TFLOP/s  {mfu}")
        if peak is None:
            print(f"unknown peak for {name!r}")
        print(f"model FLOPs per token {f_tok / 1e9:.2f} GFLOP; peak {peak and peak / 1e12} TFLOP/s; "
              f"max memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print(f"(perplexity sanity: ln(vocab) = {math.log(vocab):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
