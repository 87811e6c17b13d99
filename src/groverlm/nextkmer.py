"""Next-k-mer stage: how well a pretrained model's representation predicts the k bases that follow.

GROVER's vocabulary-selection task. Reads a model folder (any masked-LM checkpoint with its tokenizer)
and a FASTA genome; writes OUT/:

- `samples.tsv`: every sample (split, chrom, start of the context, context, the bases after it);
- `k{k}/`: the fine-tuning runs of each k (`finetune` layout: seed-N/log.jsonl, result.json);
- `metrics.json` (schema in `groverlm.metrics`): one result record per k and model (task
  `nextkmer-k{k}`; the fine-tuned BERT, its zero-shot readout MODEL-zeroshot, the TF-IDF and
  context-table baselines), and `summary`, one row per k with the model's test top-1 accuracy
  (`accuracy`; `zero_shot_accuracy`), chance (1/4**k), the accuracy of always answering the most
  frequent training k-mer, the TF-IDF accuracies, the context table's (`context_table`, its order
  `context_table_order`), and `vs_tfidf`, `vs_table`, `zero_shot_vs_tfidf`, `zero_shot_vs_table`:
  each model minus that baseline with the 95% interval of a paired bootstrap over the test contexts
  (`metrics.paired_difference`);
- `settings.json`: the settings the run started with (a rerun resumes only under the same);
- `manifest.json`, written last.

Samples. A context of `context` bases (default 50) is labelled by the k bases after it, one of 4**k
classes (`kmers` index), for every k in `ks` (default 2..6); all k share the same contexts, whose
labels are prefixes of the same following bases. Contexts are drawn from one region (a held-out
chromosome or interval, absent from pretraining), from A/C/G/T-only stretches: no N in the context
or the following max(ks) bases. The region is cut into blocks (default 100 kbp) drawn to train, dev
and test in proportion to the samples asked of each; a sample lies wholly inside one block, so
train, dev and test never share a base. Within a split positions are drawn without replacement.

Fine-tuning is `finetune.finetune_splits` (the same code as `groverlm finetune`): a sequence
classifier (`AutoModelForSequenceClassification`) with 4**k outputs, no class weights (the metric is
plain top-1 accuracy), the epoch chosen on dev accuracy. Baselines: TF-IDF over k-mers of the
context (k chosen on dev) with logistic regression, and with a random forest for k <= `rf_max_k` (a
forest over 4**k classes costs minutes per k on a CPU); plus TF-IDF over BPE tokens when the model's
tokenizer is BPE; and the context table, the bar a model of sequence context must clear (as the
masked-token evaluation's table is): the most frequent k bases after the context's last m bases,
counted on the FASTA outside the region (up to `table_bp` bases), m chosen on dev (m + k <=
`table_width`).

Zero-shot readout (`zero_shot`, on by default): the pretrained masked LM predicts the next bases
itself, no fine-tuning (`zero_shot_scores`: the context's last token masked, the candidates that
agree with it marginalised). On the demo's model it is above TF-IDF at every k where the fine-tuned
classifier is level with it; both are below the context table (bench/README.md).

In a run (`run`): reads the pretrained model, the genome stage's FASTA and a held-out region
(nextkmer.region, else corpus.holdout's first); writes RUN_DIR/nextkmer/nextkmer.

    groverlm nextkmer --model runs/demo/pretrain/model --genome hg19_chr20.fa.gz \
        --region chr20:50000000-63025520 --out nextkmer/
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from groverlm.args import add_fields, listed, seed_arg, stable
from groverlm.baselines import TfidfConfig, run_tfidf
from groverlm.context import Context, held_out_setting
from groverlm.corpus import Region
from groverlm.errors import GroverError, counted
from groverlm.fasta import iter_records
from groverlm.finetune import (
    MAX_CONFUSION,
    ClassifierConfig,
    Encoded,
    add_train_args,
    check_pretrained_window,
    finetune_splits,
    token_ids,
)
from groverlm.kmers import index_to_kmer, kmer_ids, kmer_to_index, parse_ks
from groverlm.manifest import (
    MODEL_BY_HASH,
    SETTINGS,
    atomic_path,
    check_resume,
    clear_outputs,
    finished,
    model_sha256,
    prepare_out,
    write_json,
    write_manifest,
    writes_folder,
)
from groverlm.metrics import (
    difference_text,
    make_result,
    paired_difference,
    scored_metrics,
    write_metrics,
)
from groverlm.models import default_name, load_tokenizer
from groverlm.score import Scorer, ScoringConfig
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
    train_samples: int = 10_000  # contexts the model and every baseline train on
    dev_samples: int = 2_000  # contexts that choose the epoch (and TF-IDF's k)
    test_samples: int = 2_000  # contexts the reported accuracies are measured on
    block: int = 100_000  # region blocks drawn whole to one split (no shared bases)
    seed: int = 0  # block draw and positions
    # the command's flag named otherwise than its field (a run's errors name the field)
    FLAGS: ClassVar[dict[str, str]] = {"ks": "--k"}

    def __post_init__(self):
        if not self.ks or min(self.ks) < 1 or max(self.ks) > 8:
            raise GroverError(f"--k values must be between 1 and 8, got {list(self.ks)}")
        if len(set(self.ks)) != len(self.ks):  # a YAML list may repeat one: each k is one result
            raise GroverError(f"--k values must differ, got {list(self.ks)}")
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
    # the context table: the most frequent k bases after the context's last m bases, counted on
    # the genome outside the region (what pretraining could see), m chosen on dev
    table: bool = True
    table_width: int = 12  # m + k <= this: 4**12 counts (134 MB) hold every order needed
    table_bp: int = 100_000_000  # bases counted at most (records in file order)

    def __post_init__(self):
        if self.tfidf not in TFIDF:
            raise GroverError(f"--tfidf must be one of {', '.join(TFIDF)}")
        if not 2 <= self.table_width <= 13 or self.table_bp < 1:
            raise GroverError("table_width must be between 2 and 13 (4**13 counts: 0.5 GB), "
                              "table_bp at least 1")


def kmer_classifier() -> ClassifierConfig:
    """Next-k-mer fine-tuning's defaults, for the command and YAML alike: plain top-1 accuracy over
    4**k classes (no class weights), one seed; the learning rate follows the model's width
    (finetune.learning_rate) unless set."""
    return ClassifierConfig(class_weights="off", select="accuracy", seeds=(0,))


def as_kmer_classifier(ft: ClassifierConfig) -> ClassifierConfig:
    """`ft` as next-k-mer fine-tunes it, whatever it says: no class weights (plain top-1 accuracy
    is the metric), the epoch chosen on dev accuracy. Manifests record this, not `ft`."""
    return replace(ft, class_weights="off", select="accuracy")


@dataclass(frozen=True)
class NextKmerConfig:
    """Next-k-mer prediction by the run's pretrained model, on a region pretraining never saw."""

    region: str | None = None  # held-out CHROM[:START-END]; null: corpus.holdout's first region
    samples: NextKmerSamplesConfig = field(default_factory=NextKmerSamplesConfig)  # k values, contexts, sizes
    classifier: ClassifierConfig = field(default_factory=kmer_classifier)  # epochs, lr, seeds
    # TF-IDF and the most frequent k-mer on the same samples
    baselines: NextKmerBaselinesConfig = field(default_factory=NextKmerBaselinesConfig)
    zero_shot: bool = True  # also the masked LM's own readout, no fine-tuning (`zero_shot_scores`)


