"""Shared fixtures: tiny genomes written into tmp_path, and the real hg19 data when present."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from groverlm import fasta

# no test may reach a model hub: transformers and huggingface_hub read this at import
os.environ["HF_HUB_OFFLINE"] = "1"

DATA = Path(os.environ.get("GROVERLM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CHR20 = DATA / "hg19_chr20.fa.gz"
BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str):
    """bench/NAME.py as a module, to call its functions in-process (bench/ is no package)."""
    saved = list(sys.path)
    sys.path.append(str(BENCH))  # its scripts import their siblings (mlm_common) by name
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = saved
    return module


def random_dna(n: int, seed: int = 0, alphabet: str = "ACGT") -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list(alphabet), size=n))


HOLD = ("import sys, time; from groverlm.manifest import locked\n"
        "with locked(sys.argv[1], sys.argv[2]):\n    print('held', flush=True); time.sleep(120)")


@contextlib.contextmanager
def held_elsewhere(lock_file: Path, what: Path):
    """Another process holding a groverlm output lock (as a run still writing there would) for
    the block; yields its pid. It is killed at the end: the system drops its lock, the file stays."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file), str(what)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def sigkill_when_exists(proc: subprocess.Popen, path: Path, timeout: float) -> None:
    """SIGKILL `proc` as soon as `path` exists; fail if it ends first or `path` never appears."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            err = proc.communicate()[1] or ""
            err = err.decode() if isinstance(err, bytes) else err
            raise AssertionError(f"exited {proc.returncode} before {path} appeared: {err[-2000:]}")
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def write_fasta(path: Path, records: dict[str, str], width: int = 60, newline: str = "\n") -> Path:
    lines = []
    for name, seq in records.items():
        lines.append(f">{name} some description")
        lines += [seq[i : i + width] for i in range(0, len(seq), width)]
    path.write_bytes((newline.join(lines) + newline).encode())
    return path



def one_sequence_task(folder: Path, rows: int = 8) -> Path:
    """A GUE-format task whose every row, in every split and of both labels, is the same sequence:
    any model predicts one class for every test row (a tiny task's MCC 0, made certain)."""
    folder.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (folder / f"{split}.csv").write_text(
            "sequence,label\n" + "".join(f"{'ACGTTGCA' * 5},{i % 2}\n" for i in range(rows)))
    return folder


@pytest.fixture
def chr20() -> Path:
    if not CHR20.exists():
        pytest.skip(f"real data not found at {CHR20}")
    return CHR20


@dataclass
class Decoded:
    """What the FASTA reader decoded meanwhile: the records' names in order, and the most of
    their bases (`codes` arrays, views included) held at once."""

    names: list[str] = field(default_factory=list)
    alive: int = 0
    most: int = 0


@pytest.fixture
def decoded(monkeypatch) -> Decoded:
    """A spy on the FASTA reader's decoding: a stage that held the genome had every record alive
    at once; one reading a record at a time has the one it reads and, while the next is
    decoded, the one before."""
    seen = Decoded()
    make = fasta._make_record

    def gone():
        seen.alive -= 1

    def spy(*args):
        rec = make(*args)
        seen.names.append(rec.name)
        seen.alive += 1
        seen.most = max(seen.most, seen.alive)
        weakref.finalize(rec.codes, gone)
        return rec

    monkeypatch.setattr(fasta, "_make_record", spy)
    return seen
