"""Is a fine-tuned model ahead of its baselines beyond one draw of a task's split? The same models
and baselines on several draws, side by side.

A task built by `groverlm tasks` has one test split drawn by its seed; on a small one (the demo's
PromScan: 700 windows from six 1-Mb blocks) dev and test MCC can disagree in sign between methods,
and a ranking may be that draw's. This script builds the task once per split seed (`groverlm tasks
KIND ... --seed S`), then runs each `groverlm finetune` and `groverlm baselines` command line given
on every draw, and prints dev / test MCC per draw and their means (a language model's MCC is the
mean over its seeds). Writes OUT/draw-S/{task,ft-N,baseline-N}/, OUT/commands.json and
OUT/draws.json; a step whose folder is finished (its manifest is written last) is reused, so a
stopped run resumes where it was (with the same commands: another one at a position is refused).

    python bench/draws.py --out runs/draws --draws 0,1,2,3 \\
        --task "promscan --genome hg19_chr20.fa.gz --tss hg19_refseq_tss.tsv.gz" \\
        --finetune "--model runs/demo/pretrain/model --epochs 4 --lr 5e-4 --max-train 1500" \\
        --finetune "--model runs/demo/pretrain/model --epochs 4 --lr 5e-4 --max-train 1500 \\
                    --class-weights off" \\
        --baseline "tfidf --k 4,6 --max-train 5000 --trees 100"
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from groverlm.args import seed_list
from groverlm.cli import guarded
from groverlm.cli import main as groverlm
from groverlm.manifest import finished, write_json
from groverlm.metrics import read_metrics


def step(argv: list[str], out: Path) -> None:
    """Run one groverlm command into `out` unless it already finished there."""
    if finished(out):
        print(f"reusing {out}", file=sys.stderr)
        return
    code = groverlm([*argv, "--out", str(out)])
    if code:
        raise SystemExit(code)


def check_commands(path: Path, commands: dict[str, str]) -> None:
    """Folders are named by position (ft-0, baseline-1): a rerun into the same --out must give each
    position the command it had, or a finished folder of another command would be reused."""
    if path.is_file():
        old = json.loads(path.read_text())
        changed = [k for k in commands if k in old and old[k] != commands[k]]
        if changed:
            print(f"draws.py: error: {path}: {changed[0]} was `{old[changed[0]]}`, now "
                  f"`{commands[changed[0]]}`; give another --out", file=sys.stderr)
            raise SystemExit(2)
        commands = {**old, **commands}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, commands)


def scores(folder: Path, label: str) -> dict[str, dict[str, float]]:
    """Each record of a metrics.json as {column: {dev, test}}: means over the record's seeds."""
    out = {}
    for r in read_metrics(folder):
        seeds = r.get("per_seed") or [r]
        name = f"{label} {r['model']}" if label else r["model"]
        out[name] = {split: statistics.fmean(s[split]["mcc"] for s in seeds)
                     for split in ("dev", "test")}
    return out


def summary(per_draw: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean dev and test MCC of each column over the draws that have it."""
    columns = dict.fromkeys(c for cells in per_draw.values() for c in cells)
    return {c: {split: statistics.fmean(cells[c][split] for cells in per_draw.values()
                                        if c in cells) for split in ("dev", "test")}
            for c in columns}


def table(per_draw: dict[int, dict[str, dict[str, float]]]) -> str:
    """A markdown table: one row per draw and one of means, each cell `dev / test`."""
    mean = summary(per_draw)
    columns = list(mean)
    cell = lambda m: f"{m['dev']:.3f} / {m['test']:.3f}"  # noqa: E731
    rows = ["| draw | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for seed, cells in per_draw.items():
        rows.append(f"| {seed} | " + " | ".join(cell(cells[c]) if c in cells else ""
                                                for c in columns) + " |")
    rows.append("| mean | " + " | ".join(cell(mean[c]) for c in columns) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "), allow_abbrev=False)
    ap.add_argument("--out", type=Path, required=True, help="folder for every draw's runs")
    ap.add_argument("--task", required=True,
                    help="`groverlm tasks` arguments, without --seed and --out")
    ap.add_argument("--draws", type=seed_list, default="0,1,2,3",
                    help="split seeds, comma-separated")
    ap.add_argument("--finetune", action="append", default=[],
                    help="`groverlm finetune` arguments, without --task and --out (repeatable)")
    ap.add_argument("--baseline", action="append", default=[],
                    help="`groverlm baselines` arguments (tfidf ... or cnn ...), without --task "
                         "and --out (repeatable)")
    args = ap.parse_args(argv)
    if not args.finetune and not args.baseline:
        ap.error("give at least one --finetune or --baseline")
    draws = args.draws
    runs = [(f"ft-{i}", ["finetune", *shlex.split(a)]) for i, a in enumerate(args.finetune)]
    runs += [(f"baseline-{i}", ["baselines", *shlex.split(a)]) for i, a in enumerate(args.baseline)]
    # a column per run and record; where several runs of a kind may name their records alike
    # (two fine-tunings of one model, TF-IDF twice), each column also names its run's folder
    several = {"ft": len(args.finetune) > 1, "baseline": len(args.baseline) > 1}
    label = {name: name if several[name.split("-")[0]] else "" for name, _ in runs}
    commands = {"task": args.task, **{name: shlex.join(a) for name, a in runs}}
    check_commands(args.out / "commands.json", commands)
    per_draw: dict[int, dict[str, dict[str, float]]] = {}
    for seed in draws:
        folder = args.out / f"draw-{seed}"
        task = folder / "task"
        step(["tasks", *shlex.split(args.task), "--seed", str(seed)], task)
        per_draw[seed] = {}
        for name, argv_ in runs:
            step([*argv_, "--task", str(task)], folder / name)
            per_draw[seed].update(scores(folder / name, label[name]))
    print(table(per_draw))
    report: dict[str, Any] = {"commands": commands, "draws": draws, "per_draw": per_draw,
                              "mean": summary(per_draw)}
    write_json(args.out / "draws.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
