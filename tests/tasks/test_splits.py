"""Splits never put overlapping intervals in different splits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm.errors import GroverError
from groverlm.tasks.common import (
    SPLITS,
    Example,
    SplitConfig,
    SplitResult,
    overlapping_pairs,
    split_examples,
    write_task,
)


def ex(chrom, start, length=300, label=0):
    return Example("A" * length, label, chrom, start, start + length, "+")


intervals = st.lists(st.tuples(st.sampled_from(["c1", "c2", "c3", "c4"]),
                               st.integers(0, 20_000), st.integers(1, 2_500)),
                     min_size=30, max_size=200)


@settings(max_examples=60, deadline=None)
@given(intervals, st.sampled_from(["block", "chrom", "auto"]), st.integers(0, 3))
def test_no_overlap_across_splits(rows, method, seed):
    examples = [ex(c, s, n) for c, s, n in rows]
    cfg = SplitConfig(method, block=2_000, seed=seed)
    try:
        res = split_examples(examples, cfg)
    except GroverError:
        return  # too few chromosomes/blocks, or an empty split: refused, never leaky
    sp = res.splits
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert overlapping_pairs(sp[a], sp[b]) == 0
    kept = sum(len(sp[s]) for s in SPLITS)
    assert kept + res.info["dropped_crossing"] == len(examples)
    assert all(sp[s] for s in SPLITS)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10)), max_size=15),
       st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10)), max_size=15))
def test_overlapping_pairs_brute_force(a, b):
    xa = [ex("c", s, n) for s, n in a]
    xb = [ex("c", s, n) for s, n in b] + [ex("d", 0, 100)]
    want = sum(1 for x in xa for y in xb if x.chrom == y.chrom and x.start < y.end
               and y.start < x.end)
    assert overlapping_pairs(xa, xb) == want


def test_by_chromosome_fills_every_split_and_is_seeded():
    examples = [ex(f"c{i}", s) for i in range(6) for s in range(0, 3000 * (i + 1), 1000)]
    a = split_examples(examples, SplitConfig("chrom", seed=1))
    b = split_examples(examples, SplitConfig("chrom", seed=1))
    assert a.info["chroms"] == b.info["chroms"]
    assert all(a.info["chroms"][s] for s in SPLITS)
    assert sum(len(v) for v in a.info["chroms"].values()) == 6
    assert len(a.splits["train"]) > len(a.splits["test"])
    three = [ex(f"c{i}", 0) for i in range(3)]
    assert {s: len(v) for s, v in split_examples(three, SplitConfig("chrom")).splits.items()} == \
        dict.fromkeys(SPLITS, 1)


def test_block_split_records_blocks_and_drops_crossers():
    examples = [ex("c1", s, 500) for s in range(0, 100_000, 700)]
    res = split_examples(examples, SplitConfig("block", block=5_000, seed=0))
    assert res.info["method"] == "block"
    blocks = res.info["blocks"]["c1"]
    assert {s for _, _, s in blocks} == set(SPLITS)
    split_of = {a: s for a, _, s in blocks}
    for s in SPLITS:  # every kept example lies in blocks of its own split
        for e in res.splits[s]:
            assert split_of[e.start // 5000 * 5000] == s
            assert split_of.get((e.end - 1) // 5000 * 5000, s) == s
    assert res.info["dropped_crossing"] > 0


def test_refusals():
    with pytest.raises(GroverError, match=">= 3 chromosomes"):
        split_examples([ex("c1", 0), ex("c2", 0)], SplitConfig("chrom"))
    with pytest.raises(GroverError, match="smaller --split-block"):
        split_examples([ex("c1", s) for s in range(0, 5000, 500)], SplitConfig("block"))
    with pytest.raises(GroverError, match="sum to 1"):
        SplitConfig(fractions=(0.5, 0.1, 0.1))


def test_a_split_without_a_label_is_named_in_one_warning(tmp_path, caplog):
    """'holds no example of label(s) [2]': now the label, or labels, listed as words are."""
    rows = {"train": [0, 1, 2, 3], "dev": [0, 1, 2, 3], "test": [0, 1]}
    result = SplitResult({s: [ex("c1", 1000 * i, 10, label) for i, label in enumerate(labels)]
                          for s, labels in rows.items()})
    write_task(tmp_path / "t", "toy", result, {}, [], seed=0)
    assert "the test split holds no example of labels 2, 3" in caplog.text, caplog.text
    rows["test"] = [0, 1, 2]
    result = SplitResult({s: [ex("c1", 1000 * i, 10, label) for i, label in enumerate(labels)]
                          for s, labels in rows.items()})
    caplog.clear()
    write_task(tmp_path / "u", "toy", result, {}, [], seed=0)
    assert "the test split holds no example of label 3" in caplog.text, caplog.text


def test_a_tiny_dev_or_test_split_is_warned_about(caplog):
    """Three records split by chromosome gave Prom300 a test split of 8 rows, without a word."""
    sizes = {"c1": 200, "c2": 40, "c3": 8}
    examples = [ex(c, 1000 * i, label=i % 2) for c, n in sizes.items() for i in range(n)]
    res = split_examples(examples, SplitConfig("auto"))
    small = min(("dev", "test"), key=lambda s: len(res.splits[s]))
    assert len(res.splits[small]) == 8
    assert f"the {small} split holds only 8 rows" in caplog.text, caplog.text
    assert "--split block" in caplog.text
    caplog.clear()
    # enough rows, but one class nearly absent from dev/test
    examples = [ex(c, 1000 * i, label=int(i < 3)) for c, n in
                {"c1": 400, "c2": 60, "c3": 60}.items() for i in range(n)]
    split_examples(examples, SplitConfig("chrom"))
    assert "fewer than 5 rows of label 1 (3 rows)" in caplog.text, caplog.text
    caplog.clear()
    examples = [ex(c, 1000 * i, label=i % 2) for c, n in
                {"c1": 400, "c2": 60, "c3": 60}.items() for i in range(n)]
    split_examples(examples, SplitConfig("chrom"))
    assert "split holds" not in caplog.text, caplog.text
