"""What one training run works on, built before its first epoch: the corpus splits, the
vocabularies, the model, the optimiser and its average, the teachers' targets, the pretrained
table and word clusters, and the loop's state, fresh or restored from the run being resumed (``--resume``).

``loop.py`` runs the epochs over a ``Session``; nothing here trains.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import torch
from pydantic import TypeAdapter, ValidationError
from rich.console import Console

from lstm_tagger.segmenter import background
from lstm_tagger.checkpoint import Checkpoint, load_checkpoint
from lstm_tagger.checkpoint_schema import ClusterMeta, PretrainedMeta
from lstm_tagger.rundir import LAST
from lstm_tagger.config import Config
from lstm_tagger.model.chars import FormTable, build_char_vocab
from lstm_tagger.corpus.reader import Sentence, read_corpus
from lstm_tagger.training.distill import SoftTargets, agreement, teacher_targets
from lstm_tagger.training.distributed import World
from lstm_tagger.errors import DataError, UserError
from lstm_tagger.evaluation.evaluate import tag_score_matrix
from lstm_tagger.model.tagger import parameter_count
from lstm_tagger.limits import check_parameters, planned_parameters
from lstm_tagger.model.tagger import Tagger
from lstm_tagger.model.optim import WeightAverage, build_optimizer, restore_training, training_tensors
from lstm_tagger.segmenter.network import Segmenter
from lstm_tagger.corpus.clusters import SPECIALS, ClusterSource, read_clusters, word_clusters
from lstm_tagger.corpus.pretrained import Source, read_source
from lstm_tagger.memory import ALLOCATOR_VARIABLE
from lstm_tagger.corpus.vectors import align
from lstm_tagger.corpus.vocab import PAD_ID, UNK_ID, WordVocab, build_tag_vocabs, build_word_vocab, encode_tags


EXAMPLE_SENTENCES = 2
"""How many training sentences get a tag-score matrix in the report, before and after training."""

RESUME_MAY_CHANGE = {("train", "epochs"), ("train", "patience"), ("train", "threads"), ("model", "max_parameters")}
"""Config keys a ``--resume`` may change: they extend a run, set its speed or a limit (a thread count can change float rounding)."""


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


def capture(loop: LoopState, session: Session) -> tuple[dict, dict]:
    """The loop state, the batch-order RNG, torch's RNG, the optimiser's state and the weight average's (``optim.py``)."""
    version, internal, gauss = session.rng.getstate()
    meta = {**asdict(loop), "python_rng": [version, list(internal), gauss]}
    tensors = {"torch_rng": torch.get_rng_state(), **training_tensors(session.model, session.optimizer, session.average)}
    return meta, tensors


def restore(saved: Checkpoint, session: Session) -> LoopState:
    """Undo ``capture``: weights, optimiser state, weight average and both RNGs as they were after ``saved``'s epoch."""
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


def resume_point(config: Config, output_dir: Path) -> Checkpoint:
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


@dataclass
class Session:
    """What the epoch loop works on: set up once by ``build``, for one run."""

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


