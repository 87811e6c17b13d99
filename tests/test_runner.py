"""The runner: skipping by manifest, --only/--from/--force, resuming after a crash, and an
end-to-end run of configs/mini.yaml on the first 4 Mbp of chr20."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from groverlm import runner
from groverlm.args import changes_to, volatile
from groverlm.cli import main
from groverlm.config import WRITTEN, DataConfig, RunConfig, RunSection, dump_config, load_config
from groverlm.context import Context, DataFiles, check_regions, resolve_data
from groverlm.corpus import Region
from groverlm.data import FILES, DataFile, Source
from groverlm.errors import GroverError
from groverlm.genome import GenomeConfig
from groverlm.manifest import LOCK, finished, keep_part, write_manifest
from groverlm.runner import Stage, run_pipeline, summarize_run

from .conftest import DATA, held_elsewhere, random_dna, sigkill_when_exists, write_fasta

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GENOME = runner._stage("genome")  # the real stage, before a test swaps in toy ones


# -- the runner's bookkeeping, on toy stages ---------------------------------------------------

@dataclass(frozen=True)
class Toy:
    x: int = 1


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Three toy stages a -> b -> c (a reads the genome file); returns (make_config, calls)."""
    calls: list[str] = []
    fail: set[str] = set()

    def adapter(name):
        def run(cfg, ctx):
            calls.append(name)
            assert not finished(ctx.out)  # a kept or resumed folder is unfinished meanwhile
            for need in runner._stage(name).needs:  # upstream outputs are there
                assert (ctx.stage_dir(need) / "out.txt").is_file()
            part = ctx.out / "part"
            if part.is_dir():
                calls.append(f"{name}:kept part")
            else:
                part.mkdir()
                (part / "manifest.json").write_text("{}")
            if name in fail:
                raise RuntimeError(f"{name} crashed")
            (ctx.out / "out.txt").write_text(f"{name} {cfg.x}")
            return {"x": cfg.x}
        return run

    for name in "abc":  # a stage is a module with a run(cfg, ctx): here, three fake ones
        monkeypatch.setitem(sys.modules, f"toy_{name}", SimpleNamespace(run=adapter(name)))
    monkeypatch.setattr(runner, "STAGES", [
        Stage("a", "toy_a", data=lambda d: [d.genome]),
        Stage("b", "toy_b", needs=("a",), settings=lambda cfg: {"tss": cfg.data.tss_format}),
        Stage("c", "toy_c", needs=("b",)),
    ])
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("g.fa", "m.jaspar"):
        (data_dir / name).write_text(name)
    # annotations on chrA, the record of the tests that run the real genome stage (which checks them)
    (data_dir / "t.tsv").write_text("chrA\t10\t11\tx\t0\t+\n")
    (data_dir / "p.bed").write_text("chrA\t5\t50\n")

    def make(a=1, b=1, c=1, tss_format="auto", data=data_dir):
        return RunConfig(RunSection(str(tmp_path / "run")),
                         DataConfig(dir=str(data), genome="g.fa", tss="t.tsv", tss_format=tss_format,
                                    ctcf_motif="m.jaspar", ctcf_peaks=("p.bed",), repeats=None,
                                    cpg=None),
                         {"a": Toy(a), "b": Toy(b), "c": Toy(c)})

    make.run = tmp_path / "run"
    make.data = data_dir
    make.fail = fail
    return make, calls


def statuses(results):
    return [r.status for r in results]


def test_skips_what_is_up_to_date(toy):
    make, calls = toy
    assert statuses(run_pipeline(make())) == ["ran"] * 3
    mtimes = {s: (make.run / s / "manifest.json").stat().st_mtime_ns for s in "abc"}
    assert statuses(run_pipeline(make())) == ["skipped (up to date)"] * 3
    assert calls == ["a", "b", "c"]
    assert mtimes == {s: (make.run / s / "manifest.json").stat().st_mtime_ns for s in "abc"}
    m = json.loads((make.run / "b" / "manifest.json").read_text())
    assert m["stage"] == "run-b" and m["summary"] == {"x": 1}
    assert m["config"] == {"x": 1, "other_sections": {"tss": "auto"}}  # b reads data.tss_format
    assert not (make.run / "b" / runner.PENDING).exists()


def test_a_changed_setting_reruns_that_stage_and_downstream(toy):
    make, calls = toy
    run_pipeline(make())
    calls.clear()
    assert statuses(run_pipeline(make(b=2))) == ["skipped (up to date)", "ran", "ran"]
    assert calls == ["b", "c"]
    assert (make.run / "b" / "out.txt").read_text() == "b 2"


def test_a_setting_of_another_section_a_stage_reads_reruns_it(toy):
    make, calls = toy
    run_pipeline(make())
    calls.clear()
    assert statuses(run_pipeline(make(tss_format="bed"))) == ["skipped (up to date)", "ran", "ran"]
    assert runner.stage_status(runner._stage("b"), make(), make.run, None) == (
        "out of date (config changed: other_sections.tss: 'bed' -> 'auto')")


@pytest.mark.parametrize("name", ["select_vocab", "nextkmer", "score"])
def test_a_stage_with_region_null_reads_the_corpus_holdout(name):
    stage = runner._stage(name)
    one, two = (load_config(None, [f"corpus.holdout=['{h}']"]) for h in ("chr20:0-9", "chr2"))
    assert stage.settings(one) != stage.settings(two)  # so the stage reruns when it changes
    one, two = (load_config(None, [f"corpus.holdout=['{h}']", f"{name}.region=chr1"])
                for h in ("chr20:0-9", "chr2"))
    assert stage.settings(one) == stage.settings(two) == {}
    assert runner._stage("genome").settings(load_config(None, ["data.tss_format=bed"])) == {
        "data.tss_format": "bed"}


def test_a_changed_input_file_reruns_everything_after_it(toy):
    make, calls = toy
    run_pipeline(make())
    calls.clear()
    (make.data / "g.fa").write_text("another genome")
    assert statuses(run_pipeline(make())) == ["ran"] * 3
    (make.data / "p.bed").write_text("not read by any toy stage")
    assert statuses(run_pipeline(make())) == ["skipped (up to date)"] * 3


def test_only_from_and_force(toy):
    make, calls = toy
    with pytest.raises(GroverError, match=r"stage 'a' is missing.*drop --only/--from"):
        run_pipeline(make(), only=["b"])
    run_pipeline(make())
    calls.clear()
    assert statuses(run_pipeline(make(), only=["b"])) == [
        "not selected", "skipped (up to date)", "not selected"]
    assert statuses(run_pipeline(make(), only=["b"], force=True))[1] == "ran"
    assert calls == ["b"]
    # c now reads a newer b: a plain run redoes it
    assert statuses(run_pipeline(make()))[2] == "ran"
    calls.clear()
    assert statuses(run_pipeline(make(), start="b", force=True)) == ["not selected", "ran", "ran"]
    assert calls == ["b", "c"]
    # a stage that is out of date cannot be skipped over
    with pytest.raises(GroverError, match=r"stage 'a' is out of date \(config changed: x: 1 -> 5\)"):
        run_pipeline(make(a=5), start="b")
    with pytest.raises(GroverError, match="unknown stage 'z'; stages: a, b, c"):
        run_pipeline(make(), only=["z"])


def test_interrupted_stage_resumes_its_finished_parts(toy):
    make, calls = toy
    make.fail.add("b")
    with pytest.raises(RuntimeError, match="b crashed"):
        run_pipeline(make())
    assert (make.run / "b" / runner.PENDING).exists() and not (make.run / "b" / "manifest.json"
                                                                 ).exists()
    a_mtime = (make.run / "a" / "manifest.json").stat().st_mtime_ns
    make.fail.clear()
    calls.clear()
    # the plan said 'missing', of a stage a run resumes
    assert [r.status for r in run_pipeline(make(), plan=True)][1] == (
        "would run: interrupted; resumes it, keeping its finished parts")
    assert statuses(run_pipeline(make())) == ["skipped (up to date)", "ran", "ran"]
    assert calls == ["b", "b:kept part", "c"]  # a not redone; b's finished part kept
    assert (make.run / "a" / "manifest.json").stat().st_mtime_ns == a_mtime


def test_interrupted_stage_with_a_new_config_starts_afresh(toy):
    make, calls = toy
    make.fail.add("b")
    with pytest.raises(RuntimeError):
        run_pipeline(make())
    make.fail.clear()
    calls.clear()
    run_pipeline(make(b=3))
    assert calls == ["b", "c"]  # no "kept part": the old attempt was cleared


def test_a_stage_that_keeps_parts_gets_its_folder_under_new_settings_not_new_inputs(
        toy, monkeypatch):
    """A stage module with `keeps_parts` (select_vocab: its pretrained candidates) is handed its
    folder, made from the same inputs, when only its settings changed: its own records tell what
    those feed. Other inputs, --force, or the hook saying no remove the folder as before."""
    make, calls = toy
    say = {"keep": True}
    monkeypatch.setattr(sys.modules["toy_b"], "keeps_parts",
                        lambda section, cfg: say["keep"], raising=False)
    run_pipeline(make())
    calls.clear()
    keeps = "; keeps the parts the changed settings do not feed"  # and the plan says so

    def plan(**settings) -> str:
        return run_pipeline(make(**settings), plan=True)[1].status

    assert plan(b=2) == f"would run: out of date (config changed: x: 1 -> 2){keeps}"
    assert statuses(run_pipeline(make(b=2))) == ["skipped (up to date)", "ran", "ran"]
    assert calls == ["b", "b:kept part", "c"]
    assert (make.run / "b" / "out.txt").read_text() == "b 2"
    # interrupted under new settings, then rerun under others: kept again (pending.json's inputs)
    make.fail.add("b")
    with pytest.raises(RuntimeError):
        run_pipeline(make(b=3))
    make.fail.clear()
    calls.clear()
    assert plan(b=4) == f"would run: interrupted{keeps}"
    run_pipeline(make(b=4))
    assert calls == ["b", "b:kept part", "c"]
    # a's output changed (b's input), --force, a hook saying no: the folder is removed
    for settings, only, keep, expected in (({"a": 2, "b": 5}, None, True, ["a", "b", "c"]),
                                           ({"a": 2, "b": 5}, ["b"], True, ["b"]),  # --force
                                           ({"a": 2, "b": 6}, None, False, ["b", "c"])):
        say["keep"] = keep
        assert keeps not in plan(**settings)
        calls.clear()
        run_pipeline(make(**settings), only=only, force=only is not None)
        assert calls == expected


def test_a_stage_that_checks_its_parts_gets_its_finished_folder_whatever_changed(
        toy, monkeypatch):
    """A stage whose run checks every part it keeps against what it would make it from now
    (Stage.checks_parts: the tasks, fine-tuning, baselines) is handed its finished folder under new
    settings and new inputs alike, and the plan says so; not with --force, nor after an attempt
    interrupted under other settings (its unfinished part would be resumed under the new ones)."""
    make, calls = toy
    a, b, c = runner.STAGES
    monkeypatch.setattr(runner, "STAGES", [a, replace(b, checks_parts=True), c])
    run_pipeline(make())
    keeps = "; keeps the parts made from unchanged settings and inputs"
    for settings, why, redone in (({"b": 2}, "out of date (config changed: x: 1 -> 2)", "b"),
                                  ({"a": 2, "b": 2}, "after a", "ab")):
        assert run_pipeline(make(**settings), plan=True)[1].status == f"would run: {why}{keeps}"
        calls.clear()
        run_pipeline(make(**settings))
        assert calls == [*redone[:-1], "b", "b:kept part", "c"]
    calls.clear()
    assert run_pipeline(make(a=2, b=2), only=["b"], force=True, plan=True)[1].status == (
        "would run: --force")
    run_pipeline(make(a=2, b=2), only=["b"], force=True)
    assert calls == ["b"]  # removed first
    make.fail.add("b")
    with pytest.raises(RuntimeError):
        run_pipeline(make(a=2, b=3))
    make.fail.clear()
    calls.clear()
    assert run_pipeline(make(a=2, b=4), plan=True)[1].status == (  # no finished folder to hand
        "would run: interrupted; starts it afresh (it was made under other settings or inputs)")
    run_pipeline(make(a=2, b=4))
    assert calls == ["b", "c"]


