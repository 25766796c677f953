"""The optimiser (``train.optimizer``) and its state in a checkpoint.

``--resume`` continues a run exactly: every tensor of the optimiser's per-parameter state (SGD's
momentum buffer; AdamW's step count and two moments) goes into the last checkpoint's training
state, named after the parameter (``momentum.encoder.rnn.weight_ih_l0``).
"""

from __future__ import annotations

import torch

from .config import TrainConfig
from .model import Tagger

STATE_NAMES = {"momentum_buffer": "momentum", "step": "adamw_step", "exp_avg": "adamw_exp_avg", "exp_avg_sq": "adamw_exp_avg_sq"}
"""A key of ``optimizer.state[parameter]`` -> the prefix of its tensors in the training state
(``momentum.`` is the name checkpoints had before AdamW, and still resume with)."""

FULL_STATE = {torch.optim.SGD: {"momentum_buffer"}, torch.optim.AdamW: {"step", "exp_avg", "exp_avg_sq"}}
"""The state a parameter has after its first step (SGD with momentum; none without), per optimiser."""


def build_optimizer(model: Tagger, train: TrainConfig) -> torch.optim.Optimizer:
    """``train.optimizer`` over the model's parameters: SGD (``momentum``) or AdamW (default betas and eps);
    both with ``train.lr`` (which ``lr_decay`` lowers per epoch) and ``train.weight_decay``."""
    if train.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


def training_tensors(model: Tagger, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """What a resume needs besides the checkpoint's model: the optimiser's state."""
    tensors = {}
    for name, parameter in model.named_parameters():
        for key, value in optimizer.state.get(parameter, {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"{STATE_NAMES[key]}.{name}"] = value
    return tensors


def restore_training(
    weights: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], model: Tagger, optimizer: torch.optim.Optimizer
) -> None:
    """Undo ``training_tensors``; ``weights`` is the checkpoint's model.

    A parameter's state that is partial or of the wrong shape raises ``ValueError``, before the
    model or the optimiser is touched.
    """
    states = {}
    for name, parameter in model.named_parameters():
        state = {key: tensors[f"{prefix}.{name}"] for key, prefix in STATE_NAMES.items() if f"{prefix}.{name}" in tensors}
        if state and set(state) != FULL_STATE[type(optimizer)]:
            raise ValueError(f"the optimiser state of {name} is partial or another optimiser's")
        if any(value.shape != (() if key == "step" else parameter.shape) for key, value in state.items()):
            raise ValueError(f"the optimiser state of {name} has the wrong shape")
        states[parameter] = state
    model.load_state_dict(weights)
    for parameter, state in states.items():
        if state:  # AdamW keeps its step count on the CPU
            optimizer.state[parameter] = {k: v if k == "step" else v.to(parameter.device) for k, v in state.items()}
