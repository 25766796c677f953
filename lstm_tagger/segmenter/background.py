"""The segmenter trained in a child process while the tagger trains.

The segmenter's character BiLSTM runs long sequences of small matrix products, which one
core computes about as fast as two (an EWT epoch: ~38 s on one thread beside another job,
31-35 s on two threads alone), and the tagger loses only about a quarter of its speed going
from two threads to one. So on a machine with two cores or more, ``lstm-tag train`` gives the
segmenter one core in a child process and trains the tagger on the rest at the same time,
instead of one after the other. A process, not a thread: the segmenter's dropout and seeding
would otherwise draw from the tagger's global random generator, and a run would no longer be
reproducible or resume exactly.

The child (``python -m lstm_tagger.segmenter.background CONFIG OUTPUT``) reads the resolved config,
trains with one torch thread, prints its lines on stdout (the parent logs them), writes the
segmenter to OUTPUT and exits 0; a user error is one line on stderr, ``KIND<TAB>message``,
and exit 2. It exits as soon as it sees that its parent has gone. The parent waits for the
child's first line (the data read, or an error) before the tagger starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors

from lstm_tagger.config import Config, config_to_yaml
from lstm_tagger.configfile import load_config
from lstm_tagger.errors import CheckpointError, ConfigError, DataError, UserError
from lstm_tagger.files import atomic_write_bytes
from lstm_tagger.segmenter.network import Segmenter
from lstm_tagger.segmenter.training import train_segmenter

MIN_TOKENS = 5_000
"""Below this many training tokens the segmenter trains first, in the process (a child's start,
about two seconds of importing torch, would cost more than it saves: the demo corpus's segmenter
trains in seconds). From a treebank of 20,000 words up (VTB, the 400-sentence Chinese split) it
trains for minutes, and beside the tagger the run is shorter and each process's peak memory is its
own instead of the segmenter's phase and the tagger's adding up in one process."""
_ERRORS = {cls.__name__: cls for cls in (UserError, ConfigError, DataError, CheckpointError)}
_NONE = "no tokenizer"


class SegmenterJob:
    """A segmenter training in a child process; ``done()`` polls, ``result()`` waits for it."""

    def __init__(self, config: Config, say: Callable[[str], None]):
        self.say = say
        self.folder = Path(tempfile.mkdtemp(prefix="lstm-tag-tokenizer-"))
        self.output = self.folder / "segmenter.safetensors"
        (self.folder / "config.yaml").write_text(config_to_yaml(config), encoding="utf-8")
        self.config = config
        self.errors = self.folder / "stderr.txt"  # a file, not a pipe: nothing the child writes there can block it
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with self.errors.open("wb") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lstm_tagger.segmenter.background", str(self.folder / "config.yaml"), str(self.output)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True, encoding="utf-8", env=env,
            )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()  # the data are read: the first line, or the end (an error)
        self.wanted = first.rstrip("\n") != _NONE
        if first and self.wanted:
            say(first.rstrip("\n"))
        self.reader = threading.Thread(target=self._forward, daemon=True)
        self.reader.start()
        if not first:
            self.result()  # raises the child's error

    def _forward(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.say(line.rstrip("\n"))

    def done(self) -> bool:
        return self.process.poll() is not None

    def result(self) -> Segmenter | None:
        """The trained segmenter (None when the data ask for none); the child's user error as
        the same error here. Waits for the child if it is still training."""
        try:
            code = self.process.wait()
            self.reader.join()
            error = self.errors.read_text(encoding="utf-8", errors="replace").strip()
            if code != 0:
                kind, _, message = error.rpartition("\n")[2].partition("\t")
                if kind in _ERRORS and message:
                    raise _ERRORS[kind](message)
                raise UserError(f"training the tokenizer failed (exit code {code}): {error.splitlines()[-1] if error else 'no message'}")
            if not self.wanted:
                return None
            with safe_open(str(self.output), "pt") as stored:  # the tensors and the header's metadata
                tensors = {name: stored.get_tensor(name) for name in stored.keys()}
                metadata = stored.metadata()
            return Segmenter.load(self.config.tokenizer, tensors, metadata["segmenter"])
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child if it still runs and remove its folder."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _child(config_path: str, output: str) -> int:
    torch.set_num_threads(1)
    parent = os.getppid()

    def say(line: str) -> None:
        print(line, flush=True)

    def progress(epoch: int, batches: int) -> Callable[[float | None], None]:
        def step(loss: float | None) -> None:
            if os.getppid() != parent:  # the trainer is gone: so is the reason to go on
                os._exit(1)

        return step

    try:
        segmenter = train_segmenter(load_config(config_path), say, progress)
    except UserError as exc:
        print(f"{type(exc).__name__}\t{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if segmenter is None:
        say(_NONE)
        return 0
    atomic_write_bytes(output, save_tensors(segmenter.tensors(), metadata={"segmenter": segmenter.metadata()}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:3]))
