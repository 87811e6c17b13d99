"""groverlm.manifest: the "finished" check and the one resume guard every stage calls."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from groverlm import manifest
from groverlm.args import TrainConfig, stable, volatile
from groverlm.cli import main
from groverlm.errors import GroverError
from groverlm.manifest import (
    LOCK,
    PASSED_LOCKS,
    SETTINGS,
    atomic_path,
    cached,
    check_resume,
    file_lock,
    fingerprint,
    finished,
    folder_lock,
    keep_part,
    passed_locks,
    prepare_out,
    read_manifest,
    remove_folder,
    write_cached,
    write_manifest,
    writes_folder,
)

from .conftest import held_elsewhere, write_fasta


def test_first_call_records_the_settings_and_the_same_ones_pass(tmp_path):
    out = tmp_path / "run"
    settings = {"a": {"b": 1}, "path": str(tmp_path / "x"), "ks": (1, 2)}
    check_resume(out, settings)  # makes the folder
    assert json.loads((out / SETTINGS).read_text()) == {"a": {"b": 1}, "path": str(tmp_path / "x"),
                                                        "ks": [1, 2]}  # as JSON holds them
    stamp = (out / SETTINGS).stat().st_mtime_ns
    check_resume(out, settings)
    assert (out / SETTINGS).stat().st_mtime_ns == stamp  # compared, not rewritten
    assert not list(out.glob(".*tmp*"))  # written atomically: no temporary left


def test_a_changed_nested_key_is_refused_in_one_line_naming_it_and_the_folder(tmp_path):
    check_resume(tmp_path, {"a": {"b": 1, "c": "x"}, "d": 0})
    with pytest.raises(GroverError) as e:
        check_resume(tmp_path, {"a": {"b": 2, "c": "x"}, "d": 0, "e": True})
    msg = str(e.value)
    assert "a.b: 1 -> 2" in msg and "e: None -> True" in msg and "a.c" not in msg
    assert str(tmp_path) in msg and "--overwrite" in msg and len(msg.splitlines()) == 1
    assert json.loads((tmp_path / SETTINGS).read_text())["a"]["b"] == 1  # the record is kept


def test_settings_recorded_elsewhere_are_compared_and_nothing_is_written(tmp_path):
    saved = {"train": {"lr": 4e-4}, "world_size": 1}
    check_resume(tmp_path, {"train": {"lr": 4e-4}, "world_size": 1}, saved=saved)
    with pytest.raises(GroverError, match=re.escape("world_size: 1 -> 2")):
        check_resume(tmp_path, {"train": {"lr": 4e-4}, "world_size": 2}, saved=saved,
                     hint="pass --resume-anyway")
    assert not (tmp_path / SETTINGS).exists()


def test_a_path_recorded_beside_its_hash_is_compared_by_the_hash(tmp_path):
    """A resume guard's `by_hash`: a model (as a checkpoint records it, under `run`) at another
    path with the same hash resumes; another hash is refused, naming both paths; a record from
    before the hash compares the path alone; a Hub id (no hash) compares the id."""
    by_hash = {"run.model": "model_sha256"}

    def run(model: str, sha: str | None) -> dict:
        return {"run": {"model": model, "model_sha256": sha, "lr": 0.1}}

    saved = run("/a/model", "s1")
    check_resume(tmp_path, run("/b/model", "s1"), saved=saved, by_hash=by_hash)  # moved
    with pytest.raises(GroverError, match=r"run\.model: '/a/model' -> '/b/model'; "
                                          r"run\.model_sha256: 's1' -> 's2'"):
        check_resume(tmp_path, run("/b/model", "s2"), saved=saved, by_hash=by_hash)
    with pytest.raises(GroverError, match=r"run\.model: '/a/model' -> '/a/model2'"):
        check_resume(tmp_path, run("/a/model2", "s1"), saved=saved)  # only where asked
    before = {"run": {"model": "/a/model", "lr": 0.1}}  # recorded before the hash
    check_resume(tmp_path, run("/a/model", "s1"), saved=before, by_hash=by_hash)
    with pytest.raises(GroverError, match=r"run\.model: '/a/model' -> '/b/model'"):
        check_resume(tmp_path, run("/b/model", "s1"), saved=before, by_hash=by_hash)
    hub = run("org/model", None)
    check_resume(tmp_path, run("org/model", None), saved=hub, by_hash=by_hash)
    with pytest.raises(GroverError, match="org/other"):
        check_resume(tmp_path, run("org/other", None), saved=hub, by_hash=by_hash)
    assert saved == run("/a/model", "s1")  # the caller's record is left as it was


def test_volatile_fields_may_change_when_settings_come_from_args_stable(tmp_path):
    check_resume(tmp_path, {"train": stable(TrainConfig(threads=1, device="cpu"))})
    check_resume(tmp_path, {"train": stable(TrainConfig(threads=4, device="auto", log_every=7))})
    with pytest.raises(GroverError, match=r"train\.lr: .* -> 0\.5"):
        check_resume(tmp_path, {"train": stable(TrainConfig(threads=4, lr=0.5))})


def test_a_folder_is_finished_once_its_manifest_is_written(tmp_path):
    assert not finished(tmp_path) and not finished(tmp_path / "missing")
    check_resume(tmp_path, {"a": 1})
    assert not finished(tmp_path)  # settings alone: started, not finished
    write_manifest(tmp_path, "test", {"a": 1}, [])
    assert finished(tmp_path) and finished(str(tmp_path))


def test_a_cached_record_is_reused_under_its_settings_and_recomputed_under_others(tmp_path):
    path = tmp_path / "a.json"
    assert cached(path, {"a": 1}) is None  # nothing cached yet
    write_cached(path, {"a": 1, "ks": (1, 2), "train": stable(TrainConfig(threads=1))}, {"x": 5})
    assert cached(path, {"a": 1, "ks": (1, 2), "train": stable(TrainConfig(threads=4))})["x"] == 5
    assert cached(path, {"a": 2, "ks": (1, 2), "train": stable(TrainConfig())}) is None  # no error
    path.write_text('{"key": "a record from before settings were kept in it", "x": 5}')
    assert cached(path, {"a": 1}) is None
    path.write_text('{"settings": {"a": 1}, "x"')  # damaged: recomputed, no traceback
    assert cached(path, {"a": 1}) is None


def test_damaged_records_and_a_file_as_out_are_one_line_errors(tmp_path):
    (tmp_path / "manifest.json").write_text('{"stage": "bpe-train", ')
    with pytest.raises(GroverError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / SETTINGS).write_text("[1, 2]")
    with pytest.raises(GroverError, match="not a JSON object"):
        check_resume(tmp_path, {"a": 1})
    (tmp_path / "afile").write_text("x")
    with pytest.raises(GroverError, match="not a folder"):
        prepare_out(tmp_path / "afile", overwrite=False)


def test_a_folder_without_manifest_is_identified_by_its_contents(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, byte in ((a, b"\x00"), (b, b"\x01")):  # two checkpoints of the same shape
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(byte * 8)
    assert fingerprint(a)["sha256"] != fingerprint(b)["sha256"]


def test_an_interrupted_folder_swap_keeps_the_old_folder(tmp_path, monkeypatch):
    import os

    path = tmp_path / "model"
    path.mkdir()
    (path / "w.bin").write_text("old")
    real, calls = os.replace, []

    def interrupted(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new folder's rename
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.mkdir()
        (tmp / "w.bin").write_text("new")
    monkeypatch.setattr(os, "replace", real)
    assert (path / "w.bin").read_text() == "old"
    # a leftover temporary folder of a killed run with the same process id is cleared first
    stale = tmp_path / f".model.tmp{os.getpid()}"
    stale.mkdir()
    with atomic_path(path) as tmp:
        tmp.mkdir()
        (tmp / "w.bin").write_text("new")
    assert (path / "w.bin").read_text() == "new" and not stale.exists()


def test_a_file_written_over_a_folder_names_the_folder(tmp_path):
    """It was an IsADirectoryError naming the temporary file (.x.tmpPID), not the user's path."""
    from groverlm.manifest import write_text

    (tmp_path / "out" / "inner").mkdir(parents=True)
    with pytest.raises(GroverError, match=r"out: is a folder"):
        write_text(tmp_path / "out", "text")
    assert (tmp_path / "out" / "inner").is_dir() and not list(tmp_path.glob(".out.tmp*"))



