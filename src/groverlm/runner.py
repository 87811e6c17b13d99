"""The main job: `groverlm run CONFIG.yaml` runs the whole pipeline in one run folder, resumably.

Reads a run config (groverlm.config) and the data files it names (fetched into the cache when
needed, groverlm.data); writes RUN_DIR/config.yaml (the resolved config) and one folder per stage,
RUN_DIR/<stage>/, holding the stage functions' own output folders and the runner's manifest.json
(stage "run-<stage>", resolved config section, input fingerprints, the adapter's summary, wall and
CPU seconds).

Stages run in the order of `STAGES`; each is a small adapter from its config section to the stage
module's Python function. A stage is skipped when its manifest records the same config section and
the same input fingerprints (the data files it reads and the manifests of the stages it needs), so
a changed setting reruns that stage and everything downstream, and nothing else. A stage folder
being written holds `pending.json` (the config and inputs it is being made from): after an
interruption the rerun keeps what the stage finished (each part that has its own manifest.json,
pretraining checkpoints) when the config is unchanged, and starts the stage afresh otherwise.

    groverlm run configs/demo.yaml                     # everything, skipping what is done
    groverlm run configs/demo.yaml --from tasks        # tasks and after (earlier stages must be done)
    groverlm run configs/demo.yaml --only bpe --force  # redo one stage
    groverlm run configs/demo.yaml --set bpe.merges=800 --set run.dir=runs/b800
    groverlm demo                                      # configs/demo.yaml on hg19 chr20

Stages: genome, bpe, select_vocab, corpus, pretrain, nextkmer, tasks, finetune, baselines,
analysis, report. A new stage is one adapter in `STAGES` and one config section in
`groverlm.config.STAGE_SECTIONS`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from groverlm.errors import GroverError

log = logging.getLogger(__name__)

PENDING = "pending.json"
CONFIG_COPY = "config.yaml"


# -- data --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataFiles:
    """The resolved input files of a run (absolute paths; None where the config names none)."""

    genome: Path
    tss: Path
    ctcf_motif: Path
    ctcf_peaks: tuple[Path, ...]
    repeats: Path | None = None
    cpg: Path | None = None


def resolve_data(data: Any, fetch: bool = True, from_dir: str | Path | None = None,
                 report: Callable[[str], None] | None = None) -> DataFiles:
    """Paths of the files `data` (a config.DataConfig) names; cached ones are fetched if missing."""
    from groverlm.data import fetch_files

    names = {"genome": [data.genome], "tss": [data.tss], "ctcf_motif": [data.ctcf_motif],
             "ctcf_peaks": list(data.ctcf_peaks), "repeats": [data.repeats] if data.repeats else [],
             "cpg": [data.cpg] if data.cpg else []}
    base = Path(data.dir).expanduser().resolve() if data.dir else None
    cached = sorted({n for ns in names.values() for n in ns
                     if base is None and not Path(n).expanduser().is_absolute()})
    fetched = fetch_files(cached, from_dir=from_dir, network=fetch, report=report) if cached else {}
    out: dict[str, Any] = {}
    for key, ns in names.items():
        paths = []
        for n in ns:
            p = Path(n).expanduser()
            p = p if p.is_absolute() else (fetched[n] if base is None else base / n)
            if not p.is_file():
                raise GroverError(f"data.{key}: no such file", p)
            paths.append(p.resolve())
        out[key] = tuple(paths) if key == "ctcf_peaks" else (paths[0] if paths else None)
    return DataFiles(**out)


# -- stages ------------------------------------------------------------------------------------

@dataclass
class Context:
    """What an adapter sees: its config section's siblings, the data, and the run's folders."""

    run_dir: Path
    out: Path  # RUN_DIR/<stage>: the adapter writes only here
    config: Any  # the whole config.RunConfig
    data: DataFiles
    progress: bool = True

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def relative(self, path: Path) -> str:
        """A path as recorded in a summary: relative to the run folder when inside it, so a run
        folder can be moved."""
        path = Path(path)
        return str(path.relative_to(self.run_dir)) if path.is_relative_to(self.run_dir) else str(
            path)

    def path(self, recorded: str) -> Path:
        return self.run_dir / recorded  # an absolute `recorded` stays as it is

    def summary(self, name: str) -> dict[str, Any]:
        """The summary an upstream stage's adapter returned (from its manifest)."""
        from groverlm.manifest import read_manifest

        return read_manifest(self.stage_dir(name))["summary"]

    @property
    def genome(self) -> Path:
        """The FASTA every stage after `genome` reads."""
        return self.path(self.summary("genome")["fasta"])

    @property
    def tss(self) -> tuple[Path, str]:
        """The TSS list on that FASTA, and its format."""
        g = self.summary("genome")
        return self.path(g["tss"]), g["tss_format"]

    @property
    def vocab(self) -> Path:
        """The run's vocabulary: the one vocabulary selection chose, else bpe.cycles' export."""
        return self.path(self.summary("select_vocab")["vocab"])

    def held_out(self, region: str | None, stage: str) -> str:
        """A stage's region, by default the corpus's first held-out region (unseen in pretraining).
        """
        holdout = self.config.stage("corpus").holdout
        if region is None:
            if not holdout:
                raise GroverError(f"{stage} needs a region pretraining never saw: set "
                                  f"corpus.holdout (or {stage}.region)", self.config.source)
            return str(holdout[0])
        if str(region) not in {str(h) for h in holdout}:
            log.warning("%s.region %s is not in corpus.holdout: pretraining may have seen it",
                        stage, region)
        return region

    @property
    def model(self) -> Path:
        return self.stage_dir("pretrain") / "model"


