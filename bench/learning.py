"""Learning per minute: held-out masked-token accuracy of pretraining recipes on the same clock.

Reads a `groverlm corpus` folder (`--corpus`; by default the demo's chr20 corpus, built into
`bench/.cache/learning` from `--data` the first time: hg19 chr20, 600 BPE cycles, 126-token samples,
55-63 Mb held out). Writes `--out` (JSON: every evaluation of every recipe) and prints one table:
accuracy at each checkpoint minute beside the unigram and context-table baselines on exactly the
same targets.

Each recipe is a model preset plus optimisation settings (`RECIPES`). It trains for `--minutes` of
wall-clock time (evaluations excluded, which run on fixed test samples and masks, the same for every
recipe), its learning rate warmed up over the first steps and decayed linearly to zero at the end
of the budget, so a recipe is judged by what it reaches in the time, not in a number of steps.
`--marks` are the minutes within the budget to evaluate at besides its end. The model, masking,
optimizer and evaluation are the pretraining stage's own (`groverlm.pretrain.build_run`,
`groverlm.train.make_optimizer`, `masked_logits`); only the loop is this file's, to stop on time.
Run nothing else on the machine meanwhile: two cores shared with another job halve every number.

    python bench/learning.py                              # every recipe, 8 minutes each
    python bench/learning.py --recipes tiny --minutes 2   # one recipe, a quick look
    python bench/learning.py --recipes tiny,tiny-mask25 --minutes 8 --marks 4,6
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from groverlm.args import comma_list
from groverlm.cli import guarded
from groverlm.errors import GroverError
from groverlm.manifest import read_manifest, write_json
from groverlm.pretrain import ModelConfig, build_run
from groverlm.train import TrainConfig, autocast, make_optimizer, masked_logits

HERE = Path(__file__).resolve().parent
# samples per evaluation batch, for every recipe: evaluate_mlm draws each batch's masks from the
# seed and the batch's start, so another batch size scores other targets (and other baselines).
# The demo's 32, so that the batch-32 rows of bench/README.md keep their targets.
EVAL_BATCH = 32
DEFAULT_MARKS = (1, 2, 4, 8, 16, 32)  # minutes, those within the budget (its end is always one)


@dataclass(frozen=True)
class Recipe:
    """A pretraining recipe: the model and how it is optimised."""

    preset: str  # groverlm.models.PRESETS
    lr: float  # peak learning rate
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields on top of the preset
    mask_rate: float = 0.15  # training targets (evaluation always isolates targets, see pretrain)
    mask_split: tuple[float, float] = (0.8, 0.1)  # targets shown as [MASK], as a random token
    batch_size: int = 32  # samples per step
    warmup_steps: int = 100
    precision: str = "fp32"  # "bf16": autocast, which AMX CPUs (Sapphire Rapids on) run faster
    mask_isolated: bool = False  # no two targets side by side (masking.MaskingConfig.isolated)


RECIPES: dict[str, Recipe] = {
    # the demo's recipe: DeBERTa-v2 with a neighbour convolution (models.PRESETS["tiny"])
    "tiny": Recipe("tiny", 3e-3),
    # the same with GROVER's 80/20 split (no target left unchanged), and without the convolution
    "tiny-split80/20": Recipe("tiny", 3e-3, mask_split=(0.8, 0.2)),
    "tiny-noconv": Recipe("tiny", 3e-3, {"conv_kernel_size": 0}),
    # screens of the demo's recipe (bench/README.md): mask rate, learning rate, batch, width
    "tiny-mask25": Recipe("tiny", 3e-3, mask_rate=0.25),
    "tiny-mask25-bf16": Recipe("tiny", 3e-3, mask_rate=0.25, precision="bf16"),
    "tiny-mask25-bf16-ffn1024": Recipe("tiny", 3e-3, {"intermediate_size": 1024}, mask_rate=0.25,
                                       precision="bf16"),
    "tiny-mask25-bf16-conv5": Recipe("tiny", 3e-3, {"conv_kernel_size": 5}, mask_rate=0.25,
                                     precision="bf16"),
    # `tiny` before 2026-12-04 (exact GELU, FFN 512), and with SiLU only
    "tiny-mask25-gelu512": Recipe("tiny", 3e-3, {"hidden_act": "gelu", "intermediate_size": 512},
                                  mask_rate=0.25),
    "tiny-mask25-silu512": Recipe("tiny", 3e-3, {"intermediate_size": 512}, mask_rate=0.25),
    "tiny-mask25-lr4e-3": Recipe("tiny", 4e-3, mask_rate=0.25),
    "tiny-mask25-lr5e-3": Recipe("tiny", 5e-3, mask_rate=0.25),
    # targets never side by side, each learned from its true neighbours as the evaluation asks
    "tiny-mask25-isolated": Recipe("tiny", 4e-3, mask_rate=0.25, mask_isolated=True),
    "tiny-mask20-isolated": Recipe("tiny", 4e-3, mask_rate=0.20, mask_isolated=True),
    "tiny-mask40": Recipe("tiny", 3e-3, mask_rate=0.40),
    "tiny-lr2e-3": Recipe("tiny", 2e-3),
    "tiny-lr5e-3": Recipe("tiny", 5e-3),
    "tiny-batch64": Recipe("tiny", 4e-3, batch_size=64),
    "tiny-mask25-batch64": Recipe("tiny", 4e-3, mask_rate=0.25, batch_size=64),
    "tiny-mask25-wide": Recipe("tiny", 3e-3, {"hidden_size": 192, "num_attention_heads": 6,
                                              "intermediate_size": 768}, mask_rate=0.25),
    "tiny-wide": Recipe("tiny", 3e-3, {"hidden_size": 192, "num_attention_heads": 6,
                                       "intermediate_size": 768}),
    "tiny-1layer": Recipe("tiny", 3e-3, {"num_hidden_layers": 1, "intermediate_size": 1024}),
    # the previous demo recipe: BERT of the same size at initializer_range 0.1, lr 1e-3
    "tiny-bert": Recipe("tiny-bert", 1e-3),
}


def demo_corpus(data: Path, cache: Path) -> Path:
    """The demo's corpus (genome -> BPE -> corpus stages of configs/demo.yaml), built once."""
    stage = cache / "corpus"
    if not (stage / "manifest.json").exists():
        env = {**os.environ, "GROVERLM_DATA": str(data)}
        cmd = [sys.executable, "-m", "groverlm", "run", str(HERE.parent / "configs" / "demo.yaml"),
               "--set", f"run.dir={cache}", "--quiet"]
        for name in ("genome", "bpe", "select_vocab", "corpus"):
            cmd += ["--only", name]
        if subprocess.run(cmd, env=env).returncode:
            raise GroverError(f"building the demo's corpus into {cache} failed (its error is above)")
    return cache / read_manifest(stage)["summary"]["corpus"]  # the path the stage handed on


