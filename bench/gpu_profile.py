"""Where a compiled `grover-base` training step spends its GPU time, by kernel.

Reads nothing; writes one JSON (`--out`, default bench/gpu_profile.json). For each run it times
`--timed` steps after `--warmup` untimed ones (compilation included there) of GROVER's BERT at 510
tokens (batch 128, bf16 autocast, 2.2% targets, fused AdamW: the masking, objective, optimizer and
autocast of `groverlm.train`, in a bare loop on batches already on the GPU), then profiles two steps
and sums kernel time by kind: GEMMs, attention, inductor's fused (Triton) kernels, AdamW, other.
Runs:

- mask: the all-ones attention mask reaches the model, as the loop passed it before 2026-12-04;
- nomask: None instead (what `train.without_full_mask` now does for a batch without padding);
- flash: nomask with SDPA held to its flash kernel (an error says why it cannot run);
- autotune: nomask compiled with inductor's max-autotune-no-cudagraphs (minutes of warm-up).

`bench/gpu.py` is the check with the MFU target; this script says why a figure is what it is.
transformers before 5.18 builds a mask from None under torch.compile too, so with such a version the
nomask runs give that rule of 5.18 to transformers here (the JSON records it).

    python bench/gpu_profile.py --runs mask,nomask --out bench/results/gpu_h200_profile.json
    python bench/gpu_profile.py --smoke  # CPU, tiny model, tracing-only backend: the code, not figures
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from groverlm.bpe.merges import NUM_SPECIAL
from groverlm.cli import guarded
from groverlm.errors import GroverError
from groverlm.masking import MaskingConfig, MLMData
from groverlm.models import build_config, new_mlm_model
from groverlm.train import MaskedLM, TrainConfig, make_optimizer
from mlm_common import SPECIAL_IDS, RandomSplit, device_peak, flops_per_token

RUNS = {  # name -> (drop the mask, SDPA backend or None for its own choice, compile mode)
    "mask": (False, None, "default"),
    "nomask": (True, None, "default"),
    "flash": (True, SDPBackend.FLASH_ATTENTION, "default"),
    "autotune": (True, None, "max-autotune-no-cudagraphs"),
}
KINDS = {  # kernel kind -> name fragments (cuDNN's, cuBLAS's and Triton's kernel names on sm90)
    "attention": ("sdpa", "flash", "fmha", "attention", "efficient"),
    "gemm": ("gemm", "nvjet", "xmma", "cutlass", "matmul", "triton_mm", "addmm", "bmm"),
    "adamw": ("adam",),
    "fused (triton)": ("triton",),
}


def skip_none_masks_when_compiling() -> bool:
    """Give transformers < 5.18 the later rule: a None padding mask is skipped under torch.compile too
    (5.17 tests `is_tracing(None)`, true while compiling, and builds a full mask). True if patched."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    if (major, minor) >= (5, 18):
        return False
    # imported here: only a transformers before 5.18 needs it, and it costs about a second
    # (torch._dynamo) that --help and every run on a newer one would pay (a groverlm.lazy stand-in
    # would not do: the patch below must set the real module's attribute)
    import transformers.masking_utils as mu

    real = mu._ignore_bidirectional_mask_sdpa

    def patched(padding_mask, kv_length, local_attention_size=None):
        if padding_mask is None and (local_attention_size is None or kv_length < local_attention_size):
            return True
        return real(padding_mask, kv_length, local_attention_size)

    mu._ignore_bidirectional_mask_sdpa = patched
    return True


def kind_of(name: str) -> str:
    low = name.lower()
    return next((k for k, parts in KINDS.items() if any(p in low for p in parts)), "other")


