"""Data-parallel training over several processes: torch.distributed and DDP, launched by torchrun.

``torchrun --nproc-per-node N -m lstm_tagger train CONFIG ...`` starts N copies of
``lstm-tag train`` with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set; ``World.from_env``
reads them. Without them (or with ``WORLD_SIZE=1``) every method here does nothing or hands
its input back unchanged, and training is exactly the single-process training.

How the work is shared:

- ``train.batch_size`` is the global batch. Every rank draws the same batch order (the
  same seed, the same ``bucket_order``), and takes every ``WORLD_SIZE``-th sentence of each
  batch, starting at its rank (``World.share``): a batch of B sentences gives B // N or
  B // N + 1 sentences to each rank, the extra ones to the lowest ranks. A rank left with
  none (B < N) runs the batch's first sentence with weight 0, so that it still takes part
  in DDP's gradient all-reduce while adding nothing to it.
- ``Tagger.loss`` is the mean over a batch's tokens, and DDP averages the ranks' gradients.
  Each rank's loss is therefore multiplied by ``its tokens * N / the batch's tokens``: the
  average of the N gradients is then the gradient of the whole batch's token mean, the
  gradient one process gets for that batch (up to float rounding). Clipping and SGD then
  see the same gradient on every rank, and the weights stay identical everywhere.
- Dropout and word dropout draw different random numbers on each rank: at the start of
  every epoch, each rank seeds torch's generator from (``train.seed``, rank, epoch). The
  masks of a run depend on the number of processes (a one-process run keeps its single
  stream), and ``--resume`` reproduces them without storing every rank's generator.
- Rank 0 alone evaluates, writes the run directory (checkpoints, ``metrics.jsonl``,
  ``train.log``, reports, plots), holds the run lock and prints; the other ranks print
  nothing. Rank 0's loop state (epoch, best accuracy, the early-stopping decision) is
  broadcast after every epoch, so every rank stops together.
- A failure on one rank must not leave the others waiting forever in their next
  collective: ``World.together`` checks that a block succeeded on every rank; if not, every
  rank stops, and rank 0 reports the error (the other ranks raise a silent ``RankStopped``).
  Errors found before the ranks connect (a bad config or ``--set``, a missing data file, no
  CUDA device) end that rank at once; torchrun then stops the others.
- ``--resume``: rank 0 reads the last checkpoint and broadcasts it, so no other node needs
  the run directory. With the same number of processes the run continues exactly as if it
  had never stopped; with another number it continues the same optimisation with other
  dropout masks.
- Ctrl-C: torchrun passes it to every rank; rank 0 keeps the checkpoints of the last
  finished epoch and writes the report, as a single process does.
"""

from __future__ import annotations

import gc
import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lstm_tagger.errors import UserError
from lstm_tagger.model.tagger import Tagger

DEBUG_WEIGHTS = "LSTM_TAG_DEBUG_RANK_WEIGHTS"
"""For tests: a folder where every rank writes its final weights as ``rank<R>.safetensors``."""

T = TypeVar("T")


class RankStopped(UserError):
    """Raised on a rank > 0 that stops because of an error rank 0 reports: the CLI prints nothing for it."""


@dataclass(frozen=True)
class Share:
    """One rank's part of a global batch.

    sentences:    indices of the training sentences this rank runs (a stand-in if it has none)
    weight:       its loss factor, ``own tokens * world size / batch_tokens`` (0 for a stand-in)
    batch_tokens: the tokens of the whole global batch
    """

    sentences: list[int]
    weight: float
    batch_tokens: int


