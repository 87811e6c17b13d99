"""Pretraining: masking, batching, the model presets and loaders, the loop, checkpoints and resume
(SIGKILL and a crash while saving), DDP with two gloo processes, and that a tiny model learns."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from groverlm.cli import main
from groverlm.corpus import Corpus
from groverlm.embed import max_window_tokens
from groverlm.errors import GroverError
from groverlm.manifest import LOCK, PASSED_LOCKS, finished, folder_lock
from groverlm.masking import IGNORE, MaskingConfig, MLMData, mask_tokens
from groverlm.models import (
    build_config,
    device_type,
    load_model,
    load_tokenizer,
    named_device,
    new_mlm_model,
    parse_overrides,
)
from groverlm.pretrain import ModelConfig, PretrainConfig, build_run, context_table, launch_env
from groverlm.train import (
    CHECKPOINTS,
    LOG,
    Dist,
    MaskedLM,
    RunLog,
    Throughput,
    TrainConfig,
    epoch_batches,
    latest_checkpoint,
    read_log,
    save_checkpoint,
    seed_of,
    train,
    without_full_mask,
)

from .conftest import held_elsewhere, sigkill_when_exists
from .lm_fixtures import TINY, TINY_SET, make_corpus, read_json

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def pretrain_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--corpus", str(corpus), "--out", str(out), "--quiet", "--threads", "1",
            *[a for s in TINY_SET for a in ("--set", s)], "--batch-size", "4", "--log-every", "1",
            "--eval-samples", "24", "--final-eval-samples", "48", *extra]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)


def train_records(run: Path) -> list[dict]:
    """The learning curve without wall-clock fields."""
    drop = {"tokens_per_s", "elapsed_s"}
    return [{k: v for k, v in r.items() if k not in drop} for r in read_log(run)]


# ----------------------------------------------------------------------------------------------
# masking, batching, configs


def test_masking_rates_split_and_specials():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (400, 500))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    special[:, 300:] = torch.arange(400)[:, None] % 2 == 0  # padding on half the rows
    ids[special] = 0
    x, y = mask_tokens(ids, special, MaskingConfig(), 4, torch.arange(5, 100), g)
    target = y != IGNORE
    assert not target[special].any() and (y[target] == ids[target]).all()
    assert abs(target.sum() / (~special).sum() - 0.022) < 0.002
    masked = (x == 4) & target
    assert abs(masked.sum() / target.sum() - 0.8) < 0.02
    assert (x[~target] == ids[~target]).all()  # nothing else changes
    # BERT's 80/10/10: about a tenth of the targets keep their own token
    x, y = mask_tokens(ids, special, MaskingConfig(0.15, 0.8, 0.1), 4, torch.arange(5, 100), g)
    target = y != IGNORE
    kept = (x == ids) & target
    assert abs(target.sum() / (~special).sum() - 0.15) < 0.005
    assert 0.08 < kept.sum() / target.sum() < 0.12  # 10% kept + 1/95 of the random ones


def test_isolated_targets_keep_the_rate_and_never_touch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (200, 400))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    for rate in (0.1, 0.25):
        _, y = mask_tokens(ids, special, MaskingConfig(rate, 0.8, 0.1, isolated=True), 4,
                           torch.arange(5, 100), g)
        target = y != IGNORE
        assert abs(target.sum() / (~special).sum() - rate) < 0.005
        assert not (target[:, 1:] & target[:, :-1]).any()  # no two side by side
        # every position at the rate, the first after [CLS] too (it was at p, twice the rate)
        _, y = mask_tokens(ids[:, :4].repeat(50, 1), special[:, :4].repeat(50, 1),
                           MaskingConfig(rate, 0.8, 0.1, 0, isolated=True), 4, torch.arange(5, 100),
                           g)
        assert abs((y[:, 1] != IGNORE).float().mean() - rate) < 0.01
    with pytest.raises(GroverError, match="min_per_sample 0 or 1"):
        MaskingConfig(0.1, isolated=True, min_per_sample=2)
    _, y = mask_tokens(ids, special, MaskingConfig(0.25, 0.8, 0.1), 4, torch.arange(5, 100), g)
    assert (y[:, 1:] != IGNORE).logical_and(y[:, :-1] != IGNORE).any()  # random ones do touch
    with pytest.raises(GroverError, match="at most 25%"):
        MaskingConfig(0.3, isolated=True)


def test_every_sample_gets_a_target_and_masks_follow_the_generator():
    ids = torch.randint(5, 50, (64, 24))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    special[:32, 5:] = True  # short samples: 4 tokens
    cfg = MaskingConfig(rate=0.01)
    x1, y1 = mask_tokens(ids, special, cfg, 4, torch.arange(5, 50), torch.Generator().manual_seed(3))
    x2, y2 = mask_tokens(ids, special, cfg, 4, torch.arange(5, 50), torch.Generator().manual_seed(3))
    assert ((y1 != IGNORE).sum(1) >= 1).all()
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = mask_tokens(ids, special, cfg, 4, torch.arange(5, 50), torch.Generator().manual_seed(4))
    assert not torch.equal(x1, x3)
    # more targets asked than a sample holds: its tokens, never [CLS] or the padding
    _, y = mask_tokens(ids, special, MaskingConfig(rate=0.01, min_per_sample=6), 4,
                       torch.arange(5, 50), torch.Generator().manual_seed(5))
    assert not (y[special] != IGNORE).any()
    assert ((y[:32] != IGNORE).sum(1) == 4).all()  # all 4 tokens of each short sample


def test_batch_targets_are_the_samples_tokens_first_to_last():
    """MLMData frames each sample as [CLS] tokens [SEP] [PAD]...: every token of the sample, the
    last included, can be a target; [CLS], [SEP] and the padding never are."""
    samples = [np.arange(10, 10 + n) for n in (3, 7, 12)]
    split = type("Split", (), {"lengths": np.array([len(s) for s in samples]),
                               "__getitem__": lambda self, i: samples[i]})()
    tok = type("Tok", (), {"cls_token_id": 2, "sep_token_id": 3, "pad_token_id": 0,
                           "mask_token_id": 4})()
    data = MLMData(split, tok, MaskingConfig(rate=0.25, mask_fraction=1.0, random_fraction=0.0),
                   torch.arange(10, 30))
    hit = Counter()
    for seed in range(200):
        b = data.collate([0, 1, 2], torch.Generator().manual_seed(seed))
        for row, col in zip(*torch.nonzero(b["labels"] != IGNORE, as_tuple=True), strict=True):
            hit[int(row), int(col)] += 1
            assert b["labels"][row, col] == samples[row][col - 1]  # the sample's own token
    assert set(hit) == {(i, j) for i, s in enumerate(samples) for j in range(1, len(s) + 1)}


@pytest.mark.parametrize("world", [1, 2, 3])
def test_epoch_batches_cover_every_sample_once(world):
    lengths = np.random.default_rng(0).integers(20, 512, size=1001)
    batches = epoch_batches(lengths, 16, epoch=0, seed=0, world=world, bucket=8)
    assert len(batches) % world == 0 and max(len(b) for b in batches) <= 16
    assert sorted(np.concatenate(batches).tolist()) == list(range(1001))
    # length-sorted pools: far less padding than random batches
    pad = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches)
    rand = np.array_split(np.random.default_rng(1).permutation(1001), len(batches))
    pad_random = sum(len(b) * lengths[b].max() - lengths[b].sum() for b in rand)
    assert pad < 0.2 * pad_random
    other = epoch_batches(lengths, 16, epoch=1, seed=0, world=world, bucket=8)
    assert [b.tolist() for b in other] != [b.tolist() for b in batches]


def test_presets_and_overrides():
    assert parse_overrides(["a=1", "b=0.5", "c=true", "d=gelu"]) == {
        "a": 1, "b": 0.5, "c": True, "d": "gelu"}
    base = build_config("grover-base", 609)
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads,
            base.max_position_embeddings, base.vocab_size) == (12, 768, 12, 512, 609)
    assert base.model_type == "bert"  # GROVER's architecture
    cfg = build_config("tiny", 100, {"num_hidden_layers": 2, "hidden_dropout_prob": 0})
    assert cfg.num_hidden_layers == 2 and cfg.hidden_dropout_prob == 0 and cfg.hidden_size == 128
    assert cfg.model_type == "deberta-v2" and cfg.conv_kernel_size == 3  # the CPU learner
    bert = build_config("tiny", 100, {"model_type": "bert", "hidden_size": 64})
    assert bert.model_type == "bert" and bert.hidden_size == 64 and not hasattr(bert, "conv_kernel_size")
    for bad, msg in [({"num_hiden_layers": 2}, "not a deberta-v2 config field"),
                     ({"model_type": "no-such-model"}, "not a transformers model type"),
                     ({"num_hidden_layers": "two"}, "expected a int"),
                     ({"num_attention_heads": 7}, "multiple"),
                     ({"hidden_dropout_prob": True}, "expected a float"),
                     ({"hidden_act": "foo"}, "not an activation")]:
        with pytest.raises(GroverError, match=msg):
            build_config("tiny", 100, bad)
    with pytest.raises(GroverError, match="unknown preset"):
        build_config("huge", 100)
    with pytest.raises(GroverError, match="KEY=VALUE"):
        parse_overrides(["layers"])
    # settings that cannot work fail as one-line errors when the config is made, before any output
    for kwargs, msg in [({"eval_mask_rate": 0.3}, r"must be in \(0, 0.25\]"),
                        ({"mask_isolated": True, "mask_rate": 0.3}, "at most 25%"),
                        ({"pad_multiple": 0}, "--pad-multiple must be at least 1")]:
        with pytest.raises(GroverError, match=msg):
            ModelConfig(**kwargs)


def test_published_format_folder_loads_in_every_task(tmp_path):
    """Any folder with a BertForMaskedLM and a PreTrainedTokenizerFast (the published GROVER
    format) loads through load_model / load_tokenizer; the classifier reuses the encoder."""
    from tokenizers import Tokenizer, models
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C",
                                         "G", "T", "AC", "GT"])}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[("A", "C"), ("G", "T")], unk_token="[UNK]"))
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]",
                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
                            ).save_pretrained(tmp_path)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=11, **TINY)).save_pretrained(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert tok.convert_ids_to_tokens(tok("ACGTA", add_special_tokens=False)["input_ids"]) == [
        "AC", "GT", "A"]
    mlm = load_model(tmp_path)
    clf = load_model(tmp_path, "classification", num_labels=3)
    base = load_model(tmp_path, "base")
    x = torch.tensor([[2, 9, 10, 5, 3]])
    assert mlm(input_ids=x).logits.shape == (1, 5, 11)
    assert clf(input_ids=x).logits.shape == (1, 3)
    torch.testing.assert_close(clf.bert.embeddings.word_embeddings.weight,
                               mlm.bert.embeddings.word_embeddings.weight)
    assert base(input_ids=x).last_hidden_state.shape == (1, 5, 32)
    for bad in (tmp_path / "missing", tmp_path / "tokenizer.json"):
        with pytest.raises(GroverError):
            load_model(bad)
    with pytest.raises(GroverError, match="unknown task"):
        load_model(tmp_path, "regression")
    weights = tmp_path / "model.safetensors"  # a damaged copy: one line, not a traceback
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(GroverError, match="cannot load the model"):
        load_model(tmp_path)


# ----------------------------------------------------------------------------------------------
# the stage end to end


def test_pretrain_cli_writes_a_loadable_model(corpus, tmp_path, capsys):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out = tmp_path / "m"
    assert main(pretrain_args(corpus, out, "--max-steps", "6", "--eval-every", "3",
                              "--save-every", "4", "--mask-rate", "0.15")) == 0
    assert "masked-token accuracy" in capsys.readouterr().out
    ev = read_json(out / "eval.json")
    for key in ("mlm_loss", "mlm_accuracy", "unigram_accuracy", "context_accuracy", "perplexity",
                "steps", "tokens_seen"):
        assert key in ev
    assert ev["steps"] == 6 and ev["eval_samples"] == 48 and ev["tokens_seen"] > 6 * 4 * 8
    assert ev["perplexity"] == pytest.approx(np.exp(ev["mlm_loss"]))
    assert 0 <= ev["unigram_accuracy"] < 1 and ev["masked_tokens"] > 48
    # the context table knows more than the commonest token on this fixture's random DNA + repeats
    assert ev["unigram_accuracy"] < ev["context_accuracy"] < 1
    model = AutoModelForMaskedLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "DebertaV2ForMaskedLM" and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tok) and tok.mask_token == "[MASK]"
    # windows never reach positions that pretraining left untrained
    longest = int(Corpus.open(corpus).train.lengths.max())
    assert longest + 2 < model.config.max_position_embeddings
    assert tok.model_max_length == longest + 2 and max_window_tokens(model, tok) == longest
    log = read_log(out)
    assert [r["step"] for r in log if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in log if r["kind"] == "eval"] == [3, 6]
    assert log[-1]["mlm_accuracy"] == ev["mlm_accuracy"]
    assert latest_checkpoint(out).name == "step-0000006"
    ck = AutoModelForMaskedLM.from_pretrained(out / "checkpoints" / "step-0000006")
    assert_same_weights(out, out / "checkpoints" / "step-0000006")
    assert ck.config.vocab_size == len(AutoTokenizer.from_pretrained(latest_checkpoint(out)))
    man = read_json(out / "manifest.json")
    assert man["stage"] == "pretrain" and man["config"]["mask_rate"] == 0.15
    # the vocabulary's merges, recorded by the corpus and the model themselves: finetune and score
    # found them through the absolute paths of their inputs, lost when a run folder is moved
    vocab = Path(read_json(corpus / "manifest.json")["inputs"][0]["path"])
    assert man["merges_sha256"] == read_json(corpus / "manifest.json")["merges_sha256"] == (
        read_json(vocab / "manifest.json")["merges_sha256"]) is not None
    # a finished run is not replaced, an unfinished one is not restarted by accident
    assert main(pretrain_args(corpus, out, "--max-steps", "6")) == 2
    (out / "manifest.json").unlink()
    assert main(pretrain_args(corpus, out, "--max-steps", "6")) == 2
    assert "--resume" in capsys.readouterr().err
    # resuming under other settings is refused in one line
    again = ["--max-steps", "6", "--mask-rate", "0.15", "--resume"]
    assert main(pretrain_args(corpus, out, *again, "--lr", "1e-3", "--set", "hidden_size=64")) == 2
    err = capsys.readouterr().err
    assert "lr: 0.0004 -> 0.001" in err and "overrides.hidden_size: 32 -> 64" in err
    assert len(err.strip().splitlines()) == 1
    # resuming a run that ended before its manifest was written only writes the outputs
    before = read_log(out)
    assert main(pretrain_args(corpus, out, *again)) == 0
    assert read_json(out / "eval.json") == ev and read_log(out) == before
    # a run still writing the folder (another process) is not overwritten under it
    with held_elsewhere(out / LOCK, out) as pid:
        assert main(pretrain_args(corpus, out, "--max-steps", "6", "--overwrite")) == 2
        assert f"in use by another groverlm process (pid {pid})" in capsys.readouterr().err
    assert finished(out) and latest_checkpoint(out).name == "step-0000006"


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_weights(corpus, tmp_path):
    """Kill a CLI run with SIGKILL once a checkpoint exists, resume it: same weights, same curve."""
    extra = ["--max-steps", "300", "--save-every", "7", "--eval-every", "50"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(pretrain_args(corpus, whole, *extra)) == 0
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "groverlm", *pretrain_args(corpus, killed,
                                                                             *extra)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_when_exists(proc, killed / "checkpoints" / "latest", 120)
    assert not (killed / "manifest.json").exists()
    at = latest_checkpoint(killed).name
    assert at != "step-0000300"
    moved = tmp_path / "moved-corpus"  # the same corpus under another name resumes too
    moved.symlink_to(corpus, target_is_directory=True)
    assert main(pretrain_args(moved, killed, *extra, "--resume")) == 0
    assert_same_weights(whole, killed)
    assert train_records(whole) == train_records(killed)
    ev_whole, ev_killed = read_json(whole / "eval.json"), read_json(killed / "eval.json")
    for key in ("mlm_loss", "mlm_accuracy", "tokens_seen", "samples_seen", "steps"):
        assert ev_whole[key] == ev_killed[key], key


def test_resumed_run_logs_the_same_losses(corpus, tmp_path):
    """A checkpoint between two train records keeps the loss summed since the last one, so a run
    stopped and resumed there logs the losses of the uninterrupted run (save_every 3, log_every 5)."""
    cfg = TrainConfig(max_steps=10, batch_size=4, save_every=3, log_every=5, eval_every=0,
                      threads=1, seed=1)

    def run(out: Path, cfg: TrainConfig, resume: bool = False, evaluate=None) -> None:
        r = build_run(corpus, ModelConfig(overrides=TINY, eval_samples=8), cfg.seed, cfg.batch_size)
        train(r.model, r.data, MaskedLM, cfg, out, evaluate, r.tokenizer, resume, r.run_config,
              progress=False)

    def stop(model, amp, final):
        raise RuntimeError("stopped")

    run(tmp_path / "whole", cfg)
    with pytest.raises(RuntimeError, match="stopped"):  # checkpoint at step 3, stopped at step 4
        run(tmp_path / "cut", dataclasses.replace(cfg, eval_every=4), evaluate=stop)
    run(tmp_path / "cut", cfg, resume=True)

    def losses(out: Path) -> list[tuple[int, float]]:
        return [(r["step"], r["loss"]) for r in read_log(out) if r["kind"] == "train"]

    assert [s for s, _ in losses(tmp_path / "cut")] == [5, 10]
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")


def test_throughput_counts_step_time_only_and_the_whole_run():
    """The bar's tok_s read 3,915 mid-run and 39,236 at the end (rates of the last log window)
    while the summary said 16,448/s: the run's rate is tokens over step time, so far."""
    now = [100.0]
    speed = Throughput(tokens=1000, seconds=10.0, clock=lambda: now[0])  # resumed: 100/s before
    for dt, tokens in ((1.0, 300), (3.0, 100)):
        speed.start()
        now[0] += dt
        speed.stop(tokens)
        now[0] += 50.0  # an evaluation or a checkpoint: not training time
    assert (speed.tokens, speed.seconds) == (1400, 14.0)
    assert speed.rate == 100.0  # 1400 tokens / 14 s of steps, the 100 s between left out
    assert speed.take_window() == 100.0  # 400 tokens in 4 s since the start of this run
    speed.start()
    now[0] += 2.0
    speed.stop(500)
    assert speed.take_window() == 250.0 and speed.rate == 1900 / 16


