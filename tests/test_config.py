"""Run config: YAML + --set overrides into frozen dataclasses; every bad key or value is one line."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import typing
from pathlib import Path

import pytest

from groverlm.cli import main
from groverlm.config import (
    SECTIONS,
    STAGE_SECTIONS,
    WRITTEN,
    RunConfig,
    dump_config,
    load_config,
    parse_override,
)
from groverlm.corpus import Region
from groverlm.errors import GroverError
from groverlm.runner import STAGES, demo_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["demo.yaml", "mini.yaml", "grover-hg19.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert isinstance(cfg, RunConfig)
    assert set(cfg.stages) == set(STAGE_SECTIONS)
    assert cfg.stage("bpe").cycles <= cfg.stage("bpe").merges


def test_repo_configs_are_the_packaged_ones():
    # one source of truth: configs/ at the repo root is the package's configs folder (a link in a
    # checkout; an sdist holds a copy, and a non-editable install its own): the same files, byte
    # for byte
    packaged = demo_config().parent
    assert demo_config().is_file()
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert names == sorted(p.name for p in packaged.glob("*.yaml")) and "demo.yaml" in names
    assert all((CONFIGS / n).read_bytes() == (packaged / n).read_bytes() for n in names)


def test_every_runner_stage_has_a_section_in_order():
    assert [s.name for s in STAGES] == list(STAGE_SECTIONS)


def test_sections_are_frozen_and_defaults_fill_in(tmp_path):
    cfg = load_config(write(tmp_path, "bpe:\n  merges: 50\n  cycles: 20\n"))
    bpe = cfg.stage("bpe")
    assert (bpe.merges, bpe.cycles, bpe.chunk) == (50, 20, None)
    assert cfg.stage("tasks").prom300.upstream == 249  # untouched section: the builder's default
    with pytest.raises(dataclasses.FrozenInstanceError):
        bpe.merges = 3


def test_unknown_key_names_file_line_and_key(tmp_path):
    p = write(tmp_path, "run:\n  dir: x\nbpe:\n  merges: 100\n  cycels: 10\n")
    with pytest.raises(GroverError) as err:
        load_config(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:5: ")
    assert "'bpe.cycels'" in msg and "'cycles'" in msg  # the key, and the close match


def test_unknown_nested_key_and_section(tmp_path):
    p = write(tmp_path, "tasks:\n  prom300:\n    split:\n      blocks: 5\n")
    with pytest.raises(GroverError, match=r":4: unknown config key 'tasks.prom300.split.blocks'"):
        load_config(p)
    with pytest.raises(GroverError, match=r":1: unknown config key 'pretrian'"):
        load_config(write(tmp_path, "pretrian: {}\n"))


def test_unknown_key_from_set_names_the_override():
    with pytest.raises(GroverError, match=r"^--set bpe\.mergez=3: unknown config key 'bpe.mergez'"):
        load_config(None, ["bpe.mergez=3"])
    with pytest.raises(GroverError, match=r"^--set nosuch\.x=1: unknown config key 'nosuch'"):
        load_config(None, ["nosuch.x=1"])


def test_an_error_names_the_set_that_gave_the_value():
    # the later --set replaces the earlier one's value, so the error is the later one's
    with pytest.raises(GroverError, match=r"^--set run\.dir=null: run\.dir = None is not"):
        load_config(None, ["run.dir=runs/a", "run.dir=null"])
    with pytest.raises(GroverError, match=r"^--set bpe=5: bpe must be a mapping"):
        load_config(None, ["bpe.merges=300", "bpe=5"])


def test_an_error_names_where_the_offending_value_came_from(tmp_path):
    """A --set of one key blamed itself for what the file gave its section (`bpe: 5`, or a key
    left at its default there), and the file's line for what a --set had replaced."""
    p = write(tmp_path, "run:\n  dir: r\nbpe: 5\n")
    with pytest.raises(GroverError, match=rf"^{re.escape(str(p))}:3: bpe must be a mapping of "
                                          r"keys, got 5 \(--set bpe\.merges=800 sets a key"):
        load_config(p, ["bpe.merges=800"])
    p = write(tmp_path, "tasks:\n  prom300: [1]\n")
    with pytest.raises(GroverError, match=rf"^{re.escape(str(p))}:2: tasks\.prom300 must be a "):
        load_config(p, ["tasks.prom300.split.block=5"])
    with pytest.raises(GroverError, match=r"^--set bpe=5: bpe must be a mapping of keys, got 5 "
                                          r"\(--set bpe\.merges=1 sets a key"):
        load_config(None, ["bpe.cycles=9", "bpe=5", "bpe.merges=1"])
    p = write(tmp_path, "bpe:\n  merges: 800\ncorpus:\n  max_tokens: 126\n")
    with pytest.raises(GroverError, match=r"^--set bpe=\{merges: -1\}: bpe: merges must be"):
        load_config(p, ["bpe={merges: -1}"])
    cfg = load_config(p, ["corpus.min_tokens=2", "genome.max_bp=100"])
    with pytest.raises(GroverError, match=rf"^{re.escape(str(p))}:3: corpus\.holdout chr9"):
        with cfg.naming_sources():  # a later check about a key left at its default
            raise GroverError("corpus.holdout chr9:0-10: no such record", cfg.source)
    assert str(cfg.error("corpus.min_tokens", "x")) == "--set corpus.min_tokens=2: x"
    assert str(cfg.error("genome.chroms", "x")) == f"{p}: x"  # left at its default
    assert str(cfg.error("corpus", "x")) == "--set corpus.min_tokens=2: x"  # the section as a whole
    assert cfg.given_by_set("genome.max_bp") and not cfg.given_by_set("genome.chroms")
    assert cfg.given_by_set("bpe.merges") is False
    assert load_config(p, ["run={dir: x}"]).given_by_set("run.dir")


