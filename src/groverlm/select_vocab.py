"""Vocabulary-selection stage: pick the BPE cycle count by next-k-mer prediction, as GROVER did.

Reads a FASTA genome and a `bpe train` folder; writes OUT/:

- `genome/pretrain.fa`: the pretraining genome: every record with the held-out region cut out (the
  pieces before and after it become records `CHROM:START-END`), optionally only as far as its
  first `pretrain_bp` A/C/G/T bases (N not counted); the region itself is never seen in pretraining;
- for each vocabulary NAME (`bpe-C` for each cycle count C, `kmer-K` for each k-mer length K):
  `vocab/NAME` (`bpe export` or `kmer-vocab`), `corpus/NAME` (`groverlm corpus`, random test split),
  `pretrain/NAME` (`groverlm pretrain`), `nextkmer/NAME` (`groverlm nextkmer` on the region);
  `nextkmer/baselines`: chance, most frequent k-mer, TF-IDF and the context table on the same
  samples;
- `table.tsv`, `table.md` (one row per model: accuracy per k, mean lift over the most frequent k-mer, the
  nucleotides each model read; each model's zero-shot readout as NAME-zeroshot, kind "zero-shot",
  which the selection rule does not read), `curve.tsv` (BPE rows by cycle count), `plot.png`
  (accuracy against cycles, log x-axis, one panel per k, BPE zero-shot as a dashed curve, k-mer
  models and baselines as horizontal reference lines), `settings.json` (the settings the run
  started with: a rerun resumes only under the same), and `manifest.json` with the selected cycle
  count and the rule, written last.

In a run (`run`): reads the genome stage's FASTA and RUN_DIR/bpe/train; writes
RUN_DIR/select_vocab/selection (the OUT above); with `select: false` it writes nothing and hands on
the bpe stage's vocabulary.

Every sub-run is one of the project's stages called as a function, and is skipped when its
manifest exists (pretraining also resumes from its checkpoints), so the stage is resumable.

What a changed setting keeps. settings.json holds two parts: `pretraining` (the candidate list,
their model, sample length, batch, steps, lr, pretrain_bp, probe_bp, test_fraction and seed; the
held-out region; the genome's and BPE folder's paths, and what their contents are: the genome
file's SHA-256 and that of the merges the candidates read, so another file at the same path is a
changed setting) and `nextkmer` (`samples`, `classifier`, `baselines`). When only `nextkmer`
changed, every candidate's vocabulary, corpus and pretrained model is kept, and what those
settings feed is redone: `nextkmer/` (the samples, each model's fine-tuning and zero-shot
readout, the baselines), then the tables, plot and selection. In a run
that happens by itself whenever the genome and bpe stages are unchanged too (`keeps_parts`: the
runner compares their fingerprints, since the paths recorded here stay the same when they are
redone); on the command line it takes `--redo-nextkmer`. Any change of `pretraining` pretrains
every candidate again: in a run the selection starts afresh, a removed candidate's folders gone (a
candidate added or removed changes the list, which sets every candidate's sample length,
`sample_length`); on the command line it is refused without `--overwrite`. `groverlm run --force`
and `select: false` remove the selection.

Fair comparison (the rule, also printed in table.md's header). Every model has the same
architecture preset (the same encoder; only the embedding table and the output bias follow the
vocabulary size), seed, optimizer, learning rate, masking rate per token, batch size and number of
steps, and reads the same number of nucleotides: pretraining samples hold a fixed number of tokens
per vocabulary, T_v = round(sample_nt / nt_per_token_v) (corpus min_tokens = max_tokens = T_v),
where nt_per_token_v is measured by tokenizing the first `probe_bp` bases of the pretraining genome
with that vocabulary before any model is pretrained. Where T_v would exceed MAX_TOKENS for some
vocabulary (2000 nt are about 660 tokens of 100-cycle BPE), sample_nt is lowered for every one to
what MAX_TOKENS tokens of the shortest-token vocabulary hold, with a warning naming it; table.md's
header and the manifest (`sample_nt`) give the length used. Samples the model's positions cannot
hold fail then, before any candidate is pretrained. So each step reads batch x ~sample_nt
nucleotides whatever the vocabulary (a 6-mer model sees fewer, longer tokens per sample than a
100-cycle BPE model, not fewer bases).
The table reports the measured nucleotides per sample and in total (samples seen x nucleotides per
training sample), so any residual difference is visible. Next-k-mer fine-tuning is identical for
all models: the same samples (contexts of the same bases), epochs, batch size and learning rate.

Selection rule: the cycle count with the best mean over k of the lift over the most frequent k-mer
(dev accuracy / the accuracy of always guessing the train split's most frequent k-mer, on the same
dev samples; chance 1/4**k where that is lower; test accuracies are reported, never chosen on), so
each k weighs the same whatever its number of classes, and a model that only learned the k-mer
frequencies scores 1, not 4**k times chance (at k = 5-6 the most frequent k-mer, poly-A or poly-T,
scores tens of times chance); a tie (within 1e-9) goes to fewer cycles.

    groverlm select-vocab --genome hg19_chr20.fa.gz --bpe bpe5000 \
        --region chr20:50000000-63025520 --out select/ --cycles 100,400,600,1000,5000 \
        --max-steps 200 --sample-nt 256
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
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.analysis.plots import CHANCE_LINE, COLORS, MOST_FREQUENT_LINE, figure, save_png
from groverlm.args import drop_keys, listed, stable, volatile, volatile_keys
from groverlm.bpe import vocab_summary
from groverlm.bpe.tokens import merges_fingerprint
from groverlm.context import Context, held_out_setting
from groverlm.corpus import CorpusConfig, Region, write_corpus
from groverlm.errors import GroverError, counted
from groverlm.fasta import decode, iter_records
from groverlm.finetune import ClassifierConfig, check_window_settings
from groverlm.kmer_vocab import MAX_VOCAB_K, write_kmer_vocab
from groverlm.manifest import (
    LOCK,
    MANIFEST,
    SETTINGS,
    atomic_path,
    changed_settings,
    check_resume,
    clear_outputs,
    contents_sha256,
    fingerprint,
    finished,
    located_by_hash,
    read_json,
    read_manifest,
    write_json,
    write_manifest,
    write_text,
    writes_folder,
)
from groverlm.metrics import read_metrics, write_metrics
from groverlm.models import load_tokenizer
from groverlm.nextkmer import (
    NextKmerBaselinesConfig,
    NextKmerSamplesConfig,
    add_nextkmer_args,
    as_kmer_classifier,
    check_blocks,
    configs_from_args,
    draw_samples,
    kmer_classifier,
    run_nextkmer,
    write_samples,
)
from groverlm.pretrain import (
    ModelConfig,
    add_model_args,
    check_model,
    check_positions,
    model_from_args,
    pretrain,
)
from groverlm.tasks.common import load_genome

# bpe.export (tokenizers) and train (torch) load on first use, keeping the CLI and config loading light
bpe_export = lazy.module("groverlm.bpe.export")
training = lazy.module("groverlm.train")

log = logging.getLogger(__name__)

MAX_TOKENS = 510  # BERT positions less [CLS] and [SEP]
PROBE = "nt_per_token.json"  # written into each vocabulary folder: the measured nt per token
TIE = 1e-9  # scores closer than this are a tie (then the fewer cycles win)
RULE = ("best mean over k of dev accuracy / the most frequent k-mer's dev accuracy (at least "
        "chance, 1/4**k) among the BPE cycle counts; ties to fewer cycles; test accuracies are "
        "reported, never chosen on")
DEV, TEST = "dev_k", "acc_k"  # row columns DEV{k} / TEST{k}: a model's dev / test accuracy at k
LIFT = "lift_over_most_frequent"  # the table column: RULE's score computed on test (reported)
DEV_LIFT = "dev_lift"  # RULE's score itself (on dev): what the selection compared


def select_model() -> ModelConfig:
    """Select-vocab's model and masking: `pretrain.ModelConfig`'s defaults, with a small masked-token
    evaluation (a side number here; each candidate is evaluated once, after its last step). A YAML
    `model` section starts from these values (config._build builds on the field's default)."""
    return ModelConfig(final_eval_samples=512)


@dataclass(frozen=True)
class SelectPretrainingConfig:
    """The vocabularies compared and the pretraining budget every one of them gets."""

    cycles: tuple[int, ...] = (100, 200, 400, 600, 800, 1000, 2000, 5000)  # BPE cycle counts
    kmers: tuple[int, ...] = (4, 5, 6)  # fixed non-overlapping k-mer vocabularies (references)
    # every candidate's preset, BertConfig overrides and masking (as `pretrain.model`); the CPU
    # recipe (README) needs BERT's mask_split 0.8,0.1
    model: ModelConfig = field(default_factory=select_model)
    # nucleotides per pretraining sample, the same for every vocabulary (lowered for all where one
    # would need more than MAX_TOKENS tokens)
    sample_nt: int = 512
    batch_size: int = 32  # pretraining samples per step
    max_steps: int = 1000  # pretraining steps
    lr: float = 4e-4  # pretraining peak learning rate
    pretrain_bp: int | None = None  # pretrain on the first this many A/C/G/T bases outside the
    #   region (N, which no token covers, not counted: hg19's chr1 starts with 10 kbp of it)
    probe_bp: int = 1_000_000  # bases tokenized to measure each vocabulary's nt per token
    test_fraction: float = 0.05  # pretraining samples kept aside for the masked-token evaluation
    seed: int = 0
    threads: int | None = volatile(None)  # torch CPU threads in pretraining (1: fastest on a busy CPU)

    def __post_init__(self):
        if not self.cycles:
            raise GroverError("--cycles: give at least one cycle count")
        if min(self.cycles) < 1:
            raise GroverError("--cycles must be positive")
        if self.sample_nt < 8 or self.batch_size < 1 or self.max_steps < 1:
            raise GroverError("--sample-nt >= 8, --batch-size and --max-steps >= 1 are needed")
        if self.pretrain_bp is not None and self.pretrain_bp < 10 * self.sample_nt:
            raise GroverError("--pretrain-bp must hold at least 10 samples of --sample-nt bases")
        bad = [k for k in self.kmers if not 1 <= k <= MAX_VOCAB_K]
        if bad:  # else found only after every BPE candidate was pretrained
            raise GroverError(f"--kmers must be between 1 and {MAX_VOCAB_K}, got {bad[0]}")


def select_baselines() -> NextKmerBaselinesConfig:
    """Select-vocab's TF-IDF baselines: over k-mers once, the same for every candidate (BPE-token
    TF-IDF per candidate, `tfidf: auto`, costs a fit per vocabulary)."""
    return NextKmerBaselinesConfig(tfidf="kmer")


@dataclass(frozen=True)
class SelectVocabConfig:
    """Vocabulary selection (GROVER): one small model pretrained per candidate cycle count, each
    scored by next-k-mer prediction on a held-out region; the best becomes the run's vocabulary."""

    select: bool = False  # false: the run's vocabulary is bpe.cycles (the stage only records it)
    region: str | None = None  # held-out CHROM[:START-END]; null: corpus.holdout's first region
    # the candidates (BPE cycle counts, k-mer vocabularies) and each one's pretraining
    pretraining: SelectPretrainingConfig = field(default_factory=SelectPretrainingConfig)
    samples: NextKmerSamplesConfig = field(default_factory=NextKmerSamplesConfig)  # k values, contexts
    classifier: ClassifierConfig = field(default_factory=kmer_classifier)  # next-k-mer fine-tuning
    baselines: NextKmerBaselinesConfig = field(default_factory=select_baselines)  # TF-IDF, k-mers only


def vocab_names(cfg: SelectPretrainingConfig) -> list[str]:
    return [f"bpe-{c}" for c in sorted(cfg.cycles)] + [f"kmer-{k}" for k in sorted(cfg.kmers)]


# ----------------------------------------------------------------------------------------------
# The pretraining genome


def write_pretrain_genome(genome: str | Path, region, out: Path, pretrain_bp: int | None) -> Path:
    """FASTA of the genome without `region` (and cut to `pretrain_bp` A/C/G/T bases, N not
    counted); returns its path."""
    folder = out / "genome"
    fasta = folder / "pretrain.fa"
    if finished(folder):
        return fasta
    left = pretrain_bp if pretrain_bp is not None else float("inf")
    pieces, lengths = [], {}
    with atomic_path(fasta) as tmp, open(tmp, "w") as fh:
        for rec in iter_records(genome):
            # past the budget, read on only until the region's record has been checked
            if left <= 0 and region.chrom in lengths:
                break
            lengths[rec.name] = len(rec)
            spans = [(0, len(rec))]
            if rec.name == region.chrom:
                _, start, end = region.bounds(lengths, "--region", genome)
                spans = [(0, start), (end, len(rec))]
            for s, e in spans:
                if left <= 0 or e <= s:
                    continue
                e, acgt = rec.acgt_prefix(s, e, left)  # the budget counts A/C/G/T, never N
                if not acgt:
                    continue
                name = rec.name if (s, e) == (0, len(rec)) else f"{rec.name}:{s}-{e}"
                seq = decode(rec.codes[s:e])
                fh.write(f">{name}\n")
                for i in range(0, len(seq), 80):
                    fh.write(seq[i : i + 80] + "\n")
                pieces.append({"record": name, "bases": acgt})
                left -= acgt
        region.bounds(lengths, "--region", genome)  # a region on no record of the genome
    if not pieces:
        raise GroverError(f"nothing is left to pretrain on outside {region}", genome)
    write_manifest(folder, "select-vocab-genome", {"region": str(region),
                                                   "pretrain_bp": pretrain_bp}, [genome],
                   records=pieces, bases=int(sum(p["bases"] for p in pieces)))
    return fasta


def nt_per_token(vocab: Path, fasta: Path, probe_bp: int) -> float:
    """Mean bases per token of a vocabulary over the first `probe_bp` A/C/G/T bases of `fasta`."""
    tok = load_tokenizer(vocab).backend_tokenizer
    pieces, left = [], probe_bp
    for rec in iter_records(fasta):
        for s, e in rec.contigs():
            for a in range(int(s), int(e), 100_000):
                b = min(int(e), a + 100_000, a + left)
                pieces.append(decode(rec.codes[a:b]))
                left -= b - a
                if left <= 0:
                    break
            if left <= 0:
                break
        if left <= 0:
            break
    tokens = sum(len(e.ids) for e in tok.encode_batch(pieces, add_special_tokens=False))
    return sum(len(p) for p in pieces) / max(tokens, 1)


# ----------------------------------------------------------------------------------------------
# One vocabulary: export, corpus, pretrain, next-k-mer


def write_vocabulary(name: str, bpe_dir: Path, fasta: Path, out: Path,
                     cfg: SelectPretrainingConfig) -> float:
    """A candidate's vocabulary (skipped when finished); returns its nt per token (PROBE)."""
    kind, size = name.split("-")
    vocab = out / "vocab" / name
    if not finished(vocab):
        log.info("%s: vocabulary", name)
        if kind == "bpe":
            bpe_export.export_vocab(bpe_dir, int(size), vocab, overwrite=True)
        else:
            write_kmer_vocab(int(size), vocab, overwrite=True)
    probe = vocab / PROBE
    if not probe.exists():
        write_json(probe, {"nt_per_token": nt_per_token(vocab, fasta, cfg.probe_bp),
                           "probe_bp": cfg.probe_bp, "genome": str(fasta)})
    return json.loads(probe.read_text())["nt_per_token"]


def sample_length(sample_nt: int, npt: dict[str, float]) -> dict[str, Any]:
    """The nucleotides per pretraining sample of every candidate (`npt`: name -> nt per token):
    `sample_nt`, or where the vocabulary of the shortest tokens would need more than MAX_TOKENS
    tokens for it, what that many of its tokens hold, so that every candidate still reads the same.

    >>> sample_length(2000, {"bpe-100": 3.01, "kmer-4": 4.0})
    {'asked': 2000, 'used': 1535, 'limited_by': 'bpe-100'}
    >>> sample_length(1000, {"bpe-100": 3.01, "kmer-4": 4.0})["used"]
    1000
    """
    name = min(npt, key=npt.__getitem__)
    fits = int(MAX_TOKENS * npt[name])
    if sample_nt <= fits:
        return {"asked": sample_nt, "used": sample_nt, "limited_by": None}
    return {"asked": sample_nt, "used": fits, "limited_by": name}


def sample_tokens(sample_nt: int, npt: float) -> int:
    """Tokens per pretraining sample of a vocabulary of `npt` nt per token (its corpus's
    min_tokens and max_tokens).

    >>> sample_tokens(512, 4.0), sample_tokens(512, 3.01)
    (128, 170)
    """
    return max(1, round(sample_nt / npt))


def check_sample_positions(sample_nt: int, npt: dict[str, float], model: ModelConfig,
                           where: Any) -> None:
    """Every candidate's samples (`sample_nt` nt, at its measured nt per token `npt`) with
    [CLS]/[SEP] fit the model's positions: checked before any candidate is pretrained, since
    pretraining the first would otherwise fail only after its corpus (`where`: the folder)."""
    name = min(npt, key=npt.__getitem__)  # the shortest tokens: the most per sample
    tokens = sample_tokens(sample_nt, npt[name])
    check_positions(tokens, check_model(model, "model"),
                    f"{name}'s samples of {tokens} tokens ({sample_nt} nt at {npt[name]:.2f} nt "
                    "per token)", where)


def run_vocabulary(name: str, npt: float, sample_nt: int, fasta: Path, out: Path,
                   cfg: SelectPretrainingConfig, samples, ft, bcfg, progress: bool
                   ) -> dict[str, Any]:
    """Every sub-run of one vocabulary after write_vocabulary (each skipped when finished), with
    samples of about `sample_nt` nucleotides; returns its table row."""
    kind, size = name.split("-")
    vocab, corpus = out / "vocab" / name, out / "corpus" / name
    model, nk = out / "pretrain" / name, out / "nextkmer" / name
    t0 = time.perf_counter()
    tokens = sample_tokens(sample_nt, npt)
    assert tokens <= MAX_TOKENS, (name, tokens)  # sample_length's
    if not finished(corpus):
        log.info("%s: corpus of %d-token samples (%.2f nt per token)", name, tokens, npt)
        write_corpus(vocab, fasta, corpus, CorpusConfig(
            max_tokens=tokens, min_tokens=tokens, test_fraction=cfg.test_fraction, seed=cfg.seed),
            overwrite=True, progress=progress)
    written = read_manifest(corpus)["config"]["max_tokens"]
    if written != tokens:  # a selection started before sample_length: candidates read other lengths
        raise GroverError(f"holds samples of {written} tokens, these settings give {tokens} (a "
                          "selection whose candidates read different lengths); pass --overwrite "
                          "to start again", corpus)
    if not finished(model):
        log.info("%s: pretraining", name)
        _pretrain(corpus, model, cfg, progress)
    if not finished(nk):
        log.info("%s: next-k-mer", name)
        _nextkmer(model, samples, nk, ft, bcfg, name, progress)
    cman, pman, nman = read_manifest(corpus), read_manifest(model), read_manifest(nk)
    train = cman["splits"]["train"]
    ev = pman["eval"]
    nt_sample = train["bases"] / max(1, train["samples"])
    row: dict[str, Any] = {
        "model": name, "kind": kind, "cycles": int(size) if kind == "bpe" else "",
        "kmer": int(size) if kind == "kmer" else "", "vocab_size": cman["vocab_size"],
        "nt_per_token": round(npt, 3),
        "tokens_per_sample": cman["config"]["max_tokens"], "nt_per_sample": round(nt_sample, 1),
        "steps": ev["steps"], "nt_seen": int(round(ev["samples_seen"] * nt_sample)),
        "mlm_accuracy": round(ev["mlm_accuracy"], 4),
        "unigram_accuracy": round(ev["unigram_accuracy"], 4),
        "parameters": pman.get("parameters"),
        "non_embedding_parameters": pman.get("non_embedding_parameters")}
    for r in nman["summary"]:
        row[f"{TEST}{r['k']}"] = r["accuracy"]
        row[f"{DEV}{r['k']}"] = r.get("dev_accuracy", "")  # absent before 2026-12-05
    mccs = [r["mcc_mean"] for r in read_metrics(nk) if r["model"] == name]
    row["mean_mcc"] = float(np.mean(mccs)) if mccs else ""  # 0: a constant guess at every k
    log.info("%s done (%.0fs this session)", name, time.perf_counter() - t0)
    return row


def _pretrain(corpus: Path, model: Path, cfg: SelectPretrainingConfig, progress: bool) -> None:
    save = max(50, cfg.max_steps // 4)
    tcfg = training.TrainConfig(max_steps=cfg.max_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                eval_every=0, save_every=save, keep_checkpoints=1, seed=cfg.seed,
                                threads=cfg.threads)
    pretrain(corpus, model, cfg.model, tcfg, resume=True, progress=progress)


def _nextkmer(model: Path | None, samples, nk: Path, ft, bcfg, name: str, progress: bool) -> None:
    nk.mkdir(parents=True, exist_ok=True)
    res = run_nextkmer(model, samples, nk, ft, bcfg, name, progress)
    for r in res["records"]:  # BPE-token TF-IDF differs per vocabulary: name it after the model
        if r["model"].startswith("tfidf-bpe"):
            r["model"] = f"{r['model']}@{name}"
    write_metrics(nk, "nextkmer", res["records"], summary=res["summary"],
                  region=samples.info["region"], context=samples.cfg.context, model=name)
    write_manifest(nk, "nextkmer", {**asdict(samples.cfg), "region": samples.info["region"],
                                    "model": str(model), "finetune": asdict(as_kmer_classifier(ft)),
                                    "baselines": asdict(bcfg)},
                   [model] if model is not None else [], seed=samples.cfg.seed,
                   samples=samples.info, summary=res["summary"])


# ----------------------------------------------------------------------------------------------
# Table, plot, selection


def reference_accuracy(rows: list[dict[str, Any]], ks: list[int], col: str = DEV
                       ) -> dict[int, float]:
    """Per k, the accuracy RULE divides by: the "most-frequent" baseline row's (its column `col`:
    DEV or TEST), or chance (1/4**k) where that row is missing or lower (a split without the
    train split's most frequent k-mer).

    >>> reference_accuracy([{"model": "most-frequent", "dev_k2": 0.09, "dev_k3": 0.0}], [2, 3])
    {2: 0.09, 3: 0.015625}
    """
    ref = next((r for r in rows if r.get("model") == "most-frequent"), {})
    return {k: max(float(ref.get(f"{col}{k}") or 0.0), 4.0**-k) for k in ks}


def relative_score(row: dict[str, Any], ks: list[int], reference: dict[int, float],
                   col: str = DEV) -> float | None:
    """Mean over k of accuracy (column `col`) / reference[k] (None when a k is missing)."""
    vals = [row.get(f"{col}{k}") for k in ks]
    if any(v is None or v == "" for v in vals):
        return None
    return float(np.mean([v / reference[k] for v, k in zip(vals, ks, strict=True)]))


def select_cycles(rows: list[dict[str, Any]], ks: list[int]) -> dict[str, Any]:
    """The selected cycle count by RULE, with the score of every candidate.

    >>> rows = [{"kind": "bpe", "cycles": 600, "dev_k2": 0.1}, {"kind": "bpe", "cycles": 100,
    ...         "dev_k2": 0.1}, {"kind": "bpe", "cycles": 50, "dev_k2": 0.05},
    ...         {"kind": "baseline", "model": "most-frequent", "dev_k2": 0.08}]
    >>> sel = select_cycles(rows, [2]); sel["cycles"], sel["score"]
    (100, 1.25)
    """
    reference = reference_accuracy(rows, ks)
    cands = [(r["cycles"], relative_score(r, ks, reference)) for r in rows if r["kind"] == "bpe"]
    cands = [(c, s) for c, s in cands if s is not None]
    if not cands:
        raise GroverError("no BPE model has next-k-mer dev results to select from (next-k-mer "
                          "results from before 2026-12-05 have none: rerun with --redo-nextkmer)")
    top = max(s for _, s in cands)
    chosen = min(c for c, s in cands if s >= top - TIE)
    return {"cycles": int(chosen), "score": top, "rule": RULE,
            "scores": {str(c): s for c, s in sorted(cands)}}


def baseline_rows(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for chance, the most frequent k-mer, each TF-IDF model and the context table, from a
    next-k-mer summary."""
    names = ["chance", "most-frequent"] + sorted(
        {key for r in summary for key in r if key.startswith("tfidf")}) + (
        ["context-table"] if any("context_table" in r for r in summary) else [])
    out = []
    for n in names:
        row: dict[str, Any] = {"model": n, "kind": "baseline"}
        for r in summary:
            key = {"chance": "chance", "most-frequent": "most_frequent_accuracy",
                   "context-table": "context_table"}.get(n, n)
            row[f"{TEST}{r['k']}"] = r.get(key, "")
            if n == "most-frequent":  # RULE's reference on dev
                row[f"{DEV}{r['k']}"] = r.get("most_frequent_dev_accuracy", "")
        out.append(row)
    return out


def zero_shot_rows(out: Path, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows "bpe-600-zeroshot" etc.: each model's zero-shot next-k-mer readout (kind "zero-shot",
    with the model's cycles or k), when its next-k-mer run has one."""
    rows = []
    for m in models:
        summary = read_manifest(out / "nextkmer" / m["model"])["summary"]
        if any("zero_shot_accuracy" in r for r in summary):
            rows.append({"model": f"{m['model']}-zeroshot", "kind": "zero-shot",
                         "cycles": m["cycles"], "kmer": m["kmer"],
                         **{f"acc_k{r['k']}": r.get("zero_shot_accuracy", "") for r in summary}})
    return rows


def bpe_tfidf_rows(out: Path, names: list[str]) -> list[dict[str, Any]]:
    """Rows "tfidf-bpe-lr@bpe-600" etc. for BPE-token TF-IDF results of each model, if any."""
    rows = []
    for name in names:
        summary = read_manifest(out / "nextkmer" / name)["summary"]
        for key in sorted({k for r in summary for k in r if k.startswith("tfidf-bpe")}):
            rows.append({"model": f"{key}@{name}", "kind": "baseline",
                         **{f"acc_k{r['k']}": r.get(key, "") for r in summary}})
    return rows


TABLE_COLUMNS = ["model", "kind", "cycles", "kmer", "vocab_size", "nt_per_token",
                 "tokens_per_sample", "nt_per_sample", "steps", "nt_seen", "mlm_accuracy",
                 "unigram_accuracy", "non_embedding_parameters", "mean_mcc"]


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return (f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}").rstrip("0").rstrip(".")
    return str(v)


def write_tables(rows: list[dict[str, Any]], ks: list[int], out: Path, header: str) -> None:
    acc = [f"{TEST}{k}" for k in ks]
    cols = TABLE_COLUMNS + acc + [LIFT] + [f"{DEV}{k}" for k in ks] + [DEV_LIFT]  # dev: RULE's
    for col, name in ((TEST, LIFT), (DEV, DEV_LIFT)):
        reference = reference_accuracy(rows, ks, col)
        for r in rows:
            s = relative_score(r, ks, reference, col)
            r[name] = "" if s is None else s
    with atomic_path(out / "table.tsv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_fmt(r.get(c, "")) for c in cols])
    bpe = sorted((r for r in rows if r["kind"] == "bpe"), key=lambda r: r["cycles"])
    with atomic_path(out / "curve.tsv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["cycles", *acc, LIFT])
        for r in bpe:
            w.writerow([r["cycles"], *(_fmt(r.get(c, "")) for c in acc),
                        _fmt(r[LIFT])])
    short = ["model", "vocab_size", "tokens_per_sample", "nt_per_sample", "nt_seen",
             "mlm_accuracy", *acc, LIFT, DEV_LIFT, "mean_mcc"]
    lines = [header, "", "| " + " | ".join(short) + " |",
             "|" + "|".join("---" for _ in short) + "|"]
    for r in rows:
        cells = []
        for c in short:
            v = r.get(c, "")
            cells.append(f"{100 * v:.2f}%" if c.startswith("acc_k") and isinstance(v, float)
                         else _fmt(v))
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out / "table.md", "\n".join(lines) + "\n")


def _points(rows: list[dict[str, Any]], col: str) -> tuple[list[int], list[float]]:
    """(cycles, values) of the rows that have a value in `col`."""
    kept = [r for r in rows if r.get(col) not in (None, "")]
    return [r["cycles"] for r in kept], [r[col] for r in kept]


def plot_selection(rows: list[dict[str, Any]], ks: list[int], path: Path,
                   selected: int | None = None) -> Path:
    """`draw_selection`'s figure written to `path`."""
    return save_png(draw_selection(rows, ks, selected), path)


# chance and the most frequent k-mer as the report's task figure draws them; the context table,
# the bar no model reaches here, solid in the strongest baseline's grey (plots.COLORS)
REFERENCE_STYLE = {"chance": CHANCE_LINE, "most-frequent": MOST_FREQUENT_LINE,
                   "context-table": (COLORS[7], "-")}


def reference_styles(refs: list[dict[str, Any]]) -> dict[str, tuple[Any, Any]]:
    """(colour, line style) of each horizontal line of the selection figure, one meaning per
    look: chance, the most frequent k-mer and the context table as REFERENCE_STYLE draws them;
    each k-mer model a colour of its own, dashed fine-tuned and dash-dotted zero-shot (as the BPE
    curve is solid and its zero-shot dashed); other baselines (TF-IDF) a grey and a dash pattern
    each (12 looks before one repeats). Six colours and four dashes cycled over every line gave
    kmer-6 and the context table one orange dash, kmer-4 and TF-IDF + LR one red dash."""
    kmers = [r["model"] for r in refs if r["kind"] == "kmer"]
    colors = dict(zip(kmers, COLORS[1:] * len(kmers), strict=False))  # COLORS[0]: BPE
    dashes = [(0, (6, 2)), "-.", (0, (3, 1, 1, 1, 1, 1)), (0, (8, 2, 2, 2))]
    greys = ["0.25", "0.45", "0.65"]
    styles: dict[str, tuple[Any, Any]] = {}
    others = 0
    for r in refs:
        name = r["model"]
        fine_tuned = name.removesuffix("-zeroshot")
        if name in REFERENCE_STYLE:
            styles[name] = REFERENCE_STYLE[name]
        elif fine_tuned in colors:
            styles[name] = (colors[fine_tuned], "--" if name == fine_tuned else "-.")
        else:
            styles[name] = (greys[others % len(greys)], dashes[others % len(dashes)])
            others += 1
    return styles


def draw_selection(rows: list[dict[str, Any]], ks: list[int], selected: int | None = None):
    """Accuracy against BPE cycles (log x), one panel per k plus the mean relative accuracy; k-mer
    models and baselines as horizontal lines (chance and the most frequent k-mer in black), named
    in a legend panel of its own (in a data panel it covered the curves)."""
    # curves over cycles: the BPE models, and their zero-shot readouts (rows with cycles)
    curves = {kind: sorted((r for r in rows if r["kind"] == kind and r.get("cycles")),
                           key=lambda r: r["cycles"]) for kind in ("bpe", "zero-shot")}
    refs = [r for r in rows if not any(r is c for c in (*curves["bpe"], *curves["zero-shot"]))]
    panels = [f"acc_k{k}" for k in ks] + [LIFT]
    ncols = min(4, len(panels) + 1)  # + 1: the legend's
    nrows = -(-(len(panels) + 1) // ncols)
    fig, axes = figure(ncols, nrows, width=3.6, height=3.0)
    axes = np.atleast_1d(axes)
    for ax in axes[len(panels):]:
        ax.axis("off")
    legend_ax, axes = axes[len(panels)], axes[: len(panels)]
    ref_style = reference_styles(refs)
    for ax, col in zip(axes, panels, strict=True):
        scale = 1 if col == LIFT else 100  # accuracies in percent, as table.md gives them
        x, y = _points(curves["bpe"], col)
        ax.plot(x, [scale * v for v in y], "o-", color=COLORS[0], ms=4, lw=1.5, label="BPE")
        zx, zy = _points(curves["zero-shot"], col)
        if zx:
            ax.plot(zx, [scale * v for v in zy], "s--", color=COLORS[0], ms=3, lw=1, alpha=0.7,
                    label="BPE zero-shot")
        for r in refs:
            v = r.get(col)
            if v in (None, ""):
                continue
            color, ls = ref_style[r["model"]]
            ax.axhline(scale * v, color=color, ls=ls, lw=1, label=r["model"])
        if selected is not None:
            ax.axvline(selected, color="0.6", lw=0.8, label=f"selected: {selected} cycles")
        ax.set_xscale("log")
        if x:
            ax.set_xticks(x, [str(c) for c in x], fontsize=7)
            ax.minorticks_off()
        ax.set_xlabel("BPE cycles")
        ax.set_ylabel("mean accuracy / most frequent k-mer's" if col == LIFT
                      else "test top-1 accuracy (%)", fontsize=8)
        ax.set_title("all k: accuracy relative to the most frequent k-mer" if col == LIFT
                     else f"next-{col[5:]}-mer accuracy", fontsize=9)
    # every line of every panel, once (a reference missing from the first panel is still named)
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    legend_ax.legend(list(seen.values()), list(seen), loc="center", frameon=False, fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------
# The stage


@writes_folder
def select_vocab(genome: str | Path, bpe_dir: str | Path, region: str, out: str | Path,
                 cfg: SelectPretrainingConfig, ncfg, ft, bcfg, overwrite: bool = False,
                 progress: bool = True, redo_nextkmer: bool = False,
                 options: tuple[str, str] = ("--region", "--block"), keep: bool = False
                 ) -> dict[str, Any]:
    """`groverlm select-vocab`: run (or skip) every sub-run, then write the tables, plot and
    manifest. Returns the selection. `options`: the region's and block's settings in errors.
    `keep` (a run's): what `out` holds is never refused; it is kept as far as its settings.json
    shows these settings leave it valid (`_check_settings`), and a selection finished under these
    very settings is returned as it is."""
    t0 = time.perf_counter()
    out, bpe_dir = Path(out), Path(bpe_dir)
    reg = Region.parse(region, options[0])
    # the inputs first: nothing in `out` is deleted or recorded for a command that cannot run
    if not Path(genome).is_file():
        raise GroverError("no such genome file", genome)
    if not (bpe_dir / "merges.tsv").is_file():
        raise GroverError("no merges.tsv: not a `groverlm bpe train` folder", bpe_dir)
    merges = read_manifest(bpe_dir).get("cycles")
    if merges is not None and max(cfg.cycles) > int(merges):
        raise GroverError(f"--cycles asks for {max(cfg.cycles)} but the BPE run has {merges} "
                          "merges", bpe_dir)
    if out.is_dir() and any(f.name != LOCK for f in out.iterdir()) and not (
            (out / SETTINGS).is_file() or (out / MANIFEST).is_file()):
        raise GroverError("exists and is not a select-vocab folder (no settings.json); refusing "
                          "to write or delete in it", out)
    # absolute: the same files named from another folder, or as ./x, are the same settings; their
    # contents too: another genome or BPE run written to the same path is other candidates
    # (the first max(cycles) merges are all any candidate reads: a BPE trained further keeps them)
    settings = {"pretraining": {"select": stable(cfg), "region": str(reg),
                                "genome": str(Path(genome).resolve()),
                                "bpe": str(bpe_dir.resolve()),
                                "genome_sha256": fingerprint(genome)["sha256"],
                                "merges_sha256": merges_fingerprint(bpe_dir / "merges.tsv",
                                                                    max(cfg.cycles))},
                "nextkmer": {"samples": asdict(ncfg), "finetune": stable(ft),
                             "baselines": asdict(bcfg)}}
    settings = json.loads(json.dumps(settings))
    if overwrite and out.exists():
        _clear_selection(out)
    if finished(out) and not (redo_nextkmer or keep):
        raise GroverError("already holds a finished selection; pass --overwrite to redo it", out)
    out.mkdir(parents=True, exist_ok=True)
    if not _check_settings(out, settings, redo_nextkmer, keep) and finished(out):
        if keep:  # made under these very settings
            return read_manifest(out)["selected"]
        raise GroverError("already holds a finished selection with these next-k-mer settings; "
                          "pass --overwrite to redo it", out)
    fasta = write_pretrain_genome(genome, reg, out, cfg.pretrain_bp)
    samples = draw_samples(load_genome(genome, [reg.chrom], options[0]), reg, ncfg, options)
    write_samples(samples, out / "nextkmer" / "samples.tsv")
    # k-mer TF-IDF and the context table do not depend on the model: once, in the baselines;
    # BPE-token TF-IDF (asked with "auto" or "bpe") per BPE model
    per_model = replace(bcfg, tfidf="bpe" if bcfg.tfidf in ("auto", "bpe") else "none",
                        table=False)
    # every vocabulary's nt per token before any pretraining: the sample length all can read
    npt = {name: write_vocabulary(name, bpe_dir, fasta, out, cfg) for name in vocab_names(cfg)}
    sample = sample_length(cfg.sample_nt, npt)
    if sample["limited_by"]:
        log.warning("samples of %d nt are more than %d tokens of %s (%.2f nt per token): every "
                    "candidate reads %d nt per sample", cfg.sample_nt, MAX_TOKENS,
                    sample["limited_by"], npt[sample["limited_by"]], sample["used"])
    check_sample_positions(sample["used"], npt, cfg.model, out)
    rows = [run_vocabulary(name, npt[name], sample["used"], fasta, out, cfg, samples, ft,
                           per_model, progress) for name in vocab_names(cfg)]
    base = out / "nextkmer" / "baselines"
    if not finished(base):
        log.info("baselines on the next-k-mer samples")
        once = replace(bcfg, tfidf="kmer" if bcfg.tfidf in ("auto", "kmer") else "none")
        _nextkmer(None, samples, base, ft, once, "baselines", progress)
    rows += zero_shot_rows(out, list(rows))
    rows += baseline_rows(read_manifest(base)["summary"])
    rows += bpe_tfidf_rows(out, vocab_names(cfg))
    ks = list(ncfg.ks)
    selection = select_cycles(rows, ks)
    reference = reference_accuracy(rows, ks)
    kmer_scores = {r["model"]: relative_score(r, ks, reference) for r in rows  # on dev, as RULE
                   if r["kind"] == "kmer"}
    selection["beats_kmers"] = {m: selection["score"] > s for m, s in kmer_scores.items()
                                if s is not None}
    selection["constant_guesses"] = constant_guesses(rows)
    header = table_header(cfg, ncfg, ft, selection, rows, sample)
    write_tables(rows, ks, out, header)
    plot_selection(rows, ks, out / "plot.png", selection["cycles"])
    write_manifest(out, "select-vocab", settings, [genome, bpe_dir / "merges.tsv"],
                   seed=cfg.seed, selected=selection, rule=RULE, sample_nt=sample,
                   summary={"selected_cycles": selection["cycles"],
                            "score": selection["score"], **{f"{m}_score": s for m, s in
                                                            kmer_scores.items()}},
                   seconds_this_session=round(time.perf_counter() - t0, 1))
    return selection


def _clear_selection(out: Path) -> None:
    """Forget everything a selection folder holds (`manifest.clear_outputs`): its tables and plot
    stay until the new selection replaces them, unread without a manifest."""
    clear_outputs(out, [out / sub for sub in ("genome", "vocab", "corpus", "pretrain", "nextkmer",
                                              SETTINGS)])


def _check_settings(out: Path, settings: dict, redo_nextkmer: bool = False,
                    keep: bool = False) -> bool:
    """Resuming under other settings would mix runs: refuse (manifest.check_resume; settings.json
    records the first).
    With `redo_nextkmer` or `keep`, changed next-k-mer settings discard only the next-k-mer results
    and the selection made from them (the vocabularies, corpora and pretrained models do not
    depend on them), finished or not. With `keep`, changed pretraining settings (`pretraining`:
    the candidates, their pretraining, seed, region, genome and BPE contents; their paths only in
    a record from before the contents) discard everything instead of being refused. Returns
    whether anything was discarded."""
    path = out / SETTINGS
    old = read_json(path) if path.exists() else None
    hint = "pass --overwrite to start again"
    unhashed: list[str] = []
    if old is not None:  # a folder written before its volatile fields were left out of settings
        drop_keys(old, [*(f"pretraining.select.{k}" for k in volatile_keys(SelectPretrainingConfig)),
                        *(f"nextkmer.finetune.{k}" for k in volatile_keys(ClassifierConfig))])
        for key in ("genome", "bpe"):  # recorded as typed before 2026-12-05 (relative: to here)
            was = (old.get("pretraining") or {}).get(key)
            if isinstance(was, str) and str(Path(was).resolve()) == settings["pretraining"][key]:
                old["pretraining"][key] = settings["pretraining"][key]
        # the files' hashes, recorded since 2026-12-06: a folder from before holds its paths
        # alone. What its candidates read then is unknown; it is accepted as the files there now
        # (the paths compared as before), so that such a folder still resumes, and its
        # settings.json is brought up to date below: from then on a changed file is seen
        unhashed = [key for key in ("genome_sha256", "merges_sha256")
                    if isinstance(old.get("pretraining"), dict) and key not in old["pretraining"]]
        # the genome and BPE run by their hashes where recorded, not their paths: a run folder
        # moved since (its bpe/train, its genome cut) holds the same files elsewhere, and every
        # candidate was pretrained again there
        old = located_by_hash(old, settings, {"pretraining.genome": "genome_sha256",
                                              "pretraining.bpe": "merges_sha256"})
        changed = changed_settings(old, settings)
        if old.get("pretraining") == settings["pretraining"] and changed:
            if redo_nextkmer or keep:
                log.info("next-k-mer settings changed (%s): discarding the next-k-mer results",
                         "; ".join(changed))
                # the selection read those results
                clear_outputs(out, [out / "nextkmer"])
                write_json(path, settings)
                return True
            hint = "pass --redo-nextkmer to redo only the next-k-mer step, or --overwrite to start again"
        elif changed and keep:
            log.info("pretraining settings changed (%s): every candidate is pretrained again",
                     "; ".join(changed))
            _clear_selection(out)
            write_json(path, settings)
            return True
    check_resume(out, settings, saved=old, hint=hint)
    if unhashed:  # the same settings: recorded with the hashes from now on
        write_json(path, settings)
    return False


def constant_guesses(rows: list[dict[str, Any]]) -> bool:
    """Whether every model's mean test MCC over k is about 0 (each guessed one k-mer)."""
    mccs = [r.get("mean_mcc") for r in rows if r["kind"] in ("bpe", "kmer")]
    return bool(mccs) and all(isinstance(m, float) and abs(m) < 0.01 for m in mccs)


def table_header(cfg: SelectPretrainingConfig, ncfg, ft, selection: dict[str, Any],
                 rows: list[dict[str, Any]], sample: dict[str, Any]) -> str:
    seen = [r["nt_seen"] for r in rows if r["kind"] in ("bpe", "kmer")]
    spread = (f"{min(seen):,} to {max(seen):,}" if seen else "n/a")
    nt = sample["used"]
    lowered = (f"; {sample['asked']} nt asked, lowered so that {sample['limited_by']}'s samples "
               f"fit {MAX_TOKENS} tokens" if sample["limited_by"] else "")
    warning = ["", "Warning: every model's test MCC is about 0 at every k: each predicts (almost) "
               "a single k-mer, so the accuracies compare constant guesses, not vocabularies; "
               "the budget is too small to select."] if selection["constant_guesses"] else []
    return "\n".join([
        "# Vocabulary selection by next-k-mer prediction",
        "",
        f"Fair comparison: every model has the `{cfg.model.preset}` preset, seed {cfg.seed}, "
        f"{cfg.max_steps} steps of {cfg.batch_size} samples, lr {cfg.lr:g}, mask rate "
        f"{cfg.model.mask_rate:g} per token, and samples of a fixed token count chosen per vocabulary "
        f"so that each holds about {nt} nt (tokens = round({nt} / measured nt per token){lowered}); "
        f"nucleotides read in pretraining: {spread}. Next-k-mer: contexts of "
        f"{ncfg.context} nt, {ncfg.train_samples} train / {ncfg.dev_samples} dev / "
        f"{ncfg.test_samples} test samples from the held-out region, {counted(ft.epochs, 'epoch')}, "
        f"lr {'by model width' if ft.lr is None else format(ft.lr, 'g')}, batch {ft.batch_size}, "
        f"{counted(len(ft.seeds), 'seed')}; top-1 accuracy on test (acc_k) and its mean lift over the most "
        f"frequent k-mer ({LIFT}); chosen on dev ({DEV_LIFT}; dev accuracy per k in table.tsv).",
        "",
        f"Selected: {selection['cycles']} cycles (score {selection['score']:.3f}); rule: {RULE}.",
        *warning,
    ])


# ----------------------------------------------------------------------------------------------
# CLI


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise GroverError(f"{option} {text!r}: expected integers like 100,200,400") from None
    if not vals:
        raise GroverError(f"{option}: empty list")
    return vals



def preflight(cfg: Any, config: Any) -> None:
    """The runner's check of this stage's section (of the run's whole `config`) before any stage
    runs."""
    if cfg.select:
        key, p = "select_vocab.pretraining.model", cfg.pretraining
        model = check_model(p.model, key)
        # the candidates' samples are measured after BPE: their positions alone bound the windows
        check_window_settings(cfg.classifier, lambda name: f"select_vocab.classifier.{name}",
                              model, None)
        # A sample's tokens follow from each vocabulary's nt per token, measured after BPE
        # (select_vocab checks them then, before any pretraining). Refused here only what no
        # measurement can rescue: a k-mer's tokens hold at most k nt, so the shortest-token
        # candidate's samples hold at least sample_nt / k tokens (or, cut to fit MAX_TOKENS, 509).
        # One nt per token (BPE's bound) would refuse a model that fits: 512 nt of 100-cycle BPE
        # are 170 tokens, not 510.
        if p.kmers:
            k = min(p.kmers)
            least = min(sample_tokens(p.sample_nt, k), MAX_TOKENS - 1)
            check_positions(least, model, f"{key}: samples of at least {least} tokens (sample_nt "
                            f"{p.sample_nt} in kmer-{k}'s tokens)", config.source)
        merges = config.stage("bpe").merges
        over = [c for c in cfg.pretraining.cycles if c > merges]
        if over:  # else it fails after the BPE stage, naming --cycles
            raise GroverError(f"select_vocab.pretraining.cycles asks for {over[0]} cycles but "
                              f"bpe.merges is {merges}: list counts up to bpe.merges", config.source)


def regions(cfg: Any, config: Any) -> list[tuple[str, Any]]:
    """The held-out region selection reads, with the setting naming it (runner.Stage.regions)."""
    return [held_out_setting(config, cfg.region, "select_vocab")] if cfg.select else []


def check_lengths(cfg: Any, config: Any, lengths: dict[str, int]) -> None:
    """The runner's check once the genome stage has run (`lengths`: its records'): the held-out
    region holds the 3 blocks the next-k-mer samples need; else selection fails after BPE."""
    if cfg.select:
        setting, region = held_out_setting(config, cfg.region, "select_vocab")
        check_blocks(region, lengths, cfg.samples, (setting, "select_vocab.samples.block"),
                     config.source)


def keeps_parts(cfg: Any, config: Any) -> bool:
    """The runner hands this stage its folder, made from the same genome and BPE under other
    settings, rather than removing it (runner.Stage.keeps_parts): a selection keeps its pretrained
    candidates when only the next-k-mer settings changed (`select_vocab(keep=True)`). Not with
    `select: false`, which writes no selection (an old one left there would be read as this run's
    by the report)."""
    return bool(cfg.select)


def handed_on(summary: dict[str, Any], ctx: Context) -> dict[str, str]:
    """What the stages after selection read of it (runner.Stage.handed_on): the chosen
    vocabulary, by cycle count, place and files (not its export's manifest.json, whose times
    differ at every export, nor the selection's own PROBE, which records the probed genome's
    absolute path). Not the selection's tables and figure, which only the report reads,
    so a selection redone under other next-k-mer settings that chooses the same vocabulary, or
    redone after BPE was redone to the same merges, leaves the corpus, pretraining and the stages
    after them done."""
    h = hashlib.sha256(json.dumps([summary["cycles"], summary["vocab"]]).encode())
    h.update(contents_sha256(ctx.path(summary["vocab"]), skip=(MANIFEST, PROBE)).encode())
    return {"vocab": h.hexdigest()}


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Vocabulary selection: next-k-mer accuracy of a small model per candidate cycle count
    (groverlm.select_vocab); with `select: false`, bpe.cycles is the run's vocabulary."""
    if not cfg.select:
        bpe = ctx.summary("bpe")
        return {"selected": False, "cycles": bpe["cycles"], "vocab": bpe["vocab"],
                **vocab_summary(ctx.path(bpe["vocab"]))}
    out = ctx.out / "selection"
    select_vocab(ctx.genome, ctx.path(ctx.summary("bpe")["train"]),
                 ctx.held_out(cfg.region, "select_vocab"), out, cfg.pretraining, cfg.samples,
                 cfg.classifier, cfg.baselines, progress=ctx.progress,
                 options=ctx.region_options(cfg.region, "select_vocab"), keep=True)
    m = read_manifest(out)
    cycles = m["selected"]["cycles"]
    vocab = out / "vocab" / f"bpe-{cycles}"
    return {"selected": True, "cycles": cycles, "score": m["selected"].get("score"),
            "vocab": ctx.relative(vocab), **vocab_summary(vocab)}


def register(sub: argparse._SubParsersAction) -> None:
    d = SelectPretrainingConfig()
    p = sub.add_parser("select-vocab", help="choose the BPE cycle count by next-k-mer accuracy")
    p.add_argument("--genome", required=True, help="FASTA, gzip or bgzip")
    p.add_argument("--bpe", required=True, help="a `bpe train` folder (enough merges)")
    p.add_argument("--region", required=True, help="held-out CHROM or CHROM:START-END")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cycles", default=listed(d.cycles),
                   help=f"BPE cycle counts (default {listed(d.cycles)})")
    p.add_argument("--kmers", default=listed(d.kmers),
                   help=f"k-mer vocabularies to compare, '' for none (default {listed(d.kmers)})")
    add_model_args(p)  # as `groverlm pretrain`, for every model
    p.add_argument("--sample-nt", type=int, default=d.sample_nt,
                   help=f"nucleotides per pretraining sample, every vocabulary (lowered for all "
                        f"where one needs more than {MAX_TOKENS} tokens; default {d.sample_nt})")
    p.add_argument("--pretrain-batch-size", type=int, default=d.batch_size,
                   help=f"pretraining samples per step (default {d.batch_size})")
    p.add_argument("--max-steps", type=int, default=d.max_steps,
                   help=f"pretraining steps per model (default {d.max_steps})")
    p.add_argument("--pretrain-lr", type=float, default=d.lr,
                   help=f"pretraining peak learning rate (default {d.lr:g})")
    p.add_argument("--pretrain-bp", type=int, default=d.pretrain_bp,
                   help="pretrain on only the first BP A/C/G/T bases outside the region (speed)")
    add_nextkmer_args(p, select_baselines())  # as `groverlm nextkmer`
    p.add_argument("--redo-nextkmer", action="store_true",
                   help="after changing next-k-mer settings: redo that step only, keeping the "
                        "vocabularies, corpora and pretrained models")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    ncfg, ft, bcfg = configs_from_args(args)
    cfg = SelectPretrainingConfig(cycles=_ints(args.cycles, "--cycles"),
                       kmers=_ints(args.kmers, "--kmers") if args.kmers.strip() else (),
                       model=model_from_args(args, select_model()),
                       sample_nt=args.sample_nt, batch_size=args.pretrain_batch_size,
                       max_steps=args.max_steps, lr=args.pretrain_lr, pretrain_bp=args.pretrain_bp,
                       seed=args.seed, threads=args.threads)
    sel = select_vocab(args.genome, args.bpe, args.region, args.out, cfg, ncfg, ft, bcfg,
                       args.overwrite, progress=not args.quiet,
                       redo_nextkmer=args.redo_nextkmer)
    print((Path(args.out) / "table.md").read_text())
    print(f"select-vocab: {sel['cycles']} cycles selected -> {args.out}")
    return 0
