"""Export a trained tagger to TorchScript or ONNX, and tag text with an exported file.

What is exported is the network from ids to tag scores, for a padded batch::

    words         (B, T) int64   word ids, <pad> beyond each length
    lengths       (B,)   int64   real tokens per sentence, all >= 1
    char_index    (B, T) int64   \\
    char_forms    (U, L) int64    > only with a character encoder: a ``chars.CharBatch``
    char_lengths  (U,)   int64   /
    -> emissions  (B, T, K) float32, unnormalised tag scores (meaningless beyond a length)
       [, emissions_COLUMN (B, T, K_c) for each further tag column of ``data.columns``]

B, T, U and L are free (dynamic axes). Everything else travels with the file as JSON
strings: the format name and version, the training config, the word, tag and character
vocabularies (each column's) and, for each CRF head, its transition, start and end scores
(``crf`` for the first column, ``crf_COLUMN`` for the others) (ONNX: the
model's ``metadata_props``; TorchScript: the extra file ``lstm_tag.json``, a JSON object
of the same strings). Tagging an exported file (``load_exported``, ``tag_exported``)
batches and encodes as ``predict`` does (``predict.prepare``), runs the network, and
decodes each head's emissions with ``crf.decode_tags``, the tagger's own decoder.

The network is the tagger's own ``Tagger.column_emissions``, traced (``torch.jit.trace`` for
TorchScript; ONNX's TorchScript-based exporter traces too), with the checkpoint's weights
in a ``Tagger`` of the cell's fused family (``hand_lstm`` -> ``lstm``, ``hand_gru`` ->
``gru``: the same parameters). Every layer and direction is then one ``torch.lstm`` /
``torch.gru`` call (``cells.fused_direction``), which both exporters keep as one operator
with its loop over time inside (ONNX has LSTM and GRU operators), and ``cells.run_layers``
runs over all T steps under tracing, so the file serves any batch and length. ``torch.export``
(the newer ONNX exporter) fixes the sentence length through the LSTM's decomposition.
"""

from __future__ import annotations

import inspect
import io
import json
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Json, model_validator
from torch import Tensor, nn

from lstm_tagger.model.chars import CharBatch
from lstm_tagger.checkpoint import Checkpoint, describe, find_checkpoint, load_checkpoint, read_description
from lstm_tagger.checkpoint_schema import Described
from lstm_tagger.config import Config
from lstm_tagger.model.crf import CRF, decode_tags
from lstm_tagger.errors import UserError
from lstm_tagger.files import atomic_write_bytes, check_output, read_bytes, same_file
from lstm_tagger.model.tagger import FAMILY, Tagger
from lstm_tagger.tagging.predict import DEFAULT_BATCH_SIZE, Tagged, chunks, per_sentence, prepare
from lstm_tagger.corpus.vocab import PAD_ID, UNK_ID, Vocab, WordVocab

FORMATS = ("torchscript", "onnx")
EXPORT_FORMAT = "lstm-tag-export"
EXPORT_VERSION = 1
EXTRA_FILE = "lstm_tag.json"
"""The TorchScript extra file that holds the metadata."""
ONNX_OPSET = 17
INSTALL_HINT = "pip install 'lstm-tag[onnx]'"


class ExportError(UserError):
    """An export that cannot be written, or a file that is not a readable exported lstm-tag model."""


# --- the network ---------------------------------------------------------------------


class EmissionNet(nn.Module):
    """The exported network: ``Tagger.column_emissions`` with the character batch as three tensors
    (one output for one tag column, a tuple of one per column for several)."""

    def __init__(self, model: Tagger):
        super().__init__()
        self.model = model

    def forward(
        self,
        words: Tensor,
        lengths: Tensor,
        char_index: Optional[Tensor] = None,
        char_forms: Optional[Tensor] = None,
        char_lengths: Optional[Tensor] = None,
    ) -> Tensor:
        """words (B, T), lengths (B,) [, char_index (B, T), char_forms (U, L), char_lengths (U,)],
        all int64 -> emissions (B, T, K) [, each further column's (B, T, K_c)]."""
        chars = None if char_index is None else CharBatch(char_index, char_forms, char_lengths)
        emissions = self.model.column_emissions(words, lengths, chars)
        return emissions[0] if len(emissions) == 1 else tuple(emissions)


