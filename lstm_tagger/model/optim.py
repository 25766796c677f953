"""The optimiser (``train.optimizer``), the weight average (``train.ema_decay``) and their state in a checkpoint.

``--resume`` continues a run exactly: every tensor of the optimiser's per-parameter state (SGD's
momentum buffer; AdamW's step count and two moments) and, with an average, the raw weights and
the number of averaged steps go into the last checkpoint's training state, named after the
parameter (``momentum.encoder.rnn.weight_ih_l0``).
"""

from __future__ import annotations

import copy

import torch

from lstm_tagger.config import TrainConfig
from lstm_tagger.model.tagger import Tagger

STATE_NAMES = {"momentum_buffer": "momentum", "step": "adamw_step", "exp_avg": "adamw_exp_avg", "exp_avg_sq": "adamw_exp_avg_sq"}
"""A key of ``optimizer.state[parameter]`` -> the prefix of its tensors in the training state
(``momentum.`` is the name checkpoints had before AdamW, and still resume with)."""

FULL_STATE = {torch.optim.SGD: {"momentum_buffer"}, torch.optim.AdamW: {"step", "exp_avg", "exp_avg_sq"}}
"""The state a parameter has after its first step (SGD with momentum; none without), per optimiser."""

RAW = "raw."
"""With an average, the checkpoint's model is the average; the raw weights are in the training state under this prefix."""

AVERAGED_STEPS = "ema_steps"
"""The training state's tensor holding how many steps the average has taken in (int64, 0-d)."""


def build_optimizer(model: Tagger, train: TrainConfig) -> torch.optim.Optimizer:
    """``train.optimizer`` over the model's parameters: SGD (``momentum``) or AdamW (default betas and eps);
    both with ``train.lr`` (which ``lr_decay`` lowers per epoch) and ``train.weight_decay``."""
    if train.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


def set_epoch_lr(optimizer: torch.optim.Optimizer, lr: float, decay: float, epoch: int) -> float:
    """Give every parameter group the rate of ``epoch`` (from 1), ``lr / (1 + decay * (epoch - 1))``,
    the schedule of ``train.lr_decay`` and ``tokenizer.lr_decay``; returns it."""
    rate = lr / (1 + decay * (epoch - 1))
    for group in optimizer.param_groups:
        group["lr"] = rate
    return rate


class WeightAverage:
    """``train.ema_decay`` d: an exponential moving average of the weights, bias-corrected.

    After steps 1..t with weights w_1..w_t it holds sum_i d^(t-i) (1 - d) w_i / (1 - d^t): each
    older step counts d times less, and the coefficients sum to 1 from the first step on (as
    Adam corrects its moments), so the starting weights never linger in it. ``model`` is the
    averaged copy: evaluated and saved, never trained. No batch norm: nothing else to recompute.
    """

    def __init__(self, model: Tagger, decay: float):
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self.decay = decay
        self.steps = 0

    def update(self, model: Tagger) -> None:
        """After an optimiser step: a += (1 - d) / (1 - d^t) * (w - a) for each parameter (a copy at t = 1)."""
        self.steps += 1
        weight = (1 - self.decay) / (1 - self.decay**self.steps)
        with torch.no_grad():
            for average, current in zip(self.model.parameters(), model.parameters()):
                average.lerp_(current, weight)

    def tensors(self, model: Tagger) -> dict[str, torch.Tensor]:
        """``model``'s raw weights and the step count, for the training state."""
        return {**{RAW + name: p for name, p in model.named_parameters()}, AVERAGED_STEPS: torch.tensor(self.steps)}

    def restore(self, weights: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], model: Tagger) -> None:
        """Undo ``tensors``: ``weights`` (the checkpoint's model) are the average's, the raw ones go into ``model``."""
        raw = {**weights, **{name: tensors[RAW + name] for name, _ in model.named_parameters()}}
        steps = tensors[AVERAGED_STEPS]
        if steps.shape != () or steps.dtype != torch.int64 or steps.item() < 0:
            raise ValueError("the number of averaged steps is damaged")
        model.load_state_dict(raw)
        self.model.load_state_dict(weights)
        self.steps = int(steps.item())


def training_tensors(model: Tagger, optimizer: torch.optim.Optimizer, average: WeightAverage | None) -> dict[str, torch.Tensor]:
    """What a resume needs besides the checkpoint's model: the optimiser's state and the average's."""
    tensors = {}
    for name, parameter in model.named_parameters():
        for key, value in optimizer.state.get(parameter, {}).items():
            if isinstance(value, torch.Tensor):
                tensors[f"{STATE_NAMES[key]}.{name}"] = value
    return {**tensors, **(average.tensors(model) if average is not None else {})}


def restore_training(
    weights: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], model: Tagger, optimizer: torch.optim.Optimizer,
    average: WeightAverage | None,
) -> None:
    """Undo ``training_tensors``; ``weights`` is the checkpoint's model (with an average, the average's).

    A parameter's state that is partial or of the wrong shape raises ``ValueError`` (a missing
    raw weight ``KeyError``), before the optimiser is touched.
    """
    states = {}
    for name, parameter in model.named_parameters():
        state = {key: tensors[f"{prefix}.{name}"] for key, prefix in STATE_NAMES.items() if f"{prefix}.{name}" in tensors}
        if state and set(state) != FULL_STATE[type(optimizer)]:
            raise ValueError(f"the optimiser state of {name} is partial or another optimiser's")
        if any(value.shape != (() if key == "step" else parameter.shape) for key, value in state.items()):
            raise ValueError(f"the optimiser state of {name} has the wrong shape")
        states[parameter] = state
    if average is None:
        model.load_state_dict(weights)
    else:
        average.restore(weights, tensors, model)
    for parameter, state in states.items():
        if state:  # AdamW keeps its step count on the CPU
            optimizer.state[parameter] = {k: v if k == "step" else v.to(parameter.device) for k, v in state.items()}
