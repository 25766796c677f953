"""``lstm-tag init``: the shipped best recipe, set up for the user's own corpus files.

The recipe is ``configs/ud_ewt.yaml`` itself (word embeddings + a character BiLSTM ->
BiLSTM -> CRF), comments included: only its data paths, format and tag column are replaced.
The format and the tag column are found in the files, and the files are read with the
readers ``train`` uses, so a config that ``init`` writes is one that ``train`` accepts.

What a user of a new language would otherwise find out only after training is returned as
warnings (the caller prints them): tokens that contain a space, dev or test tags that the
training file never has (another spelling of the tag set), and sentences without ``# text``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lstm_tagger.config import Config
from lstm_tagger.configfile import config_from_text
from lstm_tagger.corpus.conllu import decode_lines
from lstm_tagger.corpus.rawtext import TreebankSentence, read_treebank
from lstm_tagger.corpus.reader import Sentence, read_conllu
from lstm_tagger.errors import DataError, UserError
from lstm_tagger.files import atomic_write_text, check_output, make_dir, open_binary, same_file
from lstm_tagger.segmenter.labels import tokens_with_spaces
from lstm_tagger.training.session import Splits

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "ud_ewt.yaml"
"""The shipped best recipe, which ``init`` copies."""

TAG_COLUMNS = ("upos", "xpos", "feats")
SET_BY_INIT = ("train", "dev", "test", "format", "columns")
"""The keys of the recipe's data section that ``init`` writes for the user's corpus."""

HEADER = """\
# lstm-tag config written by `lstm-tag init`: the shipped best recipe (configs/ud_ewt.yaml:
# word embeddings + a character BiLSTM -> BiLSTM -> CRF) for your corpus.
# Every key is explained in docs/config.md; paths are relative to this file.
# Train with:  lstm-tag train {config}

data:
  # the corpus; dev picks the best checkpoint and drives early stopping, test is scored at the end
  train: {train}
  dev: {dev}
  test: {test}
  format: {format}        # found in the files: conllu | tsv (word<TAB>tag)
