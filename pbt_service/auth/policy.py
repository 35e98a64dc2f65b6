"""The access policy: for every method the server carries, what it does and which study it
touches. A method missing here is refused (PERMISSION_DENIED) whatever the token: the table fails
closed, and a test checks that every method of every service on the server has a row.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pbt_service.api.v1 import pbt_service_pb2
from pbt_service.core.access import Action


class Scope(enum.Enum):
    """Where a request names its study."""

    NONE = "none"  # no study (reflection)
    NAME = "name"  # the request's `name` field
    STUDY = "study"  # the request's `study` field
    TRIAL = "trial"  # the study of the request's `trial_id`
    LISTED = "listed"  # a list of studies: the reply keeps the ones the token covers


@dataclass(frozen=True)
class Rule:
    """`action` None: open to every caller, no token needed (health checks)."""

    action: Action | None
    scope: Scope = Scope.NONE


_SERVICE = pbt_service_pb2.DESCRIPTOR.services_by_name["PbtService"].full_name
_READ, _WRITE, _ADMIN = Action.READ, Action.WRITE, Action.ADMIN

PBT_METHODS: dict[str, Rule] = {
    "CreateStudy": Rule(_ADMIN, Scope.NAME),
    "GetStudy": Rule(_READ, Scope.NAME),
    "ListStudies": Rule(_READ, Scope.LISTED),
    "PauseStudy": Rule(_WRITE, Scope.NAME),
    "ResumeStudy": Rule(_WRITE, Scope.NAME),
    "GetNewSuggestion": Rule(_WRITE, Scope.STUDY),
    "ReportMeasurement": Rule(_WRITE, Scope.TRIAL),
    "Heartbeat": Rule(_WRITE, Scope.TRIAL),
    "CompleteTrial": Rule(_WRITE, Scope.TRIAL),
    "StopTrial": Rule(_WRITE, Scope.TRIAL),
    "GetEarlyStoppingTrials": Rule(_WRITE, Scope.STUDY),  # marks the trials it returns
    "GetTrial": Rule(_READ, Scope.TRIAL),
    "ListTrials": Rule(_READ, Scope.STUDY),
    "CollectCheckpoints": Rule(_WRITE, Scope.STUDY),  # records the collector's decision
    "ConfirmCheckpointsDeleted": Rule(_WRITE, Scope.STUDY),
}

POLICY: dict[str, Rule] = {
    **{f"/{_SERVICE}/{method}": rule for method, rule in PBT_METHODS.items()},
    # Probes from load balancers and orchestrators carry no token.
    "/grpc.health.v1.Health/Check": Rule(None),
    "/grpc.health.v1.Health/Watch": Rule(None),
    "/grpc.health.v1.Health/List": Rule(None),
    # Reflection describes the whole API: any valid token, never none.
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(_READ),
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Rule(_READ),
}
"""Full method name -> rule."""


_SCOPE_TEXT = {
    Scope.NONE: "—",
    Scope.NAME: "the request's `name`",
    Scope.STUDY: "the request's `study`",
    Scope.TRIAL: "the study of the request's `trial_id`",
    Scope.LISTED: "the reply keeps the token's studies",
}


def markdown_table() -> str:
    """The policy as docs/security.md shows it (a test keeps the two equal)."""
    lines = ["| method | needs | study |", "|---|---|---|"]
    for method, rule in POLICY.items():
        needs = "no token" if rule.action is None else f"`{rule.action.value}`"
        lines.append(f"| `{method}` | {needs} | {_SCOPE_TEXT[rule.scope]} |")
    return "\n".join(lines)
