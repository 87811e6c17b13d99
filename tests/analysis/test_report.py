"""`groverlm analyze` into a folder, then `groverlm report` over a run holding every kind of stage:
what the page holds, what it leaves out, robustness to broken folders, and a real screenshot."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from groverlm.analysis import analyze
from groverlm.cli import main
from groverlm.config import load_config
from groverlm.context import Context, DataFiles
from groverlm.manifest import write_json, write_manifest
from groverlm.metrics import make_result, write_metrics

from .fixtures import make_genome, make_model

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.sh"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run folder: bpe train + export, analyses of a tiny model, a pretraining run, task
    metrics, a vocabulary-selection table, an embedding, an unknown stage and a broken one."""
    root = tmp_path_factory.mktemp("run")
    inputs = tmp_path_factory.mktemp("inputs")
    genome = make_genome(inputs / "genome.fa")
    assert main(["bpe", "train", str(genome), "--merges", "120", "--out", str(root / "bpe"),
                 "--quiet"]) == 0
    assert main(["bpe", "export", str(root / "bpe"), "--cycles", "120", "--out",
                 str(root / "vocab")]) == 0
    model = make_model(root / "vocab", inputs / "model")
    (inputs / "rep.bed").write_text("chrA\t25000\t26200\nchrB\t20000\t20800\n")
    (inputs / "tss.tsv").write_text("chrA\t39000\t+\nchrB\t100\t-\n")
    assert main(["analyze", "--model", str(model), "--vocab", str(root / "vocab"), "--genome",
                 str(genome), "--repeats", str(inputs / "rep.bed"), "--tss",
                 str(inputs / "tss.tsv"), "--out", str(root / "analysis"), "--windows", "12",
                 "--annotation-windows", "30", "--tokens", "30", "--context-tokens", "8",
                 "--quiet"]) == 0
    # a pretraining run as `groverlm pretrain` lays it out: log.jsonl, eval.json, manifest
    pre = root / "pretrain"
    pre.mkdir()
    log = [{"kind": "train", "step": s, "loss": 6.5 - s / 10, "lr": 1e-3 * (1 - s / 40),
            "tokens_seen": 100 * s} for s in range(5, 40, 5)]
    log += [{"kind": "eval", "step": s, "mlm_loss": 6.4 - s / 12, "mlm_accuracy": s / 400,
             "unigram_accuracy": 0.01} for s in (10, 20, 30)]
    (pre / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log) + '{"kind": "tr')
    write_json(pre / "eval.json", {"mlm_loss": 3.9, "mlm_accuracy": 0.075, "perplexity": 49.4,
                                   "unigram_accuracy": 0.012, "context_accuracy": 0.08})
    write_manifest(pre, "pretrain", {"corpus": "x"}, [], seed=0, parameters=143841)
    # task metrics: a baseline and a model
    task = root / "tasks" / "prom300"
    per = [{"seed": s, "test": {"mcc": 0.6 + s / 100, "f1": 0.8}, "dev": None} for s in (0, 1)]
    write_metrics(task / "tfidf", "prom300", [make_result("prom300", "tfidf-lr", per,
                                                          baseline=True)])
    write_metrics(task / "grover", "prom300", [make_result("prom300", "grover-600", per[:1])])
    # a language model whose name holds "kmer", and a baseline known only by its stage's manifest
    write_metrics(task / "kmer", "prom300", [make_result("prom300", "bert-kmer6", per[1:])])
    write_metrics(task / "cnn", "prom300", [make_result("prom300", "cnn", per[:1])])
    write_manifest(task / "cnn", "baselines-cnn", {}, [])
    write_manifest(task / "grover" / "model", "finetune-model", {}, [])  # the saved best seed
    # next-k-mer selection
    sel = root / "select"
    sel.mkdir()
    (sel / "selection.tsv").write_text("cycles\taccuracy\tperplexity\n100\t0.10\t90\n"
                                       "600\t0.20\t70\n1000\t0.15\t80\n")
    write_manifest(sel, "select-vocab", {"cycles": [100, 600, 1000]}, [])
    write_manifest(root / "mystery", "frobnicate", {"knob": 3}, [], widgets=7)
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text("{not json")
    write_manifest(root / "halfexport", "bpe-export", {"cycles": 5}, [])  # no vocab_stats.json
    fa = inputs / "seqs.fa"
    fa.write_text(">a\nACGTACGTAAGGCT\n>b\nGGGCCCATAT\n")
    assert main(["embed", "--model", str(model), "--input", str(fa), "--out",
                 str(root / "emb" / "seqs.npy"), "--quiet"]) == 0
    return root


