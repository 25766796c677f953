"""The training levers of issue 13: label smoothing, AdamW beside SGD, and a moving average of the weights.

Each is off by default and then trains exactly as before; each resumes exactly; bad values are one line.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from lstm_tagger import evaluate_model, load_checkpoint, load_config, tag, train
from lstm_tagger.training import loop as training
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.cli import app
from lstm_tagger.corpus.reader import TAG_PAD, read_corpus
from lstm_tagger.model.tagger import Head, Tagger
from lstm_tagger.model.optim import WeightAverage

from conftest import CLASSIC, ROOT, assert_one_line_error, tiny_config

runner = CliRunner()
QUIET = Console(quiet=True)
DEMO = ROOT / "configs" / "demo.yaml"
SMALL = ["model.embedding_dim=16", "model.hidden_dim=16", "train.patience=0", "train.threads=1", "tokenizer.mode=off"]
"""The demo corpus (dropout 0.2 and word dropout 0.25: both random streams matter) with a small model, one thread."""
ADAMW = ["train.optimizer=adamw", "train.momentum=0", "train.lr=0.005", "train.lr_decay=0.5"]


def without_timings(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if "second" not in k} for r in records]


def assert_same_run(a: Path, b: Path) -> None:
    """Same metrics, and the same model and training state (optimiser, average) in both checkpoints, bit for bit."""
    assert without_timings(a) == without_timings(b)
    for name in (LAST, BEST):
        sa, sb = load_file(a / name), load_file(b / name)
        assert sa.keys() == sb.keys(), name
        assert all(torch.equal(sa[k], sb[k]) for k in sa), (name, [k for k in sa if not torch.equal(sa[k], sb[k])])


def straight_and_resumed(tmp_path: Path, settings: list[str], epochs: int = 3) -> tuple[Path, Path]:
    """``settings`` trained for ``epochs`` epochs straight, and for ``epochs - 1`` then resumed for the last one."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(load_config(DEMO, [*settings, f"train.epochs={epochs}"]), straight, progress=False, console=QUIET)
    train(load_config(DEMO, [*settings, f"train.epochs={epochs - 1}"]), resumed, progress=False, console=QUIET)
    result = train(load_config(DEMO, [*settings, f"train.epochs={epochs}"]), resumed, resume=True, progress=False, console=QUIET)
    assert result.epochs_run == epochs and "resuming" in (resumed / "train.log").read_text()
    return straight, resumed


# 1. off by default: the same run as before ---------------------------------------------------------------


def test_levers_off_train_exactly_as_the_default(tmp_path):
    settings = [*SMALL, "train.epochs=2"]
    train(load_config(DEMO, settings), tmp_path / "default", progress=False, console=QUIET)
    off = ["train.optimizer=sgd", "train.label_smoothing=0.0", "train.ema_decay=0.0"]
    train(load_config(DEMO, [*settings, *off]), tmp_path / "off", progress=False, console=QUIET)
    assert_same_run(tmp_path / "default", tmp_path / "off")
    tensors = load_file(tmp_path / "off" / LAST)
    assert any(k.startswith("train_state.momentum.") for k in tensors)  # SGD's buffers, named as before
    assert not any(k.startswith(("train_state.adamw", "train_state.raw.", "train_state.ema")) for k in tensors)


def test_unsmoothed_loss_is_log_softmax_and_nll_loss():
    torch.manual_seed(0)
    scores, tags = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5))
    tags[1, 3:] = TAG_PAD
    head = Head(4, 7, crf=False)
    expected = torch.nn.functional.nll_loss(torch.log_softmax(scores, -1).flatten(0, 1), tags.flatten(), ignore_index=TAG_PAD)
    assert torch.equal(head.loss(scores, torch.tensor([5, 3, 5]), tags), expected)


# 2. label smoothing ---------------------------------------------------------------------------------------


def test_label_smoothing_is_the_smoothed_cross_entropy():
    """Token 1: scores (0, 0, ln 2), so p = (1/4, 1/4, 1/2), gold tag 2; token 2: uniform, gold 0; token 3 is padding."""
    scores = torch.tensor([[[0.0, 0.0, math.log(2)], [0.0, 0.0, 0.0], [50.0, -50.0, 0.0]]])
    tags, lengths = torch.tensor([[2, 0, TAG_PAD]]), torch.tensor([2])
    eps = 0.1
    token1 = (1 - eps) * math.log(2) + eps * (math.log(4) + math.log(4) + math.log(2)) / 3
    token2 = math.log(3)  # every -log p is ln 3: smoothing changes nothing
    smoothed = Head(3, 3, crf=False, smoothing=eps).loss(scores, lengths, tags).item()
    plain = Head(3, 3, crf=False).loss(scores, lengths, tags).item()
    assert smoothed == pytest.approx((token1 + token2) / 2, abs=1e-6)
    assert plain == pytest.approx((math.log(2) + math.log(3)) / 2, abs=1e-6)
    assert smoothed > plain  # the confident, right token pays for its confidence


