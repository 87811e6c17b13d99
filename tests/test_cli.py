"""Every command, every bad path: a missing input is one line naming it, exit status 2, no
traceback, and no output folder left behind; progress bars off a terminal redraw rarely."""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from groverlm.cli import CARRY_ON, COMMANDS, MODULES, build_parser, guarded, main
from groverlm.errors import GroverError

from .test_args import commands

# each command with its required inputs pointing at MISSING (a path that does not exist)
CASES = {
    "run": ["run", "MISSING.yaml"],
    "genome summary": ["genome", "summary", "MISSING.fa"],
    "bpe train": ["bpe", "train", "MISSING.fa", "--merges", "3", "--out", "OUT"],
    "bpe export": ["bpe", "export", "MISSING", "--cycles", "3", "--out", "OUT"],
    "corpus": ["corpus", "--vocab", "MISSING", "--genome", "MISSING.fa", "--tokens", "MISSING",
               "--out", "OUT"],
    "pretrain": ["pretrain", "--corpus", "MISSING", "--out", "OUT"],
    "plot-log": ["plot-log", "MISSING", "--out", "OUT.png"],
    "embed": ["embed", "--model", "MISSING", "--input", "MISSING.fa", "--out", "OUT.npy"],
    "analyze": ["analyze", "--vocab", "MISSING", "--out", "OUT"],
    "report": ["report", "MISSING"],
    "tasks prom300": ["tasks", "prom300", "--genome", "MISSING.fa", "--tss", "MISSING.tsv",
                      "--vocab", "MISSING", "--out", "OUT"],
    "tasks promscan": ["tasks", "promscan", "--genome", "MISSING.fa", "--tss", "MISSING.tsv",
                       "--out", "OUT"],
    "tasks ctcf": ["tasks", "ctcf", "--genome", "MISSING.fa", "--motif", "MISSING.jaspar",
                   "--peaks", "MISSING.bed", "--out", "OUT"],
    "baselines tfidf": ["baselines", "tfidf", "--task", "MISSING", "--out", "OUT"],
    "baselines cnn": ["baselines", "cnn", "--task", "MISSING", "--out", "OUT"],
    "compare": ["compare", "MISSING"],
    "kmer-vocab": ["kmer-vocab", "--k", "0", "--out", "OUT"],  # a wrong option value
    "finetune": ["finetune", "--model", "MISSING", "--task", "MISSING", "--out", "OUT"],
    "nextkmer": ["nextkmer", "--model", "MISSING", "--genome", "MISSING.fa", "--region", "chr1",
                 "--out", "OUT"],
    "select-vocab": ["select-vocab", "--genome", "MISSING.fa", "--bpe", "MISSING", "--region",
                     "chr1", "--out", "OUT"],
    "score seqs": ["score", "seqs", "--model", "MISSING", "--input", "MISSING.fa", "--out",
                   "OUT.tsv"],
    "score variants": ["score", "variants", "--model", "MISSING", "--genome", "MISSING.fa",
                       "--vcf", "MISSING.vcf", "--out", "OUT.tsv"],
    "ism": ["ism", "--model", "MISSING", "--genome", "MISSING.fa", "--region", "c:0-10", "--out",
            "OUT"],
    "data fetch": ["data", "fetch", "demo", "--from-dir", "MISSING", "--cache", "OUT"],
}


