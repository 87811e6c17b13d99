"""`groverlm embed` and `groverlm.embed`: pooling against a hand computation, windows, batching,
layers, dtypes, the three input formats, the index file, bad input and resuming."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

import groverlm
from groverlm.cli import main
from groverlm.embed import (
    EmbedConfig,
    embed_token_ids,
    load_encoder,
    named_sequences,
    read_items,
    tokenize,
    write_embeddings,
)
from groverlm.errors import GroverError
from groverlm.fasta import reverse_complement

from .analysis.fixtures import make_model, make_vocab
from .conftest import held_elsewhere, random_dna, write_fasta

EMBED_MODULE = sys.modules["groverlm.embed"]  # `groverlm.embed` itself is the function
EMBED_TOKEN_IDS = EMBED_MODULE.embed_token_ids


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("embed")
    genome, vocab = make_vocab(tmp)
    model_dir = make_model(vocab, tmp / "model", positions=40)  # windows of 38 tokens
    model, tok = load_encoder(model_dir)
    return genome, model_dir, model, tok


def by_hand(model, ids: list[int], tok, pooling: str = "mean", layer: int = -1) -> np.ndarray:
    """One window's vector computed directly with the stock encoder."""
    x = torch.tensor([[tok.cls_token_id, *ids, tok.sep_token_id]])
    with torch.no_grad():
        out = model.base_model(input_ids=x, output_hidden_states=True)
    h = out.hidden_states[layer][0]  # (T, H)
    if pooling == "cls":
        return h[0].numpy()
    keep = [i + 1 for i, t in enumerate(ids) if t not in tok.all_special_ids]
    return h[keep].mean(0).numpy()


def test_mean_and_cls_pooling_match_the_encoder(tiny):
    _, _, model, tok = tiny
    seqs = ["ACGTTGCAAGGCTGAGGCAGGAGAATCG", "TTTTGACCA"]
    ids = tokenize(tok, seqs)
    for pooling in ("mean", "cls"):
        got = groverlm.embed(model, seqs, tokenizer=tok, pooling=pooling)
        assert got.shape == (2, 32) and got.dtype == np.float32
        for i in range(2):
            np.testing.assert_allclose(got[i], by_hand(model, ids[i], tok, pooling), atol=1e-5)


def test_padding_in_a_batch_changes_nothing(tiny):
    _, _, model, tok = tiny
    short = "ACGTTGCA"
    alone = groverlm.embed(model, [short], tokenizer=tok)
    mixed = groverlm.embed(model, [random_dna(150, 3), short, random_dna(90, 4)], tokenizer=tok,
                           batch_size=3)
    np.testing.assert_allclose(mixed[1], alone[0], atol=1e-5)


def test_long_sequences_are_token_weighted_window_means(tiny):
    _, _, model, tok = tiny
    seq = random_dna(400, 11)
    ids = tokenize(tok, [seq])[0]
    assert len(ids) > 2 * 38  # at least three windows
    cfg = EmbedConfig()
    vec, tokens, windows = embed_token_ids(model, tok, [ids], cfg)
    parts = [ids[i : i + 38] for i in range(0, len(ids), 38)]
    expect = sum(len(p) * by_hand(model, p, tok) for p in parts) / len(ids)
    np.testing.assert_allclose(vec[0], expect, atol=1e-5)
    assert tokens[0] == len(ids) and windows[0] == len(parts)
    # a shorter window length cuts more windows and changes the vector
    vec2, _, windows2 = embed_token_ids(model, tok, [ids], EmbedConfig(max_tokens=10))
    assert windows2[0] == -(-len(ids) // 10) and not np.allclose(vec2, vec)


def test_layers_and_dtype(tiny):
    _, _, model, tok = tiny
    seqs = ["ACGTTGCAAGGCTGAGG", "GGGCCCAATT"]
    ids = tokenize(tok, seqs)
    every = groverlm.embed(model, seqs, tokenizer=tok, layer="all")
    assert every.shape == (2, 3, 32)
    np.testing.assert_allclose(every[:, -1], groverlm.embed(model, seqs, tokenizer=tok), atol=1e-6)
    first = groverlm.embed(model, seqs, tokenizer=tok, layer=0)
    np.testing.assert_allclose(first[0], by_hand(model, ids[0], tok, layer=0), atol=1e-5)
    np.testing.assert_allclose(every[:, 0], first, atol=1e-6)
    with pytest.raises(groverlm.GroverError, match="layer 3 outside"):
        groverlm.embed(model, seqs, tokenizer=tok, layer=3)


def test_bfloat16_is_close_to_float32(tiny):
    _, model_dir, _, _ = tiny
    seqs = [random_dna(120, 5), random_dna(60, 6)]
    f32 = groverlm.embed(model_dir, seqs)
    bf16 = groverlm.embed(model_dir, seqs, dtype="bfloat16")
    assert bf16.dtype == np.float32
    assert np.abs(bf16 - f32).max() < 0.05 * np.abs(f32).max()
    assert not np.array_equal(bf16, f32)


def test_sequence_without_dna_tokens_is_nan(tiny):
    _, _, model, tok = tiny
    v = groverlm.embed(model, ["NNNNNN", "ACGT"], tokenizer=tok)
    assert np.isnan(v[0]).all() and np.isfinite(v[1]).all()


def read_index(path):
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:]]


