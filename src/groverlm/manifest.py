"""Stage bookkeeping shared by every stage: atomic writes, input fingerprints and `manifest.json`.

A stage writes its outputs through `atomic_path`/`write_text`, then `write_manifest` last, so a folder
with a manifest is complete; a crash leaves either the old file or none, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from groverlm.errors import GroverError

MANIFEST = "manifest.json"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():  # a folder cannot be renamed over a folder
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Size and SHA-256 of an input file (or, for a folder, of its manifest or file listing)."""
    path = Path(path)
    if path.is_dir():
        inner = path / MANIFEST
        h = hashlib.sha256()
        if inner.exists():
            h.update(inner.read_bytes())
        else:
            for f in sorted(path.rglob("*")):
                if f.is_file():
                    h.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
        return {"path": str(path), "kind": "folder", "sha256": h.hexdigest()}
    if not path.is_file():
        from groverlm.models import is_hub_id

        if is_hub_id(path):  # a model named by its Hub id: the id is its identity
            return {"path": str(path), "kind": "hub"}
        raise GroverError("no such file", path)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def prepare_out(out: str | Path, overwrite: bool) -> Path:
    """Create the stage's output folder; refuse to replace a finished one without --overwrite."""
    out = Path(out)
    if (out / MANIFEST).exists() and not overwrite:
        raise GroverError("already holds a finished stage; pass --overwrite to replace it", out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_manifest(out: str | Path, stage: str, config: dict, inputs: list[str | Path],
                   seed: int | None = None, **extra: Any) -> dict:
    """Write `out/manifest.json`: stage, resolved config, input fingerprints, version, seed."""
    from groverlm import __version__

    manifest = {
        "stage": stage,
        "groverlm_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": seed,
        "config": config,
        "inputs": [fingerprint(p) for p in inputs],
        **extra,
    }
    write_json(Path(out) / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise GroverError("no manifest.json: not a finished groverlm stage folder", folder)
    return json.loads(path.read_text())


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL log; a truncated last line (a run still writing) is skipped."""
    out = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out