@dataclass(frozen=True)
class World:
    """The processes of a run and this one's place among them; ``World()`` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    """processes of the run on this machine (torchrun's ``LOCAL_WORLD_SIZE``)"""

    @classmethod
    def from_env(cls) -> "World":
        """The world torchrun describes in ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; one process without them."""

        def number(name: str, default: str) -> int:
            text = os.environ.get(name, default)
            try:
                return int(text)
            except ValueError:
                raise UserError(f"environment variable {name}={text!r} is not a number") from None

        size = number("WORLD_SIZE", "1")
        if size <= 1:
            return cls()
        return cls(number("RANK", "0"), size, number("LOCAL_RANK", "0"), number("LOCAL_WORLD_SIZE", str(size)))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that evaluates, writes the run directory and prints."""
        return self.rank == 0

    @contextmanager
    def connected(self, device: torch.device) -> Iterator[None]:
        """Join the process group for the block: gloo on CPU, NCCL on CUDA (one process: nothing to join).

        A ``UserError`` on a rank > 0 leaves as ``RankStopped``: rank 0 reports every error of
        the run (``together`` hands it the errors only one rank meets; the others, such as a
        diverged loss, all ranks meet at once).
        """
        if not self.distributed:
            yield
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        try:
            yield
        except UserError as exc:
            if self.is_main or isinstance(exc, RankStopped):
                raise
            raise RankStopped(str(exc)) from exc
        finally:
            # DDP sits in a reference cycle: free it, and its hold on the process group, now;
            # a process group left to the interpreter's exit can abort it ("terminate called ...").
            gc.collect()
            dist.destroy_process_group()

    @contextmanager
    def together(self) -> Iterator[None]:
        """Run the block on every rank, then go on only if it succeeded on all of them.

        A rank whose block failed re-raises its own exception. The others raise
        ``KeyboardInterrupt`` if a rank was interrupted; otherwise rank 0 raises a
        ``UserError`` naming the failed rank and its message, and the rest ``RankStopped``.
        """
        if not self.distributed:
            yield
            return
        try:
            yield
        except BaseException as exc:
            self._exchange(exc)
            raise
        self._exchange(None)

    def _exchange(self, failure: BaseException | None) -> None:
        """Tell every rank how the block ended here; raise if it failed on another rank.

        (If it failed here, the caller re-raises its own exception.)
        """
        if failure is None:
            mine = None
        elif isinstance(failure, KeyboardInterrupt):
            mine = ("interrupted", "")
        else:
            mine = ("failed", str(failure) if isinstance(failure, UserError) else repr(failure))
        outcomes: list[tuple[str, str] | None] = [None] * self.size
        dist.all_gather_object(outcomes, mine)
        failures = [(rank, outcome) for rank, outcome in enumerate(outcomes) if outcome is not None]
        if failure is not None or not failures:
            return
        if any(kind == "interrupted" for _, (kind, _) in failures):
            raise KeyboardInterrupt
        rank, (_, message) = failures[0]
        raise UserError(f"rank {rank}: {message}") if self.is_main else RankStopped(message)

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (pickled between the ranks; one process: ``value``)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def share(self, batch: Sequence[int], lengths: Sequence[int]) -> Share:
        """This rank's part of a global batch of sentence indices (see the module docstring)."""
        batch_tokens = sum(lengths[i] for i in batch)
        if not self.distributed:
            return Share(list(batch), 1.0, batch_tokens)
        mine = list(batch[self.rank :: self.size])
        if not mine:
            return Share(list(batch[:1]), 0.0, batch_tokens)
        return Share(mine, sum(lengths[i] for i in mine) * self.size / batch_tokens, batch_tokens)

    def loss_function(self, model: Tagger, device: torch.device) -> Callable[..., torch.Tensor]:
        """``model.loss``, or in a distributed run the same through DDP, whose backward averages the gradients."""
        if not self.distributed:
            return model.loss
        return DistributedDataParallel(_Loss(model), device_ids=[device.index] if device.type == "cuda" else None)

    def average(self, loss: torch.Tensor) -> float:
        """The mean of a (weighted) loss over the ranks: the token mean of the whole global batch."""
        if not self.distributed:
            return loss.item()
        total = loss.detach().clone()
        dist.all_reduce(total)
        return total.item() / self.size

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """In a distributed run, seed torch's generator for this rank and epoch (one process: keep its stream)."""
        if self.distributed:
            digest = hashlib.sha256(f"lstm-tag {seed} {self.rank} {epoch}".encode()).digest()
            torch.manual_seed(int.from_bytes(digest[:8], "little"))

    def save_debug_weights(self, model: nn.Module) -> None:
        """With ``LSTM_TAG_DEBUG_RANK_WEIGHTS=DIR`` set, write this rank's weights to ``DIR/rank<R>.safetensors``."""
        folder = os.environ.get(DEBUG_WEIGHTS)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
            save_file(tensors, str(Path(folder) / f"rank{self.rank}.safetensors"))


class _Loss(nn.Module):
    """``Tagger.loss`` as a module's ``forward``: DDP synchronises gradients only through ``forward``."""

    def __init__(self, tagger: Tagger):
        super().__init__()
        self.tagger = tagger

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.tagger.loss(*args, **kwargs)