def test_cli_fasta_bed_csv(tiny, tmp_path):
    genome, model_dir, model, tok = tiny
    g = groverlm.Genome.read(genome)
    fa = write_fasta(tmp_path / "in.fa", {"s1": g.sequence("chrA", 100, 300),
                                          "s2": g.sequence("chrB", 5, 80)})
    bed = tmp_path / "in.bed"
    bed.write_text("chrA\t100\t300\n# comment\nchrB\t5\t80\tmine\t0\t-\n")
    csv = tmp_path / "in.csv"
    csv.write_text(f"sequence,label,chrom,start,end,strand\n{g.sequence('chrA', 100, 300)},1,"
                   f"chrA,100,300,+\n{g.sequence('chrB', 5, 80, '-')},0,chrB,5,80,-\n")
    out = {}
    for name, path, extra in (("fa", fa, []), ("bed", bed, ["--genome", str(genome)]),
                              ("csv", csv, [])):
        dest = tmp_path / f"{name}.npy"
        assert main(["embed", "--model", str(model_dir), "--input", str(path), "--out", str(dest),
                     "--quiet", "--batch-size", "1", *extra]) == 0
        out[name] = np.load(dest)
        assert out[name].shape == (2, 32)
        rows = read_index(tmp_path / f"{name}.index.tsv")
        assert [int(r["length"]) for r in rows] == [200, 75]
        man = json.loads((tmp_path / f"{name}.manifest.json").read_text())
        assert man["stage"] == "embed" and man["shape"] == [2, 32]
        assert not (tmp_path / f"{name}.partial.npy").exists()
        if name == "bed":
            assert [r["name"] for r in rows] == ["chrA:100-300", "mine"]
            assert rows[1]["strand"] == "-" and rows[1]["start"] == "5"
    np.testing.assert_allclose(out["fa"][0], out["bed"][0], atol=1e-6)
    np.testing.assert_allclose(out["bed"], out["csv"], atol=1e-6)  # '-' strand: same sequence
    assert not np.allclose(out["fa"][1], out["bed"][1])  # s2 is the forward strand
    direct = groverlm.embed(model, [g.sequence("chrA", 100, 300)], tokenizer=tok)
    np.testing.assert_allclose(out["fa"][0], direct[0], atol=1e-6)


