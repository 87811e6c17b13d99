"""FASTA reading for every stage: plain, gzip or bgzip FASTA into A/C/G/T codes, contigs, soft-masking.

Reads a FASTA file record by record; writes nothing. Every later stage sees a record as uint8 codes
(A=0, C=1, G=2, T=3, anything else a valid IUPAC letter = 4) plus the intervals that were lowercase
(soft-masked repeats). Contigs are the maximal A/C/G/T runs: nothing is ever tokenized across an N.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
from numba import njit

from groverlm.errors import GroverError

BASES = "ACGT"
NON_ACGT = 4  # code of N and the other IUPAC letters: they split contigs
_INVALID = 255
IUPAC = "NRYSWKMBDHVU"  # U (RNA) is accepted as a non-ACGT letter rather than silently read as T
_BLOCK = 1 << 24  # bytes read at a time: keeps memory at one record, not one genome

_CODE = np.full(256, _INVALID, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    _CODE[ord(_b)] = _CODE[ord(_b.lower())] = _i
for _b in IUPAC:
    _CODE[ord(_b)] = _CODE[ord(_b.lower())] = NON_ACGT
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
_HEADER = re.compile(rb"^>", re.M)


class _Bases:
    """What `Record` and `HeldRecord` share: bases read by interval, on either strand."""

    name: str

    def __len__(self) -> int:
        raise NotImplementedError

    def _codes(self, start: int, end: int) -> np.ndarray:
        raise NotImplementedError

    def sequence(self, start: int = 0, end: int | None = None, strand: str = "+") -> str:
        """Uppercase sequence of [start, end); reverse complement when strand is '-'.

        >>> Record("r", encode("AACGTN")).sequence(1, 4, "-")
        'CGT'
        """
        end = len(self) if end is None else end
        if not 0 <= start <= end <= len(self):
            raise GroverError(f"interval {start}-{end} outside record {self.name} (length {len(self)})")
        seq = decode(self._codes(start, end))
        return reverse_complement(seq) if strand == "-" else seq


@dataclass
class Record(_Bases):
    """One FASTA record. `codes` is uint8 (0-3 A/C/G/T, 4 other IUPAC); `softmask` is (k, 2) int64
    half-open intervals that were lowercase in the file."""

    name: str
    codes: np.ndarray
    softmask: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    line: int = 1  # header's line in the file, for messages

    def __len__(self) -> int:
        return int(self.codes.size)

    def contigs(self, min_length: int = 1) -> np.ndarray:
        """(k, 2) int64 half-open intervals of the maximal A/C/G/T runs.

        >>> Record("r", encode("ACNNGT")).contigs().tolist()
        [[0, 2], [4, 6]]
        """
        return _runs_between(self.codes, 0, NON_ACGT, min_length)

    def acgt_prefix(self, start: int, end: int, bases: float) -> tuple[int, int]:
        """(stop, n): [start, stop) holds the first `bases` A/C/G/T bases of [start, end) and the N
        among them (stop is end where it holds fewer); n: its A/C/G/T bases. A budget in bases of
        sequence counts these, not N, which no token covers.

        >>> Record("r", encode("ACNNGTA")).acgt_prefix(0, 7, 3)
        (5, 3)
        >>> Record("r", encode("ACNNGTA")).acgt_prefix(1, 7, 9)
        (7, 4)
        """
        found = _runs_between(self.codes[start:end], 0, NON_ACGT, 1)
        held = np.cumsum(found[:, 1] - found[:, 0])  # A/C/G/T bases up to each run's end
        if not held.size or held[-1] <= bases:
            return end, int(held[-1]) if held.size else 0
        k = int(np.searchsorted(held, bases))  # the run where the budget runs out
        before = int(held[k - 1]) if k else 0
        return start + int(found[k, 0] + bases - before), int(bases)

    def _codes(self, start: int, end: int) -> np.ndarray:
        return self.codes[start:end]


@dataclass
class HeldRecord(_Bases):
    """Some intervals of one FASTA record (`Genome.read_windows`): its `len` is the whole record's,
    and `sequence` reads any stretch inside one held interval (a stretch outside them is a
    LookupError: the caller asked for the wrong windows)."""

    name: str
    length: int
    intervals: np.ndarray  # (k, 2) int64, merged and sorted; their bases are `codes`, in order
    codes: np.ndarray  # uint8 codes of the intervals, one after another
    line: int = 1  # header's line in the file, for messages
    offsets: np.ndarray = field(init=False, repr=False)  # where each interval starts in `codes`

    def __post_init__(self):
        sizes = self.intervals[:, 1] - self.intervals[:, 0]
        self.offsets = np.cumsum(sizes) - sizes

    @classmethod
    def hold(cls, rec: Record, windows: np.ndarray) -> HeldRecord:
        """The bases of `windows` ((k, 2) intervals, clipped to the record) of a decoded record.

        >>> h = HeldRecord.hold(Record("r", encode("AACCGGTT")), np.array([[6, 9], [1, 3], [2, 4]]))
        >>> len(h), h.intervals.tolist(), h.sequence(1, 4), h.sequence(7, 8, "-")
        (8, [[1, 4], [6, 8]], 'ACC', 'A')
        """
        iv = merge_intervals(np.clip(np.asarray(windows, dtype=np.int64).reshape(-1, 2), 0, len(rec)))
        iv = iv[iv[:, 1] > iv[:, 0]]
        codes = (np.concatenate([rec.codes[s:e] for s, e in iv.tolist()]) if len(iv)
                 else np.zeros(0, dtype=np.uint8))
        return cls(rec.name, len(rec), iv, codes, rec.line)

    def __len__(self) -> int:
        return self.length

    def _codes(self, start: int, end: int) -> np.ndarray:
        if start == end:
            return self.codes[:0]
        i = interval_holding(self.intervals, start, end)
        if i < 0:
            raise LookupError(f"{self.name}:{start}-{end} was not read: outside the windows held")
        at = int(self.offsets[i]) + start - int(self.intervals[i, 0])
        return self.codes[at : at + end - start]


def merge_intervals(iv: np.ndarray) -> np.ndarray:
    """Union of (k, 2) half-open intervals, sorted; touching intervals merge.

    >>> merge_intervals(np.array([[5, 8], [0, 2], [1, 3], [8, 9]])).tolist()
    [[0, 3], [5, 9]]
    """
    if iv.size == 0:
        return iv.reshape(0, 2).astype(np.int64)
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    ends = np.maximum.accumulate(iv[:, 1])
    new = np.ones(len(iv), dtype=bool)
    new[1:] = iv[1:, 0] > ends[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(iv)) - 1
    return np.stack([iv[first, 0], ends[last]], axis=1).astype(np.int64)


def group_intervals(intervals: Iterable[tuple[str, int, int]]) -> dict[str, np.ndarray]:
    """(chrom, start, end) triples as (k, 2) int64 intervals per chromosome, in the order given
    (the `windows` of `Genome.read_windows`).

    >>> {c: iv.tolist() for c, iv in group_intervals([("b", 5, 9), ("a", 0, 2), ("b", 1, 3)]).items()}
    {'b': [[5, 9], [1, 3]], 'a': [[0, 2]]}
    """
    found: dict[str, array] = {}  # 16 bytes an interval: a whole-genome VCF gives millions
    for chrom, start, end in intervals:
        found.setdefault(chrom, array("q")).extend((start, end))
    return {c: np.frombuffer(iv, dtype=np.int64).reshape(-1, 2) for c, iv in found.items()}


def interval_holding(iv: np.ndarray, start: int, end: int) -> int:
    """The index of the interval of merged, sorted (k, 2) `iv` that holds all of [start, end), or
    -1 when none does.

    >>> iv = np.array([[0, 3], [5, 9]])
    >>> interval_holding(iv, 5, 9), interval_holding(iv, 2, 6), interval_holding(iv, 3, 3)
    (1, -1, 0)
    """
    i = int(np.searchsorted(iv[:, 0], start, side="right")) - 1
    return i if i >= 0 and iv[i, 1] >= end else -1


def encode(seq: str | bytes) -> np.ndarray:
    """Codes of a sequence: A/C/G/T -> 0..3, other IUPAC letters -> 4; case is ignored.

    >>> encode("acgtN").tolist()
    [0, 1, 2, 3, 4]
    """
    raw = seq.encode() if isinstance(seq, str) else seq
    codes = _CODE[np.frombuffer(raw, dtype=np.uint8)]
    if (codes == _INVALID).any():
        bad = chr(raw[int(np.argmax(codes == _INVALID))])
        raise GroverError(f"unknown nucleotide letter {bad!r}")
    return codes


def decode(codes: np.ndarray) -> str:
    """Inverse of `encode` (code 4 becomes N)."""
    return np.frombuffer(b"ACGTN", dtype=np.uint8)[codes].tobytes().decode()


def write_record(fh: TextIO, name: str, codes: np.ndarray, width: int = 60) -> None:
    """Write one FASTA record to a text file: `>name`, then `width` bases a line (uppercase; N for
    every non-ACGT code).

    >>> out = io.StringIO(); write_record(out, "r", encode("acgtNA"), width=4); out.getvalue()
    '>r\\nACGT\\nNA\\n'
    """
    seq = decode(codes)
    fh.write(f">{name}\n")
    fh.writelines(seq[i : i + width] + "\n" for i in range(0, len(seq), width))


def reverse_complement(seq: str) -> str:
    """Reverse complement of an uppercase or lowercase sequence.

    >>> reverse_complement("AACGN")
    'NCGTT'
    """
    return seq.translate(_COMPLEMENT)[::-1]


def runs(flags: np.ndarray, min_length: int = 1) -> np.ndarray:
    """(k, 2) half-open intervals where a boolean array is True.

    >>> runs(np.array([0, 1, 1, 0, 1], dtype=bool)).tolist()
    [[1, 3], [4, 5]]
    """
    return _runs_between(flags.view(np.uint8) if flags.dtype == bool else flags, 1, 256, min_length)


@njit(cache=True)
def _runs_between(values, lo, hi, min_length):
    """(k, 2) intervals where lo <= values < hi, in one pass with no per-base temporaries (the
    reader calls it on whole chromosomes)."""
    n = 0
    inside = False
    for v in values:
        hit = lo <= v < hi
        if hit and not inside:
            n += 1
        inside = hit
    out = np.empty((n, 2), dtype=np.int64)
    k = 0
    start = 0
    inside = False
    for i in range(values.size + 1):
        hit = i < values.size and lo <= values[i] < hi
        if hit and not inside:
            start = i
        elif inside and not hit:
            out[k, 0] = start
            out[k, 1] = i
            k += 1
        inside = hit
    keep = (out[:, 1] - out[:, 0]) >= min_length
    return out[keep]


@njit(cache=True)
def _code_counts(codes):
    """(5,) int64 count of each code, with no per-base temporary (np.bincount made an int64 copy
    of the record: 8 bytes a base, 2 GB on chr1).

    >>> _code_counts(encode("ACGTNNA")).tolist()
    [2, 1, 1, 1, 2]
    """
    out = np.zeros(NON_ACGT + 1, dtype=np.int64)
    for c in codes:
        out[c] += 1
    return out


def _open(path: Path) -> io.BufferedIOBase:
    """Binary stream of the file's text, gunzipping gzip and bgzip (multi-member gzip) alike."""
    fh = open(path, "rb")
    if fh.read(2) == b"\x1f\x8b":
        fh.seek(0)
        return gzip.GzipFile(fileobj=fh)  # type: ignore[return-value]
    fh.seek(0)
    return fh  # type: ignore[return-value]


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line, text without the line end) of a plain or gzipped text file (BED, TSV, CSV).

    Errors name the file and line: missing file, binary data, corrupt or truncated gzip.
    """
    path = Path(path)
    try:
        raw = _open(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise GroverError(err.strerror or str(err), path) from None
    with raw:
        # utf-8-sig: a byte-order mark (spreadsheet exports) would become part of the first name
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict")
        n = 0
        try:
            for n, line in enumerate(text, 1):  # noqa: B007 (n is used in the except clauses)
                yield n, line.rstrip("\r\n")
        except UnicodeDecodeError:  # decoded ahead of the lines handed out: find the line itself
            raise GroverError("binary data, not a text file", path, _undecodable_line(path)) from None
        except (EOFError, OSError, zlib.error) as err:
            raise GroverError(f"corrupt or truncated gzip ({err})", path, n + 1) from None


def _readable_lines(path: Path) -> int:
    """Slow path, only on error: the lines of a corrupt or truncated gzip file before the damage.
    zlib by hand, in small pieces: gzip's reader drops all it decompressed in a failed read."""
    lines, member = 0, zlib.decompressobj(31)  # 31: a gzip header
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 12):
                while chunk:  # bgzip: one gzip member after another
                    if member.eof:
                        member = zlib.decompressobj(31)
                    lines += member.decompress(chunk).count(b"\n")
                    chunk = member.unused_data if member.eof else b""
    except (OSError, zlib.error):
        pass
    return lines


