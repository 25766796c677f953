"""Overfit the classic tutorial sentences, save, reload, and get exactly the same tags."""

import re

import pytest
import torch

from lstm_tagger import load_checkpoint, load_config, tag, train
from lstm_tagger.training import loop as training
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.errors import CheckpointError, UserError

from conftest import CLASSIC, tiny_config


def test_overfit_save_reload_same_tags(classic_config, tmp_path):
    result = train(load_config(classic_config), tmp_path / "run", progress=False)
    assert result.best_dev_accuracy == 1.0
    checkpoint = load_checkpoint(tmp_path / "run" / BEST)
    sentences = [words for words, _ in CLASSIC]
    tagged = tag(checkpoint, sentences)
    assert [t.tags for t in tagged] == [tags for _, tags in CLASSIC]
    again = tag(load_checkpoint(tmp_path / "run" / BEST), sentences)
    assert [t.tags for t in again] == [t.tags for t in tagged]
    # batched and one-by-one predictions agree
    one_by_one = [tag(checkpoint, [s], batch_size=1)[0] for s in sentences]
    assert [t.tags for t in one_by_one] == [t.tags for t in tagged]
    # the run directory holds everything the README promises
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", BEST, LAST, "metrics.jsonl", "report.md", "report.json"} <= names


def test_same_seed_same_weights(tmp_path):
    config = load_config(tiny_config(tmp_path, train={"epochs": 3, "seed": 11, "word_dropout": 0.5}, model={"dropout": 0.2}))
    train(config, tmp_path / "a", progress=False)
    train(config, tmp_path / "b", progress=False)
    a = load_checkpoint(tmp_path / "a" / LAST).model.state_dict()
    b = load_checkpoint(tmp_path / "b" / LAST).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_words_and_empty_sentences(classic_config, tmp_path):
    train(load_config(classic_config), tmp_path / "run", progress=False)
    checkpoint = load_checkpoint(tmp_path / "run" / BEST)
    tagged = tag(checkpoint, [["Zyzzyva", "qwerty"], [], ["The", "dog"]])
    assert len(tagged[0].tags) == 2 and tagged[1].tags == [] and len(tagged[2].tags) == 2


def test_ctrl_c_keeps_last_finished_epoch(classic_config, tmp_path, monkeypatch):
    real = training.evaluate
    calls = {"n": 0}

    def interrupt_on_second_epoch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "evaluate", interrupt_on_second_epoch)
    result = train(load_config(classic_config), tmp_path / "run", progress=False)
    assert result.interrupted and result.epochs_run == 1
    assert load_checkpoint(tmp_path / "run" / LAST).metrics["epoch"] == 1
    assert (tmp_path / "run" / "report.md").is_file()


def test_hand_lstm_model_served_by_the_fast_kernel(tmp_path):
    config = load_config(tiny_config(tmp_path, model={"cell": "hand_lstm"}, train={"epochs": 5}))
    train(config, tmp_path / "run", progress=False)
    hand = load_checkpoint(tmp_path / "run" / BEST)
    fast = load_checkpoint(tmp_path / "run" / BEST, cell="lstm")
    assert (hand.config.model.cell, fast.config.model.cell) == ("hand_lstm", "lstm")
    sentences = [words for words, _ in CLASSIC]
    for a, b in zip(tag(hand, sentences, scores=True), tag(fast, sentences, scores=True)):
        assert a.tags == b.tags and torch.allclose(a.probs["upos"], b.probs["upos"], atol=1e-5)
    with pytest.raises(CheckpointError, match="the model's cell is hand_lstm; only a cell of the same family can serve it, not gru"):
        load_checkpoint(tmp_path / "run" / BEST, cell="gru")


def test_gru_overfits_too(tmp_path):
    config = load_config(tiny_config(tmp_path, model={"cell": "hand_gru", "bidirectional": False}))
    assert train(config, tmp_path / "run", progress=False).best_dev_accuracy == 1.0


def test_train_from_python_prints_nothing_and_names_python_arguments(tmp_path, capfd):
    config = load_config(tiny_config(tmp_path, train={"epochs": 2}))
    result = train(config, tmp_path / "run")
    assert capfd.readouterr() == ("", "")  # no console given: nothing on stdout or stderr
    assert result.epochs_run == 2 and "epoch   2" in (tmp_path / "run" / "train.log").read_text()
    with pytest.raises(UserError, match=re.escape("output directory is not empty (use force=True to train into it anyway)")):
        train(config, tmp_path / "run")
    with pytest.raises(UserError, match=re.escape("(train without resume=True)")):
        train(config, tmp_path / "fresh", resume=True)
