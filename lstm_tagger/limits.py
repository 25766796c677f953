"""Every resource limit of lstm-tag, stated once, and the checks that enforce them before work starts.

A limit is a promise that a hostile or mistaken input (a YAML alias bomb, ``/dev/zero`` as
a corpus, a checkpoint header that asks for a billion parameters) ends in one line and
exit code 2, quickly and in bounded memory, rather than in an exhausted machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lstm_tagger.errors import UserError

if TYPE_CHECKING:
    from torch import nn

MAX_CONFIG_BYTES = 1 << 20
"""A config file (YAML) is at most 1 MiB."""
MAX_YAML_DEPTH = 20
"""Mappings and lists nest at most 20 deep in a config file."""
MAX_YAML_ALIASES = 100
"""A config file may use at most 100 aliases (``*name``), and each only of a scalar."""
MAX_BENCH_BYTES = 1 << 20
"""A ``lstm-tag bench`` JSON file read by ``lstm-tag frontier`` is at most 1 MiB."""
MAX_SIDE_BY_SIDE_ROUNDS = 100
"""``python -m lstm_tagger.benchmark.sidebyside --rounds`` is at most 100: each round runs both
checkouts' command once (a training run of minutes), and 100 rounds of that are already days."""
MAX_FILE_LIST_BYTES = 1 << 20
"""A treebank repository's file list that ``lstm-tag download`` reads is at most 1 MiB (GitHub's is a few KiB)."""
MAX_LINE_BYTES = 1 << 20
"""A line read from a stream (``predict --file``, stdin) is at most 1 MiB."""
MAX_CHUNK_WORDS = 1 << 14
"""Tagging takes sentences ``8 * batch_size`` at a time, but at most 16,384 words at a time: the
segmenter's sentences reach 1,000 tokens, and 2,048 of them (2M words) once took 1.1 GiB. With
the demo model, 10M one-word lines peaked at 1.03x the RSS of 1M (32,768 words: 1.23x)."""
MAX_REQUEST_BYTES = 10 << 20
"""The default of ``lstm-tag serve --max-body``: a request's body is at most 10 MiB (about 1.5M words of raw text)."""
REQUEST_READ_SECONDS = 30.0
"""``lstm-tag serve`` reads a request's whole body within 30 s, else answers 408: a client that sends
slowly holds a connection, never a tagging thread, and not for ever."""
MAX_SERVE_CONNECTIONS = 64
"""``lstm-tag serve`` handles at most 64 connections at once (each holds at most one body); more get 503."""
DRAIN_SECONDS = 60.0
"""On Ctrl-C or SIGTERM, ``lstm-tag serve`` finishes the requests in flight for at most 60 s, then stops."""
MAX_SEED = 2**64 - 1
"""``train.seed`` is in [0, 2^64 - 1], the range of torch's generator."""
MAX_LAYERS = 64
"""``model.num_layers`` and ``tokenizer.num_layers`` are at most 64."""
MAX_DIMENSION = 1 << 24
"""A vector size of a config (``model.embedding_dim``, ``hidden_dim``, ``char_dim``, ``char_hidden``,
``tokenizer.char_dim``, ``hidden_dim``) is at most 16,777,216: far above any useful model (one
such layer is already ~10^15 parameters, which the parameter check refuses in words), and low
enough that no planned tensor overflows torch's 64-bit sizes (10^20 was an internal error)."""
MAX_THREADS = 1024
"""``--threads`` and ``train.threads`` are at most 1,024: OpenMP allocates its thread pool up front,
and a billion threads asked for 216 GB."""
MAX_ERROR_LINES = 20
"""An error with many problems (a config with a thousand unknown keys) shows the first 20 lines,
then ``... and N more``."""
DEFAULT_MAX_PARAMETERS = 200_000_000
"""The default of ``model.max_parameters`` and the ceiling for a checkpoint or export read from disk."""
BYTES_PER_PARAMETER = 12
"""Training holds float32 weights, gradients and momentum: 12 bytes per parameter."""
MAX_TOKEN_CHARS = 1000
MAX_SENTENCE_TOKENS = 1000
MAX_SENTENCE_CHARS = 10_000
"""A token or sentence that grows past these is cut (a line of 1 MB without spaces); a token
between grapheme clusters, so that a piece may be shorter."""
MAX_CLUSTER_CHARS = 10_000
"""A grapheme cluster longer than ``MAX_TOKEN_CHARS`` (a letter with a thousand combining
marks) stays one token up to this length, and is cut there."""
MAX_LEXICON_FORMS = 1_000_000
"""A segmenter's multiword lexicon (read from a checkpoint) holds at most 1,000,000 forms."""
MAX_LEXICON_SUFFIXES = 10_000
"""... and at most 10,000 suffixes, each tried on every multiword token it has no form for."""
MAX_MULTIWORD_WORDS = 32
"""A multiword token of the lexicon has at most 32 words."""
MAX_MULTIWORD_CHARS = 1000
"""A form of the lexicon, a suffix, and the words of one form together have at most 1,000 characters
(the segmenter cuts longer tokens, ``MAX_TOKEN_CHARS``)."""
MAX_SEGMENTER_SCORES = 16
"""A segmenter's dev scores stored in a checkpoint are at most 16 numbers."""
TAGGING_POSITIONS_PER_SENTENCE = 16
"""A tagging batch of ``--batch-size`` B sentences holds at most 16 * B padded word positions
(4,096 at the default 256): longer sentences go in smaller batches, so one batch's memory does
not depend on how long the input's longest sentences are (a sentence longer than that is a
batch of its own)."""
FORM_CACHE_FORMS = 65_536
"""Tagging keeps the character vectors of at most 65,536 word forms (``chars.FormCache``; 32 MiB
for the fast recipe's 128-wide vectors): past that it starts afresh."""
ENCODE_FORMS = 1_024
"""Tagging runs the character encoder on at most 1,024 new word forms at a time, so a chunk of
text full of new forms (the first one of a file) costs no more memory than a batch."""
MAX_PRETRAINED_ROWS = 10_000_000
"""A pretrained resource (``model.vectors``) holds at most 10,000,000 vectors: fastText's largest
published English table has 2,000,000."""
MAX_PRETRAINED_DIM = 4096
"""... of at most 4,096 dimensions (published word vectors have 25 to 300)."""
MAX_RESOURCE_TEXT = 200
"""The name and version of a pretrained resource in a checkpoint's header, and each word cluster's
label (``model.clusters``), are at most 200 characters."""
MAX_CLUSTER_WORDS = 10_000_000
"""A word-cluster resource (``model.clusters``) holds at most 10,000,000 words (spaCy's English
Brown clusters list 1,000,001)."""
MAX_CLUSTERS = 100_000
"""... in at most 100,000 distinct clusters (Brown clusterings have 100 to 5,000; the labels are in the
checkpoint's header)."""
MAX_CLUSTER_PREFIX = 64
"""A bit-string prefix of a cluster (``model.cluster_prefixes``) is at most 64 bits long (the paths of
1,000 Brown clusters have up to about 20)."""


