"""Evaluate a checkpoint of train.py on held-out spirals; the last line of output is JSON.

    python evaluate.py --checkpoint runs/spirals/model_step_400.npz
    ...
    {"accuracy": 0.91, "loss": 0.25}
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from spirals import forward, spirals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    args = parser.parse_args()
    state = dict(np.load(args.checkpoint))
    x, y = spirals(seed=2)
    _, _, probs = forward(state, x)
    loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())
    accuracy = float((probs.argmax(axis=1) == y).mean())
    print(f"checkpoint {args.checkpoint}: validation accuracy {accuracy:.4f}, loss {loss:.4f}")
    print(json.dumps({"accuracy": accuracy, "loss": loss}))


if __name__ == "__main__":
    main()