def test_cli_errors(tiny, tmp_path, capsys, monkeypatch):
    genome, model_dir, _, _ = tiny
    bed = tmp_path / "x.bed"
    bed.write_text("chrA\t10\t20\nchrA\t50\t10\n")
    args = ["embed", "--model", str(model_dir), "--quiet"]
    cases = [
        (["--input", str(bed), "--out", str(tmp_path / "a")], "needs --genome"),
        (["--input", str(bed), "--genome", str(genome), "--out", str(tmp_path / "b")],
         "x.bed:2: interval 50-10"),
    ]
    nocol = tmp_path / "n.csv"
    nocol.write_text("seq,label\nACGT,1\n")
    cases.append((["--input", str(nocol), "--out", str(tmp_path / "c")], "n.csv:1: CSV needs"))
    badletter = tmp_path / "b.csv"
    badletter.write_text("sequence\nACGT\nACXT\n")
    cases.append((["--input", str(badletter), "--out", str(tmp_path / "d")], "b.csv:3: unknown"))
    fa = write_fasta(tmp_path / "ok.fa", {"a": "ACGTACGT"})
    cases.append((["--input", str(fa), "--out", str(tmp_path / "e"), "--model", str(tmp_path)],
                  "not a model folder"))
    for extra, message in cases:
        assert main(args + extra) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert main(args + ["--input", str(fa), "--out", str(tmp_path / "ok.npy")]) == 0
    assert main(args + ["--input", str(fa), "--out", str(tmp_path / "ok.npy")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--input", str(fa), "--out", str(tmp_path / "ok.npy"), "--overwrite"]) == 0
    # a replacing run stopped before its end leaves no manifest saying the new vectors are done
    three = write_fasta(tmp_path / "three.fa", {"a": "ACGTACGT", "b": "AAAACCCC", "c": "GGGG"})
    real = os.replace

    def stopped(src, dst):
        if str(dst).endswith("ok.npy"):
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", stopped)
    assert main(args + ["--input", str(three), "--out", str(tmp_path / "ok.npy"),
                        "--overwrite"]) == 130  # interrupted
    monkeypatch.setattr(os, "replace", real)
    assert not (tmp_path / "ok.manifest.json").exists()


def counting_chunks(calls: list[int], crash_at: int = 0):
    """A stand-in for embed_token_ids that records each chunk's size in `calls` and, at the
    `crash_at`-th call, stops as Ctrl-C does (0: never)."""
    real = EMBED_TOKEN_IDS  # not the module's now: a test may have replaced it with one of these

    def embed_token_ids(*args, **k):
        calls.append(len(args[2]))
        if len(calls) == crash_at:
            raise KeyboardInterrupt
        return real(*args, **k)
    return embed_token_ids


def test_resume_after_a_crash(tiny, tmp_path, monkeypatch):
    module = EMBED_MODULE
    _, model_dir, _, _ = tiny
    fa = write_fasta(tmp_path / "in.fa", {f"s{i}": random_dna(60 + 7 * i, i) for i in range(7)})
    cfg = EmbedConfig(chunk=3)
    ref = write_embeddings(model_dir, fa, tmp_path / "ref.npy", cfg, progress=False)
    calls: list[int] = []
    monkeypatch.setattr(module, "embed_token_ids", counting_chunks(calls, crash_at=2))
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(model_dir, fa, tmp_path / "run.npy", cfg, progress=False)
    assert (tmp_path / "run.partial.npy").exists() and not (tmp_path / "run.npy").exists()
    calls.clear()
    monkeypatch.setattr(module, "embed_token_ids", counting_chunks(calls))
    # resumed with another batch size (a volatile setting: it changes no vector)
    write_embeddings(model_dir, fa, tmp_path / "run.npy", replace(cfg, batch_size=2),
                     progress=False)
    assert calls == [3, 1]  # the first chunk was not computed again
    np.testing.assert_allclose(np.load(tmp_path / "run.npy"), np.load(tmp_path / "ref.npy"),
                               atol=1e-5)
    assert (tmp_path / "run.index.tsv").read_text() == (tmp_path / "ref.index.tsv").read_text()
    assert ref["shape"] == [7, 32]



def test_a_partial_embedding_moved_with_its_inputs_resumes(tiny, tmp_path, monkeypatch):
    """A stopped embedding moved elsewhere with its model and input (a run folder copied from a
    cluster) resumes after its finished chunks; another input at the new path starts again. Its
    record compared the model, input and genome paths, so a moved one was computed again."""
    module = EMBED_MODULE
    _, model_dir, _, _ = tiny
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(model_dir, a / "model")
    fa = write_fasta(a / "in.fa", {f"s{i}": random_dna(60 + 7 * i, i) for i in range(7)})
    cfg = EmbedConfig(chunk=3)
    ref = write_embeddings(a / "model", fa, tmp_path / "ref.npy", cfg, progress=False)
    calls: list[int] = []
    monkeypatch.setattr(module, "embed_token_ids", counting_chunks(calls, crash_at=2))
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(a / "model", fa, a / "run.npy", cfg, progress=False)
    a.rename(b)
    calls.clear()
    monkeypatch.setattr(module, "embed_token_ids", counting_chunks(calls))
    write_embeddings(b / "model", b / "in.fa", b / "run.npy", cfg, progress=False)
    assert calls == [3, 1]  # the first chunk was not computed again
    np.testing.assert_allclose(np.load(b / "run.npy"), np.load(tmp_path / "ref.npy"), atol=1e-5)
    assert ref["shape"] == [7, 32]
    # another input at a path the partial record names: computed from its start
    calls.clear()
    monkeypatch.setattr(module, "embed_token_ids", counting_chunks(calls, crash_at=2))
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(b / "model", b / "in.fa", b / "again.npy", cfg, progress=False)
    write_fasta(b / "in.fa", {f"s{i}": random_dna(60 + 7 * i, i + 1) for i in range(7)})
    calls.clear()
    monkeypatch.setattr(module, "embed_token_ids", counting_chunks(calls))
    write_embeddings(b / "model", b / "in.fa", b / "again.npy", cfg, progress=False)
    assert calls == [3, 3, 1]


def test_a_second_embed_into_an_output_being_written_stops_in_one_line(tiny, tmp_path, capsys):
    """It truncated the first's OUT.partial.npy under its memory map: the first died of a bus
    error (or, same settings, both appended rows). OUT and OUT.npy are one output."""
    _, model_dir, _, _ = tiny
    fa = write_fasta(tmp_path / "in.fa", {"s": random_dna(60, 1)})
    out = tmp_path / "new" / "e.npy"
    args = ["embed", "--model", str(model_dir), "--input", str(fa), "--quiet", "--out"]
    with held_elsewhere(out.with_name(".e.npy.lock"), out) as pid:
        for name in (out, out.with_suffix("")):
            assert main([*args, str(name)]) == 2
            err = capsys.readouterr().err.strip()
            assert f"{out}: in use by another groverlm process (pid {pid})" in err
            assert "\n" not in err and not list(out.parent.glob("e.*"))
    assert main([*args, str(out)]) == 0 and out.is_file()
    assert not out.with_name(".e.npy.lock").exists()

def test_a_dna_string_that_names_a_file_is_an_error(tmp_path, monkeypatch):
    """`data` (D, A, T, A: IUPAC letters) naming a FASTA file was read as the 4-nt sequence DATA:
    embed and score gave one row for a file of three. Path(...) reads the file, [...] the sequence."""
    monkeypatch.chdir(tmp_path)
    write_fasta(tmp_path / "data", {"a": "ACGTAC", "b": "GGTTAA", "c": "TTTACG"})
    both = r"'data' is both a DNA sequence and a file here: pass Path\('data'\) to read the file"
    with pytest.raises(groverlm.GroverError, match=both):
        named_sequences("data")
    assert named_sequences(tmp_path / "data")[0] == ["a", "b", "c"]
    assert named_sequences(["data"]) == (["seq0"], ["data"])
    assert named_sequences("dna") == (["seq0"], ["dna"])  # no such file: a sequence
    assert named_sequences("A" * 100_000)[1] == ["A" * 100_000]  # too long for a file name


def test_import_groverlm_stays_light():
    code = "import sys, groverlm; print(callable(groverlm.embed), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_cli_chunk_sets_the_resumable_chunk(tiny, tmp_path, monkeypatch):
    """embed resumes chunk by chunk as score and ism do, but only they took --chunk."""
    module = sys.modules["groverlm.embed"]
    _, model_dir, _, _ = tiny
    fa = write_fasta(tmp_path / "in.fa", {f"s{i}": random_dna(50, i) for i in range(5)})
    calls = []
    real = module.embed_token_ids
    monkeypatch.setattr(module, "embed_token_ids", lambda *a, **k: (calls.append(len(a[2])),
                                                                     real(*a, **k))[1])
    assert main(["embed", "--model", str(model_dir), "--input", str(fa), "--out",
                 str(tmp_path / "e.npy"), "--chunk", "2", "--quiet"]) == 0
    assert calls == [2, 2, 1]


def test_bad_max_tokens_touches_no_file_and_names_with_tabs_keep_their_rows(tiny, tmp_path,
                                                                              capsys):
    genome, model_dir, model, tok = tiny
    csv_in = tmp_path / "in.csv"
    csv_in.write_text('name,sequence\n"a\tb",ACGTAGCTAGGT\n"c\nd",GGGCCCATATTA\ne,ACGTAC\n')
    out = tmp_path / "e.npy"
    assert main(["embed", "--model", str(model_dir), "--input", str(csv_in), "--out", str(out),
                 "--quiet"]) == 0
    import csv

    with open(tmp_path / "e.index.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [r["name"] for r in rows] == ["a\tb", "c\nd", "e"] and len(np.load(out)) == 3
    before = sorted(p.name for p in tmp_path.iterdir())
    for target in (out, tmp_path / "n.npy"):  # --max-tokens beyond the model: checked first
        assert main(["embed", "--model", str(model_dir), "--input", str(csv_in), "--out",
                     str(target), "--max-tokens", "999", "--overwrite", "--quiet"]) == 2
        assert "--max-tokens 999 exceeds" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_bed_input_holds_its_intervals_alone(tmp_path, decoded):
    """A BED input held the whole genome (hg38: 3.1 GB) for its intervals: now the records it
    names are decoded in turn (the others passed over) and only the intervals kept."""
    seqs = {c: random_dna(3000, 80 + i) for i, c in enumerate(["chr2", "chr1", "chr3", "chr0"])}
    fa = write_fasta(tmp_path / "g.fa", seqs)
    bed = tmp_path / "in.bed"
    bed.write_text("chr3\t10\t90\tx\t0\t-\nchr1\t2900\t3000\nchr3\t50\t150\n")
    items = read_items(bed, fa)
    assert [i.sequence for i in items] == [reverse_complement(seqs["chr3"][10:90]),
                                           seqs["chr1"][2900:], seqs["chr3"][50:150]]
    assert decoded.names == ["chr1", "chr3"] and decoded.most <= 2
    bed.write_text("chr3\t10\t90\nchr1\t2900\t3001\n")
    with pytest.raises(GroverError, match=r"in.bed:2: interval 2900-3001 is empty or outside chr1"):
        read_items(bed, fa)