def emission_net(checkpoint: Checkpoint) -> EmissionNet:
    """The checkpoint's weights in a CPU ``Tagger`` of its cell's fused family, in eval mode
    (the caller's model stays as it is)."""
    config = checkpoint.config.model
    fused = config.model_copy(update={"cell": FAMILY[config.cell]})
    sizes = {column: len(vocab) for column, vocab in checkpoint.vocabs.items()}
    chars = len(checkpoint.chars) if checkpoint.chars is not None else 0
    embed = checkpoint.model.embed
    model = Tagger(fused, len(checkpoint.words), sizes, chars, pretrained=embed.layout, clusters=embed.cluster_layout)
    model.load_state_dict(checkpoint.model.state_dict())
    return EmissionNet(model).eval()


def output_names(columns: Sequence[str]) -> list[str]:
    """The network's outputs: ``emissions`` (the first column's), then ``emissions_COLUMN`` for each further one."""
    return ["emissions", *(f"emissions_{column}" for column in columns[1:])]


def _crf_key(columns: Sequence[str], column: str) -> str:
    """The metadata key of ``column``'s CRF scores: ``crf`` for the first column, ``crf_COLUMN`` for the others."""
    return "crf" if column == columns[0] else f"crf_{column}"


def input_names(with_chars: bool) -> list[str]:
    """The network's inputs, in order."""
    return ["words", "lengths", *(("char_index", "char_forms", "char_lengths") if with_chars else ())]


# --- writing -------------------------------------------------------------------------


def _metadata(checkpoint: Checkpoint) -> dict[str, str]:
    """Everything the tagging side needs besides the network, as JSON strings."""
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": str(EXPORT_VERSION),
        "inputs": json.dumps(input_names(checkpoint.chars is not None)),
        **describe(checkpoint),
    }
    columns = list(checkpoint.vocabs)
    for column in columns:
        crf = checkpoint.model.heads[column].crf
        if crf is not None:
            scores = {name: getattr(crf, name).detach().cpu().tolist() for name in ("transitions", "start", "end")}
            meta[_crf_key(columns, column)] = json.dumps(scores)
    return meta


def _example_inputs(net: EmissionNet) -> tuple[Tensor, ...]:
    """A small batch for tracing: two sentences of different lengths and their forms, made of
    ``<unk>`` (the one id every vocabulary has besides ``<pad>``)."""
    words = torch.tensor([[UNK_ID, UNK_ID, UNK_ID], [UNK_ID, UNK_ID, PAD_ID]])
    lengths = torch.tensor([3, 2])
    if net.model.chars is None:
        return words, lengths
    char_index = torch.tensor([[1, 2, 3], [3, 1, 0]])
    char_forms = torch.tensor([[PAD_ID, PAD_ID, PAD_ID], [UNK_ID, UNK_ID, PAD_ID], [UNK_ID, PAD_ID, PAD_ID], [UNK_ID] * 3])
    char_lengths = torch.tensor([1, 2, 1, 3])
    return words, lengths, char_index, char_forms, char_lengths