def table_fields(line: str) -> list[str]:
    """The fields of one line of a BED or TSV table: split on tabs when it holds one (an empty
    field inside stays one), else on whitespace; each stripped, and trailing empty fields dropped
    (a trailing tab or space is no column).

    >>> table_fields("chr1\t5\t+ \t"), table_fields("chr1 5  +")
    (['chr1', '5', '+'], ['chr1', '5', '+'])
    """
    if "\t" not in line:
        return line.split()
    fields = [f.strip() for f in line.split("\t")]
    while fields and not fields[-1]:
        fields.pop()
    return fields


def is_header(fields: list[str]) -> bool:
    """A column-header line of a BED or TSV table (`chrom start end ...`, `#chrom ...`)."""
    return bool(fields) and fields[0].lower().lstrip("#") in ("chrom", "chr", "chromosome")


def _undecodable_line(path: Path) -> int | None:
    """Slow path, only on error: the 1-based line of a text file that is not UTF-8."""
    try:
        with _open(path) as fh:
            for n, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return n
    except (EOFError, OSError, zlib.error):
        pass
    return None


def _blocks(path: Path) -> Iterator[tuple[bytes, int]]:
    """Whole lines of the file in large blocks, with the 1-based line number each block starts on."""
    line = 1
    pending = b""
    try:
        with _open(path) as fh:
            while True:
                block = fh.read(_BLOCK)
                if not block:
                    break
                data = pending + block
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                if cut:
                    yield data[:cut], line
                    line += data.count(b"\n", 0, cut)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise GroverError(err.strerror or str(err), path) from None
    except (EOFError, OSError, zlib.error) as err:  # gzip's truncated / corrupt stream errors
        # a failed read drops the block it was decompressing: count the lines it held the slow way
        raise GroverError(f"corrupt or truncated gzip after line {_readable_lines(path)} ({err})",
                          path) from None
    if pending:
        yield pending, line


