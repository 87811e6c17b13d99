"""Vocabulary stage: `groverlm bpe train` and `groverlm bpe export`.

In a run (`run`): reads the genome stage's FASTA; writes RUN_DIR/bpe/train (a `bpe train` folder,
its segmentation saved at bpe.cycles) and RUN_DIR/bpe/vocab (that cycle count's export).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groverlm import lazy
from groverlm.context import Context
from groverlm.manifest import finished

# The trainer (numba) and the export (tokenizers, transformers) load on first use: config loading
# and `groverlm bpe --help` import this module for BpeConfig alone.
bpe_export = lazy.module("groverlm.bpe.export")
bpe_train = lazy.module("groverlm.bpe.train")


@dataclass(frozen=True)
class BpeConfig:
    """Vocabulary stage: genome-scale BPE, then the tokenizer at one cycle count."""

    merges: int = 5000  # merge cycles trained (GROVER trained 5000 and kept 600)
    cycles: int = 600  # cycles exported as the run's vocabulary; the genome's segmentation is saved
    chunk: int | None = None  # cut contigs into words of this many bp (null: whole contigs, GROVER)

    def __post_init__(self):
        if self.merges < 1:
            raise ValueError(f"merges must be at least 1, got {self.merges}")
        if not 1 <= self.cycles <= self.merges:
            raise ValueError(f"cycles must be between 1 and merges ({self.merges}), "
                             f"got {self.cycles}")


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Vocabulary stage: BPE on the genome (segmentation saved at `cycles`), then the export."""
    train, vocab = ctx.out / "train", ctx.out / "vocab"
    if not finished(train):
        # resume: the runner has checked that an interrupted attempt had this config and genome
        bpe_train.write_training(ctx.genome, train, cfg.merges, cfg.chunk, cfg.cycles,
                                 progress=ctx.progress, resume=True)
    if not finished(vocab):  # a half-made export (the runner's own folder) is made again
        bpe_export.export_vocab(train, cfg.cycles, vocab, overwrite=True)
    return {"cycles": cfg.cycles, "train": ctx.relative(train), "vocab": ctx.relative(vocab),
            **vocab_summary(vocab)}


def vocab_summary(vocab: Path) -> dict[str, Any]:
    """An exported vocabulary's statistics as a stage summary records them (also select_vocab's)."""
    return json.loads((vocab / "vocab_stats.json").read_text())["summary"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bpe", help="learn a BPE vocabulary on a genome; export any cycle count")
    g = p.add_subparsers(dest="bpe_command", metavar="ACTION", required=True)

    t = g.add_parser("train", help="exact genome-scale BPE, every merge cycle kept")
    t.add_argument("genome", help="FASTA, gzip or bgzip")
    t.add_argument("--merges", type=int, required=True, help="merge cycles to run")
    t.add_argument("--out", required=True, help="output folder (merges.tsv, manifest.json)")
    t.add_argument("--chunk", type=int, default=None, metavar="BP",
                   help="cut contigs into BP-long words (default: whole contigs, as GROVER)")
    t.add_argument("--save-tokens-at", type=int, default=None, metavar="C",
                   help="also save the genome's segmentation after C cycles (tokens/)")
    t.add_argument("--overwrite", action="store_true", help="replace a finished output folder")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--checkpoint-minutes", type=float, default=10.0, metavar="M",
                   help="save the training state every M minutes (default 10)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=train_command)

    e = g.add_parser("export", help="write a Hugging Face tokenizer for C cycles")
    e.add_argument("train_dir", help="a `bpe train` output folder")
    e.add_argument("--cycles", type=int, required=True, help="cycle count C")
    e.add_argument("--out", required=True, help="tokenizer folder to write")
    e.add_argument("--overwrite", action="store_true", help="replace a finished tokenizer folder")
    e.set_defaults(func=export_command)


def train_command(args: argparse.Namespace) -> int:
    tr = bpe_train.write_training(args.genome, args.out, args.merges, args.chunk, args.save_tokens_at,
                        args.overwrite, progress=not args.quiet, resume=args.resume,
                        checkpoint_minutes=args.checkpoint_minutes)
    print(f"bpe train: {tr.cycle} cycles over {tr.words.bases:,} bases; {tr.tokens:,} tokens "
          f"(mean {tr.words.bases / tr.tokens:.2f} nt) -> {args.out}/merges.tsv")
    return 0


def export_command(args: argparse.Namespace) -> int:
    s = bpe_export.export_vocab(args.train_dir, args.cycles, args.out, args.overwrite)
    print(f"bpe export: {args.cycles} cycles, {s['tokens']} tokens present, mean length "
          f"{s['mean_length_genome']:.2f} nt in the genome ({s['mean_length_vocab']:.2f} over the "
          f"vocabulary), longest {' '.join(s['longest'])}, CG token: "
          f"{'yes' if s['has_CG'] else 'no'}, start with A/T: {100 * s['start_A_or_T']:.0f}% "
          f"-> {args.out}")
    return 0
