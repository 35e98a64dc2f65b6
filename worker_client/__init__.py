"""Client library for the PBT service: a typed client and a trainer + evaluator worker.

Python mode: `Worker` (or `Job` for a script with `pbt-worker`'s options) runs a training
function and an evaluation function. Command mode: `pbt-worker ... -- python train.py --lr {lr}`
runs a script that knows nothing of PBT (see `worker_client.cli`).

Imports no server code and no SQLAlchemy: a training job needs only grpcio, protobuf and numpy.
"""

from worker_client.client import PbtClient, Suggestion
from worker_client.context import Evaluator, Trainer, TrialContext, TrialFailure
from worker_client.job import Job
from worker_client.worker import Worker, run_workers

__all__ = [
    "Evaluator", "Job", "PbtClient", "Suggestion", "Trainer", "TrialContext", "TrialFailure", "Worker",
    "run_workers",
]