"""


@dataclass
class Starter:
    """What ``init`` wrote: the config, and what it found in the corpus."""

    config: Config
    format: str
    columns: list[str]
    """The CoNLL-U tag columns with a value on every training word (empty for TSV)."""
    sentences: dict[str, int]
    """Sentences read per split: train, dev and (if given) test."""
    warnings: list[str] = field(default_factory=list)
    """What the user should know before training (see ``corpus_warnings``), one line each."""
    train_words: int = 0
    """Words in the training file; below ``SMALL_CORPUS_WORDS`` the model section was adapted."""


UNSEEN_SHARE = 0.01
"""Dev or test tags that training never has are reported when they are on at least this share
of the file's words: below it, a few rare tags are expected (11 FEATS strings of EWT's dev, on
18 of its 25,147 words, are not in its training file), above it the tag sets differ (VTB's dev
spells its XPOS tags otherwise: 44% of its words have a tag its training file never has)."""
EXAMPLES = 3
"""Examples a warning names."""

SMALL_CORPUS_WORDS = 50_000
"""Below this many training words ``init`` writes a smaller, more regularised tagger
(``SMALL_CORPUS_MODEL``): the recipe's 256 units per direction and dropout 0.33 overfit a
treebank of 20,000 words within ten epochs."""
SMALL_CORPUS_MODEL = {"hidden_dim": "128", "dropout": "0.5"}
"""What ``init`` changes in the recipe's ``model`` section for a small corpus. Test UPOS, tagger
alone (docs/commands.md, init): Vietnamese VTB (20,215 words) 86.40 -> 87.91 and
86.61 -> 87.64 with two seeds, the 400-sentence Chinese GSD split 82.74 -> 83.46."""


def small_corpus_model(text: str, words: int) -> str:
    """``text`` (a config) with the ``model`` keys of ``SMALL_CORPUS_MODEL`` set, each with a
    comment saying why; other sections (the tokenizer's own ``hidden_dim``) are left alone."""
    lines, section = text.splitlines(keepends=True), None
    for i, line in enumerate(lines):
        if re.match(r"[^\s#]", line):
            section = line.split(":")[0]
        key = re.match(r"  (\w+):", line)
        if section == "model" and key and key.group(1) in SMALL_CORPUS_MODEL:
            was = line.split(":", 1)[1].split("#")[0].strip()
            setting = f"  {key.group(1)}: {SMALL_CORPUS_MODEL[key.group(1)]}"
            lines[i] = f"{setting:<24}# the recipe has {was}; init's choice for a small corpus ({words:,} training words)\n"
    return "".join(lines)


def _share(count: int, total: int) -> str:
    return f"{count:,} of {total:,} {{}} ({100 * count / total:.1f}%)" if total else f"{count:,} {{}}"


def unseen_tags(train: list[Sentence], other: list[Sentence], path: Path, columns: list[str]) -> list[str]:
    """For each tag column: a warning when ``other``'s words with a tag that ``train`` never has
    are at least ``UNSEEN_SHARE`` of its words (the tagger can never predict those tags)."""
    warnings = []
    for column in columns:
        known = {tag for s in train for tag in s.columns[column]}
        tags = Counter(tag for s in other for tag in s.columns[column])
        unseen = Counter({tag: n for tag, n in tags.items() if tag not in known})
        words, total = sum(unseen.values()), sum(tags.values())
        if total and words / total >= UNSEEN_SHARE:
            examples = ", ".join(tag for tag, _ in unseen.most_common(EXAMPLES))
            warnings.append(
                f"{path}: the {column.upper()} tags of {_share(words, total).format('words')} never occur in the "
                f"training file ({len(unseen):,} tags, e.g. {examples}): the tagger cannot predict them; "
                "check that both files spell the tags alike"
            )
    return warnings


def spaced_tokens(train: list[TreebankSentence], segmenter: bool) -> list[str]:
    """A warning when training tokens contain a space (Vietnamese ``danh sách``), saying what
    the segmenter (when one is trained) and ``predict`` make of them."""
    forms = Counter(t.form for s in train for t in s.tokens if any(c.isspace() for c in t.form))
    if not forms:
        return []
    tokens = sum(len(s.tokens) for s in train)
    example = forms.most_common(1)[0][0]
    inner = segmenter and tokens_with_spaces(train) > 0  # what turns the segmenter's allow_spaces on
    learns = "; the segmenter learns where a space is inside a token" if inner else ""
    return [
        f"{_share(sum(forms.values()), tokens).format('training tokens')} contain a space (e.g. {example!r}){learns}; "
        "predict --input-format tokens splits at every space: give such tokens as CoNLL-U"
    ]


def missing_text(treebanks: dict[str, list[TreebankSentence]], paths: dict[str, Path]) -> list[str]:
    """A warning for each file with sentences without ``# text``: from the training file no
    segmenter is trained then (``tokenizer.mode: auto``), and raw-text scores on dev or test
    are taken on text rebuilt from the tokens."""
    warnings = []
    for role, sentences in treebanks.items():
        lacking = sum(s.text is None for s in sentences)
        if not lacking:
            continue
        what = _share(lacking, len(sentences)).format("sentences")
        if role == "train":
            then = ("no segmenter is trained (tokenizer.mode auto needs it on every training sentence): "
                    "the model tags tokens, not raw text")
        else:
            then = ("raw-text scores on it (eval --raw, the segmenter's dev scores) are taken on text rebuilt "
                    "from its tokens")
        warnings.append(f"{paths[role]}: {what} have no # text: {then}")
    return warnings


def corpus_warnings(config: Config, splits: Splits, paths: dict[str, Path]) -> list[str]:
    """What ``init`` tells the user about the corpus files ``paths`` (``train``, ``dev`` and
    perhaps ``test``, as the user named them) before training: see the module docstring."""
    warnings = []
    if config.data.format == "conllu":
        treebanks = {role: read_treebank(path) for role, path in paths.items()}
        segmenter = all(s.text is not None for s in treebanks["train"])
        warnings += spaced_tokens(treebanks["train"], segmenter) + missing_text(treebanks, paths)
    for role, sentences in (("dev", splits.dev), ("test", splits.test)):
        if sentences is not None:
            warnings += unseen_tags(splits.train, sentences, paths[role], config.data.columns)
    return warnings


def detect_format(path: Path) -> str:
    """``conllu`` or ``tsv``, from the first line of ``path`` that tells them apart: a
    10-column token line or a comment is CoNLL-U, a 2-column line TSV."""
    with open_binary(path, DataError, "corpus file") as handle:
        for number, line in decode_lines(handle, path):
            columns = len(line.split("\t"))
            if columns == 10 or (line.startswith("#") and columns != 2):
                return "conllu"
            if columns == 2:
                return "tsv"
            if line.strip():
                raise DataError(
                    f"{path}:{number}: cannot tell the format: {columns} tab-separated columns "
                    "(CoNLL-U has 10, TSV 2); give --format"
                )
    return "conllu"  # empty: the reader says so


def columns_with_values(path: Path) -> list[str]:
    """The CoNLL-U tag columns (``upos``, ``xpos``) that have a value on every word of ``path``,
    and ``feats`` when some word has features (``_``, no features, is a value)."""
    found = []
    for column in TAG_COLUMNS:
        try:
            sentences = read_conllu(path, [column])
        except DataError:
            continue
        if column != "feats" or any(tag != "_" for s in sentences for tag in s.columns[column]):
            found.append(column)
    return found


def _relative(path: Path, folder: Path) -> str:
    """``path`` as the config should name it: relative to the config's folder when possible."""
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def _recipe_rest(recipe: str) -> str:
    """The recipe after its header: the data section without the keys ``init`` sets, then the rest verbatim."""
    lines = recipe.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"data:\s*(#.*)?$", line)), None)
    if start is None:
        raise UserError(f"{RECIPE}: has no 'data:' section to start from")
    kept = []
    in_data = True
    for line in lines[start + 1 :]:
        if re.match(r"[^\s#]", line):
            in_data = False
        key = re.match(r"\s+(\w+):", line)
        if not (in_data and key and key.group(1) in SET_BY_INIT):
            kept.append(line)
    return "".join(kept)


