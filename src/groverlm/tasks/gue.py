"""Tasks stage, reading a task folder: ours or any GUE-format folder (DNABERT-2's benchmark).

Reads `train.csv`, `dev.csv`, `test.csv` (columns `sequence,label`, optionally `chrom,start,end,
strand` and `tokens`, space-separated token strings spelling the sequence) and `manifest.json` when
present; writes nothing. Every consuming command (baselines,
fine-tuning) loads tasks through `load_task`, so a GUE folder works unchanged.

Labels are mapped to ids by an explicit sorted map built from all three splits (numerically when
every label is a number, else lexicographically), never by file order; an integer however written
(1, 1.0, 01) is one label, and a dev or test label that train lacks is an error at its line. A
sequence of dev or test that is also in train is counted in a warning. A strand of `.` reads as
`+`. Sequences are uppercased and must hold only A/C/G/T and IUPAC letters; IUPAC letters other
than N are read as N (as the FASTA reader does: no model or baseline knows them), with a warning per
file that has any. A bad row is a GroverError naming the file and line.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groverlm.errors import GroverError, counted
from groverlm.fasta import IUPAC
from groverlm.tasks.common import SPLITS

log = logging.getLogger(__name__)

_BAD_LETTER = re.compile(f"[^ACGT{IUPAC}]")
_TO_N = str.maketrans({b: "N" for b in IUPAC})
_COORDS = ("chrom", "start", "end", "strand")


@dataclass
class Split:
    """One split: parallel lists of sequences and label ids, and coordinates when the CSV has them.
    """

    sequences: list[str]
    labels: np.ndarray  # (n,) int64 label ids
    coords: dict[str, list] | None = None  # chrom, start, end, strand columns, or None
    tokens: list[list[str]] | None = None  # given BPE tokens per sequence (token shuffles), or None

    def __len__(self) -> int:
        return len(self.sequences)


@dataclass
class Task:
    name: str
    path: Path
    splits: dict[str, Split]
    label_map: dict[str, int]  # label text in the CSV -> id
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_map)

    @property
    def train(self) -> Split:
        return self.splits["train"]

    @property
    def dev(self) -> Split:
        return self.splits["dev"]

    @property
    def test(self) -> Split:
        return self.splits["test"]

    def label_names(self) -> list[str]:
        """Label texts in id order."""
        return [t for t, _ in sorted(self.label_map.items(), key=lambda kv: kv[1])]


def label_order(labels: set[str]) -> list[str]:
    """Labels sorted numerically when all are numbers, else as text.

    >>> label_order({"10", "2", "0"}), label_order({"b", "a"}), label_order({"10", "2.5", "1"})
    (['0', '2', '10'], ['a', 'b'], ['1', '2.5', '10'])
    """
    try:
        values = {t: float(t) for t in labels}
    except ValueError:
        return sorted(labels)
    if not all(math.isfinite(v) for v in values.values()):  # nan sorts by the set's hash order
        return sorted(labels)
    return sorted(labels, key=lambda t: (values[t], t))


def label_text(text: str) -> str:
    """A label as the label map keys it: an integer however written (1, 1.0, 01, +1) as its
    decimal digits, so that one class is never split in two by how a tool wrote it; the rest as
    given.

    >>> [label_text(t) for t in ("1.0", "01", "-0", "2.5", "enhancer")]
    ['1', '1', '0', '2.5', 'enhancer']
    """
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else text


def _read_csv(path: Path
              ) -> tuple[list[str], list[str], dict[str, list] | None, list[list[str]] | None]:
    if not path.exists():
        raise GroverError("missing split file (a task folder holds train.csv, dev.csv, test.csv)",
                          path)
    seqs: list[str] = []
    labels: list[str] = []
    lines: list[int] = []  # each row's line in the file, for errors about its label
    coords: dict[str, list] | None = None
    tokens: list[list[str]] | None = None
    ambiguous = 0  # rows with IUPAC letters other than N, read as N
    # a long sequence (a 200-kb locus) is one field: csv's default limit is 131,072 characters
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: Excel's byte-order mark
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise GroverError("empty file: expected a header `sequence,label`", path, 1)
            header = [h.strip().lower() for h in header]
            twice = sorted({h for h in header if h and header.count(h) > 1})
            if twice:
                raise GroverError(f"the header names the column {twice[0]!r} twice", path, 1)
            if len(header) == 1 and "\t" in header[0]:
                raise GroverError("tab-separated: a task CSV is comma-separated (header "
                                  "`sequence,label`)", path, 1)
            for col in ("sequence", "label"):
                if col not in header:
                    raise GroverError(f"header lacks the column {col!r} (found {','.join(header)})",
                                      path, 1)
            si, li = header.index("sequence"), header.index("label")
            has_coords = all(c in header for c in _COORDS)
            ci = [header.index(c) for c in _COORDS] if has_coords else []
            if has_coords:
                coords = {c: [] for c in _COORDS}
            ti = header.index("tokens") if "tokens" in header else None
            if ti is not None:
                tokens = []
            width = len(header)
            for row in reader:
                line = reader.line_num
                if not any(f.strip() for f in row):  # blank, or a spreadsheet's row of commas
                    continue
                if len(row) != width:
                    raise GroverError(f"{len(row)} fields, the header has {width}", path, line)
                seq = row[si].strip().upper()
                if not seq:
                    raise GroverError("empty sequence", path, line)
                bad = _BAD_LETTER.search(seq)
                if bad:
                    raise GroverError(f"letter {bad.group()!r} in the sequence (A/C/G/T or IUPAC "
                                      "letters only)", path, line)
                read_as_n = seq.translate(_TO_N)
                if read_as_n != seq:
                    ambiguous += 1
                    seq = read_as_n
                label = label_text(row[li].strip())
                if not label:
                    raise GroverError("empty label", path, line)
                seqs.append(seq)
                labels.append(label)
                lines.append(line)
                if tokens is not None:
                    toks = row[ti].split()
                    if "".join(toks).upper().translate(_TO_N) != seq:
                        raise GroverError("the tokens do not spell the sequence", path, line)
                    tokens.append(toks)
                if coords is not None:
                    chrom, start, end, strand = (row[i].strip() for i in ci)
                    try:
                        s, e = int(start), int(end)
                    except ValueError:
                        raise GroverError(f"start/end {start!r}/{end!r} are not integers",
                                          path, line) from None
                    if not 0 <= s < e:
                        raise GroverError(f"bad interval {start}-{end}", path, line)
                    if strand == ".":  # BED's no strand: the sequence reads as the genome does
                        strand = "+"
                    if strand not in ("+", "-"):
                        raise GroverError(f"strand {strand!r} is not '+', '-' or '.'", path, line)
                    coords["chrom"].append(chrom)
                    coords["start"].append(s)
                    coords["end"].append(e)
                    coords["strand"].append(strand)
    except UnicodeDecodeError:
        raise GroverError("binary data, not a CSV text file", path) from None
    except csv.Error as err:
        raise GroverError(f"malformed CSV ({err})", path) from None
    if not seqs:
        raise GroverError("no rows after the header", path)
    if ambiguous:
        log.warning("%s: %s with IUPAC letters other than N, read as N", path,
                    counted(ambiguous, "sequence"))
    return seqs, labels, coords, tokens, lines


def load_task(folder: str | Path) -> Task:
    """The three splits of a task folder, labels mapped by a sorted explicit label map.

    The task's name is the manifest's `task` when there is one, else the folder's name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GroverError("not a task folder", folder)
    raw = {s: _read_csv(folder / f"{s}.csv") for s in SPLITS}
    texts = set().union(*(set(r[1]) for r in raw.values()))
    if len(texts) < 2:
        raise GroverError(f"only one label ({', '.join(texts)}) in the whole task", folder)
    label_map = {t: i for i, t in enumerate(label_order(texts))}
    trained = set(raw["train"][1])
    for s in SPLITS[1:]:  # the first row whose class the model never sees in training
        labels, lines = raw[s][1], raw[s][4]
        for label, line in zip(labels, lines, strict=True):
            if label not in trained:
                raise GroverError(f"label {label!r} is not in train.csv (a class the model "
                                  "would never be trained on)", folder / f"{s}.csv", line)
    for s, r in raw.items():  # one class: MCC 0 and no AUROC, read as a result downstream
        if len(set(r[1])) < 2:
            raise GroverError(f"only one label ({r[1][0]}) in the {s} split: MCC and AUROC need "
                              "two classes", folder / f"{s}.csv")
    manifest: dict[str, Any] = {}
    if (folder / "manifest.json").exists():
        path = folder / "manifest.json"
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise GroverError(f"not valid JSON ({getattr(err, 'msg', err)})", path,
                              getattr(err, "lineno", None)) from None
        if not isinstance(manifest, dict):
            raise GroverError("not a JSON object", path)
        declared = manifest.get("label_map")
        if declared is not None and not (isinstance(declared, dict) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in declared.values())):
            raise GroverError("label_map is not an object of label -> integer id", path)
        if declared and {str(k): v for k, v in declared.items()} != label_map:
            raise GroverError(f"the manifest's label_map {declared} differs from the labels in "
                              f"the CSVs {label_map}", folder / "manifest.json")
    splits = {s: Split(seqs, np.array([label_map[t] for t in labels], dtype=np.int64), coords,
                       tokens) for s, (seqs, labels, coords, tokens, _) in raw.items()}
    seen = set(raw["train"][0])
    for s in SPLITS[1:]:  # a sequence trained on and then scored inflates the score
        shared = sum(q in seen for q in raw[s][0])
        if shared:
            log.warning("%s: %d of %d sequences are also in train.csv: the %s scores are partly "
                        "on training data", folder / f"{s}.csv", shared, len(raw[s][0]), s)
    # GUE numbers the sets of a kind (tf/0, mouse/0): a bare number takes its parent's name too,
    # or `compare` would put different tasks in one row
    name = folder.resolve().name
    if name.isdigit():
        name = f"{folder.resolve().parent.name}/{name}"
    return Task(manifest.get("task") or name, folder, splits, label_map, manifest)
