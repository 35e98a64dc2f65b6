"""A stand-in training script that knows nothing of PBT: argparse flags in, files out.

The "model" is a number nudged by --h at each step; every --every steps it writes a JSON
checkpoint `ckpt-<step>` into --out. Switches make it misbehave the ways real scripts do.
"""

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

parser = argparse.ArgumentParser()
parser.add_argument("--h", type=float, required=True)
parser.add_argument("--init", default="")
parser.add_argument("--out", required=True)
parser.add_argument("--checkpoints", type=int, default=2, help="how many (or $FAKE_CHECKPOINTS)")
parser.add_argument("--sleep", type=float, default=0.0, help="seconds before each checkpoint (or $FAKE_SLEEP)")
parser.add_argument("--crash-once", default="", help="marker file: crash (exit 3) unless it exists")
parser.add_argument("--write-to", default="", help="write checkpoints here instead of --out")
parser.add_argument("--record", default="", help="append argv and PBT_* variables here (JSON lines)")
parser.add_argument("--ignore-sigterm", action="store_true")
parser.add_argument("--name", default="ckpt-{step:09d}", help="checkpoint file name format")
parser.add_argument("--slow-write", type=float, default=0.0, help="write in place, pausing halfway")
parser.add_argument("extras", nargs="*", help="ignored; recorded with --record")
args = parser.parse_args()
out = Path(args.write_to or args.out)
sleep = float(os.environ.get("FAKE_SLEEP", args.sleep))
checkpoints = int(os.environ.get("FAKE_CHECKPOINTS", args.checkpoints))


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    (Path(args.out) / "got-sigterm").write_text(str(os.getpid()))
    if not args.ignore_sigterm:
        sys.exit(143)


signal.signal(signal.SIGTERM, on_sigterm)
if args.record:
    with open(args.record, "a") as handle:
        env = {k: v for k, v in os.environ.items() if k.startswith("PBT_")}
        handle.write(json.dumps({"argv": sys.argv[1:], "env": env, "pid": os.getpid()}) + "\n")
if args.crash_once and not os.path.exists(args.crash_once):
    Path(args.crash_once).write_text("crashed")
    print("loading data...")
    print("Traceback (most recent call last):", file=sys.stderr)
    print("RuntimeError: boom: CUDA out of memory", file=sys.stderr)
    sys.exit(3)
value, step = 0.0, 0
if args.init:
    state = json.loads(Path(args.init).read_text())
    value, step = state["value"], state["step"]
for _ in range(checkpoints):
    time.sleep(sleep)
    step += 5
    value += args.h - 0.5 * args.h**2
    target = out / args.name.format(step=step)
    data = json.dumps({"value": value, "step": step})
    if args.slow_write:
        with open(target, "w") as handle:
            handle.write(data[:5])
            handle.flush()
            time.sleep(args.slow_write)
            handle.write(data[5:])
    else:
        tmp = out / f".tmp-{step}"
        tmp.write_text(data)
        os.replace(tmp, target)
    print(f"step {step} value {value:.4f}", flush=True)
