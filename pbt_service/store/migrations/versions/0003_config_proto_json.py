"""studies.config_json becomes protobuf's JSON of the StudyConfig message; drop the dead columns.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01

The old rows were written by a hand-written codec (lower-case enum values, every parameter with
`type`/`low`/`high`/`scale`/`values`); they are rewritten into the JSON that
`google.protobuf.json_format.MessageToDict(..., preserving_proto_field_name=True)` makes of
`pbt_service.api.v1.StudyConfig`, keys sorted. `studies.population_size` and `studies.seed` were
written and never read (the config holds both). Written against plain SQLAlchemy and json, with
both formats spelled out here as they were at this revision: never import pbt_service here.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

STUDIES = sa.table("studies", sa.column("id", sa.Integer()), sa.column("config_json", sa.Text()))

# The dataclass defaults as of this revision; the old format relied on them for missing keys.
OLD_ALGORITHM_DEFAULTS: dict[str, Any] = {
    "population_size": 10,
    "opponent_generations": 2,
    "perturbation_factors": [0.8, 1.2],
    "max_generations": 0,
    "max_trials": 0,
    "steps_per_trial": 0,
    "seed": 0,
}
OLD_STOPPING_DEFAULTS: dict[str, Any] = {"enabled": False, "min_completed_trials": 3, "min_measurements": 1}
INT64_FIELDS = ("seed",)
OPTIONAL_FIELDS = ("population_size", "opponent_generations", "min_completed_trials", "min_measurements")


def upgrade() -> None:
    _rewrite(_to_proto_json)
    op.drop_column("studies", "population_size")
    op.drop_column("studies", "seed")


def downgrade() -> None:
    op.add_column(
        "studies", sa.Column("population_size", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("studies", sa.Column("seed", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    _rewrite(_to_old_json)
    connection = op.get_bind()
    old = sa.table(
        "studies",
        sa.column("id", sa.Integer()),
        sa.column("config_json", sa.Text()),
        sa.column("population_size", sa.Integer()),
        sa.column("seed", sa.BigInteger()),
    )
    for row_id, text in connection.execute(sa.select(old.c.id, old.c.config_json)).all():
        algorithm = json.loads(text)["algorithm"]
        connection.execute(
            old.update()
            .where(old.c.id == row_id)
            .values(population_size=algorithm["population_size"], seed=algorithm["seed"])
        )


def _rewrite(convert: Any) -> None:
    connection = op.get_bind()
    for row_id, text in connection.execute(sa.select(STUDIES.c.id, STUDIES.c.config_json)).all():
        new = _dump(convert(json.loads(text)))
        if new != text:
            connection.execute(STUDIES.update().where(STUDIES.c.id == row_id).values(config_json=new))


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def _drop_zero(document: dict[str, Any]) -> dict[str, Any]:
    """What proto3 JSON leaves out: zero, empty and false values of fields without presence."""
    return {k: v for k, v in document.items() if k in OPTIONAL_FIELDS or v not in (0, 0.0, "", "0", [], False)}


# --- old -> proto JSON ---------------------------------------------------------------------------


def _to_proto_json(old: dict[str, Any]) -> dict[str, Any]:
    algorithm = {**OLD_ALGORITHM_DEFAULTS, **old.get("algorithm", {})}
    stopping = {**OLD_STOPPING_DEFAULTS, **algorithm.pop("median_stopping", {})}
    algorithm["perturbation_factors"] = [float(f) for f in algorithm["perturbation_factors"]]
    for name in INT64_FIELDS:
        algorithm[name] = str(int(algorithm[name]))
    algorithm = _drop_zero(algorithm)
    algorithm["median_stopping"] = _drop_zero(stopping)
    return {
        "algorithm": algorithm,
        "comparison": str(old.get("comparison", "lexicographic")).upper(),
        "objectives": [
            _drop_zero({"metric": o.get("metric", ""), "goal": str(o.get("goal", "maximize")).upper()})
            for o in old.get("objectives", [])
        ],
        "parameters": [_parameter_to_proto_json(p) for p in old.get("parameters", [])],
    }


def _parameter_to_proto_json(old: dict[str, Any]) -> dict[str, Any]:
    kind = old.get("type")
    new: dict[str, Any] = {"name": old.get("name", ""), "frozen": bool(old.get("frozen", False))}
    if kind == "float":
        scale = "SCALE_LOG" if old.get("scale") == "log" else "SCALE_LINEAR"
        new["float_range"] = _drop_zero(
            {"low": float(old.get("low", 0.0)), "high": float(old.get("high", 0.0)), "scale": scale}
        )
    elif kind == "integer":
        new["integer_range"] = _drop_zero(
            {"low": str(int(old.get("low", 0))), "high": str(int(old.get("high", 0)))}
        )
    elif kind == "discrete":
        new["discrete"] = {"values": [float(v) for v in old.get("values", [])]}
    elif kind == "categorical":
        new["categorical"] = {"values": [str(v) for v in old.get("values", [])]}
    else:
        raise ValueError(f"study config parameter {old.get('name')!r} has unknown type {kind!r}")
    condition = old.get("condition")
    if condition is not None:
        values = condition.get("values", [])
        new["condition"] = _drop_zero({
            "parent": condition.get("parent", ""),
            "categories": [v for v in values if isinstance(v, str)],
            "numbers": [float(v) for v in values if not isinstance(v, str)],
        })
    return _drop_zero(new)


# --- proto JSON -> old ---------------------------------------------------------------------------


def _to_old_json(new: dict[str, Any]) -> dict[str, Any]:
    algorithm = {**OLD_ALGORITHM_DEFAULTS, **new.get("algorithm", {})}
    stopping = {**OLD_STOPPING_DEFAULTS, **algorithm.pop("median_stopping", {})}
    algorithm["seed"] = int(algorithm["seed"])
    algorithm["perturbation_factors"] = algorithm["perturbation_factors"] or [0.8, 1.2]
    algorithm["median_stopping"] = stopping
    return {
        "algorithm": algorithm,
        "comparison": "pareto" if new.get("comparison") == "PARETO" else "lexicographic",
        "objectives": [
            {"metric": o.get("metric", ""), "goal": str(o.get("goal", "MAXIMIZE")).lower()}
            for o in new.get("objectives", [])
        ],
        "parameters": [_parameter_to_old_json(p) for p in new.get("parameters", [])],
    }


def _parameter_to_old_json(new: dict[str, Any]) -> dict[str, Any]:
    old: dict[str, Any] = {
        "name": new.get("name", ""), "low": 0.0, "high": 0.0, "scale": "linear", "values": [],
        "frozen": bool(new.get("frozen", False)), "condition": None,
    }
    if "float_range" in new:
        bounds = new["float_range"]
        old.update(type="float", low=float(bounds.get("low", 0.0)), high=float(bounds.get("high", 0.0)))
        old["scale"] = "log" if bounds.get("scale") == "SCALE_LOG" else "linear"
    elif "integer_range" in new:
        bounds = new["integer_range"]
        old.update(type="integer", low=int(bounds.get("low", 0)), high=int(bounds.get("high", 0)))
    elif "discrete" in new:
        old.update(type="discrete", values=[float(v) for v in new["discrete"].get("values", [])])
    else:
        old.update(type="categorical", values=list(new.get("categorical", {}).get("values", [])))
    if "condition" in new:
        condition = new["condition"]
        old["condition"] = {
            "parent": condition.get("parent", ""),
            "values": [*condition.get("categories", []), *condition.get("numbers", [])],
        }
    return old
