"""``train(config, output_dir)``: the training loop, checkpoints and the final report.

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
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from lstm_tagger.segmenter import background
from lstm_tagger.checkpoint import Checkpoint, PretrainedMeta, load_checkpoint, save_checkpoint
from lstm_tagger.rundir import BEST, LAST
from lstm_tagger.config import Config, config_to_yaml
from lstm_tagger.model.chars import FormTable, build_char_vocab
from lstm_tagger.corpus.reader import Sentence, bucket_order, collate, read_corpus
from lstm_tagger.training.distill import SoftTargets, agreement, check_teachers, teacher_targets
from lstm_tagger.training.distributed import Share, World
from lstm_tagger.errors import ConfigError, DataError, UserError
from lstm_tagger.evaluation.evaluate import evaluate, tag_score_matrix
from lstm_tagger.files import atomic_write_text, make_dir, remove_stale_temporaries, run_lock, same_file
from lstm_tagger.model.tagger import parameter_count
from lstm_tagger.limits import check_parameters, planned_parameters
from lstm_tagger.training.memory import fix_mmap_threshold
from lstm_tagger.model.tagger import Tagger
from lstm_tagger.model.optim import WeightAverage, build_optimizer, restore_training, set_epoch_lr, training_tensors
from lstm_tagger.threads import ThreadChooser, auto_threads, available_cores, set_threads, thread_chooser
from lstm_tagger.evaluation.report import accuracies_text, column_accuracies, print_scores, write_report
from lstm_tagger.segmenter.network import Segmenter
from lstm_tagger.segmenter.training import training_phase as segmenter_phase
from lstm_tagger.corpus.pretrained import Source, read_source
from lstm_tagger.corpus.vectors import align
from lstm_tagger.corpus.vocab import PAD_ID, UNK_ID, WordVocab, build_tag_vocabs, build_word_vocab, encode_tags

DIVERGED_LOSS = 1e4
"""A mean per-token loss above this (tag probabilities below e^-10000) means training has diverged,
even while the numbers are still finite."""

EXAMPLE_SENTENCES = 2
"""How many training sentences get a tag-score matrix in the report, before and after training."""

RESUME_MAY_CHANGE = {("train", "epochs"), ("train", "patience"), ("train", "threads"), ("model", "max_parameters")}
"""Config keys a ``--resume`` may change: they extend a run, set its speed or a limit (a thread count can change float rounding)."""

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
        raise UserError(
            f"{output_dir}: output directory is not empty (use force=True to train into it anyway)", {"force=True": "--force"}
        )
    make_dir(output_dir, what="output directory")


RUN_FILES = ("config.yaml", "train.log", "metrics.jsonl", "report.md", "report.json", "learning-curves.png", BEST, LAST, ".lock")
"""What a run writes into its directory (or appends to: ``train.log``), besides ``confusion-*.png``."""


def _written_by_run(output_dir: Path) -> list[Path]:
    """The files of ``output_dir`` that training there would replace or append to."""
    try:
        plots = sorted(output_dir.glob("confusion-*.png"))
    except OSError:
        plots = []
    return [output_dir / name for name in RUN_FILES] + plots


def _inputs(config: Config, config_file: str | Path | None) -> list[tuple[str, Path]]:
    """Every file (or run directory) training reads, with the key that names it."""
    named = [("the config", config_file)] + [(f"data.{key}", getattr(config.data, key)) for key in ("train", "dev", "test")]
    named += [("model.vectors", config.model.vectors)] + [("train.teacher", teacher) for teacher in config.train.teacher]
    return [(key, Path(path)) for key, path in named if path is not None]


def refuse_overwriting_inputs(config: Config, output_dir: Path, config_file: str | Path | None = None, resume: bool = False) -> None:
    """A ``UserError`` if training into ``output_dir`` would replace or append to one of the files
    it reads: ``config_file`` (the config being read: ``config.yaml`` with ``force=True``), a data
    file, the vectors, or a teacher (a teacher run that is ``output_dir`` itself would lose its
    ``model-best``). Links are followed: the same file under another name is refused too. On
    ``resume`` the config may be the run's own ``config.yaml``, which the run rewrites as it was."""
    options = {f"output_dir={output_dir}": f"--output {output_dir}", "another output_dir": "another --output"}
    written = _written_by_run(output_dir)
    for key, path in _inputs(config, None if resume else config_file):
        if key == "train.teacher" and same_file(path, output_dir):
            raise UserError(
                f"{path}: train.teacher is the run directory output_dir={output_dir}, whose {BEST} training would "
                "replace: give another output_dir", options,
            )
        for target in written:
            if same_file(path, target):
                raise UserError(
                    f"{path}: {key} would be overwritten by the run's {target.name} in output_dir={output_dir}: "
                    "give another output_dir (or move the file out of it)", options,
                )


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
            sentences = read_corpus(path, config.data.format, config.data.columns)
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
    """Prints a line on the caller's console and appends it to the run directory's ``train.log`` (if ``path``)."""

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
    best_all_tags: float = -1.0
    """With several tag columns, the AllTags accuracy of the best epoch: it breaks ties of the first column's."""
    best_epoch: int = 0
    stale: int = 0
    stopped_early: bool = False
    examples: list[dict[str, Any]] = field(default_factory=list)


