"""Tasks stage, genome-context tokenization: a window's tokens as BPE segmented the whole genome.

Reads a saved segmentation (`bpe train --save-tokens-at C`, folder `tokens/`) and the tokenizer
folder exported at the same cycle count; writes nothing. Tokenizing a 300 bp window on its own can
cut it differently from the genome-wide segmentation the model was pretrained on; this helper takes
the genome's own tokens over the window instead (`TokenizedGenome.covering`). A token straddling a
window edge is trimmed to the window, and the trimmed piece is re-tokenized with the BPE model, so
the tokens always spell exactly the window. On the - strand the token order is reversed and each
token reverse-complemented (re-tokenized when its reverse complement is not itself a token).
Fine-tuning uses it as an alternative to tokenizing each sequence alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from groverlm.bpe.tokens import TokenizedGenome
from groverlm.errors import GroverError
from groverlm.fasta import reverse_complement
from groverlm.tasks.common import load_bpe_tokenizer


class GenomeContextTokenizer:
    """Token ids of genomic windows in their genome-wide segmentation."""

    def __init__(self, tokens_dir: str | Path, vocab: str | Path):
        self.genome = TokenizedGenome.load(tokens_dir)
        self.tokenizer = load_bpe_tokenizer(vocab)
        manifest = Path(vocab) / "manifest.json"
        if manifest.exists():
            want = json.loads(manifest.read_text()).get("merges_sha256")
            if want and want != self.genome.merges_sha256:
                raise GroverError(f"the segmentation in {tokens_dir} was made with other merges "
                                  "than this vocabulary (merges_sha256 differs)", vocab)
        vocab_map = self.tokenizer.get_vocab()
        self._strings = {i: s for s, i in vocab_map.items()}
        self._ids = vocab_map

    def _piece(self, text: str) -> list[int]:
        """Ids for a piece of sequence: its own id when it is a token, else its BPE encoding."""
        if text in self._ids:
            return [self._ids[text]]
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, chrom: str, start: int, end: int, strand: str = "+") -> list[int]:
        """Token ids spelling [start, end) of `chrom` on `strand` (no [CLS]/[SEP]).

        Bases outside any contig (N runs) have no tokens and are skipped.
        """
        if end <= start:
            raise GroverError(f"empty window {chrom}:{start}-{end}")
        ids, starts = self.genome.covering(chrom, start, end)
        ids = np.asarray(ids)
        starts = np.asarray(starts, dtype=np.int64)
        pieces: list[str] = []
        for k, (tid, s) in enumerate(zip(ids.tolist(), starts.tolist(), strict=True)):
            text = self._strings[int(tid)]
            e = s + len(text)
            lo, hi = max(s, start), min(e, end)
            if k + 1 < len(starts) and starts[k + 1] < e:  # cannot happen in a valid segmentation
                raise GroverError(f"overlapping tokens at {chrom}:{s} in the segmentation")
            pieces.append(text[lo - s : hi - s])
        if strand == "-":
            pieces = [reverse_complement(p) for p in reversed(pieces)]
        out: list[int] = []
        for p in pieces:
            out += self._piece(p)
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self._strings[i] for i in ids)