def test_the_bars_rate_is_the_summarys(corpus, tmp_path, monkeypatch):
    postfixes: list[dict] = []

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})

        def set_postfix(self, **kwargs):
            postfixes.append(kwargs)

    monkeypatch.setattr("groverlm.train.tqdm", Bar)
    cfg = TrainConfig(max_steps=6, batch_size=4, log_every=4, eval_every=0, save_every=0,
                      threads=1)
    r = build_run(corpus, ModelConfig(overrides=TINY, eval_samples=8), 0, cfg.batch_size)
    res = train(r.model, r.data, MaskedLM, cfg, tmp_path, None, r.tokenizer,
                run_config=r.run_config, progress=True)
    assert len(postfixes) == 2
    assert postfixes[-1]["tok_s"] == f"{res.tokens_per_second:,.0f}"


def test_crash_while_saving_keeps_the_previous_checkpoint(corpus, tmp_path, monkeypatch):
    cfg = TrainConfig(max_steps=6, batch_size=4, save_every=2, eval_every=0, threads=1, seed=1)
    pcfg = ModelConfig(overrides=TINY, eval_samples=8)

    def run(out: Path, resume: bool = False):
        r = build_run(corpus, pcfg, cfg.seed, cfg.batch_size)
        train(r.model, r.data, MaskedLM, cfg, out, r.evaluate, r.tokenizer, resume,
              r.run_config, progress=False)
        return r.model

    whole = run(tmp_path / "whole")
    real_save, calls = torch.save, []

    def failing_save(obj, path, *a, **k):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint dies half-written
            Path(path).write_bytes(b"partial")
            raise OSError("disk full")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        run(tmp_path / "crash")
    monkeypatch.setattr(torch, "save", real_save)
    assert latest_checkpoint(tmp_path / "crash").name == "step-0000002"
    resumed = run(tmp_path / "crash", resume=True)
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)



