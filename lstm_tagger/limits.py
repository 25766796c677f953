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
MAX_LINE_BYTES = 1 << 20
"""A line read from a stream (``predict --file``, stdin) is at most 1 MiB."""
MAX_SEED = 2**64 - 1
"""``train.seed`` is in [0, 2^64 - 1], the range of torch's generator."""
MAX_LAYERS = 64
"""``model.num_layers`` is at most 64."""
DEFAULT_MAX_PARAMETERS = 200_000_000
"""The default of ``model.max_parameters`` and the ceiling for a checkpoint or export read from disk."""
BYTES_PER_PARAMETER = 12
"""Training holds float32 weights, gradients and momentum: 12 bytes per parameter."""
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


def check_parameters(shapes: dict[str, tuple[int, ...]], limit: int, where: str) -> int:
    """The number of values in ``shapes``; a ``UserError`` naming ``where`` if it is above ``limit``."""
    count = 0
    for shape in shapes.values():
        size = 1
        for dim in shape:
            size *= dim
        count += size
    if count > limit:
        need = count * BYTES_PER_PARAMETER / 2**30
        raise UserError(
            f"{where}: the model would have {count:,} parameters (about {need:,.1f} GiB to train), "
            f"above the limit of {limit:,} (model.max_parameters)"
        )
    return count
