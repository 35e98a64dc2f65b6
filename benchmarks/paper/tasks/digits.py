"""The digits MLP of `examples/digits` as a benchmark task: scikit-learn's 8×8 digits, a
64→width→32→10 ReLU network trained on CPU (one thread) with minibatches of 32.

Search space: the example's `study_config` with `hidden_units` and `optimizer` frozen, as a
careful user would set them (they change the model's shape and the optimizer's state, so a
child that changed them could not continue its parent's training): learning rate log-uniform in
[1e-4, 0.1], optimizer sgd or adam, momentum in [0, 0.99] (sgd only), width 16/32/64/128.
Objectives: maximize validation `accuracy`, ties broken by the lower validation `loss`.
`evaluate` also reports `test_accuracy` and `test_loss` on the held-out test split, and `score`
is 1 − test accuracy, so the table's number never took part in any selection. Should a method
change the width or the optimizer anyway, the tensors that still fit are kept and the optimizer
state is dropped (the example's smart saver).

Full budget: 5 members × 20 intervals × 50 steps (1,000 minibatch steps a member, about 30
epochs); quick: 5 × 3 × 20. Measured as CPU time of one process (init + every interval's train
+ evaluate of all members, width 64, Adam at 3e-3; data already loaded) on the shared 2-core
machine: full 5.6 s (test accuracy 0.978), quick 0.4 s. Loading the data and importing
scikit-learn and torch adds about 3 s once per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.paper.tasks.base import Budget
from benchmarks.paper.tasks.torch_state import (
    TorchState,
    capture,
    load_torch_state,
    restore,
    save_torch_state,
    torch_generator,
)
from examples.digits.data import digits
from examples.digits.problem import accuracy, build_model, build_optimizer, study_config
from worker_client import Comparison, Goal, Objective, ParameterSpec, ParamValue

_PARAMETERS = study_config(frozen=("hidden_units", "optimizer")).parameters
_INIT, _BATCHES = 0, 1


@dataclass(unsafe_hash=True)
class DigitsTask:
    """See the module docstring. Not frozen: `Task` declares its members as plain attributes,
    which a frozen dataclass's fields do not match; treat it as immutable (hashed by value)."""

    name: str = "digits"
    parameters: tuple[ParameterSpec, ...] = _PARAMETERS
    objectives: tuple[Objective, ...] = (Objective("accuracy", Goal.MAXIMIZE), Objective("loss", Goal.MINIMIZE))
    comparison: Comparison = Comparison.LEXICOGRAPHIC
    data_seed: int = 0
    batch_size: int = 32

    def budget(self, quick: bool) -> Budget:
        return Budget(members=5, interval=20, intervals=3) if quick else Budget(members=5, interval=50, intervals=20)

    def init(self, hparams: Mapping[str, ParamValue], seed: int) -> TorchState:
        """He-uniform weights drawn from `seed`; no optimizer state yet."""
        torch.set_num_threads(1)
        model = build_model(int(hparams["hidden_units"]), torch_generator(seed, 0, _INIT))
        return capture(model, build_optimizer(model, hparams), 0)

    def train(self, state: TorchState, hparams: Mapping[str, ParamValue], steps: int, seed: int) -> TorchState:
        """`steps` minibatch steps from `state` with `hparams`' optimizer settings; minibatches
        drawn from (seed, global step). `state` is left unchanged."""
        torch.set_num_threads(1)
        model = build_model(int(hparams["hidden_units"]), torch_generator(seed, state.step, _INIT))
        optimizer = build_optimizer(model, hparams)
        restore(state, model, optimizer)
        data = digits(self.data_seed).train
        generator = torch_generator(seed, state.step, _BATCHES)
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()
        for _ in range(steps):
            batch = torch.randint(len(data.labels), (self.batch_size,), generator=generator)
            optimizer.zero_grad()
            loss_fn(model(data.features[batch]), data.labels[batch]).backward()
            optimizer.step()
        return capture(model, optimizer, state.step + steps)

    def step_of(self, state: TorchState) -> int:
        return state.step

    def evaluate(self, state: TorchState) -> dict[str, float]:
        """Validation `accuracy` and `loss` (the objectives), `test_accuracy` and `test_loss`
        (for the table only). Accuracies are NaN when the outputs are not finite (diverged)."""
        torch.set_num_threads(1)
        model = build_model(int(state.model["0.weight"].shape[0]))
        model.load_state_dict(state.model)
        model.eval()
        data = digits(self.data_seed)
        metrics: dict[str, float] = {}
        with torch.no_grad():
            for prefix, split in (("", data.validation), ("test_", data.test)):
                logits = model(split.features)
                finite = bool(torch.isfinite(logits).all())
                metrics[f"{prefix}accuracy"] = accuracy(logits, split.labels) if finite else float("nan")
                metrics[f"{prefix}loss"] = float(torch.nn.functional.cross_entropy(logits, split.labels))
        return metrics

    def save(self, state: TorchState, path: Path) -> None:
        save_torch_state(state, path)

    def load(self, path: Path) -> TorchState:
        return load_torch_state(path)

    def score(self, metrics: Mapping[str, float]) -> float:
        """1 − test accuracy (lower is better); 1 when it is NaN (diverged)."""
        test_accuracy = float(metrics["test_accuracy"])
        return 1.0 - test_accuracy if test_accuracy == test_accuracy else 1.0

    def limit(self, quick: bool) -> None:
        """None: the best reachable accuracy is unknown."""
        return None