def test_pruning_spares_the_checkpoint_latest_names(tmp_path):
    """A run stopped after writing step-9 but before `latest` named it, resumed from step 6 and
    saving step 7 with one checkpoint kept: step-7 stays (sorted by name, the orphan came last)."""
    model = new_mlm_model(build_config("tiny", 20, TINY), seed=0)
    save_checkpoint(tmp_path, 6, model, None, {"step": 6}, keep=1)
    (tmp_path / CHECKPOINTS / "step-0000009").mkdir()  # the orphan
    save_checkpoint(tmp_path, 7, model, None, {"step": 7}, keep=1)
    assert latest_checkpoint(tmp_path).name == "step-0000007"
    assert sorted(p.name for p in (tmp_path / CHECKPOINTS).glob("step-*")) == ["step-0000007"]


# dropout draws its masks per rank: one process accumulating two batches draws others
NO_DROPOUT = {**TINY, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
DDP_BATCH = 7  # the test corpus's 361 samples make 52 batches whether over 1 rank or 2


def _ddp_worker(rank: int, world: int, port: int, corpus: str, out: str, steps: int) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "LOCAL_WORLD_SIZE": str(world)})
    cfg = TrainConfig(max_steps=steps, batch_size=DDP_BATCH, eval_every=0, save_every=0,
                      threads=1, log_every=1)
    r = build_run(corpus, ModelConfig(overrides=NO_DROPOUT, eval_samples=8), 0, 4)
    seen: list[list[int]] = []
    collate = r.data.collate

    def recording(indices, generator):
        seen.append([int(i) for i in indices])
        return collate(indices, generator)

    r.data.collate = recording
    res = train(r.model, r.data, MaskedLM, cfg, out, r.evaluate, r.tokenizer, run_config={},
                progress=False)
    torch.save({"state": r.model.state_dict(), "seen": seen, "world": res.world},
               Path(out) / f"rank{rank}.pt")


