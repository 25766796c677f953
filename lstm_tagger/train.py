"""``train(config, output_dir)``: the epoch loop, checkpoints and the final report.

The run directory gets ``config.yaml`` (the resolved config), ``model-best.safetensors``
(best dev accuracy), ``model-last.safetensors`` (last finished epoch), ``metrics.jsonl``
(one line per epoch) and ``report.md`` / ``report.json``. Every file is written
atomically, so an interrupted run leaves the last finished epoch's files intact.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from .checkpoint import BEST, LAST, Checkpoint, load_checkpoint, save_checkpoint
from .config import Config, config_to_yaml
from .chars import FormTable, build_char_vocab
from .data import Sentence, bucket_order, collate, read_corpus
from .distributed import World
from .errors import ConfigError, DataError, UserError
from .evaluate import evaluate, tag_score_matrix
from .files import atomic_write_text, run_lock
from .threads import thread_chooser
from .model import Tagger
from .report import print_scores, write_report
from .vectors import Vectors, align, matches, read_vectors
from .vocab import PAD_ID, UNK_ID, WordVocab, build_tag_vocab, build_word_vocab

DIVERGED_LOSS = 1e4
"""A mean per-token loss above this (tag probabilities below e^-10000) means training has diverged,
even while the numbers are still finite."""

EXAMPLE_SENTENCES = 2
"""How many training sentences get a tag-score matrix in the report, before and after training."""

RESUME_MAY_CHANGE = {("train", "epochs"), ("train", "patience"), ("train", "threads")}
"""Config keys a ``--resume`` may change: they extend a run or set its speed, never its results."""

MATRIX_MAX_TAGS = 20
"""``train.report_matrices: null`` puts the tag-score matrices into the report up to this many tags."""


@dataclass
class TrainResult:
    """What a finished (or interrupted) run produced."""

    output_dir: Path
    best_epoch: int
    best_dev_accuracy: float
    epochs_run: int
    interrupted: bool
    report: dict[str, Any]


def resolve_device(config: Config, local_rank: int | None = None) -> torch.device:
    """``train.device`` -> a torch device; asking for CUDA without one is a config error.

    With ``local_rank`` (a distributed run), CUDA means ``cuda:<local_rank>``, one GPU per process.
    """
    wanted = config.train.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    elif wanted == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda was asked for, but torch finds no CUDA device (use cpu or auto)")
    if wanted == "cuda" and local_rank is not None:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"train.device: local rank {local_rank} needs cuda:{local_rank}, "
                f"but torch finds {torch.cuda.device_count()} CUDA devices"
            )
        return torch.device("cuda", local_rank)
    return torch.device(wanted)


def default_output_dir(config_path: str | Path, runs_dir: str | Path = "runs") -> Path:
    """``runs/<config name>-<YYYYmmdd-HHMMSS>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(runs_dir) / f"{Path(config_path).stem}-{stamp}"


def prepare_output_dir(output_dir: Path, force: bool) -> None:
    """Create ``output_dir``; an existing non-empty one is refused unless ``force``."""
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"{output_dir}: exists and is not a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not force:
        raise UserError(f"{output_dir}: output directory is not empty (use --force to train into it anyway)")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{output_dir}: cannot create output directory: {exc.strerror}") from None


@dataclass
class Splits:
    """The corpus of a run: training, dev and (optional) test sentences."""

    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence] | None

    @classmethod
    def read(cls, config: Config) -> "Splits":
        """Read the three files of ``config.data``; an empty training or dev set is an error."""

        def read(path: str, role: str) -> list[Sentence]:
            sentences = read_corpus(path, config.data.format, config.data.tag_column)
            if not sentences:
                raise DataError(f"{path}: the {role} set has no sentences")
            return sentences

        return cls(read(config.data.train, "training"), read(config.data.dev, "dev"),
                   read(config.data.test, "test") if config.data.test else None)


