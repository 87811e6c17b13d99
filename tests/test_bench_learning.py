"""bench/learning.py: the demo's corpus is found from any folder, every recipe is scored on the same
targets, the budget's end is always a mark and the marks head the table in time order. The
training itself is stubbed: these check the script's bookkeeping, not learning (test_learning.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import load_bench


def test_the_demo_corpus_is_read_from_the_cache_not_the_current_folder(tmp_path, monkeypatch):
    learning = load_bench("learning")
    cache = tmp_path / "cache"

    def built(cmd, **kwargs):  # the demo's stages, as far as demo_corpus reads them
        (cache / "corpus").mkdir(parents=True)
        (cache / "corpus" / "manifest.json").write_text(json.dumps({"summary": {"corpus": "c/x"}}))
        return type("Done", (), {"returncode": 0})

    monkeypatch.setattr(learning.subprocess, "run", built)
    monkeypatch.chdir(tmp_path)  # no corpus/ here: the stage folder was looked for in the cwd
    assert learning.demo_corpus(tmp_path / "data", cache) == cache / "c" / "x"


def test_every_recipe_is_evaluated_in_batches_of_32(monkeypatch):
    """build_run's batch size is the evaluation's; it draws the masks per batch."""
    learning = load_bench("learning")
    seen = []

    def build_run(corpus, cfg, seed, batch_size):
        seen.append(batch_size)
        raise StopIteration

    monkeypatch.setattr(learning, "build_run", build_run)
    for name in ("tiny", "tiny-batch64"):
        with pytest.raises(StopIteration):
            learning.train_for(learning.RECIPES[name], Path("c"), 1.0, [1.0], 8, 0)
    assert learning.RECIPES["tiny-batch64"].batch_size == 64 and seen == [32, 32]


def evals(marks, unigram=0.01):
    return [{"minutes": m, "mlm_accuracy": m / 100, "unigram_accuracy": unigram,
             "context_accuracy": 0.08, "masked_tokens": 100} for m in marks]


def test_marks_are_sorted_and_end_at_the_budget(tmp_path, monkeypatch, capsys):
    learning = load_bench("learning")
    asked = []

    def train_for(recipe, corpus, minutes, marks, eval_samples, seed):
        asked.append((minutes, marks))
        return evals(marks)

    monkeypatch.setattr(learning, "train_for", train_for)
    argv = ["--corpus", str(tmp_path), "--recipes", "tiny,tiny-batch64", "--minutes", "3",
            "--marks", "2,1", "--out", str(tmp_path / "out.json")]
    assert learning.main(argv) == 0
    assert asked == [(3.0, [1.0, 2.0, 3.0])] * 2
    lines = capsys.readouterr().out.splitlines()
    assert "| recipe | 1 min | 2 min | 3 min |" in lines
    assert "| tiny | 1.00% | 2.00% | 3.00% |" in lines
    # the same targets for both recipes: one row of each baseline
    assert [r for r in lines if r.startswith("| unigram")] == ["| unigram | 1.00% |"]


def test_baselines_that_differ_are_shown_per_recipe():
    learning = load_bench("learning")
    recipes = {"a": {"evals": evals([1.0])}, "b": {"evals": evals([1.0], unigram=0.02)}}
    rows = learning.table(recipes, [1.0]).splitlines()
    assert [r for r in rows if r.startswith("| unigram")] == ["| unigram (a) | 1.00% |",
                                                              "| unigram (b) | 2.00% |"]
    assert len([r for r in rows if r.startswith("| context table (")]) == 2