def test_analyze_outputs_and_manifest(run):
    man = json.loads((run / "analysis" / "manifest.json").read_text())
    assert man["stage"] == "analyze" and man["skipped"] == {}
    assert list(man["analyses"]) == ["vocab", "pca", "masked", "context", "annotations"]
    for entry in man["analyses"].values():
        assert (run / "analysis" / entry["json"]).exists()
        for f in entry["figures"]:
            assert (run / "analysis" / f).read_bytes()[:4] == b"\x89PNG"
    ann = json.loads((run / "analysis" / "annotations.json").read_text())["result"]
    assert [p["annotation"] for p in ann["probes"]] == ["repeat", "tss", "gc"]  # no CpG file



def test_the_analysis_stage_reads_the_tss_list_in_the_run_s_format(run, tmp_path):
    """A TSS list only data.tss_format tells apart (RefSeq's three columns and a fourth, the gene's
    name) on a whole genome: the genome stage and the tasks read it in that format, and the
    analysis stage, which read it as `auto`, failed 'unrecognized TSS format' after pretraining."""
    made = json.loads((run / "analysis" / "manifest.json").read_text())
    genome = next(Path(i["path"]) for i in made["inputs"] if i["path"].endswith("genome.fa"))
    tss = tmp_path / "tss.tsv"
    tss.write_text("chrA\t39000\t+\tgeneA\nchrB\t100\t-\tgeneB\n")
    (tmp_path / "corpus" / "corpus").mkdir(parents=True)  # read by masked accuracy alone
    for stage, summary in [("genome", {"fasta": None, "tss": None, "tss_format": "refseq"}),
                           ("select_vocab", {"cycles": 120, "vocab": str(run / "vocab")}),
                           ("pretrain", {"model": made["model"]}),
                           ("corpus", {"corpus": "corpus/corpus"})]:
        write_manifest(tmp_path / stage, f"run-{stage}", {}, [], summary=summary)
    cfg = load_config(None, ["data.tss_format=refseq", "analysis.analyze.only=[annotations]",
                             "analysis.analyze.annotation_windows=30",
                             "analysis.analyze.tokens=30"])
    data = DataFiles(genome=genome, tss=tss, ctcf_motif=None, ctcf_peaks=())
    ctx = Context(tmp_path, tmp_path / "analysis", cfg, data, progress=False)
    assert analyze.run(cfg.stage("analysis"), ctx)["ran"] == ["annotations"]
    result = json.loads((tmp_path / "analysis" / "analyses" / "annotations.json").read_text())
    assert [p["annotation"] for p in result["result"]["probes"]] == ["tss", "gc"]

def test_analyze_windows_stay_within_the_pretrained_positions(run, tmp_path):
    """A model pretrained on short samples (its tokenizer's limit, as `groverlm pretrain` saves it)
    is read in windows no longer than those: the demo's 256-token windows in a model trained on
    128 positions put half of each on untrained position embeddings (masked accuracy 6.8% against
    8.3%)."""
    from transformers import AutoTokenizer

    made = {Path(i["path"]).name: i["path"] for i in json.loads(
        (run / "analysis" / "manifest.json").read_text())["inputs"]}
    model = tmp_path / "model"
    shutil.copytree(made["model"], model)
    tok = AutoTokenizer.from_pretrained(str(model))
    tok.model_max_length = 22  # pretrained on samples of 20 tokens, in a 64-position model
    tok.save_pretrained(str(model))
    assert main(["analyze", "--model", str(model), "--genome", made["genome.fa"], "--only",
                 "masked", "--vocab", str(run / "vocab"), "--windows", "4", "--tokens", "30",
                 "--out", str(tmp_path / "a"), "--quiet"]) == 0
    masked = json.loads((tmp_path / "a" / "masked.json").read_text())
    assert masked["settings"]["config"]["tokens"] == 20