def finished(folder: Path) -> bool:
    """A stage function's output folder is complete (its manifest is written last)."""
    return (folder / "manifest.json").is_file()


def run_genome(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Genome stage: summary of the FASTA; with chroms/max_bp, the part of it the run uses (and
    the TSSs that lie on it, as BED6, since the task builders reject TSSs beyond a record)."""
    from groverlm.genome import decode, iter_records, summarize
    from groverlm.manifest import atomic_path, write_json, write_text
    from groverlm.tasks.annotations import read_tss

    fasta, tss, tss_format = ctx.data.genome, ctx.data.tss, ctx.config.data.tss_format
    cut = cfg.chroms is not None or cfg.max_bp is not None
    if cut:
        records = {r.name: r for r in iter_records(fasta)
                   if cfg.chroms is None or r.name in cfg.chroms}
        missing = [c for c in cfg.chroms or () if c not in records]
        if missing:
            raise GroverError(f"genome.chroms: {', '.join(missing)} not in the genome", fasta)
        fasta = ctx.out / "genome.fa"
        with atomic_path(fasta) as tmp, open(tmp, "w") as fh:
            for name in cfg.chroms or records:
                seq = decode(records[name].codes[: cfg.max_bp])
                fh.write(f">{name}\n")
                fh.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    summary = summarize(fasta)
    write_json(ctx.out / "summary.json", summary)
    if cut:
        lengths = {r["name"]: r["length"] for r in summary["records"]}
        kept = sorted({(t.chrom, t.pos, t.strand) for t in read_tss(tss, tss_format)[0]
                       if t.pos < lengths.get(t.chrom, 0)})
        tss, tss_format = ctx.out / "tss.bed", "bed"
        write_text(tss, "".join(f"{c}\t{p}\t{p + 1}\ttss\t0\t{s}\n" for c, p, s in kept))
    total = summary["total"]
    return {"fasta": ctx.relative(fasta), "tss": ctx.relative(tss), "tss_format": tss_format,
            "records": total["records"], "length": total["length"],
            "acgt": sum(total[b] for b in "ACGT"), "contigs": total["contigs"]}


def run_bpe(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Vocabulary stage: BPE on the genome (segmentation saved at `cycles`), then the export."""
    from groverlm.bpe.export import export_vocab
    from groverlm.bpe.train import write_training

    train, vocab = ctx.out / "train", ctx.out / "vocab"
    if not finished(train):
        write_training(ctx.genome, train, cfg.merges, cfg.chunk, cfg.cycles,
                       progress=ctx.progress)
    if not finished(vocab):
        export_vocab(train, cfg.cycles, vocab)
    return {"cycles": cfg.cycles, "vocab": ctx.relative(vocab), **_vocab_stats(vocab)}


def _vocab_stats(vocab: Path) -> dict[str, Any]:
    return json.loads((vocab / "vocab_stats.json").read_text())["summary"]


def run_select_vocab(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Vocabulary selection: next-k-mer accuracy of a small model per candidate cycle count
    (groverlm.select_vocab); with `select: false`, bpe.cycles is the run's vocabulary."""
    from groverlm.manifest import read_manifest
    from groverlm.select_vocab import select_vocab

    if not cfg.select:
        bpe = ctx.summary("bpe")
        return {"selected": False, "cycles": bpe["cycles"], "vocab": bpe["vocab"],
                **_vocab_stats(ctx.path(bpe["vocab"]))}
    out = ctx.out / "selection"
    if not finished(out):
        select_vocab(ctx.genome, ctx.stage_dir("bpe") / "train",
                     ctx.held_out(cfg.region, "select_vocab"), out, cfg.pretraining, cfg.samples,
                     cfg.classifier, cfg.baselines, progress=ctx.progress)
    m = read_manifest(out)
    cycles = m["selected"]["cycles"]
    vocab = out / "vocab" / f"bpe-{cycles}"
    return {"selected": True, "cycles": cycles, "score": m["selected"].get("score"),
            "vocab": ctx.relative(vocab), **_vocab_stats(vocab)}


def run_corpus(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Pretraining corpus: the saved segmentation cut into samples, split train/test."""
    from groverlm.corpus import write_corpus
    from groverlm.manifest import read_manifest

    out = ctx.out / "corpus"
    if not finished(out):  # reuses the BPE stage's segmentation when it has the vocabulary's merges
        write_corpus(ctx.vocab, ctx.genome, out, cfg, progress=ctx.progress)
    splits = read_manifest(out)["splits"]
    return {"corpus": ctx.relative(out), **{f"{s}_{k}": splits[s][k] for s in ("train", "test")
                                   for k in ("samples", "tokens")}}


def run_pretrain(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Pretraining: BertForMaskedLM on the corpus; resumes from its checkpoints; torchrun when
    `processes` > 1."""
    from groverlm.pretrain import EVAL_JSON, pretrain
    from groverlm.train import CHECKPOINTS

    out, corpus = ctx.model, ctx.stage_dir("corpus") / "corpus"
    if not finished(out):
        resume = (out / CHECKPOINTS).is_dir()
        if cfg.processes > 1:
            launch_distributed(cfg, corpus, out, resume, ctx)
        else:
            pretrain(corpus, out, cfg.model, cfg.train, resume=resume, progress=ctx.progress)
    ev = json.loads((out / EVAL_JSON).read_text())
    keys = ("steps", "tokens_seen", "mlm_accuracy", "unigram_accuracy", "context_accuracy",
            "mlm_loss", "perplexity", "tokens_per_second", "train_seconds")
    return {"model": ctx.relative(out), **{k: ev[k] for k in keys if k in ev}}


def run_nextkmer(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Next-k-mer: the pretrained model fine-tuned to predict the k bases after a 50 bp context,
    for each k, against chance, the most frequent k-mer and TF-IDF (groverlm.nextkmer)."""
    from groverlm.nextkmer import nextkmer

    out = ctx.out / "nextkmer"
    if not finished(out):
        nextkmer(ctx.model, ctx.genome, ctx.held_out(cfg.region, "nextkmer"), out, cfg.samples,
                 cfg.classifier, cfg.baselines, name=_model_name(ctx), progress=ctx.progress)
    rows = json.loads((out / "manifest.json").read_text())["summary"]
    return {"nextkmer": ctx.relative(out), "by_k": rows}


def _model_name(ctx: Context) -> str:
    """The run's language model as named in metrics.json, by its vocabulary's cycle count ("lm":
    the class is the preset's, BERT or DeBERTa-v2)."""
    return f"lm-bpe{ctx.summary('select_vocab')['cycles']}"


def launch_distributed(cfg: Any, corpus: Path, out: Path, resume: bool, ctx: Context) -> None:
    """`torchrun --standalone --nproc_per_node N -m groverlm.runner LAUNCH.json`: every rank
    rebuilds the configs from the JSON and calls `pretrain` (rank 0 writes the outputs)."""
    from groverlm.config import as_plain
    from groverlm.manifest import write_json

    launch = ctx.out / "launch.json"
    write_json(launch, {"corpus": str(corpus), "out": str(out), "resume": resume,
                        "progress": ctx.progress, "model": as_plain(cfg.model),
                        "train": as_plain(cfg.train)})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={cfg.processes}", "-m", "groverlm.runner", str(launch)]
    log.info("launching %s", " ".join(cmd))
    if subprocess.run(cmd).returncode != 0:
        raise GroverError(f"distributed pretraining failed ({' '.join(cmd)})", out)


def run_tasks(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Tasks stage: Prom300, PromScan and CTCF folders (train/dev/test.csv) from the genome."""
    from groverlm.manifest import read_manifest
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
        summary[name] = read_manifest(out)["counts"]
    return summary


def _task_dirs(stage: str, wanted: tuple[str, ...] | None, ctx: Context) -> list[Path]:
    dirs = []
    for name in wanted or ctx.config.stage("tasks").build:
        task_dir = ctx.stage_dir("tasks") / name
        if not finished(task_dir):
            raise GroverError(f"{stage}.tasks names {name!r}, which the tasks stage did not "
                              "build (add it to tasks.build)", ctx.config.source)
        dirs.append(task_dir)
    return dirs


def run_finetune(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Fine-tuning stage: BertForSequenceClassification from the pretrained model, per task."""
    from groverlm.finetune import finetune_task

    summary = {}
    name = _model_name(ctx)
    for task_dir in _task_dirs("finetune", cfg.tasks, ctx):
        out = ctx.out / task_dir.name
        if not finished(out):
            finetune_task(ctx.model, task_dir, out, cfg.classifier, name=name,
                          progress=ctx.progress)
        r = json.loads((out / "manifest.json").read_text())["summary"]
        summary[task_dir.name] = {name: r["mcc_mean"]}
    return summary


def run_baselines(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Baselines stage: TF-IDF + random forest / logistic regression on every task (into
    baselines/TASK/) and, when `baselines.cnn` is set, the CNN (into baselines/cnn/TASK/)."""
    from groverlm.baselines import tfidf_task
    from groverlm.cnn import cnn_task
    from groverlm.metrics import read_metrics

    summary = {}
    for task_dir in _task_dirs("baselines", cfg.tasks, ctx):
        name = task_dir.name
        out = ctx.out / name
        if not finished(out):
            tfidf_task(task_dir, out, cfg.tfidf, vocab=ctx.vocab if cfg.bpe else None)
        outs = [out]
        if cfg.cnn is not None:
            outs.append(ctx.out / "cnn" / name)  # "cnn" is no task name (config.TASKS)
            if not finished(outs[-1]):
                cnn_task(task_dir, outs[-1], cfg.cnn)
        summary[name] = {r["model"]: r.get("mcc_mean", r["test"]["mcc"])
                         for o in outs for r in read_metrics(o / "metrics.json")}
    return summary


def run_analysis(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Analyses: vocabulary statistics, token embeddings, masked accuracy, self-similarity and
    window embeddings against annotations (groverlm.analysis.analyze)."""
    from groverlm.analysis.analyze import run_analyses
    from groverlm.manifest import read_manifest

    out = ctx.out / "analyses"
    if not finished(out):
        d = ctx.data
        run_analyses(out, cfg.analyze, vocab=ctx.vocab, model_dir=ctx.model, genome=ctx.genome,
                     repeats=d.repeats, cpg=d.cpg, tss=ctx.tss[0], ann_cfg=cfg.annotations,
                     progress=ctx.progress)
    m = read_manifest(out)
    return {"analyses": ctx.relative(out), "ran": sorted(m.get("analyses") or m.get("files") or [])}


def run_score(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Zero-shot readouts (groverlm.analysis.zeroshot): Prom300 by the per-nucleotide
    pseudo-log-likelihood, CTCF motif SNVs by the variant rule against JASPAR log-odds."""
    from groverlm.analysis.zeroshot import bound_ctcf_snvs, ctcf_readout, prom300_readout
    from groverlm.corpus import Region
    from groverlm.genome import Genome
    from groverlm.manifest import read_manifest, write_json, write_manifest
    from groverlm.score import Scorer, Variant, score_sequences, score_variants
    from groverlm.tasks.common import seeded_subset
    from groverlm.tasks.gue import load_task

    out = ctx.out / "readouts"
    if not finished(out):
        scorer = Scorer.load(ctx.model, cfg.scoring)
        res: dict[str, Any] = {}
        prom = ctx.stage_dir("tasks") / "prom300"
        if cfg.prom300_rows != 0 and finished(prom):
            test = load_task(prom).test
            keep = seeded_subset(len(test), cfg.prom300_rows, cfg.seed)
            seqs = [test.sequences[i] for i in keep]
            res["prom300"] = prom300_readout(seqs, test.labels[keep], lambda s: [
                r["pll_per_nt"] for r in score_sequences(scorer, [""] * len(s), s,
                                                         cfg.scoring.rc)])
        d = ctx.data
        if cfg.ctcf_sites != 0 and d.ctcf_motif is not None and d.ctcf_peaks:
            region = Region.parse(ctx.held_out(cfg.region, "score"))
            snvs, ic = bound_ctcf_snvs(ctx.genome, d.ctcf_motif, list(d.ctcf_peaks), region,
                                       cfg.ctcf_sites, cfg.seed)
            variants = [Variant(s.chrom, s.pos + 1, s.ref, s.alt) for s in snvs]
            score_variants(scorer, Genome.read(ctx.genome), variants, ctx.progress)
            res["ctcf"] = {"region": str(region), **ctcf_readout(
                snvs, [v.score for v in variants], ic)}
            res["ctcf"]["points"] = [[round(s.delta_log_odds, 4), round(v.score, 4),
                                      s.motif_pos] for s, v in zip(snvs, variants, strict=True)]
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "readouts.json", res)
        write_manifest(out, "score-readouts", asdict(cfg), [ctx.model],
                       summary={k: {kk: vv for kk, vv in v.items() if kk != "points"}
                                for k, v in res.items()})
    return {"readouts": ctx.relative(out), **read_manifest(out)["summary"]}


def run_report(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Report: every stage of the run rendered as one self-contained HTML page."""
    from groverlm.analysis.report import write_report

    path = write_report(ctx.run_dir, ctx.out / "report.html", overwrite=True)
    return {"report": ctx.relative(path)}


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its name (= config section = folder), adapter and inputs."""

    name: str
    run: Callable[[Any, Context], dict[str, Any]]  # adapter: config section, context -> summary
    needs: tuple[str, ...] = ()  # upstream stages whose outputs it reads
    data: Callable[[DataFiles], list[Path]] = lambda d: []  # data files it reads


# The pipeline, in order.
STAGES: list[Stage] = [
    Stage("genome", run_genome, data=lambda d: [d.genome, d.tss]),
    Stage("bpe", run_bpe, needs=("genome",)),
    Stage("select_vocab", run_select_vocab, needs=("genome", "bpe")),
    Stage("corpus", run_corpus, needs=("genome", "select_vocab")),
    Stage("pretrain", run_pretrain, needs=("corpus",)),
    Stage("nextkmer", run_nextkmer, needs=("genome", "select_vocab", "pretrain")),
    Stage("tasks", run_tasks, needs=("genome", "select_vocab"),
          data=lambda d: [d.ctcf_motif, *d.ctcf_peaks]),
    Stage("finetune", run_finetune, needs=("select_vocab", "pretrain", "tasks")),
    Stage("baselines", run_baselines, needs=("select_vocab", "tasks")),
    Stage("analysis", run_analysis, needs=("genome", "select_vocab", "pretrain"),
          data=lambda d: [p for p in (d.repeats, d.cpg) if p is not None]),
    Stage("score", run_score, needs=("genome", "select_vocab", "pretrain", "tasks"),
          data=lambda d: [p for p in (d.ctcf_motif, *d.ctcf_peaks) if p is not None]),
    Stage("report", run_report, needs=("genome", "bpe", "select_vocab", "corpus", "pretrain",
                                       "nextkmer", "tasks", "finetune", "baselines", "analysis",
                                       "score")),
]


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


def _stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise GroverError(f"unknown stage {name!r}; stages: {', '.join(stage_names())}")


# -- bookkeeping -------------------------------------------------------------------------------

def stage_key(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles
              ) -> tuple[dict[str, Any], list[Path], list[str]]:
    """(compared config section, input paths, their SHA-256s) of a stage as the config asks it."""
    from groverlm.args import drop_keys, volatile_keys
    from groverlm.config import as_plain
    from groverlm.manifest import fingerprint

    # volatile fields (args.volatile: devices, threads, inference batches) may change freely
    section = drop_keys(as_plain(cfg.stage(stage.name)), volatile_keys(type(cfg.stage(stage.name))))
    inputs = [*stage.data(data), *(run_dir / n for n in stage.needs)]
    shas = [fingerprint(p)["sha256"] for p in inputs]
    return section, inputs, shas


def stage_status(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles) -> str:
    """'done' (manifest matches), 'missing' (never finished) or why it is out of date."""
    from groverlm.manifest import MANIFEST

    path = run_dir / stage.name / MANIFEST
    if not path.is_file():
        return "missing"
    for need in stage.needs:
        if not (run_dir / need / MANIFEST).is_file():
            return f"out of date ({need} is not finished)"
    section, _, shas = stage_key(stage, cfg, run_dir, data)
    m = json.loads(path.read_text())
    if m.get("config") != section:
        return "out of date (config changed)"
    if [i.get("sha256") for i in m.get("inputs", [])] != shas:
        return "out of date (inputs changed)"
    return "done"


def _clear(folder: Path) -> None:
    """Remove a stage folder, only if it is one the runner made."""
    if not folder.exists():
        return
    marks = [folder / PENDING, folder / "manifest.json"]
    if not any(p.is_file() for p in marks) and any(folder.iterdir()):
        raise GroverError("exists and is not a groverlm run stage (no pending.json or "
                          "manifest.json); refusing to delete it", folder)
    shutil.rmtree(folder)


@dataclass
class StageResult:
    name: str
    status: str  # "ran", "skipped" (up to date) or "not selected"
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads; not torchrun's ranks)
    peak_gb: float = 0.0  # this process's peak resident memory during the stage (not torchrun's)

    def line(self) -> str:
        if self.status == "ran":
            return (f"{self.name:<10} ran      {self.seconds:8.1f} s  (CPU {self.cpu_seconds:.1f} s, "
                    f"peak {self.peak_gb:.1f} GB)")
        return f"{self.name:<10} {self.status}"


def execute_stage(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles, force: bool,
                  progress: bool) -> StageResult:
    """Run one stage into RUN_DIR/<stage>, resuming what an interrupted attempt finished."""
    from groverlm.manifest import MANIFEST, write_json, write_manifest
    from groverlm.peak import peak_rss, reset_peak

    out = run_dir / stage.name
    section, inputs, shas = stage_key(stage, cfg, run_dir, data)
    pending = {"config": section, "inputs": shas}
    old = json.loads((out / PENDING).read_text()) if (out / PENDING).is_file() else None
    if force or (out / MANIFEST).exists() or old != pending:
        if old is not None and not force and not (out / MANIFEST).exists():
            log.info("%s: config or inputs changed since the interrupted attempt; starting afresh",
                     stage.name)
        _clear(out)
    elif old is not None:
        log.info("%s: resuming an interrupted attempt", stage.name)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PENDING, pending)
    ctx = Context(run_dir, out, cfg, data, progress)
    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    summary = stage.run(cfg.stage(stage.name), ctx)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss() / 1e9
    seed = getattr(cfg.stage(stage.name), "seed", None)
    # `made` differs at every execution, so stages downstream of a redone stage see new inputs
    write_manifest(out, f"run-{stage.name}", section, inputs, seed=seed, summary=summary,
                   seconds=round(seconds, 2), cpu_seconds=round(cpu, 2), peak_rss_gb=round(peak, 3),
                   made=uuid.uuid4().hex)
    (out / PENDING).unlink()
    return StageResult(stage.name, "ran", seconds, summary, cpu, peak)


def run_pipeline(cfg: Any, only: list[str] | None = None, start: str | None = None,
                 force: bool = False, progress: bool = True, from_dir: str | Path | None = None,
                 on_stage: Callable[[StageResult], None] | None = None,
                 on_data: Callable[[str], None] | None = None) -> list[StageResult]:
    """Run the stages of `cfg` into cfg.run.dir; returns one result per stage.

    `only`: run just these stages; `start`: this stage and every later one. The stages they need
    must be finished and up to date. `force`: redo the selected stages even when up to date.
    """
    from groverlm.config import dump_config
    from groverlm.manifest import write_text

    names = stage_names()
    for n in [*(only or []), *([start] if start else [])]:
        _stage(n)
    if only and start:
        raise GroverError("give --only or --from, not both")
    selected = set(only) if only else set(names[names.index(start):]) if start else set(names)
    run_dir = Path(cfg.run.dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / CONFIG_COPY, dump_config(cfg))
    data = resolve_data(cfg.data, from_dir=from_dir, report=on_data)

    needed = set()  # every stage a selected stage reads, directly or not
    todo = [s for s in names if s in selected]
    while todo:
        for need in _stage(todo.pop()).needs:
            if need not in needed:
                needed.add(need)
                todo.append(need)
    results = []
    for stage in STAGES:
        if stage.name not in selected:
            if stage.name in needed - selected:
                status = stage_status(stage, cfg, run_dir, data)
                if status != "done":
                    raise GroverError(f"stage {stage.name!r} is {status}, and the stages asked "
                                      f"for need it: run it first (drop --only/--from)", run_dir)
            result = StageResult(stage.name, "not selected")
        elif not force and stage_status(stage, cfg, run_dir, data) == "done":
            result = StageResult(stage.name, "skipped (up to date)")
        else:
            log.info("stage %s", stage.name)
            result = execute_stage(stage, cfg, run_dir, data, force, progress)
        results.append(result)
        if on_stage is not None:
            on_stage(result)
    return results


# -- the one-screen summary --------------------------------------------------------------------

def summarize_run(run_dir: str | Path) -> str:
    """Vocabulary, pretraining, next-k-mer and task results of a run folder, in a few lines."""
    from groverlm.manifest import MANIFEST
    from groverlm.metrics import find_metrics, format_table, read_metrics, results_table

    run_dir = Path(run_dir)

    def summary(name: str) -> dict[str, Any] | None:
        p = run_dir / name / MANIFEST
        return json.loads(p.read_text()).get("summary") if p.is_file() else None

    lines = []
    g = summary("genome")
    if g:
        lines.append(f"genome:      {g['records']} record(s), {g['length']:,} bp "
                     f"({g['acgt']:,} A/C/G/T in {g['contigs']:,} contigs)")
    v = summary("select_vocab") or summary("bpe")
    if v:
        how = ("chosen by next-k-mer" if v.get("selected") else "as configured") if (
            "selected" in v) else "BPE export"
        lines.append(f"vocabulary:  {v['cycles']} BPE cycles ({how}), {v['tokens']} tokens "
                     f"present, mean "
                     f"length {v['mean_length_genome']:.2f} nt in the genome "
                     f"({v['mean_length_vocab']:.2f} over the vocabulary), longest "
                     f"{v['max_length']} nt, CG token: {'yes' if v['has_CG'] else 'no'}, start "
                     f"with A/T: {100 * v['start_A_or_T']:.0f}%")
    p = summary("pretrain")
    if p and "mlm_accuracy" in p:
        context = (f", context table {100 * p['context_accuracy']:.2f}%"
                   if "context_accuracy" in p else "")
        lines.append(f"pretraining: {p['steps']} steps, {p['tokens_seen']:,} tokens; test "
                     f"masked-token accuracy {100 * p['mlm_accuracy']:.2f}% (unigram "
                     f"{100 * p['unigram_accuracy']:.2f}%{context}), perplexity "
                     f"{p['perplexity']:.1f}")
    k = summary("nextkmer")
    if k:
        lines.append("next-k-mer:  test top-1 accuracy of the fine-tuned BERT (chance; most "
                     "frequent k-mer)")
        lines += [f"  k={r['k']}: {_pct(r.get('accuracy'))} ({_pct(r['chance'])}; "
                  f"{_pct(r['most_frequent_accuracy'])})" for r in k["by_k"]]
    z = summary("score")
    if z and "prom300" in z:
        lines.append(f"zero-shot:   Prom300 AUROC {z['prom300']['auroc']:.3f} (per-nt pseudo-log-"
                     f"likelihood over {z['prom300']['sequences']} promoters and their token "
                     "shuffles; chance 0.5)")
    if z and "ctcf" in z:
        c = z["ctcf"]
        lines.append(f"             CTCF motif SNVs ({c['snvs']:,} in {c['sites']} bound sites): "
                     f"Spearman {_num(c.get('spearman'))} with the JASPAR log-odds change, AUROC "
                     f"{_num(c.get('auroc_informative'))} informative vs uninformative positions")
    scored = [run_dir / s for s in ("finetune", "baselines") if (run_dir / s).is_dir()]
    records = [r for q in (find_metrics(scored) if scored else []) for r in read_metrics(q)]
    if records:
        tasks, models, cells = results_table(records)
        lines.append("task test MCC:")
        lines.append(format_table(tasks, models, cells).rstrip())
    r = summary("report")
    lines.append(f"report:      {run_dir / r['report'] if r else 'not written'}")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# -- command line ------------------------------------------------------------------------------

def demo_config() -> Path:
    """The demo config shipped in the package (configs/ at the repo root links to it)."""
    return Path(str(resources.files("groverlm") / "configs" / "demo.yaml"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the whole pipeline from one YAML config (resumable)")
    p.add_argument("config", help="a YAML run config (see configs/)")
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--only", action="append", metavar="STAGE",
                     help="run just this stage (repeatable); the stages it reads must be done")
    sel.add_argument("--from", dest="start", metavar="STAGE",
                     help="run this stage and every later one")
    _common(p)
    p.add_argument("--force", action="store_true",
                   help="redo the selected stages even when they are up to date")
    p.set_defaults(func=run_command)

    d = sub.add_parser("demo", help="the main job: configs/demo.yaml on hg19 chr20 "
                                    "(data fetched when needed)")
    _common(d)
    d.add_argument("--from-dir", metavar="DIR", help="a folder holding the data files "
                                                     "(else $GROVERLM_DATA, then the network)")
    d.set_defaults(func=demo_command)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. bpe.merges=800 or run.dir=runs/x "
                        "(repeatable; VALUE is YAML)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run(config: str | Path, args: argparse.Namespace, only=None, start=None, force=False,
         from_dir=None) -> int:
    from groverlm.config import load_config

    cfg = load_config(config, args.overrides)
    t0 = time.perf_counter()
    print(f"groverlm run: {config} -> {cfg.run.dir}", flush=True)
    run_pipeline(cfg, only=only, start=start, force=force, progress=not args.quiet,
                 from_dir=from_dir, on_stage=lambda r: print(r.line(), flush=True),
                 on_data=lambda line: log.info("data: %s", line))
    print(f"finished in {time.perf_counter() - t0:.0f} s; run folder {cfg.run.dir}")
    print(summarize_run(cfg.run.dir))
    return 0


def run_command(args: argparse.Namespace) -> int:
    return _run(args.config, args, only=args.only, start=args.start, force=args.force)


def demo_command(args: argparse.Namespace) -> int:
    return _run(demo_config(), args, from_dir=args.from_dir)


def _launch_main(launch: str) -> int:
    """Entry of each torchrun rank (see launch_distributed)."""
    from groverlm.config import build_section
    from groverlm.pretrain import PretrainConfig, pretrain
    from groverlm.train import TrainConfig

    spec = json.loads(Path(launch).read_text())
    model = build_section(PretrainConfig, spec["model"], ("pretrain", "model"), launch)
    train = build_section(TrainConfig, spec["train"], ("pretrain", "train"), launch)
    pretrain(spec["corpus"], spec["out"], model, train, resume=spec["resume"],
             progress=spec["progress"] and os.environ.get("RANK", "0") == "0")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        sys.exit(_launch_main(sys.argv[1]))
    except GroverError as err:
        print(f"groverlm: error: {err}", file=sys.stderr)
        sys.exit(2)
