"""Client library for the PBT service: a typed client and a trainer + evaluator worker.

Imports no server code and no SQLAlchemy: a training job needs only grpcio, protobuf and numpy.
"""

from worker_client.client import PbtClient, Suggestion
from worker_client.context import Evaluator, Trainer, TrialContext
from worker_client.worker import Worker, run_workers

__all__ = ["Evaluator", "PbtClient", "Suggestion", "Trainer", "TrialContext", "Worker", "run_workers"]
