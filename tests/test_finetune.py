"""Fine-tuning: windows and pooled logits, class weights, vocabulary identity and given tokens,
genome-context tokenization, and the `finetune` command end to end (selection, saved model, resume).
"""

from __future__ import annotations

import csv
import json
import shutil
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from groverlm import finetune
from groverlm.batching import window_starts
from groverlm.cli import main
from groverlm.config import load_config
from groverlm.context import Context
from groverlm.errors import GroverError
from groverlm.finetune import (
    ClassifierConfig,
    Encoded,
    WindowedData,
    _objective,
    encode_task,
    finetune_splits,
    learning_rate,
    load_classifier,
    pool_windows,
    predict,
    set_prior_bias,
    use_class_weights,
)
from groverlm.kmer_vocab import write_kmer_vocab
from groverlm.manifest import merges_sha256_of, write_json, write_manifest
from groverlm.metrics import classification_metrics, read_metrics
from groverlm.models import build_config, load_tokenizer, new_mlm_model, save_model
from groverlm.tasks.gue import load_task

from .conftest import one_sequence_task, random_dna
from .lm_fixtures import TINY, make_vocab


def make_model(folder: Path, vocab: Path, max_positions: int = 512, seed: int = 0) -> Path:
    """A random tiny BertForMaskedLM with the vocabulary's tokenizer (a pretrained-model folder)."""
    tok = load_tokenizer(vocab)
    cfg = build_config("tiny", len(tok), {**TINY, "max_position_embeddings": max_positions})
    save_model(new_mlm_model(cfg, seed), tok, folder)
    return folder