class _LineCounter:
    """The 1-based line of positions in a block, asked in increasing order: each count starts
    where the last one ended, so a block is scanned once however many records it holds (counting
    from the block's start for every header took minutes on an assembly of many short scaffolds).

    >>> lines = _LineCounter(b">a\\nAC\\n>b\\nGT\\n", 10)
    >>> lines.at(6), lines.at(9)
    (12, 13)
    """

    def __init__(self, data: bytes, line: int):
        self.data, self.pos, self.line = data, 0, line

    def at(self, i: int) -> int:
        assert i >= self.pos, "positions are asked in increasing order"
        self.line += self.data.count(b"\n", self.pos, i)
        self.pos = i
        return self.line


def iter_records(path: str | Path, names: Collection[str] | None = None) -> Iterator[Record]:
    """Records of a FASTA file, one at a time (memory holds one record).

    `names`: only the records so named are decoded and yielded; the others are passed over as
    they are read (their letters unchecked), so that reading one chromosome of a genome costs
    that chromosome's decoding, not the genome's.

    Errors name the file and line: binary or non-FASTA input, a sequence line before any header, an
    empty file, a record with no sequence, lines ending in CR alone, a letter that is not IUPAC,
    duplicate record names, truncated gzip.
    """
    for rec in _scan(Path(path), names):
        if isinstance(rec, Record):
            yield rec


