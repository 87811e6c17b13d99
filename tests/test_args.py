"""Every command's flag defaults equal the config dataclass defaults (what YAML leaves out means).

The test walks the whole parser: a command missing from SOURCES, or a flag with a default that no
field accounts for, fails it, so a new flag cannot bring its own literal default unnoticed.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import replace

import pytest

from groverlm.analysis.analyze import AnalyzeConfig
from groverlm.analysis.annotations import AnnotationConfig
from groverlm.args import TrainConfig, default
from groverlm.baselines import TfidfConfig
from groverlm.bpe import BpeConfig
from groverlm.cli import build_parser
from groverlm.cnn import CnnConfig
from groverlm.config import load_config
from groverlm.corpus import CorpusConfig
from groverlm.embed import EmbedConfig
from groverlm.errors import GroverError
from groverlm.finetune import ClassifierConfig
from groverlm.models import parse_overrides
from groverlm.nextkmer import NextKmerBaselinesConfig, NextKmerSamplesConfig, kmer_classifier
from groverlm.pretrain import ModelConfig
from groverlm.score import ScoringConfig
from groverlm.select_vocab import SelectPretrainingConfig, select_baselines
from groverlm.tasks.common import SplitConfig
from groverlm.tasks.ctcf import CTCFConfig
from groverlm.tasks.promoter import Prom300Config
from groverlm.tasks.promscan import PromScanConfig

SPLIT = {"split": ("method", SplitConfig()), "split_fractions": ("fractions", SplitConfig()),
         "split_block": ("block", SplitConfig())}
NEXTKMER = [NextKmerSamplesConfig(), kmer_classifier(), NextKmerBaselinesConfig()]

# command -> (config objects whose defaults its flags carry, in lookup order; {dest: (field, obj)})
SOURCES: dict[str, tuple[list, dict]] = {
    "bpe train": ([BpeConfig()], {}),
    "corpus": ([CorpusConfig()], {}),
    "pretrain": ([ModelConfig(), TrainConfig()], {}),
    "embed": ([EmbedConfig()], {}),
    "score seqs": ([ScoringConfig()], {}),
    "score variants": ([ScoringConfig()], {}),
    "ism": ([ScoringConfig()], {}),
    "analyze": ([AnalyzeConfig(), AnnotationConfig()], {}),
    "tasks prom300": ([Prom300Config()], SPLIT),
    "tasks promscan": ([PromScanConfig()], SPLIT),
    "tasks ctcf": ([CTCFConfig()], SPLIT),
    "baselines tfidf": ([TfidfConfig()], {"k": ("ks", TfidfConfig()),
                                          "trees": ("n_estimators", TfidfConfig()),
                                          "jobs": ("n_jobs", TfidfConfig())}),
    "baselines cnn": ([CnnConfig()], {}),
    "finetune": ([ClassifierConfig()], {}),
    "nextkmer": (NEXTKMER, {"k": ("ks", NextKmerSamplesConfig())}),
    "select-vocab": ([SelectPretrainingConfig(), SelectPretrainingConfig().model, *NEXTKMER[:2],
                      select_baselines()],
                     {"k": ("ks", NextKmerSamplesConfig()),
                      "pretrain_batch_size": ("batch_size", SelectPretrainingConfig()),
                      "pretrain_lr": ("lr", SelectPretrainingConfig()),
                      "lr": ("lr", NEXTKMER[1]), "batch_size": ("batch_size", NEXTKMER[1])}),
}
NO_SETTINGS = {"bpe export", "run", "demo", "data fetch", "genome summary", "plot-log", "report", "compare",
               "kmer-vocab"}  # commands with no config dataclass: inputs and outputs only
# flags with a default and no field, each with the reason
NO_FIELD = {("bpe train", "checkpoint_minutes"): "how often the command saves its state; the "
            "runner's bpe stage does not checkpoint"}
IO = {"out", "overwrite", "quiet", "resume", "redo_nextkmer", "name", "tokens", "input", "format",
      "per_token", "vcf", "task", "vocab", "tss_format", "genome_context", "no_class_weight"}


def commands() -> dict[str, argparse.ArgumentParser]:
    out = {}

    def walk(parser, prefix):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs and prefix:
            out[" ".join(prefix)] = parser
        for a in subs:
            seen = set()  # an alias (`baseline` for `baselines`) is the same parser again
            for name, p in a.choices.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    walk(p, [*prefix, name])

    walk(build_parser(), [])
    return out


def as_field(value, like):
    """A flag's default in the field's form: "2,3" -> (2, 3) for a tuple field."""
    if isinstance(like, tuple) and isinstance(value, str):
        kind = type(like[0]) if like else str
        return tuple(kind(v) for v in value.split(",") if v)
    if isinstance(like, dict) and isinstance(value, list):  # --set KEY=VALUE (repeatable)
        return parse_overrides(value)
    return tuple(value) if isinstance(like, tuple) and isinstance(value, list) else value


def expected(dest: str, objs: list, renames: dict):
    """(found, field default) of a flag: its renamed field, else the first object holding it."""
    if dest in renames:
        name, obj = renames[dest]
        return True, getattr(obj, name)
    for obj in objs:
        if any(f.name == dest for f in dataclasses.fields(obj)):
            return True, getattr(obj, dest)
    return False, None


def test_every_command_is_classified():
    assert set(commands()) == set(SOURCES) | NO_SETTINGS


@pytest.mark.parametrize("command", sorted(SOURCES))
def test_flag_defaults_are_the_dataclass_defaults(command):
    objs, renames = SOURCES[command]
    checked = 0
    for a in commands()[command]._actions:
        if a.dest in ("help",) or a.dest in IO or a.required or (command, a.dest) in NO_FIELD:
            continue
        found, want = expected(a.dest, objs, renames)
        checked += found
        if a.default is None:
            continue  # None: the command takes the dataclass's value (or its documented rule)
        elif isinstance(a, argparse._StoreFalseAction | argparse._StoreTrueAction) and not found:
            continue  # a switch with no field, such as --rc of score (its field is found)
        else:
            assert found, f"{command} --{a.dest}: default {a.default!r} has no config field"
            assert as_field(a.default, want) == want, (command, a.dest, a.default, want)
    assert checked >= 1 or command == "bpe train"


SEEDS = ["finetune", "nextkmer", "select-vocab", "baselines tfidf", "baselines cnn"]


@pytest.mark.parametrize("command", SEEDS)
def test_every_seeds_option_lists_seeds_as_yaml_does(command):
    """`finetune --seeds 3` was three runs (seeds 0, 1, 2) while `baselines cnn --seeds 3` was the
    one seed 3, as `seeds: [3]` in YAML: every --seeds is now a comma-separated list."""
    [a] = [a for a in commands()[command]._actions if a.dest == "seeds"]
    assert a.type("0,2") == [0, 2] and a.type("3") == [3], command
    assert "comma-separated seeds, e.g. 0,1,2" in a.help, command


def test_seeds_lists_every_command_with_a_seeds_option():
    assert sorted(c for c, p in commands().items()
                  if any("--seeds" in a.option_strings for a in p._actions)) == sorted(SEEDS)


@pytest.mark.parametrize("cls", [ClassifierConfig, TfidfConfig, CnnConfig])
def test_max_train_0_is_every_row_everywhere(cls):
    """`baselines cnn --max-train 0` trained on every row while finetune and baselines tfidf
    refused 0; every max_train now reads 0 as null (all rows) and refuses a negative one."""
    assert cls(max_train=0).max_train is None and cls(max_train=0) == replace(cls(), max_train=None)
    assert cls(max_train=2).max_train == 2
    for bad in (-1, 1):
        with pytest.raises(GroverError, match=f"^--max-train must be 0 \\(every training row\\) "
                                              f"or at least 2, got {bad}$"):
            cls(max_train=bad)


def test_yaml_sections_default_to_the_command_line_defaults():
    """What a YAML file leaves out is what the command line leaves out."""
    cfg = load_config(None, [])
    assert cfg.stage("nextkmer").classifier == kmer_classifier()
    assert cfg.stage("nextkmer").baselines == NextKmerBaselinesConfig()
    assert cfg.stage("select_vocab").classifier == kmer_classifier()
    assert cfg.stage("select_vocab").baselines == select_baselines()
    assert cfg.stage("pretrain").train == TrainConfig()
    assert default(TrainConfig, "lr") == TrainConfig().lr


def test_volatile_fields_are_marked_once_and_read_everywhere():
    """A field marked volatile is left out of every resume check and the runner's skip check."""
    from groverlm.args import stable, volatile_keys
    from groverlm.config import STAGE_SECTIONS

    assert stable(TrainConfig(threads=1, device="cpu")) == stable(TrainConfig(threads=4))
    assert stable(TrainConfig(lr=1e-3)) != stable(TrainConfig())
    assert stable(SelectPretrainingConfig(threads=1)) == stable(SelectPretrainingConfig())
    assert stable(ClassifierConfig(eval_batch_size=8)) == stable(ClassifierConfig())
    assert "pretraining.threads" in volatile_keys(STAGE_SECTIONS["select_vocab"])  # the runner's
    assert "train.threads" in volatile_keys(STAGE_SECTIONS["pretrain"])
    assert "cnn.threads" in volatile_keys(STAGE_SECTIONS["baselines"])  # through `CnnConfig | None`
    # each task's changes to the classifier (finetune.per_task.ctcf.eval_batch_size)
    assert "per_task.*.eval_batch_size" in volatile_keys(STAGE_SECTIONS["finetune"])


