"""Word clusters (``model.clusters``): each word's cluster, from an installed package or from a file.

Brown clusters (Brown et al. 1992; Liang 2005) group the words of a large unlabelled text by the
words around them into a binary tree: a cluster is named by its path from the root, a bit string,
and a prefix of the path is a coarser cluster. Words of one part of speech tend to share a cluster,
which is what a tagger lacks for a word it never saw in training. Two sources, one ``ClusterSource``:

- ``brown-en``: the English clusters of spaCy's lookup tables (the package ``spacy-lookups-data``,
  MIT; ``pip install 'lstm-tag[clusters]'``): a gzip-compressed JSON object of 1,000,001 words, each
  with a number: the path reversed and read in binary (spaCy's encoding: the path's first bit is
  the lowest, and its trailing zeros are lost). 0 is what spaCy gave a word its clusterer saw too
  rarely (and the one cluster whose path is all 0s, which cannot be told apart), and reads as no
  cluster: 190,129 words keep one of 999 clusters.
- a file of ``word<TAB>cluster`` lines, any language: UTF-8 (a BOM, ``\\r\\n`` line ends and blank
  lines are ignored; gzip, told by its magic bytes, is decompressed as it is read). A cluster is
  any label, and a bit string (0s and 1s) when its prefixes are features (``model.cluster_prefixes``).
  A word may be listed once. A bad line stops the reading with ``file:line: what is wrong``.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from lstm_tagger import limits
from lstm_tagger.corpus.conllu import decode_lines
from lstm_tagger.corpus.pretrained import package_dir, sha256_of
from lstm_tagger.corpus.resources import CLUSTER_RESOURCES, missing_cluster_package
from lstm_tagger.corpus.vectors import open_maybe_gzip, raw_lines
from lstm_tagger.corpus.vocab import SHAPES, UNK
from lstm_tagger.errors import DataError, one_line
from lstm_tagger.files import read_bytes

_BITS = re.compile(r"[01]+")
SPECIALS = frozenset([UNK, *SHAPES])


@dataclass
class Clusters:
    """Word ``words[i]`` is in the cluster ``labels[ids[i]]``: the words unique, the labels unique
    and in the order they were first met."""

    words: list[str]
    ids: list[int]
    labels: list[str]

    def of(self) -> dict[str, int]:
        """word -> its cluster's position in ``labels``."""
        return dict(zip(self.words, self.ids))


@dataclass
class ClusterSource:
    """Clusters and what identifies them, as the checkpoint's header records them (``checkpoint_schema.ClusterMeta``):
    ``name`` (a resource's, or the file's name), ``version`` (the package's; None for a file), ``sha256``."""

    clusters: Clusters
    name: str
    version: str | None
    sha256: str