def test_a_folder_another_process_writes_is_refused_in_one_line_and_free_once_it_dies(
        tmp_path, capsys):
    out = tmp_path / "vocab"
    out.mkdir()
    with held_elsewhere(out / LOCK, out) as pid:
        with pytest.raises(GroverError, match=rf"^{re.escape(str(out))}: in use by another "
                                              rf"groverlm process \(pid {pid}\)"):
            with folder_lock(out):
                pass
        assert main(["kmer-vocab", "--k", "3", "--out", str(out)]) == 2  # a stage command too
        err = capsys.readouterr().err.strip()
        assert f"pid {pid}" in err and "\n" not in err
        assert not finished(out)
    assert (out / LOCK).exists()  # killed, the holder leaves the file but not the lock
    assert main(["kmer-vocab", "--k", "3", "--out", str(out)]) == 0
    assert finished(out) and not (out / LOCK).exists()


def test_nothing_inside_a_folder_another_process_writes_is_written_until_it_dies(
        tmp_path, capsys):
    """`groverlm run` in its fine-tuning stage holds only RUN: `groverlm pretrain --out
    RUN/pretrain/model --overwrite` (or a task, a score table) in another terminal deleted what
    the run still reads. The lock file a killed holder leaves behind refuses nothing."""
    run = tmp_path / "run"
    run.mkdir()
    sub = run / "sub"
    with held_elsewhere(run / LOCK, run) as pid:
        refusal = rf"^{re.escape(str(run))}: in use by another groverlm process \(pid {pid}\)"
        with pytest.raises(GroverError, match=refusal + rf".* before writing {re.escape(str(sub))} "):
            with folder_lock(sub):
                pass
        with pytest.raises(GroverError, match=refusal):
            with file_lock(sub / "x.tsv"):
                pass
        assert main(["kmer-vocab", "--k", "3", "--out", str(sub), "--overwrite"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{run}: in use by another groverlm process (pid {pid})" in err and "\n" not in err
        assert sorted(p.name for p in run.iterdir()) == [LOCK]  # nothing made inside
    assert (run / LOCK).exists()  # killed, the holder leaves the file but not the lock
    with folder_lock(sub), file_lock(sub / "x.tsv"):
        pass
    assert main(["kmer-vocab", "--k", "3", "--out", str(sub)]) == 0 and finished(sub)


def test_a_folder_around_one_another_process_writes_is_refused_until_it_dies(tmp_path, capsys):
    """`groverlm pretrain --out RUN/pretrain/model` (or `score --out RUN/score/t.tsv`) running: a
    stage command's --overwrite of RUN (or a new run into RUN) was let in, to delete or rewrite
    what the writer still writes. Only a folder's lock looks below: a file's has nothing there."""
    run = tmp_path / "run"
    model, table = run / "pretrain" / "model", run / "score" / "t.tsv"
    model.mkdir(parents=True)
    table.parent.mkdir()
    (table.parent / "t.tsv.partial").write_text("rows\n")
    for lock_file, what in ((model / LOCK, model), (table.with_name(".t.tsv.lock"), table)):
        with held_elsewhere(lock_file, what) as pid:
            refusal = (rf"^{re.escape(str(lock_file.parent))}: in use by another groverlm process "
                       rf"\(pid {pid}\).* before writing {re.escape(str(run))} around it")
            with pytest.raises(GroverError, match=refusal):
                with folder_lock(run):
                    pass
            with pytest.raises(GroverError, match=rf"in use .*\(pid {pid}\)"):
                remove_folder(run)  # as the runner clears a stage folder
            assert main(["kmer-vocab", "--k", "3", "--out", str(run), "--overwrite"]) == 2
            err = capsys.readouterr().err.strip()
            assert f"{lock_file.parent}: in use by another groverlm process (pid {pid})" in err
            assert "\n" not in err
            assert sorted(p.name for p in run.iterdir()) == ["pretrain", "score"]  # nothing made
            assert (table.parent / "t.tsv.partial").is_file()  # nor deleted
            with file_lock(run / "beside.tsv"):  # nothing below a file: not refused, not walked
                pass
    assert main(["kmer-vocab", "--k", "3", "--out", str(run), "--overwrite"]) == 0
    assert finished(run)


def test_two_processes_starting_together_in_nested_folders_do_not_both_go_on(
        tmp_path, monkeypatch):
    """The other holders were looked for before our lock was taken: a second process taking a
    folder inside (or around) ours between the look and the take left both writing. The race is
    made deterministic: the other process takes its lock as ours is being taken."""
    run = tmp_path / "run"
    model = run / "pretrain" / "model"
    model.mkdir(parents=True)
    acquire = manifest._acquire
    for mine, theirs in ((run, model), (model, run)):
        with contextlib.ExitStack() as others:
            def racing(lock_file, what, theirs=theirs, others=others):
                others.enter_context(held_elsewhere(theirs / LOCK, theirs))
                return acquire(lock_file, what)

            monkeypatch.setattr(manifest, "_acquire", racing)
            with pytest.raises(GroverError, match=rf"^{re.escape(str(theirs))}: in use by another"):
                with folder_lock(mine):
                    pass
            assert not (mine / LOCK).exists()  # ours is given back
        monkeypatch.setattr(manifest, "_acquire", acquire)
        with folder_lock(mine):  # its holder gone, the file it left refuses nothing
            pass


# a process that tries to write in each folder of its arguments, and prints what became of it
TRY_FOLDERS = ("import sys\nfrom groverlm.errors import GroverError\n"
               "from groverlm.manifest import folder_lock\nfor f in sys.argv[1:]:\n    try:\n"
               "        with folder_lock(f): print('ok')\n"
               "    except GroverError as err: print(err)")


def test_a_process_the_holder_starts_writes_inside_only_the_folders_passed_on(tmp_path):
    """torchrun's rank 0 takes RUN/pretrain/model while the run that launched it holds RUN: the
    launcher passes its locks on in the environment (pretrain.launch_env), for the folders
    inside them only, and only while that launcher holds them."""
    run, other = tmp_path / "run", tmp_path / "other"

    def started(env: dict[str, str], *folders: object) -> list[str]:
        return subprocess.run([sys.executable, "-c", TRY_FOLDERS, *map(str, folders)], env=env,
                              capture_output=True, text=True, check=True).stdout.splitlines()

    with folder_lock(run):
        env = {**os.environ, **passed_locks()}
        with folder_lock(other):  # held too, but not passed on
            got = started(env, run / "pretrain" / "model", run, other / "x")
        forged = json.dumps({"pid": 1, "locks": json.loads(env[PASSED_LOCKS])["locks"]})
        refused = [started({**os.environ, PASSED_LOCKS: ""}, run / "inner"),
                   started({**env, PASSED_LOCKS: forged}, run / "inner")]
    mine = f"in use by another groverlm process (pid {os.getpid()})"
    assert got[0] == "ok"
    assert got[1].startswith(f"{run}: {mine}")  # the folder itself stays ours
    assert got[2].startswith(f"{other}: {mine}")
    assert all(r[0].startswith(f"{run}: {mine}") for r in refused)
    assert not run.exists() and not other.exists()


def test_a_process_reenters_a_folder_it_holds_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "run"
    with folder_lock(out):
        with folder_lock(out / "."):  # a stage inside the run, each seed of a fine-tuning
            assert (out / LOCK).read_text().strip() == str(os.getpid())
        assert (out / LOCK).exists()  # the outer hold continues
    assert not out.exists()  # made by the lock, left empty: removed (nothing half-made stays)

    @writes_folder
    def stage(genome, out, overwrite=False):
        prepare_out(out, overwrite)
        (out / "table.tsv").write_text("x\n")

    stage("g.fa", out=tmp_path / "s")
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["table.tsv"]


def test_a_refused_call_leaves_no_folder_it_made_behind(tmp_path, capsys):
    """A bad input found once the output's lock is taken: neither the output's folder nor the
    parents made for it stay (a stage command's --out, a score table's new folder)."""
    out = tmp_path / "new" / "deeper" / "kv"
    assert main(["kmer-vocab", "--k", "99", "--out", str(out)]) == 2
    assert "--k must be between 1 and 8" in capsys.readouterr().err
    fa = write_fasta(tmp_path / "s.fa", {"s": "ACGTACGTAAGG"})
    table = tmp_path / "scores" / "deeper" / "t.tsv"
    assert main(["score", "seqs", "--input", str(fa), "--model", str(tmp_path / "no-model"),
                 "--out", str(table)]) == 2
    assert "no-model: no such model folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.fa"]
    with folder_lock(tmp_path / "kept" / "run") as run:  # a folder given output stays
        (run / "config.yaml").write_text("x\n")
    assert [p.name for p in (tmp_path / "kept" / "run").iterdir()] == ["config.yaml"]


@dataclasses.dataclass(frozen=True)
class PartSettings:
    lr: float = 0.1
    threads: int = volatile(1)
    select: str = "mcc"  # added by a later release


def make_part(out, task_dir, settings=PartSettings(), drop=()):
    """A part as a stage's `made_from` records it: its settings and the path of the task folder
    it read, that folder among its inputs. `drop`: settings left out, as written before they
    existed."""
    config = {k: v for k, v in dataclasses.asdict(settings).items() if k not in drop}
    write_manifest(out, "part", {**config, "task_dir": str(task_dir)}, [task_dir])


def kept(out, task_dir, settings=PartSettings()):
    return keep_part(out, {**dataclasses.asdict(settings), "task_dir": str(task_dir)}, [task_dir],
                     settings)


def test_a_part_of_a_moved_run_folder_is_kept_and_another_input_is_not(tmp_path):
    """A part's config records the path of the folder it read (finetune's model and task_dir):
    a run folder moved or copied elsewhere (rsync from a cluster) holds the same inputs at
    another path, and its parts are kept; another task folder, here or elsewhere, is another
    input."""
    task = tmp_path / "run" / "tasks" / "ctcf"
    write_manifest(task, "tasks-ctcf", {"window": 60}, [])
    make_part(tmp_path / "run" / "finetune" / "ctcf", task)
    shutil.move(tmp_path / "run", tmp_path / "moved")
    moved_task, part = tmp_path / "moved" / "tasks" / "ctcf", tmp_path / "moved" / "finetune" / "ctcf"
    assert kept(part, moved_task)
    shutil.copytree(moved_task, tmp_path / "other")  # the same folder elsewhere: the same input
    assert kept(part, tmp_path / "other")
    write_manifest(tmp_path / "other", "tasks-ctcf", {"window": 50}, [])  # another task
    assert not kept(part, tmp_path / "other") and not part.exists()
    make_part(part, moved_task)
    write_manifest(moved_task, "tasks-ctcf", {"window": 50}, [])  # remade in place
    assert not kept(part, moved_task) and not part.exists()


def test_a_part_keeps_under_volatile_settings_and_settings_added_at_their_default(tmp_path):
    """Volatile settings change no result; a setting added since a part was made, at its default,
    is what the part was made with (the demo's TF-IDF parts were made again for the new
    tfidf.select). The added setting at another value, or a changed setting, makes it again."""
    task = tmp_path / "task"
    write_manifest(task, "tasks-x", {}, [])
    part = tmp_path / "part"
    for now, keep in [(PartSettings(threads=4), True), (PartSettings(), True),
                      (PartSettings(select="auc"), False), (PartSettings(lr=0.2), False)]:
        make_part(part, task, drop=("select",))
        assert kept(part, task, now) == keep, now
