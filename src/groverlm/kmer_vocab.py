"""Vocabulary stage, fixed k-mers: a tokenizer of non-overlapping k-mers, the baseline vocabularies.

Reads nothing; writes VOCAB/ with the files `bpe export` writes (tokenizer.json,
tokenizer_config.json, vocab.txt: a `PreTrainedTokenizerFast` that
`AutoTokenizer.from_pretrained` loads with no custom code) and `manifest.json`. A k-mer vocabulary
then goes through the same `corpus` and `pretrain` commands as a BPE one (with no saved segmentation
to reuse, `corpus` encodes the genome with the tokenizer).

Tokenization follows the Nucleotide Transformer: a sequence is read left to right in k-mers; a base
that cannot start a full A/C/G/T k-mer (a remainder shorter than k before the end or before an N) is
a token of its own, and N is always a single-base token. This is one regex, `[ACGT]{k}|[ACGTN]`,
split with "isolated" behaviour, in front of a `WordLevel` model; anything else (another letter)
becomes [UNK]. Lower case is read as upper case.

Ids: [PAD] [UNK] [CLS] [SEP] [MASK] are 0-4 (as in `bpe export`), then the 4**k k-mers in
`kmers` index order (id = 5 + kmer_to_index), then the single bases A, C, G, T, N (for k = 1 only N is
new). Encoding adds [CLS] ... [SEP] like the BPE tokenizers.

    >>> tok = build_kmer_tokenizer(3)
    >>> tok.encode("ACGTTGCAN", add_special_tokens=False).tokens
    ['ACG', 'TTG', 'C', 'A', 'N']
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from groverlm import lazy
from groverlm.bpe.merges import NUM_SPECIAL, SPECIAL_TOKENS
from groverlm.errors import GroverError
from groverlm.kmers import all_kmers
from groverlm.manifest import prepare_out, write_manifest, writes_folder

# tokenizers (and bpe.export, which imports it at its top) load on first use, keeping the CLI and
# config loading light
tokenizers = lazy.module("tokenizers")
bpe_export = lazy.module("groverlm.bpe.export")

MAX_VOCAB_K = 8  # 4**8 = 65,536 k-mers (65,546 tokens: the corpus then stores uint32)
SINGLES = ("A", "C", "G", "T", "N")  # remainder and N tokens


def kmer_vocabulary(k: int) -> dict[str, int]:
    """Token -> id: special tokens, then every k-mer in index order, then the single bases.

    >>> v = kmer_vocabulary(2)
    >>> v["[MASK]"], v["AA"], v["TT"], v["A"], v["N"], len(v)
    (4, 5, 20, 21, 25, 26)
    """
    if not 1 <= k <= MAX_VOCAB_K:
        raise GroverError(f"--k must be between 1 and {MAX_VOCAB_K}, got {k}")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for tok in all_kmers(k) + list(SINGLES):
        vocab.setdefault(tok, len(vocab))
    assert vocab[all_kmers(k)[0]] == NUM_SPECIAL
    return vocab


def build_kmer_tokenizer(k: int):
    """A `tokenizers.Tokenizer` that splits into non-overlapping k-mers and single-base remainders."""
    vocab = kmer_vocabulary(k)
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = bpe_export.upper_case_dna()
    # any other letter is a piece of its own ([UNK] each, one per base as in BPE: a run of them as
    # one [UNK] would change a sequence's length for reverse_complement_ids)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(
        tokenizers.Regex(f"[ACGT]{{{k}}}|[ACGTN]|[^ACGTN]"), behavior="isolated")
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return tok


@writes_folder
def write_kmer_vocab(k: int, out: str | Path, overwrite: bool = False) -> dict:
    """`groverlm kmer-vocab`: write the tokenizer folder and its manifest; returns the manifest."""
    tok = build_kmer_tokenizer(k)
    out = prepare_out(out, overwrite, resumable=False)
    # replacing: unfinished until the new manifest; a BPE export's statistics are not this one's
    for old in ("manifest.json", "vocab_stats.json"):
        (out / old).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".tokenizer") as tmp:  # build aside, move in
        bpe_export.save_tokenizer(tok, Path(tmp))
        for f in Path(tmp).iterdir():
            f.replace(out / f.name)
    return write_manifest(out, "kmer-vocab", {"k": k, "tokenization": "non-overlapping",
                                              "pattern": f"[ACGT]{{{k}}}|[ACGTN]"}, [],
                          vocab_size=tok.get_vocab_size(), kmer=k)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kmer-vocab", help="write a tokenizer of non-overlapping k-mers")
    p.add_argument("--k", type=int, required=True, help=f"k-mer length (1 to {MAX_VOCAB_K})")
    p.add_argument("--out", required=True, help="tokenizer folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace a finished folder")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    m = write_kmer_vocab(args.k, args.out, args.overwrite)
    print(f"kmer-vocab: {args.k}-mers, {m['vocab_size']} tokens -> {args.out}")
    return 0