def test_analyze_refuses_resumes_and_checks_inputs(run, tmp_path, capsys):
    out = run / "analysis"
    args = ["analyze", "--vocab", str(run / "vocab"), "--out", str(out), "--only", "vocab"]
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "manifest.json").unlink()
    stamp = (copy / "vocab.json").stat().st_mtime_ns
    assert main(["analyze", "--vocab", str(run / "vocab"), "--out", str(copy), "--only",
                 "vocab", "--windows", "12", "--annotation-windows", "30", "--tokens", "30",
                 "--context-tokens", "8"]) == 0
    assert (copy / "vocab.json").stat().st_mtime_ns == stamp  # same settings: kept, not redone
    assert main(["analyze", "--vocab", str(run / "vocab"), "--out", str(copy), "--only",
                 "vocab", "--windows", "12", "--annotation-windows", "30", "--tokens", "30",
                 "--context-tokens", "8", "--overwrite", "--batch-size", "3"]) == 0
    assert (copy / "vocab.json").stat().st_mtime_ns == stamp  # a volatile setting: kept too
    assert main(["analyze", "--vocab", str(run / "vocab"), "--out", str(copy), "--only", "vocab",
                 "--overwrite", "--seed", "5"]) == 0
    assert (copy / "vocab.json").stat().st_mtime_ns != stamp  # other settings: redone
    assert main(["analyze", "--vocab", str(run / "vocab"), "--out", str(tmp_path / "x"),
                 "--only", "context"]) == 2
    assert "needs --model and --genome" in capsys.readouterr().err
    assert main(["analyze", "--vocab", str(run / "vocab"), "--out", str(tmp_path / "y"),
                 "--only", "nonsense"]) == 2
    # few windows: the occurrences each token needs can be lowered from the command line
    made = {Path(i["path"]).name: i["path"] for i in json.loads(
        (out / "manifest.json").read_text())["inputs"]}  # the fixture's model and genome
    ctx = ["analyze", "--model", made["model"], "--genome", made["genome.fa"], "--only", "context",
           "--windows", "3", "--context-tokens", "4", "--quiet"]
    assert main([*ctx, "--out", str(tmp_path / "c1")]) == 2
    assert "--context-occurrences" in capsys.readouterr().err
    assert main([*ctx, "--out", str(tmp_path / "c2"), "--context-occurrences", "2"]) == 0
    assert json.loads((tmp_path / "c2" / "manifest.json").read_text())["config"][
        "context_occurrences"] == 2


def test_an_interrupted_analysis_moved_with_its_inputs_keeps_what_it_finished(run, tmp_path):
    """A folder with a vocabulary and an unfinished `analyze` into it, moved (`mv runs/a runs/b`,
    an rsync from a cluster): each finished analysis recorded its inputs' fingerprints with their
    paths, so the rerun at the new place made every one again. They are compared by their hashes:
    kept; another vocabulary at the new place still redoes it."""
    work = tmp_path / "work"
    shutil.copytree(run / "vocab", work / "vocab")

    def analyze(root: Path) -> int:
        return main(["analyze", "--vocab", str(root / "vocab"), "--out", str(root / "a"),
                     "--only", "vocab", "--quiet"])

    assert analyze(work) == 0
    (work / "a" / "manifest.json").unlink()  # stopped before its manifest
    shutil.move(work, tmp_path / "moved")
    made = tmp_path / "moved" / "a" / "vocab.json"
    stamp = made.stat().st_mtime_ns
    assert analyze(tmp_path / "moved") == 0
    assert made.stat().st_mtime_ns == stamp  # kept, not redone
    (made.parent / "manifest.json").unlink()
    write_manifest(tmp_path / "moved" / "vocab", "bpe-export", {"cycles": 7}, [])  # another one
    assert analyze(tmp_path / "moved") == 0
    assert made.stat().st_mtime_ns != stamp


