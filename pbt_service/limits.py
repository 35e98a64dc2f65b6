"""Every size and range limit of the API, in one table, each with the reason for its value.

The limits are checked where a request enters (`pbt_service.validation` for request fields,
`pbt_service.core.search_space.validate_config` for study configs), never left to the database, so
SQLite and PostgreSQL accept exactly the same requests; a request beyond a limit gets
INVALID_ARGUMENT naming the field and the limit. Together they keep every study, trial and list
page under gRPC's default 4 MiB message limit (see `MAX_REPLY_BYTES`) and every accepted config
runnable (see `MAX_ABS_NUMBER`). `docs/api.md` (section "Limits") shows this table; a test keeps
the two in step.

Stdlib and `pbt_service.core` only, so the core and the client may import it.
"""

from __future__ import annotations

import re
from collections.abc import Sized

from pbt_service.core import checkpoint_paths
from pbt_service.core.errors import InvalidArgumentError

# --- strings ----------------------------------------------------------------------------------

MAX_NAME_LENGTH = 128
"""Characters in a study, parameter, metric or category name, an objective metric or a condition
parent: half the database's varchar(256) (`store.models.NAME_LENGTH`), so both backends store
every name the API accepts."""

MAX_WORKER_ID_LENGTH = 256
"""Characters in a worker id: exactly the varchar(256) column, room for host, pid and a uuid."""

MAX_PATH_LENGTH = checkpoint_paths.MAX_LENGTH
"""Characters in a checkpoint path or root (1024): a real path, not a place to store data."""

MAX_ROOTS = checkpoint_paths.MAX_ROOTS
"""Checkpoint roots per study (16): every report checks its path against each."""

MAX_CONFIRMED_PATH_LENGTH = 4096
"""Characters in a path given to ConfirmCheckpointsDeleted: compared with stored paths (at most
`MAX_PATH_LENGTH`), never stored; the bound caps the request."""

MAX_TEXT_LENGTH = 4096
"""Characters in a failure reason or stop reason: room for the end of a traceback, kept small
because every trial reply carries it."""

QUOTE_PREFIX = 64
"""Characters of an offending value an error message quotes (then "…"): the whole message stays
far below gRPC's 8 KiB metadata limit, so the client sees INVALID_ARGUMENT, not
RESOURCE_EXHAUSTED."""

# --- collections ------------------------------------------------------------------------------

MAX_PARAMETERS = 100
"""Parameters per study: every trial carries one value for each."""

MAX_VALUES_PER_PARAMETER = 1000
"""Values of a discrete or categorical parameter, and parent values of a condition."""

MAX_OBJECTIVES = 16
"""Objectives per study (each must be reported in every measurement)."""

MAX_PERTURBATION_FACTORS = 16
"""Perturbation factors per study."""

MAX_METRICS_PER_MEASUREMENT = 64
"""Metrics per measurement (every objective and a few dozen more for inspection)."""

MAX_MEASUREMENT_BYTES = 8 * 1024
"""Encoded size of a reported measurement (metrics and checkpoint path together): with
`MAX_MEASUREMENTS_PER_TRIAL` it bounds a trial's reply."""

MAX_MEASUREMENTS_PER_TRIAL = 256
"""Measurements per trial (a trial is one training session between two exploit steps): 257 (one
more may come with CompleteTrial) of `MAX_MEASUREMENT_BYTES` keep the largest trial near 2.2 MiB,
under `MAX_REPLY_BYTES`. A report of a new step beyond it is FAILED_PRECONDITION; the store's
insert checks the count in the same statement."""

MAX_CONFIG_BYTES = 1024 * 1024
"""Encoded size of a StudyConfig: a Study reply is the config and a few small fields, so every
study fits in a reply with room to spare."""

# --- numbers ----------------------------------------------------------------------------------

MAX_ABS_NUMBER = 1e300
"""Largest magnitude of a float bound, a discrete value or a condition number: the width of any
range (at most 2e300) and any value times any factor (at most 1e302) stay finite, so sampling and
mutation never overflow. Integer bounds are int64 and mutations are clipped to them."""

MAX_PERTURBATION_FACTOR = 100.0
"""Largest perturbation factor (factors must be > 0): see `MAX_ABS_NUMBER`."""

MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
"""Integer parameter bounds: what the API and both databases (BIGINT) carry exactly."""

MAX_POPULATION_SIZE = 10_000
"""Members per generation: a suggestion and the median stopping rule read up to population ×
`opponent_generations` trials."""

MAX_OPPONENT_GENERATIONS = 100
"""Generations opponents come from (k): see `MAX_POPULATION_SIZE`."""

MAX_KEEP_BEST = 10_000
"""Best trials whose final checkpoints the collector keeps."""

MAX_SCORE_WINDOW = 16
"""Final measurements of a lineage a smoothed or improvement score looks at: each trial stores
that many of its ancestors' (step, fitness) pairs."""

MIN_PB2_POINTS = 3
"""Fewer observations say nothing to PB2's Gaussian process: it perturbs instead."""

MAX_PB2_POINTS = 256
"""Observations PB2's Gaussian process sees: its fit is cubic in them, and it runs inside a
suggestion."""

MAX_READY_GENERATIONS = 10_000
"""Generations a member may be kept from selection after its last exploit."""

# --- calls and replies ------------------------------------------------------------------------

GRPC_MESSAGE_LIMIT = 4 * 1024 * 1024
"""gRPC's default largest message a client accepts; every reply must stay below it."""

MAX_REPLY_BYTES = 3 * 1024 * 1024
"""Byte budget of a ListTrials or ListStudies page: items are added while the reply stays within
it (a page holds at least one item, each far smaller), and the next token continues."""

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
"""Items per ListTrials or ListStudies page (0 means the default)."""

MAX_PAGE_TOKEN_LENGTH = 256
"""Characters in a page token; the service's own are under 200."""

MAX_COUNT = 100
"""Trials one GetNewSuggestion may ask for."""

DEFAULT_CHECKPOINTS = 1000
MAX_CHECKPOINTS = 10_000
"""Checkpoints per CollectCheckpoints reply (0 means the default), and paths per
ConfirmCheckpointsDeleted call."""

# --- checks shared by the service and the core ------------------------------------------------

_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
_NAME = re.compile(f"[^{_CONTROL}]{{1,{MAX_NAME_LENGTH}}}")
_HAS_CONTROL = re.compile(f"[{_CONTROL}]")
_HAS_NUL = re.compile("[\x00\ud800-\udfff]")


def shorten(value: str) -> str:
    """`value` cut to `QUOTE_PREFIX` characters and "…", for an error message."""
    return value if len(value) <= QUOTE_PREFIX else value[:QUOTE_PREFIX] + "…"


def quote(value: str) -> str:
    """`value` quoted (repr, so control characters show) for an error message, cut to
    `QUOTE_PREFIX` characters and "…"."""
    if len(value) <= QUOTE_PREFIX:
        return repr(value)
    return repr(value[:QUOTE_PREFIX]) + "…"


def check_count(items: Sized, limit: int, field: str, noun: str) -> None:
    """At most `limit` items in a repeated field. Raises InvalidArgumentError naming `field`."""
    if len(items) > limit:
        raise InvalidArgumentError(f"{field}: {len(items)} {noun}; at most {limit} are allowed")


def check_name(value: str, field: str) -> str:
    """A name: 1 to `MAX_NAME_LENGTH` characters, none of them a control character (NUL, newline,
    DEL, C1, line separators). Raises InvalidArgumentError naming `field`."""
    if _NAME.fullmatch(value):
        return value
    if not value:
        raise InvalidArgumentError(f"{field}: must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"{field}: {quote(value)} has {len(value)} characters; at most {MAX_NAME_LENGTH} are allowed"
        )
    raise InvalidArgumentError(f"{field}: {quote(value)} contains a control character")


def check_text(value: str, field: str, limit: int, *, control: bool = False) -> str:
    """A free text of at most `limit` characters without NUL (PostgreSQL refuses it in text) and,
    unless `control` (a reason may hold newlines and tabs), without any control character. Raises
    InvalidArgumentError naming `field`."""
    if len(value) > limit:
        raise InvalidArgumentError(f"{field}: {len(value)} characters; at most {limit} are allowed")
    if (_HAS_NUL if control else _HAS_CONTROL).search(value):
        kind = "a NUL" if control else "a control character"
        raise InvalidArgumentError(f"{field}: {quote(value)} contains {kind}")
    return value
