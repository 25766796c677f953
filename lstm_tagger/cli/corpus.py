"""``lstm-tag download``: fetch a Universal Dependencies treebank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lstm_tagger.corpus.download import DEFAULT_RELEASE, download_treebank
from lstm_tagger.cli.common import user_errors, app



@app.command(
    "download",
    epilog=(
        "Examples:\n\n  lstm-tag download UD_French-GSD\n\n  lstm-tag download ud_english_ewt\n\n"
        "  lstm-tag download UD_Welsh-CCG --release r2.14 --dest corpora"
    ),
)
def download_cli(
    name: str = typer.Argument(..., help="Treebank, named as its repository: UD_<Language>-<Treebank> (or ud_english_ewt)."),
    release: str = typer.Option(DEFAULT_RELEASE, "--release", help="Release tag of the treebank's repository."),
    dest: Path = typer.Option(Path("data"), "--dest", help="Folder that gets the treebank's folder (ud_<language>_<treebank>)."),
    base_url: Optional[str] = typer.Option(
        None, "--base-url", help="A server that stands in for https://api.github.com (a mirror, or a test server)."
    ),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Show a progress bar \\[default: only on a terminal]."
    ),
) -> None:
    """Download a Universal Dependencies treebank's train/dev/test CoNLL-U files from its repository, checksum-checked."""
    with user_errors():
        done = download_treebank(name, dest, release=release, base_url=base_url, progress=progress)
    kept = len(done.files) - len(done.fetched)
    print(
        f"{done.repository} {done.release}: {', '.join(done.files)} in {done.folder}"
        + (f" ({kept} already there)" if kept else "")
    )
    checked = "the repository's git SHA-1" + (" and the SHA-256 sums shipped with lstm-tag" if done.sha256_shipped else "")
    print(f"checked against {checked}; SHA-256 sums recorded in {done.folder / 'SHA256SUMS'}")
