"""Export a trained tagger to TorchScript or ONNX, and tag text with an exported file.

What is exported is the network from ids to tag scores, for a padded batch::

    words         (B, T) int64   word ids, <pad> beyond each length
    lengths       (B,)   int64   real tokens per sentence, all >= 1
    char_index    (B, T) int64   \\
    char_forms    (U, L) int64    > only with a character encoder: a ``chars.CharBatch``
    char_lengths  (U,)   int64   /
    -> emissions  (B, T, K) float32, unnormalised tag scores (meaningless beyond a length)

B, T, U and L are free (dynamic axes). Everything else travels with the file as JSON
strings: the format name and version, the training config, the word, tag and character
vocabularies and, for a CRF model, its transition, start and end scores (ONNX: the
model's ``metadata_props``; TorchScript: the extra file ``lstm_tag.json``, a JSON object
of the same strings). Tagging an exported file (``load_exported``, ``tag_exported``)
turns tokens into ids as ``predict`` does, runs the network, and decodes in numpy:
argmax per token, or Viterbi with a CRF; ``scores`` gives log_softmax, or the CRF's
forward-backward marginals.

The network is rebuilt for export, with the checkpoint's weights. The tagger calls
``torch.lstm`` / ``torch.gru`` per direction with its module's weights (``cells.fused_direction``),
which the exporters do not trace as modules; the hand-written cells (``cells.py``) loop over time in Python, which tracing
unrolls for one length. Here every layer and direction is a one-directional ``nn.LSTM``
or ``nn.GRU`` over the padded batch (the weights have the same names in all four
cells), and the backward direction reverses each sentence within its own length by a
gather (``cells.reverse_index``), as the hand-written cells do: real tokens come first
in both directions, so padding never reaches a real token's state. The loop over time
stays inside one operator (ONNX has LSTM and GRU operators), so the file serves any
length. The character BiLSTM reads each direction's output at the form's last character.
ONNX files are written by PyTorch's TorchScript-based exporter: ``torch.export`` (the
newer exporter) fixes the sentence length through the LSTM's decomposition.
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import math
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

from .cells import reverse_index
from .chars import FormTable
from .checkpoint import Checkpoint, Described, describe, find_checkpoint, load_checkpoint, validate_metadata
from .config import Config
from .data import bucket_order
from .errors import UserError
from .files import atomic_write_bytes, check_output, read_bytes
from .model import FAMILY, Tagger
from .predict import DEFAULT_BATCH_SIZE, Tagged
from .vocab import PAD_ID, UNK_ID, Vocab, WordVocab

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


def _reverse(inputs: Tensor, index: Tensor) -> Tensor:
    """inputs (B, S, D), index (B, S) from ``reverse_index`` -> each row reversed within its length."""
    return inputs.gather(1, index.unsqueeze(2).expand(-1, -1, inputs.size(2)))


def _one_direction(family: str, source: nn.Module, layer: int, suffix: str, input_size: int) -> nn.Module:
    """A one-layer, one-direction nn.LSTM / nn.GRU with layer ``layer``/``suffix`` of ``source``'s weights."""
    rnn = (nn.LSTM if family == "lstm" else nn.GRU)(input_size, source.hidden_size, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, f"{name}_l0").copy_(getattr(source, f"{name}_l{layer}{suffix}"))
    return rnn


class _Layer(nn.Module):
    """One recurrent layer, one or two directions, over a padded batch."""

    def __init__(self, forward_rnn: nn.Module, backward_rnn: Optional[nn.Module]):
        super().__init__()
        self.forward_rnn = forward_rnn
        self.backward_rnn = backward_rnn

    def forward(self, inputs: Tensor, mask: Tensor, reverse: Tensor) -> Tensor:
        """inputs (B, T, D), mask (B, T, 1) float, 1 at real tokens, reverse (B, T) ->
        (B, T, directions * H), zeros beyond each length (as pad_packed_sequence gives)."""
        output, _ = self.forward_rnn(inputs)
        output = output * mask
        if self.backward_rnn is not None:
            backward, _ = self.backward_rnn(_reverse(inputs, reverse))
            output = torch.cat([output, _reverse(backward, reverse) * mask], 2)
        return output


