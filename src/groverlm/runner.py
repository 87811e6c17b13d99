"""The main job: `groverlm run CONFIG.yaml` runs the whole pipeline in one run folder, resumably.

Reads a run config (groverlm.config) and the data files it names (fetched into the cache when
needed, groverlm.data); writes RUN_DIR/config.yaml (the resolved config; a config file of the
user's own found there is refused, never overwritten; run itself, that copy's run folder is the
one it sits in, `run_folder`) and one folder per stage, RUN_DIR/<stage>/,
holding the stage functions' own output folders and the runner's manifest.json (stage
"run-<stage>", resolved config section, input fingerprints, the summary the stage's `run` returned,
wall and CPU seconds).

Stages run in the order of `STAGES`. Each stage is one module (named in `STAGES`) whose
`run(cfg, ctx) -> summary` turns its config section and a `groverlm.context.Context` into the
summary recorded in its manifest; the runner imports it only when the stage is selected (its
heavy libraries load on first use, groverlm.lazy). A stage is
skipped when its manifest records the same config section (with the settings of other sections it
reads, `Stage.settings`) and the same input fingerprints (the data files it reads and the manifests
of the stages it needs), so a changed setting reruns that stage and everything downstream, and
nothing else. A stage folder being written holds `pending.json` (the
config and inputs it is being made from): after an interruption the rerun keeps what the stage
finished (each part that has its own manifest.json, pretraining checkpoints) when the config is
unchanged, and starts the stage afresh otherwise. A stage whose module says it keeps parts
(`keeps_parts(section, cfg)`: true) is not started afresh when only its config changed, the
input fingerprints being the ones its folder records: the folder loses its manifest.json and is
handed to the stage, whose own records of its parts tell which of them the changed settings feed
(select_vocab keeps its pretrained candidates when only the next-k-mer settings changed). A stage
that checks its parts (`Stage.checks_parts`: the tasks, fine-tuning and baselines, each part's
manifest recording the settings and inputs it was made from) is handed its finished folder
whatever changed, and redoes only the parts made otherwise (`manifest.keep_part`), removing those
no longer asked for; its manifest lists its parts (`PARTS`), so that a part deleted since, like
a folder a stage's summary hands on, makes it out of date (`removed_outputs`). A stage that
says what it hands on (`handed_on(summary, ctx)`: the genome
stage, its sequence and its TSS list; select_vocab, its chosen vocabulary; the tasks stage, each
task) is known to the stages after it by the digests of the parts they read (`Stage.reads`), not
by its whole manifest, so it may be redone to the same effect without them: a new TSS list redoes
the tasks, not BPE and pretraining; a new CTCF setting redoes the CTCF task, its fine-tuning and
its baselines, not the score stage, which reads the Prom300 task alone (the report reads whole
folders: `Stage.reads_all`).

    groverlm run configs/demo.yaml                     # everything, skipping what is done
    groverlm run configs/demo.yaml --from tasks        # tasks and after (earlier stages must be done)
    groverlm run configs/demo.yaml --only bpe --force  # redo one stage
    groverlm run configs/demo.yaml --set bpe.merges=800 --set run.dir=runs/b800
    groverlm run configs/demo.yaml --set pretrain.lr=1e-3 --plan  # what it would redo, and why
    groverlm demo                                      # configs/demo.yaml on hg19 chr20

Before any stage runs, the data files are resolved and each selected stage's module may check its
section against the whole config (`preflight(section, cfg)`: a model override) and name the genome
regions it reads (`regions(section, cfg)`: held-out regions), which are checked against
genome.chroms and genome.max_bp then, and against the records' lengths once the genome stage is
done; so a setting that would fail a late stage (after hours of BPE on a whole genome) fails at
once.

A new stage is one module with its config dataclass and a `run(cfg, ctx)`, one line in `STAGES`,
one in `groverlm.config.STAGE_SECTIONS` and its command's line in `groverlm.cli.COMMANDS`.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from groverlm import lazy
from groverlm.args import as_plain, comma_list, drop_added_defaults, drop_keys, volatile_keys
from groverlm.config import WRITTEN, dump_config, load_config, shipped_config
from groverlm.context import (
    Context,
    DataFiles,
    check_regions,
    cwd_files,
    data_as_found,
    data_names,
    resolve_data,
    started_in,
)
from groverlm.data import FILES, fetched_sha256
from groverlm.errors import GroverError, counted
from groverlm.manifest import (
    CACHE_SETTINGS,
    MANIFEST,
    cached,
    changed_settings,
    clear_outputs,
    fingerprint,
    finished,
    folder_lock,
    read_json,
    read_manifest,
    remove_folder,
    write_cached,
    write_manifest,
    write_text,
)
from groverlm.metrics import (
    comparison_block,
    difference_text,
    find_metrics,
    format_table,
    masked_accuracy_text,
    percent,
    read_metrics,
    results_table,
)
from groverlm.models import check_device_name
from groverlm.peak import peak_rss, reset_peak

torch = lazy.module("torch")  # for the device check alone, loaded when a stage asks for a GPU

log = logging.getLogger(__name__)

PENDING = "pending.json"
HANDED_ON = "handed_on"  # manifest key: Stage.handed_on's digests, by part
PARTS = "parts"  # manifest key: a stage's finished part folders (Stage.checks_parts), run-relative
# run --plan's input records (`stage_key`): a data file a run would fetch first, a need it redoes
TO_FETCH, REDONE = "to fetch", "to redo"
CONFIG_COPY = "config.yaml"


# -- stages ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stage:
    """One pipeline stage: its name (= config section = folder), module and inputs."""

    name: str
    module: str  # holds run(cfg, ctx) -> summary (and any preflight); imported once selected
    needs: tuple[str, ...] = ()  # upstream stages whose outputs it reads
    data: Callable[[DataFiles], list[Path]] = lambda d: []  # data files it reads
    # settings of other config sections it reads ({dotted key: value}), compared as its own
    settings: Callable[[Any], dict[str, Any]] = lambda cfg: {}
    # the parts of what a need hands on (`handed_on`) that it reads, by need; a need not named
    # here: every part
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # reads its needs' whole folders (the report: every table and figure), not only what each
    # hands on
    reads_all: bool = False
    # its run checks every finished part it finds against what it would make it from now
    # (manifest.keep_part: each part's manifest records its settings and inputs) and removes the
    # parts no longer asked for, so its finished folder is handed back to it whatever changed:
    # a new CTCF setting redoes the CTCF task and what was made from it, not the other tasks'
    checks_parts: bool = False

    def run(self, cfg: Any, ctx: Context) -> dict[str, Any]:
        return importlib.import_module(self.module).run(cfg, ctx)

    def _hook(self, name: str) -> Callable[..., Any] | None:
        """The module's optional function `name` (preflight, check_lengths, regions), or None."""
        return getattr(importlib.import_module(self.module), name, None)

    def preflight(self, cfg: Any) -> None:
        """The module's `preflight(section, cfg)`, where it has one: checks that need more than the
        config's types (a model override, a held-out region), made before any stage runs."""
        check = self._hook("preflight")
        if check is not None:
            check(cfg.stage(self.name), cfg)

    def check_lengths(self, cfg: Any, lengths: dict[str, int]) -> None:
        """The module's `check_lengths(section, cfg, lengths)`, where it has one: checks that need
        the genome's record lengths (a held-out region big enough for its blocks), made once the
        genome stage has run, not after the stages before this one."""
        check = self._hook("check_lengths")
        if check is not None:
            check(cfg.stage(self.name), cfg, lengths)

    def keeps_parts(self, cfg: Any) -> bool:
        """The module's `keeps_parts(section, cfg)`, where it has one: whether its folder, made
        from the same inputs under other settings, is handed to `run` to keep the parts those
        settings do not feed (else it is removed, as for any stage)."""
        keeps = self._hook("keeps_parts")
        return keeps is not None and bool(keeps(cfg.stage(self.name), cfg))

    def handed_on(self, summary: dict[str, Any], ctx: Context) -> dict[str, str] | None:
        """The module's `handed_on(summary, ctx)`, where it has one: {part: digest} of what the
        stages after it read of its folder (genome: the sequence, the TSS list; select_vocab: the
        chosen vocabulary, not the selection's tables). Recorded in its manifest, the parts a
        stage reads (`reads`) stand for the folder among its inputs, so a stage redone to the same
        effect for it (a new TSS list, for BPE) leaves it done; None: the whole manifest stands
        for the folder, as for any stage."""
        digest = self._hook("handed_on")
        return None if digest is None else digest(summary, ctx)

    def regions(self, cfg: Any) -> list[tuple[str, Any]]:
        """The genome regions the stage reads ((setting, corpus.Region): held-out regions), from
        the module's `regions(section, cfg)` where it has one; the runner checks them against the
        genome (`context.check_regions`)."""
        named = self._hook("regions")
        return [] if named is None else named(cfg.stage(self.name), cfg)


