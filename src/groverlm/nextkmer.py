"""Next-k-mer stage: how well a pretrained model's representation predicts the k bases that follow.

GROVER's vocabulary-selection task. Reads a model folder (any BERT checkpoint with its tokenizer)
and a FASTA genome; writes OUT/:

- `samples.tsv`: every sample (split, chrom, start of the context, context, the bases after it);
- `k{k}/`: the fine-tuning runs of each k (`finetune` layout: seed-N/log.jsonl, result.json);
- `metrics.json` (schema in `groverlm.metrics`): one result record per k and model (task
  `nextkmer-k{k}`; the fine-tuned BERT, TF-IDF baselines), and `summary`, one row per k with the
  model's test top-1 accuracy, chance (1/4**k), the accuracy of always answering the most frequent
  training k-mer, the TF-IDF accuracies, and `vs_tfidf`: the model minus the best TF-IDF with the
  95% interval of a paired bootstrap over the test contexts (`metrics.paired_difference`);
- `manifest.json`, written last.

Samples. A context of `context` bases (default 50) is labelled by the k bases after it, one of 4**k
classes (`kmers` index), for every k in `ks` (default 2..6); all k share the same contexts, whose
labels are prefixes of the same following bases. Contexts are drawn from one region (a held-out
chromosome or interval, absent from pretraining), from A/C/G/T-only stretches: no N in the context
or the following max(ks) bases. The region is cut into blocks (default 100 kbp) drawn to train, dev
and test in proportion to the samples asked of each; a sample lies wholly inside one block, so
train, dev and test never share a base. Within a split positions are drawn without replacement.

Fine-tuning is `finetune.finetune_splits` (the same code as `groverlm finetune`): a
`BertForSequenceClassification` with 4**k outputs, no class weights (the metric is plain top-1
accuracy), the epoch chosen on dev accuracy. Baselines: TF-IDF over k-mers of the context (k chosen
on dev) with logistic regression, and with a random forest for k <= `rf_max_k` (a forest over 4**k
classes costs minutes per k on a CPU); plus TF-IDF over BPE tokens when the model's tokenizer is BPE.

In a run (`run`): reads the pretrained model, the genome stage's FASTA and a held-out region
(nextkmer.region, else corpus.holdout's first); writes RUN_DIR/nextkmer/nextkmer.

    groverlm nextkmer --model runs/demo/pretrain --genome hg19_chr20.fa.gz \
        --region chr20:50000000-63025520 --out nextkmer/
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from groverlm.args import listed, stable
from groverlm.baselines import TfidfConfig, run_tfidf
from groverlm.context import Context
from groverlm.corpus import Region
from groverlm.errors import GroverError
from groverlm.finetune import (
    MAX_CONFUSION,
    ClassifierConfig,
    Encoded,
    add_train_args,
    finetune_splits,
    token_ids,
)
from groverlm.kmers import index_to_kmer, kmer_ids, parse_ks
from groverlm.manifest import (
    MANIFEST,
    SETTINGS,
    atomic_path,
    check_resume,
    finished,
    prepare_out,
    write_json,
    write_manifest,
)
from groverlm.metrics import difference_text, paired_difference, write_metrics
from groverlm.models import load_tokenizer
from groverlm.tasks.common import load_genome

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
# auto: k-mer TF-IDF, plus BPE-token TF-IDF for a BPE model; kmer, bpe: only those; none
TFIDF = ("auto", "kmer", "bpe", "none")


@dataclass(frozen=True)
class NextKmerSamplesConfig:
    """Which samples are drawn (the same for every model given the same genome and region)."""

    ks: tuple[int, ...] = (2, 3, 4, 5, 6)  # label lengths; 4**k classes each
    context: int = 50  # bases the model sees (GROVER: 50)
    train_samples: int = 10_000
    dev_samples: int = 2_000  # choose the epoch (and TF-IDF's k) on these
    test_samples: int = 2_000
    block: int = 100_000  # region blocks drawn whole to one split (no shared bases)
    seed: int = 0  # block draw and positions

    def __post_init__(self):
        if not self.ks or min(self.ks) < 1 or max(self.ks) > 8:
            raise GroverError(f"--k values must be between 1 and 8, got {list(self.ks)}")
        if self.context < 1:
            raise GroverError("--context must be at least 1 base")
        if min(self.train_samples, self.dev_samples, self.test_samples) < 1:
            raise GroverError("--train-samples, --dev-samples, --test-samples must be >= 1")
        if self.block < self.span:
            raise GroverError(f"--block {self.block} is shorter than a sample ({self.span} bp)")

    @property
    def span(self) -> int:
        """Bases one sample reads: the context and the longest label."""
        return self.context + max(self.ks)

    def wanted(self) -> dict[str, int]:
        return {"train": self.train_samples, "dev": self.dev_samples, "test": self.test_samples}


@dataclass(frozen=True)
class NextKmerBaselinesConfig:
    """TF-IDF baselines on the next-k-mer samples (see `baselines.run_tfidf`)."""

    tfidf: str = "auto"  # auto | kmer | bpe | none (see TFIDF)
    ks: tuple[int, ...] = (3, 4)  # k-mer features of the context; the best on dev is kept
    rf_max_k: int = 4  # random forest only for labels of k <= this (cost grows with 4**k classes)
    n_estimators: int = 100

    def __post_init__(self):
        if self.tfidf not in TFIDF:
            raise GroverError(f"--tfidf must be one of {', '.join(TFIDF)}")


def kmer_classifier() -> ClassifierConfig:
    """Next-k-mer fine-tuning's defaults, for the command and YAML alike: plain top-1 accuracy over
    4**k classes (no class weights), one seed; the learning rate follows the model's width
    (finetune.learning_rate) unless set."""
    return ClassifierConfig(class_weights="off", select="accuracy", seeds=(0,))


@dataclass(frozen=True)
class NextKmerConfig:
    """Next-k-mer prediction by the run's pretrained model, on a region pretraining never saw."""

    region: str | None = None  # held-out CHROM[:START-END]; null: corpus.holdout's first region
    samples: NextKmerSamplesConfig = field(default_factory=NextKmerSamplesConfig)  # k values, contexts, sizes
    classifier: ClassifierConfig = field(default_factory=kmer_classifier)  # epochs, lr, seeds
    # TF-IDF and the most frequent k-mer on the same samples
    baselines: NextKmerBaselinesConfig = field(default_factory=NextKmerBaselinesConfig)


