"""PyTorch checkpoints for trainers: atomic saves, exact restores and the paper's "smart saver".

Only this module imports torch, so `import worker_client` stays free of it. A checkpoint is one
file written by `torch.save` holding the model's state dict, the optimizer's state dict (or None),
the global step and a user `extra` mapping.

Example::

    step = step_of_checkpoint(ctx.warm_start_checkpoint_path)
    if ctx.warm_start_checkpoint_path:
        partial_restore(ctx.warm_start_checkpoint_path, model, optimizer)
    ...  # train to `step`
    save_checkpoint(ctx.checkpoint_path(step), model, optimizer, step=step)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from worker_client.atomic import write_atomically

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RestoreReport:
    """What `partial_restore` did. Names are state-dict keys (parameters and buffers).

    `missing`: in the model, absent from the checkpoint (left as initialized).
    `shape_mismatch`: in both, with different shapes (left as initialized).
    `unexpected`: in the checkpoint, absent from the model (ignored).
    `optimizer_skipped`: why the optimizer state was not restored; empty when it was, or when no
    optimizer was given.
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    shape_mismatch: tuple[str, ...]
    unexpected: tuple[str, ...]
    optimizer_restored: bool
    optimizer_skipped: str
    step: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every tensor of the model and of the checkpoint was matched."""
        return not (self.missing or self.shape_mismatch or self.unexpected)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint so that `path` either does not exist or is complete.

    The data goes to a hidden temporary file in the same directory (same file system), is flushed
    to disk and then renamed over `path` with `os.replace`, which is atomic: an evaluator polling
    the model directory never reads half a file. `extra` must hold plain Python values (numbers,
    strings, lists, dicts, tensors) because checkpoints are loaded with `weights_only=True`.
    Returns `path`. Raises OSError when the directory cannot be written; no temporary is left.
    """
    target = Path(path)
    payload = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "optimizer_type": type(optimizer).__name__ if optimizer is not None else "",
        "extra": dict(extra or {}),
    }
    return write_atomically(target, lambda handle: torch.save(payload, handle))


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or "model" not in payload:
        raise ValueError(f"{os.fspath(path)!r} is not a checkpoint written by save_checkpoint")
    return payload


def _load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore the optimizer's state (moments, momentum buffers) but keep its current group
    settings (lr, momentum, ...): those come from the trial's hyperparameters, not the parent's."""
    settings = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, settings, strict=True):
        group.update(kept)


def load_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint into `model` (and `optimizer` when given and saved).

    Use it to resume the same architecture; use `partial_restore` when hyperparameters may have
    changed the architecture. The optimizer keeps its current learning rate and other group
    settings; only its state is restored. Returns {"step": int, "extra": dict}.
    Raises RuntimeError (from torch) when `strict` and the tensors do not match, ValueError when
    the file is not a checkpoint of this module.
    """
    payload = _read(path)
    model.load_state_dict(payload["model"], strict=strict)
    if optimizer is not None and payload.get("optimizer") is not None:
        _load_optimizer_state(optimizer, payload["optimizer"])
    return {"step": int(payload["step"]), "extra": dict(payload.get("extra") or {})}


def partial_restore(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> RestoreReport:
    """Load the tensors whose names and shapes match; leave the others as initialized.

    This is the "smart saver" of Li et al. 2019, §3.6.2: a child trial whose hyperparameters
    change the architecture (e.g. a layer's width) still inherits every variable that fits. The
    optimizer state is restored only when every tensor matched and the optimizer has the same
    type as the saved one, because its per-parameter state is positional and type-specific.
    Raises ValueError when the file is not a checkpoint of this module.
    """
    payload = _read(path)
    saved: Mapping[str, torch.Tensor] = payload["model"]
    current = model.state_dict()
    loaded: list[str] = []
    missing: list[str] = []
    mismatch: list[str] = []
    for name, tensor in current.items():
        if name not in saved:
            missing.append(name)
        elif tuple(saved[name].shape) != tuple(tensor.shape):
            mismatch.append(name)
        else:
            loaded.append(name)
    unexpected = [name for name in saved if name not in current]
    model.load_state_dict({name: saved[name] for name in loaded}, strict=False)

    restored, skipped = False, ""
    if optimizer is not None:
        saved_type = payload.get("optimizer_type", "")
        if payload.get("optimizer") is None:
            skipped = "the checkpoint has no optimizer state"
        elif missing or mismatch or unexpected:
            skipped = "the model's tensors do not all match the checkpoint"
        elif saved_type != type(optimizer).__name__:
            skipped = f"the checkpoint's optimizer is {saved_type}, not {type(optimizer).__name__}"
        else:
            try:
                _load_optimizer_state(optimizer, payload["optimizer"])
                restored = True
            except ValueError as error:
                skipped = f"the optimizer state does not fit: {error}"
    return RestoreReport(
        loaded=tuple(loaded),
        missing=tuple(missing),
        shape_mismatch=tuple(mismatch),
        unexpected=tuple(unexpected),
        optimizer_restored=restored,
        optimizer_skipped=skipped,
        step=int(payload["step"]),
        extra=dict(payload.get("extra") or {}),
    )