@pytest.mark.parametrize("value", [".nan", ".inf", "1e400"])
def test_a_number_setting_is_finite(value):
    # a NaN learning rate passed `lr <= 0` and trained on; 1e400 reads as inf
    with pytest.raises(GroverError, match=rf"^--set pretrain\.train\.lr={value}: .* finite"):
        load_config(None, [f"pretrain.train.lr={value}"])


def test_wrong_types_are_errors_naming_key_and_line(tmp_path):
    with pytest.raises(GroverError, match=r":2: bpe\.merges = 'many' is not an integer"):
        load_config(write(tmp_path, "bpe:\n  merges: many\n"))
    with pytest.raises(GroverError, match=r"baselines\.bpe = 1 is not true/false"):
        load_config(None, ["baselines.bpe=1"])
    with pytest.raises(GroverError, match=r"must be a list \(a string each\), got 'a.bed'; write "
                                          r"\[a.bed\] for one item$"):
        load_config(None, ["data.ctcf_peaks=a.bed"])
    # the commands' --seeds 0,1 written as a setting: it said 'must be a list (a list (an
    # integer each)), got '0,1'; write [0,1] for one item', two items
    with pytest.raises(GroverError, match=r"seeds must be a list \(an integer each\), got '0,1'; "
                                          r"write \[0,1\] in brackets$"):
        load_config(None, ["finetune.classifier.seeds=0,1"])
    with pytest.raises(GroverError, match=r"must hold 3 items"):
        load_config(None, ["tasks.ctcf.split.fractions=[0.5,0.5]"])
    with pytest.raises(GroverError, match=r"bpe must be a mapping"):
        load_config(write(tmp_path, "bpe: 5\n"))


def test_stage_validation_is_reported_at_the_section(tmp_path):
    p = write(tmp_path, "bpe:\n  merges: 100\n  cycles: 500\n")
    with pytest.raises(GroverError) as err:
        load_config(p)
    assert str(err.value).startswith(f"{p}:3: bpe: cycles must be between 1 and merges (100)")
    with pytest.raises(GroverError, match=r"--set tasks\.prom300\.negatives=x: .*negatives"):
        load_config(None, ["tasks.prom300.negatives=x"])