def _held_out(name: str) -> Callable[[Any], dict[str, Any]]:
    """A stage whose `region` null means corpus.holdout's first region (Context.held_out) reads
    that setting too."""
    def settings(cfg: Any) -> dict[str, Any]:
        holdout = cfg.stage("corpus").holdout
        return {"corpus.holdout[0]": str(holdout[0]) if holdout else None} if (
            cfg.stage(name).region is None) else {}
    return settings


def _given(*paths: Path | None) -> list[Path]:
    """The data files a stage reads, less those the config sets null."""
    return [p for p in paths if p is not None]


# Stages that read the genome's sequence, not its TSS list (genome.handed_on's parts)
SEQUENCE = {"genome": ("sequence",)}

# The pipeline, in order.
STAGES: list[Stage] = [
    Stage("genome", "groverlm.genome", data=lambda d: _given(d.genome, d.tss),
          settings=lambda cfg: {"data.tss_format": cfg.data.tss_format}),
    Stage("bpe", "groverlm.bpe", needs=("genome",), reads=SEQUENCE),
    Stage("select_vocab", "groverlm.select_vocab", needs=("genome", "bpe"), reads=SEQUENCE,
          settings=_held_out("select_vocab")),
    Stage("corpus", "groverlm.corpus", needs=("genome", "select_vocab"), reads=SEQUENCE),
    Stage("pretrain", "groverlm.pretrain", needs=("corpus",)),
    Stage("nextkmer", "groverlm.nextkmer", needs=("genome", "select_vocab", "pretrain"),
          reads=SEQUENCE, settings=_held_out("nextkmer")),
    Stage("tasks", "groverlm.tasks", needs=("genome", "select_vocab"),
          data=lambda d: _given(d.ctcf_motif, *d.ctcf_peaks), checks_parts=True),
    Stage("finetune", "groverlm.finetune", needs=("select_vocab", "pretrain", "tasks"),
          checks_parts=True),
    Stage("baselines", "groverlm.baselines", needs=("select_vocab", "tasks"), checks_parts=True),
    Stage("analysis", "groverlm.analysis.analyze",
          needs=("genome", "select_vocab", "corpus", "pretrain"),
          data=lambda d: _given(d.repeats, d.cpg)),
    Stage("score", "groverlm.score", needs=("genome", "select_vocab", "pretrain", "tasks"),
          data=lambda d: _given(d.ctcf_motif, *d.ctcf_peaks),
          reads={**SEQUENCE, "tasks": ("prom300",)}, settings=_held_out("score")),
    Stage("report", "groverlm.analysis.report",
          needs=("genome", "bpe", "select_vocab", "corpus", "pretrain", "nextkmer", "tasks",
                 "finetune", "baselines", "analysis", "score"), reads_all=True),
]


def stage_names() -> list[str]:
    return [s.name for s in STAGES]


NAME_WIDTH = max(len(s.name) for s in STAGES)  # the stage lines' first column (select_vocab)


def _stage(name: str) -> Stage:
    if name not in stage_names():
        raise GroverError(f"unknown stage {name!r}; stages: {', '.join(stage_names())}")
    return STAGES[stage_names().index(name)]


# -- bookkeeping -------------------------------------------------------------------------------

