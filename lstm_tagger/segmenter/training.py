"""Training the segmenter: the phase of ``lstm-tag train`` that comes before the tagger.

Training reads fixed-length windows of the training text (its paragraphs joined, one label per
character, ``labels.labelled_paragraphs``), keeps the epoch with the best dev Tokens +
Sentences F1 (CoNLL 2018, by segmenting the dev text with ``decoder.segment``), and makes at
least ``tokenizer.min_updates`` and at most ``tokenizer.max_updates`` updates, so that a small
treebank still trains enough and a large one stops within budget.
"""

from __future__ import annotations

import random
import sys
import time
from copy import deepcopy
from typing import Any, Callable, Sequence

import torch
from torch import nn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lstm_tagger.config import Config, TokenizerConfig
from lstm_tagger.corpus.rawtext import TreebankSentence, paragraph_texts, raw_text, read_treebank
from lstm_tagger.errors import ConfigError, UserError
from lstm_tagger.evaluation.conll18 import evaluate as conll18_evaluate
from lstm_tagger.model.optim import set_epoch_lr
from lstm_tagger.segmenter.decoder import segment
from lstm_tagger.segmenter.header import words_only
from lstm_tagger.segmenter.labels import INSIDE, labelled_paragraphs, tokens_with_spaces
from lstm_tagger.segmenter.lexicon import Lexicon
from lstm_tagger.segmenter.network import _UNK, CharTable, Segmenter, SegmenterNet, planned_shapes


def wanted(config: Config, sentences: Sequence[TreebankSentence] | None) -> bool:
    """Whether to train a segmenter: ``tokenizer.mode`` on, or auto and every sentence has ``# text``."""
    mode = config.tokenizer.mode
    if mode == "off":
        return False
    if config.data.format != "conllu":
        if mode == "on":
            raise ConfigError("tokenizer.mode: on needs data.format conllu (raw text comes from # text)")
        return False
    return mode == "on" or bool(sentences) and all(s.text is not None for s in sentences)