class _CharCNN(nn.Module):
    """``chars.CharEncoder`` of kind ``cnn``: forms (U, L), lengths (U,) -> (U, hidden)."""

    def __init__(self, source: nn.Module):
        super().__init__()
        self.embedding = source.embedding
        self.conv = source.conv

    def forward(self, forms: Tensor, lengths: Tensor) -> Tensor:
        features = self.conv(self.embedding(forms).transpose(1, 2))  # (U, hidden, L)
        positions = torch.arange(forms.size(1), device=forms.device)
        beyond = positions.unsqueeze(0) >= lengths.unsqueeze(1)  # (U, L)
        features = features.masked_fill(beyond.unsqueeze(1), float("-inf"))
        return torch.tanh(features.max(dim=2).values)


class _CharLSTM(nn.Module):
    """``chars.CharEncoder`` of kind ``lstm``: forms (U, L), lengths (U,) -> (U, 2 * hidden),
    the final states of both directions (each direction's output at the last character)."""

    def __init__(self, source: nn.Module):
        super().__init__()
        self.embedding = source.embedding
        rnn = source.rnn
        self.forward_rnn = _one_direction("lstm", rnn, 0, "", rnn.input_size)
        self.backward_rnn = _one_direction("lstm", rnn, 0, "_reverse", rnn.input_size)

    def forward(self, forms: Tensor, lengths: Tensor) -> Tensor:
        embedded = self.embedding(forms)  # (U, L, char_dim)
        reverse = reverse_index(lengths, forms.size(1))
        forward, _ = self.forward_rnn(embedded)
        backward, _ = self.backward_rnn(_reverse(embedded, reverse))
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, forward.size(2))
        return torch.cat([forward.gather(1, last).squeeze(1), backward.gather(1, last).squeeze(1)], 1)


