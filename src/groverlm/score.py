"""Scoring stage: zero-shot likelihoods of DNA under a masked LM: sequences, variants, mutagenesis.

Reads a model folder (a stock masked LM with its tokenizer, ours or the published GROVER; a local
folder or a Hub id) and sequences (FASTA, BED + genome, task CSV), a VCF + genome, or a region of
a genome; writes a TSV (`score seqs`: name, length_nt, tokens, pll, pll_per_nt[, log_probs];
`score variants`: chrom, pos, ref, alt, score, ref_tokens, alt_tokens, status, one row per VCF
record and ALT in input order) or a folder (`ism`): ism.tsv (chrom, pos, ref, alt, score: 3 rows
per base), ism.npy ((4, L) float32, rows A, C, G, T, NaN at the reference base), importance.npy
((L,) float32, the mean of -score over the 3 changes), ism.png (the heat map under the importance
track) and manifest.json.

Sequence score: the pseudo-log-likelihood (PLL), each token masked in turn in its own window of
at most the model's length, log P(token | the rest) summed over the sequence's tokens ([UNK] from
non-ACGT letters left out); per nucleotide, divided by the length. Many masked copies go through
each forward pass.

Variant score (BPE changes the segmentation around a changed base, so one masked token does not
do): for REF at 0-based p (VCF POS - 1) the reference window is genome[p - flank, p + len(REF) +
flank) (cut at the contig's ends), the alternative window the same flanks around ALT. Each is
tokenized on its own. Token boundaries right of the change are
mapped across by the length difference; the scored span is the smallest interval holding the
changed bases whose two ends are token boundaries in both segmentations, widened by `margin`
further common boundaries each side (clipped at the window's ends). score = sum of the masked
log-probabilities of the ALT tokens inside the span minus the same over the REF tokens; negative:
the model finds the change less natural. With `rc`, the same is computed on the reverse
complement of both windows (their own segmentations and spans) and the two strands averaged.

A long run resumes: the commands write their table `chunk` items at a time (OUT.partial, and
OUT.partial.json with the settings, the items done and the file's length; manifest.PartialTable)
and rename it to OUT at the end; stopped, the same command continues after the last chunk saved.

In Python: `groverlm.score(model, sequences)` returns the per-sequence table.

In a run (`run`), the zero-shot readouts: reads the pretrained model, the tasks stage's Prom300 rows
inside the held-out regions (every split; else the test split: `rows` in readouts.json says which)
and the CTCF motif and peaks (bound sites in the held-out region); writes
RUN_DIR/score/readouts (readouts.json, manifest.json). Prom300 scores each row's given tokens when
the task has them in the model's vocabulary (`given_tokens: true`), so that a promoter and its
token shuffle differ only in the order of the same tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import itertools
import logging
import math
import shutil
import tempfile
import warnings
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from groverlm import lazy
from groverlm.analysis.plots import figure, save_png
from groverlm.analysis.zeroshot import (
    bound_ctcf_snvs,
    ctcf_readout,
    held_out_split,
    prom300_readout,
)
from groverlm.args import add_fields, stable, volatile
from groverlm.batching import split_windows
from groverlm.context import Context, held_out_setting
from groverlm.corpus import Region
from groverlm.embed import iter_batches, load_encoder, max_window_tokens, named_sequences, read_items
from groverlm.errors import GroverError, counted
from groverlm.fasta import Genome, group_intervals, reverse_complement, text_lines
from groverlm.finetune import given_tokens_apply, token_ids
from groverlm.manifest import (
    INPUTS_BY_HASH,
    MANIFEST,
    PartialTable,
    atomic_path,
    file_lock,
    fingerprint,
    finished,
    prepare_out,
    read_manifest,
    write_json,
    write_manifest,
    writes_folder,
)
from groverlm.models import named_device, torch_threads
from groverlm.tasks.annotations import check_on_genome
from groverlm.tasks.common import load_genome, seeded_subset
from groverlm.tasks.gue import load_task

# torch, tqdm, pysam and our torch modules load on first use, keeping the CLI and config loading light
torch = lazy.module("torch")
tqdm = lazy.module("tqdm")
tqdm_auto = lazy.module("tqdm.auto")
pysam = lazy.module("pysam")
masking = lazy.module("groverlm.masking")
training = lazy.module("groverlm.train")

log = logging.getLogger(__name__)

ACGT = frozenset("ACGT")
STATUSES = ("ok", "ref_mismatch", "off_contig", "not_acgt", "too_long")


@dataclass(frozen=True)
class ScoringConfig:
    """Settings of `groverlm score` and `groverlm ism`."""

    flank: int = 100  # nt each side of a variant (GROVER's card advises 100 nt of context)
    margin: int = 2  # common token boundaries added each side of a variant's span
    rc: bool = False  # average the two strands
    batch_size: int = volatile(256)  # masked copies per forward pass on a CPU (x16 on a GPU)
    max_indel: int = 50  # longer REF or ALT alleles get status too_long
    device: str = volatile("auto")  # auto: the GPU when there is one
    threads: int | None = volatile(None)  # torch CPU threads (None: torch's choice, one per core)
    chunk: int = volatile(1024)  # sequences or variants per resumable chunk: the table so far is
    #   saved after each, and a stopped run continues after the last one saved

    def __post_init__(self):
        if (self.flank < 1 or self.margin < 0 or self.batch_size < 1 or self.max_indel < 1
                or self.chunk < 1):
            raise GroverError("--flank, --batch-size, --max-indel and --chunk must be positive, "
                              "--margin at least 0")
        if self.threads is not None and self.threads < 1:
            raise GroverError(f"--threads must be at least 1, got {self.threads}")


@dataclass(frozen=True)
class ScoreConfig:
    """Zero-shot readouts of the pretrained model: Prom300 promoters against their shuffles by
    pseudo-log-likelihood, and every SNV of bound CTCF motif sites against the JASPAR matrix."""

    scoring: ScoringConfig = field(default_factory=ScoringConfig)  # flank, margin, strands, batch
    prom300_rows: int | None = 1000  # Prom300 rows scored (seeded subset; None all, 0 none):
    #   those inside the held-out regions, of every split, else the test split
    ctcf_sites: int | None = 100  # bound CTCF sites in the region (seeded draw; None all, 0 none)
    region: str | None = None  # where the CTCF sites come from; default corpus.holdout's first
    seed: int = 0

    def __post_init__(self):
        for name in ("prom300_rows", "ctcf_sites"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be 0 or more")


# ----------------------------------------------------------------------------- the model


class Scorer:
    """Masked log-probabilities of chosen tokens under a masked LM, batched."""

    def __init__(self, model: Any, tokenizer: Any, cfg: ScoringConfig = ScoringConfig()):
        self.model, self.tok, self.cfg = model, tokenizer, cfg
        self.max_tokens = max_window_tokens(model, tokenizer)
        self.unk = tokenizer.unk_token_id

    @classmethod
    def load(cls, model: str | Path, cfg: ScoringConfig = ScoringConfig()) -> Scorer:
        device = named_device(cfg.device)
        if device.type == "cuda" and cfg.batch_size == ScoringConfig.batch_size:
            cfg = replace(cfg, batch_size=16 * cfg.batch_size)  # a GPU takes more
        m, tok = load_encoder(model, device=str(device))
        return cls(m, tok, cfg)

    def tokenize(self, seq: str) -> tuple[list[int], list[int]]:
        """(ids, boundaries): token ids without specials and the nt offsets of the token starts
        plus the end, e.g. [0, 3, 7, ..., len(seq)]."""
        enc = self.tok.backend_tokenizer.encode(seq.upper(), add_special_tokens=False)
        return list(enc.ids), [a for a, _ in enc.offsets] + [len(seq)]

    def log_probs(self, jobs: Sequence[tuple[Sequence[int], Sequence[int]]],
                  progress: bool = False) -> list[np.ndarray]:
        """For each job (window ids, positions), log P(ids[p] | window with p masked) per p.

        One masked copy per distinct (window, position), `batch_size` copies per forward pass; a
        copy that several jobs share (the REF window of each ALT at one site) runs once."""
        rows: dict[tuple[tuple[int, ...], int], int] = {}  # (window ids, position) -> copy
        where = [[rows.setdefault((tuple(ids), int(p)), len(rows)) for p in pos]
                 for ids, pos in jobs]
        copies = list(rows)
        lp = np.zeros(len(copies), dtype=np.float64)
        bar = tqdm_auto.tqdm(total=len(copies), desc="masked copies", unit="copy", leave=False,
                   disable=not progress)
        for idx, logp in self._masked(copies):
            targets = torch.tensor([copies[r][0][copies[r][1]] for r in idx])  # (B,)
            lp[idx] = logp.gather(1, targets[:, None])[:, 0].numpy()
            bar.update(len(idx))
        bar.close()
        return [lp[w] for w in where]

    def distributions(self, jobs: Sequence[tuple[Sequence[int], int]]) -> np.ndarray:
        """(n, V) float64: for each job (window ids, position p), log P(token | window) over the
        whole vocabulary at p, with the window's token there replaced by [MASK]; p = len(ids)
        appends the [MASK] (the token after the window). Windows must fit the model."""
        if any(len(ids) + (p == len(ids)) > self.max_tokens for ids, p in jobs):
            raise GroverError(f"a window is longer than the model's {self.max_tokens} tokens")
        out = np.zeros((len(jobs), len(self.tok)), dtype=np.float64)
        for idx, logp in self._masked(jobs):
            out[idx] = logp[:, :out.shape[1]].numpy()
        return out

    def _masked(self, jobs: Sequence[tuple[Sequence[int], int]]):
        """Yields (job indices, (B, V) float64 log-probabilities on the CPU): each job's window
        (ids, position p) with the token at p replaced by [MASK] (p = len(ids): appended), run
        `batch_size` at a time, the vocabulary head on the masked position only."""
        windows = [[*ids[:p], self.tok.mask_token_id, *ids[p + 1:]] for ids, p in jobs]
        device = next(self.model.parameters()).device
        # the thread count holds while the caller consumes a batch too: cheap next to a pass
        with torch.no_grad(), torch_threads(self.cfg.threads):
            for idx, ids, mask in iter_batches(windows, self.tok.cls_token_id,
                                               self.tok.sep_token_id, self.tok.pad_token_id,
                                               self.cfg.batch_size):
                labels = torch.full_like(ids, masking.IGNORE)  # (B, T): the masked position
                for b, r in enumerate(idx):
                    labels[b, jobs[r][1] + 1] = self.tok.mask_token_id  # +1: after [CLS]
                logits, _ = training.masked_logits(self.model, ids.to(device), mask.to(device),
                                                   labels.to(device))  # (B, V)
                yield idx, torch.log_softmax(logits.double(), -1).cpu()

    def token_log_probs(self, sequences: Sequence[str], progress: bool = False
                        ) -> list[np.ndarray]:
        """Per sequence, each token's masked log-probability (NaN for [UNK]), in windows of at
        most the model's length."""
        return self.ids_log_probs([self.tokenize(seq)[0] for seq in sequences], progress)

    def ids_log_probs(self, id_lists: Sequence[Sequence[int]], progress: bool = False
                      ) -> list[np.ndarray]:
        """`token_log_probs` of sequences given as token ids (no special tokens)."""
        jobs, where, res = [], [], []
        for k, ids in enumerate(id_lists):
            ids, first = list(ids), 0
            for w in split_windows(ids, self.max_tokens):
                pos = [p for p, t in enumerate(w) if t != self.unk]
                jobs.append((w, pos))
                where.append((k, first, pos))
                first += len(w)
            res.append(np.full(len(ids), np.nan))
        for (k, first, pos), lp in zip(where, self.log_probs(jobs, progress), strict=True):
            res[k][[first + p for p in pos]] = lp
        return res