class WordDropout:
    """Frequency-scaled word dropout (Kiperwasser and Goldberg, 2016).

    A training word seen c times is replaced, at each occurrence, by the id it would
    have if it were unknown (``<unk>`` or its shape class) with probability alpha / (alpha + c):
    rare words often, frequent words almost never, so the unknown-word vectors learn from
    the words that resemble the unknown words of new text.
    """

    def __init__(self, words: WordVocab, counts: Counter[str], alpha: float):
        self.probability = torch.tensor(
            [0.0 if i in (PAD_ID, UNK_ID) or w not in counts else alpha / (alpha + counts[w]) for i, w in enumerate(words.itos)]
        )
        self.replacement = torch.tensor([words.unknown_id(w) for w in words.itos])
        self.replacement[PAD_ID] = PAD_ID

    def __call__(self, word_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 word ids -> the same shape with some ids replaced."""
        drop = torch.rand(word_ids.shape) < self.probability[word_ids]
        return torch.where(drop, self.replacement[word_ids], word_ids)


class RunLog:
    """Prints a line on the console and appends it to the run directory's ``train.log`` (if ``path``)."""

    def __init__(self, console: Console, path: Path | None):
        self.console = console
        self.path = path

    def __call__(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True)
        if self.path is None:
            return
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(f"{datetime.now().isoformat(timespec='seconds')} {line}\n")
        except OSError as exc:
            raise UserError(f"{self.path}: cannot write: {exc.strerror}") from None


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[speed]:,.0f} tok/s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not enabled,
    )


@dataclass
class LoopState:
    """Where the epoch loop is: saved in the last checkpoint so ``--resume`` continues exactly."""

    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_accuracy: float = -1.0
    best_epoch: int = 0
    stale: int = 0
    stopped_early: bool = False
    examples: list[dict[str, Any]] = field(default_factory=list)


def _capture(loop: LoopState, model: Tagger, optimizer: torch.optim.Optimizer, rng: random.Random) -> tuple[dict, dict]:
    """The loop state, the batch-order RNG, torch's RNG and SGD's momentum buffers."""
    version, internal, gauss = rng.getstate()
    meta = {**asdict(loop), "python_rng": [version, list(internal), gauss]}
    tensors = {"torch_rng": torch.get_rng_state()}
    for name, parameter in model.named_parameters():
        buffer = optimizer.state.get(parameter, {}).get("momentum_buffer")
        if buffer is not None:
            tensors[f"momentum.{name}"] = buffer
    return meta, tensors


def _restore(saved: Checkpoint, model: Tagger, optimizer: torch.optim.Optimizer, rng: random.Random) -> LoopState:
    """Undo ``_capture``: weights, momentum buffers and both RNGs as they were after ``saved``'s epoch."""
    meta, tensors = dict(saved.train_state or {}), saved.train_tensors
    version, internal, gauss = meta.pop("python_rng")
    rng.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(tensors["torch_rng"])
    model.load_state_dict(saved.model.state_dict())
    for name, parameter in model.named_parameters():
        if f"momentum.{name}" in tensors:
            optimizer.state[parameter]["momentum_buffer"] = tensors[f"momentum.{name}"].to(parameter.device)
    return LoopState(**meta)


def _resume_point(config: Config, output_dir: Path) -> Checkpoint:
    """The last checkpoint of ``output_dir``, checked to belong to the same training config."""
    path = output_dir / LAST
    if not path.is_file():
        raise UserError(f"{output_dir}: nothing to resume, no {LAST} (train without --resume)")
    saved = load_checkpoint(path)
    if saved.train_state is None:
        raise UserError(f"{path}: has no training state to resume from")
    ours = config.to_dict()
    theirs = saved.config.to_dict()
    for section in ours:
        for key in ours[section]:
            if (section, key) not in RESUME_MAY_CHANGE and ours[section][key] != theirs[section][key]:
                raise UserError(
                    f"{output_dir}: cannot resume, {section}.{key} is {ours[section][key]!r} here but "
                    f"{theirs[section][key]!r} in the run (only train.epochs, train.patience and train.threads may change)"
                )
    return saved


