"""load_task: GUE folders unchanged, sorted explicit label maps, errors with file and line."""

from __future__ import annotations

import pytest

from groverlm.errors import GroverError
from groverlm.tasks.gue import label_order, load_task


def write_task(folder, rows_by_split, header="sequence,label"):
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in rows_by_split.items():
        (folder / f"{split}.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return folder


GUE = {"train": ["ACGT,10", "acgn,2", "TTTT,0"], "dev": ["AAAA,2", "GGGG,0"],
       "test": ["CCCC,10", "CCCA,0"]}


def test_gue_folder_and_numeric_label_order(tmp_path, monkeypatch):
    task = load_task(write_task(tmp_path / "gue_tf", GUE))
    assert task.name == "gue_tf"
    assert task.label_map == {"0": 0, "2": 1, "10": 2}  # numeric, not text or file order
    assert task.train.sequences == ["ACGT", "ACGN", "TTTT"]
    assert task.train.labels.tolist() == [2, 1, 0]
    assert task.test.labels.tolist() == [2, 0]
    assert task.train.coords is None and task.train.tokens is None
    assert task.label_names() == ["0", "2", "10"]
    monkeypatch.chdir(tmp_path / "gue_tf")
    assert load_task(".").name == "gue_tf"  # `--task .` is named after the folder, not ""
    # GUE numbers the sets of a kind: tf/0 and mouse/0 are two tasks, not one "0"
    names = {load_task(write_task(tmp_path / kind / "0", GUE)).name for kind in ("tf", "mouse")}
    assert names == {"tf/0", "mouse/0"}


def test_manifest_label_map_and_tab_separated_csvs(tmp_path):
    folder = write_task(tmp_path / "t", GUE)
    for bad in ('["0", "2", "10"]', '{"0": "zero", "2": 1, "10": 2}'):
        (folder / "manifest.json").write_text(f'{{"label_map": {bad}}}')
        with pytest.raises(GroverError, match="label_map is not an object of label -> integer"):
            load_task(folder)
    (folder / "manifest.json").unlink()
    tabs = write_task(tmp_path / "tabs", {s: [r.replace(",", "\t") for r in rows]
                                          for s, rows in GUE.items()}, header="sequence\tlabel")
    with pytest.raises(GroverError, match=r"train.csv:1: tab-separated: a task CSV is comma"):
        load_task(tabs)


def test_text_labels_sorted(tmp_path):
    task = load_task(write_task(tmp_path / "t", {
        "train": ["ACGT,enhancer", "ACGT,background"], "dev": ["AC,enhancer", "GG,background"],
        "test": ["AC,background", "TT,enhancer"]}))
    assert task.label_map == {"background": 0, "enhancer": 1}


def test_coordinates_and_tokens(tmp_path):
    header = "sequence,label,chrom,start,end,strand,tokens"
    rows = {"train": ["ACGT,1,chr1,10,14,+,AC GT", "TTAA,0,chr1,20,24,-,TTA A"],
            "dev": ["AC,0,chr2,0,2,+,AC", "CC,1,chr2,4,6,+,CC"],
            "test": ["GG,1,chr3,5,7,+,G G", "TT,0,chr3,9,11,+,TT"]}
    task = load_task(write_task(tmp_path / "t", rows, header))
    assert task.train.coords == {"chrom": ["chr1", "chr1"], "start": [10, 20], "end": [14, 24],
                                 "strand": ["+", "-"]}
    assert task.train.tokens == [["AC", "GT"], ["TTA", "A"]]


def test_other_iupac_letters_read_as_n(tmp_path, caplog):
    # viral sets often carry ambiguity codes; the FASTA reader takes them as N too
    rows = {**GUE, "train": ["ACRYT,10", "acgt,2", "kmsw,0"]}
    task = load_task(write_task(tmp_path / "t", rows))
    assert task.train.sequences == ["ACNNT", "ACGT", "NNNN"]
    assert "2 sequences with IUPAC letters other than N" in caplog.text
    caplog.clear()
    load_task(write_task(tmp_path / "one", {**GUE, "train": ["ACRYT,10", "acgt,2", "TTTT,0"]}))
    assert ": 1 sequence with IUPAC letters" in caplog.text  # not "1 sequence(s)"


@pytest.mark.parametrize("split, rows, header, line, msg", [
    ("train", ["ACGT,1", "ACXT,0"], "sequence,label", 3, "letter 'X'"),
    ("dev", ["ACGT"], "sequence,label", 2, "1 fields"),
    ("test", ["ACGT,1"], "seq,label", 1, "lacks the column 'sequence'"),
    ("train", [",1"], "sequence,label", 2, "empty sequence"),
    ("train", ["ACGT,"], "sequence,label", 2, "empty label"),
    ("train", ["ACGT,1,c,5,3,+"], "sequence,label,chrom,start,end,strand", 2, "bad interval"),
    ("train", ["ACGT,1,AC G"], "sequence,label,tokens", 2, "do not spell"),
])
def test_errors_name_file_and_line(tmp_path, split, rows, header, line, msg):
    folder = write_task(tmp_path / "t", GUE)
    (folder / f"{split}.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows))
    with pytest.raises(GroverError, match=msg) as err:
        load_task(folder)
    assert str(err.value).startswith(f"{folder / (split + '.csv')}:{line}: ")


def test_folder_level_errors(tmp_path):
    folder = write_task(tmp_path / "t", {"train": ["ACGT,0"], "dev": ["ACGT,0"]})
    with pytest.raises(GroverError, match="missing split file"):
        load_task(folder)
    write_task(folder, {"test": ["ACGT,0", "ACGA,0", "ACGC,1"]})  # named at its line, not train.csv
    with pytest.raises(GroverError, match=r"test.csv:4: label '1' is not in train.csv"):
        load_task(folder)
    write_task(folder, {"test": ["ACGT,0"]})
    with pytest.raises(GroverError, match="only one label"):
        load_task(folder)
    # a split of one class scored MCC 0.000, which compare and the report tabulated as a result
    write_task(folder, {"train": ["ACGT,0", "ACGA,1"], "dev": ["ACGT,0", "ACGA,1"],
                        "test": ["ACGT,0", "TTTT,0"]})
    with pytest.raises(GroverError, match=r"test.csv: only one label \(0\) in the test split"):
        load_task(folder)
    with pytest.raises(GroverError, match="not a task folder"):
        load_task(tmp_path / "nothing")
    folder = write_task(tmp_path / "m", GUE)
    (folder / "manifest.json").write_text('{"task": "x",\n')
    with pytest.raises(GroverError, match="not valid JSON") as err:
        load_task(folder)
    assert str(err.value).startswith(f"{folder / 'manifest.json'}:")


def test_csv_with_a_byte_order_mark(tmp_path):
    """Excel saves UTF-8 CSVs with a byte-order mark before the header."""
    folder = write_task(tmp_path / "t", GUE)
    (folder / "train.csv").write_text("\ufeffsequence,label\nACGT,10\nACGA,2\nTTTT,0\n",
                                      encoding="utf-8")
    assert load_task(folder).train.sequences == ["ACGT", "ACGA", "TTTT"]


def test_one_number_written_two_ways_is_one_label(tmp_path):
    """GUE-format files from other tools write 1 or 1.0 (a pandas float column) or 01: they
    became separate classes, a binary task silently scored as three."""
    rows = {"train": ["ACGT,0", "ACGA,1", "ACGC,1.0", "AAAA,0.0", "CCCC,01"],
            "dev": ["AAAT,1.0", "GGGG,0"], "test": ["CCCA,1", "CCCT,+0"]}
    task = load_task(write_task(tmp_path / "t", rows))
    assert task.label_map == {"0": 0, "1": 1}
    assert task.train.labels.tolist() == [0, 1, 1, 0, 1] and task.test.labels.tolist() == [1, 0]
    # decimals stay labels of their own, in numeric order
    rows = {"train": ["ACGT,10", "ACGA,2.5", "ACGC,1"], "dev": ["AAAT,1", "GGGG,2.5"],
            "test": ["CCCA,10", "CCCT,1"]}
    assert load_task(write_task(tmp_path / "d", rows)).label_map == {"1": 0, "2.5": 1, "10": 2}
    # a label that is no finite number sorts all of them as text: NaN has no place in an order, and
    # the map would follow the set's hash order from one process to the next
    assert label_order({"nan", "1", "0"}) == ["0", "1", "nan"]


def test_long_sequences_spreadsheet_rows_duplicate_columns_and_shared_rows(tmp_path, caplog):
    long = "ACGT" * 40_000  # 160 kb: over csv's default field limit of 131,072 characters
    rows = {**GUE, "train": [f"{long},10", "acgn,2", "TTTT,0", ",", ",,"]}
    task = load_task(write_task(tmp_path / "t", rows))
    assert task.train.sequences[0] == long and len(task.train) == 3  # ",": a row of nothing
    assert "also in train.csv" not in caplog.text
    write_task(tmp_path / "t", {"test": ["TTTT,0", "CCCC,10"]})  # a training row scored again
    load_task(tmp_path / "t")
    assert "test.csv: 1 of 2 sequences are also in train.csv" in caplog.text
    write_task(tmp_path / "t", {"dev": ["AAAA,2,2", "GGGG,0,0"]}, header="sequence,label,label")
    with pytest.raises(GroverError, match=r"dev.csv:1: the header names the column 'label' twice"):
        load_task(tmp_path / "t")
    # BED's '.' for no strand reads as the genome does (was an error blocking the whole task)
    header = "sequence,label,chrom,start,end,strand"
    rows = {"train": ["ACGT,1,chr1,10,14,.", "TTAA,0,chr1,20,24,-"],
            "dev": ["AC,0,chr2,0,2,+", "CC,1,chr2,4,6,+"],
            "test": ["GG,1,chr3,5,7,+", "TT,0,chr3,9,11,+"]}
    assert load_task(write_task(tmp_path / "c", rows, header)).train.coords["strand"] == ["+", "-"]
