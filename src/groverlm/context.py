"""What every stage's `run(cfg, ctx)` is handed by the runner: the run's data files and a Context.

Reads the data section of a run config (groverlm.config.DataConfig) and fetches the files it names
into the cache when needed (groverlm.data); reads upstream stages' manifests (RUN_DIR/<stage>/
manifest.json) for the paths they handed on in their summaries. Writes nothing itself. Torch-free
and light, so stage modules and the runner import it at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from groverlm import lazy
from groverlm.data import FILES, cache_dir, fetch_files
from groverlm.errors import GroverError
from groverlm.manifest import finished, read_manifest

corpus = lazy.module("groverlm.corpus")  # corpus imports this module

log = logging.getLogger(__name__)


# -- data --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataFiles:
    """The resolved input files of a run (absolute paths; None where the config names none)."""

    genome: Path
    tss: Path | None
    ctcf_motif: Path | None
    ctcf_peaks: tuple[Path, ...]
    repeats: Path | None = None
    cpg: Path | None = None
    # run --plan: the files above that a run would fetch first (not in the cache, or a bad copy
    # there), not to be read (`groverlm.data.fetched_sha256`: what they will hold)
    to_fetch: frozenset[Path] = frozenset()


def resolve_data(data: Any, fetch: bool = True, from_dir: str | Path | None = None,
                 report: Callable[[str], None] | None = None, config_dir: Path | None = None,
                 progress: bool = True, run_keys: Collection[str] = ()) -> DataFiles:
    """Paths of the files `data` (a config.DataConfig) names. An absolute path is used as it is; a
    relative one is looked up in data.dir when set (itself relative to the current folder), else
    it is the file at that path from the current folder when there is one (what a user who typed
    it beside their files means), else the data cache's, fetched first when groverlm's table has it
    (groverlm.data; `fetch` False, run --plan: found, nothing fetched or written, and those a run
    would fetch listed in `DataFiles.to_fetch`). A name found nowhere is an error naming the
    places looked (and the config's own folder, `config_dir`, when the file is there instead).
    `run_keys`: the data keys whose names a run folder's own config.yaml gives (not --set): a
    missing one's error says where such a name was written from (`started_in`)."""
    names = data_names(data)
    base = Path(data.dir).expanduser().resolve() if data.dir else None
    cache = cache_dir()
    found = cwd_files(data)  # relative names with data.dir null: the current folder's files
    for key, ns in names.items():
        for n in ns:
            p = Path(n).expanduser()
            if base is not None or p.is_absolute():
                continue
            if n in found:
                log.info("data.%s: %s is in the current folder (not the data cache)", key, n)
            elif not (cache / n).is_file() and n not in FILES:
                here = config_dir / n if config_dir is not None else None
                hint = (f"; there is one beside the config, {here}: relative paths are from the "
                        "current folder" if here is not None and here.is_file() else
                        f"; {started_in(key)}" if key in run_keys else
                        "".join(f" (did you mean {c!r}?)" for c in get_close_matches(n, FILES, 1)))
                raise GroverError(f"data.{key}: {n}: no such file in the current folder "
                                  f"({Path.cwd()}) or the data cache ({cache}), and not one "
                                  f"groverlm can fetch{hint}")
    cached = sorted({n for ns in names.values() for n in ns
                     if base is None and not Path(n).expanduser().is_absolute() and n not in found
                     and n in FILES})
    fetched = fetch_files(cached, from_dir=from_dir, network=fetch, report=report,
                          progress=progress) if cached else {}
    later = {(cache / n).resolve() for n in cached if n not in fetched}  # without `fetch` alone
    out: dict[str, Any] = {}
    for key, ns in names.items():
        paths = []
        for n in ns:
            p = Path(n).expanduser()
            p = p if p.is_absolute() else base / n if base is not None else found.get(
                n, fetched.get(n, cache / n))
            if not p.is_file() and p.resolve() not in later:
                raise GroverError(f"data.{key}: {p}: no such file")
            paths.append(p.resolve())
        out[key] = tuple(paths) if key == "ctcf_peaks" else (paths[0] if paths else None)
    return DataFiles(**out, to_fetch=frozenset(later))


def started_in(key: str) -> str:
    """Where a relative data name in a run folder's own config.yaml is from, and what to do when it
    is not here: a copy written before `data_as_found` holds the names as given, from the folder
    the run started in, and the copy runs from anywhere."""
    return ("a relative name in a run folder's config is from the folder the run started in: run "
            f"from there, or give the file's path (--set data.{key}=PATH)")


def data_names(data: Any) -> dict[str, list[str]]:
    """{data key: the file names it gives} of a DataConfig (none for a null annotation)."""
    return {"genome": [data.genome], "ctcf_peaks": list(data.ctcf_peaks),
            **{k: [getattr(data, k)] if getattr(data, k) else []  # null: no such annotation
               for k in ("tss", "ctcf_motif", "repeats", "cpg")}}


def cwd_files(data: Any) -> dict[str, Path]:
    """{name: its absolute path} of each relative data name that `resolve_data` reads as a file
    from the current folder (data.dir null, and a file there); the others are the cache's."""
    if data.dir:
        return {}
    return {n: Path(n).resolve() for ns in data_names(data).values() for n in ns
            if not Path(n).expanduser().is_absolute() and Path(n).is_file()}


def data_as_found(data: Any) -> Any:
    """`data` (a DataConfig) with what is relative to the current folder made absolute: a
    relative data.dir, and each name read as a file from the current folder (`cwd_files`); cache
    names stay names. A run folder's config.yaml records this, so that `groverlm run
    RUN/config.yaml` from another folder reads the same files (stages fingerprint the files'
    contents, never these names, so none of them reruns for it)."""
    if data.dir:  # ~/data stays as it is: not from the current folder
        folder = Path(data.dir)
        return data if folder.expanduser().is_absolute() else replace(data, dir=str(folder.resolve()))
    here = {n: str(p) for n, p in cwd_files(data).items()}
    if not here:
        return data
    changes = {k: tuple(here.get(n, n) for n in ns) if k == "ctcf_peaks" else here.get(ns[0], ns[0])
               for k, ns in data_names(data).items() if ns}
    return replace(data, **changes)


def held_out_setting(config: Any, region: str | None, stage: str) -> tuple[str, Any]:
    """(the setting that names it, corpus.Region) of a stage's held-out region: `region` (the
    stage's own setting), or when it is null corpus.holdout's first region."""
    holdout = config.stage("corpus").holdout
    if region is None:
        if not holdout:
            raise GroverError(f"{stage} needs a region pretraining never saw: set "
                              f"corpus.holdout (or {stage}.region)", config.source)
        return "corpus.holdout", corpus.Region.parse(holdout[0], "corpus.holdout")
    return f"{stage}.region", corpus.Region.parse(region, f"{stage}.region")


def check_regions(config: Any, regions: list[tuple[str, Any]],
                  lengths: dict[str, int] | None = None) -> None:
    """The runner's check that each (setting, corpus.Region) lies on the genome the run uses, so
    that a region beyond it fails before the stages, not after BPE: before the genome stage
    against genome.chroms and genome.max_bp; after it, with the record `lengths` it found,
    exactly. Errors name the setting and the config file."""
    if not regions:
        return
    g = config.stage("genome")
    for setting, r in regions:
        if lengths is not None:
            r.bounds(lengths, setting, config.source)
        elif g.chroms is not None and r.chrom not in g.chroms:
            raise GroverError(f"{setting} {r}: {r.chrom!r} is not among genome.chroms "
                              f"({', '.join(g.chroms)})", config.source)
        elif g.max_bp is not None and max(r.start + 1, r.end or 0) > g.max_bp:
            raise GroverError(f"{setting} {r} ends beyond genome.max_bp ({g.max_bp:,} bp: the "
                              f"run keeps the first {g.max_bp:,} bp of each record)", config.source)


# -- what a stage's run() sees ---------------------------------------------------------------

@dataclass
class Context:
    """What a stage's run() sees: its config section's siblings, the data, and the run's folders."""

    run_dir: Path
    out: Path  # RUN_DIR/<stage>: the stage writes only here
    config: Any  # the whole config.RunConfig
    data: DataFiles
    progress: bool = True

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    def relative(self, path: Path) -> str:
        """A path as recorded in a summary: relative to the run folder when inside it, so a run
        folder can be moved."""
        path = Path(path)
        return str(path.relative_to(self.run_dir)) if path.is_relative_to(self.run_dir) else str(
            path)

    def path(self, recorded: str) -> Path:
        return self.run_dir / recorded  # an absolute `recorded` stays as it is

    def summary(self, name: str) -> dict[str, Any]:
        """The summary an upstream stage's run() returned (from its manifest)."""
        return read_manifest(self.stage_dir(name))["summary"]

    # The genome stage records a FASTA or TSS path only when it wrote a cut of its own (relative to
    # the run folder); else the data file is read where the config finds it now (a data folder may
    # move; its contents are fingerprinted, so a changed file still reruns the stages). Run folders
    # from before recorded the data file's absolute path: it is read the same way.
    def genome_file(self, recorded: str | None, data_file: Path | None) -> Path | None:
        """A file the genome stage's summary hands on (`recorded`), else the data file itself
        (null: the stage cut nothing, and the later stages read the data files)."""
        return data_file if recorded is None or Path(recorded).is_absolute() else self.path(
            recorded)

    @property
    def genome(self) -> Path:
        """The FASTA every stage after `genome` reads."""
        return self.genome_file(self.summary("genome")["fasta"], self.data.genome)

    @property
    def tss(self) -> tuple[Path | None, str]:
        """The TSS list on that FASTA (None when data.tss is null), and the format the genome stage
        read it in (`auto`, data.tss_format, from a genome stage finished before it recorded that)."""
        g = self.summary("genome")
        return self.genome_file(g["tss"], self.data.tss), g["tss_format"]

    @property
    def vocab(self) -> Path:
        """The run's vocabulary: the one vocabulary selection chose, else bpe.cycles' export."""
        return self.path(self.summary("select_vocab")["vocab"])

    def held_out(self, region: str | None, stage: str):
        """A stage's region (a corpus.Region), by default the corpus's first held-out region
        (unseen in pretraining)."""
        reg = held_out_setting(self.config, region, stage)[1]
        holdout = self.config.stage("corpus").holdout
        if region is not None and reg not in {corpus.Region.parse(h) for h in holdout}:
            log.warning("%s.region %s is not in corpus.holdout: pretraining may have seen it",
                        stage, reg)
        return reg

    def region_options(self, region: str | None, stage: str) -> tuple[str, str]:
        """How a next-k-mer stage's errors name its region's and its sample block's settings."""
        return held_out_setting(self.config, region, stage)[0], f"{stage}.samples.block"

    @property
    def model(self) -> Path:
        """The pretrained model folder (pretrain's summary)."""
        return self.path(self.summary("pretrain")["model"])

    def model_name(self) -> str:
        """The run's language model as named in metrics.json, by its vocabulary's cycle count ("lm":
        the class is the preset's, BERT or DeBERTa-v2)."""
        return f"lm-bpe{self.summary('select_vocab')['cycles']}"

    def task_dir(self, name: str) -> Path | None:
        """The folder of task `name` as the tasks stage handed it on, None unless it built it."""
        built = self.summary("tasks").get(name)
        folder = self.path(built["dir"]) if built else None
        return folder if folder is not None and finished(folder) else None

    def task_dirs(self, stage: str, wanted: tuple[str, ...] | None) -> list[Path]:
        """The task folders `stage` reads: those it names (`wanted`), else every one tasks built
        (none logs that the stage has nothing to do, which its runner line alone did not say)."""
        if not (wanted or self.config.stage("tasks").build):
            log.info("%s: nothing to do: no tasks built (tasks.build is empty)", stage)
        dirs = []
        for name in wanted or self.config.stage("tasks").build:
            folder = self.task_dir(name)
            if folder is None:
                raise GroverError(f"{stage}.tasks names {name!r}, which the tasks stage did not "
                                  "build (add it to tasks.build)", self.config.source)
            dirs.append(folder)
        return dirs
