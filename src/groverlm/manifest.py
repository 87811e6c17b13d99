"""Stage bookkeeping shared by every stage: atomic writes, input fingerprints, `manifest.json`, the
"finished" check and the one resume guard.

A stage writes its outputs through `atomic_path`/`write_text`, then `write_manifest` last, so a folder
with a manifest is complete (`finished`); a crash leaves either the old file or none, never half of
one. A stage that continues an interrupted folder first calls `check_resume`, which records the
settings it started with (`settings.json`) and refuses to go on under others. A cached result (one
file a stage may recompute, such as one analysis of `groverlm analyze`) goes through the same
comparison in its cache form: `write_cached` records the settings inside the file, `cached` hands
the file back only when they are the current ones (else it is recomputed and replaced). Both
compare a path recorded beside its hash by the hash where asked (`located_by_hash`), so that a
folder moved or copied elsewhere (`mv runs/a runs/b`) resumes. While a
process writes a folder (a run, a stage function marked `writes_folder`) it holds FOLDER/.groverlm.lock
(`folder_lock`), so a second writer stops before touching it, anything inside it, or a folder
around it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import hashlib
import inspect
import itertools
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows has no flock: folders go unlocked there
    fcntl = None

from groverlm import __version__  # set before groverlm/__init__ imports anything
from groverlm.args import drop_added_defaults, drop_keys, volatile_keys
from groverlm.errors import GroverError
from groverlm.models import is_hub_id

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SETTINGS = "settings.json"  # the settings an unfinished folder was started with (check_resume)
CACHE_SETTINGS = "settings"  # the key of a cached record (`write_cached`) holding its settings
LOCK = ".groverlm.lock"  # held (flock) by the process writing a folder; gone when it is done

# lock file -> [open file, depth]: a process re-entering a folder it holds (a run's stages inside its
# run folder, a task's build and its write, each seed of a fine-tuning) takes it once
_held: dict[Path, list[Any]] = {}
# set by our launcher for the processes it starts (torchrun's ranks) to the JSON of `passed_locks`:
# the lock files its process holds, inside which they may write (rank 0 into RUN/pretrain/model)
PASSED_LOCKS = "GROVERLM_PASSED_LOCKS"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    _remove(tmp)  # a killed run's leftover (a later process may get the same id)
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():  # a folder cannot be renamed over a folder
            old = path.with_name(f".{path.name}.old{os.getpid()}")
            _remove(old)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:  # interrupted between the two renames: the old folder returns
                os.replace(old, path)
                raise
            shutil.rmtree(old)
        elif path.is_dir():  # else an IsADirectoryError naming the temporary file
            raise GroverError("is a folder: cannot write a file over it", path)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def clear_outputs(out: str | Path, parts: Iterable[Path]) -> None:
    """Forget a finished stage's outputs before it is redone (`--overwrite`): its manifest.json
    goes first, then each part (file or folder). In the other order a removal cut short (Ctrl-C
    while a model folder is deleted) left a folder that reads as finished with parts missing."""
    (Path(out) / MANIFEST).unlink(missing_ok=True)
    for part in parts:
        _remove(Path(part))


@contextlib.contextmanager
def locked(lock_file: str | Path, what: str | Path, walk: bool = False) -> Iterator[None]:
    """Hold `lock_file` (flock, exclusive) while writing `what`: a second groverlm process
    writing the same output (a rerun in another terminal while the first still runs) stops with
    one line instead of interleaving its checkpoints or rows with the first's. The system drops
    the lock when its process dies, however it dies, so a killed run never blocks its resume; the
    file itself is removed on the way out. Where the file system has no flock (some network
    mounts) the output goes unlocked. `walk`: `what` is the lock file's folder (`folder_lock`),
    whose lock files below are probed too (`_check_inside`)."""
    lock_file = Path(lock_file).resolve()
    if lock_file in _held:
        _held[lock_file][1] += 1
        try:
            yield
        finally:
            _held[lock_file][1] -= 1
        return
    # the folders made here (a table's new folder, score --out a/b/t.tsv), deepest first: a call
    # refused before any output (another holder, a bad input) leaves none of them behind
    made = list(itertools.takewhile(lambda p: not p.exists(),
                                    (lock_file.parent, *lock_file.parent.parents)))
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        fh = _acquire(lock_file, what) if fcntl is not None else None
        try:
            # ours first, then the others': checked before taking it, two processes starting
            # together (a run into RUN, pretrain --out RUN/pretrain/model) could each find the
            # other's lock not yet taken and both go on. Taken first, at least one of them sees
            # the other's and stops
            if fcntl is not None:
                _check_enclosing(lock_file, what)
                if walk:
                    _check_inside(lock_file, what)
            _held[lock_file] = [fh, 1]
            yield
        finally:
            _held.pop(lock_file, None)
            if fh is not None:
                lock_file.unlink(missing_ok=True)  # while still held: no one waits on this inode
                fh.close()
    finally:
        for folder in made:
            with contextlib.suppress(OSError):  # it holds output: kept
                folder.rmdir()


def _check_enclosing(lock_file: Path, what: str | Path) -> None:
    """Refuse `what` while another process holds a folder around it (`groverlm run` still reading
    RUN/pretrain/model in its fine-tuning stage, and `groverlm pretrain --out RUN/pretrain/model
    --overwrite` would delete it under the run). Each enclosing folder's existing lock file is
    probed (`_holder`), none made; a file no one holds is a killed run's leftover. Exempt: the
    folders this process holds, and those its launcher holds and passed on to it
    (`passed_locks`)."""
    for folder in lock_file.parents:  # the resolved path: each enclosing folder once, up to /
        enclosing = folder / LOCK
        if enclosing == lock_file:
            continue
        holder = _holder(enclosing)
        if holder is not None and enclosing not in _passed_on(holder):
            raise GroverError(f"in use by another groverlm process (pid {holder or '?'}); wait for "
                              f"it to end (or stop it) before writing {what} inside it", folder)


def _check_inside(lock_file: Path, what: str | Path) -> None:
    """Refuse to write the folder of `lock_file` while another process writes something inside it
    (`groverlm pretrain --out RUN/pretrain/model`, `groverlm score --out RUN/score/t.tsv`): a new
    `groverlm run` into RUN, or a stage command's --overwrite of RUN, would otherwise run its
    stages for hours before meeting it, or delete it under the writer. Each lock file below is probed
    (`_holder`). Only output folders are walked (`folder_lock`; a file's lock has nothing below
    it), so a score table written beside a genome cache never walks the cache."""
    for inner in _locks_inside(lock_file.parent):
        holder = _holder(inner) if inner != lock_file else None
        if holder is not None:
            raise GroverError(f"in use by another groverlm process (pid {holder or '?'}); wait for "
                              f"it to end (or stop it) before writing {what} around it",
                              inner.parent)


def _locks_inside(folder: Path) -> list[Path]:
    """The lock files below `folder`, at any depth, sorted: folders' (LOCK) and files' (`file_lock`:
    .NAME.lock); linked folders are not followed (what they hold is not inside)."""
    return sorted(Path(root) / name for root, _, names in os.walk(folder) for name in names
                  if name.startswith(".") and name.endswith(".lock"))


def _holder(lock_file: Path) -> str | None:
    """The pid (as the file holds it; '' when unreadable) of the other process holding
    `lock_file`; None when no one else does: no such file, one no one holds (a killed run's
    leftover), no flock on this file system, or one this process holds. The probe is a shared,
    non-blocking flock dropped at once, so two probes do not refuse each other."""
    if lock_file in _held:
        return None
    try:
        fh = open(lock_file)
    except OSError:  # none (nearly always), or a folder we may not read
        return None
    with fh:  # closing it drops the probe's lock
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):  # no flock on this file system
                return None
        return fh.read().strip()


def passed_locks() -> dict[str, str]:
    """The environment entry our launcher adds for the processes it starts (torchrun's ranks): the
    lock files this process holds, with its pid, so that they may write inside those folders while
    it holds them (they still may not take those locks themselves, nor write inside others')."""
    return {PASSED_LOCKS: json.dumps({"pid": os.getpid(), "locks": [str(p) for p in _held]})}


def _passed_on(holder: str) -> set[Path]:
    """The lock files the launcher that started this process passed on (`passed_locks`), while
    that launcher (pid `holder`) still holds them; none for any other holder or a bad entry."""
    try:
        passed = json.loads(os.environ.get(PASSED_LOCKS) or "{}")
        return {Path(p) for p in passed["locks"]} if str(passed["pid"]) == holder else set()
    except (ValueError, KeyError, TypeError):
        return set()


def _acquire(lock_file: Path, what: str | Path) -> Any:
    """The open, flocked `lock_file` with our pid in it; a GroverError naming the holder's pid
    when another process holds it; None where the file system cannot lock."""
    while True:
        fh = open(lock_file, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                log.info("%s: no lock on this file system (%s); writing unlocked", what, err)
                return None
            raise GroverError(f"in use by another groverlm process (pid {holder or '?'}); wait "
                              f"for it to end (or stop it) before writing here", what) from None
        try:  # the holder before removed the file between our open and flock: take a new one
            same = os.stat(lock_file).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            fh.truncate(0)
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            return fh
        fh.close()


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """`locked` for an output folder (FOLDER/.groverlm.lock), made if missing; the folders this
    call made and left empty (a refusal before any output) are removed again."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GroverError("exists and is not a folder", folder)
    with locked(folder / LOCK, folder, walk=True):
        yield folder


def file_lock(out: str | Path) -> contextlib.AbstractContextManager[None]:
    """`locked` for an output file written in steps (a score table's OUT.partial, embed's partial
    array): .OUT.lock beside it, so two runs into one OUT cannot interleave their chunks."""
    out = Path(out)
    return locked(out.with_name(f".{out.name}.lock"), out)


def remove_folder(folder: str | Path) -> None:
    """`shutil.rmtree`, holding every groverlm lock inside the folder meanwhile: a part another
    process still writes (a stage command's --out inside a run's stage folder, a score table
    there) stops the removal with one line before anything is deleted, and no one takes it again
    halfway.

    The folder is first renamed aside (.NAME.removing) in one step, then deleted: a removal
    killed midway (a pretraining folder takes seconds) left the folder's manifest.json beside a
    part of its output, a finished stage to the next run. What a killed call left aside goes with
    the next call for the same folder, whether the folder exists then or not."""
    folder = Path(folder)
    aside = folder.with_name(f".{folder.name}.removing")
    _remove(aside)
    if not folder.exists():
        return
    with contextlib.ExitStack() as held:
        for lock_file in _locks_inside(folder):
            held.enter_context(locked(lock_file, lock_file.parent))
        os.replace(folder, aside)
        shutil.rmtree(aside)


def writes_folder(fn):
    """Decorate a stage function whose parameter `out` is the folder it writes: the call holds
    that folder's lock (`folder_lock`), whether the runner or a command calls it."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with folder_lock(signature.bind(*args, **kwargs).arguments["out"]):
            return fn(*args, **kwargs)
    return wrapper


def read_json(path: str | Path) -> dict[str, Any]:
    """A JSON object the project wrote (a manifest, settings, a cached record); a one-line error
    when it is damaged (a hand edit, a disk that filled up) rather than a traceback."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise GroverError(f"not valid JSON ({err})", path) from None
    if not isinstance(obj, dict):
        raise GroverError("not a JSON object", path)
    return obj


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# an array holding only numbers, as json.dumps(indent=2) spreads it over one line per element
_NUMBER_ARRAY = re.compile(r"\[\s+(-?[0-9][-+0-9.eE]*(?:,\s+-?[0-9][-+0-9.eE]*)*)\s+\]")


def write_json(path: str | Path, obj: Any) -> None:
    """`obj` as indented JSON, atomically; arrays of numbers stay on one line, so that per-row
    predictions and confusion matrices read as rows (and a 5,000-row test set is not 5,000 lines).

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json(p, {"m": [[1, 2], [3, -4.5e-06]], "s": ["a", "b"]}); print(p.read_text(), end="")
    {
      "m": [
        [1, 2],
        [3, -4.5e-06]
      ],
      "s": [
        "a",
        "b"
      ]
    }
    """
    text = json.dumps(obj, indent=2, sort_keys=False)
    text = _NUMBER_ARRAY.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(","))
                             + "]", text)
    write_text(path, text + "\n")


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Size and SHA-256 of an input file (or, for a folder, of its manifest, else of every file's
    name and contents)."""
    path = Path(path)
    if path.is_dir():
        inner = path / MANIFEST
        h = hashlib.sha256()
        if inner.exists():
            h.update(inner.read_bytes())
            sha = h.hexdigest()
        else:  # every file's name and bytes: another checkpoint of the same shape differs
            sha = contents_sha256(path)
        return {"path": str(path), "kind": "folder", "sha256": sha}
    if not path.is_file():
        if is_hub_id(path):  # a model named by its Hub id: the id is its identity
            return {"path": str(path), "kind": "hub"}
        raise GroverError("no such file", path)
    h = hashlib.sha256()
    _hash_file(path, h)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": h.hexdigest()}


def input_record(item: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A manifest's record of one input: the fingerprint of a path, or a record already made (a
    genome hashed once for several parts, the digest of what a stage hands on)."""
    return item if isinstance(item, dict) else fingerprint(item)


def contents_sha256(folder: str | Path, skip: tuple[str, ...] = ()) -> str:
    """SHA-256 of every file's name, size and bytes under a folder, less the top-level files
    named in `skip`."""
    folder, h = Path(folder), hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and str(f.relative_to(folder)) not in skip:
            h.update(f"{f.relative_to(folder)}:{f.stat().st_size}:".encode())
            _hash_file(f, h)
    return h.hexdigest()


def model_sha256(model_dir: str | Path) -> str | None:
    """What identifies a model folder's weights in resume settings (its path does not: a folder
    retrained in place would mix two models' results); None for a Hub id."""
    return fingerprint(model_dir).get("sha256")


# resume settings that name their model as `model` (its path or Hub id) beside `model_sha256`:
# the model compared by its weights' hash, not by where it was (`located_by_hash`)
MODEL_BY_HASH = {"model": "model_sha256"}


def merges_sha256_of(folder: str | Path, _depth: int = 0) -> str | None:
    """The BPE merges fingerprint of a vocabulary or model folder, when its manifests say it: a `bpe
    export` folder records it, and so do the corpus and the model made from it and our fine-tuned
    models; older corpora and models through the paths of their inputs (absolute: not found in a
    run folder moved since). None when unknown (a k-mer vocabulary, a folder without manifest)."""
    path = Path(folder) / MANIFEST
    if _depth > 4 or not path.exists():
        return None
    try:
        m = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if m.get("merges_sha256"):
        return m["merges_sha256"]
    stage, config = m.get("stage"), m.get("config") or {}
    if stage == "pretrain" and config.get("corpus"):
        return merges_sha256_of(config["corpus"], _depth + 1)
    if stage == "corpus" and m.get("inputs"):
        return merges_sha256_of(m["inputs"][0]["path"], _depth + 1)
    return None


def _hash_file(path: Path, h) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)


def finished(folder: str | Path) -> bool:
    """A stage function's output folder is complete (its manifest is written last)."""
    return (Path(folder) / MANIFEST).is_file()


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict with dotted keys (lists and other values are leaves).

    >>> flatten({"a": {"b": 1, "c": [2]}, "d": None})
    {'a.b': 1, 'a.c': [2], 'd': None}
    """
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each dotted key whose value differs, as `key: old -> new` (None where a side lacks it).

    >>> settings_diff({"a": {"b": 1}, "c": 0}, {"a": {"b": 2}, "c": 0})
    ['a.b: 1 -> 2']
    """
    a, b = flatten(old), flatten(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]


def check_resume(folder: str | Path, settings: dict[str, Any], *, name: str = SETTINGS,
                 saved: dict[str, Any] | None = None,
                 hint: str = "pass --overwrite to start again",
                 by_hash: Mapping[str, str] | None = None) -> None:
    """The one resume guard: refuse to continue `folder` under settings other than its first ones
    (finished parts made under the old ones would be mixed with new ones).

    The first call records `settings` (as JSON holds them) in `folder/name`; a later one compares
    them with the record and raises a one-line GroverError naming the folder and each changed
    dotted key. `saved`: settings recorded elsewhere (a checkpoint's state) to compare with
    instead; nothing is written then. Pass `args.stable(cfg)`, not `asdict(cfg)`, so that the
    fields marked `args.volatile` (devices, threads, ...) may change between calls. `by_hash`:
    the settings that are paths, compared by the hash recorded beside them (`located_by_hash`),
    so that an interrupted folder moved or copied elsewhere resumes.
    """
    folder = Path(folder)
    if saved is None:
        path = folder / name
        if not path.is_file():
            write_json(path, settings)
            return
        saved = read_json(path)
    diff = changed_settings(saved, settings, by_hash)
    if diff:
        raise GroverError(f"cannot resume: started with other settings ({'; '.join(diff)}); {hint}",
                          folder)


def changed_settings(saved: Any, settings: dict[str, Any],
                     by_hash: Mapping[str, str] | None = None) -> list[str]:
    """The one comparison behind `check_resume` and `cached`: what differs between the `saved`
    settings (as read back from JSON) and `settings` (compared as JSON holds them: tuples as
    lists); empty when nothing does. `by_hash`: as `located_by_hash`.

    >>> changed_settings({"ks": [1, 2], "lr": 0.1}, {"ks": (1, 2), "lr": 0.2})
    ['lr: 0.1 -> 0.2']
    """
    now = json.loads(json.dumps(settings))
    if by_hash:
        saved = located_by_hash(saved, now, by_hash)
    if saved == now:
        return []
    diff = settings_diff(saved, now) if isinstance(saved, dict) else []
    return diff or [f"{saved!r} -> {now!r}"]


# the settings of a result made from input files (a partial score table, an analysis): `inputs`,
# a list of their fingerprint records (`fingerprint`), each compared by its SHA-256 and not by the
# path it had then (`located_by_hash`)
INPUTS_BY_HASH = {"inputs.*.path": "sha256"}


def located_by_hash(saved: Any, now: Any, by_hash: Mapping[str, str]) -> Any:
    """`saved` settings (as read back from JSON) with each path setting named in `by_hash`
    compared by the hash recorded beside it, to be compared with `now` (as JSON holds it).

    `by_hash` maps the dotted key of a setting that is a path (`*`: every entry of the dict or list
    there) to the name of its hash's key in the same dict. Where `saved` and `now` record the same
    hash, the path is taken as now's: the same model or file at another place (a run folder moved
    with `mv runs/a runs/b`, or copied from a cluster) resumes; another hash still differs, and
    the paths are shown beside it. A record from before the hash (none recorded) is given now's,
    so that its path alone is compared: an older folder still resumes where it is. A hash
    recorded as None (a model named by its Hub id) leaves the path, the id, compared.

    >>> located_by_hash({"model": "/a/m", "model_sha256": "x1"},
    ...                 {"model": "/b/m", "model_sha256": "x1"}, {"model": "model_sha256"})
    {'model': '/b/m', 'model_sha256': 'x1'}
    >>> located_by_hash({"inputs": [{"path": "a/g.fa"}]}, {"inputs": [{"path": "b/g.fa",
    ...                 "sha256": "f0"}]}, INPUTS_BY_HASH)
    {'inputs': [{'path': 'a/g.fa', 'sha256': 'f0'}]}
    """
    saved = json.loads(json.dumps(saved))  # a copy: the caller's record is left as it was
    for key, digest in by_hash.items():
        _locate(saved, now, key.split("."), digest)
    return saved


def _locate(saved: Any, now: Any, keys: list[str], digest: str) -> None:
    """`located_by_hash` for one path setting, at `keys` below `saved` and `now` (in place)."""
    first, *rest = keys
    if isinstance(saved, list) and isinstance(now, list) and first == "*":
        pairs = list(zip(saved, now, strict=False))  # lists of other lengths differ anyway
    elif not isinstance(saved, dict) or not isinstance(now, dict):
        return
    elif first == "*":
        pairs = [(saved[k], now[k]) for k in saved if k in now]
    elif rest:
        pairs = [(saved.get(first), now.get(first))]
    else:
        if digest not in saved and digest in now:  # recorded before the hash: the path alone
            saved[digest] = now[digest]
        elif saved.get(digest) is not None and saved[digest] == now.get(digest) and first in now:
            saved[first] = now[first]
        return
    for a, b in pairs:
        _locate(a, b, rest, digest)


def cached(path: str | Path, settings: dict[str, Any], by_hash: Mapping[str, str] | None = None,
           log_why: bool = True) -> dict[str, Any] | None:
    """The resume guard in its cache form: the JSON record at `path` (written by `write_cached`)
    when it was made under `settings`, to be reused; None when there is none or it was made under
    others, to be recomputed and replaced (then the changed keys are logged, if `log_why`). Unlike
    `check_resume`, other settings are no error: a cached result is only ever replaced whole.
    Pass `args.stable(cfg)`, so that volatile fields (devices, batch sizes) keep the record;
    `by_hash` (`located_by_hash`; `INPUTS_BY_HASH` for a list of input fingerprints), so that a
    record moved or copied with its inputs is reused.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = read_json(path)
    except GroverError as err:  # a damaged cache is only ever recomputed
        if log_why:
            log.info("%s: recomputing it", err)
        return None
    diff = (changed_settings(record[CACHE_SETTINGS], settings, by_hash) if CACHE_SETTINGS in record
            else ["none recorded"])
    if diff:
        if log_why:
            log.info("%s was made under other settings (%s): recomputing it", path,
                     "; ".join(diff))
        return None
    return record


def write_cached(path: str | Path, settings: dict[str, Any], record: dict[str, Any]) -> None:
    """Write `record` to `path` (atomically) with the settings it was made under, for `cached`."""
    write_json(path, {CACHE_SETTINGS: settings, **record})


def keep_part(folder: str | Path, config: dict[str, Any],
              inputs: Sequence[str | Path | dict[str, Any]], settings: Any = None,
              **recorded: Any) -> bool:
    """Whether a finished part of a run's stage folder (a task, a fine-tuning) was made as it
    would be made now, to be kept: its manifest's config equal to `config`, the SHA-256s of its
    inputs to those of `inputs` (paths, or fingerprint records already made: a genome is hashed
    once for every task) and each `recorded` manifest field to its value. `settings`: the config
    dataclass whose fields `config` holds (a ClassifierConfig): its volatile fields, which change
    no result, are not compared, nor a field added to it since the part was made, at its default
    (`args.drop_added_defaults`: what the part was made with). A setting that names one of the
    inputs (a model or task folder, as a stage's `made_from` records its path) is compared as
    that input, by its SHA-256: a run folder moved or copied elsewhere keeps its parts, and
    another model or task folder is still another input. A finished part made otherwise is
    removed (the changes logged), to be made again; an unfinished one is left to its maker
    (False). The runner hands a stage whose parts are checked so its folder whatever changed
    (runner.Stage.checks_parts): a part kept unchecked would be a stale result reported as this
    run's."""
    folder = Path(folder)
    if not finished(folder):
        return False
    made = read_manifest(folder)
    keys = volatile_keys(type(settings)) if settings is not None else ()
    old = drop_keys(made.get("config") or {}, keys)
    new = drop_added_defaults(drop_keys(json.loads(json.dumps(config)), keys), old, settings)
    old_inputs = [i for i in made.get("inputs", []) if isinstance(i, dict)]
    new_inputs = [input_record(i) for i in inputs]
    then = {"config": _inputs_named(old, old_inputs),
            "inputs": [_input_identity(i) for i in old_inputs],
            **{k: made.get(k) for k in recorded}}
    now = {"config": _inputs_named(new, new_inputs),
           "inputs": [_input_identity(i) for i in new_inputs],
           **recorded}
    changed = changed_settings(then, now)
    if not changed:
        return True
    log.info("%s was made from other settings or inputs (%s): making it again", folder,
             "; ".join(changed))
    remove_folder(folder)
    return False


def _input_identity(record: dict[str, Any]) -> str | None:
    """What identifies an input in `keep_part`: its SHA-256; a model named by its Hub id has none,
    the id is its identity (`fingerprint`)."""
    return record.get("sha256") or (record.get("path") if record.get("kind") == "hub" else None)


def _inputs_named(config: dict[str, Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """`config` with each top-level setting that is the path of one of `inputs` (their fingerprint
    records) as that input's place among them (`input 1`), for `keep_part` to compare it by the
    input's identity, not by where the input was then.

    >>> _inputs_named({"task_dir": "/r/tasks/ctcf", "lr": 0.1}, [{"path": "/r/tasks/ctcf"}])
    {'task_dir': 'input 0', 'lr': 0.1}
    """
    place = {i["path"]: n for n, i in reversed(list(enumerate(inputs))) if "path" in i}
    return {k: f"input {place[v]}" if isinstance(v, str) and v in place else v
            for k, v in config.items()}


def remove_other_parts(out: str | Path, parts: Iterable[str | Path]) -> None:
    """Remove every folder in a run's stage folder `out` that is neither one of its `parts` nor
    holds one (finetune/scratch): a part no longer asked for (a task no longer built, a control
    no longer run), which the report and `groverlm compare` would read as this run's (they read
    every metrics.json under a stage folder). Files (the runner's records) stay."""
    out, keep = Path(out), {Path(p) for p in parts}
    holders = {a for p in keep for a in p.parents}
    for d in sorted(out.iterdir()) if out.is_dir() else []:
        if d.is_dir() and d not in keep:
            if d in holders:
                remove_other_parts(d, keep)
            else:
                remove_folder(d)


def prepare_out(out: str | Path, overwrite: bool, resumable: bool = True) -> Path:
    """Create the stage's output folder; refuse to replace a finished one without --overwrite.
    A stage that never resumes (`resumable` False: a tokenizer export) also refuses a folder with
    files but no manifest.json: someone else's (a downloaded model, `--out .`), not an attempt."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GroverError("exists and is not a folder", out)
    if finished(out) and not overwrite:
        raise GroverError("already holds a finished stage; pass --overwrite to replace it", out)
    if not resumable and not overwrite and out.is_dir() and any(
            f.name != LOCK for f in out.iterdir()):
        raise GroverError("holds files but no manifest.json (not a folder groverlm wrote); pass "
                          "--overwrite to write into it anyway", out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_manifest(out: str | Path, stage: str, config: dict,
                   inputs: list[str | Path | dict[str, Any]], seed: int | None = None,
                   **extra: Any) -> dict:
    """Write `out/manifest.json`: stage, resolved config, input fingerprints (of the paths given;
    a dict is a fingerprint record already made), version, seed."""
    manifest = {
        "stage": stage,
        "groverlm_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seed": seed,
        "config": config,
        "inputs": [input_record(p) for p in inputs],
        **extra,
    }
    write_json(Path(out) / MANIFEST, manifest)
    return manifest


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise GroverError("no manifest.json: not a finished groverlm stage folder", folder)
    return read_json(path)


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL log; a line that is not a JSON object is skipped (the truncated last line
    of a run still writing, or of one killed while appending)."""
    out = []
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise GroverError("binary data, not a JSONL log", path) from None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def write_tsv(path: str | Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """A tab-separated file with a header row, written aside then renamed; a cell holding a tab,
    a line end or a quote is quoted (csv), so rows stay rows; floats to 6 significant digits, NaN
    empty."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        _write_rows(fh, [columns], None)
        _write_rows(fh, rows, columns)


def _write_rows(fh: Any, rows: Sequence[Any], columns: Sequence[str] | None) -> None:
    """TSV rows (`write_tsv`'s cells) to an open text file; `columns` None: rows of cells as given."""
    w = csv.writer(fh, delimiter="\t", lineterminator="\n")
    for r in rows:
        w.writerow(r if columns is None else
                   ["" if isinstance(r.get(c), float) and math.isnan(r[c])
                    else f"{r[c]:.6g}" if isinstance(r.get(c), float) else r.get(c, "")
                    for c in columns])


class PartialTable:
    """A TSV (as `write_tsv` writes it) that a long run writes a chunk of rows at a time, so that a
    run stopped midway resumes where it stopped: the rows go to OUT.partial, and OUT.partial.json
    records the settings they were made under, the items done and the file's length after them (a
    kill in mid-append is cut back to that length); `finish` renames the file to OUT. A partial
    file made under other settings starts again (OUT itself is only ever replaced by `finish`).
    `extra` carries running totals across a resume (what the rows do not hold). `by_hash`: the
    settings' paths compared by their hashes (`located_by_hash`; `INPUTS_BY_HASH`), so that a
    table moved or copied with its inputs resumes."""

    def __init__(self, out: str | Path, columns: Sequence[str], settings: dict[str, Any],
                 by_hash: Mapping[str, str] | None = None):
        self.out, self.columns, self.settings = Path(out), list(columns), settings
        self.path = self.out.with_name(self.out.name + ".partial")
        self.progress = self.out.with_name(self.out.name + ".partial.json")
        saved = cached(self.progress, settings, by_hash) if self.path.is_file() else None
        if saved is not None and self.path.stat().st_size >= saved.get("bytes", math.inf):
            os.truncate(self.path, saved["bytes"])
            self.done, self.extra = int(saved["done"]), dict(saved.get("extra") or {})
            log.info("resuming %s after %d items", self.path, self.done)
        else:
            self.done, self.extra = 0, {}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as fh:
                _write_rows(fh, [self.columns], None)
            self._record()

    def add(self, rows: Sequence[dict[str, Any]], done: int, **extra: Any) -> None:
        """Append `rows`; `done`: the items finished with them (the next run starts there)."""
        with open(self.path, "a", newline="") as fh:
            _write_rows(fh, rows, self.columns)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before the record that counts them
        self.done = done
        self.extra.update(extra)
        self._record()

    def _record(self) -> None:
        write_cached(self.progress, self.settings, {"done": self.done, "extra": self.extra,
                                                    "bytes": self.path.stat().st_size})

    def finish(self) -> None:
        os.replace(self.path, self.out)
        self.progress.unlink(missing_ok=True)
