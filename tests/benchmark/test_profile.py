"""The profile of an epoch on the demo config: every group is there and the shares make the epoch."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from lstm_tagger import sections
from lstm_tagger.benchmark.profile import app, profile_epoch, table

from conftest import ROOT, assert_one_line_error

DEMO = ROOT / "configs" / "demo.yaml"
GROUPS = [
    "character encoder, forward", "word BiLSTM, forward", "CRFs, forward (the step loop)",
    "rest of the forward pass (embeddings, output layers, losses)", "backward: output layers and CRFs",
    "backward: word BiLSTM", "backward: character encoder and embeddings", "gradient clipping and optimiser step",
    "building batches (collate, word dropout, characters)", "thread chooser's own calls",
    "Python between batches (the loop, progress)",
]


def test_two_batches_of_the_demo_have_every_group_and_the_shares_sum_to_the_epoch(tmp_path):
    before = torch.get_num_threads()
    try:
        result = profile_epoch(DEMO, ["model.char_encoder=lstm", "model.output=crf", "train.threads=1"], batches=2)
    finally:
        torch.set_num_threads(before)
    assert result["batches"] == 2 and result["tokens"] > 0
    assert [row["group"] for row in result["groups"]] == GROUPS
    assert abs(sum(row["share"] for row in result["groups"]) - 1.0) < 1e-9
    named = {row["group"]: row["seconds"] for row in result["groups"]}
    assert all(named[g] > 0 for g in GROUPS[:8])  # each part of a step with characters and a CRF ran
    assert result["probes"] is None and result["threads"] == 1  # a fixed count: no chooser
    lines = table(result).splitlines()
    assert lines[2] == "| part of the epoch | seconds | share |" and lines[-1].startswith("| **epoch** |")
    assert len(lines) == 4 + len(GROUPS) + 1


def test_the_command_writes_json_and_refuses_zero_batches(tmp_path):
    runner = CliRunner()
    output = tmp_path / "profile.json"
    before = torch.get_num_threads()
    try:
        result = runner.invoke(app, [str(DEMO), "--batches", "2", "--set", "train.threads=1", "--output", str(output)])
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    written = json.loads(output.read_text())
    assert [row["group"] for row in written["groups"]] == GROUPS and "| **epoch** |" in result.stdout
    assert_one_line_error(runner.invoke(app, [str(DEMO), "--batches", "0"]), "--batches must be at least 1, got 0")


def test_sections_register_no_hook_when_nothing_is_timed():
    tensor = torch.ones(2, requires_grad=True) * 2
    sections.gradient_ready(tensor, sections.BACKWARD_HEADS)
    assert not tensor._backward_hooks
    with sections.section(sections.CHARS):
        pass
    timer = sections.SectionTimer()
    with timer.active():
        sections.gradient_ready(tensor, sections.BACKWARD_HEADS)
        with sections.section(sections.BACKWARD):
            tensor.sum().backward()
    assert timer.calls[sections.BACKWARD] == 1 and set(timer.seconds) == {
        sections.BACKWARD, sections.BACKWARD_HEADS, sections.BACKWARD_REST}
    assert timer.seconds[sections.BACKWARD_HEADS] + timer.seconds[sections.BACKWARD_REST] == pytest.approx(timer.seconds[sections.BACKWARD])
