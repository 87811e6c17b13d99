"""Embedding stage: one vector per DNA sequence from a pretrained (or fine-tuned) BERT folder.

Reads a model folder (`save_pretrained` BERT with its tokenizer inside) and sequences from FASTA,
BED (+ the genome FASTA) or CSV (a `sequence` column); writes `OUT.npy` (float32, one row per
sequence: (N, H), or (N, L + 1, H) for `layer="all"`), `OUT.index.tsv` (name and coordinates per
row, in input order) and `OUT.manifest.json`.

A sequence is tokenized whole (no special tokens), cut into consecutive windows of at most the
model's length minus [CLS] and [SEP] (510 tokens for BERT's 512 positions), each window wrapped in
[CLS] ... [SEP] and run through the encoder. A window's vector is the mean of its hidden states over
the non-special tokens ([UNK] from N runs excluded), or its [CLS] state; a sequence's vector is the
mean of its windows' vectors weighted by their token counts; with `rc` (`--rc`), the mean of that
and the same vector of its reverse complement. A sequence with no A/C/G/T token gets a NaN row (and
a warning). Long runs are resumable: finished sequences are kept in `OUT.partial.npy` and a restart
with the same settings goes on from there.

In Python: `groverlm.embed(model, sequences)` returns the numpy array.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# __version__: groverlm/__init__ sets it before it imports this module
from groverlm import __version__, lazy
from groverlm.args import add_fields, stable, volatile
from groverlm.batching import split_windows, wrap
from groverlm.errors import GroverError, counted
from groverlm.fasta import (
    IUPAC,
    Genome,
    decode,
    group_intervals,
    is_header,
    iter_records,
    reverse_complement,
    table_fields,
    text_lines,
)
from groverlm.manifest import (
    INPUTS_BY_HASH,
    atomic_path,
    cached,
    file_lock,
    fingerprint,
    write_cached,
    write_tsv,
)
from groverlm.models import load_model, load_tokenizer, named_device, torch_threads

# torch and tqdm load on first use, keeping the CLI, config loading and `import groverlm` light
torch = lazy.module("torch")
tqdm_auto = lazy.module("tqdm.auto")

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
DTYPES = ("float32", "bfloat16")
FORMATS = ("auto", "fasta", "bed", "csv")
INDEX_COLUMNS = ("name", "chrom", "start", "end", "strand", "length", "tokens", "windows")
_FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".seq")


@dataclass(frozen=True)
class EmbedConfig:
    """How sequences become vectors."""

    pooling: str = "mean"  # mean over non-special tokens (GROVER's usage) or the [CLS] state
    layer: int | str = -1  # hidden state index: 0 = word embeddings, -1 = last layer; "all" = every
    batch_size: int = volatile(16)  # windows per forward pass; windows are sorted by length to pad little
    dtype: str = "float32"  # compute dtype; bfloat16 halves memory, the output stays float32
    max_tokens: int | None = None  # window length in tokens; None: the model's positions minus 2
    device: str = volatile("auto")  # auto (the GPU when torch sees one), cpu, cuda or cuda:N
    chunk: int = volatile(1024)  # sequences per resumable chunk: the partial output is flushed after each
    rc: bool = False  # both strands: the mean of a sequence's vector and its reverse complement's
    threads: int | None = volatile(None)  # torch CPU threads (None: torch's choice, one per core)

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise GroverError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.dtype not in DTYPES:
            raise GroverError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not (self.layer == "all" or isinstance(self.layer, int)):
            raise GroverError(f"layer must be an integer or 'all', got {self.layer!r}")
        if self.batch_size < 1 or self.chunk < 1:
            raise GroverError("batch size and chunk must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise GroverError(f"threads must be at least 1, got {self.threads}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise GroverError(f"max tokens must be at least 1, got {self.max_tokens}")


@dataclass(frozen=True)
class Item:
    """One input sequence with where it came from (coordinates 0-based half-open, or empty)."""

    name: str
    sequence: str
    chrom: str = ""
    start: int | None = None
    end: int | None = None
    strand: str = ""


# ----------------------------------------------------------------------------- inputs


def detect_format(path: str | Path) -> str:
    """fasta, bed or csv from the file name (a .gz suffix is ignored), else from the first byte."""
    path = Path(path)
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(_FASTA_SUFFIXES):
        return "fasta"
    if name.endswith(".bed"):
        return "bed"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    for _, line in text_lines(path):
        if line.strip():
            return "fasta" if line.startswith(">") else "csv"
    raise GroverError("empty input file", path)


def read_items(path: str | Path, genome: str | Path | None = None, fmt: str = "auto") -> list[Item]:
    """Sequences of a FASTA, BED (cut from `genome`) or CSV file, in file order."""
    path = Path(path)
    if fmt not in FORMATS:
        raise GroverError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "fasta":
        items = [Item(r.name, decode(r.codes)) for r in iter_records(path)]
    elif fmt == "bed":
        if genome is None:
            raise GroverError("BED input needs --genome FASTA to cut the sequences from", path)
        items = _read_bed(path, Path(genome))
    else:
        items = _read_csv(path)
    if not items:
        raise GroverError("no sequences", path)
    return items


def _read_bed(path: Path, genome_path: Path) -> list[Item]:
    """The intervals of a BED file cut from the genome, whose records are read one at a time and
    hold the intervals' bases alone (`Genome.read_windows`), not the genome."""
    rows = []  # (line, chrom, start, end, strand, name)
    for n, line in text_lines(path):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        f = table_fields(line)
        if is_header(f):
            continue
        if len(f) < 3:
            raise GroverError(f"BED needs at least 3 columns, got {len(f)}", path, n)
        try:
            start, end = int(f[1]), int(f[2])
        except ValueError:
            raise GroverError(f"start/end {f[1]!r} {f[2]!r} are not integers", path, n) from None
        strand = f[5] if len(f) >= 6 else "+"
        if strand not in ("+", "-", "."):
            raise GroverError(f"strand {strand!r} is not '+', '-' or '.'", path, n)
        name = f[3] if len(f) >= 4 and f[3] not in ("", ".") else f"{f[0]}:{start}-{end}"
        rows.append((n, f[0], start, end, "-" if strand == "-" else "+", name))
    genome = Genome.read_windows(genome_path, group_intervals(r[1:4] for r in rows))
    items = []
    for n, chrom, start, end, strand, name in rows:
        if chrom not in genome:
            raise GroverError(f"no record {chrom!r} in the genome {genome.path}", path, n)
        if not 0 <= start < end <= len(genome[chrom]):
            raise GroverError(f"interval {start}-{end} is empty or outside {chrom} "
                              f"(length {len(genome[chrom]):,})", path, n)
        items.append(Item(name, genome.sequence(chrom, start, end, strand), chrom, start, end,
                          strand))
    return items


