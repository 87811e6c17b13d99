"""Every bench script, given a bad option or a missing input, stops with a one-line error and exit
status 2 before any work, as `groverlm` does (argparse's error line follows its usage line)."""

from __future__ import annotations

import pytest
import torch

from groverlm.cli import guarded

from .conftest import load_bench

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
