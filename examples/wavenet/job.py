"""PBT of Adam's learning rate for a small WaveNet on synthesized speech: a small-scale echo of
the paper's case study (Li et al. 2019, §4), in Python mode.

    python -m examples.wavenet.job --service localhost:50062 --study wavenet --workers 2

The options are `pbt-worker`'s (see `pbt-worker --help`); the study is created from
`study_config()` when it does not exist. Speech comes from `$WAVENET_DATA` (default
runs/wavenet/data), made with espeak-ng on first use.

As in the paper, the only hyperparameter is the learning rate, searched in [1e-5, 1e-1] on a log
scale, and the objective is a loss to minimize: the validation negative log-likelihood of the next
mu-law sample, in nats. Each trial trains STEPS_PER_TRIAL Adam steps from its parent's checkpoint
(weights and Adam moments; the learning rate is the child's own) and writes a checkpoint every
CHECKPOINT_EVERY steps, which the worker evaluates while training goes on.
"""

from __future__ import annotations

import math
import os
import sys
from functools import cache
from pathlib import Path

import numpy as np
import torch

from examples.wavenet import data
from examples.wavenet.model import WaveNet, next_sample_loss
from worker_client import (
    AlgorithmConfig,
    Goal,
    Job,
    Objective,
    ParameterSpec,
    ParameterType,
    Scale,
    StudyConfig,
    TrialContext,
)
from worker_client.context import step_of_checkpoint
from worker_client.torch_checkpoint import load_checkpoint, save_checkpoint

STEPS_PER_TRIAL = 100
CHECKPOINT_EVERY = 50
BATCH = 8
CROP = 384  # predicted samples per crop, after the receptive field
VALID_CROPS = 8
VALID_CROP = 1536


def study_config(population: int = 5, generations: int = 5, seed: int = 0) -> StudyConfig:
    """PBT-5x5 as in the paper: population 5, five generations, the learning rate only."""
    return StudyConfig(
        parameters=(ParameterSpec("learning_rate", ParameterType.FLOAT, low=1e-5, high=1e-1, scale=Scale.LOG),),
        objectives=(Objective("loss", Goal.MINIMIZE),),
        algorithm=AlgorithmConfig(
            population_size=population, max_generations=generations, steps_per_trial=STEPS_PER_TRIAL, seed=seed
        ),
    )


@cache
def speech() -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) class indices; loaded once per process, shared by worker threads."""
    loaded = data.load(Path(os.environ.get("WAVENET_DATA", "runs/wavenet/data")))
    return torch.from_numpy(loaded.train), torch.from_numpy(loaded.valid)


def generator(trial_id: int, step: int) -> torch.Generator:
    """Crops drawn from (trial, first step): reproducible, and no global RNG shared by threads."""
    key = np.random.SeedSequence([trial_id, step]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(key))


job = Job(study_config=study_config())


@job.trainer
def train(ctx: TrialContext) -> None:
    torch.set_num_threads(1)
    train_speech, _ = speech()
    model = WaveNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=float(ctx.hparams["learning_rate"]))
    step = step_of_checkpoint(ctx.warm_start_checkpoint_path)
    if ctx.warm_start_checkpoint_path:
        load_checkpoint(ctx.warm_start_checkpoint_path, model, optimizer)
    rng = generator(ctx.trial_id, step)
    length = model.receptive_field + CROP
    losses: list[float] = []
    for i in range(1, (ctx.steps or STEPS_PER_TRIAL) + 1):
        starts = torch.randint(0, len(train_speech) - length, (BATCH,), generator=rng).tolist()
        loss = next_sample_loss(model, torch.stack([train_speech[s : s + length] for s in starts]))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        step += 1
        losses.append(loss.item())
        if i % CHECKPOINT_EVERY == 0 or ctx.should_stop():
            extra = {"train_loss": float(np.mean(losses[-CHECKPOINT_EVERY:]))}
            save_checkpoint(ctx.checkpoint_path(step), model, optimizer, step=step, extra=extra)
        if ctx.should_stop():
            return
    if (ctx.steps or STEPS_PER_TRIAL) % CHECKPOINT_EVERY:
        save_checkpoint(ctx.checkpoint_path(step), model, optimizer, step=step)


@job.evaluator
def evaluate(ctx: TrialContext, checkpoint: Path) -> dict[str, float]:
    """Validation loss in nats per sample (the objective) and bits per sample; the training loss
    of the last steps before the checkpoint, for comparison."""
    torch.set_num_threads(1)
    _, valid = speech()
    model = WaveNet()
    info = load_checkpoint(checkpoint, model)
    model.eval()
    stride = len(valid) // VALID_CROPS
    length = min(stride, model.receptive_field + VALID_CROP)
    crops = torch.stack([valid[k * stride : k * stride + length] for k in range(VALID_CROPS)])
    with torch.no_grad():
        loss = float(next_sample_loss(model, crops))
    metrics = {"loss": loss, "bits_per_sample": loss / math.log(2)}
    if "train_loss" in info["extra"]:
        metrics["train_loss"] = float(info["extra"]["train_loss"])
    return metrics


if __name__ == "__main__":
    sys.exit(job.main())