def _capture(loop: LoopState, session: Session) -> tuple[dict, dict]:
    """The loop state, the batch-order RNG, torch's RNG, the optimiser's state and the weight average's (``optim.py``)."""
    version, internal, gauss = session.rng.getstate()
    meta = {**asdict(loop), "python_rng": [version, list(internal), gauss]}
    tensors = {"torch_rng": torch.get_rng_state(), **training_tensors(session.model, session.optimizer, session.average)}
    return meta, tensors


def _restore(saved: Checkpoint, session: Session) -> LoopState:
    """Undo ``_capture``: weights, optimiser state, weight average and both RNGs as they were after ``saved``'s epoch."""
    meta, tensors = dict(saved.train_state or {}), saved.train_tensors
    try:
        version, internal, gauss = meta.pop("python_rng")
        session.rng.setstate((version, tuple(internal), gauss))
        torch.set_rng_state(tensors["torch_rng"])
        loop = TypeAdapter(LoopState).validate_json(json.dumps(meta), strict=True)  # JSON-strict: "3" is no int
        restore_training(saved.model.state_dict(), tensors, session.model, session.optimizer, session.average)
    except (KeyError, TypeError, ValueError, RuntimeError, ValidationError) as exc:
        raise UserError(f"{saved.path}: the training state to resume from is damaged ({type(exc).__name__}); train anew") from None
    return loop


def _resume_point(config: Config, output_dir: Path) -> Checkpoint:
    """The last checkpoint of ``output_dir``, checked to belong to the same training config."""
    path = output_dir / LAST
    if not path.is_file():
        raise UserError(f"{output_dir}: nothing to resume, no {LAST} (train without resume=True)", {"resume=True": "--resume"})
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
                    f"{theirs[section][key]!r} in the run (only train.epochs, train.patience, train.threads and model.max_parameters may change)"
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
    config_file: str | Path | None = None,
) -> TrainResult:
    """Train a tagger as ``config`` says and write the run into ``output_dir``.

    ``resume`` continues the run in ``output_dir`` from its last checkpoint exactly as if it
    had never stopped (same weights, optimiser state, random numbers and data order).
    Nothing is printed unless the caller gives a ``console``: then it gets the lines that
    ``train.log`` records, the score tables and, when ``progress`` (default: when ``console``
    is a terminal), a live bar. Ctrl-C ends training after the current batch; the checkpoints
    of the last finished epoch stay as they were and the report is written from the best one.

    Started by torchrun with several processes, it trains data-parallel (see ``distributed.py``);
    rank 0 writes the run directory and prints, the other ranks stay silent.

    ``config_file`` is the file ``config`` was read from, if any: no input file (it, the data,
    the vectors, the teachers) is ever overwritten by the run, ``force`` or not.
    """
    fix_mmap_threshold()  # else the heap fragments and memory creeps up batch after batch (memory.py)
    output_dir = Path(output_dir)
    world = World.from_env()
    device = resolve_device(config, world.local_rank if world.distributed else None)
    if console is None or not world.is_main:
        console, progress = Console(quiet=True), False
    with world.connected(device), ExitStack() as lock:
        with world.together():  # every rank reads the data; an error on any rank stops them all
            splits = Splits.read(config)
            vectors = _read_vectors(config)
            check_teachers(config.train.teacher, config.data.columns)
        with world.together():  # then rank 0 alone prepares the run directory and takes its lock
            saved = None
            if world.is_main:
                refuse_overwriting_inputs(config, output_dir, config_file, resume)
                saved = _resume_point(config, output_dir) if resume else None
                if saved is None:
                    prepare_output_dir(output_dir, force)
                lock.enter_context(run_lock(output_dir))
                remove_stale_temporaries(output_dir)  # of writes a killed run left behind
                atomic_write_text(output_dir / "config.yaml", config_to_yaml(config))
        if resume:
            saved = world.broadcast(saved)  # rank 0's last checkpoint, on every rank
        say = RunLog(console, output_dir / "train.log" if world.is_main else None)
        show_progress = console.is_terminal if progress is None else progress
        segmenter, job = None, None
        with world.together():  # the segmenter's own phase, on rank 0 (it alone writes checkpoints)
            if world.is_main and _segmenter_beside(config, saved, world, device, splits):
                job = lock.enter_context(closing(background.SegmenterJob(config, say)))  # trains while the tagger does
            elif world.is_main:
                segmenter = _segmenter_first(config, saved, say, console, show_progress)
        session = _build(config, output_dir, device, splits, vectors, world, say, segmenter)
        session.segmenter_job = job if job is not None and job.wanted else None
        return _run(session, _start(session, saved), console, show_progress)


