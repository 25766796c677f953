"""Distillation (``train.teacher``): the loss against a teacher's probabilities, a student that
learns what its teacher says rather than the gold tags, exact resume, and bad settings as one line."""

from __future__ import annotations


import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger import load_checkpoint, load_config, tag, train
from lstm_tagger.rundir import BEST
from lstm_tagger.cli import app
from lstm_tagger.corpus.reader import TAG_PAD
from lstm_tagger.training.distill import teacher_targets
from lstm_tagger.model.tagger import Head
from lstm_tagger.corpus.vocab import Vocab

from conftest import CLASSIC, assert_one_line_error, tiny_config
from test_optimisation import QUIET, SMALL, assert_same_run, straight_and_resumed

runner = CliRunner()
SWAPPED = [(words, ["VERB" if w == "dog" else t for w, t in zip(words, tags)]) for words, tags in CLASSIC]
"""The classic corpus with "dog" tagged VERB: a teacher trained on it says what the gold tags do not."""


def test_one_hot_targets_give_the_gold_loss_and_uniform_ones_the_mean_of_minus_log_p():
    torch.manual_seed(0)
    scores, tags, lengths = torch.randn(3, 5, 7), torch.randint(0, 7, (3, 5)), torch.tensor([5, 3, 5])
    tags[1, 3:] = TAG_PAD
    plain = Head(4, 7, crf=False).loss(scores, lengths, tags)
    head = Head(4, 7, crf=False, distill=0.3)
    one_hot = torch.nn.functional.one_hot(tags.clamp(min=0), 7).float()
    assert torch.allclose(head.loss(scores, lengths, tags, one_hot), plain)
    uniform = torch.full((3, 5, 7), 1 / 7)
    mean_minus_log_p = -torch.log_softmax(scores, -1).mean(-1)[tags != TAG_PAD].mean()
    assert torch.allclose(head.loss(scores, lengths, tags, uniform), 0.7 * plain + 0.3 * mean_minus_log_p)
    assert torch.equal(Head(4, 7, crf=False).loss(scores, lengths, tags, uniform), plain)  # no weight: no teacher


def test_a_crf_student_learns_the_teachers_probabilities_through_its_marginals():
    torch.manual_seed(0)
    head = Head(4, 5, crf=True, distill=1.0)
    scores, lengths = torch.randn(2, 4, 5, requires_grad=True), torch.tensor([4, 2])
    tags = torch.tensor([[1, 2, 3, 4], [0, 1, TAG_PAD, TAG_PAD]])
    soft = torch.softmax(torch.randn(2, 4, 5), -1)
    loss = head.loss(scores, lengths, tags, soft)
    marginals = head.crf.marginals(scores, lengths)
    assert torch.allclose(loss, -(soft * marginals).sum(-1)[tags != TAG_PAD].mean())
    loss.backward()
    assert scores.grad[0].abs().sum() > 0 and scores.grad[1, 2:].abs().sum() == 0  # padding takes no part


def test_a_student_tags_as_its_teacher_says_not_as_the_gold_tags(tmp_path):
    (tmp_path / "teacher").mkdir()
    train(load_config(tiny_config(tmp_path / "teacher", SWAPPED)), tmp_path / "teacher" / "run", progress=False)
    sentences = [words for words, _ in CLASSIC]
    assert tag(load_checkpoint(tmp_path / "teacher" / "run" / BEST), sentences)[0].tags == SWAPPED[0][1]
    config = tiny_config(tmp_path)
    plain = train(load_config(config), tmp_path / "plain", progress=False)
    taught = train(load_config(config, [f"train.teacher={tmp_path / 'teacher' / 'run'}", "train.distill_weight=1"]), tmp_path / "taught", progress=False)
    assert [t.tags for t in tag(load_checkpoint(plain.output_dir / BEST), sentences)] == [tags for _, tags in CLASSIC]
    assert [t.tags for t in tag(load_checkpoint(taught.output_dir / BEST), sentences)] == [tags for _, tags in SWAPPED]
    log = (taught.output_dir / "train.log").read_text()
    assert f"distillation: teacher 1/1 ({tmp_path / 'teacher' / 'run'}) tagged the training sentences in" in log
    assert "distillation: the teachers' best tag is the gold one for upos 88.89% of the training tokens; weight 1.0, temperature 1.0" in log