def train_for(recipe: Recipe, corpus: Path, minutes: float, marks: list[float], eval_samples: int,
              seed: int) -> list[dict[str, Any]]:
    """Train `recipe` for `minutes` of wall time; evaluate at each mark (minutes, ascending, the
    last `minutes`). Returns the evaluations, each with the training wall and CPU seconds spent so
    far."""
    cfg = ModelConfig(preset=recipe.preset, overrides=dict(recipe.overrides),
                       mask_rate=recipe.mask_rate, mask_split=recipe.mask_split,
                       eval_samples=eval_samples, mask_isolated=recipe.mask_isolated)
    run = build_run(corpus, cfg, seed, EVAL_BATCH)  # its batch size is the evaluation's only
    model, data = run.model, run.data
    opt = make_optimizer(model, TrainConfig(lr=recipe.lr), torch.device("cpu"))
    budget = 60.0 * minutes
    rng = np.random.default_rng([seed, 3])
    order = rng.permutation(len(data))
    gen = torch.Generator().manual_seed(seed)
    no_amp = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    step, wall, cpu, out, todo = 0, 0.0, 0.0, [], [60.0 * m for m in marks]
    model.train()
    while todo:
        t0, c0 = time.perf_counter(), time.process_time()
        start = (step * recipe.batch_size) % (len(order) - recipe.batch_size)
        batch = data.collate(order[start : start + recipe.batch_size], gen)
        with autocast(torch.device("cpu"), recipe.precision):
            logits, targets = masked_logits(model, **batch)  # (M, V), (M,)
        F.cross_entropy(logits.float(), targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        # warmup, then linear decay to zero at the end of the time budget
        factor = min(1.0, (step + 1) / recipe.warmup_steps) * max(0.0, 1.0 - wall / budget)
        for group in opt.param_groups:
            group["lr"] = recipe.lr * factor
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if wall >= todo[0]:
            todo.pop(0)
            model.eval()
            with torch.no_grad():
                ev = run.evaluate(model, no_amp, False)
            model.train()
            out.append({"minutes": round(wall / 60, 2), "cpu_minutes": round(cpu / 60, 2),
                        "step": step, **ev})
            print(f"  {wall / 60:5.2f} min  step {step:5d}  accuracy {100 * ev['mlm_accuracy']:.2f}%"
                  f"  (unigram {100 * ev['unigram_accuracy']:.2f}%, context table "
                  f"{100 * ev['context_accuracy']:.2f}%)  loss {ev['mlm_loss']:.3f}", flush=True)
    return out


def table(recipes: dict[str, Any], marks: list[float]) -> str:
    """The markdown table of `main`'s results: each recipe's accuracy at each mark, then the
    baselines, one row each; a row per recipe if their targets differed after all."""
    rows = ["| recipe | " + " | ".join(f"{m:g} min" for m in marks) + " |",
            "|" + "---|" * (len(marks) + 1)]
    for name, r in recipes.items():
        rows.append(f"| {name} | "
                    + " | ".join(f"{100 * e['mlm_accuracy']:.2f}%" for e in r["evals"]) + " |")
    keys = ("unigram_accuracy", "context_accuracy", "masked_tokens")
    base = {name: {k: r["evals"][-1][k] for k in keys} for name, r in recipes.items() if r["evals"]}
    same = len({tuple(b.values()) for b in base.values()}) == 1
    for label, key in (("unigram", "unigram_accuracy"), ("context table", "context_accuracy")):
        for name, b in list(base.items())[:1] if same else base.items():
            rows.append(f"| {label}{'' if same else f' ({name})'} | {100 * b[key]:.2f}% |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--corpus", type=Path, default=None, help="a corpus folder (default: the demo's)")
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("GROVERLM_DATA", HERE.parent.parent / "shared/data")),
                    help="folder with hg19_chr20.fa.gz and the demo's other files")
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated RECIPES names")
    ap.add_argument("--minutes", type=float, default=8.0, help="training wall time per recipe")
    ap.add_argument("--marks", type=comma_list(float, "minutes"), default=None,
                    help="minutes within the budget to evaluate at besides its end (default: "
                         f"those of {','.join(map(str, DEFAULT_MARKS))} below --minutes)")
    ap.add_argument("--eval-samples", type=int, default=2048, help="held-out samples per evaluation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "learning.json")
    args = ap.parse_args(argv)
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        ap.error(f"--recipes: no recipe {unknown[0]!r}; they are {', '.join(RECIPES)}")
    if not args.minutes > 0:
        ap.error(f"--minutes {args.minutes:g}: the training budget must be positive")
    marks = args.marks if args.marks is not None else [m for m in DEFAULT_MARKS if m < args.minutes]
    if not all(0 < m <= args.minutes for m in marks):
        ap.error(f"--marks {','.join(f'{m:g}' for m in marks)}: each must lie within the budget, "
                 f"(0, {args.minutes:g}] minutes")
    marks = sorted({*marks, args.minutes})  # the budget's end is always evaluated
    torch.set_num_threads(args.threads)
    corpus = args.corpus or demo_corpus(args.data, HERE / ".cache" / "learning")
    results: dict[str, Any] = {"corpus": str(corpus), "threads": args.threads,
                               "minutes": args.minutes, "eval_batch_size": EVAL_BATCH, "recipes": {}}
    for name in names:
        recipe = RECIPES[name]
        print(f"{name}: {recipe}", flush=True)
        results["recipes"][name] = {"recipe": {**recipe.__dict__},
                                    "evals": train_for(recipe, corpus, args.minutes, marks,
                                                       args.eval_samples, args.seed)}
        write_json(args.out, results)
    print("\nheld-out masked-token accuracy (isolated targets) at each training minute")
    print(table(results["recipes"], marks))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