# ----------------------------------------------------------------------------- sequences


def score_sequences(scorer: Scorer, names: Sequence[str], sequences: Sequence[str],
                    rc: bool = False, per_token: bool = False, progress: bool = False,
                    ids: Sequence[Sequence[int]] | None = None) -> list[dict[str, Any]]:
    """One row per sequence: name, length_nt, tokens (the given strand's tokens scored: [UNK]
    left out, so 0 for an all-N sequence, as embed counts them), pll, pll_per_nt (and with
    `per_token`, log_probs: the given strand's per-token values, comma-separated, nan for [UNK]);
    `rc`: the pll is the mean of the sequence's and its reverse complement's. `ids`: each
    sequence's given token ids, scored instead of its tokenization (the reverse strand, when
    `rc`, is tokenized)."""
    fwd = (scorer.token_log_probs(sequences, progress) if ids is None else
           scorer.ids_log_probs(ids, progress))
    rev = (scorer.token_log_probs([reverse_complement(s) for s in sequences], progress) if rc
           else None)
    rows = []
    for k, (name, seq) in enumerate(zip(names, sequences, strict=True)):
        pll = _pll(fwd[k])
        if rev is not None:
            pll = (pll + _pll(rev[k])) / 2
        # tokens: those scored, [UNK] (N runs) left out, as embed's count of pooled tokens
        row = {"name": name, "length_nt": len(seq), "tokens": int(np.isfinite(fwd[k]).sum()),
               "pll": pll,
               "pll_per_nt": pll / len(seq) if seq else math.nan}
        if per_token:
            row["log_probs"] = ",".join(f"{x:.5f}" for x in fwd[k])
        rows.append(row)
    return rows


