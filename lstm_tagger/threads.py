"""How many threads torch uses inside one operation, on a machine other programs share.

PyTorch's OpenMP worker threads spin while they wait for work. With every core in use by
torch, another busy program makes each of the thousands of small parallel regions of a
recurrent network's backward pass wait for a worker that is not running, and training
becomes many times slower; with one thread it barely changes. Alone on the machine, all
cores are faster. ``ThreadChooser`` measures and decides while training runs:

1. Probe: a few batches at each candidate count (the current one first; at the start one
   thread, then all cores), the first batch after a switch not counted (warm-up); the
   cheapest wins. A batch's cost is its seconds per token, and after the start divided by the
   best seconds per token of batches of its size at the current count (``size_class``): a
   batch of short sentences costs several times more per token than one of long sentences,
   so plain seconds per token of three random batches each picked the slower count now and
   then on a quiet machine. A probe batch that is ``give_up`` times costlier than the best
   figure so far ends that candidate's probe at once, so probing a setting that collapses
   costs one batch.
2. Watch: each batch's seconds per token are divided by the best of earlier batches of its
   size class since the probe; when the median of the last ``window`` such ratios is above
   ``slowdown`` (2.5: another program started), it probes again at once. (Comparing medians
   of windows of batches of any size, as it once did, saw a window of small batches as a
   slowdown.)
3. Probe again every ``interval`` seconds anyway (another program may have stopped, which
   one thread does not feel): the interval doubles, up to ``max_interval``, each time a
   probe confirms the choice (the count chosen before it, not the count of the probe's last
   batch, which never confirmed anything), and starts again from ``interval`` when the choice
   changes. On a quiet machine, after the start, it probes only then.

``threads: N`` in the config fixes the count instead. ``auto`` chooses between one thread
and all the cores the process may use, or ``OMP_NUM_THREADS`` cores where that is set
(``OMP_NUM_THREADS=1`` fixes one thread). Under torchrun ``auto`` gives each process an
equal share of the cores (``cores // processes on this machine``), fixed, whatever
``OMP_NUM_THREADS`` says: torchrun sets it to 1 for every process, which wastes cores.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections import deque
from typing import Callable, Sequence

from lstm_tagger.errors import ConfigError
from lstm_tagger.limits import MAX_THREADS


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` as a whole number > 0, or None where it is unset or not one."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_THREADS else None


def auto_threads() -> int:
    """The most threads ``auto`` uses: the cores this process may run on, or ``OMP_NUM_THREADS``
    where that is fewer."""
    cores = available_cores()
    return min(cores, _omp_threads() or cores)


def thread_setting(value: object) -> int | None:
    """``auto`` -> None, a whole number from 1 to ``limits.MAX_THREADS`` -> that number, in any case
    and with blanks around it (``AUTO``, ``'4 '``); anything else is a ValueError saying what is
    allowed. The one reading of ``--threads`` on every command and of ``train.threads``."""
    text = str(value).strip().lower() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text == "auto":
        return None
    if text is None or not (text.isascii() and text.isdigit()) or not text.strip("0"):
        raise ValueError("must be 'auto' or a whole number > 0")
    if len(text.lstrip("0")) > len(str(MAX_THREADS)) or int(text) > MAX_THREADS:
        raise ValueError(f"must be at most {MAX_THREADS:,} (or 'auto')")
    return int(text)


def parse_threads(value: str | int, what: str = "--threads") -> int | None:
    """``thread_setting`` of an option's text; a ConfigError naming ``what`` for anything else."""
    try:
        return thread_setting(value)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}, got {value!r}") from None


def set_threads(count: int | None) -> None:
    """Fix torch's intra-op thread count; ``None`` (auto) leaves torch's default, one per core."""
    import torch  # here: the config reads ``thread_setting`` and needs no torch

    if count is not None:
        torch.set_num_threads(count)


def set_tagging_threads(count: int | None) -> int:
    """For streamed tagging: ``count`` (None: the available cores) chunks tagged at once, each
    by one worker thread with one torch thread; returns the number of workers.

    The fast models' operations are small: two chunks on one core each beat one chunk on two
    cores, whose OpenMP threads wait on each other and on the Python thread that reads and
    writes (measured with configs/ud_ewt_fast.yaml's model on 1M EWT tokens, docs/benchmarks/speed.md).
    """
    set_threads(1)
    return count if count is not None else available_cores()


def size_class(tokens: int) -> int:
    """Batches within a factor of about sqrt(2) in tokens share a class, and only batches of one
    class are compared in seconds per token: a batch of 32 one-word sentences costs several times
    more per token than one of 32 long sentences (the optimiser step and the Python around a batch
    are spread over fewer tokens; 6x between EWT's smallest and largest batches)."""
    return round(2 * math.log2(max(tokens, 1)))


