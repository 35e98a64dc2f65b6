"""Train a small two-layer network on the two-spirals problem with SGD and momentum.

A plain training script of the kind PBT is asked to tune without touching it: flags in,
checkpoints out, progress on stdout. It knows nothing of PBT; `pbt-worker` fills the flags.

    python train.py --lr 0.05 --momentum 0.9 --out runs/spirals --steps 400
    python train.py --lr 0.01 --momentum 0.5 --init runs/spirals/model_step_400.npz --out runs/more

Checkpoints are `<out>/model_step_<step>.npz` (weights, velocities and the global step), one
every --save-every steps and one at the end; --init resumes from one, step counter included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from spirals import HIDDEN, forward, spirals


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, required=True, help="learning rate")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--init", default="", help="checkpoint to start from (default: random weights)")
    parser.add_argument("--out", required=True, help="directory for the checkpoints")
    parser.add_argument("--steps", type=int, default=200, help="training steps to run")
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def initial_state(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    params = {
        "w1": rng.normal(0, 1.0, (2, HIDDEN)), "b1": np.zeros(HIDDEN),
        "w2": rng.normal(0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, HIDDEN)), "b2": np.zeros(HIDDEN),
        "w3": rng.normal(0, 1.0 / np.sqrt(HIDDEN), (HIDDEN, 2)), "b3": np.zeros(2),
    }
    state = {**params, **{f"v_{k}": np.zeros_like(v) for k, v in params.items()}}
    state["step"] = np.array(0)
    return state


def gradients(state: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    h1, h2, probs = forward(state, x)
    n = len(y)
    loss = float(-np.log(probs[np.arange(n), y] + 1e-12).mean())
    d3 = probs.copy()
    d3[np.arange(n), y] -= 1
    d3 /= n
    d2 = (d3 @ state["w3"].T) * (1 - h2**2)
    d1 = (d2 @ state["w2"].T) * (1 - h1**2)
    grads = {
        "w3": h2.T @ d3, "b3": d3.sum(0), "w2": h1.T @ d2, "b2": d2.sum(0), "w1": x.T @ d1, "b1": d1.sum(0),
    }
    return loss, grads


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = dict(np.load(args.init)) if args.init else initial_state(args.seed)
    step = int(state["step"])
    x, y = spirals(seed=1)
    rng = np.random.default_rng([args.seed, step])
    print(f"training from step {step} for {args.steps} steps (lr={args.lr:g}, momentum={args.momentum:g})")
    for i in range(1, args.steps + 1):
        batch = rng.integers(0, len(y), args.batch_size)
        loss, grads = gradients(state, x[batch], y[batch])
        for name, grad in grads.items():
            state[f"v_{name}"] = args.momentum * state[f"v_{name}"] - args.lr * grad
            state[name] = state[name] + state[f"v_{name}"]
        step += 1
        if i % args.save_every == 0 or i == args.steps:
            state["step"] = np.array(step)
            np.savez(out / f"model_step_{step}.npz", **state)
            print(f"step {step} loss {loss:.4f}", flush=True)
    print(f"done; last checkpoint {out / f'model_step_{step}.npz'}", file=sys.stderr)


if __name__ == "__main__":
    main()