def kernel_summary(prof, steps: int, cpu: bool) -> dict[str, Any]:
    rows = []
    for e in prof.key_averages():
        t = e.cpu_time_total if cpu else getattr(e, "device_time_total", 0)
        if t and (cpu or str(getattr(e, "device_type", "")).endswith("CUDA")):
            rows.append((e.key, t, e.count))
    rows.sort(key=lambda r: -r[1])
    kinds: dict[str, float] = {}
    for name, t, _ in rows:
        kinds[kind_of(name)] = kinds.get(kind_of(name), 0.0) + t
    total = sum(kinds.values())
    return {"ms_per_step": total / steps / 1e3,
            "share": {k: round(v / total, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top": [[name[:120], round(t / steps / 1e3, 3), n // steps] for name, t, n in rows[:20]]}


def batches(n: int, size: int, seq: int, vocab: int, device: str) -> list[dict]:
    """`n` batches of `size` random samples, `seq` tokens each, masked as pretraining masks them (the
    throughput data of bench/gpu.py), on `device`; each with its target count, taken on the CPU."""
    data = MLMData(RandomSplit(n * size, vocab, seq), SPECIAL_IDS, MaskingConfig(rate=0.022),
                   torch.arange(NUM_SPECIAL, vocab), pad_multiple=8)
    gen = torch.Generator().manual_seed(0)
    out = []
    for i in range(n):
        b = data.collate(np.arange(i * size, (i + 1) * size), gen)
        out.append(({k: v.to(device) for k, v in b.items()}, MaskedLM.count(b)))
    return out


def run(name: str, args, config, device: str) -> dict[str, Any]:
    drop, backend, mode = RUNS[name]
    cuda = device == "cuda"
    t0 = time.time()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model = new_mlm_model(config, seed=0).to(device).train()
    opt = make_optimizer(model, TrainConfig(), torch.device(device))
    objective = MaskedLM(model)
    fn = torch.compile(objective, **({"backend": "eager"} if args.smoke else {"mode": mode}))
    data = batches(4, args.batch_size, args.seq, config.vocab_size, device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step(i: int) -> torch.Tensor:
        b, targets = data[i % len(data)]
        kernel = sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext()
        with kernel, torch.autocast(device, dtype=torch.bfloat16):
            loss = fn(b["input_ids"], None if drop else b["attention_mask"], b["labels"])
        (loss / max(targets, 1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    try:
        for i in range(args.warmup):
            step(i)
        sync()
        warm = time.time() - t0
        t1 = time.perf_counter()
        for i in range(args.timed):
            step(i)
        sync()
        seconds = (time.perf_counter() - t1) / args.timed
        tokens = args.batch_size * (args.seq + 2) / seconds
        peak = device_peak(torch.cuda.get_device_name()) if cuda else None
        r: dict[str, Any] = {
            "drop_mask": drop, "sdpa_backend": backend.name if backend is not None else None,
            "mode": mode, "step_ms": round(seconds * 1e3, 2), "tokens_per_s": round(tokens),
            "mfu": round(tokens * flops_per_token(config, args.seq + 2, 0.022) / peak, 4) if peak else None,
            "warmup_s": round(warm, 1),
            "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None}
        with profile(activities=[ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU]) as prof:
            step(0)
            step(1)
            sync()
        r["kernels"] = kernel_summary(prof, 2, not cuda)
    except Exception as err:  # recorded; the other runs still count
        r = {"error": f"{type(err).__name__}: {str(err)[:1200]}", "trace": traceback.format_exc()[-1200:]}
    finally:
        torch._dynamo.reset()
        if cuda:
            torch.cuda.empty_cache()
    r["wall_s"] = round(time.time() - t0, 1)
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--runs", default="mask,nomask", help=f"comma-separated, from {list(RUNS)}")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--timed", type=int, default=20)
    ap.add_argument("--out", default="bench/gpu_profile.json")
    ap.add_argument("--smoke", action="store_true", help="CPU, 2 layers of 64, tracing-only compile")
    args = ap.parse_args(argv)
    runs = [r for r in args.runs.split(",") if r]
    if not runs or set(runs) - set(RUNS):
        ap.error(f"--runs: choose from {list(RUNS)}")
    if min(args.batch_size, args.timed) < 1 or args.warmup < 0:
        ap.error("--batch-size and --timed must be 1 or more, --warmup 0 or more")
    if not args.smoke and not torch.cuda.is_available():
        raise GroverError("torch sees no GPU; `--smoke` runs the code on the CPU at toy sizes")
    args.seq = 62 if args.smoke else 510
    if args.smoke:
        args.batch_size, args.warmup, args.timed = 2, 1, 1
    device = "cpu" if args.smoke else "cuda"
    overrides = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
                 "intermediate_size": 128} if args.smoke else {}
    config = build_config("grover-base", 609, overrides, SPECIAL_IDS.pad_token_id)
    patched = any(RUNS[r][0] for r in runs) and skip_none_masks_when_compiling()
    out: dict[str, Any] = {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "transformers_patched": patched,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "preset": "grover-base", "overrides": overrides, "batch_size": args.batch_size,
        "positions": args.seq + 2, "warmup": args.warmup, "timed": args.timed, "runs": {}}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name in runs:
        out["runs"][name] = r = run(name, args, config, device)
        path.write_text(json.dumps(out, indent=1))  # after every run: a killed command keeps the rest
        shown = {k: v for k, v in r.items() if k in ("tokens_per_s", "mfu", "step_ms", "error")}
        print(name, shown, r.get("kernels", {}).get("share", ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