def sections(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def test_report_holds_every_stage(run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    page = out.read_text()
    titles = sections(page)
    expect = ["BPE training", "Vocabulary at 120 cycles", "Pretraining", "Vocabulary selection",
              "Task results", "Analyses", "Embeddings", "frobnicate"]
    positions = [next(i for i, t in enumerate(titles) if t.startswith(e)) for e in expect]
    assert positions == sorted(positions), titles
    # self-contained: every image inline PNG, no script, stylesheet or remote resource
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(base64.b64decode(s.split(",", 1)[1])[:4] == b"\x89PNG" for s in srcs)
    assert "<script" not in page and "<link" not in page
    analysis = json.loads((run / "analysis" / "manifest.json").read_text())["analyses"]
    n_analysis_figs = sum(len(e["figures"]) for e in analysis.values())
    # bpe-train, bpe-export, learning curves, selection curve, task results: one figure each;
    # the analyses' vocab.png is bpe-export's figure of the same vocabulary, shown there alone
    assert len(srcs) == 5 + n_analysis_figs - 1
    assert page.count('alt="vocabulary statistics"') == 1 and 'alt="vocab.png"' not in page
    assert "Shown in “Vocabulary at 120 cycles”." in page
    assert "tfidf-lr" in page and "grover-600" in page and "0.605" in page  # mean of 0.60, 0.61
    assert "broken" in page and "unreadable manifest" in page
    assert "halfexport (bpe-export): not rendered" in page
    assert "widgets" in page  # an unknown stage shows its manifest's figures
    assert "GROVER (hg19, 600 cycles)" in page
    assert not any(t.startswith("finetune-model") for t in titles)  # its results: Task results


def test_an_analysis_of_a_vocabulary_the_page_does_not_show_keeps_its_figure(run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(run / "analysis"), "--out", str(out)]) == 0
    page = out.read_text()
    assert 'alt="vocab.png"' in page and "Shown in" not in page


def test_report_opens_with_the_answer(run, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out)]) == 0
    page = out.read_text()
    assert sections(page)[0] == "What the model learned"
    answer = page.split("<section")[1]
    cells = re.sub(r"<[^>]+>", "|", answer)
    # masked tokens beside both baselines, with a verdict
    assert "|7.50%|" in cells and "|8.00%|" in cells and "|1.20%|" in cells
    assert "94% of the context table" in answer
    # tasks: language models first, baselines after them, each recognised by its producer
    header = re.search(r"<tr><th>task</th>(.*?)</tr>", answer).group(1)
    names = re.findall(r"<th>([^<]*)</th>", header)
    assert names == ["bert-kmer6", "grover-600", "cnn", "tfidf-lr", "verdict",
                     "against the best baseline"], names
    assert "bert-kmer6 beats every baseline" in answer  # 0.61 against tfidf-lr's 0.605
    # these fixture results keep no test rows, so no paired interval can be drawn
    assert "no paired interval (test rows not kept, or not the same test rows)" in answer
    # the vocabulary against GROVER's figures; the folder list folded away
    assert "GROVER (hg19, 600 cycles)" in answer
    head = page.split("<section")[0]
    assert "<details><summary>" in head and "stage folders" in head


def test_runner_manifests_make_one_timing_section(tmp_path):
    from groverlm.manifest import write_manifest

    for i, stage in enumerate(["corpus", "bpe", "genome"]):  # folder order is not run order
        write_manifest(tmp_path / stage, f"run-{stage}", {}, [], seconds=10.0 + i,
                       cpu_seconds=5.0 + i, peak_rss_gb=0.25 * (i + 1))
        m = json.loads((tmp_path / stage / "manifest.json").read_text())
        m["created"] = f"2026-01-01T00:00:0{2 - i}+0000"
        (tmp_path / stage / "manifest.json").write_text(json.dumps(m))
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    titles = sections(page)
    assert titles[0] == "Pipeline run: time and memory per stage"
    assert not any(t.startswith("run-") for t in titles), titles
    body = page.split("Pipeline run")[-1]
    assert body.index(">genome<") < body.index(">bpe<") < body.index(">corpus<")
    assert ">0.75<" in body and ">12<" in body  # genome's peak and seconds


