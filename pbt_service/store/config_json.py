"""StudyConfig <-> JSON for the `studies.config_json` column, derived from the API message.

The stored document is protobuf's own JSON of `pbt_service.api.v1.StudyConfig` (field names as
in the .proto, keys sorted, compact), made by the converters: the proto is the one schema, so a
new setting needs no code here, and rows written before a field existed read it as unset, i.e.
the dataclass default. The config is read whole and never filtered on, so one JSON document is
the right shape. Migration 0003 rewrote the rows of the earlier hand-written format.
"""

from __future__ import annotations

import functools
import json

from google.protobuf import json_format

from pbt_service.api.v1 import study_pb2
from pbt_service.converters import study_config_from_proto, study_config_to_proto
from pbt_service.core.types import StudyConfig


def config_to_json(config: StudyConfig) -> str:
    """Serializes a config; the output is stable (sorted keys) so equal configs give equal text."""
    document = json_format.MessageToDict(study_config_to_proto(config), preserving_proto_field_name=True)
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def config_from_json(text: str) -> StudyConfig:
    """Parses what `config_to_json` wrote, cached by text: it runs on every report, and a study's
    config never changes (the result is frozen, so sharing it is safe).

    Raises ValueError on malformed text.
    """
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise ValueError(f"expected an object, got {type(document).__name__}")
        message = json_format.ParseDict(document, study_pb2.StudyConfig())
    except (ValueError, json_format.ParseError) as e:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"malformed study config JSON: {e}") from e
    try:
        return study_config_from_proto(message)
    except ValueError as e:
        raise ValueError(f"malformed study config JSON: {e}") from e