def test_torchruns_ranks_get_the_run_folders_lock_and_cpu_ranks_a_share_of_the_cores(
        tmp_path, monkeypatch):
    """Rank 0 writes RUN/pretrain/model inside the run folder this process holds, so the lock is
    passed on; and torchrun gave each CPU rank one thread (2 ranks on 16 cores: 14 idle)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    cpu = PretrainConfig(processes=3, train=TrainConfig(device="cpu"))
    with folder_lock(tmp_path / "run"):
        env = launch_env(cpu)
    assert json.loads(env[PASSED_LOCKS]) == {"pid": os.getpid(),
                                             "locks": [str(tmp_path / "run" / LOCK)]}
    assert env["OMP_NUM_THREADS"] == "5"
    gpu = dataclasses.replace(cpu, train=TrainConfig(device="cuda"))
    assert "OMP_NUM_THREADS" not in launch_env(gpu)  # torchrun's default
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert launch_env(cpu)["OMP_NUM_THREADS"] == "2"  # the user's


@pytest.mark.parametrize("gpu", [False, True])
def test_the_launcher_and_its_ranks_read_device_auto_as_every_command_does(gpu, monkeypatch,
                                                                          tmp_path):
    """--device auto was read three times (named_device, the launcher's thread share, the ranks'
    process group), each with its own rule; now models.device_type, which named_device uses too.
    The launcher must not take a device itself: its GPU 0 would hold a context for the whole run."""
    import groverlm.train as training

    class Joined(Exception):
        pass

    def joined(device):
        groups.append(device)
        raise Joined

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: taken.append(d))
    monkeypatch.setattr(training, "init_distributed", joined)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    groups, taken = [], []
    auto = PretrainConfig(processes=2, train=TrainConfig(device="auto"))
    with pytest.raises(Joined):
        train(None, None, MaskedLM, auto.train, tmp_path)
    assert groups == [device_type("auto")] == [("cuda" if gpu else "cpu")]
    assert ("OMP_NUM_THREADS" in launch_env(auto)) == (not gpu) and not taken
    if not gpu:
        assert named_device("auto").type == "cpu"


def test_named_device_checks_the_name_once(monkeypatch):
    """named_device checked the name, then device_type checked it again for auto."""
    import groverlm.models as models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = []
    real = models.check_device_name
    monkeypatch.setattr(models, "check_device_name", lambda *a: calls.append(a) or real(*a))
    assert named_device("cpu").type == named_device("auto").type == "cpu"  # torch sees no GPU
    assert calls == [("cpu",), ("auto",)]
    with pytest.raises(GroverError, match="--device 'gpu' is not a device"):
        named_device("gpu")


def test_a_cpu_rank_keeps_the_threads_omp_num_threads_gives_it(tmp_path, monkeypatch):
    """OMP_NUM_THREADS is per rank (torchrun's, or launch_env's share of the cores): it was divided
    among the ranks a second time. Unset, torch's default (every core) is shared."""
    import groverlm.train as training

    seen = []
    monkeypatch.setattr(training, "init_distributed", lambda device: Dist(0, 2, 0, False))
    monkeypatch.setattr(training, "_train", lambda *a: seen.append(torch.get_num_threads()))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)  # as OMP_NUM_THREADS=4 makes it at start
        monkeypatch.setenv("OMP_NUM_THREADS", "4")
        train(None, None, MaskedLM, TrainConfig(device="cpu"), tmp_path)
        monkeypatch.delenv("OMP_NUM_THREADS")
        train(None, None, MaskedLM, TrainConfig(device="cpu"), tmp_path)
        assert torch.get_num_threads() == 4  # restored
    finally:
        torch.set_num_threads(before)
    assert seen == [4, 2]


