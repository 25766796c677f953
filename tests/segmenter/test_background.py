"""The segmenter trained in a child process beside the tagger (lstm_tagger/background.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint, load_config
from lstm_tagger.segmenter import background
from lstm_tagger.training import loop as training
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.cli import app
from lstm_tagger.segmenter.training import train_segmenter
from lstm_tagger.threads import auto_threads, available_cores

from conftest import assert_one_line_error, same_tensors
from test_segment import CRAFTED, tiny_corpus_config

runner = CliRunner()
pytestmark = pytest.mark.skipif(available_cores() < 2, reason="the segmenter trains beside the tagger only with 2 cores or more")


@pytest.fixture
def beside(monkeypatch) -> list:
    """Every corpus counts as large enough for the segmenter to train beside the tagger; the
    list gets the arguments of each child process started."""
    monkeypatch.setattr(background, "MIN_TOKENS", 0)
    started, original = [], background.SegmenterJob

    def job(*args, **kwargs):
        started.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(background, "SegmenterJob", job)
    return started


def test_the_child_trains_the_same_segmenter_and_every_checkpoint_carries_it(tmp_path, beside):
    config = tiny_corpus_config(tmp_path)  # both overfit in 40 epochs
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert len(beside) == 1 and result.output.count("tokenizer epoch") == 40 and "tokenizer epoch  40" in result.output
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the child trains on one thread: the same arithmetic
    try:
        alone = train_segmenter(load_config(config), lambda line: None).tensors()
    finally:
        torch.set_num_threads(threads)
    for name in (BEST, LAST):
        assert same_tensors(load_checkpoint(tmp_path / "run" / name).segmenter.tensors(), alone)
    predicted = runner.invoke(app, ["predict", "--model", str(tmp_path / "run"), "Don't stop."])
    assert predicted.exit_code == 0 and predicted.stdout.split() == ["Do/AUX", "n't/PART", "stop/VERB", "./PUNCT"]


def test_a_tagger_done_first_waits_and_its_last_checkpoint_still_resumes(tmp_path, beside):
    config = tiny_corpus_config(tmp_path, epochs=40)
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", str(config), "--output", str(out), "--set", "train.epochs=1"])
    assert first.exit_code == 0, first.output
    assert len(beside) == 1 and first.output.count("tokenizer epoch") == 40
    before = load_checkpoint(out / LAST)
    assert before.segmenter is not None and load_checkpoint(out / BEST).segmenter is not None
    resumed = runner.invoke(app, ["train", str(config), "--output", str(out), "--set", "train.epochs=2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "tokenizer: kept from the run being resumed" in resumed.output and "epoch   2" in resumed.output
    assert same_tensors(load_checkpoint(out / LAST).segmenter.tensors(), before.segmenter.tensors())


def test_an_error_only_the_segmenter_sees_is_one_line_before_any_checkpoint(tmp_path, beside):
    path = tmp_path / "r.conllu"
    path.write_text(CRAFTED.replace("1-2\tDon't\t", "2-1\tDon't\t"), encoding="utf-8")
    config = tiny_corpus_config(tmp_path)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), "--output", str(out), "--set", f"data.train={path}"])
    assert_one_line_error(result, f"{path}:4: bad multiword token range '2-1'")
    assert len(beside) == 1
    assert not (out / BEST).exists() and not (out / LAST).exists()


def test_a_corpus_without_raw_text_trains_no_segmenter_beside(tmp_path, beside):
    config = tiny_corpus_config(tmp_path)
    text = (tmp_path / "tiny.conllu").read_text(encoding="utf-8").replace("# text = Stop it!\n", "")
    (tmp_path / "tiny.conllu").write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    assert len(beside) == 1 and "tokenizer" not in result.output and load_checkpoint(tmp_path / "run" / BEST).segmenter is None


def test_auto_threads_beside_the_segmenter_are_all_cores_but_one_and_the_chooser_starts_after(tmp_path, beside, monkeypatch):
    jobs, steps, choosers, released = [], [], [], []
    make_job, train_step, chooser = background.SegmenterJob, training._train_step, training.thread_chooser

    def held_job(*args, **kwargs):  # the tagger sees the child running until its third step, however fast the child is
        job = make_job(*args, **kwargs)
        job.done = lambda: bool(released) and type(job).done(job)
        jobs.append(job)
        return job

    def step(*args):
        steps.append((jobs[0].done(), torch.get_num_threads()))
        if len(steps) == 3:
            jobs[0].process.wait()
            released.append(True)
        return train_step(*args)

    monkeypatch.setattr(background, "SegmenterJob", held_job)
    monkeypatch.setattr(training, "_train_step", step)
    monkeypatch.setattr(training, "thread_chooser", lambda *a: choosers.append(jobs[0].done()) or chooser(*a))
    result = runner.invoke(app, ["train", str(tiny_corpus_config(tmp_path)), "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    expected = max(1, auto_threads() - 1)
    assert f"threads: {expected} while the tokenizer trains beside the tagger, then auto" in result.output
    assert [threads for done, threads in steps[:3]] == [expected] * 3 and not any(done for done, _ in steps[:3])
    assert len(steps) > 3 and all(done for done, _ in steps[3:])
    assert choosers == [True]  # made once, when the tagger goes on after the child, and not before


@pytest.mark.parametrize("words, beside", [(4_999, False), (5_000, True)])
def test_a_corpus_of_5000_words_trains_its_segmenter_beside_the_tagger(tmp_path, words, beside):
    from lstm_tagger.corpus.reader import Sentence
    from lstm_tagger.training.distributed import World

    assert background.MIN_TOKENS == 5_000  # VTB's 20,215 words and the 400-sentence Chinese split: beside
    config = load_config(tiny_corpus_config(tmp_path))
    splits = type("Splits", (), {"train": [Sentence(("w",) * (words - 1), {}), Sentence(("w",), {})]})()
    assert training._segmenter_beside(config, None, World.from_env(), torch.device("cpu"), splits) is beside