@dataclass(frozen=True)
class _Passed:
    """A record `_scan` read past without decoding: its name, length and header line."""

    name: str
    length: int
    line: int


def _scan(path: Path, names: Collection[str] | None) -> Iterator[Record | _Passed]:
    """Every record of the file in order: a `Record` when `names` is None or holds its name,
    else a `_Passed` (its bases counted, not kept)."""
    name: str | None = None
    keep = True
    header_line = 0
    first_seq_line = 0
    parts: list[bytes] = []
    passed = 0  # bases of a record read past
    seen: dict[str, int] = {}
    checked_binary = False

    def finish() -> Record | _Passed:
        if keep:
            return _make_record(path, name, header_line, first_seq_line, parts)
        if not passed:
            raise GroverError(f"record {name!r} has no sequence", path, header_line)
        assert name is not None
        return _Passed(name, passed, header_line)

    for data, line in _blocks(path):
        if not checked_binary:
            checked_binary = True
            data = data.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark (Windows editors)
            if b"\x00" in data[:65536]:
                raise GroverError("binary data, not a FASTA text file", path, 1)
        if (np.frombuffer(data, dtype=np.uint8) >= 128).any() or b"\x00" in data:
            _check_text(data, line, path)
        pos = 0
        lines = _LineCounter(data, line)
        starts = [m.start() for m in _HEADER.finditer(data)] + [len(data)]
        for start in starts:
            if start > pos:  # sequence lines between pos and the next header
                chunk = data[pos:start]
                if name is None:
                    if chunk.strip():
                        offset = len(chunk) - len(chunk.lstrip())
                        at = line + data.count(b"\n", 0, pos + offset)
                        raise GroverError("sequence line before any '>' header (not FASTA?)", path, at)
                elif not keep:  # the bases _make_record would keep: all but line ends and blanks
                    passed += len(chunk) - sum(chunk.count(c) for c in (b"\n", b"\r", b" ", b"\t"))
                else:
                    if not first_seq_line:
                        first_seq_line = lines.at(pos)
                    parts.append(chunk)
            if start == len(data):
                break
            eol = data.find(b"\n", start)
            eol = len(data) if eol < 0 else eol
            at = lines.at(start)
            if name is not None:
                yield finish()
            title = data[start + 1 : eol].decode("utf-8")  # _check_text: UTF-8 in headers only
            if "\r" in title.rstrip("\r"):  # the whole record on one "line"
                raise GroverError("lines end in CR alone (old Mac text); convert them to LF", path,
                                  at)
            title = title.strip()
            if not title:
                raise GroverError("header with no record name", path, at)
            name = title.split()[0]
            if name in seen:
                raise GroverError(f"duplicate record name {name!r} (first at line {seen[name]})", path, at)
            seen[name] = at
            keep = names is None or name in names
            header_line, first_seq_line, parts, passed = at, 0, [], 0
            pos = eol + 1
    if name is None:
        raise GroverError("empty FASTA: no '>' record found", path)
    yield finish()