def test_stages_finished_in_one_second_are_listed_in_pipeline_order(tmp_path):
    """`created` counts whole seconds: stages that finished within one second (the genome and BPE
    of a small run) were listed in folder order, bpe before genome, and two runs of one config
    gave two pages."""
    for stage in ["bpe", "genome", "select_vocab"]:  # folder order is not run order
        write_manifest(tmp_path / stage, f"run-{stage}", {}, [], seconds=1.0)
        m = json.loads((tmp_path / stage / "manifest.json").read_text())
        m["created"] = "2026-01-01T00:00:00+0000"
        (tmp_path / stage / "manifest.json").write_text(json.dumps(m))
    assert main(["report", str(tmp_path)]) == 0
    body = (tmp_path / "report.html").read_text().split("Pipeline run")[-1]
    assert body.index(">genome<") < body.index(">bpe<") < body.index(">select_vocab<")


def test_report_of_nothing_and_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 0
    page = (tmp_path / "empty" / "report.html").read_text()
    assert "No groverlm stage found" in page and "<h2>" not in page
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_screenshot_in_headless_chromium(run, tmp_path):
    if not (shutil.which("chromium") or shutil.which("chromium-browser")
            or shutil.which("google-chrome")):
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    import matplotlib.image as mpimg
    import numpy as np

    report = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(report)]) == 0
    png = tmp_path / "shot.png"
    subprocess.run(["bash", str(SCRIPT), str(report), str(png), "1200", "2400"], check=True,
                   capture_output=True, timeout=120)
    img = mpimg.imread(png)  # (H, W, 3 or 4) floats in [0, 1]
    assert img.shape[:2] == (2400, 1200)
    gray = img[..., :3].mean(-1)
    assert (gray < 0.3).mean() > 0.002  # text and plot lines were drawn
    colored = np.abs(img[..., 0] - img[..., 2]) > 0.3  # the plots' blue and red, not just text
    assert colored.mean() > 0.001
    assert gray[:120].min() < 0.3  # the title sits at the top of the page


def test_verdicts_follow_the_paired_interval_and_the_scratch_control_is_paired(tmp_path):
    y = [0, 1] * 50

    def seeds(pred):
        return [{"seed": 0, "test": {"mcc": None, "y_true": y, "y_pred": pred}}]

    def result(model, pred, mcc, **params):
        r = make_result("t", model, seeds(pred), params)
        r["mcc_mean"] = mcc
        return r

    near = list(y)
    near[0] = 1  # one row apart: a difference no interval excludes 0 from
    write_metrics(tmp_path / "finetune" / "t", "t", [result("lm", y, 0.99)])
    write_metrics(tmp_path / "finetune" / "scratch" / "t", "t", [
        {**result("lm-scratch", [0] * 100, 0.0, scratch_of="lm"), "baseline": True}])
    write_metrics(tmp_path / "baselines" / "t", "t", [
        {**result("tfidf-lr", near, 0.98), "baseline": True}])
    assert main(["report", str(tmp_path)]) == 0
    answer = (tmp_path / "report.html").read_text().split("<section")[1]
    assert "level with tfidf-lr (0.980)" in answer  # ahead on the point, not on the interval
    assert "beats every baseline" not in answer
    assert re.search(r"lm - lm-scratch: \+1\.000 \(95% interval", answer)  # pretraining adds


def test_review_fixes_seed_means_nextkmer_section_and_settings(tmp_path):
    """F1 and AUROC beside a mean MCC are means too; a next-k-mer folder shows its accuracies, not
    its samples; a one-component PCA and an all-N Prom300 row are handled."""
    import numpy as np
    import pytest

    from groverlm.analysis.analyze import AnalyzeConfig
    from groverlm.analysis.report import StageFolder, _seed_mean, render_nextkmer
    from groverlm.analysis.zeroshot import prom300_readout
    from groverlm.errors import GroverError

    rec = {"test": {"auroc": 0.6}, "per_seed": [{"test": {"auroc": 0.6}}, {"test": {"auroc": 0.8}}]}
    assert _seed_mean(rec, "auroc") == pytest.approx(0.7)
    folder = tmp_path / "nk"
    folder.mkdir()
    (folder / "samples.tsv").write_text("split\tcontext\ntrain\tACGT\n")
    write_manifest(folder, "nextkmer", {}, [], summary=[{"k": 2, "accuracy": 0.12,
                                                         "most_frequent_accuracy": 0.07}])
    st = StageFolder(folder, json.loads((folder / "manifest.json").read_text()),
                     folder / "manifest.json")
    page = "".join(render_nextkmer(st, tmp_path).body)
    assert "0.12" in page and "ACGT" not in page
    with pytest.raises(GroverError, match="pca_components"):
        AnalyzeConfig(pca_components=1)
    res = prom300_readout(["a", "b", "c", "d"], [1, 0, 1, 0],
                          lambda s: np.array([-1.0, -2.0, np.nan, -3.0]))
    assert res["sequences"] == 3 and res["auroc"] == 1.0


