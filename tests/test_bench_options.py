"""Every bench script, given a bad option or a missing input, stops with a one-line error and exit
status 2 before any work, as `groverlm` does (argparse's error line follows its usage line)."""

from __future__ import annotations

import argparse

import pytest
import torch

from groverlm.cli import guarded

from .conftest import BENCH, load_bench

NO_GPU = not torch.cuda.is_available()

CASES = {  # script -> (argv, what the error says); TMP is the test's folder
    "learning": [(["--recipes", "tiny,nope"], "no recipe 'nope'"),
                 (["--marks", "1,x"], "not comma-separated minutes"),
                 (["--minutes", "0"], "must be positive"),
                 (["--minutes", "3", "--marks", "4"], "within the budget"),
                 (["--marks", "0,1"], "within the budget")],
    "mlm": [(["--repeats", "0"], "--repeats"), (["--steps", "1"], "2 or more"),
            (["--batch-size", "0"], "--batch-size"), (["--device", "foo"], "not a device")],
    "eval_noise": [(["--model", "TMP/none"], "none/manifest.json: No such file"),
                   (["--model", "m", "--slices", "0-5"], "not START:END"),
                   (["--model", "m", "--slices", "5:5"], "START < END"),
                   (["--model", "m", "--seeds", "0,a"], "'a' is not an integer")],
    "score": [(["--n", "0"], "--n 0"), (["--data", "TMP"], "hg19_chr20.fa.gz")],
    "bpe": [(["--sections", "parity,parit"], "no section 'parit'")],
    "scale": [(["--stages", "genome,nope"], "no stage 'nope'"),
              (["--copies", "4,0"], "not comma-separated positive integers"),
              (["--data", "TMP"], "no hg19_chr20.fa.gz in")],
    "draws": [(["--out", "TMP", "--task", "t", "--baseline", "b", "--draws", "0,-1"],
               "-1 is negative")],
    "gpu_profile": [(["--smoke", "--batch-size", "0"], "--batch-size"),
                    *([([], "torch sees no GPU")] if NO_GPU else [])],
    "gpu": [(["--preset", "nope"], "unknown preset 'nope'"),
            (["--batch-size", "0"], "batch_size must be 1 or more"),
            (["--smoke", "--holdout", "chr20:bad", "--work", "TMP"], "no record 'chr20:bad'"),
            (["--data", "TMP"], "no hg19_chr20.fa.gz in"),
            # --data is read only by the pretrain part
            *([(["--sections", "throughput", "--data", "TMP"], "torch sees no GPU")]
              if NO_GPU else [])],
}


@pytest.mark.parametrize("script,argv,says",
                         [(s, a, says) for s, cases in CASES.items() for a, says in cases])
def test_a_bad_option_is_one_line_and_exit_2(script, argv, says, tmp_path, capsys):
    main = load_bench(script).main
    argv = [a.replace("TMP", str(tmp_path)) for a in argv]
    try:
        code = guarded(lambda: main(argv), f"{script}.py")
    except SystemExit as stop:  # argparse's error
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and ": error: " in err.splitlines()[-1] and says in err, err


class _Parsed(Exception):
    """Raised in place of parsing: the parser was built, nothing after it runs."""


def test_no_bench_parser_takes_abbreviations(monkeypatch):
    """The bench scripts' argparse read `--sect x` as --sections x while groverlm refused
    abbreviations; every script with a main now refuses them too (its parser, taken as it
    parses: the scripts build it inside main)."""
    built = []

    def parse(self, args=None, namespace=None):
        built.append(self)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    scripts = [p.stem for p in sorted(BENCH.glob("*.py"))]
    mains = {s: m.main for s in scripts if hasattr(m := load_bench(s), "main")}
    assert {"bpe", "draws", "gpu", "mlm"} <= set(mains)  # the loop sees the scripts
    for script, main in mains.items():
        built.clear()
        with pytest.raises(_Parsed):
            main([])
        assert [p.allow_abbrev for p in built] == [False], script


def test_a_bench_abbreviation_is_an_unknown_option(capsys):
    """--repea 0 was read as --repeats 0; now argparse's unknown option line, exit 2."""
    with pytest.raises(SystemExit) as stop:
        load_bench("mlm").main(["--repea", "0"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --repea 0" in capsys.readouterr().err