def starter_text(output: Path, train: Path, dev: Path, test: Path | None, format: str, columns: list[str]) -> str:
    """The config ``init`` writes: the recipe with the user's files (paths relative to ``output``)."""
    try:
        recipe = RECIPE.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{RECIPE}: cannot read the shipped recipe ({exc.strerror}); init needs a source checkout") from None
    folder = output.parent
    quoted = lambda path: json.dumps(_relative(path, folder))  # noqa: E731  (a JSON string is a quoted YAML string)
    text = HEADER.format(
        config=output, train=quoted(train), dev=quoted(dev), test=quoted(test) if test is not None else "null", format=format
    )
    if format == "conllu":
        text += f"  columns: [{', '.join(columns)}]      # the CoNLL-U tag columns to learn: any of upos, xpos, feats\n"
    return text + _per_column_kept(_recipe_rest(recipe), columns)


def _per_column_kept(rest: str, columns: list[str]) -> str:
    """``rest`` without the recipe's per-column entries (``model.output_per_column``,
    ``train.column_weights``) of columns not learnt, nor such a block left empty."""
    kept: list[str] = []
    block: list[str] | None = None
    for line in rest.splitlines(keepends=True):
        entry = re.match(r"\s{4,}(\w+):", line)
        if block is not None and entry:
            if entry.group(1) in columns:
                block.append(line)
            continue
        if block is not None:
            kept += block if len(block) > 1 else []
            block = None
        if re.match(r"\s+(output_per_column|column_weights):\s*(#.*)?$", line):
            block = [line]
        else:
            kept.append(line)
    if block is not None and len(block) > 1:
        kept += block
    return "".join(kept)


def write_starter_config(
    output: Path,
    train: Path,
    dev: Path,
    test: Path | None = None,
    format: str | None = None,
    tag_column: str | None = None,
    force: bool = False,
) -> Starter:
    """Write the recipe for these corpus files to ``output``, after reading them as ``train`` would.

    ``format`` (``conllu`` or ``tsv``) is found in the training file when not given; the
    columns learnt are ``tag_column`` alone if given, else every CoNLL-U tag column with a
    value on every training word. Anything ``train`` would refuse (a missing file, a
    malformed line, a tag column without values) is refused here with the same one line,
    and nothing is written.
    """
    for role, path in (("train", train), ("dev", dev), ("test", test)):
        if path is not None and not path.is_file():
            raise UserError(f"{path}: {role} file not found" if not path.exists() else f"{path}: {role} file is not a regular file")
        if path is not None and same_file(output, path):
            raise UserError(f"{output}: is the {role} file {path}; the config must go to another file")
    check_output(output, force)
    format = format or detect_format(train)
    columns = columns_with_values(train) if format == "conllu" else []
    learnt = [tag_column] if tag_column is not None else columns or ["upos"]  # none: the reader names the first word without
    text = starter_text(output, train, dev, test, format, learnt)
    config = config_from_text(text, str(output), output.parent.resolve())
    try:
        splits = Splits.read(config)
    except DataError as exc:
        if format == "conllu" and columns and tag_column is not None and tag_column not in columns:
            hint = f"tag_column={columns[0]!r}"
            raise DataError(
                f"{exc} (the {columns[0].upper()} column has a tag on every word: {hint})",
                {**exc.options, hint: f"--tag-column {columns[0]}"},
            ) from None
        raise
    words = sum(len(sentence.words) for sentence in splits.train)
    if words < SMALL_CORPUS_WORDS:
        text = small_corpus_model(text, words)
        config = config_from_text(text, str(output), output.parent.resolve())
    sentences = {"train": len(splits.train), "dev": len(splits.dev)}
    if splits.test is not None:
        sentences["test"] = len(splits.test)
    paths = {"train": train, "dev": dev, **({"test": test} if test is not None else {})}
    warnings = corpus_warnings(config, splits, paths)
    make_dir(output.parent)
    atomic_write_text(output, text)
    return Starter(config, format, columns, sentences, warnings, words)
