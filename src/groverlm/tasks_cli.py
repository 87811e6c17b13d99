"""Tasks stage: `groverlm tasks prom300|promscan|ctcf`, `groverlm baseline tfidf|cnn` and `groverlm compare`.

In a run (`run`): reads the genome stage's FASTA and TSS list, the run's vocabulary (Prom300's
token shuffles) and the CTCF motif and peaks; writes RUN_DIR/tasks/TASK for each of tasks.build.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from groverlm.args import listed
from groverlm.cnn import CnnConfig, cnn_task
from groverlm.context import Context
from groverlm.errors import GroverError
from groverlm.kmers import parse_ks
from groverlm.manifest import finished, read_manifest, write_text
from groverlm.metrics import THRESHOLDS, find_metrics, format_table, read_metrics, results_table
from groverlm.tasks.common import SplitConfig
from groverlm.tasks.ctcf import CTCFConfig, build_ctcf
from groverlm.tasks.promoter import Prom300Config, build_prom300
from groverlm.tasks.promscan import PromScanConfig, build_promscan

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
        if bad or not self.build:
            raise ValueError(f"build must be among {', '.join(TASKS)}, got {list(self.build)}")


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
    p.add_argument("--seed", type=int, default=d.seed,
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
    """Tasks stage: Prom300, PromScan and CTCF folders (train/dev/test.csv) from the genome."""
    # read from groverlm.tasks at call time: tests replace build_promscan there
    from groverlm.tasks import build_ctcf, build_prom300, build_promscan

    d = ctx.data
    tss, fmt = ctx.tss
    summary = {}
    for name in cfg.build:
        out = ctx.out / name
        if not finished(out):
            if name == "prom300":
                build_prom300(ctx.genome, tss, out, cfg.prom300, vocab=ctx.vocab, tss_format=fmt)
            elif name == "promscan":
                build_promscan(ctx.genome, tss, out, cfg.promscan, tss_format=fmt)
            else:
                build_ctcf(ctx.genome, d.ctcf_motif, list(d.ctcf_peaks), out, cfg.ctcf)
        summary[name] = {"dir": ctx.relative(out), **read_manifest(out)["counts"]}
    return summary


def register(sub: argparse._SubParsersAction) -> None:
    from groverlm.baselines import TfidfConfig  # lazy: baselines imports TASKS

    dp, ds, dc, dt = Prom300Config(), PromScanConfig(), CTCFConfig(), TfidfConfig()
    p = sub.add_parser("tasks", help="build genome-biology tasks (Prom300, PromScan, CTCF)")
    g = p.add_subparsers(dest="tasks_command", metavar="TASK", required=True)

    a = g.add_parser("prom300", help="300 bp promoters against shuffled copies (GROVER)")
    _common(a)
    a.add_argument("--tss", required=True, help="TSS list: RefSeq, GENCODE or BED6 (detected)")
    a.add_argument("--tss-format", choices=["auto", "refseq", "gencode", "bed"], default="auto")
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
    a.set_defaults(func=prom300)

    b = g.add_parser("promscan", help="1 kb windows tiled around TSSs, label the TSS window")
    _common(b)
    b.add_argument("--tss", required=True, help="TSS list: RefSeq, GENCODE or BED6 (detected)")
    b.add_argument("--tss-format", choices=["auto", "refseq", "gencode", "bed"], default="auto")
    b.add_argument("--window", type=int, default=ds.window,
                   help=f"window length (default {ds.window})")
    b.add_argument("--region", type=int, default=ds.region,
                   help=f"span tiled per TSS (default {ds.region})")
    b.add_argument("--stride", type=int, default=ds.stride,
                   help=f"window shift (default {ds.stride})")
    b.set_defaults(func=promscan)

    c = g.add_parser("ctcf", help="CTCF motif hits, bound (in a ChIP-seq peak) or not")
    _common(c)
    c.add_argument("--motif", required=True, help="JASPAR count matrix (one motif)")
    c.add_argument("--peaks", required=True, nargs="+", help="ChIP-seq peak BED file(s)")
    c.add_argument("--window", type=int, default=dc.window,
                   help=f"window centred on a hit (default {dc.window})")
    c.add_argument("--threshold", type=float, default=dc.threshold,
                   help="log-odds cut-off in bits (default: from --rel-threshold)")
    c.add_argument("--rel-threshold", type=float, default=dc.rel_threshold,
                   help=f"cut-off as a fraction from min to max score (default {dc.rel_threshold})")
    c.add_argument("--min-spacing", type=int, default=dc.min_spacing,
                   help="suppress weaker hits closer than this (default: --window)")
    c.add_argument("--orient", choices=["motif", "genome"], default=dc.orient,
                   help="read windows on the hit's strand (default) or the + strand")
    c.add_argument("--max-negative-ratio", type=float, default=dc.max_negative_ratio,
                   help="keep at most this many unbound hits per bound one (default all)")
    c.set_defaults(func=ctcf)

    t = sub.add_parser("baseline", help="baselines on a task folder")
    tg = t.add_subparsers(dest="baseline_command", metavar="MODEL", required=True)
    f = tg.add_parser("tfidf", help="TF-IDF over k-mers (and BPE tokens) + random forest / LR")
    f.add_argument("--task", required=True, help="task folder (ours or GUE format)")
    f.add_argument("--out", required=True, help="output folder (metrics.json, manifest.json)")
    f.add_argument("--k", default=listed(dt.ks),
                   help=f"k values tried, chosen on dev (default {listed(dt.ks)})")
    f.add_argument("--vocab", help="tokenizer folder: also TF-IDF over its BPE tokens")
    f.add_argument("--models", default=",".join(dt.models),
                   help=f"rf and/or lr (default {','.join(dt.models)})")
    f.add_argument("--seeds", default=listed(dt.seeds),
                   help=f"forest seeds, comma-separated (default {listed(dt.seeds)})")
    f.add_argument("--trees", type=int, default=dt.n_estimators,
                   help=f"random forest size (default {dt.n_estimators})")
    f.add_argument("--max-train", type=int, default=dt.max_train,
                   help="train on a seeded random subset of this many rows")
    f.add_argument("--no-class-weight", action="store_true",
                   help="do not reweight classes (default: balanced weights)")
    f.add_argument("--jobs", type=int, default=dt.n_jobs,
                   help=f"cores for the forest (default {dt.n_jobs})")
    f.add_argument("--threshold", choices=("argmax", "dev"), default=dt.threshold,
                   help="binary tasks: argmax (default) or the cut with the best dev MCC")
    f.add_argument("--overwrite", action="store_true")
    f.set_defaults(func=tfidf)

    # the CNN's defaults live on CnnConfig only: a flag left out keeps the dataclass's value
    d = CnnConfig()
    c = tg.add_parser("cnn", help="a small CNN on one-hot DNA, trained from scratch (early "
                                  "stopping on dev MCC)")
    c.add_argument("--task", required=True, help="task folder (ours or GUE format)")
    c.add_argument("--out", required=True, help="output folder (metrics.json, manifest.json)")
    c.add_argument("--seeds", help=f"one run per seed, comma-separated; test MCC mean ± std over "
                                   f"them (default {','.join(map(str, d.seeds))})")
    c.add_argument("--epochs", type=int, help=f"most passes over train (default {d.epochs})")
    c.add_argument("--patience", type=int,
                   help=f"stop after N epochs without a better dev MCC (default {d.patience})")
    c.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr:g})")
    c.add_argument("--batch-size", type=int, help=f"sequences per step (default {d.batch_size})")
    c.add_argument("--channels", type=int, help=f"filters per convolution (default {d.channels})")
    c.add_argument("--kernel", type=int, help=f"filter width in bases (default {d.kernel})")
    c.add_argument("--layers", type=int, help=f"convolution blocks (default {d.layers})")
    c.add_argument("--max-train", type=int,
                   help=f"train on a seeded random subset of N rows; 0: all (default "
                        f"{d.max_train})")
    c.add_argument("--no-class-weight", action="store_true",
                   help="do not reweight classes (default: balanced weights)")
    c.add_argument("--threshold", choices=THRESHOLDS,
                   help=f"binary tasks: argmax or the cut with the best dev MCC (default "
                        f"{d.threshold})")
    c.add_argument("--threads", type=int, help=f"torch CPU threads (default {d.threads})")
    c.add_argument("--overwrite", action="store_true")
    c.set_defaults(func=cnn)

    m = sub.add_parser("compare", help="table of test MCC (task x model) from metrics.json files")
    m.add_argument("dirs", nargs="+", help="folders searched for metrics.json (or the files)")
    m.add_argument("--out", help="write the table: .md for markdown, .tsv for TSV")
    m.set_defaults(func=compare)


def prom300(args: argparse.Namespace) -> int:
    cfg = Prom300Config(args.upstream, args.downstream, args.negatives, collapse=args.collapse,
                        seed=args.seed, split=_split(args))
    man = build_prom300(args.genome, args.tss, args.out, cfg, args.vocab, _chroms(args.chrom),
                        args.tss_format, args.overwrite)
    _summary("prom300", man, args.out)
    return 0


def promscan(args: argparse.Namespace) -> int:
    cfg = PromScanConfig(args.window, args.region, args.stride, args.seed, _split(args))
    man = build_promscan(args.genome, args.tss, args.out, cfg, _chroms(args.chrom),
                         args.tss_format, args.overwrite)
    _summary("promscan", man, args.out)
    return 0


def ctcf(args: argparse.Namespace) -> int:
    cfg = CTCFConfig(args.window, args.threshold, args.rel_threshold,
                     min_spacing=args.min_spacing, orient=args.orient,
                     max_negative_ratio=args.max_negative_ratio, seed=args.seed,
                     split=_split(args))
    man = build_ctcf(args.genome, args.motif, args.peaks, args.out, cfg, _chroms(args.chrom),
                     args.overwrite)
    h = man["hits"]
    print(f"ctcf: threshold {h['threshold_bits']:.2f} bits, {h['hits']:,} hits, "
          f"{h['hits_kept']:,} kept, {100 * h['fraction_bound']:.1f}% bound")
    _summary("ctcf", man, args.out)
    return 0


def _summary(task: str, man: dict, out: str) -> None:
    parts = []
    for s, c in man["counts"].items():
        n = sum(c.values())
        pos = c.get("1", 0)
        parts.append(f"{s} {n:,} ({100 * pos / n:.1f}% label 1)")
    print(f"tasks {task}: {', '.join(parts)}; split by {man['split']['method']} -> {out}")


def tfidf(args: argparse.Namespace) -> int:
    from groverlm.baselines import TfidfConfig, tfidf_task  # lazy: baselines imports TASKS

    cfg = TfidfConfig(ks=tuple(parse_ks(args.k)), models=tuple(m for m in args.models.split(",")
                                                                if m),
                      seeds=_seeds(args.seeds), class_weight=None if args.no_class_weight else "balanced",
                      n_estimators=args.trees, max_train=args.max_train, n_jobs=args.jobs,
                      threshold=args.threshold)
    results = tfidf_task(args.task, args.out, cfg, args.vocab, args.overwrite)
    for r in results:
        t = r["test"]
        auroc = "-" if t["auroc"] is None else f"{t['auroc']:.3f}"
        print(f"baseline {r['model']} on {r['task']} ({r['params']['features']}): test MCC "
              f"{r['mcc_mean']:.3f} ± {r['mcc_std']:.3f}, F1 {t['f1']:.3f}, accuracy "
              f"{t['accuracy']:.3f}, AUROC {auroc} -> {args.out}/metrics.json")
    return 0


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s)
    except ValueError:
        raise GroverError(f"--seeds {text!r}: expected integers like 0,1,2") from None


def cnn(args: argparse.Namespace) -> int:
    from dataclasses import replace

    flags = {"epochs": args.epochs, "patience": args.patience, "lr": args.lr,
             "batch_size": args.batch_size, "channels": args.channels, "kernel": args.kernel,
             "layers": args.layers, "threshold": args.threshold, "threads": args.threads,
             "seeds": None if args.seeds is None else _seeds(args.seeds)}
    given = {k: v for k, v in flags.items() if v is not None}  # the rest: CnnConfig's defaults
    if args.max_train is not None:
        given["max_train"] = args.max_train or None  # 0: the whole training split
    if args.no_class_weight:
        given["class_weight"] = None
    cfg = replace(CnnConfig(), **given)
    r = cnn_task(args.task, args.out, cfg, args.overwrite)
    t = r["test"]
    auroc = "-" if t["auroc"] is None else f"{t['auroc']:.3f}"
    epochs = ", ".join(str(p["best_epoch"]) for p in r["per_seed"])
    print(f"baseline {r['model']} on {r['task']}: test MCC {r['mcc_mean']:.3f} ± {r['mcc_std']:.3f}"
          f" over {len(r['seeds'])} seed(s) (best epoch {epochs}); seed {r['seeds'][0]}: F1 "
          f"{t['f1']:.3f}, accuracy {t['accuracy']:.3f}, AUROC {auroc} -> {args.out}/metrics.json")
    return 0


def compare(args: argparse.Namespace) -> int:
    files = find_metrics(args.dirs)
    if not files:
        raise GroverError(f"no metrics.json under {' '.join(args.dirs)}")
    records = [r for f in files for r in read_metrics(f)]
    tasks, models, cells = results_table(records)
    print(format_table(tasks, models, cells, "markdown"), end="")
    if args.out:
        if args.out.endswith(".tsv"):
            write_text(args.out, format_table(tasks, models, cells, "tsv"))
        elif args.out.endswith(".md"):
            write_text(args.out, format_table(tasks, models, cells, "markdown"))
        else:
            raise GroverError("--out must end in .md or .tsv", args.out)
    print(f"compare: {len(records)} results from {len(files)} files, {len(tasks)} tasks x "
          f"{len(models)} models" + (f" -> {args.out}" if args.out else ""))
    return 0
