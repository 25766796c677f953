"""One object that holds a loaded model and tags raw text, pre-split tokens or CoNLL-U with it.

``load`` reads a checkpoint once (a run directory or a checkpoint file, found as ``lstm-tag
predict --model`` finds it); the ``Pipeline`` it returns tags as often as asked and returns
``document.Document``s in Stanza's shape. It tags through the very functions ``lstm-tag
predict`` runs (``rawtag.tag_text``, which segments in a forked child process, and
``predict.tag_stream``) and writes with the same writers, so the Python API and the command
line cannot disagree; ``Pipeline.write`` is ``predict`` without the option parsing.

Train the demo model (``lstm-tag train configs/demo.yaml --output runs/demo``), then::

    >>> import lstm_tagger
    >>> tagger = lstm_tagger.load("runs/demo")
    >>> doc = tagger("Don't stop. The dog ate the apple")
    >>> [[word.form for word in sentence.words] for sentence in doc.sentences]
    [['Do', "n't", 'stop', '.'], ['The', 'dog', 'ate', 'the', 'apple']]
    >>> [word.upos for word in doc.sentences[1].words]
    ['DET', 'NOUN', 'VERB', 'DET', 'NOUN']
    >>> token = doc.sentences[0].tokens[0]  # a multiword token and its words
    >>> token.text, token.id, [word.form for word in token.words]
    ("Don't", (1, 2), ['Do', "n't"])
    >>> doc.sentences[1].text
    'The dog ate the apple'
    >>> print(doc.to_conllu())  # what lstm-tag predict --format conllu writes
    # newpar
    # sent_id = 1
    # text = Don't stop.
    1-2	Don't	_	_	_	_	_	_	_	_
    1	Do	_	...
    <BLANKLINE>
    >>> words = tagger.tag_tokens([["The", "dog", "ate", "the", "apple"]]).sentences[0].words
    >>> [(word.form, word.upos, word.xpos) for word in words][:2]  # a column the model did not learn is None
    [('The', 'DET', None), ('dog', 'NOUN', None)]
    >>> best = tagger("The dog", scores=True).sentences[0].words[1].scores["upos"]
    >>> max(best, key=best.get)
    'NOUN'

Large inputs stream: ``for sentence in tagger.stream("big.txt"): ...`` reads, segments and
tags a file of any size in bounded memory, and ``tagger.write("big.txt", out, "conllu")``
writes it as ``lstm-tag predict --file big.txt --format conllu`` does.
"""

from __future__ import annotations

import io
import os
from contextlib import closing, contextmanager
from itertools import tee
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence, TextIO, Union

from lstm_tagger.checkpoint import Checkpoint, find_checkpoint, load_checkpoint, serving_device
from lstm_tagger.corpus.vocab import Vocab
from lstm_tagger.errors import DataError, UserError
from lstm_tagger.model.chars import FormCache
from lstm_tagger.files import bounded_lines, open_input
from lstm_tagger.tagging.document import Document, Sentence, sentences_of
from lstm_tagger.tagging.formats import FORMATS, Record, write
from lstm_tagger.tagging.export import ExportedModel, load_onnx, tag_exported
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE, Tagged, chunks, input_format_for, read_input, tag_stream
from lstm_tagger.tagging.rawtag import CHUNK_CHARS, file_chunks, read_text_chunks, tag_text
from lstm_tagger.threads import parse_threads, set_tagging_threads, set_threads

Source = Union[str, "os.PathLike[str]", IO[Any], Iterable[Union[str, bytes]]]
"""An input: a file's path (``-``: standard input), an open file (binary or text), or lines (str or bytes)."""

INPUT_FORMATS = ("text", "tokens", "conllu")
INLINE_TEXT_CHARS = 100_000
"""A text given as a ``str`` up to this long is segmented in the calling thread, not in a forked
child (``segmenter.forked``): the fork and the pipe cost more than they overlap. With the fast
recipe on 2 cores, a 61-character text took 2.1 ms here against 16.3 ms with the child, and
91,500 characters 314 ms against 388 ms."""
NAMELESS = "<text>"
"""The name that messages give an input without one (the command line's name for its TEXT argument)."""