def build(
    config: Config, output_dir: Path, device: torch.device, splits: Splits, outside: Outside, world: World, say: RunLog,
    segmenter: Segmenter | None,
) -> Session:
    """Seed, build the vocabularies, the model (with any pretrained vectors and word clusters) and the optimiser;
    the checkpoint carries ``segmenter`` (trained before, by the segmenter phase) when there is one."""
    train_set = splits.train
    vectors, clusters = outside.vectors, outside.clusters
    torch.manual_seed(config.train.seed)
    rng = random.Random(config.train.seed)
    words, counts = build_word_vocab(
        (s.words for s in train_set), config.data.min_word_freq, config.data.unk_shapes, config.data.lowercase_fallback,
        extra=outside.words(),
    )
    word_dropout = WordDropout(words, counts, config.train.word_dropout) if config.train.word_dropout > 0 else None
    vocabs = build_tag_vocabs(config.data.columns, (s.columns for s in train_set))
    chars = build_char_vocab(s.words for s in train_set) if config.model.char_encoder != "none" else None
    forms = FormTable(chars, (s.words for s in train_set)) if chars is not None else None
    pretrained = _pretrained_meta(vectors, config) if vectors is not None else None
    cluster_meta = _cluster_meta(clusters, config) if clusters is not None else None
    own = words.trainable_rows() if vectors is not None or clusters is not None else None
    build = partial(
        Tagger, config.model, len(words), {c: len(v) for c, v in vocabs.items()}, len(chars) if chars is not None else 0,
        loss_weights=config.train.column_weights, label_smoothing=config.train.label_smoothing,
        distill_weight=config.train.distill_weight, adversarial=config.train.adversarial,  # w counts only with teachers' targets
        pretrained=pretrained.layout(own) if pretrained is not None else None,
        clusters=cluster_meta.layout(own) if cluster_meta is not None else None,
    )
    check_parameters(planned_parameters(build), config.model.max_parameters, "model")  # before allocating it
    model = build().to(device)
    if vectors is not None:
        _load_vectors(model, words, vectors, say)
    if clusters is not None:
        _load_clusters(model, words, clusters, say)
    average = WeightAverage(model, config.train.ema_decay) if config.train.ema_decay > 0 else None
    tag_ids = [encode_tags(vocabs, s.columns) for s in train_set]
    soft = _teach(config, train_set, vocabs, tag_ids, say) if config.train.teacher else None
    return Session(
        config=config, output_dir=output_dir, device=device, splits=splits, world=world, say=say, model=model,
        optimizer=build_optimizer(model, config.train), average=average, rng=rng,
        current=Checkpoint(
            model=average.model if average else model, config=config, words=words, vocabs=vocabs, chars=chars, segmenter=segmenter,
            pretrained=pretrained, clusters=cluster_meta,
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


def start(session: Session, saved: Checkpoint | None) -> LoopState:
    """The loop state to begin with: restored from ``saved`` (a resume) or fresh; says what is trained."""
    current, splits, say = session.current, session.splits, session.say
    if saved is not None:
        if saved.words.itos != current.words.itos or _itos(saved.vocabs) != _itos(current.vocabs) or (
            (saved.chars and saved.chars.itos) != (current.chars and current.chars.itos)
        ):
            raise UserError(f"{session.output_dir}: cannot resume, the training data changed since the run started")
        loop = restore(saved, session)
        say(f"resuming {session.output_dir} after epoch {loop.epoch}")
    else:
        loop = LoopState(examples=[tag_score_matrix(current, s.words, "before training") for s in splits.train[:EXAMPLE_SENTENCES]])
    say(
        f"train {len(splits.train):,} sentences / {sum(session.lengths):,} tokens, dev {len(splits.dev):,} sentences; "
        f"{len(current.words):,} words, {' + '.join(f'{len(v)} {c}' for c, v in current.vocabs.items())} tags; "
        f"{parameter_count(session.model):,} parameters on {session.device}"
    )
    if os.environ.get(ALLOCATOR_VARIABLE) == "tcmalloc":
        say(f"malloc: tcmalloc, preloaded ({ALLOCATOR_VARIABLE}=system keeps the C library's)")
    if session.world.distributed:
        say(
            f"data-parallel over {session.world.size} processes: each takes 1/{session.world.size} "
            f"of every batch of {session.config.train.batch_size} sentences"
        )
    return loop


@dataclass
class Outside:
    """What training reads besides the corpus, before anything is written: the pretrained vectors
    (``model.vectors``) and the word clusters (``model.clusters``), each a named resource or a file."""

    vectors: Source | None
    clusters: ClusterSource | None

    @classmethod
    def read(cls, config: Config) -> "Outside":
        model = config.model
        vectors = read_source(model.vectors, model.vectors_max_words) if model.vectors is not None else None
        clusters = read_clusters(model.clusters, bits=bool(model.cluster_prefixes)) if model.clusters is not None else None
        return cls(vectors, clusters)

    def words(self) -> list[str]:
        """The words that join the vocabulary after the training words: the vectors', then the clusters'."""
        return [*(self.vectors.vectors.words if self.vectors else ()), *(self.clusters.clusters.words if self.clusters else ())]


def _pretrained_meta(source: Source, config: Config) -> PretrainedMeta:
    """What the checkpoint's header says of the pretrained table: its source, size and whether it learns."""
    return PretrainedMeta(
        name=source.name, version=source.version, sha256=source.sha256, vectors=len(source.vectors.words),
        dim=source.vectors.dim, frozen=config.model.freeze_vectors,
    )


def _load_vectors(model: Tagger, words: WordVocab, source: Source, say: RunLog) -> None:
    """Copy the pretrained vectors into the model's pretrained table, a row per vocabulary word
    (the exact word, else its lower-cased form; zeros for a word the source lacks)."""
    table = model.embed.pretrained_table().clone()
    filled = align(source.vectors, words.itos, table)
    model.embed.set_pretrained(table)
    frozen = "frozen, float16" if model.embed.layout.frozen else "fine-tuned"
    say(
        f"vectors: {len(source.vectors.words):,} of {source.vectors.dim} dimensions from {source.name}"
        f"{' ' + source.version if source.version else ''}, {filled:,} of {len(words):,} vocabulary rows set from them "
        f"({len(words) - words.trained:,} words that training lacks), {frozen}"
    )


def _cluster_meta(source: ClusterSource, config: Config) -> ClusterMeta:
    """What the checkpoint's header says of the word clusters: their source, labels and tables."""
    return ClusterMeta(
        name=source.name, version=source.version, sha256=source.sha256, words=len(source.clusters.words),
        labels=source.clusters.labels, dim=config.model.cluster_dim, prefixes=config.model.cluster_prefixes,
    )


def _load_clusters(model: Tagger, words: WordVocab, source: ClusterSource, say: RunLog) -> None:
    """Set each vocabulary word's cluster (the exact word's, else its lower-cased form's; none for the others)."""
    assert model.embed.clusters is not None
    found = word_clusters(source.clusters, words.itos)
    model.embed.clusters.word_clusters.copy_(found)
    trained = [row for row in range(1, words.trained) if words.itos[row] not in SPECIALS]
    having = int((found[trained] > 0).sum()) if trained else 0
    version = f" {source.version}" if source.version else ""
    lengths = model.config.cluster_prefixes
    prefixes = ", ".join(f"{rows - 1:,} {length}-bit" for length, rows in zip(lengths, model.embed.clusters.layout.rows[1:]))
    say(
        f"clusters: {len(source.clusters.words):,} words in {len(source.clusters.labels):,} clusters from {source.name}{version}"
        f"{f' (prefixes: {prefixes})' if prefixes else ''}; {having:,} of the {len(trained):,} training words have one"
    )