def test_a_stage_check_names_the_run_keys_not_the_commands_flags(tmp_path):
    """Settings checks written for a stage command named its flags in a run's errors too
    (`need 1 <= --min-tokens`, `--holdout 'chr20:9-3'`, `--trees`)."""
    p = write(tmp_path, "corpus:\n  max_tokens: 100\n  min_tokens: 0\n")
    with pytest.raises(GroverError) as err:
        load_config(p)
    assert str(err.value) == f"{p}:3: need 1 <= corpus.min_tokens (0) <= corpus.max_tokens (100)"
    p = write(tmp_path, "corpus:\n  holdout: ['chr20:9-3']\n")
    with pytest.raises(GroverError) as err:
        load_config(p)
    assert str(err.value) == f"{p}:2: corpus.holdout 'chr20:9-3': start must be below end"
    for setting, message in [
            ("baselines.tfidf.n_estimators=0", "baselines.tfidf.n_estimators must be at least 1"),
            ("nextkmer.samples.ks=[9]", "nextkmer.samples.ks values must be between 1 and 8"),
            ("pretrain.train.warmup_steps=5000", "pretrain.train.warmup_steps must be between 0 "
                                                 "and pretrain.train.max_steps")]:
        with pytest.raises(GroverError) as err:
            load_config(None, [setting])
        assert str(err.value).startswith(f"--set {setting}: {message}"), str(err.value)


def test_every_flag_a_settings_check_names_is_a_field_of_its_section():
    """_flags_as_keys turns a section's flags into its keys: a flag named otherwise than its field
    must be in the class's FLAGS, or a run's error would name the command's flag."""
    pending, seen = list(SECTIONS.values()), set()
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            pending += [t for t in (hints[f.name], *typing.get_args(hints[f.name]))
                        if dataclasses.is_dataclass(t)]
        if "__post_init__" in vars(cls):
            flags = {getattr(cls, "FLAGS", {}).get(f.name, "--" + f.name.replace("_", "-"))
                     for f in dataclasses.fields(cls)}
            named = set(re.findall(r"(?<![\w-])--\w[\w-]*", inspect.getsource(cls.__post_init__)))
            assert named <= flags, (cls.__name__, named - flags)
    assert len(seen) > 20


def test_finetune_per_task_settings_change_one_task(tmp_path):
    p = write(tmp_path, "finetune:\n  classifier:\n    max_train: 1500\n    epochs: 4\n"
                        "  per_task:\n    ctcf: {max_train: null, seeds: [3]}\n")
    ft = load_config(p).stage("finetune")
    assert ft.classifier_for("ctcf").max_train is None and ft.classifier_for("ctcf").seeds == (3,)
    assert ft.classifier_for("ctcf").epochs == 4 and ft.classifier_for("promscan").max_train == 1500
    with pytest.raises(GroverError, match=r":4: unknown config key 'finetune.per_task.ctcf."
                                          r"maxtrain' \(did you mean 'max_train'\?\)"):
        load_config(write(tmp_path, "finetune:\n  classifier: {}\n  per_task:\n"
                                    "    ctcf: {maxtrain: 3}\n"))
    with pytest.raises(GroverError, match="^--set finetune.per_task.ctcf.max_train=1: finetune."
                                          "per_task.ctcf.max_train must be 0 \\(every training row\\) or "
                                          "at least 2, got 1$"):
        load_config(None, ["finetune.per_task.ctcf.max_train=1"])
    with pytest.raises(GroverError, match="tasks must be among"):
        load_config(None, ["finetune.per_task.nope.max_train=100"])


