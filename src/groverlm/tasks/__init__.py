"""Tasks stage: `groverlm tasks prom300|promscan|ctcf`; the genome-biology task builders (Prom300,
PromScan, CTCF) and the task-folder reader.

In a run (`run`): reads the genome stage's FASTA and TSS list, the run's vocabulary (Prom300's
token shuffles) and the CTCF motif and peaks; writes RUN_DIR/tasks/TASK for each of tasks.build.

A task folder holds train.csv, dev.csv, test.csv (sequence,label[,chrom,start,end,strand]) and, when
we built it, manifest.json. Builders: `build_prom300`, `build_promscan`, `build_ctcf`; every
consumer reads a folder (ours or a GUE one) with `load_task`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any

from groverlm.args import seed_arg
from groverlm.context import Context
from groverlm.errors import GroverError
from groverlm.manifest import fingerprint, keep_part, read_manifest, remove_other_parts
from groverlm.tasks.annotations import read_tss
from groverlm.tasks.common import Example, SplitConfig, split_examples, write_task
from groverlm.tasks.context import GenomeContextTokenizer
from groverlm.tasks.ctcf import CTCFConfig, build_ctcf, read_jaspar
from groverlm.tasks.gue import Split, Task, load_task
from groverlm.tasks.promoter import Prom300Config, build_prom300
from groverlm.tasks.promscan import PromScanConfig, build_promscan

__all__ = [
    "TASKS", "CTCFConfig", "Example", "GenomeContextTokenizer", "Prom300Config", "PromScanConfig",
    "Split", "SplitConfig", "Task", "TasksConfig", "build_ctcf", "build_prom300", "build_promscan",
    "load_task", "read_jaspar", "split_examples", "write_task",
]

TASKS = ("prom300", "promscan", "ctcf")  # task builders the tasks stage knows, in build order


@dataclass(frozen=True)
class TasksConfig:
    """Tasks stage: which genome-biology tasks are built, each with its builder's own config."""

    build: tuple[str, ...] = TASKS  # tasks to build (subset of prom300, promscan, ctcf)
    prom300: Prom300Config = field(default_factory=Prom300Config)  # promoter vs shuffle, 300 bp
    promscan: PromScanConfig = field(default_factory=PromScanConfig)  # TSS window among 1 kb tiles
    ctcf: CTCFConfig = field(default_factory=CTCFConfig)  # bound vs unbound CTCF motif hits

    def __post_init__(self):
        bad = [t for t in self.build if t not in TASKS]
        if bad:  # [] is a run without tasks: a genome with no annotations of its own
            raise ValueError(f"build must be among {', '.join(TASKS)}, got {list(self.build)}")


# the data settings each task is built from (a run's data section)
TASK_DATA = {"prom300": ("tss",), "promscan": ("tss",), "ctcf": ("ctcf_motif", "ctcf_peaks")}


def preflight(cfg: TasksConfig, config: Any) -> None:
    """The runner's check, before any stage runs, that every task in tasks.build has its data."""
    for name in cfg.build:
        for key in TASK_DATA[name]:
            if not getattr(config.data, key):
                raise GroverError(f"tasks.build has {name}, which needs data.{key} (null here): "
                                  f"name the file, or drop {name} from tasks.build",
                                  config.source)


def check_built(stage: str, wanted: tuple[str, ...] | None, config: Any) -> None:
    """The runner's check, before any stage runs, that the tasks a stage names (`wanted`; null:
    every task built) are in tasks.build: else that stage fails after pretraining (a config made
    for hg19, `finetune.tasks: [prom300]`, run on a genome with `tasks.build: []`)."""
    built = config.stage("tasks").build
    for name in wanted or ():
        if name not in built:
            raise GroverError(f"{stage}.tasks names {name!r}, which tasks.build does not list "
                              f"({', '.join(built) or 'empty'}): add it there, or set "
                              f"{stage}.tasks to the tasks built (null: all of them)",
                              config.source)


