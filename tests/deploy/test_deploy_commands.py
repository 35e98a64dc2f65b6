"""Every container the deployment files start (the Dockerfiles' CMD, docker-compose.yml, the
Kubernetes manifests) runs a command the project really has: its subcommand and flags parse with
the real argparse parser, each PBT_* variable it is given is one that program reads, every other
variable is used (a `$(VAR)` of the command, or the image's own), and the files and modules a worker
names are in its image."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
from pathlib import Path

import pytest

from pbt_service import cli as service_cli
from pbt_service.options import SERVE_OPTIONS
from tests.deploy.deploy_files import (
    ROOT,
    Container,
    compose,
    containers,
    image_of,
    in_image,
    manifest,
    read_dockerfile,
)
from worker_client import cli as worker_cli
from worker_client import settings as client_settings_module
from worker_client.loading import load_callable
from worker_client.settings import client_settings

SERVER_VARIABLES = frozenset({option.variable for option in SERVE_OPTIONS} | {"PBT_AUTH_TOKEN"})
"""What `pbt-service serve` reads: SERVE_OPTIONS, and the admin token (environment only)."""
MIGRATE_VARIABLES = frozenset({"PBT_DATABASE_URL"})
CLIENT_VARIABLES = frozenset(
    source.variable for source in vars(client_settings_module).values()
    if isinstance(source, client_settings_module._Source)
)
WORKER_VARIABLES = CLIENT_VARIABLES | frozenset(re.findall(r"""env\("(PBT_\w+)"\)?""", inspect.getsource(worker_cli)))
IMAGE_VARIABLES = re.compile(r"^(PYTHON\w+|PIP_\w+|POSTGRES_\w+|PGDATA)$")
"""Read by the image's own software (Python, pip, the postgres image's entrypoint)."""

PROJECT = [c for c in containers() if c.program in ("pbt-service", "pbt-worker")]


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            return parser.parse_args(argv)
        except SystemExit:
            raise AssertionError(errors.getvalue().strip()) from None


def test_the_deployment_starts_the_programs_it_is_about() -> None:
    where = {c.where.split(":")[0] for c in PROJECT}
    assert {"Dockerfile", "worker.Dockerfile", "docker-compose.yml"} <= where
    assert {c.argv[:2] for c in PROJECT} == {("pbt-service", "serve"), ("pbt-service", "migrate"),
                                             ("pbt-worker", "--study")}
    assert all(c.program in ("pbt-service", "pbt-worker") or c.image.startswith(("postgres:", "nginx:"))
               for c in containers()), [c.where for c in containers()]


@pytest.mark.parametrize("container", PROJECT, ids=lambda c: c.where)
def test_the_command_parses_with_the_real_parser(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("PBT_")]:
        monkeypatch.delenv(name)
    for name, value in container.env.items():
        monkeypatch.setenv(name, value)
    if container.program == "pbt-service":
        args = parse(service_cli.parser(), list(container.argv[1:]))
        if args.command == "migrate":
            assert args.database_url == container.env.get("PBT_DATABASE_URL", args.database_url)
        return
    options, command = worker_cli.split_command(container.argv[1:])
    assert not command, "Python mode: the trainer is a module"
    args = parse(worker_cli.parser(), options)
    assert args.study, "--study or PBT_STUDY"
    if container.where.endswith("Dockerfile"):
        return  # the image's default command: compose and Kubernetes give the address and the token
    settings = client_settings(args, environ=container.env)
    assert settings.token is not None and settings.token.startswith(("${PBT_AUTH_TOKEN", "<secret:")), (
        "the token from the environment, never a flag")
    if args.worker_name is not None:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", args.worker_name), args.worker_name
    assert str(args.workdir) == container.env.get("PBT_WORKDIR", str(args.workdir))


@pytest.mark.parametrize("container", PROJECT, ids=lambda c: c.where)
def test_every_variable_set_is_one_the_program_reads(container: Container) -> None:
    if container.argv[:2] == ("pbt-service", "serve"):
        known = SERVER_VARIABLES
    elif container.argv[:2] == ("pbt-service", "migrate"):
        known = MIGRATE_VARIABLES
    else:
        known = WORKER_VARIABLES
    expanded_from = {"JOB_COMPLETION_INDEX"} if container.where.startswith("deploy/") else set()
    for name in container.env:
        if name.startswith("PBT_"):
            assert name in known, f"{container.where}: {container.program} does not read {name}"
        else:
            assert IMAGE_VARIABLES.match(name) or name in expanded_from, f"{container.where}: who reads {name}?"
    for name in expanded_from & set(container.env):
        raw = manifest("Job", "pbt-workers")["spec"]["template"]["spec"]["containers"][0]["command"]
        assert any(f"$({name})" in word for word in raw), f"{name} is set but not used"


def test_the_sets_of_known_variables_are_not_empty_guesses() -> None:
    assert {"PBT_METRICS_PORT", "PBT_LOG_FORMAT", "PBT_DATABASE_URL", "PBT_TLS_CERT"} <= SERVER_VARIABLES
    assert {"PBT_SERVICE", "PBT_AUTH_TOKEN", "PBT_TLS_CA", "PBT_STUDY", "PBT_WORKDIR"} <= WORKER_VARIABLES
    assert "PBT_METRICS_PORT" not in WORKER_VARIABLES


@pytest.mark.parametrize("container", [c for c in PROJECT if c.program == "pbt-worker"], ids=lambda c: c.where)
def test_what_a_worker_names_is_in_its_image_and_loads(container: Container) -> None:
    final = read_dockerfile(image_of(container))[-1]
    options, _ = worker_cli.split_command(container.argv[1:])
    args = worker_cli.parser().parse_args(options)
    study_file = in_image(final, str(args.create_study))
    assert study_file is not None and study_file.is_file(), f"{args.create_study} is not in the image"
    config = worker_cli.load_study_config(study_file)
    assert config.algorithm.max_generations, "a study that ends, so that the workers exit"
    for spec in (args.trainer_module, args.evaluator_module):
        module = spec.split(":")[0]
        source = in_image(final, module.replace(".", "/") + ".py")
        assert source is not None and source.is_file(), f"{module} is not in the image"
        package = Path(module.replace(".", "/")).parent
        while str(package) != ".":
            assert in_image(final, f"{package}/__init__.py") is not None, f"{package}/__init__.py"
            package = package.parent
        assert callable(load_callable(spec, "--trainer-module"))


def test_the_workers_reach_the_service_where_it_listens() -> None:
    workers = [c for c in PROJECT if c.program == "pbt-worker" and "PBT_SERVICE" in c.env]
    assert workers
    for worker in workers:
        host, port = worker.env["PBT_SERVICE"].rsplit(":", 1)
        if worker.where.startswith("docker-compose"):
            balancer = compose()["services"][host]
            assert f"{port}:{port}" in balancer["ports"] or f"listen {port};" in (
                ROOT / "deploy" / "compose" / "nginx.conf").read_text()
        else:
            service = manifest("Service", host)
            assert int(port) in [p["port"] for p in service["spec"]["ports"]]


def test_the_service_containers_listen_on_the_ports_they_declare() -> None:
    for container in (c for c in PROJECT if c.argv[:2] == ("pbt-service", "serve")):
        argv = list(container.argv)
        port = argv[argv.index("--port") + 1]
        if container.ports:
            assert int(port) in container.ports.values(), container.where
        if "PBT_METRICS_PORT" in container.env and container.ports:
            assert int(container.env["PBT_METRICS_PORT"]) in container.ports.values(), container.where
