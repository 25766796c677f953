"""lstm-tag: train, use and evaluate (Bi)LSTM part-of-speech taggers.

The Python API is the same functions the command line calls::

    from lstm_tagger import load_config, train, load_checkpoint, tag, evaluate_model

    result = train(load_config("configs/demo.yaml"), "runs/demo")
    tagger = load_checkpoint("runs/demo/model-best.safetensors")
    tag(tagger, [["The", "dog", "ate", "the", "apple"]])[0].tags
"""

__version__ = "0.1.0"

from .checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from .config import Config, load_config  # noqa: E402
from .evaluate import evaluate, evaluate_model  # noqa: E402
from .predict import tag  # noqa: E402
from .training import train  # noqa: E402

__all__ = ["Checkpoint", "Config", "evaluate", "evaluate_model", "load_checkpoint", "load_config", "tag", "train"]
