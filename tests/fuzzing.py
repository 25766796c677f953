"""Shared by the fuzz tests (``tests/robustness/test_fuzz_corpus.py``, ``tests/robustness/test_fuzz_config.py``, ``tests/robustness/test_fuzz_predict.py``, ``tests/robustness/test_fuzz_limits.py``).

The contract: an input is either parsed, or rejected with a one-line ``UserError``
(``ConfigError``, ``DataError``, ``CheckpointError``) that names the file (and the line,
for data files). Anything else -- another exception type, a traceback, a message over
several lines -- is a bug.

The first fuzzing found PyYAML errors other than ``YAMLError``, unusable data paths and
line breaks in keys escaping as tracebacks or multi-line messages; each now has a test of
its own, with inputs that always trigger it.

Hypothesis examples are built in ``tempfile`` directories (function-scoped fixtures are not
reset between examples) and the example database is off (hypothesis still keeps its small,
self-gitignored ``.hypothesis/`` cache in the working directory).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from hypothesis import HealthCheck, Phase, settings

BOM = b"\xef\xbb\xbf"


def fuzz(max_examples: int, shrink: bool = True) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        # The pinned-bug tests fail on every example: shrinking those would only cost time.
        phases=list(Phase) if shrink else [Phase.explicit, Phase.generate],
    )


@contextlib.contextmanager
def scratch_file(data: bytes, name: str) -> Iterator[Path]:
    """``data`` written to ``name`` in a fresh temporary directory (one per example)."""
    with tempfile.TemporaryDirectory(prefix="lstm-fuzz-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        yield path


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, f"not a single line: {message!r}"
