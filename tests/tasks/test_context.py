"""Genome-context tokenization spells every window exactly and keeps the genome's own tokens."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from groverlm.bpe.tokens import TokenizedGenome
from groverlm.errors import GroverError
from groverlm.fasta import reverse_complement
from groverlm.tasks.context import GenomeContextTokenizer


def test_windows_spelled_exactly(genome3_records, vocab):
    bpe, voc = vocab
    ctx = GenomeContextTokenizer(bpe / "tokens", voc)
    tg = TokenizedGenome.load(bpe / "tokens")
    rng = np.random.default_rng(0)
    for _ in range(40):
        chrom = str(rng.choice(["chr2", "chr3"]))
        start = int(rng.integers(0, 39000))
        end = start + int(rng.integers(1, 400))
        want = genome3_records[chrom].sequence(start, end)
        assert ctx.decode(ctx.encode(chrom, start, end, "+")) == want
        assert ctx.decode(ctx.encode(chrom, start, end, "-")) == reverse_complement(want)
        # tokens wholly inside the window are the genome's own tokens, unchanged
        ids, starts = tg.covering(chrom, start, end)
        inner = [int(i) for i, s, e in zip(ids, starts, np.append(starts[1:], 10**9),
                                           strict=True) if s >= start and e <= end]
        got = ctx.encode(chrom, start, end, "+")
        if inner:
            k = len(got)
            assert any(got[j:j + len(inner)] == inner for j in range(k - len(inner) + 1))


def test_differs_from_standalone_tokenization_somewhere(vocab):
    bpe, voc = vocab
    ctx = GenomeContextTokenizer(bpe / "tokens", voc)
    differ = 0
    for start in range(1000, 21000, 1000):
        seq = ctx.decode(ctx.encode("chr3", start, start + 300))
        alone = ctx.tokenizer.encode(seq, add_special_tokens=False).ids
        differ += alone != ctx.encode("chr3", start, start + 300)
    assert differ > 0


def test_refuses_another_vocabulary(tmp_path, vocab):
    bpe, voc = vocab
    other = tmp_path / "voc"
    shutil.copytree(voc, other)
    man = json.loads((other / "manifest.json").read_text())
    man["merges_sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(GroverError, match="other merges"):
        GenomeContextTokenizer(bpe / "tokens", other)
    ctx = GenomeContextTokenizer(bpe / "tokens", voc)
    with pytest.raises(GroverError, match="empty window"):
        ctx.encode("chr3", 10, 10)