def test_a_crf_head_is_not_smoothed():
    torch.manual_seed(0)
    plain, smoothed = Head(4, 5, crf=True), Head(4, 5, crf=True, smoothing=0.3)
    smoothed.load_state_dict(plain.state_dict())
    scores, tags, lengths = torch.randn(2, 4, 5), torch.tensor([[1, 2, 3, 4], [0, 1, TAG_PAD, TAG_PAD]]), torch.tensor([4, 2])
    assert torch.equal(plain.loss(scores, lengths, tags), smoothed.loss(scores, lengths, tags))


def test_smoothed_training_loss_stays_above_the_smoothed_targets_entropy(tmp_path):
    """With eps, a token's loss is at least the entropy of its target (1 - eps on the gold tag, eps/K on each):
    an overfit run without smoothing goes below it, one with smoothing never does."""
    eps, tags = 0.2, len({t for _, sentence_tags in CLASSIC for t in sentence_tags})
    gold = 1 - eps + eps / tags
    floor = -gold * math.log(gold) - (tags - 1) * (eps / tags) * math.log(eps / tags)
    plain = train(load_config(tiny_config(tmp_path)), tmp_path / "plain", progress=False)
    smoothed = train(load_config(tiny_config(tmp_path), [f"train.label_smoothing={eps}"]), tmp_path / "smoothed", progress=False)
    assert plain.best_dev_accuracy == smoothed.best_dev_accuracy == 1.0
    assert min(r["train_loss"] for r in without_timings(plain.output_dir)) < floor
    assert min(r["train_loss"] for r in without_timings(smoothed.output_dir)) >= floor - 1e-6


# 3. AdamW ----------------------------------------------------------------------------------------------


def test_adamw_overfits_save_reload_same_tags(tmp_path):
    config = load_config(tiny_config(tmp_path), ["train.optimizer=adamw", "train.momentum=0", "train.lr=0.02"])
    result = train(config, tmp_path / "run", progress=False)
    assert result.best_dev_accuracy == 1.0
    sentences = [words for words, _ in CLASSIC]
    assert [t.tags for t in tag(load_checkpoint(tmp_path / "run" / BEST), sentences)] == [tags for _, tags in CLASSIC]
    state = load_checkpoint(tmp_path / "run" / LAST).train_tensors
    parameters = [name for name, _ in load_checkpoint(tmp_path / "run" / LAST).model.named_parameters()]
    for prefix in ("adamw_step.", "adamw_exp_avg.", "adamw_exp_avg_sq."):
        assert {prefix + name for name in parameters} <= state.keys()
    assert not any(k.startswith("momentum.") for k in state)
    steps = config.train.epochs * math.ceil(len(CLASSIC) / config.train.batch_size)  # one per batch
    assert {state[f"adamw_step.{name}"].item() for name in parameters} == {float(steps)}


def test_adamw_resume_equals_a_straight_run(tmp_path):
    straight, resumed = straight_and_resumed(tmp_path, [*SMALL, *ADAMW])
    assert [r["lr"] for r in without_timings(straight)] == [0.005, round(0.005 / 1.5, 6), 0.0025]  # lr_decay applies
    assert_same_run(straight, resumed)


def test_resume_without_the_adamw_state_would_differ(tmp_path, monkeypatch):
    """The check above can fail: a resume that restores the weights but not AdamW's moments trains otherwise."""
    weights_only = lambda weights, tensors, model, *_: model.load_state_dict(weights)  # noqa: E731
    monkeypatch.setattr("lstm_tagger.training.session.restore_training", weights_only)
    straight, resumed = straight_and_resumed(tmp_path, [*SMALL, *ADAMW])
    assert without_timings(straight)[:2] == without_timings(resumed)[:2]
    assert without_timings(straight)[2] != without_timings(resumed)[2]


