"""``python -m lstm_tagger`` is ``lstm-tag``."""

from .cli import app

app(prog_name="lstm-tag")