def _read_csv(path: Path) -> list[Item]:
    lines = text_lines(path)
    text = "\n".join(line for _, line in lines)
    dialect = "excel-tab" if path.name.lower().removesuffix(".gz").endswith(".tsv") else "excel"
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    fields = reader.fieldnames or []
    if "sequence" not in fields:
        raise GroverError(f"CSV needs a 'sequence' column (header: {','.join(fields)})", path, 1)
    name_col = next((c for c in ("name", "id") if c in fields), None)
    has_coords = all(c in fields for c in ("chrom", "start", "end"))
    items = []
    for row in reader:
        n = reader.line_num
        seq = (row.get("sequence") or "").strip().upper()
        if not seq:
            raise GroverError("empty sequence", path, n)
        bad = set(seq) - set("ACGTNRYSWKMBDHVU")
        if bad:
            raise GroverError(f"unknown nucleotide letter {sorted(bad)[0]!r}", path, n)
        start = end = None
        chrom = strand = ""
        if has_coords:
            chrom = row["chrom"]
            try:
                start, end = int(row["start"]), int(row["end"])
            except (TypeError, ValueError):
                raise GroverError("start/end are not integers", path, n) from None
            strand = row.get("strand") or ""
        name = row[name_col] if name_col else (f"{chrom}:{start}-{end}" if has_coords
                                               else f"row{len(items) + 1}")
        items.append(Item(name, seq, chrom, start, end, strand))
    return items


# ----------------------------------------------------------------------------- model


def load_encoder(model_dir: str | Path, dtype: str = "float32", device: str = "auto",
                 need_head: bool = True):
    """(model, tokenizer) of a `save_pretrained` folder holding a masked LM and its tokenizer; the
    model is the stock `AutoModelForMaskedLM` (BERT, DeBERTa-v2, ...) in eval mode (its
    `base_model` is the encoder), on `device` (`models.named_device`: auto, cpu, cuda, ...).
    Without `need_head` (embedding reads the encoder alone) any folder of the architecture does,
    a fine-tuned classifier's too."""
    device = named_device(device)  # a bad name fails before the model loads
    tokenizer = load_tokenizer(model_dir, "model")
    model = load_model(model_dir, "mlm", need_head)
    model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
    return model, tokenizer