@dataclass
class Samples:
    """Next-k-mer samples of every split: contexts and the max(ks) bases that follow each."""

    chrom: str
    cfg: NextKmerSamplesConfig
    starts: dict[str, np.ndarray]  # (n,) context start in the record
    contexts: dict[str, list[str]]
    following: dict[str, list[str]]
    info: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """SHA-256 of the configuration and every sample position."""
        h = hashlib.sha256(json.dumps([self.chrom, asdict(self.cfg)]).encode())
        for s in SPLITS:
            h.update(np.asarray(self.starts[s], np.int64).tobytes())
        return h.hexdigest()

    def labels(self, split: str, k: int) -> np.ndarray:
        """(n,) int64 k-mer index of the first k following bases."""
        return np.array([kmer_ids(f[:k], k)[0] for f in self.following[split]], dtype=np.int64)


def valid_starts(record, start: int, end: int, span: int, block: int) -> np.ndarray:
    """(end - start,) bool: True at positions p where [p, p + span) is A/C/G/T only, inside
    [start, end) and inside one block of `block` bases.

    >>> from groverlm.fasta import Record, encode
    >>> valid_starts(Record("r", encode("ACGTNACGTACG")), 0, 12, 3, 6).nonzero()[0].tolist()
    [0, 1, 6, 7, 8, 9]
    """
    ok = np.zeros(end - start, dtype=bool)
    for s, e in record.contigs(min_length=span):
        s, e = max(int(s), start), min(int(e), end)
        if e - s >= span:
            ok[s - start : e - span + 1 - start] = True
    pos = np.arange(start, end, dtype=np.int64)
    ok &= (pos % block) <= block - span
    return ok


