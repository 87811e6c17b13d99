"""The tasks stage in a run (`groverlm.tasks.run`): which task folders it keeps and which it makes
again when the runner hands its folder back (runner.Stage.checks_parts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from groverlm import genome, tasks
from groverlm.config import load_config
from groverlm.context import Context, DataFiles
from groverlm.manifest import fingerprint, write_manifest
from groverlm.tasks import build_ctcf

from .test_ctcf import JASPAR


def files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Each file of a folder, by name: its bytes and mtime."""
    return {str(f.relative_to(folder)): (f.read_bytes(), f.stat().st_mtime_ns)
            for f in sorted(folder.rglob("*")) if f.is_file()}


def test_a_changed_setting_or_input_remakes_only_the_tasks_it_feeds(tmp_path, genome3,
                                                                     tss_refseq, vocab):
    """Each task folder records its settings and its inputs' SHA-256s (genome, TSS list,
    vocabulary; motif, peaks): one made from the same is kept untouched, one made otherwise is
    made again (a new CTCF setting kept Prom300 and PromScan but also kept the old CTCF task), and
    a task no longer built loses its folder."""
    run = tmp_path / "run"
    tss = tmp_path / "tss.tsv"
    shutil.copy(tss_refseq, tss)
    motif, peaks = tmp_path / "m.jaspar", tmp_path / "p.bed"
    motif.write_text(JASPAR)
    peaks.write_text("".join(f"{c}\t2000\t12000\n" for c in ("chr1", "chr2", "chr3")))
    write_manifest(run / "genome", "run-genome", {}, [],
                   summary={"fasta": None, "tss": None, "tss_format": "auto"})
    write_manifest(run / "select_vocab", "run-select_vocab", {}, [],
                   summary={"vocab": str(vocab[1])})
    data = DataFiles(genome=genome3, tss=tss, ctcf_motif=motif, ctcf_peaks=(peaks,))

    def build(*sets: str) -> None:
        cfg = load_config(None, ["tasks.ctcf.window=60", *sets])
        tasks.run(cfg.stage("tasks"), Context(run, run / "tasks", cfg, data, progress=False))

    build()
    out = run / "tasks"
    before = {name: files(out / name) for name in tasks.TASKS}
    build("tasks.ctcf.window=50")
    assert files(out / "prom300") == before["prom300"]
    assert files(out / "promscan") == before["promscan"]
    made = json.loads((out / "ctcf" / "manifest.json").read_text())
    assert made["config"]["window"] == 50
    # the same as a task made afresh under the new setting
    cfg = load_config(None, ["tasks.ctcf.window=50"])
    build_ctcf(genome3, motif, [peaks], tmp_path / "fresh", cfg.stage("tasks").ctcf)
    for split in ("train", "dev", "test"):
        assert (out / "ctcf" / f"{split}.csv").read_bytes() == (
            tmp_path / "fresh" / f"{split}.csv").read_bytes()
    # a new TSS list: the TSS tasks are made again from it, CTCF is kept
    ctcf = files(out / "ctcf")
    tss.write_text("".join(tss.read_text().splitlines(keepends=True)[1:]))
    build("tasks.ctcf.window=50")
    assert files(out / "ctcf") == ctcf
    for name in ("prom300", "promscan"):
        made = json.loads((out / name / "manifest.json").read_text())
        assert fingerprint(tss)["sha256"] in [i["sha256"] for i in made["inputs"]], name
    # a task dropped from tasks.build loses its folder (the stages after it read every folder)
    prom300 = files(out / "prom300")
    build("tasks.ctcf.window=50", "tasks.build=[prom300]")
    assert sorted(p.name for p in out.iterdir()) == ["prom300"]
    assert files(out / "prom300") == prom300


def test_the_tasks_take_the_tss_format_the_genome_stage_read(tmp_path, genome3, tss_refseq, vocab,
                                                              monkeypatch):
    """The genome stage records the format it read the TSS list in (data.tss_format auto: the one
    it detected; it recorded `auto`), and the tasks stage checks its TSS tasks against that,
    without reading the whole list once more to detect it. A genome stage finished before it
    recorded the format still has those tasks kept."""
    run = tmp_path / "run"
    motif, peaks = tmp_path / "m.jaspar", tmp_path / "p.bed"
    motif.write_text(JASPAR)
    peaks.write_text("".join(f"{c}\t2000\t12000\n" for c in ("chr1", "chr2", "chr3")))
    cfg = load_config(None, ["tasks.ctcf.window=60"])
    assert cfg.data.tss_format == "auto"
    data = DataFiles(genome=genome3, tss=tss_refseq, ctcf_motif=motif, ctcf_peaks=(peaks,))
    (run / "genome").mkdir(parents=True)
    summary = genome.run(cfg.stage("genome"), Context(run, run / "genome", cfg, data, False))
    assert summary["tss_format"] == "refseq"
    write_manifest(run / "genome", "run-genome", {}, [], summary=summary)
    write_manifest(run / "select_vocab", "run-select_vocab", {}, [],
                   summary={"vocab": str(vocab[1])})

    def build() -> None:
        tasks.run(cfg.stage("tasks"), Context(run, run / "tasks", cfg, data, progress=False))

    build()
    out = run / "tasks"
    before = {name: files(out / name) for name in tasks.TASKS}
    read = []
    real = tasks.read_tss
    monkeypatch.setattr(tasks, "read_tss", lambda *a: read.append(a) or real(*a))
    build()
    assert read == [] and {name: files(out / name) for name in tasks.TASKS} == before
    write_manifest(run / "genome", "run-genome", {}, [], summary={**summary, "tss_format": "auto"})
    build()  # detected here, as before
    assert len(read) == 1 and {name: files(out / name) for name in tasks.TASKS} == before