def write_csvs(folder: Path, rows: dict[str, list[list]], header: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, data in rows.items():
        with open(folder / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(data)
    return folder


def composition_task(folder: Path, seed: int = 0, n: tuple[int, int, int] = (160, 40, 60),
                     positive: float = 0.5) -> Path:
    """A learnable GUE-style task (no manifest, no coordinates): label 1 sequences are A/T-rich,
    label 0 sequences G/C-rich; lengths 20-70 bases."""
    rng = np.random.default_rng(seed)

    def row() -> list:
        label = int(rng.random() < positive)
        p = [0.4, 0.1, 0.1, 0.4] if label else [0.1, 0.4, 0.4, 0.1]
        return ["".join(rng.choice(list("ACGT"), int(rng.integers(20, 71)), p=p)), label]

    return write_csvs(folder, {s: [row() for _ in range(k)] for s, k in
                               zip(("train", "dev", "test"), n, strict=True)},
                      ["sequence", "label"])


@pytest.fixture(scope="module")
def kmer_model(tmp_path_factory) -> Path:
    """A 2-mer model of 24 positions: sequences of more than 22 tokens need windows."""
    root = tmp_path_factory.mktemp("kmer")
    write_kmer_vocab(2, root / "v2")
    return make_model(root / "model", root / "v2", max_positions=24)


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(genome, bpe train folder with tokens/, exported vocabulary)."""
    return make_vocab(tmp_path_factory.mktemp("bpe"))


# ----------------------------------------------------------------------------------------------
# windows


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 200), st.integers(1, 30), st.data())
def test_windows_cover_every_token(n, size, data):
    stride = data.draw(st.integers(1, size))
    starts = window_starts(n, size, stride)
    assert starts[0] == 0 and starts == sorted(set(starts))
    covered = np.zeros(n, bool)
    for s in starts:
        assert 0 <= s and s + size >= min(n, s + size)
        covered[s : s + size] = True
    assert covered.all()  # nothing is truncated
    assert min(n, starts[-1] + size) == n  # the last window reaches the end
    assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_pooled_logits_are_the_mean_of_window_logits(kmer_model):
    tok = load_tokenizer(kmer_model)
    model = load_classifier(kmer_model, 3, seed=0).eval()
    rng = np.random.default_rng(0)
    ids = [rng.integers(5, 21, n) for n in (5, 22, 23, 61)]
    data = WindowedData(ids, np.array([0, 1, 2, 1]), tok, size=22, stride=22)
    assert [len(w) for w in data.windows] == [1, 1, 2, 3]
    got = predict(model, data, batch_size=3)  # (4, 3)
    for i, x in enumerate(ids):
        expected = []
        for a, b in data.windows[i]:
            inp = torch.tensor([[tok.cls_token_id, *x[a:b].tolist(), tok.sep_token_id]])
            with torch.no_grad():
                expected.append(model(input_ids=inp).logits[0])
        torch.testing.assert_close(torch.from_numpy(got[i]), torch.stack(expected).mean(0),
                                   rtol=1e-4, atol=1e-5)
    # the training objective scores the same pooled logits
    batch = data.collate(np.arange(4))
    loss = _objective()(model)(**batch)
    ce = torch.nn.functional.cross_entropy(torch.from_numpy(got), batch["labels"], reduction="sum")
    torch.testing.assert_close(loss, ce, rtol=1e-4, atol=1e-4)
    # with class weights each sequence's loss is multiplied by its own weight
    weighted = WindowedData(ids, np.array([0, 1, 2, 1]), tok, 22, 22, weights=np.arange(1.0, 5.0))
    rows = np.array([3, 0, 2])
    loss = _objective()(model)(**weighted.collate(rows))
    each = torch.nn.functional.cross_entropy(torch.from_numpy(got[rows]),
                                             torch.tensor([1, 0, 2]), reduction="none")
    torch.testing.assert_close(loss, (each * torch.tensor([4.0, 1.0, 3.0])).sum(), rtol=1e-4,
                               atol=1e-4)
    # padding rounds up to 8 but never past a window and its specials (the model's positions)
    odd = WindowedData(ids, np.array([0, 1, 2, 1]), tok, size=21, stride=21)
    assert odd.collate(np.arange(4))["input_ids"].shape[1] == 23


def test_prior_bias_makes_the_untrained_head_predict_the_class_frequencies(kmer_model):
    labels = np.array([0] * 60 + [1] * 30 + [3] * 10)  # class 2 never seen
    model = load_classifier(kmer_model, 4, seed=0)
    set_prior_bias(model, labels, 4)
    p = torch.softmax(model.classifier.bias.detach().double(), -1).numpy()
    assert p == pytest.approx(np.array([60, 30, 0.5, 10]) / 100.5, rel=1e-5)
    assert p.argmax() == 0  # the untrained head's answer is the most frequent class


def test_the_default_learning_rate_follows_the_model_width():
    # BERT-base's 5e-5 left the demo's small model near chance (GUE Prom300 test MCC 0.36 vs 0.82)
    small, base = (types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=h)) for h in (128, 768))
    assert learning_rate(ClassifierConfig(), small) == 5e-4
    assert learning_rate(ClassifierConfig(), base) == 5e-5
    assert learning_rate(ClassifierConfig(lr=1e-3), base) == 1e-3


def test_pool_windows_and_weights():
    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    pooled = pool_windows(logits, torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 1.0], [5.0, 5.0]]))
    y = np.array([0] * 90 + [1] * 10)
    from sklearn.utils.class_weight import compute_sample_weight

    w = compute_sample_weight("balanced", y)  # what fine-tuning weights samples by
    assert w.mean() == pytest.approx(1.0) and w[-1] / w[0] == pytest.approx(9.0)
    assert use_class_weights(y, ClassifierConfig())
    assert not use_class_weights(np.array([0, 1] * 50), ClassifierConfig())
    assert not use_class_weights(y, ClassifierConfig(class_weights="off"))
    # a config file's bare `off` / `on` arrive as YAML booleans
    assert ClassifierConfig(class_weights=False).class_weights == "off"
    assert ClassifierConfig(class_weights=True).class_weights == "on"
    assert ClassifierConfig(seeds=[3, 4]).seeds == (3, 4)  # a YAML list
    with pytest.raises(GroverError, match="list of integers"):  # a YAML `seeds: 3`, meant as a count
        ClassifierConfig(seeds=3)


# ----------------------------------------------------------------------------------------------
# vocabulary identity, given tokens, genome context


def test_merges_sha256_follows_the_manifest_chain(bpe, tmp_path):
    _, _, vocab = bpe
    sha = json.loads((vocab / "manifest.json").read_text())["merges_sha256"]
    assert merges_sha256_of(vocab) == sha
    corpus, model = tmp_path / "corpus", tmp_path / "model"
    write_json(corpus / "manifest.json", {"stage": "corpus", "inputs": [{"path": str(vocab)}]})
    write_json(model / "manifest.json", {"stage": "pretrain", "config": {"corpus": str(corpus)}})
    assert merges_sha256_of(model) == sha
    write_kmer_vocab(3, tmp_path / "k3")
    assert merges_sha256_of(tmp_path / "k3") is None
    assert merges_sha256_of(tmp_path / "nowhere") is None


def shuffled_token_task(folder: Path, vocab: Path, sha: str | None) -> Path:
    """Prom300-like: positives and token-shuffled negatives, with a tokens column."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(vocab / "tokenizer.json"))
    rng = np.random.default_rng(3)
    rows = {}
    for split, n in (("train", 12), ("dev", 4), ("test", 4)):
        rows[split] = []
        for _ in range(n):
            seq = random_dna(120, int(rng.integers(1 << 30)))
            toks = tok.encode(seq, add_special_tokens=False).tokens
            neg = [toks[i] for i in rng.permutation(len(toks))]
            rows[split] += [[seq, 1, " ".join(toks)], ["".join(neg), 0, " ".join(neg)]]
    write_csvs(folder, rows, ["sequence", "label", "tokens"])
    write_json(folder / "manifest.json", {"stage": "tasks-prom300", "task": "prom300",
                                          "label_map": {"0": 0, "1": 1},
                                          "tokens_merges_sha256": sha})
    return folder


def test_given_tokens_are_fed_only_with_the_same_merges(bpe, tmp_path):
    _, _, vocab = bpe
    sha = json.loads((vocab / "manifest.json").read_text())["merges_sha256"]
    model = make_model(tmp_path / "model", vocab)
    write_json(model / "manifest.json", {"stage": "finetune-model", "merges_sha256": sha})
    tok = load_tokenizer(model)
    ids = tok.get_vocab()
    task = load_task(shuffled_token_task(tmp_path / "same", vocab, sha))
    enc, info = encode_task(task, model, tok)
    assert info["tokenization"] == "given-tokens" and info["given_tokens"]
    given_ids = [[ids[t] for t in toks] for toks in task.train.tokens]
    assert [x.tolist() for x in enc["train"].ids] == given_ids
    retok = [tok.backend_tokenizer.encode(s, add_special_tokens=False).ids
             for s in task.train.sequences]
    assert retok != given_ids  # re-tokenizing the shuffles would have changed them
    other = load_task(shuffled_token_task(tmp_path / "other", vocab, "0" * 64))
    enc, info = encode_task(other, model, tok)
    assert info["tokenization"] == "sequence"
    assert [x.tolist() for x in enc["train"].ids] == retok


def test_genome_context_uses_the_genome_segmentation(bpe, tmp_path):
    from groverlm.fasta import Genome
    from groverlm.tasks.context import GenomeContextTokenizer

    genome, train_dir, vocab = bpe
    g = Genome.read(genome)
    rng = np.random.default_rng(5)
    rows = {}
    for split, lo in (("train", 0), ("dev", 8000), ("test", 14000)):
        rows[split] = []
        for i in range(6):
            s = lo + int(rng.integers(0, 5000))
            strand = "+-"[i % 2]
            rows[split].append([g["chrA"].sequence(s, s + 90, strand), i % 2, "chrA", s, s + 90,
                                strand])
    header = ["sequence", "label", "chrom", "start", "end", "strand"]
    task = load_task(write_csvs(tmp_path / "task", rows, header))
    model = make_model(tmp_path / "model", vocab)
    tok = load_tokenizer(model)
    enc, info = encode_task(task, model, tok, genome_context=train_dir / "tokens")
    assert info["tokenization"] == "genome-context"
    ctx = GenomeContextTokenizer(train_dir / "tokens", vocab)
    c = task.test.coords
    for i, x in enumerate(enc["test"].ids):
        assert x.tolist() == ctx.encode(c["chrom"][i], c["start"][i], c["end"][i],
                                        c["strand"][i])
    rows["test"][0][0] = random_dna(90, 9)  # a synthetic sequence at genomic coordinates
    bad = load_task(write_csvs(tmp_path / "bad", rows, header))
    with pytest.raises(GroverError, match="not the genome at their coordinates"):
        encode_task(bad, model, tok, genome_context=train_dir / "tokens")
    nocoords = load_task(composition_task(tmp_path / "nocoords"))
    with pytest.raises(GroverError, match="needs coordinates"):
        encode_task(nocoords, model, tok, genome_context=train_dir / "tokens")


# ----------------------------------------------------------------------------------------------
# the command


def ft_args(model: Path, task: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--model", str(model), "--task", str(task), "--out", str(out),
            "--threads", "1", "--quiet", "--batch-size", "16", *extra]


def test_finetune_end_to_end(kmer_model, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    task = composition_task(tmp_path / "task")
    out = tmp_path / "ft"
    assert main(ft_args(kmer_model, task, out, "--seeds", "0,1", "--epochs", "3", "--lr",
                        "2e-3")) == 0
    [r] = read_metrics(out)
    assert r["task"] == "task" and r["model"] == "deberta-v2-model" and r["seeds"] == [0, 1]
    mccs = [p["test"]["mcc"] for p in r["per_seed"]]
    assert r["mcc_mean"] == pytest.approx(np.mean(mccs))
    assert r["mcc_std"] == pytest.approx(np.std(mccs))
    assert r["mcc_mean"] > 0.5  # composition is easy: a model that learned nothing scores ~0
    for p in r["per_seed"]:
        assert set(p["test"]) >= {"mcc", "f1", "accuracy", "auroc", "confusion"}
        assert np.sum(p["test"]["confusion"]) == 60
        assert p["windows_per_sequence"] > 1  # 20-70 bases in 2-mers: many need two windows
        assert p["lr"] == 2e-3  # the rate it trained at, recorded
        curve = [c["mcc"] for c in p["dev_curve"]]
        assert len(curve) == 3 and p["best_epoch"] == int(np.argmax(curve)) + 1
        assert p["dev"]["mcc"] == pytest.approx(max(curve))
        assert p["class_weights"] is False  # balanced classes: auto leaves them off
    # the saved model is the best seed's best epoch: stock classes load it and reproduce its test
    best = r["params"]["best_seed"]
    assert best == max(r["per_seed"], key=lambda p: p["dev"]["mcc"])["seed"]
    model = AutoModelForSequenceClassification.from_pretrained(str(out / "model")).eval()
    tok = AutoTokenizer.from_pretrained(str(out / "model"))
    test = load_task(task).test
    ids = [np.asarray(e.ids) for e in tok.backend_tokenizer.encode_batch(
        test.sequences, add_special_tokens=False)]
    logits = predict(model, WindowedData(ids, test.labels, tok, 22, 22), 32)
    expected = next(p for p in r["per_seed"] if p["seed"] == best)["test"]
    assert classification_metrics(test.labels, logits.argmax(1))["mcc"] == pytest.approx(
        expected["mcc"]) == pytest.approx(expected["mcc_argmax"])  # argmax: the default
    cut = expected["threshold"]  # chosen on dev (MCC-best), applied unchanged to test
    assert cut == next(p for p in r["per_seed"] if p["seed"] == best)["dev"]["threshold"]
    p1 = np.exp(logits[:, 1]) / np.exp(logits).sum(1)
    assert classification_metrics(test.labels, (p1 >= cut).astype(int))["mcc"] == pytest.approx(
        expected["mcc_dev_cut"])
    assert not any((out / f"seed-{s}" / "checkpoints").exists() for s in (0, 1))
    assert main(ft_args(kmer_model, task, out)) == 2  # finished: refuses without --overwrite
    # --overwrite stopped while it deletes the old outputs (Ctrl-C during rmtree): the folder
    # reads as unfinished, never as a finished stage whose model is gone
    real_rmtree = shutil.rmtree

    def interrupted(path, *args, **kwargs):
        if Path(path).name == "model":
            raise KeyboardInterrupt
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    assert main([*ft_args(kmer_model, task, out), "--overwrite"]) == 130
    assert (out / "model").exists() and not (out / "manifest.json").exists()


def test_finetune_resumes_and_weights_unbalanced_classes(kmer_model, tmp_path, caplog):
    task = composition_task(tmp_path / "task", seed=1, n=(120, 40, 40), positive=0.2)
    out = tmp_path / "ft"
    args = ft_args(kmer_model, task, out, "--seeds", "0,1", "--epochs", "2", "--lr", "2e-3")
    caplog.set_level("INFO", logger="groverlm.train")
    assert main(args) == 0
    assert "no checkpoint" not in caplog.text  # each fresh seed said so in an INFO line
    first = json.loads((out / "metrics.json").read_text())["results"][0]
    assert all(p["class_weights"] for p in first["per_seed"])  # 1:4 classes: auto turns them on
    # an interrupted run: seed 1 never finished, the stage never wrote its outputs
    (out / "manifest.json").unlink()
    (out / "metrics.json").unlink()
    (out / "seed-1" / "result.json").unlink()
    seed0 = (out / "seed-0" / "result.json").stat().st_mtime_ns
    assert main([*args, "--lr", "1e-3"]) == 2  # other settings would mix with seed 0's run
    assert main(args) == 0
    again = json.loads((out / "metrics.json").read_text())["results"][0]
    assert (out / "seed-0" / "result.json").stat().st_mtime_ns == seed0  # skipped, not rerun
    for a, b in zip(first["per_seed"], again["per_seed"], strict=True):
        assert a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]  # reproducible
    assert (out / "model" / "model.safetensors").exists()


def test_a_model_replaced_in_place_is_no_resume(tmp_path, capsys):
    """Settings named the model by its path only: a folder retrained between an interrupted run
    and its rerun kept the old model's finished seeds and trained the rest on the new one."""
    write_kmer_vocab(2, tmp_path / "v2")
    tok = load_tokenizer(tmp_path / "v2")
    cfg = build_config("tiny", len(tok), {**TINY, "max_position_embeddings": 24})
    model = tmp_path / "model"
    save_model(new_mlm_model(cfg, 0), tok, model)
    task = composition_task(tmp_path / "task", n=(60, 30, 30))
    out = tmp_path / "ft"
    args = ft_args(model, task, out, "--seeds", "0,1", "--epochs", "1")
    assert main(args) == 0
    for f in ("manifest.json", "metrics.json", "seed-1/result.json"):  # interrupted in seed 1
        (out / f).unlink()
    save_model(new_mlm_model(cfg, 1), tok, model)  # retrained in place
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "model_sha256" in err
    settings = json.loads((out / "settings.json").read_text())  # a folder from before the key
    del settings["model_sha256"]
    (out / "settings.json").write_text(json.dumps(settings))
    assert main(args) == 0


def test_bad_input_is_one_line_error(kmer_model, tmp_path, capsys):
    assert main(ft_args(kmer_model, tmp_path / "missing", tmp_path / "o")) == 2
    assert "not a task folder" in capsys.readouterr().err
    task = composition_task(tmp_path / "task")
    assert main(ft_args(kmer_model, task, tmp_path / "o2", "--seeds", "0,1,0")) == 2
    assert "seed 0 is listed twice" in capsys.readouterr().err
    assert main(ft_args(tmp_path / "nomodel", task, tmp_path / "o3")) == 2
    bad = tmp_path / "badtask"
    write_csvs(bad, {"train": [["ACGT", 0], ["ACGX", 1]], "dev": [["ACGT", 0]],
                     "test": [["ACGT", 1]]}, ["sequence", "label"])
    assert main(ft_args(kmer_model, bad, tmp_path / "o4")) == 2
    assert "train.csv:3" in capsys.readouterr().err
    # a setting only the model can judge fails before the settings are recorded, so the corrected
    # command is no resume under other settings
    assert main(ft_args(kmer_model, task, tmp_path / "o5", "--max-tokens", "100000")) == 2
    assert "exceeds the model's" in capsys.readouterr().err
    assert not (tmp_path / "o5").exists() or not any((tmp_path / "o5").iterdir())
    assert main(ft_args(kmer_model, task, tmp_path / "o6", "--precision", "fp16")) == 2
    assert "--precision: invalid choice: 'fp16'" in capsys.readouterr().err
    # were a torch traceback during training, after settings.json was written
    assert main([*ft_args(kmer_model, task, tmp_path / "o7"), "--threads", "-1"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o7" / "settings.json").exists()
    # a --max-train subset that lost a class trained without it and scored MCC 0 as a result
    rare = write_csvs(tmp_path / "rare", {
        "train": [[random_dna(30, i), int(i < 2)] for i in range(40)],
        "dev": [["ACGTACGT", 0], ["TTTTAAAA", 1]], "test": [["ACGTACGA", 0], ["TTTTAAAT", 1]]},
        ["sequence", "label"])
    assert main(ft_args(kmer_model, rare, tmp_path / "o8", "--max-train", "3")) == 2
    assert "lacks class id 1 of the training split: raise --max-train" in (
        capsys.readouterr().err)


def test_encoded_subset_is_seeded():
    e = Encoded([np.arange(i) for i in range(10)], np.arange(10))
    a, b = e.subset(4, 0), e.subset(4, 0)
    assert a.labels.tolist() == b.labels.tolist() and len(a) == 4
    assert e.subset(None, 0) is e and e.fingerprint() != a.fingerprint()


def test_from_scratch_discards_the_pretrained_weights_per_seed(kmer_model, tmp_path, caplog):
    pre = load_classifier(kmer_model, 2, seed=0)
    a, b = (load_classifier(kmer_model, 2, seed=0, from_scratch=True) for _ in range(2))
    other = load_classifier(kmer_model, 2, seed=1, from_scratch=True)
    assert type(a) is type(pre) and a.config.num_labels == 2
    name = "deberta.embeddings.word_embeddings.weight"
    weights = [dict(m.named_parameters())[name] for m in (pre, a, b, other)]
    assert not torch.equal(weights[0], weights[1])  # not the pretrained weights
    assert torch.equal(weights[1], weights[2])  # the seed fixes them
    assert not torch.equal(weights[1], weights[3])
    # the command: a baseline named after the model, paired with it by `scratch_of`
    task = composition_task(tmp_path / "task")
    out = tmp_path / "ft"
    caplog.set_level("INFO", logger="groverlm.finetune")
    assert main(ft_args(kmer_model, task, out, "--seeds", "3", "--epochs", "1",
                        "--from-scratch")) == 0
    [r] = read_metrics(out)
    assert r["seeds"] == [3]  # a list of seeds, as YAML's: not three runs
    assert r["model"] == "deberta-v2-model-scratch" and r["baseline"] is True
    assert r["params"]["from_scratch"] and r["params"]["scratch_of"] == "deberta-v2-model"
    # its log line names it: a run logs each task's pretrained and from-scratch seeds alike
    assert "deberta-v2-model-scratch on task, seed 3: best epoch" in caplog.text


def test_the_saved_model_is_the_seed_with_the_best_dev_score(kmer_model, tmp_path, monkeypatch):
    """Seeds are compared on dev, not on test nor by their order: the best one's weights go to
    out/model and its seed to params.best_seed."""
    dev_mcc = {0: 0.2, 1: 0.7, 2: 0.4}

    def one_seed(model_dir, tokenizer, train, dev, test, num_labels, cfg, seed, out, *rest):
        (out / "best").mkdir(parents=True)
        (out / "best" / "seed.txt").write_text(str(seed))
        return {"seed": seed, "dev": {"mcc": dev_mcc[seed]}, "best_epoch": 1,
                "test": {"mcc": 1 - dev_mcc[seed], "accuracy": 0.5}}  # test would pick seed 0

    monkeypatch.setattr(finetune, "finetune_seed", one_seed)
    enc = Encoded([np.arange(5, 9)] * 4, np.array([0, 1, 0, 1]))
    r = finetune_splits(kmer_model, enc, enc, enc, 2, ClassifierConfig(seeds=(0, 1, 2)),
                        tmp_path / "ft", "task", "model", progress=False)
    assert r["params"]["best_seed"] == 1
    assert (tmp_path / "ft" / "model" / "seed.txt").read_text() == "1"


def test_an_epoch_that_only_ties_the_best_dev_score_is_not_kept(kmer_model, tmp_path):
    """Ties go to the earlier epoch: at a learning rate too small to change a prediction every
    epoch scores the same on dev, and the first is the one kept and scored on test."""
    task = composition_task(tmp_path / "task")
    out = tmp_path / "ft"
    assert main(ft_args(kmer_model, task, out, "--seeds", "0", "--epochs", "3", "--lr",
                        "1e-12")) == 0
    [run] = read_metrics(out)[0]["per_seed"]
    assert len({c["mcc"] for c in run["dev_curve"]}) == 1 and len(run["dev_curve"]) == 3
    assert run["best_epoch"] == 1


def test_a_seed_stopped_after_an_epoch_resumes_counting_epochs_from_its_checkpoint(
        kmer_model, tmp_path):
    task = composition_task(tmp_path / "task")
    out = tmp_path / "ft"
    args = ft_args(kmer_model, task, out, "--seeds", "0", "--epochs", "3", "--lr", "2e-3")
    cut_short(lambda: main(args), 2)  # the second dev evaluation: epoch 1's checkpoint stays
    assert main(args) == 0
    [run] = read_metrics(out)[0]["per_seed"]
    assert [c["epoch"] for c in run["dev_curve"]] == [1, 2, 3]
    assert run["best_epoch"] == 1 + int(np.argmax([c["mcc"] for c in run["dev_curve"]]))


def cut_short(run: Callable[[], Any], call: int) -> None:
    """`run()` stopped at the `call`-th call of finetune.score (each seed's dev evaluations, one per
    epoch, then its test), as a kill there would stop it: the checkpoint of the epoch before
    stays."""
    scored, calls = finetune.score, []

    def stopping(*a, **k):
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("stopped")
        return scored(*a, **k)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(finetune, "score", stopping)
        with pytest.raises(RuntimeError, match="stopped"):
            run()


def test_a_model_predicting_one_class_for_every_test_row_is_warned(kmer_model, tmp_path, caplog):
    task = one_sequence_task(tmp_path / "same")
    assert main(ft_args(kmer_model, task, tmp_path / "ft", "--epochs", "1", "--seeds", "0")) == 0
    assert "predicts one class for every test row (seed 0): MCC 0; too little training data?" \
        in caplog.text


def run_folder_with_tasks(run: Path, model: Path | None, names: dict[str, int]) -> Path:
    """A run folder as the stages before fine-tuning and baselines leave it: a pretrained model
    (`model` copied), the vocabulary's cycle count and composition tasks (name: seed) built."""
    if model is not None:
        shutil.copytree(model, run / "pretrain" / "model")
        write_manifest(run / "pretrain", "run-pretrain", {}, [], summary={"model": "pretrain/model"})
    write_manifest(run / "select_vocab", "run-select_vocab", {}, [], summary={"cycles": 16})
    for name, seed in names.items():
        composition_task(run / "tasks" / name, seed=seed, n=(40, 20, 20))
        write_manifest(run / "tasks" / name, f"tasks-{name}", {}, [], task=name)
    write_manifest(run / "tasks", "run-tasks", {}, [],
                   summary={name: {"dir": f"tasks/{name}"} for name in names})
    return run


def test_a_run_keeps_a_fine_tuning_only_if_made_from_the_same_model_task_and_settings(
        kmer_model, tmp_path, monkeypatch):
    """The runner hands the fine-tuning stage its folder whatever changed (Stage.checks_parts):
    a finished part is kept only when its manifest records the model, the task folder and the
    settings it would be made from now; else it is made again (a rebuilt CTCF task was read from
    its old fine-tuning). A part no longer asked for is removed (the report reads every one)."""
    run = run_folder_with_tasks(tmp_path / "run", kmer_model, {"prom300": 0, "ctcf": 1})
    made: list[str] = []
    real = finetune.finetune_task

    def counted(model_dir, task_dir, out, *args, **kwargs):
        made.append(str(Path(out).relative_to(run / "finetune")))
        return real(model_dir, task_dir, out, *args, **kwargs)

    monkeypatch.setattr(finetune, "finetune_task", counted)

    def fine_tune(*sets: str) -> list[str]:
        cfg = load_config(None, ["finetune.classifier.epochs=1", "finetune.classifier.seeds=[0]",
                                 "finetune.classifier.threads=1", "finetune.scratch=true",
                                 "tasks.build=[prom300,ctcf]", *sets])
        made.clear()
        finetune.run(cfg.stage("finetune"), Context(run, run / "finetune", cfg, None, False))
        return sorted(made)

    everything = ["ctcf", "prom300", "scratch/ctcf", "scratch/prom300"]
    assert fine_tune() == everything
    assert fine_tune("finetune.classifier.device=cpu") == []  # volatile: no result changes
    kept = (run / "finetune" / "prom300" / "metrics.json").stat().st_mtime_ns
    write_manifest(run / "tasks" / "ctcf", "tasks-ctcf", {"window": 50}, [], task="ctcf")
    assert fine_tune() == ["ctcf", "scratch/ctcf"]
    assert (run / "finetune" / "prom300" / "metrics.json").stat().st_mtime_ns == kept
    assert fine_tune("finetune.per_task={ctcf: {lr: 0.001}}") == ["ctcf", "scratch/ctcf"]
    model = run / "pretrain" / "model"
    write_manifest(model, "pretrain-model", {"steps": 7}, [])  # another pretraining
    assert fine_tune("finetune.per_task={ctcf: {lr: 0.001}}") == everything
    assert fine_tune("finetune.per_task={ctcf: {lr: 0.001}}", "finetune.scratch=false",
                     "finetune.tasks=[ctcf]") == []
    assert sorted(p.name for p in (run / "finetune").iterdir()) == ["ctcf"]
    # the run folder moved (rsync from a cluster): its parts record the model's and the task's
    # old paths, and are kept, the same model and task at the new place; another model is not
    last = ("finetune.per_task={ctcf: {lr: 0.001, eval_batch_size: 4}}", "finetune.scratch=false",
            "finetune.tasks=[ctcf]")
    shutil.move(run, tmp_path / "moved")
    run = tmp_path / "moved"
    assert fine_tune(*last) == []
    shutil.copytree(run / "pretrain" / "model", run / "pretrain" / "other")
    write_manifest(run / "pretrain", "run-pretrain", {}, [], summary={"model": "pretrain/other"})
    assert fine_tune(*last) == []  # a copy: the same model
    write_manifest(run / "pretrain" / "other", "pretrain-model", {"steps": 8}, [])
    assert fine_tune(*last) == ["ctcf"]


def test_a_moved_run_folder_resumes_an_interrupted_fine_tuning_where_it_stopped(
        kmer_model, tmp_path, caplog):
    """`mv runs/a runs/b` (or an rsync from a cluster) while the fine-tuning stage was cut short:
    its settings.json and each seed's checkpoint named the model by its old path, so the rerun
    stopped with 'cannot resume ... model: old -> new'. The model is compared by its hash: the
    finished seed is kept, the cut one goes on from its checkpoint, and the result is an
    uninterrupted run's; another model at the new path is still refused."""
    cfg = load_config(None, ["finetune.classifier.epochs=2", "finetune.classifier.seeds=[0,1]",
                             "finetune.classifier.threads=1", "finetune.classifier.lr=0.002",
                             "tasks.build=[ctcf]"])

    def fine_tune(run: Path) -> dict:
        finetune.run(cfg.stage("finetune"), Context(run, run / "finetune", cfg, None, False))
        return read_metrics(run / "finetune" / "ctcf")[0]

    whole = fine_tune(run_folder_with_tasks(tmp_path / "whole", kmer_model, {"ctcf": 1}))
    run = run_folder_with_tasks(tmp_path / "run", kmer_model, {"ctcf": 1})
    cut_short(lambda: fine_tune(run), 5)  # seed 0: 2 dev epochs, its test; seed 1: 1 dev epoch
    part = run / "finetune" / "ctcf"
    assert (part / "seed-0" / "result.json").exists() and not (part / "manifest.json").exists()
    assert list((part / "seed-1" / "checkpoints").glob("step-*"))
    shutil.copytree(run, tmp_path / "other")  # kept for the other model below
    shutil.move(run, tmp_path / "moved")
    run, part = tmp_path / "moved", tmp_path / "moved" / "finetune" / "ctcf"
    seed0 = (part / "seed-0" / "result.json").stat().st_mtime_ns
    caplog.set_level("INFO", logger="groverlm.train")
    again = fine_tune(run)
    assert (part / "seed-0" / "result.json").stat().st_mtime_ns == seed0  # kept, not redone
    assert "resumed from" in caplog.text and "seed-1" in caplog.text  # seed 1 from its epoch 1
    for a, b in zip(whole["per_seed"], again["per_seed"], strict=True):
        assert (a["seed"], a["dev_curve"], a["test"], a["best_epoch"]) == (
            b["seed"], b["dev_curve"], b["test"], b["best_epoch"])
    # the same folder with another model at its path: seed 0 came from the first one
    write_kmer_vocab(2, tmp_path / "v2")
    make_model(tmp_path / "other" / "pretrain" / "model", tmp_path / "v2", max_positions=24, seed=1)
    with pytest.raises(GroverError, match="cannot resume.*model_sha256"):
        fine_tune(tmp_path / "other")
