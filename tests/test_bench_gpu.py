"""bench/gpu.py --smoke: every part of the GPU check runs on the CPU at toy sizes and writes one JSON
with sane values. Run as a subprocess, as a user runs it (bench/ is not a package, and the check
patches torch.compile while it runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 13-19 s on the shared 2-core machine, most of it imports and tracing
def test_gpu_check_smoke(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--smoke", "--out",
                           str(out), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert r["smoke"] is True and r["errors"] == []
    assert r["sections"] == ["throughput", "precision", "pretrain"]

    thr = r["throughput"]
    assert thr["positions"] == thr["tokens_per_sample"] + 2 and thr["flops_per_token"] > 0
    assert thr["model"]["attention"] == "sdpa"
    for name in ("eager", "compile"):
        run = thr["runs"][name]
        assert run["compile"] is (name == "compile")
        assert run["tokens_per_s"] > 0 and run["step_s"] > 0
        # the timed steps see exactly timed_steps full batches of every position
        assert run["timed_tokens"] == thr["timed_steps"] * thr["batch_size"] * thr["positions"]
        assert run["tflops"] == pytest.approx(run["tokens_per_s"] * thr["flops_per_token"] / 1e12)
        assert 0 < run["mfu"] < 1
    # the run without dropout is measured beside, but the target is judged on GROVER's model
    nodrop = thr["runs"]["compile-nodropout"]
    assert nodrop["compile"] is True and nodrop["tokens_per_s"] > 0
    assert [thr["runs"][k]["mode"] for k in ("eager", "compile")] == [None, "default"]
    assert nodrop["changes"] == {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    assert thr["best"]["run"] in ("eager", "compile")
    assert thr["best"]["tokens_per_s"] == max(thr["runs"][k]["tokens_per_s"]
                                              for k in ("eager", "compile"))

    for check in (r["precision"], r["pretrain"]["bf16_vs_fp32"]):
        assert check["loss_fp32"] > 0 and check["loss_bf16"] > 0 and check["targets"] > 0
        assert check["relative_difference"] == pytest.approx(
            abs(check["loss_bf16"] - check["loss_fp32"]) / check["loss_fp32"])
        assert check["relative_difference"] < check["tolerance"] and check["pass"] is True

    pre = r["pretrain"]
    assert 1 <= pre["steps"] == pre["planned_steps"] <= r["settings"]["pretrain_max_steps"]
    assert pre["tokens_seen"] > 0 and pre["tokens_per_second"] > 0
    assert pre["calibration"]["tokens_per_s"] > 0
    for key in ("mlm_accuracy", "unigram_accuracy", "context_accuracy"):
        assert 0 <= pre[key] <= 1, key
    assert pre["clears_context_table"] is (pre["mlm_accuracy"] > pre["context_accuracy"])
    assert pre["curve"] and pre["curve"][-1]["step"] == pre["steps"]
    assert set(pre["corpus"]["seconds"]) == {"bpe_train", "bpe_export", "corpus"}

    assert len(r["targets"]) == 5 and all("pass" in t for t in r["targets"])
    assert 0 < r["seconds"] < 120
    assert "MFU" in proc.stdout and "context table" in proc.stdout


@pytest.mark.slow  # about 14 s on the 2-core machine: imports and tracing
def test_gpu_profile_smoke(tmp_path: Path) -> None:
    """bench/gpu_profile.py --smoke times and profiles a compiled step with the mask and without it."""
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_profile.py"), "--smoke",
                           "--runs", "mask,nomask", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(out.read_text())
    assert list(r["runs"]) == ["mask", "nomask"]
    for name, run in r["runs"].items():
        assert "error" not in run, run.get("error")
        assert run["drop_mask"] is (name == "nomask")
        assert run["tokens_per_s"] > 0 and run["step_ms"] > 0
        assert sum(run["kernels"]["share"].values()) == pytest.approx(1, abs=0.01)
        assert run["kernels"]["top"] and run["kernels"]["ms_per_step"] > 0
