"""The run directory that ``lstm-tag train`` writes: the name of every file in it, stated once.

``runs``, ``info``, ``bench``, ``eval`` and the server read these files; training writes them
(``training/loop.py``), each atomically (``files.py``), and holds ``LOCK`` while it runs.
"""

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