def _segmenter_first(
    config: Config, saved: Checkpoint | None, say: RunLog, console: Console, show_progress: bool
) -> Segmenter | None:
    """The segmenter phase in this process, before the tagger: on one torch thread unless
    ``train.threads`` sets a count (its long chains of small products gain little from a second
    core, ``background.py``, and lose much when the cores are busy: two threads on a loaded
    machine of two cores trained a tiny segmenter ten times slower than one); then torch's
    thread count as it was, for the tagger."""
    before = torch.get_num_threads()
    set_threads(_threads_setting(config) or 1)
    try:
        return segmenter_phase(config, saved and saved.segmenter, say, console, show_progress)
    finally:
        torch.set_num_threads(before)


def _segmenter_beside(config: Config, saved: Checkpoint | None, world: World, device: torch.device, splits: Splits) -> bool:
    """Whether the segmenter trains in a child process beside the tagger (``background.py``): one
    is to be trained (not kept from the run resumed), on the CPU of one machine with two cores or
    more, from a CoNLL-U corpus of at least ``background.MIN_TOKENS`` tokens."""
    return (
        config.tokenizer.mode != "off" and config.data.format == "conllu" and (saved is None or saved.segmenter is None)
        and not world.distributed and device.type == "cpu" and available_cores() >= 2
        and sum(len(s.words) for s in splits.train) >= background.MIN_TOKENS
    )


@dataclass
class Session:
    """What the epoch loop works on: set up once by ``_build``, for one run."""

    config: Config
    output_dir: Path
    device: torch.device
    splits: Splits
    world: World
    say: RunLog
    model: Tagger
    """The weights being trained."""
    optimizer: torch.optim.Optimizer
    average: WeightAverage | None
    """``train.ema_decay``'s average of ``model``, updated after every step."""
    rng: random.Random
    current: Checkpoint
    """The model (the average, if any) with its vocabularies: what is evaluated and saved every epoch."""
    word_ids: list[torch.Tensor]
    tag_ids: list[torch.Tensor]
    lengths: list[int]
    forms: FormTable | None
    word_dropout: WordDropout | None
    soft: SoftTargets | None
    """The teachers' tag probabilities of the training tokens (``train.teacher``), or None."""
    segmenter_job: background.SegmenterJob | None = None
    """The segmenter training beside the tagger, until it is done and in ``current``."""