class Pipeline:
    """A loaded model (a checkpoint's tagger and segmenter, or an exported ONNX file) that tags.

    Build one with ``load`` (or ``Pipeline.from_onnx``). Each method reads one kind of input:
    ``tagger(text)`` raw text, ``tag_tokens`` pre-split sentences, ``tag_conllu`` CoNLL-U;
    ``stream`` and ``write`` read any of the three from a file or lines, in bounded memory.
    ``scores=True`` adds each word's tag probabilities. Nothing is printed.
    """

    def __init__(
        self, checkpoint: Checkpoint | None = None, exported: ExportedModel | None = None, path: Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE, workers: int = 1,
    ):
        if (checkpoint is None) == (exported is None):
            raise ValueError("a Pipeline needs a checkpoint or an exported model, not both")
        if batch_size < 1:
            raise UserError(f"batch_size={batch_size}: must be at least 1", {f"batch_size={batch_size}": f"--batch-size {batch_size}"})
        self.checkpoint, self.exported, self.batch_size, self.workers = checkpoint, exported, batch_size, workers
        chars = checkpoint.model.chars if checkpoint is not None else None
        self.cache = FormCache(chars) if chars is not None else None
        """The character vectors of the forms tagged so far (bounded: ``limits.FORM_CACHE_FORMS``), kept
        across calls: a pipeline that tags a sentence at a time encodes each form once, not once a call."""
        self.path = path if path is not None else (checkpoint.path if checkpoint is not None else exported.path)

    @classmethod
    def from_onnx(cls, path: str | Path, batch_size: int = DEFAULT_BATCH_SIZE, threads: int | str | None = None) -> "Pipeline":
        """A pipeline over a file of ``lstm-tag export --format onnx`` (tokens and CoNLL-U only: no segmenter)."""
        count = _thread_count(threads)
        if threads is not None:
            set_threads(count)
        return cls(exported=load_onnx(path), path=Path(path), batch_size=batch_size)

    @property
    def vocabs(self) -> Mapping[str, Vocab]:
        """Each learnt column's tag vocabulary, in the model's column order."""
        return (self.checkpoint or self.exported).vocabs

    @property
    def columns(self) -> list[str]:
        """The tag columns the model learnt: some of ``upos``, ``xpos``, ``feats``."""
        return list(self.vocabs)

    @property
    def has_segmenter(self) -> bool:
        """Whether raw text is split by a trained segmenter (else by whitespace and Unicode categories)."""
        return self.checkpoint is not None and self.checkpoint.segmenter is not None

    def __repr__(self) -> str:
        return f"Pipeline({str(self.path)!r}, columns={self.columns}, segmenter={self.has_segmenter})"

    def __call__(self, text: str, scores: bool = False) -> Document:
        """Segment raw ``text`` into sentences and tokens (paragraphs at blank lines) and tag them."""
        if not isinstance(text, str):
            raise UserError(f"raw text is a str, not {type(text).__name__}: pre-split sentences go to tag_tokens, files to stream")
        return Document.build("text", self._raw([text], scores, beside=len(text) > INLINE_TEXT_CHARS), self.vocabs, text)

    def tag_tokens(self, sentences: Iterable[Sequence[str]], scores: bool = False) -> Document:
        """Tag pre-split sentences, each a list of words (``predict --input-format tokens``)."""
        return Document.build("tokens", self._paired(map(_token_input, sentences), scores), self.vocabs)

    def tag_conllu(self, source: Source, scores: bool = False) -> Document:
        """Tag the word lines of CoNLL-U: a ``str`` with a line break or a tab is CoNLL-U text,
        any other source as in ``stream``. Every other line and column is kept byte for byte."""
        if isinstance(source, str) and ("\n" in source or "\t" in source):
            source = io.StringIO(source)
        return Document.build("conllu", self._records(source, "conllu", scores), self.vocabs)

    def stream(self, source: Source, input_format: str | None = None, scores: bool = False) -> Iterator[Sentence]:
        """The tagged sentences of ``source`` (a path, an open file or lines; see ``Source``), one at
        a time, read and tagged in bounded memory; ``input_format`` as ``input_format_of``."""
        kind = self.input_format_of(source, input_format)
        return sentences_of(kind, self._records(source, kind, scores), self.vocabs)

    def write(
        self, source: Source, out: TextIO, format: str = "text", input_format: str | None = None, scores: bool = False
    ) -> int:
        """Tag ``source`` and write it to ``out`` in ``format`` (``text``, ``json`` or ``conllu``), as
        ``lstm-tag predict`` does, streaming; returns the sentences written."""
        if format not in FORMATS:
            raise UserError(f"format={format!r}: expected {', '.join(FORMATS)}", {f"format={format!r}": f"--format {format}"})
        kind = self.input_format_of(source, input_format)
        with closing(self._records(source, kind, scores)) as records:  # a closed output (| head) stops the segmenter at once
            return write(records, self.vocabs, format, out)

    def input_format_of(self, source: Source, chosen: str | None = None) -> str:
        """``chosen``, else ``predict``'s default: ``conllu`` for a ``.conllu`` file, else ``text``
        with a segmenter, else ``tokens``."""
        if chosen is not None and chosen not in INPUT_FORMATS:
            named = {f"input_format={chosen!r}": f"--input-format {chosen}"}
            raise UserError(f"input_format={chosen!r}: expected {', '.join(INPUT_FORMATS)}", named)
        name = _name(source)
        if chosen == "text" or (chosen is None and self.has_segmenter and not (name or "").endswith(".conllu")):
            return "text"
        return input_format_for(name, chosen)

    def _records(self, source: Source, kind: str, scores: bool) -> Iterator[Record]:
        """``(what was read, Tagged)`` for each sentence of ``source`` read as ``kind``."""
        if kind == "text":
            yield from self._raw(_text_chunks(source), scores)
            return
        with _byte_lines(source) as (lines, name):
            yield from self._paired(read_input(lines, name, kind), scores)

    def _raw(self, text_chunks: Iterable[str], scores: bool, beside: bool = True) -> Iterator[Record]:
        if self.checkpoint is None:
            raise UserError(
                "input_format='text' needs a checkpoint (load(PATH)): an ONNX file has no segmenter",
                {"input_format='text'": "--input-format text", "load(PATH)": "--model"},
            )
        return tag_text(self.checkpoint, text_chunks, self.batch_size, scores, self.workers, self.cache, beside)

    def _paired(self, inputs: Iterable[tuple[list[str], Any]], scores: bool) -> Iterator[Record]:
        """``(block, Tagged)`` for each ``(words, block)`` of ``inputs``; the tagger reads a few chunks ahead."""
        ahead, behind = tee(inputs)
        return ((block, tagged) for (_, block), tagged in zip(behind, self._tag((words for words, _ in ahead), scores)))

    def _tag(self, words: Iterable[Sequence[str]], scores: bool) -> Iterator[Tagged]:
        if self.checkpoint is not None:
            return tag_stream(self.checkpoint, words, self.batch_size, scores, self.workers, self.cache)
        exported, size = self.exported, self.batch_size
        return (tagged for chunk in chunks(words, size * 8) for tagged in tag_exported(exported, chunk, size, scores))


