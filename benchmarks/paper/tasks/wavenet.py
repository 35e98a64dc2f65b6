"""The WaveNet of `examples/wavenet` as a benchmark task, the paper's case study (§4) at CPU
scale: Adam's learning rate, log-uniform in [1e-5, 0.1], for the example's small WaveNet (8
dilated residual blocks, 55k parameters) predicting the next mu-law sample of speech synthesized
by espeak-ng; minimize the validation negative log-likelihood `loss` in nats per sample.

Made cheaper than the example to fit the suite: minibatches of 4 crops of 128 predicted samples
(the example: 8 of 384), and evaluation on 4 crops of 512 samples. The example's validation
speech (two sentences in an unseen voice) is split in halves: the first for `loss` (selection),
the second for `test_loss`, which `score` returns, so the table's number never took part in any
selection. `bits_per_sample` and `test_bits_per_sample` are reported too.

The speech is made once with espeak-ng (Debian package `espeak-ng`; `apt-get install espeak-ng`)
into `data_dir` (default `$WAVENET_DATA`, else `runs/wavenet/data` in the repository), shared
with the example. Without espeak-ng, `train` and `evaluate` raise RuntimeError naming it.

Full budget: 5 members × 10 intervals × 12 steps (120 Adam steps a member); quick: 3 × 3 × 2.
Measured as CPU time of one process (init + every interval's train + evaluate of all members,
speech already made) on the shared 2-core machine: full 16.8 s, quick 0.86 s (about 21 ms a
training step and 28 ms an evaluation on an idle core). Making the speech takes about 1.5 s once.
After 128 steps from scratch (validation loss 5.55 nats = chance), η = 1e-4 is still at 5.54,
3e-3 reaches 5.20, 0.03 reaches 5.10 and 0.1 stalls at 5.39: the rate matters at this budget.
"""

from __future__ import annotations

import functools
import math
import os
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
from examples.wavenet import data
from examples.wavenet.job import study_config
from examples.wavenet.model import WaveNet, next_sample_loss
from worker_client import Comparison, Goal, Objective, ParameterSpec, ParamValue

_REPOSITORY = Path(__file__).resolve().parents[3]
_PARAMETERS = study_config().parameters
_INIT, _CROPS = 0, 1


@dataclass(unsafe_hash=True)
class WaveNetTask:
    """See the module docstring. Not frozen: `Task` declares its members as plain attributes,
    which a frozen dataclass's fields do not match; treat it as immutable (hashed by value)."""

    name: str = "wavenet"
    parameters: tuple[ParameterSpec, ...] = _PARAMETERS
    objectives: tuple[Objective, ...] = (Objective("loss", Goal.MINIMIZE),)
    comparison: Comparison = Comparison.LEXICOGRAPHIC
    batch: int = 4
    crop: int = 128
    eval_crops: int = 4
    eval_crop: int = 512
    data_dir: str = ""
    """Where the speech is (made on first use); "" for `$WAVENET_DATA` or runs/wavenet/data."""

    def budget(self, quick: bool) -> Budget:
        return Budget(members=3, interval=2, intervals=3) if quick else Budget(members=5, interval=12, intervals=10)

    def init(self, hparams: Mapping[str, ParamValue], seed: int) -> TorchState:
        """The example's WaveNet with PyTorch's default initialization drawn from `seed`."""
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch_generator(seed, 0, _INIT).initial_seed()))
            model = WaveNet()
        return capture(model, self._optimizer(model, hparams), 0)

    def train(self, state: TorchState, hparams: Mapping[str, ParamValue], steps: int, seed: int) -> TorchState:
        """`steps` Adam steps on random crops of the training speech, drawn from (seed, global
        step), with `hparams`' learning rate and the state's Adam moments. `state` is unchanged."""
        torch.set_num_threads(1)
        train_speech, _, _ = self.speech()
        model = WaveNet()
        optimizer = self._optimizer(model, hparams)
        restore(state, model, optimizer)
        generator = torch_generator(seed, state.step, _CROPS)
        length = model.receptive_field + self.crop + 1
        model.train()
        for _ in range(steps):
            starts = torch.randint(0, len(train_speech) - length, (self.batch,), generator=generator).tolist()
            loss = next_sample_loss(model, torch.stack([train_speech[s : s + length] for s in starts]))
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        return capture(model, optimizer, state.step + steps)

    def step_of(self, state: TorchState) -> int:
        return state.step

    def evaluate(self, state: TorchState) -> dict[str, float]:
        """`loss` (nats per sample, the objective) on the first half of the validation speech,
        `test_loss` on the second, and both in bits per sample; NaN once diverged."""
        torch.set_num_threads(1)
        _, validation, test = self.speech()
        model = WaveNet()
        model.load_state_dict(state.model)
        model.eval()
        metrics: dict[str, float] = {}
        with torch.no_grad():
            for prefix, speech in (("", validation), ("test_", test)):
                loss = float(next_sample_loss(model, self._crops(speech, model.receptive_field)))
                metrics[f"{prefix}loss"] = loss
                metrics[f"{prefix}bits_per_sample"] = loss / math.log(2.0)
        return metrics

    def save(self, state: TorchState, path: Path) -> None:
        save_torch_state(state, path)

    def load(self, path: Path) -> TorchState:
        return load_torch_state(path)

    def score(self, metrics: Mapping[str, float]) -> float:
        """The test loss in nats per sample; inf when it is not finite."""
        loss = float(metrics["test_loss"])
        return loss if math.isfinite(loss) else math.inf

    def limit(self, quick: bool) -> None:
        """None: the best reachable loss is unknown."""
        return None

    def speech(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(train, validation, test) mu-law class indices; made with espeak-ng on first use.
        Raises RuntimeError naming espeak-ng when it is missing and the speech was never made."""
        return _speech(self.data_folder())

    def data_folder(self) -> Path:
        if self.data_dir:
            return Path(self.data_dir)
        return Path(os.environ.get("WAVENET_DATA", _REPOSITORY / "runs" / "wavenet" / "data"))

    def _optimizer(self, model: torch.nn.Module, hparams: Mapping[str, ParamValue]) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=float(hparams["learning_rate"]))

    def _crops(self, speech: torch.Tensor, receptive_field: int) -> torch.Tensor:
        """`eval_crops` evenly spaced crops, each predicting up to `eval_crop` samples."""
        stride = len(speech) // self.eval_crops
        length = min(stride, receptive_field + self.eval_crop + 1)
        return torch.stack([speech[k * stride : k * stride + length] for k in range(self.eval_crops)])


@functools.lru_cache(maxsize=4)
def _speech(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    loaded = data.load(folder)
    half = len(loaded.valid) // 2
    valid = torch.from_numpy(loaded.valid)
    return torch.from_numpy(loaded.train), valid[:half], valid[half:]