def _check_text(data: bytes, line: int, path: Path) -> None:
    """Slow path, only for a block holding a byte outside ASCII: UTF-8 in a header line (`>seq2 µ
    desc`) is text; anywhere else, or not UTF-8, is an error naming its line."""
    arr = np.frombuffer(data, dtype=np.uint8)
    checked = -1  # the end of the last line checked: each line once, however many bytes it holds
    for i in map(int, np.flatnonzero((arr >= 128) | (arr == 0))):
        if i < checked:
            continue
        start = data.rfind(b"\n", 0, i) + 1
        end = data.find(b"\n", i)
        checked = len(data) if end < 0 else end
        text = data[start:checked]
        at = line + data.count(b"\n", 0, i)
        if not text.startswith(b">") or arr[i] == 0:
            raise GroverError("binary data, not a FASTA text file", path, at)
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            raise GroverError("a header that is not UTF-8 text", path, at) from None


def _make_record(path: Path, name: str | None, line: int, seq_line: int, parts: list[bytes]) -> Record:
    assert name is not None
    raw = b"".join(parts).translate(None, b"\r\n \t")
    if not raw:
        raise GroverError(f"record {name!r} has no sequence", path, line)
    arr = np.frombuffer(raw, dtype=np.uint8)
    codes = _CODE[arr]
    if _INVALID in codes:
        bad = int(np.argmax(codes == _INVALID))
        _raise_bad_letter(path, seq_line, parts, chr(arr[bad]))
    soft = _runs_between(arr, ord("a"), ord("z") + 1, 1)
    return Record(name=name, codes=codes, softmask=soft, line=line)