def load(
    path: str | Path | None = None, device: str = "cpu", threads: int | str | None = None, cell: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE, runs_dir: str | Path = "runs",
) -> Pipeline:
    """Load a model to tag with: ``path`` is a run directory (its best checkpoint) or a checkpoint
    file; None takes the best checkpoint of the newest run under ``runs_dir`` (``predict --model``'s rules).

    ``device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``. ``threads``: None leaves torch's thread
    settings alone and tags in this thread; a count or ``auto`` (one per core) is ``predict
    --threads``: that many chunks are tagged at once on the CPU, each by one thread (torch's
    own thread count becomes 1 for the process). ``cell``: serve the weights with another cell
    of the same family (``predict --cell``).
    """
    count = _thread_count(threads)
    if threads is not None:
        set_threads(count)
    found = find_checkpoint(path, runs_dir)
    checkpoint = load_checkpoint(found, device=serving_device(device), cell=cell)
    on_cpu = next(checkpoint.model.parameters()).device.type == "cpu"
    workers = set_tagging_threads(count) if threads is not None and on_cpu else 1
    return Pipeline(checkpoint, path=found, batch_size=batch_size, workers=workers)


def _thread_count(threads: int | str | None) -> int | None:
    return parse_threads(threads, "threads") if threads is not None else None


def _token_input(words: Sequence[str]) -> tuple[list[str], None]:
    if isinstance(words, (str, bytes)):
        raise UserError(f"tag_tokens takes lists of words, e.g. [['The', 'dog']], not strings: got {words!r}")
    return list(words), None


def _is_path(source: Source) -> bool:
    return isinstance(source, (str, os.PathLike))


def _name(source: Source) -> str | None:
    """The file name ``source`` has (its path, or an open file's ``name``), if any."""
    if _is_path(source):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None


def _is_text_file(source: Any) -> bool:
    return isinstance(source, io.TextIOBase) or isinstance(source.read(0), str)


def _line_bytes(line: str | bytes) -> bytes:
    """One line of an iterable as bytes, with a line end."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    return data if data.endswith(b"\n") else data + b"\n"


@contextmanager
def _byte_lines(source: Source) -> Iterator[tuple[Iterable[bytes], str]]:
    """``source``'s lines as bytes and its name for messages; a file's lines are at most ``limits.MAX_LINE_BYTES``."""
    if _is_path(source):
        with open_input(os.fspath(source), DataError) as (handle, name):
            yield bounded_lines(handle, name, DataError), name
    elif hasattr(source, "read"):
        name = _name(source) or NAMELESS
        if _is_text_file(source):
            yield (line.encode("utf-8") for line in source), name
        else:
            yield bounded_lines(source, name, DataError), name
    else:
        yield map(_line_bytes, source), NAMELESS


def _text_chunks(source: Source) -> Iterator[str]:
    """``source``'s raw text in pieces (read lazily, so that the segmenting child process reads it)."""
    if _is_path(source):
        yield from file_chunks(os.fspath(source))
    elif hasattr(source, "read"):
        if _is_text_file(source):
            yield from iter(lambda: source.read(CHUNK_CHARS), "")
        else:
            yield from read_text_chunks(source, _name(source) or NAMELESS)
    else:
        for number, line in enumerate(source, start=1):
            yield _line_text(line, number)


def _line_text(line: str | bytes, number: int) -> str:
    """One line of an iterable as text, with a line end; bytes that are not UTF-8 are a ``DataError``."""
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as exc:
        raise DataError(f"{NAMELESS}:{number}: not UTF-8 (byte {exc.start + 1} of the line)") from None
    return text if text.endswith("\n") else text + "\n"
