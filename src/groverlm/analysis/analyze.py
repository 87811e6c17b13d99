"""Analyses stage: `groverlm analyze` runs the vocabulary, embedding and context analyses into DIR.

Reads a `bpe export` folder (--vocab), a model folder (--model), a genome FASTA (--genome) and
optionally repeat / CpG-island BED files and a TSS list; writes into DIR one JSON and its PNGs per
analysis, then `manifest.json` (stage "analyze", listing each analysis' files) for `groverlm report`:

    vocab        vocab.json, vocab.png          needs --vocab
    pca          pca.json, pca.png              needs --vocab and --model
    masked       masked.json, masked.png        needs --vocab, --model and --genome (+ --corpus:
                                                the context-table baseline)
    context      context.json, context.png      needs --model and --genome
    annotations  annotations.json, annotations_pca.png (+ _umap.png), annotations_probes.png
                                                needs --model and --genome (+ annotation files)

By default every analysis whose inputs are given runs; `--only` names some (then a missing input is
an error). Resumable: an analysis whose JSON was made with the same settings and inputs is not
rerun (manifest.cached; the volatile ones, batch size and device, may change), one made with others
is recomputed.

In a run (`run`): reads the run's vocabulary, the pretrained model and its corpus, the genome stage's
FASTA and TSS list and the data section's repeat / CpG files; writes RUN_DIR/analysis/analyses.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from groverlm import lazy
from groverlm.analysis import annotations as ann
from groverlm.analysis import context, tokens
from groverlm.analysis.annotations import AnnotationConfig
from groverlm.analysis.plots import save_png
from groverlm.analysis.windows import GenomeContigs, sample_windows
from groverlm.args import add_fields, stable, volatile
from groverlm.context import Context
from groverlm.corpus import Corpus, Region
from groverlm.embed import load_encoder, max_window_tokens
from groverlm.errors import GroverError
from groverlm.manifest import (
    INPUTS_BY_HASH,
    cached,
    fingerprint,
    finished,
    prepare_out,
    read_manifest,
    write_cached,
    write_manifest,
    writes_folder,
)

# groverlm.pretrain (the context table) loads torch's helpers on first use; the runner imports this
# module at start-up
pretrain = lazy.module("groverlm.pretrain")

log = logging.getLogger(__name__)

ANALYSES = ("vocab", "pca", "masked", "context", "annotations")
NEEDS = {"vocab": ("vocab",), "pca": ("vocab", "model"), "masked": ("vocab", "model", "genome"),
         "context": ("model", "genome"), "annotations": ("model", "genome")}


@dataclass(frozen=True)
class AnalyzeConfig:
    """What `groverlm analyze` runs and on how much of the genome."""

    only: tuple[str, ...] | None = None  # analyses to run; None: every one whose inputs are given
    windows: int = 200  # genome windows for masked accuracy and self-similarity
    annotation_windows: int = 1000  # windows embedded and probed against annotations
    tokens: int = 510  # tokens per window (BERT's 512 positions minus [CLS], [SEP])
    region: str | None = None  # CHROM or CHROM:START-END to draw windows from (e.g. held out)
    mask_rate: float = 0.15  # share of a window's tokens masked per pass (BERT's rate)
    mask_passes: int = 1  # disjoint masking draws per window (more masked tokens per window)
    context_tokens: int = 50  # tokens whose self-similarity is measured
    context_occurrences: int = 30  # occurrences (windows) per token
    layer: int = -1  # hidden state embedded for the annotation analysis
    pca_components: int = 5  # token-embedding components reported
    batch_size: int = volatile(16)  # windows per forward pass
    seed: int = 0  # window draws, masking, control model, probe folds
    device: str = volatile("auto")  # auto (the GPU when torch sees one), cpu, cuda or cuda:N

    def __post_init__(self):
        if self.only is not None:
            bad = sorted(set(self.only) - set(ANALYSES))
            if bad or not self.only:
                raise GroverError(f"unknown analysis {bad[0] if bad else '(none)'!r}: choose from "
                                  f"{', '.join(ANALYSES)}")
        if self.windows < 2 or self.annotation_windows < 2:
            raise GroverError("need at least 2 windows")
        if not 1 <= self.tokens <= 510:
            raise GroverError(f"tokens per window must be 1-510, got {self.tokens}")
        if self.pca_components < 2:
            raise GroverError(f"pca_components must be at least 2, got {self.pca_components}")


@dataclass(frozen=True)
class AnalysisConfig:
    """Analyses stage: groverlm.analysis.analyze's settings and its annotation probes'."""

    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)  # which analyses, how many windows
    annotations: AnnotationConfig = field(default_factory=AnnotationConfig)  # window labels, probes


@writes_folder
def run_analyses(out: str | Path, cfg: AnalyzeConfig, vocab: str | Path | None = None,
                 model_dir: str | Path | None = None, genome: str | Path | None = None,
                 repeats: str | Path | None = None, cpg: str | Path | None = None,
                 tss: str | Path | None = None, ann_cfg: Any = None, overwrite: bool = False,
                 progress: bool = True, corpus: str | Path | None = None,
                 tss_format: str = "auto") -> dict:
    """Run the analyses into `out`; returns the manifest. `corpus` (the model's pretraining
    corpus) gives masked accuracy its unigram and context-table baselines as pretraining's
    evaluation counts them (without it: the vocabulary's most frequent token, and no table).
    `tss_format`: how the TSS list reads (a run's data.tss_format; the command detects it)."""
    ann_cfg = ann_cfg or ann.AnnotationConfig(seed=cfg.seed)
    given = {"vocab": vocab, "model": model_dir, "genome": genome}
    wanted = list(cfg.only or ANALYSES)
    run, skipped = [], {}
    for name in wanted:
        missing = [f"--{k}" for k in NEEDS[name] if given[k] is None]
        if missing and cfg.only:
            raise GroverError(f"analysis {name!r} needs {' and '.join(missing)}")
        if missing:
            skipped[name] = f"no {' / '.join(missing)}"
        else:
            run.append(name)
    if not run:
        raise GroverError("nothing to analyse: give --vocab, --model and/or --genome")
    out = prepare_out(out, overwrite)
    named = {"vocab": vocab, "model": model_dir, "genome": genome, "repeats": repeats,
             "cpg": cpg, "tss": tss, "corpus": corpus}
    files = [p for p in named.values() if p is not None]
    prints = {k: fingerprint(p) for k, p in named.items() if p is not None}

    model = tokenizer = rows = gen = None
    if vocab is not None:
        rows = tokens.load_rows(vocab)
    if model_dir is not None:
        model, tokenizer = load_encoder(model_dir, device=cfg.device)
        if rows is not None:
            tokens.check_tokenizer(tokenizer, rows, vocab)
        # windows go in whole, within the positions pretraining trained (the tokenizer's limit):
        # the demo's 128-position samples left positions 128-511 of its model untrained, and its
        # 256-token windows scored 6.8% masked accuracy against 8.3% at 126 (the table 7.0%)
        positions = max_window_tokens(model, tokenizer)
        if cfg.tokens > positions:
            log.info("analyze: windows of %d tokens, the model's positions (not %d)", positions,
                     cfg.tokens)
            cfg = dataclasses.replace(cfg, tokens=positions)
    cache: dict[str, Any] = {}

    def genome_windows(n: int, seed: int):
        nonlocal gen
        if gen is None:  # the contigs, read once for every draw (the bases: each draw's own)
            gen = GenomeContigs.read(genome, cfg.region)
        if (n, seed) not in cache:
            cache[(n, seed)] = sample_windows(gen, tokenizer, n, cfg.tokens, seed, cfg.region)
        return cache[(n, seed)]

    done: dict[str, dict] = {}
    for name in run:
        used = NEEDS[name] + {"annotations": ("repeats", "cpg", "tss"),
                              "masked": ("corpus",)}.get(name, ())
        settings = {"analysis": name, "config": {k: v for k, v in stable(cfg).items() if k != "only"},
                    "inputs": [prints.get(k) for k in used]}
        if name == "annotations":
            settings["config"]["annotation"] = stable(ann_cfg)
            if tss_format != "auto":  # recorded only when given: results kept before read `auto`
                settings["config"]["tss_format"] = tss_format
        path = out / f"{name}.json"
        kept = cached(path, settings, INPUTS_BY_HASH)  # moved with its inputs: still theirs
        if kept is not None:
            log.info("%s: already done with these settings, kept", name)
            done[name] = kept["files"]
            continue
        t0 = time.perf_counter()
        figs: dict[str, Any] = {}
        if name == "vocab":
            result = tokens.vocab_analysis(rows)
            figs["vocab.png"] = tokens.plot_vocab(rows, result)
        elif name == "pca":
            result, coords = tokens.embedding_pca(model, rows, cfg.pca_components)
            figs["pca.png"] = tokens.plot_pca(rows, coords, result)
        elif name == "masked":
            wins = genome_windows(cfg.windows, cfg.seed)
            unigram, table = baselines_of(corpus, tokenizer, cfg.seed) if corpus else (None, None)
            result = tokens.masked_accuracy(model, tokenizer, [w.ids for w in wins], rows,
                                            cfg.mask_rate, cfg.mask_passes, cfg.seed,
                                            cfg.batch_size, progress=progress, unigram=unigram,
                                            table=table)
            figs["masked.png"] = tokens.plot_masked(result)
        elif name == "context":
            wins = genome_windows(cfg.windows, cfg.seed)
            result = context.self_similarity(model, tokenizer, [w.ids for w in wins],
                                             cfg.context_tokens, cfg.context_occurrences,
                                             seed=cfg.seed, batch_size=cfg.batch_size,
                                             progress=progress)
            figs["context.png"] = context.plot_self_similarity(result)
        else:
            wins = genome_windows(cfg.annotation_windows, cfg.seed + 1)
            tracks = ann.read_annotations(repeats, cpg, tss, records={w.chrom for w in wins},
                                          tss_format=tss_format)
            result, proj, values = ann.annotation_analysis(model, tokenizer, wins, tracks, ann_cfg,
                                                           cfg.batch_size, cfg.layer, progress)
            for kind, coords in proj.items():
                figs[f"annotations_{kind}.png"] = ann.plot_projection(coords, values, kind.upper())
            figs["annotations_probes.png"] = ann.plot_probes(result)
        for fname, fig in figs.items():
            save_png(fig, out / fname)
        entry = {"json": f"{name}.json", "figures": sorted(figs),
                 "seconds": round(time.perf_counter() - t0, 2)}
        write_cached(path, settings, {"analysis": name, "files": entry, "result": result})
        done[name] = entry
        log.info("%s: done in %.1f s", name, entry["seconds"])
    config = {**asdict(cfg), "annotation": asdict(ann_cfg)}
    return write_manifest(out, "analyze", config, files, seed=cfg.seed, analyses=done,
                          skipped=skipped, model=str(model_dir) if model_dir else None,
                          vocab=str(vocab) if vocab else None)


def baselines_of(corpus_path: str | Path, tokenizer, seed: int) -> tuple[int, Any]:
    """The unigram answer and context table of a model's pretraining corpus (its training split),
    as pretraining's evaluation builds them (`pretrain.corpus_baselines`)."""
    corpus = Corpus.open(corpus_path)
    if corpus.vocab_size != len(tokenizer):
        raise GroverError(f"the corpus has {corpus.vocab_size} token ids, the model's tokenizer "
                          f"{len(tokenizer)}: not the corpus this model was pretrained on",
                          corpus_path)
    return pretrain.corpus_baselines(corpus, tokenizer, seed)


def regions(cfg: Any, config: Any) -> list[tuple[str, Region]]:
    """The region the windows are drawn from, when one is set (runner.Stage.regions)."""
    region = cfg.analyze.region
    return [("analysis.analyze.region", Region.parse(region, "analysis.analyze.region"))] if region else []


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Analyses: vocabulary statistics, token embeddings, masked accuracy, self-similarity and
    window embeddings against annotations (groverlm.analysis.analyze)."""
    out = ctx.out / "analyses"
    if not finished(out):
        d, (tss, tss_format) = ctx.data, ctx.tss
        run_analyses(out, cfg.analyze, vocab=ctx.vocab, model_dir=ctx.model, genome=ctx.genome,
                     repeats=d.repeats, cpg=d.cpg, tss=tss, ann_cfg=cfg.annotations,
                     progress=ctx.progress, corpus=ctx.path(ctx.summary("corpus")["corpus"]),
                     tss_format=tss_format)
    m = read_manifest(out)
    return {"analyses": ctx.relative(out), "ran": sorted(m.get("analyses") or m.get("files") or [])}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="vocabulary, token-embedding, context and annotation "
                       "analyses (JSON + PNG) for `groverlm report`")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--vocab", help="`bpe export` folder (vocab_stats.json)")
    p.add_argument("--model", help="model folder or Hub id (save_pretrained, tokenizer inside)")
    p.add_argument("--genome", help="genome FASTA the windows are drawn from")
    p.add_argument("--repeats", help="repeat intervals (BED, may be gzipped)")
    p.add_argument("--cpg", help="CpG islands (BED)")
    p.add_argument("--tss", help="TSS list (RefSeq `chrom pos strand`, GENCODE or BED6)")
    p.add_argument("--corpus", help="the model's pretraining corpus (`groverlm corpus` folder): "
                   "masked accuracy's unigram and context-table baselines")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(ANALYSES)}")
    p.add_argument("--region", help="draw windows from CHROM or CHROM:START-END only")
    add_fields(p, AnalyzeConfig, "windows", "annotation_windows", "tokens", "mask_passes",
               "context_tokens", "context_occurrences", "layer", "batch_size", "seed", "device")
    add_fields(p, ann.AnnotationConfig, "tss_near")
    p.add_argument("--overwrite", action="store_true", help="replace a finished output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=analyze)


def analyze(args: argparse.Namespace) -> int:
    only = tuple(s.strip() for s in args.only.split(",") if s.strip()) if args.only else None
    cfg = AnalyzeConfig(only=only, windows=args.windows, annotation_windows=args.annotation_windows,
                        tokens=args.tokens, region=args.region, mask_passes=args.mask_passes,
                        context_tokens=args.context_tokens,
                        context_occurrences=args.context_occurrences, layer=args.layer,
                        batch_size=args.batch_size, seed=args.seed, device=args.device)
    acfg = AnnotationConfig(tss_near=args.tss_near, seed=args.seed)
    m = run_analyses(args.out, cfg, args.vocab, args.model, args.genome, args.repeats, args.cpg,
                     args.tss, acfg, args.overwrite, progress=not args.quiet, corpus=args.corpus)
    ran = ", ".join(f"{k} ({v['seconds']:.0f} s)" for k, v in m["analyses"].items())
    skip = "; skipped " + ", ".join(f"{k} ({v})" for k, v in m["skipped"].items()) \
        if m["skipped"] else ""
    print(f"analyze: {ran}{skip} -> {args.out}")
    return 0