def _raise_bad_letter(path: Path, seq_line: int, parts: list[bytes], letter: str) -> None:
    """Slow path, only on error: find the line of the first letter that is not IUPAC."""
    for i, text in enumerate(b"".join(parts).split(b"\n")):
        clean = text.translate(None, b"\r \t")
        if (_CODE[np.frombuffer(clean, dtype=np.uint8)] == _INVALID).any():
            raise GroverError(f"unknown nucleotide letter {letter!r}", path, seq_line + i)
    raise GroverError(f"unknown nucleotide letter {letter!r}", path)


class Genome:
    """Records of a FASTA file looked up by name: all of them in memory (about 1 byte per base,
    `read`), or the bases of chosen windows alone (`read_windows`)."""

    def __init__(self, records: Sequence[Record | HeldRecord], path: Path | None = None):
        self.path = path
        self.records = {r.name: r for r in records}

    @classmethod
    def read(cls, path: str | Path) -> Genome:
        return cls(list(iter_records(path)), Path(path))

    @classmethod
    def read_windows(cls, path: str | Path, windows: Mapping[str, np.ndarray],
                     names: Collection[str] | None = None) -> Genome:
        """The genome's records (those in `names` when given) holding the bases of `windows`
        alone ((k, 2) intervals per record name, clipped to the record; those of other records
        ignored), each a `HeldRecord`. Read one record at a time, and a record without windows
        is not decoded: memory holds the largest record needed while reading, then the windows'
        bases (hg38: chr1's 0.25 GB, not 3.1 GB)."""
        needed = {c for c, iv in windows.items() if len(iv) and (names is None or c in names)}
        held: list[Record | HeldRecord] = []
        for rec in _scan(Path(path), needed):
            if names is not None and rec.name not in names:
                continue
            if isinstance(rec, Record):
                held.append(HeldRecord.hold(rec, windows[rec.name]))
            else:
                held.append(HeldRecord(rec.name, rec.length, np.zeros((0, 2), dtype=np.int64),
                                       np.zeros(0, dtype=np.uint8), rec.line))
        return cls(held, Path(path))

    def __getitem__(self, chrom: str) -> Record | HeldRecord:
        try:
            return self.records[chrom]
        except KeyError:
            raise GroverError(f"no record {chrom!r} in the genome", self.path) from None

    def __contains__(self, chrom: str) -> bool:
        return chrom in self.records

    def sequence(self, chrom: str, start: int, end: int, strand: str = "+") -> str:
        return self[chrom].sequence(start, end, strand)

    @property
    def lengths(self) -> dict[str, int]:
        return {n: len(r) for n, r in self.records.items()}


def summarize(path: str | Path) -> dict:
    """Per-record and total statistics: lengths, A/C/G/T counts, N runs, contigs, soft-masked bases."""
    rows = []
    for rec in iter_records(path):
        counts = _code_counts(rec.codes)
        n_runs = _runs_between(rec.codes, NON_ACGT, NON_ACGT + 1, 1)
        rows.append(
            {
                "name": rec.name,
                "length": len(rec),
                **{b: int(counts[i]) for i, b in enumerate(BASES)},
                "other": int(counts[NON_ACGT]),
                "n_runs": int(len(n_runs)),
                "longest_n_run": int((n_runs[:, 1] - n_runs[:, 0]).max()) if len(n_runs) else 0,
                "contigs": int(len(rec.contigs())),
                "softmasked": int((rec.softmask[:, 1] - rec.softmask[:, 0]).sum()),
            }
        )
    keys = ["length", *BASES, "other", "n_runs", "contigs", "softmasked"]
    total = {k: sum(r[k] for r in rows) for k in keys}
    total["records"] = len(rows)
    return {"path": str(path), "records": rows, "total": total}
