"""How noisy is one masked-token evaluation? A pretrained model against the context table on slices
of its held-out samples, under several mask seeds.

Reads a `groverlm pretrain` model folder (its manifest names the corpus and the masking) and scores
it with the pretraining stage's own evaluation (`pretrain.evaluate_mlm`: the same sample order,
targets isolated at the evaluation rate, every one shown as [MASK]) on each slice of that order and
on the whole held-out split. Prints one table: model / context table / difference per slice and
mask seed. Writes nothing.

    python bench/eval_noise.py --model runs/demo/pretrain/model
    python bench/eval_noise.py --model M --slices 0:4096,4096:8192 --seeds 0,1,2 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch

from groverlm.args import comma_list, seed_list
from groverlm.cli import guarded
from groverlm.config import build_section
from groverlm.corpus import Corpus
from groverlm.errors import GroverError
from groverlm.models import load_model, load_tokenizer
from groverlm.pretrain import ModelConfig, evaluate_mlm, held_out, random_token_ids


def slice_arg(text: str) -> tuple[int, int | None]:
    """argparse type of a --slices item: START:END of the evaluation's sample order, or all.

    >>> slice_arg("0:512"), slice_arg("all")
    ((0, 512), (0, None))
    """
    if text == "all":
        return 0, None
    try:
        lo, hi = map(int, text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not START:END or all") from None
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= START < END")
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--model", type=Path, required=True, help="a `groverlm pretrain` model folder")
    ap.add_argument("--slices", type=comma_list(slice_arg, "START:END ranges or all"),
                    default="0:512,0:4096,4096:8192,8192:16384,all",
                    help="comma-separated START:END ranges of the evaluation's sample order, or all")
    ap.add_argument("--seeds", type=seed_list, default="0,1,2",
                    help="mask seeds")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="samples per batch (default: the run's; masks are drawn per batch)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        ap.error(f"--batch-size {args.batch_size}: need 1 or more")
    torch.set_num_threads(args.threads)
    path = args.model / "manifest.json"
    man = json.loads(path.read_text())["config"]
    fields = {k: v for k, v in man.items() if k in ModelConfig.__dataclass_fields__}
    cfg = build_section(ModelConfig, fields, ("pretrain", "model"), str(path))  # as torchrun ranks
    corpus = Corpus.open(man["corpus"])
    tok = load_tokenizer(corpus.tokenizer_path)
    seed = man["train"]["seed"]
    ev = held_out(corpus, tok, cfg, random_token_ids(corpus, tok), seed)  # as pretraining built it
    model = load_model(args.model).eval()
    batch = args.batch_size or man["train"]["batch_size"]
    beyond = [lo for lo, _ in args.slices if lo >= len(ev.order)]
    if beyond:
        raise GroverError(f"--slices: the held-out split has {len(ev.order):,} samples, none from "
                          f"{beyond[0]:,} on", man["corpus"])
    print(f"{args.model}: {len(ev.order):,} held-out samples; model / context table / difference, "
          "in % of targets")
    print("| samples | " + " | ".join(f"mask seed {s}" for s in args.seeds) + " |")
    print("|---|" + "---|" * len(args.seeds))
    for lo, hi in args.slices:
        hi = len(ev.order) if hi is None else hi
        cells = []
        for mask_seed in args.seeds:
            r = evaluate_mlm(model, contextlib.nullcontext, ev.data, ev.order[lo:hi], batch,
                             mask_seed, ev.unigram, ev.table)
            m, c = 100 * r["mlm_accuracy"], 100 * r["context_accuracy"]
            cells.append(f"{m:.2f} / {c:.2f} / {m - c:+.2f} ({r['masked_tokens']:,} targets)")
        print(f"| {lo:,}-{min(hi, len(ev.order)):,} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
