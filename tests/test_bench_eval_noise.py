"""bench/eval_noise.py scores a model as the pretraining stage's own final evaluation did: on the
same slice and mask seed it must give eval.json's figures (run as a user runs it, a subprocess)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from groverlm.cli import main

from .lm_fixtures import TINY_SET, make_corpus, read_json

REPO = Path(__file__).resolve().parents[1]


def test_eval_noise_reproduces_the_final_evaluation(tmp_path: Path) -> None:
    corpus, out = make_corpus(tmp_path / "corpus"), tmp_path / "m"
    assert main(["pretrain", "--corpus", str(corpus), "--out", str(out), "--quiet", "--threads",
                 "1", *[a for s in TINY_SET for a in ("--set", s)], "--batch-size", "4",
                 "--max-steps", "8", "--eval-every", "8", "--final-eval-samples", "40",
                 "--seed", "3"]) == 0
    ev = read_json(out / "eval.json")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "eval_noise.py"), "--model",
                           str(out), "--slices", "0:40,all", "--seeds", "3,4", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [r for r in proc.stdout.splitlines() if r.startswith("| 0-")]
    assert len(rows) == 2
    cells = [re.findall(r"(-?[\d.]+) / (-?[\d.]+) / ([+-][\d.]+) \(([\d,]+) targets\)", r)
             for r in rows]
    model, table, diff, n = cells[0][0]  # slice 0:40 under the run's seed: its final evaluation
    assert float(model) == round(100 * ev["mlm_accuracy"], 2)
    assert float(table) == round(100 * ev["context_accuracy"], 2)
    assert int(n.replace(",", "")) == ev["masked_tokens"]
    assert float(diff) == round(float(model) - float(table), 2)
    # another mask seed draws other targets; the whole split holds more of them
    assert cells[0][1][3] != n or cells[0][1][:2] != cells[0][0][:2]
    assert int(cells[1][0][3].replace(",", "")) > int(n.replace(",", ""))
