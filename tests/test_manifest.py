"""groverlm.manifest: the "finished" check and the one resume guard every stage calls."""

from __future__ import annotations

import json
import re

import pytest

from groverlm.args import TrainConfig, stable
from groverlm.errors import GroverError
from groverlm.manifest import SETTINGS, cached, check_resume, finished, write_cached, write_manifest


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
