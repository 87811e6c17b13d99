"""Variants per second of `groverlm score variants` (the BPE variant rule), CPU and GPU.

    python bench/score.py [--model runs/demo/pretrain/model] [--n 2000] [--data DIR]

Scores `--n` random SNVs of hg19 chr20 (55-63 Mb, the demo's held-out region) with 100 nt of flank,
one strand and both (--rc), at two batch sizes, on the CPU and (when there is one) the GPU, and
prints variants per second against the one-strand CPU run at the default batch size (the reference
in the same run). Quality does not matter here: the model's weights only set the speed, so without
--model a randomly initialised `tiny` model is built over a 600-cycle BPE vocabulary of 2 Mbp of
chr20 (in a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from groverlm import lazy
from groverlm.bpe.export import export_vocab
from groverlm.bpe.train import write_training
from groverlm.cli import guarded
from groverlm.fasta import Genome
from groverlm.models import build_config, load_tokenizer, new_mlm_model, save_model
from groverlm.score import Scorer, ScoringConfig, Variant, score_variants

torch = lazy.module("torch")  # loaded on first use: --help and a bad option need no torch

DATA = Path(os.environ.get("GROVERLM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def random_snvs(genome: Genome, chrom: str, start: int, end: int, n: int, seed: int = 0
                ) -> list[Variant]:
    rng = np.random.default_rng(seed)
    rec, out = genome[chrom], []
    while len(out) < n:
        p = int(rng.integers(start, end))
        ref = rec.sequence(p, p + 1)
        if ref in "ACGT":
            out.append(Variant(chrom, p + 1, ref, "ACGT".replace(ref, "")[int(rng.integers(3))]))
    return out


def random_tiny_model(genome: Genome, folder: Path) -> Path:
    """A randomly initialised `tiny` masked LM over a 600-cycle BPE vocabulary of chr20:55-57 Mb,
    saved in `folder` as `bpe train`, `bpe export` and `pretrain` would leave it."""
    fa = folder / "slice.fa"
    fa.write_text(">chr20_55M\n" + genome["chr20"].sequence(55_000_000, 57_000_000) + "\n")
    write_training(fa, folder / "bpe", 600)
    export_vocab(folder / "bpe", 600, folder / "vocab")
    tok = load_tokenizer(folder / "vocab")
    save_model(new_mlm_model(build_config("tiny", len(tok))), tok, folder / "model")
    return folder / "model"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--model", help="a model folder (e.g. the demo's); default: a random tiny one")
    ap.add_argument("--data", type=Path, default=DATA, help="folder holding hg19_chr20.fa.gz")
    ap.add_argument("--n", type=int, default=2000, help="SNVs per measurement")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error(f"--n {args.n}: need 1 or more")
    genome = Genome.read(args.data / "hg19_chr20.fa.gz")
    snvs = random_snvs(genome, "chr20", 55_000_000, 63_000_000, args.n)
    tmp = tempfile.TemporaryDirectory()
    model = args.model or random_tiny_model(genome, Path(tmp.name))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        base = ScoringConfig.batch_size * (16 if device == "cuda" else 1)
        for batch in (base, base * 4):
            for rc in (False, True):
                scorer = Scorer.load(model, ScoringConfig(device=device, batch_size=batch, rc=rc))
                todo = [Variant(**vars(v)) for v in snvs]
                score_variants(scorer, genome, todo[:50])  # warm-up
                t0 = time.perf_counter()
                score_variants(scorer, genome, todo)
                rows.append((device, batch, rc, args.n / (time.perf_counter() - t0)))
    ref = rows[0][3]
    print(f"{args.n} random chr20 SNVs, flank 100, margin 2; model {args.model or 'random tiny'};"
          f" threads {torch.get_num_threads()}")
    print("| device | batch | strands | variants/s | vs CPU one strand |")
    print("| --- | --- | --- | --- | --- |")
    for device, batch, rc, vps in rows:
        print(f"| {device} | {batch} | {2 if rc else 1} | {vps:,.0f} | {vps / ref:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