def test_targets_are_the_teachers_mean_probabilities_moved_onto_the_students_tags(trained_run):
    first, second = trained_run("demo", *SMALL, "train.epochs=1"), trained_run("demo", *SMALL, "train.epochs=2")
    sentences = [["The", "dog", "ate", "the", "apple"], ["Everybody", "read"]]
    names = load_checkpoint(first / BEST).tags.itos
    reordered = {"upos": Vocab(list(reversed(names)))}  # the student's tags in another order
    targets = teacher_targets([str(first), str(second)], sentences, reordered)
    runs = [tag(load_checkpoint(run / BEST), sentences, scores=True) for run in (first, second)]
    mean = torch.cat([(a.probs["upos"] + b.probs["upos"]) / 2 for a, b in zip(*runs)]).flip(-1)  # (N, K), student order
    assert targets.flat["upos"].dtype == torch.float16
    assert torch.allclose(targets.flat["upos"].float(), mean, atol=1e-3)
    softened = teacher_targets([str(first), str(second)], sentences, reordered, temperature=2.0)
    root = [torch.softmax(p.log() / 2, dim=-1) for p in (a.probs["upos"] for run in runs for a in run)]  # p^(1/2), renormalised
    mean = torch.cat([(root[i] + root[i + 2]) / 2 for i in range(2)]).flip(-1)
    assert torch.allclose(softened.flat["upos"].float(), mean, atol=1e-3)
    assert softened.flat["upos"].max() < targets.flat["upos"].max()  # softer
    batch = targets.batch([1, 0], ["upos"])[0]  # (2, 5, K): sentence 1 padded with zeros
    assert torch.equal(batch[0, :2], targets.flat["upos"][5:7].float()) and batch[0, 2:].abs().sum() == 0
    assert torch.equal(batch[1], targets.flat["upos"][:5].float())


def test_a_distilled_run_resumes_exactly(tmp_path, trained_run):
    teacher = trained_run("demo", *SMALL, "train.epochs=2")
    straight, resumed = straight_and_resumed(tmp_path, [*SMALL, f"train.teacher={teacher}", "train.distill_weight=0.7"])
    assert_same_run(straight, resumed)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.distill_weight=0.3"], "--set train.distill_weight=0.3: train.distill_weight: applies to the teachers' probabilities, and train.teacher is empty (it is 0.3)"),
        (["train.distill_temperature=2"], "--set train.distill_temperature=2: train.distill_temperature: applies to the teachers' probabilities, and train.teacher is empty (it is 2.0)"),
        (["train.teacher=x", "train.distill_temperature=0"], "--set train.distill_temperature=0: train.distill_temperature: must be > 0.0, got 0"),
        (["train.teacher=x", "train.distill_weight=1.5"], "--set train.distill_weight=1.5: train.distill_weight: must be <= 1.0, got 1.5"),
        (["train.teacher=nowhere"], "train.teacher: {base}/nowhere: checkpoint not found"),
        (['train.teacher="a\\0b"'], '--set train.teacher="a\\0b": train.teacher: not a usable path: embedded null byte'),
        (['train.teacher=[x, "a\\0b"]'], '--set train.teacher=[x, "a\\0b"]: train.teacher.1: not a usable path: embedded null byte'),
    ],
)
def test_bad_distillation_settings_are_one_line(tmp_path, overrides, message):
    config = tiny_config(tmp_path)
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), *(x for o in overrides for x in ("--set", o))])
    assert_one_line_error(result, message.format(base=tmp_path))
    assert not (tmp_path / "run").exists()


def test_a_teacher_without_the_students_columns_is_refused_before_the_run_starts(tmp_path, trained_run):
    teacher = trained_run("demo", *SMALL, "train.epochs=1", "data.columns=[xpos]")
    config = tiny_config(tmp_path)
    result = runner.invoke(app, ["train", str(config), "--output", str(tmp_path / "run"), "--set", f"train.teacher={teacher}"])
    assert_one_line_error(result, f"train.teacher: {teacher} tags xpos, none of the columns trained here (upos)")
    assert not (tmp_path / "run").exists()