@pytest.mark.parametrize("name", CASES)
def test_a_missing_input_is_one_line_and_exit_2(name, tmp_path, capsys):
    missing, out = tmp_path / "missing", tmp_path / "out"
    argv = [a.replace("MISSING", str(missing)).replace("OUT", str(out)) for a in CASES[name]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("groverlm: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    if "MISSING" in " ".join(CASES[name]):
        assert str(missing) in lines[0]  # names the input
    assert not out.exists() and not any(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_progress_bars_off_a_terminal_redraw_every_few_seconds(tmp_path):
    # a fresh process, stderr a pipe: tqdm reads TQDM_* defaults when it is first imported
    code = ("import os, sys; from groverlm.cli import main; main(['report', sys.argv[1]]); "
            "from tqdm import tqdm; print(tqdm(total=1, file=open(os.devnull, 'w')).mininterval)")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_MININTERVAL"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "missing")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert float(out.stdout.split()[-1]) >= 2


def test_verbose_shows_our_debug_lines_not_every_library_s(tmp_path):
    # a fresh process: under pytest the root logger has handlers and basicConfig does nothing.
    # The levels are read while the command runs (cli.guarded runs it)
    (tmp_path / "g.fa").write_text(">c\nACGT\n")
    code = ("import logging, sys; from groverlm import cli; real = cli.guarded\n"
            "def probe(*a):\n"
            "    print([logging.getLogger(n).isEnabledFor(logging.DEBUG) "
            "for n in ('groverlm.genome', 'matplotlib.font_manager')])\n"
            "    return real(*a)\n"
            "cli.guarded = probe; cli.main(['-v', 'genome', 'summary', sys.argv[1]])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.fa")],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines()[0] == "[True, False]", out.stdout + out.stderr
    level = logging.getLogger("groverlm").level
    assert main(["-v", "genome", "summary", str(tmp_path / "g.fa")]) == 0
    assert logging.getLogger("groverlm").level == level  # as it was for the caller (tests)


# each command with its inputs pointing at the wrong thing: WRONG a folder that is no stage of
# the expected kind (it holds one stray file), BAD a file that is not of the expected format
WRONG_INPUT = {
    "run": ["run", "BAD.yaml"],
    "genome summary": ["genome", "summary", "BAD.fa"],
    "bpe train": ["bpe", "train", "BAD.fa", "--merges", "3", "--out", "OUT"],
    "bpe export": ["bpe", "export", "WRONG", "--cycles", "3", "--out", "OUT"],
    "corpus": ["corpus", "--vocab", "WRONG", "--genome", "BAD.fa", "--out", "OUT"],
    "pretrain": ["pretrain", "--corpus", "WRONG", "--out", "OUT"],
    "plot-log": ["plot-log", "WRONG", "--out", "OUT.png"],
    "embed": ["embed", "--model", "WRONG", "--input", "BAD.fa", "--out", "OUT.npy"],
    "analyze": ["analyze", "--vocab", "WRONG", "--out", "OUT"],
    "tasks prom300": ["tasks", "prom300", "--genome", "BAD.fa", "--tss", "BAD.tsv", "--vocab",
                      "WRONG", "--out", "OUT"],
    "tasks promscan": ["tasks", "promscan", "--genome", "BAD.fa", "--tss", "BAD.tsv", "--out",
                       "OUT"],
    "tasks ctcf": ["tasks", "ctcf", "--genome", "BAD.fa", "--motif", "BAD.jaspar", "--peaks",
                   "BAD.bed", "--out", "OUT"],
    "baselines tfidf": ["baselines", "tfidf", "--task", "WRONG", "--out", "OUT"],
    "baselines cnn": ["baselines", "cnn", "--task", "WRONG", "--out", "OUT"],
    "finetune": ["finetune", "--model", "WRONG", "--task", "WRONG", "--out", "OUT"],
    "nextkmer": ["nextkmer", "--model", "WRONG", "--genome", "BAD.fa", "--region", "chr1",
                 "--out", "OUT"],
    "select-vocab": ["select-vocab", "--genome", "BAD.fa", "--bpe", "WRONG", "--region", "chr1",
                     "--out", "OUT"],
    "score seqs": ["score", "seqs", "--model", "WRONG", "--input", "BAD.fa", "--out", "OUT.tsv"],
    "score variants": ["score", "variants", "--model", "WRONG", "--genome", "BAD.fa", "--vcf",
                       "BAD.vcf", "--out", "OUT.tsv"],
    "ism": ["ism", "--model", "WRONG", "--genome", "BAD.fa", "--region", "c:0-10", "--out", "OUT"],
}

# a wrong option value, every other input fine or never reached: the error names the option
BAD_VALUE = {
    "bpe train": (["bpe", "train", "BAD.fa", "--merges", "0", "--out", "OUT"], "merges"),
    "pretrain": (["pretrain", "--corpus", "WRONG", "--out", "OUT", "--max-steps", "0"],
                 "max-steps"),
    "corpus": (["corpus", "--vocab", "WRONG", "--genome", "BAD.fa", "--out", "OUT",
                "--max-tokens", "0"], "max-tokens"),
    "finetune": (["finetune", "--model", "WRONG", "--task", "WRONG", "--out", "OUT", "--epochs",
                  "0"], "epochs"),
    "nextkmer": (["nextkmer", "--model", "WRONG", "--genome", "BAD.fa", "--region", "chr1:9-3",
                  "--out", "OUT"], "region"),
    "select-vocab": (["select-vocab", "--genome", "BAD.fa", "--bpe", "WRONG", "--region", "chr1",
                      "--out", "OUT", "--cycles", "x"], "cycles"),
    "kmer-vocab": (["kmer-vocab", "--k", "0", "--out", "OUT"], "--k"),
    "embed": (["embed", "--model", "WRONG", "--input", "BAD.fa", "--out", "OUT.npy", "--layer",
               "top"], "layer"),
    "ism": (["ism", "--model", "WRONG", "--genome", "BAD.fa", "--region", "c:10-0", "--out",
             "OUT"], "region"),
}


def _wrong_inputs(tmp_path, args: list[str]) -> tuple[list[str], object]:
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "stray.txt").write_text("not a groverlm stage\n")
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("BAD.fa", "BAD.tsv", "BAD.jaspar", "BAD.bed", "BAD.vcf", "BAD.yaml"):
        (bad / name).write_text("\x00\x01 this is not the expected format: [\n")
    out = tmp_path / "out"
    argv = [a.replace("WRONG", str(wrong)).replace("OUT", str(out)) for a in args]
    return [str(bad / a) if a.startswith("BAD.") else a for a in argv], out


def _one_line_exit_2(argv, out, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("groverlm: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert not out.exists()
    return lines[0]


@pytest.mark.parametrize("name", WRONG_INPUT)
def test_a_wrong_input_is_one_line_and_exit_2(name, tmp_path, capsys):
    argv, out = _wrong_inputs(tmp_path, WRONG_INPUT[name])
    line = _one_line_exit_2(argv, out, capsys)
    assert str(tmp_path) in line  # names the file or folder


@pytest.mark.parametrize("name", BAD_VALUE)
def test_a_wrong_option_value_is_one_line_and_exit_2(name, tmp_path, capsys):
    args, option = BAD_VALUE[name]
    argv, out = _wrong_inputs(tmp_path, args)
    line = _one_line_exit_2(argv, out, capsys)
    assert option in line, line


@pytest.mark.parametrize("module", MODULES)
def test_the_command_table_gives_each_module_the_commands_it_registers(module):
    sub = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module).register(sub)
    assert set(sub.choices) == {c for c, m in COMMANDS.items() if m == module}


def test_no_name_a_stage_package_defines_is_one_of_its_submodules():
    # a `def train` in bpe/__init__.py would be replaced by the submodule bpe.train once that is
    # imported (and hide it from `from groverlm.bpe import train` until then)
    for name in MODULES:
        pkg = importlib.import_module(name)
        if not hasattr(pkg, "__path__"):
            continue
        body = ast.parse(Path(pkg.__file__).read_text()).body
        defined = {n.name for n in body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        defined |= {t.id for n in body if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}
        submodules = {m.name for m in pkgutil.iter_modules(pkg.__path__)}
        assert not defined & submodules, (name, sorted(defined & submodules))


def test_help_lists_every_command_in_the_table_order():
    subs = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(subs[0].choices) == list(COMMANDS)


def test_an_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["-v", "no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'no-such-command'" in err, err


@pytest.mark.parametrize("argv, says", [
    # an unknown option points at the help of the command it was given to, which lists them
    (["bpe", "export", "DIR", "--cycles", "3", "--out", "O", "--nosuch"],
     "unrecognized arguments: --nosuch (see groverlm bpe export --help)"),
    (["pretrain", "--corpus", "C", "--out", "O", "--nosuch"], "(see groverlm pretrain --help)"),
    # a model's --set names a model config field as its example, not a run config's key
    (["pretrain", "--corpus", "C", "--out", "O", "--set", "hidden_size"],
     "expected KEY=VALUE with a KEY such as num_hidden_layers"),
    # a missing model is called a model folder (it was "no such tokenizer folder")
    (["embed", "--model", "MISSING", "--input", "IN.fa", "--out", "O.npy"],
     "MISSING: no such model folder"),
    # a negative seed (numpy's generators take none) was a ValueError traceback, after the
    # output folder was made
    (["tasks", "prom300", "--genome", "IN.fa", "--tss", "T", "--out", "O", "--seed", "-1"],
     "argument --seed: -1 is negative (seeds are 0 or more)"),
    (["corpus", "--vocab", "V", "--genome", "IN.fa", "--tokens", "T", "--out", "O", "--seed", "-1"],
     "argument --seed: -1 is negative"),
    (["pretrain", "--corpus", "C", "--out", "O", "--seed", "-3"], "argument --seed: -3 is negative"),
    (["finetune", "--model", "M", "--task", "T", "--out", "O", "--seeds", "0,-1"],
     "argument --seeds: -1 is negative (seeds are 0 or more)"),
    (["baselines", "tfidf", "--task", "T", "--out", "O", "--seeds", "0,-1"],
     "argument --seeds: -1 is negative"),
    (["baselines", "cnn", "--task", "T", "--out", "O", "--seeds", "0,a"],
     "argument --seeds: 'a' is not an integer"),
    # finetune's seeds are --seeds 0,1,2 (a list, as YAML's); --seed S --seeds N is gone
    (["finetune", "--model", "M", "--task", "T", "--out", "O", "--seed", "5"],
     "unrecognized arguments: --seed 5 (see groverlm finetune --help)"),
    (["run", "mini", "--set", "finetune.classifier.seeds=[0,-1]"],
     "finetune.classifier.seeds = -1 is negative"),
    (["compare", "IN.fa", "--out", "table.txt"], "table.txt: --out must end in .md or .tsv"),
    # nextkmer has --region, not the task builders' --chrom
    (["nextkmer", "--model", "M", "--genome", "IN.fa", "--region", "nope", "--out", "O"],
     "--region nope not in the genome"),
])
def test_messages_name_what_the_user_gave(argv, says, tmp_path, capsys):
    (tmp_path / "IN.fa").write_text(">a\nACGTACGTAAGGTTCCAA\n")
    argv = [str(tmp_path / a) if a == "IN.fa" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err


@pytest.mark.parametrize("argv", [
    ["finetune", "--model", "M", "--task", "T", "--out", "O", "--max-tr", "5"],
    ["baselines", "tfidf", "--task", "T", "--out", "O", "--max-tr", "5"],
    ["pretrain", "--corpus", "C", "--out", "O", "--max-st", "5"],
])
def test_an_abbreviated_option_is_refused(argv, capsys):
    """argparse read `--max-tr 5` as --max-train: a script using it would break, or change
    meaning, once an option sharing the prefix came. Now it is an unknown option, exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {' '.join(argv[-2:])} (see groverlm {argv[0]}" in err, err
    assert err.count("\n") == 1, err


def test_no_parser_takes_abbreviations():
    """Every command's parser, subcommands' included, refuses abbreviated long options."""
    def walk(parser):
        yield parser
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    yield from walk(sub)

    assert [p.prog for p in walk(build_parser()) if p.allow_abbrev] == []


@pytest.mark.parametrize("command", [["finetune", "--model", "M"], ["baselines", "tfidf"],
                                     ["baselines", "cnn"]])
def test_max_train_0_is_every_row_and_a_negative_one_is_refused(command, tmp_path, capsys):
    """--max-train 0 trained on every row in baselines cnn and was refused by finetune and
    baselines tfidf; now 0 is every row in each (the task folder is the next thing read) and a
    negative one is one line, exit 2, in each."""
    argv = [*command, "--task", str(tmp_path / "MISSING"), "--out", str(tmp_path / "O")]
    assert main([*argv, "--max-train", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.endswith("--max-train must be 0 (every training row) or at least 2, got -1\n"), err
    assert main([*argv, "--max-train", "0"]) == 2
    err = capsys.readouterr().err
    assert "MISSING: not a task folder" in err and err.count("\n") == 1, err


def test_an_output_the_system_refuses_is_one_line(tmp_path, capsys):
    """--out under a file (or anywhere mkdir fails): one line naming the path, exit 2 (was an
    OSError traceback from the stage's mkdir); -v shows the traceback."""
    (tmp_path / "g.fa").write_text(">a\n" + "ACGTTGCA" * 50 + "\n")
    (tmp_path / "afile").write_text("x")
    argv = ["bpe", "train", str(tmp_path / "g.fa"), "--merges", "3", "--out",
            str(tmp_path / "afile" / "sub")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"groverlm: error: {tmp_path / 'afile' / 'sub'}: Not a directory\n", err
    with pytest.raises(NotADirectoryError):
        main(["-v", *argv])


def test_guarded_turns_user_errors_into_one_line(capsys):
    """What bench scripts run their main under: a user error or a refused path is one line and
    exit 2, Ctrl-C 130, and a bug keeps its traceback."""
    def raising(err):
        def script():
            raise err
        return script

    assert guarded(raising(GroverError("bad value", "g.fa")), "s.py") == 2
    assert guarded(raising(FileNotFoundError(2, "No such file or directory", "m")), "s.py") == 2
    assert capsys.readouterr().err == ("s.py: error: g.fa: bad value\n"
                                       "s.py: error: m: No such file or directory\n")
    assert guarded(raising(KeyboardInterrupt()), "s.py") == 130
    with pytest.raises(ZeroDivisionError):
        guarded(raising(ZeroDivisionError()), "s.py")
    assert guarded(lambda: None) == 0


def test_every_command_says_how_to_carry_on_after_ctrl_c():
    assert sorted(CARRY_ON) == sorted(commands())


@pytest.mark.parametrize("module, name, argv, hint", [
    ("groverlm.runner", "load_config", ["run", "c.yaml"],
     "rerun the same command (finished stages and parts are kept)"),
    # a rerun with --force would redo the stages it finished
    ("groverlm.runner", "load_config", ["run", "c.yaml", "--only", "bpe", "--force"],
     "rerun the same command without --force (finished stages and parts are kept)"),
    ("groverlm.pretrain", "pretrain", ["pretrain", "--corpus", "C", "--out", "O"],
     "rerun the same command with --resume (it goes on from its last checkpoint)"),
    ("groverlm.pretrain", "pretrain", ["pretrain", "--corpus", "C", "--out", "O", "--overwrite"],
     "rerun the same command with --resume, without --overwrite (it goes on from its last "
     "checkpoint)"),
    ("groverlm.bpe.train", "write_training", ["bpe", "train", "g.fa", "--merges", "3", "--out",
                                              "O"],
     "rerun the same command with --resume (it goes on from its last checkpoint)"),
    ("groverlm.baselines", "cnn_task", ["baseline", "cnn", "--task", "T", "--out", "O",
                                        "--overwrite"],
     "rerun the same command without --overwrite (finished seeds are kept)"),
    ("groverlm.data", "fetch", ["data", "fetch", "demo"],
     "rerun the same command (files already fetched are kept)"),
])
def test_ctrl_c_says_how_to_carry_on(module, name, argv, hint, monkeypatch, capsys):
    """Ctrl-C printed "interrupted" alone; the line now says what to run to carry on."""
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), name, stopped)
    assert main(argv) == 130
    assert capsys.readouterr().err == f"groverlm: interrupted; to carry on, {hint}\n"


def test_preset_choices_are_every_preset(capsys):
    from groverlm.models import PRESETS

    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    assert f"--preset {{{','.join(PRESETS)}}}" in capsys.readouterr().out


# not scipy: numba, which `import groverlm` needs for FASTA reading, imports it
HEAVY = ("torch", "transformers", "sklearn", "matplotlib", "tokenizers", "tqdm", "pysam")


def test_help_and_config_loading_import_no_heavy_library():
    # every command's parser (every stage module) and a whole run config, as `groverlm run` loads
    # them before any stage starts: heavy libraries wait for their first use (groverlm.lazy)
    code = ("import sys; import groverlm; from groverlm.cli import build_parser; build_parser([]); "
            "from groverlm.config import load_config; load_config(sys.argv[1], []); "
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    demo = Path(__file__).parents[1] / "src" / "groverlm" / "configs" / "demo.yaml"
    out = subprocess.run([sys.executable, "-c", code, str(demo)], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == []


# bench/ imports that stay in their function, each with a comment saying why
BENCH_FUNCTION_IMPORTS = {"gpu_profile.py": ["transformers.masking_utils"]}


def test_no_function_imports_inside_its_body():
    # imports stay at the top of their module (heavy ones through groverlm.lazy), so a reader sees
    # a module's dependencies in one place and constants are imported, never copied; in the bench
    # scripts too (they imported groverlm's modules and their siblings in functions)
    root = Path(__file__).parents[1]
    found = []
    for path in sorted([*(root / "src" / "groverlm").rglob("*.py"), *(root / "bench").glob("*.py")]):
        allowed = BENCH_FUNCTION_IMPORTS.get(path.name, []) if path.parent.name == "bench" else []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found += [f"{path.relative_to(root)}:{n.lineno}" for n in ast.walk(node)
                          if isinstance(n, ast.Import | ast.ImportFrom)
                          and [a.name for a in n.names] != allowed]
    assert not found, found


@pytest.mark.parametrize("command", ["genome", "baselines", "baseline"])
def test_a_command_imports_no_other_stage_module(command):
    # `import groverlm` itself loads its public functions (embed, score) and what they import: the
    # stage modules it leaves out must stay out when the command (here with --help) is another's
    code = ("import sys; import groverlm; print(' '.join(sys.modules)); "
            "from groverlm.cli import build_parser; build_parser(sys.argv[1:]); "
            "print(' '.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, command, "--help"], capture_output=True,
                         text=True, timeout=120, check=True)
    package, imported = (set(line.split()) for line in out.stdout.splitlines())
    others = set(MODULES) - {COMMANDS[command]} - package
    assert COMMANDS[command] in imported
    assert "groverlm.runner" in others and "groverlm.pretrain" in others  # the check is not empty
    assert not imported & others, sorted(imported & others)


def test_next_kmer_seeds_help_does_not_promise_mcc():
    """nextkmer and select-vocab share finetune's training options but select and report on
    accuracy: their --seeds help said 'test MCC mean ± std'."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("nextkmer", "select-vocab", "finetune"):
        seeds = next(a for a in sub.choices[command]._actions if a.dest == "seeds")
        assert "MCC" not in seeds.help and "mean ± std" in seeds.help, (command, seeds.help)