@pytest.mark.slow
def test_ddp_two_gloo_processes(corpus, tmp_path):
    """Two CPU ranks: identical weights at the end, every sample once per epoch over both; the
    same weights and logged losses as one process that accumulates the two ranks' batches (the
    log's loss is the mean over every rank's targets, not rank 0's)."""
    import torch.multiprocessing as mp

    from groverlm.corpus import Corpus

    n = len(Corpus.open(corpus).train)
    batches = len(epoch_batches(np.zeros(n), DDP_BATCH, 0, 0, world=2))
    assert batches == len(epoch_batches(np.zeros(n), DDP_BATCH, 0, 0, world=1))
    per_rank = batches // 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(corpus), str(tmp_path), 2 * per_rank), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for k, v in r0["state"].items():
        torch.testing.assert_close(v, r1["state"][k], rtol=0, atol=0, msg=k)
    for epoch in (0, 1):
        part = slice(epoch * per_rank, (epoch + 1) * per_rank)
        seen = [i for r in (r0, r1) for b in r["seen"][part] for i in b]
        assert sorted(seen) == list(range(n))
    assert r0["seen"][0] != r1["seen"][0]
    one = tmp_path / "one"
    one.mkdir()
    r = build_run(corpus, ModelConfig(overrides=NO_DROPOUT, eval_samples=8), 0, 4)
    train(r.model, r.data, MaskedLM, TrainConfig(max_steps=2 * per_rank, batch_size=DDP_BATCH,
                                                  grad_accum=2, eval_every=0, save_every=0,
                                                  threads=1, log_every=1),
          one, r.evaluate, r.tokenizer, run_config={}, progress=False)
    for k, v in r.model.state_dict().items():
        torch.testing.assert_close(v, r0["state"][k], rtol=0, atol=1e-6, msg=k)
    losses = [[x["loss"] for x in read_log(d) if x["kind"] == "train"]
              for d in (tmp_path, one)]
    assert len(losses[0]) == 2 * per_rank
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)