def stage_key(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles, redone: Collection[str] = ()
              ) -> tuple[dict[str, Any], list[dict[str, Any]], list[str | None]]:
    """(compared config section, input fingerprint records, their SHA-256s) of a stage as the
    config asks it. Run --plan alone has SHA-256s of None: a file a run would fetch first whose
    bytes are not known yet (`_data_record`), and the needs in `redone`, which a run redoes
    before this stage (not finished now: their record is made then)."""
    # volatile fields (args.volatile: devices, threads, inference batches) may change freely
    section = drop_keys(as_plain(cfg.stage(stage.name)), volatile_keys(type(cfg.stage(stage.name))))
    other = stage.settings(cfg)
    if other:
        section["other_sections"] = other
    inputs = [_data_record(p, data) for p in stage.data(data)]
    inputs += [{"path": str(run_dir / n), "kind": REDONE, "sha256": None} if n in redone else
               _need_record(run_dir / n, None if stage.reads_all else stage.reads.get(n, ()))
               for n in stage.needs]
    return section, inputs, [i["sha256"] for i in inputs]


def _data_record(path: Path, data: DataFiles) -> dict[str, Any]:
    """The fingerprint record of a data file; for one a run would fetch first (run --plan,
    `DataFiles.to_fetch`), the SHA-256 the fetched copy will have (None where not known) and the
    reference copy's."""
    if path not in data.to_fetch:
        return fingerprint(path)
    return {"path": str(path), "kind": TO_FETCH, "sha256": fetched_sha256(path.name),
            "reference": FILES[path.name].sha256}


def _need_record(folder: Path, parts: tuple[str, ...] | None) -> dict[str, Any]:
    """The fingerprint record of an upstream stage's folder for a stage reading `parts` of what it
    hands on (`Stage.handed_on`; () every part; None the whole folder): their digests where its
    manifest records them, else its manifest's fingerprint (a redone stage's differs: `made`)."""
    if parts is not None and finished(folder):
        handed = read_manifest(folder).get(HANDED_ON)
        if isinstance(handed, dict) and set(parts) <= set(handed):
            read = {k: v for k, v in handed.items() if not parts or k in parts}
            sha = hashlib.sha256(json.dumps(read, sort_keys=True).encode()).hexdigest()
            return {"path": str(folder), "kind": HANDED_ON, "parts": sorted(read), "sha256": sha}
    return fingerprint(folder)


def stage_status(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles) -> str:
    """'done' (manifest matches), 'missing' (never finished) or why it is out of date."""
    return _status(stage, cfg, run_dir, data)[0]


def _status(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles, redone: Collection[str] = ()
            ) -> tuple[str, list[str]]:
    """`stage_status`, and (run --plan) the files a run would fetch first that may hold the bytes
    the stage read, which are not known until fetched: 'done' means done unless they differ.
    `redone` (run --plan): needs a run redoes before this stage that are not finished now (an
    interrupted attempt), left out of the comparison: `plan_stages` says what their redo does."""
    if not finished(run_dir / stage.name):
        return "missing", []
    gone = removed_outputs(run_dir, stage.name)
    if gone:
        return f"out of date ({', '.join(gone)})", []
    for need in stage.needs:
        if need not in redone and not finished(run_dir / need):
            return f"out of date ({need} is not finished)", []
    section, inputs, shas = stage_key(stage, cfg, run_dir, data, redone)
    m = read_manifest(run_dir / stage.name)
    if isinstance(m.get("config"), dict):
        # a field made volatile since the stage finished (baselines.tfidf.n_jobs) changes nothing
        drop_keys(m["config"], volatile_keys(type(cfg.stage(stage.name))))
        if "other_sections" not in m["config"]:
            section.pop("other_sections", None)  # a stage finished before they were recorded
        # a setting added since the stage finished, at its default: what it ran with
        drop_added_defaults(section, m["config"], cfg.stage(stage.name))
    changed = changed_settings(m.get("config"), section)
    if changed:
        return f"out of date (config changed: {'; '.join(changed)})", []
    was = [i if isinstance(i, dict) else {} for i in m.get("inputs", [])]
    if len(was) != len(inputs):
        return "out of date (inputs changed)", []
    unknown, fetched = [], []
    for i, (then, now) in enumerate(zip(was, inputs, strict=True)):
        if now.get("kind") == TO_FETCH:
            name = Path(now["path"]).name
            # a copy of that file, as far as the record tells (its name or the reference bytes)
            same = Path(then.get("path", "")).name == name or then.get("sha256") == now["reference"]
            if now["sha256"] is None and same:
                unknown.append(name)
                shas[i] = then.get("sha256")
            elif now["sha256"] != then.get("sha256"):
                fetched.append(name)
        elif now.get("kind") == REDONE:
            shas[i] = then.get("sha256")
    if fetched:
        return f"out of date (inputs changed: {', '.join(fetched)} to be fetched)", []
    if [i.get("sha256") for i in was] != shas:
        return "out of date (inputs changed)", []
    return "done", unknown


def removed_outputs(run_dir: Path, name: str) -> list[str]:
    """What finished stage `name` hands on and is no longer there: the paths its summary records
    inside its own folder (`pretrain/model`, `tasks/ctcf`), 'removed', and the part folders its
    manifest lists (`PARTS`: `finetune/prom300`, `baselines/cnn/ctcf`), 'removed' or, without their
    manifest.json, 'unfinished'. A finished stage is known by its manifest.json alone, so one whose
    model, task or fine-tuning a user deleted was 'up to date' and the stages after it failed on
    the missing folder, or (the report) left it out unsaid. A stage whose parts are checked
    (`Stage.checks_parts`) makes the missing part alone. A manifest from before `PARTS` lists none."""
    manifest = read_manifest(run_dir / name)
    summary = manifest.get("summary")
    values = list(summary.values()) if isinstance(summary, dict) else []
    for v in list(values):  # one level down too: each task's `dir`
        if isinstance(v, dict):
            values += v.values()
    paths = [v for v in values if isinstance(v, str) and v.startswith(f"{name}/")]
    parts = [p for p in manifest.get(PARTS) or [] if isinstance(p, str) and p not in paths]
    return [f"{p} removed" for p in paths + parts if not (run_dir / p).exists()] + [
        f"{p} unfinished" for p in parts if (run_dir / p).exists() and not finished(run_dir / p)]


