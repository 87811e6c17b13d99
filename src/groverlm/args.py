"""Settings shared by the command line and the YAML run config, torch-free (litgpt's `args.py`).

Reads and writes nothing. Every setting's default lives on a config dataclass field; a command's
flag is generated from it (`add_fields`: type, default, and the field's comment as help) or takes
its default from there (`default(Cls, "name")`, `listed(...)`), never from a literal of its own, so
`groverlm pretrain --help` and a YAML file that leaves a key out mean the same value.
tests/test_args.py walks every command and checks each flag's default against its field. Every
`--set KEY=VALUE`, the runner's and the model's, is read by `parse_override`.

A field that may change between a run and its resumption (or between a finished stage and the
next `groverlm run`) without changing any result, such as a device, a thread count or an inference
batch size, is declared with `volatile(default)`; `volatile_keys` and `stable` read that mark, so
the runner's skip check and each stage's resume check agree on one list.

`TrainConfig` and `MaskingConfig` live here, not in train.py and masking.py, because the commands
that expose them (pretrain, the runner's YAML) must stay importable without torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import typing
from dataclasses import dataclass
from typing import Any

import yaml

from groverlm.errors import GroverError


def default(cls: type, name: str) -> Any:
    """The default of dataclass field `name` of `cls` (its default_factory called when it has one).

    >>> default(TrainConfig, "lr"), default(TrainConfig, "adam_betas")
    (0.0004, (0.9, 0.98))
    """
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


VOLATILE = "volatile"  # field metadata key


def volatile(default: Any) -> Any:
    """A dataclass field whose value may change without changing any result (see above)."""
    return dataclasses.field(default=default, metadata={VOLATILE: True})


CHANGES_TO = "changes_to"  # field metadata key


def changes_to(name: str) -> Any:
    """A dataclass field {name: {setting: value}} whose entries change the sibling config field
    `name` (finetune's per_task changes `classifier` per task): a run config checks each setting's
    type and value as that field's own, and names it (`finetune.per_task.ctcf.max_train`)."""
    return dataclasses.field(default_factory=dict, metadata={CHANGES_TO: name})


def volatile_keys(cls: type) -> tuple[str, ...]:
    """Dotted names of the volatile fields of `cls` and of the config dataclasses nested in it
    (an optional one, `CnnConfig | None`, included); those of a field of changes to another
    (`changes_to`: finetune.per_task) as `per_task.*.device`, every entry's (`drop_keys`).

    >>> volatile_keys(TrainConfig)
    ('eval_every', 'save_every', 'keep_checkpoints', 'log_every', 'device', 'compile', 'threads')
    """
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get(VOLATILE):
            out.append(f.name)
            continue
        if CHANGES_TO in f.metadata:  # each entry's changes: per_task.*.device as classifier.device
            out += [f"{f.name}.*.{k}" for k in volatile_keys(hints[f.metadata[CHANGES_TO]])]
            continue
        for t in (hints[f.name], *typing.get_args(hints[f.name])):
            if dataclasses.is_dataclass(t):
                out += [f"{f.name}.{k}" for k in volatile_keys(t)]
                break
    return tuple(out)


def drop_keys(d: dict[str, Any], keys: typing.Iterable[str]) -> dict[str, Any]:
    """`d` (nested dicts) without the dotted `keys`, in place; returns it. A `*` stands for every
    entry of the dict there, and an entry that the drop leaves empty goes too (a task's changes
    that were all volatile are no changes).

    >>> drop_keys({"a": {"b": 1, "c": 2}, "t": {"x": {"d": 1}, "y": {"d": 2, "e": 3}}},
    ...           ["a.b", "t.*.d"])
    {'a': {'c': 2}, 't': {'y': {'e': 3}}}
    """
    for key in keys:
        _drop_key(d, key.split("."))
    return d


def _drop_key(node: Any, path: list[str]) -> None:
    if not isinstance(node, dict):
        return
    first, *rest = path
    if not rest:
        node.pop(first, None)
    elif first == "*":
        for k in list(node):
            _drop_key(node[k], rest)
            if node[k] == {}:
                del node[k]
    else:
        _drop_key(node.get(first), rest)


def as_plain(cfg: Any) -> Any:
    """A config dataclass as nested dicts and lists (tuples become lists), as JSON would store it."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def drop_added_defaults(now: dict[str, Any], saved: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """Drop from `now` (the settings of config dataclass `cfg` as compared, plain: `as_plain`)
    each one that a finished record of them, `saved`, lacks and that holds its default in `cfg`'s
    class: added since the record was made, at the value it was made with (a release's new
    baselines.tfidf.select, default mcc, left every finished stage and part as it was). Nested
    sections too. In place; returns `now`.

    >>> @dataclass
    ... class C:
    ...     a: int = 1
    ...     new: str = "mcc"
    >>> drop_added_defaults({"a": 1, "new": "mcc"}, {"a": 1}, C())
    {'a': 1}
    >>> drop_added_defaults({"a": 1, "new": "auc"}, {"a": 1}, C(new="auc"))
    {'a': 1, 'new': 'auc'}
    """
    if not dataclasses.is_dataclass(cfg):
        return now
    defaults = as_plain(type(cfg)())
    for k in [k for k in now if k not in saved]:
        if k in defaults and now[k] == defaults[k]:
            now.pop(k)
    for k, v in now.items():
        if isinstance(v, dict) and isinstance(saved.get(k), dict):
            drop_added_defaults(v, saved[k], getattr(cfg, k, None))
    return now


def stable(cfg: Any) -> dict[str, Any]:
    """`asdict(cfg)` without its volatile fields: what decides whether a run may be resumed."""
    return drop_keys(dataclasses.asdict(cfg), volatile_keys(type(cfg)))


def field_help(cls: type) -> dict[str, str]:
    """Each field's comment in the class source (`name: type = default  # help`, with the comment
    lines that continue it): the help text of its flag, written once, beside the default."""
    out: dict[str, str] = {}
    last, above = None, []  # the field a comment line continues; comment lines above a field
    for line in inspect.getsource(cls).splitlines():
        field = re.match(r"\s+(\w+): [^#]*?(?:#\s*(.*))?$", line)
        more = re.match(r"\s+#(\s*)(.*)$", line)
        if more and last is not None and len(more.group(1)) > 1:  # indented under the one beside
            out[last] += " " + more.group(2)
        elif more:
            last = None
            above.append(more.group(2))
        elif field:
            last = field.group(1)
            out[last] = field.group(2) or " ".join(above)  # a comment above when none beside
            above = []
        else:
            last, above = None, []
    return out


SEED_FIELDS = ("seed", "seeds")  # config fields and options that hold seeds (0 or more)


def seed_arg(text: str) -> int:
    """argparse type of every --seed: an integer, 0 or more (numpy's generators take no other).

    >>> seed_arg("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (seeds are 0 or more)")
    return value


def comma_list(kind: typing.Callable[[str], Any], what: str) -> typing.Callable[[str], list]:
    """argparse type of a comma-separated list, each item read by `kind` (int, float, seed_arg);
    a bad item is argparse's one-line error: `kind`'s own message, or that the list is not `what`.

    >>> comma_list(float, "minutes")("4,6.5"), comma_list(seed_arg, "seeds")("0,1")
    ([4.0, 6.5], [0, 1])
    """
    def convert(text: str) -> list:
        try:
            return [kind(item) for item in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated {what}") from None

    return convert


def seed_list(text: str) -> list[int]:
    """argparse type of every --seeds: comma-separated seeds, each 0 or more, as a run config lists
    them (`seeds: [0, 1, 2]`); `3` is the one seed 3, never a count of runs.

    >>> seed_list("0,1,2"), seed_list("3")
    ([0, 1, 2], [3])
    """
    return comma_list(seed_arg, "seeds")(text)


def add_seeds(parser: Any, default: typing.Sequence[int], what: str) -> None:
    """The --seeds option of a command that runs once per seed, its default the config field's
    (`default`), read by `seed_list`; `what` says what each seed is."""
    parser.add_argument("--seeds", type=seed_list, default=list(default), metavar="SEEDS",
                        help=f"comma-separated seeds, e.g. 0,1,2: {what} (default "
                             f"{listed(default)})")


def every_row_as_none(max_train: int | None) -> int | None:
    """A training subset size (every command's --max-train, YAML's max_train) as the stages use
    it: 0, as null, means every training row (None); a GroverError below 0 or at 1 (a subset of
    one row holds one class). The CNN's default is a subset, so 0 is how a command asks for all.

    >>> every_row_as_none(0), every_row_as_none(None), every_row_as_none(1500)
    (None, None, 1500)
    """
    if not max_train:
        return None
    if max_train < 2:
        raise GroverError(f"--max-train must be 0 (every training row) or at least 2, got "
                          f"{max_train}")
    return max_train


def check_unique_seeds(seeds: typing.Sequence[int]) -> None:
    """Each listed seed is one more run: a repeat would count one run twice in a mean over seeds
    and shrink its spread."""
    twice = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if twice:
        raise GroverError(f"seed {twice[0]} is listed twice (each seed is one run): list "
                          "distinct seeds")


def add_fields(parser: Any, cls: type, *names: str, choices: dict[str, Any] | None = None) -> None:
    """One flag per field of `cls`: `--field-name`, with the field's type, default and comment
    (`field_help`) as its help; a bool field becomes a switch that flips its default.

    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_fields(p, TrainConfig, "lr", "compile")
    >>> p.parse_args([]).lr, p.parse_args(["--lr", "1e-3", "--compile"]).compile
    (0.0004, True)
    """
    hints, helps = typing.get_type_hints(cls), field_help(cls)
    for name in names:
        value, kind = default(cls, name), hints[name]
        flag = "--" + name.replace("_", "-")
        text = (helps.get(name) or name.replace("_", " ")).replace("%", "%%")
        if kind is bool:
            # the comment says what the field does when true: a --no- switch turns that off
            parser.add_argument(flag if not value else f"--no-{flag[2:]}", dest=name,
                                action="store_false" if value else "store_true",
                                help=f"switch off (on by default): {text}" if value else text)
            continue
        types = [t for t in (kind, *typing.get_args(kind)) if t in (int, float, str)]
        convert = seed_arg if name in SEED_FIELDS and types[:1] == [int] else types[0] if types else str
        parser.add_argument(flag, type=convert, default=value,
                            choices=(choices or {}).get(name), help=f"{text} (default {value})")


def parse_value(text: str) -> Any:
    """A KEY=VALUE value, read as YAML (numbers, true/false, null, [lists]; never evaluated), with
    exponent floats such as 1e-3 as numbers too (YAML 1.1 would keep them strings).

    >>> parse_value("1e-3"), parse_value("[4, 6]"), parse_value("gelu"), parse_value("")
    (0.001, [4, 6], 'gelu', None)
    """
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as err:
        raise GroverError(f"{text!r} is not a valid YAML value ({err.problem})") from None
    return exponent_float(value)


def exponent_float(value: Any) -> Any:
    """`value` as a float when it is a string YAML 1.1 failed to read as one (1e-3, 4E+2: no
    decimal point), else unchanged.

    >>> exponent_float("4e-4"), exponent_float("gelu"), exponent_float(3)
    (0.0004, 'gelu', 3)
    """
    if isinstance(value, str) and re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)[eE][+-]?\d+", value):
        return float(value)
    return value


def parse_override(text: str, example: str = "bpe.merges") -> tuple[tuple[str, ...], Any]:
    """The one KEY=VALUE grammar of every `--set`: `a.b=value` -> (("a", "b"), `parse_value`);
    `example` is the KEY an error shows (a run config's, a model config's).

    >>> parse_override("baselines.tfidf.ks=[4, 6]")
    (('baselines', 'tfidf', 'ks'), [4, 6])
    >>> parse_override("genome.max_bp=null")
    (('genome', 'max_bp'), None)
    """
    key, sep, value = text.partition("=")
    path = tuple(key.strip().split("."))
    if not sep or not all(path):
        raise GroverError(f"--set {text}: expected KEY=VALUE with a KEY such as {example}")
    try:
        return path, parse_value(value)
    except GroverError as err:
        raise GroverError(f"--set {text}: {err}") from None


@dataclass(frozen=True)
class MaskingConfig:
    """Which tokens become targets and what the model sees in their place."""

    rate: float = 0.022  # share of non-special tokens selected as targets (GROVER 2.2%, BERT 15%)
    mask_fraction: float = 0.8  # of the targets: shown as [MASK]
    random_fraction: float = 0.2  # of the targets: shown as a random token; the rest stay unchanged
    min_per_sample: int = 1  # targets per sample at least (tiny samples would often get none)
    # no two targets side by side: each is learned from its true neighbours, as the evaluation
    # (2.2%, nearly always isolated) and the context table predict it; at 25% random targets 44%
    # lose a neighbour to another target. At most 25% of tokens can be chosen this way.
    isolated: bool = False

    def __post_init__(self):
        if not 0.0 < self.rate < 1.0:
            raise GroverError(f"mask rate must be in (0, 1), got {self.rate}")
        if self.mask_fraction < 0 or self.random_fraction < 0 or (
                self.mask_fraction + self.random_fraction > 1.0 + 1e-9):
            raise GroverError(f"mask split {self.mask_fraction}/{self.random_fraction} must be "
                             "non-negative and sum to at most 1")
        if self.min_per_sample < 0:
            raise GroverError("min_per_sample must be >= 0")
        if self.isolated and self.rate > 0.25:
            raise GroverError(f"isolated targets are at most 25% of tokens, got {self.rate}")
        if self.isolated and self.min_per_sample > 1:  # forced targets could sit side by side
            raise GroverError("isolated targets take min_per_sample 0 or 1")


PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 autocast on cuda, fp32 on cpu


def check_precision(precision: str) -> None:
    """A GroverError unless `precision` is one of PRECISIONS (pretraining's and fine-tuning's)."""
    if precision not in PRECISIONS:
        raise GroverError(f"--precision must be {', '.join(PRECISIONS)}, got {precision!r}")


def listed(values: Any) -> str:
    """A tuple default as a comma-separated flag value: (2, 3, 4) -> "2,3,4"; None -> ""."""
    return ",".join(str(v) for v in values or ())


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of one run (defaults: GROVER's pretraining where it says)."""

    max_steps: int = 1000  # optimizer steps; the schedule decays to 0 at the last one
    batch_size: int = 32  # samples per micro-batch on each process
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = this x batch x ranks)
    lr: float = 4e-4  # peak learning rate (GROVER: 4e-4)
    warmup_steps: int | None = None  # linear warmup; None: 6% of max_steps (RoBERTa's share)
    weight_decay: float = 0.01  # AdamW, not applied to biases and LayerNorm weights
    adam_betas: tuple[float, float] = (0.9, 0.98)  # RoBERTa's beta2: steadier with large batches
    adam_eps: float = 1e-6
    clip_norm: float = 1.0  # gradient-norm clipping; 0 disables
    eval_every: int = volatile(500)  # steps between evaluations (0: only at the end)
    save_every: int = volatile(500)  # steps between checkpoints (and one at the end)
    keep_checkpoints: int = volatile(2)  # newest checkpoints kept on disk
    log_every: int = volatile(10)  # steps between log records
    seed: int = 0  # data order, masks, dropout
    device: str = volatile("auto")  # auto: cuda when available, else cpu
    precision: str = "auto"  # auto: bf16 autocast on cuda, fp32 on cpu; or "bf16", "fp32"
    compile: bool = volatile(False)  # torch.compile the model (worth it on a GPU for long runs)
    threads: int | None = volatile(None)  # torch CPU threads; None: torch's default per rank
    bucket: int = 64  # batches per length-sorted pool: larger wastes less padding, mixes less

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "bucket"):
            if getattr(self, name) < 1:
                raise GroverError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("eval_every", "save_every", "weight_decay", "clip_norm"):
            if getattr(self, name) < 0:
                raise GroverError(f"--{name.replace('_', '-')} must not be negative")
        if self.lr <= 0:
            raise GroverError(f"--lr must be positive, got {self.lr}")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps <= self.max_steps:
            raise GroverError(f"--warmup-steps must be between 0 and --max-steps, "
                              f"got {self.warmup_steps}")
        check_precision(self.precision)
        if self.keep_checkpoints < 1:
            raise GroverError("--keep-checkpoints must be at least 1")

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else int(0.06 * self.max_steps)
