"""The run directory that ``lstm-tag train`` writes: the name of every file in it, stated once;
its default name, its creation, and the check that a run never writes over one of its inputs.

``runs``, ``info``, ``bench``, ``eval`` and the server read these files; training writes them
(``training/loop.py``), each atomically (``files.py``), and holds ``LOCK`` while it runs
(``run_lock``).
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

from lstm_tagger.config import Config
from lstm_tagger.errors import UserError
from lstm_tagger.files import make_dir, same_file

CONFIG = "config.yaml"
"""The resolved config of the run (what ``--resume`` compares with)."""
LOG = "train.log"
"""Every line training printed, with the time."""
METRICS = "metrics.jsonl"
"""One JSON object per epoch: loss, dev scores, speed."""
REPORT_MD, REPORT_JSON = "report.md", "report.json"
"""The tag-score report of the best checkpoint on dev (and test)."""
LEARNING_CURVES = "learning-curves.png"
BEST = "model-best.safetensors"
"""The checkpoint of the best dev score: what ``predict``, ``eval`` and ``serve`` load from a run."""
LAST = "model-last.safetensors"
"""The checkpoint of the last finished epoch, with the training state ``--resume`` continues from."""
LOCK = ".lock"
"""Held (``flock``) by the one trainer of the directory."""

REPORTS = (REPORT_MD, REPORT_JSON)
RUN_FILES = (CONFIG, LOG, METRICS, *REPORTS, LEARNING_CURVES, BEST, LAST, LOCK)
"""Every file a run writes or appends to (``confusion_plot`` files aside): ``train --force``
refuses to run when one of them would be one of its inputs."""


def confusion_plot(split: str) -> str:
    """The file name of the confusion matrix plot of ``split`` (``dev``, ``test``)."""
    return f"confusion-{split}.png"


def default_output_dir(config_path: str | Path, runs_dir: str | Path = "runs") -> Path:
    """``runs/<config name>-<YYYYmmdd-HHMMSS>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(runs_dir) / f"{Path(config_path).stem}-{stamp}"


def prepare_output_dir(output_dir: Path, force: bool) -> None:
    """Create ``output_dir``; an existing non-empty one is refused unless ``force``."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"{output_dir}: exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not force:
        raise UserError(
            f"{output_dir}: output directory is not empty (use force=True to train into it anyway)", {"force=True": "--force"}
        )
    make_dir(output_dir, what="output directory")


def _written_by_run(output_dir: Path) -> list[Path]:
    """The files of ``output_dir`` that training there would replace or append to."""
    try:
        plots = sorted(output_dir.glob(confusion_plot("*")))
    except OSError:
        plots = []
    return [output_dir / name for name in RUN_FILES] + plots


def _inputs(config: Config, config_file: str | Path | None) -> list[tuple[str, Path]]:
    """Every file (or run directory) training reads, with the key that names it."""
    named = [("the config", config_file)] + [(f"data.{key}", getattr(config.data, key)) for key in ("train", "dev", "test")]
    named += [("model.vectors", config.model.vectors), ("model.clusters", config.model.clusters)]
    named += [("train.teacher", teacher) for teacher in config.train.teacher]
    return [(key, Path(path)) for key, path in named if path is not None]


def refuse_overwriting_inputs(config: Config, output_dir: Path, config_file: str | Path | None = None, resume: bool = False) -> None:
    """A ``UserError`` if training into ``output_dir`` would replace or append to one of the files
    it reads: ``config_file`` (the config being read: ``config.yaml`` with ``force=True``), a data
    file, the vectors, the clusters, or a teacher (a teacher run that is ``output_dir`` itself would lose its
    ``model-best``). Links are followed: the same file under another name is refused too. On
    ``resume`` the config may be the run's own ``config.yaml``, which the run rewrites as it was."""
    options = {f"output_dir={output_dir}": f"--output {output_dir}", "another output_dir": "another --output"}
    written = _written_by_run(output_dir)
    for key, path in _inputs(config, None if resume else config_file):
        if key == "train.teacher" and same_file(path, output_dir):
            raise UserError(
                f"{path}: train.teacher is the run directory output_dir={output_dir}, whose {BEST} training would "
                "replace: give another output_dir", options,
            )
        for target in written:
            if same_file(path, target):
                raise UserError(
                    f"{path}: {key} would be overwritten by the run's {target.name} in output_dir={output_dir}: "
                    "give another output_dir (or move the file out of it)", options,
                )


@contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``directory/.lock`` for one trainer at a time.

    The lock is an ``flock``: the kernel releases it when its process ends in any way,
    kill -9 included, so a lock left by a dead trainer is simply taken over.
    """
    path = directory / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot create the run lock: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise UserError(f"{directory}: another lstm-tag train (pid {holder}) is using this run directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