def part_folders(run_dir: Path, out: Path) -> list[str]:
    """The finished part folders of stage folder `out` (each the outermost folder below it holding
    a manifest.json: `baselines/ctcf`, `baselines/cnn/ctcf`), relative to the run folder, so a run
    folder can be moved: what `removed_outputs` finds missing later."""
    parts: list[Path] = []
    for m in sorted(out.rglob(MANIFEST), key=lambda m: len(m.parts)):  # outermost first
        folder = m.parent
        if folder != out and not any(folder.is_relative_to(p) for p in parts):
            parts.append(folder)
    return [str(p.relative_to(run_dir)) for p in parts]


def recorded_inputs(out: Path) -> list[str] | None:
    """The input fingerprints (SHA-256s, as `stage_key` gives them) a stage folder's last attempt
    was made from: its manifest's when finished, else its pending.json's; None when it records
    none (no folder, or a damaged record)."""
    try:
        if finished(out):
            return [i.get("sha256") for i in read_manifest(out).get("inputs", [])]
        if (out / PENDING).is_file():
            return read_json(out / PENDING)[CACHE_SETTINGS]["inputs"]
    except (GroverError, KeyError, TypeError):
        return None
    return None


def _clear(folder: Path) -> None:
    """Remove a stage folder, only if it is one the runner made (and, folder or none, what a
    killed removal of it left aside: `remove_folder`)."""
    _check_ours(folder)
    remove_folder(folder)  # not while another process writes in it (a stage command's --out)


def _check_ours(folder: Path) -> None:
    """Refuse a stage folder that holds files but neither record the runner writes: not one it
    made, never to be removed."""
    marks = [folder / PENDING, folder / "manifest.json"]
    if folder.exists() and not any(p.is_file() for p in marks) and any(folder.iterdir()):
        raise GroverError("exists and is not a groverlm run stage (no pending.json or "
                          "manifest.json); refusing to delete it", folder)


@dataclass
class StageResult:
    name: str
    status: str  # "ran", "skipped" (up to date) or "not selected"
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads; not torchrun's ranks)
    peak_gb: float = 0.0  # this process's peak resident memory during the stage (not torchrun's)

    def line(self) -> str:
        if self.status == "ran":
            return (f"{self.name:<{NAME_WIDTH}} ran      {self.seconds:8.1f} s  (CPU "
                    f"{self.cpu_seconds:.1f} s, peak {self.peak_gb:.1f} GB)")
        return f"{self.name:<{NAME_WIDTH}} {self.status}"


def execute_stage(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles, force: bool,
                  progress: bool) -> StageResult:
    """Run one stage into RUN_DIR/<stage>, resuming what an interrupted attempt finished."""
    out = run_dir / stage.name
    section, inputs, shas = stage_key(stage, cfg, run_dir, data)
    pending = {"config": section, "inputs": shas}
    reuse = None if force else _reuse(stage, cfg, out, pending)
    if reuse == RESUME:
        log.info("%s: resuming an interrupted attempt", stage.name)
    elif reuse == CHECK:
        log.info("%s: keeping the parts made from unchanged settings and inputs", stage.name)
        clear_outputs(out, [])
    elif reuse == KEEP:
        log.info("%s: settings changed; keeping the parts they do not feed", stage.name)
        clear_outputs(out, [])
    else:
        _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    write_cached(out / PENDING, pending, {})
    ctx = Context(run_dir, out, cfg, data, progress)
    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    summary = stage.run(cfg.stage(stage.name), ctx)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss() / 1e9
    seed = getattr(cfg.stage(stage.name), "seed", None)
    handed = stage.handed_on(summary, ctx)
    parts = part_folders(run_dir, out) if stage.checks_parts else []
    # `made` differs at every execution, so stages downstream of a redone stage see new inputs,
    # unless it records what it hands on
    write_manifest(out, f"run-{stage.name}", section, inputs, seed=seed, summary=summary,
                   seconds=round(seconds, 2), cpu_seconds=round(cpu, 2), peak_rss_gb=round(peak, 3),
                   made=uuid.uuid4().hex, **({HANDED_ON: handed} if handed else {}),
                   **({PARTS: parts} if parts else {}))
    (out / PENDING).unlink()
    return StageResult(stage.name, "ran", seconds, summary, cpu, peak)


RESUME, CHECK, KEEP = "resume", "check parts", "keep parts"  # `_reuse`'s answers


def _reuse(stage: Stage, cfg: Any, out: Path, pending: dict[str, Any], log_why: bool = True
           ) -> str | None:
    """How a run (not --force) hands a stage its folder `out`, to be made from `pending` (its
    config and input SHA-256s): RESUME, an attempt interrupted under them, whose finished parts
    are kept (`cached` logs why not, unless not `log_why`); CHECK, the finished folder of a stage
    that checks its parts (`Stage.checks_parts`); KEEP, one made from the same inputs under other
    settings, for a stage that keeps the parts they do not feed (`Stage.keeps_parts`); None:
    removed, the stage starts afresh."""
    if not finished(out) and cached(out / PENDING, pending, log_why=log_why) is not None:
        return RESUME
    if stage.checks_parts and finished(out):
        # every part whole: each is checked against what it would be made from now. Not an
        # attempt interrupted under other settings, whose unfinished part would be resumed
        # under the new ones (refused by its own resume guard)
        return CHECK
    if stage.keeps_parts(cfg) and recorded_inputs(out) == pending["inputs"]:
        # the same inputs under other settings: the stage's records of its parts tell what they
        # feed; unfinished (no manifest.json) until it has redone that
        return KEEP
    return None