def max_window_tokens(model, tokenizer, requested: int | None = None) -> int:
    """Tokens per window: the model's positions (and the tokenizer's limit) minus [CLS], [SEP].
    `model`: a model or its config."""
    limit = int(getattr(model, "config", model).max_position_embeddings)
    if tokenizer.model_max_length and tokenizer.model_max_length < 1_000_000:
        limit = min(limit, int(tokenizer.model_max_length))
    limit -= 2
    if requested is not None:
        if requested > limit:
            raise GroverError(f"--max-tokens {requested} exceeds the model's {limit} tokens")
        return requested
    return limit


def special_ids(tokenizer) -> list[int]:
    """Ids left out of mean pooling: [PAD] [UNK] [CLS] [SEP] [MASK] (and any other special)."""
    return sorted(set(tokenizer.all_special_ids))


def iter_batches(windows: Sequence[Sequence[int]], cls_id: int, sep_id: int, pad_id: int,
                 batch_size: int) -> Iterator[tuple[list[int], Any, Any]]:
    """Batches of windows (token ids without specials), longest first: (window indices, ids,
    attention mask), ids (B, T) long with [CLS] first, [SEP] after the last token, then [PAD]."""
    order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b : b + batch_size]
        ids, mask = wrap([windows[i] for i in idx], cls_id, sep_id, pad_id)  # (B, T) each
        yield idx, torch.from_numpy(ids), torch.from_numpy(mask)


def iter_hidden(model, windows: Sequence[Sequence[int]], cls_id: int, sep_id: int, pad_id: int,
                layers: Sequence[int] | None, batch_size: int, progress: bool = False,
                desc: str = "windows") -> Iterator[tuple[list[int], Any, Any]]:
    """Run windows (token ids without specials) through the encoder, longest first.

    Yields (window indices, hidden, ids): `hidden` is (S, B, T, H) float32 for the S selected
    hidden-state indices (None: the last layer only), `ids` (B, T) the input ids with [CLS] first,
    [SEP] after the last token and [PAD] after it.
    """
    device = next(model.parameters()).device
    encoder = model.base_model
    bar = tqdm_auto.tqdm(total=len(windows), desc=desc, unit="win", disable=not progress, leave=False)
    with torch.inference_mode():
        for idx, ids, mask in iter_batches(windows, cls_id, sep_id, pad_id, batch_size):
            out = encoder(input_ids=ids.to(device), attention_mask=mask.to(device),
                          output_hidden_states=layers is not None)
            if layers is None:
                hidden = out.last_hidden_state.unsqueeze(0)  # (1, B, T, H)
            else:
                hidden = torch.stack([out.hidden_states[k] for k in layers])  # (S, B, T, H)
            yield idx, hidden.float().cpu(), ids
            bar.update(len(idx))
    bar.close()


def n_hidden_states(model) -> int:
    """Hidden-state indices: the word-embedding output plus one per layer."""
    return int(model.config.num_hidden_layers) + 1


def _layer_indices(model, layer: int | str) -> list[int] | None:
    n = n_hidden_states(model)
    if layer == "all":
        return list(range(n))
    k = int(layer)
    if not -n <= k < n:
        raise GroverError(f"layer {k} outside the model's hidden states 0..{n - 1} (or -{n}..-1)")
    return None if k % n == n - 1 else [k % n]


