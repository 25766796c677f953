"""lstm-tag: train, use and evaluate (Bi)LSTM part-of-speech taggers.

The Python API is the same functions the command line calls::

    from lstm_tagger import load_config, train, load_checkpoint, tag, evaluate_model

    result = train(load_config("configs/demo.yaml"), "runs/demo")
    tagger = load_checkpoint("runs/demo/model-best.safetensors")
    tag(tagger, [["The", "dog", "ate", "the", "apple"]])[0].tags
"""

__version__ = "0.1.0"

import importlib
import sys
import types
from typing import Any

_API = {
    "Checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "Config": "config", "load_config": "config",
    "evaluate": "evaluate", "evaluate_model": "evaluate", "tag": "predict", "train": "training",
}
"""The public names and their modules: imported on first use, so that ``python -m lstm_tagger``
can catch a Ctrl-C while torch is being imported (see ``__main__``)."""

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_API[name]}", __name__), name)



class _Package(types.ModuleType):
    """Keeps ``lstm_tagger.evaluate`` the function (as an eager ``from .evaluate import evaluate``
    did): importing the submodule of the same name does not replace it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not (name in _API and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
