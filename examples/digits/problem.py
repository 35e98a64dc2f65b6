"""A small MLP on the digits data set, trained on CPU with hyperparameters from PBT.

The objective is the validation cross-entropy `loss` (MINIMIZE), not the validation accuracy:
digits is easy, and on 359 validation images the accuracy stops improving (at 0.9861 or 0.9889)
by generation 6–8 of the demo's 20, after which every later trial at best ties the earliest one
that got there (`best_trials` keeps equal trials in their input order, so ties go to the earliest
trial). The loss keeps separating models that classify equally often correctly but with different
confidence, so ties practically never happen. Training adds Gaussian noise (σ 0.2, pixels in
[0, 1]) to each minibatch: without it the MLP overfits the 1,079 training images and the
validation loss turns up after 500–1,000 steps, so the best trial would again come from the
middle of the run; with it the validation loss keeps falling, more so as PBT lowers the learning
rate, and the winner comes from the last generations.

`hidden_units` changes the first layer's width, so a child whose width differs from its parent's
warm-starts with `partial_restore`: it inherits the layers that still fit (the paper's smart
saver, §3.6.2) and the rest start fresh. `accuracy` (validation) and `test_accuracy` are reported
as well; neither is an objective, so selection never sees the test set.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from examples.digits.data import digits
from worker_client import (
    AlgorithmConfig,
    Condition,
    Goal,
    Objective,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    StudyConfig,
)
from worker_client.context import TrialContext, step_of_checkpoint
from worker_client.torch_checkpoint import load_checkpoint, partial_restore, save_checkpoint

STEPS_PER_TRIAL = 100
HIDDEN_UNITS = (16.0, 32.0, 64.0, 128.0)
ARCHITECTURE = ("hidden_units", "optimizer")
"""Parameters whose change would cost a child its weights or its optimizer state."""


def study_config(
    population_size: int = 10,
    max_generations: int = 10,
    steps_per_trial: int = STEPS_PER_TRIAL,
    seed: int = 0,
    frozen: Collection[str] = ARCHITECTURE,
) -> StudyConfig:
    """Minimize validation "loss" over the learning rate, optimizer, momentum (SGD only) and width.

    Parameters named in `frozen` are sampled once per lineage (and again only when a lineage
    starts fresh) and inherited unchanged. By default those are the ones that change the model's
    shape or the optimizer's state (`ARCHITECTURE`), as a careful user would set them: the service
    moves a DISCRETE value to a neighbour and resamples a CATEGORICAL one on every mutation, so
    unfrozen, every child would change width (only the layers that still fit are restored) and
    half of them would switch optimizer (its state is dropped). `frozen=()` mutates everything.
    Raises ValueError for unknown names.
    """
    parameters = (
        ParameterSpec("learning_rate", ParameterType.FLOAT, low=1e-4, high=1e-1, scale=Scale.LOG),
        ParameterSpec("optimizer", ParameterType.CATEGORICAL, values=("sgd", "adam")),
        ParameterSpec(
            "momentum",
            ParameterType.FLOAT,
            low=0.0,
            high=0.99,
            condition=Condition("optimizer", ("sgd",)),
        ),
        ParameterSpec("hidden_units", ParameterType.DISCRETE, values=HIDDEN_UNITS),
    )
    unknown = set(frozen) - {p.name for p in parameters}
    if unknown:
        raise ValueError(f"frozen: unknown parameter(s) {sorted(unknown)}")
    return StudyConfig(
        parameters=tuple(replace(p, frozen=p.name in frozen) for p in parameters),
        objectives=(Objective("loss", Goal.MINIMIZE),),
        algorithm=AlgorithmConfig(
            population_size=population_size,
            max_generations=max_generations,
            steps_per_trial=steps_per_trial,
            seed=seed,
        ),
    )


def build_model(hidden_units: int, generator: torch.Generator | None = None) -> torch.nn.Sequential:
    """64 → hidden_units → 32 → 10 with ReLUs; He-uniform weights drawn from `generator`."""
    model = torch.nn.Sequential(
        torch.nn.Linear(64, hidden_units),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden_units, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
    )
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu", generator=generator)
            torch.nn.init.zeros_(layer.bias)
    return model


def build_optimizer(model: torch.nn.Module, hparams: Mapping[str, ParamValue]) -> torch.optim.Optimizer:
    """Adam, or SGD with the (conditional) momentum; momentum defaults to 0 when absent."""
    learning_rate = float(hparams["learning_rate"])
    if hparams["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=learning_rate)
    return torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=float(hparams.get("momentum", 0.0)))


@dataclass(frozen=True)
class DigitsMLP:
    """Trainer and evaluator with their seeds, batch size and training noise.

    A trial's weight initialization, minibatches and input noise (`input_noise` × a standard
    normal added to every training pixel; 0 turns it off) come from a torch generator keyed by
    (seed, trial id, first step), so reruns are reproducible and threads share no RNG.
    """

    seed: int = 0
    data_seed: int = 0
    batch_size: int = 32
    input_noise: float = 0.2

    def generator(self, trial_id: int, step: int) -> torch.Generator:
        key = np.random.SeedSequence([self.seed, trial_id, step]).generate_state(1)[0]
        return torch.Generator().manual_seed(int(key))

    def train(self, ctx: TrialContext) -> None:
        """Warm-start what fits from the parent, then `ctx.steps` minibatch steps; one checkpoint."""
        torch.set_num_threads(1)
        step = step_of_checkpoint(ctx.warm_start_checkpoint_path)
        generator = self.generator(ctx.trial_id, step)
        model = build_model(int(ctx.hparams["hidden_units"]), generator)
        optimizer = build_optimizer(model, ctx.hparams)
        if ctx.warm_start_checkpoint_path:
            partial_restore(ctx.warm_start_checkpoint_path, model, optimizer)
        data = digits(self.data_seed).train
        loss_fn = torch.nn.CrossEntropyLoss()
        model.train()
        for _ in range(ctx.steps or STEPS_PER_TRIAL):
            batch = torch.randint(len(data.labels), (self.batch_size,), generator=generator)
            features = data.features[batch]
            if self.input_noise:
                features = features + self.input_noise * torch.randn(features.shape, generator=generator)
            optimizer.zero_grad()
            loss_fn(model(features), data.labels[batch]).backward()
            optimizer.step()
            step += 1
            if ctx.should_stop():
                break
        save_checkpoint(ctx.checkpoint_path(step), model, optimizer, step=step)

    def evaluate(self, ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
        """Validation loss (the objective) and accuracy; test accuracy for reporting only."""
        torch.set_num_threads(1)
        model = build_model(int(ctx.hparams["hidden_units"]))
        load_checkpoint(checkpoint, model)
        model.eval()
        data = digits(self.data_seed)
        with torch.no_grad():
            val_logits = model(data.validation.features)
            test_logits = model(data.test.features)
        return {
            "accuracy": accuracy(val_logits, data.validation.labels),
            "loss": float(torch.nn.functional.cross_entropy(val_logits, data.validation.labels)),
            "test_accuracy": accuracy(test_logits, data.test.labels),
        }


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean())


DEFAULT = DigitsMLP()


def train(ctx: TrialContext) -> None:
    """The trainer with the default seeds; use `DigitsMLP(seed=...).train` for others."""
    DEFAULT.train(ctx)


def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    """The evaluator with the default data split."""
    return DEFAULT.evaluate(ctx, checkpoint)