def _build(
    config: Config, output_dir: Path, device: torch.device, splits: Splits, vectors: Source | None, world: World, say: RunLog,
    segmenter: Segmenter | None,
) -> Session:
    """Seed, build the vocabularies, the model (with any pretrained vectors) and the optimiser;
    the checkpoint carries ``segmenter`` (trained before, by the segmenter phase) when there is one."""
    train_set = splits.train
    torch.manual_seed(config.train.seed)
    rng = random.Random(config.train.seed)
    words, counts = build_word_vocab(
        (s.words for s in train_set), config.data.min_word_freq, config.data.unk_shapes, config.data.lowercase_fallback,
        extra=vectors.vectors.words if vectors is not None else (),
    )
    word_dropout = WordDropout(words, counts, config.train.word_dropout) if config.train.word_dropout > 0 else None
    vocabs = build_tag_vocabs(config.data.columns, (s.columns for s in train_set))
    chars = build_char_vocab(s.words for s in train_set) if config.model.char_encoder != "none" else None
    forms = FormTable(chars, (s.words for s in train_set)) if chars is not None else None
    pretrained = _pretrained_meta(vectors, config) if vectors is not None else None
    build = partial(
        Tagger, config.model, len(words), {c: len(v) for c, v in vocabs.items()}, len(chars) if chars is not None else 0,
        loss_weights=config.train.column_weights, label_smoothing=config.train.label_smoothing,
        distill_weight=config.train.distill_weight, adversarial=config.train.adversarial,  # w counts only with teachers' targets
        pretrained=pretrained.layout(words) if pretrained is not None else None,
    )
    check_parameters(planned_parameters(build), config.model.max_parameters, "model")  # before allocating it
    model = build().to(device)
    if vectors is not None:
        _load_vectors(model, words, vectors, say)
    average = WeightAverage(model, config.train.ema_decay) if config.train.ema_decay > 0 else None
    tag_ids = [encode_tags(vocabs, s.columns) for s in train_set]
    soft = _teach(config, train_set, vocabs, tag_ids, say) if config.train.teacher else None
    return Session(
        config=config, output_dir=output_dir, device=device, splits=splits, world=world, say=say, model=model,
        optimizer=build_optimizer(model, config.train), average=average, rng=rng,
        current=Checkpoint(
            model=average.model if average else model, config=config, words=words, vocabs=vocabs, chars=chars, segmenter=segmenter,
            pretrained=pretrained,
        ),
        word_ids=[words.encode(s.words) for s in train_set], tag_ids=tag_ids,
        lengths=[len(s.words) for s in train_set], forms=forms, word_dropout=word_dropout, soft=soft,
    )


def _teach(config: Config, train_set: list[Sentence], vocabs: dict[str, Any], tag_ids: list[torch.Tensor], say: RunLog) -> SoftTargets:
    """The teachers' probabilities of the training tokens (``distill.py``), a line per teacher, and
    how often their best tag is the gold one (near 100%: they learned these sentences)."""
    teachers = len(config.train.teacher)

    def done(k: int, teacher: str, seconds: float) -> None:
        say(f"distillation: teacher {k}/{teachers} ({teacher}) tagged the training sentences in {seconds:.0f} s")

    soft = teacher_targets(config.train.teacher, [s.words for s in train_set], vocabs, config.train.distill_temperature, done)
    gold = torch.cat(tag_ids).view(-1, len(vocabs))  # (N, C)
    agreed = ", ".join(f"{c} {100 * agreement(soft, c, gold[:, k]):.2f}%" for k, c in enumerate(vocabs) if c in soft.flat)
    say(
        f"distillation: the teachers' best tag is the gold one for {agreed} of the training tokens; "
        f"weight {config.train.distill_weight}, temperature {config.train.distill_temperature}"
    )
    return soft


def _itos(vocabs: dict[str, Any]) -> dict[str, list[str]]:
    """Each column's tags in id order, to compare a resumed run's vocabularies with the data's."""
    return {column: vocab.itos for column, vocab in vocabs.items()}


def _start(session: Session, saved: Checkpoint | None) -> LoopState:
    """The loop state to begin with: restored from ``saved`` (a resume) or fresh; says what is trained."""
    current, splits, say = session.current, session.splits, session.say
    if saved is not None:
        if saved.words.itos != current.words.itos or _itos(saved.vocabs) != _itos(current.vocabs) or (
            (saved.chars and saved.chars.itos) != (current.chars and current.chars.itos)
        ):
            raise UserError(f"{session.output_dir}: cannot resume, the training data changed since the run started")
        loop = _restore(saved, session)
        say(f"resuming {session.output_dir} after epoch {loop.epoch}")
    else:
        loop = LoopState(examples=[tag_score_matrix(current, s.words, "before training") for s in splits.train[:EXAMPLE_SENTENCES]])
    say(
        f"train {len(splits.train):,} sentences / {sum(session.lengths):,} tokens, dev {len(splits.dev):,} sentences; "
        f"{len(current.words):,} words, {' + '.join(f'{len(v)} {c}' for c, v in current.vocabs.items())} tags; "
        f"{parameter_count(session.model):,} parameters on {session.device}"
    )
    if session.world.distributed:
        say(
            f"data-parallel over {session.world.size} processes: each takes 1/{session.world.size} "
            f"of every batch of {session.config.train.batch_size} sentences"
        )
    return loop


