"""Vocabulary stage, export: the merge table cut at any cycle count as a Hugging Face tokenizer.

Reads `merges.tsv`, `progress.tsv` and `manifest.json` of a `bpe train` folder; writes a folder that
`transformers.AutoTokenizer.from_pretrained` and `tokenizers.Tokenizer.from_file` load with no custom
code (tokenizer.json, tokenizer_config.json, vocab.txt), plus
`vocab_stats.json` (the tokens still present after C cycles with their genome frequency, length, GC
and AG fraction) and `manifest.json`.

Ids: [PAD] [UNK] [CLS] [SEP] [MASK] are 0-4, then every BPE token in order of creation (A, C, G, T
first), so tokenizer id = BPE id + NUM_SPECIAL at every cycle count. The vocabulary keeps the
intermediate tokens that later merges consumed: the BPE model needs them to replay the merges.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, normalizers, processors

from groverlm import lazy
from groverlm.bpe.merges import NUM_SPECIAL, SPECIAL_TOKENS, Merges
from groverlm.bpe.tokens import merges_fingerprint
from groverlm.errors import GroverError
from groverlm.manifest import prepare_out, read_json, read_manifest, write_json, write_manifest, writes_folder

transformers = lazy.module("transformers")  # a second to import: only save_tokenizer needs it

MAX_LENGTH = 512  # BERT positions: 510 tokens plus [CLS] and [SEP]


def upper_case_dna() -> normalizers.Normalizer:
    """Soft-masked (lower-case) DNA as users paste it, upper-cased one letter at a time so offsets
    stay put; without it AutoTokenizer gives [UNK] for acgt (our own stages upper-case first)."""
    return normalizers.Sequence([normalizers.Replace(c, c.upper()) for c in "acgtn"])


def build_tokenizer(merges: Merges) -> Tokenizer:
    """A `tokenizers.Tokenizer` whose BPE model replays `merges` (any prefix of a trained table)."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for i, s in enumerate(merges.strings):
        vocab[s] = i + NUM_SPECIAL
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges.pairs(), unk_token="[UNK]"))
    tok.normalizer = upper_case_dna()
    tok.add_special_tokens(SPECIAL_TOKENS)
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def save_tokenizer(tok: Tokenizer, out: Path) -> None:
    """Write the folder AutoTokenizer loads: a PreTrainedTokenizerFast with BERT's special tokens."""
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_LENGTH)
    fast.save_pretrained(str(out))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (out / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab))


def token_stats(merges: Merges, freq: np.ndarray) -> list[dict]:
    """Per-token rows for the tokens present in the genome (frequency > 0), most frequent first."""
    rows = []
    for i, s in enumerate(merges.strings):
        if freq[i] <= 0:
            continue
        n = len(s)
        rows.append({
            "token": s, "id": i + NUM_SPECIAL, "frequency": int(freq[i]), "length": n,
            "gc": (s.count("G") + s.count("C")) / n, "ag": (s.count("A") + s.count("G")) / n})
    rows.sort(key=lambda r: (-r["frequency"], r["id"]))
    return rows


def summarize_vocab(rows: list[dict]) -> dict:
    """The figures GROVER reports for its vocabulary, computed over the present tokens."""
    lengths = np.array([r["length"] for r in rows])
    longest = max(lengths)
    weights = np.array([r["frequency"] for r in rows], dtype=np.float64)
    return {
        "tokens": len(rows),
        "mean_length_vocab": float(lengths.mean()),
        "mean_length_genome": float((weights * lengths).sum() / weights.sum()),
        "min_length": int(lengths.min()),
        "max_length": int(longest),
        "longest": sorted(r["token"] for r in rows if r["length"] == longest),
        "has_CG": any(r["token"] == "CG" for r in rows),
        "start_A_or_T": float(np.mean([r["token"][0] in "AT" for r in rows])),
        "genome_tokens": int(weights.sum()),
    }


def read_progress(train_dir: Path) -> np.ndarray:
    """Occurrences merged at each cycle (column `merged` of progress.tsv)."""
    path = train_dir / "progress.tsv"
    if not path.exists():
        raise GroverError("no progress.tsv: not a finished `bpe train` folder", train_dir)
    return np.loadtxt(path, delimiter="\t", skiprows=1, usecols=1, dtype=np.int64, ndmin=1)


@writes_folder
def export_vocab(train_dir: str | Path, cycles: int, out: str | Path, overwrite: bool = False
                 ) -> dict:
    """Write the tokenizer folder for `cycles` cycles of a `bpe train` folder; returns its summary."""
    train_dir = Path(train_dir)
    manifest = read_manifest(train_dir)
    merges = Merges.read(train_dir / "merges.tsv").upto(cycles)
    freq = merges.token_frequencies(np.array(manifest["base_counts"]), read_progress(train_dir),
                                    cycles)
    rows = token_stats(merges, freq)
    summary = summarize_vocab(rows)
    out = prepare_out(out, overwrite, resumable=False)
    (out / "manifest.json").unlink(missing_ok=True)  # replacing: unfinished until the new one
    with tempfile.TemporaryDirectory(dir=out, prefix=".tokenizer") as tmp:  # build aside, move in
        save_tokenizer(build_tokenizer(merges), Path(tmp))
        for f in Path(tmp).iterdir():
            f.replace(out / f.name)
    write_json(out / "vocab_stats.json", {"cycles": cycles, "summary": summary, "tokens": rows})
    # train_dir relative to this folder, so that `corpus` finds the saved segmentation from any
    # working directory and after the two folders move together
    write_manifest(out, "bpe-export", {"cycles": cycles,
                                       "train_dir": os.path.relpath(train_dir.resolve(), out.resolve())},
                   [train_dir / "merges.tsv"], summary=summary,
                   merges_sha256=merges_fingerprint(train_dir / "merges.tsv", cycles),
                   vocab_size=len(merges.strings) + NUM_SPECIAL)
    return summary


def load_vocab_stats(vocab: str | Path) -> dict:
    path = Path(vocab) / "vocab_stats.json"
    if not path.exists():
        raise GroverError("no vocab_stats.json: not a `bpe export` folder", vocab)
    return read_json(path)
