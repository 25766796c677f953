"""``train(config, output_dir)``: the training loop, checkpoints and the final report.

The run directory (its files are named in ``rundir.py``) gets the resolved config, the best
and the last checkpoint, one line of metrics per epoch and the report. Every file is written
atomically, so an interrupted run leaves the last finished epoch's files intact. What the loop
works on (splits, vocabularies, model, optimiser, the resumed state) is built in ``session.py``.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from lstm_tagger.segmenter import background
from lstm_tagger.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from lstm_tagger.rundir import BEST, CONFIG, LAST, LOG, METRICS, prepare_output_dir, refuse_overwriting_inputs, run_lock
from lstm_tagger.config import Config, config_to_yaml
from lstm_tagger.corpus.reader import bucket_order, collate
from lstm_tagger.training.distill import check_teachers
from lstm_tagger.training.distributed import Share, World
from lstm_tagger.errors import ConfigError, UserError
from lstm_tagger.evaluation.evaluate import evaluate, tag_score_matrix
from lstm_tagger.files import atomic_write_text, remove_stale_temporaries
from lstm_tagger.model.tagger import parameter_count
from lstm_tagger.memory import fix_mmap_threshold
from lstm_tagger.model.optim import set_epoch_lr
from lstm_tagger.threads import ThreadChooser, auto_threads, available_cores, set_threads, thread_chooser
from lstm_tagger.evaluation.report import accuracies_text, column_accuracies, print_scores, write_report
from lstm_tagger.sections import BACKWARD, BATCH_INPUTS, FORWARD, OPTIMIZER, THREADS, section
from lstm_tagger.segmenter.network import Segmenter
from lstm_tagger.segmenter.training import training_phase as segmenter_phase
from lstm_tagger.corpus.vocab import PAD_ID
from lstm_tagger.training.session import (
    EXAMPLE_SENTENCES, LoopState, Outside, RunLog, Session, Splits, build, capture, resume_point, start,
)


DIVERGED_LOSS = 1e4
"""A mean per-token loss above this (tag probabilities below e^-10000) means training has diverged,
even while the numbers are still finite."""

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
            outside = Outside.read(config)
            check_teachers(config.train.teacher, config.data.columns)
        with world.together():  # then rank 0 alone prepares the run directory and takes its lock
            saved = None
            if world.is_main:
                refuse_overwriting_inputs(config, output_dir, config_file, resume)
                saved = resume_point(config, output_dir) if resume else None
                if saved is None:
                    prepare_output_dir(output_dir, force)
                lock.enter_context(run_lock(output_dir))
                remove_stale_temporaries(output_dir)  # of writes a killed run left behind
                atomic_write_text(output_dir / CONFIG, config_to_yaml(config))
        if resume:
            saved = world.broadcast(saved)  # rank 0's last checkpoint, on every rank
        say = RunLog(console, output_dir / LOG if world.is_main else None)
        show_progress = console.is_terminal if progress is None else progress
        segmenter, job = None, None
        with world.together():  # the segmenter's own phase, on rank 0 (it alone writes checkpoints)
            if world.is_main and _segmenter_beside(config, saved, world, device, splits):
                job = lock.enter_context(closing(background.SegmenterJob(config, say)))  # trains while the tagger does
            elif world.is_main:
                segmenter = _segmenter_first(config, saved, say, console, show_progress)
        session = build(config, output_dir, device, splits, outside, world, say, segmenter)
        session.segmenter_job = job if job is not None and job.wanted else None
        return _run(session, start(session, saved), console, show_progress)


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
                stats = train_epoch(session, compute_loss, threads, epoch, bar)
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


def train_epoch(
    session: Session, compute_loss: Callable[..., torch.Tensor], threads: ThreadChooser | None, epoch: int, bar: Progress,
    max_batches: int | None = None,
) -> EpochStats:
    """One pass over the training set in length-bucketed batches (this process's share of each);
    only the first ``max_batches`` of them when given (the profile of an epoch, ``benchmark/profile.py``)."""
    config, world, model, optimizer = session.config, session.world, session.model, session.optimizer
    lr = set_epoch_lr(optimizer, config.train.lr, config.train.lr_decay, epoch)
    batches = bucket_order(session.lengths, config.train.batch_size, session.rng)[:max_batches]
    world.seed_epoch(config.train.seed, epoch)
    model.train()
    started = time.perf_counter()
    loss_sum, tokens = 0.0, 0
    task = bar.add_task("train", total=len(batches), epoch=epoch, loss=0.0, speed=0.0)
    for index in batches:
        if threads is not None:
            with section(THREADS):
                threads.batch_started()
        share = world.share(index, session.lengths)  # one process: the whole batch
        batch_loss = _train_step(session, compute_loss, share, epoch)
        if threads is not None:
            with section(THREADS):
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
    with section(BATCH_INPUTS):
        batch = collate([session.word_ids[i] for i in mine], [session.tag_ids[i] for i in mine], PAD_ID)
        batch_words = session.word_dropout(batch.words) if session.word_dropout else batch.words
        batch_chars = session.forms.batch(mine).to(device) if session.forms is not None else None
        soft = None if session.soft is None else [t.to(device) if t is not None else None for t in session.soft.batch(mine, model.columns)]
    with section(FORWARD):
        session.optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(batch_words.to(device), batch.lengths, batch.tags.to(device), batch_chars, soft)
        if session.world.distributed:
            loss = loss * share.weight  # so that DDP's mean gradient is the whole batch's
        batch_loss = session.world.average(loss)  # the whole batch's mean token loss, on every rank
    if not math.isfinite(batch_loss) or batch_loss > DIVERGED_LOSS:
        raise _diverged(config, session.output_dir, epoch, f"the loss is {batch_loss:.4g}")
    with section(BACKWARD):
        loss.backward()
    with section(OPTIMIZER):
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
    current.train_state, current.train_tensors = capture(loop, session)
    save_checkpoint(output_dir / LAST, current)
    current.train_state, current.train_tensors = None, {}
    atomic_write_text(output_dir / METRICS, "".join(json.dumps(r) + "\n" for r in loop.history))
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
