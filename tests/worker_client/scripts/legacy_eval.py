"""A stand-in evaluation script: reads a checkpoint, prints metrics as JSON on its last line."""

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--checkpoint", required=True)
parser.add_argument("--mode", default="ok", choices=["ok", "garbage", "nan", "missing", "notjson", "crash"])
args = parser.parse_args()
state = json.loads(Path(args.checkpoint).read_text())
print("evaluating", args.checkpoint)
if args.mode == "crash":
    raise SystemExit("evaluation data not found")
if args.mode == "notjson":
    print("score: 0.5")
elif args.mode == "garbage":
    print(json.dumps({"score": "high"}))
elif args.mode == "missing":
    print(json.dumps({"loss": 1.0}))
elif args.mode == "nan":
    print(json.dumps({"score": float("nan"), "loss": float("inf")}))
else:
    print(json.dumps({"score": state["value"], "loss": -state["value"]}))
