"""The source distribution: `python -m pytest` must run from an unpacked sdist as from a checkout,
so it holds every test file (conftest.py, the fixtures, tests/__init__.py) and what the tests read
(bench/, scripts/, configs/), and none of the caches a checkout keeps beside them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what an sdist is built from; MANIFEST.in says which of it goes in
SOURCES = ("pyproject.toml", "README.md", "MANIFEST.in", "src", "tests", "bench", "scripts", "configs")
# what the tests open outside the package: tests/ itself, bench/ (conftest.load_bench), scripts/
# (test_report), configs/ (test_config, test_runner)
NEEDED = ("tests", "bench", "scripts", "configs")


def files_under(root: Path, names: tuple[str, ...]) -> set[str]:
    """Every file below root/NAME for each name, as a '/'-joined path relative to root."""
    return {p.relative_to(root).as_posix() for name in names for p in (root / name).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_the_sdist_holds_every_test_and_what_the_tests_read(tmp_path):
    pytest.importorskip("setuptools")
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_symlink():  # configs/ links to src/groverlm/configs
            (tree / name).symlink_to(src.readlink())
        elif src.is_dir():
            # not *.egg-info: setuptools adds the files an old SOURCES.txt there lists
            shutil.copytree(src, tree / name,
                            ignore=shutil.ignore_patterns("__pycache__", ".cache", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, tree / name)
    expected = files_under(tree, NEEDED)
    # caches a checkout holds that must stay out
    (tree / "bench" / ".cache").mkdir()
    (tree / "bench" / ".cache" / "junk.npy").write_bytes(b"x")
    (tree / "tests" / "__pycache__").mkdir()
    (tree / "tests" / "__pycache__" / "conftest.cpython-311.pyc").write_bytes(b"x")
    code = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=tree,
                         capture_output=True, text=True, timeout=300, check=True)
    with tarfile.open(tmp_path / "dist" / out.stdout.split()[-1]) as tar:
        names = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    assert {"tests/__init__.py", "tests/conftest.py", "bench/mlm_common.py",
            "configs/mini.yaml"} <= expected  # the check is not empty
    assert sorted(expected - names) == []
    assert sorted(n for n in names if "__pycache__" in n or ".cache/" in n) == []
