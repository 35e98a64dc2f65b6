"""The state of the PyTorch tasks: the model's and the optimizer's state dicts and the global step,
copied in and out of live objects so that training never mutates a state it was handed (a runner
may continue two children from one parent's state)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worker_client.atomic import write_atomically


@dataclass(frozen=True, eq=False)
class TorchState:
    """`model`: the model's state dict; `optimizer`: the optimizer's state dict (moments, momentum
    buffers) or None before the first step; `optimizer_type`: its class name; `step`: steps since
    init."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    optimizer_type: str
    step: int


def capture(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> TorchState:
    """A state that shares no tensor with `model` or `optimizer`."""
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return TorchState(weights, copy.deepcopy(optimizer.state_dict()), type(optimizer).__name__, step)


def restore(state: TorchState, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> bool:
    """Load `state` into fresh `model` and `optimizer`, as the worker's smart saver does: the
    tensors whose names and shapes match are copied, the others keep their initialization; the
    optimizer's state is restored (its rates and other settings stay the new hyperparameters')
    only when every tensor matched and the optimizer has the saved type. Returns whether it was."""
    current = model.state_dict()
    fits = {k: v for k, v in state.model.items() if k in current and tuple(current[k].shape) == tuple(v.shape)}
    model.load_state_dict(fits, strict=False)
    complete = len(fits) == len(current) == len(state.model)
    if not complete or state.optimizer is None or state.optimizer_type != type(optimizer).__name__:
        return False
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(copy.deepcopy(state.optimizer))
    for group, kept in zip(optimizer.param_groups, settings, strict=True):
        group.update(kept)
    return True


def save_torch_state(state: TorchState, path: Path) -> None:
    """Write `state` atomically with `torch.save` (plain tensors and numbers: loadable with
    `weights_only=True`)."""
    payload = {
        "model": state.model,
        "optimizer": state.optimizer,
        "optimizer_type": state.optimizer_type,
        "step": state.step,
    }
    write_atomically(Path(path), lambda handle: torch.save(payload, handle))


def load_torch_state(path: Path) -> TorchState:
    """Read what `save_torch_state` wrote. Raises OSError for a missing file, KeyError or a torch
    error for a file of another kind."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return TorchState(payload["model"], payload["optimizer"], str(payload["optimizer_type"]), int(payload["step"]))


def torch_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A torch generator keyed by (seed, step, stream) through numpy's SeedSequence, so nearby
    seeds give unrelated streams and threads share no global RNG. Seeds must be ≥ 0."""
    key = np.random.SeedSequence([seed, step, stream]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(key))
