"""bench/draws.py: one task built on several split draws, every run scored on each; the table's
cells are the runs' own metrics, the means are over the draws, a finished step is reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groverlm.metrics import read_metrics

from .conftest import load_bench, random_dna, write_fasta


def test_draws_scores_every_run_on_every_split_draw(tmp_path: Path, capsys) -> None:
    draws = load_bench("draws")
    genome = write_fasta(tmp_path / "g.fa", {f"chr{i}": random_dna(40000, i) for i in (1, 2, 3)})
    tss = tmp_path / "tss.tsv"
    tss.write_text("".join(f"chr{c}\t{p}\t{'+-'[p % 2]}\n"
                           for c in (1, 2, 3) for p in range(6001, 36000, 3001)))
    out = tmp_path / "draws"
    argv = ["--out", str(out), "--draws", "0,1",
            "--task", f"promscan --genome {genome} --tss {tss} --split block --split-block 5000",
            "--baseline", "tfidf --k 2 --models lr", "--baseline", "tfidf --k 2 --models lr "
            "--no-class-weight"]
    assert draws.main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "draws.json").read_text())
    assert report["draws"] == [0, 1]
    cols = ["baseline-0 tfidf-lr", "baseline-1 tfidf-lr"]  # one model twice: told apart
    for seed in (0, 1):
        cells = report["per_draw"][str(seed)]
        assert list(cells) == cols
        for col in cols:
            [r] = read_metrics(out / f"draw-{seed}" / col.split()[0])
            assert cells[col] == pytest.approx({"dev": r["dev"]["mcc"], "test": r["test"]["mcc"]})
    for col in cols:
        for split in ("dev", "test"):
            assert report["mean"][col][split] == pytest.approx(
                (report["per_draw"]["0"][col][split] + report["per_draw"]["1"][col][split]) / 2)
    mean_row = next(r for r in printed.splitlines() if r.startswith("| mean |"))
    assert f"{report['mean'][cols[1]]['test']:.3f}" in mean_row
    # the draws are different splits of the same windows
    tests = [(out / f"draw-{s}" / "task" / "test.csv").read_text() for s in (0, 1)]
    assert tests[0] != tests[1]
    # a second call reuses every finished step and reports the same
    assert draws.main(argv) == 0
    assert "reusing" in capsys.readouterr().err
    assert json.loads((out / "draws.json").read_text())["per_draw"] == report["per_draw"]
    # another command at a used position would reuse the other's folders: refused
    argv[-1] = "tfidf --k 3 --models lr"
    with pytest.raises(SystemExit) as stop:
        draws.main(argv)
    assert stop.value.code == 2 and "baseline-1 was" in capsys.readouterr().err
