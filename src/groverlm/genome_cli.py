"""`groverlm genome summary FASTA`: records, lengths, A/C/G/T counts, N runs, soft-masked bases."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("genome", help="inspect a FASTA genome")
    g = p.add_subparsers(dest="genome_command", metavar="ACTION", required=True)
    s = g.add_parser("summary", help="records, lengths, base counts, N runs, contigs")
    s.add_argument("fasta", help="FASTA, gzip or bgzip")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=summary)


def summary(args: argparse.Namespace) -> int:
    from groverlm.genome import BASES, summarize

    info = summarize(args.fasta)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    cols = ["length", *BASES, "other", "n_runs", "contigs", "softmasked"]
    print("record\t" + "\t".join(cols))
    for row in info["records"]:
        print(row["name"] + "\t" + "\t".join(str(row[c]) for c in cols))
    t = info["total"]
    print(f"total ({t['records']} records)\t" + "\t".join(str(t[c]) for c in cols))
    return 0