def nested_defaults(obj, path=()):
    """(dotted path, value) of every field of every nested dataclass default in a section."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield (*path, f.name), value
            yield from nested_defaults(value, (*path, f.name))


@pytest.mark.parametrize("section", sorted(STAGE_SECTIONS))
def test_a_nested_key_keeps_its_sections_other_defaults(section):
    """Setting one key of a nested section (`nextkmer.classifier.epochs`) leaves every other key at
    that field's default, which a default_factory may set apart from the class defaults."""
    default = STAGE_SECTIONS[section]()
    for path, value in nested_defaults(default):
        first = dataclasses.fields(value)[0]
        key = ".".join((section, *path, first.name))
        text = json.dumps(getattr(value, first.name))  # JSON is YAML: null, lists for tuples
        got = load_config(None, [f"{key}={text}"]).stage(section)
        for name in path:
            got = getattr(got, name)
        assert got == value, key


def test_overrides_parse_yaml_values_and_beat_the_file(tmp_path):
    p = write(tmp_path, "bpe:\n  merges: 100\n  cycles: 50\n")
    cfg = load_config(p, ["bpe.cycles=80", "baselines.tfidf.ks=[4, 6]", "genome.max_bp=null",
                          "tasks.ctcf.rel_threshold=0.9", "pretrain.model.overrides={hidden_size: 64}",
                          "run.dir=runs/x y"])
    assert cfg.stage("bpe").merges == 100 and cfg.stage("bpe").cycles == 80
    assert cfg.stage("baselines").tfidf.ks == (4, 6)  # a YAML list becomes the declared tuple
    assert cfg.stage("genome").max_bp is None
    assert cfg.stage("tasks").ctcf.rel_threshold == 0.9
    assert cfg.stage("pretrain").model.overrides == {"hidden_size": 64}
    assert cfg.run.dir == "runs/x y"


def test_int_accepted_as_float_but_not_the_reverse():
    assert load_config(None, ["pretrain.train.lr=1"]).stage("pretrain").train.lr == 1.0
    with pytest.raises(GroverError, match="is not an integer"):
        load_config(None, ["bpe.merges=10.5"])


def test_values_are_never_evaluated(tmp_path):
    with pytest.raises(GroverError, match="is not an integer"):
        load_config(None, ["bpe.merges=__import__('os').getpid()"])
    p = write(tmp_path, "bpe:\n  merges: !!python/object/apply:os.getpid []\n")
    with pytest.raises(GroverError, match=r"run\.yaml:2: not valid YAML"):
        load_config(p)


def test_bad_override_syntax():
    for text in ("bpe.merges", "=3", "bpe..merges=3"):
        with pytest.raises(GroverError, match="expected KEY=VALUE"):
            parse_override(text)
    with pytest.raises(GroverError, match=r"^--set bpe.merges.x=1: bpe.merges is not a section"):
        load_config(None, ["bpe.merges=3", "bpe.merges.x=1"])


def test_region_strings_and_mappings(tmp_path):
    p = write(tmp_path, "corpus:\n  holdout: ['chr20:1000-2000', {chrom: chr1}]\n")
    assert load_config(p).stage("corpus").holdout == (Region("chr20", 1000, 2000), Region("chr1"))