@contextmanager
def _jit_deprecation_hidden() -> Iterator[None]:
    """Hide recent PyTorch's notice that TorchScript is deprecated: its files are what was asked for."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
        yield


def _torchscript_bytes(net: EmissionNet, meta: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with _jit_deprecation_hidden(), torch.no_grad():
        traced = torch.jit.trace(net, _example_inputs(net), check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={EXTRA_FILE: json.dumps(meta)})
    return buffer.getvalue()


def _onnx_bytes(net: EmissionNet, meta: dict[str, str]) -> bytes:
    try:
        import onnx
    except ImportError:
        raise ExportError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    example = _example_inputs(net)
    names = input_names(net.model.chars is not None)
    outputs = output_names(net.model.columns)
    axes = {"words": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, **{name: {0: "batch", 1: "time"} for name in outputs}}
    if net.model.chars is not None:
        axes.update(char_index={0: "batch", 1: "time"}, char_forms={0: "forms", 1: "chars"}, char_lengths={0: "forms"})
    # The TorchScript-based exporter; torch >= 2.5 has to be told not to use torch.export.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Its deprecation notice; a caution about LSTMs and batch sizes (the initial states
        # are zeros shaped from the input, and the tests run several batch sizes); and one
        # about indexing with negative indices (form rows and last characters are >= 0).
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            net, example, buffer, input_names=names, output_names=outputs, dynamic_axes=axes,
            opset_version=ONNX_OPSET, **legacy,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(model, meta)
    return model.SerializeToString()


def export_model(checkpoint: str | Path | Checkpoint, format: str, output: str | Path, force: bool = False) -> Path:
    """Write the network of ``checkpoint`` (a checkpoint file, a run directory or a loaded
    ``Checkpoint``) as a ``format`` file (``torchscript`` or ``onnx``) to ``output``; returns ``output``.

    The file is written atomically; its parent directory must exist. An existing ``output``
    is replaced only with ``force``, and never if it is not a regular file (a directory, a device).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}: use torchscript or onnx")
    output = Path(output)
    check_output(output, force, ExportError)
    if not output.parent.is_dir():
        raise ExportError(f"{output.parent}: output directory does not exist")
    if not isinstance(checkpoint, Checkpoint):
        source = find_checkpoint(checkpoint)
        if same_file(source, output):  # even with --force: the user's checkpoint is never replaced
            raise ExportError(f"{output}: is the checkpoint being exported; write the export to another file")
        checkpoint = load_checkpoint(source)
    net = emission_net(checkpoint)
    meta = _metadata(checkpoint)
    data = _torchscript_bytes(net, meta) if format == "torchscript" else _onnx_bytes(net, meta)
    atomic_write_bytes(output, data)
    return output


# --- reading and tagging -------------------------------------------------------------


@dataclass
class ExportedModel:
    """An exported file loaded for tagging: what ``export_model`` stored, and a way to run the network."""

    path: Path
    format: str
    config: Config
    words: WordVocab
    vocabs: dict[str, Vocab]
    """Each tag column's vocabulary, in ``data.columns`` order."""
    chars: Vocab | None
    crfs: dict[str, CRF | None]
    """Each column's CRF (its transition, start and end scores), None for a softmax head."""
    inputs: list[str]
    run: Callable[[dict[str, np.ndarray]], list[np.ndarray]]
    """Inputs by name (int64 arrays) -> each column's emissions (B, T, K_c) float32, in column order."""

    @property
    def tags(self) -> Vocab:
        """The first column's tag vocabulary."""
        return next(iter(self.vocabs.values()))

    @property
    def crf(self) -> CRF | None:
        """The first column's CRF, if it has one."""
        return next(iter(self.crfs.values()))


def _not_exported(path: Path, why: str) -> ExportError:
    return ExportError(f"{path}: not an exported lstm-tag model ({why})")


class CrfMeta(BaseModel):
    """A CRF's scores: ``transitions`` (K, K), ``start`` (K,), ``end`` (K,)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    transitions: list[list[float]]
    start: list[float]
    end: list[float]


class ExportMeta(Described):
    """The metadata of an exported file: ``describe``'s fields, the network's inputs and a CRF's scores."""

    format: Literal["lstm-tag-export"]
    inputs: Json[list[str]]
    crf: Optional[Json[CrfMeta]] = None
    """the first column's CRF scores"""
    crf_upos: Optional[Json[CrfMeta]] = None
    crf_xpos: Optional[Json[CrfMeta]] = None
    crf_feats: Optional[Json[CrfMeta]] = None
    """a further column's CRF scores (``_crf_key``)"""

    def crf_of(self, column: str) -> CrfMeta | None:
        """``column``'s CRF scores (None for a softmax head)."""
        return getattr(self, _crf_key(self.config.data.columns, column))

    @model_validator(mode="after")
    def _consistent(self) -> "ExportMeta":
        if self.inputs != input_names(self.chars is not None):
            raise ValueError(f"inputs {self.inputs} are not those of this model")
        columns = self.config.data.columns
        stored = {key for key in ("crf", "crf_upos", "crf_xpos", "crf_feats") if getattr(self, key) is not None}
        expected = {_crf_key(columns, column) for column in columns if self.config.model.output_of(column) == "crf"}
        if stored != expected:
            raise ValueError("CRF scores go with each CRF head, and only with one")
        for column, vocab in (self.columns or {}).items():
            crf, k = self.crf_of(column), len(vocab.itos)
            if crf is not None and (
                len(crf.transitions) != k or any(len(row) != k for row in crf.transitions) or len(crf.start) != k or len(crf.end) != k
            ):
                raise ValueError(f"{column}'s CRF scores are not of the size of its tag set ({k})")
        return self