def test_a_moved_run_folder_keeps_its_stages_and_parts(toy, monkeypatch, tmp_path):
    """A finished run moved (or copied from a cluster) and run again there: nothing is redone.
    A stage that checks its parts records in each the path of the folder it read (finetune's
    model and task folder, the baselines' task folder): at the new place a change that redoes the
    stage for one part keeps the others, the moved folders being the same inputs; a part's input
    made again is still another input."""
    make, calls = toy

    def run_b(cfg, ctx):  # two parts, as a stage's `made_from` records them
        calls.append("b")
        parts = {"from_a": ({"a": str(ctx.stage_dir("a"))}, [ctx.stage_dir("a")]),
                 "from_x": ({"x": cfg.x}, [])}
        for name, (config, inputs) in parts.items():
            if not keep_part(ctx.out / name, config, inputs, cfg):
                calls.append(f"b:made {name}")
                write_manifest(ctx.out / name, "part", config, inputs)
        (ctx.out / "out.txt").write_text(f"b {cfg.x}")
        return {"x": cfg.x}

    monkeypatch.setitem(sys.modules, "toy_b", SimpleNamespace(run=run_b))
    a, b, c = runner.STAGES
    monkeypatch.setattr(runner, "STAGES", [a, replace(b, checks_parts=True), c])
    run_pipeline(make())
    moved = tmp_path / "moved"
    shutil.move(make.run, moved)

    def there(**settings):
        return replace(make(**settings), run=RunSection(str(moved)))

    calls.clear()
    assert statuses(run_pipeline(there(), plan=True)) == ["up to date"] * 3
    assert statuses(run_pipeline(there())) == ["skipped (up to date)"] * 3
    assert calls == []
    assert run_pipeline(there(b=2), plan=True)[1].status.startswith("would run: out of date")
    run_pipeline(there(b=2))
    assert calls == ["b", "b:made from_x", "c"]  # not from_a: the same folder a, moved
    calls.clear()
    run_pipeline(there(a=2, b=2))  # a made again: what part from_a read is another folder
    assert calls == ["a", "b", "b:made from_a", "c"]


def test_a_stage_redone_to_the_same_effect_leaves_the_stages_after_it_done(toy, monkeypatch):
    """A stage module with `handed_on` (genome: the sequence and the TSS list; select_vocab: the
    chosen vocabulary) is known to the stages after it by the digests of the parts they read:
    redone under other settings that hand on the same, they stay done; a changed part reruns the
    stages that read it (c reads part "odd" alone, d every part); a stage reading whole folders
    (the report) reruns."""
    make, calls = toy
    monkeypatch.setattr(sys.modules["toy_b"], "handed_on", raising=False,
                        value=lambda summary, ctx: {"odd": str(summary["x"] % 2),
                                                    "big": str(summary["x"] > 3)})
    for name in "de":
        monkeypatch.setitem(sys.modules, f"toy_{name}", SimpleNamespace(
            run=lambda cfg, ctx, name=name: calls.append(name) or {}))
    a, b, c = runner.STAGES
    monkeypatch.setattr(runner, "STAGES", [a, b, replace(c, reads={"b": ("odd",)}),
                                           Stage("d", "toy_d", needs=("b",)),
                                           Stage("e", "toy_e", needs=("b",), reads_all=True)])

    def config(b):
        cfg = make(b=b)
        cfg.stages.update(d=Toy(), e=Toy())
        return cfg

    run_pipeline(config(1))
    for x, redone in ((3, "be"), (3, ""), (5, "bde"), (4, "bcde")):
        calls.clear()
        run_pipeline(config(x))
        assert "".join(calls) == redone, x
        data = resolve_data(config(x).data)
        assert {runner.stage_status(s, config(x), make.run, data) for s in runner.STAGES} == {
            "done"}
    # --force on b, the same settings: c and d are done still
    calls.clear()
    run_pipeline(config(4), only=["b"], force=True)
    run_pipeline(config(4))
    assert calls == ["b", "e"]