def _chroms(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [c for v in values for c in v.split(",") if c]


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}"
                                         ) from None
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers (train,dev,test), got {text!r}")
    return parts  # type: ignore[return-value]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genome", required=True, help="FASTA, gzip or bgzip")
    p.add_argument("--out", required=True, help="task folder to write (train/dev/test.csv)")
    p.add_argument("--chrom", action="append", metavar="NAME",
                   help="only these records of the genome (repeat or comma-separate)")
    d = SplitConfig()
    p.add_argument("--seed", type=seed_arg, default=d.seed,
                   help="seed for shuffles, splits and row order")
    p.add_argument("--split", choices=["auto", "chrom", "block"], default=d.method,
                   help=f"by chromosome (>= 3 holding examples) or by genomic blocks (default "
                        f"{d.method})")
    p.add_argument("--split-fractions", type=_fractions, default=d.fractions, metavar="TR,DEV,TE",
                   help=f"shares of train,dev,test (default {','.join(map(str, d.fractions))})")
    p.add_argument("--split-block", type=int, default=d.block, metavar="BP",
                   help=f"block length for --split block (default {d.block:,})")
    p.add_argument("--overwrite", action="store_true", help="replace a finished task folder")


def _split(args: argparse.Namespace):
    return SplitConfig(args.split, tuple(args.split_fractions), args.split_block, args.seed)


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Tasks stage: Prom300, PromScan and CTCF folders (train/dev/test.csv) from the genome. A
    task folder made from the same settings and inputs is kept as it is (the runner hands this
    stage its folder whatever changed: runner.Stage.checks_parts); a task no longer built loses
    its folder."""
    # the builders are looked up in this package's namespace at call time: tests replace them here
    d = ctx.data
    tss, fmt = ctx.tss
    remove_other_parts(ctx.out, [ctx.out / name for name in cfg.build])
    genome = fingerprint(ctx.genome)  # every task reads it: hashed once
    # each task's inputs and the fields beside them, as its builder records them in its manifest
    made_from: dict[str, tuple[list[Any], dict[str, Any]]] = {
        "ctcf": ([genome, d.ctcf_motif, *d.ctcf_peaks], {})}
    if tss is not None and {"prom300", "promscan"} & set(cfg.build):
        if fmt == "auto":  # a genome stage finished before it recorded the format it read
            fmt = read_tss(tss, fmt)[1]
        read = {"tss_format": fmt}  # the format read, as the builders record it
        vocab = [ctx.vocab] if cfg.prom300.negatives == "token" else []
        made_from.update(prom300=([genome, tss, *vocab], read), promscan=([genome, tss], read))
    summary = {}
    for name in cfg.build:
        out = ctx.out / name
        inputs, recorded = made_from[name]
        task_cfg = getattr(cfg, name)
        if not keep_part(out, asdict(task_cfg), inputs, task_cfg, **recorded):
            if name == "prom300":
                build_prom300(ctx.genome, tss, out, cfg.prom300, vocab=ctx.vocab, tss_format=fmt)
            elif name == "promscan":
                build_promscan(ctx.genome, tss, out, cfg.promscan, tss_format=fmt)
            else:
                build_ctcf(ctx.genome, d.ctcf_motif, list(d.ctcf_peaks), out, cfg.ctcf,
                           progress=ctx.progress)
        summary[name] = {"dir": ctx.relative(out), **read_manifest(out)["counts"]}
    return summary


def handed_on(summary: dict[str, Any], ctx: Context) -> dict[str, str]:
    """What the stages after the tasks read of them (runner.Stage.handed_on), task by task: each
    folder by its manifest, as a fine-tuning or baseline made from it records it. So the score
    stage, which reads Prom300 alone, is not redone for a new CTCF setting."""
    return {name: fingerprint(ctx.path(task["dir"]))["sha256"] for name, task in summary.items()}


def register(sub: argparse._SubParsersAction) -> None:
    dp, ds, dc = Prom300Config(), PromScanConfig(), CTCFConfig()
    p = sub.add_parser("tasks", help="build genome-biology tasks (Prom300, PromScan, CTCF)")
    g = p.add_subparsers(dest="tasks_command", metavar="TASK", required=True)

    a = g.add_parser("prom300", help="300 bp promoters against shuffled copies (GROVER)")
    _common(a)
    a.add_argument("--tss", required=True, help="TSS list: RefSeq, GENCODE or BED6 (detected)")
    a.add_argument("--tss-format", choices=["auto", "refseq", "gencode", "bed"], default="auto",
                   help="the TSS list's layout (default auto: detected)")
    a.add_argument("--vocab", help="tokenizer folder (needed by --negatives token)")
    a.add_argument("--negatives", choices=["token", "dinucleotide", "deepromoter"],
                   default=dp.negatives,
                   help=f"how negatives are shuffled (default {dp.negatives}, as GROVER)")
    a.add_argument("--upstream", type=int, default=dp.upstream,
                   help=f"bases before the TSS (default {dp.upstream})")
    a.add_argument("--downstream", type=int, default=dp.downstream,
                   help=f"bases after the TSS (default {dp.downstream})")
    a.add_argument("--collapse", choices=["overlap", "none"], default=dp.collapse,
                   help="drop windows overlapping a kept one on the same strand (default)")
    a.set_defaults(func=prom300_command)

    b = g.add_parser("promscan", help="1 kb windows tiled around TSSs, label the TSS window")
    _common(b)
    b.add_argument("--tss", required=True, help="TSS list: RefSeq, GENCODE or BED6 (detected)")
    b.add_argument("--tss-format", choices=["auto", "refseq", "gencode", "bed"], default="auto",
                   help="the TSS list's layout (default auto: detected)")
    b.add_argument("--window", type=int, default=ds.window,
                   help=f"window length in bp (default {ds.window})")
    b.add_argument("--region", type=int, default=ds.region,
                   help=f"bp tiled around each TSS (default {ds.region})")
    b.add_argument("--stride", type=int, default=ds.stride,
                   help=f"bp between window starts (default {ds.stride})")
    b.set_defaults(func=promscan_command)

    c = g.add_parser("ctcf", help="CTCF motif hits, bound (in a ChIP-seq peak) or not")
    _common(c)
    c.add_argument("--motif", required=True, help="JASPAR count matrix (one motif)")
    c.add_argument("--peaks", required=True, nargs="+", help="ChIP-seq peak BED files, one or more")
    c.add_argument("--window", type=int, default=dc.window,
                   help=f"window centred on a hit, in bp (default {dc.window})")
    c.add_argument("--threshold", type=float, default=dc.threshold,
                   help="log-odds cut-off in bits (default: from --rel-threshold)")
    c.add_argument("--rel-threshold", type=float, default=dc.rel_threshold,
                   help=f"cut-off as a fraction from min to max score (default {dc.rel_threshold})")
    c.add_argument("--min-spacing", type=int, default=dc.min_spacing,
                   help="suppress weaker hits closer than this many bp (default: --window; 0: "
                        "none)")
    c.add_argument("--orient", choices=["motif", "genome"], default=dc.orient,
                   help="read windows on the hit's strand (default) or the + strand")
    c.add_argument("--max-negative-ratio", type=float, default=dc.max_negative_ratio,
                   help="keep at most this many unbound hits per bound one (default all)")
    c.add_argument("--quiet", action="store_true", help="no progress bar (the motif scan's)")
    c.set_defaults(func=ctcf_command)


def prom300_command(args: argparse.Namespace) -> int:
    cfg = Prom300Config(args.upstream, args.downstream, args.negatives, collapse=args.collapse,
                        seed=args.seed, split=_split(args))
    man = build_prom300(args.genome, args.tss, args.out, cfg, args.vocab, _chroms(args.chrom),
                        args.tss_format, args.overwrite)
    _summary("prom300", man, args.out)
    return 0


def promscan_command(args: argparse.Namespace) -> int:
    cfg = PromScanConfig(args.window, args.region, args.stride, args.seed, _split(args))
    man = build_promscan(args.genome, args.tss, args.out, cfg, _chroms(args.chrom),
                         args.tss_format, args.overwrite)
    _summary("promscan", man, args.out)
    return 0


def ctcf_command(args: argparse.Namespace) -> int:
    cfg = CTCFConfig(args.window, args.threshold, args.rel_threshold,
                     min_spacing=args.min_spacing, orient=args.orient,
                     max_negative_ratio=args.max_negative_ratio, seed=args.seed,
                     split=_split(args))
    man = build_ctcf(args.genome, args.motif, args.peaks, args.out, cfg, _chroms(args.chrom),
                     args.overwrite, progress=not args.quiet)
    _summary("ctcf", man, args.out)  # the hit counts are build_ctcf's log line
    return 0


def _summary(task: str, man: dict, out: str) -> None:
    parts = []
    for s, c in man["counts"].items():
        n = sum(c.values())
        pos = c.get("1", 0)
        parts.append(f"{s} {n:,} ({100 * pos / n:.1f}% label 1)")
    print(f"tasks {task}: {', '.join(parts)}; split by {man['split']['method']} -> {out}")