def _read_metadata(meta: Any, path: Path) -> dict[str, Any]:
    """The fields of ``ExportedModel`` stored in ``meta``: what ``checkpoint.describe`` wrote, the
    inputs and the CRF, every one checked (``checkpoint.read_description`` with ``ExportMeta``)."""
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise _not_exported(path, "no lstm-tag metadata")
    described = read_description(meta, path, "export", EXPORT_VERSION, ExportError, ExportMeta)
    crfs = {column: _crf(described.fields.crf_of(column), len(vocab)) for column, vocab in described.vocabs.items()}
    return {"config": described.config, "words": described.words, "vocabs": described.vocabs, "chars": described.chars,
            "crfs": crfs, "inputs": described.fields.inputs}


def _crf(scores: CrfMeta | None, num_tags: int) -> CRF | None:
    """A CRF of ``num_tags`` tags with the checked ``scores`` (None when there are none)."""
    if scores is None:
        return None
    crf = CRF(num_tags)
    crf.load_state_dict({name: torch.tensor(getattr(scores, name), dtype=torch.float32) for name in ("transitions", "start", "end")})
    return crf


def _check_onnx_graph(session: Any, fields: dict[str, Any], path: Path) -> None:
    """The graph must be the one the metadata describes: our inputs (int64), one float output per
    column (``output_names``) with a score per tag of that column; a foreign graph that carries our
    metadata is refused."""
    inputs = [(i.name, i.type) for i in session.get_inputs()]
    outputs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
    if inputs != [(name, "tensor(int64)") for name in fields["inputs"]]:
        raise ExportError(f"{path}: the ONNX graph's inputs are not those of an exported lstm-tag model")
    vocabs = fields["vocabs"]
    expected = [(name, "tensor(float)", len(vocab)) for name, vocab in zip(output_names(list(vocabs)), vocabs.values())]
    if len(outputs) != len(expected) or any(
        (name, kind) != want[:2] or len(shape) != 3 or shape[2] != want[2] for (name, kind, shape), want in zip(outputs, expected)
    ):
        sizes = ", ".join(f"{len(vocab)} {column}" for column, vocab in vocabs.items())
        raise ExportError(f"{path}: the ONNX graph's outputs are not a score for each tag of each column ({sizes})")