def check_devices(cfg: Any, selected: set[str]) -> None:
    """Every device a selected stage names, a name `models.named_device` takes, against the GPUs
    torch sees, before any stage runs
    (a `cuda` in the analysis failed hours into a full-scale run, after fine-tuning), and
    `pretrain.processes` against them: one GPU per process, or CPU processes (gloo) on a machine
    without one, which is said, since `auto` would otherwise train on the CPU unannounced."""
    asked: list[tuple[str, str]] = []
    pending = [(name, as_plain(cfg.stage(name))) for name in sorted(selected)]
    while pending:
        key, value = pending.pop()
        if isinstance(value, dict):
            pending += [(f"{key}.{k}", v) for k, v in value.items()]
        elif key.endswith(".device") and isinstance(value, str):
            check_device_name(value, key)  # `gpu` failed in the stage, naming --device
            if value.startswith("cuda"):
                asked.append((key, value))
    processes = cfg.stage("pretrain").processes if "pretrain" in selected else 1
    if not asked and processes == 1:
        return  # torch stays unloaded
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for key, device in sorted(asked):
        index = device.partition(":")[2]
        if gpus == 0 or (index.isdigit() and int(index) >= gpus):
            raise GroverError(f"{key}: {device}, but torch sees {counted(gpus, 'GPU')}", cfg.source)
    if processes > 1:
        device = cfg.stage("pretrain").train.device
        if gpus and device != "cpu" and processes > gpus:
            raise GroverError(f"pretrain.processes: {processes}, one GPU each, but torch sees "
                              f"{gpus}", cfg.source)
        if not gpus or device == "cpu":
            log.warning("pretrain.processes %d on the CPU (torch sees no GPU, or device cpu): %d "
                        "processes share this machine's cores (gloo)", processes, processes)


def run_pipeline(cfg: Any, only: list[str] | None = None, start: str | None = None,
                 force: bool = False, progress: bool = True, from_dir: str | Path | None = None,
                 on_stage: Callable[[StageResult], None] | None = None,
                 on_data: Callable[[str], None] | None = None, plan: bool = False
                 ) -> list[StageResult]:
    """Run the stages of `cfg` into cfg.run.dir; returns one result per stage.

    `only`: run just these stages; `start`: this stage and every later one. The stages they need
    must be finished and up to date. `force`: redo the selected stages even when up to date.
    `plan`: run nothing and write nothing; each result's status says what a run would do
    (`plan_stages`), after the same checks of the config.
    """
    with cfg.naming_sources():  # an error about a setting names its line or --set
        return _pipeline(cfg, only, start, force, progress, from_dir, on_stage, on_data, plan)


