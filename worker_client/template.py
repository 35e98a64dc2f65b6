"""Command templates: `python train.py --lr {lr} --init {warm_start} --out {model_dir}`.

Each argument is a Python format string whose fields name an hparam or one of the trial's
reserved values (`RESERVED`); a format spec works too (`{hidden_units:.0f}` turns the DISCRETE
value 64.0 into `64`). The template is checked against the study's search space before any trial
is taken, so a typo fails at once instead of failing every trial.

An hparam that is inactive in a trial (its condition is not met) fills in as the empty string,
has no `PBT_HP_<NAME>` variable and is absent from the JSON file's "hparams". A trial without a
parent gets an empty `{warm_start}`. `{steps}` is the steps the service asks this trial for
(`Trial.steps`: more than `steps_per_trial` when a child catches up with its generation), 0 when
the study sets no `steps_per_trial`. Floats fill in with full precision (`repr`), so the script trains with exactly the
value the service recorded.
"""

from __future__ import annotations

import json
import re
import shlex
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from worker_client.atomic import write_bytes_atomically
from worker_client.context import TrialContext

RESERVED = (
    "warm_start", "model_dir", "trial_id", "study", "generation", "steps", "hparams_json", "worker_id"
)
"""Placeholders every trainer template may use besides the hparams."""
EVALUATOR_RESERVED = (*RESERVED, "checkpoint", "step")
"""The evaluator's template may also name the checkpoint and its step."""
TRIAL_FILE = "pbt-trial.json"
_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    """The template is malformed or names a placeholder the study does not have."""


@dataclass(frozen=True)
class CommandTemplate:
    """argv of a command, each argument a format string. A single argument with spaces is split
    like a shell would (`--evaluator "python eval.py --checkpoint {checkpoint}"`)."""

    argv: tuple[str, ...]

    @classmethod
    def parse(cls, argv: Sequence[str]) -> CommandTemplate:
        parts = list(argv)
        if len(parts) == 1 and any(c.isspace() for c in parts[0]):
            parts = shlex.split(parts[0])
        if not parts:
            raise TemplateError("the command is empty")
        template = cls(tuple(parts))
        template.fields()
        return template

    def fields(self) -> set[str]:
        """Placeholder names used. Raises TemplateError for malformed braces, positional `{}`,
        attribute or index access, or nested fields in a format spec."""
        names: set[str] = set()
        for arg in self.argv:
            try:
                parsed = list(_FORMATTER.parse(arg))
            except ValueError as error:
                hint = "write {{ and }} for literal braces"
                raise TemplateError(f"argument {arg!r}: {error} ({hint})") from None
            for _, field, spec, _ in parsed:
                if field is None:
                    continue
                if not field.isidentifier():
                    raise TemplateError(f"argument {arg!r}: {{{field}}} is not a placeholder name")
                if spec and "{" in spec:
                    raise TemplateError(f"argument {arg!r}: nested placeholders in a format spec")
                names.add(field)
        return names

    def validate(self, allowed: Iterable[str], what: str) -> None:
        """Raises TemplateError naming each unknown placeholder and listing the known ones."""
        known = set(allowed)
        unknown = sorted(self.fields() - known)
        if unknown:
            raise TemplateError(
                f"the {what} command names unknown placeholder(s) "
                f"{', '.join('{' + u + '}' for u in unknown)}; known: {', '.join(sorted(known))}"
            )

    def render(self, values: Mapping[str, object]) -> list[str]:
        """The argv with every placeholder filled; None fills as the empty string."""
        out = []
        for arg in self.argv:
            pieces = []
            for literal, field, spec, conversion in _FORMATTER.parse(arg):
                pieces.append(literal)
                if field is None:
                    continue
                value = values[field]
                if value is None:
                    continue
                if conversion:
                    value = _FORMATTER.convert_field(value, conversion)
                pieces.append(_text(value) if not spec else format(value, spec))
            out.append("".join(pieces))
        return out

    def __str__(self) -> str:
        return shlex.join(self.argv)


def _text(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def trial_values(ctx: TrialContext, parameters: Iterable[str]) -> dict[str, object]:
    """The placeholder values of a trial: every parameter of the study (None when inactive)
    and the reserved names; hparams cannot shadow reserved names."""
    values: dict[str, object] = {name: ctx.hparams.get(name) for name in parameters}
    values.update(
        warm_start=ctx.warm_start_checkpoint_path or "",
        model_dir=str(ctx.model_dir),
        trial_id=ctx.trial_id,
        study=ctx.study,
        generation=ctx.generation,
        steps=ctx.steps,
        hparams_json=str(ctx.model_dir / TRIAL_FILE),
        worker_id=ctx.worker_id,
    )
    return values


def write_trial_file(ctx: TrialContext) -> Path:
    """`<model_dir>/pbt-trial.json`: everything about the trial, for scripts that read a file."""
    path = ctx.model_dir / TRIAL_FILE
    document = {
        "trial_id": ctx.trial_id,
        "study": ctx.study,
        "generation": ctx.generation,
        "hparams": dict(ctx.hparams),
        "warm_start": ctx.warm_start_checkpoint_path or "",
        "model_dir": str(ctx.model_dir),
        "steps": ctx.steps,
        "worker_id": ctx.worker_id,
    }
    return write_bytes_atomically(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"))


def env_name(hparam: str) -> str:
    """`PBT_HP_<NAME>`: upper case, anything but letters and digits as '_'."""
    return "PBT_HP_" + re.sub(r"[^A-Za-z0-9]", "_", hparam).upper()


def trial_env(ctx: TrialContext) -> dict[str, str]:
    """Environment variables for scripts that prefer them."""
    env = {
        "PBT_TRIAL_ID": str(ctx.trial_id),
        "PBT_STUDY": ctx.study,
        "PBT_GENERATION": str(ctx.generation),
        "PBT_STEPS": str(ctx.steps),
        "PBT_WARM_START": ctx.warm_start_checkpoint_path or "",
        "PBT_MODEL_DIR": str(ctx.model_dir),
        "PBT_HPARAMS_JSON": str(ctx.model_dir / TRIAL_FILE),
        "PBT_WORKER_ID": ctx.worker_id,
    }
    for name, value in ctx.hparams.items():
        env[env_name(name)] = _text(value)
    return env