def test_objective_equals_the_stock_loss(corpus):
    """The head-on-targets objective computes transformers' own MLM loss (summed, not averaged)."""
    r = build_run(corpus, ModelConfig(overrides=TINY, mask_rate=0.15), 0, 8)
    r.model.eval()
    batch = r.data.collate(np.arange(8), torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = MaskedLM(r.model)(**batch) / MaskedLM.count(batch)
        stock = r.model(**batch).loss
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("preset", ["tiny", "tiny-bert"])
def test_an_all_ones_mask_is_dropped_and_the_loss_stays(preset):
    """The loop hands the model None for a batch without padding (so that compiled SDPA can take its
    maskless kernels), keeps a padded batch's mask, and the loss is the same either way."""
    model = new_mlm_model(build_config(preset, 40, {}, 0), seed=0).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 40, (3, 12), generator=gen)
    labels = torch.where(torch.rand(ids.shape, generator=gen) < 0.3, ids, IGNORE)
    full = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    dropped = without_full_mask(full)
    assert dropped["attention_mask"] is None and dropped["input_ids"] is ids
    padded = {**full, "attention_mask": full["attention_mask"].clone()}
    padded["attention_mask"][0, -2:] = 0
    assert without_full_mask(padded) is padded
    with torch.no_grad():
        torch.testing.assert_close(MaskedLM(model)(**dropped), MaskedLM(model)(**full))


def test_loop_learns_a_copy_task(corpus, tmp_path):
    """With training targets left unmasked (--mask-split 0,0) the answer is in the input: the loop
    must learn to copy it quickly, which fails if labels, masks and inputs are misaligned. The
    evaluation hides every target behind [MASK], so it cannot copy. The output bias starts at zero:
    from the unigram start, rare tokens take more than 80 steps to be copied."""
    from transformers import AutoModelForMaskedLM

    out = tmp_path / "m"
    assert main(pretrain_args(corpus, out, "--max-steps", "80", "--mask-rate", "0.15",
                              "--mask-split", "0,0", "--lr", "5e-3", "--batch-size", "8",
                              "--no-unigram-bias",
                              "--eval-every", "80", "--log-every", "10")) == 0
    log = [r for r in read_log(out) if r["kind"] == "train"]
    assert log[-1]["loss"] < 0.4 * log[0]["loss"]
    ev = read_json(out / "eval.json")
    assert ev["mlm_accuracy"] < 0.5  # from context alone: far from the copy task's 100%
    r = build_run(corpus, ModelConfig(overrides=TINY, mask_rate=0.15, mask_split=(0, 0),
                                       unigram_bias=False), 0, 8)
    batch = r.data.collate(np.arange(16), torch.Generator().manual_seed(1))
    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    with torch.no_grad():
        pred = model(input_ids=batch["input_ids"],
                     attention_mask=batch["attention_mask"]).logits.argmax(-1)
    target = batch["labels"] != IGNORE
    assert (pred[target] == batch["labels"][target]).float().mean() > 0.95