def draw_samples(genome, region, cfg: NextKmerSamplesConfig) -> Samples:
    """Draw the samples of every split from `region` of a `fasta.Genome`."""
    _, start, end = region.bounds(genome.lengths, "--region")
    rec = genome[region.chrom]
    ok = valid_starts(rec, start, end, cfg.span, cfg.block)
    block_of = (np.arange(start, end, dtype=np.int64) // cfg.block)
    blocks = np.unique(block_of[ok])
    wanted = cfg.wanted()
    if len(blocks) < 3:
        raise GroverError(f"--region {region} holds {len(blocks)} usable block(s) of "
                          f"{cfg.block:,} bp; need 3 (train, dev, test): use a smaller --block "
                          "or a larger region")
    rng = np.random.default_rng([cfg.seed, 0x4E4B])
    order = blocks[rng.permutation(len(blocks))]
    total = sum(wanted.values())
    n_test = min(max(1, round(len(blocks) * wanted["test"] / total)), len(blocks) - 2)
    n_dev = min(max(1, round(len(blocks) * wanted["dev"] / total)), len(blocks) - 1 - n_test)
    assign = {"test": order[:n_test], "dev": order[n_test : n_test + n_dev],
              "train": order[n_test + n_dev :]}
    starts, contexts, following, available = {}, {}, {}, {}
    for split in SPLITS:
        cand = start + np.flatnonzero(ok & np.isin(block_of, assign[split]))
        available[split] = int(cand.size)
        if cand.size < wanted[split]:
            raise GroverError(f"the {split} blocks of --region {region} hold {cand.size:,} "
                              f"usable positions, fewer than the {wanted[split]:,} samples asked")
        pos = np.sort(rng.choice(cand, wanted[split], replace=False))
        starts[split] = pos
        contexts[split] = [rec.sequence(int(p), int(p) + cfg.context) for p in pos]
        following[split] = [rec.sequence(int(p) + cfg.context, int(p) + cfg.span) for p in pos]
    info = {"region": str(region), "blocks": {s: len(assign[s]) for s in SPLITS},
            "positions_available": available, "block_ids": {s: sorted(int(b) for b in assign[s])
                                                            for s in SPLITS}}
    return Samples(region.chrom, cfg, starts, contexts, following, info)


def write_samples(samples: Samples, path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["split", "chrom", "start", "context", "next"])
        for s in SPLITS:
            for p, c, f in zip(samples.starts[s], samples.contexts[s], samples.following[s],
                               strict=True):
                w.writerow([s, samples.chrom, int(p), c, f])


# ----------------------------------------------------------------------------------------------
# Scoring


def most_frequent(train: np.ndarray, test: np.ndarray) -> tuple[int, float]:
    """(most frequent training label, test accuracy of always answering it); ties to the smaller."""
    label = int(np.bincount(train).argmax())
    return label, float(np.mean(test == label))


def _compact(record: dict[str, Any]) -> dict[str, Any]:
    """Drop per-class matrices from a result of many classes (4**k confusion entries)."""
    for run in [record, *record.get("per_seed", [])]:
        for part in ("dev", "test"):
            m = run.get(part)
            if m and isinstance(m.get("labels"), list) and len(m["labels"]) > MAX_CONFUSION:
                m["confusion"] = None
                m["labels"] = f"0..{len(m['labels']) - 1}"
    return record


def tfidf_records(samples: Samples, k: int, bcfg: NextKmerBaselinesConfig, tokenizer=None
                  ) -> list[dict[str, Any]]:
    """TF-IDF baselines for one k (k-mer features; BPE-token features with `tokenizer`)."""
    if bcfg.tfidf == "none":
        return []
    models = ("rf", "lr") if k <= bcfg.rf_max_k else ("lr",)
    cfg = TfidfConfig(ks=bcfg.ks, models=models, class_weight=None,
                      n_estimators=bcfg.n_estimators)
    args = []
    for s in SPLITS:
        args += [samples.contexts[s], samples.labels(s, k)]
    labels = list(range(4**k))
    out = []
    if bcfg.tfidf in ("auto", "kmer"):
        out += run_tfidf(*args, cfg, task=f"nextkmer-k{k}", labels=labels)
    if tokenizer is not None and bcfg.tfidf in ("auto", "bpe"):
        out += run_tfidf(*args, cfg, tokenizer=tokenizer, task=f"nextkmer-k{k}", labels=labels)
    return [_compact(r) for r in out]


def is_bpe(tokenizer) -> bool:
    return type(tokenizer.backend_tokenizer.model).__name__ == "BPE"


def run_nextkmer(model_dir: str | Path | None, samples: Samples, out: str | Path, ft,
                 bcfg: NextKmerBaselinesConfig = NextKmerBaselinesConfig(), name: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Fine-tune per k and score the baselines; returns {"records", "summary"}.

    ft: a `finetune.ClassifierConfig` (its class_weights and select are overridden: off, accuracy).
    Without a model only the baselines are scored. Each finished k is kept in out/k{k}/k.json, so
    an interrupted run continues where it stopped.
    """
    out = Path(out)
    ft = replace(ft, class_weights="off", select="accuracy")
    check_resume(out, {"model": str(model_dir), "samples": samples.fingerprint(),
                       "finetune": stable(ft), "baselines": asdict(bcfg)})
    tokenizer = load_tokenizer(model_dir) if model_dir is not None else None
    ids = {s: token_ids(tokenizer, samples.contexts[s]) for s in SPLITS} if tokenizer else {}
    name = name or (f"bert-{Path(model_dir).resolve().name}" if model_dir else None)
    records, summary = [], []
    for k in samples.cfg.ks:
        done = out / f"k{k}" / "k.json"
        if done.exists():
            part = json.loads(done.read_text())
        else:
            t0 = time.perf_counter()
            y = {s: samples.labels(s, k) for s in SPLITS}
            label, mf_acc = most_frequent(y["train"], y["test"])
            row: dict[str, Any] = {"k": k, "classes": 4**k, "chance": 4.0**-k,
                                   "most_frequent_kmer": _kmer(label, k),
                                   "most_frequent_accuracy": mf_acc}
            recs, model_rec = [], None
            if model_dir is not None:
                r = finetune_splits(model_dir, *(Encoded(ids[s], y[s]) for s in SPLITS), 4**k, ft,
                                    out / f"k{k}", f"nextkmer-k{k}", name, save=False,
                                    progress=progress, k=k, context=samples.cfg.context)
                model_rec = _compact(r)
                recs.append(model_rec)
                accs = [p["test"]["accuracy"] for p in r["per_seed"]]
                row.update(accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)),
                           mean_tokens=float(np.mean([len(x) for x in ids["train"]])))
            bpe_tok = tokenizer.backend_tokenizer if tokenizer and is_bpe(tokenizer) else None
            for r in tfidf_records(samples, k, bcfg, bpe_tok):
                recs.append(r)
                row[r["model"]] = r["test"]["accuracy"]
            tfidf = [r for r in recs if r.get("baseline")]
            if model_rec is not None and tfidf:  # the model against the best TF-IDF, paired
                best = max(tfidf, key=lambda r: r["test"]["accuracy"])
                row["vs_tfidf"] = {"baseline": best["model"],
                                   **(paired_difference(model_rec, best, "accuracy") or {})}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            part = {"records": recs, "summary": row}
            write_json(done, part)
        log.info("next-%d-mer: %s", k, ", ".join(
            f"{key} {val:.4f}" for key, val in part["summary"].items()
            if isinstance(val, float) and key not in ("seconds", "mean_tokens")))
        records += part["records"]
        summary.append(part["summary"])
    return {"records": records, "summary": summary, "model": name}


def _kmer(index: int, k: int) -> str:
    return index_to_kmer(index, k)


def nextkmer(model_dir: str | Path, genome: str | Path, region: str | Region, out: str | Path,
             cfg: NextKmerSamplesConfig, ft, bcfg: NextKmerBaselinesConfig = NextKmerBaselinesConfig(),
             name: str | None = None, overwrite: bool = False, progress: bool = True
             ) -> dict[str, Any]:
    """`groverlm nextkmer`: draw the samples, fine-tune per k, write metrics.json and manifest."""
    t0 = time.perf_counter()
    reg = Region.parse(region, "--region")
    out = Path(out)
    if overwrite and out.exists():
        for p in out.glob("k*"):
            if p.is_dir():
                shutil.rmtree(p)
        for f in (MANIFEST, SETTINGS):
            (out / f).unlink(missing_ok=True)
    out = prepare_out(out, overwrite)
    samples = draw_samples(load_genome(genome, [reg.chrom]), reg, cfg)
    write_samples(samples, out / "samples.tsv")
    res = run_nextkmer(model_dir, samples, out, ft, bcfg, name, progress)
    write_metrics(out, "nextkmer", res["records"], summary=res["summary"], region=str(reg),
                  context=cfg.context, model=res["model"])
    config = {**asdict(cfg), "region": str(reg), "model": str(model_dir), "finetune": asdict(ft),
              "baselines": asdict(bcfg)}
    write_manifest(out, "nextkmer", config, [model_dir, genome], seed=cfg.seed,
                   samples=samples.info, summary=res["summary"],
                   seconds=round(time.perf_counter() - t0, 1))
    return res


# ----------------------------------------------------------------------------------------------
# CLI


def add_nextkmer_args(p: argparse.ArgumentParser, baselines: NextKmerBaselinesConfig) -> None:
    """The next-k-mer options of `nextkmer` and `select-vocab`: samples, TF-IDF baselines (defaults
    from `baselines`) and fine-tuning (defaults from `kmer_classifier()`)."""
    d = NextKmerSamplesConfig()
    p.add_argument("--k", default=listed(d.ks), help=f"label lengths, e.g. 2,3,4 or 2-6 (default "
                                                     f"{listed(d.ks)})")
    p.add_argument("--context", type=int, default=d.context,
                   help=f"context bases (default {d.context})")
    p.add_argument("--train-samples", type=int, default=d.train_samples)
    p.add_argument("--dev-samples", type=int, default=None, help="default: --test-samples")
    p.add_argument("--test-samples", type=int, default=d.test_samples)
    p.add_argument("--block", type=int, default=d.block,
                   help=f"region blocks drawn whole to a split (default {d.block:,} bp)")
    p.add_argument("--tfidf", choices=TFIDF, default=baselines.tfidf,
                   help=f"TF-IDF baselines: k-mers and BPE tokens (auto, the latter for a BPE "
                        f"model), k-mers only, BPE tokens only, none (default {baselines.tfidf})")
    p.add_argument("--rf-max-k", type=int, default=baselines.rf_max_k,
                   help=f"random-forest baseline only up to this k (default {baselines.rf_max_k})")
    add_train_args(p, kmer_classifier())


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Next-k-mer: the pretrained model fine-tuned to predict the k bases after a 50 bp context,
    for each k, against chance, the most frequent k-mer and TF-IDF (groverlm.nextkmer)."""
    out = ctx.out / "nextkmer"
    if not finished(out):
        nextkmer(ctx.model, ctx.genome, ctx.held_out(cfg.region, "nextkmer"), out, cfg.samples,
                 cfg.classifier, cfg.baselines, name=ctx.model_name(), progress=ctx.progress)
    rows = json.loads((out / "manifest.json").read_text())["summary"]
    return {"nextkmer": ctx.relative(out), "by_k": rows}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nextkmer", help="next-k-mer prediction from a held-out region")
    p.add_argument("--model", required=True, help="model folder (any BERT checkpoint)")
    p.add_argument("--genome", required=True, help="FASTA, gzip or bgzip")
    p.add_argument("--region", required=True, help="CHROM or CHROM:START-END, held out from "
                                                   "pretraining")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", default=None, help="model name in metrics.json")
    add_nextkmer_args(p, NextKmerBaselinesConfig())
    p.set_defaults(func=_cmd)


def configs_from_args(args: argparse.Namespace):
    """(NextKmerSamplesConfig, ClassifierConfig, NextKmerBaselinesConfig) from `nextkmer` arguments
    (also used by select-vocab, which takes the same options)."""
    cfg = NextKmerSamplesConfig(tuple(parse_ks(args.k)), args.context, args.train_samples,
                         args.dev_samples or args.test_samples, args.test_samples, args.block,
                         args.seed)
    if args.seeds < 1:
        raise GroverError("--seeds must be at least 1")
    ft = replace(kmer_classifier(), epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                        seeds=tuple(range(args.seed, args.seed + args.seeds)),
                        max_tokens=args.max_tokens,
                        stride=args.stride, max_train=args.max_train, device=args.device,
                        precision=args.precision, threads=args.threads)
    bcfg = NextKmerBaselinesConfig(args.tfidf, rf_max_k=args.rf_max_k)
    return cfg, ft, bcfg


def format_summary(summary: list[dict[str, Any]]) -> str:
    """One line per k: model accuracy against chance, most frequent and TF-IDF."""
    lines = []
    for r in summary:
        parts = [f"k={r['k']}:"]
        if "accuracy" in r:
            parts.append(f"model {100 * r['accuracy']:.2f}%")
        parts.append(f"chance {100 * r['chance']:.3f}%")
        parts.append(f"most frequent ({r['most_frequent_kmer']}) "
                     f"{100 * r['most_frequent_accuracy']:.2f}%")
        parts += [f"{key} {100 * v:.2f}%" for key, v in r.items() if key.startswith("tfidf")]
        if "vs_tfidf" in r:
            parts.append(f"| model - {r['vs_tfidf']['baseline']}: {difference_text(r['vs_tfidf'])}")
        lines.append(" ".join(parts))
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    cfg, ft, bcfg = configs_from_args(args)
    res = nextkmer(args.model, args.genome, args.region, args.out, cfg, ft, bcfg, args.name,
                   args.overwrite, progress=not args.quiet)
    print(format_summary(res["summary"]))
    print(f"nextkmer: {len(cfg.ks)} k value(s) -> {args.out}/metrics.json")
    return 0
