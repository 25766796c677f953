"""``lstm-tag init``: a commented, valid config for the user's own corpus files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .config import Config, load_config
from .errors import UserError
from .files import atomic_write_text, make_dir

TEMPLATE = """\
# lstm-tag config written by `lstm-tag init` for your corpus.
# Every key is explained in the README's config reference; paths are relative to this file.
# Train with:  lstm-tag train {config_name}

data:
  train: {train}
  dev: {dev}             # picks the best checkpoint and drives early stopping
  test: {test}
  format: {format}        # conllu | tsv (word<TAB>tag, blank line between sentences)
  tag_column: {tag_column}      # upos | xpos (CoNLL-U only)
  min_word_freq: 1      # rarer training words count as unknown
  unk_shapes: true      # unknown words keep a capitalisation/digit class
  lowercase_fallback: true  # an unknown "Each" is looked up as "each"

model:
  cell: lstm            # lstm | gru | hand_lstm | hand_gru
  embedding_dim: 128
  hidden_dim: 256       # per direction; the output layer's size is derived
  num_layers: 1
  bidirectional: true
  dropout: 0.33

train:
  epochs: 40
  batch_size: 32
  lr: 1.0               # SGD on the mean token loss: large steps, kept stable by clipping
  lr_decay: 0.05        # epoch e uses lr / (1 + lr_decay * (e - 1))
  momentum: 0.9
  word_dropout: 0.25    # a word seen c times becomes unknown with probability 0.25 / (0.25 + c)
  weight_decay: 0.0
  grad_clip: 5.0
  patience: 8           # stop after 8 epochs without a better dev accuracy
  seed: 1
  device: cpu           # cpu | cuda | auto
"""


def _relative(path: Path, folder: Path) -> str:
    """``path`` as the config should name it: relative to the config's folder when possible."""
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def write_starter_config(
    output: Path,
    train: Path,
    dev: Path,
    test: Path | None = None,
    format: str = "conllu",
    tag_column: str = "upos",
    force: bool = False,
) -> Config:
    """Write the starter config to ``output`` and return it validated (files must exist)."""
    if output.exists() and not force:
        raise UserError(f"{output}: exists already (use force=True to overwrite it)", {"force=True": "--force"})
    for role, path in (("train", train), ("dev", dev), ("test", test)):
        if path is not None and not path.is_file():
            raise UserError(f"{path}: {role} file not found")
    folder = output.parent
    text = TEMPLATE.format(
        config_name=output,
        train=json.dumps(_relative(train, folder)),  # a JSON string is a valid, quoted YAML string
        dev=json.dumps(_relative(dev, folder)),
        test=json.dumps(_relative(test, folder)) if test is not None else "null",
        format=format,
        tag_column=tag_column,
    )
    make_dir(folder)
    atomic_write_text(output, text)
    return load_config(output)