def test_a_fresh_model_starts_from_the_unigram_distribution(corpus):
    """The output bias starts at the log token frequencies: before any step the masked-token loss
    is the corpus's unigram entropy (not log V) and the model predicts the most frequent token."""
    losses = {}
    small_init = {**TINY, "initializer_range": 0.02}  # BERT's: random logits stay near zero
    for flag in (True, False):
        r = build_run(corpus, ModelConfig(overrides=small_init, mask_rate=0.15, unigram_bias=flag),
                      0, 8)
        r.model.eval()
        batch = r.data.collate(np.arange(16), torch.Generator().manual_seed(0))
        with torch.no_grad():
            logits = r.model(input_ids=batch["input_ids"],
                             attention_mask=batch["attention_mask"]).logits
        target = batch["labels"] != IGNORE
        losses[flag] = torch.nn.functional.cross_entropy(logits[target], batch["labels"][target])
        if flag:  # the mean predicted distribution is the training frequencies
            mean_p = logits[target].softmax(-1).mean(0).numpy()
            assert np.corrcoef(mean_p, r.corpus.train_counts)[0, 1] > 0.95
    counts = r.corpus.train_counts.astype(float)
    freq = counts[counts > 0] / counts.sum()
    entropy = float(-(freq * np.log(freq)).sum())
    assert abs(float(losses[True]) - entropy) < 0.3
    assert abs(float(losses[False]) - np.log(r.corpus.vocab_size)) < 0.2  # uniform
    assert float(losses[True]) < float(losses[False]) - 0.25


def test_run_config_round_trips_as_json(corpus):
    r = build_run(corpus, ModelConfig(overrides=TINY), 0, 4)
    assert json.loads(json.dumps(r.run_config)) == r.run_config


@pytest.mark.parametrize("module", ["groverlm.masking", "groverlm.models", "groverlm.train"])
def test_docstring_examples(module):
    import doctest
    import importlib

    assert doctest.testmod(importlib.import_module(module)).failed == 0


def test_context_baseline_is_scored_on_the_evaluated_targets(corpus):
    """context_accuracy is the table's accuracy on exactly the targets evaluated: recomputed here
    from the same batches with a plain dictionary of (left, right) -> commonest middle token."""
    r = build_run(corpus, ModelConfig(overrides=TINY, eval_mask_rate=0.25), 0, 4)
    tok, v = r.tokenizer, len(r.tokenizer)
    counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for i in range(len(r.corpus.train)):
        s = [tok.cls_token_id, *map(int, r.corpus.train[i]), tok.sep_token_id]
        for a, m, b in zip(s, s[1:], s[2:], strict=False):
            counts[a, b][m] += 1
    fallback = r.corpus.most_frequent_token()
    best = {k: min(c, key=lambda m: (-c[m], m)) for k, c in counts.items()}
    table = context_table(r.corpus.train, v, tok.cls_token_id, tok.sep_token_id, fallback)
    left, right = np.array(list(best)).T
    assert table(left, right).tolist() == list(best.values())
    assert (table(np.array([v - 1]), np.array([v - 1])) == fallback).all()  # a pair never seen
    assert table.pairs.size == len(best)  # sparse: the pairs seen, not V²
    ev = r.evaluate(r.model, contextlib.nullcontext, True)
    # the evaluation's batches again (same samples, order and mask seeds), scored by the dictionary
    # isolated although the model trained on random targets (mask_isolated off): none of them has
    # a masked neighbour that the table, reading true neighbours, would see through
    test = MLMData(r.corpus.test, tok, MaskingConfig(0.25, 1.0, 0.0, isolated=True),
                   r.data.random_ids)
    order = np.random.default_rng([0, 1]).permutation(len(r.corpus.test))
    order = order[np.argsort(test.lengths[order], kind="stable")]
    hits = unigram_hits = n = 0
    for k in range(0, len(order), 4):
        b = test.collate(order[k : k + 4], torch.Generator().manual_seed(seed_of(0, 0xE7A1, k, 1)))
        truth = torch.where(b["labels"] != IGNORE, b["labels"], b["input_ids"])
        for i, j in zip(*torch.nonzero(b["labels"] != IGNORE, as_tuple=True), strict=True):
            hits += best.get((int(truth[i, j - 1]), int(truth[i, j + 1])), fallback) == truth[i, j]
            unigram_hits += int(truth[i, j]) == fallback  # the most frequent training token
            n += 1
    assert n == ev["masked_tokens"] > 100 and ev["context_accuracy"] == pytest.approx(hits / n)
    assert 0 < unigram_hits < n and ev["unigram_accuracy"] == pytest.approx(unigram_hits / n)
    # the final evaluation pairs the model and the table target by target: each side's accuracy
    # over the paired rows is its own, so the rows line up (the table's would differ otherwise)
    d = ev["vs_context_table"]
    assert d["rows"] == n and d["metric"] == "accuracy" and d["low"] <= d["difference"] <= d["high"]
    assert d["difference"] == pytest.approx(ev["mlm_accuracy"] - ev["context_accuracy"])
    assert "vs_context_table" not in r.evaluate(r.model, contextlib.nullcontext, False)


def test_a_log_cut_short_by_a_kill_resumes(tmp_path):
    # a process killed while appending leaves half a line; resuming keeps the whole records up to
    # the checkpoint's step and drops the rest
    (tmp_path / LOG).write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n'
                                '{"step": 3, "loss": 1.2}\n{"step": 4, "lo')
    RunLog(tmp_path, enabled=True, resume_step=2)
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2]


