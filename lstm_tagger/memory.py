"""Keep a process's resident memory from creeping up: glibc's malloc, set for training and serving.

Training fixes the mmap threshold (``fix_mmap_threshold``); the server caps malloc's arenas
(``cap_arenas``). Both do nothing elsewhere than glibc, or when the user set glibc's own
environment variable for the setting. Where tcmalloc is installed, ``lstm-tag train`` runs on it
instead (``preload_environment``): faster than glibc's malloc with the threshold fixed.

The mmap threshold.

Why training grew to several times its working set: glibc's ``malloc`` serves a block of at
least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with its own ``mmap``, returned to the
system on ``free``; but each time such a block is freed, glibc raises the threshold to that
block's size (up to 32 MiB on 64-bit). After the first few batches, PyTorch's tensors of a
few hundred KiB to a few MiB (activations, gradients, the character model's batches, whose
shape changes with every batch) come from the heap instead, where blocks of ever-changing
sizes fragment it and freed memory is rarely given back. With the character BiLSTM,
``configs/ud_ewt.yaml`` peaked at 0.84 GB in a one-epoch run and 1.29 GB in a four-epoch run
(one thread), and at about 2.7 GB over a whole run.

Setting the threshold explicitly (``mallopt(M_MMAP_THRESHOLD, 16 MiB)``) turns the dynamic
adjustment off: tensors of 16 MiB or more keep their own mappings, unmapped when freed, and
the heap holds only smaller blocks. Only where the memory goes changes, not a single number
computed. The price is page faults: a fresh mapping's pages are zero-filled by the kernel on
first touch. In a probe of 400 training batches of ``configs/ud_ewt.yaml`` (one thread), the
threshold at 1 MiB and at 4 MiB gave about the same resident memory (537 and 557 MB against
913 MB by default) with 8x and 4.7x the default's minor page faults (128 KiB: 10x over a
one-epoch run). 4 MiB was kept at first; it made every epoch 1.2-1.4x slower than glibc's
default (one epoch of ``configs/ud_ewt_word.yaml``, two checkouts timed alternately with
``python -m lstm_tagger.benchmark.sidebyside``: 14.9 s at 4 MiB, 12.4 s at 16 MiB), so 16 MiB
is kept: still a fixed threshold (no creep), with a quarter of the page faults' cost.
Elsewhere than glibc (macOS, musl, Windows) this does nothing; so does it when the user set
``MALLOC_MMAP_THRESHOLD_`` (glibc's own environment variable, which then wins).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD = 16 * 1024 * 1024  # bytes; see above for the choice


SERVE_ARENAS = 2
"""Malloc arenas the server may use. Each thread that allocates gets an arena of its own (up to 8 per
core), which keeps at its largest what that thread once needed: with 8 clients sending 1,000-sentence
requests, the server's resident memory rose 605 -> about 840 MiB over 6 minutes with glibc's default
and 522 -> about 610 MiB over 5 minutes with two arenas, serving faster (``benchmark.serve --soak``)."""


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for this process; True if it was set.

    Process-wide and lasting: blocks of ``threshold`` bytes or more are mapped on their own
    and unmapped when freed. False (and nothing changed) without glibc, or when the
    environment already sets ``MALLOC_MMAP_THRESHOLD_``.
    """
    return _mallopt("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, threshold)


def cap_arenas(count: int = SERVE_ARENAS) -> bool:
    """Let glibc's malloc use at most ``count`` arenas in this process (before its threads start);
    True if it was set. False (and nothing changed) without glibc, or when the environment already
    sets ``MALLOC_ARENA_MAX``."""
    return _mallopt("MALLOC_ARENA_MAX", M_ARENA_MAX, count)


def _mallopt(variable: str, option: int, value: int) -> bool:
    """``mallopt(option, value)`` unless the environment sets glibc's ``variable``; True if it took."""
    if variable in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(option, value) == 1


TCMALLOC = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
"""The allocator ``lstm-tag train`` preloads where one is installed (Debian/Ubuntu: ``apt install
libtcmalloc-minimal4``). One epoch of ``configs/ud_ewt_word.yaml``, three runs of each alternated
(``python -m lstm_tagger.benchmark.sidebyside HEAD HEAD --env-b LD_PRELOAD=...``): training
seconds 10.1 with glibc (threshold fixed) against 9.0 with tcmalloc, peak RSS 654 against 750 MiB
(docs/threads.md)."""
ALLOCATOR_VARIABLE = "LSTM_TAG_ALLOCATOR"
"""``system``: keep the C library's malloc. Set to ``tcmalloc`` in the process that was re-executed with it."""


def preload_environment(command: str | None, environ: dict[str, str], found: str | None) -> dict[str, str] | None:
    """The environment in which to run ``lstm-tag COMMAND`` again with tcmalloc preloaded, or None
    to go on as it is: only ``train``, on Linux, with ``found`` (the library's path, see
    ``find_tcmalloc``), when neither ``LSTM_TAG_ALLOCATOR`` (``system``, or set by the launch
    before) nor ``LD_PRELOAD`` (the user's choice) is set."""
    if command != "train" or found is None or os.name != "posix":
        return None
    if environ.get(ALLOCATOR_VARIABLE) or environ.get("LD_PRELOAD"):
        return None
    return {**environ, "LD_PRELOAD": found, ALLOCATOR_VARIABLE: "tcmalloc"}


def find_tcmalloc() -> str | None:
    """The path of an installed tcmalloc (``TCMALLOC``), or None."""
    for name in TCMALLOC:
        for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"):
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    return None