def _pll(log_probs: np.ndarray) -> float:
    """The sum over the scored tokens; NaN when none was ([UNK] only: all N), never a perfect 0."""
    return float(np.nansum(log_probs)) if np.isfinite(log_probs).any() else math.nan


def score(model: Any, sequences: Sequence[str] | str | Path, genome: str | Path | None = None,
          rc: bool = False, per_token: bool = False, batch_size: int = ScoringConfig.batch_size,
          device: str = "auto", progress: bool = False, tokenizer: Any = None
          ) -> list[dict[str, Any]]:
    """Pseudo-log-likelihoods of sequences (a list of strings, or a FASTA/BED/CSV path) under a
    model (a folder, a Hub id, a loaded `Scorer`, or a loaded transformers masked LM with its
    `tokenizer`, as `embed` takes); one dict per sequence, in input order."""
    cfg = ScoringConfig(batch_size=batch_size, device=device, rc=rc)
    if isinstance(model, Scorer):
        scorer = model
    elif isinstance(model, str | Path):
        scorer = Scorer.load(model, cfg)
    elif tokenizer is None:
        raise GroverError("pass `tokenizer` together with a loaded model")
    else:
        scorer = Scorer(model.eval(), tokenizer, cfg)
    names, seqs = named_sequences(sequences, genome)
    return score_sequences(scorer, names, seqs, rc, per_token, progress)


# ----------------------------------------------------------------------------- variants


def variant_span(ref_bounds: Sequence[int], alt_bounds: Sequence[int], start: int, ref_len: int,
                 alt_len: int, margin: int) -> tuple[int, int]:
    """The scored span [lo, hi) in reference-window coordinates (see the module docstring).

    >>> variant_span([0, 2, 4, 6, 8], [0, 2, 3, 6, 8], 3, 1, 1, 0)  # both split at 2 and 6
    (2, 6)
    >>> variant_span([0, 2, 4, 6, 8], [0, 2, 3, 6, 8], 3, 1, 1, 1)
    (0, 8)
    >>> variant_span([0, 4, 8], [0, 4, 9], 5, 1, 2, 0)  # an insertion of 1 nt: 8 maps to 9
    (4, 8)
    """
    shift = alt_len - ref_len
    left = sorted(set(b for b in ref_bounds if b <= start) & set(b for b in alt_bounds
                                                                   if b <= start))
    right = sorted(set(b for b in ref_bounds if b >= start + ref_len)
                   & set(b - shift for b in alt_bounds if b >= start + alt_len))
    lo = left[max(0, len(left) - 1 - margin)]
    hi = right[min(len(right) - 1, margin)]
    return lo, hi