def train(
    config: Config,
    output_dir: str | Path,
    *,
    force: bool = False,
    resume: bool = False,
    console: Console | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train a tagger as ``config`` says and write the run into ``output_dir``.

    ``resume`` continues the run in ``output_dir`` from its last checkpoint exactly as if it
    had never stopped (same weights, optimiser state, random numbers and data order).
    ``progress`` shows a live bar (default: only when ``console`` is a terminal).
    Ctrl-C ends training after the current batch; the checkpoints of the last finished
    epoch stay as they were and the report is written from the best one.

    Started by torchrun with several processes, it trains data-parallel (see ``distributed.py``);
    rank 0 writes the run directory and prints, the other ranks stay silent.
    """
    console = console or Console()
    output_dir = Path(output_dir)
    world = World.from_env()
    device = resolve_device(config, world.local_rank if world.distributed else None)
    if not world.is_main:
        console, progress = Console(quiet=True), False
    with world.connected(device), ExitStack() as lock:
        with world.together():  # every rank reads the data; an error on any rank stops them all
            splits = Splits.read(config)
            vectors = _read_vectors(config)
        with world.together():  # then rank 0 alone prepares the run directory and takes its lock
            saved = None
            if world.is_main:
                saved = _resume_point(config, output_dir) if resume else None
                if saved is None:
                    prepare_output_dir(output_dir, force)
                lock.enter_context(run_lock(output_dir))
                atomic_write_text(output_dir / "config.yaml", config_to_yaml(config))
        if resume:
            saved = world.broadcast(saved)  # rank 0's last checkpoint, on every rank
        return _run(config, output_dir, device, splits, vectors, saved, console, progress, world)


def _run(
    config: Config,
    output_dir: Path,
    device: torch.device,
    splits: Splits,
    vectors: Vectors | None,
    saved: Checkpoint | None,
    console: Console,
    progress: bool | None,
    world: World,
) -> TrainResult:
    """The body of ``train``, run while rank 0 holds the output directory's lock."""
    show_progress = console.is_terminal if progress is None else progress
    say = RunLog(console, output_dir / "train.log" if world.is_main else None)
    train_set, dev_set = splits.train, splits.dev
    torch.manual_seed(config.train.seed)
    rng = random.Random(config.train.seed)
    words, counts = build_word_vocab(
        (s.words for s in train_set), config.data.min_word_freq, config.data.unk_shapes, config.data.lowercase_fallback,
        extra=vectors.words if vectors is not None else (),
    )
    word_dropout = WordDropout(words, counts, config.train.word_dropout) if config.train.word_dropout > 0 else None
    tags = build_tag_vocab(s.tags for s in train_set)
    chars = build_char_vocab(s.words for s in train_set) if config.model.char_encoder != "none" else None
    forms = FormTable(chars, (s.words for s in train_set)) if chars is not None else None
    word_ids = [words.encode(s.words) for s in train_set]
    tag_ids = [tags.encode(s.tags) for s in train_set]
    lengths = [len(s.words) for s in train_set]
    model = Tagger(config.model, len(words), len(tags), len(chars) if chars is not None else 0).to(device)
    frozen = _load_vectors(model, words, vectors, config, say) if vectors is not None else None
    current = Checkpoint(model=model, config=config, words=words, tags=tags, chars=chars)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.train.lr, momentum=config.train.momentum, weight_decay=config.train.weight_decay
    )
    if saved is not None:
        if saved.words.itos != words.itos or saved.tags.itos != tags.itos or (saved.chars and saved.chars.itos) != (chars and chars.itos):
            raise UserError(f"{output_dir}: cannot resume, the training data changed since the run started")
        loop = _restore(saved, model, optimizer, rng)
        say(f"resuming {output_dir} after epoch {loop.epoch}")
    else:
        loop = LoopState(examples=[tag_score_matrix(current, s.words, "before training") for s in train_set[:EXAMPLE_SENTENCES]])
    num_params = sum(p.numel() for p in model.parameters())
    say(
        f"train {len(train_set):,} sentences / {sum(lengths):,} tokens, dev {len(dev_set):,} sentences; "
        f"{len(words):,} words, {len(tags)} tags; {num_params:,} parameters on {device}"
    )
    if world.distributed:
        say(
            f"data-parallel over {world.size} processes: each takes 1/{world.size} "
            f"of every batch of {config.train.batch_size} sentences"
        )
    compute_loss = world.loss_function(model, device)
    threads = thread_chooser(_threads_setting(config), world.local_size, say) if device.type == "cpu" else None
    interrupted = False
    try:
        while not loop.stopped_early and loop.epoch < config.train.epochs:
            epoch = loop.epoch + 1
            lr = config.train.lr / (1 + config.train.lr_decay * (epoch - 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            batches = bucket_order(lengths, config.train.batch_size, rng)
            world.seed_epoch(config.train.seed, epoch)
            model.train()
            started = time.perf_counter()
            loss_sum, tokens = 0.0, 0
            with _progress(console, show_progress) as bar:
                task = bar.add_task("train", total=len(batches), epoch=epoch, loss=0.0, speed=0.0)
                for index in batches:
                    if threads is not None:
                        threads.batch_started()
                    share = world.share(index, lengths)  # one process: the whole batch
                    mine = share.sentences
                    batch = collate([word_ids[i] for i in mine], [tag_ids[i] for i in mine], PAD_ID)
                    batch_words = word_dropout(batch.words) if word_dropout else batch.words
                    batch_chars = forms.batch(mine).to(device) if forms is not None else None
                    optimizer.zero_grad(set_to_none=True)
                    loss = compute_loss(batch_words.to(device), batch.lengths, batch.tags.to(device), batch_chars)
                    if world.distributed:
                        loss = loss * share.weight  # so that DDP's mean gradient is the whole batch's
                    batch_loss = world.average(loss)  # the whole batch's mean token loss, on every rank
                    if not math.isfinite(batch_loss) or batch_loss > DIVERGED_LOSS:
                        raise _diverged(config, output_dir, epoch, f"the loss is {batch_loss:.4g}")
                    loss.backward()
                    if config.train.grad_clip > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
                    optimizer.step()
                    if frozen is not None:
                        frozen.restore()
                    if threads is not None:
                        threads.batch_finished(share.batch_tokens)
                    loss_sum += batch_loss * share.batch_tokens
                    tokens += share.batch_tokens
                    elapsed = time.perf_counter() - started
                    bar.update(task, advance=1, loss=loss_sum / tokens, speed=tokens / max(elapsed, 1e-9))
            train_seconds = time.perf_counter() - started
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                raise _diverged(config, output_dir, epoch, "the weights are no longer finite numbers")
            with world.together():  # rank 0 scores, saves and logs; a failure there stops every rank
                if world.is_main:
                    dev_accuracy = evaluate(current, dev_set)["accuracy"]
                    record = {
                        "epoch": epoch,
                        "lr": round(lr, 6),
                        "train_loss": round(loss_sum / tokens, 6),
                        "dev_accuracy": round(dev_accuracy, 6),
                        "train_seconds": round(train_seconds, 3),
                        "train_tokens_per_second": round(tokens / train_seconds, 1),
                        "seconds": round(time.perf_counter() - started, 3),
                    }
                    loop.epoch = epoch
                    loop.history.append(record)
                    improved = dev_accuracy > loop.best_accuracy
                    if improved:
                        loop.best_accuracy, loop.best_epoch, loop.stale = dev_accuracy, epoch, 0
                    else:
                        loop.stale += 1
                    loop.stopped_early = bool(config.train.patience and loop.stale >= config.train.patience)
                    current.metrics = {"epoch": epoch, "dev_accuracy": dev_accuracy}
                    if improved:
                        save_checkpoint(output_dir / BEST, current)
                    current.train_state, current.train_tensors = _capture(loop, model, optimizer, rng)
                    save_checkpoint(output_dir / LAST, current)
                    current.train_state, current.train_tensors = None, {}
                    atomic_write_text(output_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in loop.history))
                    say(
                        f"epoch {epoch:3d}  loss {record['train_loss']:.4f}  dev acc {100 * dev_accuracy:6.2f}  "
                        f"{record['train_tokens_per_second']:>9,.0f} tok/s  {record['seconds']:6.1f} s" + ("  *best" if improved else "")
                    )
                    if loop.stopped_early:
                        say(f"early stop: no dev improvement for {loop.stale} epochs")
            loop = world.broadcast(loop)  # every rank goes on, or stops early, as rank 0 decided
    except KeyboardInterrupt:
        interrupted = True
        say(f"interrupted: keeping the checkpoints of epoch {loop.epoch}")
    if not loop.history:
        raise UserError("interrupted before the first epoch finished: no checkpoint was written")
    world.save_debug_weights(model)
    if not world.is_main:
        return TrainResult(output_dir, loop.best_epoch, loop.best_accuracy, len(loop.history), interrupted, {})
    report = _final_report(config, output_dir, device, splits, loop, num_params, interrupted)
    for name, scores in report["results"].items():
        print_scores(console, name, scores)
        say(f"{name} accuracy {100 * scores['accuracy']:.2f} (OOV {100 * scores['oov_accuracy']:.2f})")
    say(f"run written to {output_dir}")
    return TrainResult(output_dir, loop.best_epoch, loop.best_accuracy, len(loop.history), interrupted, report)


def _threads_setting(config: Config) -> int | None:
    """``train.threads`` as ``threads.thread_chooser`` takes it: a count, or None for auto."""
    return None if config.train.threads == "auto" else config.train.threads


class FrozenRows:
    """Keeps some rows of a weight matrix as they are: put back after every optimiser step.

    Used for ``model.freeze_vectors``: the rows of words found in the vectors file stay
    fixed while every other word's embedding (and the rest of the model) learns.
    """

    def __init__(self, weight: torch.Tensor, rows: torch.Tensor):
        self.weight = weight
        self.rows = rows
        self.values = weight.detach()[rows].clone()

    def restore(self) -> None:
        with torch.no_grad():
            self.weight[self.rows] = self.values


def _read_vectors(config: Config) -> Vectors | None:
    """``model.vectors`` read and checked against ``model.embedding_dim`` (before anything is written)."""
    if config.model.vectors is None:
        return None
    return read_vectors(config.model.vectors, config.model.embedding_dim, config.model.vectors_max_words)


def _load_vectors(model: Tagger, words: WordVocab, vectors: Vectors, config: Config, say: RunLog) -> FrozenRows | None:
    """Copy the pretrained vectors into the word embedding; returns the rows to keep fixed, if frozen."""
    weight = model.embed.embedding.weight
    filled = align(vectors, words.itos, weight)
    rows = torch.tensor(matches(vectors, words.itos)[0], dtype=torch.long)
    say(
        f"vectors: {len(vectors.words):,} from {config.model.vectors}, {filled:,} of {len(words):,} vocabulary rows "
        f"set from them" + (" and frozen" if config.model.freeze_vectors else "")
    )
    return FrozenRows(weight, rows.to(weight.device)) if config.model.freeze_vectors else None


def _diverged(config: Config, output_dir: Path, epoch: int, what: str) -> UserError:
    return UserError(
        f"training diverged at epoch {epoch}: {what}; lower train.lr (now {config.train.lr}) or set "
        f"train.grad_clip; {output_dir} keeps the checkpoints of the last finished epoch"
    )


def _final_report(
    config: Config,
    output_dir: Path,
    device: torch.device,
    splits: Splits,
    loop: LoopState,
    num_params: int,
    interrupted: bool,
) -> dict[str, Any]:
    """Score the best checkpoint on dev (and test) and write ``report.md`` / ``report.json``."""
    best = load_checkpoint(output_dir / BEST, device=str(device))
    results = {"dev": {"data": config.data.dev, **evaluate(best, splits.dev)}}
    if splits.test is not None:
        results["test"] = {"data": config.data.test, **evaluate(best, splits.test)}
    matrices = config.train.report_matrices
    if matrices is None:
        matrices = len(best.tags) <= MATRIX_MAX_TAGS
    after = [tag_score_matrix(best, s.words, "after training") for s in splits.train[:EXAMPLE_SENTENCES]] if matrices else []
    report = {
        "title": f"Run {output_dir.name}",
        "training": {
            "epochs run": len(loop.history),
            "best epoch": loop.best_epoch,
            "best dev accuracy %": round(100 * loop.best_accuracy, 2),
            "training seconds": round(sum(r["train_seconds"] for r in loop.history), 1),
            "parameters": num_params,
            "interrupted": interrupted,
        },
        "results": results,
        "tag_scores": loop.examples + after if matrices else [],
    }
    write_report(output_dir, report, loop.history)
    return report
