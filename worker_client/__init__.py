"""Client library for the PBT service: a typed client, a trainer + evaluator worker, and the study
config API.

Python mode: `Worker` (or `Job` for a script with `pbt-worker`'s options) runs a training
function and an evaluation function. Command mode: `pbt-worker ... -- python train.py --lr {lr}`
runs a script that knows nothing of PBT (see `worker_client.cli`). A study's config is built from
the classes re-exported here (`from worker_client import StudyConfig, ParameterSpec, ...`).

Imports no server code and no SQLAlchemy: a training job needs only grpcio, protobuf and numpy
(`pip install pbt-service`; the service is `pip install 'pbt-service[server]'`).
"""

from pbt_service.core.types import (
    AlgorithmConfig,
    CheckpointPolicy,
    CheckpointState,
    Comparison,
    Condition,
    ExploreConfig,
    ExploreStrategy,
    Goal,
    HParams,
    Measurement,
    MedianStopping,
    Objective,
    OpponentStrategy,
    ParameterSpec,
    ParameterType,
    ParamValue,
    Scale,
    SelectionConfig,
    SelectionScore,
    SelectionStrategy,
    Study,
    StudyConfig,
    StudyState,
    Trial,
    TrialStatus,
)
from worker_client.client import PbtClient, Suggestion
from worker_client.context import Evaluator, StopSignal, Trainer, TrialContext, TrialFailure
from worker_client.garbage_collection import collect_garbage
from worker_client.job import Job
from worker_client.pool import WorkerPool, run_workers
from worker_client.settings import ClientSettings, SettingsError
from worker_client.worker import Worker

__all__ = [
    "AlgorithmConfig", "CheckpointPolicy", "CheckpointState", "ClientSettings", "Comparison", "Condition",
    "Evaluator", "ExploreConfig", "ExploreStrategy", "Goal", "HParams", "Job", "Measurement", "MedianStopping",
    "Objective", "OpponentStrategy", "ParameterSpec", "ParameterType", "ParamValue", "PbtClient", "Scale",
    "SelectionConfig", "SelectionScore", "SelectionStrategy", "SettingsError", "StopSignal", "Study", "StudyConfig",
    "StudyState", "Suggestion", "Trainer", "Trial", "TrialContext", "TrialFailure", "TrialStatus", "Worker",
    "WorkerPool", "collect_garbage", "run_workers",
]