class ThreadChooser:
    """Chooses torch's intra-op thread count from the measured speed of training batches.

    Call ``batch_started()`` before a batch and ``batch_finished(tokens)`` after it; the
    chooser applies its choice through ``apply`` (``set_threads``: torch's count) between
    batches and describes each decision through ``log``. ``clock`` gives seconds.
    """

    def __init__(
        self,
        candidates: Sequence[int],
        *,
        apply: Callable[[int], None] = set_threads,
        clock: Callable[[], float] = time.perf_counter,
        log: Callable[[str], None] = lambda message: None,
        probe_batches: int = 3,
        window: int = 8,
        slowdown: float = 2.5,
        give_up: float = 3.0,
        interval: float = 20.0,
        max_interval: float = 160.0,
    ):
        self.candidates = list(dict.fromkeys(candidates))
        self.apply, self.clock, self.log = apply, clock, log
        self.probe_batches, self.slowdown, self.give_up = probe_batches, slowdown, give_up
        self.first_interval, self.max_interval = interval, max_interval
        self.interval = interval
        self.threads = min(self.candidates)  # the start probe begins with the count that never collapses
        self.chosen = self.threads  # the choice of the last probe (the count outside probes)
        self.recent: deque[float] = deque(maxlen=window)  # batches' seconds per token / their class's best
        self.best: dict[int, float] = {}  # size class -> fewest seconds per token at ``chosen`` since the last probe
        self.plan: list[tuple[int, bool]] = []  # (threads, counted) for the coming probe batches
        self.probe: dict[int, list[float]] = {}
        self.next_probe = float("inf")
        self.started = 0.0
        self.apply(self.threads)
        self._start_probe("start")

    def batch_started(self) -> None:
        if self.plan and self.plan[0][0] != self.threads:
            self.threads = self.plan[0][0]
            self.apply(self.threads)
        self.started = self.clock()

    def batch_finished(self, tokens: int) -> None:
        seconds_per_token = (self.clock() - self.started) / max(tokens, 1)
        if self.plan:
            self._probe_step(seconds_per_token / self._reference(size_class(tokens)))
        else:
            self._watch(seconds_per_token, size_class(tokens))

    def _reference(self, size: int) -> float:
        """What a probe batch's seconds per token are divided by: the best at ``chosen`` of its size
        class (or the nearest class seen), so that candidates that ran batches of different sizes
        compare; 1 (plain seconds per token) when nothing was seen, at the start."""
        if not self.best:
            return 1.0
        return self.best[min(self.best, key=lambda c: (abs(c - size), c))]

    def _start_probe(self, reason: str) -> None:
        """Plan the probe: the current count first (no warm-up needed), then the others."""
        order = [self.chosen] + [n for n in self.candidates if n != self.chosen]
        self.plan = [(n, counted) for i, n in enumerate(order) for counted in [i == 0] + [True] * self.probe_batches]
        self.probe = {n: [] for n in order}
        self.reason = reason
        self.relative = bool(self.best)  # the probe's costs are relative to ``chosen``'s best (``_reference``)

    def _figure(self, cost: float) -> str:
        return f"{cost:.2f}x" if self.relative else f"{1e6 * cost:.1f} us/token"

    def _probe_step(self, cost: float) -> None:
        threads, counted = self.plan.pop(0)
        if counted:
            self.probe[threads].append(cost)
        measured = [statistics.median(v) for n, v in self.probe.items() if v and n != threads]
        if measured and cost > self.give_up * min(measured):
            self.probe[threads].append(cost)  # far slower: the rest of its probe is skipped
            self.plan = [step for step in self.plan if step[0] != threads]
        if not self.plan:
            self._decide()

    def _decide(self) -> None:
        cost = {n: statistics.median(v) for n, v in self.probe.items() if v}
        chosen = min(cost, key=cost.get)
        if self.reason != "start":
            confirmed = chosen == self.chosen
            self.interval = min(2 * self.interval, self.max_interval) if confirmed else self.first_interval
        figures = ", ".join(f"{n} thread{'s' if n > 1 else ''} {self._figure(c)}" for n, c in cost.items())
        if self.relative:
            figures += f" the best at {self.chosen} thread{'s' if self.chosen > 1 else ''} for batches of each size"
        self.log(f"threads: {chosen} ({self.reason}; {figures}; next probe in {self.interval:.0f} s)")
        self.chosen = chosen
        if chosen != self.threads:
            self.threads = chosen
            self.apply(chosen)
        self.recent.clear()
        self.best.clear()
        self.next_probe = self.clock() + self.interval

    def _watch(self, seconds_per_token: float, size: int) -> None:
        best = self.best.get(size)
        self.best[size] = min(best or seconds_per_token, seconds_per_token)
        if best is not None:  # a class seen before: how much slower than its best
            self.recent.append(seconds_per_token / best)
            if len(self.recent) == self.recent.maxlen and statistics.median(self.recent) > self.slowdown:
                self.interval = self.first_interval
                self._start_probe(f"{statistics.median(self.recent):.1f}x slower")
                return
        if self.clock() >= self.next_probe:
            self._start_probe("periodic")


def thread_chooser(setting: int | None, distributed_processes: int, log: Callable[[str], None]) -> ThreadChooser | None:
    """The chooser for ``train.threads`` (None: auto), or None when the count is fixed.

    A fixed count (or torchrun's share) is applied here and logged.
    """
    cores = available_cores()
    if setting is not None:
        set_threads(setting)
        if setting * distributed_processes > cores:
            log(f"threads: {setting} per process x {distributed_processes} processes > {cores} cores: expect contention")
        return None
    if distributed_processes > 1:
        share = max(1, cores // distributed_processes)
        set_threads(share)
        log(f"threads: {share} per process ({cores} cores, {distributed_processes} processes on this machine)")
        return None
    cores = auto_threads()
    if cores == 1:
        set_threads(1)
        return None
    return ThreadChooser([cores, 1], log=log)
