"""lstm-tag: train, use and evaluate (Bi)LSTM part-of-speech taggers.

The Python API is the same functions the command line calls::

    import lstm_tagger

    tagger = lstm_tagger.load("runs/demo")   # a run directory or a checkpoint file, loaded once
    doc = tagger("Don't stop. The dog ate the apple")
    [(word.form, word.upos) for word in doc.sentences[0].words]
    doc.to_conllu()                          # what lstm-tag predict --format conllu writes

and below it::

    from lstm_tagger import load_config, train, load_checkpoint, tag, evaluate_model

    result = train(load_config("configs/demo.yaml"), "runs/demo")
    tagger = load_checkpoint("runs/demo/model-best.safetensors")
    tag(tagger, [["The", "dog", "ate", "the", "apple"]])[0].tags
"""

__version__ = "0.1.0"

import importlib
from typing import Any

_API = {
    "Checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "Config": "config", "load_config": "configfile",
    "evaluate": "evaluation.evaluate", "evaluate_model": "evaluation.evaluate", "tag": "tagging.predict",
    "train": "training.loop", "load": "tagging.pipeline", "Pipeline": "tagging.pipeline", "Document": "tagging.document",
}
"""The public names and their modules: imported on first use, so that ``python -m lstm_tagger``
can catch a Ctrl-C while torch is being imported (see ``__main__``)."""

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