def _stream(sentences: Sequence[TreebankSentence], table: CharTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training text, paragraphs joined by a space: character ids, category ids, labels (N,)."""
    texts, labels = [], []
    for text, paragraph_labels in labelled_paragraphs(sentences):
        texts.append(text + " ")
        labels.extend(paragraph_labels + [INSIDE])
    chars, classes = table.encode("".join(texts))
    return chars, classes, torch.tensor(labels, dtype=torch.long)


def dev_scores(segmenter: Segmenter, gold: Sequence[TreebankSentence]) -> dict[str, float]:
    """Tokens and Sentences F1 (CoNLL 2018) of segmenting ``gold``'s raw text, in percent."""
    system = list(segment(segmenter, [raw_text(gold)]))
    scores = conll18_evaluate(gold, system)
    return {"tokens_f1": round(100 * scores["Tokens"].f1, 2), "sentences_f1": round(100 * scores["Sentences"].f1, 2),
            "words_f1": round(100 * scores["Words"].f1, 2)}


SENTENCE_BIASES = (-0.5, -1.0, -2.0, 0.5, 1.0)
"""The sentence-end biases tried on dev after training, besides 0 (``tuned_sentence_bias``).
On a small English treebank -1 gained 0.8-0.9 Sentences F1 on dev and test, and every
positive bias lost (docs/benchmarks/raw-text.md)."""


def tuned_sentence_bias(segmenter: Segmenter, dev: Sequence[TreebankSentence], unbiased: dict[str, Any]) -> dict[str, Any]:
    """Set ``segmenter.sentence_bias`` to the one of 0 and ``SENTENCE_BIASES`` with the best dev
    Tokens + Sentences F1 (0 unless another is better); ``unbiased`` holds the dev scores at 0.
    Returns the chosen bias's dev scores (``unbiased``'s other entries kept)."""
    best_bias, best = 0.0, unbiased
    for bias in SENTENCE_BIASES:
        segmenter.sentence_bias = bias
        scores = dev_scores(segmenter, dev)
        if scores["tokens_f1"] + scores["sentences_f1"] > best["tokens_f1"] + best["sentences_f1"]:
            best_bias, best = bias, {**unbiased, **scores}
    segmenter.sentence_bias = best_bias
    return best


ProgressHook = Callable[[int, int], Callable[[float | None], None]]
"""``progress(epoch, batches)`` -> a callback called with the mean loss after each batch, and
with None when the epoch's batches are done and the dev evaluation starts."""


def batches_per_pass(characters: int, config: TokenizerConfig) -> int:
    """The batches of one pass over ``characters`` of training text (``_pass`` makes about this many)."""
    return -(-max(1, (characters - config.window) // config.window) // config.batch_size)


def passes_per_epoch(batches: int, config: TokenizerConfig) -> int:
    """Whole passes over the training text per epoch, so that ``config.epochs`` epochs make at
    least ``config.min_updates`` updates: 1 on a corpus of that many batches per epoch or more."""
    return max(1, -(-config.min_updates // (config.epochs * batches)))


def _pass(net: SegmenterNet, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, ...], config: TokenizerConfig,
          rng: random.Random, step: Callable[[float], None], limit: int | None) -> tuple[float, int]:
    """One pass over the training text in windows of ``config.window`` characters (at most
    ``limit`` batches); the summed loss (times windows) and the number of windows."""
    chars, classes, labels = data
    size = config.window
    offset = rng.randrange(size)
    starts = list(range(offset, len(chars) - size + 1, size)) or [0]
    rng.shuffle(starts)
    if limit is not None:
        starts = starts[: limit * config.batch_size]
    net.train()
    total = 0.0
    for first in range(0, len(starts), config.batch_size):
        index = torch.tensor(starts[first : first + config.batch_size]).unsqueeze(1) + torch.arange(min(size, len(chars)))
        batch_chars = chars[index].masked_fill(torch.rand(index.shape) < config.char_dropout, _UNK)
        lengths = torch.full((index.size(0),), index.size(1), dtype=torch.long)
        scores = net(batch_chars, classes[index], lengths)
        loss = nn.functional.cross_entropy(scores.flatten(0, 1), labels[index].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        total += loss.item() * index.size(0)
        step(total / (first + index.size(0)))
    return total, len(starts)


def _epoch(net: SegmenterNet, optimizer: torch.optim.Optimizer, data: tuple[torch.Tensor, ...], config: TokenizerConfig,
           rng: random.Random, step: Callable[[float], None], passes: int, limit: int | None) -> tuple[float, int]:
    """``passes`` passes over the training text, at most ``limit`` updates in all; the mean loss and the updates made."""
    total, windows, updates = 0.0, 0, 0
    for _ in range(passes):
        left = None if limit is None else limit - updates
        if left is not None and left <= 0:
            break
        loss, count = _pass(net, optimizer, data, config, rng, step, left)  # the bar shows this pass's mean loss
        total, windows, updates = total + loss, windows + count, updates + -(-count // config.batch_size)
    return total / max(1, windows), updates


def train_segmenter(config: Config, say: Callable[[str], None], progress: ProgressHook | None = None) -> Segmenter | None:
    """Train the segmenter of ``config.tokenizer`` on ``data.train`` (best epoch by dev Tokens +
    Sentences F1), or return None when the config or the data asks for none.

    ``say`` gets one line per epoch; ``progress(epoch, batches)`` may return a per-batch callback
    (see ``ProgressHook``). The segmenter's ``scores`` hold its best epoch's dev scores and what its
    training cost: seconds, updates and the peak resident memory of this process.
    """
    started = time.perf_counter()
    train_sentences = read_treebank(config.data.train) if config.data.format == "conllu" else None
    if not wanted(config, train_sentences):
        return None
    assert train_sentences is not None
    dev = read_treebank(config.data.dev)
    settings = config.tokenizer
    torch.manual_seed(config.train.seed)
    table = CharTable.build(paragraph_texts(train_sentences))
    try:
        planned_shapes(settings, len(table.itos))  # before the network is built, as when it is loaded
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    segmenter = Segmenter(settings, SegmenterNet(settings, len(table.itos)), table, words_only(Lexicon.learn(train_sentences)))
    with_spaces = tokens_with_spaces(train_sentences)
    segmenter.allow_spaces = with_spaces > 0
    data = _stream(train_sentences, table)
    del train_sentences  # the stream, the table and the lexicon hold what training needs
    say(f"tokenizer: {len(data[0]):,} training characters, {len(table.itos)} characters known, "
        f"{len(segmenter.lexicon.entries)} multiword tokens; {sum(p.numel() for p in segmenter.net.parameters()):,} parameters")
    if with_spaces:
        say(f"tokenizer: {with_spaces:,} training tokens contain a space: a space may be inside a token")
    best, updates = _train_epochs(segmenter, data, dev, config, say, progress)
    segmenter.net.load_state_dict(best[0])
    segmenter.net.eval()
    say(f"tokenizer: trying {len(SENTENCE_BIASES)} sentence-end biases on dev")
    chosen = tuned_sentence_bias(segmenter, dev, best[1])
    if segmenter.sentence_bias:
        say(f"tokenizer: sentence-end bias {segmenter.sentence_bias:+.1f} chosen on dev: tokens {chosen['tokens_f1']:.2f}, "
            f"sentences {best[1]['sentences_f1']:.2f} -> {chosen['sentences_f1']:.2f}")
    segmenter.scores = {"dev_" + k if k != "epoch" else "best_epoch": v for k, v in chosen.items()}
    segmenter.scores.update(updates=updates, train_seconds=round(time.perf_counter() - started, 1), peak_rss_mb=peak_rss_mb())
    return segmenter


def _train_epochs(
    segmenter: Segmenter, data: tuple[torch.Tensor, ...], dev: Sequence[TreebankSentence], config: Config,
    say: Callable[[str], None], progress: ProgressHook | None,
) -> tuple[tuple[dict[str, torch.Tensor], dict[str, Any]], int]:
    """The epochs of ``train_segmenter``: the best epoch's weights and scores, and the updates made."""
    settings = config.tokenizer
    rng = random.Random(config.train.seed)
    optimizer = torch.optim.Adam(segmenter.net.parameters(), lr=settings.lr)
    batches = batches_per_pass(len(data[0]), settings)
    passes = passes_per_epoch(batches, settings)
    if passes > 1:
        say(f"tokenizer: {passes} passes over the training text per epoch, to make {settings.min_updates:,} updates "
            f"(tokenizer.min_updates) in {settings.epochs} epochs")
    best, best_key, stale, updates = None, -1.0, 0, 0
    for epoch in range(1, settings.epochs + 1):
        started = time.perf_counter()
        limit = settings.max_updates - updates if settings.max_updates else None
        step = progress(epoch, min(passes * batches, limit or passes * batches)) if progress is not None else None
        set_epoch_lr(optimizer, settings.lr, settings.lr_decay, epoch)
        loss, made = _epoch(segmenter.net, optimizer, data, settings, rng, step or (lambda loss: None), passes, limit)
        updates += made
        if step is not None:
            step(None)  # evaluating on dev
        scores = dev_scores(segmenter, dev)
        key = scores["tokens_f1"] + scores["sentences_f1"]
        improved = key > best_key
        if improved:
            best, best_key, stale = (deepcopy(segmenter.net.state_dict()), {"epoch": epoch, **scores}), key, 0
        else:
            stale += 1
        say(f"tokenizer epoch {epoch:3d}  loss {loss:.4f}  dev tokens {scores['tokens_f1']:6.2f}  "
            f"sentences {scores['sentences_f1']:6.2f}  {time.perf_counter() - started:6.1f} s" + ("  *best" if improved else ""))
        if settings.max_updates and updates >= settings.max_updates:
            say(f"tokenizer: stopped at {updates:,} updates (tokenizer.max_updates)")
            break
        if settings.patience and stale >= settings.patience and updates >= settings.min_updates:
            say(f"tokenizer early stop: no dev improvement for {stale} epochs")
            break
    assert best is not None
    return best, updates


def peak_rss_mb() -> float | None:
    """The peak resident memory of this process so far, in MB (None where the system does not say)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)  # macOS: bytes, Linux: KiB


def training_phase(
    config: Config, resumed: Segmenter | None, say: Callable[[str], None], console: Console, show_progress: bool
) -> Segmenter | None:
    """The segmenter phase of ``lstm-tag train``: the segmenter of the run being resumed, or a
    newly trained one (with a progress bar when ``show_progress``), or None."""
    if resumed is not None:
        say(f"tokenizer: kept from the run being resumed (dev tokens {resumed.scores.get('dev_tokens_f1')}, "
            f"sentences {resumed.scores.get('dev_sentences_f1')})")
        return resumed
    columns = (TextColumn("tokenizer epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[doing]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not show_progress) as bar:

        def progress(epoch: int, batches: int) -> Callable[[float | None], None]:
            for task_id in list(bar.task_ids):
                bar.remove_task(task_id)
            task = bar.add_task("tokenizer", total=batches, epoch=epoch, loss=0.0, doing="")

            def step(loss: float | None) -> None:
                if loss is None:
                    bar.update(task, doing="evaluating on dev")
                else:
                    bar.update(task, advance=1, loss=loss)

            return step

        try:
            return train_segmenter(config, say, progress)
        except KeyboardInterrupt:
            raise UserError("interrupted while training the tokenizer: no checkpoint was written") from None