def _run(session: Session, loop: LoopState, console: Console, show_progress: bool) -> TrainResult:
    """The epoch loop, then the final report (rank 0): train one epoch, evaluate and decide, save."""
    config, world = session.config, session.world
    compute_loss = world.loss_function(session.model, session.device)  # through DDP in a distributed run
    setting = _threads_setting(config)
    beside = session.segmenter_job is not None
    threads = _tagger_threads(session, setting)
    interrupted = False
    try:
        while not loop.stopped_early and loop.epoch < config.train.epochs:
            epoch = loop.epoch + 1
            with _progress(console, show_progress) as bar:
                stats = _train_epoch(session, compute_loss, threads, epoch, bar)
            with world.together():  # rank 0 scores, saves and logs; a failure there stops every rank
                if world.is_main:
                    _end_epoch(session, loop, stats)
            loop = world.broadcast(loop)  # every rank goes on, or stops early, as rank 0 decided
            if beside and session.segmenter_job is None:  # the tokenizer is done: its core is the tagger's again
                beside, threads = False, _tagger_threads(session, setting)
    except KeyboardInterrupt:
        interrupted = True
        session.say(f"interrupted: keeping the checkpoints of epoch {loop.epoch}")
    if session.segmenter_job is not None and interrupted:
        session.segmenter_job.close()
        session.segmenter_job = None
        session.say("tokenizer: interrupted before it finished: this run has no segmenter (--resume trains one)")
    if not loop.history:
        raise UserError("interrupted before the first epoch finished: no checkpoint was written")
    _attach_segmenter(session, wait=True)
    if beside:  # the final evaluation gets the tokenizer's core back (auto: every core)
        set_threads(_every_thread(setting))
    world.save_debug_weights(session.model)
    if not world.is_main:
        return TrainResult(session.output_dir, loop.best_epoch, loop.best_accuracy, len(loop.history), interrupted, {})
    report = _final_report(session, loop, interrupted)
    for name, scores in report["results"].items():
        print_scores(console, name, scores)
        session.say(
            f"{name} accuracy {100 * scores['accuracy']:.2f} (OOV {100 * scores['oov_accuracy']:.2f})"
            + (f", {accuracies_text(scores)}" if column_accuracies(scores) else "")
        )
    session.say(f"run written to {session.output_dir}")
    return TrainResult(session.output_dir, loop.best_epoch, loop.best_accuracy, len(loop.history), interrupted, report)


@dataclass
class EpochStats:
    """What one epoch of training measured."""

    epoch: int
    lr: float
    loss_sum: float
    tokens: int
    started: float
    train_seconds: float


def _train_epoch(
    session: Session, compute_loss: Callable[..., torch.Tensor], threads: ThreadChooser | None, epoch: int, bar: Progress
) -> EpochStats:
    """One pass over the training set in length-bucketed batches (this process's share of each)."""
    config, world, model, optimizer = session.config, session.world, session.model, session.optimizer
    lr = set_epoch_lr(optimizer, config.train.lr, config.train.lr_decay, epoch)
    batches = bucket_order(session.lengths, config.train.batch_size, session.rng)
    world.seed_epoch(config.train.seed, epoch)
    model.train()
    started = time.perf_counter()
    loss_sum, tokens = 0.0, 0
    task = bar.add_task("train", total=len(batches), epoch=epoch, loss=0.0, speed=0.0)
    for index in batches:
        if threads is not None:
            threads.batch_started()
        share = world.share(index, session.lengths)  # one process: the whole batch
        batch_loss = _train_step(session, compute_loss, share, epoch)
        if threads is not None:
            threads.batch_finished(share.batch_tokens)
        loss_sum += batch_loss * share.batch_tokens
        tokens += share.batch_tokens
        elapsed = time.perf_counter() - started
        bar.update(task, advance=1, loss=loss_sum / tokens, speed=tokens / max(elapsed, 1e-9))
    train_seconds = time.perf_counter() - started
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise _diverged(config, session.output_dir, epoch, "the weights are no longer finite numbers")
    return EpochStats(epoch, lr, loss_sum, tokens, started, train_seconds)