def test_reading_a_config_does_not_import_torch():
    """Settings (config.py, args.py and every stage's dataclass) load without torch, so `--help`,
    config errors and the runner's skip checks answer at once."""
    import subprocess
    import sys

    code = ("import sys, groverlm.config, groverlm.args; "
            "groverlm.config.load_config(None, ['bpe.merges=800']); "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_switch_that_turns_something_off_says_so():
    """A --no-X switch's help says it turns something off (add_fields used the field's comment,
    what X does, which read as the opposite of what the switch does)."""
    switches = [(name, a) for name, p in commands().items() for a in p._actions
                if a.option_strings and a.option_strings[0].startswith("--no-")]
    assert any(a.dest == "unigram_bias" for _, a in switches)
    for name, a in switches:
        assert a.help and a.help.startswith(("switch off", "skip", "do not")), (name, a.help)


@pytest.mark.parametrize("command", sorted(SOURCES) + sorted(NO_SETTINGS))
def test_every_option_says_what_it_is(command):
    """Every option and positional has a help line, not a bare `--seed SEED` or '(default 2000)'
    (corpus --seed, ism --genome, nextkmer --dev-samples once); a SUPPRESSed one is left out on
    purpose."""
    for a in commands()[command]._actions:
        if a.help == argparse.SUPPRESS or isinstance(a, argparse._HelpAction):
            continue
        text = (a.help or "").strip()
        assert text and not text.startswith("(default"), (command, a.option_strings or a.dest)


def test_every_device_option_defaults_to_the_gpu_when_there_is_one():
    """embed and analyze defaulted to cpu while pretrain, score, ism, finetune and nextkmer took
    auto: a user with a GPU embedded on the CPU unless told."""
    defaults = {name: a.default for name, p in commands().items() for a in p._actions
                if a.dest == "device"}
    assert {"embed", "analyze", "score seqs", "pretrain"} <= set(defaults)
    assert set(defaults.values()) == {"auto"}, defaults
