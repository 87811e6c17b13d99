"""`bpe train` + `bpe export` through the CLI: the tokenizer replays the trainer exactly."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from groverlm.bpe.merges import SPECIAL_TOKENS, Merges
from groverlm.bpe.tokens import TokenizedGenome
from groverlm.cli import main
from groverlm.fasta import Genome

from ..conftest import random_dna, write_fasta


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bpe")
    # repeats make long tokens; an N run and two records exercise contig edges
    rep = "AGGCTGAGGCAGGAGAATCG" * 40
    genome = write_fasta(tmp / "g.fa", {
        "chrA": random_dna(30000, 1) + rep + "NNNNN" + random_dna(20000, 2).lower(),
        "chrB": random_dna(25000, 3) + "ACGTRYACGT" + rep,
    })
    out = tmp / "bpe"
    assert main(["bpe", "train", str(genome), "--merges", "300", "--out", str(out),
                 "--save-tokens-at", "150", "--quiet"]) == 0
    return genome, out


def test_merges_table_round_trip(trained):
    _, out = trained
    m = Merges.read(out / "merges.tsv")
    lines = (out / "merges.tsv").read_text().splitlines()
    assert lines[0] == "cycle\tleft\tright\ttoken\tcount"
    assert len(lines) == 301 and len(m) == 300
    first = lines[1].split("\t")
    assert first[0] == "1" and first[3] == first[1] + first[2]
    assert all(int(line.split("\t")[4]) >= 1 for line in lines[1:])


@pytest.mark.parametrize("cycles", [0, 1, 150, 300])
def test_export_loads_without_custom_code(trained, tmp_path, cycles):
    _, out = trained
    vocab = tmp_path / "vocab"
    assert main(["bpe", "export", str(out), "--cycles", str(cycles), "--out", str(vocab)]) == 0
    hf = AutoTokenizer.from_pretrained(vocab)
    raw = Tokenizer.from_file(str(vocab / "tokenizer.json"))
    assert hf.convert_ids_to_tokens(list(range(5))) == SPECIAL_TOKENS
    assert len(hf) == 5 + 4 + cycles  # no string was reused on this genome
    ids = hf("ACGTTGCA")["input_ids"]
    assert ids[0] == hf.cls_token_id and ids[-1] == hf.sep_token_id
    assert raw.encode("ACGTTGCA").ids == ids
    assert hf.decode(ids, skip_special_tokens=True).replace(" ", "") == "ACGTTGCA"
    # soft-masked DNA, as users paste it from a UCSC FASTA, encodes as its upper case, same offsets
    mixed = "acgtTGCAaagg" * 3
    lo = hf(mixed, return_offsets_mapping=True)
    up = hf(mixed.upper(), return_offsets_mapping=True)
    assert lo["input_ids"] == up["input_ids"] and hf.unk_token_id not in lo["input_ids"]
    assert lo["offset_mapping"] == up["offset_mapping"]
    stats = json.loads((vocab / "vocab_stats.json").read_text())
    assert stats["cycles"] == cycles
    assert stats["summary"]["tokens"] == len(stats["tokens"])


def test_tokenizer_replays_training_segmentation(trained, tmp_path):
    genome, out = trained
    vocab = tmp_path / "vocab"
    main(["bpe", "export", str(out), "--cycles", "150", "--out", str(vocab)])
    tok = Tokenizer.from_file(str(vocab / "tokenizer.json"))
    saved = TokenizedGenome.load(out / "tokens")
    g = Genome.read(genome)
    seen = 0
    for i, (rec, start, end, _, _) in enumerate(saved.contigs):
        ids, starts, _ = saved.contig_tokens(i)
        enc = tok.encode(g.sequence(rec, start, end), add_special_tokens=False)
        assert enc.ids == ids.tolist()
        assert [o[0] + start for o in enc.offsets] == starts.tolist()
        seen += 1
    assert seen == 4  # chrA split by the N run, chrB by R and Y
    # vocab_stats frequencies are the token counts of the saved segmentation
    stats = json.loads((vocab / "vocab_stats.json").read_text())
    counts = np.bincount(saved.ids.astype(np.int64))
    for row in stats["tokens"]:
        assert counts[row["id"]] == row["frequency"]
        s = row["token"]
        assert row["gc"] == pytest.approx((s.count("G") + s.count("C")) / len(s))
    assert sum(r["frequency"] for r in stats["tokens"]) == saved.ids.size


def test_covering_finds_tokens_over_an_interval(trained):
    genome, out = trained
    saved = TokenizedGenome.load(out / "tokens")
    ids, starts = saved.covering("chrA", 1000, 1100)
    assert starts[0] <= 1000 < starts[1] and starts[-1] < 1100
    strings = Merges.read(out / "merges.tsv").upto(150).strings
    text = "".join(strings[i - 5] for i in ids)
    seq = Genome.read(genome).sequence("chrA", int(starts[0]), int(starts[0]) + len(text))
    assert text == seq
    assert saved.covering("chrA", 30000 + 800, 30000 + 805)[0].size == 0  # inside the N run
    assert saved.covering("chrA", 30000 + 795, 30000 + 810)[0].size > 0


def test_refuses_to_overwrite(trained, capsys):
    genome, out = trained
    assert main(["bpe", "train", str(genome), "--merges", "5", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and len(err.splitlines()) == 1


def test_export_more_cycles_than_trained(trained, tmp_path, capsys):
    _, out = trained
    for cycles in ("301", "-1"):
        assert main(["bpe", "export", str(out), "--cycles", cycles, "--out", str(tmp_path / "v")]) == 2
        assert f"cycles must be between 0 and 300 (the merges the table holds), got {cycles}" in (
            capsys.readouterr().err)


def test_interrupted_training_resumes_to_the_same_table(tmp_path, monkeypatch):
    from groverlm.bpe import train as bpe_train
    from groverlm.errors import GroverError

    genome = write_fasta(tmp_path / "g.fa", {"a": random_dna(20000, 5), "b": random_dna(9000, 6)})
    bpe_train.write_training(genome, tmp_path / "whole", 200, save_tokens_at=150)
    step = bpe_train.Trainer.step

    def crash_at_130(self):
        if self.cycle == 130:
            raise KeyboardInterrupt  # stands for a kill between two checkpoints
        return step(self)

    monkeypatch.setattr(bpe_train.Trainer, "step", crash_at_130)
    with pytest.raises(KeyboardInterrupt):
        bpe_train.write_training(genome, tmp_path / "cut", 200, save_tokens_at=150,
                                 checkpoint_cycles=50)
    monkeypatch.setattr(bpe_train.Trainer, "step", step)
    assert (tmp_path / "cut" / "checkpoint" / "state.json").exists()
    with pytest.raises(GroverError, match="--resume"):
        bpe_train.write_training(genome, tmp_path / "cut", 200, save_tokens_at=150)
    with pytest.raises(GroverError, match=r"config\.merges: 200 -> 300"):  # other settings
        bpe_train.write_training(genome, tmp_path / "cut", 300, save_tokens_at=150, resume=True)
    (tmp_path / "cut" / ".checkpoint.tmp999999").mkdir()  # a save a kill cut short
    # the runner's stage resumes it (it failed "pass --resume", which `groverlm run` lacks)
    from groverlm.bpe import run as bpe_stage

    ctx = SimpleNamespace(genome=genome, out=tmp_path, progress=False,
                          relative=lambda p: str(p.relative_to(tmp_path)))
    (tmp_path / "train").symlink_to(tmp_path / "cut", target_is_directory=True)
    bpe_stage(SimpleNamespace(merges=200, chunk=None, cycles=150), ctx)
    for name in ["merges.tsv", "progress.tsv", "tokens/ids.npy", "tokens/starts.npy"]:
        assert (tmp_path / "cut" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert not (tmp_path / "cut" / "checkpoint").exists()
    assert not list((tmp_path / "cut").glob(".checkpoint.tmp*"))
    # a fresh start over it (--overwrite) without a segmentation leaves none of the old one
    bpe_train.write_training(genome, tmp_path / "cut", 200, overwrite=True)
    assert not (tmp_path / "cut" / "tokens").exists()
    # such a fresh start killed before its end is unfinished and resumable, not the finished old
    # run beside the new run's merges (which `bpe export` read as finished)
    monkeypatch.setattr(bpe_train.Trainer, "step", crash_at_130)
    with pytest.raises(KeyboardInterrupt):
        bpe_train.write_training(genome, tmp_path / "cut", 300, save_tokens_at=150,
                                 checkpoint_cycles=50, overwrite=True)
    monkeypatch.setattr(bpe_train.Trainer, "step", step)
    assert not (tmp_path / "cut" / "manifest.json").exists()
    assert not (tmp_path / "cut" / "progress.tsv").exists()
    bpe_train.write_training(genome, tmp_path / "cut", 300, save_tokens_at=150, resume=True)
    assert json.loads((tmp_path / "cut" / "manifest.json").read_text())["cycles"] == 300


def test_interrupted_training_moved_with_its_genome_resumes(tmp_path, monkeypatch, caplog):
    """`bpe train --resume` after the genome and the interrupted folder moved together (a run
    folder's genome cut and bpe/train, `mv runs/a runs/b`): the checkpoint recorded the genome's
    path beside its hash and was refused ('cannot resume ... inputs'). The genome is compared by
    its hash: it resumes at its checkpoint to the uninterrupted table; another genome is refused."""
    from groverlm.bpe import train as bpe_train
    from groverlm.errors import GroverError

    work = tmp_path / "work"
    work.mkdir()
    genome = write_fasta(work / "g.fa", {"a": random_dna(20000, 5), "b": random_dna(9000, 6)})
    bpe_train.write_training(genome, tmp_path / "whole", 200)
    step = bpe_train.Trainer.step

    def crash_at_130(self):
        if self.cycle == 130:
            raise KeyboardInterrupt
        return step(self)

    monkeypatch.setattr(bpe_train.Trainer, "step", crash_at_130)
    with pytest.raises(KeyboardInterrupt):
        bpe_train.write_training(genome, work / "cut", 200, checkpoint_cycles=50)
    monkeypatch.setattr(bpe_train.Trainer, "step", step)
    shutil.copytree(work, tmp_path / "other")
    shutil.move(work, tmp_path / "moved")
    cut = tmp_path / "moved" / "cut"
    caplog.set_level("INFO", logger="groverlm.bpe.train")
    bpe_train.write_training(tmp_path / "moved" / "g.fa", cut, 200, resume=True)
    assert "resuming at cycle 100" in caplog.text
    for name in ["merges.tsv", "progress.tsv"]:
        assert (cut / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    other = write_fasta(tmp_path / "other" / "g.fa", {"a": random_dna(20000, 7)})
    with pytest.raises(GroverError, match="cannot resume.*sha256"):
        bpe_train.write_training(other, tmp_path / "other" / "cut", 200, resume=True)


def test_an_all_n_genome_is_named_and_an_unreached_save_point_is_said(tmp_path, caplog):
    from groverlm.bpe import train as bpe_train
    from groverlm.errors import GroverError

    alln = write_fasta(tmp_path / "n.fa", {"a": "N" * 50})
    with pytest.raises(GroverError, match=f"^{alln}: no A/C/G/T sequence to train on"):
        bpe_train.write_training(alln, tmp_path / "o", 3)
    short = write_fasta(tmp_path / "s.fa", {"a": "ACGTACGTAC"})
    bpe_train.write_training(short, tmp_path / "s", 100, save_tokens_at=50)
    assert "--save-tokens-at 50 is beyond the" in caplog.text
    assert not (tmp_path / "s" / "tokens").exists()


def test_an_interrupted_export_over_a_finished_one_is_unfinished(trained, tmp_path, monkeypatch):
    """The old manifest stayed beside the new tokenizer: a folder 'finished' at 50 cycles holding
    150 cycles' merges, which corpus then used."""
    from groverlm.bpe import export as bpe_export

    _, out = trained
    vocab = tmp_path / "v"
    bpe_export.export_vocab(out, 50, vocab)

    def killed(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(bpe_export, "write_json", killed)  # the statistics, before the manifest
    with pytest.raises(KeyboardInterrupt):
        bpe_export.export_vocab(out, 150, vocab, overwrite=True)
    assert not (vocab / "manifest.json").exists()