def test_a_plan_says_what_a_run_would_redo_and_writes_nothing(toy, monkeypatch, capsys):
    """`groverlm run --plan`: each stage's line says whether a run would redo it and why, after
    the run's own checks; nothing is run or written, and no data file is fetched."""
    make, calls = toy

    def plan(cfg, **kw):
        return [(r.name, r.status) for r in run_pipeline(cfg, plan=True, **kw)]

    def listing():
        return sorted((str(p), p.stat().st_mtime_ns) for p in make.run.rglob("*"))

    assert plan(make()) == [("a", "would run: missing"), ("b", "would run: missing"),
                            ("c", "would run: missing")]
    assert not make.run.exists() and calls == []
    run_pipeline(make())
    before, calls[:] = listing(), []
    assert plan(make()) == [("a", "up to date"), ("b", "up to date"), ("c", "up to date")]
    assert plan(make(b=2)) == [("a", "up to date"), ("b", "would run: out of date (config "
                               "changed: x: 1 -> 2)"), ("c", "would run: after b")]
    (make.data / "g.fa").write_text("another genome")
    assert [t for _, t in plan(make())] == ["would run: out of date (inputs changed)",
                                           "would run: after a", "would run: after b"]
    assert plan(make(), only=["c"]) == [  # as the run checks every stage c reads, not only b
        ("a", "not selected, and out of date (inputs changed): the stages asked for need it, so "
              "a run would stop"), ("b", "not selected"), ("c", "up to date")]
    with pytest.raises(GroverError, match="stage 'a' is out of date"):
        run_pipeline(make(), only=["c"])  # (which wrote its config copy)
    (make.data / "g.fa").write_text("g.fa")
    before = listing()
    assert plan(make(), only=["b"], force=True)[1:] == [("b", "would run: --force"),
                                                        ("c", "not selected")]
    # a and b say what they hand on (and did when the stages after them ran)
    for name in "ab":
        monkeypatch.setattr(sys.modules[f"toy_{name}"], "handed_on",
                            lambda summary, ctx: {"all": "same"}, raising=False)
    run_pipeline(make(), force=True)
    before, calls[:] = listing(), []
    # c may not need redoing
    assert plan(make(b=2))[2] == ("c", "may run: only if the redone b changes what the stages "
                                       "after it read")
    # a stage after one that may run: on the same condition
    assert [t for _, t in plan(make(a=2))][1:] == [
        "may run: only if the redone a changes what the stages after it read"] * 2
    assert listing() == before and calls == []
    # the command: the same lines, exit 0
    monkeypatch.setattr(runner, "load_config", lambda path, sets: make(b=2))  # toy stages
    assert main(["run", "toy.yaml", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "(plan: nothing is run or written)" in out
    assert re.search(r"^b +would run: out of date \(config changed: x: 1 -> 2\)$", out, re.M)
    assert listing() == before and calls == []


def test_a_plan_says_which_data_files_a_run_would_fetch_and_plans_on(toy, monkeypatch, capsys,
                                                                     tmp_path):
    """--plan on a finished run whose config names a file groverlm fetches that the data cache
    lacks (the cache cleared, or another such file named) stopped: 'could not fetch 1 file:
    ...network sources not tried'. It now says the file would be fetched, and plans on: a stage
    that read that file is up to date when a fetched copy holds known bytes (every copy matches
    the reference's), and they are the ones it read; it may run when they are not known (a gzip
    file passes on its decompressed bytes) but may be those; it would run when it read another
    file. The run then does that. No network: the sources answer from here."""
    make, calls = toy
    served = {"toy.fa": b">r\nACGT\n", "new.fa": b">r\nTTTT\n", "toy.fa.gz": gzip.compress(
        b">r\nACGT\n", mtime=0)}
    for name, raw in served.items():
        content = hashlib.sha256(gzip.decompress(raw)).hexdigest() if name.endswith(".gz") else None
        monkeypatch.setitem(FILES, name, DataFile(
            name, len(raw), hashlib.sha256(raw).hexdigest(), content, "a toy genome",
            (Source("url", f"https://example.org/{name}"),)))
    fetched = []

    def fetch_source(source, workdir, dst, progress=True):
        fetched.append(dst.name)
        dst.write_bytes(served[dst.name])

    monkeypatch.setattr("groverlm.data.fetch_source", fetch_source)
    monkeypatch.delenv("GROVERLM_DATA", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("GROVERLM_CACHE", str(cache))

    def config(genome: str):
        cfg = make()
        return replace(cfg, data=replace(cfg.data, dir=None, genome=genome, tss=None,
                                         ctcf_motif=None, ctcf_peaks=()))

    def listing():
        return sorted((str(p), p.read_bytes()) for p in cache.rglob("*") if p.is_file())

    def plan(genome: str) -> tuple[list[str], list[str]]:
        lines: list[str] = []
        before = listing()
        said = [r.status for r in run_pipeline(config(genome), plan=True, on_data=lines.append)]
        assert fetched == [] and listing() == before  # nothing fetched or written
        return said, lines

    def runs(genome: str) -> list[str]:
        calls.clear()
        run_pipeline(config(genome))
        assert fetched == [genome]
        fetched.clear()
        return list(calls)

    assert plan("toy.fa") == (["would run: missing"] * 3, [  # nothing done: the fetches too
        f"toy.fa{' ' * 32} would be fetched from https://example.org/toy.fa"])
    assert runs("toy.fa") == ["a", "b", "c"]
    (cache / "data" / "toy.fa").unlink()  # the cache cleared
    assert plan("toy.fa")[0] == ["up to date"] * 3
    assert runs("toy.fa") == []
    assert plan("new.fa")[0] == ["would run: out of date (inputs changed: new.fa to be fetched)",
                                 "would run: after a", "would run: after b"]
    assert runs("new.fa") == ["a", "b", "c"]
    assert runs("toy.fa.gz") == ["a", "b", "c"]
    may = "may run: only if the fetched toy.fa.gz differs from the copy the run read"
    (cache / "data" / "toy.fa.gz").unlink()
    assert plan("toy.fa.gz")[0] == [may] * 3
    assert runs("toy.fa.gz") == []  # the same bytes, as it happens
    (cache / "data" / "toy.fa.gz").write_bytes(b"damaged")
    said, lines = plan("toy.fa.gz")
    assert said == [may] * 3 and "would be fetched again (the cached copy: SHA-256" in lines[0]
    assert runs("toy.fa.gz") == []
    # the command prints where each data file would come from
    monkeypatch.setattr(runner, "load_config", lambda path, sets: config("toy.fa.gz"))
    (cache / "data" / "toy.fa.gz").unlink()
    assert main(["run", "toy.yaml", "--plan"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^data: toy.fa.gz +would be fetched from https://example.org/toy.fa.gz$",
                     out, re.M)
    assert re.search(rf"^a +{may}$", out, re.M)


def test_a_plan_says_when_a_run_would_stop_at_a_stage_it_puts_out_of_date(toy, monkeypatch):
    """--only a,c after a setting of a changed: the plan said a would run, b (which c reads) not
    selected and c up to date, and the run redid a, then stopped at b, out of date after a. The
    plan now says b stops the run, or may, when a says what it hands on."""
    make, calls = toy

    def plan(cfg, **kw):
        return [(r.name, r.status) for r in run_pipeline(cfg, plan=True, **kw)]

    run_pipeline(make())
    stop = "the stages asked for need it, so a run would stop"
    assert plan(make(a=2), only=["a", "c"]) == [
        ("a", "would run: out of date (config changed: x: 1 -> 2)"),
        ("b", f"not selected, and out of date once a is redone: {stop}"), ("c", "up to date")]
    calls.clear()
    with pytest.raises(GroverError, match="stage 'b' is out of date"):
        run_pipeline(make(a=2), only=["a", "c"])
    assert calls == ["a"]
    # a says what it hands on, the same after a redo: b may stay up to date, and here it does
    monkeypatch.setattr(sys.modules["toy_a"], "handed_on", lambda summary, ctx: {"all": "same"},
                        raising=False)
    run_pipeline(make(), force=True)
    assert plan(make(a=3), only=["a", "c"])[1] == (
        "b", f"not selected, and out of date if the redone a changes what it reads: {stop} then")
    calls.clear()
    assert statuses(run_pipeline(make(a=3), only=["a", "c"])) == [
        "ran", "not selected", "skipped (up to date)"]

def test_a_plan_knows_a_stage_recorded_before_its_need_said_what_it_hands_on(toy, monkeypatch):
    """In a run folder made before the genome stage said what it hands on, a new TSS list redid
    BPE, the corpus and pretraining (their manifests knew the genome by its whole manifest, which
    the redo changes), while the plan said each 'may run: only if the redone genome changes what
    the stages after it read'. Such a stage's line now says it would run, as it does; once it
    has run since, it may."""
    make, calls = toy

    def plan(cfg):
        return [(r.name, r.status) for r in run_pipeline(cfg, plan=True)]

    run_pipeline(make())  # a says nothing of what it hands on, as before
    monkeypatch.setattr(sys.modules["toy_a"], "handed_on", lambda summary, ctx: {"all": "same"},
                        raising=False)
    assert plan(make(a=2))[1:] == [("b", "would run: after a"), ("c", "would run: after b")]
    calls.clear()
    run_pipeline(make(a=2))
    assert calls == ["a", "b", "c"]
    assert plan(make(a=3))[1][1].startswith("may run: only if the redone a changes")
    calls.clear()
    run_pipeline(make(a=3))
    assert calls == ["a"]

def test_a_removal_cut_short_never_leaves_a_stage_that_looks_finished(toy, monkeypatch):
    """A changed setting (or --force) removes the stage folder before the stage runs again. Killed
    midway through that removal (a big pretraining folder takes seconds), the folder kept its
    manifest.json beside a part of its output, and a rerun under the first settings skipped the
    stage as done; now the folder is whole or gone, and what was left aside goes with the rerun."""
    make, calls = toy
    run_pipeline(make())
    rmtree = shutil.rmtree

    def killed_midway(path, *args, **kwargs):
        rmtree(Path(path) / "part")  # the bulk of the folder went first
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(make(b=2))
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    calls.clear()
    assert statuses(run_pipeline(make())) == ["skipped (up to date)", "ran", "ran"]
    assert calls == ["b", "c"]
    assert (make.run / "b" / "part" / "manifest.json").is_file()
    assert sorted(p.name for p in make.run.iterdir()) == ["a", "b", "c", "config.yaml"]


def test_refuses_to_delete_a_folder_it_did_not_make(toy):
    make, _ = toy
    (make.run / "a").mkdir(parents=True)
    (make.run / "a" / "notes.txt").write_text("mine")
    with pytest.raises(GroverError, match="not a groverlm run stage.*refusing to delete"):
        run_pipeline(make())
    assert (make.run / "a" / "notes.txt").exists()
    # and the plan says so, --force or not
    for force in (False, True):
        assert re.search(r"; a run would stop there: .*/a: exists and is not a groverlm run stage",
                         run_pipeline(make(), force=force, plan=True)[0].status)


def test_resolved_config_is_saved(toy):
    make, _ = toy
    run_pipeline(make(b=7))
    assert "b: {x: 7}" in (make.run / "config.yaml").read_text()
    run_pipeline(make(b=8))  # its own copy is rewritten
    assert "b: {x: 8}" in (make.run / "config.yaml").read_text()


def test_a_config_file_a_user_wrote_in_the_run_folder_is_never_overwritten(toy):
    make, calls = toy
    make.run.mkdir()
    mine = "# my settings\nb: {x: 7}  # seven\n"
    (make.run / "config.yaml").write_text(mine)
    with pytest.raises(GroverError, match="not written by groverlm: move it out"):
        run_pipeline(make())
    assert (make.run / "config.yaml").read_text() == mine and calls == []
    older = dump_config(make()).removeprefix(WRITTEN)  # a run's record from before the mark
    assert not older.startswith("#")
    (make.run / "config.yaml").write_text(older)
    run_pipeline(make(b=3))
    assert "b: {x: 3}" in (make.run / "config.yaml").read_text()


@pytest.mark.parametrize("setting, message", [
    ("pretrain.model.overrides={hiden_size: 8}",
     "pretrain.model.overrides.hiden_size: not a deberta-v2"),
    ("select_vocab.pretraining.model.preset=huge", "select_vocab.pretraining.model: unknown preset"),
    ("corpus.holdout=[]", "select_vocab needs a region pretraining never saw"),
    ("score.region=chr1:9-3", "score.region 'chr1:9-3'"),
    # regions beyond the part of the genome the run keeps (they failed after genome and BPE)
    ("genome.max_bp=5; corpus.holdout=['chr20:3-9']", "corpus.holdout chr20:3-9 ends beyond "
                                                      "genome.max_bp (5 bp"),
    ("genome.chroms=[chr20]; nextkmer.region=chr1", "nextkmer.region chr1: 'chr1' is not among "
                                                    "genome.chroms"),
    ("genome.max_bp=9; analysis.analyze.region=chr20:5-12", "analysis.analyze.region chr20:5-12"),
    # model overrides that failed in pretraining, after the stages before it (two as tracebacks)
    ("pretrain.model.overrides={model_type: gpt2}", "transformers has no masked LM of this type"),
    ("pretrain.model.overrides={vocab_size: 10}", "vocab_size: the tokenizer sets it"),
    ("pretrain.model.overrides={max_position_embeddings: 64}",
     "samples of up to corpus.max_tokens 510 tokens with [CLS]/[SEP] exceed the model's 64"),
    # a device name and fine-tuning windows (they failed in the stage, naming --device, --stride)
    ("analysis.analyze.device=gpu", "analysis.analyze.device 'gpu' is not a device"),
    ("finetune.per_task.prom300.stride=600", "finetune.per_task.prom300.stride 600 exceeds the "
                                             "window of 510 tokens"),
    ("finetune.classifier.max_tokens=600", "finetune.classifier.max_tokens 600 exceeds the "
                                           "pretrained model's 510 tokens"),
    ("nextkmer.classifier.stride=600", "nextkmer.classifier.stride 600 exceeds the window of "
                                       "510 tokens"),
    ("nextkmer.classifier.max_tokens=600", "nextkmer.classifier.max_tokens 600 exceeds the "
                                           "pretrained model's 510 tokens"),
    ("nextkmer.classifier.max_train=100", "nextkmer.classifier.max_train 100: does not apply to "
                                          "next-k-mer"),
    # the selection's candidates: their positions (their samples' tokens are measured after BPE)
    ("select_vocab.classifier.max_tokens=600", "select_vocab.classifier.max_tokens 600 exceeds "
                                               "the pretrained model's 510 tokens (its positions)"),
    ("select_vocab.pretraining.model.overrides={max_position_embeddings: 200}; "
     "select_vocab.classifier.stride=300", "select_vocab.classifier.stride 300 exceeds the window "
                                           "of 198 tokens"),
    # the selection's candidates (they failed in select_vocab, after genome and BPE)
    ("select_vocab.pretraining.model.overrides={max_position_embeddings: 64}",
     "select_vocab.pretraining.model: samples of at least 128 tokens (sample_nt 512 in kmer-4's "
     "tokens) with [CLS]/[SEP] exceed the model's 64 positions"),
])
def test_settings_that_would_fail_a_later_stage_fail_before_any_stage_runs(tmp_path, setting,
                                                                            message):
    cfg = load_config(None, [f"run.dir={tmp_path / 'run'}", "corpus.holdout=['chr20:0-9']",
                             "select_vocab.select=true", *setting.split("; ")])
    with pytest.raises(GroverError, match=re.escape(message)):
        run_pipeline(cfg)  # the data (from the cache) is never reached, nor a folder made
    assert not (tmp_path / "run").exists()


def test_errors_found_after_loading_name_where_the_setting_was_given(tmp_path, monkeypatch):
    """A model override, a data file or a region found wrong after the config is loaded named a
    command-line flag or no file: now the config's file and line, or the --set that gave it."""
    monkeypatch.setenv("GROVERLM_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "my.yaml"
    config.write_text(f"run:\n  dir: {tmp_path / 'run'}\ncorpus:\n  holdout: ['chr20:3-9']\n"
                      "data:\n  genome: nosuch.fa\n"
                      "pretrain:\n  model:\n    overrides: {hiden_size: 8}\n")
    cases = [
        ([], f"{config}:9: pretrain.model.overrides.hiden_size: not a deberta-v2 config field"),
        (["pretrain.model.overrides={}"], f"{config}:6: data.genome: nosuch.fa: no such file in "
                                          "the current folder"),
        (["pretrain.model.overrides={}", f"data.dir={tmp_path}"],
         f"{config}:6: data.genome: {tmp_path / 'nosuch.fa'}: no such file"),
        (["pretrain.model.overrides={}", "data.genome=x.fa"],
         "--set data.genome=x.fa: data.genome: x.fa: no such file in the current folder"),
        (["pretrain.model.overrides={}", "genome.max_bp=5"],
         f"{config}:4: corpus.holdout chr20:3-9 ends beyond genome.max_bp"),
        (["pretrain.train.max_steps=4", "pretrain.model.overrides={max_position_embeddings: 64}"],
         "--set pretrain.model.overrides={max_position_embeddings: 64}: pretrain.model: samples "
         "of up to corpus.max_tokens 510 tokens"),
    ]
    for sets, message in cases:
        with pytest.raises(GroverError) as err:
            run_pipeline(load_config(config, sets))
        assert str(err.value).startswith(message), str(err.value)
    assert not (tmp_path / "run").exists()
    with pytest.raises(GroverError) as err, load_config(config).naming_sources():
        raise GroverError("genome.fa: truncated")  # a file's name, not a setting
    assert str(err.value) == "genome.fa: truncated"


def test_stages_with_nothing_to_do_say_why(tmp_path, caplog):
    """With tasks.build [] fine-tuning, baselines and (without CTCF data) the zero-shot readouts
    printed `ran 0.0 s` and nothing else; each now logs one line saying why."""
    cfg = load_config(None, ["tasks.build=[]", "finetune.tasks=null", "data.ctcf_motif=null"])
    for stage, summary in [("tasks", {}), ("select_vocab", {"cycles": 5}),
                           ("pretrain", {"model": "pretrain/model"})]:
        write_manifest(tmp_path / stage, f"run-{stage}", {}, [], summary=summary)
    (tmp_path / "pretrain" / "model").mkdir()  # never loaded: a readout would need it
    data = DataFiles(genome=tmp_path / "g.fa", tss=None, ctcf_motif=None, ctcf_peaks=())
    caplog.set_level("INFO")
    for stage in ("finetune", "baselines", "score"):
        ctx = Context(tmp_path, tmp_path / stage, cfg, data, progress=False)
        summary = runner._stage(stage).run(cfg.stage(stage), ctx)
        assert summary == ({"readouts": "score/readouts"} if stage == "score" else {})
    assert [r.getMessage() for r in caplog.records] == [
        "finetune: nothing to do: no tasks built (tasks.build is empty)",
        "baselines: nothing to do: no tasks built (tasks.build is empty)",
        "score: nothing to do: no Prom300 readout (tasks.build has no prom300), no CTCF readout "
        "(data.ctcf_motif or data.ctcf_peaks is null)"]


def test_a_relative_data_path_is_a_file_in_the_current_folder_else_the_cache(tmp_path,
                                                                           monkeypatch, caplog):
    """With data.dir null, a relative data file was looked up only in the data cache: a user's
    `data.genome: sub/my.fa`, beside them, failed as 'not a file groverlm can fetch'."""
    monkeypatch.setenv("GROVERLM_CACHE", str(tmp_path / "cache"))
    cache = tmp_path / "cache" / "data"
    cache.mkdir(parents=True)
    (cache / "own.bed").write_text("chrA\t5\t50\n")  # put in the cache by hand: found there
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    write_fasta(work / "sub" / "my.fa", {"chrA": "ACGT" * 30})
    monkeypatch.chdir(work)
    caplog.set_level("INFO")
    nulls = ["data.tss=null", "data.ctcf_motif=null", "data.ctcf_peaks=[own.bed]",
             "data.repeats=null", "data.cpg=null", f"run.dir={tmp_path / 'run'}"]
    files = resolve_data(load_config(None, ["data.genome=sub/my.fa", *nulls]).data, fetch=False)
    assert files.genome == work / "sub" / "my.fa" and files.ctcf_peaks == (cache / "own.bed",)
    assert "data.genome: sub/my.fa is in the current folder (not the data cache)" in caplog.text
    # a name relative to the config's folder, run from another: the error names where it looked
    config = work / "sub" / "c.yaml"
    config.write_text("data:\n  genome: my.fa\n")
    with pytest.raises(GroverError) as err:
        run_pipeline(load_config(config, nulls), only=["genome"])
    assert str(err.value) == (
        f"{config}:2: data.genome: my.fa: no such file in the current folder ({work}) or the data "
        f"cache ({cache}), and not one groverlm can fetch; there is one beside the config, "
        f"{work / 'sub' / 'my.fa'}: relative paths are from the current folder")
    with pytest.raises(GroverError, match=r"can fetch \(did you mean 'hg19_chr20.fa.gz'\?\)$"):
        resolve_data(load_config(None, ["data.genome=hg19_chr20.fa", *nulls]).data)
    assert not (tmp_path / "run").exists()


def test_a_run_folders_own_config_runs_in_that_folder_from_anywhere(tmp_path, monkeypatch,
                                                                    capsys, caplog):
    """`groverlm run RUN/config.yaml` from another folder, or after the run folder moved, took its
    recorded run.dir (runs/x: relative, as given, so that the folder can move) from the current
    folder: a new run folder there, and every stage ran again."""
    genome = write_fasta(tmp_path / "g.fa", {"chrA": random_dna(3000, 1)})
    sets = ["run.dir=runs/x", f"data.genome={genome}", "data.tss=null", "data.ctcf_motif=null",
            "data.ctcf_peaks=[]", "data.repeats=null", "data.cpg=null", "genome.chroms=null",
            "genome.max_bp=null", "tasks.build=[]"]
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(first)
    args = ["--only", "genome", "--quiet"]
    assert main(["run", str(CONFIGS / "mini.yaml"), *args, *(a for kv in sets
                                                            for a in ("--set", kv))]) == 0
    moved = tmp_path / "moved"
    shutil.move(first / "runs" / "x", moved)
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    caplog.set_level("INFO")
    assert main(["run", str(moved / "config.yaml"), *args]) == 0
    out = capsys.readouterr().out
    assert f"-> {moved}\n" in out and f"{'genome':<{runner.NAME_WIDTH}} skipped (up to date)" in out
    assert f"so the run is {moved}, not runs/x" in caplog.text
    assert not os.listdir(elsewhere)
    assert "run: {dir: runs/x}" in (moved / "config.yaml").read_text()  # still movable
    # a --set run.dir is another run, as asked; so is a copy of the config outside a run folder
    assert main(["run", str(moved / "config.yaml"), *args, "--set", "run.dir=runs/y"]) == 0
    shutil.copy(moved / "config.yaml", elsewhere / "config.yaml")
    assert main(["run", "config.yaml", *args]) == 0
    assert finished(elsewhere / "runs" / "y" / "genome") and finished(
        elsewhere / "runs" / "x" / "genome")


def genome_only(*sets: str) -> list[str]:
    """`groverlm run` arguments after the config for its genome stage alone into runs/x, every
    record of data.genome and no annotations, then `sets` (each KEY=VALUE, a later one wins)."""
    base = ["run.dir=runs/x", "data.ctcf_peaks=[]", "data.tss=null", "data.ctcf_motif=null",
            "data.repeats=null", "data.cpg=null", "genome.chroms=null", "genome.max_bp=null",
            "tasks.build=[]", *sets]
    return ["--only", "genome", "--quiet", *(a for kv in base for a in ("--set", kv))]


def test_a_new_tss_list_redoes_the_genome_stage_not_bpe(tmp_path, monkeypatch, capsys):
    """BPE reads the genome's sequence, not its TSS list: a new TSS list redid BPE and every stage
    after it (on hg19, BPE and pretraining); now the genome stage hands on the two apart
    (genome.handed_on), and a new sequence still redoes BPE."""
    monkeypatch.chdir(tmp_path)
    write_fasta(tmp_path / "g.fa", {"chrA": random_dna(20_000, 3)})
    for name, pos in (("one.bed", 100), ("two.bed", 900)):
        (tmp_path / name).write_text(f"chrA\t{pos}\t{pos + 1}\ttss\t0\t+\n")
    run = [str(CONFIGS / "mini.yaml"), "--only", "genome,bpe", "--quiet", "--set",
           "bpe={merges: 20, cycles: 20}", *genome_only("data.genome=g.fa")[3:]]

    def stages(*sets: str) -> list[str]:
        capsys.readouterr()
        assert main(["run", *run, *(a for kv in sets for a in ("--set", kv))]) == 0
        return re.findall(r"^(genome|bpe) +(ran|skipped)", capsys.readouterr().out, re.M)

    assert stages("data.tss=one.bed") == [("genome", "ran"), ("bpe", "ran")]
    assert stages("data.tss=two.bed") == [("genome", "ran"), ("bpe", "skipped")]
    assert stages("data.tss=two.bed", "genome.max_bp=15000") == [("genome", "ran"), ("bpe", "ran")]


def test_a_run_folders_config_records_data_files_found_in_the_current_folder_absolute(
        tmp_path, monkeypatch, capsys):
    """`data.genome: my.fa`, a file where the run started, was recorded as written: `groverlm run
    RUN/config.yaml` from another folder (it runs in its own folder from anywhere) looked for
    my.fa there and failed. A cache name stays a name; no finished stage reruns for the change."""
    monkeypatch.setenv("GROVERLM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "data").mkdir(parents=True)
    (tmp_path / "cache" / "data" / "own.bed").write_text("chrA\t5\t50\n")
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    elsewhere.mkdir()
    first.mkdir()
    write_fasta(first / "my.fa", {"chrA": random_dna(3000, 1)})
    sets = ["data.genome=my.fa", "data.ctcf_peaks=[own.bed]"]
    args = ["--only", "genome", "--quiet"]
    monkeypatch.chdir(first)
    assert main(["run", str(CONFIGS / "mini.yaml"), *genome_only(*sets)]) == 0
    copy = first / "runs" / "x" / "config.yaml"
    data = load_config(copy).data
    assert data.genome == str(first / "my.fa") and data.ctcf_peaks == ("own.bed",)
    made = json.loads((first / "runs" / "x" / "genome" / "manifest.json").read_text())["made"]
    # a run folder written before: its copy holds the name as given; rerun, nothing reruns
    copy.write_text(copy.read_text().replace(str(first / "my.fa"), "my.fa"))
    capsys.readouterr()
    assert main(["run", str(copy), *args]) == 0
    assert f"{'genome':<{runner.NAME_WIDTH}} skipped (up to date)" in capsys.readouterr().out
    assert load_config(copy).data.genome == str(first / "my.fa")
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(copy), *args]) == 0
    assert f"{'genome':<{runner.NAME_WIDTH}} skipped (up to date)" in capsys.readouterr().out
    assert json.loads((first / "runs" / "x" / "genome" / "manifest.json").read_text())[
        "made"] == made and not os.listdir(elsewhere)
    # a relative data.dir is from the current folder too
    sets = [*sets, "run.dir=runs/y", "data.dir=../first", "data.ctcf_peaks=[]"]
    assert main(["run", str(CONFIGS / "mini.yaml"), *genome_only(*sets)]) == 0
    data = load_config(elsewhere / "runs" / "y" / "config.yaml").data
    assert data.dir == str(first) and data.genome == "my.fa"


def test_a_run_folders_old_config_run_from_another_folder_never_reads_that_folders_file(
        tmp_path, monkeypatch, capsys):
    """A run folder's config.yaml from before data files were recorded absolute holds `genome:
    my.fa`, from the folder the run started in. Run from another folder holding another my.fa, the
    run read that one: its genome stage was cleared and every stage ran again on the wrong genome.
    Now one line names the config's line and the file; from the folder it started in, or with the
    path given, it goes on, nothing rerun."""
    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    first.mkdir()
    elsewhere.mkdir()
    write_fasta(first / "my.fa", {"chrA": random_dna(3000, 1)})
    write_fasta(elsewhere / "my.fa", {"chrA": random_dna(3000, 2)})
    args = ["--only", "genome", "--quiet"]
    monkeypatch.chdir(first)
    assert main(["run", str(CONFIGS / "mini.yaml"), *genome_only("data.genome=my.fa")]) == 0
    copy = first / "runs" / "x" / "config.yaml"
    copy.write_text(copy.read_text().replace(str(first / "my.fa"), "my.fa"))  # as written before
    old = copy.read_text()
    made = json.loads((first / "runs" / "x" / "genome" / "manifest.json").read_text())["made"]
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["run", str(copy), *args]) == 2
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(old.splitlines(), 1) if t.strip() == "genome: my.fa")
    assert err.startswith(f"groverlm: error: {copy}:{line}: data.genome: my.fa: the run read no "
                          f"{elsewhere / 'my.fa'}; a relative name in a run folder's config is "
                          "from the folder the run started in") and err.count("\n") == 1
    assert copy.read_text() == old
    assert main(["run", str(copy), *args, "--set", f"data.genome={first / 'my.fa'}"]) == 0
    assert f"{'genome':<{runner.NAME_WIDTH}} skipped (up to date)" in capsys.readouterr().out
    assert json.loads((first / "runs" / "x" / "genome" / "manifest.json").read_text())[
        "made"] == made and load_config(copy).data.genome == str(first / "my.fa")


def test_a_run_folders_old_config_missing_its_file_here_says_where_names_are_from(
        tmp_path, monkeypatch, capsys):
    """The same old config run from a folder without my.fa said only 'no such file in the current
    folder (...) or the data cache': not that the name is from the folder the run started in."""
    first, empty = tmp_path / "first", tmp_path / "empty"
    first.mkdir()
    empty.mkdir()
    write_fasta(first / "my.fa", {"chrA": random_dna(3000, 1)})
    monkeypatch.chdir(first)
    assert main(["run", str(CONFIGS / "mini.yaml"), *genome_only("data.genome=my.fa")]) == 0
    copy = first / "runs" / "x" / "config.yaml"
    copy.write_text(copy.read_text().replace(str(first / "my.fa"), "my.fa"))  # as written before
    monkeypatch.chdir(empty)
    capsys.readouterr()
    assert main(["run", str(copy), "--only", "genome", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.genome: my.fa: no such file in the current folder" in err
    assert err.endswith("; a relative name in a run folder's config is from the folder the run "
                        "started in: run from there, or give the file's path (--set "
                        "data.genome=PATH)\n"), err
    # a name given by --set is the user's, from here: no such hint
    assert main(["run", str(copy), "--only", "genome", "--quiet", "--set",
                 "data.genome=other.fa"]) == 2
    err = capsys.readouterr().err
    assert "data.genome: other.fa: no such file" in err and "run started in" not in err, err
    # nor for a config that is no run folder's (the same text, as a user's own file)
    mine = empty / "mine.yaml"
    mine.write_text(copy.read_text())
    assert main(["run", str(mine), "--only", "genome", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data.genome: my.fa: no such file" in err and "run started in" not in err, err


def test_a_region_beyond_a_record_fails_once_the_genome_stage_knows_its_length(toy, monkeypatch):
    make, _ = toy
    ran = []
    monkeypatch.setitem(sys.modules, "toy_b", SimpleNamespace(
        run=lambda cfg, ctx: ran.append("b") or {},
        regions=lambda cfg, config: [("corpus.holdout", Region("chrA", 100, 300))]))
    monkeypatch.setattr(runner, "STAGES", [GENOME, Stage("b", "toy_b", needs=("genome",))])
    write_fasta(make.data / "g.fa", {"chrA": "ACGT" * 50})
    cfg = RunConfig(make().run, make(tss_format="bed").data, {"genome": GenomeConfig(), "b": Toy()})
    with pytest.raises(GroverError, match=re.escape("corpus.holdout chrA:100-300 ends beyond chrA "
                                                    "(200 bp)")):
        run_pipeline(cfg)
    assert ran == [] and (make.run / "genome" / "summary.json").is_file()
    # the plan, once the genome stage is done, fails as the run does (it said b would run)
    with pytest.raises(GroverError, match=re.escape("corpus.holdout chrA:100-300 ends beyond")):
        run_pipeline(cfg, plan=True)


def test_run_dir_naming_a_file_is_an_error(toy, tmp_path):
    make, _ = toy
    make.run.write_text("a file")
    with pytest.raises(GroverError, match="run.dir exists and is not a folder"):
        run_pipeline(make())


def test_moved_data_folder_later_stages_read_the_files_where_they_are_now(toy, tmp_path,
                                                                          monkeypatch):
    make, calls = toy
    seen = []
    monkeypatch.setitem(sys.modules, "toy_b", SimpleNamespace(
        run=lambda cfg, ctx: seen.append((ctx.genome, ctx.tss)) or {}))
    monkeypatch.setattr(runner, "STAGES", [GENOME,
                                           Stage("b", "toy_b", needs=("genome",))])
    write_fasta(make.data / "g.fa", {"chrA": "ACGT" * 50})

    def cfg(data):
        return RunConfig(make().run, make(data=data).data, {"genome": GenomeConfig(), "b": Toy()})

    assert statuses(run_pipeline(cfg(make.data))) == ["ran", "ran"]
    moved = make.data.rename(tmp_path / "moved")
    assert statuses(run_pipeline(cfg(moved))) == ["skipped (up to date)"] * 2  # same contents
    run_pipeline(cfg(moved), only=["b"], force=True)
    assert seen[-1] == (moved / "g.fa", (moved / "t.tsv", "bed"))  # the format the genome read
    # a run folder from before recorded the data files' absolute paths: read where they are now
    manifest = make.run / "genome" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["summary"].update(fasta=str(make.data / "g.fa"), tss=str(make.data / "t.tsv"))
    manifest.write_text(json.dumps(m))
    run_pipeline(cfg(moved), only=["b"], force=True)
    assert seen[-1] == (moved / "g.fa", (moved / "t.tsv", "bed"))


def test_stages_finished_before_other_sections_were_recorded_stay_up_to_date(toy):
    make, calls = toy
    run_pipeline(make())
    manifest = make.run / "b" / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["config"]["other_sections"]  # as the runner wrote it before Stage.settings
    manifest.write_text(json.dumps(m))
    assert runner.stage_status(runner._stage("b"), make(), make.run, None) == "done"
    # (what it read then is unknown, so a change of it goes unseen until the stage reruns)
    assert runner.stage_status(runner._stage("b"), make(tss_format="bed"), make.run, None) == "done"


def b_status(make, section) -> str:
    """The status of toy stage b under config section `section`."""
    cfg = make()
    cfg.stages["b"] = section
    return runner.stage_status(runner._stage("b"), cfg, make.run, resolve_data(cfg.data))


@dataclass(frozen=True)
class ToyThreads:
    x: int = 1
    threads: int = volatile(1)


def test_a_setting_made_volatile_since_a_stage_finished_changes_nothing(toy):
    """A stage's manifest records a setting that a later release marks volatile (it never changes
    results: baselines.tfidf.n_jobs): the stage stays done, under any value of it."""
    make, calls = toy
    run_pipeline(make())
    manifest = make.run / "b" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["config"]["threads"] = 1  # as written while it was an ordinary setting
    manifest.write_text(json.dumps(m))
    cfg = make()
    cfg.stages["b"] = ToyThreads(threads=4)
    assert runner.stage_status(runner._stage("b"), cfg, make.run, resolve_data(cfg.data)) == "done"


@dataclass(frozen=True)
class ToyPerTask:
    x: int = 1
    classifier: ToyThreads = field(default_factory=ToyThreads)
    per_task: dict = changes_to("classifier")


def test_a_volatile_setting_of_one_task_changes_nothing(toy):
    """finetune.per_task.<task> changes the classifier's settings for one task: a volatile one
    there (a device, threads, an evaluation batch) changes no result, as in `classifier`, and
    the stage stays done; any other redoes it."""
    make, calls = toy

    cfg = make()
    cfg.stages["b"] = ToyPerTask(per_task={"ctcf": {"x": 2}})
    run_pipeline(cfg)
    assert b_status(make, ToyPerTask(per_task={"ctcf": {"x": 2, "threads": 4}})) == "done"
    assert b_status(make, ToyPerTask(per_task={"ctcf": {"x": 2}, "prom300": {"threads": 4}})) == "done"
    assert b_status(make, ToyPerTask(per_task={"ctcf": {"x": 3, "threads": 4}})) == (
        "out of date (config changed: per_task.ctcf.x: 2 -> 3)")
    assert b_status(make, ToyPerTask(per_task={})).startswith("out of date")


@dataclass(frozen=True)
class ToyInner:
    a: int = 1
    select: str = "mcc"


@dataclass(frozen=True)
class ToyNested:
    x: int = 1
    inner: ToyInner = field(default_factory=ToyInner)


def test_a_setting_added_since_a_stage_finished_at_its_default_changes_nothing(toy):
    """A release adds a setting whose default is what a finished stage ran with: the stage stays
    done, in a nested section too (baselines.tfidf.select made the demo's baselines out of date);
    the setting at another value redoes it."""
    make, calls = toy

    cfg = make()
    cfg.stages["b"] = ToyNested()
    run_pipeline(cfg)
    manifest = make.run / "b" / "manifest.json"
    m = json.loads(manifest.read_text())
    del m["config"]["inner"]["select"]  # as written before the setting existed
    manifest.write_text(json.dumps(m))
    assert b_status(make, ToyNested()) == "done"
    assert b_status(make, ToyNested(inner=ToyInner(select="accuracy"))) == (
        "out of date (config changed: inner.select: None -> 'accuracy')")
    assert b_status(make, ToyNested(inner=ToyInner(a=2))).startswith("out of date")


def test_config_record_edge_cases(toy, monkeypatch, tmp_path):
    make, _ = toy
    old = RunConfig(RunSection(str(tmp_path / "exp#2")), make().data, make().stages)
    record = tmp_path / "exp#2" / "config.yaml"
    record.parent.mkdir()
    record.write_text(dump_config(old).removeprefix(WRITTEN))  # from before the mark, with a '#'
    run_pipeline(old)
    assert record.read_text().startswith(WRITTEN)
    record.unlink()
    record.mkdir()
    with pytest.raises(GroverError, match="exists and is not a file"):
        run_pipeline(old)
    with pytest.raises(GroverError, match="run.dir '~nosuchuser_x/r'"):
        runner.run_folder(RunConfig(RunSection("~nosuchuser_x/r"), make().data, make().stages))


# -- real stages on a synthetic genome: a crash inside the tasks stage -------------------------

CTCF_JASPAR = """>MA0139.1\tCTCF
A  [     87    167    281     56      8    744     40    107    851      5    333     54     12     56    104    372     82    117    402 ]
C  [    291    145     49    800    903     13    528    433     11      0      3     12      0      8    733     13    482    322    181 ]
G  [     76    414    449     21      0     65    334     48     32    903    566    504    890    775      5    507    307     73    266 ]
T  [    459    187    134     36      2     91     11    324     18      3      9    341      8     71     67     17     37    396     59 ]
"""  # noqa: E501
MOTIF = "TGGCCACCAGGGGGCGCTA"  # MA0139.1's consensus


def synthetic_data(folder: Path) -> Path:
    """Three 200 kbp records with CTCF motifs (half of them in peaks) and 40 TSSs each."""
    folder.mkdir()
    rng = np.random.default_rng(7)
    records, tss, peaks = {}, [], []
    for i, chrom in enumerate(("chrA", "chrB", "chrC")):
        seq = list(random_dna(200_000, seed=i))
        for j, pos in enumerate(range(5_000, 195_000, 1_900)):
            seq[pos:pos + len(MOTIF)] = MOTIF
            if j % 2 == 0:
                peaks.append(f"{chrom}\t{pos - 150}\t{pos + 170}\n")
        records[chrom] = "".join(seq)
        for pos in sorted(rng.choice(np.arange(12_000, 188_000, 4_000), 40, replace=False)):
            tss.append(f"{chrom}\t{pos}\t{'+-'[int(pos) // 4_000 % 2]}\n")
    write_fasta(folder / "genome.fa", records)
    (folder / "tss.tsv").write_text("".join(tss))
    (folder / "peaks.bed").write_text("".join(peaks))
    (folder / "ctcf.jaspar").write_text(CTCF_JASPAR)
    return folder


SYNTHETIC = """
data: {{dir: {data}, genome: genome.fa, tss: tss.tsv, ctcf_motif: ctcf.jaspar,
        ctcf_peaks: [peaks.bed], repeats: null, cpg: null}}
bpe: {{merges: 60, cycles: 50}}
tasks:
  promscan: {{region: 4000}}
baselines:
  tfidf: {{ks: [3], models: [lr]}}
"""


def test_crash_in_a_stage_then_rerun_completes_without_redoing_finished_work(tmp_path,
                                                                            monkeypatch):
    data = synthetic_data(tmp_path / "data")
    cfg_path = tmp_path / "synthetic.yaml"
    cfg_path.write_text(SYNTHETIC.format(data=data))
    cfg = load_config(cfg_path, [f"run.dir={tmp_path / 'run'}"])
    run = tmp_path / "run"
    stages = ["genome", "bpe", "select_vocab", "tasks", "baselines"]

    import groverlm.tasks as tasks

    real = tasks.build_promscan

    def crash(*args, **kwargs):  # prom300 is built first; the stage dies in promscan
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "build_promscan", crash)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, only=stages, progress=False)
    assert (run / "tasks" / "prom300" / "manifest.json").is_file()
    assert not (run / "tasks" / "manifest.json").exists()
    done = {p: p.stat().st_mtime_ns for p in [run / "genome" / "manifest.json",
                                             run / "bpe" / "manifest.json",
                                             run / "tasks" / "prom300" / "manifest.json"]}
    calls = []
    monkeypatch.setattr(tasks, "build_promscan", lambda *a, **k: calls.append(1) or real(*a, **k))
    results = run_pipeline(cfg, only=stages, progress=False)
    assert {r.name: r.status for r in results if r.status != "not selected"} == {
        "genome": "skipped (up to date)", "bpe": "skipped (up to date)",
        "select_vocab": "skipped (up to date)", "tasks": "ran", "baselines": "ran"}
    assert calls == [1]
    assert done == {p: p.stat().st_mtime_ns for p in done}  # finished work untouched
    for task in ("prom300", "promscan", "ctcf"):
        with open(run / "tasks" / task / "train.csv") as fh:
            labels = {row["label"] for row in csv.DictReader(fh)}
        assert labels == {"0", "1"}, task
        metrics = json.loads((run / "baselines" / task / "metrics.json").read_text())
        assert {r["model"] for r in metrics["results"]} == {"tfidf-lr", "tfidf-bpe-lr"}
    summary = json.loads((run / "tasks" / "manifest.json").read_text())["summary"]
    assert set(summary) == {"prom300", "promscan", "ctcf"}


# -- the plan against what a run then does, on the synthetic genome's model-free stages ---------

PLANNED = ["genome", "bpe", "select_vocab", "tasks", "baselines"]  # each reads the ones before


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """(config file, run folder, a copy of the run finished there): PLANNED on the synthetic
    genome, with a TSS list, CTCF peaks and a genome that differ from the run's beside its data."""
    root = tmp_path_factory.mktemp("plan")
    data = synthetic_data(root / "data")
    lines = (data / "tss.tsv").read_text().splitlines(keepends=True)
    (data / "tss2.tsv").write_text("".join(lines[1:]))
    lines = (data / "peaks.bed").read_text().splitlines(keepends=True)
    (data / "peaks2.bed").write_text("".join(lines[::2]))
    text = (data / "genome.fa").read_text()
    at = text.index("A", 1000)
    (data / "genome2.fa").write_text(text[:at] + "C" + text[at + 1:])
    config = root / "synthetic.yaml"
    config.write_text(SYNTHETIC.format(data=data) + "select_vocab: {select: false}\n")
    run = root / "run"
    run_pipeline(load_config(config, [f"run.dir={run}"]), only=PLANNED, progress=False)
    shutil.copytree(run, root / "finished")
    return config, run, root / "finished"


def interrupted(stage: str, target: str):
    """A prep: `stage` redone (--force, under the run's settings) and interrupted where it calls
    `target` (module.function), leaving its folder as Ctrl-C does."""
    def prep(cfg, monkeypatch):
        module, name = target.rsplit(".", 1)
        with monkeypatch.context() as m:
            m.setattr(sys.modules[module], name, lambda *a, **k: (_ for _ in ()).throw(
                KeyboardInterrupt))
            with pytest.raises(KeyboardInterrupt):
                run_pipeline(cfg, only=[stage], force=True, progress=False)
    return prep


def removed(*paths: str, then: str = ""):
    """A prep: these files or folders of the run removed (and the file `then` written)."""
    def prep(cfg, monkeypatch):
        for p in paths:
            path = Path(cfg.run.dir) / p
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if then:
            (Path(cfg.run.dir) / then).parent.mkdir(exist_ok=True)
            (Path(cfg.run.dir) / then).write_text("mine\n")
    return prep


@pytest.mark.parametrize("sets, only, prep", [
    pytest.param([], None, None, id="nothing changed"),
    pytest.param(["tasks.ctcf.max_negative_ratio=1.0"], None, None, id="a task setting"),
    pytest.param(["baselines.tfidf.ks=[2]"], None, None, id="a baselines setting"),
    pytest.param(["baselines.tfidf.n_jobs=1"], None, None, id="a volatile setting"),
    pytest.param(["bpe.merges=70"], None, None, id="a BPE setting"),
    pytest.param(["data.tss_format=refseq"], None, None, id="a genome stage to the same effect"),
    pytest.param(["data.tss=tss2.tsv"], None, None, id="a new TSS list"),
    pytest.param(["data.ctcf_peaks=[peaks2.bed]"], None, None, id="new CTCF peaks"),
    pytest.param(["data.genome=genome2.fa"], None, None, id="a new genome"),
    pytest.param(["tasks.ctcf.max_negative_ratio=1.0"], ["tasks"], None, id="--only tasks"),
    pytest.param(["tasks.ctcf.max_negative_ratio=1.0"], ["baselines"], None,
                 id="--only a stage after one out of date"),
    pytest.param([], None, removed("tasks/ctcf"), id="a part removed"),
    pytest.param([], None, removed("config.yaml", then="config.yaml"),
                 id="a config.yaml a user wrote in the run folder"),
    pytest.param(["tasks.ctcf.max_negative_ratio=1.0"], None,
                 removed("tasks", then="tasks/notes.txt"), id="a folder the runner did not make"),
    pytest.param([], None, removed("baselines/ctcf/manifest.json"), id="an unfinished part"),
    pytest.param([], None, interrupted("tasks", "groverlm.tasks.build_ctcf"),
                 id="an interrupted stage"),
    pytest.param(["tasks.ctcf.max_negative_ratio=1.0"], None,
                 interrupted("tasks", "groverlm.tasks.build_ctcf"),
                 id="an interrupted stage under other settings"),
    pytest.param([], None, interrupted("genome", "groverlm.genome.check_annotations"),
                 id="an interrupted stage that hands on the same"),
])
def test_the_plan_says_what_a_run_then_does(finished_run, monkeypatch, sets, only, prep):
    """One change to a finished run at a time: what `--plan` says of each stage is what the run
    then does. 'up to date' (or not selected): it is skipped, its folder untouched; 'would run': it
    runs; 'may run': either; a run that would stop stops (a plan that fails, with its error); an
    interrupted attempt it resumes keeps its finished parts, one it starts afresh keeps none. (An
    interrupted stage, the plan said every stage reading it was out of date, when a stage reading
    a part it hands on again the same is not; of a config.yaml a user wrote in the run folder, or
    a stage folder the runner did not make, it said nothing, and the run stopped there.)"""
    config, run, done = finished_run
    shutil.rmtree(run)
    shutil.copytree(done, run)  # the same folder: a moved run is another question
    if prep is not None:
        prep(load_config(config, [f"run.dir={run}"]), monkeypatch)
    cfg = load_config(config, [f"run.dir={run}", *sets])

    def files(stage: str) -> dict[str, tuple[int, int]]:
        return {str(f.relative_to(run)): (f.stat().st_mtime_ns, f.stat().st_size)
                for f in (run / stage).rglob("*") if f.is_file()}

    before = {s: files(s) for s in PLANNED}
    try:
        plan = {r.name: r.status for r in run_pipeline(cfg, only=only or PLANNED, plan=True)}
    except GroverError as err:  # a run stops before any stage
        with pytest.raises(GroverError, match=re.escape(str(err))):
            run_pipeline(cfg, only=only or PLANNED, progress=False)
        return
    if any("a run would stop" in p for p in plan.values()):
        with pytest.raises(GroverError):
            run_pipeline(cfg, only=only or PLANNED, progress=False)
        return
    real = {r.name: r.status for r in run_pipeline(cfg, only=only or PLANNED, progress=False)}
    for stage in runner.stage_names():
        said, did = plan[stage], real[stage]
        if said == "up to date" or said.startswith("not selected"):
            assert did in ("skipped (up to date)", "not selected"), (stage, said, did)
            if stage in PLANNED:
                assert files(stage) == before[stage], (stage, said)
        else:
            assert said.startswith(("would run", "may run")), (stage, said)
            assert did == "ran" or said.startswith("may run"), (stage, said, did)
        parts = {p for p in before.get(stage, {}) if p.count("/") == 2 and p.endswith(
            "/manifest.json")}  # its parts' records: RUN/<stage>/<part>/manifest.json
        if "resumes it, keeping its finished parts" in said:
            assert all(files(stage).get(p) == before[stage][p] for p in parts), (stage, said)
        if "starts it afresh" in said:
            assert parts and not any(files(stage).get(p) == before[stage][p] for p in parts)


def test_what_a_finished_stage_hands_on_removed_is_made_again(finished_run):
    """A task folder (or BPE's vocabulary) deleted from a finished run: the stage that made it is
    out of date and makes it again, keeping the tasks that are still there. A finished stage was
    known by its manifest.json alone, so the run skipped it and the tasks after it went on without
    CTCF (and the stages after BPE failed on its missing vocabulary)."""
    config, run, done = finished_run
    shutil.rmtree(run)
    shutil.copytree(done, run)
    kept = (run / "tasks" / "prom300" / "train.csv").stat().st_mtime_ns
    shutil.rmtree(run / "tasks" / "ctcf")
    cfg = load_config(config, [f"run.dir={run}"])
    plan = {r.name: r.status for r in run_pipeline(cfg, only=PLANNED, plan=True)}
    assert plan["tasks"].startswith("would run: out of date (tasks/ctcf removed)"), plan
    assert plan["bpe"] == "up to date"
    real = {r.name: r.status for r in run_pipeline(cfg, only=PLANNED, progress=False)}
    assert real["tasks"] == "ran" and real["bpe"] == "skipped (up to date)"
    assert (run / "tasks" / "ctcf" / "test.csv").read_bytes() == (
        done / "tasks" / "ctcf" / "test.csv").read_bytes()
    assert (run / "tasks" / "prom300" / "train.csv").stat().st_mtime_ns == kept
    shutil.rmtree(run / "bpe" / "vocab")
    plan = {r.name: r.status for r in run_pipeline(cfg, only=PLANNED, plan=True)}
    assert plan["bpe"].startswith("would run: out of date (bpe/vocab removed)"), plan
    run_pipeline(cfg, only=PLANNED, progress=False)
    assert (run / "bpe" / "vocab").is_dir()


@pytest.mark.parametrize("prep, why", [
    (lambda part: shutil.rmtree(part), "removed"),
    (lambda part: (part / "manifest.json").unlink(), "unfinished"),
], ids=["removed", "unfinished"])
def test_a_part_of_a_finished_stage_removed_is_made_again(finished_run, prep, why):
    """A baselines (or fine-tuning) part deleted, or left unfinished, in a finished run: the stage
    is out of date, the plan names the part, and the run makes it alone again. Those stages record
    no paths in their summary, so the run called them up to date and the report lacked the part
    unsaid. A manifest from before they listed their parts stays up to date."""
    config, run, done = finished_run
    shutil.rmtree(run)
    shutil.copytree(done, run)
    others = {f: f.stat().st_mtime_ns for f in (run / "baselines").rglob("*")  # the other parts'
              if f.is_file() and f.parent != run / "baselines" and "ctcf" not in f.parts}
    prep(run / "baselines" / "ctcf")
    cfg = load_config(config, [f"run.dir={run}"])
    plan = {r.name: r.status for r in run_pipeline(cfg, only=PLANNED, plan=True)}
    assert plan["baselines"].startswith(
        f"would run: out of date (baselines/ctcf {why})"), plan
    assert plan["tasks"] == "up to date"
    real = {r.name: r.status for r in run_pipeline(cfg, only=PLANNED, progress=False)}
    assert real["baselines"] == "ran" and real["tasks"] == "skipped (up to date)"
    assert (run / "baselines" / "ctcf" / "metrics.json").read_bytes() == (
        done / "baselines" / "ctcf" / "metrics.json").read_bytes()
    assert others and {f: f.stat().st_mtime_ns for f in others} == others
    # a run folder made before stages listed their parts: its finished stage stays as it is
    manifest = json.loads((run / "baselines" / "manifest.json").read_text())
    del manifest["parts"]
    (run / "baselines" / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(run / "baselines" / "ctcf")
    plan = {r.name: r.status for r in run_pipeline(cfg, only=PLANNED, plan=True)}
    assert plan["baselines"] == "up to date", plan


@pytest.mark.slow
def test_pretraining_under_torchrun(tmp_path):
    """pretrain.processes > 1: the stage launches torchrun (2 CPU processes, gloo here)."""
    data = synthetic_data(tmp_path / "data")
    cfg_path = tmp_path / "synthetic.yaml"
    cfg_path.write_text(SYNTHETIC.format(data=data) + """
corpus: {max_tokens: 62, min_tokens: 8}
pretrain:
  processes: 2
  model: {overrides: {num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 2,
                      intermediate_size: 64, attention_probs_dropout_prob: 0.0},
          eval_samples: 16, final_eval_samples: 32}
  train: {max_steps: 3, batch_size: 4, eval_every: 0, save_every: 2, log_every: 1, threads: 1}
""")
    cfg = load_config(cfg_path, [f"run.dir={tmp_path / 'run'}"])
    run_pipeline(cfg, only=["genome", "bpe", "select_vocab", "corpus", "pretrain"], progress=False)
    model = tmp_path / "run" / "pretrain" / "model"
    launch = json.loads((tmp_path / "run" / "pretrain" / "launch.json").read_text())
    assert launch["train"]["max_steps"] == 3 and launch["out"] == str(model)
    ev = json.loads((model / "eval.json").read_text())
    assert ev["steps"] == 3 and ev["processes"] == 2
    summary = json.loads((tmp_path / "run" / "pretrain" / "manifest.json").read_text())["summary"]
    assert summary["steps"] == 3 and summary["model"] == "pretrain/model"
    # another process count is another global batch, so another model: the stage is out of date
    stage, files = runner._stage("pretrain"), resolve_data(cfg.data)
    one = load_config(cfg_path, [f"run.dir={tmp_path / 'run'}", "pretrain.processes=1"])
    assert runner.stage_status(stage, cfg, tmp_path / "run", files) == "done"
    assert "processes: 2 -> 1" in runner.stage_status(stage, one, tmp_path / "run", files)
    # a stage finished before the setting was recorded ran with its default (one process)
    manifest = tmp_path / "run" / "pretrain" / "manifest.json"
    record = json.loads(manifest.read_text())
    del record["config"]["processes"]
    manifest.write_text(json.dumps(record))
    assert runner.stage_status(stage, one, tmp_path / "run", files) == "done"
    assert runner.stage_status(stage, cfg, tmp_path / "run", files) != "done"
    # SIGTERM to the runner (a scheduler's preemption) stops torchrun and its ranks, which run in
    # a session of their own: left running, they trained on into the folder a rerun resumes
    shutil.rmtree(model)  # its checkpoints are the finished run's
    child = subprocess.Popen([sys.executable, "-m", "groverlm", "run", str(cfg_path), "--quiet",
                              "--set", f"run.dir={tmp_path / 'run'}", "--only", "pretrain",
                              "--force", "--set", "pretrain.train.max_steps=100000"],
                             stderr=subprocess.PIPE, text=True)
    latest = model / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not latest.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert latest.exists(), child.communicate()[1][-2000:] if child.poll() is not None else ""
    child.terminate()
    assert child.wait(timeout=90) == 130
    launch = str(tmp_path / "run" / "pretrain" / "launch.json")
    ranks = subprocess.run(["pgrep", "-f", launch], capture_output=True, text=True).stdout.split()
    assert ranks == [], "torchrun or a rank still runs"
    # a rank's error is the stage's one line, naming the file (torchrun's summary names neither)
    (tmp_path / "run" / "corpus" / "corpus" / "train_counts.npy").unlink()
    with pytest.raises(GroverError, match=r"train_counts.npy: No such file.*\(distributed "
                                          r"pretraining, rank [01]\)"):
        run_pipeline(cfg, only=["pretrain"], force=True, progress=False)


def test_held_out_region_defaults_to_the_corpus_holdout(tmp_path, caplog):
    ctx = Context(tmp_path, tmp_path, load_config(None), data=None)
    with pytest.raises(GroverError, match="nextkmer needs a region pretraining never saw"):
        ctx.held_out(None, "nextkmer")
    cfg = load_config(None, ["corpus.holdout=['chr20:5-10']"])
    ctx = Context(tmp_path, tmp_path, cfg, data=None)
    assert ctx.held_out(None, "nextkmer") == Region("chr20", 5, 10)  # a Region, not text
    assert ctx.held_out("chr1", "nextkmer") == Region("chr1")
    assert "may have seen it" in caplog.text
    with pytest.raises(GroverError, match="nextkmer.region 'chr1:9-3'"):
        ctx.held_out("chr1:9-3", "nextkmer")


# The runner in a child process whose checkpoint writes are slowed down, so that the parent can
# SIGKILL it between two checkpoints of the pretraining stage.
SLOW_CHECKPOINTS = """
import sys, time
import groverlm.train as train
real = train.save_checkpoint
def slow(*args, **kwargs):
    path = real(*args, **kwargs)
    time.sleep(0.5)
    return path
train.save_checkpoint = slow
from groverlm.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigkill_mid_stage_then_rerun_resumes_without_redoing_finished_stages(tmp_path):
    data = synthetic_data(tmp_path / "data")
    cfg_path = tmp_path / "synthetic.yaml"
    cfg_path.write_text(SYNTHETIC.format(data=data))
    run = tmp_path / "run"
    tiny = ("{num_hidden_layers: 1, hidden_size: 32, num_attention_heads: 2, intermediate_size: 64, "
            "max_position_embeddings: 64}")
    args = [str(cfg_path), "--quiet", "--set", f"run.dir={run}", "--set", "corpus.max_tokens=62",
            "--set", "pretrain.train.max_steps=30", "--set", "pretrain.train.save_every=3",
            "--set", "pretrain.train.batch_size=4", "--set", "pretrain.train.eval_every=0",
            "--set", "pretrain.train.threads=1", "--set", f"pretrain.model.overrides={tiny}"]
    earlier = ("genome", "bpe", "select_vocab", "corpus")
    args += [a for stage in (*earlier, "pretrain") for a in ("--only", stage)]
    child = subprocess.Popen([sys.executable, "-c", SLOW_CHECKPOINTS, "run", *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latest = run / "pretrain" / "model" / "checkpoints" / "latest"
    sigkill_when_exists(child, latest, 240)
    killed_at = latest.read_text().strip()
    assert not (run / "pretrain" / "manifest.json").exists()
    done = {p: p.stat().st_mtime_ns for p in [run / s / "manifest.json" for s in earlier]}

    rerun = subprocess.run([sys.executable, "-m", "groverlm", "run", *args],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for stage in earlier:
        assert f"{stage:<{runner.NAME_WIDTH}} skipped (up to date)" in rerun.stdout
    assert f"{'pretrain':<{runner.NAME_WIDTH}} ran" in rerun.stdout
    assert f"resumed from {latest.parent / killed_at}" in rerun.stderr
    assert done == {p: p.stat().st_mtime_ns for p in done}  # finished stages untouched
    assert json.loads((run / "pretrain" / "model" / "eval.json").read_text())["steps"] == 30



def test_stage_lines_keep_one_column_for_every_stage_name():
    """select_vocab, 12 letters, pushed its 'ran' two columns right of the others' (width 10)."""
    lines = [runner.StageResult(name, "ran", 1.0).line() for name in runner.stage_names()]
    assert len({line.index(" ran ") for line in lines}) == 1, lines

# -- command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("option,value", [("--only", "select-vocab"), ("--from", "select-vocab"),
                                          ("--only", "genome,select-vocab")])
def test_cli_errors_are_one_line(option, value, tmp_path, capsys):
    """A stage name that is none (select-vocab: the command's spelling) is refused as argparse
    refuses any bad choice, naming the stages, before the config is read or anything printed."""
    assert main(["run", str(CONFIGS / "mini.yaml"), option, value,
                 "--set", f"run.dir={tmp_path}", "--set", f"data.dir={tmp_path}"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "invalid choice: 'select-vocab'" in err and "'select_vocab'" in err
    assert out == ""  # not 'groverlm run: mini.yaml -> ...' first


def test_only_takes_stages_comma_separated_or_repeated(monkeypatch):
    """--only genome,bpe as other list options are given (--seeds 0,1,2), or repeated."""
    seen = []
    monkeypatch.setattr(runner, "_run", lambda config, args, only=None, **kw: seen.append(only)
                        or 0)
    assert main(["run", "x.yaml", "--only", "genome,bpe", "--only", "corpus"]) == 0
    assert main(["run", "x.yaml", "--only", "tasks"]) == 0
    assert seen == [["genome", "bpe", "corpus"], ["tasks"]]


def test_demo_runs_the_packaged_config(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake(cfg, **kwargs):
        seen.update(cfg=cfg, **kwargs)
        return []

    monkeypatch.setattr(runner, "run_pipeline", fake)
    assert main(["demo", "--set", f"run.dir={tmp_path / 'd'}", "--from-dir", "/x"]) == 0
    assert seen["cfg"].source == str(runner.demo_config())
    assert seen["cfg"].stage("bpe").cycles == 600 and seen["from_dir"] == "/x"
    assert "report:      not written" in capsys.readouterr().out


def test_run_takes_from_dir_and_expands_a_home_run_dir(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake(cfg, **kwargs):  # a finished report stage where run.dir points, ~ expanded
        seen.update(kwargs)
        write_manifest(runner.run_folder(cfg) / "report", "run-report", {}, [],
                       summary={"report": "report/report.html"})
        return []

    monkeypatch.setattr(runner, "run_pipeline", fake)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "c.yaml"
    config.write_text("run: {dir: ~/r}\n")
    assert main(["run", str(config), "--from-dir", "/x"]) == 0
    out = capsys.readouterr().out
    assert seen["from_dir"] == "/x" and f"-> {tmp_path / 'r'}" in out
    assert f"report:      {tmp_path / 'r' / 'report' / 'report.html'}" in out


def test_argument_errors_name_the_command_once(capsys):
    assert main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("groverlm: error: the following arguments are required: config")
    assert err.endswith("(see groverlm run --help)") and err.count("groverlm") == 2


# -- end to end: configs/mini.yaml on the first 4 Mbp of chr20 ---------------------------------

@pytest.mark.slow
def test_mini_config_end_to_end(tmp_path, chr20, monkeypatch, capsys):
    monkeypatch.setenv("GROVERLM_DATA", str(DATA))
    monkeypatch.setenv("GROVERLM_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    assert main(["run", str(CONFIGS / "mini.yaml"), "--set", f"run.dir={run}", "--quiet"]) == 0
    out = capsys.readouterr().out
    for stage in runner.stage_names():
        assert f"{stage:<{runner.NAME_WIDTH}} ran" in out
        m = json.loads((run / stage / "manifest.json").read_text())
        assert m["stage"] == f"run-{stage}" and not (run / stage / runner.PENDING).exists()

    # genome: the first 4 Mbp, and the TSSs on it
    g = json.loads((run / "genome" / "summary.json").read_text())
    assert g["total"]["length"] == 4_000_000
    tss = np.loadtxt(run / "genome" / "tss.bed", dtype=str, ndmin=2)
    assert len(tss) > 50 and tss[:, 1].astype(int).max() < 4_000_000

    # vocabulary: 200 merges; selection between 100 and 200 cycles; a tokenizer transformers loads
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    assert len((run / "bpe" / "train" / "merges.tsv").read_text().splitlines()) >= 200
    sel = json.loads((run / "select_vocab" / "manifest.json").read_text())["summary"]
    chosen = json.loads((run / "select_vocab" / "selection" / "manifest.json").read_text())
    assert sel["selected"] and sel["cycles"] == chosen["selected"]["cycles"] in (100, 200)
    assert (run / "select_vocab" / "selection" / "table.md").is_file()
    vocab = run / sel["vocab"]
    tok = AutoTokenizer.from_pretrained(vocab)
    vocab_size = json.loads((vocab / "manifest.json").read_text())["vocab_size"]
    assert len(tok) == vocab_size <= 5 + 4 + sel["cycles"]  # specials, ACGT, merges

    # corpus and pretraining
    corpus = json.loads((run / "corpus" / "corpus" / "manifest.json").read_text())
    assert corpus["splits"]["train"]["samples"] > 100
    ev = json.loads((run / "pretrain" / "model" / "eval.json").read_text())
    assert ev["steps"] == 6 and 0 <= ev["mlm_accuracy"] <= 1
    model = AutoModelForMaskedLM.from_pretrained(run / "pretrain" / "model")
    assert model.config.vocab_size == vocab_size and model.config.num_hidden_layers == 2

    # next-k-mer on the held-out region, k = 2 and 3, against chance
    nk = json.loads((run / "nextkmer" / "manifest.json").read_text())["summary"]["by_k"]
    assert [r["k"] for r in nk] == [2, 3]
    assert all(r["chance"] == 4.0 ** -r["k"] and 0 <= r["accuracy"] <= 1 for r in nk)
    name = f"lm-bpe{sel['cycles']}"

    # tasks and baselines
    for task in ("prom300", "promscan", "ctcf"):
        man = json.loads((run / "tasks" / task / "manifest.json").read_text())
        assert all(sum(c.values()) > 0 for c in man["counts"].values()), task
        res = json.loads((run / "baselines" / task / "metrics.json").read_text())["results"]
        assert {r["model"] for r in res} == {"tfidf-rf", "tfidf-lr", "tfidf-bpe-rf",
                                             "tfidf-bpe-lr"}
        assert all(-1 <= r["test"]["mcc"] <= 1 for r in res)
    ft = json.loads((run / "finetune" / "prom300" / "metrics.json").read_text())["results"]
    assert [r["model"] for r in ft] == [name] and -1 <= ft[0]["test"]["mcc"] <= 1
    assert not (run / "finetune" / "promscan").exists()  # mini.yaml fine-tunes prom300 only
    # its from-scratch control: same settings and rows, fresh weights, a baseline paired with it
    [sc] = json.loads((run / "finetune" / "scratch" / "prom300" / "metrics.json").read_text()
                      )["results"]
    assert sc["model"] == name + "-scratch" and sc["baseline"] and sc["params"]["from_scratch"]
    assert sc["params"]["scratch_of"] == name and sc["test"]["n"] == ft[0]["test"]["n"]
    assert sc["per_seed"][0]["test"]["y_true"] == ft[0]["per_seed"][0]["test"]["y_true"]

    # analyses and the report
    assert (run / "analysis" / "analyses" / "vocab.json").is_file()
    # masked accuracy beside the baselines of the corpus pretraining counted
    masked = json.loads((run / "analysis" / "analyses" / "masked.json").read_text())["result"]
    assert 0 <= masked["context_accuracy"] <= 1 and 0 <= masked["unigram_accuracy"] <= 1
    page = (run / "report" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") or "<html" in page[:200]
    assert "prom300" in page

    # zero-shot readouts: up to 30 held-out Prom300 rows, every SNV of 3 bound CTCF sites (19 nt x 3), in the
    # summary and the report's first section
    z = json.loads((run / "score" / "readouts" / "readouts.json").read_text())
    from groverlm.analysis.zeroshot import held_out_split
    from groverlm.corpus import Region
    from groverlm.tasks.gue import load_task

    rows, source = held_out_split(load_task(run / "tasks" / "prom300"),
                                  [Region.parse("chr20:3000000-4000000")])  # mini's holdout
    assert z["prom300"]["rows"] == source  # promoters pretraining never read, when there are
    assert z["prom300"]["sequences"] == min(30, len(rows)) and 0 <= z["prom300"]["auroc"] <= 1
    assert z["prom300"]["given_tokens"]  # the shuffles' own tokens, not their re-tokenization
    assert z["ctcf"]["sites"] == 3 and z["ctcf"]["snvs"] == 3 * 19 * 3
    assert len(z["ctcf"]["points"]) == z["ctcf"]["snvs"] and -1 <= z["ctcf"]["spearman"] <= 1
    assert "Zero-shot" in page.split("<section")[1]

    # the one-screen summary and a rerun that does nothing
    text = summarize_run(run)
    assert f"vocabulary:  {sel['cycles']} BPE cycles (chosen by next-k-mer)" in text
    assert "| prom300" in text and name in text and "  k=3: " in text
    # each task's best language model against its best baseline, paired over the test rows
    assert "best language model against the best baseline" in text
    assert re.search(r"  prom300: \S+ [-0-9.]+ .* \(95% interval [-+0-9.]+ to [-+0-9.]+\)", text)
    assert re.search(r"  k=3: .*model - TF-IDF [-+0-9.]+ points \(95% interval", text)
    assert "what pretraining adds" in text
    assert re.search(rf"  prom300: {name} [-0-9.]+ against {name}-scratch [-0-9.]+: difference "
                     r"[-+0-9.]+ \(95% interval", text)
    assert "pretraining adds" in page.split("<section")[1]  # the report's first screen
    assert str(run / "report" / "report.html") in text and "zero-shot:   Prom300 AUROC" in text
    # the readout counts sequences, promoters and shuffles together (it said "N promoters")
    assert (f"over {z['prom300']['sequences']} sequences, promoters and their token shuffles, "
            f"of the {source}") in text
    assert "tfidf-bpe on prom300: 0 by construction" in text  # a reader took it for a failure
    assert "from-scratch controls aside" in text  # the best baseline leaves the control out
    assert "mean ± sd over its seeds, population sd" in text
    assert main(["run", str(CONFIGS / "mini.yaml"), "--set", f"run.dir={run}", "--quiet"]) == 0
    assert capsys.readouterr().out.count("skipped (up to date)") == len(runner.STAGES)
    assert os.listdir(run / "pretrain" / "model")  # the model folder is still there
    # the run folder moved, its own config.yaml run from another folder: the same run, done
    moved, elsewhere = tmp_path / "moved", tmp_path / "elsewhere"
    shutil.move(run, moved)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(moved / "config.yaml"), "--quiet"]) == 0
    assert capsys.readouterr().out.count("skipped (up to date)") == len(runner.STAGES)
    assert not run.exists() and not os.listdir(elsewhere)


def made_without_times(path: Path, run: Path) -> object:
    """A JSON record of a run's part, its run folder's path and its times (`seconds`, `created`)
    left out: what two runs of the same settings agree on."""
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in ("seconds", "created")}
        return [strip(v) for v in o] if isinstance(o, list) else o
    return strip(json.loads(path.read_text().replace(str(run), "RUN")))


@pytest.mark.slow
def test_a_new_ctcf_setting_redoes_only_what_is_made_from_the_ctcf_task(tmp_path, chr20,
                                                                         monkeypatch, capsys):
    """configs/mini.yaml, then a CTCF-only setting: only the CTCF task, its fine-tunings and its
    baselines are made again (the runner cleared the whole tasks, finetune and baselines folders
    and the score stage: hours of fine-tuning at grover-base scale), the other parts' files are
    untouched, and every result equals a fresh run's under the new setting."""
    monkeypatch.setenv("GROVERLM_DATA", str(DATA))
    monkeypatch.setenv("GROVERLM_CACHE", str(tmp_path / "cache"))
    run, fresh = tmp_path / "run", tmp_path / "fresh"
    sets = ["--set", "finetune.tasks=[prom300,ctcf]"]  # mini.yaml fine-tunes Prom300 alone
    new = ["--set", "tasks.ctcf.max_negative_ratio=1.0"]

    def run_mini(folder: Path, *more: str) -> str:
        capsys.readouterr()
        assert main(["run", str(CONFIGS / "mini.yaml"), "--set", f"run.dir={folder}", "--quiet",
                     *sets, *more]) == 0
        return capsys.readouterr().out

    run_mini(run)
    others = [run / "tasks" / "prom300", run / "tasks" / "promscan",
              run / "finetune" / "prom300", run / "finetune" / "scratch" / "prom300",
              run / "baselines" / "prom300", run / "baselines" / "promscan", run / "score"]
    before = {f: f.stat().st_mtime_ns for d in others for f in d.rglob("*") if f.is_file()}
    out = run_mini(run, *new)
    redone = {s for s in runner.stage_names() if f"{s:<{runner.NAME_WIDTH}} ran" in out}
    assert redone == {"tasks", "finetune", "baselines", "report"}, out
    assert before == {f: f.stat().st_mtime_ns for d in others for f in d.rglob("*")
                      if f.is_file()}
    ctcf = json.loads((run / "tasks" / "ctcf" / "manifest.json").read_text())
    assert ctcf["config"]["max_negative_ratio"] == 1.0
    run_mini(fresh, *new)
    parts = sorted(str(p.relative_to(fresh)) for p in fresh.glob("*/**/metrics.json"))
    assert parts == sorted(str(p.relative_to(run)) for p in run.glob("*/**/metrics.json"))
    assert {"finetune/ctcf/metrics.json", "finetune/scratch/ctcf/metrics.json",
            "baselines/ctcf/metrics.json"} <= set(parts)
    for part in [*parts, "score/readouts/readouts.json"]:
        assert made_without_times(run / part, run) == made_without_times(fresh / part, fresh), part
    for split in ("train", "dev", "test"):
        assert (run / "tasks" / "ctcf" / f"{split}.csv").read_bytes() == (
            fresh / "tasks" / "ctcf" / f"{split}.csv").read_bytes()


def test_a_genome_without_annotations_runs_without_tasks(tmp_path, monkeypatch, capsys):
    """A user's own genome (no TSS list, no CTCF data, no repeats): with those set null and no
    tasks, every stage runs; hg19's default files on it fail at the genome stage, naming the file;
    a task whose data is null fails before any stage runs."""
    monkeypatch.setenv("GROVERLM_CACHE", str(tmp_path / "cache"))  # nothing hg19 to fall back on
    rep = "TTAGGGCCAAT" * 40
    genome = write_fasta(tmp_path / "own.fa", {
        "scaffold_1": "".join(random_dna(20000, s) + rep for s in range(25)),
        "scaffold_2": random_dna(350000, 99)})
    run = tmp_path / "run"
    own = ["--set", f"run.dir={run}", "--set", f"data.genome={genome}", "--set", "genome.chroms=null",
           "--set", "genome.max_bp=null", "--set", "corpus.holdout=[scaffold_2]",
           "--set", "select_vocab.select=false", "--set", "finetune.tasks=null", "--quiet"]
    nulls = ["--set", "data.tss=null", "--set", "data.ctcf_motif=null", "--set",
             "data.ctcf_peaks=[]", "--set", "data.repeats=null", "--set", "data.cpg=null"]
    mini = str(CONFIGS / "mini.yaml")
    assert main(["run", mini, *own, *nulls]) == 2  # tasks.build keeps its default: all three
    err = capsys.readouterr().err
    assert "tasks.build has prom300, which needs data.tss" in err and "mini.yaml" in err
    assert not run.exists()

    assert main(["run", mini, *own, *nulls, "--set", "tasks.build=[]"]) == 0
    out = capsys.readouterr().out
    for stage in runner.stage_names():
        assert f"{stage:<{runner.NAME_WIDTH}} ran" in out
    for stage in ("tasks", "finetune", "baselines"):
        assert json.loads((run / stage / "manifest.json").read_text())["summary"] == {}
    z = json.loads((run / "score" / "readouts" / "readouts.json").read_text())
    assert "prom300" not in z and "ctcf" not in z
    assert (run / "report" / "report.html").is_file()
    text = summarize_run(run)
    assert "masked-token accuracy" in text and "tasks:       none built" in text
    # a region too small for next-k-mer's blocks: the error names the run's settings, not flags
    assert main(["run", mini, *own, *nulls, "--set", "tasks.build=[]", "--only", "nextkmer",
                 "--set", "nextkmer.region=scaffold_2:0-150000"]) == 2
    err = capsys.readouterr().err
    given = "groverlm: error: --set nextkmer.region=scaffold_2:0-150000: "  # where it was set
    assert err.startswith(given + "nextkmer.region scaffold_2:0-150000 holds 2 usable blocks")
    assert "smaller nextkmer.samples.block" in err and "--" not in err.removeprefix(given)

    # hg19's TSS list on this genome: refused by the genome stage, before BPE
    tss = tmp_path / "hg19_tss.bed"
    tss.write_text("chr20\t1000\t1001\tt\t0\t+\n")
    assert main(["run", mini, *own, *nulls, "--set", f"data.tss={tss}", "--set",
                 "tasks.build=[prom300]", "--set", f"run.dir={tmp_path / 'run2'}"]) == 2
    err = capsys.readouterr().err
    assert "nothing on a record of the genome" in err and "data.tss" in err and str(tss) in err
    assert not (tmp_path / "run2" / "bpe").exists()


@pytest.mark.parametrize("stage", ["finetune", "baselines"])
def test_a_task_named_but_not_built_fails_before_any_stage(tmp_path, capsys, stage):
    """configs/mini.yaml fine-tunes prom300: run on a genome with tasks.build [] (README's
    recipe), it failed at the finetune stage, after BPE, pretraining and next-k-mer."""
    run = tmp_path / "run"
    assert main(["run", str(CONFIGS / "mini.yaml"), "--set", f"run.dir={run}", "--set",
                 "tasks.build=[ctcf]", "--set", "finetune.tasks=null", "--set",
                 f"{stage}.tasks=[prom300]", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (f"--set {stage}.tasks=[prom300]: {stage}.tasks names 'prom300', which tasks.build "
            "does not list (ctcf)") in err and len(err.strip().splitlines()) == 1
    assert not run.exists()


@pytest.mark.parametrize("select, stage", [("true", "select_vocab"), ("false", "nextkmer")])
def test_a_held_out_scaffold_too_small_for_the_blocks_fails_before_bpe(tmp_path, capsys, select,
                                                                       stage):
    """README's recipe holds out scaffold_9. One shorter than three 100 kb blocks failed in
    select_vocab after BPE, or in nextkmer after pretraining; the genome stage's record lengths
    tell it before BPE."""
    genome = write_fasta(tmp_path / "own.fa", {"scaffold_1": random_dna(40000, 1),
                                               "scaffold_9": random_dna(15000, 9)})
    run = tmp_path / "run"
    sets = [f"run.dir={run}", f"data.genome={genome}", "genome.chroms=null", "genome.max_bp=null",
            "data.tss=null", "data.ctcf_motif=null", "data.ctcf_peaks=[]", "data.repeats=null",
            "data.cpg=null", "tasks.build=[]", "finetune.tasks=null", "corpus.holdout=[scaffold_9]",
            f"select_vocab.select={select}"]
    assert main(["run", str(CONFIGS / "mini.yaml"), *(a for kv in sets for a in ("--set", kv)),
                 "--quiet"]) == 2
    assert finished(run / "genome") and not (run / "bpe").exists()
    err = capsys.readouterr().err
    assert ("--set corpus.holdout=[scaffold_9]: corpus.holdout scaffold_9 holds 1 usable "
            "block of 100,000 bp") in err and f"smaller {stage}.samples.block" in err


def test_the_readme_recipe_for_another_genome_passes_every_check_on_it():
    """README's command for another genome, on a genome of scaffolds: every stage's check before
    and after the genome stage passes (the demo's analysis.analyze.region, on chr20, was left and
    failed it)."""
    readme = (CONFIGS.parent / "README.md").read_text()
    recipe = readme.split("On another genome (any species)")[1].split("```bash")[1].split("```")[0]
    args = shlex.split(recipe.replace("\\\n", " "))
    cfg = load_config(CONFIGS / Path(args[args.index("run") + 1]).name,
                      [args[i + 1] for i, a in enumerate(args) if a == "--set"])
    lengths = {f"scaffold_{i}": 400_000 for i in range(1, 12)}
    for stage in runner.STAGES:
        stage.preflight(cfg)
        check_regions(cfg, stage.regions(cfg), lengths)
        stage.check_lengths(cfg, lengths)


def test_selection_candidates_beyond_the_bpe_merges_fail_before_any_stage(tmp_path, capsys):
    """They failed in select_vocab, after genome and BPE had run, naming the flag --cycles."""
    run = tmp_path / "run"
    assert main(["run", str(CONFIGS / "mini.yaml"), "--set", f"run.dir={run}", "--set",
                 "select_vocab.pretraining.cycles=[100,300]", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert ("--set select_vocab.pretraining.cycles=[100,300]: select_vocab.pretraining.cycles "
            "asks for 300 cycles but bpe.merges is 200") in err and not run.exists()


def test_devices_are_checked_before_any_stage(tmp_path, monkeypatch, caplog):
    """A GPU no one has, or more processes than GPUs, fails before the first stage (a cuda device
    in the analysis failed hours into a full-scale run); CPU processes are said to be CPU ones."""
    import torch

    run = tmp_path / "run"
    cfg = load_config(CONFIGS / "grover-hg19.yaml", [f"run.dir={run}"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(GroverError, match=r"analysis.analyze.device: cuda, but torch sees 0 GPU"):
        run_pipeline(cfg, only=["analysis"], progress=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(GroverError, match=r"pretrain.processes: 8, one GPU each, but torch sees 2"):
        run_pipeline(cfg, only=["pretrain"], progress=False)
    assert not run.exists()  # nothing ran, nothing was made
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu = load_config(CONFIGS / "grover-hg19.yaml", [f"run.dir={run}", "pretrain.processes=2"])
    runner.check_devices(cpu, {"pretrain"})
    assert "pretrain.processes 2 on the CPU" in caplog.text


def test_a_second_run_into_a_folder_in_use_stops_before_any_stage(toy):
    make, calls = toy
    make.run.mkdir()
    with held_elsewhere(make.run / LOCK, make.run) as pid:
        with pytest.raises(GroverError, match=f"in use by another groverlm process .pid {pid}"):
            run_pipeline(make())
        assert calls == [] and not (make.run / "a").exists()
    assert statuses(run_pipeline(make())) == ["ran"] * 3  # the holder gone, the run goes on
    assert not (make.run / LOCK).exists()


def test_a_stage_folder_another_process_writes_in_is_not_deleted_under_it(toy):
    """`groverlm pretrain --out RUN/pretrain/model` still running, then `groverlm run --force`
    (or a changed config): the stage folder is not cleared under it, and not taken over."""
    make, calls = toy
    assert statuses(run_pipeline(make())) == ["ran"] * 3
    part = make.run / "a" / "part"
    with held_elsewhere(part / LOCK, part) as pid:
        with pytest.raises(GroverError, match=f"part: in use by another groverlm process .pid {pid}"):
            run_pipeline(make(), force=True)
        assert (make.run / "a" / "out.txt").is_file() and (part / "manifest.json").is_file()
    assert statuses(run_pipeline(make(), force=True)) == ["ran"] * 3  # a killed holder: cleared
    assert not list(make.run.rglob(LOCK))


def test_a_run_around_a_folder_another_process_writes_stops_before_any_stage(toy):
    """`groverlm pretrain --out RUN/pretrain/model` (or a score table RUN/score/t.tsv) still
    running, then a new `groverlm run` into RUN: it ran the stages before that one first (hours at
    scale), and a table's partial rows were deleted under their writer when the stage was cleared."""
    make, calls = toy
    assert statuses(run_pipeline(make())) == ["ran"] * 3
    calls.clear()
    model, table = make.run / "c" / "model", make.run / "c" / "t.tsv"
    model.mkdir()
    (make.run / "c" / "t.tsv.partial").write_text("rows\n")
    for lock_file, what in ((model / LOCK, model), (table.with_name(".t.tsv.lock"), table)):
        with held_elsewhere(lock_file, what) as pid:
            with pytest.raises(GroverError, match=rf"^{re.escape(str(lock_file.parent))}: in use "
                                                  rf"by another groverlm process \(pid {pid}\)"):
                run_pipeline(make(a=2))  # a changed: a, b and c rerun
            assert calls == [] and (make.run / "a" / "out.txt").read_text() == "a 1"
            assert (make.run / "c" / "t.tsv.partial").is_file()
    assert statuses(run_pipeline(make(a=2))) == ["ran"] * 3  # the holders gone, the run goes on


def test_summary_says_when_pretraining_learned_nothing(tmp_path):
    """A small run's summary printed 'test masked-token accuracy 2.80% (unigram 3.12%, ...)' and
    left it to the reader that the model was below always guessing the most frequent token (only
    the report said 'nothing learned'); the line now says it, and only then."""
    for acc, said in ((0.028, True), (0.112, False)):
        run = tmp_path / str(acc)
        (run / "pretrain").mkdir(parents=True)
        write_manifest(run / "pretrain", "run-pretrain", {}, [], summary={
            "steps": 400, "tokens_seen": 326026, "mlm_accuracy": acc, "unigram_accuracy": 0.0312,
            "context_accuracy": 0.1464, "perplexity": 68.6})
        [line] = [x for x in summarize_run(run).splitlines() if x.startswith("pretraining:")]
        assert ("at the unigram: nothing learned" in line) == said
        assert f"test masked-token accuracy {100 * acc:.2f}%" in line and "unigram 3.12%" in line