def test_plot_log_checks_its_out_and_an_empty_log(tmp_path, capsys):
    """An unknown --out suffix was a matplotlib traceback after the plotting; an empty log an
    empty figure."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("")
    assert main(["plot-log", str(run), "--out", str(tmp_path / "p.png")]) == 2
    assert f"{run}: the log holds no training or evaluation record" in capsys.readouterr().err
    (run / "log.jsonl").write_text('{"kind": "train", "step": 1, "tokens_seen": 100, '
                                   '"loss": 3.0}\n')
    assert main(["plot-log", str(run), "--out", str(tmp_path / "p.txt")]) == 2
    assert "p.txt: --out must end in one of" in capsys.readouterr().err
    assert main(["plot-log", str(run), "--out", str(tmp_path / "p.svg")]) == 0
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "p.txt").exists()



def test_plot_log_keeps_the_final_evaluation_apart(tmp_path):
    """The final evaluation reads the whole test split, the periodic ones a sample: one line
    through both drew the context table's jump (6.6% to 8.5% in the demo) as learning."""
    from groverlm.pretrain import eval_groups

    ev = [{"kind": "eval", "step": s, "tokens_seen": 100 * s, "mlm_loss": 5.0,
           "mlm_accuracy": 0.05, "unigram_accuracy": 0.01, "context_accuracy": 0.066,
           "eval_samples": 512} for s in (10, 20)]
    ev.append({**ev[-1], "context_accuracy": 0.085, "eval_samples": 19634})
    assert [(n, [r["step"] for r in g]) for n, g in eval_groups(ev)] == [(512, [10, 20]),
                                                                         (19634, [20])]
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ev))
    assert main(["plot-log", str(run), "--out", str(tmp_path / "p.svg")]) == 0
    assert "19,634 samples" in (tmp_path / "p.svg").read_text()  # its own legend entry


def test_plot_log_of_one_run_names_its_lines_plainly_and_greys_the_baselines():
    """One run drew "model: model", "model: unigram baseline" (its folder is named model) with
    the baselines in the model's blue, and a legend box over the accuracy curve."""
    from groverlm.pretrain import draw_learning_curves

    log = [{"kind": "train", "step": 5, "tokens_seen": 500, "loss": 5.5}] + [
        {"kind": "eval", "step": s, "tokens_seen": 100 * s, "mlm_loss": 5.0,
         "mlm_accuracy": 0.05, "unigram_accuracy": 0.01, "context_accuracy": 0.066,
         "eval_samples": 512} for s in (10, 20)]
    acc = draw_learning_curves([log], ["model"]).axes[1]
    lines = {ln.get_label(): ln for ln in acc.get_lines()}
    assert list(lines) == ["model", "unigram baseline", "context table"]
    assert lines["model"].get_color() == "C0"
    assert lines["unigram baseline"].get_color() == lines["context table"].get_color() == "C7"
    assert acc.get_legend().get_bbox_to_anchor().y0 < acc.bbox.y0  # below: clear of the curves
    # several runs: each run's colour, and its name before each line
    acc = draw_learning_curves([log, log], ["a", "b"]).axes[1]
    lines = {ln.get_label(): ln for ln in acc.get_lines()}
    assert lines["b: unigram baseline"].get_color() == lines["b: model"].get_color() == "C1"


def test_plot_log_refuses_other_logs_and_keeps_an_existing_out(tmp_path, capsys):
    """A fine-tuning log was drawn as masked-token curves; records without the plotted fields, or
    a binary log, were KeyError/UnicodeDecodeError tracebacks; an existing image was replaced."""
    run = tmp_path / "run"
    run.mkdir()
    log = run / "log.jsonl"
    train = '{"kind": "train", "step": 1, "tokens_seen": 100, "loss": 3.0}\n'
    cases = [
        (train + '{"kind": "eval", "step": 1, "tokens_seen": 100, "dev_mcc": 0.3}\n',
         "not masked-token ones (a fine-tuning log?)"),
        ('{"kind": "train", "step": 1, "loss": 3.0}\n', "lacks tokens_seen"),
        (train + '{"kind": "eval", "step": 1, "tokens_seen": 100, "mlm_loss": 2.0, '
                 '"mlm_accuracy": 0.1}\n', "lacks unigram_accuracy"),
    ]
    for text, message in cases:
        log.write_text(text)
        assert main(["plot-log", str(run), "--out", str(tmp_path / "p.png")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.splitlines()) == 1
    log.write_bytes(b"\xff\xfe\x00bad")
    assert main(["plot-log", str(run), "--out", str(tmp_path / "p.png")]) == 2
    assert "binary data" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
    log.write_text(train)
    keep = tmp_path / "keep.png"
    keep.write_text("mine")
    assert main(["plot-log", str(run), "--out", str(keep)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and keep.read_text() == "mine"
    assert main(["plot-log", str(run), "--out", str(keep), "--overwrite"]) == 0
    assert keep.read_bytes().startswith(b"\x89PNG")


def test_padding_stays_within_the_models_positions(corpus):
    """Batches are padded up to a multiple of pad_multiple but never past the model's positions: a
    model of exactly longest + 2 positions (a count the rounding overshoots) trains and evaluates on
    its longest samples (an index error in the position embeddings before)."""
    longest = int(Corpus.open(corpus).train.lengths.max())
    positions = longest + 2
    cfg = ModelConfig(overrides={**TINY, "max_position_embeddings": positions},
                      pad_multiple=positions + 1, eval_samples=8)
    r = build_run(corpus, cfg, 0, 4)
    split = Corpus.open(corpus).train
    order = np.argsort(-split.lengths)[:4]  # the longest samples in one batch
    batch = r.data.collate(order, torch.Generator().manual_seed(0))
    assert batch["input_ids"].shape[1] == positions
    with torch.no_grad():
        out = r.model(**batch)
    assert torch.isfinite(out.loss)