def _pipeline(cfg: Any, only: list[str] | None, start: str | None, force: bool, progress: bool,
              from_dir: str | Path | None, on_stage: Callable[[StageResult], None] | None,
              on_data: Callable[[str], None] | None, plan: bool = False) -> list[StageResult]:
    names = stage_names()
    for n in [*(only or []), *([start] if start else [])]:
        _stage(n)
    if only and start:
        raise GroverError("give --only or --from, not both")
    selected = set(only) if only else set(names[names.index(start):]) if start else set(names)
    regions = []  # a bad model override or region fails now, not after the stages before it
    for stage in STAGES:
        if stage.name in selected:
            stage.preflight(cfg)
            regions += stage.regions(cfg)
    check_regions(cfg, regions)  # against genome.chroms and genome.max_bp
    check_devices(cfg, selected)
    own, named = _own_folder(cfg), _named_folder(cfg)  # run_folder's two, each found once
    if own is not None:
        _check_names_from_here(cfg, own)
    # a name --set gives is the user's, from here; the others in a run folder's own config are not
    run_keys = [] if own is None else [k for k in data_names(cfg.data)
                                       if not cfg.given_by_set(f"data.{k}")]
    run_dir = own or named
    data = resolve_data(cfg.data, fetch=not plan, from_dir=from_dir, report=on_data,
                        config_dir=Path(cfg.source).parent if cfg.source else None,
                        progress=progress, run_keys=run_keys)  # a missing file: no folder made
    if run_dir.exists() and not run_dir.is_dir():
        raise GroverError("run.dir exists and is not a folder", run_dir)
    _check_config_copy(run_dir / CONFIG_COPY)  # a run stops there, before any stage
    if plan:
        return plan_stages(cfg, run_dir, data, selected, regions, force, on_stage)
    if own is not None and own != named:
        log.info("run.dir: %s is this run folder's own config, so the run is %s, not %s "
                 "(--set run.dir=DIR for another)", cfg.source, run_dir, cfg.run.dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GroverError(f"run.dir: cannot make the folder ({err.strerror or err})",
                          run_dir) from None
    with folder_lock(run_dir):  # a second run into the folder stops here, not amid our stages
        return _run_stages(cfg, run_dir, data, selected, regions, force, progress, on_stage)


def _run_stages(cfg: Any, run_dir: Path, data: DataFiles, selected: set[str], regions: list,
                force: bool, progress: bool, on_stage: Callable[[StageResult], None] | None
                ) -> list[StageResult]:
    _write_config_copy(cfg, run_dir / CONFIG_COPY)
    needed = _needed(selected)
    results = []
    for stage in STAGES:
        if stage.name not in selected:
            if stage.name in needed - selected:
                status = stage_status(stage, cfg, run_dir, data)
                if status != "done":
                    raise GroverError(f"stage {stage.name!r} is {status}, and the stages asked "
                                      f"for need it: run it first (drop --only/--from)", run_dir)
            result = StageResult(stage.name, "not selected")
        elif not force and stage_status(stage, cfg, run_dir, data) == "done":
            result = StageResult(stage.name, "skipped (up to date)")
        else:
            log.info("stage %s", stage.name)
            result = execute_stage(stage, cfg, run_dir, data, force, progress)
        results.append(result)
        if on_stage is not None:
            on_stage(result)
        if stage.name == "genome" and finished(run_dir / "genome"):  # now the records' lengths
            _check_lengths(cfg, run_dir, regions, selected)
    return results


def _check_lengths(cfg: Any, run_dir: Path, regions: list, selected: set[str]) -> None:
    """The regions the selected stages read, and their settings that need the genome's record
    lengths (`Stage.check_lengths`), against those of the finished genome stage."""
    lengths = _record_lengths(run_dir / "genome")
    check_regions(cfg, regions, lengths)
    for later in STAGES:
        if later.name in selected:
            later.check_lengths(cfg, lengths)


def plan_stages(cfg: Any, run_dir: Path, data: DataFiles, selected: set[str], regions: list,
                force: bool, on_stage: Callable[[StageResult], None] | None = None
                ) -> list[StageResult]:
    """What a run would do, stage by stage, as StageResults whose status says it ("would run:
    config changed: ...", "would run: after corpus", "up to date"), running and writing nothing.
    A stage whose upstream stage would be redone runs again after it, unless that stage says what
    it hands on (`Stage.handed_on`): then it may not, and the plan says so; so may a stage that
    reads a data file a run would fetch first, whose bytes are not known until then. What a
    redone stage keeps of its folder (`_reuse`: an interrupted attempt's finished parts, the parts
    made from unchanged settings and inputs) is said too. A region or setting beyond the genome's
    records (`regions`, `Stage.check_lengths`) fails it as it fails the run, after the genome
    stage's line, when that stage is done and stays so."""
    runs: set[str] = set()  # stages a run would redo
    # those it may redo -> what that depends on: the redone stages that say what they hand on, the
    # files to be fetched
    maybe: dict[str, set[str]] = {}
    needed = _needed(selected)
    results = []
    for stage in STAGES:
        # needs not finished now that a run redoes before it are compared as it finds them then
        redone = [n for n in stage.needs if n in runs and not finished(run_dir / n)]
        why, fetched = (_status(stage, cfg, run_dir, data, redone)
                        if stage.name in selected | needed else ("done", []))
        if why == "missing" and (run_dir / stage.name / PENDING).is_file():
            why = "interrupted"  # what a run does with it: `_keeps`
        # its needs a run would redo first: changing what it reads (`after`), or perhaps
        known = _known_by_handed_on(stage, run_dir)
        after = [n for n in stage.needs if n in runs and (
            stage.reads_all or n not in known or _stage(n)._hook("handed_on") is None)]
        perhaps = {r for n in stage.needs for r in ({n} if n in runs else maybe.get(n, ()))}
        perhaps.update(fetched)
        if stage.name not in selected:
            text = "not selected"
            stop = "the stages asked for need it, so a run would stop"
            # a run checks it when it gets there, after the selected stages before it ran
            if stage.name in needed and why != "done":
                text += f", and {why}: {stop}"
            elif stage.name in needed and after:
                text += f", and out of date once {', '.join(after)} is redone: {stop}"
            elif stage.name in needed and perhaps:
                text += f", and out of date if {_only_if(perhaps, 'what it reads')}: {stop} then"
        elif force or why != "done":
            text = f"would run: {'--force' if force else why}"
            runs.add(stage.name)
        elif after:
            text = f"would run: after {', '.join(after)}"
            runs.add(stage.name)
        elif perhaps:
            maybe[stage.name] = perhaps
            text = f"may run: only if {_only_if(perhaps, 'what the stages after it read')}"
        else:
            text = "up to date"
        if stage.name in runs | set(maybe):
            text += _keeps(stage, cfg, run_dir, data, force, known_inputs=not (
                after or perhaps - set(fetched)))
        results.append(StageResult(stage.name, text))
        if on_stage is not None:
            on_stage(results[-1])
        if stage.name == "genome" and finished(run_dir / "genome") and text in (
                "up to date", "not selected"):
            _check_lengths(cfg, run_dir, regions, selected)
    return results


def _keeps(stage: Stage, cfg: Any, run_dir: Path, data: DataFiles, force: bool,
           known_inputs: bool) -> str:
    """What the plan says a run redoing `stage` keeps of its folder (`_reuse`; nothing with
    --force), to follow the stage's line. `known_inputs`: no need of it is redone first, nor a
    file it reads fetched with bytes not known yet (then an interrupted attempt, and a folder kept
    under other settings, were made from other inputs)."""
    out = run_dir / stage.name
    interrupted = not finished(out) and (out / PENDING).is_file()
    pending: dict[str, Any] = {"config": None, "inputs": [None]}  # what no record matches
    if not force and known_inputs and (interrupted or stage.keeps_parts(cfg)) and all(
            finished(run_dir / n) for n in stage.needs):
        section, _, shas = stage_key(stage, cfg, run_dir, data)
        pending = {"config": section, "inputs": shas}
    reuse = None if force else _reuse(stage, cfg, out, pending, log_why=False)
    if reuse is None:
        try:
            _check_ours(out)
        except GroverError as err:
            return f"; a run would stop there: {err}"
        return "; starts it afresh (it was made under other settings or inputs)" * (
            interrupted and not force)
    return {RESUME: "; resumes it, keeping its finished parts",
            CHECK: "; keeps the parts made from unchanged settings and inputs",
            KEEP: "; keeps the parts the changed settings do not feed"}[reuse]


def _only_if(perhaps: set[str], reads: str) -> str:
    """What a stage that may run depends on (`plan_stages`): redone stages (changing `reads`),
    files to be fetched."""
    stages = sorted(p for p in perhaps if p in stage_names())
    said = [f"the redone {' or '.join(stages)} changes {reads}"] if stages else []
    return " or ".join(said + [f"the fetched {f} differs from the copy the run read"
                               for f in sorted(perhaps - set(stages))])


def _known_by_handed_on(stage: Stage, run_dir: Path) -> set[str]:
    """The needs a finished stage's manifest records by the digest of what they hand on
    (`_need_record`). It knows the others by their whole manifest (a stage finished before its
    need said what it hands on), which any redo of them changes."""
    try:
        inputs = read_manifest(run_dir / stage.name).get("inputs") or []
    except GroverError:  # not finished: it runs anyway
        return set()
    if len(inputs) < len(stage.needs):
        return set()
    # the needs' records come last, in order (`stage_key`)
    return {n for n, r in zip(stage.needs, inputs[len(inputs) - len(stage.needs):], strict=True)
            if isinstance(r, dict) and r.get("kind") == HANDED_ON}


def _needed(selected: set[str]) -> set[str]:
    """Every stage a selected stage reads, directly or not."""
    needed: set[str] = set()
    for stage in reversed(STAGES):  # STAGES is in order
        if stage.name in selected | needed:
            needed.update(stage.needs)
    return needed


def _record_lengths(genome_dir: Path) -> dict[str, int]:
    """{record: length} of the genome the run uses (the genome stage's summary.json)."""
    summary = json.loads((genome_dir / "summary.json").read_text())
    return {r["name"]: r["length"] for r in summary["records"]}


def run_folder(cfg: Any) -> Path:
    """The run folder: the one cfg.run.dir names (~ expanded, absolute), unless the config is the
    copy a run folder holds (`_own_folder`): then that folder, wherever it is now."""
    return _own_folder(cfg) or _named_folder(cfg)


def _named_folder(cfg: Any) -> Path:
    try:
        return Path(cfg.run.dir).expanduser().resolve()
    except RuntimeError as err:  # ~nosuchuser
        raise cfg.error("run.dir", f"run.dir {cfg.run.dir!r}: {err}") from None


def _own_folder(cfg: Any) -> Path | None:
    """The folder of the config file when it is the runner's copy in a run folder (RUN_DIR/
    config.yaml, marked as written by groverlm, beside stage folders the runner made) and no --set
    gave run.dir; else None. The copy records run.dir as given (often relative: runs/mini), since
    a run folder may be moved; run from another folder, or after a move, that run.dir named
    another folder, and every stage ran again there."""
    if cfg.source is None or cfg.given_by_set("run.dir"):
        return None
    path = Path(cfg.source).resolve()
    folder = path.parent
    if path.name != CONFIG_COPY or not any(
            finished(folder / s.name) or (folder / s.name / PENDING).is_file() for s in STAGES):
        return None
    try:
        return folder if _written_by_groverlm(path.read_text(errors="replace")) else None
    except OSError:
        return None


def _check_names_from_here(cfg: Any, run_dir: Path) -> None:
    """A run folder's own config.yaml runs from anywhere, so a relative data name in it that is a
    file in the current folder may not be the file the run read: a copy written before
    `data_as_found` holds my.fa as given, relative to the folder the run started in, and run from
    another folder that held another my.fa, the run read that one, cleared its finished stages and
    ran them all again on it. Such a name is read from here only when the run's finished stages
    read a file from here (their manifests' inputs: this is where the run started); else one line
    asks for the file's path. A name given by --set is the user's, from here."""
    here = cwd_files(cfg.data)
    if not here:
        return
    read = {Path(i["path"]) for s in STAGES if finished(run_dir / s.name)
            for i in read_manifest(run_dir / s.name).get("inputs", []) if "path" in i}
    if not read.isdisjoint(here.values()):
        return
    for key, names in data_names(cfg.data).items():
        for n in names:
            if n in here and not cfg.given_by_set(f"data.{key}"):
                raise GroverError(f"data.{key}: {n}: the run read no {here[n]}; {started_in(key)}")


def _write_config_copy(cfg: Any, path: Path) -> None:
    """Record the resolved config in the run folder, never over a config file a user wrote there
    (one without the mark dump_config puts on its first line: comments and layout would be lost).
    Data files found from the current folder are recorded by their absolute paths (`data_as_found`):
    the copy runs in its own folder from anywhere, and a name like my.fa would be looked for there."""
    _check_config_copy(path)
    write_text(path, dump_config(replace(cfg, data=data_as_found(cfg.data))))


def _check_config_copy(path: Path) -> None:
    """Refuse a run folder's config.yaml that the runner may not replace (`_write_config_copy`)."""
    if path.exists() and not path.is_file():
        raise GroverError("exists and is not a file", path)
    if path.is_file():
        try:
            text = path.read_text(errors="replace")
        except OSError as err:
            raise GroverError(f"cannot read it ({err.strerror})", path) from None
        if not _written_by_groverlm(text):
            raise GroverError(f"the run folder's {CONFIG_COPY} is where groverlm records the "
                              "resolved config, and this one was not written by groverlm: move "
                              "it out of the run folder (and run it from there)", path)


def _written_by_groverlm(text: str) -> bool:
    """Whether a run folder's config.yaml is the runner's record: marked on its first line, or
    (runs from before the mark) exactly what dump_config wrote then."""
    if text.startswith(WRITTEN):
        return True
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(raw, dict) and {"run", "data"} <= set(raw) and text == yaml.safe_dump(
        raw, sort_keys=False, default_flow_style=None)


# -- the one-screen summary --------------------------------------------------------------------

def summarize_run(run_dir: str | Path) -> str:
    """Vocabulary, pretraining, next-k-mer and task results of a run folder, in a few lines."""
    run_dir = Path(run_dir)

    def summary(name: str) -> dict[str, Any] | None:
        return read_manifest(run_dir / name).get("summary") if finished(run_dir / name) else None

    lines = []
    g = summary("genome")
    if g:
        lines.append(f"genome:      {counted(g['records'], 'record')}, {g['length']:,} bp "
                     f"({g['acgt']:,} A/C/G/T in {counted(g['contigs'], 'contig')})")
    v = summary("select_vocab") or summary("bpe")
    if v:
        how = {True: "chosen by next-k-mer", False: "as configured"}.get(v.get("selected"),
                                                                          "BPE export")
        lines.append(f"vocabulary:  {v['cycles']} BPE cycles ({how}), {v['tokens']} tokens "
                     f"present, mean length {v['mean_length_genome']:.2f} nt in the genome "
                     f"({v['mean_length_vocab']:.2f} over the vocabulary), longest "
                     f"{v['max_length']} nt, CG token: {'yes' if v['has_CG'] else 'no'}, start "
                     f"with A/T: {100 * v['start_A_or_T']:.0f}%")
    p = summary("pretrain")
    if p and "mlm_accuracy" in p:
        lines.append(f"pretraining: {p['steps']} steps, {p['tokens_seen']:,} tokens; "
                     f"{masked_accuracy_text(p)}, perplexity {p['perplexity']:.1f}")
    k = summary("nextkmer")
    if k:
        lines.append("next-k-mer:  test top-1 accuracy, fine-tuned / zero-shot (chance; most "
                     "frequent k-mer; best TF-IDF; context table of the last m nt)")
        for r in k["by_k"]:
            tfidf = [v for key, v in r.items() if key.startswith("tfidf") and v is not None]
            table = (f"; m={r['context_table_order']}: {percent(r['context_table'])}"
                     if "context_table" in r else "")
            against = "".join(f"; {who} - {name} {difference_text(r[key])}" for key, who, name in (
                ("vs_tfidf", "model", "TF-IDF"), ("zero_shot_vs_tfidf", "zero-shot", "TF-IDF"),
                ("zero_shot_vs_table", "zero-shot", "table")) if key in r)
            lines.append(f"  k={r['k']}: {percent(r.get('accuracy'))} / "
                         f"{percent(r.get('zero_shot_accuracy'))} ({percent(r['chance'])}; "
                         f"{percent(r['most_frequent_accuracy'])}; "
                         f"{percent(max(tfidf)) if tfidf else 'n/a'}{table}){against}")
    z = summary("score")
    if z and "prom300" in z:
        lines.append(f"zero-shot:   Prom300 AUROC {z['prom300']['auroc']:.3f} (per-nt pseudo-log-"
                     f"likelihood over {z['prom300']['sequences']} sequences, promoters and their "
                     f"token shuffles, of the {z['prom300'].get('rows', 'test split')}; chance "
                     "0.5)")
    if z and "ctcf" in z:
        c = z["ctcf"]
        lines.append(f"             CTCF motif SNVs ({c['snvs']:,} in {c['sites']} bound sites): "
                     f"Spearman {_num(c.get('spearman'))} with the JASPAR log-odds change, AUROC "
                     f"{_num(c.get('auroc_informative'))} informative vs uninformative positions")
    if summary("tasks") == {}:  # a genome without annotations of its own (tasks.build: [])
        lines.append("tasks:       none built (tasks.build is empty): no fine-tuning, baselines "
                     "or task readouts")
    scored = [run_dir / s for s in ("finetune", "baselines") if (run_dir / s).is_dir()]
    records = [r for q in (find_metrics(scored) if scored else []) for r in read_metrics(q)]
    if records:
        tasks, models, cells = results_table(records)
        lines.append("task test MCC (a language model's: mean ± sd over its seeds, population sd):")
        lines.append(format_table(tasks, models, cells).rstrip())
        if "prom300" in tasks and any(m.startswith("tfidf-bpe") for m in models):
            lines.append("  (tfidf-bpe on prom300: 0 by construction; a negative is its promoter's "
                         "tokens shuffled, the same bag of tokens)")
        lines += comparison_block(records)
    r = summary("report")
    lines.append(f"report:      {run_dir / r['report'] if r else 'not written'}")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


# -- command line ------------------------------------------------------------------------------

def demo_config() -> Path:
    """The demo config shipped in the package (configs/ at the repo root links to it)."""
    return shipped_config("demo.yaml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the whole pipeline from one YAML config (resumable)")
    p.add_argument("config", help="a YAML run config (see configs/)")
    sel = p.add_mutually_exclusive_group()
    # choices: a misspelt stage is argparse's error before the config is read, and --help names them
    names = stage_names()
    sel.add_argument("--only", action="extend", metavar="STAGES",
                     type=comma_list(_stage_choice, "stages"),
                     help="run just these stages, comma-separated (e.g. genome,bpe) or the option "
                          "repeated; the stages they read must be done. Stages, in order: "
                          f"{', '.join(names)}")
    sel.add_argument("--from", dest="start", metavar="STAGE", choices=names,
                     help="run this stage and every later one")
    _common(p)
    p.add_argument("--force", action="store_true",
                   help="redo the selected stages even when they are up to date")
    p.set_defaults(func=run_command)

    d = sub.add_parser("demo", help="the main job: configs/demo.yaml on hg19 chr20 "
                                    "(data fetched when needed)")
    _common(d)
    d.set_defaults(func=demo_command)


def _stage_choice(text: str) -> str:
    """One stage name of --only's list, refused as argparse refuses --from's bad choice."""
    if text not in stage_names():
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(map(repr, stage_names()))})")
    return text


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", action="store_true",
                   help="run nothing and write nothing: say which stages a run would redo, and "
                        "why (a changed setting, an upstream stage redone, a missing stage)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. bpe.merges=800 or run.dir=runs/x "
                        "(repeatable; VALUE is YAML)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--from-dir", metavar="DIR", help="a folder holding the data files the data "
                   "cache lacks (else $GROVERLM_DATA, then the network)")