def _train_step(session: Session, compute_loss: Callable[..., torch.Tensor], share: Share, epoch: int) -> float:
    """One optimiser step on this process's ``share`` of a batch; -> the whole batch's mean token loss."""
    config, device, model, mine = session.config, session.device, session.model, share.sentences
    batch = collate([session.word_ids[i] for i in mine], [session.tag_ids[i] for i in mine], PAD_ID)
    batch_words = session.word_dropout(batch.words) if session.word_dropout else batch.words
    batch_chars = session.forms.batch(mine).to(device) if session.forms is not None else None
    soft = None if session.soft is None else [t.to(device) if t is not None else None for t in session.soft.batch(mine, model.columns)]
    session.optimizer.zero_grad(set_to_none=True)
    loss = compute_loss(batch_words.to(device), batch.lengths, batch.tags.to(device), batch_chars, soft)
    if session.world.distributed:
        loss = loss * share.weight  # so that DDP's mean gradient is the whole batch's
    batch_loss = session.world.average(loss)  # the whole batch's mean token loss, on every rank
    if not math.isfinite(batch_loss) or batch_loss > DIVERGED_LOSS:
        raise _diverged(config, session.output_dir, epoch, f"the loss is {batch_loss:.4g}")
    loss.backward()
    if config.train.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
    session.optimizer.step()
    if session.average is not None:
        session.average.update(model)
    return batch_loss


def _end_epoch(session: Session, loop: LoopState, stats: EpochStats) -> None:
    """Rank 0 after an epoch: score on dev, decide (best, early stop), save the checkpoints and metrics, log."""
    _attach_segmenter(session, rewrite=(BEST,))  # finished during this epoch: LAST is written below, with it
    current, output_dir, epoch = session.current, session.output_dir, stats.epoch
    dev_scores = evaluate(current, session.splits.dev)
    dev_accuracy = dev_scores["accuracy"]  # the first column's: it picks the best checkpoint
    dev_columns = column_accuracies(dev_scores)
    record = {
        "epoch": epoch,
        "lr": round(stats.lr, 6),
        "train_loss": round(stats.loss_sum / stats.tokens, 6),
        "dev_accuracy": round(dev_accuracy, 6),
        **{f"dev_{c}": round(a, 6) for c, a in dev_columns.items()},
        "train_seconds": round(stats.train_seconds, 3),
        "train_tokens_per_second": round(stats.tokens / stats.train_seconds, 1),
        "seconds": round(time.perf_counter() - stats.started, 3),
    }
    loop.epoch = epoch
    loop.history.append(record)
    all_tags = dev_scores.get("all_tags", {}).get("accuracy", dev_accuracy)
    improved = (dev_accuracy, all_tags) > (loop.best_accuracy, loop.best_all_tags)
    if improved:
        loop.best_accuracy, loop.best_all_tags, loop.best_epoch, loop.stale = dev_accuracy, all_tags, epoch, 0
    else:
        loop.stale += 1
    patience = session.config.train.patience
    loop.stopped_early = bool(patience and loop.stale >= patience)
    current.metrics = {"epoch": epoch, "dev_accuracy": dev_accuracy, **{f"dev_{c}": a for c, a in dev_columns.items()}}
    if improved:
        save_checkpoint(output_dir / BEST, current)
    current.train_state, current.train_tensors = _capture(loop, session)
    save_checkpoint(output_dir / LAST, current)
    current.train_state, current.train_tensors = None, {}
    atomic_write_text(output_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in loop.history))
    session.say(
        f"epoch {epoch:3d}  loss {record['train_loss']:.4f}  dev acc {100 * dev_accuracy:6.2f}  "
        f"{record['train_tokens_per_second']:>9,.0f} tok/s  {record['seconds']:6.1f} s" + ("  *best" if improved else "")
    )
    if loop.stopped_early:
        session.say(f"early stop: no dev improvement for {loop.stale} epochs")