def planned_parameters(build: Callable[[], nn.Module]) -> dict[str, tuple[int, ...]]:
    """The parameter and buffer shapes of the module ``build()`` makes, without allocating it.

    The module is built on PyTorch's ``meta`` device, which records shapes and holds no data,
    so a config or a checkpoint header that asks for a huge model costs nothing to inspect.
    """
    import torch  # here: the config loader uses this module and needs no torch
    from torch.overrides import TorchFunctionMode

    class SkipNormal(TorchFunctionMode):
        """Meta tensors hold no values, so initialising them is moot; and ``normal_`` on the meta
        device goes through a Python decomposition whose first call costs ~1.8 s of start-up."""

        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func is torch.nn.init.normal_:  # called as normal_(tensor=..., mean=..., ...) here
                return kwargs["tensor"] if kwargs and "tensor" in kwargs else args[0]
            return func(*args, **(kwargs or {}))

    with torch.device("meta"), SkipNormal():
        module = build()
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def count_parameters(shapes: dict[str, tuple[int, ...]]) -> int:
    """The number of values in ``shapes``."""
    count = 0
    for shape in shapes.values():
        size = 1
        for dim in shape:
            size *= dim
        count += size
    return count


def check_parameters(shapes: dict[str, tuple[int, ...]], limit: int, where: str) -> int:
    """The number of values in ``shapes``; a ``UserError`` naming ``where`` if it is above ``limit``."""
    count = count_parameters(shapes)
    if count > limit:
        need = count * BYTES_PER_PARAMETER / 2**30
        raise UserError(
            f"{where}: the model would have {count:,} parameters (about {need:,.1f} GiB to train), "
            f"above the limit of {limit:,} (model.max_parameters)"
        )
    return count