@pytest.mark.parametrize("region, message", [
    ("{}", "corpus.holdout needs chrom (got {})"),
    ("{start: 5, end: 9}", "corpus.holdout needs chrom (got {'start': 5, 'end': 9})"),
    ("{chrom: chr20, start: 9, end: 3}", "corpus.holdout: start must be below end"),
    ("{chrom: chr20, start: -5}", "corpus.holdout: start must be 0 or more"),
    ("{chrom: ''}", "corpus.holdout: chrom must name a record"),
])
def test_a_region_mapping_in_a_list_is_checked_as_a_region_string_is(tmp_path, region, message):
    """A mapping with no chrom was a Python TypeError's text (`Region.__init__() missing 1
    required positional argument`); one with start past end, or below 0, was taken (the string
    form refuses both)."""
    p = write(tmp_path, f"corpus:\n  max_tokens: 100\n  holdout: ['chr20:0-9', {region}]\n")
    with pytest.raises(GroverError) as err:
        load_config(p)
    assert str(err.value) == f"{p}:3: {message}"
    with pytest.raises(GroverError) as err:
        load_config(None, [f"corpus.holdout=[{region}]"])
    assert str(err.value) == f"--set corpus.holdout=[{region}]: {message}"


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(GroverError, match=r"run\.yaml:3: not valid YAML"):
        load_config(write(tmp_path, "bpe:\n  merges: 1\n   cycles: [\n"))
    with pytest.raises(GroverError, match="holds a mapping of sections"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(GroverError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    empty = load_config(write(tmp_path, ""))  # an empty file: all defaults
    assert empty.stages == load_config(None).stages


def test_a_key_given_twice_is_an_error(tmp_path):
    with pytest.raises(GroverError, match=r"run\.yaml:4: bpe\.merges is given twice \(first on line 2"):
        load_config(write(tmp_path, "bpe:\n  merges: 100\n  cycles: 50\n  merges: 200\n"))
    with pytest.raises(GroverError, match=r"run\.yaml:3: bpe is given twice"):
        load_config(write(tmp_path, "bpe: {merges: 100}\ngenome: {}\nbpe: {cycles: 50}\n"))


def test_exponent_numbers_in_yaml_are_numbers_where_a_number_is_expected(tmp_path):
    cfg = load_config(write(tmp_path, "pretrain:\n  train: {lr: 4e-4}\nrun: {dir: 1e5}\n"))
    assert cfg.stage("pretrain").train.lr == 4e-4 and cfg.run.dir == "1e5"


def test_exponent_numbers_inside_free_form_settings(tmp_path):
    p = write(tmp_path, "pretrain:\n  model:\n    overrides: {layer_norm_eps: 1e-7, l: [1e-3, a]}\n")
    assert load_config(p).stage("pretrain").model.overrides == {"layer_norm_eps": 1e-7,
                                                                 "l": [1e-3, "a"]}


@pytest.mark.parametrize("setting, value, message", [
    # YAML 1.1 reads these as another type where text is meant: quotes keep the text
    ("genome.chroms", "[chrX, 1:00]", "genome.chroms = 1:00 is not a string: YAML reads 1:00 as "
                                      "the number 60; write '1:00' in quotes"),
    ("corpus.holdout", "[no]", "corpus.holdout = no is not a region: YAML reads no as false; "
                               "write 'no' in quotes"),
    ("analysis.analyze.region", "1:00", "analysis.analyze.region = 1:00 is not a string"),
    ("data.genome", "0x10", "data.genome = 0x10 is not a string: YAML reads 0x10 as the number 16"),
    ("data.tss", "2001-12-14", "data.tss = 2001-12-14 is not a string: YAML reads 2001-12-14 as a "
                               "date"),
    # and as another number than its digits say, where a number is meant (silently, before)
    ("bpe.merges", "1:00", "bpe.merges = 1:00 is read as 60 (YAML 1.1, base 60): write the number "
                           "in plain digits"),
    ("pretrain.train.seed", "010", "pretrain.train.seed = 010 is read as 8 (YAML 1.1, octal)"),
    ("pretrain.model.overrides.num_hidden_layers", "010",
     "pretrain.model.overrides.num_hidden_layers = 010 is read as 8"),
    ("bpe.merges", "1e3", "bpe.merges = 1e3 is not an integer: write 1000"),
    # a task's own classifier settings are typed as the classifier's (1e3 became 1000.0)
    ("finetune.per_task.ctcf.max_train", "1e3", "finetune.per_task.ctcf.max_train = 1e3 is not an "
                                                "integer: write 1000"),
    ("finetune.per_task.ctcf.threshold", "off", "finetune.per_task.ctcf.threshold = off is not a "
                                                "string: YAML reads off as false"),
])
def test_yaml_1_1_readings_are_errors_that_say_how_to_write_the_value(tmp_path, setting, value,
                                                                      message):
    *sections, key = setting.split(".")
    text = "".join(f"{'  ' * i}{s}:\n" for i, s in enumerate(sections))
    p = write(tmp_path, f"{text}{'  ' * len(sections)}{key}: {value}\n")
    with pytest.raises(GroverError) as err:
        load_config(p)
    assert str(err.value).startswith(f"{p}:{len(sections) + 1}: {message}"), str(err.value)
    with pytest.raises(GroverError) as err:
        load_config(None, [f"{setting}={value}"])
    assert str(err.value).startswith(f"--set {setting}={value}: {message}"), str(err.value)


def test_yaml_1_1_values_that_mean_what_they_say_are_kept(tmp_path):
    """on/off for the fine-tuning class weights (auto, on, off; configs/demo.yaml writes `off`),
    yes/no for a switch, hex for a number, quoted text, and a setting's --set over the file's."""
    p = write(tmp_path, "finetune:\n  classifier: {class_weights: off}\n  per_task:\n"
                        "    ctcf: {class_weights: on}\nbaselines: {bpe: no}\n"
                        "bpe: {merges: 0x100, cycles: 010}\ngenome: {chroms: ['1:00', '2']}\n")
    cfg = load_config(p, ["bpe.cycles=8"])
    ft = cfg.stage("finetune")
    assert ft.classifier.class_weights == "off" and ft.classifier_for("ctcf").class_weights == "on"
    assert cfg.stage("baselines").bpe is False and cfg.stage("bpe").merges == 256
    assert cfg.stage("bpe").cycles == 8 and cfg.stage("genome").chroms == ("1:00", "2")


def test_an_alias_inside_what_it_names_is_an_error(tmp_path):
    with pytest.raises(GroverError, match="a YAML alias refers to a mapping that holds it"):
        load_config(write(tmp_path, "bpe: &a {x: *a}\n"))


def test_binary_or_non_utf8_config_is_an_error_naming_the_line(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_bytes(b"bpe:\n  merges: 100\n  cycles: \xff\xfe\n")
    with pytest.raises(GroverError, match=r"run\.yaml:3: binary data, not a text file"):
        load_config(p)


def test_bad_tss_format_and_empty_run_dir_are_errors(tmp_path):
    with pytest.raises(GroverError, match=r"run\.yaml:2: data: tss_format must be one of auto, "
                                          "refseq, gencode, bed, got 'ucsc'"):
        load_config(write(tmp_path, "data:\n  tss_format: ucsc\n"))
    with pytest.raises(GroverError, match="run: dir must name a folder"):
        load_config(None, ["run.dir=' '"])


def test_dump_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "mini.yaml", ["corpus.holdout=['chr20:0-100']"])
    p = tmp_path / "resolved.yaml"
    p.write_text(dump_config(cfg))
    assert p.read_text().startswith(WRITTEN)  # the mark that lets the runner overwrite it
    again = load_config(p)
    assert again.run == cfg.run and again.data == cfg.data and again.stages == cfg.stages


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    p = write(tmp_path, "bpe:\n  mergess: 3\n")
    assert main(["run", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{p}:2:" in err and "'bpe.mergess'" in err


def test_the_shipped_configs_are_found_from_any_folder(tmp_path, monkeypatch):
    """`groverlm run configs/mini.yaml` as the README writes it, outside the repo's root (the
    configs ship in the package); a file of the user's own of that name comes first."""
    monkeypatch.chdir(tmp_path)
    for name in ("configs/mini.yaml", "mini.yaml", "mini"):
        cfg = load_config(name)
        assert Path(cfg.source).parent.parent.name == "groverlm", name
        assert cfg.stages == load_config(CONFIGS / "mini.yaml").stages
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mini.yaml").write_text("bpe:\n  merges: 7\n  cycles: 7\n")
    assert load_config("configs/mini.yaml").stage("bpe").merges == 7
    for name in ("configs/nope.yaml", str(tmp_path / "elsewhere" / "mini.yaml")):
        with pytest.raises(GroverError, match="no such config file.*ships demo.yaml"):
            load_config(name)
