"""What a tagger costs and what the machine gives: FLOPs per token, the matmul rate, machine facts.

FlopCounterMode counts the matrix products at the aten level (mm, addmm, bmm, convolutions;
2 FLOPs per multiply-add) and nothing element-wise (gate non-linearities, log_softmax, a
CRF's Viterbi adds and maxes): the character CNN, the hand-written cells of ``cells.py`` and
the Linear layers are counted as they run. The encoders that run PyTorch's fused recurrent
kernel (``cells.fused_direction``) with the weights of an ``nn.LSTM``/``nn.GRU`` child are
hooked, instance by instance: with torch 2.13 on the CPU the counter sees nothing of the
LSTM kernel (it does count the GRU's products), so when an encoder's forward pass leaves
the counter's total where it was, its passes are added analytically.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lstm_tagger.model.chars import CharBatch
from lstm_tagger.checkpoint import Checkpoint
from lstm_tagger.errors import UserError
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE, tag


@dataclass
class FlopCount:
    """What ``forward_flops`` found: the total, and the part added analytically per module."""

    counted: int
    added: dict[str, int]

    @property
    def total(self) -> int:
        return self.counted + sum(self.added.values())


def _positions(args: tuple) -> int:
    """Sentences (or forms) x steps that an encoder's fused passes run over: the batch and its
    longest length (``run_layers`` stops there), from ``(inputs, lengths)`` or a ``CharBatch``."""
    lengths = args[0].lengths if isinstance(args[0], CharBatch) else args[1]
    return len(lengths) * int(lengths.max()) if len(lengths) else 0


@contextmanager
def _counting_fused_kernels(model: nn.Module, counter: FlopCounterMode, added: dict[str, int]) -> Iterator[None]:
    """Hook every module of ``model`` with an ``nn.LSTM``/``nn.GRU`` child (whose weights it runs
    through the fused kernel): a forward pass that the counter did not see costs 2 FLOPs per
    weight entry (every ``weight_ih`` and ``weight_hh``) per position, padding included."""
    with ExitStack() as hooks:
        for module in model.modules():
            for rnn in (child for child in module.children() if isinstance(child, nn.RNNBase)):
                weights = sum(p.numel() for name, p in rnn.named_parameters() if name.startswith("weight_"))
                before: list[int] = []

                def start(_module: nn.Module, _args: tuple, before: list[int] = before) -> None:
                    before.append(counter.get_total_flops())

                def end(_module: nn.Module, args: tuple, _output: Any, rnn=rnn, weights=weights, before=before) -> None:
                    if counter.get_total_flops() == before.pop():
                        key = type(rnn).__name__
                        added[key] = added.get(key, 0) + 2 * weights * _positions(args)

                hooks.callback(module.register_forward_pre_hook(start).remove)
                hooks.callback(module.register_forward_hook(end).remove)
        yield


def forward_flops(model: nn.Module, run: Callable[[], Any]) -> FlopCount:
    """Count the floating-point operations of ``run()`` (which calls ``model``): counted by
    FlopCounterMode, plus the fused recurrent passes it does not see (see the module docstring)."""
    added: dict[str, int] = {}
    with FlopCounterMode(display=False) as counter, _counting_fused_kernels(model, counter, added):
        run()
    return FlopCount(counter.get_total_flops(), added)


def flops_per_token(checkpoint: Checkpoint, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """FLOPs per real token of tagging ``sentences`` with ``tag`` (batched by length, as ``predict`` does).

    Padding positions that a module computes (the hand-written cells, the output Linear)
    are part of the work and so of the count; the divisor is the real tokens.
    """
    sentences = [list(words) for words in sentences if words]
    if not sentences:
        raise UserError("the tagging corpus has no sentences")
    tokens = sum(len(words) for words in sentences)
    count = forward_flops(checkpoint.model, lambda: tag(checkpoint, sentences, batch_size))
    return {
        "flops_per_token": count.total / tokens,
        "counted_by_flop_counter": count.counted,
        "added_analytically": count.added,
        "sentences": len(sentences),
        "tokens": tokens,
        "batch_size": batch_size,
    }


# --- the machine --------------------------------------------------------------------------


def matmul_rate(m: int, k: int, n: int, min_seconds: float = 0.3, min_repeats: int = 5, max_repeats: int = 200) -> dict[str, Any]:
    """Median time of a float32 ``torch.mm`` of (m, k) x (k, n) on this process's threads -> GFLOP/s (2mkn per product)."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    for _ in range(2):
        torch.mm(a, b, out=out)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_repeats or (len(times) < max_repeats and time.perf_counter() - started < min_seconds):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"shape": [m, k, n], "repeats": len(times), "median_seconds": median, "gflops": 2 * m * k * n / median / 1e9}


def model_shape(model: nn.Module, sentences: Sequence[Sequence[str]]) -> tuple[int, int, int]:
    """(batch tokens, input size, gate rows) of the sentence encoder's first input projection
    (the last recurrent module, after any character encoder) on a ``predict`` batch of
    average sentences; without a recurrent module, the output layer's shape."""
    lengths = [len(w) for w in sentences if w]
    rows = max(1, round(DEFAULT_BATCH_SIZE * sum(lengths) / max(1, len(lengths))))
    weights = [w for w in (getattr(m, "weight_ih_l0", None) for m in model.modules()) if isinstance(w, torch.Tensor)]
    if weights:
        return rows, weights[-1].size(1), weights[-1].size(0)
    linear = next(m for m in model.modules() if isinstance(m, nn.Linear))
    return rows, linear.in_features, linear.out_features


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