def damaged_copy(run: Path, target: Path, drop: str) -> Path:
    """``run`` copied to ``target`` with the tensor ``drop`` removed from its last checkpoint."""
    shutil.copytree(run, target)
    with safe_open(run / LAST, "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(run / LAST)
    del tensors[drop]
    save_file(tensors, target / LAST, metadata=metadata)
    return target


def test_resume_with_a_partial_adamw_state_says_so(tmp_path):
    settings = [*SMALL, *ADAMW, "train.epochs=1"]
    train(load_config(DEMO, settings), tmp_path / "run", progress=False, console=QUIET)
    run = damaged_copy(tmp_path / "run", tmp_path / "damaged", "train_state.adamw_exp_avg_sq.embed.embedding.weight")
    args = ["train", str(DEMO), "--output", str(run), "--resume", *(x for s in settings[:-1] for x in ("--set", s))]
    result = runner.invoke(app, [*args, "--set", "train.epochs=2"])
    assert_one_line_error(result, f"{run / LAST}: the training state to resume from is damaged (ValueError); train anew")


# 4. the moving average of the weights -----------------------------------------------------------------------


def test_weight_average_is_the_bias_corrected_moving_average():
    """d = 0.5: after w1 it is w1; after w2, (w1 + 2 w2) / 3; after w3, (w1 + 2 w2 + 4 w3) / 7."""
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, 0.5)
    values = [torch.tensor([[1.0, -2.0]]), torch.tensor([[4.0, 0.5]]), torch.tensor([[-3.0, 8.0]])]
    expected = [values[0], (values[0] + 2 * values[1]) / 3, (values[0] + 2 * values[1] + 4 * values[2]) / 7]
    for value, wanted in zip(values, expected):
        with torch.no_grad():
            model.weight.copy_(value)
        average.update(model)
        assert torch.allclose(average.model.weight, wanted, atol=1e-6, rtol=0)
    assert average.steps == 3 and not average.model.weight.requires_grad


def test_ema_resume_equals_a_straight_run_and_checkpoints_hold_the_average(tmp_path):
    straight, resumed = straight_and_resumed(tmp_path, [*SMALL, "train.ema_decay=0.9"])
    assert_same_run(straight, resumed)
    last = load_checkpoint(resumed / LAST)
    raw = {name: last.train_tensors[f"raw.{name}"] for name, _ in last.model.named_parameters()}
    averaged = last.model.state_dict()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)  # the checkpoint's model is not the raw weights
    # training goes on from the raw weights: they, and the training loss, are those of a run without the average
    train(load_config(DEMO, [*SMALL, "train.epochs=3"]), tmp_path / "plain", progress=False, console=QUIET)
    plain = load_checkpoint(tmp_path / "plain" / LAST).model.state_dict()
    assert all(torch.equal(raw[k], plain[k]) for k in raw)
    assert [r["train_loss"] for r in without_timings(tmp_path / "plain")] == [r["train_loss"] for r in without_timings(resumed)]
    sentences = len(read_corpus(last.config.data.train, "conllu", ["upos"]))
    assert last.train_tensors["ema_steps"].item() == 3 * math.ceil(sentences / last.config.train.batch_size)  # one per batch
    # dev was scored with the averaged weights: evaluating model-last again gives the logged figure
    dev = evaluate_model(resumed / LAST, data=ROOT / "data" / "demo" / "dev.conllu")
    assert round(dev["accuracy"], 6) == without_timings(resumed)[-1]["dev_accuracy"]


def test_resume_without_the_raw_weights_of_an_averaged_run_says_so(tmp_path):
    settings = [*SMALL, "train.ema_decay=0.9", "train.epochs=1"]
    train(load_config(DEMO, settings), tmp_path / "run", progress=False, console=QUIET)
    run = damaged_copy(tmp_path / "run", tmp_path / "damaged", "train_state.raw.encoder.rnn.weight_hh_l0")
    args = ["train", str(DEMO), "--output", str(run), "--resume", *(x for s in settings[:-1] for x in ("--set", s))]
    result = runner.invoke(app, [*args, "--set", "train.epochs=2"])
    assert_one_line_error(result, f"{run / LAST}: the training state to resume from is damaged (KeyError); train anew")


def test_ema_with_adamw_and_smoothing_resumes_exactly(tmp_path):
    straight, resumed = straight_and_resumed(tmp_path, [*SMALL, *ADAMW, "train.ema_decay=0.99", "train.label_smoothing=0.1"])
    assert_same_run(straight, resumed)