def _attach_segmenter(session: Session, wait: bool = False, rewrite: tuple[str, ...] = (BEST, LAST)) -> None:
    """Once the segmenter training beside the tagger is done (or, with ``wait``, after waiting
    for it): put it into every checkpoint from now on and into those of ``rewrite`` already
    written without it."""
    job = session.segmenter_job
    if job is None or not (wait or job.done()):
        return
    if not job.done():
        session.say("waiting for the tokenizer to finish training")
    segmenter = job.result()
    session.segmenter_job, session.current.segmenter = None, segmenter
    for name in rewrite:
        path = session.output_dir / name
        if segmenter is not None and path.exists():
            written = load_checkpoint(path)
            if written.segmenter is None:
                written.segmenter = segmenter
                save_checkpoint(path, written)


def _tagger_threads(session: Session, setting: int | None) -> ThreadChooser | None:
    """torch's threads for the tagger on the CPU: ``train.threads`` (``setting``; None, auto: a
    ``ThreadChooser``). While the segmenter trains beside it, all but one, fixed, with auto too:
    the child keeps one core busy, so a probe of every core would measure only the contention
    (on 2 cores such probes ran 1.5-5 times slower than one thread and now and then chose two)."""
    if session.device.type != "cpu":
        return None
    if session.segmenter_job is None:
        return thread_chooser(setting, session.world.local_size, session.say)
    count = max(1, _every_thread(setting) - 1)
    set_threads(count)
    session.say(f"threads: {count} while the tokenizer trains beside the tagger, then {'auto' if setting is None else setting}")
    return None


def _every_thread(setting: int | None) -> int:
    """The threads the tagger has when nothing runs beside it: ``train.threads``, or for auto every core."""
    return setting if setting is not None else auto_threads()


def _threads_setting(config: Config) -> int | None:
    """``train.threads`` as ``threads.thread_chooser`` takes it: a count, or None for auto."""
    return None if config.train.threads == "auto" else config.train.threads


def _read_vectors(config: Config) -> Source | None:
    """``model.vectors`` read (a named resource or a file), before anything is written."""
    if config.model.vectors is None:
        return None
    return read_source(config.model.vectors, config.model.vectors_max_words)


def _pretrained_meta(source: Source, config: Config) -> PretrainedMeta:
    """What the checkpoint's header says of the pretrained table: its source, size and whether it learns."""
    return PretrainedMeta(
        name=source.name, version=source.version, sha256=source.sha256, vectors=len(source.vectors.words),
        dim=source.vectors.dim, frozen=config.model.freeze_vectors,
    )


def _load_vectors(model: Tagger, words: WordVocab, source: Source, say: RunLog) -> None:
    """Copy the pretrained vectors into the model's pretrained table, a row per vocabulary word
    (the exact word, else its lower-cased form; zeros for a word the source lacks)."""
    table = model.embed.pretrained
    filled = align(source.vectors, words.itos, table.data)
    frozen = "frozen, float16" if not table.requires_grad else "fine-tuned"
    say(
        f"vectors: {len(source.vectors.words):,} of {source.vectors.dim} dimensions from {source.name}"
        f"{' ' + source.version if source.version else ''}, {filled:,} of {len(words):,} vocabulary rows set from them "
        f"({len(words) - words.trained:,} words that training lacks), {frozen}"
    )


def _diverged(config: Config, output_dir: Path, epoch: int, what: str) -> UserError:
    return UserError(
        f"training diverged at epoch {epoch}: {what}; lower train.lr (now {config.train.lr}) or set "
        f"train.grad_clip; {output_dir} keeps the checkpoints of the last finished epoch"
    )


def _final_report(session: Session, loop: LoopState, interrupted: bool) -> dict[str, Any]:
    """Score the best checkpoint on dev (and test) and write ``report.md`` / ``report.json``."""
    config, output_dir, splits = session.config, session.output_dir, session.splits
    best = load_checkpoint(output_dir / BEST, device=str(session.device))
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
            "parameters": parameter_count(session.model),
            "interrupted": interrupted,
        },
        "results": results,
        "tag_scores": loop.examples + after if matrices else [],
    }
    if best.segmenter is not None:  # Tokens / Sentences F1 of its best epoch on dev raw text
        report["training"].update({f"tokenizer {k}": v for k, v in best.segmenter.scores.items()})
    write_report(output_dir, report, loop.history)
    return report
