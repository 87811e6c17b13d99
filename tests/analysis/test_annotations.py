"""Window annotations: interval arithmetic against brute force, labels, probes, and the analysis."""

from __future__ import annotations

import numpy as np
import pytest

from groverlm.analysis import annotations as ann
from groverlm.analysis.windows import Window, sample_windows
from groverlm.embed import load_encoder
from groverlm.errors import GroverError
from groverlm.tasks.annotations import merge_intervals

from .fixtures import make_model, make_vocab


def test_overlap_and_tss_distance_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        raw = rng.integers(0, 500, size=(12, 1))
        iv = merge_intervals(np.hstack([raw, raw + rng.integers(1, 40, size=(12, 1))]))
        covered = np.zeros(600, bool)
        for s, e in iv:
            covered[s:e] = True
        tss = np.unique(rng.integers(0, 600, size=5))
        for _ in range(10):
            s = int(rng.integers(0, 550))
            e = s + int(rng.integers(1, 50))
            assert ann.overlap_bp({"c": iv}, "c", s, e) == covered[s:e].sum()
            brute = min(0 if s <= p < e else (s - p if p < s else p - e + 1) for p in tss)
            assert ann.tss_distance({"c": tss}, "c", s, e) == brute
    assert ann.overlap_bp({}, "c", 0, 10) == 0


def window(chrom, start, seq):
    return Window(chrom, start, start + len(seq), np.zeros(1, np.int64), seq)


def test_annotate_and_labels():
    wins = [window("c", 0, "GGGGCCCCAA"), window("c", 100, "AAAAAAAATT"),
            window("c", 200, "ACGTACGTAC")]
    tracks = {"repeat": {"c": np.array([[0, 8], [205, 400]])},
              "cpg_island": {"c": np.array([[109, 112]])},
              "tss": {"c": np.array([150, 5000])}}
    v = ann.annotate_windows(wins, tracks)
    np.testing.assert_allclose(v["gc"], [0.8, 0.0, 0.5])
    np.testing.assert_allclose(v["repeat"], [0.8, 0.0, 0.5])
    np.testing.assert_allclose(v["cpg_island"], [0.0, 0.1, 0.0])
    np.testing.assert_allclose(v["tss"], [141, 41, 50])
    lab = ann.binary_labels(v, ann.AnnotationConfig(tss_near=45))
    assert list(lab) == ["repeat", "cpg_island", "tss", "gc"]
    assert lab["repeat"].tolist() == [1, 0, 1] and lab["cpg_island"].tolist() == [0, 1, 0]
    assert lab["tss"].tolist() == [0, 1, 0] and lab["gc"].tolist() == [1, 0, 1]
    assert list(ann.binary_labels({"gc": v["gc"]}, ann.AnnotationConfig())) == ["gc"]


def test_kmer_features_are_frequencies():
    x = ann.kmer_features([window("c", 0, "AAAA"), window("c", 0, "ACNGT")], 2)
    assert x.shape == (2, 16)
    assert x[0, 0] == 1.0  # AA three times out of three
    np.testing.assert_allclose(x[1, [1, 11]], [0.5, 0.5])  # AC, GT; windows with N skipped


def test_probe_separable_random_and_too_few():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    x = rng.standard_normal((100, 8))
    x[:, 0] += 4 * y
    cfg = ann.AnnotationConfig(folds=5)
    good = ann.probe(x, y, cfg)
    assert good["auroc_mean"] > 0.97 and good["mcc_mean"] > 0.8 and good["positives"] == 50
    noise = ann.probe(rng.standard_normal((100, 8)), y, cfg)
    assert 0.3 < noise["auroc_mean"] < 0.7
    few = ann.probe(x, np.r_[np.zeros(97, int), np.ones(3, int)], cfg)
    assert "skipped" in few and "auroc_mean" not in few
    one = ann.probe(x, np.r_[np.zeros(99, int), np.ones(1, int)], cfg)  # the report said '1 windows'
    assert one["skipped"] == f"1 window in the smaller class (< {cfg.folds})"
    with pytest.raises(GroverError):
        ann.AnnotationConfig(folds=1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ann")
    genome, vocab = make_vocab(tmp)
    model, tok = load_encoder(make_model(vocab, tmp / "model"))
    (tmp / "rep.bed").write_text("chrA\t25000\t26200\nchrB\t20000\t20800\nchrB\t25800\t25801\n")
    (tmp / "cpg.bed").write_text("chrA\t38300\t41250\n")
    (tmp / "tss.tsv").write_text("chrA\t39000\t+\nchrB\t100\t-\nchrX\t5\t+\n")
    return genome, model, tok, tmp


def test_annotation_analysis(tiny):
    genome, model, tok, tmp = tiny
    wins = sample_windows(genome, tok, 40, tokens=30, seed=2)
    tracks = ann.read_annotations(tmp / "rep.bed", tmp / "cpg.bed", tmp / "tss.tsv",
                                  records={w.chrom for w in wins})
    assert tracks["tss"]["chrA"].tolist() == [39000]
    # a track named otherwise than the genome (A vs chrA) was a silent column of zeros
    (tmp / "cpg_nochr.bed").write_text("A\t38300\t41250\n")
    with pytest.raises(GroverError, match="cpg_nochr.bed: nothing on a record of the genome"):
        ann.read_annotations(cpg=tmp / "cpg_nochr.bed", records={"chrA", "chrB"})
    cfg = ann.AnnotationConfig(folds=3, tss_near=2000)
    res, proj, values = ann.annotation_analysis(model, tok, wins, tracks, cfg, batch_size=8)
    assert proj["pca"].shape == (len(wins), 2)
    assert [p["annotation"] for p in res["probes"]] == ["repeat", "cpg_island", "tss", "gc"]
    assert set(values) == {"gc", "repeat", "cpg_island", "tss"}
    for w, rep in zip(wins, values["repeat"], strict=True):
        assert rep == ann.overlap_bp(tracks["repeat"], w.chrom, w.start, w.end) / (w.end - w.start)
    gc = next(p for p in res["probes"] if p["annotation"] == "gc")
    assert gc["kmer"]["positives"] == (values["gc"] >= np.median(values["gc"])).sum()
    assert res["windows"] == len(wins) and res["embedding_dim"] == 32
    for p in res["probes"]:
        assert p["embedding"]["n"] == len(wins)
        assert "skipped" in p["embedding"] or 0 <= p["embedding"]["auroc_mean"] <= 1
    ann.plot_projection(proj["pca"], values, "PCA")
    # GC alone (a genome with no annotation files): one panel, not one beside a blank one
    assert all(a.axison for a in ann.plot_projection(proj["pca"], {"gc": values["gc"]}, "PCA").axes)
    probes = ann.plot_probes(res).axes[0]  # error bars over the folds, chance named
    assert probes.get_ylabel() == f"AUROC (mean ± sd over {cfg.folds} folds)"
    assert "chance" in [t.get_text() for t in probes.get_legend().get_texts()]
    with pytest.raises(GroverError, match="too few"):
        ann.annotation_analysis(model, tok, wins[:4], tracks, cfg)
