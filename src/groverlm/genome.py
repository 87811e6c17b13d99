"""Genome stage: `groverlm genome summary FASTA`: records, lengths, A/C/G/T counts, N runs, soft-masked bases.

In a run (`run`): reads the data section's genome and TSS list; writes RUN_DIR/genome/summary.json
and, with genome.chroms or genome.max_bp, the part of the genome the run uses (genome.fa) and the
TSSs on it (tss.bed). Its summary hands on those two files, which every later stage reads
(null when uncut: the data files themselves, groverlm.context.Context.genome); the runner knows
them by their contents (`handed_on`), so a stage that reads only the sequence is not redone for a
new TSS list. It also checks that
every annotation file the data section names (TSSs, CTCF peaks, repeats, CpG islands) has something
on the genome's records, so that hg19's defaults left on another genome fail here, not after
pretraining.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from groverlm.context import Context
from groverlm.errors import GroverError
from groverlm.fasta import BASES, iter_records, summarize, write_record
from groverlm.manifest import atomic_path, fingerprint, write_json, write_text
from groverlm.tasks.annotations import bed_chroms, check_on_genome, read_tss


@dataclass(frozen=True)
class GenomeConfig:
    """Genome stage: which part of the FASTA the run uses (all of it by default)."""

    chroms: tuple[str, ...] | None = None  # keep only these records, in this order (null: all)
    # keep the first max_bp bases of each record (a quick run on part of a chromosome); coordinates
    # are unchanged, so TSS and peak files still apply. null: whole records
    max_bp: int | None = None

    def __post_init__(self):
        if self.max_bp is not None and self.max_bp < 1:
            raise ValueError(f"max_bp must be at least 1, got {self.max_bp}")
        if self.chroms is not None and not self.chroms:
            raise ValueError("chroms is empty; use null for every record")
        if self.chroms is not None and len(set(self.chroms)) < len(self.chroms):
            twice = sorted({c for c in self.chroms if self.chroms.count(c) > 1})
            raise ValueError(f"chroms names {', '.join(twice)} more than once")


def run(cfg: Any, ctx: Context) -> dict[str, Any]:
    """Genome stage: summary of the FASTA; with chroms/max_bp, the part of it the run uses (and
    the TSSs that lie on it, as BED6, since the task builders reject TSSs beyond a record)."""
    fasta, tss, tss_format = ctx.data.genome, ctx.data.tss, ctx.config.data.tss_format
    cut = cfg.chroms is not None or cfg.max_bp is not None
    if cut:
        with atomic_path(ctx.out / "genome.fa") as tmp:
            write_part(fasta, tmp, cfg.chroms, cfg.max_bp)
        fasta = ctx.out / "genome.fa"
    summary = summarize(fasta)
    lengths = {r["name"]: r["length"] for r in summary["records"]}
    # the format read, not the one asked (auto): the tasks and the analyses read the list in it
    sites, tss_format = read_tss(tss, tss_format) if tss is not None else ([], tss_format)
    check_annotations(ctx, sites, lengths)
    write_json(ctx.out / "summary.json", summary)
    if cut and tss is not None:
        kept = sorted({(t.chrom, t.pos, t.strand) for t in sites
                       if t.pos < lengths.get(t.chrom, 0)})
        tss, tss_format = ctx.out / "tss.bed", "bed"
        write_text(tss, "".join(f"{c}\t{p}\t{p + 1}\ttss\t0\t{s}\n" for c, p, s in kept))
    total = summary["total"]
    # uncut: null, the data files as the config names them then (see Context.genome)
    return {"fasta": ctx.relative(fasta) if cut else None,
            "tss": ctx.relative(tss) if cut and tss is not None else None, "tss_format": tss_format,
            "records": total["records"], "length": total["length"],
            "acgt": sum(total[b] for b in "ACGT"), "contigs": total["contigs"]}


def handed_on(summary: dict[str, Any], ctx: Context) -> dict[str, str]:
    """What the later stages read of this stage (runner.Stage.handed_on), in two parts: the
    sequence (the FASTA's bytes), which every later stage reads, and the TSS list (its bytes and
    format), which only the tasks and the analyses read. So a new TSS list redoes those, not BPE,
    the corpus and pretraining, on an unchanged genome."""
    fasta = ctx.genome_file(summary["fasta"], ctx.data.genome)
    tss = ctx.genome_file(summary["tss"], ctx.data.tss)
    return {"sequence": fingerprint(fasta)["sha256"],
            "tss": "none" if tss is None else f"{fingerprint(tss)['sha256']} {summary['tss_format']}"}


def write_part(fasta: Path, out: Path, chroms: Sequence[str] | None, max_bp: int | None) -> None:
    """Write the records `chroms` of `fasta` (null: all), in that order, each cut to its first
    `max_bp` bases (null: whole), as FASTA into `out`. One record is in memory at a time (hg19's
    24 chromosomes held until written took 3 GB more than its largest): one read before the one due
    next (the file lists them in another order) waits in a file beside `out` until it is."""
    order = list(chroms) if chroms is not None else None
    parked: dict[str, Path] = {}  # records read before their turn, as FASTA text
    done = 0  # records of `order` written
    with open(out, "w") as fh, tempfile.TemporaryDirectory(dir=out.parent,
                                                           prefix=".genome-part") as park:
        for rec in iter_records(fasta):
            if order is None or rec.name == order[done]:
                write_record(fh, rec.name, rec.codes[:max_bp])
                done += 1
            elif rec.name in order:
                parked[rec.name] = Path(park) / f"{len(parked)}.fa"
                with open(parked[rec.name], "w") as part:
                    write_record(part, rec.name, rec.codes[:max_bp])
            del rec  # before the next one is read
            while order is not None and done < len(order) and order[done] in parked:
                with open(parked.pop(order[done])) as part:
                    shutil.copyfileobj(part, fh, 1 << 24)
                done += 1
            if order is not None and done == len(order):
                break  # the rest of the file holds none of them
    if order is not None and done < len(order):
        missing = [c for c in order[done:] if c not in parked]
        raise GroverError(f"genome.chroms: {', '.join(missing)} not in the genome", fasta)


def check_annotations(ctx: Context, sites: list, lengths: dict[str, int]) -> None:
    """Every annotation file the data section names must lie on the genome's records: the defaults
    are hg19's, and on another genome they would fail late (tasks, after pretraining) or, worse,
    label nothing. `sites`: the TSSs read from data.tss."""
    d = ctx.data
    named = [("data.tss", d.tss, {t.chrom for t in sites} if d.tss else None)]
    named += [(key, p, None) for key, p in [*(("data.ctcf_peaks", p) for p in d.ctcf_peaks),
                                            ("data.repeats", d.repeats), ("data.cpg", d.cpg)]]
    for key, path, chroms in named:
        if path is not None:
            check_on_genome(bed_chroms(path) if chroms is None else chroms, lengths, path,
                            f"check chromosome names, or name this genome's own file as {key} "
                            "(null: none; see groverlm.config.DataConfig)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("genome", help="inspect a FASTA genome")
    g = p.add_subparsers(dest="genome_command", metavar="ACTION", required=True)
    s = g.add_parser("summary", help="records, lengths, base counts, N runs, contigs")
    s.add_argument("fasta", help="FASTA, gzip or bgzip")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=summary)


def summary(args: argparse.Namespace) -> int:
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