def _run(config: str | Path, args: argparse.Namespace, only=None, start=None, force=False
         ) -> int:
    cfg = load_config(config, args.overrides)
    run_dir = run_folder(cfg)
    if args.plan:
        print(f"groverlm run: {config} -> {run_dir} (plan: nothing is run or written)")
        # where each data file would come from (a file to be fetched among them), then the stages
        run_pipeline(cfg, only=only, start=start, force=force, progress=not args.quiet,
                     from_dir=args.from_dir, on_stage=lambda r: print(r.line(), flush=True),
                     on_data=lambda line: print(f"data: {line}", flush=True), plan=True)
        return 0
    t0 = time.perf_counter()
    print(f"groverlm run: {config} -> {run_dir}", flush=True)
    run_pipeline(cfg, only=only, start=start, force=force, progress=not args.quiet,
                 from_dir=args.from_dir, on_stage=lambda r: print(r.line(), flush=True),
                 on_data=lambda line: log.info("data: %s", line))
    print(f"finished in {time.perf_counter() - t0:.0f} s; run folder {run_dir}")
    print(summarize_run(run_dir))
    return 0


def run_command(args: argparse.Namespace) -> int:
    return _run(args.config, args, only=args.only, start=args.start, force=args.force)


def demo_command(args: argparse.Namespace) -> int:
    return _run(demo_config(), args)
