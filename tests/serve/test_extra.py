"""Without the serve extra, ``lstm-tag serve`` says how to install it (the other commands never import it)."""

from __future__ import annotations

import sys

from typer.testing import CliRunner

from conftest import assert_one_line_error
from lstm_tagger.cli import app

runner = CliRunner()


def test_serve_without_the_extra_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn fails, as where it is not installed
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "nope")])
    assert_one_line_error(result, "lstm-tag serve needs FastAPI and uvicorn: pip install 'lstm-tag[serve]'")


def test_the_command_line_does_not_import_the_server():
    import subprocess

    code = "import sys, lstm_tagger.cli; print(sorted(m for m in ('fastapi', 'uvicorn', 'lstm_tagger.serve.app') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