class _Builder:
    """Collects (word, label) pairs into ``Clusters`` within the limits; ``where`` says where a pair
    came from in an error (``file:line`` or the resource's file)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.ids: list[int] = []
        self.labels: dict[str, int] = {}

    def add(self, word: str, label: str, where: str) -> None:
        if len(label) > limits.MAX_RESOURCE_TEXT:
            raise DataError(f"{where}: a cluster label of {len(label):,} characters, above the limit of {limits.MAX_RESOURCE_TEXT}")
        if len(self.words) == limits.MAX_CLUSTER_WORDS:
            raise DataError(f"{where}: more than {limits.MAX_CLUSTER_WORDS:,} words, the limit")
        known = self.labels.setdefault(label, len(self.labels))
        if len(self.labels) > limits.MAX_CLUSTERS:
            raise DataError(f"{where}: more than {limits.MAX_CLUSTERS:,} distinct clusters, the limit")
        self.words.append(word)
        self.ids.append(known)

    def done(self, path: Path) -> Clusters:
        if not self.words:
            raise DataError(f"{path}: no clusters in the file")
        return Clusters(self.words, self.ids, list(self.labels))


def _quote(text: str, limit: int = 20) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def read_cluster_file(path: str | Path, bits: bool = False) -> Clusters:
    """The clusters of a ``word<TAB>cluster`` file (see the module docstring); with ``bits`` every
    cluster must be a bit string."""
    path = Path(path)
    built = _Builder()
    first: dict[str, int] = {}  # word -> the line that gave it its cluster
    with open_maybe_gzip(path) as handle:
        for number, line in decode_lines(raw_lines(handle, path), path):
            if not line:
                continue
            fields = line.split("\t")
            where = f"{path}:{number}"
            if len(fields) != 2:
                raise DataError(f"{where}: expected a word, a tab and its cluster; found {len(fields)} tab-separated fields")
            word, label = fields
            if not word or not label:
                raise DataError(f"{where}: empty {'word' if not word else 'cluster'}")
            if bits and not _BITS.fullmatch(label):
                raise DataError(f"{where}: cluster {_quote(label)} is not a bit string (model.cluster_prefixes needs one)")
            if word in first:
                raise DataError(f"{where}: {_quote(word)} already has a cluster (line {first[word]})")
            first[word] = number
            built.add(word, label, where)
    return built.done(path)


def brown_path(number: int) -> str:
    """spaCy's number of a Brown cluster -> the cluster's path, first bit first (its trailing zeros lost)."""
    return format(number, "b")[::-1]


def _read_spacy_table(path: Path) -> dict[str, int]:
    """A spaCy lookup table of word -> whole number >= 0 (a gzip-compressed JSON object)."""
    try:
        table = json.loads(gzip.decompress(read_bytes(path, DataError, "clusters file")))
    except (OSError, EOFError, zlib.error, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: cannot read the clusters: {one_line(exc)}") from None
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected a JSON object of words and cluster numbers")
    for word, number in table.items():
        if not word or type(number) is not int or number < 0:
            raise DataError(f"{path}: word {_quote(word)}: cluster {_quote(json.dumps(number))} is not a whole number >= 0")
    return table


def read_cluster_resource(name: str) -> ClusterSource:
    """The clusters of the installed resource ``name`` (a key of ``CLUSTER_RESOURCES``): every
    word with a number other than 0, its cluster the path of the number."""
    resource = CLUSTER_RESOURCES[name]
    path = package_dir(resource.module, missing_cluster_package(name)) / resource.file
    table = _read_spacy_table(path)
    built = _Builder()
    for word, number in table.items():
        if number:
            built.add(word, brown_path(number), str(path))
    version = importlib.metadata.version(resource.package)
    return ClusterSource(built.done(path), name, version, sha256_of([path], "clusters file"))


def read_clusters(value: str, bits: bool = False) -> ClusterSource:
    """``model.clusters``: a name of ``CLUSTER_RESOURCES`` (whose clusters are bit strings), else a
    ``word<TAB>cluster`` file (``bits``: every cluster must be a bit string)."""
    if value in CLUSTER_RESOURCES:
        return read_cluster_resource(value)
    path = Path(value)
    clusters = read_cluster_file(path, bits)
    return ClusterSource(clusters, path.name, None, sha256_of([path], "clusters file"))


def prefix(path: str, length: int) -> str:
    """The first ``length`` bits of a cluster's path, padded with 0s when it is shorter: a path
    read from spaCy's numbers has lost its trailing zeros, and padding gives it back its prefixes."""
    return path[:length].ljust(length, "0")


def cluster_paths(labels: list[str], prefixes: Iterable[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(1 + L, 1 + P) int64: for "no cluster" (row 0, all zeros) and each of the L clusters, its row
    of the cluster table (1 + its position) and of each prefix length's table (1 + the position of
    its prefix among the distinct prefixes of that length, in the order of ``labels``); and each
    table's number of rows (its row 0: no cluster). The same labels give the same rows, so the
    checkpoint stores the labels and the rows are derived again."""
    prefixes = list(prefixes)
    columns = [list(range(1, len(labels) + 1))]
    for length in prefixes:
        seen: dict[str, int] = {}
        columns.append([seen.setdefault(prefix(label, length), len(seen) + 1) for label in labels])
    paths = torch.zeros(len(labels) + 1, len(columns), dtype=torch.long)
    if labels:
        paths[1:] = torch.tensor(columns, dtype=torch.long).T
    return paths, tuple(max(column, default=0) + 1 for column in columns)


def word_clusters(clusters: Clusters, words: list[str]) -> torch.Tensor:
    """(V,) int32: for each vocabulary word from position 1 on, 1 + its cluster's position in
    ``clusters.labels``: the exact word's cluster if it has one, else its lower-cased form's; 0
    (no cluster) for the others and for the specials (``<pad>``, ``<unk>``, the shape classes)."""
    of = clusters.of()
    found = [0] * len(words)
    for row, word in enumerate(words[1:], start=1):
        if word in SPECIALS:
            continue
        cluster = of.get(word)
        if cluster is None:
            cluster = of.get(word.lower())
        if cluster is not None:
            found[row] = cluster + 1
    return torch.tensor(found, dtype=torch.int32)
