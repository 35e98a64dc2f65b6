"""Command templates, trial variables and worker identities: no server needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker_client.context import TrialContext
from worker_client.identity import IdentityInUse, WorkerIdentity
from worker_client.template import (
    RESERVED,
    CommandTemplate,
    TemplateError,
    env_name,
    trial_env,
    trial_values,
    write_trial_file,
)


def context(tmp_path: Path, **hparams: float | int | str) -> TrialContext:
    return TrialContext(
        trial_id=7, study="s", generation=2, hparams=hparams, warm_start_checkpoint_path="/ckpt/ckpt-000000010",
        model_dir=tmp_path, steps=100, worker_id="host-w0",
    )


def test_placeholders_fill_with_format_specs_and_inactive_params_as_empty(tmp_path: Path) -> None:
    template = CommandTemplate.parse(
        ["train", "--lr={lr}", "--units", "{units:.0f}", "--mom", "{momentum}", "{{literal}}", "{opt!r}",
         "--init", "{warm_start}", "{trial_id}-{generation}-{steps}"]
    )
    template.validate(["lr", "units", "momentum", "opt", *RESERVED], "trainer")
    values = trial_values(context(tmp_path, lr=0.001, units=64.0, opt="adam"), ["lr", "units", "momentum", "opt"])
    assert template.render(values) == [
        "train", "--lr=0.001", "--units", "64", "--mom", "", "{literal}", "'adam'",
        "--init", "/ckpt/ckpt-000000010", "7-2-100",
    ]


def test_a_single_string_is_split_like_a_shell_would() -> None:
    template = CommandTemplate.parse(["python eval.py --checkpoint '{checkpoint}' --name 'a b'"])
    assert template.argv == ("python", "eval.py", "--checkpoint", "{checkpoint}", "--name", "a b")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["t", "{lr"], "expected '}'"),
        (["t", "{}"], "is not a placeholder name"),
        (["t", "{lr.real}"], "is not a placeholder name"),
        (["t", "{lr[0]}"], "is not a placeholder name"),
        (["t", "{lr:{width}}"], "nested placeholders"),
        ([], "empty"),
    ],
)
def test_malformed_templates_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", r"\(").replace("[", r"\[")):
        CommandTemplate.parse(argv)


def test_unknown_placeholders_are_named_with_the_known_ones() -> None:
    template = CommandTemplate.parse(["t", "{lr}", "{learning_rate}", "{model_dirr}"])
    with pytest.raises(TemplateError) as error:
        template.validate(["lr", *RESERVED], "trainer")
    text = str(error.value)
    assert "{learning_rate}, {model_dirr}" in text and "known: " in text and "warm_start" in text


def test_environment_and_trial_file(tmp_path: Path) -> None:
    hparams: dict[str, float | int | str] = {"lr": 0.5, "batch-size": 32, "opt": "sgd"}
    ctx = context(tmp_path, **hparams)
    env = trial_env(ctx)
    assert env["PBT_HP_LR"] == "0.5" and env["PBT_HP_BATCH_SIZE"] == "32" and env["PBT_HP_OPT"] == "sgd"
    assert env["PBT_TRIAL_ID"] == "7" and env["PBT_STEPS"] == "100" and env["PBT_MODEL_DIR"] == str(tmp_path)
    assert env["PBT_WARM_START"] == "/ckpt/ckpt-000000010"
    path = write_trial_file(ctx)
    assert env["PBT_HPARAMS_JSON"] == str(path)
    document = json.loads(path.read_text())
    assert document["hparams"] == {"lr": 0.5, "batch-size": 32, "opt": "sgd"} and document["generation"] == 2
    assert env_name("a.b") == "PBT_HP_A_B"


def test_worker_identity_survives_a_restart_and_is_never_shared(tmp_path: Path) -> None:
    first = WorkerIdentity.acquire(tmp_path)
    second = WorkerIdentity.acquire(tmp_path)
    assert (first.name, second.name) == ("w0", "w1") and first.worker_id != second.worker_id
    first_id = first.worker_id
    first.release()
    again = WorkerIdentity.acquire(tmp_path)
    assert (again.name, again.worker_id) == ("w0", first_id)
    named = WorkerIdentity.acquire(tmp_path, "gpu3")
    with pytest.raises(IdentityInUse, match="gpu3"):
        WorkerIdentity.acquire(tmp_path, "gpu3")
    named.release()
    assert WorkerIdentity.acquire(tmp_path, "gpu3").worker_id == named.worker_id
    with pytest.raises(ValueError, match="worker name"):
        WorkerIdentity.acquire(tmp_path, "../etc")