def test_evaluations_on_other_sample_counts_are_other_curves(tmp_path):
    """The final evaluation reads the whole test split, the periodic ones a sample: one line
    through both drew the context table's jump (6.6% to 8.5% in the demo) as learning."""
    from groverlm.analysis.plots import COLORS
    from groverlm.analysis.report import curve_series, plot_learning_curves, render_tasks

    log = [{"kind": "train", "step": 10, "loss": 5.0},
           {"kind": "eval", "step": 10, "mlm_accuracy": 0.05, "context_accuracy": 0.066,
            "eval_samples": 512},
           {"kind": "eval", "step": 20, "mlm_accuracy": 0.06, "context_accuracy": 0.066,
            "eval_samples": 512},
           {"kind": "eval", "step": 20, "mlm_accuracy": 0.087, "context_accuracy": 0.085,
            "eval_samples": 19634}]
    series = curve_series(log)
    assert series[("eval on 512 samples", "context_accuracy")] == ([10, 20], [0.066, 0.066])
    assert series[("eval on 19,634 samples", "mlm_accuracy")] == ([20], [0.087])
    assert series[("train", "loss")] == ([10], [5.0])
    # drawn in percent, each field in one colour whatever its sample count: the model blue, its
    # baselines grey (the report drew each series in the next colour: the model's final accuracy
    # red beside a purple curve, the unigram brown), the other sample count as markers alone
    log[1]["unigram_accuracy"] = log[2]["unigram_accuracy"] = log[3]["unigram_accuracy"] = 0.01
    fig = plot_learning_curves(log)
    acc = next(a for a in fig.axes if a.get_title() == "accuracy")
    assert acc.get_ylabel() == "accuracy (%)"
    lines = {ln.get_label(): ln for ln in acc.get_lines()}
    assert list(lines)[:3] == ["model (512 samples)", "context table (512 samples)",
                               "unigram (512 samples)"]
    model = lines["model (512 samples)"]
    assert list(model.get_ydata()) == pytest.approx([5.0, 6.0])
    final = [ln for ln in acc.get_lines() if list(ln.get_xdata()) == [20]]
    assert len(final) == 3 and all(ln.get_linestyle() == "None" for ln in final)
    assert final[0].get_label() == "19,634 samples (hollow: baselines)"
    assert final[0].get_ydata()[0] == pytest.approx(8.7)
    assert model.get_color() == final[0].get_color() == COLORS[0]
    assert {lines["context table (512 samples)"].get_color(), final[1].get_color()} == {COLORS[7]}
    # the task table says what its F1 and AUROC are, and which rows are baselines
    rec = {"task": "t", "model": "m", "baseline": False, "mcc_mean": 0.5, "mcc_std": 0.1,
           "seeds": [0, 1], "test": {"f1": 0.6, "auroc": 0.7},
           "per_seed": [{"test": {"f1": 0.6, "auroc": 0.7}}, {"test": {"f1": 0.8, "auroc": 0.9}}]}
    page = "".join(render_tasks([rec, {**rec, "model": "b", "baseline": True}], [], tmp_path).body)
    assert "F1 (seed mean)" in page and "AUROC (seed mean)" in page and "0.7" in page
    assert "language model" in page and "baseline" in page