# 5. bad values: one line naming the key -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.label_smoothing=1"], "--set train.label_smoothing=1: train.label_smoothing: must be < 1.0, got 1"),
        (["train.label_smoothing=-0.1"], "--set train.label_smoothing=-0.1: train.label_smoothing: must be >= 0.0, got -0.1"),
        (["train.label_smoothing=yes"], "--set train.label_smoothing=yes: train.label_smoothing: input should be a valid number, got True"),
        (["train.ema_decay=1.0"], "--set train.ema_decay=1.0: train.ema_decay: must be < 1.0, got 1.0"),
        (["train.ema_decay=yes"], "--set train.ema_decay=yes: train.ema_decay: input should be a valid number, got True"),
        (["train.optimizer=adam"], "--set train.optimizer=adam: train.optimizer: must be one of 'sgd' or 'adamw', got 'adam'"),
        (["train.optimizer=adamw"], "--set train.optimizer=adamw: train.optimizer: adamw has no momentum: set train.momentum to 0 (it is 0.9)"),
        (
            ["model.output=crf", "train.label_smoothing=0.1"],
            "--set train.label_smoothing=0.1: train.label_smoothing: smooths softmax heads only, and every head of ['upos'] is a crf (it is 0.1)",
        ),
    ],
)
def test_bad_lever_settings_are_one_line(tmp_path, overrides, message):
    config = tiny_config(tmp_path)
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), *(x for o in overrides for x in ("--set", o))])
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()


def test_smoothing_with_one_softmax_head_among_crfs_is_allowed(tmp_path):
    config = tiny_config(tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["data"]["columns"], raw["model"]["output"] = ["upos", "xpos"], "crf"
    raw["model"]["output_per_column"], raw["train"]["label_smoothing"] = {"xpos": "softmax"}, 0.1
    config.write_text(yaml.safe_dump(raw))
    assert load_config(config).train.label_smoothing == 0.1


def test_resume_cannot_switch_the_optimizer(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(
        app, ["train", str(run / "config.yaml"), "--output", str(run), "--resume",
              "--set", "train.optimizer=adamw", "--set", "train.momentum=0", "--set", "train.epochs=3"],
    )
    assert_one_line_error(result, f"{run}: cannot resume, train.optimizer is 'adamw' here but 'sgd' in the run")


# 5. adversarial training ---------------------------------------------------------------------------------


def _adversarial_pair(eps: float):
    """A small tagger without dropout, in training mode, and a batch of two sentences (lengths 5 and 3)."""
    torch.manual_seed(0)
    config = load_config(DEMO, ["model.embedding_dim=8", "model.hidden_dim=8", "model.dropout=0"]).model
    model = Tagger(config, 20, 6, adversarial=eps).train()
    words, lengths = torch.randint(2, 20, (2, 5)), torch.tensor([5, 3])
    tags = torch.randint(0, 6, (2, 5))
    words[1, 3:], tags[1, 3:] = 0, TAG_PAD
    return model, words, lengths, tags


def test_adversarial_loss_adds_the_loss_of_the_inputs_moved_along_the_gradient():
    eps = 0.05
    model, words, lengths, tags = _adversarial_pair(eps)
    columns = tags.unsqueeze(-1)

    def loss_at(inputs: torch.Tensor) -> torch.Tensor:
        return model._heads_loss(model.encoder(inputs, lengths), lengths, columns, [None])

    inputs = model.inputs(words).detach().requires_grad_(True)
    clean = loss_at(inputs)
    (gradient,) = torch.autograd.grad(clean, inputs)
    assert gradient[1, 3:].abs().sum() == 0  # padding has no gradient
    step = torch.stack([eps * math.sqrt(n) * gradient[i] / gradient[i].norm() for i, n in enumerate([5, 3])])
    assert step[0].norm().item() == pytest.approx(eps * math.sqrt(5)) and step[1].norm().item() == pytest.approx(eps * math.sqrt(3))
    with torch.no_grad():
        ahead, back = loss_at(inputs + step), loss_at(inputs - step)
    assert ahead > clean > back  # along the gradient the loss grows: the worst direction
    total = model.loss(words, lengths, tags)
    assert torch.allclose(total, clean + ahead)
    model.eval()
    assert torch.allclose(model.loss(words, lengths, tags), clean)  # evaluation: no perturbation


def test_adversarial_training_overfits_and_resumes_exactly(tmp_path):
    result = train(load_config(tiny_config(tmp_path), ["train.adversarial=0.1"]), tmp_path / "run", progress=False)
    assert result.best_dev_accuracy == 1.0
    sentences = [words for words, _ in CLASSIC]
    assert [t.tags for t in tag(load_checkpoint(tmp_path / "run" / BEST), sentences)] == [tags for _, tags in CLASSIC]
    straight, resumed = straight_and_resumed(tmp_path / "resume", [*SMALL, "train.adversarial=0.1"])
    assert_same_run(straight, resumed)
