"""``eval --raw``: the gold file's raw text through the model's pipeline, and what it says when a
sentence's raw text has to be rebuilt from its tokens."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lstm_tagger.cli import app

from conftest import ROOT

runner = CliRunner()


def without_first_text(target: Path) -> Path:
    """The demo test set with its first sentence's ``# text`` line left out."""
    lines = (ROOT / "data" / "demo" / "test.conllu").read_text(encoding="utf-8").splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith("# text"))
    target.write_text("".join(lines[:first] + lines[first + 1 :]), encoding="utf-8")
    return target


def test_eval_raw_says_how_many_sentences_have_their_text_rebuilt(tiny_run, tmp_path):
    gold = without_first_text(tmp_path / "gold.conllu")
    sentences = gold.read_text(encoding="utf-8").count("# sent_id")
    result = json.loads(runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--json", "--data", str(gold)]).stdout)
    assert (result["sentences"], result["text_rebuilt"]) == (sentences, 1)
    table = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--data", str(gold)])
    assert table.exit_code == 0 and table.stdout.splitlines()[1] == (
        f"note: 1 of {sentences} sentences have no # text their forms spell: their raw text is rebuilt from the tokens"
    )


def test_eval_raw_says_nothing_when_every_text_is_there(tiny_run):
    gold = ROOT / "data" / "demo" / "test.conllu"
    result = json.loads(runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--json", "--data", str(gold)]).stdout)
    assert result["text_rebuilt"] == 0
    table = runner.invoke(app, ["eval", "-m", str(tiny_run), "--raw", "--data", str(gold)]).stdout.splitlines()
    assert not any(line.startswith("note:") for line in table)