def test_the_task_figure_draws_next_kmer_accuracy_beside_chance_and_the_most_frequent(tmp_path):
    """The task figure drew next-k-mer results as MCC on the 0-1 axis of the classification tasks:
    every bar within 0.1 of zero, and neither chance nor the most frequent k-mer that the report's
    first table sets them against. Now their top-1 accuracy (%), with both as lines."""
    import matplotlib.colors
    import numpy as np

    from groverlm.analysis.plots import COLORS
    from groverlm.analysis.report import plot_tasks

    src = tmp_path / "metrics.json"
    write_json(src, {"summary": [{"k": 2, "chance": 0.0625, "most_frequent_accuracy": 0.0732}]})

    def rec(task, model, baseline, accs, mccs):
        return {"task": task, "model": model, "baseline": baseline, "source": str(src),
                "mcc_mean": float(np.mean(mccs)), "mcc_std": float(np.std(mccs)),
                "seeds": list(range(len(mccs))), "test": {"accuracy": accs[0], "mcc": mccs[0]},
                "per_seed": [{"test": {"accuracy": a, "mcc": m}}
                             for a, m in zip(accs, mccs, strict=True)]}

    fig = plot_tasks([rec("nextkmer-k2", "lm", False, [0.12], [0.05]),
                      rec("nextkmer-k2", "tfidf-lr", True, [0.11], [0.04]),
                      rec("ctcf", "lm", False, [0.7, 0.8], [0.2, 0.3]),
                      rec("ctcf", "cnn", True, [0.6], [0.13])])
    ctcf, kmer = fig.axes
    assert kmer.get_title() == "nextkmer-k2 (grey: baselines)"
    assert kmer.get_xlabel().startswith("test top-1 accuracy (%")
    widths = {t.get_text(): p.get_width()
              for t, p in zip(kmer.get_yticklabels(), kmer.patches, strict=True)}
    assert widths == pytest.approx({"lm": 12.0, "tfidf-lr": 11.0})
    assert [p.get_facecolor()[:3] for p in kmer.patches] == [
        pytest.approx(matplotlib.colors.to_rgb(c)) for c in (COLORS[7], COLORS[0])]
    lines = {ln.get_label(): ln.get_xdata()[0] for ln in kmer.get_lines()}
    assert lines["chance: 6.2%"] == pytest.approx(6.25)
    assert lines["most frequent k-mer: 7.3%"] == pytest.approx(7.32)
    assert {t.get_text() for t in kmer.texts} == {"12.0%", "11.0%"}
    # classification tasks keep MCC on one 0-1 scale, an error bar only where seeds spread
    assert ctcf.get_xlabel().startswith("test MCC") and ctcf.get_xlim()[1] == 1.0
    assert [p.get_width() for p in ctcf.patches] == pytest.approx([0.13, 0.25])
    assert len(ctcf.containers) == 2  # the bars, and one error bar (the lm's two seeds)
    assert list(ctcf.containers[1].lines[2][0].get_segments()[0][:, 0]) == pytest.approx([0.2, 0.3])


def test_a_selection_section_shows_the_stage_figure_with_its_baselines(tmp_path):
    """The report drew select-vocab's curve.tsv generically: accuracies and the lift over the most
    frequent k-mer (a ratio of 1 to 6) on one axis, no baseline; the stage's plot.png has them."""
    from groverlm.analysis.report import StageFolder, render_select_vocab

    (tmp_path / "curve.tsv").write_text("cycles\tacc_k2\tlift_over_most_frequent\n"
                                        "100\t0.098\t3.2\n600\t0.078\t1.2\n")
    png = b"\x89PNG\r\n\x1a\n" + b"stage figure"
    (tmp_path / "plot.png").write_bytes(png)
    st = StageFolder(tmp_path, {"stage": "select-vocab"}, tmp_path / "manifest.json")
    page = "".join(render_select_vocab(st, tmp_path).body)
    srcs = re.findall(r'src="data:image/png;base64,([^"]*)"', page)
    assert [base64.b64decode(s) for s in srcs] == [png]
    assert "curve.tsv" in page  # the table is still shown