def _span_jobs(scorer: Scorer, ref_win: str, alt_win: str, start: int, ref_len: int,
               alt_len: int) -> tuple[list, int, int]:
    """Masking jobs for the REF and ALT tokens inside the span; and their counts."""
    ref_ids, ref_b = scorer.tokenize(ref_win)
    alt_ids, alt_b = scorer.tokenize(alt_win)
    lo, hi = variant_span(ref_b, alt_b, start, ref_len, alt_len, scorer.cfg.margin)
    shift = alt_len - ref_len

    def inside(ids, bounds, a, b):
        return [p for p in range(len(ids)) if bounds[p] >= a and bounds[p + 1] <= b
                and ids[p] != scorer.unk]

    jobs = []
    for ids, bounds, a, b in ((ref_ids, ref_b, lo, hi), (alt_ids, alt_b, lo, hi + shift)):
        pos = inside(ids, bounds, a, b)
        if len(ids) > scorer.max_tokens:  # a long window: score the span in a window around it
            if pos and pos[-1] - pos[0] >= scorer.max_tokens:
                raise GroverError(f"a variant's scored span holds {pos[-1] - pos[0] + 1} tokens, "
                                  f"more than the model's {scorer.max_tokens}: lower --margin")
            centre = (pos[0] + pos[-1]) // 2 if pos else 0
            first = max(0, min(centre - scorer.max_tokens // 2, len(ids) - scorer.max_tokens))
            ids, pos = ids[first:first + scorer.max_tokens], [p - first for p in pos]
        jobs.append((ids, pos))
    return jobs, len(jobs[0][1]), len(jobs[1][1])


@dataclass
class Variant:
    """One ALT allele of a VCF record and, once scored, its result (status, score, tokens)."""

    chrom: str
    pos: int  # 1-based, as in VCF
    ref: str
    alt: str
    status: str = "ok"
    score: float = math.nan
    ref_tokens: int | str = ""
    alt_tokens: int | str = ""
    clipped: bool = False  # a flank was cut short by the contig's end (still scored)
    unknown: bool = False  # a flank holds N or another letter, read as [UNK] (still scored)


def variant_window(v: Variant, flank: int) -> tuple[int, int]:
    """The bases [start, end) a variant's windows are cut from: `flank` each side of REF (the
    start clipped at 0, the end for the caller to clip at the record's end)."""
    s = v.pos - 1
    return max(0, s - flank), s + len(v.ref) + flank


def check_variant(v: Variant, genome: Any, cfg: ScoringConfig) -> str:
    """The status of a variant before scoring: ok, or why it cannot be scored."""
    if not (set(v.ref) <= ACGT and set(v.alt) <= ACGT and v.ref and v.alt):
        return "not_acgt"
    if v.chrom not in genome:
        return "off_contig"
    start = v.pos - 1
    if start < 0 or start + len(v.ref) > len(genome[v.chrom]):
        return "off_contig"
    if max(len(v.ref), len(v.alt)) > cfg.max_indel:
        return "too_long"
    if genome[v.chrom].sequence(start, start + len(v.ref)) != v.ref:
        return "ref_mismatch"
    return "ok"


def score_variants(scorer: Scorer, genome: Any, variants: list[Variant],
                   progress: bool = False) -> list[Variant]:
    """Score every variant whose status is ok (in place); returns the list."""
    cfg = scorer.cfg
    todo = [v for v in variants if v.status == "ok"]
    step = max(1, cfg.batch_size // 8)  # variants per group of forward passes
    bar = tqdm.tqdm(total=len(todo), unit="variant", desc="score", disable=not progress)
    for g in range(0, len(todo), step):
        group, jobs, counts = todo[g:g + step], [], []
        for v in group:
            rec = genome[v.chrom]
            s = v.pos - 1
            a, b = variant_window(v, cfg.flank)
            b = min(len(rec), b)
            v.clipped = b - a < len(v.ref) + 2 * cfg.flank
            left, right = rec.sequence(a, s), rec.sequence(s + len(v.ref), b)
            v.unknown = not set(left + right) <= ACGT
            ref_win, alt_win = left + v.ref + right, left + v.alt + right
            strands = [(ref_win, alt_win, len(left))]
            if cfg.rc:
                strands.append((reverse_complement(ref_win), reverse_complement(alt_win),
                                len(right)))
            for r, al, start in strands:
                j, nr, na = _span_jobs(scorer, r, al, start, len(v.ref), len(v.alt))
                jobs += j
                counts.append((nr, na))
        lps = scorer.log_probs(jobs)
        per = 2 if cfg.rc else 1
        for k, v in enumerate(group):
            strand_scores = [float(lps[2 * (k * per + s) + 1].sum() - lps[2 * (k * per + s)].sum())
                             for s in range(per)]
            v.score = sum(strand_scores) / per
            v.ref_tokens, v.alt_tokens = counts[k * per]
        bar.update(len(group))
    bar.close()
    return variants


def iter_vcf(path: str | Path, readable: Path | None = None) -> Iterator[Variant]:
    """One Variant per record and ALT allele, in file order, read lazily (plain, bgzipped or
    gzipped VCF, via pysam): a whole-chromosome VCF holds millions of records. Use it in
    `contextlib.closing` when it may be left unfinished, so the file and htslib's verbosity are
    given back at once. `readable`: what `readable_vcf` made of `path`, for a caller reading it
    more than once; else it is made here."""
    path = Path(path)
    with contextlib.ExitStack() as stack:
        if readable is None:
            readable = stack.enter_context(readable_vcf(path))
        with open(path, "rb") as fh:
            if fh.read(3) == b"\xef\xbb\xbf":  # htslib reads it as part of ##fileformat
                raise GroverError("starts with a byte-order mark: save the VCF without it", path, 1)
        records = 0
        verbosity = pysam.set_verbosity(0)  # htslib's own lines ("no index file") are noise here
        try:
            with pysam.VariantFile(str(readable)) as vcf:
                for rec in vcf:
                    records += 1
                    for alt in rec.alts or (".",):
                        yield Variant(rec.chrom, rec.pos, rec.ref.upper(),
                                      alt.upper() if alt.isalpha() else alt)
        except (OSError, ValueError, EOFError, zlib.error) as err:
            for _ in text_lines(path):  # a damaged gzip or binary file: its own error, at its line
                pass
            if records == 0 and not _first_line(path).startswith("##fileformat=VCF"):
                raise GroverError("not a VCF: the first line must be ##fileformat=VCFv4.x",
                                  path, 1) from None
            line, blank, rest_blank = _failed_line(path, records)
            if rest_blank:  # blank lines at the end (a hand-written file): the records are read
                return
            why = ("an empty line amid the records" if blank else
                   f"cannot read this record (htslib: {err})" if records else
                   f"not a readable VCF ({err})")
            raise GroverError(why, path, line) from None
        finally:
            pysam.set_verbosity(verbosity)


@contextlib.contextmanager
def readable_vcf(path: str | Path) -> Iterator[Path]:
    """The file htslib reads for the VCF `path`: the file itself, or for plain gzip (`_plain_gzip`)
    a gunzipped copy in a temporary folder, removed on the way out. `score variants` reads the
    VCF twice (`vcf_contents`, then a chunk at a time) from one copy: a copy each time
    decompressed a whole-genome VCF twice."""
    path = Path(path)
    if not path.is_file():
        raise GroverError("no such VCF file", path)
    if not _plain_gzip(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="groverlm-vcf-") as tmp:
        try:
            copy = _gunzipped(path, Path(tmp))
        except (OSError, EOFError, zlib.error):
            for _ in text_lines(path):  # a damaged gzip: its own error, at its line
                pass
            raise
        yield copy


def vcf_contents(path: str | Path, readable: Path | None = None, flank: int = 0
                 ) -> tuple[dict[str, np.ndarray], int]:
    """(the variants' windows as (k, 2) intervals per chromosome (`variant_window`), variants) of
    a VCF in one pass that keeps nothing else: the chromosomes to check against the genome, the
    bases to read of it and the count for the progress bar before any scoring, and every
    record's error raised before the model loads. `readable` as for `iter_vcf`."""
    windows = group_intervals((v.chrom, *variant_window(v, flank)) for v in iter_vcf(path, readable))
    return windows, sum(len(iv) for iv in windows.values())  # one window a variant


def _plain_gzip(path: Path) -> bool:
    """gzip that is not BGZF (`gzip v.vcf` rather than `bgzip`): htslib cannot open it as a VCF
    (it wants to seek), so it is read from a gunzipped copy. BGZF is gzip whose header carries
    the 'BC' extra field (FLG.FEXTRA set)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    return head[:2] == b"\x1f\x8b" and not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC")


def _gunzipped(path: Path, folder: Path) -> Path:
    """A plain-text copy of a gzipped file in `folder` (a temporary one: the caller removes it)."""
    out = folder / path.name.removesuffix(".gz")
    with gzip.open(path, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return out


def _first_line(path: Path) -> str:
    """The first line of a text file that reads to its end (read_vcf checked), "" when empty."""
    return next((text for _, text in text_lines(path)), "")


def _failed_line(path: Path, records: int) -> tuple[int | None, bool, bool]:
    """(line, blank, rest blank) of the record after `records` good ones (pysam does not say),
    counted on the raw text as htslib counts: every line after the header, blank ones too; whether
    that line is blank, and whether every line from it to the end is; line None when the text
    cannot be read that far."""
    found, blank = None, False
    try:
        for line, text in text_lines(path):
            if found is not None:
                if text.strip():
                    return found, blank, False
            elif not text.startswith("#"):
                if records == 0:
                    found, blank = line, not text.strip()
                    if not blank:
                        return found, False, False
                records -= 1
    except GroverError:
        return found, blank, False
    return found, blank, found is not None and blank


# ----------------------------------------------------------------------------- mutagenesis


def ism_variants(genome: Any, chrom: str, start: int, ref: str, cfg: ScoringConfig
                 ) -> list[Variant]:
    """Every base of `ref` (the genome's bases from `start`) changed to each of the 3 other bases
    (N and other letters left out), in order, with their statuses."""
    variants = [Variant(chrom, start + i + 1, b, alt) for i, b in enumerate(ref) if b in ACGT
                for alt in "ACGT" if alt != b]
    for v in variants:
        v.status = check_variant(v, genome, cfg)
    return variants


def ism_table(path: Path, start: int, length: int) -> np.ndarray:
    """(4, L) float32 scores of ism.tsv's changes, rows A, C, G, T; NaN at the reference base and
    where nothing was scored. Read from the table, so that the two files agree to the digit
    whether the run was resumed or not."""
    table = np.full((4, length), np.nan, dtype=np.float32)
    with open(path, newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        next(rows)  # the header
        for _, pos, _, alt, value in rows:
            table["ACGT".index(alt), int(pos) - 1 - start] = float(value) if value else np.nan
    return table


MAX_ISM_BP = 100_000  # 300,000 changes: a whole chromosome would be hundreds of millions


def ism_importance(table: np.ndarray) -> np.ndarray:
    """(L,) per base, minus the mean score of its three changes; NaN where none was scored (an N)
    without numpy's "mean of empty slice" warning, which would read as a fault."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return -np.nanmean(table, axis=0)


def plot_ism(table: np.ndarray, ref: str, chrom: str, start: int):
    """Heat map (4 x L) with the per-base importance (mean of -score over the 3 changes) above."""
    importance = ism_importance(table)
    fig, ax = figure(1, 2, width=min(16.0, 3 + 0.14 * len(ref)), height=1.9)  # stacked
    ax[0].bar(np.arange(len(ref)), importance, color="#1f77b4", width=1.0)
    ax[0].set(xlim=(-0.5, len(ref) - 0.5), ylabel="importance", xticks=[],
              title=f"In-silico mutagenesis, {chrom}:{start}-{start + len(ref)}")
    lim = float(np.nanmax(np.abs(table))) if np.isfinite(table).any() else 1.0
    im = ax[1].imshow(table, aspect="auto", cmap="RdBu", vmin=-lim, vmax=lim,
                      interpolation="nearest")
    ax[1].set_yticks(range(4), list("ACGT"))
    if len(ref) <= 120:
        ax[1].set_xticks(range(len(ref)), list(ref), fontsize=6)
    ax[1].set_xlabel("reference base (score: ALT minus REF log-likelihood)")
    fig.colorbar(im, cax=ax[1].inset_axes([1.005, 0.0, 0.008, 1.0]),  # tracks keep one width
                 label="ALT - REF log-likelihood")
    return fig


@writes_folder
def write_ism(model: str | Path, genome_path: str | Path, region: str | Region, out: str | Path,
              cfg: ScoringConfig = ScoringConfig(), overwrite: bool = False,
              progress: bool = False) -> dict[str, Any]:
    """`groverlm ism`: ism.tsv, ism.npy, importance.npy, ism.png and manifest.json in `out`."""
    reg = Region.parse(region, "--region")
    genome = load_genome(genome_path, [reg.chrom], "--region")  # its record alone, not the genome
    _, _, end = reg.bounds(genome.lengths, "--region", genome_path)
    if end - reg.start > MAX_ISM_BP:  # every base's 3 changes are held at once, then scored
        raise GroverError(f"--region {reg} spans {end - reg.start:,} bp: ism scores 3 changes per "
                          f"base, at most {MAX_ISM_BP:,} bp a run (split the region)")
    ref = genome[reg.chrom].sequence(reg.start, end)
    if not set(ref) & set(ACGT):
        raise GroverError(f"{reg} holds no A/C/G/T base to change", genome_path)
    out = prepare_out(out, overwrite)
    scorer = Scorer.load(model, cfg)
    variants = ism_variants(genome, reg.chrom, reg.start, ref, cfg)
    part = PartialTable(out / "ism.tsv", ISM_COLUMNS, resume_settings(
        "ism", cfg, model, [genome_path], region=str(reg)), INPUTS_BY_HASH)
    (out / MANIFEST).unlink(missing_ok=True)  # replacing: no old manifest over new files
    score_chunks(part, len(variants), cfg.chunk, lambda lo, hi: variant_rows(
        scorer, genome, variants[lo:hi], part), progress, "change")
    table = ism_table(out / "ism.tsv", reg.start, end - reg.start)
    importance = ism_importance(table).astype(np.float32)
    for name, arr in (("ism.npy", table), ("importance.npy", importance)):
        with atomic_path(out / name) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr)
    save_png(plot_ism(table, ref, reg.chrom, reg.start), out / "ism.png")
    summary = {"region": str(reg), "bases": len(ref), "changes": int(np.isfinite(table).sum()),
               "most_important": int(reg.start + np.nanargmax(importance) + 1)}
    write_manifest(out, "ism", {**cfg.__dict__, "model": str(model), "region": str(reg)},
                   [genome_path, *_local(model)], summary=summary)
    return summary


# ----------------------------------------------------------------------------- resumable tables


ISM_COLUMNS = ["chrom", "pos", "ref", "alt", "score"]
VARIANT_COLUMNS = ["chrom", "pos", "ref", "alt", "score", "ref_tokens", "alt_tokens", "status"]


def resume_settings(command: str, cfg: ScoringConfig, model: Any, files: Sequence[Any],
                    **more: Any) -> dict[str, Any]:
    """What a partial table must have been made under to be continued: the command, the settings
    that change a score (not batch size, device, threads or chunk), and the model's and input
    files' fingerprints (compared by their hashes: `INPUTS_BY_HASH`, a table and its inputs moved
    elsewhere resume)."""
    return {"command": command, "config": stable(cfg), **more,
            "inputs": [fingerprint(p) for p in [model, *files] if p is not None]}


def score_chunks(table: PartialTable, n: int, chunk: int, work: Any, progress: bool,
                 unit: str) -> None:
    """Items [table.done, n) a chunk at a time: `work(lo, hi)` gives the rows of items [lo, hi)
    and running totals, saved in `table` before the next chunk; then the table is finished."""
    bar = tqdm.tqdm(total=n, initial=table.done, unit=unit, desc="score", disable=not progress)
    for lo in range(table.done, n, chunk):
        hi = min(n, lo + chunk)
        rows, extra = work(lo, hi)
        table.add(rows, hi, **extra)
        bar.update(hi - lo)
    bar.close()
    table.finish()


def variant_rows(scorer: Scorer, genome: Any, variants: list[Variant], table: PartialTable
                 ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """`score_chunks` work for variants: their rows and the running counts of flanks cut by a
    contig's end and of flanks holding N."""
    score_variants(scorer, genome, variants)
    return [vars(v) for v in variants], {
        key: table.extra.get(key, 0) + sum(getattr(v, key) for v in variants)
        for key in ("clipped", "unknown")}


# ----------------------------------------------------------------------------- output


def _local(model: Any) -> list[Path]:
    """The model as a manifest input: its folder when local (a Hub id or a loaded model: none)."""
    return [Path(model)] if isinstance(model, (str, Path)) and Path(model).is_dir() else []


# ----------------------------------------------------------------------------- the run's score stage


def regions(cfg: Any, config: Any) -> list[tuple[str, Any]]:
    """The held-out region of the CTCF variants, with the setting naming it (runner.Stage.regions:
    checked before any stage runs, not at the end)."""
    return [held_out_setting(config, cfg.region, "score")] if cfg.ctcf_sites != 0 else []


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Zero-shot readouts (groverlm.analysis.zeroshot): Prom300 by the per-nucleotide
    pseudo-log-likelihood, CTCF motif SNVs by the variant rule against JASPAR log-odds."""
    out = ctx.out / "readouts"
    if not finished(out):
        d, prom = ctx.data, ctx.task_dir("prom300")
        skipped = {"Prom300": "score.prom300_rows is 0" if cfg.prom300_rows == 0 else
                   "tasks.build has no prom300" if prom is None else None,
                   "CTCF": "score.ctcf_sites is 0" if cfg.ctcf_sites == 0 else
                   "data.ctcf_motif or data.ctcf_peaks is null" if (
                       d.ctcf_motif is None or not d.ctcf_peaks) else None}
        why = [f"no {name} readout ({reason})" for name, reason in skipped.items() if reason]
        if why:  # else the runner's line alone said the stage ran
            log.info("score: %s%s", "nothing to do: " if len(why) == len(skipped) else "",
                     ", ".join(why))
        # the model loads only for a readout
        scorer = Scorer.load(ctx.model, cfg.scoring) if len(why) < len(skipped) else None
        res: dict[str, Any] = {}
        if not skipped["Prom300"]:
            task = load_task(prom)
            # promoters pretraining never read: a likelihood may reward what the model has seen
            rows, source = held_out_split(task, [Region.parse(h) for h in
                                                 ctx.config.stage("corpus").holdout])
            keep = seeded_subset(len(rows), cfg.prom300_rows, cfg.seed)
            seqs = [rows.sequences[i] for i in keep]
            # a shuffle's own tokens, as fine-tuning feeds them: tokenized again, its junctions
            # merge into other (longer, rarer) tokens, and the score then weighs that
            # segmentation against the promoter's instead of the order of the same tokens
            ids = (token_ids(scorer.tok, tokens=[rows.tokens[i] for i in keep])
                   if rows.tokens is not None and given_tokens_apply(task, ctx.model) else None)
            res["prom300"] = prom300_readout(seqs, rows.labels[keep], lambda s: [
                r["pll_per_nt"] for r in score_sequences(scorer, [""] * len(s), s,
                                                         cfg.scoring.rc, ids=ids)])
            res["prom300"].update(given_tokens=ids is not None, rows=source)
        if not skipped["CTCF"]:
            region = ctx.held_out(cfg.region, "score")
            # the region's record alone: the whole genome held for it took 1 byte a base (hg19: 3 GB)
            genome = load_genome(ctx.genome, [region.chrom])
            snvs, ic = bound_ctcf_snvs(genome, d.ctcf_motif, list(d.ctcf_peaks), region,
                                       cfg.ctcf_sites, cfg.seed)
            variants = [Variant(s.chrom, s.pos + 1, s.ref, s.alt) for s in snvs]
            score_variants(scorer, genome, variants, ctx.progress)
            res["ctcf"] = {"region": str(region), **ctcf_readout(
                snvs, [v.score for v in variants], ic)}
            res["ctcf"]["points"] = [[round(s.delta_log_odds, 4), round(v.score, 4),
                                      s.motif_pos] for s, v in zip(snvs, variants, strict=True)]
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "readouts.json", res)
        write_manifest(out, "score-readouts", asdict(cfg), [ctx.model], seed=cfg.seed,
                       summary={k: {kk: vv for kk, vv in v.items() if kk != "points"}
                                for k, v in res.items()})
    return {"readouts": ctx.relative(out), **read_manifest(out)["summary"]}


# ----------------------------------------------------------------------------- command line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="zero-shot likelihoods: sequences and variants")
    acts = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = acts.add_parser("seqs", help="pseudo-log-likelihood of each sequence")
    s.add_argument("--input", required=True, help="FASTA, BED (with --genome) or CSV")
    s.add_argument("--genome", help="FASTA to cut BED intervals from")
    s.add_argument("--per-token", action="store_true", help="add each token's log-probability")
    _common(s)
    s.set_defaults(func=seqs_command)
    v = acts.add_parser("variants", help="the effect of each VCF variant (SNVs, short indels)")
    v.add_argument("--genome", required=True, help="FASTA the VCF refers to")
    v.add_argument("--vcf", required=True, help="VCF, plain, bgzip or gzip")
    _common(v)
    add_fields(v, ScoringConfig, "flank", "margin", "max_indel")
    v.set_defaults(func=variants_command)
    m = sub.add_parser("ism", help="in-silico mutagenesis of a region: every base, 3 changes")
    m.add_argument("--model", required=True, help="model folder or Hub id")
    m.add_argument("--genome", required=True, help="FASTA the region is read from")
    m.add_argument("--region", required=True, help="CHROM:START-END (0-based, half-open)")
    m.add_argument("--out", required=True, help="output folder")
    # no --max-indel: every change is a single-base substitution, never too long
    add_fields(m, ScoringConfig, "rc", "batch_size", "device", "threads", "flank", "margin",
               "chunk")
    m.add_argument("--overwrite", action="store_true", help="replace a finished output folder")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=ism_command)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model folder or Hub id")
    p.add_argument("--out", required=True, help="output TSV")
    add_fields(p, ScoringConfig, "rc", "batch_size", "device", "threads", "chunk")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _check_out(args: argparse.Namespace) -> None:
    """An existing --out is kept unless --overwrite: a finished table is never lost by accident
    (checked before minutes of scoring, not after)."""
    if Path(args.out).is_dir():
        raise GroverError("is a folder: --out names the table (OUT.tsv)", args.out)
    if Path(args.out).exists() and not args.overwrite:
        raise GroverError("exists; pass --overwrite to replace it", args.out)


def _config(args: argparse.Namespace) -> ScoringConfig:
    return ScoringConfig(**{k: getattr(args, k) for k in ("flank", "margin", "max_indel")
                            if hasattr(args, k)}, rc=args.rc, batch_size=args.batch_size,
                         device=args.device, threads=args.threads, chunk=args.chunk)


def seqs_command(args: argparse.Namespace) -> int:
    _check_out(args)
    with file_lock(args.out):
        _score_seqs(args)
    return 0


def _score_seqs(args: argparse.Namespace) -> None:
    items = read_items(args.input, args.genome)
    cfg = _config(args)
    scorer = Scorer.load(args.model, cfg)
    cols = ["name", "length_nt", "tokens", "pll", "pll_per_nt"] + (
        ["log_probs"] if args.per_token else [])
    table = PartialTable(args.out, cols, resume_settings(
        "score seqs", cfg, args.model, [args.input, args.genome], per_token=args.per_token),
        INPUTS_BY_HASH)
    score_chunks(table, len(items), cfg.chunk, lambda lo, hi: (score_sequences(
        scorer, [i.name for i in items[lo:hi]], [i.sequence for i in items[lo:hi]], cfg.rc,
        args.per_token), {}), not args.quiet, "seq")
    print(f"score seqs: {counted(len(items), 'sequence')} -> {args.out}")


def variants_command(args: argparse.Namespace) -> int:
    _check_out(args)
    with file_lock(args.out):
        _score_variants(args)
    return 0


def _score_variants(args: argparse.Namespace) -> None:
    cfg = _config(args)
    # two passes, the count and the windows' intervals first (the records are not kept: a
    # whole-genome VCF holds millions), over one gunzipped copy of a plain-gzip VCF
    with readable_vcf(args.vcf) as readable:
        windows, total = vcf_contents(args.vcf, readable, cfg.flank)
        # the variants' windows alone, read a record at a time: the whole of hg38 held 3.1 GB
        genome = Genome.read_windows(args.genome, windows)
        if total:  # all off_contig (chr20 vs 20) is a naming mismatch, not a result
            check_on_genome(windows, genome.lengths, args.vcf)
        scorer = Scorer.load(args.model, cfg)
        table = PartialTable(args.out, VARIANT_COLUMNS, resume_settings(
            "score variants", cfg, args.model, [args.vcf, args.genome]), INPUTS_BY_HASH)
        with contextlib.closing(iter_vcf(args.vcf, readable)) as records:
            rest = itertools.islice(records, table.done, None)  # after the chunks a stopped run saved

            def work(lo: int, hi: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
                variants = list(itertools.islice(rest, hi - lo))
                if len(variants) != hi - lo:
                    raise GroverError(f"changed while it was scored: {total} variants at first, "
                                      f"{lo + len(variants)} now", args.vcf)
                for v in variants:
                    v.status = check_variant(v, genome, cfg)
                return variant_rows(scorer, genome, variants, table)

            score_chunks(table, total, cfg.chunk, work, not args.quiet, "variant")
    counts = _status_counts(Path(args.out))
    notes = [f"{n} {what}" for n, what in (
        (table.extra.get("clipped", 0), "with a flank cut by the contig end"),
        (table.extra.get("unknown", 0), "with N in a flank, read as [UNK]")) if n]
    print("score variants: " + (", ".join(f"{n} {s}" for s, n in counts.items() if n)
                                or "no variants in the VCF")
          + (f" ({'; '.join(notes)})" if notes else "") + f" -> {args.out}")


def _status_counts(path: Path) -> dict[str, int]:
    """How many rows of a variant table have each status, counted in the table: a resumed run
    holds only its own chunks' variants."""
    with open(path, newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        col = next(rows).index("status")
        counts = Counter(r[col] for r in rows)
    return {s: counts[s] for s in STATUSES}


def ism_command(args: argparse.Namespace) -> int:
    summary = write_ism(args.model, args.genome, args.region, args.out, _config(args),
                        args.overwrite, progress=not args.quiet)
    print(f"ism: {summary['changes']} changes over {summary['region']} -> {args.out}")
    return 0