def embed_token_ids(model, tokenizer, token_ids: Sequence[Sequence[int]], cfg: EmbedConfig,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled vectors of tokenized sequences (ids without special tokens).

    Returns (vectors, tokens, windows): vectors (N, H) float32, or (N, S, H) for layer "all";
    tokens (N,) the pooled token count of each sequence (0 means a NaN row); windows (N,).
    """
    layers = _layer_indices(model, cfg.layer)
    max_tokens = max_window_tokens(model, tokenizer, cfg.max_tokens)
    windows, owner = [], []
    for s, ids in enumerate(token_ids):
        for w in split_windows(ids, max_tokens):
            windows.append(w)
            owner.append(s)
    skip = torch.tensor(special_ids(tokenizer))
    n, hsize = len(token_ids), int(model.config.hidden_size)
    shape = (n, len(layers), hsize) if cfg.layer == "all" else (n, hsize)
    sums = np.zeros(shape, dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    for idx, hidden, ids in iter_hidden(model, windows, tokenizer.cls_token_id,
                                        tokenizer.sep_token_id, tokenizer.pad_token_id, layers,
                                        cfg.batch_size, progress):
        keep = ~torch.isin(ids, skip)  # (B, T) the real DNA tokens
        used = keep.sum(1)  # (B,)
        if cfg.pooling == "mean":
            pooled = (hidden * keep[None, :, :, None]).sum(2) / used.clamp(min=1)[None, :, None]
        else:
            pooled = hidden[:, :, 0, :]  # (S, B, H) the [CLS] state
        weighted = (pooled * used[None, :, None]).double().numpy()  # (S, B, H) token-weighted
        for row, i in enumerate(idx):
            s = owner[i]
            sums[s] += weighted[:, row] if cfg.layer == "all" else weighted[0, row]
            counts[s] += int(used[row])
    n_windows = np.bincount(np.asarray(owner, dtype=np.int64), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        vectors = sums / counts.reshape((-1,) + (1,) * (sums.ndim - 1))
    return vectors.astype(np.float32), counts, n_windows


def tokenize(tokenizer, sequences: Sequence[str]) -> list[list[int]]:
    """Token ids of each sequence, without special tokens (uppercased first)."""
    backend = tokenizer.backend_tokenizer
    return [e.ids for e in backend.encode_batch([s.upper() for s in sequences],
                                                add_special_tokens=False)]


def embed_sequences(model, tokenizer, sequences: Sequence[str], cfg: EmbedConfig,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`embed_token_ids` of DNA strings; with `cfg.rc` the vectors are the mean of each sequence's
    and its reverse complement's (tokens and windows are the given strand's)."""
    vectors, tokens, windows = embed_token_ids(model, tokenizer, tokenize(tokenizer, sequences),
                                               cfg, progress)
    if cfg.rc:
        rev = tokenize(tokenizer, [reverse_complement(s) for s in sequences])
        vectors = (vectors + embed_token_ids(model, tokenizer, rev, cfg, progress)[0]) / 2
    return vectors, tokens, windows


# ----------------------------------------------------------------------------- stage


def embed(model: Any, sequences: Sequence[str] | str | Path, genome: str | Path | None = None,
          pooling: str = "mean", layer: int | str = -1, batch_size: int = 16,
          dtype: str = "float32", max_tokens: int | None = None, device: str = "auto",
          tokenizer: Any = None, progress: bool = False, rc: bool = False) -> np.ndarray:
    """Embed DNA sequences: (N, H) float32, or (N, L + 1, H) with `layer="all"`.

    `model` is a model folder, or a loaded transformers BERT (then pass `tokenizer` too);
    `sequences` is a list of strings or a FASTA/BED/CSV path (BED needs `genome`); `rc`: the
    mean of both strands' vectors.
    """
    cfg = EmbedConfig(pooling=pooling, layer=layer, batch_size=batch_size, dtype=dtype,
                      max_tokens=max_tokens, device=device, rc=rc)
    if isinstance(model, str | Path):
        model, tokenizer = load_encoder(model, dtype, device, need_head=False)
    elif tokenizer is None:
        raise GroverError("pass `tokenizer` together with a loaded model")
    _, seqs = named_sequences(sequences, genome)
    return embed_sequences(model, tokenizer, seqs, cfg, progress)[0]


_SEQUENCE = re.compile(f"[ACGT{IUPAC}]+", re.IGNORECASE)


def named_sequences(sequences: Sequence[str] | str | Path, genome: str | Path | None = None
                    ) -> tuple[list[str], list[str]]:
    """(names, sequences) of what the Python API takes: one DNA string, a list of them (named
    seq0, seq1, ...), or any other string or a Path naming a FASTA/BED/CSV file (`read_items`; a
    missing file is an error, never a sequence read by mistake; a DNA string that also names a
    file, `data`, is an error, not a guess). Letters outside A/C/G/T and the IUPAC codes are an
    error, as on the command line."""
    if isinstance(sequences, Path) or (isinstance(sequences, str)
                                       and not _SEQUENCE.fullmatch(sequences)):
        if not str(sequences).strip():
            raise GroverError("an empty string is neither a sequence nor a file")
        items = read_items(sequences, genome)
        return [i.name for i in items], [i.sequence for i in items]
    # os.path: a long sequence is no file name (Path.exists raises "File name too long")
    if isinstance(sequences, str) and os.path.exists(sequences):  # `data`, `dna`: IUPAC letters
        raise GroverError(f"{sequences!r} is both a DNA sequence and a file here: pass "
                          f"Path({sequences!r}) to read the file, [{sequences!r}] for the sequence")
    seqs = [sequences] if isinstance(sequences, str) else list(sequences)
    for i, s in enumerate(seqs):
        if not isinstance(s, str) or (s and not _SEQUENCE.fullmatch(s)):
            bad = sorted(set(str(s).upper()) - set("ACGT" + IUPAC)) if isinstance(s, str) else s
            raise GroverError(f"sequence {i}: not DNA (letters {bad!r})")
    return [f"seq{i}" for i in range(len(seqs))], seqs


def out_paths(out: str | Path) -> dict[str, Path]:
    """OUT.npy, OUT.index.tsv, OUT.manifest.json and the resumable partial files."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix == ".npy" else out
    return {"npy": stem.with_name(stem.name + ".npy"),
            "index": stem.with_name(stem.name + ".index.tsv"),
            "manifest": stem.with_name(stem.name + ".manifest.json"),
            "partial": stem.with_name(stem.name + ".partial.npy"),
            "progress": stem.with_name(stem.name + ".partial.json")}


def write_embeddings(model_dir: str | Path, input_path: str | Path, out: str | Path,
                     cfg: EmbedConfig, genome: str | Path | None = None, fmt: str = "auto",
                     overwrite: bool = False, progress: bool = True) -> dict:
    """`groverlm embed`: write OUT.npy, OUT.index.tsv and OUT.manifest.json; returns the manifest.

    Sequences go in chunks of `cfg.chunk`; after each chunk the partial array and the count done are
    saved, so a run stopped midway resumes where it stopped (same inputs and settings). A second
    process into the same OUT stops in one line while this one runs (`manifest.file_lock`): it would
    truncate the partial array under this one's memory map (a bus error) or append its rows."""
    with file_lock(out_paths(out)["npy"]):
        return _write_embeddings(model_dir, input_path, out, cfg, genome, fmt, overwrite, progress)


def _write_embeddings(model_dir: str | Path, input_path: str | Path, out: str | Path,
                      cfg: EmbedConfig, genome: str | Path | None, fmt: str, overwrite: bool,
                      progress: bool) -> dict:
    paths = out_paths(out)
    if (paths["npy"].exists() or paths["manifest"].exists()) and not overwrite:
        raise GroverError("already exists; pass --overwrite to replace it", paths["npy"])
    items = read_items(input_path, genome, fmt)
    paths["npy"].parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_encoder(model_dir, cfg.dtype, cfg.device, need_head=False)
    max_window_tokens(model, tokenizer, cfg.max_tokens)  # a bad --max-tokens before any file
    inputs = [fingerprint(p) for p in [model_dir, input_path] + ([genome] if genome else [])]
    where = {"input": str(input_path), "model": str(model_dir),
             "genome": str(genome) if genome else None, "format": fmt}
    config = {**asdict(cfg), **where}
    # a partial output under other settings is started again (nothing finished is lost); the
    # volatile ones (batch size, device, chunk) change no vector, so they may change meanwhile.
    # The model, input and genome are compared by their fingerprints, not their paths: a partial
    # output moved or copied with them resumes (INPUTS_BY_HASH)
    settings = {"config": {**stable(cfg), "format": fmt}, "inputs": inputs}

    hsize = int(model.config.hidden_size)
    layers = _layer_indices(model, cfg.layer)
    shape = (len(items), len(layers), hsize) if cfg.layer == "all" else (len(items), hsize)
    done, meta = 0, {"tokens": [], "windows": []}
    saved = (cached(paths["progress"], settings, INPUTS_BY_HASH) if paths["partial"].exists()
             else None)
    if saved is not None:
        done, meta = saved["done"], {"tokens": saved["tokens"], "windows": saved["windows"]}
        log.info("resuming %s after %d of %d sequences", paths["partial"], done, len(items))
    if done:
        arr = np.load(paths["partial"], mmap_mode="r+")
    else:
        arr = np.lib.format.open_memmap(paths["partial"], mode="w+", dtype=np.float32, shape=shape)
    # replacing: the old manifest goes before any new file, so that an interrupted run never leaves
    # new vectors beside an old index under a manifest that says they are finished
    paths["manifest"].unlink(missing_ok=True)
    t0 = time.perf_counter()
    bar = tqdm_auto.tqdm(total=len(items), initial=done, desc="embed", unit="seq", disable=not progress)
    for lo in range(done, len(items), cfg.chunk):
        chunk = items[lo : lo + cfg.chunk]
        with torch_threads(cfg.threads):
            vecs, tokens, windows = embed_sequences(model, tokenizer,
                                                    [it.sequence for it in chunk], cfg)
        arr[lo : lo + len(chunk)] = vecs
        arr.flush()
        meta["tokens"] += tokens.tolist()
        meta["windows"] += windows.tolist()
        write_cached(paths["progress"], settings, {**meta, "done": lo + len(chunk)})
        bar.update(len(chunk))
    bar.close()
    tokens = np.asarray(meta["tokens"], dtype=np.int64)
    empty = int((tokens == 0).sum())
    if empty:
        log.warning("no A/C/G/T token in %s: NaN rows", counted(empty, "sequence"))
    del arr
    rows = [dict(zip(INDEX_COLUMNS, [it.name, it.chrom, "" if it.start is None else it.start,
                                     "" if it.end is None else it.end, it.strand,
                                     len(it.sequence), int(n_tok), int(n_win)], strict=True))
            for it, n_tok, n_win in zip(items, meta["tokens"], meta["windows"], strict=True)]
    write_tsv(paths["index"], rows, INDEX_COLUMNS)  # quoted where a name holds a tab
    os.replace(paths["partial"], paths["npy"])
    manifest = {"stage": "embed", "groverlm_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": None, "config": config,
                "inputs": inputs, "shape": list(shape), "layers": layers,
                "empty_sequences": empty, "seconds": round(time.perf_counter() - t0, 2),
                "outputs": {k: str(paths[k]) for k in ("npy", "index")}}
    with atomic_path(paths["manifest"]) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    paths["progress"].unlink(missing_ok=True)
    return manifest


def _layer_arg(text: str) -> int | str:
    if text == "all":
        return "all"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"layer must be an integer or 'all', got {text!r}"
                                         ) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="one vector per sequence (FASTA, BED + genome, CSV)")
    p.add_argument("--model", required=True,
                   help="model folder or Hub id (save_pretrained, tokenizer inside)")
    p.add_argument("--input", required=True, help="FASTA, BED (with --genome) or CSV/TSV with a "
                   "'sequence' column")
    p.add_argument("--out", required=True, help="OUT.npy (also writes OUT.index.tsv, "
                   "OUT.manifest.json)")
    p.add_argument("--genome", help="genome FASTA for BED input")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: "
                   "from the file name)")
    p.add_argument("--pooling", choices=POOLINGS, default=EmbedConfig.pooling,
                   help="mean over DNA tokens (default) or the [CLS] state")
    p.add_argument("--layer", type=_layer_arg, default=EmbedConfig.layer,
                   help="hidden state: 0 = word embeddings, -1 = last (default), or 'all'")
    add_fields(p, EmbedConfig, "batch_size", "dtype", choices={"dtype": DTYPES})
    p.add_argument("--max-tokens", type=int, default=EmbedConfig.max_tokens,
                   help="window length in tokens (default: the model's maximum minus 2)")
    add_fields(p, EmbedConfig, "device", "threads", "rc", "chunk")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT.npy")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_embed)


def run_embed(args: argparse.Namespace) -> int:
    cfg = EmbedConfig(pooling=args.pooling, layer=args.layer, batch_size=args.batch_size,
                      dtype=args.dtype, max_tokens=args.max_tokens, device=args.device,
                      rc=args.rc, threads=args.threads, chunk=args.chunk)
    m = write_embeddings(args.model, args.input, args.out, cfg, args.genome, args.format,
                         args.overwrite, progress=not args.quiet)
    print(f"embed: {m['shape'][0]} sequences -> {m['outputs']['npy']} {tuple(m['shape'])} "
          f"float32 ({cfg.pooling}, layer {cfg.layer}); {m['empty_sequences']} empty; "
          f"{m['seconds']:.1f} s")
    return 0