def test_the_prom300_readout_scores_promoters_pretraining_never_read():
    """Rows of every split inside a held-out region (the demo's test split had none there: its
    AUROC rated promoters the model was pretrained on); the test split when none of both
    classes is."""
    import numpy as np

    from groverlm.analysis.zeroshot import held_out_split
    from groverlm.corpus import Region
    from groverlm.tasks.gue import Split, Task

    def split(starts, labels):
        return Split([f"s{s}" for s in starts], np.array(labels),
                     {"chrom": ["c"] * len(starts), "start": starts,
                      "end": [s + 300 for s in starts]}, [[f"t{s}"] for s in starts])

    task = Task("prom300", None, {"train": split([100, 5_000, 5_000, 9_800], [1, 1, 0, 0]),
                                  "dev": split([6_000], [0]), "test": split([200, 200], [1, 0])},
                {"0": 0, "1": 1})
    rows, source = held_out_split(task, [Region("c", 4_000, 10_000)])  # 9,800-10,100 crosses out
    assert rows.sequences == ["s5000", "s5000", "s6000"] and rows.labels.tolist() == [1, 0, 0]
    assert rows.tokens == [["t5000"], ["t5000"], ["t6000"]] and source.startswith("held-out")
    assert held_out_split(task, [Region("c", 9_000)])[0] is task.test  # no promoter in it
    assert held_out_split(task, [])[1] == "test split (pretraining may have read it)"


def test_repeated_section_titles_keep_their_folder_in_the_contents(tmp_path):
    """A selection's candidates give a dozen sections of one kind: their links name the folder."""
    from groverlm.analysis.report import render_report

    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "samples.tsv").write_text("split\tcontext\ntrain\tACGT\n")
        write_manifest(folder, "nextkmer", {}, [], summary=[{"k": 2, "accuracy": 0.12,
                                                             "most_frequent_accuracy": 0.07}])
    nav = render_report(tmp_path).split("<nav>")[1].split("</nav>")[0]
    assert ">Next-k-mer prediction — a<" in nav and ">Next-k-mer prediction — b<" in nav


def test_the_most_frequent_k_mer_keeps_its_dashes_when_chance_is_missing(tmp_path):
    """The reference lines took their styles in order (dots, then dashes): a summary without
    chance drew the most frequent k-mer dotted, as chance."""
    from groverlm.analysis.plots import MOST_FREQUENT_LINE
    from groverlm.analysis.report import plot_tasks

    src = tmp_path / "metrics.json"
    write_json(src, {"summary": [{"k": 2, "most_frequent_accuracy": 0.0732}]})
    rec = {"task": "nextkmer-k2", "model": "lm", "baseline": False, "source": str(src),
           "mcc_mean": 0.05, "mcc_std": 0.0, "seeds": [0], "test": {"accuracy": 0.12, "mcc": 0.05},
           "per_seed": [{"test": {"accuracy": 0.12, "mcc": 0.05}}]}
    (kmer,) = plot_tasks([rec]).axes
    (line,) = [ln for ln in kmer.get_lines() if not ln.get_label().startswith("_")]
    assert line.get_label() == "most frequent k-mer: 7.3%"
    assert (line.get_color(), line.get_linestyle()) == MOST_FREQUENT_LINE


def test_the_answer_shows_the_models_own_vocabulary_in_a_moved_run_folder(tmp_path):
    """The first screen's vocabulary is the one the pretrained model read (its corpus's), found
    through the inputs its manifests record. They record absolute paths: in a run folder moved
    since, they were found nowhere, and the page showed the BPE stage's own export instead of
    the vocabulary selection chose. Inputs are found by their fingerprints."""
    from groverlm.bpe.export import export_vocab
    from groverlm.bpe.train import write_training

    run = tmp_path / "run"
    write_training(make_genome(tmp_path / "genome.fa"), run / "bpe" / "train", 120, None, None,
                   False, progress=False)
    export_vocab(run / "bpe" / "train", 120, run / "bpe" / "export")  # bpe.cycles
    selection = run / "select_vocab" / "selection"
    chosen = selection / "vocab" / "bpe-60"
    export_vocab(run / "bpe" / "train", 60, chosen)
    write_manifest(selection, "select-vocab", {}, [])
    write_manifest(run / "corpus" / "corpus", "corpus", {}, [chosen])
    write_manifest(run / "pretrain" / "model", "pretrain", {}, [run / "corpus" / "corpus"])
    shutil.move(run, tmp_path / "moved")
    assert main(["report", str(tmp_path / "moved")]) == 0
    answer = (tmp_path / "moved" / "report.html").read_text().split("<section")[1]
    assert "<h3>Vocabulary (select_vocab/selection/vocab/bpe-60) against GROVER" in answer