def load_onnx(path: str | Path, threads: int | None = None) -> ExportedModel:
    """An exported ONNX file, run by onnxruntime on the CPU with ``threads`` threads
    (default: as many as PyTorch uses, ``torch.get_num_threads()``)."""
    path = Path(path)
    try:
        import onnxruntime
    except ImportError:
        raise ExportError(f"running an ONNX model needs onnxruntime: {INSTALL_HINT}") from None
    data = read_bytes(path, ExportError, "ONNX model")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own error types for a file it cannot read
        raise _not_exported(path, "not an ONNX model") from None
    fields = _read_metadata(session.get_modelmeta().custom_metadata_map, path)
    _check_onnx_graph(session, fields, path)

    outputs = output_names(list(fields["vocabs"]))

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return session.run(outputs, feed)
        except Exception as exc:  # onnxruntime's own error types: a graph that does not fit its metadata
            raise ExportError(f"{path}: the ONNX graph failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None

    return ExportedModel(path=path, format="onnx", run=run, **fields)


def load_torchscript(path: str | Path) -> ExportedModel:
    """An exported TorchScript file, run by PyTorch on the CPU."""
    path = Path(path)
    read_bytes(path, ExportError, "TorchScript model")  # one clear line for a missing file or a directory
    extra = {EXTRA_FILE: ""}
    try:
        with _jit_deprecation_hidden():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError):
        raise _not_exported(path, "not a TorchScript file") from None
    try:
        meta = json.loads(extra[EXTRA_FILE] or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = {}
    fields = _read_metadata(meta if isinstance(meta, dict) else {}, path)
    module.eval()
    names = fields["inputs"]

    def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            with torch.inference_mode():
                outputs = module(*(torch.from_numpy(feed[name]) for name in names))
            return [output.numpy() for output in (outputs if isinstance(outputs, tuple) else (outputs,))]
        except (RuntimeError, AttributeError, TypeError) as exc:  # a graph that does not fit its metadata
            raise ExportError(f"{path}: the TorchScript module failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None

    return ExportedModel(path=path, format="torchscript", run=run, **fields)


def load_exported(path: str | Path, threads: int | None = None) -> ExportedModel:
    """An exported file of either format (TorchScript files are zip archives)."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return load_torchscript(path)
    return load_onnx(path, threads)


ExportedResult = tuple[Tensor, Tensor | None, Tensor]
"""One sentence's output of one column: tag ids (len,), log-probabilities (len, K) or None, emissions (len, K)."""


def run_exported_columns(
    model: ExportedModel, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[dict[str, ExportedResult]]:
    """For each sentence, in order, each column's tag ids, log-probabilities when ``scores`` (else None)
    and emissions; batched by length as ``predict.run_model``, each head decoded by ``crf.decode_tags``."""
    columns = list(model.vocabs)
    empty = tuple(
        t for vocab in model.vocabs.values()
        for t in (torch.zeros(0, dtype=torch.long), torch.zeros(0, len(vocab)) if scores else None, torch.zeros(0, len(vocab)))
    )

    def run(words: Tensor, lengths: Tensor, chars: CharBatch | None) -> tuple:
        feed = {"words": words, "lengths": lengths}
        if chars is not None:
            feed.update(char_index=chars.index, char_forms=chars.forms, char_lengths=chars.lengths)
        outputs = model.run({name: tensor.numpy() for name, tensor in feed.items()})
        if len(outputs) != len(columns):
            raise ExportError(f"{model.path}: the network returned {len(outputs)} outputs, not one per column ({len(columns)})")
        decoded = []
        with torch.inference_mode():
            for column, output in zip(columns, outputs):
                num_tags = len(model.vocabs[column])
                if getattr(output, "shape", None) != (*words.shape, num_tags):
                    raise ExportError(f"{model.path}: the network returned {column} scores of shape {getattr(output, 'shape', None)}, "
                                      f"not (batch, length, {num_tags} tags)")
                emissions = torch.from_numpy(output)
                decoded += [*decode_tags(emissions, lengths, model.crfs[column], scores), emissions]
        return tuple(decoded)

    flat = per_sentence(prepare(model, sentences, batch_size), run, empty)  # three tensors per column in turn
    return [{column: result[3 * k : 3 * k + 3] for k, column in enumerate(columns)} for result in flat]


def run_exported(
    model: ExportedModel, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[ExportedResult]:
    """The first column's ``run_exported_columns``: tag ids (len_i,), log-probabilities (len_i, K)
    when ``scores`` (else None) and emissions (len_i, K) for each sentence, in order."""
    first = next(iter(model.vocabs))
    return [result[first] for result in run_exported_columns(model, sentences, batch_size, scores)]


def tag_exported(
    model: ExportedModel, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[Tagged]:
    """Tag each sentence (a list of words) with an exported model, as ``predict.tag`` does: every column."""
    results = []
    for words, result in zip(sentences, run_exported_columns(model, sentences, batch_size, scores)):
        columns = {column: model.vocabs[column].decode(best.tolist()) for column, (best, _, _) in result.items()}
        probs = {column: logp.exp() for column, (_, logp, _) in result.items() if logp is not None} or None
        results.append(Tagged(list(words), columns, probs))
    return results


def tag_lines_exported(
    model: ExportedModel, lines: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> Iterator[Tagged]:
    """Tag whitespace-tokenised lines (one sentence each) in chunks, in order, as ``predict.tag_stream``."""
    for chunk in chunks((line.split() for line in lines), batch_size * 8):
        yield from tag_exported(model, chunk, batch_size, scores)