@dataclass
class Samples:
    """Next-k-mer samples of every split: contexts and the max(ks) bases that follow each."""

    chrom: str
    cfg: NextKmerSamplesConfig
    starts: dict[str, np.ndarray]  # (n,) context start in the record
    contexts: dict[str, list[str]]
    following: dict[str, list[str]]
    info: dict[str, Any] = field(default_factory=dict)
    genome: Path | None = None  # the FASTA drawn from (the context table counts the rest of it)
    region: Region | None = None

    def fingerprint(self) -> str:
        """SHA-256 of the configuration, every sample position and its bases (another FASTA can
        give the same positions)."""
        h = hashlib.sha256(json.dumps([self.chrom, asdict(self.cfg)]).encode())
        for s in SPLITS:
            h.update(np.asarray(self.starts[s], np.int64).tobytes())
            h.update("".join(self.contexts[s] + self.following[s]).encode())
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


def _too_few_blocks(region: Region, n: int, cfg: NextKmerSamplesConfig,
                    options: tuple[str, str]) -> str:
    return (f"{options[0]} {region} holds {counted(n, 'usable block')} of {cfg.block:,} bp; need 3 "
            f"(train, dev, test): use a smaller {options[1]} or a larger region")


def check_blocks(region: Region, lengths: dict[str, int], cfg: NextKmerSamplesConfig,
                 options: tuple[str, str], where: Any = None) -> None:
    """The 3 blocks (train, dev, test) `draw_samples` needs, counted from the records' lengths
    alone: the blocks that hold one sample's span of the region (N runs may still leave fewer,
    which `draw_samples` finds). `where`: the file errors name.

    >>> cfg = NextKmerSamplesConfig(ks=(2,), context=8, block=100)  # a sample reads 10 bases
    >>> check_blocks(Region("r", 0, 210), {"r": 500}, cfg, ("region", "block"))
    >>> check_blocks(Region("r", 0, 209), {"r": 500}, cfg, ("region", "block"))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    groverlm.errors.GroverError: region r:0-209 holds 2 usable blocks of 100 bp; need 3 ...
    """
    _, start, end = region.bounds(lengths, options[0], where)
    first = np.arange(start // cfg.block, (end - 1) // cfg.block + 1) * cfg.block
    held = np.minimum(end, first + cfg.block) - np.maximum(start, first)  # the region's bases
    n = int((held >= cfg.span).sum())
    if n < 3:
        raise GroverError(_too_few_blocks(region, n, cfg, options), where)


def draw_samples(genome, region, cfg: NextKmerSamplesConfig,
                 options: tuple[str, str] = ("--region", "--block")) -> Samples:
    """Draw the samples of every split from `region` of a `fasta.Genome`; errors name the region's
    and the block's settings as `options` says (a run's YAML keys, or the command's flags)."""
    _, start, end = region.bounds(genome.lengths, options[0])
    rec = genome[region.chrom]
    ok = valid_starts(rec, start, end, cfg.span, cfg.block)
    block_of = (np.arange(start, end, dtype=np.int64) // cfg.block)
    blocks = np.unique(block_of[ok])
    wanted = cfg.wanted()
    if len(blocks) < 3:
        raise GroverError(_too_few_blocks(region, len(blocks), cfg, options))
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
            raise GroverError(f"the {split} blocks of {options[0]} {region} hold {cand.size:,} "
                              f"usable positions, fewer than the {wanted[split]:,} samples asked")
        pos = np.sort(rng.choice(cand, wanted[split], replace=False))
        starts[split] = pos
        contexts[split] = [rec.sequence(int(p), int(p) + cfg.context) for p in pos]
        following[split] = [rec.sequence(int(p) + cfg.context, int(p) + cfg.span) for p in pos]
    info = {"region": str(region), "blocks": {s: len(assign[s]) for s in SPLITS},
            "positions_available": available, "block_ids": {s: sorted(int(b) for b in assign[s])
                                                            for s in SPLITS}}
    return Samples(region.chrom, cfg, starts, contexts, following, info,
                   getattr(genome, "path", None), region)


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


def tfidf_records(samples: Samples, k: int, bcfg: NextKmerBaselinesConfig, tokenizer=None,
                  progress: bool = False) -> list[dict[str, Any]]:
    """TF-IDF baselines for one k (k-mer features; BPE-token features with `tokenizer`);
    `progress`: run_tfidf's bar over its feature sets and fits."""
    if bcfg.tfidf == "none":
        return []
    models = ("rf", "lr") if k <= bcfg.rf_max_k else ("lr",)
    # features chosen on dev accuracy, as the model's epochs are and as next-k-mer is reported
    cfg = TfidfConfig(ks=bcfg.ks, models=models, class_weight=None,
                      n_estimators=bcfg.n_estimators, select="accuracy")
    args = []
    for s in SPLITS:
        args += [samples.contexts[s], samples.labels(s, k)]
    labels = list(range(4**k))
    out = []
    if bcfg.tfidf in ("auto", "kmer"):
        out += run_tfidf(*args, cfg, task=f"nextkmer-k{k}", labels=labels, progress=progress)
    if tokenizer is not None and bcfg.tfidf in ("auto", "bpe"):
        out += run_tfidf(*args, cfg, tokenizer=tokenizer, task=f"nextkmer-k{k}", labels=labels,
                         progress=progress)
    return [_compact(r) for r in out]


TABLE = "context-table"  # the table baseline's record


def genome_counts(genome: str | Path, region: Region, width: int, max_bp: int
                  ) -> tuple[np.ndarray, int]:
    """((4**width,) int64 counts of the width-mers of the FASTA outside `region`, A/C/G/T bases
    read): records in file order, until `max_bp` A/C/G/T bases have been read (N counts toward
    neither: hg19's chromosomes start with runs of it)."""
    counts = np.zeros(4**width, dtype=np.int64)
    used, chunk = 0, 10_000_000
    # ids wait here until `chunk` of them are counted at once: a bincount costs a 4**width array
    # (134 MB at width 12), which one per record made minutes on an assembly of many scaffolds
    batch: list[np.ndarray] = []
    held = 0
    for rec in iter_records(genome):
        end = len(rec) if region.end is None else region.end
        spans = [(0, region.start), (end, len(rec))] if rec.name == region.chrom else [(0, len(rec))]
        for a, b in spans:
            b, bases = rec.acgt_prefix(a, b, max_bp - used) if b > a else (a, 0)
            for c in range(a, b, chunk):  # windows overlap by width - 1: every width-mer once
                ids = kmer_ids(rec.codes[c:min(b, c + chunk + width - 1)], width)
                batch.append(ids[ids >= 0])
                held += batch[-1].size
                if held >= chunk:
                    counts += np.bincount(np.concatenate(batch), minlength=4**width)
                    batch, held = [], 0
            used += bases
        if used >= max_bp:
            break
    if batch:
        counts += np.bincount(np.concatenate(batch), minlength=4**width)
    return counts, used


def table_scores(counts: np.ndarray, width: int, m: int, k: int, contexts: list[str]) -> np.ndarray:
    """(n, 4**k) counts of each k-mer after each context's last m bases (from width-mer counts:
    the (m + k)-mers are their last m + k bases)."""
    c = counts.reshape(4 ** (width - m - k), 4 ** (m + k)).sum(0).reshape(4**m, 4**k)
    return c[[kmer_to_index(x[-m:]) for x in contexts]].astype(np.float64)


def table_record(counts: np.ndarray, width: int, samples: Samples, k: int,
                 y: dict[str, np.ndarray], bases: int) -> dict[str, Any]:
    """The context table's result for one k: the order m with the best dev accuracy (ties to the
    shorter), scored on test."""
    orders = range(1, min(width - k, samples.cfg.context) + 1)
    dev = [np.mean(table_scores(counts, width, m, k, samples.contexts["dev"]).argmax(1) == y["dev"])
           for m in orders]
    m = orders[int(np.argmax(dev))]
    test = scored_metrics(y["test"], table_scores(counts, width, m, k, samples.contexts["test"]),
                          range(4**k))
    return _compact(make_result(f"nextkmer-k{k}", TABLE, [{"seed": 0, "test": test}],
                                {"order": m, "dev_accuracy": float(max(dev)), "bases": bases},
                                baseline=True))


def is_bpe(tokenizer) -> bool:
    return type(tokenizer.backend_tokenizer.model).__name__ == "BPE"


ZERO_SHOT = "zeroshot"  # the zero-shot readout's record is MODEL-zeroshot


def zero_shot_scores(p_after: np.ndarray, p_last: np.ndarray, last: np.ndarray,
                     strings: list[str], k: int, train_labels: np.ndarray) -> np.ndarray:
    """(n, 4**k) probabilities of the k bases after each context, read from a masked LM.

    A context cut out of the genome ends inside what the genome's segmentation would make one
    token, so its own last token u is often a fragment. The readout masks that last token and
    keeps the candidates t that agree with the context (t starts with u): t's bases after u begin
    the continuation. A candidate that is u itself means the next token starts after the context:
    the prediction with a [MASK] appended after the whole context is used then. A continuation
    shorter than k is completed by the training split's k-mer frequencies among those that start
    with it (add-one counts).

    p_after, p_last: (n, V) probabilities of the vocabulary at the appended [MASK] and at the
    masked last token; last: (n,) vocabulary index of each context's last token; strings: the bases
    of each vocabulary entry ("" for special tokens); train_labels: training k-mer indices.
    """
    n_kmers = 4**k
    counts = np.bincount(train_labels, minlength=n_kmers).astype(np.float64) + 1.0
    expanded: dict[str, np.ndarray] = {}

    def expand(r: str) -> np.ndarray:  # next k bases, given that they start with r
        if r not in expanded:
            v = np.zeros(n_kmers)
            if len(r) >= k:
                v[kmer_to_index(r[:k])] = 1.0
            else:  # k-mers starting with r are one run of indices (big-endian base 4)
                width = 4 ** (k - len(r))
                first = kmer_to_index(r) * width if r else 0
                v[first:first + width] = counts[first:first + width]
                v /= v.sum()
            expanded[r] = v
        return expanded[r]

    dna = [i for i, s in enumerate(strings) if s]
    after = p_after[:, dna] @ np.stack([expand(strings[i]) for i in dna])  # (n, 4**k)
    out = np.zeros((len(last), n_kmers))
    for u in np.unique(last):
        rows = np.flatnonzero(last == u)
        head = strings[u]
        agree = [i for i in dna if strings[i].startswith(head) and i != u]
        p = p_last[rows][:, agree]  # (r, a)
        z = p.sum(1) + p_last[rows, u]
        tails = np.stack([expand(strings[i][len(head):]) for i in agree]) if agree else \
            np.zeros((0, n_kmers))
        out[rows] = (p @ tails + p_last[rows, u][:, None] * after[rows]) / np.maximum(
            z, 1e-300)[:, None]
    return out


def zero_shot_inputs(scorer: Scorer, ids: list[np.ndarray], contexts: list[str]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None:
    """(p_after, p_last, last, strings) of `zero_shot_scores` for tokenized contexts, or None when
    the tokenizer does not cut a context into consecutive pieces (overlapping k-mers, [UNK])."""
    tok = scorer.tok
    strings = [t if t and set(t) <= set("ACGT") else ""
               for t in tok.convert_ids_to_tokens(list(range(len(tok))))]
    for x, c in zip(ids, contexts, strict=True):
        if not len(x) or "".join(strings[i] for i in x) != c:
            return None
    keep = scorer.max_tokens - 1  # the tokens nearest the end, with room for an appended [MASK]
    tails = [[int(i) for i in x[-keep:]] for x in ids]
    p_after = np.exp(scorer.distributions([(t, len(t)) for t in tails]))
    p_last = np.exp(scorer.distributions([(t, len(t) - 1) for t in tails]))
    return p_after, p_last, np.array([t[-1] for t in tails]), strings


def check_no_max_train(ft, key: str = "max_train", samples: str = "--train-samples") -> None:
    """Refuse a classifier's max_train (set at `key`): the model alone would train on fewer
    contexts than the baselines; `samples` (the setting that says how many all of them share)
    is what to set instead."""
    if ft.max_train is not None:
        raise GroverError(f"{key} {ft.max_train}: does not apply to next-k-mer; set {samples}, "
                          "which the model and every baseline then share")


def run_nextkmer(model_dir: str | Path | None, samples: Samples, out: str | Path, ft,
                 bcfg: NextKmerBaselinesConfig = NextKmerBaselinesConfig(), name: str | None = None,
                 progress: bool = True, zero_shot: bool = True) -> dict[str, Any]:
    """Fine-tune per k and score the baselines; returns {"records", "summary"}.

    ft: a `finetune.ClassifierConfig` (its class_weights and select are overridden: off, accuracy).
    Without a model only the baselines are scored. With `zero_shot`, the model's masked-LM readout
    (`zero_shot_scores`) is scored too, as MODEL-zeroshot. Each finished k is kept in
    out/k{k}/k.json, so an interrupted run continues where it stopped.
    """
    out = Path(out)
    check_no_max_train(ft)
    ft = as_kmer_classifier(ft)
    name = name or (default_name(model_dir) if model_dir else None)
    check_resume(out, {"model": str(model_dir), "name": name, "samples": samples.fingerprint(),
                       "finetune": stable(ft), "baselines": asdict(bcfg), "zero_shot": zero_shot,
                       "model_sha256": model_sha256(model_dir) if model_dir else None},
                 by_hash=MODEL_BY_HASH)
    tokenizer = load_tokenizer(model_dir, "model") if model_dir is not None else None
    ids = {s: token_ids(tokenizer, samples.contexts[s]) for s in SPLITS} if tokenizer else {}
    readout: Any = None  # zero_shot_inputs of the test contexts, computed once for every k
    counts: Any = None  # the context table's genome counts, counted once for every k
    table = bcfg.table and samples.genome is not None and samples.region is not None
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
                                   "most_frequent_accuracy": mf_acc,
                                   "most_frequent_dev_accuracy": float(np.mean(y["dev"] == label))}
            recs, model_rec = [], None
            if model_dir is not None:
                r = finetune_splits(model_dir, *(Encoded(ids[s], y[s]) for s in SPLITS), 4**k, ft,
                                    out / f"k{k}", f"nextkmer-k{k}", name, save=False,
                                    progress=progress, k=k, context=samples.cfg.context)
                model_rec = _compact(r)
                recs.append(model_rec)
                accs = [p["test"]["accuracy"] for p in r["per_seed"]]
                row.update(accuracy=float(np.mean(accs)), accuracy_std=float(np.std(accs)),
                           dev_accuracy=float(np.mean([p["dev"]["accuracy"] for p in r["per_seed"]])),
                           mean_tokens=float(np.mean([len(x) for x in ids["train"]])))
            zero_rec = None
            if model_dir is not None and zero_shot:
                if readout is None:
                    t1 = time.perf_counter()
                    scorer = Scorer.load(model_dir, ScoringConfig(device=ft.device))
                    readout = zero_shot_inputs(scorer, ids["test"], samples.contexts["test"]) \
                        or ()
                    readout_s = time.perf_counter() - t1
                    del scorer
                    if not readout:
                        log.info("next-k-mer: no zero-shot readout (the tokenizer does not cut "
                                 "a context into consecutive pieces)")
                if readout:
                    scores = zero_shot_scores(*readout, k, y["train"])
                    zero_rec = _compact(make_result(
                        f"nextkmer-k{k}", f"{name}-{ZERO_SHOT}",
                        [{"seed": 0, "test": scored_metrics(y["test"], scores, range(4**k))}],
                        {"readout": "masked LM, last token re-masked", "seconds":
                         round(readout_s, 1)}, zero_shot_of=name))
                    recs.append(zero_rec)
                    row["zero_shot_accuracy"] = zero_rec["test"]["accuracy"]
            bpe_tok = tokenizer.backend_tokenizer if tokenizer and is_bpe(tokenizer) else None
            tfidf = tfidf_records(samples, k, bcfg, bpe_tok, progress)
            for r in tfidf:
                recs.append(r)
                row[r["model"]] = r["test"]["accuracy"]
            table_rec = None
            if table and k < bcfg.table_width:
                if counts is None:
                    counts = genome_counts(samples.genome, samples.region, bcfg.table_width,
                                           bcfg.table_bp)
                    if not counts[1]:
                        log.info("next-k-mer: no context table (no bases outside the region)")
                if counts[1]:
                    table_rec = table_record(counts[0], bcfg.table_width, samples, k, y,
                                             counts[1])
                    recs.append(table_rec)
                    row.update(context_table=table_rec["test"]["accuracy"],
                               context_table_order=table_rec["params"]["order"])
            # the model (fine-tuned; zero-shot) against the best TF-IDF and the table, paired
            best = max(tfidf, key=lambda r: r["test"]["accuracy"]) if tfidf else None
            for key, rec in (("", model_rec), ("zero_shot_", zero_rec)):
                for against, base in (("tfidf", best), ("table", table_rec)):
                    if rec is not None and base is not None:
                        row[f"{key}vs_{against}"] = {
                            "baseline": base["model"],
                            **(paired_difference(rec, base, "accuracy") or {})}
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


@writes_folder
def nextkmer(model_dir: str | Path, genome: str | Path, region: str | Region, out: str | Path,
             cfg: NextKmerSamplesConfig, ft, bcfg: NextKmerBaselinesConfig = NextKmerBaselinesConfig(),
             name: str | None = None, overwrite: bool = False, progress: bool = True,
             zero_shot: bool = True, options: tuple[str, str] = ("--region", "--block")
             ) -> dict[str, Any]:
    """`groverlm nextkmer`: draw the samples, fine-tune per k, write metrics.json and manifest.
    `options`: the names of the region's and the block's settings in errors (draw_samples)."""
    t0 = time.perf_counter()
    reg = Region.parse(region, options[0])
    out = Path(out)
    if overwrite and out.exists():
        clear_outputs(out, [*(p for p in out.glob("k*") if p.is_dir()), out / SETTINGS])
    out = prepare_out(out, overwrite)
    samples = draw_samples(load_genome(genome, [reg.chrom], options[0]), reg, cfg, options)
    res = run_nextkmer(model_dir, samples, out, ft, bcfg, name, progress, zero_shot)
    write_samples(samples, out / "samples.tsv")  # after: a refused resume leaves the old samples
    write_metrics(out, "nextkmer", res["records"], summary=res["summary"], region=str(reg),
                  context=cfg.context, model=res["model"])
    config = {**asdict(cfg), "region": str(reg), "model": str(model_dir),
              "finetune": asdict(as_kmer_classifier(ft)),
              "baselines": asdict(bcfg), "zero_shot": zero_shot}
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
    add_fields(p, NextKmerSamplesConfig, "train_samples", "dev_samples", "test_samples")
    p.add_argument("--block", type=int, default=d.block,
                   help=f"region blocks drawn whole to a split (default {d.block:,} bp)")
    p.add_argument("--seed", type=seed_arg, default=d.seed,
                   help=f"seed of the block draw and the contexts (select-vocab: and of "
                        f"pretraining; the fine-tuning's are --seeds; default {d.seed})")
    p.add_argument("--tfidf", choices=TFIDF, default=baselines.tfidf,
                   help=f"TF-IDF baselines: k-mers and BPE tokens (auto, the latter for a BPE "
                        f"model), k-mers only, BPE tokens only, none (default {baselines.tfidf})")
    p.add_argument("--rf-max-k", type=int, default=baselines.rf_max_k,
                   help=f"random-forest baseline only up to this k (default {baselines.rf_max_k})")
    p.add_argument("--no-table", dest="table", action="store_false",
                   help="skip the context table (the most frequent k bases after the context's "
                        "last m bases, counted on the genome outside --region)")
    add_train_args(p, kmer_classifier(), max_train=False)


def regions(cfg: Any, config: Any) -> list[tuple[str, Any]]:
    """The held-out region the contexts come from, with the setting naming it
    (runner.Stage.regions: checked before any stage runs, not after pretraining)."""
    return [held_out_setting(config, cfg.region, "nextkmer")]


def preflight(cfg: Any, config: Any) -> None:
    """The runner's check, before any stage runs, that the classifier's windows fit the pretrained
    model and that it sets no max_train (else they fail after pretraining, naming --max-tokens,
    --stride or max_train)."""
    check_no_max_train(cfg.classifier, "nextkmer.classifier.max_train",
                       "nextkmer.samples.train_samples")
    check_pretrained_window(cfg.classifier, config, lambda name: f"nextkmer.classifier.{name}")


def check_lengths(cfg: Any, config: Any, lengths: dict[str, int]) -> None:
    """The runner's check once the genome stage has run (`lengths`: its records'): the held-out
    region holds the 3 blocks the samples need; else this stage fails after pretraining."""
    setting, region = held_out_setting(config, cfg.region, "nextkmer")
    check_blocks(region, lengths, cfg.samples, (setting, "nextkmer.samples.block"), config.source)


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Next-k-mer: the pretrained model fine-tuned to predict the k bases after a 50 bp context,
    for each k, against chance, the most frequent k-mer and TF-IDF (groverlm.nextkmer)."""
    out = ctx.out / "nextkmer"
    if not finished(out):
        nextkmer(ctx.model, ctx.genome, ctx.held_out(cfg.region, "nextkmer"), out, cfg.samples,
                 cfg.classifier, cfg.baselines, name=ctx.model_name(), progress=ctx.progress,
                 zero_shot=cfg.zero_shot, options=ctx.region_options(cfg.region, "nextkmer"))
    rows = json.loads((out / "manifest.json").read_text())["summary"]
    return {"nextkmer": ctx.relative(out), "by_k": rows}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nextkmer", help="next-k-mer prediction from a held-out region")
    p.add_argument("--model", required=True, help="model folder or Hub id (any masked-LM checkpoint)")
    p.add_argument("--genome", required=True, help="FASTA, gzip or bgzip")
    p.add_argument("--region", required=True, help="CHROM or CHROM:START-END, held out from "
                                                   "pretraining")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--name", default=None, help="model name in metrics.json")
    p.add_argument("--no-zero-shot", dest="zero_shot", action="store_false",
                   help="skip the masked LM's own readout (MODEL-zeroshot, no fine-tuning)")
    add_nextkmer_args(p, NextKmerBaselinesConfig())
    p.set_defaults(func=_cmd)


def configs_from_args(args: argparse.Namespace):
    """(NextKmerSamplesConfig, ClassifierConfig, NextKmerBaselinesConfig) from `nextkmer` arguments
    (also used by select-vocab, which takes the same options)."""
    cfg = NextKmerSamplesConfig(tuple(parse_ks(args.k)), args.context, args.train_samples,
                         args.dev_samples, args.test_samples, args.block,
                         args.seed)
    ft = replace(kmer_classifier(), epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                        seeds=tuple(args.seeds),
                        max_tokens=args.max_tokens,
                        stride=args.stride, max_train=args.max_train, device=args.device,
                        precision=args.precision, threads=args.threads)
    bcfg = NextKmerBaselinesConfig(args.tfidf, rf_max_k=args.rf_max_k, table=args.table)
    return cfg, ft, bcfg


def format_summary(summary: list[dict[str, Any]]) -> str:
    """One line per k: model accuracy against chance, most frequent and TF-IDF."""
    lines = []
    for r in summary:
        parts = [f"k={r['k']}:"]
        if "accuracy" in r:
            parts.append(f"model {100 * r['accuracy']:.2f}%")
        if "zero_shot_accuracy" in r:
            parts.append(f"zero-shot {100 * r['zero_shot_accuracy']:.2f}%")
        parts.append(f"chance {100 * r['chance']:.3f}%")
        parts.append(f"most frequent ({r['most_frequent_kmer']}) "
                     f"{100 * r['most_frequent_accuracy']:.2f}%")
        parts += [f"{key} {100 * v:.2f}%" for key, v in r.items() if key.startswith("tfidf")]
        if "context_table" in r:
            parts.append(f"context table (last {r['context_table_order']} nt) "
                         f"{100 * r['context_table']:.2f}%")
        for key, who in (("", "model"), ("zero_shot_", "zero-shot")):
            for against in ("tfidf", "table"):
                if (d := r.get(f"{key}vs_{against}")) is not None:
                    parts.append(f"| {who} - {d['baseline']}: {difference_text(d)}")
        lines.append(" ".join(parts))
    return "\n".join(lines)


def _cmd(args: argparse.Namespace) -> int:
    cfg, ft, bcfg = configs_from_args(args)
    res = nextkmer(args.model, args.genome, args.region, args.out, cfg, ft, bcfg, args.name,
                   args.overwrite, progress=not args.quiet, zero_shot=args.zero_shot)
    print(format_summary(res["summary"]))
    print(f"nextkmer: {counted(len(cfg.ks), 'k value')} -> {args.out}/metrics.json")
    return 0