class EmissionNet(nn.Module):
    """The exported network: ids -> (B, T, K) emissions, with a ``Tagger``'s weights
    (any cell of either family; dropout is left out, as in eval mode)."""

    def __init__(self, model: Tagger):
        super().__init__()
        self.embedding = model.embed.embedding
        chars = model.chars
        self.chars = None if chars is None else _CharCNN(chars) if chars.kind == "cnn" else _CharLSTM(chars)
        family = FAMILY[model.config.cell]
        rnn = model.encoder.rnn
        directions = 2 if rnn.bidirectional else 1
        layers = []
        for layer in range(rnn.num_layers):
            size = rnn.input_size if layer == 0 else rnn.hidden_size * directions
            forward_rnn = _one_direction(family, rnn, layer, "", size)
            backward_rnn = _one_direction(family, rnn, layer, "_reverse", size) if directions == 2 else None
            layers.append(_Layer(forward_rnn, backward_rnn))
        self.layers = nn.ModuleList(layers)
        self.output = model.output

    def forward(
        self,
        words: Tensor,
        lengths: Tensor,
        char_index: Optional[Tensor] = None,
        char_forms: Optional[Tensor] = None,
        char_lengths: Optional[Tensor] = None,
    ) -> Tensor:
        """words (B, T), lengths (B,) [, char_index (B, T), char_forms (U, L), char_lengths (U,)],
        all int64 -> emissions (B, T, K)."""
        inputs = self.embedding(words)
        chars = self.chars
        if chars is not None:
            if char_index is None or char_forms is None or char_lengths is None:
                raise ValueError("this model reads characters: pass char_index, char_forms and char_lengths")
            per_form = chars(char_forms, char_lengths)  # (U, char features)
            inputs = torch.cat([inputs, per_form[char_index]], 2)
        steps = words.size(1)
        mask = (torch.arange(steps, device=words.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2).to(inputs.dtype)
        reverse = reverse_index(lengths, steps)
        for layer in self.layers:
            inputs = layer(inputs, mask, reverse)
        return self.output(inputs)


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
    crf = checkpoint.model.crf
    if crf is not None:
        meta["crf"] = json.dumps({name: getattr(crf, name).detach().cpu().tolist() for name in ("transitions", "start", "end")})
    return meta


def _example_inputs(net: EmissionNet) -> tuple[Tensor, ...]:
    """A small batch for tracing: two sentences of different lengths and their forms, made of
    ``<unk>`` (the one id every vocabulary has besides ``<pad>``)."""
    words = torch.tensor([[UNK_ID, UNK_ID, UNK_ID], [UNK_ID, UNK_ID, PAD_ID]])
    lengths = torch.tensor([3, 2])
    if net.chars is None:
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
    with _jit_deprecation_hidden():
        torch.jit.save(torch.jit.script(net), buffer, _extra_files={EXTRA_FILE: json.dumps(meta)})
    return buffer.getvalue()


def _onnx_bytes(net: EmissionNet, meta: dict[str, str]) -> bytes:
    try:
        import onnx
    except ImportError:
        raise ExportError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    example = _example_inputs(net)
    names = input_names(net.chars is not None)
    axes = {"words": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "emissions": {0: "batch", 1: "time"}}
    if net.chars is not None:
        axes.update(char_index={0: "batch", 1: "time"}, char_forms={0: "forms", 1: "chars"}, char_lengths={0: "forms"})
    # The TorchScript-based exporter; torch >= 2.5 has to be told not to use torch.export.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Its deprecation notice; a caution about LSTMs and batch sizes (the initial states
        # are zeros shaped from the input, and the tests run several batch sizes); and the
        # tracer's notes on nn.LSTM's own checks of the feature and hidden sizes, which are
        # fixed (batch and time stay free: the tests run other ones).
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.modules\.rnn")
        torch.onnx.export(
            net, example, buffer, input_names=names, output_names=["emissions"], dynamic_axes=axes,
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
        checkpoint = load_checkpoint(find_checkpoint(checkpoint))
    net = EmissionNet(copy.deepcopy(checkpoint.model).to("cpu")).eval()  # the caller's model stays as it is
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
    tags: Vocab
    chars: Vocab | None
    crf: dict[str, np.ndarray] | None
    """``transitions`` (K, K), ``start`` (K,), ``end`` (K,) for a CRF model, float32."""
    inputs: list[str]
    run: Callable[[dict[str, np.ndarray]], np.ndarray]
    """Inputs by name (int64 arrays) -> emissions (B, T, K) float32."""


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

    @model_validator(mode="after")
    def _consistent(self) -> "ExportMeta":
        if self.inputs != input_names(self.chars is not None):
            raise ValueError(f"inputs {self.inputs} are not those of this model")
        if (self.crf is not None) != (self.config.model.output == "crf"):
            raise ValueError("CRF scores go with a CRF model, and only with one")
        k = len(self.tags.itos)
        if self.crf is not None and (
            len(self.crf.transitions) != k or any(len(row) != k for row in self.crf.transitions)
            or len(self.crf.start) != k or len(self.crf.end) != k
        ):
            raise ValueError(f"CRF scores are not of the size of the tag set ({k})")
        return self


def _read_metadata(meta: Any, path: Path) -> dict[str, Any]:
    """The validated fields of an exported file's metadata (see ``checkpoint.validate_metadata``)."""
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise _not_exported(path, "no lstm-tag metadata")
    fields = validate_metadata(ExportMeta, meta, path, "export", EXPORT_VERSION, ExportError)
    crf = fields.crf
    return {
        "config": fields.config,
        "words": WordVocab.from_dict(fields.words.model_dump()),
        "tags": Vocab.from_dict(fields.tags.model_dump()),
        "chars": Vocab.from_dict(fields.chars.model_dump()) if fields.chars is not None else None,
        "crf": {k: np.asarray(getattr(crf, k), dtype=np.float32) for k in ("transitions", "start", "end")} if crf else None,
        "inputs": fields.inputs,
    }


def _check_onnx_graph(session: Any, fields: dict[str, Any], path: Path) -> None:
    """The graph must be the one the metadata describes: our inputs (int64), one float ``emissions``
    output with a score per tag; a foreign graph that carries our metadata is refused."""
    inputs = [(i.name, i.type) for i in session.get_inputs()]
    outputs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
    if inputs != [(name, "tensor(int64)") for name in fields["inputs"]]:
        raise ExportError(f"{path}: the ONNX graph's inputs are not those of an exported lstm-tag model")
    if len(outputs) != 1 or outputs[0][:2] != ("emissions", "tensor(float)") or len(outputs[0][2]) != 3 \
            or outputs[0][2][2] != len(fields["tags"]):
        raise ExportError(f"{path}: the ONNX graph's output is not a score for each of the {len(fields['tags'])} tags")


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

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return session.run(["emissions"], feed)[0]
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

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        try:
            with torch.inference_mode():
                return module(*(torch.from_numpy(feed[name]) for name in names)).numpy()
        except (RuntimeError, AttributeError, TypeError) as exc:  # a graph that does not fit its metadata
            raise ExportError(f"{path}: the TorchScript module failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None

    return ExportedModel(path=path, format="torchscript", run=run, **fields)


def load_exported(path: str | Path, threads: int | None = None) -> ExportedModel:
    """An exported file of either format (TorchScript files are zip archives)."""
    path = Path(path)
    if path.is_file() and zipfile.is_zipfile(path):
        return load_torchscript(path)
    return load_onnx(path, threads)


def _logsumexp(x: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    top = x.max(axis=axis, keepdims=True)
    out = top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))
    return out if keepdims else out.squeeze(axis)


def log_softmax(emissions: np.ndarray) -> np.ndarray:
    """(..., K) -> log-probabilities over the last axis."""
    return emissions - _logsumexp(emissions, -1, keepdims=True)


def viterbi(emissions: np.ndarray, lengths: np.ndarray, crf: dict[str, np.ndarray]) -> np.ndarray:
    """emissions (B, T, K), lengths (B,) >= 1 -> (B, T) int64 best tag path of each sentence, 0 past its length.

    The same recursion as ``CRF.decode``, in the emissions' dtype:
    ``delta_t[k] = E[t, k] + max_j (delta_{t-1}[j] + A[j, k])``, with back-pointers; at a
    padded step the score is carried and the pointer is the identity.
    """
    batch, total, num_tags = emissions.shape
    transitions, start, end = (crf[k].astype(emissions.dtype) for k in ("transitions", "start", "end"))
    mask = np.arange(total)[None, :] < lengths[:, None]
    identity = np.broadcast_to(np.arange(num_tags), (batch, num_tags))
    score = start + emissions[:, 0]
    pointers = np.empty((total, batch, num_tags), dtype=np.int64)  # pointers[t][b, k]: best tag at t - 1
    for t in range(1, total):
        candidates = score[:, :, None] + transitions[None]  # (B, previous K, K)
        previous = candidates.argmax(axis=1)
        best = np.take_along_axis(candidates, previous[:, None, :], axis=1)[:, 0]
        real = mask[:, t, None]
        score = np.where(real, best + emissions[:, t], score)
        pointers[t] = np.where(real, previous, identity)
    path = np.empty((batch, total), dtype=np.int64)
    path[:, -1] = (score + end).argmax(axis=1)
    rows = np.arange(batch)
    for t in range(total - 1, 0, -1):
        path[:, t - 1] = pointers[t][rows, path[:, t]]
    return np.where(mask, path, 0)


def crf_marginals(emissions: np.ndarray, lengths: np.ndarray, crf: dict[str, np.ndarray]) -> np.ndarray:
    """emissions (B, T, K), lengths (B,) >= 1 -> (B, T, K) float64 log p(y_t = k | x), by
    forward-backward as ``CRF.marginals``; rows past a length hold log(1/K)."""
    batch, total, num_tags = emissions.shape
    transitions, start, end = (crf[k].astype(np.float64) for k in ("transitions", "start", "end"))
    mask = np.arange(total)[None, :] < lengths[:, None]
    emissions = np.where(mask[:, :, None], emissions.astype(np.float64), 0.0)
    alpha = start + emissions[:, 0]
    alphas = [alpha - _logsumexp(alpha, 1, keepdims=True)]
    for t in range(1, total):
        step = _logsumexp(alphas[-1][:, :, None] + transitions[None], 1) + emissions[:, t]
        alphas.append(np.where(mask[:, t, None], step - _logsumexp(step, 1, keepdims=True), alphas[-1]))
    betas = [np.broadcast_to(end, (batch, num_tags))]
    for t in range(total - 2, -1, -1):
        step = _logsumexp(transitions[None] + (emissions[:, t + 1] + betas[-1])[:, None, :], 2)
        betas.append(np.where(mask[:, t + 1, None], step - _logsumexp(step, 1, keepdims=True), end))
    log_marginals = np.stack(alphas, 1) + np.stack(betas[::-1], 1)
    log_marginals = log_marginals - _logsumexp(log_marginals, 2, keepdims=True)
    return np.where(mask[:, :, None], log_marginals, -math.log(num_tags))


def run_exported(
    model: ExportedModel, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """For each sentence, in order: tag ids (len_i,), log-probabilities (len_i, K) when
    ``scores`` (else None), and emissions (len_i, K); batched by length as ``predict.run_model``."""
    num_tags = len(model.tags)
    empty = np.zeros((0, num_tags), dtype=np.float32)
    results = [(np.zeros(0, dtype=np.int64), empty if scores else None, empty)] * len(sentences)
    lengths = [len(words) for words in sentences]
    nonempty = [i for i, n in enumerate(lengths) if n > 0]
    forms = FormTable(model.chars, sentences) if model.chars is not None else None
    for group in bucket_order([lengths[i] for i in nonempty], batch_size, rng=None):
        index = [nonempty[j] for j in group]
        batch_lengths = np.array([lengths[i] for i in index], dtype=np.int64)
        words = np.full((len(index), int(batch_lengths.max())), PAD_ID, dtype=np.int64)
        for row, i in enumerate(index):
            words[row, : lengths[i]] = model.words.encode(sentences[i]).numpy()
        feed = {"words": words, "lengths": batch_lengths}
        if forms is not None:
            chars = forms.batch(index)
            feed.update(char_index=chars.index.numpy(), char_forms=chars.forms.numpy(), char_lengths=chars.lengths.numpy())
        emissions = model.run(feed)
        if getattr(emissions, "shape", None) != (*words.shape, num_tags):
            raise ExportError(f"{model.path}: the network returned scores of shape {getattr(emissions, 'shape', None)}, "
                              f"not (batch, length, {num_tags} tags)")
        if model.crf is not None:
            best = viterbi(emissions, batch_lengths, model.crf)
            logp = crf_marginals(emissions, batch_lengths, model.crf) if scores else None
        else:
            best = emissions.argmax(axis=2)
            logp = log_softmax(emissions.astype(np.float64)) if scores else None
        for row, i in enumerate(index):
            n = lengths[i]
            results[i] = (best[row, :n], logp[row, :n] if logp is not None else None, emissions[row, :n])
    return results


def tag_exported(
    model: ExportedModel, sentences: Sequence[Sequence[str]], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> list[Tagged]:
    """Tag each sentence (a list of words) with an exported model, as ``predict.tag`` does."""
    results = []
    for words, (best, logp, _) in zip(sentences, run_exported(model, sentences, batch_size, scores)):
        probs = torch.from_numpy(np.exp(logp).astype(np.float32)) if logp is not None else None
        results.append(Tagged(list(words), model.tags.decode(best.tolist()), probs))
    return results


def tag_lines_exported(
    model: ExportedModel, lines: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, scores: bool = False
) -> Iterator[Tagged]:
    """Tag whitespace-tokenised lines (one sentence each) in chunks, in order, as ``predict.tag_lines``."""
    chunk: list[list[str]] = []
    for line in lines:
        chunk.append(line.split())
        if len(chunk) >= batch_size * 8:
            yield from tag_exported(model, chunk, batch_size, scores)
            chunk = []
    if chunk:
        yield from tag_exported(model, chunk, batch_size, scores)
