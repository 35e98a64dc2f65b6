"""The table of limits (`pbt_service.limits`): documented in docs/api.md, consistent with the
database columns, and sufficient: the largest study and trial the limits allow encode well under
gRPC's 4 MiB message limit, and numbers at the limits sample and mutate to finite values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from pbt_service import converters, limits, validation
from pbt_service.api.v1 import study_pb2, trial_pb2
from pbt_service.core import checkpoint_paths
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.core.mutation import mutate_value
from pbt_service.core.search_space import sample_value, validate_config
from pbt_service.core.types import ParameterSpec, ParameterType, Scale, Study
from pbt_service.store import models

WIDE = "\U0010fffd"
"""A character of four UTF-8 bytes that is no control character: the widest a name can be."""
LATEST = Timestamp(seconds=253402300799, nanos=999_999_999)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
CONSTANTS = {name: value for name, value in vars(limits).items() if name.isupper() and not name.startswith("_")}


def _limits_section() -> str:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("## Limits")
    return text[start : text.index("\n## ", start + 1)]


def _shown(value: int | float) -> str:
    if isinstance(value, float):
        return f"{value:g}".replace("e+", "e")
    return str(value)


@pytest.mark.parametrize("name", sorted(CONSTANTS))
def test_every_limit_is_documented_with_its_value(name: str) -> None:
    lines = [line for line in _limits_section().splitlines() if f"`{name}`" in line]
    assert lines, f"docs/api.md (Limits) does not name {name}"
    value = CONSTANTS[name]
    expected = "int64" if name in ("MIN_INT64", "MAX_INT64") else _shown(value)
    assert any(re.search(rf"(?<![\d.]){re.escape(expected)}(?![\d])", line) for line in lines), (name, expected)


def test_names_fit_the_database_columns() -> None:
    assert limits.MAX_NAME_LENGTH <= models.NAME_LENGTH // 2
    assert limits.MAX_WORKER_ID_LENGTH <= models.NAME_LENGTH
    assert limits.MAX_PATH_LENGTH == checkpoint_paths.MAX_LENGTH
    assert limits.MAX_ROOTS == checkpoint_paths.MAX_ROOTS
    assert validation.STUDY_NAME.fullmatch("a" * limits.MAX_NAME_LENGTH)
    assert not validation.STUDY_NAME.fullmatch("a" * (limits.MAX_NAME_LENGTH + 1))


def test_reply_budget_is_under_the_grpc_limit() -> None:
    assert limits.MAX_CONFIG_BYTES < limits.MAX_REPLY_BYTES < limits.GRPC_MESSAGE_LIMIT


def _largest_measurement() -> trial_pb2.Measurement:
    """A measurement as large as a report may be: the longest path of wide characters, then
    metrics of wide names until the byte limit."""
    message = trial_pb2.Measurement(
        step=limits.MAX_INT64, elapsed_seconds=1e300, checkpoint_path="/" + WIDE * (limits.MAX_PATH_LENGTH - 1)
    )
    for i in range(limits.MAX_METRICS_PER_MEASUREMENT):
        for length in range(limits.MAX_NAME_LENGTH, 3, -1):
            name = f"{i:03d}" + WIDE * (length - 3)
            message.metrics[name] = -1.0
            if message.ByteSize() <= limits.MAX_MEASUREMENT_BYTES:
                break
            del message.metrics[name]
        else:
            break
    return message


def test_the_largest_measurement_is_accepted_and_a_larger_one_is_not() -> None:
    message = _largest_measurement()
    assert limits.MAX_MEASUREMENT_BYTES - 8 <= message.ByteSize() <= limits.MAX_MEASUREMENT_BYTES
    validation.measurement(message)
    message.metrics["x" * 8] = 0.0
    with pytest.raises(InvalidArgumentError, match=r"^measurement: encodes to \d+ bytes .*at most 8192"):
        validation.measurement(message)


def test_the_largest_trial_fits_a_page_by_construction() -> None:
    stored = _largest_measurement()
    stored.create_time.CopyFrom(LATEST)
    stored.checkpoint_state = trial_pb2.CHECKPOINT_DELETED
    trial = trial_pb2.Trial(
        id=limits.MAX_INT64, study="s" * limits.MAX_NAME_LENGTH, number=2**31 - 1, generation=2**31 - 1,
        status=trial_pb2.FAILED, warm_start_checkpoint_path=stored.checkpoint_path,
        parent_trial_id=limits.MAX_INT64, initiator_parent_trial_id=limits.MAX_INT64,
        initiated_trial_id=limits.MAX_INT64, worker_id=WIDE * limits.MAX_WORKER_ID_LENGTH, stop_requested=True,
        status_message=WIDE * limits.MAX_TEXT_LENGTH, create_time=LATEST, heartbeat_time=LATEST, end_time=LATEST,
    )  # fmt: skip
    for i in range(limits.MAX_PARAMETERS):
        trial.hparams[f"{i:03d}" + WIDE * (limits.MAX_NAME_LENGTH - 3)].string_value = WIDE * limits.MAX_NAME_LENGTH
    trial.measurements.extend([stored] * (limits.MAX_MEASUREMENTS_PER_TRIAL + 1))  # CompleteTrial may add one
    trial.final_measurement.CopyFrom(stored)
    size = trial.ByteSize()
    assert size <= limits.MAX_REPLY_BYTES, size
    assert size < 0.6 * limits.GRPC_MESSAGE_LIMIT, size


def test_the_largest_study_fits_a_page_by_construction() -> None:
    config = study_pb2.StudyConfig(objectives=[study_pb2.Objective(metric=WIDE * 128, goal=study_pb2.MAXIMIZE)])
    for i in range(limits.MAX_PARAMETERS // 2):  # float ranges without a scale: the stored config spells it out
        config.parameters.add(name=f"f{i}", float_range=study_pb2.FloatRange(low=0.0, high=1.0))
    i = 0
    while config.ByteSize() < limits.MAX_CONFIG_BYTES - 1000:
        values = [f"{j:03d}" + WIDE * 125 for j in range(limits.MAX_VALUES_PER_PARAMETER)]
        room = (limits.MAX_CONFIG_BYTES - 1000 - config.ByteSize()) // 520
        config.parameters.add(name=f"c{i}", categorical=study_pb2.CategoricalValues(values=values[: max(room, 1)]))
        i += 1
    validation.config_size(config)
    domain = converters.study_config_from_proto(config)
    validate_config(domain)
    reply = converters.study_to_proto(Study(name="s" * limits.MAX_NAME_LENGTH, config=domain, trial_count=2**62))
    assert reply.ByteSize() <= limits.MAX_CONFIG_BYTES + 4096 <= limits.MAX_REPLY_BYTES


def test_numbers_at_the_limits_sample_and_mutate_finitely() -> None:
    big, factor = limits.MAX_ABS_NUMBER, limits.MAX_PERTURBATION_FACTOR
    assert math.isfinite(2 * big) and math.isfinite(big * factor)
    rng = np.random.default_rng(0)
    specs = [
        ParameterSpec("f", ParameterType.FLOAT, low=-big, high=big),
        ParameterSpec("l", ParameterType.FLOAT, low=5e-324, high=big, scale=Scale.LOG),
        ParameterSpec("i", ParameterType.INTEGER, low=limits.MIN_INT64, high=limits.MAX_INT64),
        ParameterSpec("d", ParameterType.DISCRETE, values=(-big, 0.0, big)),
    ]
    for spec in specs:
        for _ in range(20):
            value = sample_value(spec, rng)
            for f in (factor, 5e-324, 1.0):
                mutated = mutate_value(spec, value, (f,), rng)
                assert not isinstance(mutated, str) and math.isfinite(mutated)
                if spec.type is ParameterType.DISCRETE:
                    assert mutated in spec.values
                else:
                    assert spec.low <= mutated <= spec.high


def test_issued_page_tokens_are_within_the_token_limit() -> None:
    longest = validation.page_token_for("studies", "s" * limits.MAX_NAME_LENGTH)
    assert len(longest) <= limits.MAX_PAGE_TOKEN_LENGTH
    assert validation.studies_page_token(longest) == "s" * limits.MAX_NAME_LENGTH
    assert validation.trials_page_token(validation.page_token_for("trials", limits.MAX_INT64)) == limits.MAX_INT64


def test_messages_quote_a_short_prefix() -> None:
    assert limits.quote("x" * 1000) == repr("x" * limits.QUOTE_PREFIX) + "…"
    assert limits.quote("abc\n") == repr("abc\n")
    with pytest.raises(InvalidArgumentError) as error:
        limits.check_name("n" * 100_000, "config.parameters[0].name")
    assert len(str(error.value)) < 200 and "at most 128" in str(error.value)
