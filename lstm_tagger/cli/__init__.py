"""The ``lstm-tag`` command line: thin adapters over the library functions, one module per command group.

Each command parses its options, calls one function of the package, prints, and turns a
``UserError`` into one line on stderr and exit code 2. ``common.py`` holds the Typer app and
the last line of defence; each module below registers its commands on that app when imported
(as spaCy's ``cli/__init__.py`` does), so this list is the whole command line.
"""

from lstm_tagger.cli.common import app, run
from lstm_tagger.cli import train, predict, evaluate, runs, corpus, bench, serve  # noqa: F401  (registers the commands)

__all__ = ["app", "run"]
